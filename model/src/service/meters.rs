//! The meters of a host that runs as one process over a durable store (the server; the
//! in-process tests): SPEC §4.5's limits exact in memory, credits durable.
//!
//! Each metered key has an entry in one of [`SHARDS`] maps, so verifications of different keys
//! never wait for each other, and an async lock of its own, so verifications of one key take
//! their turns (never the store's: a verification that only spends from memory touches no
//! store). Rate limits live in memory only: a bucket this process has not seen since it
//! started, for a policy set before it started, starts **empty** at the start and refills from
//! there, so a restart never hands out a second burst. Credits live in the store
//! ([`CreditLedger`], written with the key's policy) and are leased to memory a few at a time,
//! each lease written before any of it is spent: a kill -9 forfeits at most the unspent part of
//! one lease per key — at most [`MAX_LEASE`] credits, and at most 1 % of what the key had when
//! the lease was taken (or 1) — and never grants any.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::domain::{KeyRecord, Timestamp, VerifyCode};
use crate::error::{Error, Result};
use crate::meter::{CreditChange, CreditsLeft, MAX_CREDITS, Meter, Metered, Policy};
use crate::store::{Batch, Store, StoreError, get_json, schema};

/// How many maps the keys' entries are spread over.
pub const SHARDS: usize = 64;
/// The most credits one lease takes from the store.
pub const MAX_LEASE: u64 = 100;

/// A key's credits as the store keeps them: what is not leased to a process yet. Written in
/// the same batch as the policy it follows (the key's creation, a policy change), so the two
/// never disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditLedger {
    /// When the policy this ledger follows was set (`KeyRecord::policy_set_at`).
    #[serde(with = "time::serde::rfc3339")]
    pub set_at: Timestamp,
    /// Credits not leased out.
    pub remaining: u64,
    /// When the last refill was taken.
    #[serde(with = "time::serde::rfc3339")]
    pub refilled_at: Timestamp,
}

impl CreditLedger {
    /// The ledger of a policy set at `set_at`: its credits, none leased, if it has credits.
    pub fn of(policy: &Policy, set_at: Timestamp) -> Option<Self> {
        policy.credits.map(|credits| Self {
            set_at,
            remaining: credits.remaining,
            refilled_at: set_at,
        })
    }

    /// Takes the refill due at `now`: a refill sets the credits, so a lease from before it is
    /// void (its holder must come back). Whether one was taken.
    fn refill(&mut self, policy: &Policy, now: Timestamp) -> bool {
        let Some(refill) = policy.credits.and_then(|c| c.refill) else {
            return false;
        };
        let start = refill.last_start(now);
        if start > self.refilled_at {
            self.remaining = refill.amount;
            self.refilled_at = start;
            return true;
        }
        false
    }
}

/// The size of a lease out of `total` credits: 1 % of them, at least 1, at most
/// [`MAX_LEASE`].
pub fn lease_size(total: u64) -> u64 {
    (total / 100).clamp(1, MAX_LEASE)
}

/// One key's meter in this process.
struct Entry {
    /// The policy setting it follows; an entry of another one is started again.
    set_at: Timestamp,
    /// That policy.
    policy: Policy,
    /// The buckets (its credits are kept below, leased).
    meter: Meter,
    /// Credits leased from the store and not spent.
    lease: u64,
    /// The store's credits not leased, as of the last time this entry read or wrote them
    /// (this process is the only writer while it runs).
    ledger_left: u64,
    /// The ledger's last refill when the lease was taken.
    refilled_at: Timestamp,
}

/// A key's place in a shard: its entry, once a verification has started it, behind the lock
/// that verifications of the key take turns on.
type Slot = Arc<async_lock::Mutex<Option<Entry>>>;

/// The meters of every metered key of one process.
pub struct LocalMeters {
    started_at: Timestamp,
    shards: Box<[Mutex<HashMap<String, Slot>>]>,
}

impl std::fmt::Debug for LocalMeters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalMeters")
            .field("started_at", &self.started_at)
            .finish_non_exhaustive()
    }
}

