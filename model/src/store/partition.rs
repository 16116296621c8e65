//! One store per organization and one directory, seen as one [`Store`] by an endpoint of
//! the instance ([`crate::http::Scope::Instance`]: sign-in, invitations, the set-up link,
//! removing a member, a new organization, leak reports).
//!
//! An organization's endpoints run in their organization's store alone (each store key's
//! [`Home`] and each endpoint's scope say so, and the in-process contract proves it). The
//! instance's run over [`Partitioned`]: directory keys in the directory, every other key in
//! the store of the organization it belongs to, found without a lookup where the key or
//! the request names it (the key's text, [`named_organization`]; the organization of the
//! request's token, [`crate::http::runs`]) and else by the host ([`Organizations::locate`]:
//! the user an email names, a key reported as leaked). A batch is cut into the directory's
//! part and its organization's ([`split`]: by what its records name), which the host
//! commits as one change ([`Organizations::commit`]). A batch changes one organization at
//! most (a batch of leaked keys of several is committed one organization at a time); other
//! organizations may only receive entries of their log ([`log_only`]: creating an
//! organization tells the creator's log), which a host may write after the change. So a
//! host's change in two stores has two parts, and a crash between them leaves one question
//! to settle (did the organization's part commit?), never several.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;

use super::schema::{self, Home};
use super::split::{named_organization, split};
use super::{Batch, Listing, Op, Store, StoreError};

/// How a host reaches its organizations' stores.
pub trait Organizations {
    /// An organization's store, as this host reaches it.
    type Store: Store;
    /// The store of `org`.
    fn store(&self, org: &str) -> Self::Store;
    /// The organization whose store holds `key`, when neither the key nor the request
    /// names it: the host's index (the edge: the records verification reads, in KV).
    fn locate(&self, key: &str) -> impl Future<Output = Result<Option<String>, StoreError>>;
    /// Commits the directory's part and the organization's part of one batch, both or
    /// neither, then `notes`: entries of other organizations' logs about the change.
    fn commit(
        &self,
        directory: Batch,
        organization: Option<(String, Batch)>,
        notes: Vec<(String, Batch)>,
    ) -> impl Future<Output = Result<(), StoreError>>;
}

/// The directory `D` and the organizations `O` as the one store of an instance endpoint's
/// request. Made per request: it remembers the organization the request is about.
pub struct Partitioned<D, O> {
    directory: D,
    organizations: O,
    /// The organization of this request: named by its token, or found by its first read
    /// that had to be located.
    context: Mutex<Option<String>>,
}

impl<D: Store, O: Organizations> Partitioned<D, O> {
    /// A request's view, about `org` when the request names one ([`crate::http::Runs`]).
    pub fn new(directory: D, organizations: O, org: Option<String>) -> Self {
        Self {
            directory,
            organizations,
            context: Mutex::new(org),
        }
    }

    /// The directory's store.
    pub fn directory(&self) -> &D {
        &self.directory
    }

    /// The organizations' stores.
    pub fn organizations(&self) -> &O {
        &self.organizations
    }

    /// The organization this request is about, once known.
    pub fn context(&self) -> Option<String> {
        self.context.lock().ok().and_then(|c| c.clone())
    }

    fn remember(&self, org: &str) {
        if let Ok(mut context) = self.context.lock()
            && context.is_none()
        {
            *context = Some(org.to_owned());
        }
    }

    /// The organization whose store holds `key`: the one it names, the request's, or the
    /// one the host finds (which becomes the request's).
    async fn place(&self, key: &str) -> Result<Option<String>, StoreError> {
        if let Some(org) = named_organization(key) {
            return Ok(Some(org));
        }
        if let Some(org) = self.context() {
            return Ok(Some(org));
        }
        let found = self.organizations.locate(key).await?;
        if let Some(org) = &found {
            self.remember(org);
        }
        Ok(found)
    }
}

