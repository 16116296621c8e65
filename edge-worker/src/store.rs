//! The edge's store: Workers KV behind `model::store::Store`.
//!
//! KV has no transactions: a batch is applied as a sequence of writes, records before the
//! index entries that point at them, so a reader may see a record without its index entry
//! for a moment but never an index entry without its record. ARCHITECTURE.md explains what
//! KV's eventual consistency means for each operation.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use model::store::cache::CACHED_LISTINGS;
use model::store::{Batch, Listing, Op, RecordCache, Store, StoreError};
use worker::kv::KvStore;

/// The binding name of the KV namespace in `wrangler.toml`.
pub const BINDING: &str = "KEYGATE_KV";

/// How long this isolate trusts a record it read from KV, positive or negative. A change made
/// through this isolate invalidates at once; one made elsewhere is seen within this bound plus
/// KV's own propagation (README, "Revocation at the edge").
pub const CACHE_TTL_MS: f64 = 5_000.0;
/// Most records one isolate keeps; past it the cache starts over.
const CACHE_CAPACITY: usize = 10_000;

/// A cached read: the value or its known absence, and its expiry in ms since the epoch.
type Entry = (Option<Vec<u8>>, f64);
/// A listing page: (prefix, cursor, limit).
type Page = (String, Option<String>, usize);
/// A cached listing page and its expiry.
type ListEntry = (Listing, f64);

thread_local! {
    static CACHE: RefCell<HashMap<String, Entry>> = RefCell::new(HashMap::new());
    static LISTS: RefCell<HashMap<Page, ListEntry>> =
        RefCell::new(HashMap::new());
    /// Bumped by every invalidation. A read that a write overtook (the write invalidated
    /// while the read awaited KV) must not put its older value back in the cache.
    static GENERATION: Cell<u64> = const { Cell::new(0) };
}

fn generation() -> u64 {
    GENERATION.with(Cell::get)
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
    // The records verification reads, as the model names them.
    if RecordCache::keeps(key) {
        CACHE.with(|c| {
            bounded_insert(
                &mut c.borrow_mut(),
                key.to_owned(),
                (value, now + CACHE_TTL_MS),
            )
        });
    }
}

fn cached_list(page: &Page, now: f64) -> Option<Listing> {
    LISTS.with(|l| {
        l.borrow()
            .get(page)
            .filter(|(_, until)| *until > now)
            .map(|(listing, _)| listing.clone())
    })
}

fn remember_list(page: Page, listing: &Listing, now: f64) {
    if CACHED_LISTINGS.iter().any(|p| page.0.starts_with(p)) {
        LISTS.with(|l| {
            bounded_insert(
                &mut l.borrow_mut(),
                page,
                (listing.clone(), now + CACHE_TTL_MS),
            )
        });
    }
}

fn bounded_insert<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, key: K, value: V) {
    if map.len() >= CACHE_CAPACITY {
        map.clear();
    }
    map.insert(key, value);
}

/// Empties this isolate's cache, as in a fresh isolate (the test build's `/__faults`).
#[cfg(feature = "fault-injection")]
pub fn clear_cache() {
    CACHE.with(|c| c.borrow_mut().clear());
    LISTS.with(|l| l.borrow_mut().clear());
}

/// Drops what this isolate cached about `key`: the record and every listing it belongs to.
pub(crate) fn forget(key: &str) {
    if faults::detached() {
        return;
    }
    GENERATION.with(|g| g.set(g.get().wrapping_add(1)));
    CACHE.with(|c| c.borrow_mut().remove(key));
    LISTS.with(|l| {
        l.borrow_mut()
            .retain(|(prefix, _, _), _| !key.starts_with(prefix.as_str()))
    });
}

/// Workers KV as a [`Store`], with a short in-isolate read cache for the verification path.
pub struct KvBackend {
    kv: KvStore,
    gets: Cell<u32>,
    lists: Cell<u32>,
}

impl KvBackend {
    /// Wraps the bound namespace.
    pub fn new(kv: KvStore) -> Self {
        Self {
            kv,
            gets: Cell::new(0),
            lists: Cell::new(0),
        }
    }

    /// The KV reads this backend made (gets, lists): the calls its cache did not answer.
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    pub fn calls(&self) -> (u32, u32) {
        (self.gets.get(), self.lists.get())
    }
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::new(e.to_string())
}

/// Test-only instrumentation: KV calls on keys under a chosen prefix fail, writes can be made
/// to look as if another isolate made them (this isolate's cache is not told), and the KV
/// calls a request actually made (its cache misses) are reported ([`KvBackend::calls`]).
#[cfg(feature = "fault-injection")]
pub mod faults {
    use std::cell::{Cell, RefCell};

