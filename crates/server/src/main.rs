//! The `bitcask-server` binary: settings, logs, serve until SIGINT/SIGTERM.

use std::process::ExitCode;

use bitcask_server::config::{Config, ConfigError};
use bitcask_server::{descriptors, logging, server};

/// mimalloc instead of the system allocator: a request allocates and frees
/// a dozen small buffers (headers, body, JSON), and glibc's malloc took
/// about a tenth of the server's CPU under load (docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let config = match Config::from_args(std::env::args_os()) {
        Ok(config) => config,
        Err(ConfigError::Cli(error)) => error.exit(),
        Err(error) => {
            eprintln!("bitcask-server: {error}");
            return ExitCode::from(2);
        }
    };
    logging::init(config.log_format);
    // Every connection holds a descriptor: take all the system allows (the
    // connection caps are then fitted under it, see descriptors.rs).
    match descriptors::raise_soft_limit() {
        Ok((before, after)) if before != after => {
            tracing::info!(?before, ?after, "raised the descriptor limit (ulimit -n)");
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot raise the descriptor limit"),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("bitcask-server: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let (first, second) = signals();
    let result = runtime.block_on(async move {
        let listeners = server::bind(&config).await?;
        server::serve_until(listeners, config, first, second).await
    });
    // Work still running on the blocking pool (an open cut short by a
    // second signal) does not hold the exit up.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            // Logged once: the log is on stderr already.
            tracing::error!("bitcask-server stopped: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Two futures: the first completes on the first SIGINT (Ctrl-C) or
/// SIGTERM, the second on the one after (stop waiting for requests).
fn signals() -> (
    impl std::future::Future<Output = ()> + Send + 'static,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (count_tx, count_rx) = tokio::sync::watch::channel(0u32);
    let counting = async move {
        let mut interrupt =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()) {
                Ok(signal) => Some(signal),
                Err(error) => {
                    tracing::error!(%error, "cannot listen for SIGINT");
                    None
                }
            };
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => Some(signal),
                Err(error) => {
                    tracing::error!(%error, "cannot listen for SIGTERM");
                    None
                }
            };
        loop {
            let name = tokio::select! {
                Some(()) = async { interrupt.as_mut()?.recv().await } => "SIGINT",
                Some(()) = async { terminate.as_mut()?.recv().await } => "SIGTERM",
                else => return,
            };
            let count = *count_tx.borrow() + 1;
            if count == 1 {
                tracing::info!(
                    "{name}: shutting down (a second signal stops waiting for requests)"
                );
            }
            count_tx.send_replace(count);
        }
    };
    let mut first_rx = count_rx.clone();
    let mut second_rx = count_rx;
    let first = async move {
        // The listener lives as long as the first future is polled or the
        // second waits: spawned once, here.
        tokio::spawn(counting);
        let _ = first_rx.wait_for(|&n| n >= 1).await;
    };
    let second = async move {
        let _ = second_rx.wait_for(|&n| n >= 2).await;
    };
    (first, second)
}
