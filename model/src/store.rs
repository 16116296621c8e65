//! The storage abstraction both hosts implement, and the one place the key schema is written.
//!
//! A [`Store`] is an ordered map from string keys to bytes with prefix listing and atomic
//! batches: redb implements it on the server; at the edge the control object's SQLite storage
//! (a batch is one transaction) for every change, and Workers KV for verification's reads
//! (see ARCHITECTURE.md). Values are JSON of the [`crate::domain`] records.

pub mod cache;
pub mod partition;
pub mod split;

use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use self::cache::RecordCache;
use crate::error::Result;
pub use crate::error::StoreError;

/// One page of keys under a prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub keys: Vec<String>,
    /// Opaque; `Some` when more keys may follow.
    pub cursor: Option<String>,
}

impl Listing {
    /// A page of at most `limit` keys from up to `limit + 1` read in order: one more than the
    /// page means more follow, after the page's last key (the cursor).
    pub fn page(mut keys: Vec<String>, limit: usize) -> Self {
        let cursor = if keys.len() > limit {
            keys.truncate(limit);
            keys.last().cloned()
        } else {
            None
        };
        Listing { keys, cursor }
    }
}

/// A set of writes applied together. A batch names each store key at most once: hosts
/// without transactions may apply its writes in another order.
#[derive(Debug, Default)]
pub struct Batch {
    pub ops: Vec<Op>,
    /// When records this batch puts expire (Unix seconds), by store key: the store deletes
    /// them after that (the server's purge, Workers KV's own expiration), so that records
    /// made by unauthenticated traffic (throttles, sessions, invitations) cannot pile up.
    /// A put without an entry here clears an earlier expiry of its key.
    pub expiries: Vec<(String, i64)>,
}

/// One write of a [`Batch`].
#[derive(Debug)]
pub enum Op {
    Put(String, Vec<u8>),
    Delete(String),
}

impl Op {
    /// The store key written.
    pub fn key(&self) -> &str {
        match self {
            Op::Put(key, _) | Op::Delete(key) => key,
        }
    }
}

impl Batch {
    /// Adds a put of `value` as JSON.
    pub fn put<T: Serialize>(&mut self, key: String, value: &T) -> Result<&mut Self> {
        self.ops.push(Op::Put(key, serde_json::to_vec(value)?));
        Ok(self)
    }

    /// Adds a put of `value` as JSON that the store deletes once `at` has passed.
    pub fn put_expiring<T: Serialize>(
        &mut self,
        key: String,
        value: &T,
        at: crate::domain::Timestamp,
    ) -> Result<&mut Self> {
        self.expiries.push((key.clone(), at.unix_timestamp()));
        self.put(key, value)
    }

    /// When the record this batch puts at `key` expires, if it does (Unix seconds).
    pub fn expiry_of(&self, key: &str) -> Option<i64> {
        self.expiries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, at)| *at)
    }

    /// Adds an index entry: a key whose presence is the information.
    pub fn mark(&mut self, key: String) -> &mut Self {
        self.ops.push(Op::Put(key, b"1".to_vec()));
        self
    }

    /// Adds a delete.
    pub fn delete(&mut self, key: String) -> &mut Self {
        self.ops.push(Op::Delete(key));
        self
    }
}

/// The operations Keygate needs from a store.
///
/// Futures are not required to be `Send` (Workers are single-threaded); a host with a `Send`
/// store gets `Send` futures from the concrete type.
pub trait Store {
    /// The value at `key`.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>>;
    /// Up to `limit` keys starting with `prefix`, in ascending order, after `cursor`.
    fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Listing, StoreError>>;
    /// Applies every write of `batch`; on the server atomically and durably.
    fn commit(&self, batch: Batch) -> impl Future<Output = Result<(), StoreError>>;
    /// The store's cache of decoded records, if it keeps one: only a store that sees every
    /// change (it calls [`RecordCache::forget`] on each commit) may.
    fn records(&self) -> Option<&RecordCache> {
        None
    }
    /// Waits for this process's turn to change the store, held until the value is dropped: a
    /// store that serializes its changes (the server's: one change at a time, so a rule
    /// checked on reads still holds when its write commits) hands out one turn at a time.
    /// Operations that run something slow between their reads and their commit (password
    /// hashing) take their turn themselves, around the reads and the commit only; the host
    /// takes it for every other change. A store that cannot serialize (Workers KV) answers at
    /// once.
    fn turn(&self) -> impl Future<Output = impl Sized> {
        std::future::ready(())
    }
}

