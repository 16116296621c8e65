//! The operations of Keygate over any [`Store`]: what both hosts serve, written once.
//!
//! Every operation takes `now` from its host, so the rules are deterministic under test and
//! the same on a server clock and a Worker's `Date.now()`.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::api::{
    CreateKeyRequest, CreatedKey, KeyOwner, KeyView, LoginRequest, LoginResponse, MeNamespace,
    MeResponse, OrganizationView, SettingsPatch, UserView, VerifyCode, VerifyRequest,
    VerifyResponse,
};
use crate::domain::{
    Access, Grant, KeyRecord, KeyStatus, Organization, PasswordHash, Resource, Role, Session,
    Settings, Timestamp, User,
};
use crate::error::{Error, Result};
use crate::id::{Kind, new_id};
use crate::key::{ApiKey, ID_LEN, KeyRef, hex, random_base62};
use crate::password;
use crate::rules::{self, KeyName, Rights, SecretCheck};
use crate::store::{Batch, Store, get_json, get_shared, schema};

mod events;
mod keys;
mod members;
mod namespaces;
mod resources;
mod scan;
mod usage;

pub use usage::{USAGE_RETENTION, UsageBuffer, UsageSummary, minute_of};

pub use namespaces::{namespace_name, valid_permission};

/// Prefix of session tokens, so they are never mistaken for API keys.
pub const SESSION_PREFIX: &str = "kgs_";
/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "keygate_session";
/// Header a cookie-authenticated mutating call must carry.
pub const CSRF_HEADER: &str = "x-keygate-csrf";
/// Default and largest page size of every list.
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;
/// The email of the first admin when the host's environment names none.
pub const DEFAULT_ADMIN_EMAIL: &str = "admin@keygate.local";

/// How a request presents itself.
#[derive(Clone, Copy)]
pub enum Credential<'a> {
    /// Nothing.
    None,
    /// `Authorization: Bearer …`: a session token or an API key. No CSRF header is needed.
    Bearer(&'a str),
    /// The session cookie, with the CSRF header if one was sent.
    Cookie {
        token: &'a str,
        csrf: Option<&'a str>,
    },
}

/// Who is calling, once authenticated.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub org: Organization,
    pub via: Via,
}

/// What the caller authenticated with.
#[derive(Debug, Clone)]
pub enum Via {
    /// A session, stored under `token_hash`.
    Session {
        token_hash: String,
        session: Session,
    },
    /// An API key, acting with its effective rights inside its namespace only (SPEC §4.2).
    Key(Box<KeyRecord>),
}

impl Caller {
    pub(crate) fn require_user(&self, what: &'static str) -> Result<()> {
        match self.via {
            Via::Session { .. } => Ok(()),
            Via::Key(_) => Err(Error::Forbidden(what)),
        }
    }

    pub(crate) fn require_admin(&self) -> Result<()> {
        self.require_user("an API key cannot change settings, members or roles")?;
        if self.user.has(Role::Admin) {
            Ok(())
        } else {
            Err(Error::Forbidden("this needs the admin role"))
        }
    }
}

/// Failed sign-ins allowed per email within [`LOGIN_WINDOW`] before 429 `rate_limited`.
pub const MAX_LOGIN_FAILURES: u32 = 5;
/// The window over which failed sign-ins are counted.
pub const LOGIN_WINDOW: time::Duration = time::Duration::minutes(15);

/// Failed sign-ins of one email in the current window.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct LoginThrottle {
    failures: u32,
    #[serde(with = "time::serde::rfc3339")]
    window_start: Timestamp,
}

/// The result of a first start.
#[derive(Debug, Clone)]
pub struct Bootstrapped {
    pub organization: String,
    pub email: String,
    /// Set when the host gave no password: the token of the one-time set-up link
    /// (`/#/setup/<token>`, [`SETUP_TTL`]) to print once, on the host's console.
    pub setup_token: Option<String>,
}

/// Prefix of set-up tokens.
pub const SETUP_PREFIX: &str = "kgu_";
/// How long a set-up link works; a host started again after that prints a new one.
pub const SETUP_TTL: time::Duration = time::Duration::hours(1);

/// The line a host prints for a set-up link's `token`, on the console served at `origin`.
pub fn setup_notice(origin: &str, token: &str) -> String {
    format!(
        "Keygate: choose the first admin's password at {origin}/#/setup/{token} (valid for {} minutes)",
        SETUP_TTL.whole_minutes()
    )
}

