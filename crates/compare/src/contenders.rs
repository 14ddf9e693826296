//! The contenders behind one trait, each opened in one of two durability
//! modes:
//!
//! - [`Durability::Eventual`]: the store's usual "durable eventually"
//!   configuration (no fsync per write; an explicit flush makes everything
//!   durable): bitcask with a 100 ms sync interval, emdb and sled with their
//!   defaults, redb with `Durability::None` commits, fjall with its default
//!   journal (buffered, persisted on `persist`).
//! - [`Durability::PerWrite`]: every put returns only once it is on disk:
//!   bitcask `SyncPolicy::Always` (group commit), emdb and sled `flush` after
//!   each insert, redb `Durability::Immediate` commits, fjall
//!   `persist(SyncData)` after each insert.
//!
//! Each put is one operation of the store's own key-value API (for redb, one
//! write transaction): the benchmark measures what a caller of `put` gets,
//! not what batching can get.

use std::collections::HashMap;
use std::path::Path;
use std::sync::RwLock;

/// What the workloads need of a store.
pub trait Contender: Send + Sync {
    /// Stores `value` under `key`.
    fn put(&self, key: &[u8], value: &[u8]);
    /// Makes the writes so far durable (timed as part of a fill).
    fn flush(&self);
    /// A reader for one thread (for redb, one read transaction).
    fn reader(&self) -> Box<dyn Reader + '_>;
    /// How many fsyncs the store has issued for durable writes, where it
    /// counts them (bitcask does: shows how well group commit groups).
    fn fsyncs(&self) -> Option<u64> {
        None
    }
}

/// Reads on one thread.
pub trait Reader {
    /// Reads `key`'s value and touches its bytes; its length, or `None` if
    /// absent.
    fn read(&mut self, key: &[u8]) -> Option<usize>;
}

/// How durable each write is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Durable at the next flush or background sync.
    Eventual,
    /// Durable when the put returns.
    PerWrite,
}

/// The contenders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// This engine.
    Bitcask,
    /// This engine, its reads skipping the checksum
    /// (`ReadOptions::verify_checksum(false)`); run only when named.
    BitcaskUnverified,
    /// emdb: a Bitcask-style Rust store.
    Emdb,
    /// redb: a copy-on-write B-tree.
    Redb,
    /// sled 0.34: a lock-free B-tree over a log.
    Sled,
    /// fjall: an LSM tree.
    Fjall,
    /// A `HashMap` behind a lock, no disk: the limit.
    Memory,
}