/// The longest store key Keygate ever writes or reads (Workers KV's limit is 512 bytes). Keys
/// are built from ids, which are short; a longer one can only come from a hostile id, names
/// nothing, and is never sent to the store (where KV would fail with a 5xx).
pub const MAX_KEY_BYTES: usize = 512;

/// Reads and decodes the record at `key` like [`get_json`], sharing it through the store's
/// [`RecordCache`] when it has one. The verification path reads this way.
pub async fn get_shared<S, T>(store: &S, key: &str) -> Result<Option<Arc<T>>>
where
    S: Store,
    T: DeserializeOwned + Send + Sync + 'static,
{
    let Some(cache) = store.records() else {
        return Ok(get_json(store, key).await?.map(Arc::new));
    };
    if let Some(record) = cache.get::<T>(key) {
        return Ok(Some(record));
    }
    let read_at = cache.generation();
    let record = get_json(store, key).await?.map(Arc::new);
    if let Some(record) = &record {
        cache.remember(key, Arc::clone(record), read_at);
    }
    Ok(record)
}

/// Reads and decodes the JSON record at `key`; a key longer than [`MAX_KEY_BYTES`] holds
/// nothing.
pub async fn get_json<S: Store, T: DeserializeOwned>(store: &S, key: &str) -> Result<Option<T>> {
    if key.len() > MAX_KEY_BYTES {
        return Ok(None);
    }
    match store.get(key).await? {
        Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
        None => Ok(None),
    }
}

/// The key schema. Every key starts with the format version; only this module spells keys.
pub mod schema {
    use crate::domain::Timestamp;

