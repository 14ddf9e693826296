//! The `bitcask` command end to end, as a separate process: against a real
//! server on a free loopback port, and in local mode on a data directory.
//! Output on the right stream, exit codes, stdin and binary values,
//! `--json`, settings precedence, export/import, check and repair.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use bitcask_server::config::Config;
use bitcask_server::server::Background;
use predicates::prelude::*;
use serde_json::Value;

/// A workspace for one test: a settings file nobody else uses and a
/// scratch directory.
struct Env {
    tmp: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            tmp: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn config_file(&self) -> PathBuf {
        self.tmp.path().join("cli-config.toml")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// `bitcask` with a clean environment: no BITCASK_* from the caller,
    /// settings in this test's own file.
    fn bitcask(&self) -> Command {
        let mut cmd = Command::cargo_bin("bitcask").expect("binary");
        for (name, _) in std::env::vars() {
            if name.starts_with("BITCASK_") {
                cmd.env_remove(name);
            }
        }
        cmd.env("BITCASK_CLI_CONFIG", self.config_file());
        cmd.env("XDG_CONFIG_HOME", self.tmp.path().join("xdg"));
        cmd
    }

    /// `bitcask --server <url> args...`.
    fn remote(&self, server: &TestServer, args: &[&str]) -> Command {
        let mut cmd = self.bitcask();
        cmd.arg("--server").arg(server.url()).args(args);
        cmd
    }

    /// `bitcask --data-dir <dir> args...`.
    fn local(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = self.bitcask();
        cmd.arg("--data-dir").arg(dir).args(args);
        cmd
    }
}

/// A real server, stopped when dropped.
struct TestServer {
    server: Option<Background>,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    fn start(flags: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = Self::start_on(dir.path(), flags);
        server._dir = Some(dir);
        server
    }

    fn start_on(dir: &Path, flags: &[&str]) -> Self {
        let mut argv = vec![
            "bitcask-server".to_string(),
            "--port".into(),
            "0".into(),
            "--data-dir".into(),
            dir.to_str().expect("utf-8").into(),
        ];
        argv.extend(flags.iter().map(|f| f.to_string()));
        let config = Config::from_args(argv).expect("config");
        let server = Background::start(config).expect("start");
        assert!(
            server.wait_until_open(Duration::from_secs(30)),
            "store did not open"
        );
        Self {
            server: Some(server),
            _dir: None,
        }
    }

    fn url(&self) -> String {
        self.server.as_ref().expect("running").url()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().expect("clean stop");
        }
    }
}

fn json_of(output: &[u8]) -> Value {
    serde_json::from_slice(output)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(output)))
}

/// A loopback URL nothing listens on.
fn closed_port_url() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    format!("http://127.0.0.1:{port}")
}

