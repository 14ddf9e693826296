//! The RESP listener with the `redis` crate as client (every command,
//! pipelining, expiry, errors) and with raw sockets (pipelining on the wire,
//! malformed and hostile input). The real `redis-cli` and `redis-benchmark`
//! are driven by `scripts/redis-cli-check.sh` (run by `.ci/run`), so that
//! this suite needs nothing but cargo.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bitcask_server::config::Config;
use bitcask_server::server::Background;
use redis::{Connection, RedisResult, Value};

/// A server with the RESP listener on, in a fresh directory.
struct Server {
    server: Option<Background>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(flags: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut argv = vec![
            "bitcask-server".to_string(),
            "--port".into(),
            "0".into(),
            "--resp-port".into(),
            "0".into(),
            "--data-dir".into(),
            dir.path().to_str().expect("utf-8").into(),
        ];
        argv.extend(flags.iter().map(|f| f.to_string()));
        let config = Config::from_args(argv).expect("config");
        let server = Background::start(config).expect("start");
        assert!(server.wait_until_open(Duration::from_secs(30)));
        Self {
            server: Some(server),
            _dir: dir,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server
            .as_ref()
            .and_then(Background::resp_addr)
            .expect("RESP listener on")
    }

    fn http_url(&self) -> String {
        self.server.as_ref().expect("running").url()
    }

    fn connect(&self) -> Connection {
        let client = redis::Client::open(format!("redis://{}/", self.addr())).expect("client");
        client.get_connection().expect("connect")
    }

    fn raw(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr()).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stream
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().expect("clean stop");
        }
    }
}

fn cmd(con: &mut Connection, args: &[&[u8]]) -> RedisResult<Value> {
    let mut c = redis::cmd(std::str::from_utf8(args[0]).expect("name"));
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con)
}

/// Runs a command and returns its reply, failing the test on an error reply.
fn ok(con: &mut Connection, args: &[&str]) -> Value {
    let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    cmd(con, &bytes).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn err(con: &mut Connection, args: &[&str]) -> String {
    let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    match cmd(con, &bytes) {
        Err(e) => e.to_string(),
        Ok(v) => panic!("{args:?} should fail, got {v:?}"),
    }
}

fn int(v: Value) -> i64 {
    match v {
        Value::Int(n) => n,
        other => panic!("not an integer: {other:?}"),
    }
}

fn text(v: Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8(b).expect("utf-8")),
        Value::SimpleString(s) => Some(s),
        Value::Okay => Some("OK".into()),
        Value::Nil => None,
        other => panic!("not a string: {other:?}"),
    }
}

fn strings(v: Value) -> Vec<Option<String>> {
    match v {
        Value::Array(items) => items.into_iter().map(text).collect(),
        other => panic!("not an array: {other:?}"),
    }
}

#[test]
fn connection_and_server_commands() {
    let server = Server::start(&[]);
    let mut con = server.connect();
    assert_eq!(text(ok(&mut con, &["PING"])).as_deref(), Some("PONG"));
    assert_eq!(text(ok(&mut con, &["PING", "hi"])).as_deref(), Some("hi"));
    assert_eq!(text(ok(&mut con, &["ECHO", "a b"])).as_deref(), Some("a b"));
    ok(&mut con, &["SELECT", "0"]);
    assert!(err(&mut con, &["SELECT", "1"]).contains("out of range"));
    ok(&mut con, &["CLIENT", "SETNAME", "tester"]);
    assert_eq!(
        text(ok(&mut con, &["CLIENT", "GETNAME"])).as_deref(),
        Some("tester")
    );
    ok(&mut con, &["CLIENT", "SETINFO", "lib-name", "x"]);
    assert!(int(ok(&mut con, &["CLIENT", "ID"])) > 0);
    let count = int(ok(&mut con, &["COMMAND", "COUNT"]));
    assert!(count >= 35);
    match ok(&mut con, &["COMMAND"]) {
        Value::Array(entries) => assert_eq!(entries.len() as i64, count),
        other => panic!("{other:?}"),
    }
    match ok(&mut con, &["COMMAND", "INFO", "get", "nosuch"]) {
        Value::Array(entries) => {
            assert!(matches!(&entries[0], Value::Array(e) if e.len() == 6));
            assert_eq!(entries[1], Value::Nil);
        }
        other => panic!("{other:?}"),
    }
    ok(&mut con, &["COMMAND", "DOCS"]);
    let config = strings(ok(&mut con, &["CONFIG", "GET", "appendonly"]));
    assert_eq!(config, vec![Some("appendonly".into()), Some("yes".into())]);
    let all = strings(ok(&mut con, &["CONFIG", "GET", "*"]));
    assert_eq!(all.len(), 16, "{all:?}");
    // Set to the value it has (as clients do defensively): accepted.
    assert_eq!(ok(&mut con, &["CONFIG", "SET", "save", ""]), Value::Okay);
    assert!(err(&mut con, &["CONFIG", "SET", "save", "900 1"]).contains("no snapshots"));
    let info = text(ok(&mut con, &["INFO"])).expect("info");
    for section in [
        "# Server",
        "# Clients",
        "# Persistence",
        "# Stats",
        "# Keyspace",
    ] {
        assert!(info.contains(section), "{info}");
    }
    assert!(info.contains("redis_version:"));
    let keyspace = text(ok(&mut con, &["INFO", "keyspace"])).expect("info");
    assert!(!keyspace.contains("# Server"));
    ok(&mut con, &["SET", "plain", "v"]);
    ok(&mut con, &["SET", "session", "v", "EX", "100"]);
    let keyspace = text(ok(&mut con, &["INFO", "keyspace"])).expect("info");
    assert!(keyspace.contains("db0:keys=2,expires=1,"), "{keyspace}");
    ok(&mut con, &["PERSIST", "session"]);
    let keyspace = text(ok(&mut con, &["INFO", "keyspace"])).expect("info");
    assert!(keyspace.contains("db0:keys=2,expires=0,"), "{keyspace}");
    ok(&mut con, &["DEL", "plain", "session"]);
    // HELLO switches to RESP3 and back.
    match ok(&mut con, &["HELLO", "3"]) {
        Value::Map(pairs) => {
            assert!(pairs.iter().any(|(k, v)| {
                text(k.clone()).as_deref() == Some("proto") && *v == Value::Int(3)
            }))
        }
        other => panic!("expected a RESP3 map, got {other:?}"),
    }
    assert_eq!(ok(&mut con, &["GET", "missing"]), Value::Nil);
    assert!(matches!(ok(&mut con, &["HELLO", "2"]), Value::Array(_)));
    assert!(err(&mut con, &["HELLO", "4"]).contains("NOPROTO"));
    assert!(err(&mut con, &["AUTH", "x"]).contains("without any password"));
    // QUIT answers OK and closes.
    let mut raw = server.raw();
    raw.write_all(b"QUIT\r\n").expect("write");
    let mut reply = Vec::new();
    raw.read_to_end(&mut reply).expect("read to the close");
    assert_eq!(reply, b"+OK\r\n");
}