/// Keygate's operations over a store.
#[derive(Debug, Clone)]
pub struct Keygate<S> {
    store: S,
    usage: std::sync::Arc<usage::UsageBuffer>,
}

impl<S: Store> Keygate<S> {
    /// Operations over `store`.
    pub fn new(store: S) -> Self {
        Self {
            store,
            usage: std::sync::Arc::default(),
        }
    }

    /// Operations over `store` counting verifications into a shared `usage` buffer (the worker
    /// keeps one per isolate, across requests).
    pub fn with_usage(store: S, usage: std::sync::Arc<UsageBuffer>) -> Self {
        Self { store, usage }
    }

    /// Whether verification counts wait to be flushed with [`Keygate::flush_usage`].
    pub fn usage_pending(&self) -> bool {
        !self.usage.is_empty()
    }

    /// The underlying store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// First start: if the store has never been bootstrapped, creates the organization and its
    /// first admin (roles admin + developer). Without a password the admin has none yet, and
    /// the answer carries a one-time set-up link's token instead: a generated password
    /// printed to a log would be a standing credential there. Returns `None` when already
    /// done.
    pub async fn bootstrap(
        &self,
        email: Option<String>,
        password: Option<String>,
        now: Timestamp,
    ) -> Result<Option<Bootstrapped>> {
        if self.store.get(&schema::bootstrap()).await?.is_some() {
            return Ok(None);
        }
        let email = normalize_email(email.as_deref().unwrap_or(DEFAULT_ADMIN_EMAIL))?;
        let password_hash = match password.filter(|p| !p.is_empty()) {
            Some(p) => Some(PasswordHash(password::hash(&p)?)),
            None => None,
        };
        let org = Organization {
            id: new_id(Kind::Organization)?,
            name: "Keygate".into(),
            settings: Settings::default(),
            permissions: Vec::new(),
            created_at: now,
        };
        let user = User {
            id: new_id(Kind::User)?,
            org: org.id.clone(),
            email: email.clone(),
            name: "Administrator".into(),
            roles: [Role::Admin, Role::Developer].into(),
            password_hash,
            created_at: now,
        };
        let mut batch = Batch::default();
        let setup_token = match user.password_hash {
            Some(_) => None,
            None => Some(setup_into(&mut batch, &user.id, now)?),
        };
        batch.put(schema::org(&org.id), &org)?;
        batch.put(schema::user(&user.id), &user)?;
        batch.put(schema::email(&email), &user.id)?;
        batch.mark(schema::org_user(&org.id, &user.id));
        batch.put(schema::instance_admin(), &user.id)?;
        batch.put(schema::bootstrap(), &org.id)?;
        self.store.commit(batch).await?;
        Ok(Some(Bootstrapped {
            organization: org.id,
            email,
            setup_token,
        }))
    }

    /// At a later start: while the first admin has not chosen a password, a new set-up
    /// link's token to print — when `replace` (the server: every start prints a fresh link,
    /// and the earlier one stops working), or when no earlier link still works (the worker,
    /// whose isolates each start: one link at a time). `None` once a password is set.
    ///
    /// One store read when nothing is pending (the set-up record exists only until the link is
    /// used), so that every start — each isolate's, at the edge — costs next to nothing.
    pub async fn renew_setup(&self, now: Timestamp, replace: bool) -> Result<Option<String>> {
        let _turn = self.store.turn().await;
        let Some(current) =
            get_json::<S, crate::domain::SetupToken>(&self.store, &schema::setup()).await?
        else {
            return Ok(None);
        };
        if current.expires_at > now && !replace {
            return Ok(None);
        }
        let user = get_json::<S, User>(&self.store, &schema::user(&current.user)).await?;
        if user.is_none_or(|u| u.password_hash.is_some()) {
            return Ok(None);
        }
        let mut batch = Batch::default();
        let token = setup_into(&mut batch, &current.user, now)?;
        self.store.commit(batch).await?;
        Ok(Some(token))
    }

