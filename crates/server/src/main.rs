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
    let result = runtime.block_on(async move {
        let listeners = server::bind(&config).await?;
        server::serve(listeners, config, shutdown_signal()).await
    });
    match result {
        Ok(()) => {
            tracing::info!("bye");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(%error, "bitcask-server stopped");
            eprintln!("bitcask-server: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT: shutting down"),
        () = terminate => tracing::info!("SIGTERM: shutting down"),
    }
}