    /// Marks a store that has been bootstrapped; holds the first organization's id.
    pub fn bootstrap() -> String {
        "v1:bootstrap".into()
    }
    // The records verification reads are spelled with `concat`, not `format!`: on that path
    // the formatting machinery cost more than the rest of the lookup.
    pub fn org(id: &str) -> String {
        ["v1:org:", id].concat()
    }
    pub fn user(id: &str) -> String {
        ["v1:user:", id].concat()
    }
    /// Email (lower-cased) → user id. Emails are unique across the instance.
    pub fn email(email: &str) -> String {
        format!("v1:email:{}", email.to_lowercase())
    }
    /// Session record under the hex SHA-256 of its token.
    pub fn session(token_hash: &str) -> String {
        format!("v1:session:{token_hash}")
    }
    /// The deployment's key prefix (SPEC §2), recorded at the first start.
    pub fn key_prefix() -> String {
        "v1:key-prefix".into()
    }
    /// The instance's first admin, who may create further organizations.
    pub fn instance_admin() -> String {
        "v1:instance-admin".into()
    }
    /// Membership index: the users of an organization.
    pub fn org_users(org: &str) -> String {
        format!("v1:ix:org-users:{org}:")
    }
    pub fn org_user(org: &str, user: &str) -> String {
        format!("{}{user}", org_users(org))
    }
    /// A pending invitation under the hex SHA-256 of its token.
    pub fn invitation(token_hash: &str) -> String {
        format!("v1:invitation:{token_hash}")
    }
    /// An application, workspace or user group.
    pub fn namespace(id: &str) -> String {
        ["v1:ns:", id].concat()
    }
    /// An organization's namespaces (applications, workspaces, user groups).
    pub fn org_namespaces(org: &str) -> String {
        format!("v1:ix:org-ns:{org}:")
    }
    /// A user group's members.
    pub fn group_members(group: &str) -> String {
        format!("v1:ix:group-members:{group}:")
    }
    /// The user groups a user belongs to.
    pub fn user_groups(user: &str) -> String {
        format!("v1:ix:user-groups:{user}:")
    }
    pub fn grant(id: &str) -> String {
        ["v1:grant:", id].concat()
    }
    /// The grants naming a principal (user, group or key).
    pub fn principal_grants(principal: &str) -> String {
        format!("v1:ix:principal-grants:{principal}:")
    }
    /// The grants of an organization.
    pub fn org_grants(org: &str) -> String {
        format!("v1:ix:org-grants:{org}:")
    }
    pub fn resource(id: &str) -> String {
        format!("v1:res:{id}")
    }
    /// The resources of a namespace.
    pub fn namespace_resources(namespace: &str) -> String {
        format!("v1:ix:ns-res:{namespace}:")
    }
    /// The resources a user or key owns.
    pub fn owned_resources(owner: &str) -> String {
        format!("v1:ix:owner-res:{owner}:")
    }
    /// A key's verification counts in one minute (minutes since the epoch, zero-padded) as
    /// written by one `writer` (a server process or a Worker isolate).
    pub fn usage(key: &str, minute: i64, writer: &str) -> String {
        format!("v1:usage:{key}:{minute:012}:{writer}")
    }
    /// The minute of a [`usage`] entry.
    pub fn usage_minute(entry: &str) -> Option<i64> {
        entry.rsplit(':').nth(1)?.parse().ok()
    }
    pub fn usage_prefix(key: &str) -> String {
        format!("v1:usage:{key}:")
    }
    /// An organization's verifications in one hour (hours since the epoch, zero-padded) as
    /// written by one `writer`: counts by outcome, refusals by key, keys flagged for
    /// extensive use. What the overview reads instead of every key's minutes.
    pub fn usage_org(org: &str, hour: i64, writer: &str) -> String {
        format!("v1:usage-org:{org}:{hour:010}:{writer}")
    }
    pub fn usage_org_prefix(org: &str) -> String {
        format!("v1:usage-org:{org}:")
    }
    /// The hour of a [`usage_org`] entry.
    pub fn usage_org_hour(entry: &str) -> Option<i64> {
        entry.rsplit(':').nth(1)?.parse().ok()
    }
    /// A key's rolling usage summary (last use, last day per minute, extensive-use flag).
    pub fn usage_summary(key: &str) -> String {
        format!("v1:usage-summary:{key}")
    }
    /// The credits of a key with credits not yet leased to a process (`service::LocalMeters`).
    pub fn credits(key: &str) -> String {
        ["v1:credits:", key].concat()
    }
    /// Sign-in attempts of one (lower-cased, valid, so at most 254 bytes) email.
    pub fn login_throttle(email: &str) -> String {
        format!("v1:throttle:login:{}", email.to_lowercase())
    }
    /// Leak reports that matched no key, from one address (`unknown` without one).
    pub fn leak_throttle(client: Option<std::net::IpAddr>) -> String {
        match client {
            Some(ip) => format!("v1:throttle:leak:{ip}"),
            None => "v1:throttle:leak:unknown".into(),
        }
    }
    /// An organization's pending invitations: entry `{id}` holds the invitation's token hash.
    pub fn org_invitations(org: &str) -> String {
        format!("v1:ix:org-invitations:{org}:")
    }
    /// The one-time set-up link of a first admin who has no password yet.
    pub fn setup() -> String {
        "v1:setup".into()
    }
    pub fn key(id: &str) -> String {
        ["v1:key:", id].concat()
    }
    /// Prefix of a user's key index, newest first.
    pub fn user_keys(user: &str) -> String {
        format!("v1:ix:user-keys:{user}:")
    }
    /// Prefix of an organization's key index, newest first.
    pub fn org_keys(org: &str) -> String {
        format!("v1:ix:org-keys:{org}:")
    }
    /// Prefix of an organization's audit events, newest first.
    pub fn events(org: &str) -> String {
        format!("v1:event:{org}:")
    }
    /// An audit event's entry: newest sorts first, to the nanosecond, so that changes made
    /// less than a millisecond apart list in the order they were made. (Entries written in
    /// milliseconds by earlier versions sort after these, as they are older.)
    pub fn event_entry(org: &str, at: Timestamp, id: &str) -> String {
        let nanos = u64::try_from(at.unix_timestamp_nanos()).unwrap_or(0);
        format!("{}{:020}:{id}", events(org), u64::MAX - nanos)
    }
    pub fn webhook(id: &str) -> String {
        ["v1:webhook:", id].concat()
    }
    /// An organization's webhooks: entry `{id}`.
    pub fn org_webhooks(org: &str) -> String {
        format!("v1:ix:org-webhooks:{org}:")
    }
    /// Every webhook of the instance, for the delivery rounds: entry `{id}`.
    pub fn webhooks() -> String {
        "v1:ix:webhooks:".into()
    }
    /// Prefix of the outbox: events waiting to be handed to their webhooks, oldest first.
    pub fn outbox() -> String {
        "v1:outbox:".into()
    }
    /// An event's outbox entry: oldest sorts first, to the nanosecond, then by `seq` (the
    /// order this process recorded events in: a Worker's clock stands still while it runs,
    /// so events of one request share their time).
    pub fn outbox_entry(at: Timestamp, seq: u64, event: &str) -> String {
        let nanos = u64::try_from(at.unix_timestamp_nanos()).unwrap_or(0);
        format!("{}{nanos:020}:{seq:020}:{event}", outbox())
    }
    /// Prefix of a webhook's queue of messages, oldest first.
    pub fn webhook_queue(webhook: &str) -> String {
        format!("v1:wh-queue:{webhook}:")
    }
    /// A message's entry in its webhook's queue, in the order of the events (the outbox's).
    pub fn webhook_queue_entry(webhook: &str, outbox_entry: &str) -> String {
        let order = outbox_entry
            .strip_prefix("v1:outbox:")
            .unwrap_or(outbox_entry);
        format!("{}{order}", webhook_queue(webhook))
    }
    /// Prefix of a webhook's delivery attempts, newest first.
    pub fn webhook_attempts(webhook: &str) -> String {
        format!("v1:wh-attempt:{webhook}:")
    }
    /// Prefix of the reminder index: a key's next expiry reminder, soonest first.
    pub fn reminders() -> String {
        "v1:ix:reminder:".into()
    }
    /// A key's reminder entry, due at `due` (Unix seconds; before 1970 counts as 1970).
    pub fn reminder_entry(due: i64, key: &str) -> String {
        format!("{}{:020}:{key}", reminders(), due.max(0))
    }
    /// When the reminder of `entry` is due (Unix seconds).
    pub fn reminder_due(entry: &str) -> Option<i64> {
        entry
            .strip_prefix(reminders().as_str())?
            .split(':')
            .next()?
            .parse()
            .ok()
    }
    /// Present once the keys made before reminders existed have theirs.
    pub fn reminders_indexed() -> String {
        "v1:reminders-indexed".into()
    }
    /// An index entry under `prefix` for key `id` created at `at`: newest sorts first. In
    /// milliseconds: a key's entry is deleted by computing it again from its record.
    pub fn newest_first(prefix: &str, at: Timestamp, id: &str) -> String {
        let millis = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
        let inverted = u64::MAX - u64::try_from(millis).unwrap_or(0);
        format!("{prefix}{inverted:020}:{id}")
    }
    /// The id at the end of an index entry.
    pub fn id_of(entry: &str) -> &str {
        entry.rsplit(':').next().unwrap_or(entry)
    }

