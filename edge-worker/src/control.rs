//! The edge's control plane: a Durable Object with SQLite storage that runs every request
//! that reads or changes state (SPEC §10), one at a time where it matters, with its own
//! storage as the source of truth, and writes what it commits through to Workers KV, which
//! stays the read path of verification.
//!
//! - A change runs `model::http` over [`ObjectStore`]: reads are SQL queries on the object's
//!   storage (synchronous: nothing interleaves between a rule's read and its write), a batch
//!   commits in one `transactionSync` (all or nothing), and queues the store keys it wrote
//!   that verification reads (`read_by_verification`) in an `outbox` table in the same
//!   transaction. Sessions, throttles, events, usage and the indexes of listings live in the
//!   object only.
//! - The write-through then copies each queued key's current value (or its absence) to KV,
//!   one flush at a time, records before index entries before deletes, and removes a key from
//!   the outbox only if no later commit queued it again. When KV fails, the change stands (it
//!   is committed) and the object's alarm retries with backoff until KV holds the truth.
//! - The answer names the written keys that isolates cache (`x-keygate-written`), so the
//!   isolate that forwarded the change forgets them at once.
//! - An object that starts with empty storage first copies every record of KV into it once
//!   (a deployment made before the object existed keeps its data).
//!
//! One class, one object per organization (named by its id) and one directory object
//! (named [`OBJECT`]): an organization's endpoints run in its object over [`ObjectStore`];
//! the instance's run in the directory over `model::store::partition::Partitioned`, its own
//! storage for the directory's keys and the organizations' objects for the rest
//! ([`crate::remote`], under a lease on their turn). The worker names the object in
//! [`OBJECT_HEADER`] (`model::http::runs` says which). ARCHITECTURE.md, "The edge's control
//! plane", says what this makes exact.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use async_lock::{Mutex, MutexGuardArc};
use model::http as api;
use model::service::{GithubKeys, Keygate, UsageBuffer, UsageReport, Webhooks};
use model::store::cache::read_by_verification;
use model::store::partition::Partitioned;
use model::store::schema::{self, Home};
use model::store::{Batch, Listing, Op, Store, StoreError};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::{Closure, JsValue};
use worker::{
    DurableObject, Env, Request, Response, SqlStorage, SqlStorageValue, State, console_error,
    durable_object,
};

/// A lease held on this object: its token and this object's turn.
type Lease = (String, MutexGuardArc<()>);
/// A record as it moves: key, value, expiry, and its organization (when one is named).
type Moved = (String, Vec<u8>, Option<i64>, Option<String>);

/// The store of an instance endpoint's request in the directory object.
type Instance = Partitioned<Local, RemoteOrgs>;

use crate::remote::{
    Changes, LEASE_HEADER, LEASE_MS, Leases, Local, OBJECT_HEADER, OP_HEADER, RemoteOrgs, WireBatch,
};
use crate::store::BINDING as KV_BINDING;

/// The binding of the control object's namespace in `wrangler.toml`.
pub const BINDING: &str = "KEYGATE_CONTROL";
/// The name of the directory object (the instance's); each organization's object is named
/// by the organization's id.
pub const OBJECT: &str = "instance";
/// The header of an instance endpoint's request naming the organization it is about.
pub const CONTEXT_HEADER: &str = "x-keygate-context";
/// The header of a control answer that lists the written keys isolates cache.
pub const WRITTEN: &str = "x-keygate-written";
/// The most rows one write-through round takes from the outbox.
const FLUSH_ROWS: usize = 256;
/// The first retry of a failed write-through, and the longest wait between retries.
const RETRY_FIRST_MS: i64 = 1_000;
const RETRY_MAX_MS: i64 = 60_000;
/// How often the alarm purges expired records when nothing else is due.
const PURGE_EVERY_MS: i64 = 3_600_000;
/// The most webhook delivery rounds one alarm runs before it lets the next alarm go on.
const DELIVERY_ROUNDS: usize = 8;

/// The object: its storage, one turn for changes, one write-through at a time.
#[durable_object]
pub struct Control {
    state: State,
    env: Env,
    turn: Arc<Mutex<()>>,
    flush: Rc<Mutex<()>>,
    /// This object's name: [`OBJECT`] for the directory, else the organization's id (the
    /// caller says it in [`OBJECT_HEADER`]; an object does not know its own name).
    name: RefCell<Option<String>>,
    /// The directory's lease on this organization's object, while an instance endpoint
    /// holds it (`remote`): its token and this object's turn.
    lease: Rc<RefCell<Option<Lease>>>,
    /// Leases that ran out: a late call carrying one is refused, not served unleased.
    expired: Rc<RefCell<std::collections::VecDeque<String>>>,
    /// Whether this instance has migrated and bootstrapped its storage.
    ready: Cell<bool>,
    /// Failed write-throughs in a row (the alarm's backoff).
    failures: Cell<u32>,
    /// Verification counts handed over by isolates (`/__usage`), written under this
    /// object's writer id.
    usage: Arc<UsageBuffer>,
    /// GitHub's secret scanning keys, fetched from `KEYGATE_GITHUB_KEYS_URL` and kept while
    /// the object lives.
    github: Arc<GithubKeys>,
    /// Webhook delivery: the runtime's `fetch`, private addresses only with
    /// `KEYGATE_ALLOW_PRIVATE_WEBHOOKS=1`.
    webhooks: Arc<Webhooks>,
    /// Set by a commit that put events in the webhooks' outbox, taken by `after_commit`.
    outboxed: Rc<Cell<bool>>,
    /// The metered keys' objects (`crate::meter`): a key's credits shown and changed.
    meters: Arc<dyn model::service::Meters>,
    /// The directory's changes in two stores: those under way, and whether any may be left
    /// unsettled (every object starts so: a crash of the last one may have left some).
    changes: Rc<Changes>,
}

