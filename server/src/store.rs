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
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

pub(crate) const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("keygate_v1");
/// When each expiring record of [`TABLE`] expires (Unix seconds), by its key.
pub(crate) const EXPIRES: TableDefinition<&str, i64> = TableDefinition::new("keygate_v1_expires");
/// The same, ordered by time: what the purge reads.
pub(crate) const EXPIRY: TableDefinition<(i64, &str), ()> =
    TableDefinition::new("keygate_v1_expiry");
/// About the store itself: `format`, the version of how records are laid out.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("keygate_meta");

/// The stored format this release writes. A store of an older format is migrated when it is
/// opened ([`MIGRATIONS`]); one of a newer format is refused, since this release would
/// misread it. Every change of how records are stored raises it and adds a migration, which
/// the upgrade test (`tests/it/upgrade.rs`) runs on a store committed by an older release.
pub const STORE_FORMAT: u64 = 1;

/// `MIGRATIONS[n]` turns a store of format `n + 1` into format `n + 2`, inside the
/// transaction that records the new format. Format 1 is the first: none yet.
const MIGRATIONS: [Migration; STORE_FORMAT as usize - 1] = [];

/// One step of [`MIGRATIONS`].
type Migration = fn(&redb::WriteTransaction) -> Result<(), StoreError>;

/// Most expired records one purge transaction deletes (the rest wait for the next round).
const PURGE_BATCH: usize = 1000;

/// How many decoded records the store keeps in memory by default (a few hundred bytes each).
pub const RECORD_CACHE_CAPACITY: usize = 100_000;

/// The redb-backed [`Store`].
#[derive(Clone)]
pub struct RedbStore {
    db: Arc<Database>,
    /// `None` when the cache is switched off (capacity 0).
    records: Option<Arc<RecordCache>>,
    /// One change at a time ([`Store::turn`]), so a rule checked on reads (the active-key
    /// quota, unique emails, the last admin, the sign-in throttle) still holds when its write
    /// commits. redb serializes write transactions anyway, so this costs little; verification
    /// never takes it.
    writes: Arc<tokio::sync::Mutex<()>>,
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
        let db = Database::create(dir.join(crate::backup::STORE_FILE)).map_err(err)?;
        let txn = db.begin_write().map_err(err)?;
        txn.open_table(TABLE).map_err(err)?;
        txn.open_table(EXPIRES).map_err(err)?;
        txn.open_table(EXPIRY).map_err(err)?;
        {
            let mut meta = txn.open_table(META).map_err(err)?;
            let fresh = txn
                .open_table(TABLE)
                .map_err(err)?
                .is_empty()
                .map_err(err)?;
            // A store from before the format was recorded is format 1.
            let found = match meta.get("format").map_err(err)? {
                Some(v) => v.value(),
                None if fresh => STORE_FORMAT,
                None => 1,
            };
            if found > STORE_FORMAT {
                return Err(StoreError::new(format!(
                    "the store is of format {found}, written by a newer Keygate; this one \
                     reads formats up to {STORE_FORMAT}"
                )));
            }
            for migrate in MIGRATIONS.iter().skip(found.saturating_sub(1) as usize) {
                migrate(&txn)?;
            }
            meta.insert("format", STORE_FORMAT).map_err(err)?;
        }
        txn.commit().map_err(err)?;
        Ok(Self {
            db: Arc::new(db),
            records: (cached > 0).then(|| Arc::new(RecordCache::new(cached))),
            writes: Arc::default(),
        })
    }

    /// Writes a consistent snapshot of the whole store to the new file `to` (one read
    /// transaction: writes go on meanwhile); blocking.
    pub fn snapshot(
        &self,
        to: &std::path::Path,
    ) -> Result<crate::backup::Summary, crate::backup::BackupError> {
        crate::backup::snapshot(&*self.db, to)
    }

    /// Deletes up to [`PURGE_BATCH`] records whose expiry is at or before `now` (Unix
    /// seconds), in one transaction; returns how many. Sessions, invitations, sign-in
    /// throttles and old usage counts expire so (SPEC §11).
    pub async fn purge_expired(&self, now: i64) -> Result<usize, StoreError> {
        let db = Arc::clone(&self.db);
        let records = self.records.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_write().map_err(err)?;
            let mut gone = Batch::default();
            {
                let mut table = txn.open_table(TABLE).map_err(err)?;
                let mut expires = txn.open_table(EXPIRES).map_err(err)?;
                let mut expiry = txn.open_table(EXPIRY).map_err(err)?;
                let due: Vec<(i64, String)> = expiry
                    .range(..(now.saturating_add(1), ""))
                    .map_err(err)?
                    .take(PURGE_BATCH)
                    .map(|entry| entry.map(|(k, _)| (k.value().0, k.value().1.to_owned())))
                    .collect::<Result<_, _>>()
                    .map_err(err)?;
                for (at, key) in due {
                    expiry.remove((at, key.as_str())).map_err(err)?;
                    expires.remove(key.as_str()).map_err(err)?;
                    table.remove(key.as_str()).map_err(err)?;
                    gone.delete(key);
                }
            }
            let count = gone.ops.len();
            let committed = txn.commit().map_err(err);
            if let Some(records) = records {
                records.forget(&gone);
            }
            committed.map(|()| count)
        })
        .await
        .map_err(err)?
    }
}

