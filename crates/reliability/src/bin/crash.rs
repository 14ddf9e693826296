//! `bitcask-crash`: the kill -9 harness. It runs `bitcask-server` (itself,
//! in `serve` mode, so that the server is a separate process it can kill),
//! drives concurrent writes over HTTP (puts, deletes, conditional puts,
//! batches) while merges run, records what was acknowledged, SIGKILLs the
//! server at a random moment, restarts it on the same directory, and checks
//! that every acknowledged write is there at its version, that nothing never
//! written appears, and that no batch is half applied. See
//! docs/RELIABILITY.md for the promises and the recorded runs.
//!
//! ```text
//! bitcask-crash run --cycles 200 --sync always
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bitcask_client::blocking;
use clap::{Parser, Subcommand};

use bitcask_reliability::model::{Model, State};
use bitcask_reliability::process::Server;
use bitcask_reliability::rng::{self, Rng};
use bitcask_reliability::{process, writer};

/// The kill -9 crash harness for bitcask-server.
#[derive(Debug, Parser)]
#[command(name = "bitcask-crash", version)]
struct Cli {
    #[command(subcommand)]
    command: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Kill the server again and again under load; check every restart.
    Run(RunArgs),
    /// (Internal) run the server: prints `LISTENING <addr>` once bound.
    #[command(hide = true)]
    Serve {
        /// Flags for the server, as `bitcask-server` takes them.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        flags: Vec<String>,
    },
}

/// Settings of a run.
#[derive(Debug, Clone, clap::Args)]
struct RunArgs {
    /// Kill-restart cycles.
    #[arg(long, default_value_t = 20)]
    cycles: u32,
    /// The server's sync policy: `always`, `never` or an interval.
    #[arg(long, default_value = "always")]
    sync: String,
    /// Concurrent writers (each owns its keys).
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// Keys per writer.
    #[arg(long, default_value_t = 40)]
    keys: usize,
    /// Data file size, small so that merges have work.
    #[arg(long, default_value_t = 16 * 1024)]
    max_file_size: u64,
    /// Shortest and longest time under load before the kill, in ms.
    #[arg(long, default_value_t = 50)]
    min_ms: u64,
    #[arg(long, default_value_t = 800)]
    max_ms: u64,
    /// Seed of the random choices (printed, to repeat a run).
    #[arg(long)]
    seed: Option<u64>,
    /// Directory for the store (a temporary one if not given; kept on failure).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Mode::Serve { flags } => process::serve(flags),
        Mode::Run(args) => match run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("bitcask-crash: FAILED: {message}");
                ExitCode::FAILURE
            }
        },
    }
}

/// The server's flags for a run on `dir`.
fn server_flags(dir: &std::path::Path, args: &RunArgs) -> Vec<String> {
    vec![
        "--data-dir".into(),
        dir.display().to_string(),
        "--sync".into(),
        args.sync.clone(),
        "--max-file-size".into(),
        args.max_file_size.to_string(),
        "--merge-check-interval".into(),
        "off".into(),
    ]
}

fn run(args: &RunArgs) -> Result<(), String> {
    let seed = args.seed.unwrap_or_else(rng::seed_from_clock);
    let temp;
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            temp = std::env::temp_dir().join(format!("bitcask-crash-{seed}"));
            temp
        }
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    println!(
        "bitcask-crash: {} cycles, sync {}, {} writers x {} keys, seed {seed}, dir {}",
        args.cycles,
        args.sync,
        args.writers,
        args.keys,
        dir.display()
    );
    let mut rng = Rng::new(seed);
    let mut models: Vec<Model> = (0..args.writers).map(|_| Model::default()).collect();
    let mut totals = writer::Counts::default();
    for cycle in 1..=args.cycles {
        let server = Server::start(&server_flags(&dir, args))?;
        verify(&server.url, &mut models, args).map_err(|p| {
            format!(
                "cycle {cycle} (seed {seed}, store kept in {}): {}",
                dir.display(),
                p.join("; ")
            )
        })?;
        // Load, with merges, until the kill.
        let stop = Arc::new(AtomicBool::new(false));
        let merger = {
            let (url, stop) = (server.url.clone(), Arc::clone(&stop));
            std::thread::spawn(move || merge_loop(&url, &stop))
        };
        let workers: Vec<_> = std::mem::take(&mut models)
            .into_iter()
            .enumerate()
            .map(|(w, model)| {
                let (url, stop) = (server.url.clone(), Arc::clone(&stop));
                let (keys, seed) = (args.keys, rng.next_u64());
                std::thread::spawn(move || writer::drive(w, model, &url, keys, seed, &stop))
            })
            .collect();
        let wait = args.min_ms + rng.below(args.max_ms.saturating_sub(args.min_ms).max(1));
        std::thread::sleep(Duration::from_millis(wait));
        server.kill();
        stop.store(true, Ordering::Relaxed);
        let _ = merger.join();
        for worker in workers {
            let (model, counts) = worker.join().map_err(|_| "a writer panicked")?;
            models.push(model);
            totals.add(&counts?);
        }
        println!(
            "cycle {cycle}: killed after {wait} ms; acknowledged so far: {} puts, {} conditional puts, {} deletes, {} batches; {} writes in flight at kills",
            totals.puts, totals.conditional, totals.deletes, totals.batches, totals.in_flight
        );
    }
    // A last restart, checked.
    let server = Server::start(&server_flags(&dir, args))?;
    verify(&server.url, &mut models, args).map_err(|p| format!("final check: {}", p.join("; ")))?;
    server.kill();
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!(
        "bitcask-crash: OK: {} cycles, every acknowledged write survived",
        args.cycles
    );
    Ok(())
}

/// Runs merges back to back until `stop` (errors ignored: the server dies).
fn merge_loop(url: &str, stop: &AtomicBool) {
    let Ok(client) = blocking::Client::from_builder(
        bitcask_client::Client::builder(url)
            .retries(0)
            .timeout(Duration::from_secs(30)),
    ) else {
        return;
    };
    while !stop.load(Ordering::Relaxed) {
        if client.merge().is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Checks every writer's keys, and that the store holds no other key.
fn verify(url: &str, models: &mut [Model], args: &RunArgs) -> Result<(), Vec<String>> {
    let client = blocking::Client::new(url).map_err(|e| vec![e.to_string()])?;
    let mut problems = Vec::new();
    for model in models.iter_mut() {
        problems.extend(model.check(|key| match client.get_versioned(key) {
            Ok(Some(v)) => State::Present {
                value: String::from_utf8_lossy(&v.value).into_owned(),
                version: v.version,
            },
            Ok(None) => State::Absent,
            Err(e) => State::Present {
                value: format!("<read failed: {e}>"),
                version: 0,
            },
        }));
    }
    let listed: Vec<String> = client
        .list(bitcask_client::ListOptions::default())
        .collect::<Result<_, _>>()
        .map_err(|e| vec![format!("listing failed: {e}")])?;
    for key in &listed {
        let known = writer::owner(key, args.writers, args.keys).is_some();
        let present = writer::owner(key, args.writers, args.keys)
            .is_some_and(|w| matches!(models[w].state(key), State::Present { .. }));
        if !known || !present {
            problems.push(format!("listed key {key} was never written or is deleted"));
        }
    }
    let expected: usize = models
        .iter()
        .map(|m| {
            m.keys
                .values()
                .filter(|s| matches!(s, State::Present { .. }))
                .count()
        })
        .sum();
    if listed.len() != expected {
        problems.push(format!("{} keys listed, {expected} expected", listed.len()));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}
