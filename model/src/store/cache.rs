//! A host's in-process cache of the decoded records verification reads.
//!
//! Verification reads the same few records over and over: the key, its creator, the
//! organization, the namespace, the key's grants. A host whose store only ever changes through
//! its own [`Store::commit`](super::Store::commit) — the server, whose embedded store belongs to
//! one process — can keep them decoded and still answer exactly: its commit calls
//! [`RecordCache::forget`] for every key the batch writes, so a revocation is seen by the very
//! next verification. Hosts whose store other processes change (Workers KV) don't use it.
//!
//! [`get_shared`](super::get_shared) fills it with records, only for keys under [`CACHED`].
//! It also keeps values *derived* from records (a key's effective rights): those hold only
//! until the next commit that writes anything but what no derived value is read from
//! ([`NOT_DERIVED_FROM`]), since what they were derived from cannot be traced.

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::Batch;

/// The store prefixes of the records verification reads: the key, its creator, the
/// organization, the namespace, the grants, and the resource a verification names (whose
/// namespace never changes). Every host's cache keeps these and only these records (this
/// one, and the worker's short-lived byte cache); sessions, throttles, events and usage are
/// never cached.
pub const CACHED: [&str; 6] = [
    "v1:key:",
    "v1:user:",
    "v1:org:",
    "v1:ns:",
    "v1:grant:",
    "v1:res:",
];

/// The index listings verification reads (the creator's groups, the grants naming a user or
/// group: `Keygate::rights_in`). The worker caches them like records, so a warm isolate
/// computes the creator's rights without a KV call; the server reads them from redb.
pub const CACHED_LISTINGS: [&str; 2] = ["v1:ix:user-groups:", "v1:ix:principal-grants:"];

/// Whether verification reads `key`: a record under [`CACHED`] or an entry of an index
/// under [`CACHED_LISTINGS`]. These are what a host that verifies from a replica (the edge,
/// from Workers KV) must copy there, and what an isolate's cache must forget when they change;
/// nothing else is read on that path.
pub fn read_by_verification(key: &str) -> bool {
    CACHED
        .iter()
        .chain(&CACHED_LISTINGS)
        .any(|prefix| key.starts_with(prefix))
}

/// The prefixes of records no derived value is computed from: counts, events, sessions and
/// throttles. A batch writing only these (the usage flush every few seconds, a sign-in)
/// leaves derived values valid; any other write outdates them all. A prefix missing here
/// only costs recomputation, so the list names what is certain and nothing else.
pub const NOT_DERIVED_FROM: [&str; 6] = [
    "v1:usage:",
    "v1:usage-summary:",
    "v1:usage-org:",
    "v1:event:",
    "v1:session:",
    "v1:throttle:",
];

/// The prefix of derived values' names.
pub const DERIVED: &str = "derived:";

/// A decoded record, shared by every reader.
type Shared = Arc<dyn Any + Send + Sync>;

/// Decoded records by store key, bounded, with eviction of the least useful.
pub struct RecordCache {
    records: quick_cache::sync::Cache<String, Shared>,
    /// Bumped by every [`RecordCache::forget`], after it dropped the batch's records: a read
    /// that a commit overtook must not put the value it read before the commit back, and a
    /// derived value computed before a commit is stale after it.
    generation: AtomicU64,
    /// Held shared to keep a record, exclusively to forget: a record read before a commit is
    /// either kept before that commit forgets it, or sees the new generation and is dropped,
    /// never visible in between.
    turn: RwLock<()>,
}

/// A derived value and the generation its inputs were read at.
struct Derived<T> {
    generation: u64,
    value: Arc<T>,
}

impl std::fmt::Debug for RecordCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordCache")
            .field("records", &self.records.len())
            .finish()
    }
}

impl RecordCache {
    /// A cache of at most `capacity` records.
    pub fn new(capacity: usize) -> Self {
        Self {
            records: quick_cache::sync::Cache::new(capacity),
            generation: AtomicU64::new(0),
            turn: RwLock::new(()),
        }
    }

    /// Whether records at `key` are kept.
    pub fn keeps(key: &str) -> bool {
        CACHED.iter().any(|prefix| key.starts_with(prefix))
    }

    /// The generation to hand back to [`RecordCache::remember`] after reading the store.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Lookups that found what they asked for, since the cache was made (for the host's
    /// metrics).
    pub fn hits(&self) -> u64 {
        self.records.hits()
    }

    /// Lookups that did not.
    pub fn misses(&self) -> u64 {
        self.records.misses()
    }

    /// The record at `key`, if cached as a `T`.
    pub fn get<T: Any + Send + Sync>(&self, key: &str) -> Option<Arc<T>> {
        self.records
            .get(key)
            .and_then(|record| record.downcast::<T>().ok())
    }

    /// Keeps `record`, read from the store when the generation was `read_at`, unless a commit
    /// has since forgotten anything: then it may be older than the store.
    pub fn remember<T: Any + Send + Sync>(&self, key: &str, record: Arc<T>, read_at: u64) {
        if !Self::keeps(key) {
            return;
        }
        // A poisoned lock only means another thread panicked while holding it; the cache's
        // state is still whole.
        let _turn = self.turn.read().unwrap_or_else(|e| e.into_inner());
        if self.generation() == read_at {
            self.records.insert(key.to_owned(), record);
        }
    }

