//! The in-process host keeps what the edge keeps: one store per organization and a
//! directory, and runs each request where `model::http::runs` says — an organization's
//! endpoints in that organization's store alone (which holds no directory key, so an
//! endpoint that reached for one would fail its case), the instance's over
//! `model::store::partition::Partitioned`, the read path over every organization's records
//! (what KV holds at the edge). Every part is a [`Scoped`] store, so each call is also held
//! to its endpoint's declared scope.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::{Result, ensure};
use model::domain::KeyRecord;
use model::http::{self, Runs};
use model::meter::{CreditChange, Metered};
use model::service::{Keygate, LocalMeters, Metering, UsageBuffer};
use model::store::partition::{Organizations, Partitioned};
use model::store::schema::{self, Home};
use model::store::split::{named_organization, split};
use model::store::{Batch, Listing, MemoryStore, Store, StoreError};

use crate::scoped::{self, Scoped};

/// The instance: its directory and its organizations' stores.
#[derive(Clone)]
pub struct Instance {
    directory: Scoped,
    orgs: Orgs,
    /// The meters of usage policies, one process's (`model::service::LocalMeters`), their
    /// credits kept in each key's organization's store.
    meters: Arc<Meters>,
    /// Verification counts of every request, handed to each organization's store after it.
    usage: Arc<UsageBuffer>,
    /// Each organization's writer of counts (one per store, as each edge object has its own).
    writers: Arc<Mutex<BTreeMap<String, Arc<UsageBuffer>>>>,
}

type Orgs = Arc<Mutex<BTreeMap<String, Scoped>>>;

impl Default for Instance {
    fn default() -> Self {
        let orgs = Orgs::default();
        Self {
            directory: Scoped::default(),
            meters: Arc::new(Meters {
                orgs: Arc::clone(&orgs),
                local: LocalMeters::new(time::OffsetDateTime::now_utc()),
            }),
            orgs,
            usage: Arc::default(),
            writers: Arc::default(),
        }
    }
}

/// The in-process host's meters: the server's ([`LocalMeters`]) over the store of each key's
/// organization (its own store, not a request's: a meter's writes are not the endpoint's).
pub struct Meters {
    orgs: Orgs,
    local: LocalMeters,
}

impl Meters {
    fn store(&self, key: &KeyRecord) -> Result<MemoryStore, model::Error> {
        let orgs = self.orgs.lock().map_err(poisoned)?;
        match orgs.get(&key.org) {
            Some(store) => Ok(store.raw().clone()),
            None => Err(StoreError::new(format!("no store of {}", key.org)).into()),
        }
    }
}

impl model::service::Meters for Meters {
    fn spend<'a>(
        &'a self,
        key: &'a KeyRecord,
        cost: u32,
        now: time::OffsetDateTime,
    ) -> Metering<'a, Metered> {
        Box::pin(async move {
            let store = self.store(key)?;
            let (policy, set_at) = (&key.policy, key.policy_set_at());
            self.local
                .spend(&store, &key.id, policy, set_at, cost, now)
                .await
        })
    }

    fn credits<'a>(
        &'a self,
        key: &'a KeyRecord,
        now: time::OffsetDateTime,
    ) -> Metering<'a, Option<u64>> {
        Box::pin(async move {
            let store = self.store(key)?;
            let (policy, set_at) = (&key.policy, key.policy_set_at());
            self.local
                .credits_left(&store, &key.id, policy, set_at, now)
                .await
        })
    }

    fn change_credits<'a>(
        &'a self,
        key: &'a KeyRecord,
        change: CreditChange,
        audit: Batch,
        now: time::OffsetDateTime,
    ) -> Metering<'a, (Option<u64>, Option<Batch>)> {
        Box::pin(async move {
            let store = self.store(key)?;
            let (policy, set_at) = (&key.policy, key.policy_set_at());
            let left = self
                .local
                .change_credits(&store, &key.id, policy, set_at, change, audit, now)
                .await?;
            Ok((left, None))
        })
    }

    fn policy_set<'a>(&'a self, _: &'a KeyRecord, _: time::OffsetDateTime) -> Metering<'a, ()> {
        Box::pin(std::future::ready(Ok(())))
    }
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::new("in-process instance poisoned")
}

