//! The command line: global options and commands, as clap parses them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Talk to a bitcask server, or work on a data directory directly.
///
/// Values go to stdout byte for byte; messages and errors go to stderr.
/// Exit codes: 0 success; 1 key absent (get), damage found (check) or
/// server not healthy; 2 usage or configuration error; 3 cannot reach the
/// server; 4 a condition (--if-*) did not hold; 5 any other failure; 6 the
/// changes `watch` asked for were compacted by a merge.
#[derive(Debug, Parser)]
#[command(name = "bitcask", version, propagate_version = true)]
pub struct Cli {
    /// Server URL [default: $BITCASK_SERVER, else config `server_url`, else
    /// http://localhost:8000].
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,

    /// Work on this data directory directly instead of calling a server
    /// (read-only if a server holds it).
    #[arg(long, global = true, value_name = "DIR", conflicts_with = "server")]
    pub data_dir: Option<PathBuf>,

    /// Bearer token for a server started with --auth-token [default: config `auth_token`].
    #[arg(
        long,
        global = true,
        env = "BITCASK_AUTH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,

    /// How long to wait for the server's answer: seconds, or a duration
    /// such as `500ms` or `2m` [default: config `timeout`, else 30s].
    #[arg(long, global = true, value_name = "DURATION", value_parser = crate::config::parse_duration)]
    pub timeout: Option<std::time::Duration>,

    /// Machine-readable output (JSON) on stdout.
    #[arg(long, global = true)]
    pub json: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Store VALUE under KEY (`-` reads the value from stdin).
    Put {
        /// The key.
        key: String,
        /// The value; `-` reads stdin to its end (binary is fine).
        value: String,
        /// Expire the value after this long: seconds, or a duration such as
        /// `90s`, `10m` or `1h` (whole seconds).
        #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_ttl)]
        ttl: Option<u64>,
        /// Write conditions.
        #[command(flatten)]
        condition: ConditionArgs,
        /// Return only once the write is on disk (fsynced).
        #[arg(long)]
        durable: bool,
    },
    /// Print the value of KEY (exit 1 if absent).
    Get {
        /// The key.
        key: String,
    },
    /// Remove KEY (removing an absent key is not an error).
    Delete {
        /// The key.
        key: String,
        /// Delete only at this version.
        #[arg(long, value_name = "VERSION")]
        if_version: Option<u64>,
        /// Return only once the delete is on disk.
        #[arg(long)]
        durable: bool,
    },
    /// Apply puts, deletes and checks all or nothing, from a JSON file (or
    /// stdin: `-` or no FILE) in `POST /batch`'s shape:
    /// `{"ops": [{"op": "put", "key": "a", "value": "1", "if_absent": true},
    /// {"op": "delete", "key": "b", "if_version": 7}, {"op": "check",
    /// "key": "c", "if_present": true}]}`. Every condition is checked
    /// first; if one fails, nothing is applied (exit 4, naming it).
    Batch {
        /// The JSON file; `-` or none for stdin.
        file: Option<String>,
        /// Return only once the batch is on disk (fsynced).
        #[arg(long)]
        durable: bool,
    },
    /// Check that the server is up and its store is open.
    Health,
    /// Measure a round trip to the server.
    Ping,
    /// List keys in order.
    Keys {
        /// Only keys starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Only keys after this one.
        #[arg(long, value_name = "KEY")]
        start_after: Option<String>,
        /// At most this many keys.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
    /// Print changes as they are committed, one line each (`SEQ OP KEY
    /// [VALUE]`, or JSON with --json), until interrupted. With --data-dir,
    /// the history the data files hold, then exit. Exit code 6 if a merge
    /// has dropped the changes asked for (docs/WATCH.md).
    Watch {
        /// Only keys starting with this.
        #[arg(long)]
        prefix: Option<String>,
        /// From this seq on, as far back as the files go [default: from
        /// now; with --data-dir, the whole history].
        #[arg(long, value_name = "N")]
        from_seq: Option<u64>,
        /// Only these ops, comma-separated: put, delete, expire.
        #[arg(long, value_delimiter = ',', value_parser = crate::watch::parse_op)]
        ops: Vec<bitcask_client::WatchOp>,
    },
    /// Keys, space use and merges of the store.
    Stats,
    /// Reclaim the space of overwritten and deleted values now.
    Merge,
    /// A consistent copy of the store in a new directory. Against a server,
    /// DEST is a name inside the server's --backup-dir (default: named
    /// after the time); with --data-dir, DEST is the path of the new
    /// directory (beside a running server too). Restore: docs/OPERATIONS.md.
    Backup {
        /// The new directory: a name (server) or a path (--data-dir).
        dest: Option<String>,
    },
    /// Verify every sealed data file's checksums now, beside the running
    /// store (exit 1 if damage is found; `check` then shows all of it).
    Scrub,
    /// A cluster's members: status, add, remove (asks a cluster node).
    Cluster {
        /// What to do.
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// Read or change the CLI's settings file.
    Config {
        /// What to do with it.
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Verify every record's checksum (needs --data-dir; runs beside a server).
    Check,
    /// Make a damaged store open again, keeping every undamaged record
    /// (needs --data-dir; the server must be stopped).
    Repair,
    /// Write every key and value as JSON lines (needs --data-dir).
    Export {
        /// Write here instead of stdout.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Only keys starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Store every record of a JSON-lines export (needs --data-dir).
    Import {
        /// The export to read; `-` or nothing reads stdin.
        file: Option<PathBuf>,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// The conditions a put can carry (at most one).
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct ConditionArgs {
    /// Write only if the key is at this version (compare-and-set).
    #[arg(long, value_name = "VERSION")]
    pub if_version: Option<u64>,
    /// Write only if the key is absent.
    #[arg(long)]
    pub if_absent: bool,
    /// Write only if the key is present.
    #[arg(long)]
    pub if_present: bool,
}

/// `config` subcommands.
/// What `bitcask cluster` does.
#[derive(Debug, Subcommand)]
pub enum ClusterAction {
    /// The node's view: role, leader, term, indexes, members, lag.
    Status,
    /// Add a node (started with its --node-id and --peer-port, no
    /// --initial-cluster) as a learner, then a voter once it has caught up.
    Add {
        /// The new node's id (never used before in this cluster).
        node_id: u64,
        /// Its peer address, host:port.
        peer_addr: String,
    },
    /// Remove a node from the cluster.
    Remove {
        /// The node's id.
        node_id: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Set a setting (`server_url`, `auth_token`, `timeout`).
    Set {
        /// The setting.
        name: String,
        /// Its value.
        value: String,
    },
    /// Print a setting.
    Get {
        /// The setting.
        name: String,
    },
    /// Remove a setting from the file (its default applies again).
    Unset {
        /// The setting.
        name: String,
    },
    /// Print every setting that is set.
    List,
    /// Print the settings file's path.
    Path,
}
