//! The one-process meters (`service::LocalMeters`) over a real in-memory store, with
//! verifications racing on threads: exact counts, credits durable across a kill, a restart
//! that gives no second burst, and a failing store that never yields `VALID`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures_executor::block_on;
use model::domain::VerifyCode;
use model::meter::{CreditChange, Credits, Policy, RateLimit};
use model::service::{CreditLedger, LocalMeters, MAX_LEASE, lease_size};
use model::store::{Batch, Listing, MemoryStore, Store, StoreError, schema};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const SET_AT: OffsetDateTime = datetime!(2026-12-07 10:00:00 UTC);
const KEY: &str = "key_meteredkey01";

/// A memory store whose commits fail while `failing` is set.
#[derive(Clone, Default)]
struct Faulty {
    inner: MemoryStore,
    failing: Arc<AtomicBool>,
}

impl Store for Faulty {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key).await
    }
    async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Listing, StoreError> {
        self.inner.list(prefix, cursor, limit).await
    }
    async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::new("injected"));
        }
        self.inner.commit(batch).await
    }
}

fn policy(limits: &[(u64, u32)], credits: Option<u64>) -> Policy {
    Policy {
        ratelimits: limits
            .iter()
            .enumerate()
            .map(|(i, &(limit, window_seconds))| RateLimit {
                name: format!("l{i}"),
                limit,
                window_seconds,
            })
            .collect(),
        credits: credits.map(|remaining| Credits {
            remaining,
            refill: None,
        }),
        allowed_cidrs: Vec::new(),
    }
}

/// A store holding the key's ledger, as the key's creation writes it.
fn store_for(policy: &Policy) -> Faulty {
    let store = Faulty::default();
    if let Some(ledger) = CreditLedger::of(policy, SET_AT) {
        let mut batch = Batch::default();
        batch.put(schema::credits(KEY), &ledger).expect("json");
        block_on(store.commit(batch)).expect("commit");
    }
    store
}

