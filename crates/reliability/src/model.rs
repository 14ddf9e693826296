//! What each key must hold: the last acknowledged write, and the write in
//! flight when the server was killed (which may or may not have landed).
//! After a restart every key is checked against it.

use std::collections::BTreeMap;

/// A key's state as the server acknowledged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Absent (never written, or deleted).
    Absent,
    /// Holding `value` at `version`.
    Present {
        /// The value.
        value: String,
        /// Its version (the write's sequence number).
        version: u64,
    },
}

/// One operation of a write, as it would leave its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The key holds this value.
    Put(String),
    /// The key is absent.
    Delete,
}

/// A write sent but not acknowledged: the server died first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    /// Every key it touches and what it does to it (several for a batch).
    pub effects: Vec<(String, Effect)>,
    /// Whether it must apply all or nothing (a batch).
    pub atomic: bool,
}

/// The keys of one writer.
#[derive(Debug, Default)]
pub struct Model {
    /// Acknowledged state per key.
    pub keys: BTreeMap<String, State>,
    /// The write in flight at the kill, if any.
    pub in_flight: Option<InFlight>,
}

/// What the server showed for a key after the restart.
pub type Observed = State;

impl Model {
    /// The acknowledged state of `key`.
    pub fn state(&self, key: &str) -> State {
        self.keys.get(key).cloned().unwrap_or(State::Absent)
    }

    /// Records an acknowledged put.
    pub fn put(&mut self, key: &str, value: String, version: u64) {
        self.keys
            .insert(key.to_string(), State::Present { value, version });
    }

    /// Records an acknowledged delete.
    pub fn delete(&mut self, key: &str) {
        self.keys.insert(key.to_string(), State::Absent);
    }

    /// Checks what the server shows (`observe(key)`) against the model, and
    /// adopts it as the new acknowledged state. Returns every violation.
    pub fn check(&mut self, mut observe: impl FnMut(&str) -> Observed) -> Vec<String> {
        let mut problems = Vec::new();
        let in_flight = self.in_flight.take();
        let mut touched: BTreeMap<&str, &Effect> = BTreeMap::new();
        if let Some(f) = &in_flight {
            for (key, effect) in &f.effects {
                touched.insert(key, effect);
            }
        }
        let mut applied = Vec::new();
        let keys: Vec<String> = self
            .keys
            .keys()
            .cloned()
            .chain(touched.keys().map(|k| k.to_string()))
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        for key in keys {
            if !seen.insert(key.clone()) {
                continue;
            }
            let acked = self.state(&key);
            let observed = observe(&key);
            let matches_acked = observed == acked;
            let matches_flight =
                touched
                    .get(key.as_str())
                    .is_some_and(|effect| match (effect, &observed) {
                        (Effect::Put(v), State::Present { value, .. }) => v == value,
                        (Effect::Delete, State::Absent) => true,
                        _ => false,
                    });
            if touched.contains_key(key.as_str()) {
                // Applied if it shows the in-flight effect and that differs
                // from the acknowledged state.
                applied.push(matches_flight && !matches_acked);
            }
            if !matches_acked && !matches_flight {
                problems.push(format!(
                    "key {key}: acknowledged {acked:?}, in flight {:?}, but the store shows {observed:?}",
                    touched.get(key.as_str())
                ));
            }
            self.keys.insert(key, observed);
        }
        if let Some(f) = in_flight
            && f.atomic
            && applied.iter().any(|a| *a)
            && !applied.iter().all(|a| *a)
        {
            problems.push(format!(
                "a batch was applied in part: {:?} (applied per op: {applied:?})",
                f.effects
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn present(value: &str, version: u64) -> State {
        State::Present {
            value: value.into(),
            version,
        }
    }

    #[test]
    fn acknowledged_writes_must_survive_and_in_flight_ones_may() {
        let mut m = Model::default();
        m.put("a", "1".into(), 5);
        m.in_flight = Some(InFlight {
            effects: vec![("a".into(), Effect::Put("2".into()))],
            atomic: false,
        });
        // Either outcome of the in-flight write is fine.
        let mut landed = Model {
            keys: m.keys.clone(),
            in_flight: m.in_flight.clone(),
        };
        assert!(landed.check(|_| present("2", 6)).is_empty());
        assert!(m.check(|_| present("1", 5)).is_empty());
        // A lost acknowledged write, an older version, or an unknown value is not.
        let mut lost = Model::default();
        lost.put("a", "1".into(), 5);
        assert_eq!(lost.check(|_| State::Absent).len(), 1);
        let mut stale = Model::default();
        stale.put("a", "1".into(), 5);
        assert_eq!(stale.check(|_| present("1", 4)).len(), 1);
        let mut invented = Model::default();
        invented.delete("a");
        assert_eq!(invented.check(|_| present("x", 1)).len(), 1);
    }

    #[test]
    fn a_half_applied_batch_is_a_violation() {
        let mut m = Model {
            in_flight: Some(InFlight {
                effects: vec![
                    ("a".into(), Effect::Put("1".into())),
                    ("b".into(), Effect::Put("2".into())),
                ],
                atomic: true,
            }),
            ..Model::default()
        };
        let problems = m.check(|key| {
            if key == "a" {
                present("1", 1)
            } else {
                State::Absent
            }
        });
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("in part"));
    }
}