    /// Where the record at a store key (or every key under a prefix) belongs when a host
    /// keeps one store per organization and one for the instance (the edge's objects,
    /// ARCHITECTURE.md "The edge's control plane"). The server keeps all three in its one
    /// store; the split is what each endpoint's [`crate::http::Scope`] is checked against.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Home {
        /// One organization's: its records, indexes, sessions, invitations, events, usage,
        /// webhooks and their queues, reminders.
        Organization,
        /// The instance's, changed while it serves: emails (unique across the instance), the
        /// throttles of sign-in and of leak reports, the first start's marker and set-up link.
        Directory,
        /// The instance's, written once at the first start and never changed after: the key
        /// prefix and the first admin. A per-organization store may hold a copy.
        Constant,
    }

    /// The [`Home`] of `key`.
    pub fn home(key: &str) -> Home {
        const DIRECTORY: [&str; 2] = ["v1:email:", "v1:throttle:"];
        if DIRECTORY.iter().any(|p| key.starts_with(p)) || key == setup() || key == bootstrap() {
            Home::Directory
        } else if key == key_prefix() || key == instance_admin() {
            Home::Constant
        } else {
            Home::Organization
        }
    }
}

/// An in-memory [`Store`] for unit tests and benchmarks. Not a host's store: it forgets
/// everything when dropped.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    map: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, Vec<u8>>>>,
}