#[test]
fn string_commands_with_their_options() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    ok(&mut c, &["SET", "k", "v1"]);
    assert_eq!(text(ok(&mut c, &["GET", "k"])).as_deref(), Some("v1"));
    // NX / XX / GET
    assert_eq!(ok(&mut c, &["SET", "k", "v2", "NX"]), Value::Nil);
    assert_eq!(ok(&mut c, &["SET", "new", "x", "XX"]), Value::Nil);
    assert_eq!(ok(&mut c, &["EXISTS", "new"]), Value::Int(0));
    assert_eq!(
        text(ok(&mut c, &["SET", "k", "v2", "XX", "GET"])).as_deref(),
        Some("v1")
    );
    assert_eq!(ok(&mut c, &["SET", "fresh", "1", "GET"]), Value::Nil);
    assert_eq!(
        text(ok(&mut c, &["SET", "k", "v3", "NX", "GET"])).as_deref(),
        Some("v2")
    );
    assert_eq!(text(ok(&mut c, &["GET", "k"])).as_deref(), Some("v2"));
    assert!(err(&mut c, &["SET", "k", "v", "NX", "XX"]).contains("syntax"));
    assert!(err(&mut c, &["SET", "k", "v", "EX", "0"]).contains("invalid expire"));
    assert!(err(&mut c, &["SET", "k", "v", "EX", "10", "PX", "5"]).contains("syntax"));
    assert!(err(&mut c, &["SET", "k", "v", "BOGUS"]).contains("syntax"));
    assert_eq!(ok(&mut c, &["SETNX", "k", "x"]), Value::Int(0));
    assert_eq!(ok(&mut c, &["SETNX", "nx", "x"]), Value::Int(1));
    // GETDEL, DEL, EXISTS, TYPE, STRLEN, MGET, MSET
    assert_eq!(text(ok(&mut c, &["GETDEL", "nx"])).as_deref(), Some("x"));
    assert_eq!(ok(&mut c, &["GETDEL", "nx"]), Value::Nil);
    ok(&mut c, &["MSET", "a", "1", "b", "2", "c", "3"]);
    assert!(err(&mut c, &["MSET", "a", "1", "b"]).contains("wrong number"));
    assert_eq!(
        strings(ok(&mut c, &["MGET", "a", "nope", "c"])),
        vec![Some("1".into()), None, Some("3".into())]
    );
    assert_eq!(ok(&mut c, &["EXISTS", "a", "a", "nope"]), Value::Int(2));
    assert_eq!(ok(&mut c, &["DEL", "a", "b", "nope"]), Value::Int(2));
    assert_eq!(text(ok(&mut c, &["TYPE", "c"])).as_deref(), Some("string"));
    assert_eq!(text(ok(&mut c, &["TYPE", "a"])).as_deref(), Some("none"));
    assert_eq!(ok(&mut c, &["STRLEN", "k"]), Value::Int(2));
    assert_eq!(ok(&mut c, &["STRLEN", "nope"]), Value::Int(0));
    // APPEND, INCR family
    assert_eq!(ok(&mut c, &["APPEND", "log", "ab"]), Value::Int(2));
    assert_eq!(ok(&mut c, &["APPEND", "log", "cd"]), Value::Int(4));
    assert_eq!(text(ok(&mut c, &["GET", "log"])).as_deref(), Some("abcd"));
    assert_eq!(ok(&mut c, &["INCR", "n"]), Value::Int(1));
    assert_eq!(ok(&mut c, &["INCRBY", "n", "41"]), Value::Int(42));
    assert_eq!(ok(&mut c, &["DECR", "n"]), Value::Int(41));
    assert_eq!(ok(&mut c, &["DECRBY", "n", "-9"]), Value::Int(50));
    assert!(err(&mut c, &["INCR", "log"]).contains("not an integer"));
    assert!(err(&mut c, &["INCRBY", "n", "x"]).contains("not an integer"));
    ok(&mut c, &["SET", "max", &i64::MAX.to_string()]);
    assert!(err(&mut c, &["INCR", "max"]).contains("overflow"));
    // Binary keys and values.
    let key = [0u8, 255, b'\r', b'\n'];
    let value = [1u8, 0, 2, b'\n', 255];
    cmd(&mut c, &[b"SET", &key, &value]).expect("set binary");
    assert_eq!(
        cmd(&mut c, &[b"GET", &key]).expect("get"),
        Value::BulkString(value.to_vec())
    );
    // Wrong arity, unknown command: an error, and the connection goes on.
    assert!(err(&mut c, &["GET"]).contains("wrong number of arguments for 'get'"));
    assert!(err(&mut c, &["HSET", "h", "f", "v"]).contains("unknown command 'HSET'"));
    assert_eq!(text(ok(&mut c, &["PING"])).as_deref(), Some("PONG"));
}

#[test]
fn expiry_commands_and_expiry_taking_effect() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    ok(&mut c, &["SET", "k", "v"]);
    assert_eq!(ok(&mut c, &["TTL", "k"]), Value::Int(-1));
    assert_eq!(ok(&mut c, &["TTL", "nope"]), Value::Int(-2));
    assert_eq!(ok(&mut c, &["PTTL", "nope"]), Value::Int(-2));
    assert_eq!(ok(&mut c, &["EXPIRE", "k", "100", "XX"]), Value::Int(0));
    assert_eq!(ok(&mut c, &["EXPIRE", "k", "100", "NX"]), Value::Int(1));
    assert_eq!(ok(&mut c, &["EXPIRE", "k", "50", "GT"]), Value::Int(0));
    assert_eq!(ok(&mut c, &["EXPIRE", "k", "200", "GT"]), Value::Int(1));
    assert_eq!(ok(&mut c, &["EXPIRE", "k", "300", "LT"]), Value::Int(0));
    let ttl = int(ok(&mut c, &["TTL", "k"]));
    assert!((199..=200).contains(&ttl), "{ttl}");
    let pttl = int(ok(&mut c, &["PTTL", "k"]));
    assert!(pttl > 198_000 && pttl <= 200_000, "{pttl}");
    assert_eq!(text(ok(&mut c, &["GET", "k"])).as_deref(), Some("v"));
    // APPEND and INCR keep the expiry; SET without options clears it.
    ok(&mut c, &["APPEND", "k", "w"]);
    assert!(int(ok(&mut c, &["TTL", "k"])) > 0);
    assert_eq!(ok(&mut c, &["PERSIST", "k"]), Value::Int(1));
    assert_eq!(ok(&mut c, &["PERSIST", "k"]), Value::Int(0));
    assert_eq!(ok(&mut c, &["TTL", "k"]), Value::Int(-1));
    ok(&mut c, &["SET", "k", "v", "EX", "100"]);
    ok(&mut c, &["SET", "k", "v2", "KEEPTTL"]);
    assert!(int(ok(&mut c, &["TTL", "k"])) > 0);
    ok(&mut c, &["SET", "k", "v3"]);
    assert_eq!(ok(&mut c, &["TTL", "k"]), Value::Int(-1));
    // Absolute times; one in the past deletes.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert_eq!(
        ok(&mut c, &["EXPIREAT", "k", &(now + 1000).to_string()]),
        Value::Int(1)
    );
    assert!(int(ok(&mut c, &["TTL", "k"])) > 990);
    ok(
        &mut c,
        &["SET", "at", "v", "PXAT", &((now + 1000) * 1000).to_string()],
    );
    assert!(int(ok(&mut c, &["TTL", "at"])) > 990);
    assert_eq!(ok(&mut c, &["PEXPIREAT", "at", "1000"]), Value::Int(1));
    assert_eq!(ok(&mut c, &["EXISTS", "at"]), Value::Int(0));
    assert_eq!(ok(&mut c, &["EXPIRE", "k", "0"]), Value::Int(1));
    assert_eq!(ok(&mut c, &["GET", "k"]), Value::Nil);
    assert_eq!(ok(&mut c, &["EXPIRE", "k", "10"]), Value::Int(0));
    // Expiry takes effect.
    ok(&mut c, &["SET", "short", "v", "PX", "100"]);
    ok(&mut c, &["SET", "short2", "v"]);
    assert_eq!(ok(&mut c, &["PEXPIRE", "short2", "100"]), Value::Int(1));
    std::thread::sleep(Duration::from_millis(250));
    assert_eq!(ok(&mut c, &["GET", "short"]), Value::Nil);
    assert_eq!(ok(&mut c, &["GET", "short2"]), Value::Nil);
    assert_eq!(ok(&mut c, &["TTL", "short"]), Value::Int(-2));
    assert!(err(&mut c, &["EXPIRE", "k", "10", "SOON"]).contains("Unsupported option"));
}

#[test]
fn keys_scan_and_dbsize() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    let mut pipe = redis::pipe();
    for i in 0..300 {
        pipe.cmd("SET").arg(format!("user:{i:03}")).arg(i).ignore();
        pipe.cmd("SET").arg(format!("item:{i:03}")).arg(i).ignore();
    }
    pipe.query::<()>(&mut c).expect("pipeline");
    assert_eq!(ok(&mut c, &["DBSIZE"]), Value::Int(600));
    let users = strings(ok(&mut c, &["KEYS", "user:*"]));
    assert_eq!(users.len(), 300);
    let some = strings(ok(&mut c, &["KEYS", "user:1[0-1]?"]));
    assert_eq!(some.len(), 20);
    assert_eq!(strings(ok(&mut c, &["KEYS", "nothing*"])).len(), 0);

    // A full scan returns every key exactly once, even across connections.
    let mut other = server.connect();
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor = "0".to_string();
    let mut calls = 0;
    loop {
        let con = if calls % 2 == 0 { &mut c } else { &mut other };
        calls += 1;
        let reply = ok(con, &["SCAN", &cursor, "COUNT", "37"]);
        let Value::Array(parts) = reply else {
            panic!("{reply:?}")
        };
        cursor = text(parts[0].clone()).expect("cursor");
        for key in strings(parts[1].clone()) {
            assert!(seen.insert(key.expect("key")), "a key came twice");
        }
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), 600);
    assert!(calls >= 600 / 37);
    // MATCH filters, and the redis crate's own scan iterator works.
    let items: Vec<String> = redis::cmd("SCAN")
        .cursor_arg(0)
        .arg("MATCH")
        .arg("item:2*")
        .arg("COUNT")
        .arg(50)
        .clone()
        .iter(&mut c)
        .expect("scan iter")
        .collect::<RedisResult<Vec<String>>>()
        .expect("scan");
    assert_eq!(items.len(), 100);
    assert!(err(&mut c, &["SCAN", "123456789"]).contains("invalid cursor"));
    assert!(err(&mut c, &["SCAN", "abc"]).contains("invalid cursor"));
    assert!(err(&mut c, &["SCAN", "0", "COUNT", "0"]).contains("syntax"));
    let Value::Array(parts) = ok(&mut c, &["SCAN", "0", "TYPE", "hash"]) else {
        panic!()
    };
    assert_eq!(strings(parts[1].clone()).len(), 0);
}

