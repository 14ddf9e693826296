//! Writing results: values byte for byte, JSON when asked, tables for
//! people, and progress bars only on a terminal.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use base64::Engine;
use bitcask_client::{BackupReport, MergeReport, ScrubReport, Stats};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::failure::Failure;

/// Writes `bytes` to stdout as they are. On a terminal, a value that does
/// not end in a newline gets one, so the prompt is not glued to it.
pub fn value(bytes: &[u8]) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes).map_err(stdout_failed)?;
    if std::io::stdout().is_terminal() && !bytes.ends_with(b"\n") {
        out.write_all(b"\n").map_err(stdout_failed)?;
    }
    out.flush().map_err(stdout_failed)
}

/// Writes a line to stdout.
pub fn line(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").map_err(stdout_failed)
}

/// Writes `value` as one line of JSON to stdout.
pub fn json(value: &serde_json::Value) -> Result<(), Failure> {
    line(&value.to_string())
}

/// A message for a person, on stderr.
pub fn note(text: &str) {
    eprintln!("{text}");
}

fn stdout_failed(e: std::io::Error) -> Failure {
    Failure::failed(format!("cannot write to stdout: {e}"))
}

/// A value in JSON: `"value": text`, or `"value_base64"` when it is not UTF-8.
pub fn value_fields(
    map: &mut serde_json::Map<String, serde_json::Value>,
    name: &str,
    bytes: &[u8],
) {
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            map.insert(name.to_string(), text.into());
        }
        Err(_) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
            map.insert(format!("{name}_base64"), encoded.into());
        }
    }
}

/// A progress bar on stderr for `total` units (`bytes` or items), drawn
/// only when both stdout and stderr are terminals.
pub fn progress(total: u64, bytes: bool, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), draw_target());
    let template = if bytes {
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}, {eta} left"
    } else {
        "{msg} [{bar:30}] {pos}/{len} {per_sec}, {eta} left"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

/// A spinner with a count, for work whose total is unknown.
pub fn spinner(what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, draw_target());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {pos} {per_sec} {elapsed}") {
        bar.set_style(style);
    }
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Whether progress bars are drawn: stdout and stderr are terminals.
pub fn shows_progress() -> bool {
    std::io::stdout().is_terminal() && std::io::stderr().is_terminal()
}

fn draw_target() -> ProgressDrawTarget {
    if shows_progress() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

/// Runs `work` on a helper thread while this one draws a byte progress bar
/// from `progress` (`(done, total)` when known), polled every 100 ms, only
/// when bars are drawn at all.
pub fn run_with_progress<T: Send>(
    what: &str,
    work: impl FnOnce() -> T + Send,
    mut progress: impl FnMut() -> Option<(u64, u64)>,
) -> T {
    if !shows_progress() {
        return work();
    }
    std::thread::scope(|scope| {
        let running = scope.spawn(work);
        let bar = spinner(what);
        let mut sized = false;
        while !running.is_finished() {
            if let Some((done, total)) = progress() {
                if !sized {
                    bar.set_length(total);
                    if let Ok(style) = ProgressStyle::with_template(
                        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}, {eta} left",
                    ) {
                        bar.set_style(style.progress_chars("=> "));
                    }
                    sized = true;
                }
                bar.set_position(done);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bar.finish_and_clear();
        running
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// A cluster node's view as a few lines: the node, then one line per
/// member (`*` marks the leader; the lag shows on the leader's view).
pub fn cluster_table(status: &bitcask_client::ClusterStatus) -> String {
    let leader = status
        .leader_id
        .map_or_else(|| "none".to_string(), |l| l.to_string());
    let mut out = format!(
        "node {} ({}), leader {leader}, term {}, last log {}, applied {}\n",
        status.node_id,
        status.role,
        status.term,
        status
            .last_log_index
            .map_or_else(|| "-".into(), |i| i.to_string()),
        status
            .last_applied
            .map_or_else(|| "-".into(), |i| i.to_string()),
    );
    for member in &status.members {
        let lag = status
            .replication
            .as_ref()
            .and_then(|r| r.iter().find(|m| m.node_id == member.node_id))
            .map_or_else(String::new, |m| format!("  lag {}", m.lag));
        let mark = if Some(member.node_id) == status.leader_id {
            "*"
        } else {
            " "
        };
        let kind = if member.voter { "voter" } else { "learner" };
        out.push_str(&format!(
            "{mark} {:>4}  {:<21}  {kind}{lag}\n",
            member.node_id, member.peer_addr
        ));
    }
    out.trim_end().to_string()
}

/// Stats for a person.
pub fn stats_table(stats: &Stats) -> String {
    let mut out = format!(
        "keys:         {}\n\
         data files:   {}\n\
         total bytes:  {}\n\
         live bytes:   {}\n\
         dead bytes:   {}\n\
         merging now:  {}\n\
         merges done:  {}\n",
        stats.keys,
        stats.data_files,
        stats.total_bytes,
        stats.live_bytes,
        stats.dead_bytes,
        if stats.merge_running { "yes" } else { "no" },
        stats.merges_completed,
    );
    if let Some(merge) = &stats.last_merge {
        out.push_str(&format!("last merge:   {}\n", merge_line(merge)));
    }
    out.push_str("\n  file        total       live       dead   keys\n");
    for f in &stats.files {
        out.push_str(&format!(
            "  {:>4}{} {:>10} {:>10} {:>10} {:>6}\n",
            f.id,
            if f.active { "*" } else { " " },
            f.total_bytes,
            f.live_bytes,
            f.dead_bytes,
            f.live_keys
        ));
    }
    out.push_str("  (* = active file)");
    out
}

/// A merge report in one line.
pub fn merge_line(report: &MergeReport) -> String {
    format!(
        "merged {} files into {} in {} ms: read {} bytes, wrote {}, reclaimed {}; kept {} records, dropped {}",
        report.files_merged,
        report.files_written,
        report.duration_ms,
        report.bytes_read,
        report.bytes_written,
        report.bytes_reclaimed,
        report.records_kept,
        report.records_dropped
    )
}

/// A scrub report in one line.
pub fn scrub_line(report: &ScrubReport) -> String {
    let found = match report.damaged_records {
        0 => "no damage".to_string(),
        n => format!("{n} damaged record(s): run `bitcask check --data-dir DIR` to see them all"),
    };
    format!(
        "verified {} sealed files ({} bytes of records) in {} ms: {found}",
        report.files_verified, report.bytes_verified, report.duration_ms
    )
}

/// A backup report in one line.
pub fn backup_line(report: &BackupReport) -> String {
    format!(
        "backup {} written: {} data files, {} bytes in {} ms",
        report.name, report.data_files, report.bytes, report.duration_ms
    )
}
