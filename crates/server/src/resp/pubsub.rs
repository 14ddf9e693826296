//! Redis keyspace notifications (docs/WATCH.md, docs/RESP.md): what a
//! connection has subscribed to, which events `notify-keyspace-events`
//! asks for, and the messages a change becomes.
//!
//! The events come from the change feed (the data files), read by the
//! connection once it has a subscription: a write notifies as `set`, a
//! delete as `del`, an expiry the store enforced as `expired`, on
//! `__keyspace@0__:<key>` (message: the event) and `__keyevent@0__:<event>`
//! (message: the key). Redis names finer events (`incrby`, `append`,
//! `expire`, ...); the log records only puts and deletes, so every write
//! is a `set`, which is what cache invalidation listens for. There is no
//! `PUBLISH`: the only channels are the keyspace's.

use std::collections::{BTreeMap, BTreeSet};

use bitcask_wire::WatchOp;

use super::glob::{self, Pattern};
use super::reply::{Out, Protocol};

/// `notify-keyspace-events` classes in Redis's order; `A` stands for the
/// first ten.
const CLASSES: &[u8] = b"g$lshzxetdmn";
const ALL_CLASSES: u16 = (1 << 10) - 1;
const KEYSPACE: u16 = 1 << 12;
const KEYEVENT: u16 = 1 << 13;
/// Channels and patterns one connection may subscribe to: every change is
/// matched against each of them.
pub const MAX_SUBSCRIPTIONS: usize = 10_000;

/// Which notifications are sent (`CONFIG SET notify-keyspace-events`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags(u16);

impl Flags {
    /// Flags from their bits ([`Self::bits`]).
    pub fn from_bits(bits: u16) -> Self {
        Self(bits)
    }

    /// The flags as bits (to keep in an atomic).
    pub fn bits(self) -> u16 {
        self.0
    }

    /// Parses Redis's flag string (`KEA`, `Kx`, `""`); `None` for a
    /// character Redis does not know.
    pub fn parse(text: &[u8]) -> Option<Self> {
        let mut bits = 0;
        for &c in text {
            bits |= match c {
                b'A' => ALL_CLASSES,
                b'K' => KEYSPACE,
                b'E' => KEYEVENT,
                _ => 1 << CLASSES.iter().position(|&k| k == c)?,
            };
        }
        Some(Self(bits))
    }

    /// The flags as Redis writes them back (`AKE`, `g$xK`, ...).
    pub fn show(self) -> String {
        let mut text = String::new();
        if self.0 & ALL_CLASSES == ALL_CLASSES {
            text.push('A');
        }
        for (i, &c) in CLASSES.iter().enumerate() {
            let in_all = i < 10 && self.0 & ALL_CLASSES == ALL_CLASSES;
            if self.0 & (1 << i) != 0 && !in_all {
                text.push(char::from(c));
            }
        }
        if self.0 & KEYSPACE != 0 {
            text.push('K');
        }
        if self.0 & KEYEVENT != 0 {
            text.push('E');
        }
        text
    }

    /// The event name for `op`, if its class is on and so is a channel
    /// kind (`K` or `E`).
    fn event(self, op: WatchOp) -> Option<&'static str> {
        let (class, name) = match op {
            WatchOp::Put => (b'$', "set"),
            WatchOp::Delete => (b'g', "del"),
            WatchOp::Expire => (b'x', "expired"),
        };
        let bit = 1 << CLASSES.iter().position(|&k| k == class)?;
        (self.0 & bit != 0 && self.0 & (KEYSPACE | KEYEVENT) != 0).then_some(name)
    }
}

/// The channels and patterns one connection has subscribed to.
#[derive(Debug)]
pub struct Subscriptions {
    channels: BTreeSet<Vec<u8>>,
    patterns: BTreeMap<Vec<u8>, Pattern>,
    /// The change feed's seq when the first subscription was made: the
    /// connection's events start there.
    pub from_seq: u64,
}