impl LocalMeters {
    /// The meters of a process that started at `started_at`.
    pub fn new(started_at: Timestamp) -> Self {
        Self {
            started_at,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn slot(&self, key: &str) -> Result<Slot> {
        use std::hash::BuildHasher;
        let shard = foldhash::fast::FixedState::default().hash_one(key) as usize % SHARDS;
        let mut map = self.shards[shard]
            .lock()
            .map_err(|_| Error::Internal("a meter shard is poisoned".into()))?;
        Ok(Arc::clone(map.entry(key.to_owned()).or_default()))
    }

    /// The key's entry, started for the policy set at `set_at` when it has none for it.
    async fn start<'a, S: Store>(
        &self,
        entry: &'a mut Option<Entry>,
        store: &S,
        key: &str,
        policy: &Policy,
        set_at: Timestamp,
        now: Timestamp,
    ) -> Result<&'a mut Entry> {
        if entry.as_ref().is_some_and(|e| e.set_at == set_at) {
            return entry.as_mut().ok_or(Error::Internal("no meter".into()));
        }
        // Read before the entry is touched: a failing store leaves it as it was.
        let (ledger_left, refilled_at) = match policy.credits {
            None => (0, set_at),
            Some(_) => {
                let ledger = ledger(store, key, set_at).await?;
                (ledger.remaining, ledger.refilled_at)
            }
        };
        let mut meter = match entry.take() {
            // The policy changed while this process counted: limits kept by name keep the
            // tokens they hold (as the pure meter says), so a change hands out no new burst.
            Some(old) => {
                let mut meter = old.meter;
                meter.set_policy(&old.policy, policy, now);
                meter
            }
            None if set_at >= self.started_at => Meter::new(policy, set_at.min(now)),
            None => Meter::emptied(policy, self.started_at),
        };
        meter.credits = None;
        Ok(entry.insert(Entry {
            set_at,
            policy: policy.clone(),
            meter,
            lease: 0,
            ledger_left,
            refilled_at,
        }))
    }

    /// One verification's use of a metered key whose policy was set at `set_at` (SPEC §4.5):
    /// `cost` from every bucket and from its credits, or nothing. A store that fails while a
    /// lease is needed is an error, never `VALID`.
    pub async fn spend<S: Store>(
        &self,
        store: &S,
        key: &str,
        policy: &Policy,
        set_at: Timestamp,
        cost: u32,
        now: Timestamp,
    ) -> Result<Metered> {
        let slot = self.slot(key)?;
        let mut guard = slot.lock().await;
        let e = self
            .start(&mut guard, store, key, policy, set_at, now)
            .await?;
        if !e.meter.buckets_allow(policy, cost, now) {
            let mut refused = e.meter.spend(policy, cost, now);
            refused.credits = policy.credits.map(|_| CreditsLeft {
                remaining: e.lease + e.ledger_left,
            });
            return Ok(refused);
        }
        if policy.credits.is_some() {
            let need = u64::from(cost);
            let refill_due = policy
                .credits
                .and_then(|c| c.refill)
                .is_some_and(|r| r.last_start(now) > e.refilled_at);
            if e.lease < need || refill_due {
                lease(store, key, policy, e, need, now).await?;
            }
            if e.lease < need {
                let mut refused = e.meter.spend(policy, 0, now);
                refused.code = VerifyCode::UsageExceeded;
                refused.credits = Some(CreditsLeft {
                    remaining: e.lease + e.ledger_left,
                });
                return Ok(refused);
            }
            let mut metered = e.meter.spend(policy, cost, now);
            if metered.code == VerifyCode::Valid {
                e.lease -= need;
            }
            metered.credits = Some(CreditsLeft {
                remaining: e.lease + e.ledger_left,
            });
            return Ok(metered);
        }
        Ok(e.meter.spend(policy, cost, now))
    }