impl Kind {
    /// Every contender, in table order.
    pub const ALL: &'static [Kind] = &[
        Kind::Bitcask,
        Kind::Emdb,
        Kind::Redb,
        Kind::Sled,
        Kind::Fjall,
        Kind::Memory,
    ];

    /// Contenders run only when `--only` names them.
    pub const ON_REQUEST: &'static [Kind] = &[Kind::BitcaskUnverified];

    /// Its name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Bitcask => "bitcask",
            Kind::BitcaskUnverified => "bitcask-unverified",
            Kind::Emdb => "emdb",
            Kind::Redb => "redb",
            Kind::Sled => "sled",
            Kind::Fjall => "fjall",
            Kind::Memory => "hashmap",
        }
    }

    /// The contender called `name`.
    pub fn from_name(name: &str) -> Option<Kind> {
        Self::ALL
            .iter()
            .chain(Self::ON_REQUEST)
            .copied()
            .find(|k| k.name() == name)
    }

    /// Whether it stores anything on disk (the reference does not).
    pub fn on_disk(self) -> bool {
        self != Kind::Memory
    }

    /// Whether it is another store than this engine (a candidate for "the
    /// best other store").
    pub fn is_other_store(self) -> bool {
        self.on_disk() && !matches!(self, Kind::Bitcask | Kind::BitcaskUnverified)
    }

    /// Opens (or reopens) the store in `dir`.
    pub fn open(self, dir: &Path, durability: Durability) -> Box<dyn Contender> {
        let per_write = durability == Durability::PerWrite;
        let open_bitcask = |verify_checksum| {
            let sync = if per_write {
                bitcask::SyncPolicy::Always
            } else {
                bitcask::SyncPolicy::Interval(std::time::Duration::from_millis(100))
            };
            BitcaskStore {
                db: bitcask::Bitcask::open_with(dir, bitcask::Options::new().sync(sync))
                    .expect("open bitcask"),
                read: bitcask::ReadOptions::new().verify_checksum(verify_checksum),
            }
        };
        match self {
            Kind::Bitcask => Box::new(open_bitcask(true)),
            Kind::BitcaskUnverified => Box::new(open_bitcask(false)),
            Kind::Emdb => Box::new(EmdbStore {
                db: emdb::Emdb::open(dir.join("db.emdb")).expect("open emdb"),
                per_write,
            }),
            Kind::Redb => Box::new(RedbStore {
                db: redb::Database::create(dir.join("db.redb")).expect("open redb"),
                durability: if per_write {
                    redb::Durability::Immediate
                } else {
                    redb::Durability::None
                },
            }),
            Kind::Sled => Box::new(SledStore {
                db: open_sled(&dir.join("sled")),
                per_write,
            }),
            Kind::Fjall => {
                let db = fjall::Database::builder(dir.join("fjall"))
                    .open()
                    .expect("open fjall");
                let keyspace = db
                    .keyspace("bench", fjall::KeyspaceCreateOptions::default)
                    .expect("open fjall keyspace");
                Box::new(FjallStore {
                    db,
                    keyspace,
                    per_write,
                })
            }
            Kind::Memory => Box::new(RwLock::new(HashMap::<Vec<u8>, Vec<u8>>::new())),
        }
    }
}

/// Opens sled in `path`. A handle just dropped may still hold the
/// directory's lock for a moment (sled's flusher thread lets go of it when
/// it stops), so a reopen that finds the lock taken tries again for up to
/// ten seconds.
fn open_sled(path: &Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match sled::open(path) {
            Ok(db) => return db,
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("open sled: {e:?}"),
        }
    }
}

/// Whether a read reads every byte of the value (`--read-whole`) rather
/// than its ends.
pub static READ_WHOLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes the compiler read a value's bytes, as a caller using the value
/// would, without adding a copy: its first and last byte, or with
/// [`READ_WHOLE`] every byte (a store that verifies a checksum on each read
/// reads them all anyway; one that lends the bytes unread does not).
fn touch(value: &[u8]) -> usize {
    if READ_WHOLE.load(std::sync::atomic::Ordering::Relaxed) {
        std::hint::black_box(value.iter().fold(0u8, |acc, b| acc ^ b));
    } else {
        std::hint::black_box(value.first().copied());
        std::hint::black_box(value.last().copied());
    }
    value.len()
}

/// A reader that needs no per-thread state: calls the store.
struct Direct<'a, F: FnMut(&[u8]) -> Option<usize>>(F, std::marker::PhantomData<&'a ()>);

impl<F: FnMut(&[u8]) -> Option<usize>> Reader for Direct<'_, F> {
    fn read(&mut self, key: &[u8]) -> Option<usize> {
        (self.0)(key)
    }
}

fn direct<'a>(f: impl FnMut(&[u8]) -> Option<usize> + 'a) -> Box<dyn Reader + 'a> {
    Box::new(Direct(f, std::marker::PhantomData))
}

/// This engine, with the options its reads use.
struct BitcaskStore {
    db: bitcask::Bitcask,
    read: bitcask::ReadOptions,
}

impl Contender for BitcaskStore {
    fn put(&self, key: &[u8], value: &[u8]) {
        self.db.put(key, value).expect("bitcask put");
    }

    fn flush(&self) {
        self.db.sync().expect("bitcask sync");
    }

    fn reader(&self) -> Box<dyn Reader + '_> {
        direct(move |key| {
            self.db
                .get_with_options(key, self.read, touch)
                .expect("bitcask get")
        })
    }

    fn fsyncs(&self) -> Option<u64> {
        Some(self.db.fsync_count())
    }
}

