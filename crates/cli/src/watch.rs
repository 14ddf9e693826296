//! `bitcask watch`: the change feed (docs/WATCH.md), one line per change.
//! Against a server, from now (or `--from-seq`) until interrupted,
//! resuming by itself across reconnections; with `--data-dir`, the
//! history the data files hold, then it exits.

use std::path::Path;

use bitcask_client::{WatchEvent, WatchOp, WatchOptions};

use crate::failure::{Failure, code};
use crate::local::{Access, Local};
use crate::output;
use crate::remote::Server;

/// What to watch, from the command line.
#[derive(Debug, Clone)]
pub struct Watching {
    /// Only keys that start with this.
    pub prefix: Option<String>,
    /// The first seq; `None` is "from now" (a server) or "from the start
    /// of the history" (a data directory).
    pub from_seq: Option<u64>,
    /// Only these ops (all if empty).
    pub ops: Vec<WatchOp>,
    /// One JSON object per line.
    pub json: bool,
}

/// The op named `text` (`put`, `delete`, `expire`), for clap.
pub fn parse_op(text: &str) -> Result<WatchOp, String> {
    WatchOp::parse(text).ok_or_else(|| format!("{text:?} is not put, delete or expire"))
}

/// `bitcask watch` against a server: prints events until interrupted.
pub fn remote(server: &Server, watching: &Watching) -> Result<u8, Failure> {
    let mut options = WatchOptions::new().ops(watching.ops.iter().copied());
    if let Some(prefix) = &watching.prefix {
        options = options.prefix(prefix.clone());
    }
    if let Some(seq) = watching.from_seq {
        options = options.from_seq(seq);
    }
    for event in server.client().watch(options) {
        print(&event.map_err(compacted)?, watching.json)?;
    }
    Ok(code::OK)
}

/// `bitcask --data-dir DIR watch`: prints the history the files hold from
/// `--from-seq` (default: all of it), then exits.
pub fn local(dir: &Path, watching: &Watching) -> Result<u8, Failure> {
    let local = Local::open(dir, Access::Read)?;
    let mut changes = local
        .db()
        .changes(watching.from_seq.unwrap_or(0))
        .map_err(|e| match e {
            bitcask::Error::Compacted { compacted_seq } => {
                compacted(bitcask_client::Error::Compacted { compacted_seq })
            }
            other => other.into(),
        })?;
    loop {
        let batch = changes.next_batch(1_000)?;
        if batch.is_empty() {
            return Ok(code::OK);
        }
        for change in &batch {
            let event = WatchEvent::from(change);
            let wanted = watching.ops.is_empty() || watching.ops.contains(&event.op);
            let under = watching
                .prefix
                .as_deref()
                .is_none_or(|p| change.key.starts_with(p.as_bytes()));
            if wanted && under {
                print(&event, watching.json)?;
            }
        }
    }
}

/// A compacted history gets its own exit code and what to do about it;
/// other client errors as usual.
fn compacted(error: bitcask_client::Error) -> Failure {
    match error {
        bitcask_client::Error::Compacted { compacted_seq } => Failure::new(
            code::COMPACTED,
            format!(
                "the changes asked for were compacted by a merge; the oldest seq still \
                 available is {compacted_seq}"
            ),
        )
        .hint(format!(
            "re-read the keys (`bitcask keys`, `bitcask get`), then watch from now, or \
             `--from-seq {compacted_seq}` for what is left of the history"
        )),
        other => other.into(),
    }
}

/// One event: its JSON, or `<seq> <op> <key> [<value>]` with text as it
/// is and bytes that are not UTF-8 as `base64:<...>`.
fn print(event: &WatchEvent, json: bool) -> Result<(), Failure> {
    if json {
        return output::line(
            &serde_json::to_string(event)
                .map_err(|e| Failure::failed(format!("cannot write an event as JSON: {e}")))?,
        );
    }
    let show = |text: &str| match event.encoding {
        Some(_) => format!("base64:{text}"),
        None => text.to_string(),
    };
    let mut line = format!("{} {} {}", event.seq, event.op.as_str(), show(&event.key));
    if let Some(value) = &event.value {
        line.push(' ');
        line.push_str(&show(value));
    }
    output::line(&line)
}