    /// The value derived under `name` ([`RecordCache::remember_derived`]), if no commit came
    /// after its inputs were read.
    pub fn derived<T: Any + Send + Sync>(&self, name: &str) -> Option<Arc<T>> {
        let entry = self.records.get(name)?.downcast::<Derived<T>>().ok()?;
        (entry.generation == self.generation()).then(|| Arc::clone(&entry.value))
    }

    /// Keeps `value`, derived from records read when the generation was `read_at`, under
    /// `name` (outside the store's key space: no store key starts with `derived:`).
    pub fn remember_derived<T: Any + Send + Sync>(&self, name: &str, value: Arc<T>, read_at: u64) {
        debug_assert!(name.starts_with(DERIVED));
        self.records.insert(
            name.to_owned(),
            Arc::new(Derived {
                generation: read_at,
                value,
            }),
        );
    }

    /// Drops every record `batch` wrote and, unless it wrote only under [`NOT_DERIVED_FROM`],
    /// outdates every derived value. Called by the store after the batch committed (or
    /// failed to).
    pub fn forget(&self, batch: &Batch) {
        let _turn = self.turn.write().unwrap_or_else(|e| e.into_inner());
        let mut outdates = false;
        for op in &batch.ops {
            let key = op.key();
            if Self::keeps(key) {
                self.records.remove(key);
            }
            outdates |= !NOT_DERIVED_FROM.iter().any(|p| key.starts_with(p));
        }
        // After the removals: a reader that sees the new generation reads the new records.
        // (A batch under NOT_DERIVED_FROM wrote no kept record either: none is stale.)
        if outdates {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgets_what_a_batch_writes_and_refuses_reads_a_commit_overtook() {
        let cache = RecordCache::new(100);
        let read_at = cache.generation();
        cache.remember("v1:key:a", Arc::new(1_u32), read_at);
        cache.remember("v1:session:s", Arc::new(2_u32), read_at);
        assert_eq!(cache.get::<u32>("v1:key:a").as_deref(), Some(&1));
        assert_eq!(
            cache.get::<u32>("v1:session:s"),
            None,
            "sessions are never kept"
        );
        assert_eq!(
            cache.get::<String>("v1:key:a"),
            None,
            "another type is a miss"
        );

        let mut batch = Batch::default();
        batch.delete("v1:key:a".into());
        cache.forget(&batch);
        assert_eq!(cache.get::<u32>("v1:key:a"), None);

        // A read made before that commit comes back late: not kept.
        cache.remember("v1:key:a", Arc::new(1_u32), read_at);
        assert_eq!(cache.get::<u32>("v1:key:a"), None);
        cache.remember("v1:key:a", Arc::new(3_u32), cache.generation());
        assert_eq!(cache.get::<u32>("v1:key:a").as_deref(), Some(&3));
    }

    /// Writers commit ever newer values of one record while readers read through the cache:
    /// once a commit's `forget` has returned, no reader may see an older value.
    #[test]
    fn after_a_commit_no_reader_sees_an_older_record() {
        use std::sync::atomic::AtomicBool;

        let cache = RecordCache::new(100);
        let store = AtomicU64::new(0);
        let published = AtomicU64::new(0);
        let done = AtomicBool::new(false);
        let mut batch = Batch::default();
        batch.mark("v1:key:k".into());
        std::thread::scope(|scope| {
            for _ in 0..3 {
                scope.spawn(|| {
                    while !done.load(Ordering::SeqCst) {
                        let floor = published.load(Ordering::SeqCst);
                        let seen = match cache.get::<u64>("v1:key:k") {
                            Some(v) => *v,
                            None => {
                                let read_at = cache.generation();
                                let v = store.load(Ordering::SeqCst);
                                cache.remember("v1:key:k", Arc::new(v), read_at);
                                v
                            }
                        };
                        assert!(seen >= floor, "saw {seen} after {floor} was committed");
                    }
                });
            }
            for v in 1..=20_000 {
                store.store(v, Ordering::SeqCst);
                cache.forget(&batch);
                published.store(v, Ordering::SeqCst);
            }
            done.store(true, Ordering::SeqCst);
        });
    }

    #[test]
    fn a_derived_value_lasts_until_a_commit_that_may_change_its_inputs() {
        let cache = RecordCache::new(100);
        cache.remember_derived("derived:k", Arc::new(7_u32), cache.generation());
        assert_eq!(cache.derived::<u32>("derived:k").as_deref(), Some(&7));
        // Usage counts, events, sessions and throttles are never inputs.
        let counts = || {
            let mut batch = Batch::default();
            for key in NOT_DERIVED_FROM {
                batch.mark(format!("{key}x"));
            }
            batch
        };
        cache.forget(&counts());
        assert_eq!(cache.derived::<u32>("derived:k").as_deref(), Some(&7));
        // Anything else may be, kept record or not (an index entry, say), even in company.
        for other in ["v1:ix:user-groups:u:g", "v1:grant:g", "v1:instance-admin"] {
            cache.remember_derived("derived:k", Arc::new(7_u32), cache.generation());
            let mut batch = counts();
            batch.mark(other.into());
            cache.forget(&batch);
            assert_eq!(cache.derived::<u32>("derived:k"), None, "{other}");
        }

        // Computed from reads made before a commit, stored after it: never served.
        let mut unrelated = Batch::default();
        unrelated.mark("v1:ix:org-keys:x".into());
        let read_at = cache.generation();
        cache.forget(&unrelated);
        cache.remember_derived("derived:k", Arc::new(8_u32), read_at);
        assert_eq!(cache.derived::<u32>("derived:k"), None);
    }
}
