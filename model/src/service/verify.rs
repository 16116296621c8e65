//! Verification (SPEC §4.1): a key's checks in their order, its live rights, and the answers
//! both hosts send, with the known-valid fast path.

use super::*;

impl<S: Store> Keygate<S> {
    /// `POST /v1/keys/verify` (SPEC §4.1). A store failure is an `Err`, never `VALID`.
    pub async fn verify(&self, req: &VerifyRequest, now: Timestamp) -> Result<VerifyResponse> {
        Ok(self.verdict(req, now).await?.0)
    }

    /// [`Keygate::verify`], and for a refusal by a rate limit or spent credits how many
    /// seconds the caller should wait (`Retry-After`, the gateway's).
    pub async fn verdict(
        &self,
        req: &VerifyRequest,
        now: Timestamp,
    ) -> Result<(VerifyResponse, Option<u64>)> {
        Ok(match self.outcome(req, now).await? {
            None => (VerifyResponse::bare(VerifyCode::NotFound), None),
            Some(outcome) => {
                let retry = outcome
                    .metered
                    .as_ref()
                    .and_then(|m| m.retry_after_s(&outcome.record.policy, now));
                // The permissions are moved out when this verification computed them.
                let permissions = outcome
                    .rights
                    .map(|r| Arc::try_unwrap(r).map_or_else(|r| r.scopes.clone(), |r| r.scopes));
                let answer = answer(
                    outcome.code,
                    &outcome.record,
                    permissions,
                    outcome.metered.as_ref(),
                );
                (answer, retry)
            }
        })
    }

    /// [`Keygate::verify`]'s answer as the JSON text the endpoint sends. Where the store keeps
    /// a record cache, a key verified `VALID` before, with no commit since that could change
    /// its answer, is answered from it: the secret, the status at `now` and the request's
    /// namespace and permissions are checked again every time; the answer's text, which
    /// depends on nothing else (the key's record, its creator's membership and the ceiling,
    /// all outdated by any commit that touches them), is reused.
    pub async fn verify_json(
        &self,
        req: &VerifyRequest,
        now: Timestamp,
    ) -> Result<(VerifyCode, String)> {
        let Some(cache) = self.store.records() else {
            let answer = self.verify(req, now).await?;
            return Ok((answer.code, serde_json::to_string(&answer)?));
        };
        let name = KeyRef::parse(&req.key).ok().map(|key| {
            (
                key,
                [crate::store::cache::DERIVED, "valid:", key.id_part()].concat(),
            )
        });
        if let Some((key, name)) = &name
            && let Some(known) = cache.derived::<KnownValid>(name)
            && !known.record.policy.is_metered()
            && rules::check_secret(&known.record, key, now) == SecretCheck::Active
            && decide(
                &known.record,
                &known.rights.rights,
                req,
                self.resource_home(req).await?.as_deref(),
            ) == VerifyCode::Valid
        {
            self.usage.count(
                &known.record,
                now,
                VerifyCode::Valid,
                req.client_ip.as_deref(),
            );
            return Ok((VerifyCode::Valid, known.answer.clone()));
        }
        let read_at = cache.generation();
        let Some(Outcome {
            code,
            record,
            rights,
            metered,
        }) = self.outcome(req, now).await?
        else {
            let answer = VerifyResponse::bare(VerifyCode::NotFound);
            return Ok((VerifyCode::NotFound, serde_json::to_string(&answer)?));
        };
        let text = serde_json::to_string(&answer(
            code,
            &record,
            rights.as_ref().map(|r| r.scopes.clone()),
            metered.as_ref(),
        ))?;
        // A metered key's answer changes with every use: never reused.
        if let (Some((_, name)), Some(rights), VerifyCode::Valid, None) =
            (name, rights, code, metered)
        {
            let known = KnownValid {
                record,
                rights,
                answer: text.clone(),
            };
            cache.remember_derived(&name, Arc::new(known), read_at);
        }
        Ok((code, text))
    }

