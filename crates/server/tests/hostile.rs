//! Hostile clients against the server binary, one test per kind of attack
//! found by trying to break it (see docs/SECURITY.md): each failed before
//! the limit, budget or time-out it checks existed. The server runs as a
//! child process so that its memory (peak RSS, `VmHWM`), CPU time and
//! descriptor limit can be read and set from outside.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_bitcask-server");
const MIB: u64 = 1 << 20;

/// A server process, killed when dropped.
struct Server {
    child: Child,
    http: SocketAddr,
    resp: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the binary with a RESP listener and these extra flags.
    fn start(extra: &[&str]) -> Self {
        Self::launch(extra, None, &[])
    }

    /// Starts it with `ulimit -n` set to `fd_limit` if given, and these
    /// environment variables.
    fn launch(extra: &[&str], fd_limit: Option<u32>, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut command = match fd_limit {
            Some(n) => {
                let mut sh = Command::new("sh");
                sh.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\""), BIN]);
                sh
            }
            None => Command::new(BIN),
        };
        let mut child = command
            .args(["--port", "0", "--resp-port", "0", "--log-format", "json"])
            .arg("--data-dir")
            .arg(dir.path())
            .args(extra)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn server");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) {
                    if event["message"] == "bitcask-server starting"
                        && let Some(addr) = event["http"].as_str()
                    {
                        let _ = tx.send(("http", addr.to_string()));
                    }
                    if event["message"] == "RESP listener accepting"
                        && let Some(port) = event["port"].as_u64()
                    {
                        let _ = tx.send(("resp", format!("127.0.0.1:{port}")));
                    }
                }
                sink.lock().expect("logs").push(line);
            }
        });
        let (mut http, mut resp) = (None, None);
        while http.is_none() || resp.is_none() {
            let (which, addr) = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("the server logs its addresses");
            let addr: SocketAddr = addr.parse().expect("an address");
            if which == "http" {
                http = Some(addr);
            } else {
                resp = Some(addr);
            }
        }
        let server = Self {
            child,
            http: http.expect("http"),
            resp: resp.expect("resp"),
            logs,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.get("/health").0 != 200 {
            assert!(Instant::now() < deadline, "the server never became healthy");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// A field of `/proc/<pid>/status`, in KiB.
    fn status_kib(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/pid/status"))
    }

    /// The highest resident memory the process has had, in bytes.
    fn peak_rss(&self) -> u64 {
        self.status_kib("VmHWM:") * 1024
    }

    /// User and system CPU time the process has used.
    fn cpu_time(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).expect("stat");
        // Fields after the command name (which is in parentheses).
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .expect("stat")
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 =
            fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        // The kernel reports in clock ticks of 1/100 s on Linux.
        Duration::from_millis(ticks * 10)
    }

    /// Sends a raw HTTP request (it should ask `Connection: close`) and
    /// returns the status and body.
    fn http_raw(&self, request: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(self.http).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        stream.write_all(request.as_bytes()).expect("send");
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    /// `GET path`.
    fn get(&self, path: &str) -> (u16, String) {
        self.http_raw(&format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        ))
    }

    /// A RESP connection with a read time-out.
    fn resp(&self) -> TcpStream {
        let stream = TcpStream::connect(self.resp).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        stream
    }
}

/// One RESP command in the array form.
fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Sends one command and reads one reply line (for short replies).
fn ask(stream: &mut TcpStream, args: &[&[u8]]) -> String {
    stream.write_all(&command(args)).expect("send");
    read_line(stream)
}

/// Reads up to the next CRLF (an empty string at the end of the stream).
fn read_line(stream: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => line.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&line).trim_end().to_string()
}

/// Whether the server closed `stream` within `within` (reading and
/// discarding whatever it sends first).
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

/// Lets the test process itself open many connections.
fn raise_own_fd_limit() {
    let _ = bitcask_server::descriptors::raise_soft_limit();
}