#[test]
fn pipelines_run_in_order_and_concurrent_incr_is_atomic() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        pipe.cmd("SET").arg(format!("p{i}")).arg(i);
        pipe.cmd("GET").arg(format!("p{i}"));
    }
    pipe.cmd("INCR").arg("p5");
    let replies: Vec<Value> = pipe.query(&mut c).expect("pipeline");
    assert_eq!(replies.len(), 2001);
    for i in 0..1000 {
        assert_eq!(replies[2 * i], Value::Okay);
        assert_eq!(
            replies[2 * i + 1],
            Value::BulkString(i.to_string().into_bytes())
        );
    }
    assert_eq!(replies[2000], Value::Int(6));

    // On the wire: three commands in one write, three replies.
    let mut raw = server.raw();
    raw.write_all(
        b"*3\r\n$3\r\nSET\r\n$1\r\nw\r\n$1\r\n1\r\n*2\r\n$4\r\nINCR\r\n$1\r\nw\r\nGET w\r\n",
    )
    .expect("write");
    let want = b"+OK\r\n:2\r\n$1\r\n2\r\n";
    let mut got = vec![0u8; want.len()];
    raw.read_exact(&mut got).expect("replies");
    assert_eq!(&got, want);

    let threads: Vec<_> = (0..4)
        .map(|_| {
            let mut con = server.connect();
            std::thread::spawn(move || {
                for _ in 0..250 {
                    let _: i64 = redis::cmd("INCR")
                        .arg("counter")
                        .query(&mut con)
                        .expect("incr");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    assert_eq!(
        text(ok(&mut c, &["GET", "counter"])).as_deref(),
        Some("1000")
    );
}

#[test]
fn auth_is_required_when_a_token_is_set_and_http_sees_the_same_store() {
    let server = Server::start(&["--auth-token", "s3cret"]);
    let mut c = server.connect();
    assert!(err(&mut c, &["GET", "k"]).contains("NOAUTH"));
    assert!(err(&mut c, &["PING"]).contains("NOAUTH"));
    assert!(err(&mut c, &["AUTH", "wrong"]).contains("WRONGPASS"));
    assert!(err(&mut c, &["AUTH", "admin", "s3cret"]).contains("WRONGPASS"));
    ok(&mut c, &["AUTH", "s3cret"]);
    ok(&mut c, &["SET", "shared", "from-resp"]);
    let mut c2 = server.connect();
    assert!(err(&mut c2, &["HELLO", "3"]).contains("NOAUTH"));
    assert!(matches!(
        ok(&mut c2, &["HELLO", "3", "AUTH", "default", "s3cret"]),
        Value::Map(_)
    ));
    assert_eq!(
        text(ok(&mut c2, &["GET", "shared"])).as_deref(),
        Some("from-resp")
    );
    // The URL form of the password works with the redis crate.
    let url = format!("redis://:s3cret@{}/", server.addr());
    let mut c3 = redis::Client::open(url)
        .expect("client")
        .get_connection()
        .expect("connect");
    assert_eq!(
        text(ok(&mut c3, &["GET", "shared"])).as_deref(),
        Some("from-resp")
    );

    // The HTTP API reads the same store.
    let addr = server.http_url().trim_start_matches("http://").to_string();
    let mut http = TcpStream::connect(&addr).expect("connect http");
    http.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        http,
        "GET /kv/shared HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer s3cret\r\nconnection: close\r\n\r\n"
    )
    .expect("request");
    let response = String::from_utf8_lossy(&read_all(&mut http)).into_owned();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""value":"from-resp""#), "{response}");
}

#[test]
fn flush_needs_the_flag() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    ok(&mut c, &["SET", "k", "v"]);
    assert!(err(&mut c, &["FLUSHDB"]).contains("--resp-allow-flush"));
    assert_eq!(ok(&mut c, &["DBSIZE"]), Value::Int(1));
    drop(server);

    let server = Server::start(&["--resp-allow-flush"]);
    let mut c = server.connect();
    let mut pipe = redis::pipe();
    for i in 0..25_000 {
        pipe.cmd("SET").arg(i).arg(i).ignore();
    }
    pipe.query::<()>(&mut c).expect("fill");
    ok(&mut c, &["FLUSHALL"]);
    assert_eq!(ok(&mut c, &["DBSIZE"]), Value::Int(0));
}

/// Reads until the peer closes or a read times out.
fn read_all(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[test]
fn malformed_input_is_answered_or_closed_and_nothing_is_written() {
    let server = Server::start(&["--max-value-size", "1000"]);
    let mut bystander = server.connect();
    ok(&mut bystander, &["SET", "before", "1"]);
    let hostile: &[&[u8]] = &[
        // wrong type byte inside an array
        b"*2\r\n$3\r\nSET\r\n:1\r\n",
        // bulk length that is not a number
        b"*1\r\n$abc\r\n",
        // negative bulk length
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$-7\r\nxx\r\n",
        // huge declared lengths
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$99999999999\r\n",
        b"*99999999999\r\n$3\r\nSET\r\n",
        // a bulk string not followed by CRLF
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nvXX\r\n",
        // unbalanced quotes inline
        b"SET k \"open\r\n",
        // a value over the bulk limit
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5000\r\n",
    ];
    for input in hostile {
        let mut raw = server.raw();
        raw.write_all(input).expect("write");
        let reply = read_all(&mut raw);
        let text = String::from_utf8_lossy(&reply);
        assert!(
            text.starts_with("-ERR Protocol error"),
            "{:?} -> {text:?}",
            String::from_utf8_lossy(input)
        );
    }
    // Binary garbage, and frames cut off by a closed connection.
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for input in [
        &garbage[..],
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nab",
        b"*2\r\n$3\r\nGE",
    ] {
        let mut raw = server.raw();
        let _ = raw.write_all(input);
        let _ = raw.shutdown(std::net::Shutdown::Write);
        let _ = read_all(&mut raw);
    }
    // Nothing was written; the server and other connections are fine.
    assert_eq!(ok(&mut bystander, &["EXISTS", "k"]), Value::Int(0));
    assert_eq!(ok(&mut bystander, &["DBSIZE"]), Value::Int(1));
    assert_eq!(
        text(ok(&mut bystander, &["GET", "before"])).as_deref(),
        Some("1")
    );
    // A value over --max-value-size but within the bulk limit: the engine's
    // error, and the connection stays usable.
    let big = "x".repeat(1001);
    assert!(err(&mut bystander, &["SET", "k", &big]).contains("limit is 1000"));
    assert_eq!(text(ok(&mut bystander, &["PING"])).as_deref(), Some("PONG"));
    // In a pipeline of plain SETs (which the listener writes as one batch),
    // the oversized one alone fails.
    {
        let mut raw = server.raw();
        raw.write_all(
            format!(
                "SET g1 1\r\n*3\r\n$3\r\nSET\r\n$2\r\ng2\r\n${}\r\n{big}\r\nSET g3 3\r\n",
                big.len()
            )
            .as_bytes(),
        )
        .expect("write");
        let want = "+OK\r\n-ERR value is 1001 bytes; the limit is 1000\r\n+OK\r\n";
        let mut got = vec![0u8; want.len()];
        raw.read_exact(&mut got).expect("replies");
        assert_eq!(String::from_utf8_lossy(&got), want);
    }
    assert_eq!(
        ok(&mut bystander, &["EXISTS", "g1", "g2", "g3"]),
        Value::Int(2)
    );
    // Commands before a protocol error in the same read still run.
    let mut raw = server.raw();
    raw.write_all(b"SET ok 1\r\n*1\r\n$x\r\n").expect("write");
    let reply = String::from_utf8_lossy(&read_all(&mut raw)).into_owned();
    assert!(reply.starts_with("+OK\r\n-ERR Protocol error"), "{reply}");
    assert_eq!(
        text(ok(&mut bystander, &["GET", "ok"])).as_deref(),
        Some("1")
    );
}

#[test]
fn connections_over_the_limit_are_refused_and_shutdown_closes_open_ones() {
    let server = Server::start(&["--resp-max-connections", "2"]);
    let mut a = server.connect();
    let mut b = server.connect();
    ok(&mut a, &["PING"]);
    ok(&mut b, &["PING"]);
    let mut third = server.raw();
    let reply = read_all(&mut third);
    assert_eq!(reply, b"-ERR max number of clients reached\r\n");
    drop(a);
    // The freed place can be taken again (the server notices the close).
    let mut retried = None;
    let client = redis::Client::open(format!("redis://{}/", server.addr())).expect("client");
    for _ in 0..100 {
        if let Ok(mut con) = client.get_connection()
            && cmd(&mut con, &[b"PING"]).is_ok()
        {
            retried = Some(con);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(retried.is_some(), "a closed connection frees its place");
    // Stopping the server with connections open does not hang.
    drop(server);
    assert!(cmd(&mut b, &[b"PING"]).is_err());
}

#[test]
fn under_sync_always_pipelines_and_concurrent_writers_are_answered_the_same() {
    let server = Server::start(&["--sync", "always", "--resp-threads", "1"]);
    let mut c = server.connect();
    let mut pipe = redis::pipe();
    for i in 0..200 {
        pipe.cmd("SET").arg(format!("k{i}")).arg(i);
    }
    pipe.cmd("INCR").arg("k7").cmd("GET").arg("k7").cmd("QUIT");
    let replies: Vec<Value> = pipe.query(&mut c).expect("pipeline");
    assert_eq!(replies.len(), 203);
    assert!(replies[..200].iter().all(|r| *r == Value::Okay));
    assert_eq!(replies[200], Value::Int(8));
    assert_eq!(replies[201], Value::BulkString(b"8".to_vec()));
    assert_eq!(
        replies[202],
        Value::Okay,
        "QUIT is answered, then the connection closes"
    );
    let mut again = server.connect();
    assert_eq!(ok(&mut again, &["DBSIZE"]), Value::Int(200));
    // Another connection on the same (single) thread is not blocked meanwhile.
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let mut con = server.connect();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let _: () = redis::cmd("SET")
                        .arg(format!("t{t}-{i}"))
                        .arg(i)
                        .query(&mut con)
                        .expect("set");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer");
    }
    assert_eq!(ok(&mut again, &["DBSIZE"]), Value::Int(350));
}

#[test]
fn a_client_that_never_reads_its_replies_does_not_hold_up_shutdown() {
    let mut server = Server::start(&[]);
    let mut c = server.connect();
    ok(&mut c, &["SET", "big", &"x".repeat(1 << 20)]);
    let mut raw = server.raw();
    // 64 MiB of replies that nobody reads: the server's write blocks.
    raw.write_all(&b"GET big\r\n".repeat(64)).expect("write");
    std::thread::sleep(Duration::from_millis(300));
    let running = server.server.take().expect("running");
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(running.stop());
    });
    let stopped = done_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the server stopped while a client was not reading");
    stopped.expect("clean stop");
    drop(raw);
}

#[test]
fn commands_are_counted_by_command_in_metrics_and_info() {
    let server = Server::start(&[]);
    let mut con = server.connect();
    let processed = |con: &mut Connection| -> u64 {
        let info = text(ok(con, &["INFO", "stats"])).expect("info");
        info.lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("total_commands_processed")
    };
    // (The client may send commands of its own on connecting.)
    let before = processed(&mut con);
    ok(&mut con, &["SET", "a", "1"]);
    ok(&mut con, &["GET", "a"]);
    ok(&mut con, &["get", "a"]);
    ok(&mut con, &["INCR", "n"]);
    err(&mut con, &["NOSUCHCOMMAND", "x"]);
    err(&mut con, &["GET"]); // wrong arity: still a GET the server answered
    // A pipeline of plain SETs runs as one batch and counts each SET.
    let mut pipe = redis::pipe();
    for i in 0..5 {
        pipe.cmd("SET").arg(format!("k{i}")).arg("v");
    }
    let _: Vec<Value> = pipe.query(&mut con).expect("pipeline");
    // 4 single commands, 2 refused ones, 5 pipelined SETs, and this INFO.
    assert_eq!(processed(&mut con), before + 12);
    let metrics = reqwest::blocking::get(format!("{}/metrics", server.http_url()))
        .expect("metrics")
        .text()
        .expect("body");
    let count = |command: &str| -> Option<u64> {
        let line = format!("bitcask_resp_commands_total{{command=\"{command}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .and_then(|n| n.parse().ok())
    };
    assert_eq!(count("set"), Some(6), "{metrics}");
    assert_eq!(count("get"), Some(3));
    assert_eq!(count("incr"), Some(1));
    assert_eq!(count("unknown"), Some(1));
    assert_eq!(count("info"), Some(2));
    assert_eq!(count("del"), Some(0), "every command has a series");
    // A made-up name never becomes a label.
    assert!(!metrics.contains("nosuchcommand"), "{metrics}");
}

#[test]
fn setex_getset_getex_unlink_touch_expiretime_getrange_and_time() {
    let server = Server::start(&[]);
    let mut con = server.connect();
    // SETEX / PSETEX: a SET with an expiry, Redis's error naming the command.
    ok(&mut con, &["SETEX", "s", "100", "v"]);
    let ttl = int(ok(&mut con, &["TTL", "s"]));
    assert!((99..=100).contains(&ttl), "{ttl}");
    ok(&mut con, &["PSETEX", "p", "100000", "v"]);
    assert!(int(ok(&mut con, &["PTTL", "p"])) > 99_000);
    assert!(
        err(&mut con, &["SETEX", "s", "0", "v"]).contains("invalid expire time in 'setex' command")
    );
    assert!(
        err(&mut con, &["PSETEX", "p", "-5", "v"])
            .contains("invalid expire time in 'psetex' command")
    );
    assert!(err(&mut con, &["SETEX", "s", "soon", "v"]).contains("not an integer"));
    // GETSET: the old value, and the new one set without an expiry.
    assert_eq!(
        text(ok(&mut con, &["GETSET", "s", "w"])).as_deref(),
        Some("v")
    );
    assert_eq!(int(ok(&mut con, &["TTL", "s"])), -1);
    assert_eq!(ok(&mut con, &["GETSET", "fresh", "x"]), Value::Nil);
    // GETEX: the value, with the expiry changed as asked.
    assert_eq!(text(ok(&mut con, &["GETEX", "s"])).as_deref(), Some("w"));
    assert_eq!(int(ok(&mut con, &["TTL", "s"])), -1);
    assert_eq!(
        text(ok(&mut con, &["GETEX", "s", "EX", "50"])).as_deref(),
        Some("w")
    );
    assert!((49..=50).contains(&int(ok(&mut con, &["TTL", "s"]))));
    ok(&mut con, &["GETEX", "s", "PERSIST"]);
    assert_eq!(int(ok(&mut con, &["TTL", "s"])), -1);
    // An absolute time in the past deletes the key (as Redis does).
    ok(&mut con, &["GETEX", "s", "PXAT", "1"]);
    assert_eq!(ok(&mut con, &["GET", "s"]), Value::Nil);
    assert_eq!(ok(&mut con, &["GETEX", "missing", "EX", "5"]), Value::Nil);
    assert!(err(&mut con, &["GETEX", "p", "EX"]).contains("syntax error"));
    assert!(
        err(&mut con, &["GETEX", "p", "EX", "0"])
            .contains("invalid expire time in 'getex' command")
    );
    // EXPIRETIME / PEXPIRETIME: absolute expiry; -1 none; -2 absent.
    ok(&mut con, &["SET", "at", "v", "PXAT", "4102444800000"]);
    assert_eq!(int(ok(&mut con, &["EXPIRETIME", "at"])), 4_102_444_800);
    assert_eq!(int(ok(&mut con, &["PEXPIRETIME", "at"])), 4_102_444_800_000);
    assert_eq!(int(ok(&mut con, &["EXPIRETIME", "fresh"])), -1);
    assert_eq!(int(ok(&mut con, &["PEXPIRETIME", "nothing"])), -2);
    // UNLINK is DEL; TOUCH counts the keys that exist.
    assert_eq!(int(ok(&mut con, &["TOUCH", "at", "fresh", "nothing"])), 2);
    assert_eq!(int(ok(&mut con, &["UNLINK", "at", "fresh", "nothing"])), 2);
    assert_eq!(int(ok(&mut con, &["TOUCH", "at", "fresh"])), 0);
    // GETRANGE / SUBSTR.
    ok(&mut con, &["SET", "greeting", "Hello World"]);
    assert_eq!(
        text(ok(&mut con, &["GETRANGE", "greeting", "0", "4"])).as_deref(),
        Some("Hello")
    );
    assert_eq!(
        text(ok(&mut con, &["SUBSTR", "greeting", "-5", "-1"])).as_deref(),
        Some("World")
    );
    assert_eq!(
        text(ok(&mut con, &["GETRANGE", "nothing", "0", "-1"])).as_deref(),
        Some("")
    );
    // TIME: seconds and microseconds, now.
    match ok(&mut con, &["TIME"]) {
        Value::Array(parts) => {
            let secs: u64 = text(parts[0].clone())
                .expect("secs")
                .parse()
                .expect("number");
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_secs();
            assert!(secs.abs_diff(now) <= 5, "{secs} vs {now}");
            let micros: u64 = text(parts[1].clone())
                .expect("micros")
                .parse()
                .expect("number");
            assert!(micros < 1_000_000);
        }
        other => panic!("{other:?}"),
    }
    assert!(err(&mut con, &["SETEX", "s", "1"]).contains("wrong number of arguments"));
}

#[test]
fn msetnx_rename_renamenx_and_copy_are_atomic_batches() {
    let server = Server::start(&[]);
    let mut con = server.connect();
    // MSETNX: all or nothing, only if every key is absent.
    assert_eq!(int(ok(&mut con, &["MSETNX", "a", "1", "b", "2"])), 1);
    assert_eq!(int(ok(&mut con, &["MSETNX", "b", "x", "c", "3"])), 0);
    assert_eq!(
        ok(&mut con, &["GET", "c"]),
        Value::Nil,
        "nothing of a refused MSETNX"
    );
    assert_eq!(text(ok(&mut con, &["GET", "b"])).as_deref(), Some("2"));
    assert!(err(&mut con, &["MSETNX", "a", "1", "b"]).contains("wrong number of arguments"));
    // RENAME keeps the value and the expiry; the source is gone.
    ok(&mut con, &["SET", "src", "v", "EX", "100"]);
    ok(&mut con, &["RENAME", "src", "dst"]);
    assert_eq!(ok(&mut con, &["GET", "src"]), Value::Nil);
    assert_eq!(text(ok(&mut con, &["GET", "dst"])).as_deref(), Some("v"));
    assert!((99..=100).contains(&int(ok(&mut con, &["TTL", "dst"]))));
    assert!(err(&mut con, &["RENAME", "nothing", "x"]).contains("no such key"));
    ok(&mut con, &["RENAME", "dst", "dst"]);
    assert_eq!(text(ok(&mut con, &["GET", "dst"])).as_deref(), Some("v"));
    // RENAME overwrites; RENAMENX does not.
    ok(&mut con, &["RENAME", "a", "b"]);
    assert_eq!(text(ok(&mut con, &["GET", "b"])).as_deref(), Some("1"));
    ok(&mut con, &["SET", "a", "again"]);
    assert_eq!(int(ok(&mut con, &["RENAMENX", "a", "b"])), 0);
    assert_eq!(text(ok(&mut con, &["GET", "a"])).as_deref(), Some("again"));
    assert_eq!(int(ok(&mut con, &["RENAMENX", "a", "fresh"])), 1);
    assert_eq!(ok(&mut con, &["GET", "a"]), Value::Nil);
    // COPY: the source stays; REPLACE to overwrite.
    assert_eq!(int(ok(&mut con, &["COPY", "fresh", "copy"])), 1);
    assert_eq!(
        text(ok(&mut con, &["GET", "fresh"])).as_deref(),
        Some("again")
    );
    assert_eq!(
        text(ok(&mut con, &["GET", "copy"])).as_deref(),
        Some("again")
    );
    ok(&mut con, &["SET", "fresh", "newer"]);
    assert_eq!(int(ok(&mut con, &["COPY", "fresh", "copy"])), 0);
    assert_eq!(int(ok(&mut con, &["COPY", "fresh", "copy", "REPLACE"])), 1);
    assert_eq!(
        text(ok(&mut con, &["GET", "copy"])).as_deref(),
        Some("newer")
    );
    assert_eq!(int(ok(&mut con, &["COPY", "nothing", "x"])), 0);
    assert!(err(&mut con, &["COPY", "fresh", "x", "DB", "1"]).contains("out of range"));
    assert!(err(&mut con, &["COPY", "fresh", "x", "NOPE"]).contains("syntax error"));

    // Racing renames of one key: exactly one wins, the value moves once.
    ok(&mut con, &["SET", "race", "payload"]);
    let addr = server.addr();
    let racers: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let client = redis::Client::open(format!("redis://{addr}/")).expect("client");
                let mut con = client.get_connection().expect("connect");
                redis::cmd("RENAME")
                    .arg("race")
                    .arg(format!("won-{i}"))
                    .query::<Value>(&mut con)
                    .is_ok()
            })
        })
        .collect();
    let wins = racers
        .into_iter()
        .map(|r| r.join().expect("racer"))
        .filter(|won| *won)
        .count();
    assert_eq!(wins, 1, "one rename takes the key; the others find it gone");
    let moved = (0..8)
        .filter(|i| ok(&mut con, &["GET", &format!("won-{i}")]) != Value::Nil)
        .count();
    assert_eq!(moved, 1);
}

