//! The ordered index of one shard: its keys in byte order, for listing.
//!
//! Two runs of arena references: `sorted`, in key order, and `recent`, the
//! keys added since, in arrival order. Adding a key is a push; nothing is
//! ordered until a listing needs it ([`Ordered::tidy`]), which sorts
//! `recent` and, once it has grown to an eighth of `sorted`, merges it in.
//! A listing then walks both runs in step. So a fill or a reopen pays no
//! ordering cost at all, and a store that is listed now and then pays
//! `O(r log r)` for the `r` keys added since, plus an `O(n)` merge every
//! `n / 8` new keys.
//!
//! Removed keys are not looked for in the runs: their arena entries are
//! marked dead and skipped when listed, and dropped at the next merge or
//! arena compaction.

use std::cmp::Ordering;
use std::ops::Bound;

use super::arena::{KeyArena, KeyRef};

/// One shard's keys in order (lazily).
#[derive(Debug, Default)]
pub(crate) struct Ordered {
    sorted: Vec<KeyRef>,
    /// Eight bytes (zero-padded, big-endian) of every [`FENCE_EVERY`]-th
    /// key of `sorted`, taken after the prefix all its keys share
    /// (`fence_skip` bytes; keys such as `user/000123` share a long one): a
    /// search first bisects this small array, which stays in cache, and
    /// then compares whole keys only in the window it leaves, instead of
    /// chasing a reference and an arena entry at every step of a bisection
    /// of the whole run.
    fences: Vec<u64>,
    fence_skip: usize,
    recent: Vec<KeyRef>,
    /// How many of `recent`, from the start, are in key order.
    recent_sorted: usize,
}

impl Ordered {
    /// Records a new key.
    pub(crate) fn push(&mut self, at: KeyRef) {
        reserve_gently(&mut self.recent, 1);
        self.recent.push(at);
    }

    /// Replaces the contents with `keys`, in any order (after a compaction
    /// or a load).
    pub(crate) fn reset(&mut self, keys: Vec<KeyRef>) {
        self.sorted = Vec::new();
        self.fences = Vec::new();
        self.fence_skip = 0;
        self.recent = keys;
        self.recent_sorted = 0;
    }

    /// Whether a listing must call [`Self::tidy`] first.
    pub(crate) fn needs_tidy(&self) -> bool {
        self.recent_sorted < self.recent.len()
    }

    /// Orders the recent keys (sorting only those added since the last
    /// tidy and merging them with the rest), and merges them into the
    /// sorted run once they are an eighth of it. Dead keys are dropped from
    /// what it touches.
    pub(crate) fn tidy(&mut self, arena: &KeyArena) {
        if !self.needs_tidy() {
            return;
        }
        let mut added = self.recent.split_off(self.recent_sorted);
        added.retain(|&at| !arena.is_dead(at));
        added.sort_unstable_by(|&a, &b| arena.get(a).cmp(arena.get(b)));
        if added.len() * 16 < self.recent.len() {
            // A few keys into a longer run: place each by binary search
            // (a `memmove` of the run's tail, no key comparisons beyond the
            // search), as a B-tree insert would.
            for at in added {
                let key = arena.get(at);
                let i = self.recent.partition_point(|&other| arena.get(other) < key);
                self.recent.insert(i, at);
            }
        } else {
            let recent = std::mem::take(&mut self.recent);
            self.recent = merge(arena, recent, added);
        }
        self.recent_sorted = self.recent.len();
        if self.recent.len() * 8 >= self.sorted.len() {
            let sorted = std::mem::take(&mut self.sorted);
            let recent = std::mem::take(&mut self.recent);
            self.sorted = merge(arena, sorted, recent);
            self.fence_skip = match (self.sorted.first(), self.sorted.last()) {
                (Some(&first), Some(&last)) => {
                    let (first, last) = (arena.get(first), arena.get(last));
                    first.iter().zip(last).take_while(|(a, b)| a == b).count()
                }
                _ => 0,
            };
            self.fences = self
                .sorted
                .iter()
                .step_by(FENCE_EVERY)
                .map(|&at| prefix8(&arena.get(at)[self.fence_skip..]))
                .collect();
            self.recent_sorted = 0;
        }
    }

