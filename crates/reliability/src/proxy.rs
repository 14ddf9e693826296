//! A TCP proxy that injects network faults, in front of one node's peer
//! port (as etcd's robustness tests put one on every peer link). The other
//! nodes reach the node through it; every node connects from an address of
//! its own (127.0.0.N), so the proxy knows who is calling and can treat
//! each caller differently: pass, delay, drop the connection at once, or
//! blackhole it (accept and never answer). Changing a caller's fault cuts
//! the connections it already has, so the fault applies at once.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// What the proxy does to a caller's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward as is.
    Pass,
    /// Forward, holding each chunk this long first (each way).
    Delay(Duration),
    /// Close the connection at once.
    Drop,
    /// Accept and read, never forward or answer.
    Blackhole,
}

#[derive(Default)]
struct Rules {
    faults: HashMap<IpAddr, Fault>,
    /// Open connections by caller, to cut when its fault changes.
    open: Vec<(IpAddr, AbortHandle)>,
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    rules: Arc<Mutex<Rules>>,
    accept: AbortHandle,
}

impl FaultProxy {
    /// Listens on `listen` (port 0 picks one) and forwards to `target`.
    /// Must be called inside a tokio runtime.
    pub async fn start(listen: SocketAddr, target: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let rules = Arc::new(Mutex::new(Rules::default()));
        let shared = Arc::clone(&rules);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    continue;
                };
                let caller = peer.ip();
                let fault = lock(&shared)
                    .faults
                    .get(&caller)
                    .copied()
                    .unwrap_or(Fault::Pass);
                let task = match fault {
                    Fault::Drop => continue,
                    Fault::Blackhole => tokio::spawn(swallow(stream)),
                    Fault::Pass => tokio::spawn(forward(stream, target, None)),
                    Fault::Delay(by) => tokio::spawn(forward(stream, target, Some(by))),
                };
                let mut rules = lock(&shared);
                rules.open.retain(|(_, handle)| !handle.is_finished());
                rules.open.push((caller, task.abort_handle()));
            }
        })
        .abort_handle();
        Ok(Self {
            addr,
            rules,
            accept,
        })
    }

    /// The address the proxy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Applies `fault` to `caller` from now on, cutting its connections.
    pub fn set(&self, caller: IpAddr, fault: Fault) {
        let mut rules = lock(&self.rules);
        rules.faults.insert(caller, fault);
        rules.open.retain(|(ip, handle)| {
            if *ip == caller {
                handle.abort();
                false
            } else {
                true
            }
        });
    }

    /// Lets every caller through again, cutting the connections that were
    /// under a fault.
    pub fn heal(&self) {
        let callers: Vec<IpAddr> = lock(&self.rules).faults.keys().copied().collect();
        for caller in callers {
            self.set(caller, Fault::Pass);
        }
        lock(&self.rules).faults.clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        for (_, handle) in lock(&self.rules).open.drain(..) {
            handle.abort();
        }
    }
}

fn lock(rules: &Mutex<Rules>) -> std::sync::MutexGuard<'_, Rules> {
    rules.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads and discards until the caller gives up.
async fn swallow(mut stream: TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
}

/// Copies both ways between `inbound` and a new connection to `target`.
async fn forward(inbound: TcpStream, target: SocketAddr, delay: Option<Duration>) {
    let Ok(outbound) = TcpStream::connect(target).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (ri, wi) = inbound.into_split();
    let (ro, wo) = outbound.into_split();
    tokio::select! {
        () = pump(ri, wo, delay) => {}
        () = pump(ro, wi, delay) => {}
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Option<Duration>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if let Some(by) = delay {
            tokio::time::sleep(by).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(proxy: SocketAddr, from: IpAddr) -> io::Result<Vec<u8>> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(from, 0))?;
        let mut stream = socket.connect(proxy).await?;
        stream.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        tokio::time::timeout(Duration::from_millis(500), stream.read_exact(&mut buf))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        Ok(buf.to_vec())
    }

    #[tokio::test]
    async fn callers_are_passed_dropped_blackholed_and_healed_by_their_address() {
        let target = echo_server().await;
        let proxy = FaultProxy::start("127.0.0.1:0".parse().expect("addr"), target)
            .await
            .expect("proxy");
        let (a, b): (IpAddr, IpAddr) = (
            "127.0.0.2".parse().expect("ip"),
            "127.0.0.3".parse().expect("ip"),
        );
        assert_eq!(round_trip(proxy.addr(), a).await.expect("pass"), b"ping");
        proxy.set(a, Fault::Drop);
        assert!(round_trip(proxy.addr(), a).await.is_err(), "dropped");
        assert_eq!(
            round_trip(proxy.addr(), b).await.expect("b passes"),
            b"ping"
        );
        proxy.set(b, Fault::Blackhole);
        let blackholed = round_trip(proxy.addr(), b).await;
        assert_eq!(
            blackholed.err().map(|e| e.kind()),
            Some(io::ErrorKind::TimedOut)
        );
        proxy.heal();
        assert_eq!(round_trip(proxy.addr(), a).await.expect("healed"), b"ping");
        assert_eq!(round_trip(proxy.addr(), b).await.expect("healed"), b"ping");
        proxy.set(a, Fault::Delay(Duration::from_millis(50)));
        let started = std::time::Instant::now();
        assert_eq!(round_trip(proxy.addr(), a).await.expect("delayed"), b"ping");
        assert!(
            started.elapsed() >= Duration::from_millis(100),
            "delayed both ways"
        );
    }
}
