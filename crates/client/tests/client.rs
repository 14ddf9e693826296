//! The client against a real server on a free loopback port (every method),
//! and against fake servers for the failures a real one does not produce
//! on demand: not running, too slow, always unavailable.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bitcask_client::{Batch, Client, Condition, Error, ListOptions, WriteOptions, blocking};
use bitcask_server::server::Background;
use futures_util::TryStreamExt;

/// A real server in a fresh directory, and the directory.
struct TestServer {
    server: Option<Background>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server with extra flags. (On a plain thread: the server runs
    /// its own runtime, which cannot start inside a test's.)
    fn start(flags: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = common::start(dir.path(), 0, flags);
        Self {
            server: Some(server),
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        self.server.as_ref().expect("running").url()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Stopping joins the server's thread: fine from any thread.
        if let Some(server) = self.server.take() {
            server.stop().expect("clean stop");
        }
    }
}

#[tokio::test]
async fn every_method_against_a_real_server() {
    let server = TestServer::start(&[]);
    let client = Client::new(server.url()).expect("client");

    let health = client.health().await.expect("health");
    assert!(health.is_healthy());
    assert_eq!(health.version, env!("CARGO_PKG_VERSION"));
    assert!(client.ping().await.expect("ping") < Duration::from_secs(5));

    // Text, bytes, absent.
    let v1 = client.put("greeting", "hello").await.expect("put");
    assert_eq!(
        client.get("greeting").await.expect("get").as_deref(),
        Some("hello")
    );
    let binary = vec![0u8, 159, 146, 150, 255, b'\n'];
    client.put("bin", &binary).await.expect("put bytes");
    assert_eq!(
        client.get_bytes("bin").await.expect("get").as_deref(),
        Some(&binary[..])
    );
    assert!(matches!(
        client.get("bin").await,
        Err(Error::NotUtf8 { .. })
    ));
    assert_eq!(client.get("missing").await.expect("get"), None);
    assert_eq!(client.get_bytes("missing").await.expect("get"), None);

    // Keys that need encoding are one key each.
    for key in ["a/b", "a/../b", "sp ace?&=#%", "ключ/🔑", "trailing/"] {
        client.put(key, key).await.expect("put odd key");
        assert_eq!(
            client.get(key).await.expect("get").as_deref(),
            Some(key),
            "{key}"
        );
    }

    // Versions and conditions.
    let got = client
        .get_versioned("greeting")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(got.version, v1);
    let stale = WriteOptions::new().condition(Condition::Version(v1 - 1));
    match client.put_with("greeting", "x", stale).await {
        Err(Error::PreconditionFailed { detail }) => {
            assert!(detail.contains(&v1.to_string()), "{detail}");
        }
        other => panic!("expected 412, got {other:?}"),
    }
    let v2 = client
        .put_with(
            "greeting",
            "hi",
            WriteOptions::new().condition(Condition::Version(v1)),
        )
        .await
        .expect("compare-and-set");
    assert!(v2 > v1);
    let absent = WriteOptions::new().condition(Condition::Absent);
    assert!(matches!(
        client.put_with("greeting", "x", absent).await,
        Err(Error::PreconditionFailed { .. })
    ));
    client.put_with("fresh", "1", absent).await.expect("create");
    let present = WriteOptions::new().condition(Condition::Present);
    assert!(matches!(
        client.delete_with("never", present).await,
        Err(Error::PreconditionFailed { .. })
    ));

    // Expiry and durability are accepted and take effect.
    client
        .put_with(
            "session",
            "s",
            WriteOptions::new()
                .ttl(Duration::from_secs(3600))
                .durable(true),
        )
        .await
        .expect("put ttl");
    assert_eq!(
        client.get("session").await.expect("get").as_deref(),
        Some("s")
    );

    // Deletes.
    let deleted = client
        .delete_with("fresh", WriteOptions::new())
        .await
        .expect("delete");
    assert!(deleted.is_some_and(|v| v > v2));
    assert_eq!(
        client
            .delete_with("fresh", WriteOptions::new())
            .await
            .expect("again"),
        None
    );
    client
        .delete("never")
        .await
        .expect("absent key: not an error");
    assert_eq!(client.get("fresh").await.expect("get"), None);

    // Listing follows the cursor across pages.
    for i in 0..25 {
        client.put(&format!("list/{i:02}"), "v").await.expect("put");
    }
    let keys: Vec<String> = client
        .list(ListOptions::prefix("list/").page_size(4))
        .try_collect()
        .await
        .expect("list");
    let want: Vec<String> = (0..25).map(|i| format!("list/{i:02}")).collect();
    assert_eq!(keys, want);
    let page = client
        .list_page(
            &ListOptions::prefix("list/")
                .start_after("list/20")
                .page_size(2),
        )
        .await
        .expect("page");
    assert_eq!(page.keys, vec!["list/21", "list/22"]);
    assert_eq!(page.next_start_after.as_deref(), Some("list/22"));
    // Folded at `/`: the folder once, in `prefixes`; the stream yields the
    // keys outside folders, across pages.
    client.put("list/05/deep", "v").await.expect("put");
    let page = client
        .list_page(&ListOptions::prefix("").delimiter("/"))
        .await
        .expect("page");
    let folders = page.prefixes.expect("prefixes with a delimiter");
    assert!(folders.contains(&"list/".to_string()), "{folders:?}");
    assert!(
        !page.keys.iter().any(|k| k.contains('/')),
        "{:?}",
        page.keys
    );
    let top: Vec<String> = client
        .list(ListOptions::prefix("list/").delimiter("/").page_size(3))
        .try_collect()
        .await
        .expect("list");
    assert_eq!(top, want, "list/05/ is a folder, not a key");

    // Batches.
    let batch = Batch::new()
        .put("b/1", "one")
        .put_with_ttl("b/2", "two", Duration::from_secs(60))
        .delete("greeting");
    let applied = client.batch(&batch, true).await.expect("batch");
    assert_eq!(applied.count, 3);
    assert!(applied.version.is_some_and(|v| v > v2));
    assert_eq!(
        client.get("b/2").await.expect("get").as_deref(),
        Some("two")
    );
    assert_eq!(client.get("greeting").await.expect("get"), None);
    // A batch with conditions: applied only if every one holds.
    let b1 = client
        .get_versioned("b/1")
        .await
        .expect("get")
        .expect("b/1");
    let guarded = Batch::new()
        .put_if("b/1", "uno", Condition::Version(b1.version))
        .put_if("b/3", "three", Condition::Absent)
        .delete_if("b/2", Condition::Present)
        .check("greeting", Condition::Absent);
    assert_eq!(client.batch(&guarded, false).await.expect("holds").count, 4);
    match client.batch(&guarded, false).await {
        Err(Error::PreconditionFailed { detail }) => {
            assert!(detail.contains("operation 0"), "{detail}");
            assert!(detail.contains("b/1"), "{detail}");
        }
        other => panic!("replayed: {other:?}"),
    }
    assert_eq!(
        client.get("b/1").await.expect("get").as_deref(),
        Some("uno")
    );

    // Stats and merge.
    let stats = client.stats().await.expect("stats");
    assert!(stats.keys >= 30, "{stats:?}");
    assert_eq!(stats.merge_progress, None, "no merge runs");
    let report = client.merge().await.expect("merge");
    let after = client.stats().await.expect("stats");
    assert_eq!(after.merges_completed, 1);
    assert_eq!(after.last_merge, Some(report));
}

#[tokio::test]
async fn errors_from_a_real_server_are_typed_with_their_detail() {
    let server = TestServer::start(&["--auth-token", "s3cret", "--max-value-size", "100"]);
    let anonymous = Client::new(server.url()).expect("client");
    assert!(matches!(
        anonymous.get("k").await,
        Err(Error::Unauthorized { .. })
    ));
    // /health needs no token.
    assert!(anonymous.health().await.expect("health").is_healthy());

    let client = Client::builder(server.url())
        .token("s3cret")
        .build()
        .expect("client");
    client.put("k", "v").await.expect("put with token");
    match client.put("k", vec![b'x'; 101]).await {
        Err(Error::TooLarge { detail }) => assert!(detail.contains("100"), "{detail}"),
        other => panic!("expected 413, got {other:?}"),
    }
    match client
        .list_page(&ListOptions::prefix("").page_size(0))
        .await
    {
        Err(e @ Error::Server { .. }) => {
            assert_eq!(e.status(), Some(400));
            let Error::Server {
                detail, request_id, ..
            } = e
            else {
                unreachable!()
            };
            assert!(detail.contains("limit"), "{detail}");
            assert_eq!(request_id.len(), 36, "a UUID");
        }
        other => panic!("expected 400, got {other:?}"),
    }
    assert!(matches!(
        client.put("", "v").await,
        Err(Error::InvalidArgument { .. })
    ));
}

#[tokio::test]
async fn a_server_that_is_not_running_is_a_connect_error_naming_the_fix() {
    // A port that was free a moment ago and is now closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let client = Client::builder(format!("http://127.0.0.1:{port}"))
        .backoff(Duration::from_millis(1))
        .build()
        .expect("client");
    for result in [
        client.get("k").await.map(|_| ()),
        client.put("k", "v").await.map(|_| ()),
        client.merge().await.map(|_| ()),
    ] {
        match result {
            Err(e @ Error::Connect { .. }) => {
                assert!(e.to_string().contains("bitcask-server"), "{e}");
            }
            other => panic!("expected a connect error, got {other:?}"),
        }
    }
}

/// A fake server: accepts connections, records each request's head, and
/// answers with `reply` (or never, if `None`).
struct FakeServer {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeServer {
    fn start(reply: Option<&'static str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let connections = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::clone(&connections);
        let thread = std::thread::spawn(move || {
            let mut handlers = Vec::new();
            for stream in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { break };
                let seen = Arc::clone(&seen);
                let stopping = Arc::clone(&stopping);
                accepted.fetch_add(1, Ordering::Relaxed);
                handlers.push(std::thread::spawn(move || {
                    serve_connection(stream, reply, &seen, &stopping);
                }));
            }
            for handler in handlers {
                let _ = handler.join();
            }
        });
        Self {
            url,
            requests,
            connections,
            stop,
            thread: Some(thread),
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

/// Answers the requests of one connection in turn (keep-alive) until the
/// client closes it or the fake server stops.
fn serve_connection(
    mut stream: std::net::TcpStream,
    reply: Option<&'static str>,
    seen: &Mutex<Vec<String>>,
    stopping: &AtomicBool,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    loop {
        let mut head = String::new();
        let mut content_length = 0usize;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) => {}
                Err(_) if stopping.load(Ordering::Relaxed) => return,
                Err(_) => continue, // a read time-out: look at `stopping` again
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                content_length = v.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let mut body = vec![0u8; content_length];
        let _ = reader.read_exact(&mut body);
        seen.lock().expect("lock").push(head);
        match reply {
            Some(reply) => {
                let _ = stream.write_all(reply.as_bytes());
            }
            // Never answer, until the fake server stops.
            None => {
                while !stopping.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                return;
            }
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop.
        let _ = std::net::TcpStream::connect(self.url.trim_start_matches("http://"));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn request_id(head: &str) -> Option<String> {
    head.lines()
        .find_map(|l| l.strip_prefix("x-request-id: ").map(str::to_string))
}

#[tokio::test]
async fn a_server_that_is_too_slow_is_a_timeout_and_reads_are_retried() {
    let fake = FakeServer::start(None);
    let client = Client::builder(&fake.url)
        .timeout(Duration::from_millis(200))
        .retries(2)
        .backoff(Duration::from_millis(1))
        .build()
        .expect("client");
    let started = Instant::now();
    match client.get("k").await {
        Err(Error::Timeout { after, .. }) => assert_eq!(after, Duration::from_millis(200)),
        other => panic!("expected a time-out, got {other:?}"),
    }
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "three attempts"
    );
    let requests = fake.requests();
    assert_eq!(requests.len(), 3, "a read is retried: {requests:?}");
    let ids: Vec<_> = requests.iter().map(|h| request_id(h)).collect();
    assert!(
        ids[0].is_some() && ids.iter().all(|id| *id == ids[0]),
        "one id for all attempts: {ids:?}"
    );

    // A conditional write is not safe to repeat: one attempt only.
    let cas = WriteOptions::new().condition(Condition::Version(1));
    assert!(matches!(
        client.put_with("k", "v", cas).await,
        Err(Error::Timeout { .. })
    ));
    assert_eq!(fake.requests().len(), 4);
}

#[tokio::test]
async fn unavailable_answers_are_retried_only_when_safe_and_every_request_has_an_id() {
    let fake = FakeServer::start(Some(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 20\r\n\r\n{\"detail\": \"busy!\"}\n",
    ));
    let client = Client::builder(&fake.url)
        .retries(3)
        .backoff(Duration::from_millis(1))
        .build()
        .expect("client");
    match client.stats().await {
        Err(Error::Unavailable { status, detail }) => {
            assert_eq!((status, detail.as_str()), (503, "busy!"))
        }
        other => panic!("expected 503, got {other:?}"),
    }
    assert_eq!(fake.requests().len(), 4, "1 + 3 retries");
    assert!(
        client
            .batch(&Batch::new().put("a", "b"), false)
            .await
            .is_err()
    );
    assert!(client.merge().await.is_err());
    assert_eq!(
        fake.requests().len(),
        6,
        "a batch and a merge are sent once"
    );
    let ids: Vec<String> = fake
        .requests()
        .iter()
        .map(|h| request_id(h).expect("every request has an id"))
        .collect();
    assert_eq!(ids.len(), 6);
    assert_ne!(ids[4], ids[5], "each request has its own id");
}

#[test]
fn the_blocking_client_does_the_same() {
    let server = TestServer::start(&[]);
    let client = blocking::Client::new(server.url()).expect("client");
    assert!(client.health().expect("health").is_healthy());
    client.ping().expect("ping");
    let v = client.put("k", "v").expect("put");
    assert_eq!(client.get("k").expect("get").as_deref(), Some("v"));
    assert_eq!(
        client.get_versioned("k").expect("get").map(|g| g.version),
        Some(v)
    );
    client.put("raw", [1u8, 2, 255]).expect("put");
    assert_eq!(
        client.get_bytes("raw").expect("get").as_deref(),
        Some(&[1u8, 2, 255][..])
    );
    for i in 0..7 {
        client.put(&format!("p/{i}"), "x").expect("put");
    }
    let keys: Vec<String> = client
        .list(ListOptions::prefix("p/").page_size(3))
        .collect::<Result<_, _>>()
        .expect("list");
    assert_eq!(keys.len(), 7);
    assert_eq!(
        client
            .list_page(&ListOptions::prefix("p/"))
            .expect("page")
            .keys
            .len(),
        7
    );
    client
        .batch(&Batch::new().delete("k"), false)
        .expect("batch");
    client.delete("raw").expect("delete");
    client
        .delete_with("p/0", WriteOptions::new().durable(true))
        .expect("delete");
    assert_eq!(client.get("k").expect("get"), None);
    client
        .put_with("c", "1", WriteOptions::new().condition(Condition::Absent))
        .expect("put");
    assert_eq!(client.stats().expect("stats").keys, 7);
    client.merge().expect("merge");
    let down = blocking::Client::new("http://127.0.0.1:1").expect("client");
    assert!(matches!(down.get("k"), Err(Error::Connect { .. })));
}

#[test]
fn base_urls_are_checked_and_the_default_is_the_seeds() {
    // (`BITCASK_SERVER` is tested through the CLI, in a child process.)
    assert_eq!(bitcask_client::DEFAULT_URL, "http://localhost:8000");
    let client = Client::builder("http://example.invalid:9/")
        .build()
        .expect("client");
    assert_eq!(client.base_url(), "http://example.invalid:9");
    assert!(matches!(
        Client::new("localhost:8000"),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Client::new("ftp://x"),
        Err(Error::InvalidArgument { .. })
    ));
}

#[tokio::test]
async fn connections_are_reused_and_an_answer_that_is_not_the_servers_is_invalid() {
    let fake = FakeServer::start(Some(
        "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 6\r\n\r\n<html>",
    ));
    let client = Client::new(&fake.url).expect("client");
    for _ in 0..5 {
        match client.stats().await {
            Err(Error::InvalidResponse { detail }) => {
                assert!(detail.contains("<html>"), "{detail}")
            }
            other => panic!("expected an invalid response, got {other:?}"),
        }
    }
    assert_eq!(fake.requests().len(), 5);
    assert_eq!(
        fake.connections(),
        1,
        "one pooled connection for five requests"
    );
}
