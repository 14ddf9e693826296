//! The `bitcask-server` binary as an operator runs it: settings errors,
//! JSON logs, and a restart after SIGTERM that keeps every write.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_bitcask-server");

/// A running server process, killed if a test fails half-way.
struct Proc {
    child: Child,
    addr: String,
    /// Every log line so far.
    logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary on a free port; learns the port from its JSON log.
fn start(dir: &std::path::Path) -> Proc {
    start_command(Command::new(BIN), dir, &[])
}

/// Starts `command` (the binary, or a shell that execs it) with the
/// standard flags, `dir` and `extra` flags.
fn start_command(mut command: Command, dir: &std::path::Path, extra: &[&str]) -> Proc {
    let mut child = command
        .args(["--port", "0", "--log-format", "json", "--data-dir"])
        .arg(dir)
        .args(extra)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn server");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = std::sync::Arc::clone(&logs);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(mut logs) = sink.lock() {
                logs.push(line.clone());
            }
            if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
                && event["message"] == "bitcask-server starting"
                && let Some(addr) = event["http"].as_str()
            {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server logs the address it listens on");
    let proc = Proc { child, addr, logs };
    wait_healthy(&proc);
    proc
}

fn wait_healthy(p: &Proc) {
    let rt = runtime();
    let url = format!("http://{}/health", p.addr);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = rt.block_on(async { reqwest::get(&url).await.ok().map(|r| r.status()) });
        if status.is_some_and(|s| s == 200) {
            return;
        }
        assert!(Instant::now() < deadline, "server never became healthy");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `GET /kv/{key}` as JSON (the seed's `{"key", "value", "found"}`).
async fn get_json(client: &reqwest::Client, p: &Proc, key: &str) -> serde_json::Value {
    client
        .get(format!("http://{}/kv/{key}", p.addr))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn sigterm(p: &mut Proc) -> std::process::ExitStatus {
    // SAFETY: sending a signal to our own child, whose pid we hold.
    #[allow(unsafe_code)]
    let sent = unsafe { libc::kill(p.child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(sent, 0);
    p.child.wait().expect("wait")
}

#[test]
fn writes_survive_a_sigterm_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime();
    let client = reqwest::Client::new();
    let mut p = start(dir.path());
    rt.block_on(async {
        for i in 0..100 {
            let r = client
                .put(format!("http://{}/kv/key-{i}", p.addr))
                .json(&serde_json::json!({"value": format!("value-{i}")}))
                .send()
                .await
                .expect("put");
            assert_eq!(r.status(), 200);
        }
    });
    // Every answer is logged as one JSON line with the request id, method,
    // path, status and latency.
    rt.block_on(async {
        client
            .get(format!("http://{}/kv/key-1", p.addr))
            .header("x-request-id", "log-check-1")
            .send()
            .await
            .expect("get");
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let found = p
            .logs
            .lock()
            .expect("logs")
            .iter()
            .find(|l| l.contains("log-check-1"))
            .cloned();
        if let Some(line) = found {
            break line;
        }
        assert!(Instant::now() < deadline, "no log line for the request");
        std::thread::sleep(Duration::from_millis(20));
    };
    let event: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(event["status"], 200, "{line}");
    assert!(event["latency_us"].is_u64(), "{line}");
    assert_eq!(event["span"]["method"], "GET", "{line}");
    assert_eq!(event["span"]["path"], "/kv/key-1", "{line}");

    let status = sigterm(&mut p);
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");

    let p = start(dir.path());
    rt.block_on(async {
        for i in 0..100 {
            let body = client
                .get(format!("http://{}/kv/key-{i}", p.addr))
                .send()
                .await
                .expect("get")
                .text()
                .await
                .expect("body");
            assert_eq!(
                body,
                format!(r#"{{"key":"key-{i}","value":"value-{i}","found":true}}"#)
            );
        }
    });
}

#[test]
fn bad_settings_exit_2_with_a_reason() {
    let out = Command::new(BIN)
        .args(["--sync", "sometimes"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sync"), "{stderr}");
    // A bad value from the environment is named by its variable, not by a
    // flag nobody typed.
    let out = Command::new(BIN)
        .env("BITCASK_MAX_FILE_SIZE", "lots")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("BITCASK_MAX_FILE_SIZE") && stderr.contains("lots"),
        "{stderr}"
    );
    assert!(!stderr.contains("--max-file-size"), "{stderr}");
    // A flag's bad value is still named by the flag.
    let out = Command::new(BIN)
        .env("BITCASK_MAX_FILE_SIZE", "1MiB")
        .args(["--max-file-size", "lots"])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-file-size"));
}

#[test]
fn help_documents_every_setting() {
    let out = Command::new(BIN).arg("--help").output().expect("run");
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--host",
        "--port",
        "--data-dir",
        "--sync",
        "--config",
        "--auth-token",
        "--max-value-size",
        "--log-format",
        "--max-connections",
        "--idle-timeout",
        "--body-min-rate",
        "--allowed-hosts",
        "--resp-idle-timeout",
        "--resp-max-output",
        "--auth-token-file",
        "BITCASK_DATA_DIR",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    assert!(
        help.contains("process list"),
        "--help warns that --auth-token shows in ps"
    );
    assert!(
        help.contains("[env: BITCASK_DATA_DIR]") && !help.contains("BITCASK_DATA_DIR="),
        "variables by name, without the value of whoever asks for help"
    );
    assert!(help.contains("[default: 256MiB]"), "sizes shown with units");
}

#[test]
fn a_second_server_on_the_same_directory_exits_with_the_lock_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _first = start(dir.path());
    let out = Command::new(BIN)
        .args(["--port", "0", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("locked"), "{stderr}");
    // Said once: not by the open, then the server, then the binary.
    assert_eq!(stderr.matches("locked").count(), 1, "{stderr}");
}

#[test]
fn flags_beat_the_environment_which_beats_the_file() {
    // Each layer gives `sync` an invalid value of its own; only the winner's
    // is read, so the error names the winning layer's value, and the run
    // stops right after reading the settings.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("server.toml");
    std::fs::write(&file, "sync = \"from-the-file\"\n").expect("write");
    let run = |env_sync: Option<&str>, flag_sync: Option<&str>| {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config").arg(&file);
        if let Some(sync) = flag_sync {
            cmd.args(["--sync", sync]);
        }
        match env_sync {
            Some(sync) => cmd.env("BITCASK_SYNC", sync),
            None => cmd.env_remove("BITCASK_SYNC"),
        };
        let out = cmd.output().expect("run");
        assert_eq!(out.status.code(), Some(2));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let file_wins = run(None, None);
    assert!(file_wins.contains("from-the-file"), "{file_wins}");
    let env_wins = run(Some("from-the-env"), None);
    assert!(
        env_wins.contains("from-the-env") && !env_wins.contains("from-the-file"),
        "{env_wins}"
    );
    let flag_wins = run(Some("from-the-env"), Some("from-the-flag"));
    assert!(
        flag_wins.contains("from-the-flag") && !flag_wins.contains("from-the-env"),
        "{flag_wins}"
    );
}

#[test]
fn a_full_disk_answers_507_keeps_serving_reads_and_loses_nothing_acknowledged() {
    // A file-size limit (ulimit -f, in 512-byte blocks; SIGXFSZ ignored so
    // the write fails with EFBIG instead of killing the process) stands in
    // for a full disk: the engine sees the same failed, partial write.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut shell = Command::new("sh");
    shell.args(["-c", "trap '' XFSZ; ulimit -f 256; exec \"$0\" \"$@\"", BIN]);
    let p = start_command(shell, dir.path(), &["--sync", "always"]);
    let rt = runtime();
    let client = reqwest::Client::new();
    let value = "v".repeat(1000);
    let (acknowledged, refused) = rt.block_on(async {
        let mut acknowledged = Vec::new();
        for i in 0..400 {
            let r = client
                .put(format!("http://{}/kv/key-{i}", p.addr))
                .json(&serde_json::json!({ "value": value }))
                .send()
                .await
                .expect("put");
            if r.status() == 200 {
                acknowledged.push(i);
                continue;
            }
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.expect("json detail");
            return (acknowledged, Some((status, body)));
        }
        (acknowledged, None)
    });
    let (status, body) = refused.expect("the limit (128 KiB) is reached within 400 KB of puts");
    assert_eq!(status, 507, "{body}");
    // What happened, not where (the path goes to the log).
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("I/O error") && !d.contains(".data")),
        "{body}"
    );
    assert!(acknowledged.len() > 50, "{}", acknowledged.len());
    // Reads go on.
    rt.block_on(async {
        for i in [0, acknowledged.len() / 2, acknowledged.len() - 1] {
            let r = client
                .get(format!("http://{}/kv/key-{i}", p.addr))
                .send()
                .await
                .expect("get");
            assert_eq!(r.status(), 200, "key-{i}");
        }
        let health = client
            .get(format!("http://{}/health", p.addr))
            .send()
            .await
            .expect("health");
        assert_eq!(health.status(), 200);
    });
    drop(p);
    // Without the limit, every acknowledged write is there.
    let p = start(dir.path());
    rt.block_on(async {
        for &i in &acknowledged {
            let body = get_json(&client, &p, &format!("key-{i}")).await;
            assert_eq!(body["found"], true, "key-{i}");
            assert_eq!(body["value"].as_str().map(str::len), Some(1000), "key-{i}");
        }
    });
}

#[test]
fn a_failed_fsync_answers_503_refuses_writes_keeps_reads_and_is_never_reported_durable() {
    // The engine's failpoints (feature `failpoints`, on for this crate's
    // tests) make the server process's third fsync fail.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = Command::new(BIN);
    command.env("BITCASK_FAILPOINTS", "fsync@3");
    let p = start_command(command, dir.path(), &["--sync", "always"]);
    let rt = runtime();
    let client = reqwest::Client::new();
    let put = |key: &str| {
        let request = client
            .put(format!("http://{}/kv/{key}", p.addr))
            .json(&serde_json::json!({"value": key}))
            .send();
        rt.block_on(async {
            let r = request.await.expect("put");
            let status = r.status().as_u16();
            (status, r.text().await.expect("body"))
        })
    };
    assert_eq!(put("k1").0, 200);
    assert_eq!(put("k2").0, 200);
    let (status, detail) = put("k3");
    assert_eq!(status, 503, "{detail}");
    assert!(
        detail.contains("injected failure") && detail.contains("restarted"),
        "{detail}"
    );
    // Writes stay refused: the failed fsync is not forgotten.
    let (status, detail) = put("k4");
    assert_eq!(status, 503, "{detail}");
    let batch = rt.block_on(async {
        client
            .post(format!("http://{}/batch", p.addr))
            .json(&serde_json::json!({"ops": [{"op": "put", "key": "k5", "value": "v"}]}))
            .send()
            .await
            .expect("batch")
            .status()
    });
    assert_eq!(batch, 503);
    // Reads go on.
    rt.block_on(async {
        let body = get_json(&client, &p, "k1").await;
        assert_eq!(body["value"], "k1");
    });
    drop(p);
    // After a restart (no failpoint): the acknowledged writes are there, the
    // refused ones are not.
    let p = start(dir.path());
    rt.block_on(async {
        for (key, found) in [("k1", true), ("k2", true), ("k4", false), ("k5", false)] {
            let body = get_json(&client, &p, key).await;
            assert_eq!(body["found"], found, "{key}");
        }
        let r = client
            .put(format!("http://{}/kv/k6", p.addr))
            .json(&serde_json::json!({"value": "v"}))
            .send()
            .await
            .expect("put");
        assert_eq!(r.status(), 200, "writable again after the restart");
    });
}

/// Waits until a log line contains `text`; returns it.
fn wait_for_log(p: &Proc, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = p
            .logs
            .lock()
            .expect("logs")
            .iter()
            .find(|l| l.contains(text))
            .cloned();
        if let Some(line) = found {
            return line;
        }
        assert!(Instant::now() < deadline, "no log line with {text:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (up to 20 s) for the process to exit.
fn wait_exit(p: &mut Proc) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = p.child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "the server did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(p: &Proc, signal: libc::c_int) {
    // SAFETY: sending a signal to our own child, whose pid we hold.
    #[allow(unsafe_code)]
    let sent = unsafe { libc::kill(p.child.id() as libc::pid_t, signal) };
    assert_eq!(sent, 0);
}

/// Waits until the server counts one request in flight besides the
/// `/metrics` request that asks.
fn wait_in_flight(p: &Proc, rt: &tokio::runtime::Runtime) {
    let url = format!("http://{}/metrics", p.addr);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = rt.block_on(async { reqwest::get(&url).await.expect("metrics").text().await });
        if text
            .expect("body")
            .contains("bitcask_http_requests_in_flight 2")
        {
            return;
        }
        assert!(Instant::now() < deadline, "the request never got in flight");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Opens a PUT whose body never finishes: a request in flight for as long
/// as the connection stays open.
fn unfinished_put(p: &Proc) -> std::net::TcpStream {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(&p.addr).expect("connect");
    write!(
        stream,
        "PUT /kv/slow HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         content-length: 1000\r\n\r\n{{\"value\":\"",
        p.addr
    )
    .expect("write");
    stream
}

#[test]
fn the_start_says_what_the_server_does_and_where_each_setting_came_from() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("server.toml");
    std::fs::write(&file, "max_key_size = 512\n").expect("write");
    let data = dir.path().join("data");
    let mut command = Command::new(BIN);
    command.env("BITCASK_SYNC", "always");
    let extra = [
        "--config",
        file.to_str().expect("utf-8"),
        "--auth-token",
        "t0ken",
    ];
    let p = start_command(command, &data, &extra);
    let start: serde_json::Value =
        serde_json::from_str(&wait_for_log(&p, "bitcask-server starting")).expect("json");
    assert_eq!(start["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(start["auth"], "on");
    assert_eq!(start["sync"], "always");
    assert_eq!(start["resp"], "off");
    let shown = start["data_dir"].as_str().expect("data_dir");
    assert!(std::path::Path::new(shown).is_absolute(), "{shown}");
    let limits: serde_json::Value =
        serde_json::from_str(&wait_for_log(&p, "\"limits\"")).expect("json");
    assert_eq!(limits["max_key_size"], 512);
    assert_eq!(limits["shutdown_timeout"], "30s");
    let given = wait_for_log(&p, "settings from flags");
    for expected in [
        "max_key_size=512 (file)",
        "sync=always (env)",
        "auth_token=<hidden> (flag)",
        "port=0 (flag)",
    ] {
        assert!(given.contains(expected), "{expected}: {given}");
    }
    assert!(
        !given.contains("t0ken"),
        "the token is never logged: {given}"
    );
    let open: serde_json::Value =
        serde_json::from_str(&wait_for_log(&p, "store open")).expect("json");
    assert!(open["took"].is_string(), "{open}");
}

#[test]
fn shutdown_waits_for_requests_up_to_its_time_out_and_a_second_signal_stops_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The slow body is never cut off by the server's own limits.
    let quiet = ["--body-min-rate", "0", "--request-timeout", "10m"];
    let rt = runtime();
    let client = reqwest::Client::new();

    // A short shutdown time-out: one signal, and the server gives up on the
    // unfinished request by itself, keeping what was acknowledged.
    let mut extra = quiet.to_vec();
    extra.extend(["--shutdown-timeout", "1s"]);
    let mut p = start_command(Command::new(BIN), dir.path(), &extra);
    let put = |p: &Proc, key: &str| {
        let request = client
            .put(format!("http://{}/kv/{key}", p.addr))
            .json(&serde_json::json!({"value": key}))
            .send();
        rt.block_on(async { request.await.expect("put").status() })
    };
    assert_eq!(put(&p, "before-timeout"), 200);
    let _slow = unfinished_put(&p);
    wait_in_flight(&p, &rt);
    signal(&p, libc::SIGTERM);
    wait_for_log(&p, "waiting for 1 request(s) in flight (up to 1s)");
    wait_for_log(
        &p,
        "gave up waiting for requests after the shutdown time-out (1s)",
    );
    assert!(wait_exit(&mut p).success());

    // The default time-out (30 s), and a second signal: no waiting.
    let mut p = start_command(Command::new(BIN), dir.path(), &quiet);
    assert_eq!(put(&p, "before-second-signal"), 200);
    let _slow = unfinished_put(&p);
    wait_in_flight(&p, &rt);
    signal(&p, libc::SIGINT);
    wait_for_log(&p, "waiting for 1 request(s) in flight (up to 30s)");
    signal(&p, libc::SIGINT);
    wait_for_log(&p, "second signal");
    let status = wait_exit(&mut p);
    assert!(status.success(), "{status:?}");
    // Each failure or stop is said once: one line says how it stopped.
    let logs = p.logs.lock().expect("logs").clone();
    assert_eq!(logs.iter().filter(|l| l.contains("\"stopped\"")).count(), 1);

    let p = start(dir.path());
    rt.block_on(async {
        for key in ["before-timeout", "before-second-signal"] {
            let body = get_json(&client, &p, key).await;
            assert_eq!(body["found"], true, "{key}");
        }
        assert_eq!(get_json(&client, &p, "slow").await["found"], false);
    });
}

/// The RESP address a server logged.
fn resp_addr(p: &Proc) -> String {
    let line = wait_for_log(p, "RESP listener accepting");
    let event: serde_json::Value = serde_json::from_str(&line).expect("json log");
    event["addr"].as_str().expect("addr").to_string()
}

#[test]
fn a_transaction_survives_a_kill_9_whole_or_not_at_all() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = start_command(Command::new(BIN), dir.path(), &["--resp-port", "0"]);
    let addr = resp_addr(&p);
    // Transactions of three 4 KiB SETs each, pipelined as fast as the
    // server takes them; a second thread counts the EXEC replies.
    let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
    let mut replies = stream.try_clone().expect("clone");
    let acknowledged = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&acknowledged);
    let reader = std::thread::spawn(move || {
        // Each EXEC's reply is "*3\r\n+OK\r\n+OK\r\n+OK\r\n" after five
        // simple replies (MULTI's OK and three QUEUED): count the arrays.
        let mut buf = [0u8; 65536];
        while let Ok(n) = replies.read(&mut buf) {
            if n == 0 {
                break;
            }
            let arrays = buf[..n].iter().filter(|&&b| b == b'*').count();
            counter.fetch_add(arrays, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let value = "v".repeat(4096);
    let writer = std::thread::spawn(move || {
        for i in 0.. {
            let mut tx = String::from("MULTI\r\n");
            for part in ["a", "b", "c"] {
                tx.push_str(&format!(
                    "*3\r\n$3\r\nSET\r\n${}\r\n{part}{i}\r\n${}\r\n{value}\r\n",
                    format!("{part}{i}").len(),
                    value.len()
                ));
            }
            tx.push_str("EXEC\r\n");
            if stream.write_all(tx.as_bytes()).is_err() {
                return i;
            }
        }
        unreachable!()
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while acknowledged.load(std::sync::atomic::Ordering::Relaxed) < 200 {
        assert!(Instant::now() < deadline, "transactions too slow");
        std::thread::sleep(Duration::from_millis(5));
    }
    p.child.kill().expect("SIGKILL");
    p.child.wait().expect("wait");
    let sent = writer.join().expect("writer");
    let _ = reader.join();
    let acked = acknowledged.load(std::sync::atomic::Ordering::Relaxed);

    let p = start_command(Command::new(BIN), dir.path(), &["--resp-port", "0"]);
    let client = redis::Client::open(format!("redis://{}/", resp_addr(&p))).expect("client");
    let mut con = client.get_connection().expect("connect");
    let mut whole = 0;
    for i in 0..sent {
        let present: i64 = redis::cmd("EXISTS")
            .arg(format!("a{i}"))
            .arg(format!("b{i}"))
            .arg(format!("c{i}"))
            .query(&mut con)
            .expect("EXISTS");
        assert!(
            present == 0 || present == 3,
            "transaction {i} survived in part: {present} of 3 keys"
        );
        if present == 3 {
            whole += 1;
        } else {
            assert!(i >= acked, "acknowledged transaction {i} lost");
        }
    }
    assert!(whole >= acked, "{whole} whole, {acked} acknowledged");
}
