//! The order in which a thread may hold [`Shared`](crate::db::Shared)'s
//! locks, checked in debug builds: each thread keeps the ranks of the
//! locks it holds, and taking a lock whose rank is not above all of them
//! panics (it is a deadlock waiting for the right interleaving). Release
//! builds keep nothing and check nothing. The order itself is written out
//! on `Shared`.

use std::ops::{Deref, DerefMut};

/// A lock's place in the order: a thread takes locks in increasing rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Rank {
    /// One merge (or one hint written) at a time.
    Merge,
    /// One write or rotation at a time.
    Writer,
    /// The brief locks taken under the writer lock, one at a time: the
    /// current mark, the hint request channel.
    UnderWriter,
}

#[cfg(debug_assertions)]
thread_local! {
    static HELD: std::cell::RefCell<Vec<Rank>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A rank held by this thread until dropped.
#[derive(Debug)]
pub(crate) struct Held {
    #[cfg(debug_assertions)]
    rank: Rank,
}

impl Held {
    /// Records that this thread is taking a lock of `rank`; panics in debug
    /// builds if it holds one of the same or a higher rank.
    pub(crate) fn enter(rank: Rank) -> Self {
        #[cfg(debug_assertions)]
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            if let Some(top) = held.iter().max()
                && *top >= rank
            {
                panic!("lock order: taking {rank:?} while holding {top:?} (see Shared's docs)");
            }
            held.push(rank);
        });
        #[cfg(not(debug_assertions))]
        let _ = rank;
        Self {
            #[cfg(debug_assertions)]
            rank,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        #[cfg(debug_assertions)]
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            if let Some(at) = held.iter().rposition(|r| *r == self.rank) {
                held.remove(at);
            }
        });
    }
}

/// A lock guard with its rank: the lock is released first, then the rank.
#[derive(Debug)]
pub(crate) struct Ranked<G> {
    guard: G,
    _held: Held,
}

/// Takes a lock of `rank` with `take` (after checking the order).
pub(crate) fn ranked<G>(rank: Rank, take: impl FnOnce() -> G) -> Ranked<G> {
    let held = Held::enter(rank);
    Ranked {
        guard: take(),
        _held: held,
    }
}

impl<G: Deref> Deref for Ranked<G> {
    type Target = G::Target;

    fn deref(&self) -> &G::Target {
        &self.guard
    }
}

impl<G: DerefMut> DerefMut for Ranked<G> {
    fn deref_mut(&mut self) -> &mut G::Target {
        &mut self.guard
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn locks_taken_in_order_and_released_in_any_order_pass() {
        let (a, b, c) = (Mutex::new(1), Mutex::new(2), Mutex::new(3));
        let merge = ranked(Rank::Merge, || a.lock().expect("a"));
        let writer = ranked(Rank::Writer, || b.lock().expect("b"));
        let mark = ranked(Rank::UnderWriter, || c.lock().expect("c"));
        assert_eq!(*merge + *writer + *mark, 6);
        drop(writer);
        drop(mark);
        drop(merge);
        // Everything released: any lock may be taken again.
        let _writer = ranked(Rank::Writer, || b.lock().expect("b"));
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "lock order")]
    fn the_merge_lock_under_the_writer_lock_panics() {
        let (a, b) = (Mutex::new(()), Mutex::new(()));
        let _writer = ranked(Rank::Writer, || b.lock().expect("b"));
        let _merge = ranked(Rank::Merge, || a.lock().expect("a"));
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "lock order")]
    fn two_brief_locks_at_once_panic() {
        let (a, b) = (Mutex::new(()), Mutex::new(()));
        let _mark = ranked(Rank::UnderWriter, || a.lock().expect("a"));
        let _hints = ranked(Rank::UnderWriter, || b.lock().expect("b"));
    }
}
