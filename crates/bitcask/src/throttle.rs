//! Pacing background I/O (merges, scrubs) to a byte budget per second, so
//! that it does not starve the foreground.

use std::time::{Duration, Instant};

/// Paces I/O to a byte budget per second.
#[derive(Debug)]
pub(crate) struct Throttle {
    bytes_per_sec: Option<u64>,
    started: Instant,
    spent: u64,
}

impl Throttle {
    /// A budget of `bytes_per_sec` (`None`: no limit), starting now.
    pub(crate) fn new(bytes_per_sec: Option<u64>) -> Self {
        Self {
            bytes_per_sec,
            started: Instant::now(),
            spent: 0,
        }
    }

    /// Counts `bytes` of I/O and sleeps while ahead of the budget.
    pub(crate) fn spend(&mut self, bytes: u64) {
        let Some(rate) = self.bytes_per_sec else {
            return;
        };
        self.spent += bytes;
        // (A budget the spent bytes would take centuries to pay off still
        // sleeps, rather than panicking on an unrepresentable duration.)
        let due =
            Duration::try_from_secs_f64(self.spent as f64 / rate as f64).unwrap_or(Duration::MAX);
        let elapsed = self.started.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_paces_the_io() {
        // A lower bound only (sleeping guarantees at least the time asked):
        // 300 KB at 1 MB/s cannot take less than 0.3 s.
        let mut throttle = Throttle::new(Some(1_000_000));
        let started = std::time::Instant::now();
        for _ in 0..30 {
            throttle.spend(10_000);
        }
        assert!(started.elapsed() >= Duration::from_millis(290));
        let mut unlimited = Throttle::new(None);
        unlimited.spend(u64::MAX / 2);
    }
}
