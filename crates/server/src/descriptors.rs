//! Connection caps that fit the process's descriptor limit (`ulimit -n`).
//!
//! Every connection holds a descriptor, and so do the store's files, the
//! listeners and the runtime. Once they are used up, `accept` fails with
//! `EMFILE` on every listener at once: 1,100 idle RESP connections under a
//! limit of 1,024 once kept `/health` from answering. As Redis lowers
//! `maxclients` to fit `ulimit -n`, the server lowers its listeners' caps at
//! start so that together they leave [`RESERVE`] descriptors free, and
//! refuses connections beyond a cap cleanly instead.

/// Descriptors kept free of connections: the store's data, hint and lock
/// files, a merge's outputs, the listeners, the runtime's own, log files.
pub const RESERVE: u64 = 64;

/// How many connections each listener may hold at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// HTTP connections.
    pub http: usize,
    /// RESP connections (unused when that listener is off).
    pub resp: usize,
    /// Whether the configured caps were lowered to fit the limit.
    pub lowered: bool,
}

/// Raises the soft descriptor limit to the hard one (as Redis and most
/// servers do at start); returns the limits before and after.
pub fn raise_soft_limit() -> std::io::Result<(Option<u64>, Option<u64>)> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let before = limit.current;
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit)?;
    }
    Ok((before, getrlimit(Resource::Nofile).current))
}

/// The soft descriptor limit (`None`: unlimited).
pub fn descriptor_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// The caps for `http` and (if that listener is on) `resp` connections
/// under a descriptor `limit`: as configured if they fit, otherwise shared
/// out in proportion to what was configured, each at least one.
pub fn plan(http: usize, resp: Option<usize>, limit: Option<u64>) -> Caps {
    let wanted = http.saturating_add(resp.unwrap_or(0));
    let available = limit.map_or(usize::MAX, |l| {
        usize::try_from(l.saturating_sub(RESERVE).max(2)).unwrap_or(usize::MAX)
    });
    if wanted <= available {
        return Caps {
            http,
            resp: resp.unwrap_or(0),
            lowered: false,
        };
    }
    match resp {
        None => Caps {
            http: available,
            resp: 0,
            lowered: true,
        },
        Some(resp) => {
            let share = |n: usize| {
                let n = u128::try_from(n).unwrap_or(u128::MAX);
                let total = u128::try_from(wanted).unwrap_or(u128::MAX);
                let available = u128::try_from(available).unwrap_or(u128::MAX);
                usize::try_from(available * n / total).unwrap_or(usize::MAX)
            };
            let http = share(http).clamp(1, available - 1);
            Caps {
                http,
                resp: share(resp).clamp(1, available - http),
                lowered: true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_that_fit_are_kept() {
        let caps = plan(10_000, Some(10_000), Some(1 << 20));
        assert_eq!(
            (caps.http, caps.resp, caps.lowered),
            (10_000, 10_000, false)
        );
        assert_eq!(plan(10, None, None).http, 10);
    }

    #[test]
    fn caps_that_do_not_fit_are_shared_out_below_the_limit() {
        let caps = plan(10_000, Some(10_000), Some(1024));
        assert!(caps.lowered);
        assert_eq!(caps.http + caps.resp, 1024 - RESERVE as usize);
        assert_eq!(caps.http, caps.resp);
        let caps = plan(3_000, Some(1_000), Some(464));
        assert_eq!((caps.http, caps.resp), (300, 100));
        let caps = plan(10_000, None, Some(1024));
        assert_eq!(caps.http, 960);
        // A limit below the reserve still lets one connection each in.
        let caps = plan(10, Some(10), Some(10));
        assert_eq!((caps.http, caps.resp), (1, 1));
    }
}