impl DurableObject for Control {
    fn new(state: State, env: Env) -> Self {
        let keys_url = env
            .var("KEYGATE_GITHUB_KEYS_URL")
            .map(|v| v.to_string())
            .unwrap_or_else(|_| model::scanning::GITHUB_KEYS_URL.to_owned());
        let github = Arc::new(GithubKeys::new(keys_url, Arc::new(crate::fetch::Client)));
        let allow_private = env
            .var("KEYGATE_ALLOW_PRIVATE_WEBHOOKS")
            .is_ok_and(|v| matches!(v.to_string().as_str(), "1" | "true" | "yes" | "on"));
        let webhooks = Arc::new(Webhooks::new(
            Arc::new(crate::fetch::Client),
            crate::now,
            allow_private,
        ));
        Self {
            meters: Arc::new(crate::meter::EdgeMeters::new(env.clone())),
            github,
            webhooks,
            outboxed: Rc::default(),
            changes: Rc::new(Changes::new()),
            state,
            env,
            turn: Arc::default(),
            flush: Rc::default(),
            name: RefCell::default(),
            lease: Rc::default(),
            expired: Rc::default(),
            ready: Cell::new(false),
            failures: Cell::new(0),
            usage: Arc::default(),
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let url = req.url()?;
        if let Some(name) = req.headers().get(OBJECT_HEADER)? {
            *self.name.borrow_mut() = Some(name);
        }
        if let Some(answer) = faults::route(&mut req, url.path()).await {
            if answer.is_ok() && self.is_directory() {
                // Every organization's object takes the same settings.
                if let Err(e) = self.pass_faults(&faults::last()).await {
                    return crate::send(api::problem(&e));
                }
            }
            return answer;
        }
        faults::object_check()?;
        // What organizations' objects ask of the directory, which may be waiting for them
        // (holding its turn, or getting ready): answered without either.
        match url.path() {
            "/__export" => return self.export(&mut req).await,
            "/__constant" => return self.constant(&mut req).await,
            _ => {}
        }
        let origin = url.origin().ascii_serialization();
        if let Err(e) = self.ready(&origin).await {
            return crate::send(api::problem(&e));
        }
        match url.path() {
            "/__ready" => {
                // An isolate's first request: a new set-up link if the last one expired.
                crate::renew_setup(&self.directory_keygate(None).0, &origin).await;
                self.after_commit().await;
                Response::empty().map(|r| r.with_status(204))
            }
            "/__usage" => {
                let report: UsageReport = req.json().await?;
                match self.take_usage(report).await {
                    Ok(()) => Response::empty().map(|r| r.with_status(204)),
                    Err(e) => crate::send(api::problem(&e)),
                }
            }
            path @ ("/__store/get" | "/__store/list" | "/__store/commit" | "/__settle"
            | "/__release") => self.participate(req, path).await,
            _ => self.serve(req).await,
        }
    }

    async fn alarm(&self) -> worker::Result<Response> {
        self.purge();
        let mut next = match self.write_through().await {
            Ok(()) => PURGE_EVERY_MS,
            Err(e) => {
                console_error!("keygate: write-through to KV failed again: {e}");
                self.backoff()
            }
        };
        if let Some(due) = self.deliver().await {
            next = next.min(due);
        }
        // A change made while this alarm ran may have found it running and asked for none:
        // its events wait in the outbox. (No await between this look and the alarm's setting,
        // so no change slips in between.)
        let outbox = model::store::schema::outbox();
        if self
            .store()
            .list(&outbox, None, 1)
            .await
            .is_ok_and(|l| !l.keys.is_empty())
        {
            next = 0;
        }
        // Likewise a key made with an expiry while this alarm ran: its first reminder may be
        // due before the wait the rounds found.
        if let Ok(Some(due)) = self.keygate().next_reminder().await {
            let wait = (due - crate::now()).whole_milliseconds();
            next = next.min(i64::try_from(wait.max(0)).unwrap_or(next));
        }
        self.state.storage().set_alarm(next).await?;
        Response::empty()
    }
}

impl Control {
    /// Whether this is the directory object (an object told no name is: the only one
    /// before organizations had their own).
    fn is_directory(&self) -> bool {
        self.name.borrow().as_deref().is_none_or(|n| n == OBJECT)
    }

    fn store(&self) -> ObjectStore {
        ObjectStore {
            sql: self.state.storage().sql(),
            storage: JsValue::from(self.state.storage().as_raw()),
            turn: Arc::clone(&self.turn),
            written: Rc::default(),
            outboxed: Rc::clone(&self.outboxed),
            directory: (!self.is_directory()).then(|| self.env.clone()),
        }
    }

    /// Operations over this object's own storage: an organization's endpoints, and what
    /// the directory keeps of itself (alarms, purges).
    fn keygate(&self) -> Keygate<ObjectStore> {
        Keygate::with_usage(self.store(), Arc::clone(&self.usage))
            .with_github(Arc::clone(&self.github))
            .with_webhooks(Arc::clone(&self.webhooks))
            .with_meters(Arc::clone(&self.meters))
    }

    /// Operations of the instance's endpoints: the directory's storage and the
    /// organizations' objects as one store (`model::store::partition`), about `context`
    /// when the request names an organization; and the leases its calls hold.
    fn directory_keygate(&self, context: Option<String>) -> (Keygate<Instance>, Rc<Leases>) {
        let leases = Rc::new(Leases::default());
        let orgs = RemoteOrgs {
            env: self.env.clone(),
            local: self.store(),
            leases: Rc::clone(&leases),
            changes: Rc::clone(&self.changes),
            state: JsValue::from(self.state.as_raw()),
        };
        let local = Local {
            store: self.store(),
            leases: Rc::clone(&leases),
            env: self.env.clone(),
        };
        let keygate = Keygate::with_usage(
            Partitioned::new(local, orgs, context),
            Arc::clone(&self.usage),
        )
        .with_github(Arc::clone(&self.github))
        .with_webhooks(Arc::clone(&self.webhooks))
        .with_meters(Arc::clone(&self.meters));
        (keygate, leases)
    }

    /// Webhook delivery rounds until nothing is due now; the wait in milliseconds until the
    /// next is due, if anything waits. A failing round is tried again in a second.
    async fn deliver(&self) -> Option<i64> {
        let keygate = self.keygate();
        for _ in 0..DELIVERY_ROUNDS {
            match keygate.deliver_webhooks().await {
                Ok(done) => match done.next_due {
                    None => return None,
                    Some(at) => {
                        let wait = (at - crate::now()).whole_milliseconds();
                        if wait > 0 {
                            return Some(i64::try_from(wait).unwrap_or(PURGE_EVERY_MS));
                        }
                    }
                },
                Err(e) => {
                    console_error!("keygate: webhook delivery round failed: {e}");
                    return Some(RETRY_FIRST_MS);
                }
            }
        }
        Some(0)
    }

    /// Brings the alarm forward to now when a change put events in the webhooks' outbox.
    async fn deliver_soon(&self) {
        let storage = self.state.storage();
        let now = js_sys::Date::now() as i64;
        match storage.get_alarm().await {
            Ok(Some(at)) if at <= now => {}
            _ => {
                if let Err(e) = storage.set_alarm(0).await {
                    console_error!("keygate: alarm not set: {e}");
                }
            }
        }
    }

    /// An API request, run by `model::http` over the object's storage (an organization's
    /// object) or over the directory and the organizations' objects (the directory), then
    /// written through.
    async fn serve(&self, mut req: Request) -> worker::Result<Response> {
        let (answer, written) = if self.is_directory() {
            let context = req.headers().get(CONTEXT_HEADER)?;
            let (keygate, leases) = self.directory_keygate(context);
            let answer = crate::serve_api(&keygate, &mut req, None).await;
            if keygate.usage_pending() {
                // An API key authenticating a call counts as a use: its organization's.
                self.hand_usage(self.usage.report()).await;
            }
            let written = leases.written.take();
            (answer, written)
        } else {
            let keygate = self.keygate();
            let answer = crate::serve_api(&keygate, &mut req, None).await;
            if keygate.usage_pending() {
                let _turn = self.turn.lock().await;
                let _ = keygate.flush_usage(crate::now()).await;
            }
            (answer, keygate.store().written.take())
        };
        self.after_commit().await;
        answer.map(|mut r| {
            if !written.is_empty() {
                let _ = r.headers_mut().set(WRITTEN, &written.join(","));
            }
            // The test build says which object served the request.
            #[cfg(feature = "fault-injection")]
            let _ = r.headers_mut().set(
                "x-keygate-served-by",
                self.name.borrow().as_deref().unwrap_or(OBJECT),
            );
            r
        })
    }

    /// Hands counts to the objects of their organizations; what one does not take stays
    /// in this object's buffer for the next hand-over.
    async fn hand_usage(&self, report: UsageReport) {
        for (org, part) in report.by_organization() {
            let body = match serde_json::to_string(&part) {
                Ok(body) => body,
                Err(e) => {
                    console_error!("keygate: usage not encoded: {e}");
                    continue;
                }
            };
            if let Err(e) = crate::remote::call(&self.env, &org, "/__usage", body, &[]).await {
                console_error!("keygate: usage not handed to {org}: {e}");
                self.usage.absorb(part);
            }
        }
    }

