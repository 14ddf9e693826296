//! Ports for servers that must be told their port in advance (a cluster's
//! peer ports, named in every founder's `--initial-cluster`).
//!
//! "Bind port 0, read the port, close it" is racy on a busy machine: the
//! port goes back to the kernel's ephemeral range, and any `port 0` bind or
//! outgoing connection elsewhere (another node's HTTP listener, a test's
//! client) may take it before the server binds it. Ports here come from
//! below the ephemeral range, where the kernel never hands out ports on its
//! own, and no port is handed out twice by one process.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::{Mutex, OnceLock};

/// The lowest port handed out.
const LOWEST: u16 = 10_000;

/// The first port of the kernel's ephemeral range (Linux's default when the
/// setting cannot be read).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A port on `host` that nothing listens on now, outside the kernel's
/// ephemeral range and never returned before by this process. Processes
/// start their search at different places (from their pid and the clock) so
/// that parallel test binaries rarely meet.
pub fn unused_port(host: IpAddr) -> Result<u16, String> {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let mut given = GIVEN
        .get_or_init(Default::default)
        .lock()
        .map_err(|_| "port registry poisoned".to_string())?;
    let end = ephemeral_start().max(LOWEST + 1_000);
    let span = u64::from(end - LOWEST);
    let mut rng =
        crate::rng::Rng::new(crate::rng::seed_from_clock() ^ u64::from(std::process::id()));
    let start = rng.below(span);
    for step in 0..span {
        let offset = u16::try_from((start + step) % span).unwrap_or(0);
        let port = LOWEST + offset;
        if given.contains(&port) {
            continue;
        }
        if TcpListener::bind(SocketAddr::new(host, port)).is_ok() {
            given.insert(port);
            return Ok(port);
        }
    }
    Err(format!("no unused port on {host} below {end}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn ports_are_outside_the_ephemeral_range_free_and_never_repeated() {
        let host = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let ports: Vec<u16> = (0..50)
            .map(|_| unused_port(host).expect("a port"))
            .collect();
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "a port was handed out twice");
        for port in ports {
            assert!((LOWEST..ephemeral_start()).contains(&port), "{port}");
            TcpListener::bind(SocketAddr::new(host, port)).expect("still free");
        }
    }
}