impl<D: Store, O: Organizations> Store for Partitioned<D, O> {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if schema::home(key) != Home::Organization {
            return self.directory.get(key).await;
        }
        let Some(org) = self.place(key).await? else {
            return Ok(None);
        };
        let value = self.organizations.store(&org).get(key).await?;
        if value.is_some() || named_organization(key).is_some() {
            return Ok(value);
        }
        // Not in the request's organization: a record of another (the keys of a batch of
        // leaked tokens belong to several), if the host knows it.
        match self.organizations.locate(key).await? {
            Some(other) if other != org => self.organizations.store(&other).get(key).await,
            _ => Ok(None),
        }
    }

    async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Listing, StoreError> {
        if schema::home(prefix) != Home::Organization {
            return self.directory.list(prefix, cursor, limit).await;
        }
        match named_organization(prefix).or_else(|| self.context()) {
            Some(org) => {
                self.organizations
                    .store(&org)
                    .list(prefix, cursor, limit)
                    .await
            }
            None => Ok(Listing::default()),
        }
    }

    async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        // What each put names (its record's organization, or an id of a record in the same
        // batch), as the split of a whole store reads it.
        let placed = split(batch.ops.iter().filter_map(|op| match op {
            Op::Put(key, value) => Some((key.as_str(), value.as_slice())),
            Op::Delete(_) => None,
        }));
        let context = self.context();
        let mut directory = Batch::default();
        let mut parts: BTreeMap<String, Batch> = BTreeMap::new();
        let Batch { ops, expiries } = batch;
        for op in ops {
            let key = op.key().to_owned();
            let part = if schema::home(&key) == Home::Organization {
                let org = placed
                    .organization_of(&key)
                    .map(str::to_owned)
                    .or_else(|| named_organization(&key))
                    .or_else(|| context.clone())
                    .ok_or_else(|| StoreError::new(format!("no organization holds `{key}`")))?;
                parts.entry(org).or_default()
            } else {
                &mut directory
            };
            if let Some((_, at)) = expiries.iter().find(|(k, _)| *k == key) {
                part.expiries.push((key, *at));
            }
            part.ops.push(op);
        }
        let (notes, changed): (Vec<_>, Vec<_>) = parts
            .into_iter()
            .partition(|(org, part)| log_only(org, part));
        if changed.len() > 1 {
            let orgs: Vec<&str> = changed.iter().map(|(org, _)| org.as_str()).collect();
            return Err(StoreError::new(format!(
                "a change of the instance changes one organization, not {}",
                orgs.join(" and ")
            )));
        }
        let mut notes = notes.into_iter();
        let organization = changed.into_iter().next().or_else(|| notes.next());
        self.organizations
            .commit(directory, organization, notes.collect())
            .await
    }

    fn turn(&self) -> impl Future<Output = impl Sized> {
        self.directory.turn()
    }
}

