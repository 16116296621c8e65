//! A key's life after creation (SPEC §3): listing, display, edit, revoke (one or many), roll
//! and delete. Each change and its audit event are one batch.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use time::Duration;

use super::events::record;
use super::scan::Scan;
use super::{Caller, CreditLedger, Keygate, UsageSummary, key_view, page_limit};
use crate::api::{
    BulkRevokeResponse, BulkRevokeResult, CreateKeyRequest, CreatedKey, DeleteKeyQuery,
    KeyListQuery, KeyPatch, KeyView, Page, RollRequest,
};
use crate::domain::{
    Access, KeyRecord, KeyStatus, Owner, OwnerKind, PreviousSecret, Resource, Role, Timestamp, User,
};
use crate::error::{Error, Result};
use crate::key::{ApiKey, ID_LEN, random_base62};
use crate::meter::{CreditChange, MAX_CREDITS, PolicyRequest};
use crate::rules::{self, KeyName};
use crate::store::{Batch, Store, get_json, get_shared, schema};

/// Longest grace period of a roll.
pub const MAX_GRACE_SECONDS: u32 = 24 * 60 * 60;
/// Most ids one bulk revoke takes.
pub const MAX_BULK: usize = 1000;

fn status_name(status: KeyStatus) -> &'static str {
    match status {
        KeyStatus::Active => "active",
        KeyStatus::Expired => "expired",
        KeyStatus::Revoked => "revoked",
    }
}

impl<S: Store> Keygate<S> {
    /// `GET /v1/keys`: the caller's keys, or with `all=true` (admins) every key of the
    /// organization; newest first, filtered by status, namespace, owner and `q`.
    pub async fn list_keys(
        &self,
        caller: &Caller,
        query: KeyListQuery,
        now: Timestamp,
    ) -> Result<Page<KeyView>> {
        caller.require_user("an API key cannot list keys")?;
        let limit = page_limit(query.limit)? as usize;
        let prefix = if query.all == Some(true) {
            if !caller.user.has(Role::Admin) {
                return Err(Error::Forbidden(
                    "listing every key of the organization needs the admin role",
                ));
            }
            schema::org_keys(&caller.org.id)
        } else {
            schema::user_keys(&caller.user.id)
        };
        let mut owners: BTreeMap<String, Option<User>> = BTreeMap::new();
        owners.insert(caller.user.id.clone(), Some(caller.user.clone()));
        let mut items = Vec::new();
        let mut scan = Scan::new(&self.store, prefix, query.cursor.as_deref(), 100)?;
        while let Some(entry) = scan.next().await? {
            let Some(record) =
                get_json::<S, KeyRecord>(&self.store, &schema::key(schema::id_of(&entry))).await?
            else {
                continue;
            };
            if !owners.contains_key(&record.owner) {
                let owner = get_json::<S, User>(&self.store, &schema::user(&record.owner)).await?;
                owners.insert(record.owner.clone(), owner);
            }
            let Some(Some(owner)) = owners.get(&record.owner) else {
                continue;
            };
            let usage = self.usage_summary(&record.id).await?;
            let credits = self.credits_left(&record, now).await?;
            let view = key_view(&record, owner, usage.as_ref(), credits, now);
            let keep = query.status.is_none_or(|s| view.status == s)
                && query
                    .namespace
                    .as_deref()
                    .is_none_or(|n| view.namespace == n)
                && query.owner.as_deref().is_none_or(|o| view.owner.id == o)
                && view.matches(query.q.as_deref().unwrap_or(""));
            if keep {
                items.push(view);
            }
            if items.len() == limit {
                return Ok(Page {
                    items,
                    next_cursor: Some(scan.cursor()),
                });
            }
        }
        Ok(Page {
            items,
            next_cursor: None,
        })
    }