/// Applies `op` to the expiry tables: a put with an expiry (re)sets it, any other put or a
/// delete clears what its key had.
fn track_expiry(
    expires: &mut redb::Table<&str, i64>,
    expiry: &mut redb::Table<(i64, &str), ()>,
    key: &str,
    at: Option<i64>,
) -> Result<(), StoreError> {
    let old = expires.get(key).map_err(err)?.map(|v| v.value());
    if let Some(old) = old {
        expiry.remove((old, key)).map_err(err)?;
    }
    match at {
        Some(at) => {
            expires.insert(key, at).map_err(err)?;
            expiry.insert((at, key), ()).map_err(err)?;
        }
        None if old.is_some() => {
            expires.remove(key).map_err(err)?;
        }
        None => {}
    }
    Ok(())
}

/// The server's meters of usage policies (SPEC §4.5): `model`'s, in this process, their
/// credits leased from this store (`model::service::LocalMeters`).
pub struct Meters(model::service::StoreMeters<RedbStore>);

impl Meters {
    /// The meters of a process that started at `started_at`.
    pub fn new(store: RedbStore, started_at: time::OffsetDateTime) -> Self {
        Self(model::service::StoreMeters::new(store, started_at))
    }
}

impl model::service::Meters for Meters {
    fn spend<'a>(
        &'a self,
        key: &'a model::domain::KeyRecord,
        cost: u32,
        now: time::OffsetDateTime,
    ) -> model::service::Metering<'a, model::meter::Metered> {
        Box::pin(self.0.spend(key, cost, now))
    }

    fn credits<'a>(
        &'a self,
        key: &'a model::domain::KeyRecord,
        now: time::OffsetDateTime,
    ) -> model::service::Metering<'a, Option<u64>> {
        Box::pin(self.0.credits(key, now))
    }

    fn change_credits<'a>(
        &'a self,
        key: &'a model::domain::KeyRecord,
        change: model::meter::CreditChange,
        audit: Batch,
        now: time::OffsetDateTime,
    ) -> model::service::Metering<'a, (Option<u64>, Option<Batch>)> {
        Box::pin(self.0.change_credits(key, change, audit, now))
    }

    /// Nothing to tell: a policy's new setting time starts its meter anew at its next use.
    fn policy_set<'a>(
        &'a self,
        _: &'a model::domain::KeyRecord,
        _: time::OffsetDateTime,
    ) -> model::service::Metering<'a, ()> {
        Box::pin(std::future::ready(Ok(())))
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
            let started = std::time::Instant::now();
            let txn = db.begin_write().map_err(err)?;
            {
                let mut table = txn.open_table(TABLE).map_err(err)?;
                let mut expires = txn.open_table(EXPIRES).map_err(err)?;
                let mut expiry = txn.open_table(EXPIRY).map_err(err)?;
                for op in &batch.ops {
                    match op {
                        Op::Put(k, v) => {
                            table.insert(k.as_str(), v.as_slice()).map_err(err)?;
                            track_expiry(&mut expires, &mut expiry, k, batch.expiry_of(k))?;
                        }
                        Op::Delete(k) => {
                            table.remove(k.as_str()).map_err(err)?;
                            track_expiry(&mut expires, &mut expiry, k, None)?;
                        }
                    }
                }
            }
            let committed = txn.commit().map_err(err);
            // Even after a failure: a cached record must never outlive a doubt.
            if let Some(records) = records {
                records.forget(&batch);
            }
            crate::metrics::commit(started);
            committed
        })
        .await
        .map_err(err)?
    }

    fn records(&self) -> Option<&RecordCache> {
        self.records.as_deref()
    }

    fn turn(&self) -> impl std::future::Future<Output = impl Sized> {
        Arc::clone(&self.writes).lock_owned()
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

    #[test]
    fn the_format_is_recorded_and_a_newer_one_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(RedbStore::open(dir.path()).expect("open"));
        let file = dir.path().join(crate::backup::STORE_FILE);
        let format = |db: &Database| {
            let txn = db.begin_read().expect("read");
            let meta = txn.open_table(META).expect("meta");
            meta.get("format").expect("get").map(|v| v.value())
        };
        let db = Database::create(&file).expect("raw");
        assert_eq!(format(&db), Some(STORE_FORMAT));
        let txn = db.begin_write().expect("write");
        txn.open_table(META)
            .expect("meta")
            .insert("format", STORE_FORMAT + 1)
            .expect("insert");
        txn.commit().expect("commit");
        drop(db);
        let refused = RedbStore::open(dir.path()).err().expect("refused");
        assert!(refused.to_string().contains("newer Keygate"), "{refused}");
        // Refusing changed nothing: the newer release still finds its own format.
        let db = Database::create(&file).expect("raw");
        assert_eq!(format(&db), Some(STORE_FORMAT + 1));
    }

    #[tokio::test]
    async fn expired_records_are_purged_and_a_later_put_decides() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RedbStore::open(dir.path()).expect("open");
        let at = |s| time::OffsetDateTime::from_unix_timestamp(s).expect("time");
        let mut batch = Batch::default();
        batch
            .put_expiring("s:old".into(), &1, at(100))
            .expect("put");
        batch
            .put_expiring("s:later".into(), &1, at(200))
            .expect("put");
        batch
            .put_expiring("s:kept".into(), &1, at(100))
            .expect("put");
        batch
            .put_expiring("s:deleted".into(), &1, at(100))
            .expect("put");
        batch.mark("s:forever".into());
        store.commit(batch).await.expect("commit");
        // Put again: once with a later expiry, once without any; and one deleted.
        let mut batch = Batch::default();
        batch
            .put_expiring("s:old".into(), &2, at(300))
            .expect("put");
        batch.mark("s:kept".into());
        batch.delete("s:deleted".into());
        store.commit(batch).await.expect("commit");
        assert_eq!(store.purge_expired(150).await.expect("purge"), 0);
        assert_eq!(store.purge_expired(250).await.expect("purge"), 1);
        let left = store.list("s:", None, 10).await.expect("list").keys;
        assert_eq!(left, ["s:forever", "s:kept", "s:old"]);
        assert_eq!(store.purge_expired(300).await.expect("purge"), 1);
        let left = store.list("s:", None, 10).await.expect("list").keys;
        assert_eq!(left, ["s:forever", "s:kept"]);
    }
}