impl MemoryStore {
    fn locked(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, std::collections::BTreeMap<String, Vec<u8>>>, StoreError>
    {
        self.map
            .lock()
            .map_err(|_| StoreError::new("memory store poisoned"))
    }
}

impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.locked()?.get(key).cloned())
    }

    async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Listing, StoreError> {
        use std::ops::Bound;
        let map = self.locked()?;
        let start = match cursor {
            Some(c) => Bound::Excluded(c.to_owned()),
            None => Bound::Included(prefix.to_owned()),
        };
        let keys: Vec<String> = map
            .range((start, Bound::Unbounded))
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(prefix))
            .take(limit + 1)
            .cloned()
            .collect();
        Ok(Listing::page(keys, limit))
    }

    async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        let mut map = self.locked()?;
        for op in batch.ops {
            match op {
                Op::Put(k, v) => map.insert(k, v),
                Op::Delete(k) => map.remove(&k),
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::schema::{self, Home};

    #[test]
    fn every_kind_of_store_key_has_its_home() {
        let org = "org_AAAAAAAAAAAA";
        let table: &[(String, Home)] = &[
            (schema::email("A@Example.com"), Home::Directory),
            (schema::login_throttle("a@example.com"), Home::Directory),
            (schema::leak_throttle(None), Home::Directory),
            (schema::setup(), Home::Directory),
            (schema::bootstrap(), Home::Directory),
            (schema::key_prefix(), Home::Constant),
            (schema::instance_admin(), Home::Constant),
            (schema::org(org), Home::Organization),
            (schema::user("usr_AAAAAAAAAAAA"), Home::Organization),
            (schema::key("key_AAAAAAAAAAAA"), Home::Organization),
            (schema::session("ab12"), Home::Organization),
            (schema::invitation("ab12"), Home::Organization),
            (schema::org_users(org), Home::Organization),
            (schema::events(org), Home::Organization),
            (
                schema::usage_summary("key_AAAAAAAAAAAA"),
                Home::Organization,
            ),
            (schema::webhook("wh_AAAAAAAAAAAA"), Home::Organization),
            (schema::outbox(), Home::Organization),
            (schema::reminders(), Home::Organization),
            (schema::reminders_indexed(), Home::Organization),
            // Near misses of the directory's exact keys stay an organization's.
            ("v1:setup-other".to_owned(), Home::Organization),
            ("v1:emails".to_owned(), Home::Organization),
        ];
        for (key, home) in table {
            assert_eq!(schema::home(key), *home, "{key}");
        }
    }
}