    /// A key the caller may see: its own, or any of the organization's for an admin. Any
    /// other id, including another organization's, is `NotFound`.
    /// Writes a changed key (stamping `updated_at`) together with its audit event.
    async fn save(
        &self,
        record: &mut KeyRecord,
        caller: &Caller,
        kind: &str,
        details: serde_json::Value,
        now: Timestamp,
    ) -> Result<KeyView> {
        record.updated_at = now;
        let mut batch = Batch::default();
        batch.put(schema::key(&record.id), &*record)?;
        record_event(&mut batch, caller, kind, record, details, now)?;
        self.commit_and_view(batch, record, caller, now).await
    }

    /// Commits `batch` and answers `record`'s view. What the view needs is read first: once
    /// the change is committed nothing may fail, or a made change would answer 503.
    async fn commit_and_view(
        &self,
        batch: Batch,
        record: &KeyRecord,
        caller: &Caller,
        now: Timestamp,
    ) -> Result<KeyView> {
        let (owner, usage) = self.view_parts(record, caller).await?;
        let credits = self.credits_left(record, now).await?;
        self.store.commit(batch).await?;
        Ok(key_view(record, &owner, usage.as_ref(), credits, now))
    }

    pub(crate) async fn visible_key_record(&self, caller: &Caller, id: &str) -> Result<KeyRecord> {
        self.visible_key(caller, id).await
    }

    async fn visible_key(&self, caller: &Caller, id: &str) -> Result<KeyRecord> {
        caller.require_user("an API key cannot manage keys")?;
        let record = get_json::<S, KeyRecord>(&self.store, &schema::key(id))
            .await?
            .ok_or(Error::NotFound("key"))?;
        let mine = record.owner == caller.user.id;
        if record.org != caller.org.id || !(mine || caller.user.has(Role::Admin)) {
            return Err(Error::NotFound("key"));
        }
        Ok(record)
    }

    async fn view(&self, record: &KeyRecord, caller: &Caller, now: Timestamp) -> Result<KeyView> {
        let (owner, usage) = self.view_parts(record, caller).await?;
        let credits = self.credits_left(record, now).await?;
        Ok(key_view(record, &owner, usage.as_ref(), credits, now))
    }

    /// The credits a key with credits has left now, from its meter.
    pub(super) async fn credits_left(
        &self,
        record: &KeyRecord,
        now: Timestamp,
    ) -> Result<Option<u64>> {
        if record.policy.credits.is_none() {
            return Ok(None);
        }
        self.meters()?.credits(record, now).await
    }

    /// The owner and usage a key's view shows.
    async fn view_parts(
        &self,
        record: &KeyRecord,
        caller: &Caller,
    ) -> Result<(User, Option<UsageSummary>)> {
        let owner = if record.owner == caller.user.id {
            caller.user.clone()
        } else {
            get_json::<S, User>(&self.store, &schema::user(&record.owner))
                .await?
                .ok_or(Error::NotFound("key"))?
        };
        Ok((owner, self.usage_summary(&record.id).await?))
    }

    /// `GET /v1/keys/{id}`: display information.
    pub async fn get_key(&self, caller: &Caller, id: &str, now: Timestamp) -> Result<KeyView> {
        let record = self.visible_key(caller, id).await?;
        self.view(&record, caller, now).await
    }

    /// `PATCH /v1/keys/{id}`: name and description only, by the owner or an admin.
    pub async fn update_key(
        &self,
        caller: &Caller,
        id: &str,
        patch: KeyPatch,
        now: Timestamp,
    ) -> Result<KeyView> {
        let mut record = self.visible_key(caller, id).await?;
        if patch.name.is_none() && patch.description.is_none() {
            return Err(Error::invalid(
                "body",
                "name the fields to change: name, description",
            ));
        }
        let previous = record.name.clone();
        if let Some(name) = patch.name {
            record.name = KeyName::try_from(name)?.into_inner();
        }
        if let Some(description) = patch.description {
            record.description = rules::description(description)?;
        }
        // The name before too, so that the log can say what it was renamed from.
        let details = json!({"name": record.name, "previous_name": previous});
        self.save(&mut record, caller, "key.updated", details, now)
            .await
    }