#[test]
fn values_go_to_stdout_messages_to_stderr_and_absent_keys_exit_1() {
    let env = Env::new();
    let server = TestServer::start(&[]);
    env.remote(&server, &["put", "greeting", "hello world"])
        .assert()
        .success()
        .stdout("")
        .stderr(predicate::str::contains("stored \"greeting\""));
    env.remote(&server, &["get", "greeting"])
        .assert()
        .success()
        .stdout("hello world")
        .stderr("");
    env.remote(&server, &["get", "missing"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("not found"));
    env.remote(&server, &["delete", "greeting"])
        .assert()
        .success()
        .stdout("");
    env.remote(&server, &["delete", "greeting"])
        .assert()
        .success()
        .stderr(predicate::str::contains("was not there"));
    env.remote(&server, &["get", "greeting"]).assert().code(1);
    env.remote(&server, &["health"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("healthy"));
    env.remote(&server, &["ping"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("pong from"));
}

#[test]
fn stdin_values_and_binary_values_round_trip_byte_for_byte() {
    let env = Env::new();
    let server = TestServer::start(&[]);
    let binary: Vec<u8> = (0..=255u8).chain([0, 0xff, b'\n', b'\r']).collect();
    env.remote(&server, &["put", "bin", "-"])
        .write_stdin(binary.clone())
        .assert()
        .success();
    let out = env.remote(&server, &["get", "bin"]).assert().success();
    assert_eq!(out.get_output().stdout, binary);
    // Text with a trailing newline keeps it, and gains none.
    env.remote(&server, &["put", "text", "-"])
        .write_stdin("line one\nline two\n")
        .assert()
        .success();
    env.remote(&server, &["get", "text"])
        .assert()
        .stdout("line one\nline two\n");
    // --json marks a binary value as base64.
    let out = env
        .remote(&server, &["--json", "get", "bin"])
        .assert()
        .success();
    let json = json_of(&out.get_output().stdout);
    assert!(
        json["value_base64"].is_string() && json["value"].is_null(),
        "{json}"
    );
}

#[test]
fn json_output_is_machine_readable_for_every_command() {
    let env = Env::new();
    let server = TestServer::start(&[]);
    let out = env
        .remote(&server, &["--json", "put", "a/1", "x"])
        .assert()
        .success();
    let put = json_of(&out.get_output().stdout);
    assert_eq!(put["key"], "a/1");
    let version = put["version"].as_u64().expect("version");
    let out = env
        .remote(&server, &["--json", "get", "a/1"])
        .assert()
        .success();
    let got = json_of(&out.get_output().stdout);
    assert_eq!(
        (got["value"].as_str(), got["version"].as_u64()),
        (Some("x"), Some(version))
    );
    let out = env
        .remote(&server, &["--json", "get", "nope"])
        .assert()
        .code(1);
    assert_eq!(json_of(&out.get_output().stdout)["found"], false);
    env.remote(&server, &["put", "a/2", "y"]).assert().success();
    let out = env
        .remote(&server, &["--json", "keys", "--prefix", "a/"])
        .assert()
        .success();
    assert_eq!(
        json_of(&out.get_output().stdout),
        serde_json::json!(["a/1", "a/2"])
    );
    let out = env.remote(&server, &["--json", "stats"]).assert().success();
    assert_eq!(json_of(&out.get_output().stdout)["keys"], 2);
    let out = env.remote(&server, &["--json", "merge"]).assert().success();
    assert!(json_of(&out.get_output().stdout)["files_merged"].is_u64());
    let out = env
        .remote(&server, &["--json", "health"])
        .assert()
        .success();
    assert_eq!(json_of(&out.get_output().stdout)["status"], "healthy");
    let out = env.remote(&server, &["--json", "ping"]).assert().success();
    assert!(json_of(&out.get_output().stdout)["round_trip_ms"].is_f64());
    let out = env
        .remote(&server, &["--json", "delete", "a/1"])
        .assert()
        .success();
    assert_eq!(json_of(&out.get_output().stdout)["deleted"], true);
}

#[test]
fn conditions_that_do_not_hold_exit_4() {
    let env = Env::new();
    let server = TestServer::start(&[]);
    let out = env
        .remote(&server, &["--json", "put", "k", "1"])
        .assert()
        .success();
    let v1 = json_of(&out.get_output().stdout)["version"]
        .as_u64()
        .expect("version");
    env.remote(&server, &["put", "k", "2", "--if-absent"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("precondition failed"));
    env.remote(&server, &["put", "k", "2", "--if-version", &v1.to_string()])
        .assert()
        .success();
    env.remote(&server, &["put", "k", "3", "--if-version", &v1.to_string()])
        .assert()
        .code(4);
    env.remote(&server, &["put", "new", "1", "--if-present"])
        .assert()
        .code(4);
    env.remote(&server, &["delete", "k", "--if-version", "1"])
        .assert()
        .code(4);
    env.remote(&server, &["get", "k"]).assert().stdout("2");
    // Two conditions at once are a usage error.
    env.remote(&server, &["put", "k", "2", "--if-absent", "--if-present"])
        .assert()
        .code(2);
    // ttl and durable are accepted.
    env.remote(&server, &["put", "t", "v", "--ttl", "3600", "--durable"])
        .assert()
        .success();
    env.remote(&server, &["put", "t2", "v", "--ttl", "90m"])
        .assert()
        .success();
    for bad in ["1500ms", "0", "soon", "-5"] {
        env.remote(&server, &["put", "t3", "v", "--ttl", bad])
            .assert()
            .code(2);
    }
}

#[test]
fn batch_applies_all_or_nothing_remote_and_local_and_a_failed_condition_exits_4() {
    let env = Env::new();
    let server = TestServer::start(&[]);
    let data = env.path("data");
    let create = r#"{"ops": [
        {"op": "put", "key": "a", "value": "1", "if_absent": true},
        {"op": "put", "key": "b", "value": "2", "ttl": 3600},
        {"op": "check", "key": "c", "if_absent": true}
    ]}"#;
    let file = env.path("batch.json");
    std::fs::write(&file, create).expect("write");
    let file = file.to_str().expect("utf-8");
    // From a file against the server, from stdin against a data directory.
    let out = env
        .remote(&server, &["--json", "batch", file])
        .assert()
        .success();
    assert_eq!(json_of(&out.get_output().stdout)["count"], 3);
    env.local(&data, &["batch", "-"])
        .write_stdin(create)
        .assert()
        .success()
        .stderr(predicate::str::contains("applied 3 operations"));
    // Again: "a" exists, so nothing is applied, and the operation is named.
    let again = r#"{"ops": [
        {"op": "delete", "key": "b"},
        {"op": "put", "key": "a", "value": "x", "if_absent": true}
    ]}"#;
    for command in [
        env.remote(&server, &["batch"]),
        env.local(&data, &["batch"]),
    ] {
        let mut command = command;
        command
            .write_stdin(again)
            .assert()
            .code(4)
            .stderr(predicate::str::contains("operation 1").and(predicate::str::contains("\"a\"")));
    }
    env.remote(&server, &["get", "b"]).assert().stdout("2");
    env.local(&data, &["get", "b"]).assert().stdout("2");
    // Not a batch, or two conditions on one operation: usage errors.
    for bad in [
        "[1, 2]",
        r#"{"ops": [{"op": "put", "key": "a", "value": "1", "if_absent": true, "if_present": true}]}"#,
    ] {
        env.local(&data, &["batch"])
            .write_stdin(bad)
            .assert()
            .code(2);
    }
}

