//! A background thread that runs a task every interval until it is
//! stopped (the interval sync, the scrub): one way to start, wake, stop and
//! join such threads.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};

/// The thread and the channel whose closing stops it.
#[derive(Debug)]
pub(crate) struct Periodic {
    name: &'static str,
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Periodic {
    /// Starts thread `name`, which calls `tick` every `every` until
    /// [`Self::stop`] or until `tick` breaks. `tick` gets a check that says
    /// whether a stop was asked meanwhile, for long ticks to stop early.
    pub(crate) fn start(
        name: &'static str,
        every: Duration,
        mut tick: impl FnMut(&dyn Fn() -> bool) -> ControlFlow<()> + Send + 'static,
    ) -> Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    let stopping = || matches!(stopped.try_recv(), Err(TryRecvError::Disconnected));
                    if tick(&stopping).is_break() {
                        return;
                    }
                }
            })
            .map_err(|source| Error::Io {
                path: PathBuf::from(format!("<{name} thread>")),
                source,
            })?;
        Ok(Self { name, stop, thread })
    }

    /// Stops the thread (a tick under way sees the stop through its check)
    /// and waits for it.
    pub(crate) fn stop(self) {
        drop(self.stop);
        if self.thread.join().is_err() {
            tracing::error!(thread = self.name, "a background thread panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn ticks_until_stopped_or_until_the_task_breaks() {
        let ticks = Arc::new(AtomicU32::new(0));
        let counted = Arc::clone(&ticks);
        let thread = Periodic::start("test-tick", Duration::from_millis(1), move |_| {
            counted.fetch_add(1, Ordering::Relaxed);
            ControlFlow::Continue(())
        })
        .expect("start");
        while ticks.load(Ordering::Relaxed) < 3 {
            std::thread::sleep(Duration::from_millis(1));
        }
        thread.stop();
        let after = ticks.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(ticks.load(Ordering::Relaxed), after, "no tick after stop");

        let once = Periodic::start("test-once", Duration::from_millis(1), |_| {
            ControlFlow::Break(())
        })
        .expect("start");
        once.stop(); // joins a thread that ended by itself
    }
}