struct EmdbStore {
    db: emdb::Emdb,
    per_write: bool,
}

impl Contender for EmdbStore {
    fn put(&self, key: &[u8], value: &[u8]) {
        self.db.insert(key, value).expect("emdb insert");
        if self.per_write {
            self.db.flush().expect("emdb flush");
        }
    }

    fn flush(&self) {
        self.db.flush().expect("emdb flush");
    }

    fn reader(&self) -> Box<dyn Reader + '_> {
        direct(move |key| {
            self.db
                .get_zerocopy(key)
                .expect("emdb get")
                .map(|v| touch(v.as_ref()))
        })
    }
}

const REDB_TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("bench");

struct RedbStore {
    db: redb::Database,
    durability: redb::Durability,
}

impl Contender for RedbStore {
    fn put(&self, key: &[u8], value: &[u8]) {
        let mut txn = self.db.begin_write().expect("redb begin_write");
        txn.set_durability(self.durability)
            .expect("redb set_durability");
        {
            let mut table = txn.open_table(REDB_TABLE).expect("redb open_table");
            table.insert(key, value).expect("redb insert");
        }
        txn.commit().expect("redb commit");
    }

    fn flush(&self) {
        // An empty commit with immediate durability makes every earlier
        // `Durability::None` commit durable.
        let mut txn = self.db.begin_write().expect("redb begin_write");
        txn.set_durability(redb::Durability::Immediate)
            .expect("redb set_durability");
        txn.open_table(REDB_TABLE).expect("redb open_table");
        txn.commit().expect("redb commit");
    }

    fn reader(&self) -> Box<dyn Reader + '_> {
        let txn = redb::ReadableDatabase::begin_read(&self.db).expect("redb begin_read");
        let table = txn.open_table(REDB_TABLE).expect("redb open_table");
        Box::new(RedbReader { table })
    }
}

/// One read transaction's table, reused for all of a thread's reads (how
/// redb is meant to be read).
struct RedbReader {
    table: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl Reader for RedbReader {
    fn read(&mut self, key: &[u8]) -> Option<usize> {
        self.table
            .get(key)
            .expect("redb get")
            .map(|v| touch(v.value()))
    }
}

struct SledStore {
    db: sled::Db,
    per_write: bool,
}

impl Contender for SledStore {
    fn put(&self, key: &[u8], value: &[u8]) {
        self.db.insert(key, value).expect("sled insert");
        if self.per_write {
            self.db.flush().expect("sled flush");
        }
    }

    fn flush(&self) {
        self.db.flush().expect("sled flush");
    }

    fn reader(&self) -> Box<dyn Reader + '_> {
        direct(move |key| self.db.get(key).expect("sled get").map(|v| touch(&v)))
    }
}

struct FjallStore {
    db: fjall::Database,
    keyspace: fjall::Keyspace,
    per_write: bool,
}

impl Contender for FjallStore {
    fn put(&self, key: &[u8], value: &[u8]) {
        self.keyspace.insert(key, value).expect("fjall insert");
        if self.per_write {
            self.db
                .persist(fjall::PersistMode::SyncData)
                .expect("fjall persist");
        }
    }

    fn flush(&self) {
        self.db
            .persist(fjall::PersistMode::SyncData)
            .expect("fjall persist");
    }

    fn reader(&self) -> Box<dyn Reader + '_> {
        direct(move |key| {
            self.keyspace
                .get(key)
                .expect("fjall get")
                .map(|v| touch(&v))
        })
    }
}

impl Contender for RwLock<HashMap<Vec<u8>, Vec<u8>>> {
    fn put(&self, key: &[u8], value: &[u8]) {
        self.write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.to_vec(), value.to_vec());
    }

    fn flush(&self) {}

    fn reader(&self) -> Box<dyn Reader + '_> {
        direct(move |key| {
            self.read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(key)
                .map(|v| touch(v))
        })
    }
}
