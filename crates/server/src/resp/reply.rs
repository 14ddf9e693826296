//! Writing replies into a connection's output buffer, in RESP2 or RESP3.
//! Commands write straight into the buffer (no reply tree in between), so a
//! pipelined `GET` costs one copy of its value.

use bytes::{BufMut, BytesMut};

/// Output bytes at which commands stop and the output is sent before more
/// run: what one connection holds in replies is this, plus at most one
/// value, plus a `KEYS` reply under the output limit.
pub const FLUSH_AT: usize = 64 * 1024;

/// The protocol a connection speaks (RESP2 until `HELLO 3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// RESP2.
    Resp2,
    /// RESP3.
    Resp3,
}

/// A connection's output buffer.
#[derive(Debug)]
pub struct Out {
    buf: BytesMut,
    protocol: Protocol,
}

impl Out {
    /// An empty buffer for `protocol`.
    pub fn new(protocol: Protocol) -> Self {
        Self {
            buf: BytesMut::with_capacity(16 * 1024),
            protocol,
        }
    }

    /// The protocol replies are written in.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Switches the protocol (after `HELLO`).
    pub fn set_protocol(&mut self, protocol: Protocol) {
        self.protocol = protocol;
    }

    /// Appends a reply already encoded (a cluster write's, encoded by the
    /// state machine in this connection's protocol).
    pub fn raw(&mut self, encoded: &[u8]) {
        self.buf.put_slice(encoded);
    }

    /// The bytes written so far.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Forgets the bytes written (after they were sent).
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// Forgets everything written after the first `len` bytes (a reply
    /// that turned into an error before it was sent).
    pub fn truncate(&mut self, len: usize) {
        self.buf.truncate(len);
    }

    /// Drops the buffer's memory once a large reply has been sent, so an
    /// idle connection does not keep the high-water mark of its replies.
    pub fn shrink(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 4 * FLUSH_AT {
            self.buf = BytesMut::with_capacity(16 * 1024);
        }
    }

    /// Number of bytes waiting to be sent.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing waits to be sent.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// `+OK`.
    pub fn ok(&mut self) {
        self.buf.put_slice(b"+OK\r\n");
    }

    /// A simple string (no CR or LF in it).
    pub fn simple(&mut self, text: &str) {
        self.buf.put_u8(b'+');
        self.buf.put_slice(text.as_bytes());
        self.buf.put_slice(b"\r\n");
    }

    /// An error; `text` starts with its code (`ERR`, `NOAUTH`, ...). Line
    /// breaks in it are replaced, as they would end the reply.
    pub fn error(&mut self, text: &str) {
        self.buf.put_u8(b'-');
        for &b in text.as_bytes() {
            self.buf
                .put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
        }
        self.buf.put_slice(b"\r\n");
    }

    /// An integer.
    pub fn int(&mut self, n: i64) {
        self.buf.put_u8(b':');
        self.decimal(n);
        self.buf.put_slice(b"\r\n");
    }

    /// A bulk string.
    pub fn bulk(&mut self, bytes: &[u8]) {
        self.buf.reserve(bytes.len() + 16);
        self.buf.put_u8(b'$');
        self.decimal(bytes.len() as i64);
        self.buf.put_slice(b"\r\n");
        self.buf.put_slice(bytes);
        self.buf.put_slice(b"\r\n");
    }

    /// The null reply (`$-1` in RESP2, `_` in RESP3).
    pub fn null(&mut self) {
        match self.protocol {
            Protocol::Resp2 => self.buf.put_slice(b"$-1\r\n"),
            Protocol::Resp3 => self.buf.put_slice(b"_\r\n"),
        }
    }

    /// The null array: an aborted `EXEC` (`*-1` in RESP2, `_` in RESP3).
    pub fn null_array(&mut self) {
        match self.protocol {
            Protocol::Resp2 => self.buf.put_slice(b"*-1\r\n"),
            Protocol::Resp3 => self.buf.put_slice(b"_\r\n"),
        }
    }

    /// A bulk string, or null.
    pub fn bulk_or_null(&mut self, bytes: Option<&[u8]>) {
        match bytes {
            Some(bytes) => self.bulk(bytes),
            None => self.null(),
        }
    }

    /// The header of an array of `len` replies, which follow.
    pub fn array(&mut self, len: usize) {
        self.buf.put_u8(b'*');
        self.decimal(len as i64);
        self.buf.put_slice(b"\r\n");
    }

    /// The header of a map of `len` key/value pairs, which follow (a flat
    /// array of `2 * len` in RESP2).
    pub fn map(&mut self, len: usize) {
        match self.protocol {
            Protocol::Resp2 => self.array(len * 2),
            Protocol::Resp3 => {
                self.buf.put_u8(b'%');
                self.decimal(len as i64);
                self.buf.put_slice(b"\r\n");
            }
        }
    }

    fn decimal(&mut self, n: i64) {
        self.buf.put_slice(itoa_buf(n).as_slice());
    }
}

/// `n` in decimal, without allocating a `String`.
fn itoa_buf(n: i64) -> DecimalBuf {
    let mut out = DecimalBuf::default();
    let negative = n < 0;
    let mut v = n.unsigned_abs();
    loop {
        out.push(b'0' + (v % 10) as u8);
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if negative {
        out.push(b'-');
    }
    out.bytes[..out.len].reverse();
    out
}

/// Room for any `i64` in decimal.
#[derive(Default)]
struct DecimalBuf {
    bytes: [u8; 20],
    len: usize,
}

impl DecimalBuf {
    fn push(&mut self, b: u8) {
        self.bytes[self.len] = b;
        self.len += 1;
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_encode_as_resp2_and_resp3() {
        let mut out = Out::new(Protocol::Resp2);
        out.ok();
        out.int(-42);
        out.int(i64::MIN);
        out.bulk(b"a\r\nb");
        out.null();
        out.map(1);
        out.simple("k");
        out.int(0);
        out.error("ERR bad\r\nthing");
        assert_eq!(
            out.bytes(),
            b"+OK\r\n:-42\r\n:-9223372036854775808\r\n$4\r\na\r\nb\r\n$-1\r\n*2\r\n+k\r\n:0\r\n-ERR bad  thing\r\n"
        );
        let mut out = Out::new(Protocol::Resp3);
        out.null();
        out.map(2);
        assert_eq!(out.bytes(), b"_\r\n%2\r\n");
    }
}