    /// `POST /v1/keys/{id}/revoke`: immediate and irreversible, on active keys only.
    pub async fn revoke_key(&self, caller: &Caller, id: &str, now: Timestamp) -> Result<KeyView> {
        let mut record = self.visible_key(caller, id).await?;
        let mut batch = Batch::default();
        revoke_into(&mut batch, &mut record, caller, now)?;
        self.commit_and_view(batch, &record, caller, now).await
    }

    /// `POST /v1/keys/revoke`: a result per id; every active key the caller may revoke is
    /// revoked, whatever happens to the others. All the revocations are one batch: a store
    /// failure answers 503 having revoked none of them, never some.
    pub async fn bulk_revoke(
        &self,
        caller: &Caller,
        ids: Vec<String>,
        now: Timestamp,
    ) -> Result<BulkRevokeResponse> {
        caller.require_user("an API key cannot manage keys")?;
        if ids.is_empty() || ids.len() > MAX_BULK {
            return Err(Error::invalid(
                "ids",
                format!("between 1 and {MAX_BULK} key ids"),
            ));
        }
        let mut results = Vec::with_capacity(ids.len());
        let mut batch = Batch::default();
        // An id given twice is revoked once (a batch names each store key once); the second
        // answers as an already revoked key would.
        let mut revoked = BTreeSet::new();
        for id in ids {
            let outcome = match self.visible_key(caller, &id).await {
                Ok(_) if revoked.contains(&id) => Err(Error::KeyNotActive("revoked")),
                Ok(mut record) => revoke_into(&mut batch, &mut record, caller, now),
                Err(e) => Err(e),
            };
            let (ok, code) = match outcome {
                Ok(()) => (true, None),
                Err(Error::Store(e)) => return Err(Error::Store(e)),
                Err(e) => (false, Some(e.code().to_owned())),
            };
            if ok {
                revoked.insert(id.clone());
            }
            results.push(BulkRevokeResult { id, ok, code });
        }
        if !revoked.is_empty() {
            self.store.commit(batch).await?;
        }
        Ok(BulkRevokeResponse { results })
    }

    /// `POST /v1/keys/{id}/roll`: a new secret for the same key; the old one keeps working
    /// for `grace_seconds`. Only the owner rolls, and only an active key.
    pub async fn roll_key(
        &self,
        caller: &Caller,
        id: &str,
        req: RollRequest,
        now: Timestamp,
    ) -> Result<CreatedKey> {
        let mut record = self.visible_key(caller, id).await?;
        if record.owner != caller.user.id {
            return Err(Error::Forbidden("only a key's owner can roll it"));
        }
        if req.grace_seconds > MAX_GRACE_SECONDS {
            return Err(Error::invalid(
                "grace_seconds",
                format!("between 0 and {MAX_GRACE_SECONDS}"),
            ));
        }
        match record.status(now) {
            KeyStatus::Active => {}
            other => return Err(Error::KeyNotActive(status_name(other))),
        }
        let key = ApiKey::generate(record.prefix(), &record.id["key_".len()..])?;
        let old = std::mem::replace(&mut record.secret_hash, key.secret_hash());
        record.previous = (req.grace_seconds > 0).then(|| PreviousSecret {
            hash: old,
            until: now + Duration::seconds(i64::from(req.grace_seconds)),
        });
        let details = json!({"grace_seconds": req.grace_seconds});
        let view = self
            .save(&mut record, caller, "key.rolled", details, now)
            .await?;
        Ok(CreatedKey {
            record: view,
            key: key.into_plaintext(),
        })
    }