    /// `POST /v1/setup/{token}`: the first admin chooses its password (and, optionally, its
    /// name) through the set-up link; the link is spent.
    pub async fn setup(
        &self,
        token: &str,
        req: crate::api::SetupRequest,
        now: Timestamp,
    ) -> Result<crate::api::AcceptResponse> {
        let name = req.name.as_deref().map(members::display_name).transpose()?;
        members::check_password(&req.password)?;
        // Hashed before the turn: Argon2 never holds up other changes.
        let hash = PasswordHash(password::hash(&req.password)?);
        let _turn = self.store.turn().await;
        let setup = get_json::<S, crate::domain::SetupToken>(&self.store, &schema::setup())
            .await?
            .filter(|s| s.expires_at > now)
            .filter(|s| {
                subtle::ConstantTimeEq::ct_eq(s.token_hash.as_bytes(), token_hash(token).as_bytes())
                    .into()
            })
            .ok_or(Error::NotFound("set-up link"))?;
        let mut user = get_json::<S, User>(&self.store, &schema::user(&setup.user))
            .await?
            .filter(|u| u.password_hash.is_none())
            .ok_or(Error::NotFound("set-up link"))?;
        user.password_hash = Some(hash);
        if let Some(name) = name {
            user.name = name;
        }
        let mut batch = Batch::default();
        batch.put(schema::user(&user.id), &user)?;
        batch.delete(schema::setup());
        let actor = crate::api::Actor {
            kind: "user".into(),
            id: user.id.clone(),
        };
        events::record(
            &mut batch,
            &user.org,
            actor,
            "member.password_set",
            Some(&user.id),
            serde_json::json!({"email": user.email, "through": "set-up link"}),
            now,
        )?;
        self.store.commit(batch).await?;
        Ok(crate::api::AcceptResponse {
            user: user_view(&user),
        })
    }

    /// Signs in: a wrong email and a wrong password answer the same, in the same time. An
    /// email that is not an email at all (too long, no `@`) is 422 and writes nothing.
    ///
    /// The attempt is counted before the password is tried, in the store's turn, so however
    /// many sign-ins for one email race, at most [`MAX_LOGIN_FAILURES`] passwords are tried
    /// per [`LOGIN_WINDOW`] (SPEC §10); a success gives its own count back. The password is
    /// checked outside the turn, so a flood of sign-ins never holds up other changes.
    pub async fn login(&self, req: LoginRequest, now: Timestamp) -> Result<LoginResponse> {
        let email = normalize_email(&req.email)?;
        let throttle_key = schema::login_throttle(&email);
        {
            let _turn = self.store.turn().await;
            let throttle = self.live_throttle(&throttle_key, now).await?;
            let (failures, window_start) =
                throttle.map_or((0, now), |t| (t.failures, t.window_start));
            if failures >= MAX_LOGIN_FAILURES {
                return Err(Error::RateLimited);
            }
            let reserved = LoginThrottle {
                failures: failures + 1,
                window_start,
            };
            let mut batch = Batch::default();
            batch.put_expiring(throttle_key.clone(), &reserved, window_start + LOGIN_WINDOW)?;
            self.store.commit(batch).await?;
        }
        let user = match get_json::<S, String>(&self.store, &schema::email(&email)).await? {
            Some(id) => get_json::<S, User>(&self.store, &schema::user(&id)).await?,
            None => None,
        };
        let ok = match user.as_ref().and_then(|u| u.password_hash.as_ref()) {
            Some(hash) => password::verify(&req.password, &hash.0),
            None => {
                password::verify(&req.password, password::decoy());
                false
            }
        };
        let _turn = self.store.turn().await;
        let mut batch = Batch::default();
        let Some(user) = user.filter(|_| ok) else {
            // The attempt stays counted, whether or not the email exists, so both answer
            // alike; a known email's organization audits it.
            self.record_login_failure(&mut batch, &email, now).await?;
            if !batch.ops.is_empty() {
                self.store.commit(batch).await?;
            }
            return Err(Error::InvalidCredentials);
        };
        let token = format!("{SESSION_PREFIX}{}", random_base62(43)?);
        let session = Session {
            user: user.id.clone(),
            org: user.org.clone(),
            csrf_token: random_base62(32)?,
            expires_at: now + rules::SESSION_TTL,
        };
        batch.put_expiring(
            schema::session(&token_hash(&token)),
            &session,
            session.expires_at,
        )?;
        match self.live_throttle(&throttle_key, now).await? {
            Some(t) if t.failures > 1 => {
                let kept = LoginThrottle {
                    failures: t.failures - 1,
                    ..t
                };
                batch.put_expiring(throttle_key, &kept, kept.window_start + LOGIN_WINDOW)?;
            }
            _ => {
                batch.delete(throttle_key);
            }
        }
        self.store.commit(batch).await?;
        Ok(LoginResponse {
            token,
            csrf_token: session.csrf_token,
            user: user_view(&user),
        })
    }