#[test]
fn an_unreachable_server_exits_3_with_a_hint_to_start_it() {
    let env = Env::new();
    let mut cmd = env.bitcask();
    cmd.args(["--server", &closed_port_url(), "get", "k"])
        .assert()
        .code(3)
        .stdout("")
        .stderr(predicate::str::contains("bitcask-server").and(predicate::str::contains("hint:")));
    // A server that accepts but never answers: a time-out, also 3.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", silent.local_addr().expect("addr"));
    let started = Instant::now();
    env.bitcask()
        .args(["--server", &url, "--timeout", "300ms", "get", "k"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("no answer"));
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn the_server_url_comes_from_flag_then_environment_then_settings_file() {
    let env = Env::new();
    let server = TestServer::start(&[]);
    let dead = closed_port_url();
    // (The default, http://localhost:8000, is not tested: something may
    // listen there on a developer's machine.)
    env.bitcask()
        .args(["config", "set", "server_url", &server.url()])
        .assert()
        .success();
    env.bitcask()
        .args(["config", "get", "server_url"])
        .assert()
        .success()
        .stdout(format!("{}\n", server.url()));
    env.bitcask()
        .args(["put", "k", "from-file"])
        .assert()
        .success();
    // The environment beats the file...
    env.bitcask()
        .env("BITCASK_SERVER", &dead)
        .args(["get", "k"])
        .assert()
        .code(3);
    // ... and the flag beats the environment.
    env.bitcask()
        .env("BITCASK_SERVER", &dead)
        .args(["--server", &server.url(), "get", "k"])
        .assert()
        .success()
        .stdout("from-file");
    let out = env
        .bitcask()
        .args(["--json", "config", "list"])
        .assert()
        .success();
    assert_eq!(
        json_of(&out.get_output().stdout)["server_url"],
        server.url()
    );
    env.bitcask()
        .args(["config", "set", "colour", "blue"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown setting"));
    env.bitcask()
        .args(["config", "set", "server_url", "localhost:8000"])
        .assert()
        .code(2);
    env.bitcask()
        .args(["config", "set", "timeout", "soon"])
        .assert()
        .code(2);
    env.bitcask()
        .args(["config", "get", "timeout"])
        .assert()
        .code(1);
    // Durations take units; unset brings the default back.
    env.bitcask()
        .args(["config", "set", "timeout", "1m 30s"])
        .assert()
        .success();
    env.bitcask()
        .args(["config", "get", "timeout"])
        .assert()
        .success()
        .stdout("1m 30s\n");
    env.bitcask()
        .args(["get", "k"])
        .assert()
        .success()
        .stdout("from-file");
    env.bitcask()
        .args(["config", "unset", "server_url"])
        .assert()
        .success();
    env.bitcask()
        .args(["config", "get", "server_url"])
        .assert()
        .code(1);
    env.bitcask()
        .args(["config", "unset", "server_url"])
        .assert()
        .success()
        .stderr(predicate::str::contains("was not set"));
    env.bitcask()
        .args(["config", "unset", "colour"])
        .assert()
        .code(2);
    // Without BITCASK_CLI_CONFIG the file is in the platform's config dir.
    let xdg = env.path("xdg");
    env.bitcask()
        .env_remove("BITCASK_CLI_CONFIG")
        .args(["config", "path"])
        .assert()
        .success()
        .stdout(format!(
            "{}\n",
            xdg.join("bitcask").join("config.toml").display()
        ));
}

#[test]
fn a_token_comes_from_flag_environment_or_settings() {
    let env = Env::new();
    let server = TestServer::start(&["--auth-token", "s3cret"]);
    env.remote(&server, &["get", "k"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("unauthorised").and(predicate::str::contains("--token")));
    env.remote(&server, &["--token", "s3cret", "put", "k", "v"])
        .assert()
        .success();
    env.remote(&server, &["get", "k"])
        .env("BITCASK_AUTH_TOKEN", "s3cret")
        .assert()
        .success()
        .stdout("v");
    env.bitcask()
        .args(["config", "set", "auth_token", "s3cret"])
        .assert()
        .success();
    env.remote(&server, &["get", "k"])
        .assert()
        .success()
        .stdout("v");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(env.config_file())
            .expect("settings file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the token's file is its owner's only");
    }
    env.bitcask()
        .args(["config", "list"])
        .assert()
        .stdout(predicate::str::contains("s3cret").not());
    env.remote(&server, &["health"]).assert().success();
}

#[test]
fn keys_lists_in_order_with_prefix_start_and_limit_remote_and_local() {
    let env = Env::new();
    let server = TestServer::start(&[]);
    let dir = env.path("store");
    for key in ["b/2", "a/1", "b/1", "b/3", "c"] {
        env.remote(&server, &["put", key, "v"]).assert().success();
        env.local(&dir, &["put", key, "v"]).assert().success();
    }
    let expect = "b/1\nb/2\n";
    env.remote(&server, &["keys", "--prefix", "b/", "--limit", "2"])
        .assert()
        .success()
        .stdout(expect);
    env.local(&dir, &["keys", "--prefix", "b/", "--limit", "2"])
        .assert()
        .success()
        .stdout(expect);
    env.remote(&server, &["keys", "--start-after", "b/2"])
        .assert()
        .stdout("b/3\nc\n");
    env.local(&dir, &["keys", "--start-after", "b/2"])
        .assert()
        .stdout("b/3\nc\n");
}

#[test]
fn local_mode_reads_beside_a_running_server_and_refuses_to_write() {
    let env = Env::new();
    let dir = env.path("store");
    env.local(&dir, &["put", "k", "before"]).assert().success();
    env.local(&dir, &["get", "k"])
        .assert()
        .success()
        .stdout("before");
    env.local(&dir, &["stats"])
        .assert()
        .success()
        .stdout(predicate::str::contains("keys:         1"));

    let server = TestServer::start_on(&dir, &[]);
    env.remote(&server, &["put", "k", "from-server"])
        .assert()
        .success();
    env.local(&dir, &["get", "k"])
        .assert()
        .success()
        .stdout("from-server")
        .stderr(
            predicate::str::contains("in use by process")
                .and(predicate::str::contains("read-only")),
        );
    env.local(&dir, &["put", "k", "x"]).assert().code(5).stderr(
        predicate::str::contains("in use by process").and(predicate::str::contains("--server")),
    );
    env.local(&dir, &["repair"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("stop the server"));
    env.local(&dir, &["check"]).assert().success();
    drop(server);

    env.local(&dir, &["delete", "k"]).assert().success();
    env.local(&dir, &["get", "k"]).assert().code(1);
    env.local(&dir, &["merge"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("merged"));
    env.local(&env.path("nowhere"), &["get", "k"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("no store at"));
    assert!(
        !env.path("nowhere").exists(),
        "a read does not create a store"
    );
}

#[test]
fn commands_used_in_the_wrong_mode_are_usage_errors() {
    let env = Env::new();
    let dir = env.path("store");
    for command in ["check", "repair", "export", "import"] {
        env.bitcask()
            .args(["--server", &closed_port_url(), command])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("--data-dir"));
    }
    env.local(&dir, &["health"]).assert().code(2);
    env.bitcask()
        .args(["--server", "http://x", "--data-dir", "d", "get", "k"])
        .assert()
        .code(2);
    env.bitcask().args(["frobnicate"]).assert().code(2);
    env.bitcask()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::contains(env!("CARGO_PKG_VERSION")));
    env.bitcask()
        .args(["completions", "bash"])
        .assert()
        .success()
        .stdout(predicate::str::contains("bitcask"));
}

#[test]
fn an_import_of_an_export_gives_the_same_store() {
    let env = Env::new();
    let source = env.path("source");
    env.local(&source, &["put", "text", "héllo wörld"])
        .assert()
        .success();
    env.local(&source, &["put", "bin", "-"])
        .write_stdin(vec![0u8, 1, 2, 0xff, 0xfe])
        .assert()
        .success();
    env.local(&source, &["put", "session", "s", "--ttl", "1h"])
        .assert()
        .success();
    env.local(&source, &["put", "gone", "x"]).assert().success();
    env.local(&source, &["delete", "gone"]).assert().success();

    let out = env.local(&source, &["export"]).assert().success();
    let exported = out.get_output().stdout.clone();
    let text = String::from_utf8(exported.clone()).expect("JSON lines are UTF-8");
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.contains("\"value_base64\":\"AAEC//4=\""), "{text}");
    assert!(text.contains("expires_at_ms"), "{text}");
    // Quiet when stdout is not a terminal: no progress bar on stderr.
    assert!(!String::from_utf8_lossy(&out.get_output().stderr).contains('['));

    let target = env.path("target");
    env.local(&target, &["import", "-"])
        .write_stdin(exported.clone())
        .assert()
        .success()
        .stderr(predicate::str::contains("imported 3 records"));
    let again = env.local(&target, &["export"]).assert().success();
    assert_eq!(again.get_output().stdout, exported);

    // To a file and from a file.
    let file = env.path("dump.jsonl");
    env.local(
        &source,
        &["export", "--output", file.to_str().expect("utf-8")],
    )
    .assert()
    .success()
    .stdout("");
    let third = env.path("third");
    env.local(&third, &["import", file.to_str().expect("utf-8")])
        .assert()
        .success();
    let out = env.local(&third, &["export"]).assert().success();
    assert_eq!(out.get_output().stdout, exported);
    // --json does not mix a summary into an export on stdout.
    let out = env
        .local(&third, &["--json", "export", "-o", "-"])
        .assert()
        .success();
    assert_eq!(out.get_output().stdout, exported);
    let out = env
        .local(
            &third,
            &["--json", "export", "-o", file.to_str().expect("utf-8")],
        )
        .assert()
        .success();
    assert_eq!(json_of(&out.get_output().stdout)["records"], 3);
}

#[test]
fn a_bad_import_line_is_named_and_the_lines_before_it_are_kept() {
    let env = Env::new();
    let dir = env.path("store");
    let input = "{\"key\": \"a\", \"value\": \"1\"}\n\n{\"key\": \"b\"}\n{\"key\": \"c\", \"value\": \"3\"}\n";
    env.local(&dir, &["import"])
        .write_stdin(input)
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("line 3").and(predicate::str::contains("1 records before it")),
        );
    env.local(&dir, &["get", "a"])
        .assert()
        .success()
        .stdout("1");
    env.local(&dir, &["get", "c"]).assert().code(1);
    // An already expired record is skipped.
    env.local(&dir, &["import"])
        .write_stdin("{\"key\": \"old\", \"value\": \"x\", \"expires_at_ms\": 1000}\n")
        .assert()
        .success()
        .stderr(predicate::str::contains("1 already expired"));
    env.local(&dir, &["get", "old"]).assert().code(1);
}

/// Writes `n` keys through the engine into `dir`, several files, no hints.
fn filled_store(dir: &Path, n: usize) -> Vec<(String, String)> {
    let db = bitcask::Bitcask::open_with(
        dir,
        bitcask::Options::new()
            .sync(bitcask::SyncPolicy::Never)
            .max_file_size(4096)
            .use_hints(false),
    )
    .expect("open");
    let pairs: Vec<(String, String)> = (0..n)
        .map(|i| {
            (
                format!("key-{i:04}"),
                format!("value-{i:04}-{}", "x".repeat(40)),
            )
        })
        .collect();
    for (k, v) in &pairs {
        db.put(k.as_bytes(), v.as_bytes()).expect("put");
    }
    db.close().expect("close");
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "hint") {
            std::fs::remove_file(path).expect("remove hint");
        }
    }
    pairs
}

#[test]
fn backup_copies_a_store_locally_or_into_the_servers_backup_directory() {
    let env = Env::new();
    let dir = env.path("store");
    let pairs = filled_store(&dir, 50);
    let copy = env.path("copy");
    env.local(&dir, &["backup", copy.to_str().expect("utf-8")])
        .assert()
        .success()
        .stdout(predicate::str::contains("written"));
    let (key, value) = &pairs[7];
    env.local(&copy, &["get", key])
        .assert()
        .success()
        .stdout(predicate::eq(value.as_str()));
    // An existing directory is refused; so is a local backup without a destination.
    env.local(&dir, &["backup", copy.to_str().expect("utf-8")])
        .assert()
        .code(5);
    env.local(&dir, &["backup"]).assert().code(2);

    let backups = env.path("server-backups");
    let server = TestServer::start(&["--backup-dir", backups.to_str().expect("utf-8")]);
    env.remote(&server, &["put", "k", "v"]).assert().success();
    let out = env
        .remote(&server, &["--json", "backup", "nightly"])
        .assert()
        .success();
    let report = json_of(&out.get_output().stdout);
    assert_eq!(report["name"], "nightly");
    env.local(&backups.join("nightly"), &["get", "k"])
        .assert()
        .success()
        .stdout(predicate::eq("v"));
    env.remote(&server, &["backup", "../elsewhere"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("name"));
}

#[test]
fn scrub_verifies_the_sealed_files_beside_the_store() {
    let env = Env::new();
    let dir = env.path("store");
    filled_store(&dir, 200);
    env.local(&dir, &["scrub"]).assert().success().stdout(
        predicate::str::contains("no damage").and(predicate::str::contains("sealed files")),
    );
    let out = env.local(&dir, &["--json", "scrub"]).assert().success();
    let report = json_of(&out.get_output().stdout);
    assert_eq!(report["damaged_records"], 0);
    assert!(
        report["files_verified"].as_u64().is_some_and(|n| n >= 3),
        "{report}"
    );
    assert!(
        report["bytes_verified"].as_u64().is_some_and(|n| n > 0),
        "{report}"
    );
}

#[test]
fn check_finds_a_corrupted_byte_and_repair_makes_the_store_open_with_the_rest_intact() {
    let env = Env::new();
    let dir = env.path("store");
    let pairs = filled_store(&dir, 200);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "data"))
        .collect();
    files.sort();
    assert!(files.len() > 3);
    // Damage a value byte of the third record of the second file.
    let record = 29 + 8 + pairs[0].1.len() as u64;
    let offset = 32 + 2 * record;
    let victim = files[1].clone();
    let mut bytes = std::fs::read(&victim).expect("read");
    bytes[(offset + record - 2) as usize] ^= 0x20;
    std::fs::write(&victim, &bytes).expect("write");

    env.local(&dir, &["check"]).assert().code(1).stdout(
        predicate::str::contains("DAMAGE")
            .and(predicate::str::contains(
                victim.file_name().expect("name").to_str().expect("utf-8"),
            ))
            .and(predicate::str::contains(format!("offset {offset}"))),
    );
    let out = env.local(&dir, &["--json", "check"]).assert().code(1);
    let report = json_of(&out.get_output().stdout);
    assert_eq!(report["damaged"], true);
    let damaged: Vec<&Value> = report["files"]
        .as_array()
        .expect("files")
        .iter()
        .flat_map(|f| f["damage"].as_array().expect("damage"))
        .collect();
    assert_eq!(damaged.len(), 1);
    assert_eq!(damaged[0]["offset"], offset);
    let lost_key = damaged[0]["keys"][0]["key"]
        .as_str()
        .expect("key")
        .to_string();

    // The store does not open; the error says what to do.
    env.local(&dir, &["get", "key-0000"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("corrupt").and(predicate::str::contains("repair")));

    env.local(&dir, &["repair"])
        .assert()
        .success()
        .stdout(predicate::str::contains("rewrote").and(predicate::str::contains(&lost_key)));
    env.local(&dir, &["check"])
        .assert()
        .success()
        .stdout(predicate::str::contains("no damage"));
    let out = env.local(&dir, &["export"]).assert().success();
    let exported: Vec<Value> = out
        .get_output()
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(json_of)
        .collect();
    let want: Vec<Value> = pairs
        .iter()
        .filter(|(k, _)| *k != lost_key)
        .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
        .collect();
    assert_eq!(exported, want, "every undamaged record, exactly");
}

#[test]
fn cluster_commands_show_and_change_the_members() {
    let env = Env::new();
    let single = TestServer::start(&[]);
    env.remote(&single, &["cluster", "status"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("single node"));

    let ports: Vec<u16> = (0..3)
        .map(|_| {
            // Not "bind port 0 and release": another bind could take it.
            bitcask_reliability::ports::unused_port(std::net::Ipv4Addr::LOCALHOST.into())
                .expect("free port")
        })
        .collect();
    let founders: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
        .collect();
    let founders = founders.join(",");
    let nodes: Vec<TestServer> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            let id = (i + 1).to_string();
            let port = port.to_string();
            TestServer::start(&[
                "--node-id",
                &id,
                "--peer-port",
                &port,
                "--initial-cluster",
                &founders,
            ])
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let views: Vec<Value> = nodes
            .iter()
            .map(|n| {
                let out = env
                    .remote(n, &["--json", "cluster", "status"])
                    .output()
                    .expect("run");
                json_of(&out.stdout)
            })
            .collect();
        if views.iter().all(|v| v["leader_id"].is_u64()) {
            break views[0].clone();
        }
        assert!(Instant::now() < deadline, "no leader: {views:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["members"].as_array().expect("members").len(), 3);
    env.remote(&nodes[1], &["cluster", "status"])
        .assert()
        .success()
        .stdout(predicate::str::contains("voter").and(predicate::str::contains("*")));
    env.remote(&nodes[2], &["cluster", "remove", "9"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("not a member"));
}

#[test]
fn watch_prints_each_change_until_interrupted_and_local_prints_the_history() {
    use std::io::BufRead;
    let env = Env::new();
    let server = TestServer::start(&[]);
    env.remote(&server, &["put", "skip", "x"])
        .assert()
        .success();
    // The version of that put starts the watch (deterministic, unlike
    // "from now" racing the puts below).
    let from = {
        let out = env
            .remote(&server, &["--json", "put", "k1", "one"])
            .output()
            .expect("put");
        json_of(&out.stdout)["version"].as_u64().expect("version")
    };
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("bitcask"))
        .args(["--server", &server.url(), "watch", "--prefix", "k"])
        .args(["--from-seq", &from.to_string()])
        .env("BITCASK_CLI_CONFIG", env.config_file())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn watch");
    env.remote(&server, &["put", "other", "x"])
        .assert()
        .success();
    env.remote(&server, &["delete", "k1"]).assert().success();
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let got: Vec<String> = (0..2)
        .map(|_| lines.next().expect("a line").expect("read"))
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        got,
        vec![
            format!("{from} put k1 one"),
            format!("{} delete k1", from + 2)
        ]
    );
    // JSON, and a data directory's history (then it exits).
    drop(server);
    let dir = env.path("store");
    env.local(&dir, &["put", "a", "1"]).assert().success();
    env.local(&dir, &["put", "b", "2"]).assert().success();
    env.local(&dir, &["delete", "a"]).assert().success();
    let out = env
        .local(&dir, &["--json", "watch", "--ops", "put"])
        .output()
        .expect("watch");
    assert!(out.status.success());
    let keys: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            json_of(l.as_bytes())["key"]
                .as_str()
                .expect("key")
                .to_string()
        })
        .collect();
    assert_eq!(keys, vec!["a", "b"]);
}

#[test]
fn watching_compacted_history_exits_6_saying_what_to_do() {
    let env = Env::new();
    let server = TestServer::start(&["--max-file-size", "4KiB", "--merge-check-interval", "off"]);
    let value = "v".repeat(50);
    for i in 0..200 {
        env.remote(&server, &["put", &format!("k{}", i % 5), &value])
            .assert()
            .success();
    }
    env.remote(&server, &["merge"]).assert().success();
    let out = env
        .remote(&server, &["watch", "--from-seq", "1"])
        .output()
        .expect("watch");
    assert_eq!(out.status.code(), Some(6));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("compacted"), "{stderr}");
    assert!(stderr.contains("--from-seq"), "{stderr}");
    env.remote(&server, &["watch", "--ops", "upsert"])
        .assert()
        .code(2);
}