/// The replies of an `EXEC`: its array's items, or `None` for the null
/// reply of an aborted transaction.
fn exec(con: &mut Connection) -> Option<Vec<Value>> {
    match ok(con, &["EXEC"]) {
        Value::Array(items) => Some(items),
        Value::Nil => None,
        other => panic!("EXEC answered {other:?}"),
    }
}

#[test]
fn multi_queues_exec_runs_discard_drops_and_queuing_errors_abort() {
    let server = Server::start(&[]);
    let mut con = server.connect();
    assert_eq!(ok(&mut con, &["MULTI"]), Value::Okay);
    for args in [
        &["SET", "a", "1"][..],
        &["INCR", "a"],
        &["GET", "a"],
        &["SETEX", "t", "100", "x"],
        &["TTL", "t"],
        &["DBSIZE"],
        &["MGET", "a", "t", "none"],
        &["PING"],
    ] {
        assert_eq!(text(ok(&mut con, args)).as_deref(), Some("QUEUED"));
    }
    // A transaction sees its own writes; nothing is visible before EXEC.
    let other = &mut server.connect();
    assert_eq!(ok(other, &["GET", "a"]), Value::Nil);
    let replies = exec(&mut con).expect("applied");
    assert_eq!(replies.len(), 8);
    assert_eq!(replies[0], Value::Okay);
    assert_eq!(replies[1], Value::Int(2));
    assert_eq!(text(replies[2].clone()).as_deref(), Some("2"));
    assert_eq!(replies[4], Value::Int(100));
    assert_eq!(replies[5], Value::Int(2));
    assert_eq!(
        strings(replies[6].clone()),
        vec![Some("2".into()), Some("x".into()), None]
    );
    assert_eq!(text(replies[7].clone()).as_deref(), Some("PONG"));
    assert_eq!(text(ok(other, &["GET", "a"])).as_deref(), Some("2"));

    // A runtime error is that command's reply; the others still apply
    // (on the wire: the redis crate turns the whole reply into the error).
    ok(&mut con, &["SET", "word", "abc"]);
    let mut raw = server.raw();
    raw.write_all(b"MULTI\r\nINCR word\r\nSET after yes\r\nEXEC\r\n")
        .expect("send");
    let want = b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n-ERR value is not an integer or out of range\r\n+OK\r\n";
    let mut got = vec![0u8; want.len()];
    raw.read_exact(&mut got).expect("replies");
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
    assert_eq!(
        text(ok(&mut con, &["GET", "after"])).as_deref(),
        Some("yes")
    );

    // DISCARD drops the queue.
    ok(&mut con, &["MULTI"]);
    ok(&mut con, &["SET", "dropped", "1"]);
    assert_eq!(ok(&mut con, &["DISCARD"]), Value::Okay);
    assert_eq!(ok(&mut con, &["GET", "dropped"]), Value::Nil);

    // Errors while queuing: the transaction is refused whole at EXEC.
    for bad in [
        &["NOSUCHCOMMAND"][..],
        &["GET"],
        &["KEYS", "*"],
        &["FLUSHDB"],
    ] {
        ok(&mut con, &["MULTI"]);
        ok(&mut con, &["SET", "never", "1"]);
        err(&mut con, bad);
        let refused = err(&mut con, &["EXEC"]);
        assert!(
            refused.contains("discarded because of previous errors"),
            "{bad:?}: {refused}"
        );
        assert_eq!(ok(&mut con, &["GET", "never"]), Value::Nil, "{bad:?}");
    }
    // Misuse that does not end the transaction, and misuse outside one.
    ok(&mut con, &["MULTI"]);
    assert!(err(&mut con, &["MULTI"]).contains("MULTI calls can not be nested"));
    assert!(err(&mut con, &["WATCH", "a"]).contains("WATCH inside MULTI is not allowed"));
    assert_eq!(exec(&mut con), Some(vec![]));
    assert!(err(&mut con, &["EXEC"]).contains("EXEC without MULTI"));
    assert!(err(&mut con, &["DISCARD"]).contains("DISCARD without MULTI"));

    // The redis crate's atomic pipeline is MULTI ... EXEC.
    let (x, y): (i64, i64) = redis::pipe()
        .atomic()
        .cmd("INCRBY")
        .arg("p")
        .arg(5)
        .cmd("INCRBY")
        .arg("p")
        .arg(6)
        .query(&mut con)
        .expect("atomic pipeline");
    assert_eq!((x, y), (5, 11));
}

