//! The server's embedded store: one redb table of string keys to JSON bytes.
//!
//! Every [`Batch`] is one redb write transaction, committed durably (fsync) before the
//! operation answers, so an acknowledged write survives a crash.
//!
//! The store file belongs to this one process (redb locks it), so every change passes through
//! [`RedbStore::commit`]: that is what lets the store keep the records verification reads
//! decoded in memory ([`RecordCache`]) and still answer exactly.

use std::path::Path;
use std::sync::Arc;

use model::store::{Batch, Listing, Op, RecordCache, Store, StoreError};
use redb::{Database, ReadableDatabase, TableDefinition};

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("keygate_v1");

/// How many decoded records the store keeps in memory by default (a few hundred bytes each).
pub const RECORD_CACHE_CAPACITY: usize = 100_000;

/// The redb-backed [`Store`].
#[derive(Clone)]
pub struct RedbStore {
    db: Arc<Database>,
    /// `None` when the cache is switched off (capacity 0).
    records: Option<Arc<RecordCache>>,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::new(e.to_string())
}

impl RedbStore {
    /// Opens (or creates) the store in `dir`, creating the directory when missing, with the
    /// default record cache.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, RECORD_CACHE_CAPACITY)
    }

    /// [`RedbStore::open`] keeping at most `cached` decoded records (0: none).
    pub fn open_with(dir: &Path, cached: usize) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(err)?;
        let db = Database::create(dir.join("keygate.redb")).map_err(err)?;
        let txn = db.begin_write().map_err(err)?;
        txn.open_table(TABLE).map_err(err)?;
        txn.commit().map_err(err)?;
        Ok(Self {
            db: Arc::new(db),
            records: (cached > 0).then(|| Arc::new(RecordCache::new(cached))),
        })
    }
}

impl Store for RedbStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(TABLE).map_err(err)?;
        Ok(table.get(key).map_err(err)?.map(|v| v.value().to_vec()))
    }

    async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Listing, StoreError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(TABLE).map_err(err)?;
        let start = cursor.filter(|c| c.starts_with(prefix)).unwrap_or(prefix);
        let mut keys = Vec::new();
        for entry in table.range(start..).map_err(err)? {
            let (k, _) = entry.map_err(err)?;
            let k = k.value();
            if !k.starts_with(prefix) {
                break;
            }
            if Some(k) == cursor {
                continue;
            }
            if keys.len() == limit {
                return Ok(Listing {
                    cursor: keys.last().cloned(),
                    keys,
                });
            }
            keys.push(k.to_owned());
        }
        Ok(Listing { keys, cursor: None })
    }

    async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        let db = Arc::clone(&self.db);
        let records = self.records.clone();
        // fsync blocks; keep it off the async workers.
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_write().map_err(err)?;
            {
                let mut table = txn.open_table(TABLE).map_err(err)?;
                for op in &batch.ops {
                    match op {
                        Op::Put(k, v) => {
                            table.insert(k.as_str(), v.as_slice()).map_err(err)?;
                        }
                        Op::Delete(k) => {
                            table.remove(k.as_str()).map_err(err)?;
                        }
                    }
                }
            }
            let committed = txn.commit().map_err(err);
            // Even after a failure: a cached record must never outlive a doubt.
            if let Some(records) = records {
                records.forget(&batch);
            }
            committed
        })
        .await
        .map_err(err)?
    }

    fn records(&self) -> Option<&RecordCache> {
        self.records.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lists_by_prefix_in_pages_and_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RedbStore::open(dir.path()).expect("open");
        let mut batch = Batch::default();
        for k in ["a:1", "a:2", "a:3", "b:1"] {
            batch.mark(k.into());
        }
        store.commit(batch).await.expect("commit");
        let first = store.list("a:", None, 2).await.expect("list");
        assert_eq!(first.keys, ["a:1", "a:2"]);
        let second = store
            .list("a:", first.cursor.as_deref(), 2)
            .await
            .expect("list");
        assert_eq!(
            (second.keys.as_slice(), second.cursor),
            (&["a:3".to_string()][..], None)
        );
        drop(store);
        let store = RedbStore::open(dir.path()).expect("reopen");
        assert_eq!(store.get("b:1").await.expect("get"), Some(b"1".to_vec()));
    }
}