    use model::store::StoreError;

    thread_local! {
        static FAIL_PREFIX: RefCell<Option<String>> = const { RefCell::new(None) };
        static DETACHED: Cell<bool> = const { Cell::new(false) };
    }

    /// Makes every KV call on a key starting with `prefix` fail (`None`: none do).
    pub fn set(prefix: Option<String>) {
        FAIL_PREFIX.with(|p| *p.borrow_mut() = prefix);
    }

    /// While set, this isolate's writes leave its cache alone, as a write made through
    /// another isolate would.
    pub fn detach(on: bool) {
        DETACHED.set(on);
    }

    pub fn detached() -> bool {
        DETACHED.get()
    }

    /// The injected failure for `key`, if any.
    pub fn check(key: &str) -> Result<(), StoreError> {
        FAIL_PREFIX.with(|p| fail_under(p, key, "KV"))
    }

    /// An injected failure of `what` when `key` starts with the prefix `set` holds.
    pub fn fail_under(
        set: &RefCell<Option<String>>,
        key: &str,
        what: &str,
    ) -> Result<(), StoreError> {
        let fails = set
            .borrow()
            .as_deref()
            .is_some_and(|prefix| key.starts_with(prefix));
        if fails {
            Err(StoreError::new(format!("injected {what} failure")))
        } else {
            Ok(())
        }
    }
}

/// Without the test-only feature there is nothing to inject.
#[cfg(not(feature = "fault-injection"))]
pub(crate) mod faults {
    #[inline(always)]
    pub fn check(_: &str) -> Result<(), model::store::StoreError> {
        Ok(())
    }
    #[inline(always)]
    pub fn detached() -> bool {
        false
    }
}

impl Store for KvBackend {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        faults::check(key)?;
        let now = js_sys::Date::now();
        if let Some(hit) = cached(key, now) {
            return Ok(hit);
        }
        self.gets.set(self.gets.get() + 1);
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
        faults::check(prefix)?;
        let now = js_sys::Date::now();
        let page = (prefix.to_owned(), cursor.map(str::to_owned), limit);
        if let Some(hit) = cached_list(&page, now) {
            return Ok(hit);
        }
        self.lists.set(self.lists.get() + 1);
        let before = generation();
        let mut builder = self
            .kv
            .list()
            .prefix(prefix.to_owned())
            .limit(limit.clamp(1, 1000) as u64);
        if let Some(c) = cursor {
            builder = builder.cursor(c.to_owned());
        }
        let listed = builder.execute().await.map_err(err)?;
        let listing = Listing {
            keys: listed.keys.into_iter().map(|k| k.name).collect(),
            cursor: if listed.list_complete {
                None
            } else {
                listed.cursor
            },
        };
        if generation() == before {
            remember_list(page, &listing, now);
        }
        Ok(listing)
    }

    async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        for op in &batch.ops {
            faults::check(op.key())?;
        }
        // Workers KV deletes an expiring record itself; it takes no expiry sooner than a
        // minute ahead, and a record that expired earlier is simply never read as live (each
        // record carries its own expiry, which the model checks).
        let earliest = (js_sys::Date::now() / 1000.0) as i64 + 60;
        let expiries: std::collections::HashMap<String, u64> = batch
            .expiries
            .iter()
            .map(|(k, at)| (k.clone(), (*at).max(earliest).unsigned_abs()))
            .collect();
        // Records first (they are the keys without ":ix:"), then index entries, then deletes.
        let (mut puts, deletes): (Vec<_>, Vec<_>) = batch
            .ops
            .into_iter()
            .partition(|op| matches!(op, Op::Put(..)));
        puts.sort_by_key(|op| matches!(op, Op::Put(k, _) if k.contains(":ix:")));
        for op in puts.iter().chain(&deletes) {
            forget(op.key());
        }
        for op in puts.into_iter().chain(deletes) {
            match &op {
                Op::Put(k, v) => {
                    let put = self.kv.put_bytes(k, v).map_err(err)?;
                    match expiries.get(k) {
                        Some(at) => put.expiration(*at),
                        None => put,
                    }
                    .execute()
                    .await
                    .map_err(err)?
                }
                Op::Delete(k) => self.kv.delete(k).await.map_err(err)?,
            }
            // A read that ran while this write was in flight may have cached the old value.
            let (Op::Put(k, _) | Op::Delete(k)) = &op;
            forget(k);
        }
        Ok(())
    }
}