#[test]
fn watch_aborts_exec_when_a_key_changes_by_resp_or_http_or_expiry() {
    let server = Server::start(&[]);
    let mut con = server.connect();
    let other = &mut server.connect();
    let http = reqwest::blocking::Client::new();
    ok(&mut con, &["SET", "k", "1"]);

    // Unchanged: applies, and the watch ends with EXEC.
    ok(&mut con, &["WATCH", "k", "absent"]);
    ok(&mut con, &["MULTI"]);
    ok(&mut con, &["SET", "k", "2"]);
    assert!(exec(&mut con).is_some());
    ok(other, &["SET", "k", "3"]);
    ok(&mut con, &["MULTI"]);
    ok(&mut con, &["GET", "k"]);
    assert!(exec(&mut con).is_some(), "no longer watched after EXEC");

    // Another connection's write, even of the same value.
    ok(&mut con, &["WATCH", "k"]);
    ok(other, &["SET", "k", "3"]);
    ok(&mut con, &["MULTI"]);
    ok(&mut con, &["SET", "k", "mine"]);
    assert_eq!(exec(&mut con), None, "aborted: k was written");
    assert_eq!(text(ok(&mut con, &["GET", "k"])).as_deref(), Some("3"));

    // An HTTP write.
    ok(&mut con, &["WATCH", "k"]);
    let put = http
        .put(format!("{}/kv/k", server.http_url()))
        .json(&serde_json::json!({ "value": "from-http" }))
        .send()
        .expect("put");
    assert_eq!(put.status(), 200);
    ok(&mut con, &["MULTI"]);
    ok(&mut con, &["SET", "k", "mine"]);
    assert_eq!(exec(&mut con), None, "aborted: k was written over HTTP");

    // A key absent when watched and created meanwhile; a deleted one.
    ok(&mut con, &["WATCH", "fresh", "k"]);
    ok(other, &["SET", "fresh", "1"]);
    ok(&mut con, &["MULTI"]);
    assert_eq!(exec(&mut con), None);
    ok(&mut con, &["WATCH", "k"]);
    ok(other, &["DEL", "k"]);
    ok(&mut con, &["MULTI"]);
    assert_eq!(exec(&mut con), None);

    // A watched key that expires before EXEC counts as changed (Redis 7).
    ok(&mut con, &["SET", "brief", "v", "PX", "50"]);
    ok(&mut con, &["WATCH", "brief"]);
    std::thread::sleep(Duration::from_millis(120));
    ok(&mut con, &["MULTI"]);
    assert_eq!(exec(&mut con), None);

    // UNWATCH and DISCARD forget the watched keys; an EXPIRE touches one.
    ok(&mut con, &["WATCH", "fresh"]);
    ok(other, &["SET", "fresh", "2"]);
    ok(&mut con, &["UNWATCH"]);
    ok(&mut con, &["MULTI"]);
    assert!(exec(&mut con).is_some());
    ok(&mut con, &["WATCH", "fresh"]);
    ok(other, &["SET", "fresh", "3"]);
    ok(&mut con, &["MULTI"]);
    ok(&mut con, &["DISCARD"]);
    ok(&mut con, &["MULTI"]);
    assert!(exec(&mut con).is_some());
    ok(&mut con, &["WATCH", "fresh"]);
    ok(other, &["EXPIRE", "fresh", "100"]);
    ok(&mut con, &["MULTI"]);
    assert_eq!(exec(&mut con), None);
}