    /// Calls `f` with the keys from `lower` on in order (live and dead;
    /// the caller skips dead ones) until it returns `false`. Needs a tidy
    /// index.
    pub(crate) fn walk(
        &self,
        arena: &KeyArena,
        lower: Bound<&[u8]>,
        mut f: impl FnMut(KeyRef) -> bool,
    ) {
        debug_assert!(!self.needs_tidy());
        let start = |run: &[KeyRef], fences: &[u64], skip: usize| {
            let (key, inclusive) = match lower {
                Bound::Included(k) => (k, true),
                Bound::Excluded(k) => (k, false),
                Bound::Unbounded => return 0,
            };
            let (mut lo, mut hi) = (0, run.len());
            if let Some(&first) = run.first().filter(|_| !fences.is_empty()) {
                // Every key of the run starts with `shared`: a key whose
                // head differs from it lies before or after all of them.
                let shared = &arena.get(first)[..skip];
                match key[..key.len().min(skip)].cmp(shared) {
                    Ordering::Less => return 0,
                    Ordering::Greater => return run.len(),
                    Ordering::Equal => {}
                }
                // Keys whose next eight bytes are below the key's are below
                // it, those above are above it.
                let p = prefix8(&key[skip.min(key.len())..]);
                lo = fences.partition_point(|&f| f < p).saturating_sub(1) * FENCE_EVERY;
                hi = (fences.partition_point(|&f| f <= p) * FENCE_EVERY).min(run.len());
            }
            lo + run[lo..hi].partition_point(|&at| {
                let other = arena.get(at);
                if inclusive { other < key } else { other <= key }
            })
        };
        let (mut i, mut j) = (
            start(&self.sorted, &self.fences, self.fence_skip),
            start(&self.recent, &[], 0),
        );
        loop {
            let next = match (self.sorted.get(i), self.recent.get(j)) {
                (Some(&a), Some(&b)) => {
                    if arena.get(a).cmp(arena.get(b)) != Ordering::Greater {
                        i += 1;
                        a
                    } else {
                        j += 1;
                        b
                    }
                }
                (Some(&a), None) => {
                    i += 1;
                    a
                }
                (None, Some(&b)) => {
                    j += 1;
                    b
                }
                (None, None) => return,
            };
            if !f(next) {
                return;
            }
        }
    }

    /// How many references the runs have room for.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.sorted.capacity() + self.recent.capacity()
    }

    /// How many references the runs hold (live and dead).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.sorted.len() + self.recent.len()
    }
}

/// Makes room for `more` elements, growing by an eighth rather than
/// doubling: a doubling vector leaves up to half of it unused (an eighth:
/// 6% on average). Appends stay amortised O(1): each element is copied at
/// most about eight more times over the vector's life, and for vectors
/// large enough to be mapped on their own the allocator moves pages
/// (`mremap`) rather than bytes.
fn reserve_gently<T>(vec: &mut Vec<T>, more: usize) {
    if vec.capacity() - vec.len() < more {
        vec.reserve_exact(more.max(vec.capacity() / 8).max(64));
    }
}

/// One fence per this many keys of the sorted run.
const FENCE_EVERY: usize = 32;