/// `n` verifications of cost 1 at `now`, from 8 threads at once: how many were `VALID`.
fn race(meters: &Arc<LocalMeters>, store: &Faulty, policy: &Policy, n: usize) -> usize {
    let now = SET_AT + Duration::seconds(1);
    let valid = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                while next.fetch_add(1, Ordering::SeqCst) < n {
                    let metered =
                        block_on(meters.spend(store, KEY, policy, SET_AT, 1, now)).expect("spend");
                    if metered.code == VerifyCode::Valid {
                        valid.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    valid.load(Ordering::SeqCst)
}

#[test]
fn racing_verifications_get_exactly_the_limit_and_the_credits() {
    let cases = [
        (
            "100 at a 20-per-hour key",
            policy(&[(20, 3600)], None),
            100,
            20,
        ),
        ("120 at 30 credits", policy(&[], Some(30)), 120, 30),
        (
            "200 at 1 000 per minute and 45 credits",
            policy(&[(1000, 60)], Some(45)),
            200,
            45,
        ),
        (
            "300 at two limits, 50 per hour the smaller",
            policy(&[(400, 60), (50, 3600)], Some(10_000)),
            300,
            50,
        ),
    ];
    for (case, policy, n, want) in cases {
        let store = store_for(&policy);
        let meters = Arc::new(LocalMeters::new(SET_AT - Duration::seconds(1)));
        assert_eq!(race(&meters, &store, &policy, n), want, "{case}");
        if policy.credits.is_some() {
            let left =
                block_on(meters.credits_left(&store, KEY, &policy, SET_AT, SET_AT)).expect("left");
            let had = policy.credits.map(|c| c.remaining).unwrap_or(0);
            assert_eq!(left, Some(had - want as u64), "{case}: credits left");
        }
    }
}

#[test]
fn a_kill_forfeits_at_most_one_lease_and_grants_nothing() {
    for credits in [30u64, 1_000, 10_000, 100_000] {
        let policy = policy(&[], Some(credits));
        let store = store_for(&policy);
        let first = Arc::new(LocalMeters::new(SET_AT - Duration::seconds(1)));
        let before = race(&first, &store, &policy, 150);
        // kill -9: the process and its lease are gone, the store is what was committed.
        drop(first);
        let second = Arc::new(LocalMeters::new(SET_AT));
        let after = race(&second, &store, &policy, (credits as usize) + 50);
        let given = (before + after) as u64;
        assert!(given <= credits, "{credits}: gave {given}");
        let forfeited = credits - given;
        assert!(
            forfeited <= lease_size(credits).min(MAX_LEASE),
            "{credits}: forfeited {forfeited}"
        );
    }
}

#[test]
fn a_restart_gives_no_second_burst() {
    let policy = policy(&[(10, 10)], None);
    let store = store_for(&policy);
    let started = SET_AT + Duration::seconds(100);
    let meters = LocalMeters::new(started);
    // Set before this process started: empty at its start, one token a second after it.
    let at = |s: i64| started + Duration::milliseconds(s);
    let spend = |now| block_on(meters.spend(&store, KEY, &policy, SET_AT, 1, now)).expect("spend");
    assert_eq!(spend(at(0)).code, VerifyCode::RateLimited);
    assert_eq!(spend(at(1000)).code, VerifyCode::Valid);
    assert_eq!(spend(at(1000)).code, VerifyCode::RateLimited);
    // A policy set after the start (a new key, a new policy): full at once.
    let fresh = store_for(&policy);
    let meters = LocalMeters::new(SET_AT - Duration::seconds(1));
    let spend = || block_on(meters.spend(&fresh, KEY, &policy, SET_AT, 10, SET_AT)).expect("spend");
    assert_eq!(spend().code, VerifyCode::Valid);
    assert_eq!(spend().code, VerifyCode::RateLimited);
}

#[test]
fn a_failing_store_never_yields_valid_and_spends_nothing() {
    let policy = policy(&[(100, 60)], Some(3));
    let store = store_for(&policy);
    let meters = LocalMeters::new(SET_AT - Duration::seconds(1));
    store.failing.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        let answer = block_on(meters.spend(&store, KEY, &policy, SET_AT, 1, SET_AT));
        assert!(matches!(answer, Err(model::Error::Store(_))), "{answer:?}");
    }
    store.failing.store(false, Ordering::SeqCst);
    let codes: Vec<VerifyCode> = (0..4)
        .map(|_| {
            block_on(meters.spend(&store, KEY, &policy, SET_AT, 1, SET_AT))
                .expect("spend")
                .code
        })
        .collect();
    use VerifyCode::{UsageExceeded, Valid};
    assert_eq!(codes, [Valid, Valid, Valid, UsageExceeded]);
    // A ledger that does not follow the key's policy (a lost write) fails closed.
    let later = SET_AT + Duration::seconds(5);
    let answer = block_on(meters.spend(&store, KEY, &policy, later, 1, later));
    assert!(matches!(answer, Err(model::Error::Store(_))), "{answer:?}");
}

#[test]
fn credits_are_added_and_set_with_the_lease_returned() {
    let policy = policy(&[], Some(10_000));
    let store = store_for(&policy);
    let meters = LocalMeters::new(SET_AT - Duration::seconds(1));
    let change = |c| {
        block_on(meters.change_credits(&store, KEY, &policy, SET_AT, c, Batch::default(), SET_AT))
            .expect("change")
    };
    // One spent: a lease of 100 is out, 99 of it unspent; adding returns it.
    let spend = || block_on(meters.spend(&store, KEY, &policy, SET_AT, 1, SET_AT)).expect("spend");
    assert_eq!(spend().credits.map(|c| c.remaining), Some(9_999));
    assert_eq!(change(CreditChange::Add(1)), Some(10_000));
    assert_eq!(change(CreditChange::Set(2)), Some(2));
    let codes: Vec<VerifyCode> = (0..3).map(|_| spend().code).collect();
    assert_eq!(
        codes,
        [
            VerifyCode::Valid,
            VerifyCode::Valid,
            VerifyCode::UsageExceeded
        ]
    );
    let none = self::policy(&[], None);
    let answer = block_on(meters.change_credits(
        &store,
        KEY,
        &none,
        SET_AT,
        CreditChange::Add(1),
        Batch::default(),
        SET_AT,
    ));
    assert_eq!(answer.expect("no credits"), None);
}
