//! A connection that fails once it has been silent for too long: no byte
//! read or written for the time-out while the server waits to read or
//! write. HTTP connections are wrapped in it, because hyper has no such
//! time-out: its header time-out covers only the reading of a request's
//! head, and a client that stops reading a response holds its connection
//! forever.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// `inner`, failing with `TimedOut` after `timeout` of silence.
#[derive(Debug)]
pub struct Idle<T> {
    inner: T,
    timeout: Duration,
    /// When a byte last went either way.
    last: Instant,
    /// Armed for `last + timeout` as it was when the timer was last set;
    /// moved on only when it fires early (so busy connections do not touch
    /// the timer wheel on every read).
    timer: Pin<Box<Sleep>>,
}

impl<T> Idle<T> {
    /// Wraps `inner`; the silence starts now.
    pub fn new(inner: T, timeout: Duration) -> Self {
        let last = Instant::now();
        Self {
            inner,
            timeout,
            last,
            timer: Box::pin(tokio::time::sleep_until(last + timeout)),
        }
    }

    /// Called when the inner stream would wait: ready with an error once the
    /// connection has been silent for the time-out.
    fn poll_silence<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let deadline = self.last + self.timeout;
            if Instant::now() >= deadline {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle for too long",
                )));
            }
            self.timer.as_mut().reset(deadline);
        }
    }
}

impl<T> Idle<T> {
    /// What a write of the inner stream came to: bytes written count as
    /// traffic; a write that must wait waits only until the silence ends.
    fn after_write(
        &mut self,
        written: Poll<io::Result<usize>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(result) => {
                if matches!(result, Ok(n) if n > 0) {
                    self.last = Instant::now();
                }
                Poll::Ready(result)
            }
            Poll::Pending => self.poll_silence(cx),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Idle<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.last = Instant::now();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.poll_silence(cx),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Idle<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.after_write(written, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.after_write(written, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn silence_fails_and_traffic_keeps_it_alive() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut idle = Idle::new(near, Duration::from_secs(10));
        let mut buf = [0u8; 8];
        // Bytes every 6 s: never 10 s of silence.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(6)).await;
            far.write_all(b"x").await.expect("write");
            assert_eq!(idle.read(&mut buf).await.expect("read"), 1);
        }
        // Then nothing: the read fails after the time-out.
        let started = Instant::now();
        let error = idle.read(&mut buf).await.expect_err("timed out");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        // A peer that reads nothing: writes stall, then fail.
        let (near, _far) = tokio::io::duplex(4);
        let mut idle = Idle::new(near, Duration::from_secs(10));
        let error = idle.write_all(&[0u8; 64]).await.expect_err("timed out");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }
}