    /// A verification's outcome, counted: `None` for a key that is not found; otherwise the
    /// code, the record, for a key that was usable its rights, and for a metered one what its
    /// meter said. Only a verification that every other check let through spends (its
    /// `cost`); a refused one reads the meter's state with a cost of 0, spending nothing.
    pub(super) async fn outcome(
        &self,
        req: &VerifyRequest,
        now: Timestamp,
    ) -> Result<Option<Outcome>> {
        let (mut code, record, rights, mut metered) = match self.check_key(&req.key, now).await? {
            Checked::NotFound => return Ok(None),
            Checked::Refused { record, code } => (code, record, None, None),
            Checked::Usable { record, owner, org } => {
                let rights = self.verified_rights(&record, &owner, &org).await?;
                let home = self.resource_home(req).await?;
                let code = decide(&record, &rights.rights, req, home.as_deref());
                (code, record, Some(rights), None)
            }
        };
        if rights.is_some() && record.policy.is_metered() {
            let cost = match code {
                VerifyCode::Valid => req.cost.unwrap_or(1),
                _ => 0,
            };
            let spent = self.meters()?.spend(&record, cost, now).await?;
            if code == VerifyCode::Valid {
                code = spent.code;
            }
            metered = Some(spent);
        }
        self.usage
            .count(&record, now, code, req.client_ip.as_deref());
        Ok(Some(Outcome {
            code,
            record,
            rights,
            metered,
        }))
    }

    /// The namespace the resource a verification names lives in, when Keygate knows that
    /// resource (read through the record cache; an unknown id is `None`, a failing store an
    /// error). Read only when a resource is named, so a plain verification costs nothing more.
    pub(super) async fn resource_home(&self, req: &VerifyRequest) -> Result<Option<String>> {
        let Some(id) = req.resource.as_deref() else {
            return Ok(None);
        };
        if !crate::id::Kind::Resource.matches(id) {
            return Ok(None);
        }
        let resource = get_shared::<S, Resource>(&self.store, &schema::resource(id)).await?;
        Ok(resource.map(|r| r.namespace.clone()))
    }

    /// Looks a plaintext key up: checksum first (no store read on garbage), then the record,
    /// the secret, the status, the organization switch and the creator's membership.
    pub(super) async fn check_key(&self, text: &str, now: Timestamp) -> Result<Checked> {
        let Ok(key) = KeyRef::parse(text) else {
            return Ok(Checked::NotFound);
        };
        let Some(record) =
            get_shared::<S, KeyRecord>(&self.store, &schema::key(&key.key_id())).await?
        else {
            return Ok(Checked::NotFound);
        };
        let refused = |record, code| Ok(Checked::Refused { record, code });
        match rules::check_secret(&record, &key, now) {
            SecretCheck::Unknown => return Ok(Checked::NotFound),
            SecretCheck::Refused(code) => return refused(record, code),
            SecretCheck::Active => {}
        }
        let Some((owner, org)) = self.member(&record.owner).await? else {
            // The creator left the organization: its keys stop working (SPEC §3.2).
            return refused(record, VerifyCode::Disabled);
        };
        if org.id != record.org || !org.settings.api_keys_enabled {
            return refused(record, VerifyCode::Disabled);
        }
        Ok(Checked::Usable { record, owner, org })
    }

    /// [`Keygate::effective_rights`] and their wire form, shared through the store's record
    /// cache when it keeps one (valid until the next commit): the verification path.
    pub(super) async fn verified_rights(
        &self,
        record: &KeyRecord,
        owner: &User,
        org: &Organization,
    ) -> Result<Arc<VerifiedRights>> {
        let Some(cache) = self.store.records() else {
            return Ok(Arc::new(VerifiedRights::new(
                self.effective_rights(record, owner, org).await?,
            )));
        };
        let name = [crate::store::cache::DERIVED, "rights:", &record.id].concat();
        if let Some(known) = cache.derived::<VerifiedRights>(&name) {
            return Ok(known);
        }
        let read_at = cache.generation();
        let rights = Arc::new(VerifiedRights::new(
            self.effective_rights(record, owner, org).await?,
        ));
        cache.remember_derived(&name, Arc::clone(&rights), read_at);
        Ok(rights)
    }

