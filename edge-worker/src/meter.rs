//! The edge's meters of usage policies (SPEC §4.5): one Durable Object per metered key
//! (named by the key's id, SQLite-backed storage) holding the key's `model::meter::Meter` —
//! its buckets and credits — and the policy it counts for. Every isolate and location that
//! verifies the key asks the same object, which answers one call at a time, so a limit is
//! never exceeded and credits are never overspent however many verify at once. A key without
//! a rate limit or credits never reaches one ([`model::domain::Policy::is_metered`]).
//!
//! The policy comes with each call (from the key's record as the verifying isolate read it)
//! with the time it was set; the object keeps the newest it has seen, so an isolate with a
//! stale record cannot bring an older policy back, and the organization's object tells it of a
//! change at once ([`model::service::Meters::policy_set`]). The state is written to storage
//! before the answer leaves (the runtime's output gate), so an evicted or restarted object
//! carries on where it was: no second burst, no credit given twice.

use std::sync::Arc;

use async_lock::Mutex;
use model::domain::{KeyRecord, Timestamp};
use model::meter::{CreditChange, Meter, Metered, Policy};
use model::service::Metering;
use model::store::{Batch, StoreError};
use serde::{Deserialize, Serialize};
use worker::{DurableObject, Env, Request, RequestInit, Response, State, durable_object};

/// The binding of the meters' namespace in `wrangler.toml`.
pub const BINDING: &str = "KEYGATE_METER";
/// Where the object keeps its state.
const STATE: &str = "meter";
/// The test build's header that makes the object fail (`meter_down` in `/__faults`).
#[cfg(feature = "fault-injection")]
const FAULT_HEADER: &str = "x-keygate-fault";

/// What a call asks of a key's meter.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Ask {
    /// A verification's use: `cost` from every limit and the credits, or nothing.
    Spend(u32),
    /// The credits left.
    Credits,
    /// Adds or sets the credits.
    Change(CreditChange),
    /// Only the policy (a change of it).
    Policy,
}

/// A call: the key's policy as the caller read it, when it was set, and what it asks.
#[derive(Debug, Serialize, Deserialize)]
struct Call {
    policy: Policy,
    #[serde(with = "time::serde::rfc3339")]
    set_at: Timestamp,
    ask: Ask,
}

/// What the object keeps: the newest policy it has seen and its meter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Kept {
    #[serde(with = "time::serde::rfc3339")]
    set_at: Timestamp,
    policy: Policy,
    meter: Meter,
}

/// The answer of a call.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Metered(Metered),
    Credits(Option<u64>),
    Done,
}

/// One metered key's object.
#[durable_object]
pub struct KeyMeter {
    state: State,
    /// The state as last written, once read; the lock makes calls take turns (no two
    /// read-modify-writes interleave at an await).
    kept: Arc<Mutex<Option<Kept>>>,
}