// 1. Replies are streamed, not built whole in memory.
#[test]
fn large_replies_are_streamed_within_a_budget() {
    let server = Server::start(&[]);
    let mut setter = server.resp();
    let value = vec![b'v'; MIB as usize];
    assert_eq!(ask(&mut setter, &[b"SET", b"big", &value]), "+OK");
    let baseline = server.peak_rss();
    // One MGET naming the 1 MiB value 600 times (a 9 KB command), and 600
    // pipelined GETs of it, from clients that never read their replies:
    // built whole, each reply is 600 MiB.
    let mut mget: Vec<&[u8]> = vec![b"MGET"];
    mget.extend(std::iter::repeat_n(&b"big"[..], 600));
    let mut greedy = server.resp();
    greedy.write_all(&command(&mget)).expect("send");
    let mut pipelined = server.resp();
    let get = command(&[b"GET", b"big"]);
    pipelined.write_all(&get.repeat(600)).expect("send");
    // Give the server time to do what it will with them.
    std::thread::sleep(Duration::from_secs(3));
    let grown = server.peak_rss().saturating_sub(baseline);
    assert!(
        grown < 64 * MIB,
        "two unread 600 MiB replies grew the server by {} MiB",
        grown / MIB
    );
    // The others are served meanwhile, and a reader gets every value whole.
    assert_eq!(ask(&mut setter, &[b"PING"]), "+PONG");
    let mut reader = server.resp();
    let mut mget20: Vec<&[u8]> = vec![b"MGET"];
    mget20.extend(std::iter::repeat_n(&b"big"[..], 20));
    mget20.push(b"absent");
    reader.write_all(&command(&mget20)).expect("send");
    assert_eq!(read_line(&mut reader), "*21");
    let mut body = vec![0u8; value.len() + 2];
    for _ in 0..20 {
        assert_eq!(read_line(&mut reader), format!("${}", value.len()));
        reader.read_exact(&mut body).expect("value");
        assert!(body[..value.len()] == value[..] && body.ends_with(b"\r\n"));
    }
    assert_eq!(read_line(&mut reader), "$-1");
    drop((greedy, pipelined));
}

// 1b. A reply that cannot be streamed (KEYS) and exceeds the output limit
// closes the client, with a metric.
#[test]
fn a_reply_over_the_output_limit_closes_the_client() {
    let server = Server::start(&["--resp-max-output", "65536"]);
    let mut client = server.resp();
    let key = vec![b'k'; 1000];
    for i in 0..100u8 {
        let mut k = key.clone();
        k.push(i);
        assert_eq!(ask(&mut client, &[b"SET", &k, b"v"]), "+OK");
    }
    client.write_all(&command(&[b"KEYS", b"*"])).expect("send");
    assert!(closed_within(&mut client, Duration::from_secs(10)));
    let (_, metrics) = server.get("/metrics");
    assert!(
        metrics.contains("bitcask_resp_disconnects_total{reason=\"output_limit\"} 1"),
        "{metrics}"
    );
    let mut other = server.resp();
    assert_eq!(ask(&mut other, &[b"DBSIZE"]), ":100");
}

// 2. Before AUTH, only tiny commands are taken.
#[test]
fn unauthenticated_clients_cannot_make_the_server_buffer() {
    let server = Server::start(&["--auth-token", "s3cret-token-for-tests"]);
    // A 1,000-element command: refused at its header.
    let mut many = server.resp();
    many.write_all(b"*1000\r\n").expect("send");
    let answer = read_line(&mut many);
    assert!(answer.starts_with("-ERR Protocol error"), "{answer}");
    assert!(closed_within(&mut many, Duration::from_secs(5)));
    // A 100 MiB bulk string: refused at its length, nothing buffered.
    let mut big = server.resp();
    big.write_all(b"*2\r\n$3\r\nSET\r\n$104857600\r\n")
        .expect("send");
    let answer = read_line(&mut big);
    assert!(answer.starts_with("-ERR Protocol error"), "{answer}");
    // Fifty strangers each streaming bulk strings: the server stays small.
    let baseline = server.peak_rss();
    let chunk = Arc::new(vec![b'x'; 64 * 1024]);
    let mut threads = Vec::new();
    for _ in 0..50 {
        let addr = server.resp;
        let chunk = Arc::clone(&chunk);
        threads.push(std::thread::spawn(move || {
            let Ok(mut s) = TcpStream::connect(addr) else {
                return;
            };
            let _ = s.write_all(b"*9\r\n$3\r\nSET\r\n$16000000\r\n");
            for _ in 0..64 {
                if s.write_all(&chunk[..]).is_err() {
                    break;
                }
            }
        }));
    }
    for t in threads {
        t.join().expect("thread");
    }
    let grown = server.peak_rss().saturating_sub(baseline);
    assert!(
        grown < 64 * MIB,
        "strangers grew the server by {} MiB",
        grown / MIB
    );
    // After AUTH the normal limits apply.
    let mut friend = server.resp();
    assert_eq!(
        ask(&mut friend, &[b"AUTH", b"s3cret-token-for-tests"]),
        "+OK"
    );
    let value = vec![b'v'; 100_000];
    assert_eq!(ask(&mut friend, &[b"SET", b"k", &value]), "+OK");
}

