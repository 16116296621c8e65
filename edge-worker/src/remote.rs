//! How the directory object reaches the organizations' objects: an organization's store as
//! the instance's endpoints see it ([`RemoteOrgs`], `model::store::partition::Organizations`),
//! each read and commit a call to that organization's object.
//!
//! **Leases.** While an instance endpoint holds the directory's turn ([`Local::turn`]),
//! every call it makes to an organization's object carries the turn's lease: the object
//! takes its own turn at the first such call and keeps it until the commit, a release, or
//! [`LEASE_MS`] (a directory object that died). So nothing of that organization changes
//! between the endpoint's reads and its commit, as in one store. Only one lease is ever
//! held at a time (the directory's turn is one), and an organization's object never waits
//! for the directory, so leases cannot deadlock. Reads outside the turn take no lease.
//!
//! **One change in two stores.** A batch writes to the directory and one organization at
//! most (`model::store::partition`). The directory's part commits first, in the directory's
//! storage, in one transaction with a `pending` row: the change's id, its organization, and
//! the batch that undoes the directory's part. Then the organization's part commits in its
//! object's storage, in one transaction with the change's id in its `applied` table. Then
//! the pending row goes. When the organization's commit fails or its answer is lost, the
//! directory asks the object ([`settle`]): it answers whether it applied the change and,
//! when it had not, records that it never will (a late commit of it is refused). Applied:
//! the change stands. Not: the directory's part is undone in one transaction with the
//! pending row, before the turn ends, so no one saw it. A directory that dies between the
//! two (or cannot reach the object to ask) leaves the row; a directory object starts by
//! settling every row left, and serves nothing until it has ([`Changes::unsettled`]).

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::rc::Rc;

use model::store::partition::Organizations;
use model::store::{Batch, Listing, Op, Store, StoreError};
use serde::{Deserialize, Serialize};
use worker::{Env, Request, RequestInit};

use crate::control::{BINDING, ObjectStore, WRITTEN};

/// The header naming the object a request is for (an object does not know its own name).
pub const OBJECT_HEADER: &str = "x-keygate-object";
/// The header carrying the directory's lease on an organization's object.
pub const LEASE_HEADER: &str = "x-keygate-lease";
/// The header naming the directory's change an organization's commit is part of.
pub const OP_HEADER: &str = "x-keygate-op";
/// How long an organization's object keeps a lease nobody released.
pub const LEASE_MS: u64 = 10_000;

/// A batch as it travels between objects (values are JSON text; a batch names each key at
/// most once, so the order of its writes does not matter).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct WireBatch {
    pub ops: Vec<(String, Option<String>)>,
    pub expiries: Vec<(String, i64)>,
}

impl WireBatch {
    pub fn from_batch(batch: Batch) -> Result<Self, StoreError> {
        let mut ops = Vec::with_capacity(batch.ops.len());
        for op in batch.ops {
            ops.push(match op {
                Op::Put(key, value) => {
                    let text = String::from_utf8(value)
                        .map_err(|_| StoreError::new(format!("`{key}` is not text")))?;
                    (key, Some(text))
                }
                Op::Delete(key) => (key, None),
            });
        }
        Ok(Self {
            ops,
            expiries: batch.expiries,
        })
    }

    pub fn into_batch(self) -> Batch {
        Batch {
            ops: self
                .ops
                .into_iter()
                .map(|(key, value)| match value {
                    Some(value) => Op::Put(key, value.into_bytes()),
                    None => Op::Delete(key),
                })
                .collect(),
            expiries: self.expiries,
        }
    }
}

/// A listing asked of an organization's object.
#[derive(Debug, Serialize, Deserialize)]
pub struct ListQuery {
    pub prefix: String,
    pub cursor: Option<String>,
    pub limit: usize,
}

/// The directory's turn and the leases it holds, shared by one request's stores.
#[derive(Default)]
pub struct Leases {
    /// The lease of the turn being held, if one is.
    current: RefCell<Option<String>>,
    /// The organizations whose objects hold it.
    held: RefCell<BTreeSet<String>>,
    /// Keys the organizations' objects wrote that isolates cache (the answer names them).
    pub written: RefCell<Vec<String>>,
    /// Calls made, for the test build's count.
    calls: Cell<u32>,
}