    /// `DELETE /v1/keys/{id}`: physical and irreversible, by the owner only (SPEC §3.6).
    pub async fn delete_key(
        &self,
        caller: &Caller,
        id: &str,
        query: DeleteKeyQuery,
        now: Timestamp,
    ) -> Result<()> {
        let record = self.visible_key(caller, id).await?;
        if record.owner != caller.user.id {
            return Err(Error::Forbidden(
                "only a key's owner can delete it, from its own key page",
            ));
        }
        let owned = self.owned_by(&record.id).await?;
        let receiver = match &query.transfer_to {
            Some(to) => {
                // The receiver is "an editor": a member with resources.write in the namespace.
                let member = get_json::<S, User>(&self.store, &schema::user(to))
                    .await?
                    .filter(|m| m.org == caller.org.id);
                let member = member.ok_or(Error::NotFound("user"))?;
                if !self
                    .rights_in(&member, &caller.org, &record.namespace)
                    .await?
                    .allows_everywhere("resources.write")
                {
                    return Err(Error::invalid(
                        "transfer_to",
                        "the receiver needs resources.write in the key's namespace",
                    ));
                }
                Some(member)
            }
            None if !owned.is_empty() && query.delete_resources != Some(true) => {
                return Err(Error::Conflict(
                    "this key owns resources: name a receiver with transfer_to, or pass delete_resources=true",
                ));
            }
            None => None,
        };
        let mut batch = Batch::default();
        batch.delete(schema::key(&record.id));
        for grant in self.grants_of(&record.id).await? {
            super::catalogue::delete_grant_into(&mut batch, &record.org, &grant);
        }
        for resource in &owned {
            match &receiver {
                // Each key is written once per batch: the KV store does not keep op order.
                Some(member) => {
                    let moved = Resource {
                        owner: Owner {
                            kind: OwnerKind::User,
                            id: member.id.clone(),
                        },
                        ..resource.clone()
                    };
                    batch.put(schema::resource(&moved.id), &moved)?;
                    batch.mark(format!(
                        "{}{}",
                        schema::owned_resources(&member.id),
                        moved.id
                    ));
                    batch.delete(format!(
                        "{}{}",
                        schema::owned_resources(&record.id),
                        resource.id
                    ));
                }
                None => super::resources::delete_resource_into(&mut batch, resource),
            }
        }
        batch.delete(schema::newest_first(
            &schema::user_keys(&record.owner),
            record.created_at,
            &record.id,
        ));
        batch.delete(schema::newest_first(
            &schema::org_keys(&record.org),
            record.created_at,
            &record.id,
        ));
        let details =
            json!({"resources": owned.len(), "transferred_to": receiver.as_ref().map(|m| &m.id)});
        record_event(&mut batch, caller, "key.deleted", &record, details, now)?;
        self.store.commit(batch).await?;
        Ok(())
    }
}

/// Adds the revocation of `record` (active keys only) and its audit event to `batch`.
fn revoke_into(
    batch: &mut Batch,
    record: &mut KeyRecord,
    caller: &Caller,
    now: Timestamp,
) -> Result<()> {
    match record.status(now) {
        KeyStatus::Active => {}
        other => return Err(Error::KeyNotActive(status_name(other))),
    }
    write_revoked(batch, record, now)?;
    record_event(batch, caller, "key.revoked", record, json!({}), now)
}

/// Marks `record` revoked at `now` (a previous secret in its grace period ends with it) and
/// writes it to `batch`: a revocation, whoever asks for it.
pub(super) fn write_revoked(
    batch: &mut Batch,
    record: &mut KeyRecord,
    now: Timestamp,
) -> Result<()> {
    record.revoked_at = Some(now);
    record.previous = None;
    record.updated_at = now;
    batch.put(schema::key(&record.id), &*record)?;
    Ok(())
}

fn record_event(
    batch: &mut Batch,
    caller: &Caller,
    kind: &str,
    key: &KeyRecord,
    mut details: serde_json::Value,
    now: Timestamp,
) -> Result<()> {
    if let Some(map) = details.as_object_mut() {
        map.insert("key_id".into(), json!(key.id));
        map.insert("owner".into(), json!(key.owner));
    }
    record(
        batch,
        &caller.org.id,
        caller.actor(),
        kind,
        Some(&key.id),
        details,
        now,
    )
}