/// The first eight bytes of `key`, zero-padded, as a big-endian number:
/// comparing these numbers orders keys as comparing the keys would, up to
/// ties.
fn prefix8(key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let n = key.len().min(8);
    bytes[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(bytes)
}

/// Merges two runs in key order into one, leaving out dead keys.
fn merge(arena: &KeyArena, a: Vec<KeyRef>, b: Vec<KeyRef>) -> Vec<KeyRef> {
    if b.is_empty() {
        return a;
    }
    let mut merged = Vec::with_capacity(a.len() + b.len());
    let mut a = a.into_iter().filter(|&at| !arena.is_dead(at)).peekable();
    let mut b = b.into_iter().filter(|&at| !arena.is_dead(at)).peekable();
    loop {
        let from_a = match (a.peek(), b.peek()) {
            (Some(&x), Some(&y)) => arena.get(x) <= arena.get(y),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return merged,
        };
        merged.extend(if from_a { a.next() } else { b.next() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(ordered: &Ordered, arena: &KeyArena, lower: Bound<&[u8]>) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        ordered.walk(arena, lower, |at| {
            if !arena.is_dead(at) {
                out.push(arena.get(at).to_vec());
            }
            true
        });
        out
    }

    #[test]
    fn two_runs_list_as_one_and_merge_once_recent_is_big() {
        let mut arena = KeyArena::default();
        let mut ordered = Ordered::default();
        let mut all = Vec::new();
        for i in 0..100u32 {
            let key = format!("k{:03}", i * 37 % 100).into_bytes();
            ordered.push(arena.push(&key).expect("room"));
            all.push(key);
        }
        ordered.tidy(&arena);
        assert!(ordered.recent.is_empty(), "first tidy merges everything");
        // A few more keys stay in a second run.
        for i in 0..5u32 {
            let key = format!("j{i}").into_bytes();
            ordered.push(arena.push(&key).expect("room"));
            all.push(key);
        }
        assert!(ordered.needs_tidy());
        ordered.tidy(&arena);
        assert_eq!(ordered.recent.len(), 5, "small run kept apart");
        all.sort();
        assert_eq!(listed(&ordered, &arena, Bound::Unbounded), all);
        let from = all
            .iter()
            .position(|k| k.as_slice() == b"k050")
            .expect("k050");
        assert_eq!(
            listed(&ordered, &arena, Bound::Included(b"k050")),
            all[from..]
        );
        assert_eq!(
            listed(&ordered, &arena, Bound::Excluded(b"k050")),
            all[from + 1..]
        );
        assert_eq!(listed(&ordered, &arena, Bound::Excluded(b"j")), all);
    }

    #[test]
    fn dead_keys_are_skipped_and_dropped_at_the_merge() {
        let mut arena = KeyArena::default();
        let mut ordered = Ordered::default();
        let refs: Vec<KeyRef> = (0..20u8).map(|i| arena.push(&[i]).expect("room")).collect();
        for &at in &refs {
            ordered.push(at);
        }
        ordered.tidy(&arena);
        arena.kill(refs[3]);
        // Re-adding the same key bytes gives a new live entry.
        let again = arena.push(&[3]).expect("room");
        ordered.push(again);
        for i in 20..40u8 {
            ordered.push(arena.push(&[i]).expect("room"));
        }
        ordered.tidy(&arena);
        let keys = listed(&ordered, &arena, Bound::Unbounded);
        assert_eq!(keys, (0..40u8).map(|i| vec![i]).collect::<Vec<_>>());
        assert_eq!(ordered.len(), 40, "the dead reference was dropped");
    }

    proptest::proptest! {
        /// Searches through the fences start exactly where a plain
        /// bisection of the whole run does, with keys that share long
        /// prefixes, are shorter than eight bytes or contain zero bytes.
        #[test]
        fn fenced_search_starts_where_bisection_does(
            keys in proptest::collection::btree_set(
                proptest::collection::vec(proptest::sample::select(vec![0u8, 1, b'a', b'b', 255]), 0..12),
                1..400,
            ),
            probes in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(vec![0u8, 1, b'a', b'b', 255]), 0..12),
                1..20,
            ),
            shared in proptest::sample::select(vec![&b""[..], b"a", b"ab\0", b"user/0000"]),
        ) {
            // Keys with a shared head (which the fences skip); probes with
            // and without it.
            let keys: Vec<Vec<u8>> = keys.into_iter().map(|k| [shared, &k].concat()).collect();
            let probes: Vec<Vec<u8>> = probes
                .into_iter()
                .enumerate()
                .map(|(i, p)| if i % 2 == 0 { [shared, &p].concat() } else { p })
                .collect();
            let mut arena = KeyArena::default();
            let mut ordered = Ordered::default();
            for key in &keys {
                ordered.push(arena.push(key).expect("room"));
            }
            ordered.tidy(&arena);
            let all = keys;
            for probe in &probes {
                let from = all.partition_point(|k| k < probe);
                proptest::prop_assert_eq!(listed(&ordered, &arena, Bound::Included(probe)), &all[from..]);
                let after = all.partition_point(|k| k <= probe);
                proptest::prop_assert_eq!(listed(&ordered, &arena, Bound::Excluded(probe)), &all[after..]);
            }
        }
    }

    #[test]
    fn walk_stops_when_told() {
        let mut arena = KeyArena::default();
        let mut ordered = Ordered::default();
        ordered.reset(
            (0..10u8)
                .rev()
                .map(|i| arena.push(&[i]).expect("room"))
                .collect(),
        );
        ordered.tidy(&arena);
        let mut seen = Vec::new();
        ordered.walk(&arena, Bound::Unbounded, |at| {
            seen.push(arena.get(at)[0]);
            seen.len() < 3
        });
        assert_eq!(seen, [0, 1, 2]);
    }
}