/// The directory's changes in two stores, as its object knows them.
pub struct Changes {
    /// Whether a pending row may be left unsettled (true when the object starts).
    pub unsettled: Cell<bool>,
    /// The changes under way in this object (their rows are theirs to settle).
    under_way: RefCell<BTreeSet<String>>,
}

impl Changes {
    pub fn new() -> Self {
        Self {
            unsettled: Cell::new(true),
            under_way: RefCell::default(),
        }
    }

    pub fn under_way(&self, op: &str) -> bool {
        self.under_way.borrow().contains(op)
    }
}

/// A change under way while it lives.
struct UnderWay<'a>(&'a Changes, String);

impl Drop for UnderWay<'_> {
    fn drop(&mut self) {
        self.0.under_way.borrow_mut().remove(&self.1);
    }
}

/// Asks `org`'s object whether it committed its part of the directory's change `op`; when
/// it had not, it never will.
pub async fn settle(
    env: &Env,
    org: &str,
    op: &str,
    lease: Option<&str>,
) -> Result<bool, StoreError> {
    let mut answer = call(env, org, "/__settle", op.to_owned(), &headers(lease, None)).await?;
    match answer.text().await.map_err(unavailable)?.as_str() {
        "applied" => Ok(true),
        "refused" => Ok(false),
        other => Err(unavailable(format!("/__settle answered {other:?}"))),
    }
}

/// A call's lease and change headers.
fn headers<'a>(lease: Option<&'a str>, op: Option<&'a str>) -> Vec<(&'static str, &'a str)> {
    let mut all = Vec::new();
    if let Some(lease) = lease {
        all.push((LEASE_HEADER, lease));
    }
    if let Some(op) = op {
        all.push((OP_HEADER, op));
    }
    all
}

/// A stub's failure as the store's.
fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::new(format!("organization object: {e}"))
}

/// Calls `path` on the object named `name`, with `body` and `extra` headers (a lease, a
/// change).
pub async fn call(
    env: &Env,
    name: &str,
    path: &str,
    body: String,
    extra: &[(&str, &str)],
) -> Result<worker::Response, StoreError> {
    let headers = worker::Headers::new();
    headers.set(OBJECT_HEADER, name).map_err(unavailable)?;
    for (header, value) in extra {
        headers.set(header, value).map_err(unavailable)?;
    }
    let mut init = RequestInit::new();
    init.with_method(worker::Method::Post)
        .with_headers(headers)
        .with_body(Some(body.into()));
    let req =
        Request::new_with_init(&format!("https://object{path}"), &init).map_err(unavailable)?;
    let stub = env
        .durable_object(BINDING)
        .and_then(|ns| ns.get_by_name(name))
        .map_err(unavailable)?;
    let answer = stub.fetch_with_request(req).await.map_err(unavailable)?;
    if answer.status_code() >= 300 {
        return Err(unavailable(format!(
            "{path} answered {}",
            answer.status_code()
        )));
    }
    Ok(answer)
}

/// The organizations' objects, as an instance endpoint's request reaches them.
#[derive(Clone)]
pub struct RemoteOrgs {
    pub env: Env,
    pub local: ObjectStore,
    pub leases: Rc<Leases>,
    pub changes: Rc<Changes>,
    /// The directory object's state (the test build's crashes abort it).
    pub state: wasm_bindgen::JsValue,
}

impl RemoteOrgs {
    fn lease(&self, org: &str) -> Option<String> {
        let lease = self.leases.current.borrow().clone()?;
        self.leases.held.borrow_mut().insert(org.to_owned());
        Some(lease)
    }
}

/// One organization's store, reached through its object.
pub struct RemoteOrg {
    orgs: RemoteOrgs,
    org: String,
}

