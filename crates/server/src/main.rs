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
    let (first, second) = runtime.block_on(async { signals() });
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

/// Starts listening for SIGINT (Ctrl-C) and SIGTERM (within a runtime);
/// returns two futures: the first completes on the first signal, the
/// second on the one after (stop waiting for requests). Neither completes
/// if the signals cannot be listened for.
fn signals() -> (
    impl std::future::Future<Output = ()> + Send + 'static,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (count_tx, count_rx) = tokio::sync::watch::channel(0u32);
    // Installed here, before serving: from now on a signal is counted,
    // not the default action that ends the process.
    let listen = |kind: SignalKind, name: &str| match signal(kind) {
        Ok(signal) => Some(signal),
        Err(error) => {
            tracing::error!(%error, "cannot listen for {name}");
            None
        }
    };
    let mut interrupt = listen(SignalKind::interrupt(), "SIGINT");
    let mut terminate = listen(SignalKind::terminate(), "SIGTERM");
    let counting = async move {
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
    tokio::spawn(counting);
    let after = |mut count: tokio::sync::watch::Receiver<u32>, signals: u32| async move {
        if count.wait_for(|&n| n >= signals).await.is_err() {
            // No more signals can come.
            std::future::pending::<()>().await;
        }
    };
    (after(count_rx.clone(), 1), after(count_rx, 2))
}