    /// The sign-in attempts counted for `key` in the window that is still running at `now`.
    async fn live_throttle(&self, key: &str, now: Timestamp) -> Result<Option<LoginThrottle>> {
        Ok(get_json::<S, LoginThrottle>(&self.store, key)
            .await?
            .filter(|t| t.window_start + LOGIN_WINDOW > now))
    }

    /// Audits a failed login against a known email's organization (an unknown email has no
    /// organization to audit in). The event names the email, never the password tried.
    async fn record_login_failure(
        &self,
        batch: &mut Batch,
        email: &str,
        now: Timestamp,
    ) -> Result<()> {
        let Some(id) = get_json::<S, String>(&self.store, &schema::email(email)).await? else {
            return Ok(());
        };
        let Some(user) = get_json::<S, User>(&self.store, &schema::user(&id)).await? else {
            return Ok(());
        };
        let actor = crate::api::Actor {
            kind: "user".into(),
            id: user.id.clone(),
        };
        events::record(
            batch,
            &user.org,
            actor,
            "login.failed",
            Some(&user.id),
            serde_json::json!({"email": email}),
            now,
        )
    }

    /// Ends the caller's session.
    pub async fn logout(&self, caller: &Caller) -> Result<()> {
        let Via::Session { token_hash, .. } = &caller.via else {
            return Err(Error::Forbidden("an API key has no session to end"));
        };
        let mut batch = Batch::default();
        batch.delete(schema::session(token_hash));
        self.store.commit(batch).await?;
        Ok(())
    }

    /// Resolves a credential to a caller. `mutating` calls made with the cookie must carry the
    /// session's CSRF token.
    pub async fn authenticate(
        &self,
        credential: Credential<'_>,
        mutating: bool,
        now: Timestamp,
    ) -> Result<Caller> {
        let (token, csrf) = match credential {
            Credential::None => return Err(Error::Unauthenticated),
            Credential::Bearer(token) if token.starts_with(crate::key::PREFIX) => {
                return self.authenticate_key(token, now).await;
            }
            Credential::Bearer(token) => (token, None),
            Credential::Cookie { token, csrf } => (token, Some(csrf)),
        };
        let hash = token_hash(token);
        let session: Session = get_json(&self.store, &schema::session(&hash))
            .await?
            .ok_or(Error::Unauthenticated)?;
        if session.expires_at <= now {
            return Err(Error::Unauthenticated);
        }
        if let Some(sent) = csrf {
            let ok = sent.is_some_and(|s| {
                subtle::ConstantTimeEq::ct_eq(s.as_bytes(), session.csrf_token.as_bytes()).into()
            });
            if mutating && !ok {
                return Err(Error::CsrfRequired);
            }
        }
        let (user, org) = self
            .member(&session.user)
            .await?
            .ok_or(Error::Unauthenticated)?;
        Ok(Caller {
            user: Arc::unwrap_or_clone(user),
            org: Arc::unwrap_or_clone(org),
            via: Via::Session {
                token_hash: hash,
                session,
            },
        })
    }

    async fn authenticate_key(&self, token: &str, now: Timestamp) -> Result<Caller> {
        let verdict = self.check_key(token, now).await?;
        match verdict {
            Checked::Usable { record, owner, org } => Ok(Caller {
                user: Arc::unwrap_or_clone(owner),
                org: Arc::unwrap_or_clone(org),
                via: Via::Key(Box::new(Arc::unwrap_or_clone(record))),
            }),
            _ => Err(Error::Unauthenticated),
        }
    }