impl Instance {
    fn part(&self, org: &str) -> Result<Option<Scoped>, StoreError> {
        Ok(self.orgs.lock().map_err(poisoned)?.get(org).cloned())
    }

    fn parts(&self) -> Result<Vec<(String, Scoped)>, StoreError> {
        Ok(self
            .orgs
            .lock()
            .map_err(poisoned)?
            .iter()
            .map(|(org, store)| (org.clone(), store.clone()))
            .collect())
    }

    /// The store of an instance endpoint's request about `org`, if it names one.
    pub fn partitioned(&self, org: Option<String>) -> Partitioned<Scoped, Instance> {
        Partitioned::new(self.directory.clone(), self.clone(), org)
    }

    /// Operations over `store`, counting into the instance's buffer.
    pub fn keygate<S: Store>(&self, store: S) -> Keygate<S> {
        Keygate::with_usage(store, Arc::clone(&self.usage))
            .with_meters(Arc::clone(&self.meters) as Arc<dyn model::service::Meters>)
    }

    /// Serves `request` where [`http::runs`] says, held to its endpoint's scope, and then
    /// hands the counts it made to their organizations' stores.
    pub async fn serve(
        &self,
        request: http::Request<'_, Vec<(String, String)>>,
        now: time::OffsetDateTime,
    ) -> Result<http::Response> {
        let routed = http::route(request.method, request.path);
        let endpoint = routed.as_ref().ok().map(|(endpoint, _)| *endpoint);
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let credential = model::wire::credential(
            header("authorization"),
            header("cookie"),
            header(model::service::CSRF_HEADER),
            request.secure,
        );
        let runs = match &routed {
            Ok((endpoint, params)) => http::runs(endpoint, params, &credential),
            Err(_) => Runs::ReadPath,
        };
        // An API key's organization is its record's (the edge reads it from KV); a key that
        // is nowhere is the directory's to refuse.
        let runs = match runs {
            Runs::KeyOrganization(id) => match self.locate(&schema::key(&id)).await? {
                Some(org) => Runs::Organization(org),
                None => Runs::Directory(None),
            },
            runs => runs,
        };
        let answer = match runs {
            Runs::Directory(context) => {
                let kg = self.keygate(self.partitioned(context));
                scoped::checked(endpoint, http::handle(&kg, request, now)).await?
            }
            Runs::Organization(org) => {
                let kg = self.keygate(OrgStore::new(self, &org));
                scoped::checked(endpoint, http::handle(&kg, request, now)).await?
            }
            Runs::ReadPath | Runs::KeyOrganization(_) => {
                let kg = self.keygate(Replica(self.clone()));
                scoped::checked(endpoint, http::handle(&kg, request, now)).await?
            }
        };
        self.flush_usage(now).await?;
        Ok(answer)
    }

    async fn flush_usage(&self, now: time::OffsetDateTime) -> Result<()> {
        for (org, part) in self.usage.report().by_organization() {
            let writer = {
                let mut writers = self.writers.lock().map_err(poisoned)?;
                Arc::clone(writers.entry(org.clone()).or_default())
            };
            writer.absorb(part);
            Keygate::with_usage(OrgStore::new(self, &org), writer)
                .flush_usage(now)
                .await?;
        }
        Ok(())
    }

    /// Checks that the parts are what a split of their union says (`model::store::split`):
    /// every record of an organization's store is that organization's (or a copy every
    /// store takes), every directory record the directory's, each record that names its
    /// organization in that organization's store. Returns how many organizations hold
    /// records.
    pub async fn check_split(&self) -> Result<usize> {
        let mut records: Vec<(String, Vec<u8>, Option<String>)> = Vec::new();
        let mut stores = vec![(None, self.directory.clone())];
        stores.extend(self.parts()?.into_iter().map(|(org, s)| (Some(org), s)));
        for (org, store) in &stores {
            for (key, value) in store.dump().await? {
                records.push((key, value, org.clone()));
            }
        }
        let whole = split(records.iter().map(|(k, v, _)| (k.as_str(), v.as_slice())));
        #[derive(serde::Deserialize)]
        struct Named {
            org: String,
        }
        for (key, value, part) in &records {
            match part {
                None => ensure!(
                    whole.directory.contains(key),
                    "the directory holds `{key}`, an organization's"
                ),
                Some(org) => {
                    let placed = whole.organization_of(key);
                    ensure!(
                        placed == Some(org.as_str()) || whole.everywhere.contains(key),
                        "{org}'s store holds `{key}`, which the split places in {placed:?}"
                    );
                    if let Ok(named) = serde_json::from_slice::<Named>(value) {
                        ensure!(
                            named.org == *org,
                            "`{key}` names {} but is in {org}",
                            named.org
                        );
                    }
                }
            }
        }
        ensure!(
            whole.unplaced.is_empty(),
            "records no organization takes: {:?}",
            whole.unplaced
        );
        Ok(self.parts()?.len())
    }
}