    /// A call of the directory on this organization's object, under the directory's lease
    /// when it carries one: a read, a listing, a commit (which ends the lease), a release.
    async fn participate(&self, mut req: Request, path: &str) -> worker::Result<Response> {
        let lease = req.headers().get(LEASE_HEADER)?;
        if path == "/__release" {
            if let Some(lease) = &lease {
                self.release(lease);
            }
            return Response::empty().map(|r| r.with_status(204));
        }
        if let Some(lease) = &lease
            && let Err(e) = self.take_lease(lease).await
        {
            return crate::send(api::problem(&e));
        }
        let store = self.store();
        match path {
            "/__store/get" => {
                let key = req.text().await?;
                match store.get(&key).await {
                    Ok(Some(value)) => Response::from_bytes(value),
                    Ok(None) => Response::empty().map(|r| r.with_status(204)),
                    Err(e) => crate::send(api::problem(&model::Error::Store(e))),
                }
            }
            "/__store/list" => {
                let query: crate::remote::ListQuery = req.json().await?;
                match store
                    .list(&query.prefix, query.cursor.as_deref(), query.limit)
                    .await
                {
                    Ok(listing) => Response::from_json(&(listing.keys, listing.cursor)),
                    Err(e) => crate::send(api::problem(&model::Error::Store(e))),
                }
            }
            "/__settle" => {
                let op = req.text().await?;
                let settled = match &lease {
                    Some(lease) => {
                        let settled = settle(&store.sql, &op);
                        self.release(lease);
                        settled
                    }
                    None => {
                        let _turn = self.turn.lock().await;
                        settle(&store.sql, &op)
                    }
                };
                match settled {
                    Ok(applied) => Response::ok(if applied { "applied" } else { "refused" }),
                    Err(e) => crate::send(api::problem(&model::Error::Store(e))),
                }
            }
            _ => {
                let batch: WireBatch = req.json().await?;
                let op = req.headers().get(OP_HEADER)?;
                let commit = || {
                    let batch = batch.into_batch();
                    match op {
                        Some(op) => {
                            let sql = store.sql.clone();
                            store.commit_with(batch, move || apply(&sql, &op))
                        }
                        None => store.commit_with(batch, || Ok(())),
                    }
                };
                let committed = match &lease {
                    Some(lease) => {
                        let committed = commit();
                        self.release(lease);
                        committed
                    }
                    None => {
                        let _turn = self.turn.lock().await;
                        commit()
                    }
                };
                self.after_commit().await;
                match committed {
                    Ok(()) => {
                        let written = store.written.take();
                        let mut r = Response::empty()?.with_status(204);
                        if !written.is_empty() {
                            r.headers_mut().set(WRITTEN, &written.join(","))?;
                        }
                        Ok(r)
                    }
                    Err(e) => crate::send(api::problem(&model::Error::Store(e))),
                }
            }
        }
    }

    /// Holds this object's turn for the directory's lease `token` (from its first call to
    /// its commit or release, at most `LEASE_MS`).
    async fn take_lease(&self, token: &str) -> Result<(), model::Error> {
        if self.expired.borrow().iter().any(|t| t == token) {
            return Err(store_err("the directory's lease ran out"));
        }
        if self
            .lease
            .borrow()
            .as_ref()
            .is_some_and(|(t, _)| t == token)
        {
            return Ok(());
        }
        let guard = self.turn.lock_arc().await;
        *self.lease.borrow_mut() = Some((token.to_owned(), guard));
        let (slot, expired, token) = (
            Rc::clone(&self.lease),
            Rc::clone(&self.expired),
            token.to_owned(),
        );
        worker::wasm_bindgen_futures::spawn_local(async move {
            worker::Delay::from(std::time::Duration::from_millis(LEASE_MS)).await;
            let mut held = slot.borrow_mut();
            if held.as_ref().is_some_and(|(t, _)| *t == token) {
                *held = None;
                console_error!("keygate: a lease of the directory ran out unreleased");
                let mut expired = expired.borrow_mut();
                expired.push_back(token);
                if expired.len() > 64 {
                    expired.pop_front();
                }
            }
        });
        Ok(())
    }

    fn release(&self, token: &str) {
        let mut held = self.lease.borrow_mut();
        if held.as_ref().is_some_and(|(t, _)| t == token) {
            *held = None;
        }
    }

    /// `/__export` (the directory): the records of the organization named in the body that
    /// the directory held before organizations had their own objects.
    async fn export(&self, req: &mut Request) -> worker::Result<Response> {
        let org = req.text().await?;
        let sql = self.state.storage().sql();
        for statement in SCHEMA {
            sql.exec(statement, None)?;
        }
        let mut rows: Vec<(String, String, Option<i64>)> = Vec::new();
        for row in sql
            .exec(
                "SELECT key, value, expires FROM legacy WHERE org = ?",
                vec![org.into()],
            )?
            .raw()
        {
            let mut row = row?.into_iter();
            let (Some(SqlStorageValue::String(key)), value, expires) =
                (row.next(), row.next(), row.next())
            else {
                continue;
            };
            let Some(value) = bytes(value).and_then(|v| String::from_utf8(v).ok()) else {
                continue;
            };
            let expires = match expires {
                Some(SqlStorageValue::Integer(at)) => Some(at),
                _ => None,
            };
            rows.push((key, value, expires));
        }
        Response::from_json(&rows)
    }

    /// `/__constant` (the directory): a constant of the instance (the key prefix, the first
    /// admin), for an organization's object that has no copy yet.
    async fn constant(&self, req: &mut Request) -> worker::Result<Response> {
        let key = req.text().await?;
        if schema::home(&key) != Home::Constant {
            return Response::error("not a constant", 400);
        }
        let sql = self.state.storage().sql();
        let value = sql
            .exec("SELECT value FROM records WHERE key = ?", vec![key.into()])
            .ok()
            .and_then(|rows| rows.raw().next())
            .and_then(|row| row.ok())
            .and_then(|row| bytes(row.into_iter().next()));
        match value {
            Some(value) => Response::from_bytes(value),
            None => Response::empty().map(|r| r.with_status(204)),
        }
    }

    /// Passes the test build's fault settings on to every organization's object.
    async fn pass_faults(&self, body: &str) -> Result<(), model::Error> {
        for org in known_orgs(&self.state.storage().sql()) {
            crate::remote::call(&self.env, &org, "/__faults", body.to_owned(), &[])
                .await
                .map_err(model::Error::Store)?;
        }
        Ok(())
    }

    /// Writes what was committed through to KV; a failure leaves it to the alarm. Events
    /// put in the webhooks' outbox bring the alarm forward, which delivers them.
    async fn after_commit(&self) {
        if self.outboxed.take() {
            self.deliver_soon().await;
        }
        if let Err(e) = self.write_through().await {
            console_error!("keygate: write-through to KV failed, retried by the alarm: {e}");
            let wait = self.backoff();
            let storage = self.state.storage();
            // Only ever brought forward: a sooner alarm (deliveries due) stays.
            let sooner = match storage.get_alarm().await {
                Ok(Some(at)) => at > js_sys::Date::now() as i64 + wait,
                _ => true,
            };
            if sooner && let Err(e) = storage.set_alarm(wait).await {
                console_error!("keygate: alarm not set: {e}");
            }
        }
    }

    fn backoff(&self) -> i64 {
        let n = self.failures.get().saturating_add(1);
        self.failures.set(n);
        RETRY_FIRST_MS
            .saturating_mul(1 << n.saturating_sub(1).min(6))
            .min(RETRY_MAX_MS)
    }