    /// `GET /v1/me`.
    pub async fn me(&self, caller: &Caller) -> Result<MeResponse> {
        let mut namespaces = Vec::new();
        for ns in self.all_namespaces(&caller.org).await? {
            let rights = match &caller.via {
                Via::Session { .. } => self.rights_in(&caller.user, &caller.org, &ns.id).await?,
                Via::Key(record) if record.namespace == ns.id => {
                    self.effective_rights(record, &caller.user, &caller.org)
                        .await?
                }
                Via::Key(_) => continue,
            };
            if !rights.is_empty() || matches!(caller.via, Via::Key(_)) {
                namespaces.push(MeNamespace {
                    id: ns.id,
                    kind: ns.kind,
                    name: ns.name,
                    permissions: rights.permissions().map(str::to_owned).collect(),
                    scopes: rights.to_scopes(),
                });
            }
        }
        Ok(MeResponse {
            user: user_view(&caller.user),
            organization: OrganizationView {
                id: caller.org.id.clone(),
                name: caller.org.name.clone(),
            },
            roles: caller.user.roles.iter().copied().collect(),
            namespaces,
            csrf_token: match &caller.via {
                Via::Session { session, .. } => Some(session.csrf_token.clone()),
                Via::Key(_) => None,
            },
            max_expiry_days: caller.org.settings.max_expiry_days,
        })
    }

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
        let active = self.count_active_keys(&caller.user.id, now).await?;
        if active >= settings.max_active_keys_per_user {
            return Err(Error::KeyQuotaExceeded(settings.max_active_keys_per_user));
        }

