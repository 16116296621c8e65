//! The edge's store: Workers KV behind `model::store::Store`.
//!
//! KV has no transactions: a batch is applied as a sequence of writes, records before the
//! index entries that point at them, so a reader may see a record without its index entry
//! for a moment but never an index entry without its record. ARCHITECTURE.md explains what
//! KV's eventual consistency means for each operation.

use model::store::{Batch, Listing, Op, Store, StoreError};
use worker::kv::KvStore;

/// The binding name of the KV namespace in `wrangler.toml`.
pub const BINDING: &str = "KEYGATE_KV";

/// Workers KV as a [`Store`].
pub struct KvBackend {
    kv: KvStore,
}

impl KvBackend {
    /// Wraps the bound namespace.
    pub fn new(kv: KvStore) -> Self {
        Self { kv }
    }
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::new(e.to_string())
}

impl Store for KvBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.kv.get(key).bytes().await.map_err(err)
    }

    async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Listing, StoreError> {
        let mut builder = self
            .kv
            .list()
            .prefix(prefix.to_owned())
            .limit(limit.clamp(1, 1000) as u64);
        if let Some(c) = cursor {
            builder = builder.cursor(c.to_owned());
        }
        let page = builder.execute().await.map_err(err)?;
        Ok(Listing {
            keys: page.keys.into_iter().map(|k| k.name).collect(),
            cursor: if page.list_complete {
                None
            } else {
                page.cursor
            },
        })
    }

    async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        // Records first (they are the keys without ":ix:"), then index entries, then deletes.
        let (mut puts, deletes): (Vec<_>, Vec<_>) = batch
            .ops
            .into_iter()
            .partition(|op| matches!(op, Op::Put(..)));
        puts.sort_by_key(|op| matches!(op, Op::Put(k, _) if k.contains(":ix:")));
        for op in puts.into_iter().chain(deletes) {
            match op {
                Op::Put(k, v) => self
                    .kv
                    .put_bytes(&k, &v)
                    .map_err(err)?
                    .execute()
                    .await
                    .map_err(err)?,
                Op::Delete(k) => self.kv.delete(&k).await.map_err(err)?,
            }
        }
        Ok(())
    }
}
