//! The contenders behind one trait, each in its usual "durable eventually"
//! configuration (no fsync per write; what the store's defaults or docs
//! suggest for bulk work).

use std::collections::HashMap;
use std::path::Path;
use std::sync::RwLock;

/// What the workloads need of a store.
pub trait Contender: Send + Sync {
    /// Stores `value` under `key`.
    fn put(&self, key: &[u8], value: &[u8]);
    /// Reads `key`'s value; its length, or `None` if absent.
    fn read(&self, key: &[u8]) -> Option<usize>;
    /// Makes the writes so far durable (timed as part of a fill).
    fn flush(&self);
}

/// The contenders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// This engine.
    Bitcask,
    /// emdb: a Bitcask-style Rust store.
    Emdb,
    /// A `HashMap` behind a lock, no disk: the limit.
    Memory,
}

impl Kind {
    /// Every contender.
    pub const ALL: &'static [Kind] = &[Kind::Bitcask, Kind::Emdb, Kind::Memory];

    /// Its name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Bitcask => "bitcask",
            Kind::Emdb => "emdb",
            Kind::Memory => "hashmap",
        }
    }

    /// A fresh store in `dir`.
    pub fn open(self, dir: &Path) -> Box<dyn Contender> {
        match self {
            Kind::Bitcask => Box::new(
                bitcask::Bitcask::open_with(
                    dir,
                    bitcask::Options::new().sync(bitcask::SyncPolicy::Interval(
                        std::time::Duration::from_millis(100),
                    )),
                )
                .expect("open bitcask"),
            ),
            Kind::Emdb => Box::new(emdb::Emdb::open(dir.join("db.emdb")).expect("open emdb")),
            Kind::Memory => Box::new(RwLock::new(HashMap::<Vec<u8>, Vec<u8>>::new())),
        }
    }
}

impl Contender for bitcask::Bitcask {
    fn put(&self, key: &[u8], value: &[u8]) {
        bitcask::Bitcask::put(self, key, value).expect("bitcask put");
    }

    fn read(&self, key: &[u8]) -> Option<usize> {
        self.get_with(key, <[u8]>::len).expect("bitcask get")
    }

    fn flush(&self) {
        self.sync().expect("bitcask sync");
    }
}

impl Contender for emdb::Emdb {
    fn put(&self, key: &[u8], value: &[u8]) {
        self.insert(key, value).expect("emdb insert");
    }

    fn read(&self, key: &[u8]) -> Option<usize> {
        self.get_zerocopy(key)
            .expect("emdb get")
            .map(|v| v.as_ref().len())
    }

    fn flush(&self) {
        emdb::Emdb::flush(self).expect("emdb flush");
    }
}

impl Contender for RwLock<HashMap<Vec<u8>, Vec<u8>>> {
    fn put(&self, key: &[u8], value: &[u8]) {
        self.write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.to_vec(), value.to_vec());
    }

    fn read(&self, key: &[u8]) -> Option<usize> {
        self.read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .map(|v| std::hint::black_box(v.clone()).len())
    }

    fn flush(&self) {}
}