    /// Counts an isolate handed over, written under this object's turn. On a failure they
    /// go back to the isolate (the answer is 503), so none is lost or counted twice.
    async fn take_usage(&self, report: UsageReport) -> Result<(), model::Error> {
        if self.is_directory() {
            // Counts of an isolate that sent them here: their organizations' objects write them.
            self.hand_usage(report).await;
            return Ok(());
        }
        let keygate = self.keygate();
        {
            let _turn = self.turn.lock().await;
            self.usage.absorb(report);
            if let Err(e) = keygate.flush_usage(crate::now()).await {
                // The flush put them back in this buffer: take them out again for the sender.
                let _ = self.usage.report();
                return Err(e);
            }
        }
        self.after_commit().await;
        Ok(())
    }

    /// Once per object: the storage's tables; for the directory the copy of KV when its
    /// storage is new, the move of the organizations' records out of it (kept for their
    /// objects to take), and the first start's organization and admin (SPEC §7); for an
    /// organization's object, its records from the directory.
    async fn ready(&self, origin: &str) -> Result<(), model::Error> {
        if self.ready.get() {
            if self.is_directory() && self.changes.unsettled.get() {
                self.settle_changes().await?;
                self.after_commit().await;
            }
            return Ok(());
        }
        {
            let _turn = self.turn.lock().await;
            if !self.ready.get() {
                let sql = self.state.storage().sql();
                for statement in SCHEMA {
                    sql.exec(statement, None).map_err(store_err)?;
                }
                if self.is_directory() {
                    self.migrate(&sql).await?;
                    self.move_organizations(&sql).await?;
                    let (keygate, _) = self.directory_keygate(None);
                    crate::bootstrap(&keygate, &self.env, origin).await?;
                } else {
                    self.import(&sql).await?;
                    // Keys made before expiry reminders existed get theirs, once.
                    self.keygate().index_reminders(crate::now()).await?;
                }
                self.ready.set(true);
                // The purge's first round, and a retry of anything a crash left queued.
                let _ = self.state.storage().set_alarm(RETRY_FIRST_MS).await;
            }
        }
        if self.is_directory() && self.changes.unsettled.get() {
            self.settle_changes().await?;
        }
        self.after_commit().await;
        Ok(())
    }

    /// The directory's changes in two stores that a crash (or a failure to learn the
    /// outcome) left pending, settled before anything else is served: each organization's
    /// object says whether it committed its part (and, when it did not, that it never
    /// will); the directory's part stays with it or is undone without it. Until every one
    /// is settled, nothing is served (503): the directory's part of a change that may not
    /// have happened is never read.
    async fn settle_changes(&self) -> Result<(), model::Error> {
        let _turn = self.turn.lock().await;
        let store = self.store();
        for (op, org, undo) in store.pending().map_err(model::Error::Store)? {
            if self.changes.under_way(&op) {
                continue;
            }
            let applied = crate::remote::settle(&self.env, &org, &op, None)
                .await
                .map_err(model::Error::Store)?;
            if applied {
                store.settled(&op).map_err(model::Error::Store)?;
                continue;
            }
            let undo: WireBatch = serde_json::from_str(&undo).map_err(store_err)?;
            store
                .undo(undo.into_batch(), &op)
                .map_err(model::Error::Store)?;
            console_error!("keygate: a change the directory's last run left half-done was undone");
        }
        self.changes.unsettled.set(false);
        Ok(())
    }

    /// Once, in the directory: every record of an organization leaves `records` for
    /// `legacy`, marked with its organization (`model::store::split`), for that
    /// organization's object to take at its first start; `records` keeps the directory's.
    /// Anything still queued for KV is written first (a moved key's queued write would
    /// otherwise delete it from KV).
    async fn move_organizations(&self, sql: &SqlStorage) -> Result<(), model::Error> {
        let done = sql
            .exec("SELECT value FROM meta WHERE name = 'moved'", None)
            .map_err(store_err)?
            .raw()
            .next()
            .is_some();
        if done {
            return Ok(());
        }
        self.write_through().await.map_err(model::Error::Store)?;
        let mut rows: Vec<(String, Vec<u8>, Option<i64>)> = Vec::new();
        for row in sql
            .exec("SELECT key, value, expires FROM records", None)
            .map_err(store_err)?
            .raw()
        {
            let mut row = row.map_err(store_err)?.into_iter();
            if let (Some(SqlStorageValue::String(key)), value, expires) =
                (row.next(), row.next(), row.next())
                && let Some(value) = bytes(value)
            {
                let expires = match expires {
                    Some(SqlStorageValue::Integer(at)) => Some(at),
                    _ => None,
                };
                rows.push((key, value, expires));
            }
        }
        let split =
            model::store::split::split(rows.iter().map(|(k, v, _)| (k.as_str(), v.as_slice())));
        let moved: Vec<Moved> = rows
            .into_iter()
            .filter(|(key, _, _)| schema::home(key) == Home::Organization)
            .map(|(key, value, expires)| {
                let org = split.organization_of(&key).map(str::to_owned);
                (key, value, expires, org)
            })
            .collect();
        let orgs: Vec<String> = split.organizations.keys().cloned().collect();
        let count = moved.len();
        let sql_in = sql.clone();
        transaction(&JsValue::from(self.state.storage().as_raw()), move || {
            for (key, value, expires, org) in moved {
                let expires = expires.map_or(SqlStorageValue::Null, SqlStorageValue::Integer);
                let org = org.map_or(SqlStorageValue::Null, SqlStorageValue::from);
                sql_in
                    .exec(
                        "INSERT OR REPLACE INTO legacy (key, value, expires, org) VALUES (?, ?, ?, ?)",
                        vec![key.as_str().into(), SqlStorageValue::Blob(value), expires, org],
                    )
                    .map_err(err)?;
                sql_in
                    .exec("DELETE FROM records WHERE key = ?", vec![key.into()])
                    .map_err(err)?;
            }
            for org in orgs {
                sql_in
                    .exec("INSERT OR IGNORE INTO orgs (id) VALUES (?)", vec![org.into()])
                    .map_err(err)?;
            }
            sql_in
                .exec(
                    "INSERT OR REPLACE INTO meta (name, value) VALUES ('moved', ?)",
                    vec![count.to_string().into()],
                )
                .map_err(err)?;
            Ok(())
        })
        .map_err(model::Error::Store)?;
        if count > 0 {
            worker::console_log!("Keygate: {count} records moved to their organizations' objects");
        }
        Ok(())
    }

    /// Once, in an organization's object whose storage is new: its records from the
    /// directory (what the directory held of it before organizations had their own).
    async fn import(&self, sql: &SqlStorage) -> Result<(), model::Error> {
        let done = sql
            .exec("SELECT value FROM meta WHERE name = 'migrated'", None)
            .map_err(store_err)?
            .raw()
            .next()
            .is_some();
        if done {
            return Ok(());
        }
        let org = self.name.borrow().clone().unwrap_or_default();
        let mut answer = crate::remote::call(&self.env, OBJECT, "/__export", org, &[])
            .await
            .map_err(model::Error::Store)?;
        let rows: Vec<(String, String, Option<i64>)> = answer.json().await.map_err(store_err)?;
        let count = rows.len();
        let sql_in = sql.clone();
        transaction(&JsValue::from(self.state.storage().as_raw()), move || {
            for (key, value, expires) in rows {
                let expires = expires.map_or(SqlStorageValue::Null, SqlStorageValue::Integer);
                sql_in
                    .exec(
                        UPSERT_RECORD,
                        vec![
                            key.into(),
                            SqlStorageValue::Blob(value.into_bytes()),
                            expires,
                        ],
                    )
                    .map_err(err)?;
            }
            sql_in
                .exec(
                    "INSERT OR REPLACE INTO meta (name, value) VALUES ('migrated', ?)",
                    vec![count.to_string().into()],
                )
                .map_err(err)?;
            Ok(())
        })
        .map_err(model::Error::Store)
    }