#[test]
fn transactions_are_serializable_against_concurrent_clients() {
    // Connections on several threads, so that transactions truly overlap.
    let server = Server::start(&["--resp-threads", "4"]);
    let addr = server.addr();
    const WRITERS: usize = 4;
    const ROUNDS: usize = 200;
    let connect = move || {
        redis::Client::open(format!("redis://{addr}/"))
            .expect("client")
            .get_connection()
            .expect("connect")
    };
    // Each transaction moves one unit from `from` to `to`: the sum stays
    // 0 for every reader, and the counts add up at the end.
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            std::thread::spawn(move || {
                let mut con = connect();
                for _ in 0..ROUNDS {
                    let (from, to): (i64, i64) = redis::pipe()
                        .atomic()
                        .cmd("DECR")
                        .arg("from")
                        .cmd("INCR")
                        .arg("to")
                        .query(&mut con)
                        .expect("transfer");
                    assert!(from < 0 && to > 0);
                }
            })
        })
        .collect();
    let mut reader = connect();
    let mut observed = 0;
    while writers.iter().any(|w| !w.is_finished()) || observed == 0 {
        let (from, to): (Option<i64>, Option<i64>) = redis::pipe()
            .atomic()
            .cmd("GET")
            .arg("from")
            .cmd("GET")
            .arg("to")
            .query(&mut reader)
            .expect("read both");
        assert_eq!(
            from.unwrap_or(0) + to.unwrap_or(0),
            0,
            "a transaction saw half of another"
        );
        observed += 1;
    }
    for w in writers {
        w.join().expect("writer");
    }
    let mut con = reader;
    let total = (WRITERS * ROUNDS) as i64;
    assert_eq!(
        int(ok(&mut con, &["GET", "from"]).clone().into_int()),
        -total
    );
    assert_eq!(int(ok(&mut con, &["GET", "to"]).into_int()), total);
}

/// A bulk string holding a number, as an integer.
trait IntoInt {
    fn into_int(self) -> Value;
}

impl IntoInt for Value {
    fn into_int(self) -> Value {
        let n = text(self).and_then(|s| s.parse().ok()).expect("a number");
        Value::Int(n)
    }
}

#[test]
fn a_transaction_has_limits_and_they_abort_it() {
    let server = Server::start(&["--resp-max-output", "1MiB"]);
    let mut con = server.connect();
    // Too many bytes queued: refused, and EXEC refuses the transaction.
    ok(&mut con, &["MULTI"]);
    let big = "v".repeat(300 * 1024);
    for _ in 0..3 {
        ok(&mut con, &["SET", "big", &big]);
    }
    assert!(err(&mut con, &["SET", "big", &big]).contains("transaction is too large"));
    assert!(err(&mut con, &["EXEC"]).contains("discarded because of previous errors"));
    assert_eq!(ok(&mut con, &["GET", "big"]), Value::Nil);
    // Too many commands (a pipeline, to be quick).
    let mut pipe = redis::pipe();
    pipe.cmd("MULTI");
    for _ in 0..10_001 {
        pipe.cmd("PING");
    }
    let refused = pipe
        .query::<Vec<Value>>(&mut con)
        .expect_err("the 10,001st is refused")
        .to_string();
    assert!(
        refused.contains("Index 10001") && refused.contains("too large"),
        "{refused}"
    );
    assert!(err(&mut con, &["EXEC"]).contains("discarded because of previous errors"));
    // A connection watches at most 10,000 keys.
    let keys: Vec<String> = (0..10_001).map(|i| format!("w{i}")).collect();
    let mut watch = redis::cmd("WATCH");
    for k in &keys {
        watch.arg(k);
    }
    assert!(
        watch
            .query::<Value>(&mut con)
            .expect_err("too many")
            .to_string()
            .contains("at most 10000 keys")
    );
}

#[test]
fn setrange_bits_incrbyfloat_lcs_object_memory_and_randomkey() {
    let server = Server::start(&["--max-value-size", "64KiB"]);
    let mut con = server.connect();
    // SETRANGE pads with zero bytes and keeps the expiry.
    assert_eq!(int(ok(&mut con, &["SETRANGE", "r", "3", "abc"])), 6);
    assert_eq!(
        ok(&mut con, &["GET", "r"]),
        Value::BulkString(b"\0\0\0abc".to_vec())
    );
    ok(&mut con, &["SET", "greet", "Hello World", "EX", "100"]);
    assert_eq!(int(ok(&mut con, &["SETRANGE", "greet", "6", "Redis"])), 11);
    assert_eq!(
        text(ok(&mut con, &["GET", "greet"])).as_deref(),
        Some("Hello Redis")
    );
    assert!(int(ok(&mut con, &["TTL", "greet"])) > 0, "expiry kept");
    assert_eq!(int(ok(&mut con, &["SETRANGE", "none", "5", ""])), 0);
    assert_eq!(
        ok(&mut con, &["EXISTS", "none"]),
        Value::Int(0),
        "nothing set"
    );
    assert!(err(&mut con, &["SETRANGE", "r", "-1", "x"]).contains("offset is out of range"));
    assert!(
        err(&mut con, &["SETRANGE", "r", "536870908", "world"]).contains("maximum allowed size")
    );
    assert!(err(&mut con, &["SETRANGE", "r", "70000", "x"]).contains("maximum allowed size"));

    // Bits: bit 0 is the high bit of the first byte.
    assert_eq!(int(ok(&mut con, &["SETBIT", "b", "7", "1"])), 0);
    assert_eq!(int(ok(&mut con, &["SETBIT", "b", "7", "1"])), 1);
    assert_eq!(ok(&mut con, &["GET", "b"]), Value::BulkString(vec![1]));
    assert_eq!(int(ok(&mut con, &["GETBIT", "b", "7"])), 1);
    assert_eq!(int(ok(&mut con, &["GETBIT", "b", "100"])), 0);
    assert!(err(&mut con, &["SETBIT", "b", "4294967296", "1"]).contains("out of range"));
    assert!(err(&mut con, &["SETBIT", "b", "0", "2"]).contains("bit is not an integer"));
    // Past --max-value-size (64 KiB here) but within Redis's 512 MiB:
    // refused with Redis's words, before the value is built.
    assert!(err(&mut con, &["SETBIT", "b", "4000000000", "1"]).contains("maximum allowed size"));
    ok(&mut con, &["SET", "fb", "foobar"]);
    assert_eq!(int(ok(&mut con, &["BITCOUNT", "fb"])), 26);
    assert_eq!(int(ok(&mut con, &["BITCOUNT", "fb", "1", "1"])), 6);
    assert_eq!(int(ok(&mut con, &["BITCOUNT", "fb", "5", "30", "BIT"])), 17);
    assert_eq!(int(ok(&mut con, &["BITCOUNT", "fb", "-1", "-3"])), 0);
    assert!(err(&mut con, &["BITCOUNT", "fb", "1"]).contains("syntax error"));
    let mut raw = redis::cmd("SET");
    raw.arg("bp").arg(&[0xFFu8, 0xF0, 0x00][..]);
    let _: () = raw.query(&mut con).expect("binary set");
    assert_eq!(int(ok(&mut con, &["BITPOS", "bp", "0"])), 12);
    assert_eq!(int(ok(&mut con, &["BITPOS", "bp", "1", "2"])), -1);
    assert_eq!(int(ok(&mut con, &["BITPOS", "none", "0"])), 0);
    assert_eq!(int(ok(&mut con, &["BITPOS", "none", "1"])), -1);
    assert!(err(&mut con, &["BITPOS", "bp", "2"]).contains("must be 1 or 0"));
    ok(&mut con, &["SET", "x", "abc"]);
    ok(&mut con, &["SET", "y", "a"]);
    assert_eq!(int(ok(&mut con, &["BITOP", "AND", "dest", "x", "y"])), 3);
    assert_eq!(
        ok(&mut con, &["GET", "dest"]),
        Value::BulkString(b"a\0\0".to_vec())
    );
    assert_eq!(int(ok(&mut con, &["BITOP", "OR", "dest", "nothing"])), 0);
    assert_eq!(
        ok(&mut con, &["EXISTS", "dest"]),
        Value::Int(0),
        "an empty result deletes"
    );
    assert!(err(&mut con, &["BITOP", "NOT", "dest", "x", "y"]).contains("single source key"));
    assert!(err(&mut con, &["BITOP", "NAND", "dest", "x"]).contains("syntax error"));

    // INCRBYFLOAT keeps the shortest digits and refuses bad floats.
    assert_eq!(
        text(ok(&mut con, &["INCRBYFLOAT", "f", "10.5"])).as_deref(),
        Some("10.5")
    );
    assert_eq!(
        text(ok(&mut con, &["INCRBYFLOAT", "f", "0.1"])).as_deref(),
        Some("10.6")
    );
    assert_eq!(
        text(ok(&mut con, &["INCRBYFLOAT", "f", "-10.6"])).as_deref(),
        Some("0")
    );
    assert!(err(&mut con, &["INCRBYFLOAT", "f", " 1"]).contains("not a valid float"));
    assert!(err(&mut con, &["INCRBYFLOAT", "f", "+inf"]).contains("NaN or Infinity"));
    assert!(err(&mut con, &["INCRBYFLOAT", "x", "1"]).contains("not a valid float"));

    // LCS, Redis's documented example.
    ok(&mut con, &["MSET", "k1", "ohmytext", "k2", "mynewtext"]);
    assert_eq!(
        text(ok(&mut con, &["LCS", "k1", "k2"])).as_deref(),
        Some("mytext")
    );
    assert_eq!(int(ok(&mut con, &["LCS", "k1", "k2", "LEN"])), 6);
    let idx = ok(
        &mut con,
        &["LCS", "k1", "k2", "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN"],
    );
    assert_eq!(
        format!("{idx:?}"),
        format!(
            "{:?}",
            Value::Array(vec![
                Value::BulkString(b"matches".to_vec()),
                Value::Array(vec![Value::Array(vec![
                    Value::Array(vec![Value::Int(4), Value::Int(7)]),
                    Value::Array(vec![Value::Int(5), Value::Int(8)]),
                    Value::Int(4),
                ])]),
                Value::BulkString(b"len".to_vec()),
                Value::Int(6),
            ])
        )
    );
    assert!(err(&mut con, &["LCS", "k1", "k2", "LEN", "IDX"]).contains("just use IDX"));
    let big = "z".repeat(5000);
    ok(&mut con, &["MSET", "big1", &big, "big2", &big]);
    assert!(err(&mut con, &["LCS", "big1", "big2"]).contains("exceeds the limit"));

    // OBJECT and MEMORY answer for what is stored.
    ok(&mut con, &["SET", "n", "12345"]);
    assert_eq!(
        text(ok(&mut con, &["OBJECT", "ENCODING", "n"])).as_deref(),
        Some("int")
    );
    assert_eq!(
        text(ok(&mut con, &["OBJECT", "ENCODING", "x"])).as_deref(),
        Some("embstr")
    );
    assert_eq!(
        text(ok(&mut con, &["OBJECT", "ENCODING", "big1"])).as_deref(),
        Some("raw")
    );
    assert_eq!(ok(&mut con, &["OBJECT", "ENCODING", "none"]), Value::Nil);
    assert_eq!(int(ok(&mut con, &["OBJECT", "REFCOUNT", "n"])), 1);
    assert!(err(&mut con, &["OBJECT", "FREQ", "n"]).contains("LFU"));
    assert!(err(&mut con, &["OBJECT", "IDLETIME", "n"]).contains("access times"));
    assert!(err(&mut con, &["OBJECT", "NOPE", "n"]).contains("Try OBJECT HELP"));
    assert!(int(ok(&mut con, &["MEMORY", "USAGE", "big1"])) > 5000);
    assert_eq!(ok(&mut con, &["MEMORY", "USAGE", "none"]), Value::Nil);
    assert!(err(&mut con, &["MEMORY", "STATS"]).contains("only MEMORY USAGE"));

    // RANDOMKEY: some key that exists; nil when there are none.
    let key = text(ok(&mut con, &["RANDOMKEY"])).expect("a key");
    assert_eq!(int(ok(&mut con, &["EXISTS", &key])), 1);
    let empty = Server::start(&[]);
    assert_eq!(ok(&mut empty.connect(), &["RANDOMKEY"]), Value::Nil);
}