    /// The credits left, a refill due counted: the store's and this process's lease.
    pub async fn credits_left<S: Store>(
        &self,
        store: &S,
        key: &str,
        policy: &Policy,
        set_at: Timestamp,
        now: Timestamp,
    ) -> Result<Option<u64>> {
        if policy.credits.is_none() {
            return Ok(None);
        }
        let slot = self.slot(key)?;
        let mut guard = slot.lock().await;
        let e = self
            .start(&mut guard, store, key, policy, set_at, now)
            .await?;
        let refill = policy.credits.and_then(|c| c.refill);
        Ok(Some(match refill {
            Some(r) if r.last_start(now) > e.refilled_at => r.amount,
            _ => e.lease + e.ledger_left,
        }))
    }

    /// `POST /v1/keys/{id}/credits`: adds or sets the credits in the store, in one commit that
    /// also returns this process's lease (so what is shown and spent after it is exact) and
    /// holds `audit` (the change's event).
    /// `None` for a key without credits.
    #[allow(
        clippy::too_many_arguments,
        reason = "the key, its policy and its setting are what every meter call names"
    )]
    pub async fn change_credits<S: Store>(
        &self,
        store: &S,
        key: &str,
        policy: &Policy,
        set_at: Timestamp,
        change: CreditChange,
        audit: Batch,
        now: Timestamp,
    ) -> Result<Option<u64>> {
        if policy.credits.is_none() {
            return Ok(None);
        }
        let slot = self.slot(key)?;
        let mut guard = slot.lock().await;
        let e = self
            .start(&mut guard, store, key, policy, set_at, now)
            .await?;
        let _turn = store.turn().await;
        let mut ledger = ledger(store, key, set_at).await?;
        let refilled = ledger.refill(policy, now);
        let held = if refilled { 0 } else { e.lease };
        ledger.remaining = match change {
            CreditChange::Add(n) => ledger.remaining.saturating_add(held).saturating_add(n),
            CreditChange::Set(n) => n,
        }
        .min(MAX_CREDITS);
        let mut batch = audit;
        batch.put(schema::credits(key), &ledger)?;
        store.commit(batch).await?;
        e.lease = 0;
        e.ledger_left = ledger.remaining;
        e.refilled_at = ledger.refilled_at;
        Ok(Some(ledger.remaining))
    }
}

/// The key's ledger, which must follow the policy set at `set_at`: one that is missing or
/// follows another means the store lost part of a change, and the key fails closed.
async fn ledger<S: Store>(store: &S, key: &str, set_at: Timestamp) -> Result<CreditLedger> {
    match get_json::<S, CreditLedger>(store, &schema::credits(key)).await? {
        Some(ledger) if ledger.set_at == set_at => Ok(ledger),
        _ => Err(Error::Store(StoreError::new(format!(
            "the credits of {key} do not follow its policy"
        )))),
    }
}

async fn write<S: Store>(store: &S, key: &str, ledger: &CreditLedger) -> Result<()> {
    let mut batch = Batch::default();
    batch.put(schema::credits(key), ledger)?;
    store.commit(batch).await?;
    Ok(())
}

/// Takes a lease of at least `need` credits, the unspent lease returned in the same commit (so
/// a process holds one lease of a key at a time), in the store's turn; a refill due is taken
/// there (it voids the old lease). Leaves the lease as it was when the store has fewer than
/// `need` in all: nothing is taken for a refusal.
async fn lease<S: Store>(
    store: &S,
    key: &str,
    policy: &Policy,
    e: &mut Entry,
    need: u64,
    now: Timestamp,
) -> Result<()> {
    let _turn = store.turn().await;
    let mut ledger = ledger(store, key, e.set_at).await?;
    let refilled = ledger.refill(policy, now);
    let held = if refilled { 0 } else { e.lease };
    let total = ledger.remaining.saturating_add(held);
    if total < need {
        if refilled {
            write(store, key, &ledger).await?;
            e.lease = 0;
        }
        e.ledger_left = ledger.remaining;
        e.refilled_at = ledger.refilled_at;
        return Ok(());
    }
    let size = lease_size(total).max(need).min(total);
    ledger.remaining = total - size;
    write(store, key, &ledger).await?;
    e.lease = size;
    e.ledger_left = ledger.remaining;
    e.refilled_at = ledger.refilled_at;
    Ok(())
}

