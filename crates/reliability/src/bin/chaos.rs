//! `bitcask-chaos`: minutes of random faults on a local cluster under
//! load, with every client operation recorded and the history checked for
//! linearizability at the end (docs/RELIABILITY.md, "Cluster chaos").
//!
//! ```text
//! bitcask-chaos run --seconds 300 --nodes 3 --clients 4 --keys 5
//! ```
//!
//! Faults, one at a time (so a majority is always whole): SIGKILL a node
//! (the leader half the time) and restart it; SIGSTOP a node and SIGCONT it;
//! cut a node off from the others (blackholed or refused connections);
//! slow a node's peer traffic; replace a node (the leader half the time):
//! add a new node under a new id, wait until it votes, remove the old one
//! and stop it. Nodes run this very binary in its `serve` mode, on
//! 127.0.0.N with a fault proxy in front of each peer port.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bitcask_reliability::cluster::{self, Cluster};
use bitcask_reliability::proxy::Fault;
use bitcask_reliability::rng::{self, Rng};
use bitcask_reliability::{history, linearizability, process};
use clap::{Parser, Subcommand};

/// Random faults on a local cluster, histories checked.
#[derive(Debug, Parser)]
#[command(name = "bitcask-chaos", version)]
struct Cli {
    #[command(subcommand)]
    command: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Run the cluster under faults and load; check the history.
    Run(RunArgs),
    /// (Internal) run a server: prints `LISTENING <addr>` once bound.
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
    /// How long to run.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Nodes in the cluster.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Keys the clients share.
    #[arg(long, default_value_t = 5)]
    keys: usize,
    /// Seconds between the starts of two faults.
    #[arg(long, default_value_t = 4)]
    fault_every: u64,
    /// The random seed (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Where the nodes keep their data (default: a temporary directory).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Mode::Serve { flags } => process::serve(flags),
        Mode::Run(args) => match run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bitcask-chaos: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// What happened in a run.
#[derive(Debug, Default)]
struct Tally {
    kills: u32,
    pauses: u32,
    partitions: u32,
    slowdowns: u32,
    replacements: u32,
}

fn run(args: &RunArgs) -> Result<(), String> {
    let seed = args.seed.unwrap_or_else(rng::seed_from_clock);
    eprintln!("bitcask-chaos: seed {seed}");
    let temp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let root = args
        .dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let cluster = Cluster::start(&root, &exe, args.nodes, &[])?;
    let cluster = Arc::new(std::sync::Mutex::new(cluster));
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let targets = cluster::client_targets(&cluster);
    let clients = {
        let (stop, targets) = (Arc::clone(&stop), Arc::clone(&targets));
        let (n, keys) = (args.clients, args.keys);
        std::thread::spawn(move || history::run_clients(n, keys, targets, stop, start, seed, false))
    };
    let mut rng = Rng::new(seed);
    let mut tally = Tally::default();
    let deadline = start + Duration::from_secs(args.seconds);
    while Instant::now() + Duration::from_secs(args.fault_every) < deadline {
        std::thread::sleep(Duration::from_millis(500 + rng.below(1000)));
        inject(&cluster, &mut rng, &mut tally)?;
        std::thread::sleep(Duration::from_secs(
            args.fault_every.saturating_sub(2).max(1),
        ));
    }
    {
        let mut c = cluster::lock(&cluster);
        c.recover_all()?;
        c.wait_for_leader(Duration::from_secs(60))?;
    }
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let recorded = clients.join().map_err(|_| "a client thread panicked")?;
    let (completed, unknown) = recorded.counts();
    eprintln!(
        "bitcask-chaos: {completed} operations completed, {unknown} writes of unknown outcome \
         (write statuses {:?}); checking",
        recorded.write_statuses
    );
    let checked = Instant::now();
    let failures = linearizability::check_all(&recorded.events);
    let undecided = failures.iter().filter(|v| v.undecided).count();
    let violation = failures.iter().find(|v| !v.undecided);
    println!(
        "seed {seed}: {} s, {} nodes, {} clients on {} keys; {completed} operations completed, \
         {unknown} writes of unknown outcome; faults: {} kills, {} pauses, {} partitions, \
         {} slowdowns, {} node replacements; checked in {:?}: {} ({undecided} keys undecided)",
        args.seconds,
        args.nodes,
        args.clients,
        args.keys,
        tally.kills,
        tally.pauses,
        tally.partitions,
        tally.slowdowns,
        tally.replacements,
        checked.elapsed(),
        match violation {
            None => "no violation".to_string(),
            Some(v) => v.to_string(),
        }
    );
    match violation {
        Some(v) => Err(v.to_string()),
        None => Ok(()),
    }
}

/// Injects one fault and undoes it after a while.
fn inject(cluster: &cluster::Shared, rng: &mut Rng, tally: &mut Tally) -> Result<(), String> {
    let lock = || cluster::lock(cluster);
    let (ids, leader) = {
        let c = lock();
        (c.ids(), c.leader())
    };
    let pick = |rng: &mut Rng| ids[rng.below(ids.len() as u64) as usize];
    let victim = match leader {
        Some(l) if rng.below(2) == 0 => l,
        _ => pick(rng),
    };
    let hold = Duration::from_millis(1000 + rng.below(2500));
    match rng.below(6) {
        0 => {
            lock().kill(victim);
            tally.kills += 1;
            std::thread::sleep(hold);
            lock().restart(victim)?;
        }
        1 => {
            lock().pause(victim);
            tally.pauses += 1;
            std::thread::sleep(hold);
            lock().resume(victim);
        }
        2 | 3 => {
            let fault = if rng.below(2) == 0 {
                Fault::Blackhole
            } else {
                Fault::Drop
            };
            lock().isolate(victim, fault);
            tally.partitions += 1;
            std::thread::sleep(hold);
            lock().heal();
        }
        4 => {
            let by = Duration::from_millis(20 + rng.below(150));
            lock().slow(victim, by);
            tally.slowdowns += 1;
            std::thread::sleep(hold);
            lock().heal();
        }
        _ => {
            replace(cluster, victim)?;
            tally.replacements += 1;
        }
    }
    Ok(())
}

/// Replaces node `old` by a new node under a new id: the new one is added
/// (and has caught up) before the old one is removed, so the cluster keeps
/// three voters but for the moment between. The membership requests go to
/// running nodes other than `old`, without holding the cluster's lock (an
/// addition waits for the new node to catch up; clients go on meanwhile).
fn replace(cluster: &cluster::Shared, old: u64) -> Result<(), String> {
    let lock = || cluster::lock(cluster);
    let (new, peer_addr) = lock().launch_new_node()?;
    let via = |c: &Cluster| {
        c.up_urls()
            .into_iter()
            .find(|(id, _)| *id != old && *id != new)
            .map(|(_, url)| url)
            .ok_or_else(|| "no running node to ask".to_string())
    };
    let url = via(&lock())?;
    cluster::add_member(&url, new, peer_addr, 30)?;
    let url = via(&lock())?;
    cluster::remove_member(&url, old, 30)?;
    // The removed node runs on for a moment (its clients may still ask it)
    // before it is stopped, as an operator would.
    std::thread::sleep(Duration::from_secs(1));
    lock().retire(old);
    Ok(())
}