    /// Copies every record of KV into empty storage, once: KV held the truth before this
    /// object existed. Idempotent (a failure midway is retried by the next request).
    async fn migrate(&self, sql: &SqlStorage) -> Result<(), model::Error> {
        let done = sql
            .exec("SELECT value FROM meta WHERE name = 'migrated'", None)
            .map_err(store_err)?
            .raw()
            .next()
            .is_some();
        if done {
            return Ok(());
        }
        let kv = self.env.kv(KV_BINDING).map_err(store_err)?;
        let mut cursor: Option<String> = None;
        let mut copied = 0usize;
        loop {
            let mut list = kv.list().limit(1000);
            if let Some(c) = cursor.take() {
                list = list.cursor(c);
            }
            let page = list.execute().await.map_err(store_err)?;
            for key in page.keys {
                let Some(value) = kv.get(&key.name).bytes().await.map_err(store_err)? else {
                    continue;
                };
                let expires = key
                    .expiration
                    .map(|at| SqlStorageValue::Integer(at as i64))
                    .unwrap_or(SqlStorageValue::Null);
                sql.exec(
                    UPSERT_RECORD,
                    vec![key.name.into(), SqlStorageValue::Blob(value), expires],
                )
                .map_err(store_err)?;
                copied += 1;
            }
            match page.cursor.filter(|_| !page.list_complete) {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        sql.exec(
            "INSERT OR REPLACE INTO meta (name, value) VALUES ('migrated', ?)",
            vec![copied.to_string().into()],
        )
        .map_err(store_err)?;
        if copied > 0 {
            worker::console_log!("Keygate: the control object took {copied} records from KV");
        }
        Ok(())
    }

    /// Copies each queued key's current value to KV until the outbox is empty; one flush at
    /// a time, so that an older value never overwrites a newer one.
    async fn write_through(&self) -> Result<(), StoreError> {
        let _one = self.flush.lock().await;
        let sql = self.state.storage().sql();
        let kv = self.env.kv(KV_BINDING).map_err(err)?;
        loop {
            let queued = outbox(&sql)?;
            if queued.is_empty() {
                self.failures.set(0);
                return Ok(());
            }
            for entry in queued {
                crate::store::faults::check(&entry.key)?;
                match &entry.value {
                    Some((value, expires)) => {
                        let put = kv.put_bytes(&entry.key, value).map_err(err)?;
                        match expires {
                            Some(at) => put.expiration(kv_expiration(*at)),
                            None => put,
                        }
                        .execute()
                        .await
                        .map_err(err)?
                    }
                    None => kv.delete(&entry.key).await.map_err(err)?,
                }
                sql.exec(
                    "DELETE FROM outbox WHERE key = ? AND seq = ?",
                    vec![entry.key.into(), SqlStorageValue::Integer(entry.seq)],
                )
                .map_err(err)?;
            }
        }
    }

    /// Deletes records whose expiry has passed (KV expires its copies itself).
    fn purge(&self) {
        let now = unix_now();
        let sql = self.state.storage().sql();
        if let Err(e) = sql.exec(
            "DELETE FROM records WHERE expires IS NOT NULL AND expires <= ?",
            vec![SqlStorageValue::Integer(now)],
        ) {
            console_error!("keygate: purge failed: {e}");
        }
        // The directory settles what it left pending at its next start, long before this.
        if let Err(e) = sql.exec(
            "DELETE FROM applied WHERE at <= ?",
            vec![SqlStorageValue::Integer(now - OUTCOMES_KEPT_S)],
        ) {
            console_error!("keygate: purge of outcomes failed: {e}");
        }
    }
}

/// How long an organization's object keeps the outcome of a change of the directory.
const OUTCOMES_KEPT_S: i64 = 86_400;

/// The object's tables: records (the store), the outbox of keys KV has yet to receive, and
/// facts about the storage itself.
const SCHEMA: [&str; 8] = [
    "CREATE TABLE IF NOT EXISTS records (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires INTEGER)",
    "CREATE TABLE IF NOT EXISTS outbox (key TEXT PRIMARY KEY, seq INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    // The directory's: the organizations' records of the single object's time, each
    // marked with its organization, until (and after) that organization's object took them.
    "CREATE TABLE IF NOT EXISTS legacy (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires INTEGER, org TEXT)",
    // The directory's: every organization it has written to (where test faults are passed).
    "CREATE TABLE IF NOT EXISTS orgs (id TEXT PRIMARY KEY)",
    // The directory's: the organization of each record it wrote to an organization's
    // object that it may have to locate again (a user, found by email).
    "CREATE TABLE IF NOT EXISTS located (key TEXT PRIMARY KEY, org TEXT NOT NULL)",
    // The directory's: its changes in two stores whose organization's part may not have
    // committed yet (`remote`), with what undoes the directory's part.
    "CREATE TABLE IF NOT EXISTS pending (op TEXT PRIMARY KEY, org TEXT NOT NULL, undo TEXT NOT NULL)",
    // An organization's: the directory's changes this object committed its part of
    // (`done` 1), or settled as never to commit (0).
    "CREATE TABLE IF NOT EXISTS applied (op TEXT PRIMARY KEY, done INTEGER NOT NULL, at INTEGER NOT NULL)",
];

/// In an organization's object, in a commit's transaction: records that the directory's
/// change `op` committed here, unless it was settled as never to.
fn apply(sql: &SqlStorage, op: &str) -> Result<(), StoreError> {
    if outcome(sql, op)? == Some(false) {
        return Err(StoreError::new(
            "the directory settled this change as not made",
        ));
    }
    sql.exec(
        "INSERT OR REPLACE INTO applied (op, done, at) VALUES (?, 1, ?)",
        vec![op.into(), SqlStorageValue::Integer(unix_now())],
    )
    .map_err(err)?;
    Ok(())
}

/// In an organization's object: whether the directory's change `op` committed here; when it
/// has not, it never will (the answer is recorded before it is given).
fn settle(sql: &SqlStorage, op: &str) -> Result<bool, StoreError> {
    if let Some(done) = outcome(sql, op)? {
        return Ok(done);
    }
    sql.exec(
        "INSERT INTO applied (op, done, at) VALUES (?, 0, ?)",
        vec![op.into(), SqlStorageValue::Integer(unix_now())],
    )
    .map_err(err)?;
    Ok(false)
}

fn outcome(sql: &SqlStorage, op: &str) -> Result<Option<bool>, StoreError> {
    let rows = sql
        .exec("SELECT done FROM applied WHERE op = ?", vec![op.into()])
        .map_err(err)?;
    match rows.raw().next() {
        Some(row) => Ok(Some(matches!(
            row.map_err(err)?.into_iter().next(),
            Some(SqlStorageValue::Integer(1))
        ))),
        None => Ok(None),
    }
}

/// In the directory, in a transaction: the change `op` is settled.
fn forget(sql: &SqlStorage, op: &str) -> Result<(), StoreError> {
    sql.exec("DELETE FROM pending WHERE op = ?", vec![op.into()])
        .map_err(err)?;
    Ok(())
}

/// The organizations the directory knows of.
fn known_orgs(sql: &SqlStorage) -> Vec<String> {
    let Ok(rows) = sql.exec("SELECT id FROM orgs", None) else {
        return Vec::new();
    };
    rows.raw()
        .filter_map(|row| match row.ok()?.into_iter().next() {
            Some(SqlStorageValue::String(id)) => Some(id),
            _ => None,
        })
        .collect()
}
const UPSERT_RECORD: &str = "INSERT INTO records (key, value, expires) VALUES (?, ?, ?) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires";
const QUEUE: &str = "INSERT INTO outbox (key, seq) VALUES (?, 1) \
     ON CONFLICT (key) DO UPDATE SET seq = seq + 1";
/// Above every character a key can continue its prefix with (U+10FFFF): `key < prefix ||
/// this` bounds a prefix's range in SQLite's byte order.
const PREFIX_END: char = '\u{10FFFF}';

/// One queued key: its value now (with its expiry) or its absence, and its queue number.
struct Queued {
    key: String,
    seq: i64,
    value: Option<(Vec<u8>, Option<i64>)>,
}

/// The outbox's next round, in KV's write order: records, then index entries, then deletes
/// (a reader may see a record without its index entry for a moment, never the reverse).
fn outbox(sql: &SqlStorage) -> Result<Vec<Queued>, StoreError> {
    let rows = sql
        .exec(
            "SELECT o.key, o.seq, r.value, r.expires FROM outbox o \
             LEFT JOIN records r ON r.key = o.key ORDER BY o.key LIMIT ?",
            vec![SqlStorageValue::Integer(FLUSH_ROWS as i64)],
        )
        .map_err(err)?;
    let mut queued = Vec::new();
    for row in rows.raw() {
        let mut row = row.map_err(err)?.into_iter();
        let (Some(key), Some(seq), value, expires) =
            (row.next(), row.next(), row.next(), row.next())
        else {
            return Err(StoreError::new("outbox row without its columns"));
        };
        let (SqlStorageValue::String(key), SqlStorageValue::Integer(seq)) = (key, seq) else {
            return Err(StoreError::new("outbox row of the wrong types"));
        };
        let value = bytes(value).map(|v| {
            let expires = match expires {
                Some(SqlStorageValue::Integer(at)) => Some(at),
                _ => None,
            };
            (v, expires)
        });
        queued.push(Queued { key, seq, value });
    }
    queued.sort_by_key(|q| (q.value.is_none(), q.key.contains(":ix:")));
    Ok(queued)
}

/// Workers KV takes no expiry sooner than a minute ahead; a record read after its own
/// expiry is never taken as live anyway (each carries its expiry, which the model checks).
fn kv_expiration(at: i64) -> u64 {
    at.max(unix_now() + 60).unsigned_abs()
}

fn unix_now() -> i64 {
    (js_sys::Date::now() / 1000.0) as i64
}

fn bytes(value: Option<SqlStorageValue>) -> Option<Vec<u8>> {
    match value? {
        SqlStorageValue::Blob(b) => Some(b),
        SqlStorageValue::String(s) => Some(s.into_bytes()),
        _ => None,
    }
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::new(e.to_string())
}

fn store_err(e: impl std::fmt::Display) -> model::Error {
    model::Error::Store(err(e))
}

/// The object's storage as a [`Store`]: the source of truth of every change at the edge.
#[derive(Clone)]
pub struct ObjectStore {
    sql: SqlStorage,
    storage: JsValue,
    turn: Arc<Mutex<()>>,
    /// The keys committed through this store that verification reads (isolates cache them).
    pub written: Rc<RefCell<Vec<String>>>,
    /// Whether a commit put events in the webhooks' outbox (the alarm delivers them).
    outboxed: Rc<Cell<bool>>,
    /// In an organization's object: how to ask the directory for a constant it has no copy
    /// of yet.
    directory: Option<Env>,
}

impl ObjectStore {
    /// The object's turn, owned (a lease keeps it across requests).
    pub fn turn_arc(&self) -> impl std::future::Future<Output = MutexGuardArc<()>> {
        self.turn.lock_arc()
    }

    /// The organization of a record the directory wrote to an organization's object, or
    /// held before organizations had their own objects, if it did.
    pub fn known_org(&self, key: &str) -> Result<Option<String>, StoreError> {
        let rows = self
            .sql
            .exec(
                "SELECT org FROM located WHERE key = ? \
                 UNION ALL SELECT org FROM legacy WHERE key = ? AND org IS NOT NULL LIMIT 1",
                vec![key.into(), key.into()],
            )
            .map_err(err)?;
        match rows.raw().next() {
            Some(row) => match row.map_err(err)?.into_iter().next() {
                Some(SqlStorageValue::String(org)) => Ok(Some(org)),
                _ => Ok(None),
            },
            None => Ok(None),
        }
    }

    /// The batch that puts back what `batch` would overwrite (values, expiries, absences).
    pub fn undo_of(&self, batch: &Batch) -> Result<Batch, StoreError> {
        let mut undo = Batch::default();
        for op in &batch.ops {
            let key = op.key();
            let rows = self
                .sql
                .exec(
                    "SELECT value, expires FROM records WHERE key = ?",
                    vec![key.into()],
                )
                .map_err(err)?;
            let row = match rows.raw().next() {
                Some(row) => Some(row.map_err(err)?),
                None => None,
            };
            match row {
                Some(row) => {
                    let mut row = row.into_iter();
                    let (value, expires) = (bytes(row.next()), row.next());
                    let Some(value) = value else {
                        undo.delete(key.to_owned());
                        continue;
                    };
                    if let Some(SqlStorageValue::Integer(at)) = expires {
                        undo.expiries.push((key.to_owned(), at));
                    }
                    undo.ops.push(Op::Put(key.to_owned(), value));
                }
                None => {
                    undo.delete(key.to_owned());
                }
            }
        }
        Ok(undo)
    }

    /// In the directory: commits its part of a change in two stores with the row that keeps
    /// it pending until the organization's part is known to have committed or not.
    pub fn commit_pending(
        &self,
        batch: Batch,
        op: &str,
        org: &str,
        undo: String,
    ) -> Result<(), StoreError> {
        let (sql, op, org) = (self.sql.clone(), op.to_owned(), org.to_owned());
        self.commit_with(batch, move || {
            sql.exec(
                "INSERT INTO pending (op, org, undo) VALUES (?, ?, ?)",
                vec![op.into(), org.into(), undo.into()],
            )
            .map_err(err)?;
            Ok(())
        })
    }

    /// In the directory: the change `op` is settled, its part staying.
    pub fn settled(&self, op: &str) -> Result<(), StoreError> {
        forget(&self.sql, op)
    }

    /// In the directory: a settled change whose organization's part did not commit: its
    /// own part undone, in one transaction with its settling.
    pub fn undo(&self, batch: Batch, op: &str) -> Result<(), StoreError> {
        let (sql, op) = (self.sql.clone(), op.to_owned());
        self.commit_with(batch, move || forget(&sql, &op))
    }

    /// In the directory: its changes pending (op, organization, the undo of its part).
    fn pending(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        let rows = self
            .sql
            .exec("SELECT op, org, undo FROM pending", None)
            .map_err(err)?;
        let mut pending = Vec::new();
        for row in rows.raw() {
            let mut row = row.map_err(err)?.into_iter();
            if let (
                Some(SqlStorageValue::String(op)),
                Some(SqlStorageValue::String(org)),
                Some(SqlStorageValue::String(undo)),
            ) = (row.next(), row.next(), row.next())
            {
                pending.push((op, org, undo));
            }
        }
        Ok(pending)
    }

    /// Notes that the directory writes `batch` to `org`'s object: the organization, and
    /// where each record it will have to locate again is (a user it made, found by email at
    /// sign-in). A note of a write that then fails points to an object without the record,
    /// which reads as absent: a record's organization never changes.
    pub fn note_org(&self, org: &str, batch: &Batch) -> Result<(), StoreError> {
        self.sql
            .exec(
                "INSERT OR IGNORE INTO orgs (id) VALUES (?)",
                vec![org.into()],
            )
            .map_err(err)?;
        for op in &batch.ops {
            if let Op::Put(key, _) = op
                && read_by_verification(key)
                && model::store::split::named_organization(key).is_none()
            {
                self.sql
                    .exec(
                        "INSERT OR IGNORE INTO located (key, org) VALUES (?, ?)",
                        vec![key.as_str().into(), org.into()],
                    )
                    .map_err(err)?;
            }
        }
        Ok(())
    }

    /// A constant of the instance from the directory, kept here once it has one.
    async fn constant(&self, env: &Env, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut answer =
            crate::remote::call(env, OBJECT, "/__constant", key.to_owned(), &[]).await?;
        if answer.status_code() == 204 {
            return Ok(None);
        }
        let value = answer.bytes().await.map_err(err)?;
        self.sql
            .exec(
                UPSERT_RECORD,
                vec![key.into(), value.clone().into(), SqlStorageValue::Null],
            )
            .map_err(err)?;
        Ok(Some(value))
    }
}

impl Store for ObjectStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        faults::check(key)?;
        let rows = self
            .sql
            .exec(
                "SELECT value FROM records WHERE key = ? AND (expires IS NULL OR expires > ?)",
                vec![key.into(), SqlStorageValue::Integer(unix_now())],
            )
            .map_err(err)?;
        let value = match rows.raw().next() {
            Some(row) => bytes(row.map_err(err)?.into_iter().next()),
            None => None,
        };
        match (&value, &self.directory) {
            (None, Some(env)) if schema::home(key) == Home::Constant => {
                self.constant(env, key).await
            }
            _ => Ok(value),
        }
    }