impl RemoteOrg {
    async fn call(
        &self,
        path: &str,
        body: String,
        op: Option<&str>,
    ) -> Result<worker::Response, StoreError> {
        self.orgs
            .leases
            .calls
            .set(self.orgs.leases.calls.get().saturating_add(1));
        let lease = self.orgs.lease(&self.org);
        let extra = headers(lease.as_deref(), op);
        call(&self.orgs.env, &self.org, path, body, &extra).await
    }

    /// Commits this organization's part of a batch (of the directory's change `op`).
    async fn commit_as(&self, batch: Batch, op: Option<&str>) -> Result<(), StoreError> {
        let body = serde_json::to_string(&WireBatch::from_batch(batch)?).map_err(unavailable)?;
        let answer = self.call("/__store/commit", body, op).await?;
        // The commit ended the lease.
        self.orgs.leases.held.borrow_mut().remove(&self.org);
        if let Ok(Some(written)) = answer.headers().get(WRITTEN) {
            let mut all = self.orgs.leases.written.borrow_mut();
            all.extend(
                written
                    .split(',')
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned),
            );
        }
        Ok(())
    }

    /// Whether this organization committed its part of the change `op` (asked under the
    /// lease, which the answer ends).
    async fn settle(&self, op: &str) -> Result<bool, StoreError> {
        let lease = self.orgs.lease(&self.org);
        let applied = settle(&self.orgs.env, &self.org, op, lease.as_deref()).await;
        self.orgs.leases.held.borrow_mut().remove(&self.org);
        applied
    }
}

impl Store for RemoteOrg {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut answer = self.call("/__store/get", key.to_owned(), None).await?;
        if answer.status_code() == 204 {
            return Ok(None);
        }
        answer.bytes().await.map(Some).map_err(unavailable)
    }

    async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Listing, StoreError> {
        let query = ListQuery {
            prefix: prefix.to_owned(),
            cursor: cursor.map(str::to_owned),
            limit,
        };
        let body = serde_json::to_string(&query).map_err(unavailable)?;
        let mut answer = self.call("/__store/list", body, None).await?;
        let (keys, cursor): (Vec<String>, Option<String>) =
            answer.json().await.map_err(unavailable)?;
        Ok(Listing { keys, cursor })
    }

    async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        self.commit_as(batch, None).await
    }
}

impl Organizations for RemoteOrgs {
    type Store = RemoteOrg;

    fn store(&self, org: &str) -> RemoteOrg {
        RemoteOrg {
            orgs: self.clone(),
            org: org.to_owned(),
        }
    }

    async fn locate(&self, key: &str) -> Result<Option<String>, StoreError> {
        // A record the directory wrote (a user it made), or one of the single object's time,
        // moved aside when organizations got their own objects (sessions and invitations of
        // tokens made before they named theirs).
        if let Some(org) = self.local.known_org(key)? {
            return Ok(Some(org));
        }
        // The records verification reads are in KV, each naming its organization (which
        // never changes): a key an organization's object made, reported as leaked. One made
        // at another location in the last minute may not be there yet.
        if !model::store::cache::read_by_verification(key) {
            return Ok(None);
        }
        let kv = self.env.kv(crate::store::BINDING).map_err(unavailable)?;
        let Some(value) = kv.get(key).bytes().await.map_err(unavailable)? else {
            return Ok(None);
        };
        #[derive(Deserialize)]
        struct Named {
            org: String,
        }
        Ok(serde_json::from_slice::<Named>(&value).ok().map(|n| n.org))
    }

    async fn commit(
        &self,
        directory: Batch,
        organization: Option<(String, Batch)>,
        notes: Vec<(String, Batch)>,
    ) -> Result<(), StoreError> {
        self.change(directory, organization).await?;
        // The change is made: entries of other organizations' logs about it follow. One
        // that fails is lost, not the change (answering 503 would have it made again).
        for (org, note) in notes {
            self.local.note_org(&org, &note)?;
            if let Err(e) = self.store(&org).commit_as(note, None).await {
                worker::console_error!("keygate: a log entry for {org} was not written: {e}");
            }
        }
        Ok(())
    }
}