// A key's usage policy and credits (SPEC §4.5).
impl<S: Store> Keygate<S> {
    /// `PUT /v1/keys/{id}/policy`: the whole policy, by the key's owner or an admin, never a
    /// key. Limits kept by name keep the tokens they hold; the credits are set to what the
    /// policy says (with the new policy's ledger, in the same commit).
    pub async fn set_policy(
        &self,
        caller: &Caller,
        id: &str,
        req: PolicyRequest,
        now: Timestamp,
    ) -> Result<KeyView> {
        caller.require_user("an API key cannot change a key's policy")?;
        let mut record = self.visible_key(caller, id).await?;
        match record.status(now) {
            KeyStatus::Active => {}
            other => return Err(Error::KeyNotActive(status_name(other))),
        }
        let policy = req.validate()?;
        // Strictly later than the last setting, so that a meter always tells them apart.
        let set_at = now.max(record.policy_set_at() + Duration::milliseconds(1));
        record.policy = policy;
        record.policy_set_at = Some(set_at);
        record.updated_at = now;
        let mut batch = Batch::default();
        batch.put(schema::key(&record.id), &record)?;
        match CreditLedger::of(&record.policy, set_at) {
            Some(ledger) => batch.put(schema::credits(&record.id), &ledger)?,
            None => batch.delete(schema::credits(&record.id)),
        };
        let details = json!({ "policy": PolicyRequest::of(&record.policy) });
        record_event(
            &mut batch,
            caller,
            "key.policy_changed",
            &record,
            details,
            now,
        )?;
        let (owner, usage) = self.view_parts(&record, caller).await?;
        self.store.commit(batch).await?;
        // A meter that learns of policies from verifications alone (the edge's) is told now;
        // if it cannot be, the committed change still reaches it with the next verification
        // that reads the new record.
        if let Ok(meters) = self.meters() {
            let _ = meters.policy_set(&record, now).await;
        }
        let credits = record.policy.credits.map(|c| c.remaining);
        Ok(key_view(&record, &owner, usage.as_ref(), credits, now))
    }

    /// `POST /v1/keys/{id}/credits {add|set}`: by the key's owner or an admin, never a key,
    /// for a key with credits; counted where its meter counts them.
    pub async fn change_credits(
        &self,
        caller: &Caller,
        id: &str,
        change: CreditChange,
        now: Timestamp,
    ) -> Result<KeyView> {
        caller.require_user("an API key cannot change a key's credits")?;
        let record = self.visible_key(caller, id).await?;
        match record.status(now) {
            KeyStatus::Active => {}
            other => return Err(Error::KeyNotActive(status_name(other))),
        }
        let (field, n) = match change {
            CreditChange::Add(n) => ("add", n),
            CreditChange::Set(n) => ("set", n),
        };
        if n > MAX_CREDITS {
            return Err(Error::invalid(
                field,
                format!("at most {MAX_CREDITS} credits"),
            ));
        }
        if record.policy.credits.is_none() {
            return Err(Error::invalid(
                "credits",
                "the key has no credits: give it some in its policy first",
            ));
        }
        let (owner, usage) = self.view_parts(&record, caller).await?;
        let mut audit = Batch::default();
        record_event(
            &mut audit,
            caller,
            "key.credits_changed",
            &record,
            json!({ field: n }),
            now,
        )?;
        let (left, uncommitted) = self
            .meters()?
            .change_credits(&record, change, audit, now)
            .await?;
        // A meter in another store (the edge's object) made the change; its event follows.
        if let Some(audit) = uncommitted {
            self.store.commit(audit).await?;
        }
        Ok(key_view(&record, &owner, usage.as_ref(), left, now))
    }
}