    async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Listing, StoreError> {
        faults::check(prefix)?;
        let limit = limit.clamp(1, 1000);
        let rows = self
            .sql
            .exec(
                "SELECT key FROM records WHERE key >= ? AND key < ? AND key > ? \
                 AND (expires IS NULL OR expires > ?) ORDER BY key LIMIT ?",
                vec![
                    prefix.into(),
                    format!("{prefix}{PREFIX_END}").into(),
                    cursor.unwrap_or("").into(),
                    SqlStorageValue::Integer(unix_now()),
                    SqlStorageValue::Integer(limit as i64 + 1),
                ],
            )
            .map_err(err)?;
        let mut keys = Vec::new();
        for row in rows.raw() {
            if let Some(SqlStorageValue::String(key)) = row.map_err(err)?.into_iter().next() {
                keys.push(key);
            }
        }
        Ok(Listing::page(keys, limit))
    }

    async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        self.commit_with(batch, || Ok(()))
    }

    fn turn(&self) -> impl std::future::Future<Output = impl Sized> {
        self.turn.lock()
    }
}

impl ObjectStore {
    /// Commits `batch` and whatever `also` writes in one transaction.
    pub fn commit_with(
        &self,
        batch: Batch,
        also: impl FnOnce() -> Result<(), StoreError> + 'static,
    ) -> Result<(), StoreError> {
        let expiries: HashMap<String, i64> = batch.expiries.iter().cloned().collect();
        // Only what verification reads goes to KV (and is named for isolates to forget):
        // everything else is read in this object alone.
        let replicated: Vec<String> = batch
            .ops
            .iter()
            .map(Op::key)
            .filter(|k| read_by_verification(k))
            .map(str::to_owned)
            .collect();
        let outbox = model::store::schema::outbox();
        let outboxed = batch.ops.iter().any(|op| op.key().starts_with(&outbox));
        let sql = self.sql.clone();
        let ops = batch.ops;
        transaction(&self.storage, move || {
            for op in &ops {
                faults::check(op.key())?;
                match op {
                    Op::Put(key, value) => {
                        let expires = expiries
                            .get(key)
                            .map(|at| SqlStorageValue::Integer(*at))
                            .unwrap_or(SqlStorageValue::Null);
                        sql.exec(
                            UPSERT_RECORD,
                            vec![key.as_str().into(), value.clone().into(), expires],
                        )
                        .map_err(err)?;
                    }
                    Op::Delete(key) => {
                        sql.exec(
                            "DELETE FROM records WHERE key = ?",
                            vec![key.as_str().into()],
                        )
                        .map_err(err)?;
                    }
                }
                if read_by_verification(op.key()) {
                    sql.exec(QUEUE, vec![op.key().into()]).map_err(err)?;
                }
            }
            also()
        })?;
        self.written.borrow_mut().extend(replicated);
        if outboxed {
            self.outboxed.set(true);
        }
        Ok(())
    }
}

