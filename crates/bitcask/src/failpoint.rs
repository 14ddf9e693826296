//! Test-only fault injection: named points in the I/O paths that a unit test
//! can arm so that the next pass through them fails like the OS call would.
//!
//! Armed points are per thread, so tests running in parallel do not see each
//! other's faults. The module exists only under `cfg(test)`; release builds
//! contain no trace of it.

use std::cell::RefCell;
use std::io;

thread_local! {
    static ARMED: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
}

/// Makes the next pass through point `name` on this thread fail.
pub(crate) fn arm(name: &'static str) {
    ARMED.with(|armed| armed.borrow_mut().push(name));
}

/// Fails (once) if `name` is armed on this thread.
pub(crate) fn check(name: &'static str) -> io::Result<()> {
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

/// What [`observe`] installs.
type Observer = Box<dyn FnMut(&'static str)>;

thread_local! {
    static OBSERVER: RefCell<Option<Observer>> = const { RefCell::new(None) };
}

/// Calls `observer` with the name of every [`step`] this thread passes,
/// until [`stop_observing`]. Crash tests use it to copy the store's
/// directory at each step of a protocol: the copy is what a process killed
/// at that step would leave.
pub(crate) fn observe(observer: impl FnMut(&'static str) + 'static) {
    OBSERVER.with(|o| *o.borrow_mut() = Some(Box::new(observer)));
}

/// Removes this thread's observer.
pub(crate) fn stop_observing() {
    OBSERVER.with(|o| o.borrow_mut().take());
}

/// Marks a step of a multi-step disk protocol (see [`observe`]).
pub(crate) fn step(name: &'static str) {
    OBSERVER.with(|o| {
        if let Some(observer) = o.borrow_mut().as_mut() {
            observer(name);
        }
    });
}