/// A meter call's future: `Send` off wasm32 (the server's threads), not on it.
#[cfg(not(target_arch = "wasm32"))]
pub type Metering<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;
#[cfg(target_arch = "wasm32")]
pub type Metering<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + 'a>>;

/// `Send + Sync` off wasm32 only: a Worker's meters hold the runtime's handles, which are
/// neither, in a single-threaded isolate.
#[cfg(not(target_arch = "wasm32"))]
pub trait Shared: Send + Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + Sync> Shared for T {}
#[cfg(target_arch = "wasm32")]
pub trait Shared {}
#[cfg(target_arch = "wasm32")]
impl<T> Shared for T {}

/// Where a host keeps its metered keys' counts (SPEC §4.5), exact wherever it answers: the
/// server's [`LocalMeters`] over its store ([`StoreMeters`]), the edge's Durable Object per
/// metered key. Every rule is [`Meter`]'s; a host only says where the state lives. A meter
/// that cannot answer is an error, so verification fails closed.
pub trait Meters: Shared {
    /// One verification's use of a metered key: `cost` from every limit and its credits, or
    /// nothing (`cost` 0 reads the state).
    fn spend<'a>(&'a self, key: &'a KeyRecord, cost: u32, now: Timestamp) -> Metering<'a, Metered>;

    /// The key's credits left (`change` none); `None` for a key without credits.
    fn credits<'a>(&'a self, key: &'a KeyRecord, now: Timestamp) -> Metering<'a, Option<u64>>;

    /// Adds or sets the credits of a key with credits, answering what is left. `audit` (the
    /// change's event) is committed with the change where the meter's state is in the same
    /// store (so the two are one commit), or handed back for the caller to commit after it.
    fn change_credits<'a>(
        &'a self,
        key: &'a KeyRecord,
        change: CreditChange,
        audit: Batch,
        now: Timestamp,
    ) -> Metering<'a, (Option<u64>, Option<Batch>)>;

    /// The key's policy was set anew (its record, already committed, says how): a meter that
    /// learns of it only from verifications (the edge's) is told at once.
    fn policy_set<'a>(&'a self, key: &'a KeyRecord, now: Timestamp) -> Metering<'a, ()>;
}

/// [`LocalMeters`] over one store: the meters of a host that is one process (the server).
/// A host wraps it in its own type to implement [`Meters`] for its concrete store, whose
/// futures it knows to be `Send`.
pub struct StoreMeters<S> {
    meters: LocalMeters,
    store: S,
}

impl<S: Store> StoreMeters<S> {
    /// The meters of a process started at `started_at`, its credits kept in `store`.
    pub fn new(store: S, started_at: Timestamp) -> Self {
        Self {
            meters: LocalMeters::new(started_at),
            store,
        }
    }

    /// [`Meters::spend`].
    pub async fn spend(&self, key: &KeyRecord, cost: u32, now: Timestamp) -> Result<Metered> {
        self.meters
            .spend(
                &self.store,
                &key.id,
                &key.policy,
                key.policy_set_at(),
                cost,
                now,
            )
            .await
    }

    /// [`Meters::credits`].
    pub async fn credits(&self, key: &KeyRecord, now: Timestamp) -> Result<Option<u64>> {
        let (policy, set_at) = (&key.policy, key.policy_set_at());
        self.meters
            .credits_left(&self.store, &key.id, policy, set_at, now)
            .await
    }

    /// [`Meters::change_credits`]: the audit event in the ledger's commit.
    pub async fn change_credits(
        &self,
        key: &KeyRecord,
        change: CreditChange,
        audit: Batch,
        now: Timestamp,
    ) -> Result<(Option<u64>, Option<Batch>)> {
        let (policy, set_at) = (&key.policy, key.policy_set_at());
        let left = self
            .meters
            .change_credits(&self.store, &key.id, policy, set_at, change, audit, now)
            .await?;
        Ok((left, None))
    }
}