    /// A key's effective rights now: what it declares (its access, plus any grants naming the
    /// key in its namespace) ∩ what its creator holds there (SPEC §3.2).
    pub(crate) async fn effective_rights(
        &self,
        record: &KeyRecord,
        owner: &User,
        org: &Organization,
    ) -> Result<Rights> {
        let creator = self.rights_in(owner, org, &record.namespace).await?;
        let mut effective = rules::effective(&record.access, &creator);
        for id in &record.grants {
            let Some(grant) = get_shared::<S, Grant>(&self.store, &schema::grant(id)).await? else {
                continue;
            };
            let grant = Arc::unwrap_or_clone(grant);
            if grant.principal == record.id && grant.namespace == record.namespace {
                let extra =
                    crate::domain::Access::Permissions(vec![crate::domain::PermissionScope {
                        permission: grant.permission,
                        resources: grant.resources,
                    }]);
                effective.merge(&rules::effective(&extra, &creator));
            }
        }
        Ok(effective)
    }

    /// A user and its organization, if both exist.
    pub(super) async fn member(
        &self,
        user_id: &str,
    ) -> Result<Option<(Arc<User>, Arc<Organization>)>> {
        let Some(user) = get_shared::<S, User>(&self.store, &schema::user(user_id)).await? else {
            return Ok(None);
        };
        let org = get_shared::<S, Organization>(&self.store, &schema::org(&user.org)).await?;
        Ok(org.map(|org| (user, org)))
    }
}

/// A key's effective rights, decided once per store generation, and their wire form.
pub(super) struct VerifiedRights {
    rights: Rights,
    scopes: Vec<crate::domain::PermissionScope>,
}

impl VerifiedRights {
    fn new(rights: Rights) -> Self {
        Self {
            scopes: rights.to_scopes(),
            rights,
        }
    }
}

/// A key's last `VALID` answer and what decides whether it still holds
/// ([`Keygate::verify_json`]); kept as a derived value, so outdated by any commit that could
/// change it.
pub(super) struct KnownValid {
    record: Arc<KeyRecord>,
    rights: Arc<VerifiedRights>,
    answer: String,
}

/// A found key's verification: see [`Keygate::outcome`].
pub(super) struct Outcome {
    code: VerifyCode,
    record: Arc<KeyRecord>,
    rights: Option<Arc<VerifiedRights>>,
    metered: Option<crate::meter::Metered>,
}

/// The answer about a found key: its identity, when usable its effective permissions, and
/// for a metered key its limits and credits as its meter left them.
pub(super) fn answer(
    code: VerifyCode,
    record: &KeyRecord,
    permissions: Option<Vec<crate::domain::PermissionScope>>,
    metered: Option<&crate::meter::Metered>,
) -> VerifyResponse {
    VerifyResponse {
        valid: code == VerifyCode::Valid,
        code,
        key_id: Some(record.id.clone()),
        namespace: Some(record.namespace.clone()),
        owner: Some(record.owner.clone()),
        name: Some(record.name.clone()),
        permissions: Some(permissions.unwrap_or_default()),
        expires_at: record.expires_at,
        ratelimits: Some(metered.map(|m| m.ratelimits.clone()).unwrap_or_default()),
        credits: metered.and_then(|m| m.credits),
    }
}

/// The outcome for a usable key (secret, status, organization and creator checked): the
/// namespace asked for, then every permission asked for (on the resource, when named). A
/// resource Keygate knows to live in another namespace (`home`) is never covered, whatever
/// the key's grants say: a grant on every resource of a namespace covers that namespace's.
pub(super) fn decide(
    record: &KeyRecord,
    rights: &Rights,
    req: &VerifyRequest,
    home: Option<&str>,
) -> VerifyCode {
    if req
        .namespace
        .as_deref()
        .is_some_and(|ns| ns != record.namespace)
    {
        VerifyCode::WrongNamespace
    } else if !record.policy.allows(req.client_ip.as_deref()) {
        VerifyCode::IpNotAllowed
    } else if home.is_some_and(|ns| ns != record.namespace)
        || req
            .permissions
            .iter()
            .flatten()
            .any(|p| !rights.allows(p, req.resource.as_deref()))
    {
        VerifyCode::InsufficientPermissions
    } else {
        VerifyCode::Valid
    }
}

/// The outcome of looking a plaintext key up.
pub(super) enum Checked {
    NotFound,
    Refused {
        record: Arc<KeyRecord>,
        code: VerifyCode,
    },
    Usable {
        record: Arc<KeyRecord>,
        owner: Arc<User>,
        org: Arc<Organization>,
    },
}