impl Organizations for Instance {
    type Store = OrgStore;

    fn store(&self, org: &str) -> OrgStore {
        OrgStore::new(self, org)
    }

    async fn locate(&self, key: &str) -> Result<Option<String>, StoreError> {
        for (org, store) in self.parts()? {
            if store.raw().get(key).await?.is_some() {
                return Ok(Some(org));
            }
        }
        Ok(None)
    }

    async fn commit(
        &self,
        directory: Batch,
        organization: Option<(String, Batch)>,
        notes: Vec<(String, Batch)>,
    ) -> Result<(), StoreError> {
        if let Some((org, batch)) = organization {
            OrgStore::new(self, &org).commit(batch).await?;
        }
        self.directory.commit(directory).await?;
        for (org, batch) in notes {
            OrgStore::new(self, &org).commit(batch).await?;
        }
        Ok(())
    }
}

/// One organization's store: its records, and the instance's constants (read from the
/// directory: written once at the first start, never changed). It holds no directory key.
pub struct OrgStore {
    instance: Instance,
    org: String,
}

impl OrgStore {
    fn new(instance: &Instance, org: &str) -> Self {
        Self {
            instance: instance.clone(),
            org: org.to_owned(),
        }
    }

    fn foreign(&self, key: &str) -> StoreError {
        StoreError::new(format!(
            "`{key}` is the directory's: {}'s store has no such key",
            self.org
        ))
    }
}

impl Store for OrgStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match schema::home(key) {
            Home::Organization => match self.instance.part(&self.org)? {
                Some(store) => store.get(key).await,
                None => Ok(None),
            },
            Home::Constant => self.instance.directory.get(key).await,
            Home::Directory => Err(self.foreign(key)),
        }
    }

    async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Listing, StoreError> {
        if schema::home(prefix) != Home::Organization {
            return Err(self.foreign(prefix));
        }
        match self.instance.part(&self.org)? {
            Some(store) => store.list(prefix, cursor, limit).await,
            None => Ok(Listing::default()),
        }
    }

    async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        if let Some(op) = batch
            .ops
            .iter()
            .find(|op| schema::home(op.key()) != Home::Organization)
        {
            return Err(self.foreign(op.key()));
        }
        let store = {
            let mut orgs = self.instance.orgs.lock().map_err(poisoned)?;
            orgs.entry(self.org.clone()).or_default().clone()
        };
        store.commit(batch).await
    }
}

/// The read path's view: every organization's records as one, as KV holds them at the edge.
pub struct Replica(Instance);

impl Store for Replica {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if schema::home(key) != Home::Organization {
            return self.0.directory.get(key).await;
        }
        if let Some(org) = named_organization(key) {
            return OrgStore::new(&self.0, &org).get(key).await;
        }
        for (_, store) in self.0.parts()? {
            if let Some(value) = store.get(key).await? {
                return Ok(Some(value));
            }
        }
        Ok(None)
    }

    async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Listing, StoreError> {
        for (_, store) in self.0.parts()? {
            let listing = store.list(prefix, cursor, limit).await?;
            if !listing.keys.is_empty() {
                return Ok(listing);
            }
        }
        Ok(Listing::default())
    }

    async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        Err(StoreError::new(format!(
            "the read path writes nothing, and was asked to write {:?}",
            batch.ops.first().map(|op| op.key().to_owned())
        )))
    }
}
