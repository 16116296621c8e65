//! The records Keygate keeps in its store.
//!
//! These are serialized as JSON under the versioned keys of `store::schema`: changing a
//! field here is a change of the stored format, made on purpose (new optional fields default).

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::key::SecretHash;

/// An instant, serialized as RFC 3339 UTC.
pub type Timestamp = OffsetDateTime;

/// An organization role (SPEC §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The tenant admin: every permission in every namespace of its organization.
    Admin,
    /// May generate keys.
    Developer,
}

/// The organization's API key settings (SPEC §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub api_keys_enabled: bool,
    pub max_expiry_days: Option<u32>,
    pub max_active_keys_per_user: u32,
    pub extensive_use_per_hour: Option<u64>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            api_keys_enabled: false,
            max_expiry_days: None,
            max_active_keys_per_user: 100,
            extensive_use_per_hour: None,
        }
    }
}

/// The tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Organization {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub settings: Settings,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
    /// Permissions admins defined, beyond the built-in ones.
    #[serde(default)]
    pub permissions: Vec<PermissionDef>,
}

impl Organization {
    /// Every permission of the catalogue: the built-in ones, then the admins'.
    pub fn catalogue(&self) -> impl Iterator<Item = &str> {
        BUILTIN_PERMISSIONS
            .iter()
            .copied()
            .chain(self.permissions.iter().map(|p| p.name.as_str()))
    }
}

/// A PHC-format password hash. `Debug` hides it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordHash(pub String);

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(…)")
    }
}

/// A member of an organization.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub org: String,
    pub email: String,
    pub name: String,
    pub roles: BTreeSet<Role>,
    /// `None` for a first admin who has not chosen a password yet (the set-up link).
    #[serde(default)]
    pub password_hash: Option<PasswordHash>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
}

impl User {
    /// Whether the user holds `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// A signed-in session. Stored under the SHA-256 of its token, never the token itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub user: String,
    pub org: String,
    /// The value a cookie-authenticated mutating call must echo in `X-Keygate-CSRF`. It is not
    /// a credential on its own: it is useless without the HttpOnly session cookie.
    pub csrf_token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: Timestamp,
}

/// The role a key may be given instead of an explicit permission list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum KeyRole {
    /// The creator's `*.read` permissions in the namespace.
    Viewer,
    /// The creator's read and write permissions in the namespace.
    Editor,
}

/// One permission, optionally limited to some resources (`None` = every resource).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PermissionScope {
    pub permission: String,
    #[serde(default)]
    pub resources: Option<Vec<String>>,
}

/// What a key declares it may do: a role or an explicit list, never both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Role(KeyRole),
    Permissions(Vec<PermissionScope>),
}

/// A key's lifecycle status (SPEC §3.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    Active,
    Expired,
    Revoked,
}

/// A stored API key: everything but its secret, of which only the SHA-256 is kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: String,
    pub org: String,
    pub namespace: String,
    pub owner: String,
    pub name: String,
    pub description: Option<String>,
    pub access: Access,
    pub secret_hash: SecretHash,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: Timestamp,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<Timestamp>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub revoked_at: Option<Timestamp>,
    /// After a roll: the previous secret, still accepted until `until` (SPEC §3.8).
    #[serde(default)]
    pub previous: Option<PreviousSecret>,
    /// The grants naming this key (SPEC §5), kept by create/delete grant so verification
    /// reads them by id instead of listing an index on every call.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub grants: BTreeSet<String>,
    /// The prefix its plaintext starts with, when not [`crate::key::DEFAULT_PREFIX`] (the
    /// deployment's `KEYGATE_KEY_PREFIX` when the key was made; a roll keeps it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Its usage policy (SPEC §4.5); absent in records of keys without one.
    #[serde(default, skip_serializing_if = "Policy::is_empty")]
    pub policy: Policy,
    /// When its policy was last set (its creation, `PUT /v1/keys/{id}/policy`): what tells a
    /// meter that the policy it counts for is outdated. Absent: `created_at`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub policy_set_at: Option<Timestamp>,
}

/// A rolled-over secret and the end of its grace period.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreviousSecret {
    pub hash: SecretHash,
    #[serde(with = "time::serde::rfc3339")]
    pub until: Timestamp,
}

impl KeyRecord {
    /// The prefix its plaintext starts with.
    pub fn prefix(&self) -> &str {
        self.prefix.as_deref().unwrap_or(crate::key::DEFAULT_PREFIX)
    }

