//! RESP commands counted by command, for `/metrics` and `INFO`: each
//! connection tallies its own commands in plain integers and adds them to
//! the shared atomic counters once per read of commands, not once per
//! command (the shared counters are touched by every RESP thread).

use std::sync::atomic::{AtomicU64, Ordering};

use super::commands::{COMMANDS, Cmd};

/// One slot per command, and a last one for names no command has (their
/// names are not kept: a client could make up any number of them).
const SLOTS: usize = COMMANDS.len() + 1;
const UNKNOWN: usize = COMMANDS.len();

/// The label of the slot for unknown commands.
pub const UNKNOWN_LABEL: &str = "unknown";

/// The server's counts, shared by every connection.
#[derive(Debug)]
pub struct CommandCounts {
    counts: [AtomicU64; SLOTS],
    /// Of those, refused before they ran (arity, authentication, not
    /// allowed in a transaction).
    rejected: [AtomicU64; SLOTS],
    /// Of those, answered with an error when they ran.
    failed: [AtomicU64; SLOTS],
}

impl Default for CommandCounts {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            rejected: std::array::from_fn(|_| AtomicU64::new(0)),
            failed: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// One command's counts, for `INFO commandstats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandStat {
    /// Lower-case name.
    pub name: &'static str,
    /// Times it was received.
    pub calls: u64,
    /// Refused before running.
    pub rejected: u64,
    /// Answered with an error.
    pub failed: u64,
}

impl CommandCounts {
    /// Each command's label (its lower-case name, or [`UNKNOWN_LABEL`])
    /// with its count, in `COMMAND`'s order, unknown last.
    pub fn by_command(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        let names = COMMANDS.iter().map(|s| s.name).chain([UNKNOWN_LABEL]);
        names.zip(self.counts.iter().map(|c| c.load(Ordering::Relaxed)))
    }

    /// Each known command received at least once, with its calls and
    /// errors, in `COMMAND`'s order.
    pub fn stats(&self) -> impl Iterator<Item = CommandStat> + '_ {
        COMMANDS.iter().enumerate().filter_map(|(i, spec)| {
            let calls = self.counts[i].load(Ordering::Relaxed);
            (calls > 0).then(|| CommandStat {
                name: spec.name,
                calls,
                rejected: self.rejected[i].load(Ordering::Relaxed),
                failed: self.failed[i].load(Ordering::Relaxed),
            })
        })
    }

    /// Every command counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// One connection's counts not yet added to the shared ones.
#[derive(Debug)]
pub struct Tally {
    counts: [u64; SLOTS],
    rejected: [u64; SLOTS],
    failed: [u64; SLOTS],
    pending: u64,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            counts: [0; SLOTS],
            rejected: [0; SLOTS],
            failed: [0; SLOTS],
            pending: 0,
        }
    }
}

impl Tally {
    /// Counts `n` runs of `cmd`.
    pub fn add(&mut self, cmd: Cmd, n: u64) {
        self.counts[cmd as usize] += n;
        self.pending += n;
    }

    /// Counts one run of `cmd` (already counted by [`Self::add`]) as
    /// refused before it ran.
    pub fn reject(&mut self, cmd: Cmd) {
        self.rejected[cmd as usize] += 1;
    }

    /// Counts one run of `cmd` (already counted) as answered with an error.
    pub fn fail(&mut self, cmd: Cmd) {
        self.failed[cmd as usize] += 1;
    }

    /// Counts a command no command has the name of.
    pub fn add_unknown(&mut self) {
        self.counts[UNKNOWN] += 1;
        self.pending += 1;
    }

    /// Commands counted here and not yet published.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Adds the counts to `shared` and starts again from zero.
    pub fn publish(&mut self, shared: &CommandCounts) {
        if self.pending == 0 {
            return;
        }
        for (locals, shared) in [
            (&mut self.counts, &shared.counts),
            (&mut self.rejected, &shared.rejected),
            (&mut self.failed, &shared.failed),
        ] {
            for (local, shared) in locals.iter_mut().zip(shared) {
                if *local > 0 {
                    shared.fetch_add(std::mem::take(local), Ordering::Relaxed);
                }
            }
        }
        self.pending = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_reaches_the_shared_counts_only_when_published() {
        let shared = CommandCounts::default();
        let mut tally = Tally::default();
        tally.add(Cmd::Get, 3);
        tally.add(Cmd::Set, 1);
        tally.add_unknown();
        assert_eq!(tally.pending(), 5);
        assert_eq!(shared.total(), 0);
        tally.publish(&shared);
        assert_eq!(tally.pending(), 0);
        let counts: Vec<_> = shared.by_command().filter(|(_, n)| *n > 0).collect();
        assert_eq!(counts, [("get", 3), ("set", 1), (UNKNOWN_LABEL, 1)]);
        tally.add(Cmd::Get, 2);
        tally.publish(&shared);
        assert_eq!(shared.total(), 7);
    }

    #[test]
    fn every_command_is_at_the_place_its_number_says() {
        for (i, spec) in COMMANDS.iter().enumerate() {
            assert_eq!(spec.cmd as usize, i, "{}", spec.name);
            assert_eq!(spec.cmd.name(), spec.name);
        }
    }
}
