//! The edge's store: Workers KV behind `model::store::Store`.
//!
//! KV has no transactions: a batch is applied as a sequence of writes, records before the
//! index entries that point at them, so a reader may see a record without its index entry
//! for a moment but never an index entry without its record. ARCHITECTURE.md explains what
//! KV's eventual consistency means for each operation.

use std::cell::RefCell;
use std::collections::HashMap;

use model::store::{Batch, Listing, Op, Store, StoreError};
use worker::kv::KvStore;

/// The binding name of the KV namespace in `wrangler.toml`.
pub const BINDING: &str = "KEYGATE_KV";

/// How long this isolate trusts a record it read from KV, positive or negative. A change made
/// through this isolate invalidates at once; one made elsewhere is seen within this bound plus
/// KV's own propagation (README, "Revocation at the edge").
pub const CACHE_TTL_MS: f64 = 5_000.0;
/// Most records one isolate keeps; past it the cache starts over.
const CACHE_CAPACITY: usize = 10_000;
/// The records the verification path reads: cached. Sessions, throttles and indexes are not.
const CACHED: [&str; 4] = ["v1:key:", "v1:user:", "v1:org:", "v1:ns:"];

/// A cached read: the value or its known absence, and its expiry in ms since the epoch.
type Entry = (Option<Vec<u8>>, f64);

thread_local! {
    static CACHE: RefCell<HashMap<String, Entry>> = RefCell::new(HashMap::new());
    /// Bumped by every invalidation. A read that a write overtook (the write invalidated
    /// while the read awaited KV) must not put its older value back in the cache.
    static GENERATION: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn generation() -> u64 {
    GENERATION.with(std::cell::Cell::get)
}

fn cached(key: &str, now: f64) -> Option<Option<Vec<u8>>> {
    CACHE.with(|c| {
        c.borrow()
            .get(key)
            .filter(|(_, until)| *until > now)
            .map(|(v, _)| v.clone())
    })
}

fn remember(key: &str, value: Option<Vec<u8>>, now: f64) {
    if CACHED.iter().any(|p| key.starts_with(p)) {
        CACHE.with(|c| {
            let mut c = c.borrow_mut();
            if c.len() >= CACHE_CAPACITY {
                c.clear();
            }
            c.insert(key.to_owned(), (value, now + CACHE_TTL_MS));
        });
    }
}

fn forget(key: &str) {
    GENERATION.with(|g| g.set(g.get().wrapping_add(1)));
    CACHE.with(|c| c.borrow_mut().remove(key));
}

/// Workers KV as a [`Store`], with a short in-isolate read cache for the verification path.
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

/// Test-only fault injection: KV calls on keys under a chosen prefix fail.
#[cfg(feature = "fault-injection")]
pub mod faults {
    use std::cell::RefCell;

    use model::store::StoreError;

    thread_local! {
        static FAIL_PREFIX: RefCell<Option<String>> = const { RefCell::new(None) };
    }

    /// Makes every KV call on a key starting with `prefix` fail (`None`: none do).
    pub fn set(prefix: Option<String>) {
        FAIL_PREFIX.with(|p| *p.borrow_mut() = prefix);
    }

    /// The injected failure for `key`, if any.
    pub fn check(key: &str) -> Result<(), StoreError> {
        let fails = FAIL_PREFIX.with(|p| {
            p.borrow()
                .as_deref()
                .is_some_and(|prefix| key.starts_with(prefix))
        });
        if fails {
            Err(StoreError::new("injected KV failure"))
        } else {
            Ok(())
        }
    }
}

/// Without the test-only feature there is nothing to inject.
#[cfg(not(feature = "fault-injection"))]
mod faults {
    #[inline(always)]
    pub fn check(_: &str) -> Result<(), model::store::StoreError> {
        Ok(())
    }
}

impl Store for KvBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        faults::check(key)?;
        let now = js_sys::Date::now();
        if let Some(hit) = cached(key, now) {
            return Ok(hit);
        }
        let before = generation();
        let value = self.kv.get(key).bytes().await.map_err(err)?;
        if generation() == before {
            remember(key, value.clone(), now);
        }
        Ok(value)
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
        for op in &batch.ops {
            let (Op::Put(k, _) | Op::Delete(k)) = op;
            faults::check(k)?;
        }
        // Records first (they are the keys without ":ix:"), then index entries, then deletes.
        let (mut puts, deletes): (Vec<_>, Vec<_>) = batch
            .ops
            .into_iter()
            .partition(|op| matches!(op, Op::Put(..)));
        puts.sort_by_key(|op| matches!(op, Op::Put(k, _) if k.contains(":ix:")));
        for op in puts.iter().chain(&deletes) {
            let (Op::Put(k, _) | Op::Delete(k)) = op;
            forget(k);
        }
        for op in puts.into_iter().chain(deletes) {
            match &op {
                Op::Put(k, v) => self
                    .kv
                    .put_bytes(k, v)
                    .map_err(err)?
                    .execute()
                    .await
                    .map_err(err)?,
                Op::Delete(k) => self.kv.delete(k).await.map_err(err)?,
            }
            // A read that ran while this write was in flight may have cached the old value.
            let (Op::Put(k, _) | Op::Delete(k)) = &op;
            forget(k);
        }
        Ok(())
    }
}
