//! Writes as values: what an HTTP or RESP write asks of the store, in a
//! form that can be run at once against the store (a single node) or
//! proposed to the cluster and run by every node's state machine against
//! its overlay of the store ([`Replicated`], the cluster's applier). Either
//! way the same function runs it, so a write means the same in both modes.

use std::time::Duration;

use axum::http::StatusCode;
use bitcask::{Batch, Condition, WriteOptions};
use bitcask_cluster::Store;
use bitcask_cluster::codec;
use bitcask_cluster::overlay::Overlay;
use bitcask_cluster::state_machine::Applier;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::resp::reply::{Out, Protocol};

/// A write, as a value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WriteRequest {
    /// `PUT /kv/{key}`.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
        /// Time-to-live in milliseconds.
        ttl_ms: Option<u64>,
        /// `If-Match` / `If-None-Match`.
        condition: Cond,
    },
    /// `DELETE /kv/{key}`.
    Delete {
        /// The key.
        key: Vec<u8>,
        /// `If-Match`.
        condition: Cond,
    },
    /// `POST /batch` without conditions (also as entries written by
    /// earlier versions).
    Batch(Vec<BatchItem>),
    /// `POST /batch` with conditions: each key and what its version must
    /// be, all checked before anything is written.
    CheckedBatch {
        /// The puts and deletes.
        ops: Vec<BatchItem>,
        /// The conditions, in the order the batch named them.
        conditions: Vec<(Vec<u8>, Cond)>,
    },
    /// A RESP write command (its canonical name and arguments, the name
    /// first), answered in the connection's protocol.
    Resp {
        /// Whether the client speaks RESP3.
        resp3: bool,
        /// The command and its arguments.
        args: Vec<Vec<u8>>,
    },
    /// A RESP transaction's `EXEC`: its queued commands, run only if the
    /// watched keys are still at the versions the connection saw.
    Transaction {
        /// Whether the client speaks RESP3.
        resp3: bool,
        /// Watched keys and their versions (`None`: absent).
        watched: Vec<crate::resp::transaction::Watched>,
        /// The queued commands, each its arguments with the name first.
        commands: Vec<crate::resp::transaction::Queued>,
    },
}

/// One operation of a batch: key, value (none: a delete) and
/// time-to-live in milliseconds.
pub type BatchItem = (Vec<u8>, Option<Vec<u8>>, Option<u64>);

/// [`Condition`], as a value that can be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cond {
    /// No condition.
    None,
    /// The key must be absent.
    Absent,
    /// The key must be present.
    Present,
    /// The key must be at this version.
    Version(u64),
}

impl From<Condition> for Cond {
    fn from(c: Condition) -> Self {
        match c {
            Condition::None => Self::None,
            Condition::Absent => Self::Absent,
            Condition::Present => Self::Present,
            Condition::Version(v) => Self::Version(v),
        }
    }
}

impl From<Cond> for Condition {
    fn from(c: Cond) -> Self {
        match c {
            Cond::None => Self::None,
            Cond::Absent => Self::Absent,
            Cond::Present => Self::Present,
            Cond::Version(v) => Self::Version(v),
        }
    }
}

/// What a write returned, as a value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WriteReply {
    /// The version written (none: a delete of an absent key).
    Version(Option<u64>),
    /// The store refused it.
    Failed(Refusal),
    /// A RESP command's reply, encoded.
    Resp(Vec<u8>),
}

/// Why the store refused a write, as a value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Refusal {
    /// A condition did not hold.
    ConditionFailed {
        /// The key's version then.
        current: Option<u64>,
        /// Which of the write's conditions failed (see the engine's error).
        index: usize,
    },
    /// A key over the limit.
    KeyTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A value over the limit.
    ValueTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A bad argument (a zero time-to-live, ...).
    Invalid(String),
    /// Anything else (an I/O failure, ...).
    Other(String),
}

impl Refusal {
    fn of(error: bitcask::Error) -> Self {
        match error {
            bitcask::Error::ConditionFailed { current, index } => {
                Self::ConditionFailed { current, index }
            }
            bitcask::Error::KeyTooLarge { len, max } => Self::KeyTooLarge { len, max },
            bitcask::Error::ValueTooLarge { len, max } => Self::ValueTooLarge { len, max },
            bitcask::Error::InvalidArgument { reason } => Self::Invalid(reason.to_string()),
            other => Self::Other(crate::error::public_message(&other)),
        }
    }

    /// The engine error it stands for, where there is one; else the answer.
    pub fn into_error(self) -> Result<bitcask::Error, ApiError> {
        match self {
            Self::ConditionFailed { current, index } => {
                Ok(bitcask::Error::ConditionFailed { current, index })
            }
            Self::KeyTooLarge { len, max } => Ok(bitcask::Error::KeyTooLarge { len, max }),
            Self::ValueTooLarge { len, max } => Ok(bitcask::Error::ValueTooLarge { len, max }),
            Self::Invalid(why) => Err(ApiError::new(StatusCode::BAD_REQUEST, why)),
            Self::Other(why) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, why)),
        }
    }
}

