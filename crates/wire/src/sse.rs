//! Reading Server-Sent Events (the framing `GET /watch` streams in), for
//! the client and the tests: bytes in, messages out.
//!
//! Written here rather than taken from a crate: the framing is a dozen
//! lines of the HTML standard, and the crates that parse it bring a
//! parser-combinator dependency or an HTTP client of their own.

/// One SSE message: the fields of one block (lines up to a blank line).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseMessage {
    /// `id:`, if the block had one.
    pub id: Option<String>,
    /// `event:`, or `message` when the block had none.
    pub event: String,
    /// The `data:` lines, joined with newlines.
    pub data: String,
    /// Comment lines (`: text`), without the colon and space.
    pub comments: Vec<String>,
}

/// Turns bytes as they arrive into [`SseMessage`]s.
#[derive(Debug, Default)]
pub struct SseDecoder {
    buf: Vec<u8>,
    /// Where in `buf` the search for the block's end resumes.
    scanned: usize,
}

/// A block longer than the decoder allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLong(pub usize);

impl std::fmt::Display for TooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "an event is longer than {} bytes", self.0)
    }
}

impl std::error::Error for TooLong {}

impl SseDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes received; [`TooLong`] if an unfinished block is longer
    /// than `max_len` (the stream is then unusable).
    pub fn push(&mut self, bytes: &[u8], max_len: usize) -> Result<(), TooLong> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > max_len && self.block_end().is_none() {
            return Err(TooLong(max_len));
        }
        Ok(())
    }

    /// The next whole message received, if any.
    pub fn next_message(&mut self) -> Option<SseMessage> {
        loop {
            let end = self.block_end()?;
            let block: Vec<u8> = self.buf.drain(..end).collect();
            self.scanned = 0;
            let text = String::from_utf8_lossy(&block);
            let mut message = SseMessage {
                event: "message".to_string(),
                ..SseMessage::default()
            };
            let mut data: Vec<&str> = Vec::new();
            let mut fields = false;
            for line in text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)) {
                if line.is_empty() {
                    continue;
                }
                if let Some(comment) = line.strip_prefix(':') {
                    message
                        .comments
                        .push(comment.strip_prefix(' ').unwrap_or(comment).to_string());
                    continue;
                }
                let (name, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                fields = true;
                match name {
                    "id" => message.id = Some(value.to_string()),
                    "event" => message.event = value.to_string(),
                    "data" => data.push(value),
                    _ => {}
                }
            }
            message.data = data.join("\n");
            if fields || !message.comments.is_empty() {
                return Some(message);
            }
        }
    }

    /// The end (past the blank line) of the first whole block in `buf`.
    fn block_end(&mut self) -> Option<usize> {
        let buf = &self.buf;
        let mut i = self.scanned;
        while i < buf.len() {
            if buf[i] == b'\n' {
                // "\n\n" or "\n\r\n" ends a block.
                if buf.get(i + 1) == Some(&b'\n') {
                    return Some(i + 2);
                }
                if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                    return Some(i + 3);
                }
            }
            i += 1;
        }
        // Keep the last two bytes for the next search (a "\n" then "\r\n").
        self.scanned = buf.len().saturating_sub(2);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_split_anywhere_come_out_whole() {
        let stream = b"id: 7\nevent: put\ndata: {\"a\":1}\n\n: a comment\n\nevent: progress\r\ndata: x\r\ndata: y\r\n\r\n";
        for cut in 0..stream.len() {
            let mut decoder = SseDecoder::new();
            let mut messages = Vec::new();
            for part in [&stream[..cut], &stream[cut..]] {
                decoder.push(part, 1 << 20).expect("push");
                while let Some(m) = decoder.next_message() {
                    messages.push(m);
                }
            }
            assert_eq!(messages.len(), 3, "cut at {cut}");
            assert_eq!(messages[0].id.as_deref(), Some("7"));
            assert_eq!(messages[0].event, "put");
            assert_eq!(messages[0].data, "{\"a\":1}");
            assert_eq!(messages[1].comments, vec!["a comment".to_string()]);
            assert_eq!(messages[2].event, "progress");
            assert_eq!(messages[2].data, "x\ny");
        }
    }

    #[test]
    fn an_endless_block_is_refused_past_the_limit() {
        let mut decoder = SseDecoder::new();
        decoder
            .push(b"data: 0123456789", 64)
            .expect("under the limit");
        assert_eq!(decoder.push(&[b'x'; 100], 64), Err(TooLong(64)));
    }
}
