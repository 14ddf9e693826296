//! The server as a child process: started from this very binary in its
//! hidden `serve` mode (so the harness can SIGKILL it), with its address
//! read from its first line of output.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use bitcask_client::blocking;

/// Runs the server in this process with `flags` (as `bitcask-server` takes
/// them), printing `LISTENING <addr>` once bound. The `serve` mode of the
/// harness binaries.
pub fn serve(flags: Vec<String>) -> ExitCode {
    use bitcask_server::config::Config;
    let argv = std::iter::once("bitcask-server".to_string()).chain(flags);
    let config = match Config::from_args(argv) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("serve: {e}");
            return ExitCode::from(2);
        }
    };
    bitcask_server::logging::init(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("serve: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(async move {
        let listeners = bitcask_server::server::bind(&config).await?;
        if let Ok(addr) = listeners.http_addr() {
            println!("LISTENING {addr}");
        }
        bitcask_server::server::serve(listeners, config, std::future::pending()).await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("serve: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The address a child started in `serve` mode prints first
/// (`LISTENING <addr>`); kills and reaps it if it prints anything else.
pub fn listening_addr(child: &mut Child) -> Result<String, String> {
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    match line.trim().strip_prefix("LISTENING ") {
        Some(addr) => Ok(addr.to_string()),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!("the server did not start: {line:?}"))
        }
    }
}

/// A server process and its base URL; killed (SIGKILL) when dropped.
pub struct Server {
    child: Child,
    /// `http://<addr>`.
    pub url: String,
}

impl Server {
    /// Starts `<this binary> serve --port 0 <flags>` and waits until its
    /// store is open.
    pub fn start(flags: &[String]) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .args(["serve", "--port", "0"])
            .args(flags)
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the server: {e}"))?;
        let addr = listening_addr(&mut child)?;
        let server = Self {
            url: format!("http://{addr}"),
            child,
        };
        let client = blocking::Client::new(&server.url).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !client.health().is_ok_and(|h| h.is_healthy()) {
            if Instant::now() > deadline {
                return Err("the server did not open its store within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(server)
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and reap.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