// Creating a key, and the per-user maximum it checks.
impl<S: Store> Keygate<S> {
    /// `POST /v1/keys`, checking the rules of SPEC §3.1 in their documented order.
    pub async fn create_key(
        &self,
        caller: &Caller,
        req: CreateKeyRequest,
        now: Timestamp,
    ) -> Result<CreatedKey> {
        caller.require_user("an API key cannot create keys")?;
        let settings = &caller.org.settings;
        if !settings.api_keys_enabled {
            return Err(Error::ApiKeysDisabled);
        }
        if !caller.user.has(Role::Developer) {
            return Err(Error::DeveloperRoleRequired);
        }
        let rights = self
            .rights_in(&caller.user, &caller.org, &req.namespace)
            .await?;
        if rights.is_empty() {
            return Err(Error::NamespaceNotHeld(req.namespace));
        }
        let access = match (req.role, req.permissions) {
            (Some(role), None) => Access::Role(role),
            (None, Some(list)) => Access::Permissions(list),
            _ => {
                return Err(Error::invalid(
                    "role",
                    "give either a role or a permission list",
                ));
            }
        };
        rules::check_declared(&access, &rights)?;
        let name = KeyName::try_from(req.name)?;
        let description = rules::description(req.description)?;
        rules::check_expiry(req.expires_at, now, settings.max_expiry_days)?;
        let policy = crate::meter::PolicyRequest {
            ratelimits: req.ratelimits,
            credits: req.credits,
            allowed_cidrs: req.allowed_cidrs,
        }
        .validate()?;
        let active = self.count_active_keys(&caller.user.id, now).await?;
        if active >= settings.max_active_keys_per_user {
            return Err(Error::KeyQuotaExceeded(settings.max_active_keys_per_user));
        }

        let id_part = random_base62(ID_LEN)?;
        let prefix = self.key_prefix().await?;
        let key = ApiKey::generate(&prefix, &id_part)?;
        let record = KeyRecord {
            id: key.key_id(),
            org: caller.org.id.clone(),
            namespace: req.namespace,
            owner: caller.user.id.clone(),
            name: name.into_inner(),
            description,
            access,
            secret_hash: key.secret_hash(),
            created_at: now,
            updated_at: now,
            expires_at: req.expires_at,
            revoked_at: None,
            previous: None,
            grants: Default::default(),
            prefix: (prefix != crate::key::DEFAULT_PREFIX).then_some(prefix),
            policy,
            policy_set_at: None,
        };
        let mut batch = Batch::default();
        batch.put(schema::key(&record.id), &record)?;
        if let Some(ledger) = CreditLedger::of(&record.policy, record.policy_set_at()) {
            batch.put(schema::credits(&record.id), &ledger)?;
        }
        batch.mark(schema::newest_first(
            &schema::user_keys(&record.owner),
            now,
            &record.id,
        ));
        batch.mark(schema::newest_first(
            &schema::org_keys(&record.org),
            now,
            &record.id,
        ));
        super::events::record(
            &mut batch,
            &record.org,
            caller.actor(),
            "key.created",
            Some(&record.id),
            serde_json::json!({"key_id": record.id, "owner": record.owner, "name": record.name, "namespace": record.namespace}),
            now,
        )?;
        if let Some(expires_at) = record.expires_at {
            super::reminders::schedule(&mut batch, &record.id, expires_at)?;
        }
        self.store.commit(batch).await?;
        Ok(CreatedKey {
            record: key_view(&record, &caller.user, None, None, now),
            key: key.into_plaintext(),
        })
    }

    pub(super) async fn count_active_keys(&self, user: &str, now: Timestamp) -> Result<u32> {
        let prefix = schema::user_keys(user);
        let mut cursor: Option<String> = None;
        let mut active = 0;
        loop {
            let page = self.store.list(&prefix, cursor.as_deref(), 1000).await?;
            for entry in &page.keys {
                // Through the record cache: on the server, a busy owner's keys are in memory.
                let record =
                    get_shared::<S, KeyRecord>(&self.store, &schema::key(schema::id_of(entry)))
                        .await?;
                if record.is_some_and(|r| r.status(now) == KeyStatus::Active) {
                    active += 1;
                }
            }
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(active),
            }
        }
    }
}
