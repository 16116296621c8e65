//! The operations of Keygate over any [`Store`]: what both hosts serve, written once.
//!
//! Every operation takes `now` from its host, so the rules are deterministic under test and
//! the same on a server clock and a Worker's `Date.now()`.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::api::{
    KeyOwner, KeyView, LoginRequest, LoginResponse, MeNamespace, MeResponse, OrganizationView,
    SettingsPatch, SettingsView, UserView, VerifyCode, VerifyRequest, VerifyResponse,
};
use crate::domain::{
    Access, Grant, KeyRecord, Organization, PasswordHash, Resource, Role, Session, Settings,
    Timestamp, User,
};
use crate::error::{Error, Result};
use crate::id::{Kind, new_id};
use crate::key::{KeyRef, hex, random_base62};
use crate::password;
use crate::rules::{self, Rights, SecretCheck};
use crate::store::{Batch, Store, get_json, get_shared, schema};

mod access;
mod auth;
mod catalogue;
mod events;
mod github;
mod keys;
mod leaked;
mod members;
mod meters;
mod namespaces;
mod overview;
mod reminders;
mod resources;
mod scan;
mod settings;
mod usage;
mod verify;
mod webhooks;

#[allow(unused_imports, reason = "what the sibling files share")]
use auth::*;
pub use auth::{
    Bootstrapped, Caller, Credential, KeyPrefixAtStart, LOGIN_WINDOW, MAX_LOGIN_FAILURES,
    SETUP_PREFIX, SETUP_TTL, Via, setup_notice, token_hash, token_org,
};
pub use github::{
    Fetch, Fetching, GITHUB_REPORTER, GithubKeys, KEEP_FOR, Posting, REFETCH_AFTER, Signed,
};
pub use leaked::{Found, Leak, PUBLIC_REPORTER};
pub use meters::{
    CreditLedger, LocalMeters, MAX_LEASE, Metering, Meters, SHARDS, Shared, StoreMeters, lease_size,
};
pub use overview::EXPIRING_SOON;
pub use reminders::{EXPIRING_DAY, EXPIRING_WEEK, REMINDER_ACTOR};
pub use usage::{USAGE_RETENTION, UsageBuffer, UsageReport, UsageSummary, minute_of};
pub use webhooks::{ATTEMPT_RETENTION, Clock, MAX_WEBHOOKS, RoundDone, Webhooks};

#[allow(unused_imports, reason = "what the sibling files share")]
use verify::*;

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

/// Keygate's operations over a store.
#[derive(Clone)]
pub struct Keygate<S> {
    store: S,
    usage: std::sync::Arc<usage::UsageBuffer>,
    /// GitHub's secret scanning keys, when the host can fetch them.
    github: Option<Arc<GithubKeys>>,
    /// How webhooks are delivered, when the host delivers them.
    webhooks: Option<Arc<Webhooks>>,
    /// Where metered keys are counted (SPEC §4.5); without, they fail closed.
    meters: Option<Arc<dyn Meters>>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Keygate<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keygate")
            .field("store", &self.store)
            .field("meters", &self.meters.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: Store> Keygate<S> {
    /// Operations over `store`.
    pub fn new(store: S) -> Self {
        Self {
            store,
            usage: std::sync::Arc::default(),
            github: None,
            webhooks: None,
            meters: None,
        }
    }

    /// Operations over `store` counting verifications into a shared `usage` buffer (the worker
    /// keeps one per isolate, across requests).
    pub fn with_usage(store: S, usage: std::sync::Arc<UsageBuffer>) -> Self {
        Self {
            store,
            usage,
            github: None,
            webhooks: None,
            meters: None,
        }
    }

    /// These operations with GitHub's secret scanning keys fetched through `github` (the
    /// host's HTTP client): without them, the partner endpoint answers 502.
    pub fn with_github(mut self, github: Arc<GithubKeys>) -> Self {
        self.github = Some(github);
        self
    }

    /// These operations with webhooks delivered through `webhooks` (the host's HTTP client,
    /// clock and whether private addresses are allowed): without it, webhooks can be made but
    /// nothing is delivered, and a test delivery answers 502.
    pub fn with_webhooks(mut self, webhooks: Arc<Webhooks>) -> Self {
        self.webhooks = Some(webhooks);
        self
    }

    /// These operations with metered keys counted by `meters` (the host's: in its process,
    /// or in an object per key). Without, a metered key never verifies `VALID`.
    pub fn with_meters(mut self, meters: Arc<dyn Meters>) -> Self {
        self.meters = Some(meters);
        self
    }

    /// The host's meters, or the failure that makes a metered key's verification fail
    /// closed.
    pub(crate) fn meters(&self) -> Result<&dyn Meters> {
        self.meters.as_deref().ok_or_else(|| {
            Error::Store(crate::store::StoreError::new(
                "this host counts no usage policies",
            ))
        })
    }

    /// Whether verification counts wait to be flushed with [`Keygate::flush_usage`].
    pub fn usage_pending(&self) -> bool {
        !self.usage.is_empty()
    }

    /// The underlying store.
    pub fn store(&self) -> &S {
        &self.store
    }
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
/// `credits_left` is what its meter says is left now (for a key with credits).
pub fn key_view(
    record: &KeyRecord,
    owner: &User,
    usage: Option<&UsageSummary>,
    credits_left: Option<u64>,
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
        last_used_ip: usage.and_then(|u| u.last_used_ip.clone()),
        extensive_use: usage.is_some_and(|u| u.flagged(minute_of(now))),
        ratelimits: record.policy.ratelimits.clone(),
        credits: record.policy.credits.map(|c| crate::domain::Credits {
            remaining: credits_left.unwrap_or(c.remaining),
            ..c
        }),
        allowed_cidrs: crate::meter::PolicyRequest::of(&record.policy).allowed_cidrs,
    }
}