/// Whether `part` only adds entries to `org`'s log (events and their webhook deliveries).
pub fn log_only(org: &str, part: &Batch) -> bool {
    let (events, outbox) = (schema::events(org), schema::outbox());
    part.ops.iter().all(|op| match op {
        Op::Put(key, _) => key.starts_with(&events) || key.starts_with(&outbox),
        Op::Delete(_) => false,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::store::MemoryStore;

    /// Organizations in memory, found by scanning them (the test's index).
    #[derive(Clone, Default)]
    struct Memory {
        directory: MemoryStore,
        orgs: Arc<Mutex<BTreeMap<String, MemoryStore>>>,
    }

    impl Organizations for Memory {
        type Store = MemoryStore;
        fn store(&self, org: &str) -> MemoryStore {
            let mut orgs = self.orgs.lock().expect("test");
            orgs.entry(org.to_owned()).or_default().clone()
        }
        async fn locate(&self, key: &str) -> Result<Option<String>, StoreError> {
            let orgs: Vec<(String, MemoryStore)> = self
                .orgs
                .lock()
                .expect("test")
                .clone()
                .into_iter()
                .collect();
            for (org, store) in orgs {
                if store.get(key).await?.is_some() {
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
                self.store(&org).commit(batch).await?;
            }
            self.directory.commit(directory).await?;
            for (org, batch) in notes {
                self.store(&org).commit(batch).await?;
            }
            Ok(())
        }
    }

    const A: &str = "org_AAAAAAAAAAAA";
    const B: &str = "org_BBBBBBBBBBBB";

    fn named(org: &str) -> Vec<u8> {
        format!(r#"{{"org":"{org}"}}"#).into_bytes()
    }

    async fn keys(store: &MemoryStore) -> Vec<String> {
        store.list("", None, 100).await.expect("test").keys
    }

    #[test]
    fn a_batch_goes_to_the_directory_and_the_organization_it_names() {
        futures_executor::block_on(batch_goes());
    }

    async fn batch_goes() {
        let memory = Memory::default();
        let view = Partitioned::new(memory.directory.clone(), memory.clone(), Some(A.into()));
        let mut batch = Batch::default();
        batch.ops.extend([
            Op::Put(schema::email("x@example.com"), b"\"usr_1\"".to_vec()),
            Op::Put(schema::user("usr_1"), named(A)),
            Op::Put(format!("{}1:evt_1", schema::events(A)), b"{}".to_vec()),
            // Names nothing: the request's organization's.
            Op::Put(
                format!("{}1:key_1", schema::user_keys("usr_9")),
                b"1".to_vec(),
            ),
            Op::Delete(schema::session("ab")),
        ]);
        batch.expiries.push((schema::user("usr_1"), 99));
        view.commit(batch).await.expect("test");
        assert_eq!(keys(&memory.directory).await, ["v1:email:x@example.com"]);
        assert_eq!(
            keys(&memory.store(A)).await,
            [
                format!("v1:event:{A}:1:evt_1"),
                "v1:ix:user-keys:usr_9:1:key_1".to_owned(),
                "v1:user:usr_1".to_owned()
            ]
        );
    }

    /// Each case: a batch's puts (key, the organization its value names) and whether the
    /// view commits it; a refused batch writes nothing anywhere.
    #[test]
    fn a_batch_writes_to_one_organization_at_most() {
        type Case<'a> = (&'a str, Vec<(String, Option<&'a str>)>, bool);
        let cases: [Case; 5] = [
            (
                "directory only",
                vec![(schema::email("a@x.io"), None)],
                true,
            ),
            (
                "one organization by name and by context",
                vec![
                    (schema::org(A), Some(A)),
                    (format!("{}1:key_1", schema::user_keys("usr_9")), None),
                ],
                true,
            ),
            (
                "two organizations by name",
                vec![(schema::org(A), Some(A)), (schema::org(B), Some(B))],
                false,
            ),
            (
                "one organization and an entry of another's log",
                vec![
                    (schema::org(B), Some(B)),
                    (format!("{}1:evt_1", schema::events(A)), None),
                ],
                true,
            ),
            (
                "another organization than the request's",
                vec![
                    (schema::user("usr_b"), Some(B)),
                    (format!("{}1:key_1", schema::user_keys("usr_9")), None),
                    (schema::email("b@x.io"), None),
                ],
                false,
            ),
        ];
        for (name, puts, committed) in cases {
            let memory = Memory::default();
            let view = Partitioned::new(memory.directory.clone(), memory.clone(), Some(A.into()));
            let mut batch = Batch::default();
            for (key, org) in puts {
                let value = org.map_or_else(|| b"1".to_vec(), named);
                batch.ops.push(Op::Put(key, value));
            }
            let result = futures_executor::block_on(view.commit(batch));
            assert_eq!(result.is_ok(), committed, "{name}: {result:?}");
            if !committed {
                let written = futures_executor::block_on(async {
                    let mut all = keys(&memory.directory).await;
                    for org in [A, B] {
                        all.extend(keys(&memory.store(org)).await);
                    }
                    all
                });
                assert!(written.is_empty(), "{name}: {written:?}");
            }
        }
    }

    #[test]
    fn reads_find_their_organization_by_key_request_or_host() {
        futures_executor::block_on(reads_find());
    }

    async fn reads_find() {
        let memory = Memory::default();
        let put = |org: &str, key: String, value: Vec<u8>| {
            let store = memory.store(org);
            async move {
                let mut batch = Batch::default();
                batch.ops.push(Op::Put(key, value));
                store.commit(batch).await.expect("test");
            }
        };
        put(A, schema::user("usr_a"), named(A)).await;
        put(B, schema::user("usr_b"), named(B)).await;
        put(B, schema::key("key_b"), named(B)).await;
        put(B, format!("{}x", schema::org_users(B)), b"1".to_vec()).await;

        // No organization named: the first located read makes the request B's.
        let view = Partitioned::new(memory.directory.clone(), memory.clone(), None);
        assert_eq!(
            view.list(&schema::user_keys("usr_b"), None, 10)
                .await
                .expect("test"),
            Listing::default()
        );
        assert!(
            view.get(&schema::user("usr_b"))
                .await
                .expect("test")
                .is_some()
        );
        assert_eq!(view.context().as_deref(), Some(B));
        // A record of another organization is still found (a batch of leaked keys).
        assert!(
            view.get(&schema::user("usr_a"))
                .await
                .expect("test")
                .is_some()
        );
        assert_eq!(view.context().as_deref(), Some(B));
        // A named listing is its organization's whatever the request's.
        let a_view = Partitioned::new(memory.directory.clone(), memory.clone(), Some(A.into()));
        let listed = a_view
            .list(&schema::org_users(B), None, 10)
            .await
            .expect("test");
        assert_eq!(listed.keys, [format!("{}x", schema::org_users(B))]);
        assert!(
            a_view
                .get(&schema::key("key_b"))
                .await
                .expect("test")
                .is_some()
        );
        assert!(
            a_view
                .get(&schema::key("key_none"))
                .await
                .expect("test")
                .is_none()
        );
    }
}