/// Runs `body` in the storage's `transactionSync`: its writes commit together, or none does
/// when it fails (workers-rs has no wrapper for it yet).
fn transaction(
    storage: &JsValue,
    body: impl FnOnce() -> Result<(), StoreError> + 'static,
) -> Result<(), StoreError> {
    let function: js_sys::Function = js_sys::Reflect::get(storage, &"transactionSync".into())
        .map_err(|e| err(format!("{e:?}")))?
        .dyn_into()
        .map_err(|_| err("storage has no transactionSync"))?;
    let failure: Rc<RefCell<Option<StoreError>>> = Rc::default();
    let seen = Rc::clone(&failure);
    let callback = Closure::once(move || -> Result<(), JsValue> {
        body().map_err(|e| {
            let message = JsValue::from_str(&e.0);
            *seen.borrow_mut() = Some(e);
            message
        })
    });
    match function.call1(storage, callback.as_ref()) {
        Ok(_) => Ok(()),
        Err(thrown) => Err(failure
            .borrow_mut()
            .take()
            .unwrap_or_else(|| err(format!("transaction failed: {thrown:?}")))),
    }
}

/// What an isolate asks of the control object.
pub mod client {
    use model::Error;
    use model::service::UsageReport;
    use model::store::StoreError;
    use worker::{Env, Request, RequestInit, Response, Stub};

    use super::{BINDING, CONTEXT_HEADER, OBJECT, WRITTEN};
    use crate::remote::OBJECT_HEADER;

    fn stub(env: &Env, name: &str) -> Result<Stub, Error> {
        env.durable_object(BINDING)
            .and_then(|ns| ns.get_by_name(name))
            .map_err(unavailable)
    }

    fn unavailable(e: impl std::fmt::Display) -> Error {
        Error::Store(StoreError::new(format!("control object: {e}")))
    }

    /// Forwards an API request to the object named `name` (the directory, or an
    /// organization's), with the organization it is about; this isolate forgets what the
    /// answer says was written, so its next verification reads the new records.
    pub async fn forward(
        env: &Env,
        req: Request,
        name: &str,
        context: Option<&str>,
    ) -> Result<Response, Error> {
        let headers = worker::Headers::new();
        for (header, value) in req.headers().entries() {
            headers.append(&header, &value).map_err(unavailable)?;
        }
        headers.set(OBJECT_HEADER, name).map_err(unavailable)?;
        if let Some(org) = context {
            headers.set(CONTEXT_HEADER, org).map_err(unavailable)?;
        }
        let mut init = RequestInit::new();
        init.with_method(req.method()).with_headers(headers);
        if let Some(body) = req.inner().body() {
            init.with_body(Some(body.into()));
        }
        let url = req.url().map_err(unavailable)?;
        let forwarded = Request::new_with_init(url.as_str(), &init).map_err(unavailable)?;
        let answer = stub(env, name)?
            .fetch_with_request(forwarded)
            .await
            .map_err(unavailable)?;
        let headers = worker::Headers::new();
        for (name, value) in answer.headers().entries() {
            if name == WRITTEN {
                value.split(',').for_each(crate::store::forget);
            } else {
                headers.append(&name, &value).map_err(unavailable)?;
            }
        }
        Ok(answer.with_headers(headers))
    }