    /// When its policy was last set.
    pub fn policy_set_at(&self) -> Timestamp {
        self.policy_set_at.unwrap_or(self.created_at)
    }

    /// The status at `now`: revocation wins over expiry, since it is the stronger fact.
    pub fn status(&self, now: Timestamp) -> KeyStatus {
        if self.revoked_at.is_some() {
            KeyStatus::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        }
    }
}

/// A pending invitation, stored under the SHA-256 of its one-time token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Invitation {
    /// `inv_…`; empty in invitations written before invitations could be listed.
    #[serde(default)]
    pub id: String,
    pub org: String,
    pub email: String,
    pub roles: BTreeSet<Role>,
    /// The admin who invited; `None` for the first admin of an organization made by the
    /// instance (whose inviter belongs to another organization).
    #[serde(default)]
    pub invited_by: Option<String>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub created_at: Option<Timestamp>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: Timestamp,
}

/// The one-time set-up link of a first admin started without a password (SPEC §7): who holds
/// the token chooses the password. Stored under the token's SHA-256.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetupToken {
    pub token_hash: String,
    pub user: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: Timestamp,
}

/// An application, workspace or user group: a namespace inside an organization. The
/// organization itself is the fourth kind of namespace and has no record of this type.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Namespace {
    pub id: String,
    pub org: String,
    pub kind: NamespaceKind,
    pub name: String,
    /// The application of a workspace; the organization or application of a user group.
    pub parent: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
}

/// A permission an admin added to the organization's catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionDef {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// `(principal, namespace, permission, resources?)` (SPEC §1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub id: String,
    pub principal: String,
    pub namespace: String,
    pub permission: String,
    pub resources: Option<Vec<String>>,
}

/// Who owns a resource: a user or an API key (seed 003).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Owner {
    #[serde(rename = "type")]
    pub kind: OwnerKind,
    pub id: String,
}

/// The kind of a resource owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OwnerKind {
    User,
    Key,
}

/// An object living in a namespace (a dataset, a project…), owned by a user or a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    pub id: String,
    pub namespace: String,
    pub kind: String,
    pub name: String,
    pub owner: Owner,
}

/// The permissions Keygate's own API checks; every organization's catalogue starts with them.
pub const BUILTIN_PERMISSIONS: [&str; 6] = [
    "workspaces.read",
    "workspaces.write",
    "usergroups.read",
    "usergroups.write",
    "resources.read",
    "resources.write",
];

/// The kind of a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NamespaceKind {
    Organization,
    Application,
    Workspace,
    Usergroup,
}

/// The outcome of a verification (SPEC §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VerifyCode {
    Valid,
    NotFound,
    Expired,
    Revoked,
    Disabled,
    WrongNamespace,
    IpNotAllowed,
    InsufficientPermissions,
    RateLimited,
    UsageExceeded,
}

impl VerifyCode {
    /// Every code, in declaration order.
    pub const ALL: [VerifyCode; 10] = [
        VerifyCode::Valid,
        VerifyCode::NotFound,
        VerifyCode::Expired,
        VerifyCode::Revoked,
        VerifyCode::Disabled,
        VerifyCode::WrongNamespace,
        VerifyCode::IpNotAllowed,
        VerifyCode::InsufficientPermissions,
        VerifyCode::RateLimited,
        VerifyCode::UsageExceeded,
    ];

    /// The code as the API spells it (`VALID`, `NOT_FOUND`…): its JSON string, for labels
    /// and headers without serializing.
    pub const fn as_str(self) -> &'static str {
        match self {
            VerifyCode::Valid => "VALID",
            VerifyCode::NotFound => "NOT_FOUND",
            VerifyCode::Expired => "EXPIRED",
            VerifyCode::Revoked => "REVOKED",
            VerifyCode::Disabled => "DISABLED",
            VerifyCode::WrongNamespace => "WRONG_NAMESPACE",
            VerifyCode::InsufficientPermissions => "INSUFFICIENT_PERMISSIONS",
            VerifyCode::IpNotAllowed => "IP_NOT_ALLOWED",
            VerifyCode::RateLimited => "RATE_LIMITED",
            VerifyCode::UsageExceeded => "USAGE_EXCEEDED",
        }
    }
}

