//! A server for tests: the real `serve` on a free loopback port, with a
//! fresh data directory, stopped (gracefully) when dropped.
#![allow(dead_code, missing_docs)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bitcask_server::config::Config;
use bitcask_server::server;

pub struct TestServer {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), server::ServeError>>>,
}

impl TestServer {
    /// Starts a server with these extra flags (on top of port 0 and a temp dir).
    pub async fn start(flags: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, flags).await
    }

    pub async fn start_in(dir: tempfile::TempDir, flags: &[&str]) -> Self {
        let data_dir = dir.path().to_str().expect("utf-8 path").to_string();
        let mut argv = vec!["bitcask-server", "--port", "0", "--data-dir", &data_dir];
        argv.extend_from_slice(flags);
        let config = Config::from_args(argv).expect("config");
        let listeners = server::bind(&config).await.expect("bind");
        let addr = listeners.http_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(listeners, config, async move {
            let _ = stopped.await;
        }));
        let server = Self {
            addr,
            client: reqwest::Client::new(),
            dir,
            stop: Some(stop),
            task: Some(task),
        };
        server.wait_until_open().await;
        server
    }

    async fn wait_until_open(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self.client.get(self.url("/health")).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "server did not open its store");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("get")
    }

    /// The body of `GET path`.
    pub async fn get_text(&self, path: &str) -> String {
        text(self.get(path).await).await
    }

    /// `PUT /kv/{key}` of `{"value": value}` with extra headers.
    pub async fn put_json_with(
        &self,
        key: &str,
        value: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self
            .client
            .put(self.url(&format!("/kv/{key}")))
            .json(&serde_json::json!({ "value": value }));
        for (name, header) in headers {
            request = request.header(*name, *header);
        }
        request.send().await.expect("put")
    }

    /// `PUT /kv/{key}` of `{"value": value}`.
    pub async fn put_json(&self, key: &str, value: &str) -> reqwest::Response {
        self.put_json_with(key, value, &[]).await
    }

    /// `GET /stats` as JSON.
    pub async fn stats(&self) -> serde_json::Value {
        self.get("/stats").await.json().await.expect("stats json")
    }

    /// Stops the server gracefully and waits for it (closing the store);
    /// returns the data directory for a restart.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server stopped cleanly");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        std::mem::replace(&mut self.dir, dir)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The body of a response as text.
pub async fn text(response: reqwest::Response) -> String {
    response.text().await.expect("body")
}
