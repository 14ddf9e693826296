//! One writer: its own keys, one write at a time, each recorded in its
//! model once acknowledged; the write in flight when the server dies is
//! recorded as such.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bitcask_client::{Batch, Condition, Error, WriteOptions, blocking};

use crate::model::{Effect, InFlight, Model, State};
use crate::rng::Rng;

/// Writes acknowledged, by kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Plain puts.
    pub puts: u64,
    /// Puts with If-Match / If-None-Match.
    pub conditional: u64,
    /// Deletes.
    pub deletes: u64,
    /// Batches.
    pub batches: u64,
    /// Writes in flight when the server was killed.
    pub in_flight: u64,
}

impl Counts {
    /// Adds `other` to these.
    pub fn add(&mut self, other: &Counts) {
        self.puts += other.puts;
        self.conditional += other.conditional;
        self.deletes += other.deletes;
        self.batches += other.batches;
        self.in_flight += other.in_flight;
    }
}

/// The name of writer `w`'s key `i`.
pub fn key(w: usize, i: usize) -> String {
    format!("w{w}/k{i:03}")
}

/// The writer that owns `key`, if it is one of theirs.
pub fn owner(key: &str, writers: usize, keys: usize) -> Option<usize> {
    let (w, i) = key.strip_prefix('w')?.split_once("/k")?;
    let (w, i): (usize, usize) = (w.parse().ok()?, i.parse().ok()?);
    (w < writers && i < keys && key == self::key(w, i)).then_some(w)
}

/// Whether an error means the server went away (so the write's fate is
/// unknown) rather than that it refused the write.
fn server_gone(error: &Error) -> bool {
    matches!(
        error,
        Error::Connect { .. }
            | Error::Timeout { .. }
            | Error::Transport { .. }
            | Error::Unavailable { .. }
    )
}

/// Writes until `stop` or until the server goes away; returns the model and
/// the counts, or a violation (a write refused that should not have been).
pub fn drive(
    w: usize,
    mut model: Model,
    url: &str,
    keys: usize,
    seed: u64,
    stop: &AtomicBool,
) -> (Model, Result<Counts, String>) {
    let mut counts = Counts::default();
    let client = match blocking::Client::from_builder(
        bitcask_client::Client::builder(url)
            .retries(0)
            .timeout(Duration::from_secs(30)),
    ) {
        Ok(client) => client,
        Err(e) => return (model, Err(e.to_string())),
    };
    let mut rng = Rng::new(seed);
    let fresh_value = |rng: &mut Rng| format!("w{w}-{:016x}", rng.next_u64());
    while !stop.load(Ordering::Relaxed) {
        let roll = rng.below(100);
        let k = key(w, rng.below(keys as u64) as usize);
        let current = model.state(&k);
        let outcome = if roll < 55 || (roll < 75 && current == State::Absent) {
            // A put: conditional on the current version (or absence) for
            // rolls 35-54, plain otherwise.
            let conditional = (35..55).contains(&roll);
            let condition = match (&current, conditional) {
                (_, false) => Condition::None,
                (State::Present { version, .. }, true) => Condition::Version(*version),
                (State::Absent, true) => Condition::Absent,
            };
            let value = fresh_value(&mut rng);
            let sent = client.put_with(&k, &value, WriteOptions::new().condition(condition));
            let count = if conditional {
                &mut counts.conditional
            } else {
                &mut counts.puts
            };
            let effects = vec![(k.clone(), Effect::Put(value))];
            settle(&mut model, effects, false, sent.map(|v| vec![v]), count)
        } else if roll < 75 {
            let sent = client.delete_with(&k, WriteOptions::new());
            let effects = vec![(k.clone(), Effect::Delete)];
            settle(
                &mut model,
                effects,
                false,
                sent.map(|v| vec![v.unwrap_or(0)]),
                &mut counts.deletes,
            )
        } else {
            // A batch of 2-5 distinct keys: puts, and deletes of present keys.
            let n = 2 + rng.below(4) as usize;
            let mut chosen: Vec<String> = Vec::new();
            while chosen.len() < n.min(keys) {
                let k = key(w, rng.below(keys as u64) as usize);
                if !chosen.contains(&k) {
                    chosen.push(k);
                }
            }
            let mut batch = Batch::new();
            let mut effects = Vec::new();
            for k in chosen {
                let present = matches!(model.state(&k), State::Present { .. });
                if present && rng.below(3) == 0 {
                    batch = batch.delete(k.clone());
                    effects.push((k, Effect::Delete));
                } else {
                    let value = fresh_value(&mut rng);
                    batch = batch.put(k.clone(), value.clone());
                    effects.push((k, Effect::Put(value)));
                }
            }
            let len = effects.len() as u64;
            // Each operation takes the next version; the answer names the last.
            let sent = client.batch(&batch, false).map(|r| {
                let last = r.version.unwrap_or(0);
                (0..len).map(|i| last + 1 + i - len).collect()
            });
            settle(&mut model, effects, true, sent, &mut counts.batches)
        };
        match outcome {
            Ok(true) => {}
            Ok(false) => {
                counts.in_flight += 1;
                break;
            }
            Err(violation) => return (model, Err(violation)),
        }
    }
    (model, Ok(counts))
}

/// Records the outcome of a write: acknowledged (with each effect's
/// version), in flight (the server went away: `Ok(false)`), or refused (a
/// violation: `Err`).
fn settle(
    model: &mut Model,
    effects: Vec<(String, Effect)>,
    atomic: bool,
    sent: Result<Vec<u64>, Error>,
    count: &mut u64,
) -> Result<bool, String> {
    match sent {
        Ok(versions) => {
            for ((key, effect), version) in effects.into_iter().zip(versions) {
                match effect {
                    Effect::Put(value) => model.put(&key, value, version),
                    Effect::Delete => model.delete(&key),
                }
            }
            *count += 1;
            Ok(true)
        }
        Err(e) if server_gone(&e) => {
            model.in_flight = Some(InFlight { effects, atomic });
            Ok(false)
        }
        Err(e) => Err(format!("a write was refused: {e} (effects {effects:?})")),
    }
}