/// A webhook (SPEC §6.1): an endpoint an organization's key events are delivered to, each
/// delivery signed with its secret.
#[derive(Clone, Serialize, Deserialize)]
pub struct Webhook {
    pub id: String,
    pub org: String,
    pub url: String,
    /// The event types delivered (`crate::webhook::EVENTS`).
    pub events: Vec<String>,
    pub description: Option<String>,
    pub enabled: bool,
    /// The signing secret (`whsec_…`): kept to sign every delivery, shown once, at creation.
    pub secret: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: Timestamp,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// An event waiting in the outbox to be handed to the webhooks that take it: written in the
/// batch of the change it records, so that a change and its delivery are never parted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outgoing {
    pub org: String,
    /// The store key of the event.
    pub event: String,
}

/// A message in a webhook's queue: one event, sent with the same `webhook-id` and body until
/// it is answered with a 2xx or its retry schedule is spent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    /// The message id (`msg_…`), its `webhook-id`.
    pub id: String,
    pub webhook: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The key the event is about: a key's messages are delivered in order.
    pub key: Option<String>,
    /// The JSON body every attempt sends.
    pub body: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: Timestamp,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due.
    #[serde(with = "time::serde::rfc3339")]
    pub next_at: Timestamp,
}

// Usage policies (SPEC §4.5): what a key record keeps. Their validation and the meter that
// spends them are the meter layer's.

/// One named limit: at most `limit` per `window_seconds`, as a token bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub name: String,
    pub limit: u64,
    pub window_seconds: u32,
}

impl RateLimit {
    pub(crate) fn window_ms(&self) -> u64 {
        u64::from(self.window_seconds) * 1000
    }

    /// The bucket's capacity, in units of `1 / window_ms` token.
    pub(crate) fn capacity(&self) -> u64 {
        self.limit.saturating_mul(self.window_ms())
    }
}

/// When credits are refilled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RefillInterval {
    /// At 00:00 UTC every day.
    Daily,
    /// At 00:00 UTC on the 1st of every month.
    Monthly,
}

/// A refill: `remaining` is *set* to `amount` at each interval's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Refill {
    pub interval: RefillInterval,
    pub amount: u64,
}

impl Refill {
    /// The start of the last interval at or before `now`: the instant of the latest refill.
    pub fn last_start(&self, now: Timestamp) -> Timestamp {
        let now = now.to_offset(time::UtcOffset::UTC);
        let day = match self.interval {
            RefillInterval::Daily => now.date(),
            RefillInterval::Monthly => {
                time::Date::from_calendar_date(now.year(), now.month(), 1).unwrap_or(now.date())
            }
        };
        day.with_time(time::Time::MIDNIGHT).assume_utc()
    }
}

/// A key's credits as its policy states them: what it starts with and how it refills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Credits {
    pub remaining: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refill: Option<Refill>,
}

/// A key's usage policy (SPEC §4.5), validated: what the key record keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Policy {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ratelimits: Vec<RateLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credits: Option<Credits>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub allowed_cidrs: Vec<IpNet>,
}

impl Policy {
    /// Whether the policy says nothing: no limit, no credits, any network.
    pub fn is_empty(&self) -> bool {
        self.ratelimits.is_empty() && self.credits.is_none() && self.allowed_cidrs.is_empty()
    }

    /// Whether verifications of the key are counted: it has a rate limit or credits.
    pub fn is_metered(&self) -> bool {
        !self.ratelimits.is_empty() || self.credits.is_some()
    }

    /// Whether a caller at `client_ip` may use the key: always, without `allowed_cidrs`;
    /// otherwise only from inside one of them (an absent or unreadable address is outside).
    /// An IPv4-mapped IPv6 address is judged as the IPv4 address it carries.
    pub fn allows(&self, client_ip: Option<&str>) -> bool {
        if self.allowed_cidrs.is_empty() {
            return true;
        }
        let Some(ip) = client_ip.and_then(|ip| ip.trim().parse::<IpAddr>().ok()) else {
            return false;
        };
        self.allows_addr(ip)
    }

    /// [`Policy::allows`] for an address already read (a socket peer).
    pub fn allows_addr(&self, ip: IpAddr) -> bool {
        if self.allowed_cidrs.is_empty() {
            return true;
        }
        let ip = ip.to_canonical();
        self.allowed_cidrs.iter().any(|net| net.contains(&ip))
    }
}
