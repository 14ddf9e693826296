//! Fault injection: named points in the I/O paths that a unit test can arm
//! so that the next pass through them fails like the OS call would (and,
//! with the `failpoints` feature, that an environment variable arms for a
//! whole process).
//!
//! Points armed by tests are per thread, so tests running in parallel do not
//! see each other's faults. The module exists only under `cfg(test)` or the
//! `failpoints` feature; release builds contain no trace of it.

use std::cell::RefCell;
use std::io;

thread_local! {
    static ARMED: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
}

#[cfg(test)]
/// Makes the next pass through point `name` on this thread fail.
pub(crate) fn arm(name: &'static str) {
    ARMED.with(|armed| armed.borrow_mut().push(name));
}

#[cfg(test)]
/// Whether point `name` is armed on this thread and not yet passed.
pub(crate) fn is_armed(name: &'static str) -> bool {
    ARMED.with(|armed| armed.borrow().contains(&name))
}

/// Points armed for the whole process by the `BITCASK_FAILPOINTS`
/// environment variable (feature `failpoints`): comma-separated names, each
/// optionally `name@n` to fail the n-th pass (default the first); each
/// fails once. For end-to-end tests of a server process.
#[cfg(feature = "failpoints")]
fn process_armed(name: &str) -> bool {
    use std::sync::{Mutex, OnceLock};
    static ARMED: OnceLock<Mutex<Vec<(String, u64)>>> = OnceLock::new();
    let armed = ARMED.get_or_init(|| {
        let spec = std::env::var("BITCASK_FAILPOINTS").unwrap_or_default();
        let points = spec
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('@') {
                // A count that is not a positive number means the first pass.
                Some((name, n)) => (name.to_string(), n.parse().unwrap_or(1).max(1)),
                None => (p.to_string(), 1),
            })
            .collect();
        Mutex::new(points)
    });
    let mut armed = armed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(i) = armed.iter().position(|(n, _)| n == name) else {
        return false;
    };
    armed[i].1 -= 1;
    if armed[i].1 == 0 {
        armed.remove(i);
        true
    } else {
        false
    }
}

/// Fails (once) if `name` is armed on this thread (or, with the
/// `failpoints` feature, for the process).
pub(crate) fn check(name: &'static str) -> io::Result<()> {
    #[cfg(feature = "failpoints")]
    if process_armed(name) {
        return Err(io::Error::other(format!("injected failure at {name}")));
    }
    let hit = ARMED.with(|armed| {
        let mut armed = armed.borrow_mut();
        match armed.iter().position(|&n| n == name) {
            Some(i) => {
                armed.remove(i);
                true
            }
            None => false,
        }
    });
    if hit {
        Err(io::Error::other(format!("injected failure at {name}")))
    } else {
        Ok(())
    }
}

#[cfg(test)]
/// What [`observe`] installs.
type Observer = Box<dyn FnMut(&'static str)>;

#[cfg(test)]
thread_local! {
    static OBSERVER: RefCell<Option<Observer>> = const { RefCell::new(None) };
}

#[cfg(test)]
/// Calls `observer` with the name of every [`step`] this thread passes,
/// until [`stop_observing`]. Crash tests use it to copy the store's
/// directory at each step of a protocol: the copy is what a process killed
/// at that step would leave.
pub(crate) fn observe(observer: impl FnMut(&'static str) + 'static) {
    OBSERVER.with(|o| *o.borrow_mut() = Some(Box::new(observer)));
}

#[cfg(test)]
/// Removes this thread's observer.
pub(crate) fn stop_observing() {
    OBSERVER.with(|o| o.borrow_mut().take());
}

#[cfg(test)]
/// Marks a step of a multi-step disk protocol (see [`observe`]).
pub(crate) fn step(name: &'static str) {
    OBSERVER.with(|o| {
        if let Some(observer) = o.borrow_mut().as_mut() {
            observer(name);
        }
    });
}