#[test]
fn redis_error_texts_for_options_arity_and_the_protocol() {
    let server = Server::start(&[]);
    let mut con = server.connect();
    ok(&mut con, &["SET", "k", "v"]);
    for (args, want) in [
        (
            &["EXPIRE", "k", "100", "NX", "XX"][..],
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ),
        (
            &["EXPIRE", "k", "100", "GT", "LT"],
            "ERR GT and LT options at the same time are not compatible",
        ),
        (&["EXPIRE", "k", "100", "AB"], "ERR Unsupported option AB"),
        (
            &["EXPIRE", "k", "100", "XX", "AB"],
            "ERR Unsupported option AB",
        ),
        (
            &["COPY", "k", "k2", "DB", "notanint"],
            "ERR value is not an integer or out of range",
        ),
        (
            &["COPY", "k", "k2", "DB", "3"],
            "ERR DB index is out of range",
        ),
        (
            &["COPY", "k", "k"],
            "ERR source and destination objects are the same",
        ),
        (
            &["PING", "a", "b"],
            "ERR wrong number of arguments for 'ping' command",
        ),
    ] {
        let mut raw = server.raw();
        let mut line = String::new();
        for a in args {
            line.push_str(&format!("\"{a}\" "));
        }
        raw.write_all(format!("{line}\r\n").as_bytes())
            .expect("send");
        let mut got = vec![0u8; want.len() + 3];
        raw.read_exact(&mut got).expect("reply");
        assert_eq!(
            String::from_utf8_lossy(&got),
            format!("-{want}\r\n"),
            "{args:?}"
        );
    }
    // XX with GT: only a key with a later expiry changes.
    assert_eq!(int(ok(&mut con, &["EXPIRE", "k", "100", "XX", "GT"])), 0);
    ok(&mut con, &["EXPIRE", "k", "100"]);
    assert_eq!(int(ok(&mut con, &["EXPIRE", "k", "200", "XX", "GT"])), 1);
    assert_eq!(int(ok(&mut con, &["COPY", "k", "k2", "DB", "0"])), 1);
    // Protocol errors in Redis's words; the connection is closed after.
    for (sent, want) in [
        (&b"*1\r\n$blabla\r\n"[..], "invalid bulk length"),
        (b"*blabla\r\n", "invalid multibulk length"),
        (b"set \"\"\"k\"\"\" v\r\n", "unbalanced quotes"),
    ] {
        let mut raw = server.raw();
        raw.write_all(sent).expect("send");
        let reply = String::from_utf8_lossy(&read_all(&mut raw)).into_owned();
        assert!(
            reply.starts_with("-ERR Protocol error: ") && reply.contains(want),
            "{reply}"
        );
    }
}

#[test]
fn expired_keys_leave_dbsize_through_the_active_expiry() {
    let server = Server::start(&["--expire-interval", "10ms"]);
    let mut con = server.connect();
    for k in ["a", "b", "c"] {
        ok(&mut con, &["PSETEX", k, "100", "v"]);
    }
    ok(&mut con, &["SET", "stays", "v"]);
    assert_eq!(int(ok(&mut con, &["DBSIZE"])), 4);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while int(ok(&mut con, &["DBSIZE"])) != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "expired keys still counted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn config_set_names_the_setting_it_refuses_and_resetstat_restarts_info_counts() {
    let server = Server::start(&[]);
    let mut con = server.connect();
    let refused = err(&mut con, &["CONFIG", "SET", "maxmemory", "100mb"]);
    assert!(
        refused.contains("'maxmemory'") && refused.contains("evicts nothing"),
        "{refused}"
    );
    let refused = err(&mut con, &["CONFIG", "SET", "maxclients", "1"]);
    assert!(refused.contains("--resp-allow-config-set"), "{refused}");
    let refused = err(&mut con, &["CONFIG", "SET", "hz", "100"]);
    assert!(
        refused.contains("'hz'") && refused.contains("fixed at start"),
        "{refused}"
    );
    assert!(err(&mut con, &["CONFIG", "REWRITE"]).contains("Try CONFIG HELP"));
    assert_eq!(
        err(&mut con, &["CONFIG", "SET", "timeout"]),
        "ResponseError: wrong number of arguments for 'config|set' command"
    );
    for _ in 0..5 {
        ok(&mut con, &["PING"]);
    }
    let processed = |con: &mut Connection| -> u64 {
        let info = text(ok(con, &["INFO", "stats"])).expect("info");
        info.lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("count")
    };
    assert!(processed(&mut con) >= 6);
    assert_eq!(ok(&mut con, &["CONFIG", "RESETSTAT"]), Value::Okay);
    // The INFO itself, and no more, since the reset.
    assert_eq!(processed(&mut con), 1);
}