/// What a (un)subscribe is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `SUBSCRIBE` / `UNSUBSCRIBE`: exact channel names.
    Channel,
    /// `PSUBSCRIBE` / `PUNSUBSCRIBE`: glob patterns.
    Pattern,
}

impl Subscriptions {
    /// None yet; events from `from_seq` on.
    pub fn new(from_seq: u64) -> Self {
        Self {
            channels: BTreeSet::new(),
            patterns: BTreeMap::new(),
            from_seq,
        }
    }

    /// Channels and patterns subscribed to.
    pub fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    /// Subscribes to `names`, answering one confirmation each; or to none
    /// of them, with the error to answer, if a pattern is longer than
    /// [`glob::MAX_PATTERN`] or they would take the connection over
    /// [`MAX_SUBSCRIPTIONS`].
    pub fn subscribe(&mut self, kind: Kind, names: &[&[u8]], out: &mut Out) -> Result<(), String> {
        if kind == Kind::Pattern
            && let Some(long) = names.iter().find(|n| n.len() > glob::MAX_PATTERN)
        {
            return Err(format!(
                "ERR pattern too long ({} bytes; the limit is {})",
                long.len(),
                glob::MAX_PATTERN
            ));
        }
        if self.count().saturating_add(names.len()) > MAX_SUBSCRIPTIONS {
            return Err(format!(
                "ERR at most {MAX_SUBSCRIPTIONS} channels and patterns per connection"
            ));
        }
        for name in names {
            match kind {
                Kind::Channel => {
                    self.channels.insert(name.to_vec());
                }
                Kind::Pattern => {
                    self.patterns
                        .entry(name.to_vec())
                        .or_insert_with(|| Pattern::compile(name));
                }
            }
            self.confirm(kind, true, Some(name), out);
        }
        Ok(())
    }

    /// Unsubscribes from `names` (all of the kind if none), answering one
    /// confirmation each (one with no name if there was nothing).
    pub fn unsubscribe(&mut self, kind: Kind, names: &[&[u8]], out: &mut Out) {
        let names: Vec<Vec<u8>> = if names.is_empty() {
            match kind {
                Kind::Channel => self.channels.iter().cloned().collect(),
                Kind::Pattern => self.patterns.keys().cloned().collect(),
            }
        } else {
            names.iter().map(|n| n.to_vec()).collect()
        };
        if names.is_empty() {
            self.confirm(kind, false, None, out);
        }
        for name in names {
            match kind {
                Kind::Channel => {
                    self.channels.remove(&name);
                }
                Kind::Pattern => {
                    self.patterns.remove(&name);
                }
            }
            self.confirm(kind, false, Some(&name), out);
        }
    }

    fn confirm(&self, kind: Kind, subscribed: bool, name: Option<&[u8]>, out: &mut Out) {
        let word: &[u8] = match (kind, subscribed) {
            (Kind::Channel, true) => b"subscribe",
            (Kind::Channel, false) => b"unsubscribe",
            (Kind::Pattern, true) => b"psubscribe",
            (Kind::Pattern, false) => b"punsubscribe",
        };
        push_header(out, 3);
        out.bulk(word);
        out.bulk_or_null(name);
        out.int(self.count() as i64);
    }

    /// The messages of one change of `key`, as `flags` ask.
    pub fn deliver(&self, flags: Flags, op: WatchOp, key: &[u8], out: &mut Out) {
        let Some(event) = flags.event(op) else {
            return;
        };
        if flags.0 & KEYSPACE != 0 {
            let mut channel = b"__keyspace@0__:".to_vec();
            channel.extend_from_slice(key);
            self.publish(&channel, event.as_bytes(), out);
        }
        if flags.0 & KEYEVENT != 0 {
            let mut channel = b"__keyevent@0__:".to_vec();
            channel.extend_from_slice(event.as_bytes());
            self.publish(&channel, key, out);
        }
    }