// 3. Metric labels come from a closed set.
#[test]
fn made_up_methods_do_not_become_metric_series() {
    let server = Server::start(&["--auth-token", "s3cret-token-for-tests"]);
    for i in 0..200 {
        let (status, _) = server.http_raw(&format!(
            "FOO{i} /kv/x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        ));
        assert!(status >= 400, "{status}");
    }
    let (status, metrics) = server.http_raw(
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer s3cret-token-for-tests\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert!(!metrics.contains("FOO"), "a made-up method became a label");
    assert!(metrics.contains("method=\"other\""), "{metrics}");
    assert!(metrics.contains("bitcask_auth_failures_total{listener=\"http\"}"));
}

// 3b. HTTP/2 is not spoken: its preface (prior knowledge, h2c) and a
// HEADERS frame get no HTTP/2 answer, the connection is closed, and the
// server goes on answering HTTP/1.1.
#[test]
fn http2_prior_knowledge_is_refused_and_closed() {
    let server = Server::start(&[]);
    let mut stream = TcpStream::connect(server.http).expect("connect");
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // An empty SETTINGS frame, as every HTTP/2 client sends next.
    hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    stream.write_all(&hello).expect("send");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    // An HTTP/2 server answers with its own SETTINGS frame (type 4 in the
    // fourth byte); an HTTP/1.1 server, if anything, with a status line.
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 4"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    assert!(closed_within(&mut stream, Duration::from_secs(5)));
    assert_eq!(server.get("/health").0, 200);
}

// 4a. An HTTP request sent to the RESP port runs nothing.
#[test]
fn http_requests_on_the_resp_port_are_refused() {
    let server = Server::start(&[]);
    // What a web page's `fetch("http://127.0.0.1:6380", {method: "POST",
    // body: "SET k v\r\n"})` sends.
    let mut attacker = server.resp();
    attacker
        .write_all(
            b"POST / HTTP/1.1\r\nHost: 127.0.0.1:6380\r\nContent-Type: text/plain\r\n\
              Content-Length: 9\r\n\r\nSET pwned yes\r\n",
        )
        .expect("send");
    assert!(closed_within(&mut attacker, Duration::from_secs(5)));
    let mut client = server.resp();
    assert_eq!(ask(&mut client, &[b"EXISTS", b"pwned"]), ":0");
    let (_, metrics) = server.get("/metrics");
    assert!(metrics.contains("reason=\"cross_protocol\""), "{metrics}");
}

// 4b. Cross-site writes and DNS rebinding over HTTP.
#[test]
fn cross_site_requests_and_foreign_hosts_are_refused() {
    let server = Server::start(&[]);
    let post = |headers: &str, body: &str| {
        server.http_raw(&format!(
            "POST /batch HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
    };
    let ops = r#"{"ops": [{"op": "put", "key": "pwned", "value": "yes"}]}"#;
    // A "simple" cross-site request needs no CORS preflight.
    assert_eq!(post("Content-Type: text/plain\r\n", ops).0, 415);
    assert_eq!(post("", ops).0, 415, "no content type at all");
    // The browser says where the request comes from.
    let json = "Content-Type: application/json\r\n";
    assert_eq!(
        post(&format!("{json}Origin: http://evil.example\r\n"), ops).0,
        403
    );
    assert_eq!(
        post(&format!("{json}Sec-Fetch-Site: cross-site\r\n"), ops).0,
        403
    );
    assert_eq!(
        server.get("/kv/pwned").1,
        r#"{"key":"pwned","value":null,"found":false}"#
    );
    // Same origin, and plain clients, are fine.
    assert_eq!(
        post(&format!("{json}Origin: http://127.0.0.1\r\n"), ops).0,
        200
    );
    assert_eq!(post(json, ops).0, 200);
    // A page on a rebound name (evil.example resolving to 127.0.0.1) reads
    // nothing: a loopback server answers only loopback host names.
    let (status, _) = server
        .http_raw("GET /kv/pwned HTTP/1.1\r\nHost: evil.example:8000\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 400);
    for host in ["localhost:8000", "127.0.0.1", "[::1]:8000", "db.localhost"] {
        let (status, _) = server.http_raw(&format!(
            "GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        ));
        assert_eq!(status, 200, "{host}");
    }
}

// 5. Descriptors and connections.
#[test]
fn idle_connections_cannot_exhaust_descriptors() {
    raise_own_fd_limit();
    // Under a 256-descriptor limit, 400 idle RESP connections.
    let server = Server::launch(&[], Some(256), &[]);
    let mut idle = Vec::new();
    let mut refused = 0;
    for _ in 0..400 {
        let mut s = TcpStream::connect(server.resp).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let mut buf = [0u8; 64];
        if let Ok(n) = s.read(&mut buf)
            && buf[..n].starts_with(b"-ERR max number of clients reached")
        {
            refused += 1;
        }
        idle.push(s);
    }
    assert!(
        refused > 0,
        "connections beyond the descriptor budget are refused"
    );
    // HTTP still has its share.
    assert_eq!(server.get("/health").0, 200);
    let (_, metrics) = server.get("/metrics");
    assert!(
        metrics.contains("bitcask_connections_refused_total{listener=\"resp\"}"),
        "{metrics}"
    );
    let logs = server.logs.lock().expect("logs").join("\n");
    assert!(
        logs.contains("lowered"),
        "the start-up log says the caps were lowered"
    );
}

#[test]
fn silent_connections_are_closed() {
    let server = Server::start(&[
        "--request-timeout",
        "1s",
        "--idle-timeout",
        "1s",
        "--resp-idle-timeout",
        "1s",
    ]);
    // HTTP: connected, never a byte.
    let mut http = TcpStream::connect(server.http).expect("connect");
    assert!(closed_within(&mut http, Duration::from_secs(10)));
    // RESP: one command, then silence.
    let mut resp = server.resp();
    assert_eq!(ask(&mut resp, &[b"PING"]), "+PONG");
    assert!(closed_within(&mut resp, Duration::from_secs(10)));
    // RESP: a client that asks for more than the socket holds and never
    // reads is dropped once sending has made no progress for the time-out.
    let mut setter = server.resp();
    let value = vec![b'v'; 1 << 20];
    assert_eq!(ask(&mut setter, &[b"SET", b"big", &value]), "+OK");
    drop(setter);
    let mut stalled = server.resp();
    stalled
        .write_all(&command(&[b"GET", b"big"]).repeat(64))
        .expect("send");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, metrics) = server.get("/metrics");
        if metrics.contains("reason=\"write_stalled\"} 1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a stalled reader is never dropped"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// 6. Slow request bodies neither starve /health nor last.
#[test]
fn slow_bodies_do_not_starve_health_and_are_cut_off() {
    let server = Server::start(&["--max-concurrent-requests", "8"]);
    let mut slow = Vec::new();
    for i in 0..16 {
        let mut s = TcpStream::connect(server.http).expect("connect");
        s.write_all(
            format!(
                "PUT /kv/slow{i} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                 Content-Length: 1000\r\n\r\n{{\""
            )
            .as_bytes(),
        )
        .expect("send");
        slow.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(server.get("/health").0, 200, "health answers under load");
    assert_eq!(server.get("/metrics").0, 200, "metrics answer under load");
    // Each trickling upload that got a place under the cap is answered 408
    // well before the 30 s request time-out; the others were shed (503).
    let started = Instant::now();
    let mut cut_off = 0;
    for mut s in slow {
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut answer = vec![0u8; 12];
        s.read_exact(&mut answer).expect("an answer");
        match &answer[..] {
            b"HTTP/1.1 408" => cut_off += 1,
            b"HTTP/1.1 503" => {}
            other => panic!("{}", String::from_utf8_lossy(other)),
        }
    }
    assert_eq!(cut_off, 8, "the eight under the cap are cut off");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(server.get("/kv/x").0, 200);
}

// 7. Pathological glob patterns.
#[test]
fn pathological_patterns_are_refused_or_cheap() {
    let server = Server::start(&[]);
    let mut client = server.resp();
    for i in 0..200 {
        let key = format!("key:{i:03}:{}", "a".repeat(200));
        assert_eq!(ask(&mut client, &[b"SET", key.as_bytes(), b"v"]), "+OK");
    }
    // A class of a million bytes: refused at once, as any pattern longer
    // than a key can be.
    let mut pattern = b"*[".to_vec();
    pattern.extend(std::iter::repeat_n(b'a', 1_000_000));
    pattern.push(b']');
    let answer = ask(
        &mut client,
        &[b"SCAN", b"0", b"MATCH", &pattern, b"COUNT", b"1000"],
    );
    assert!(answer.starts_with("-ERR pattern too long"), "{answer:.100}");
    let answer = ask(&mut client, &[b"KEYS", &pattern]);
    assert!(answer.starts_with("-ERR pattern too long"), "{answer:.100}");
    // Within the limit a large class costs one step per byte of a key.
    let before = server.cpu_time();
    let mut class = b"*[".to_vec();
    class.extend((0..4000).map(|i| b'b' + (i % 20) as u8));
    class.extend_from_slice(b"]");
    for _ in 0..20 {
        client
            .write_all(&command(&[b"KEYS", &class]))
            .expect("send");
        assert_eq!(read_line(&mut client), "*0");
    }
    let spent = server.cpu_time().saturating_sub(before);
    // Twenty KEYS over 200 keys of 210 bytes: 84,000 bytes matched each;
    // re-reading a 4,000-byte class at each was 6.7 billion steps.
    assert!(spent < Duration::from_secs(5), "{spent:?} of CPU");
}

// 8. A command sent slowly is parsed once.
#[test]
fn a_command_trickling_in_is_not_parsed_again_and_again() {
    let server = Server::start(&[]);
    let mut sender = server.resp();
    sender.set_nodelay(true).expect("nodelay");
    // 200,000 one-byte arguments (1.4 MB): most of them at once, then the
    // last 1,000 one at a time, milliseconds apart, as a slow client
    // would send them.
    let args = 200_000;
    let mut bytes = format!("*{}\r\n$4\r\nMSET\r\n", args + 1).into_bytes();
    for i in 0..args {
        let b = b"abcdefghijklmnopqrstuvwxyz"[i % 26];
        bytes.extend_from_slice(&[b'$', b'1', b'\r', b'\n', b, b'\r', b'\n']);
    }
    let (bulk, trickle) = bytes.split_at(bytes.len() - 1000 * 7);
    sender.write_all(bulk).expect("send");
    std::thread::sleep(Duration::from_millis(500));
    let before = server.cpu_time();
    for piece in trickle.chunks(7) {
        sender.write_all(piece).expect("send");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(read_line(&mut sender), "+OK");
    let spent = server.cpu_time().saturating_sub(before);
    eprintln!("trickle: {spent:?} of server CPU");
    // Linear: each piece is parsed once, microseconds. Walking all 199,000
    // arguments so far again on each of 1,000 reads was 200 million
    // argument parses.
    assert!(spent < Duration::from_secs(1), "{spent:?} of CPU");
    let mut client = server.resp();
    assert_eq!(ask(&mut client, &[b"GET", b"a"]), "$1");
}

// 9. The smaller ones.
#[test]
fn expiry_times_that_do_not_fit_are_refused() {
    let server = Server::start(&[]);
    let mut c = server.resp();
    assert_eq!(
        ask(
            &mut c,
            &[b"SET", b"k", b"v", b"PXAT", b"9223372036854775807"]
        ),
        "+OK"
    );
    let ttl = ask(&mut c, &[b"TTL", b"k"]);
    assert!(ttl.starts_with(':') && !ttl.starts_with(":-"), "{ttl}");
    for bad in [
        &[&b"SET"[..], b"k", b"v", b"EXAT", b"9223372036854776"][..],
        &[b"SET", b"k", b"v", b"EX", b"9223372036854775"],
        &[b"EXPIREAT", b"k", b"9223372036854776"],
        &[b"EXPIRE", b"k", b"9223372036854775807"],
    ] {
        let answer = ask(&mut c, bad);
        assert!(answer.starts_with("-ERR invalid expire time"), "{answer}");
    }
    assert_eq!(ask(&mut c, &[b"PING"]), "+PONG");
}

#[test]
fn repeated_auth_failures_close_the_connection() {
    let server = Server::start(&["--auth-token", "s3cret-token-for-tests"]);
    let mut guesser = server.resp();
    for guess in [&b"a"[..], b"b"] {
        assert!(ask(&mut guesser, &[b"AUTH", guess]).starts_with("-WRONGPASS"));
    }
    assert!(ask(&mut guesser, &[b"AUTH", b"c"]).starts_with("-WRONGPASS"));
    assert!(closed_within(&mut guesser, Duration::from_secs(5)));
    let (_, metrics) = server.http_raw(
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer s3cret-token-for-tests\r\nConnection: close\r\n\r\n",
    );
    assert!(
        metrics.contains("bitcask_auth_failures_total{listener=\"resp\"} 3"),
        "{metrics}"
    );
    // A silent stranger is dropped too (after the AUTH time-out, 10 s).
    let mut silent = server.resp();
    assert!(closed_within(&mut silent, Duration::from_secs(20)));
}

#[test]
fn error_answers_name_no_files() {
    // The engine's failpoints (feature `failpoints`, on for this crate's
    // tests) make the first fsync fail: the answer says what happened, the
    // log says where.
    let server = Server::launch(
        &["--sync", "always"],
        None,
        &[("BITCASK_FAILPOINTS", "fsync@1")],
    );
    let dir = server._dir.path().to_string_lossy().into_owned();
    let (status, body) = server.http_raw(
        "PUT /kv/k HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{\"value\":\"v\"}",
    );
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("I/O error"), "{body}");
    assert!(!body.contains(&dir), "the answer names a file: {body}");
    let mut client = server.resp();
    let answer = ask(&mut client, &[b"SET", b"k", b"v"]);
    assert!(answer.starts_with("-ERR"), "{answer}");
    assert!(!answer.contains(&dir), "{answer}");
    let logs = server.logs.lock().expect("logs").join("\n");
    assert!(logs.contains(&dir), "the log names the file");
}

#[test]
fn a_large_batch_is_parsed_without_a_copy_as_a_json_tree() {
    let server = Server::start(&[]);
    // Six MiB of small operations: a generic JSON tree of them took about
    // 28 times the body.
    let mut body = String::from(r#"{"ops": ["#);
    let mut i = 0;
    while body.len() < 6_000_000 {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(r#"{{"op":"delete","key":"k{}"}}"#, i % 1000));
        i += 1;
    }
    body.push_str("]}");
    let baseline = server.peak_rss();
    let (status, answer) = server.http_raw(&format!(
        "POST /batch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    assert_eq!(status, 200, "{answer}");
    let grown = server.peak_rss().saturating_sub(baseline);
    // Measured: 183 MiB through a JSON tree, 80 MiB parsed straight into
    // the operations (the vector of operations growing by doubling, and the
    // engine's encoded batch, are most of it).
    eprintln!("a 6 MB batch: {} MiB of peak memory", grown / MIB);
    assert!(
        grown < 128 * MIB,
        "a 6 MB batch grew the server by {} MiB",
        grown / MIB
    );
}

/// A `GET /watch` on a raw connection that will never be read.
fn unread_watch(server: &Server, query: &str) -> TcpStream {
    let mut stream = TcpStream::connect(server.http).expect("connect");
    stream
        .write_all(format!("GET /watch{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .expect("send");
    stream
}

/// A metric's value from `/metrics`.
fn metric(server: &Server, name: &str) -> u64 {
    let (_, text) = server.get("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name}"))
}

// 15. Watchers replaying a long history that never read: each has at most
// its backlog queued (the rest stays in the files), and is cut off once
// it has taken nothing for the stall time-out, its place given back.
#[test]
fn watchers_that_do_not_read_are_bounded_then_cut_off() {
    let server = Server::start(&[
        "--watch-max-backlog",
        "64KiB",
        "--watch-stall-timeout",
        "1s",
    ]);
    let mut setter = server.resp();
    let value = vec![b'v'; 64 * 1024];
    // 32 MiB of history.
    for i in 0..512 {
        assert_eq!(
            ask(&mut setter, &[b"SET", format!("k{i}").as_bytes(), &value]),
            "+OK"
        );
    }
    // Heap, not the data files' pages the replays map in (page cache,
    // shared, and counted in the peak RSS).
    let baseline = server.status_kib("RssAnon:") * 1024;
    let watchers: Vec<TcpStream> = (0..40)
        .map(|_| unread_watch(&server, "?from_seq=0"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut highest = baseline;
    while metric(&server, "bitcask_watchers_cut_total") < 40 {
        assert!(
            Instant::now() < deadline,
            "the unread watchers were not cut off"
        );
        highest = highest.max(server.status_kib("RssAnon:") * 1024);
        std::thread::sleep(Duration::from_millis(50));
    }
    let grown = highest.saturating_sub(baseline);
    // Unbounded, each would have queued the whole 32 MiB history (1.25
    // GiB); bounded, each holds its backlog (64 KiB), a chunk in flight
    // and the connection's buffer (64 KiB), plus what the allocator keeps.
    assert!(
        grown < 64 * MIB,
        "40 unread watchers of a 32 MiB history grew the server by {} MiB",
        grown / MIB
    );
    assert_eq!(
        metric(&server, "bitcask_watchers"),
        0,
        "their places are given back"
    );
    for mut watcher in watchers {
        assert!(
            closed_within(&mut watcher, Duration::from_secs(10)),
            "a cut watcher's connection is closed"
        );
    }
    assert_eq!(server.get("/health").0, 200);
}

// 16. A thousand idle watchers (the default cap) cost little each, and
// the next one is turned away.
#[test]
fn a_thousand_idle_watchers_cost_little_and_the_next_is_turned_away() {
    raise_own_fd_limit();
    let server = Server::start(&[]);
    let before = server.status_kib("VmRSS:");
    let mut watchers = Vec::new();
    for _ in 0..1000 {
        watchers.push(unread_watch(&server, ""));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&server, "bitcask_watchers") < 1000 {
        assert!(Instant::now() < deadline, "the watchers did not all start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let per_watcher = (server.status_kib("VmRSS:").saturating_sub(before)) * 1024 / 1000;
    println!(
        "resident memory per idle watcher: {} KiB",
        per_watcher / 1024
    );
    assert!(
        per_watcher < 256 * 1024,
        "an idle watcher costs {} KiB",
        per_watcher / 1024
    );
    let (status, _) = server.get("/watch?format=json");
    assert_eq!(status, 503, "the 1,001st watcher is turned away");
    // A write wakes them all and the server still answers.
    let mut setter = server.resp();
    assert_eq!(ask(&mut setter, &[b"SET", b"k", b"v"]), "+OK");
    assert_eq!(server.get("/health").0, 200);
}
