//! [`Store`] over HTTP: the blocking client of `bitcask-client`.

use bitcask_client::{
    BackupReport, Condition, ListOptions, MergeReport, ScrubReport, Stats, WriteOptions, blocking,
};

use crate::config::Remote;
use crate::failure::Failure;
use crate::output;
use crate::store::{KeyIter, PutOptions, Store};
use bitcask_client::BatchResult;
use bitcask_wire::BatchBody;

/// A server, through the blocking client.
pub struct Server {
    client: blocking::Client,
    /// The settings, for a second client that watches a merge.
    builder: bitcask_client::ClientBuilder,
}

impl Server {
    /// A client for the settings in `remote`.
    pub fn connect(remote: &Remote) -> Result<Self, Failure> {
        let mut builder =
            bitcask_client::Client::builder(&remote.server_url).timeout(remote.timeout);
        if let Some(token) = &remote.token {
            builder = builder.token(token);
        }
        Ok(Self {
            client: blocking::Client::from_builder(builder.clone())?,
            builder,
        })
    }

    /// The client, for the commands only a server answers (health, ping).
    pub fn client(&self) -> &blocking::Client {
        &self.client
    }
}

impl Store for Server {
    fn put(&self, key: &str, value: &[u8], options: PutOptions) -> Result<u64, Failure> {
        let mut write = WriteOptions::new()
            .condition(options.condition)
            .durable(options.durable);
        if let Some(secs) = options.ttl {
            write = write.ttl(std::time::Duration::from_secs(secs));
        }
        Ok(self.client.put_with(key, value, write)?)
    }

    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u64)>, Failure> {
        Ok(self
            .client
            .get_versioned(key)?
            .map(|v| (v.value.to_vec(), v.version)))
    }

    fn delete(
        &self,
        key: &str,
        if_version: Option<u64>,
        durable: bool,
    ) -> Result<Option<u64>, Failure> {
        let condition = if_version.map_or(Condition::None, Condition::Version);
        let options = WriteOptions::new().condition(condition).durable(durable);
        Ok(self.client.delete_with(key, options)?)
    }

    fn keys<'a>(
        &'a self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> KeyIter<'a> {
        /// The server's largest page.
        const MAX_PAGE: usize = 10_000;
        let mut options = ListOptions::prefix(prefix);
        options.start_after = start_after.map(str::to_string);
        options.page_size = limit.map(|n| n.clamp(1, MAX_PAGE));
        Box::new(
            self.client
                .list(options)
                .map(|k| k.map(String::into_bytes).map_err(Failure::from)),
        )
    }

    fn stats(&self) -> Result<Stats, Failure> {
        Ok(self.client.stats()?)
    }

    fn batch(&self, batch: BatchBody, durable: bool) -> Result<BatchResult, Failure> {
        let batch = bitcask_client::Batch::from_body(batch);
        Ok(self.client.batch(&batch, durable)?)
    }

    fn backup(&self, dest: Option<&str>) -> Result<BackupReport, Failure> {
        let report = output::run_with_progress(
            "backing up on the server",
            || self.client.backup(dest),
            || None,
        );
        Ok(report?)
    }

    fn scrub(&self) -> Result<ScrubReport, Failure> {
        let report =
            output::run_with_progress("scrubbing on the server", || self.client.scrub(), || None);
        Ok(report?)
    }

    fn merge(&self) -> Result<MergeReport, Failure> {
        // A second client (its own connection) reads the progress from
        // /stats while the first waits for the merge's answer.
        let watcher = blocking::Client::from_builder(self.builder.clone()).ok();
        let report = output::run_with_progress(
            "merging on the server",
            || self.client.merge(),
            || {
                let p = watcher.as_ref()?.stats().ok()?.merge_progress?;
                Some((p.bytes_read, p.bytes_total))
            },
        );
        Ok(report?)
    }

    fn close(self: Box<Self>) -> Result<(), Failure> {
        Ok(())
    }
}