    fn publish(&self, channel: &[u8], message: &[u8], out: &mut Out) {
        if self.channels.contains(channel) {
            push_header(out, 3);
            out.bulk(b"message");
            out.bulk(channel);
            out.bulk(message);
        }
        for (name, pattern) in &self.patterns {
            if pattern.matches(channel) {
                push_header(out, 4);
                out.bulk(b"pmessage");
                out.bulk(name);
                out.bulk(channel);
                out.bulk(message);
            }
        }
    }
}

/// A pub/sub message's header: an array in RESP2, a push in RESP3.
pub fn push_header(out: &mut Out, len: usize) {
    match out.protocol() {
        Protocol::Resp2 => out.array(len),
        Protocol::Resp3 => out.raw(format!(">{len}\r\n").as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_show_as_redis_does() {
        assert_eq!(
            Flags::parse(b"KEA").map(Flags::show).as_deref(),
            Some("AKE")
        );
        assert_eq!(Flags::parse(b"Kx").map(Flags::show).as_deref(), Some("xK"));
        assert_eq!(Flags::parse(b"").map(Flags::show).as_deref(), Some(""));
        assert!(Flags::parse(b"KQ").is_none());
        let flags = Flags::parse(b"Kx").expect("flags");
        assert_eq!(flags.event(WatchOp::Expire), Some("expired"));
        assert_eq!(flags.event(WatchOp::Put), None);
        // Classes without K or E send nothing.
        assert_eq!(Flags::parse(b"A").expect("flags").event(WatchOp::Put), None);
    }

    #[test]
    fn a_change_reaches_exact_channels_and_matching_patterns() {
        let mut subs = Subscriptions::new(1);
        let mut out = Out::new(Protocol::Resp2);
        subs.subscribe(Kind::Pattern, &[b"__keyspace@0__:user*"], &mut out)
            .expect("subscribe");
        subs.subscribe(Kind::Channel, &[b"__keyevent@0__:del"], &mut out)
            .expect("subscribe");
        assert_eq!(subs.count(), 2);
        out.clear();
        let flags = Flags::parse(b"KEA").expect("flags");
        subs.deliver(flags, WatchOp::Delete, b"user1", &mut out);
        assert_eq!(
            String::from_utf8_lossy(out.bytes()),
            "*4\r\n$8\r\npmessage\r\n$20\r\n__keyspace@0__:user*\r\n$20\r\n__keyspace@0__:user1\r\n$3\r\ndel\r\n\
             *3\r\n$7\r\nmessage\r\n$18\r\n__keyevent@0__:del\r\n$5\r\nuser1\r\n"
        );
        out.clear();
        subs.deliver(flags, WatchOp::Put, b"other", &mut out);
        assert!(out.is_empty(), "no subscription matches");
        subs.unsubscribe(Kind::Channel, &[], &mut out);
        subs.unsubscribe(Kind::Pattern, &[], &mut out);
        assert_eq!(subs.count(), 0);
    }

    #[test]
    fn long_patterns_and_too_many_subscriptions_are_refused_whole() {
        let mut subs = Subscriptions::new(1);
        let mut out = Out::new(Protocol::Resp2);
        let long = vec![b'*'; glob::MAX_PATTERN + 1];
        let error = subs
            .subscribe(Kind::Pattern, &[b"ok*", &long], &mut out)
            .expect_err("too long");
        assert!(error.contains("too long"), "{error}");
        assert_eq!(subs.count(), 0, "none of them");
        let names: Vec<Vec<u8>> = (0..=MAX_SUBSCRIPTIONS)
            .map(|i| i.to_string().into_bytes())
            .collect();
        let names: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
        assert!(subs.subscribe(Kind::Channel, &names, &mut out).is_err());
        assert_eq!(subs.count(), 0);
        subs.subscribe(Kind::Channel, &names[1..], &mut out)
            .expect("exactly the limit");
        assert_eq!(subs.count(), MAX_SUBSCRIPTIONS);
    }
}
