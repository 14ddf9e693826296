//! The state machine's clock: the leader's time while an entry is applied
//! (so every node judges expiry and turns time-to-live into an expiry at
//! the same instant), the wall clock otherwise (for reads).

use std::cell::Cell;

use bitcask::clock::{Clock, SystemClock};

thread_local! {
    /// The time set by [`at`] on this thread, if any.
    static APPLYING_AT: Cell<Option<u64>> = const { Cell::new(None) };
}

/// The wall clock, except on a thread inside [`at`].
#[derive(Debug, Default, Clone, Copy)]
pub struct ApplyClock;

impl Clock for ApplyClock {
    fn now_ms(&self) -> u64 {
        now_ms()
    }
}

/// The time: the applying entry's on a thread inside [`at`], else the wall
/// clock. Application code that must agree with the state machine (a
/// command's expiry arithmetic) reads this rather than the system time.
pub fn now_ms() -> u64 {
    APPLYING_AT.get().unwrap_or_else(|| SystemClock.now_ms())
}

/// Runs `f` with this thread's clock stopped at `now_ms`.
pub fn at<T>(now_ms: u64, f: impl FnOnce() -> T) -> T {
    struct Reset(Option<u64>);
    impl Drop for Reset {
        fn drop(&mut self) {
            APPLYING_AT.set(self.0);
        }
    }
    let _reset = Reset(APPLYING_AT.replace(Some(now_ms)));
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_stops_inside_at_and_only_on_that_thread() {
        let wall = now_ms();
        assert!(wall > 1_600_000_000_000);
        at(42, || {
            assert_eq!(ApplyClock.now_ms(), 42);
            at(7, || assert_eq!(now_ms(), 7));
            assert_eq!(now_ms(), 42);
            let other = std::thread::spawn(now_ms).join().expect("thread");
            assert!(other >= wall);
        });
        assert!(now_ms() >= wall);
    }
}