    /// Makes sure the object is ready (migrated, bootstrapped), for `origin`'s set-up link.
    pub async fn ready(env: &Env, origin: &str) -> Result<(), Error> {
        call(env, OBJECT, &format!("{origin}/__ready"), None).await
    }

    /// Hands this isolate's verification counts to their organizations' objects; returns
    /// what an object did not take.
    pub async fn usage(env: &Env, origin: &str, report: UsageReport) -> Option<UsageReport> {
        let mut left = UsageReport::default();
        for (org, part) in report.by_organization() {
            let sent = match serde_json::to_string(&part) {
                Ok(body) => call(env, &org, &format!("{origin}/__usage"), Some(body)).await,
                Err(e) => Err(Error::Internal(e.to_string())),
            };
            if let Err(e) = sent {
                worker::console_error!("keygate: usage not handed over: {e}");
                left.extend(part);
            }
        }
        (!left.is_empty()).then_some(left)
    }

    /// Passes the test build's fault settings on to the directory (which passes them on to
    /// every organization's object).
    #[cfg(feature = "fault-injection")]
    pub async fn faults(env: &Env, origin: &str, body: String) -> Result<(), Error> {
        call(env, OBJECT, &format!("{origin}/__faults"), Some(body)).await
    }

    async fn call(env: &Env, name: &str, url: &str, body: Option<String>) -> Result<(), Error> {
        let headers = worker::Headers::new();
        headers.set(OBJECT_HEADER, name).map_err(unavailable)?;
        let mut init = RequestInit::new();
        init.with_method(worker::Method::Post).with_headers(headers);
        if let Some(body) = body {
            init.with_body(Some(body.into()));
        }
        let req = Request::new_with_init(url, &init).map_err(unavailable)?;
        let answer = stub(env, name)?
            .fetch_with_request(req)
            .await
            .map_err(unavailable)?;
        if answer.status_code() < 300 {
            Ok(())
        } else {
            Err(unavailable(format!("answered {}", answer.status_code())))
        }
    }
}

/// Test-only: the object's storage fails on chosen keys, or the object itself fails.
#[cfg(feature = "fault-injection")]
pub mod faults {
    use std::cell::{Cell, RefCell};

    use model::store::StoreError;
    use worker::{Request, Response};

    thread_local! {
        static FAIL_PREFIX: RefCell<Option<String>> = const { RefCell::new(None) };
        static DOWN: Cell<bool> = const { Cell::new(false) };
        /// Storage calls to let through before one fails (then none does).
        static CALL_FAILS_AFTER: Cell<Option<u32>> = const { Cell::new(None) };
        static LAST: RefCell<String> = const { RefCell::new(String::new()) };
        /// Where the directory dies once in its next change in two stores.
        static CRASH: RefCell<Option<String>> = const { RefCell::new(None) };
    }

    /// The directory dies here, once, if the test set this point: `state.abort()` (its
    /// memory and requests are gone, its storage stays), run from a timer so that no Rust
    /// frame is on the stack when it throws (thrown through wasm, it would leave the
    /// isolate's module broken, which no real crash of an object does). The caller stops
    /// there, releasing nothing, as a dead object would.
    pub fn crash(point: &str, state: &wasm_bindgen::JsValue) -> Result<(), StoreError> {
        use wasm_bindgen::JsCast;
        let now = CRASH.with(|c| {
            let mut c = c.borrow_mut();
            let hit = c.as_deref() == Some(point);
            if hit {
                *c = None;
            }
            hit
        });
        if !now {
            return Ok(());
        }
        let failed = |what: &str| StoreError::new(format!("injected crash not scheduled: {what}"));
        let abort: js_sys::Function = js_sys::Reflect::get(state, &"abort".into())
            .map_err(|_| failed("abort"))?
            .dyn_into()
            .map_err(|_| failed("abort"))?;
        let aborting = abort.bind1(state, &format!("injected crash {point}").into());
        let set_timeout: js_sys::Function =
            js_sys::Reflect::get(&js_sys::global(), &"setTimeout".into())
                .map_err(|_| failed("setTimeout"))?
                .dyn_into()
                .map_err(|_| failed("setTimeout"))?;
        set_timeout
            .call2(&wasm_bindgen::JsValue::NULL, &aborting, &0.into())
            .map_err(|_| failed("setTimeout call"))?;
        Err(StoreError::new(format!("injected crash {point}")))
    }

    /// `POST /__faults` as the isolate forwards it: `fail_object_prefix`, `fail_object_call`,
    /// `object_down`, and the KV settings (this object's write-through uses them too).
    pub async fn route(req: &mut Request, path: &str) -> Option<worker::Result<Response>> {
        if path != "/__faults" {
            return None;
        }
        Some(set(req).await)
    }

    /// The settings last set, as sent (the directory passes them on).
    pub fn last() -> String {
        LAST.with(|l| l.borrow().clone())
    }

    async fn set(req: &mut Request) -> worker::Result<Response> {
        let text = req.text().await?;
        let faults: crate::Faults = serde_json::from_str(&text)?;
        LAST.with(|l| *l.borrow_mut() = text);
        FAIL_PREFIX.with(|p| *p.borrow_mut() = faults.fail_object_prefix.clone());
        DOWN.set(faults.object_down);
        CALL_FAILS_AFTER.set(faults.fail_object_call);
        CRASH.with(|c| *c.borrow_mut() = faults.crash_directory.clone());
        crate::store::faults::set(faults.fail_prefix);
        crate::meter::set_down(faults.meter_down);
        Response::empty().map(|r| r.with_status(204))
    }

    pub fn object_check() -> worker::Result<()> {
        if DOWN.get() {
            return Err(worker::Error::RustError("injected object failure".into()));
        }
        Ok(())
    }

    /// The injected failure of a storage call on `key` (a read, a listing, or one write of a
    /// transaction), if any: by the key's prefix, or the n-th call from when it was set.
    pub fn check(key: &str) -> Result<(), StoreError> {
        if let Some(left) = CALL_FAILS_AFTER.get() {
            if left == 0 {
                CALL_FAILS_AFTER.set(None);
                return Err(StoreError::new("injected object storage failure (call)"));
            }
            CALL_FAILS_AFTER.set(Some(left - 1));
        }
        FAIL_PREFIX.with(|p| crate::store::faults::fail_under(p, key, "object storage"))
    }
}

#[cfg(not(feature = "fault-injection"))]
pub mod faults {
    use worker::{Request, Response};

    #[inline(always)]
    pub async fn route(_: &mut Request, _: &str) -> Option<worker::Result<Response>> {
        None
    }
    #[inline(always)]
    pub fn object_check() -> worker::Result<()> {
        Ok(())
    }
    pub fn last() -> String {
        String::new()
    }
    #[inline(always)]
    pub fn check(_: &str) -> Result<(), model::store::StoreError> {
        Ok(())
    }
    #[inline(always)]
    pub fn crash(_: &str, _: &wasm_bindgen::JsValue) -> Result<(), model::store::StoreError> {
        Ok(())
    }
}