#[test]
fn pipelined_writes_run_as_one_batch_with_the_replies_each_would_have_had() {
    // Connections on several threads, so that groups truly race.
    let server = Server::start(&["--resp-threads", "4", "--sync", "always"]);
    let mut raw = server.raw();
    raw.write_all(
        b"SET word abc\r\nINCR n\r\nINCRBY n 5\r\nINCR word\r\nAPPEND word def\r\nSETEX t 100 v\r\nGETSET n 0\r\nDECR n\r\n",
    )
    .expect("send");
    let want = b"+OK\r\n:1\r\n:6\r\n-ERR value is not an integer or out of range\r\n:6\r\n+OK\r\n$1\r\n6\r\n:-1\r\n";
    let mut got = vec![0u8; want.len()];
    raw.read_exact(&mut got).expect("replies");
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
    let mut con = server.connect();
    assert_eq!(
        text(ok(&mut con, &["GET", "word"])).as_deref(),
        Some("abcdef")
    );
    // Racing pipelines of INCRs on one key lose no increment.
    let addr = server.addr();
    let racers: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let client = redis::Client::open(format!("redis://{addr}/")).expect("client");
                let mut con = client.get_connection().expect("connect");
                for _ in 0..50 {
                    let mut pipe = redis::pipe();
                    for _ in 0..16 {
                        pipe.cmd("INCR").arg("shared");
                    }
                    let _: Vec<i64> = pipe.query(&mut con).expect("pipeline");
                }
            })
        })
        .collect();
    for r in racers {
        r.join().expect("racer");
    }
    assert_eq!(
        text(ok(&mut con, &["GET", "shared"])).as_deref(),
        Some("3200")
    );
    // The grouped INCR that failed is counted as failed, once.
    let stats = text(ok(&mut con, &["INFO", "commandstats"])).expect("info");
    let incr = stats
        .lines()
        .find(|l| l.starts_with("cmdstat_incr:"))
        .expect("incr counted");
    assert!(incr.ends_with("failed_calls=1"), "{incr}");
}

#[test]
fn info_reports_cpu_memory_replication_and_commandstats_with_errors() {
    let server = Server::start(&[]);
    let mut con = server.connect();
    let info = |con: &mut Connection, args: &[&str]| text(ok(con, args)).expect("info");
    let default = info(&mut con, &["INFO"]);
    for field in [
        "redis_version",
        "used_cpu_user:",
        "used_memory:",
        "role:master",
    ] {
        assert!(default.contains(field), "{field} in {default}");
    }
    assert!(
        !default.contains("cmdstat_"),
        "commandstats only when asked"
    );
    let cpu = info(&mut con, &["INFO", "cpu"]);
    assert!(
        cpu.contains("used_cpu_sys:") && !cpu.contains("used_memory"),
        "{cpu}"
    );
    // Calls, refusals (wrong arity) and failures (an error when run).
    ok(&mut con, &["SET", "word", "abc"]);
    err(&mut con, &["INCR", "word"]);
    err(&mut con, &["GET"]);
    ok(&mut con, &["GET", "word"]);
    let stats = info(&mut con, &["INFO", "commandstats"]);
    assert!(
        stats.contains("cmdstat_incr:calls=1,rejected_calls=0,failed_calls=1"),
        "{stats}"
    );
    assert!(
        stats.contains("cmdstat_get:calls=2,rejected_calls=1,failed_calls=0"),
        "{stats}"
    );
    let all = info(&mut con, &["INFO", "all"]);
    assert!(
        all.contains("rejected_calls") && all.contains("used_memory"),
        "{all}"
    );
    assert_eq!(all.matches("used_cpu_user_children").count(), 1);
}

#[test]
fn config_set_timeout_and_maxclients_apply_to_open_and_new_connections() {
    let server = Server::start(&["--resp-max-connections", "3", "--resp-allow-config-set"]);
    let mut admin = server.connect();
    // An idle connection that had no time-out gets the new one.
    let mut idle = server.raw();
    idle.write_all(b"PING\r\n").expect("send");
    let mut pong = [0u8; 7];
    idle.read_exact(&mut pong).expect("pong");
    assert_eq!(
        ok(&mut admin, &["CONFIG", "SET", "timeout", "1"]),
        Value::Okay
    );
    assert_eq!(
        strings(ok(&mut admin, &["CONFIG", "GET", "timeout"])),
        vec![Some("timeout".into()), Some("1".into())]
    );
    let waited = std::time::Instant::now();
    assert_eq!(read_all(&mut idle), b"", "closed by the server");
    assert!(
        waited.elapsed() < Duration::from_secs(9),
        "by the new time-out, not the test's"
    );
    // (The admin connection was idle as long: closed too.)
    let mut admin = server.connect();
    assert_eq!(
        ok(&mut admin, &["CONFIG", "SET", "timeout", "0"]),
        Value::Okay
    );
    // maxclients: under the ceiling, refusing new connections only.
    assert!(err(&mut admin, &["CONFIG", "SET", "maxclients", "4"]).contains("between 1 and 3"));
    assert_eq!(
        ok(&mut admin, &["CONFIG", "SET", "maxclients", "1"]),
        Value::Okay
    );
    let info = text(ok(&mut admin, &["INFO", "clients"])).expect("info");
    assert!(info.contains("maxclients:1"), "{info}");
    let mut refused = server.raw();
    assert_eq!(
        read_all(&mut refused),
        b"-ERR max number of clients reached\r\n"
    );
    ok(&mut admin, &["PING"]);
    assert_eq!(
        ok(&mut admin, &["CONFIG", "SET", "maxclients", "3"]),
        Value::Okay
    );
    let mut second = server.connect();
    ok(&mut second, &["PING"]);
    // All or none: a bad pair leaves the good one unapplied.
    assert!(
        err(
            &mut admin,
            &["CONFIG", "SET", "timeout", "5", "appendonly", "no"]
        )
        .contains("'appendonly'")
    );
    assert_eq!(
        strings(ok(&mut admin, &["CONFIG", "GET", "timeout"])),
        vec![Some("timeout".into()), Some("0".into())]
    );
}

/// Reads RESP values from `stream` until the bytes read end with `suffix`.
fn read_until(stream: &mut TcpStream, suffix: &[u8]) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(suffix) {
        let n = stream
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("{e}; got so far {:?}", String::from_utf8_lossy(&got)));
        assert!(n > 0, "closed; got {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// A RESP bulk string.
fn bulk(text: &str) -> String {
    format!("${}\r\n{text}\r\n", text.len())
}

/// A pub/sub message: `*N` and its parts as bulk strings (a count last,
/// for confirmations).
fn push(parts: &[&str], count: Option<usize>) -> String {
    let mut out = format!("*{}\r\n", parts.len() + usize::from(count.is_some()));
    for part in parts {
        out.push_str(&bulk(part));
    }
    if let Some(n) = count {
        out.push_str(&format!(":{n}\r\n"));
    }
    out
}

#[test]
fn keyspace_notifications_reach_subscribers_as_redis_sends_them() {
    let s = Server::start(&["--expire-interval", "20ms"]);
    let mut con = s.connect();
    // Off by default, as in Redis.
    assert_eq!(
        strings(ok(&mut con, &["CONFIG", "GET", "notify-keyspace-events"])),
        vec![Some("notify-keyspace-events".into()), Some(String::new())]
    );
    ok(
        &mut con,
        &["CONFIG", "SET", "notify-keyspace-events", "KEA"],
    );
    assert!(
        err(&mut con, &["CONFIG", "SET", "notify-keyspace-events", "KQ"])
            .contains("Invalid event class")
    );
    let mut sub = s.raw();
    sub.write_all(
        b"PSUBSCRIBE __keyspace@0__:user* __keyevent@0__:*\r\nSUBSCRIBE __keyevent@0__:expired\r\n",
    )
    .expect("send");
    let confirmations = [
        push(&["psubscribe", "__keyspace@0__:user*"], Some(1)),
        push(&["psubscribe", "__keyevent@0__:*"], Some(2)),
        push(&["subscribe", "__keyevent@0__:expired"], Some(3)),
    ]
    .concat();
    assert_eq!(
        read_until(&mut sub, confirmations.as_bytes()),
        confirmations
    );
    // Subscribed: only (un)subscribe, PING and QUIT.
    sub.write_all(b"GET x\r\nPING\r\n").expect("send");
    let refused = read_until(&mut sub, push(&["pong", ""], None).as_bytes());
    assert!(refused.starts_with("-ERR Can't execute 'get'"), "{refused}");
    ok(&mut con, &["SET", "user1", "a"]);
    ok(&mut con, &["SET", "other", "b"]);
    ok(&mut con, &["DEL", "user1"]);
    ok(&mut con, &["SET", "session", "s", "PX", "30"]);
    let (space, event) = ("__keyspace@0__:user*", "__keyevent@0__:*");
    let expected = [
        // SET user1: its keyspace channel, then the set event's.
        push(&["pmessage", space, "__keyspace@0__:user1", "set"], None),
        push(&["pmessage", event, "__keyevent@0__:set", "user1"], None),
        // SET other: only the event pattern matches.
        push(&["pmessage", event, "__keyevent@0__:set", "other"], None),
        push(&["pmessage", space, "__keyspace@0__:user1", "del"], None),
        push(&["pmessage", event, "__keyevent@0__:del", "user1"], None),
        push(&["pmessage", event, "__keyevent@0__:set", "session"], None),
        // The expiry the store enforces: the exact channel, then the pattern.
        push(&["message", "__keyevent@0__:expired", "session"], None),
        push(
            &["pmessage", event, "__keyevent@0__:expired", "session"],
            None,
        ),
    ]
    .concat();
    assert_eq!(read_until(&mut sub, expected.as_bytes()), expected);
    // Unsubscribing from everything leaves subscribed mode.
    sub.write_all(b"PUNSUBSCRIBE\r\nUNSUBSCRIBE\r\nGET other\r\n")
        .expect("send");
    let left = read_until(&mut sub, b"$1\r\nb\r\n");
    assert!(
        left.contains(&push(&["unsubscribe", "__keyevent@0__:expired"], Some(0))),
        "{left}"
    );
}