impl WriteRequest {
    /// Runs an HTTP write against `store`, asking the store to make it
    /// durable before returning if `durable` (a cluster's overlay ignores
    /// this: the raft log's fsync covers every write). A RESP write is run
    /// by the RESP layer, with its reply; here it is refused.
    pub fn execute<S: Store + ?Sized>(
        self,
        store: &S,
        durable: bool,
    ) -> bitcask::Result<Option<u64>> {
        match self {
            Self::Put {
                key,
                value,
                ttl_ms,
                condition,
            } => {
                let mut options = WriteOptions::new()
                    .condition(condition.into())
                    .durable(durable);
                if let Some(ms) = ttl_ms {
                    options = options.ttl(Duration::from_millis(ms));
                }
                store.put_with(&key, &value, options).map(Some)
            }
            Self::Delete { key, condition } => {
                let options = WriteOptions::new()
                    .condition(condition.into())
                    .durable(durable);
                store.delete_with(&key, options)
            }
            Self::Batch(ops) => Self::CheckedBatch {
                ops,
                conditions: Vec::new(),
            }
            .execute(store, durable),
            Self::CheckedBatch { ops, conditions } => {
                let mut batch = Batch::new();
                for (key, condition) in conditions {
                    batch.require(key, condition.into());
                }
                for (key, value, ttl_ms) in ops {
                    match (value, ttl_ms) {
                        (Some(value), Some(ms)) => {
                            batch.put_with_ttl(key, value, Duration::from_millis(ms))
                        }
                        (Some(value), None) => batch.put(key, value),
                        (None, _) => batch.delete(key),
                    };
                }
                batch.durable(durable);
                store.write_batch(&batch)
            }
            Self::Resp { .. } | Self::Transaction { .. } => Err(bitcask::Error::InvalidArgument {
                reason: "a RESP command is run by the RESP layer",
            }),
        }
    }

    /// Runs the write against `store` and turns the outcome into a reply.
    pub fn reply<S: Store + ?Sized>(self, store: &S) -> WriteReply {
        match self {
            Self::Resp { resp3, args } => {
                let protocol = if resp3 {
                    Protocol::Resp3
                } else {
                    Protocol::Resp2
                };
                let mut out = Out::new(protocol);
                let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
                // The entry names a command the proposing node looked up;
                // a node that does not know it answers so, as all do.
                let result = match args.first().and_then(|name| crate::resp::lookup(name)) {
                    Some(spec) => crate::resp::write_command(store, spec.cmd, &args, &mut out),
                    None => Err("ERR unknown command in a replicated entry".to_string()),
                };
                if let Err(message) = result {
                    out.error(&message);
                }
                WriteReply::Resp(out.bytes().to_vec())
            }
            Self::Transaction {
                resp3,
                watched,
                commands,
            } => {
                let protocol = if resp3 {
                    Protocol::Resp3
                } else {
                    Protocol::Resp2
                };
                let mut out = Out::new(protocol);
                crate::resp::transaction::apply_entry(store, &watched, &commands, &mut out);
                WriteReply::Resp(out.bytes().to_vec())
            }
            other => match other.execute(store, false) {
                Ok(version) => WriteReply::Version(version),
                Err(error) => WriteReply::Failed(Refusal::of(error)),
            },
        }
    }
}

/// The cluster's applier: decodes each request of an entry and runs it.
#[derive(Debug, Default)]
pub struct Replicated;

impl Applier for Replicated {
    fn apply(&self, store: &Overlay<'_>, request: &[u8]) -> Vec<u8> {
        let reply = match codec::decode::<WriteRequest>(request) {
            Ok(request) => request.reply(store),
            Err(e) => WriteReply::Failed(Refusal::Invalid(format!("undecodable request: {e}"))),
        };
        codec::encode(&reply).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_runs_the_same_against_the_store_and_an_overlay() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = bitcask::Bitcask::open(dir.path()).expect("open");
        let put = WriteRequest::Put {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ttl_ms: None,
            condition: Cond::Absent,
        };
        let direct = put.clone().reply(&db);
        assert!(matches!(direct, WriteReply::Version(Some(_))));
        assert!(matches!(
            put.clone().reply(&db),
            WriteReply::Failed(Refusal::ConditionFailed {
                current: Some(_),
                ..
            })
        ));
        let overlay = Overlay::new(&db, bitcask_cluster::clock::now_ms()).expect("overlay");
        let replicated = Replicated.apply(&overlay, &codec::encode(&put).expect("encode"));
        let decoded: WriteReply = codec::decode(&replicated).expect("decode");
        assert!(matches!(
            decoded,
            WriteReply::Failed(Refusal::ConditionFailed {
                current: Some(_),
                ..
            })
        ));
        let incr = WriteRequest::Resp {
            resp3: false,
            args: vec![b"incr".to_vec(), b"n".to_vec()],
        };
        let decoded: WriteReply =
            codec::decode(&Replicated.apply(&overlay, &codec::encode(&incr).expect("encode")))
                .expect("decode");
        assert!(matches!(decoded, WriteReply::Resp(ref bytes) if bytes == b":1\r\n"));
        overlay.commit(b"mark").expect("commit");
        assert_eq!(db.get(b"n").expect("get").as_deref(), Some(&b"1"[..]));
        assert!(matches!(
            Replicated.apply(
                &Overlay::new(&db, 0).expect("overlay"),
                b"\x01garbage"
            ),
            bytes if matches!(codec::decode::<WriteReply>(&bytes), Ok(WriteReply::Failed(Refusal::Invalid(_))))
        ));
    }
}