impl RemoteOrgs {
    /// The test build's crash of the directory object at `point`: the change stops there
    /// and its leases are left to run out, as a dead object leaves them.
    fn crash_point(&self, point: &str) -> Result<(), StoreError> {
        crate::control::faults::crash(point, &self.state).inspect_err(|_| {
            self.leases.current.borrow_mut().take();
            self.leases.held.borrow_mut().clear();
        })
    }

    /// The directory's part and the organization's, both or neither.
    async fn change(
        &self,
        directory: Batch,
        organization: Option<(String, Batch)>,
    ) -> Result<(), StoreError> {
        let Some((org, batch)) = organization else {
            return self.local.commit(directory).await;
        };
        self.local.note_org(&org, &batch)?;
        let remote = self.store(&org);
        if directory.ops.is_empty() {
            return remote.commit_as(batch, None).await;
        }
        let undo = self.local.undo_of(&directory)?;
        let undo = serde_json::to_string(&WireBatch::from_batch(undo)?).map_err(unavailable)?;
        let op = model::key::random_base62(22)
            .map_err(|_| StoreError::new("no randomness for a change's id"))?;
        self.changes.under_way.borrow_mut().insert(op.clone());
        let _under_way = UnderWay(&self.changes, op.clone());
        self.local
            .commit_pending(directory, &op, &org, undo.clone())?;
        self.crash_point("before_organization")?;
        let committed = remote.commit_as(batch, Some(&op)).await;
        self.crash_point("after_organization")?;
        let applied = match &committed {
            Ok(()) => true,
            Err(_) => match remote.settle(&op).await {
                Ok(applied) => applied,
                Err(e) => {
                    // The row stays: the next request settles it before anything is served.
                    self.changes.unsettled.set(true);
                    worker::console_error!("keygate: a change's outcome is not known yet: {e}");
                    return committed;
                }
            },
        };
        let settled = if applied {
            self.local.settled(&op)
        } else {
            let undo: WireBatch = serde_json::from_str(&undo).map_err(unavailable)?;
            self.local.undo(undo.into_batch(), &op)
        };
        if let Err(e) = settled {
            self.changes.unsettled.set(true);
            worker::console_error!("keygate: a change was not settled yet: {e}");
        }
        if applied { Ok(()) } else { committed }
    }
}

/// The directory object's own storage, whose turn is the lease the instance endpoints'
/// calls to organizations' objects carry.
pub struct Local {
    pub store: ObjectStore,
    pub leases: Rc<Leases>,
    pub env: Env,
}

/// The directory's turn: on its end, the leases it took are released.
pub struct Turn<G> {
    _guard: G,
    leases: Rc<Leases>,
    env: Env,
}

impl<G> Drop for Turn<G> {
    fn drop(&mut self) {
        let lease = self.leases.current.borrow_mut().take();
        let held = std::mem::take(&mut *self.leases.held.borrow_mut());
        if let Some(lease) = lease
            && !held.is_empty()
        {
            let env = self.env.clone();
            worker::wasm_bindgen_futures::spawn_local(async move {
                for org in held {
                    let extra = headers(Some(&lease), None);
                    if let Err(e) = call(&env, &org, "/__release", String::new(), &extra).await {
                        worker::console_error!("keygate: lease not released (it expires): {e}");
                    }
                }
            });
        }
    }
}

impl Store for Local {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.get(key).await
    }

    async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Listing, StoreError> {
        self.store.list(prefix, cursor, limit).await
    }

    async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        self.store.commit(batch).await
    }

    #[allow(clippy::manual_async_fn)]
    fn turn(&self) -> impl std::future::Future<Output = impl Sized> {
        async move {
            let guard = self.store.turn_arc().await;
            let lease = model::key::random_base62(24)
                .unwrap_or_else(|_| format!("{}", js_sys::Date::now() as u64));
            *self.leases.current.borrow_mut() = Some(lease);
            Turn {
                _guard: guard,
                leases: Rc::clone(&self.leases),
                env: self.env.clone(),
            }
        }
    }
}