        let id_part = random_base62(ID_LEN)?;
        let key = ApiKey::generate(&id_part)?;
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
        };
        let mut batch = Batch::default();
        batch.put(schema::key(&record.id), &record)?;
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
        events::record(
            &mut batch,
            &record.org,
            caller.actor(),
            "key.created",
            Some(&record.id),
            serde_json::json!({"key_id": record.id, "owner": record.owner, "name": record.name, "namespace": record.namespace}),
            now,
        )?;
        self.store.commit(batch).await?;
        Ok(CreatedKey {
            record: key_view(&record, &caller.user, None, now),
            key: key.into_plaintext(),
        })
    }

    /// `POST /v1/keys/verify` (SPEC §4.1). A store failure is an `Err`, never `VALID`.
    pub async fn verify(&self, req: &VerifyRequest, now: Timestamp) -> Result<VerifyResponse> {
        Ok(match self.outcome(req, now).await? {
            None => VerifyResponse::bare(VerifyCode::NotFound),
            // The permissions are moved out when this verification computed them.
            Some((code, record, rights)) => answer(
                code,
                &record,
                rights.map(|r| Arc::try_unwrap(r).map_or_else(|r| r.scopes.clone(), |r| r.scopes)),
            ),
        })
    }

    /// [`Keygate::verify`]'s answer as the JSON text the endpoint sends. Where the store keeps
    /// a record cache, a key verified `VALID` before, with no commit since that could change
    /// its answer, is answered from it: the secret, the status at `now` and the request's
    /// namespace and permissions are checked again every time; the answer's text, which
    /// depends on nothing else (the key's record, its creator's membership and the ceiling,
    /// all outdated by any commit that touches them), is reused.
    pub async fn verify_json(&self, req: &VerifyRequest, now: Timestamp) -> Result<String> {
        let Some(cache) = self.store.records() else {
            return Ok(serde_json::to_string(&self.verify(req, now).await?)?);
        };
        let name = KeyRef::parse(&req.key).ok().map(|key| {
            (
                key,
                [crate::store::cache::DERIVED, "valid:", key.id_part()].concat(),
            )
        });
        if let Some((key, name)) = &name
            && let Some(known) = cache.derived::<KnownValid>(name)
            && rules::check_secret(&known.record, &key.secret_hash(), now) == SecretCheck::Active
            && decide(
                &known.record,
                &known.rights.rights,
                req,
                self.resource_home(req).await?.as_deref(),
            ) == VerifyCode::Valid
        {
            self.usage.count(&known.record, now, VerifyCode::Valid);
            return Ok(known.answer.clone());
        }
        let read_at = cache.generation();
        let Some((code, record, rights)) = self.outcome(req, now).await? else {
            return Ok(serde_json::to_string(&VerifyResponse::bare(
                VerifyCode::NotFound,
            ))?);
        };
        let text = serde_json::to_string(&answer(
            code,
            &record,
            rights.as_ref().map(|r| r.scopes.clone()),
        ))?;
        if let (Some((_, name)), Some(rights), VerifyCode::Valid) = (name, rights, code) {
            let known = KnownValid {
                record,
                rights,
                answer: text.clone(),
            };
            cache.remember_derived(&name, Arc::new(known), read_at);
        }
        Ok(text)
    }

    /// A verification's outcome, counted: `None` for a key that is not found; otherwise the
    /// code, the record and, for a key that was usable, its rights.
    async fn outcome(
        &self,
        req: &VerifyRequest,
        now: Timestamp,
    ) -> Result<Option<(VerifyCode, Arc<KeyRecord>, Option<Arc<VerifiedRights>>)>> {
        let (code, record, rights) = match self.check_key(&req.key, now).await? {
            Checked::NotFound => return Ok(None),
            Checked::Refused { record, code } => (code, record, None),
            Checked::Usable { record, owner, org } => {
                let rights = self.verified_rights(&record, &owner, &org).await?;
                let home = self.resource_home(req).await?;
                let code = decide(&record, &rights.rights, req, home.as_deref());
                (code, record, Some(rights))
            }
        };
        self.usage.count(&record, now, code);
        Ok(Some((code, record, rights)))
    }

    /// The namespace the resource a verification names lives in, when Keygate knows that
    /// resource (read through the record cache; an unknown id is `None`, a failing store an
    /// error). Read only when a resource is named, so a plain verification costs nothing more.
    async fn resource_home(&self, req: &VerifyRequest) -> Result<Option<String>> {
        let Some(id) = req.resource.as_deref() else {
            return Ok(None);
        };
        if !crate::id::Kind::Resource.matches(id) {
            return Ok(None);
        }
        let resource = get_shared::<S, Resource>(&self.store, &schema::resource(id)).await?;
        Ok(resource.map(|r| r.namespace.clone()))
    }

    /// `GET /v1/settings` (admin only).
    pub async fn settings(&self, caller: &Caller) -> Result<Settings> {
        caller.require_admin()?;
        Ok(caller.org.settings.clone())
    }

    /// `PATCH /v1/settings` (admin only).
    pub async fn update_settings(
        &self,
        caller: &Caller,
        patch: SettingsPatch,
        now: Timestamp,
    ) -> Result<Settings> {
        caller.require_admin()?;
        let mut org = caller.org.clone();
        let s = &mut org.settings;
        if let Some(on) = patch.api_keys_enabled {
            s.api_keys_enabled = on;
        }
        if let Some(days) = patch.max_expiry_days {
            if days.is_some_and(|d| !(1..=36_500).contains(&d)) {
                return Err(Error::invalid(
                    "max_expiry_days",
                    "between 1 and 36500 days, or null",
                ));
            }
            s.max_expiry_days = days;
        }
        if let Some(max) = patch.max_active_keys_per_user {
            if !(1..=1000).contains(&max) {
                return Err(Error::invalid(
                    "max_active_keys_per_user",
                    "between 1 and 1000",
                ));
            }
            s.max_active_keys_per_user = max;
        }
        if let Some(threshold) = patch.extensive_use_per_hour {
            if threshold == Some(0) {
                return Err(Error::invalid(
                    "extensive_use_per_hour",
                    "at least 1, or null",
                ));
            }
            s.extensive_use_per_hour = threshold;
        }
        let mut batch = Batch::default();
        batch.put(schema::org(&org.id), &org)?;
        events::record(
            &mut batch,
            &org.id,
            caller.actor(),
            "settings.updated",
            Some(&org.id),
            serde_json::to_value(&org.settings)?,
            now,
        )?;
        self.store.commit(batch).await?;
        Ok(org.settings)
    }

    /// Looks a plaintext key up: checksum first (no store read on garbage), then the record,
    /// the secret, the status, the organization switch and the creator's membership.
    async fn check_key(&self, text: &str, now: Timestamp) -> Result<Checked> {
        let Ok(key) = KeyRef::parse(text) else {
            return Ok(Checked::NotFound);
        };
        let Some(record) =
            get_shared::<S, KeyRecord>(&self.store, &schema::key(&key.key_id())).await?
        else {
            return Ok(Checked::NotFound);
        };
        let refused = |record, code| Ok(Checked::Refused { record, code });
        match rules::check_secret(&record, &key.secret_hash(), now) {
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
    async fn verified_rights(
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
    async fn member(&self, user_id: &str) -> Result<Option<(Arc<User>, Arc<Organization>)>> {
        let Some(user) = get_shared::<S, User>(&self.store, &schema::user(user_id)).await? else {
            return Ok(None);
        };
        let org = get_shared::<S, Organization>(&self.store, &schema::org(&user.org)).await?;
        Ok(org.map(|org| (user, org)))
    }

    async fn count_active_keys(&self, user: &str, now: Timestamp) -> Result<u32> {
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

/// A key's effective rights, decided once per store generation, and their wire form.
struct VerifiedRights {
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
struct KnownValid {
    record: Arc<KeyRecord>,
    rights: Arc<VerifiedRights>,
    answer: String,
}

/// The answer about a found key: its identity and, when usable, its effective permissions.
fn answer(
    code: VerifyCode,
    record: &KeyRecord,
    permissions: Option<Vec<crate::domain::PermissionScope>>,
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
    }
}

/// The outcome for a usable key (secret, status, organization and creator checked): the
/// namespace asked for, then every permission asked for (on the resource, when named). A
/// resource Keygate knows to live in another namespace (`home`) is never covered, whatever
/// the key's grants say: a grant on every resource of a namespace covers that namespace's.
fn decide(
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
enum Checked {
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

/// Adds a fresh set-up link for `user` to `batch` (replacing any earlier one) and returns its
/// token; only its hash is stored. The record stays, expired, until the link is used: its
/// presence is what tells a later start that the first admin still has no password.
fn setup_into(batch: &mut Batch, user: &str, now: Timestamp) -> Result<String> {
    let token = format!("{SETUP_PREFIX}{}", random_base62(43)?);
    let setup = crate::domain::SetupToken {
        token_hash: token_hash(&token),
        user: user.to_owned(),
        expires_at: now + SETUP_TTL,
    };
    batch.put(schema::setup(), &setup)?;
    Ok(token)
}

/// Hex SHA-256 of a session token: the store key of its session.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// A lookup's answer with `NotFound` as `None`, for callers to whom "absent" is an answer; any
/// other error, a failing store's above all, stays an error, so it never reads as "absent".
pub(crate) fn found<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(Error::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

pub(crate) fn normalize_email(raw: &str) -> Result<String> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') || domain == "localhost"
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email)
    } else {
        Err(Error::invalid("email", "not a valid email address"))
    }
}

/// A page of at most `limit` items, sorted by id; the cursor is the last id shown. For lists
/// gathered whole (namespaces, grants, resources) and filtered by what the caller may see.
fn page_by_id<T>(mut items: Vec<T>, limit: usize, id: impl Fn(&T) -> &str) -> crate::api::Page<T> {
    items.sort_by(|a, b| id(a).cmp(id(b)));
    let next_cursor = (items.len() > limit).then(|| id(&items[limit - 1]).to_owned());
    items.truncate(limit);
    crate::api::Page { items, next_cursor }
}

fn page_limit(limit: Option<u32>) -> Result<u32> {
    match limit.unwrap_or(DEFAULT_LIMIT) {
        n @ 1..=MAX_LIMIT => Ok(n),
        _ => Err(Error::invalid(
            "limit",
            format!("between 1 and {MAX_LIMIT}"),
        )),
    }
}

pub(crate) fn user_view(user: &User) -> UserView {
    UserView {
        id: user.id.clone(),
        email: user.email.clone(),
        name: user.name.clone(),
        roles: user.roles.iter().copied().collect(),
    }
}

/// A key record as the API shows it.
pub fn key_view(
    record: &KeyRecord,
    owner: &User,
    usage: Option<&UsageSummary>,
    now: Timestamp,
) -> KeyView {
    let (role, permissions) = match &record.access {
        Access::Role(role) => (Some(*role), Vec::new()),
        Access::Permissions(list) => (None, list.clone()),
    };
    KeyView {
        id: record.id.clone(),
        name: record.name.clone(),
        description: record.description.clone(),
        namespace: record.namespace.clone(),
        owner: KeyOwner {
            id: owner.id.clone(),
            name: owner.name.clone(),
            email: owner.email.clone(),
        },
        role,
        permissions,
        status: record.status(now),
        created_at: record.created_at,
        updated_at: record.updated_at,
        expires_at: record.expires_at,
        revoked_at: record.revoked_at,
        last_used_at: usage
            .and_then(|u| u.last_used_minute)
            .and_then(|m| time::OffsetDateTime::from_unix_timestamp(m * 60).ok()),
        extensive_use: usage.is_some_and(|u| u.flagged(minute_of(now))),
    }
}
