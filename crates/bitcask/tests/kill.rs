//! Process crash: a child process writes as fast as it can and reports each
//! write after the call returned; the parent kills it with SIGKILL mid-stream
//! and reopens. Every reported write must be there with its value, under
//! `Always` and under `Never` (a returned write is already with the kernel,
//! which a process crash does not lose). Nothing unreported beyond the one
//! write in flight may appear. A third mode runs merges back to back in the
//! background while the child writes, so that the kill often lands inside
//! a merge.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use std::time::Duration;

use bitcask::{Bitcask, MergeTrigger, Options, SyncPolicy};

const CHILD_DIR: &str = "BITCASK_TEST_KILL_DIR";
const CHILD_POLICY: &str = "BITCASK_TEST_KILL_POLICY";

fn value(i: u64) -> Vec<u8> {
    let mut v = i.to_le_bytes().to_vec();
    v.resize(20 + (i % 97) as usize, (i % 251) as u8);
    v
}

fn policy(name: &str) -> SyncPolicy {
    match name {
        "always" => SyncPolicy::Always,
        _ => SyncPolicy::Never,
    }
}

#[test]
#[ignore = "run by the acknowledged_writes_survive_kill_9 tests"]
fn kill_child_writer() {
    let (Some(dir), Ok(name)) = (std::env::var_os(CHILD_DIR), std::env::var(CHILD_POLICY)) else {
        return;
    };
    let mut opts = Options::new().sync(policy(&name)).max_file_size(16 * 1024);
    if name == "never+merge" {
        opts = opts.merge_trigger(Some(MergeTrigger {
            dead_fraction: 0.0,
            dead_bytes: 1,
            check_every: Duration::from_millis(1),
        }));
    }
    let db = Bitcask::open_with(&dir, opts).expect("child open");
    for i in 0u64.. {
        // Keys repeat every 300 writes, so overwrites and deletes mix in.
        let key = format!("key-{}", i % 300);
        if i % 7 == 3 {
            db.delete(key.as_bytes()).expect("delete");
            println!("ACK D {i}");
        } else {
            db.put(key.as_bytes(), &value(i)).expect("put");
            println!("ACK P {i}");
        }
        if i % 1_000 == 999 {
            println!("MERGES {}", db.stats().merges_completed);
        }
    }
}

/// Parses the acknowledgements ("ACK P 17", "ACK D 18") in a line of the
/// child's output. The test harness prints its own text on the same stream,
/// sometimes on the same line ("test kill_child_writer ... ACK P 0"), so
/// the marker is searched for anywhere in the line.
fn parse_acks(line: &str) -> Vec<(char, u64)> {
    line.split("ACK ")
        .skip(1)
        .filter_map(|ack| {
            let mut parts = ack.split_whitespace();
            let op = parts.next()?.chars().next()?;
            let n = parts.next()?.parse().ok()?;
            Some((op, n))
        })
        .collect()
}

fn run(policy_name: &str, lines_before_kill: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = common::child_test("kill_child_writer")
        .env(CHILD_DIR, dir.path())
        .env(CHILD_POLICY, policy_name)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut child = common::KillOnDrop(child);
    let mut acknowledged: Vec<(char, u64)> = Vec::new();
    let merges = std::sync::atomic::AtomicU64::new(0);
    let note_merges = |line: &str| {
        if let Some(n) = line
            .split("MERGES ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        {
            merges.fetch_max(n, std::sync::atomic::Ordering::Relaxed);
        }
    };
    let mut line = String::new();
    let mut lines_read = 0;
    while acknowledged.len() < lines_before_kill {
        line.clear();
        assert!(
            out.read_line(&mut line).expect("read child") > 0,
            "child died early"
        );
        lines_read += 1;
        assert!(
            // (one MERGES line per 1,000 writes, and harness text)
            lines_read <= lines_before_kill + lines_before_kill / 1_000 + 10,
            "child output not understood: {line:?}"
        );
        acknowledged.extend(parse_acks(&line));
        note_merges(&line);
    }
    child.0.kill().expect("SIGKILL");
    child.0.wait().expect("reap");
    // Anything the child printed after we stopped reading was acknowledged too.
    for line in out.lines().map_while(Result::ok) {
        acknowledged.extend(parse_acks(&line));
        note_merges(&line);
    }

    if policy_name == "never+merge" && lines_before_kill >= 20_000 {
        assert!(
            merges.load(std::sync::atomic::Ordering::Relaxed) > 0,
            "no merge ran"
        );
    }
    let db = common::open(dir.path());
    let last = acknowledged.last().map_or(0, |&(_, n)| n);
    // For each key, the last acknowledged operation decides what must be
    // there; the single write in flight (last + 1) may or may not have landed.
    for k in 0..300u64 {
        let key = format!("key-{k}");
        let last_ack = acknowledged.iter().rev().find(|&&(_, n)| n % 300 == k);
        let in_flight = last + 1;
        let got = db.get(key.as_bytes()).expect("get");
        if in_flight % 300 == k && got.as_deref() == Some(&value(in_flight)[..]) {
            continue; // the in-flight put landed: allowed
        }
        if in_flight % 300 == k && got.is_none() && in_flight % 7 == 3 {
            continue; // the in-flight delete landed: allowed
        }
        match last_ack {
            Some(&('P', n)) => assert_eq!(got, Some(value(n)), "{key}: lost acknowledged put {n}"),
            Some(&(_, n)) => assert_eq!(got, None, "{key}: acknowledged delete {n} undone"),
            None => assert_eq!(got, None, "{key}: appeared without being written"),
        }
    }
}

#[test]
fn acknowledged_writes_survive_kill_9_under_always() {
    run("always", 300);
}

#[test]
fn acknowledged_writes_survive_kill_9_under_never() {
    for lines in [500, 2_000, 7_000] {
        run("never", lines);
    }
}

#[test]
fn acknowledged_writes_survive_kill_9_during_merges() {
    for lines in [3_000, 10_000, 20_000] {
        run("never+merge", lines);
    }
}