impl DurableObject for KeyMeter {
    fn new(state: State, _env: Env) -> Self {
        Self {
            state,
            kept: Arc::default(),
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        #[cfg(feature = "fault-injection")]
        if req.headers().get(FAULT_HEADER)?.is_some() {
            return Err(worker::Error::RustError("injected meter failure".into()));
        }
        let call: Call = serde_json::from_str(&req.text().await?)?;
        let now = crate::now();
        let mut guard = self.kept.lock().await;
        if guard.is_none() {
            let stored: Option<String> = self.state.storage().get(STATE).await?;
            *guard = stored.map(|text| serde_json::from_str(&text)).transpose()?;
        }
        let before = guard.clone();
        let kept = match guard.take() {
            // A policy newer than the kept one: limits kept by name keep their tokens.
            Some(mut kept) if call.set_at > kept.set_at => {
                kept.meter.set_policy(&kept.policy, &call.policy, now);
                kept.policy = call.policy;
                kept.set_at = call.set_at;
                kept
            }
            // The same or an older one (a stale record): the kept policy counts.
            Some(kept) => kept,
            None => Kept {
                meter: Meter::new(&call.policy, call.set_at.min(now)),
                policy: call.policy,
                set_at: call.set_at,
            },
        };
        let mut kept = kept;
        let answer = match call.ask {
            Ask::Spend(cost) => Answer::Metered(kept.meter.spend(&kept.policy, cost, now)),
            Ask::Credits => Answer::Credits(kept.meter.credits_left(&kept.policy, now)),
            Ask::Change(change) => {
                Answer::Credits(kept.meter.change_credits(&kept.policy, change, now))
            }
            Ask::Policy => Answer::Done,
        };
        if before.as_ref() != Some(&kept) {
            // Written before the answer goes (and on failure, the call fails): what was
            // handed out is never forgotten.
            let text = serde_json::to_string(&kept)?;
            if let Err(e) = self.state.storage().put(STATE, text).await {
                *guard = None;
                return Err(e);
            }
        }
        *guard = Some(kept);
        Response::from_json(&answer)
    }
}

thread_local! {
    /// The test build's `meter_down`: calls of meters made from this isolate fail.
    #[cfg(feature = "fault-injection")]
    static DOWN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The test build: whether meters called from this isolate fail.
#[cfg(feature = "fault-injection")]
pub fn set_down(down: bool) {
    DOWN.set(down);
}

/// The meters as `model` calls them: each a call of the key's object.
pub struct EdgeMeters {
    env: Env,
}

impl EdgeMeters {
    pub fn new(env: Env) -> Self {
        Self { env }
    }

    async fn call(&self, key: &KeyRecord, ask: Ask) -> Result<Answer, StoreError> {
        let unavailable =
            |e: &dyn std::fmt::Display| StoreError::new(format!("the meter of {}: {e}", key.id));
        let call = Call {
            policy: key.policy.clone(),
            set_at: key.policy_set_at(),
            ask,
        };
        let body = serde_json::to_string(&call).map_err(|e| unavailable(&e))?;
        let headers = worker::Headers::new();
        #[cfg(feature = "fault-injection")]
        if DOWN.get() {
            headers
                .set(FAULT_HEADER, "down")
                .map_err(|e| unavailable(&e))?;
        }
        let mut init = RequestInit::new();
        init.with_method(worker::Method::Post)
            .with_headers(headers)
            .with_body(Some(body.into()));
        let req = Request::new_with_init("https://meter/", &init).map_err(|e| unavailable(&e))?;
        let mut answer = self
            .env
            .durable_object(BINDING)
            .and_then(|ns| ns.get_by_name(&key.id))
            .map_err(|e| unavailable(&e))?
            .fetch_with_request(req)
            .await
            .map_err(|e| unavailable(&e))?;
        if answer.status_code() != 200 {
            return Err(unavailable(&format!("answered {}", answer.status_code())));
        }
        let text = answer.text().await.map_err(|e| unavailable(&e))?;
        serde_json::from_str(&text).map_err(|e| unavailable(&e))
    }
}

fn unexpected(answer: &Answer) -> model::Error {
    model::Error::Store(StoreError::new(format!(
        "a meter answered {answer:?} to another question"
    )))
}

impl model::service::Meters for EdgeMeters {
    fn spend<'a>(&'a self, key: &'a KeyRecord, cost: u32, _: Timestamp) -> Metering<'a, Metered> {
        Box::pin(async move {
            match self.call(key, Ask::Spend(cost)).await? {
                Answer::Metered(metered) => Ok(metered),
                other => Err(unexpected(&other)),
            }
        })
    }

    fn credits<'a>(&'a self, key: &'a KeyRecord, _: Timestamp) -> Metering<'a, Option<u64>> {
        Box::pin(async move {
            match self.call(key, Ask::Credits).await? {
                Answer::Credits(left) => Ok(left),
                other => Err(unexpected(&other)),
            }
        })
    }

    /// The change is the object's; its event is handed back for the organization's object
    /// to commit after it.
    fn change_credits<'a>(
        &'a self,
        key: &'a KeyRecord,
        change: CreditChange,
        audit: Batch,
        _: Timestamp,
    ) -> Metering<'a, (Option<u64>, Option<Batch>)> {
        Box::pin(async move {
            match self.call(key, Ask::Change(change)).await? {
                Answer::Credits(left) => Ok((left, Some(audit))),
                other => Err(unexpected(&other)),
            }
        })
    }

    fn policy_set<'a>(&'a self, key: &'a KeyRecord, _: Timestamp) -> Metering<'a, ()> {
        Box::pin(async move {
            if !key.policy.is_metered() {
                return Ok(());
            }
            self.call(key, Ask::Policy).await?;
            Ok(())
        })
    }
}
