//! The JSON shapes of Keygate's HTTP API (SPEC §7), shared by both hosts and the console so
//! no field name is written twice.

use serde::{Deserialize, Deserializer, Serialize};

use time::OffsetDateTime;

use crate::domain::{Grant, KeyRole, KeyStatus, PermissionScope, Resource, Role, Settings};
pub use crate::domain::{NamespaceKind, Owner, OwnerKind, VerifyCode};
use crate::error::Error;
use crate::rules;

/// An RFC 7807 problem, `application/problem+json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable snake_case code clients can branch on.
    pub code: String,
}

impl Problem {
    /// The RFC 7807 body of `error`. Internal details (store errors) stay in the host's log.
    pub fn of(error: &Error) -> Self {
        let code = error.code();
        Self {
            kind: format!("https://keygate.dev/problems/{}", code.replace('_', "-")),
            title: error.title().to_owned(),
            status: error.status(),
            detail: error.to_string(),
            code: code.to_owned(),
        }
    }
}

/// Every list answers with a page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// The same page with each item made into a `U` (a record into its view).
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

/// `POST /v1/auth/login`.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

/// A user or member as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub name: String,
    pub roles: Vec<Role>,
}

/// The answer to a successful login. The same session is also set as an HttpOnly cookie.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginResponse {
    pub token: String,
    pub csrf_token: String,
    pub user: UserView,
}

/// An organization as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrganizationView {
    pub id: String,
    pub name: String,
}

/// A namespace the caller holds permissions in, as `GET /v1/me` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MeNamespace {
    pub id: String,
    pub kind: NamespaceKind,
    pub name: String,
    pub permissions: Vec<String>,
    /// The same permissions with what each covers: `resources` is `null` for every resource
    /// of the namespace, or the ids a grant limits it to (what a key's permission declared
    /// without a resource list will cover: the console's hint).
    #[serde(default)]
    pub scopes: Vec<PermissionScope>,
}

/// `GET /v1/me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MeResponse {
    pub user: UserView,
    pub organization: OrganizationView,
    pub roles: Vec<Role>,
    pub namespaces: Vec<MeNamespace>,
    /// The session's CSRF token, so a console reloaded on its cookie can still make changes.
    /// Absent when the caller did not authenticate with a session.
    pub csrf_token: Option<String>,
    /// The organization's maximum key lifetime in days (SPEC §5), so the console can bound and
    /// require the expiry for every developer, not only for admins who may read the settings.
    #[serde(default)]
    pub max_expiry_days: Option<u32>,
}

/// `POST /v1/keys`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub namespace: String,
    #[serde(default)]
    pub role: Option<KeyRole>,
    #[serde(default)]
    pub permissions: Option<Vec<PermissionScope>>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Named rate limits (SPEC §4.5); none when absent.
    #[serde(default)]
    pub ratelimits: Vec<crate::domain::RateLimit>,
    /// Credits that `VALID` answers spend, with their refill; unlimited when absent.
    #[serde(default)]
    pub credits: Option<crate::domain::Credits>,
    /// The networks the key may be used from (SPEC §4.5); any, when absent or empty.
    #[serde(default)]
    pub allowed_cidrs: Vec<String>,
}

/// The owner of a key, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyOwner {
    pub id: String,
    pub name: String,
    pub email: String,
}

/// A key as the API shows it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyView {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub namespace: String,
    pub owner: KeyOwner,
    pub role: Option<KeyRole>,
    pub permissions: Vec<PermissionScope>,
    pub status: KeyStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// The address of the caller of its last use, when the verification said it.
    #[serde(default)]
    pub last_used_ip: Option<String>,
    pub extensive_use: bool,
    /// Its rate limits (SPEC §4.5); empty: none.
    #[serde(default)]
    pub ratelimits: Vec<crate::domain::RateLimit>,
    /// Its credits, `remaining` as they are now; absent: unlimited.
    #[serde(default)]
    pub credits: Option<crate::domain::Credits>,
    /// The networks the key may be used from; empty: any (SPEC §4.5).
    #[serde(default)]
    pub allowed_cidrs: Vec<String>,
}

impl KeyView {
    /// Whether the key search `q` finds this key ([`rules::search_matches`] over its name, id,
    /// and owner's name and email).
    pub fn matches(&self, q: &str) -> bool {
        self.matches_by(q, str::to_lowercase)
    }

    /// [`KeyView::matches`] with the lowercasing given (the console passes the browser's).
    pub fn matches_by(&self, q: &str, lower: impl Fn(&str) -> String) -> bool {
        let fields = [
            self.name.as_str(),
            &self.id,
            &self.owner.name,
            &self.owner.email,
        ];
        rules::search_matches(&fields, q, lower)
    }
}

/// The answer to `POST /v1/keys`: the key record and, this once, its plaintext.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedKey {
    #[serde(flatten)]
    pub record: KeyView,
    /// The plaintext key. It exists here and nowhere else.
    pub key: String,
}

/// `GET /v1/keys` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct KeyListQuery {
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub cursor: Option<String>,
    /// Admins: every key of the organization instead of only the caller's.
    #[serde(default)]
    pub all: Option<bool>,
    #[serde(default)]
    pub status: Option<KeyStatus>,
    #[serde(default)]
    pub namespace: Option<String>,
    /// An owner's user id.
    #[serde(default)]
    pub owner: Option<String>,
    /// Search over name, id and owner name or email.
    #[serde(default)]
    pub q: Option<String>,
}

/// `PATCH /v1/keys/{id}`: only the name and description change after creation; naming any
/// other field is refused (SPEC §3.5).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct KeyPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub description: Option<Option<String>>,
}

/// `POST /v1/keys/revoke`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BulkRevokeRequest {
    pub ids: Vec<String>,
}

/// `POST /v1/keys/leaked` (SPEC §4.6): keys someone found where they should not be.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LeakReport {
    /// 1 to 100 plaintext keys.
    pub keys: Vec<String>,
}

/// The answer to a leak report: how many keys were received, whether or not any matched (a
/// reporter learns nothing about which keys are real).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeakReportAnswer {
    pub received: u32,
}

/// One token GitHub's secret scanning found (SPEC §4.6), as GitHub sends it; fields GitHub
/// may add later are ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GithubAlert {
    pub token: String,
    /// The secret type the operator registered with GitHub.
    #[serde(rename = "type")]
    pub token_type: String,
    /// Where the token was found.
    #[serde(default)]
    pub url: Option<String>,
    /// What kind of place that is (`content`, `commit`, `gist`, `npm`…).
    #[serde(default)]
    pub source: Option<String>,
}

/// `POST /v1/secret-scanning/github`: a batch of alerts, signed by GitHub.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct GithubAlerts(pub Vec<GithubAlert>);

/// What a found token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LeakLabel {
    /// A key of this deployment (its secret matches), revoked now or already inactive.
    TruePositive,
    /// Not a key of this deployment.
    FalsePositive,
}

/// GitHub's feedback for one alert: the token as its SHA-256, never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GithubLabel {
    /// SHA-256 of the token, lower-case hex.
    pub token_hash: String,
    pub token_type: String,
    pub label: LeakLabel,
}

/// The answer to a batch of alerts, one label per alert in the order sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct GithubLabels(pub Vec<GithubLabel>);

/// One id's outcome in a bulk revoke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BulkRevokeResult {
    pub id: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// The answer of `POST /v1/keys/revoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BulkRevokeResponse {
    pub results: Vec<BulkRevokeResult>,
}

/// `POST /v1/keys/{id}/roll`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RollRequest {
    /// How long the old secret keeps working: 0 to 86 400 seconds.
    #[serde(default)]
    pub grace_seconds: u32,
}

/// `DELETE /v1/keys/{id}` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct DeleteKeyQuery {
    /// A member with `resources.write` in the key's namespace who receives its resources.
    #[serde(default)]
    pub transfer_to: Option<String>,
    /// Accepts that resources owned only by the key are deleted with it.
    #[serde(default)]
    pub delete_resources: Option<bool>,
}

/// `POST /v1/keys/verify`.
#[derive(Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    pub key: String,
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
    #[serde(default)]
    pub resource: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    /// What a `VALID` answer spends of the key's rate limits and credits: 0 to
    /// [`crate::meter::MAX_COST`], 1 when absent (SPEC §4.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<u32>,
    /// The address of the caller that presented the key, as the verifying service saw it: what
    /// the key's `allowed_cidrs` are checked against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
}

/// The answer of `POST /v1/keys/verify`; the fields after `code` appear once the secret matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyResponse {
    pub valid: bool,
    pub code: VerifyCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<PermissionScope>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub expires_at: Option<OffsetDateTime>,
    /// The key's rate limits after this verification (SPEC §4.5): empty for a key without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratelimits: Option<Vec<crate::meter::RateLimitState>>,
    /// The key's credits after this verification; absent for a key without credits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credits: Option<crate::meter::CreditsLeft>,
}

impl VerifyResponse {
    /// An outcome decided before the secret matched: nothing about the key is told.
    pub fn bare(code: VerifyCode) -> Self {
        Self {
            valid: code == VerifyCode::Valid,
            code,
            key_id: None,
            namespace: None,
            owner: None,
            name: None,
            permissions: None,
            expires_at: None,
            ratelimits: None,
            credits: None,
        }
    }
}

/// `POST /v1/invitations`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    pub email: String,
    #[serde(default)]
    pub roles: Vec<Role>,
}

/// The answer to an invitation: the one-time token for the invitee's link.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InvitationResponse {
    pub invitation_token: String,
}

/// `POST /v1/invitations/{token}/accept`.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    pub name: String,
    pub password: String,
}

/// `POST /v1/setup/{token}`: the first admin's password, chosen through the set-up link.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetupRequest {
    pub password: String,
    /// A display name instead of "Administrator".
    #[serde(default)]
    pub name: Option<String>,
}

/// A pending invitation as the API shows it: never its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InvitationView {
    pub id: String,
    pub email: String,
    pub roles: Vec<Role>,
    /// The admin who invited; `null` for an organization's first admin, invited by the
    /// instance.
    pub invited_by: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// The answer to an accepted invitation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AcceptResponse {
    pub user: UserView,
}

/// `PATCH /v1/members/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RolesPatch {
    pub roles: Vec<Role>,
}

/// `POST /v1/organizations`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateOrganizationRequest {
    pub name: String,
    pub admin_email: String,
}

/// The answer to `POST /v1/organizations`: the new organization and its admin's invitation.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedOrganization {
    pub organization: OrganizationView,
    pub invitation_token: String,
}

/// A plain page query (`limit`, `cursor`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// A namespace as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NamespaceView {
    pub id: String,
    pub kind: NamespaceKind,
    pub name: String,
    pub parent: Option<String>,
}

/// `POST /v1/apps`, `POST /v1/workspaces`, `POST /v1/usergroups` (and their PATCH: name only).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NamespaceRequest {
    pub name: String,
    /// The application of a new workspace.
    #[serde(default)]
    pub app: Option<String>,
    /// The organization or application of a new user group.
    #[serde(default)]
    pub parent: Option<String>,
}

/// `PATCH /v1/workspaces/{id}`, `PATCH /v1/usergroups/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    pub name: String,
}

/// `POST /v1/usergroups/{id}/members`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GroupMemberRequest {
    pub user: String,
}

/// `POST /v1/permissions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PermissionRequest {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// A catalogue entry as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PermissionView {
    pub name: String,
    pub description: Option<String>,
    pub builtin: bool,
}

/// `POST /v1/grants`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    pub principal: String,
    pub namespace: String,
    pub permission: String,
    #[serde(default)]
    pub resources: Option<Vec<String>>,
}

/// `GET /v1/grants` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct GrantQuery {
    #[serde(default)]
    pub principal: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// `POST /v1/resources`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ResourceRequest {
    pub namespace: String,
    pub kind: String,
    pub name: String,
}

/// `PATCH /v1/resources/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ResourcePatch {
    pub name: String,
}

/// `GET /v1/resources` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ResourceQuery {
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// `GET /v1/keys/{id}/usage` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub since: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub until: Option<OffsetDateTime>,
}

/// One minute of a key's verifications, by outcome code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageItem {
    #[serde(with = "time::serde::rfc3339")]
    pub minute: OffsetDateTime,
    pub counts: std::collections::BTreeMap<VerifyCode, u64>,
}

/// The answer of `GET /v1/keys/{id}/usage`, oldest minute first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsagePage {
    pub items: Vec<UsageItem>,
}

/// One hour or one day of an organization's verifications, by outcome code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageBucket {
    /// Where the hour or the UTC day starts.
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    pub counts: std::collections::BTreeMap<VerifyCode, u64>,
}

/// The organization's keys by status (at the time of the answer).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyTotals {
    pub active: u64,
    /// Active keys that expire within 7 days.
    pub expiring_soon: u64,
    pub expired: u64,
    pub revoked: u64,
}

/// A key and a figure about it, in the overview's lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyFigure {
    pub id: String,
    /// `None` once the key is deleted.
    pub name: Option<String>,
    pub count: u64,
}

/// `GET /v1/overview` (admins): the organization's keys and their use at a glance, in one
/// call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OverviewView {
    pub keys: KeyTotals,
    /// The last 24 hours, the current one included, oldest first; every hour is present.
    pub hours: Vec<UsageBucket>,
    /// The last 30 UTC days, today included, oldest first; every day is present.
    pub days: Vec<UsageBucket>,
    /// Up to 5 keys with the most refused verifications over the 30 days, most first.
    pub most_refused: Vec<KeyFigure>,
    /// Keys flagged for extensive use within the last hour, with their verifications that
    /// hour.
    pub extensive_use: Vec<KeyFigure>,
}

/// Who did something: a user, a key, or (`instance`) the instance's first admin acting on
/// another organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Actor {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

/// An audit event (SPEC §6). Stored as is, under the organization's event index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventView {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor: Actor,
    pub target: Option<String>,
    pub details: serde_json::Value,
}

/// `GET /v1/events` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema, utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// An event type, or a family such as `key.*`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub key_id: Option<String>,
    /// A user or key id.
    #[serde(default)]
    pub actor: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub since: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub until: Option<OffsetDateTime>,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// The organization's API key settings (SPEC §5), as `GET` and `PATCH /v1/settings` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SettingsView {
    pub api_keys_enabled: bool,
    pub max_expiry_days: Option<u32>,
    pub max_active_keys_per_user: u32,
    pub extensive_use_per_hour: Option<u64>,
}

impl From<&Settings> for SettingsView {
    fn from(s: &Settings) -> Self {
        Self {
            api_keys_enabled: s.api_keys_enabled,
            max_expiry_days: s.max_expiry_days,
            max_active_keys_per_user: s.max_active_keys_per_user,
            extensive_use_per_hour: s.extensive_use_per_hour,
        }
    }
}

/// A grant: `(principal, namespace, permission, resources?)` (SPEC §1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GrantView {
    pub id: String,
    pub principal: String,
    pub namespace: String,
    pub permission: String,
    /// `null` for every resource of the namespace.
    pub resources: Option<Vec<String>>,
}

impl From<&Grant> for GrantView {
    fn from(g: &Grant) -> Self {
        Self {
            id: g.id.clone(),
            principal: g.principal.clone(),
            namespace: g.namespace.clone(),
            permission: g.permission.clone(),
            resources: g.resources.clone(),
        }
    }
}

/// A resource (a dataset, a project…) of a namespace, owned by a user or a key (seed 003).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResourceView {
    pub id: String,
    pub namespace: String,
    pub kind: String,
    pub name: String,
    pub owner: Owner,
}

impl From<&Resource> for ResourceView {
    fn from(r: &Resource) -> Self {
        Self {
            id: r.id.clone(),
            namespace: r.namespace.clone(),
            kind: r.kind.clone(),
            name: r.name.clone(),
            owner: r.owner.clone(),
        }
    }
}

/// `PATCH /v1/settings`: absent fields stay as they are; `null` clears an optional one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_keys_enabled: Option<bool>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_expiry_days: Option<Option<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active_keys_per_user: Option<u32>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub extensive_use_per_hour: Option<Option<u64>>,
}

/// `POST /v1/webhooks` (SPEC §6.1).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// Where deliveries are POSTed: `https`, and not a private or local address.
    pub url: String,
    /// The event types to deliver, at least one (`key.created`, `key.revoked`…).
    pub events: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// `PATCH /v1/webhooks/{id}`: the fields given change; `description: null` clears it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub description: Option<Option<String>>,
    /// A disabled webhook keeps its queue but is sent nothing until enabled again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// A webhook, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub enabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<&crate::domain::Webhook> for WebhookView {
    fn from(w: &crate::domain::Webhook) -> Self {
        Self {
            id: w.id.clone(),
            url: w.url.clone(),
            events: w.events.clone(),
            description: w.description.clone(),
            enabled: w.enabled,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

/// The answer to `POST /v1/webhooks`: the webhook and, this once, its signing secret.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// `whsec_` + base64 of 24 random bytes: the HMAC key of every delivery's signature. It
    /// is shown here and nowhere else.
    pub secret: String,
}

/// What became of one attempt to deliver a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    /// Answered with a 2xx: delivered.
    Succeeded,
    /// Not delivered; another attempt follows (`next_attempt_at`).
    Retrying,
    /// Not delivered, and the last attempt: the message is given up (or was a test).
    Failed,
}

/// One attempt to deliver a message (`GET /v1/webhooks/{id}/deliveries`, newest first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryView {
    pub id: String,
    /// The message's `webhook-id`: the same on each attempt of one message.
    pub message_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// 1 for the first attempt of a message.
    pub attempt: u32,
    pub status: AttemptStatus,
    /// The receiver's HTTP status, when it answered.
    pub response_code: Option<u16>,
    pub duration_ms: u64,
    /// Why it failed without an answer (a timeout, a refused address…).
    pub error: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
}

/// Tells a field given as `null` (`Some(None)`) from an absent one (`None`, via `default`).
fn present<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_details_do_not_reach_the_problem() {
        let e = Error::Store(crate::error::StoreError::new("disk /var/x on fire"));
        let p = Problem::of(&e);
        assert_eq!((p.status, p.code.as_str()), (503, "store_unavailable"));
        assert!(!p.detail.contains("fire"));
    }

    #[test]
    fn settings_patch_tells_null_from_absent() {
        let p: SettingsPatch = serde_json::from_str(r#"{"max_expiry_days": null}"#).expect("json");
        assert_eq!(p.max_expiry_days, Some(None));
        assert_eq!(p.extensive_use_per_hour, None);
        let p: SettingsPatch = serde_json::from_str(r#"{"max_expiry_days": 30}"#).expect("json");
        assert_eq!(p.max_expiry_days, Some(Some(30)));
    }

    #[test]
    fn verify_codes_are_screaming_snake_case() {
        let json =
            serde_json::to_string(&VerifyResponse::bare(VerifyCode::NotFound)).expect("json");
        assert_eq!(json, r#"{"valid":false,"code":"NOT_FOUND"}"#);
        // `as_str` spells every code as its JSON does.
        for (i, code) in VerifyCode::ALL.into_iter().enumerate() {
            assert_eq!(code as usize, i, "ALL is in declaration order");
            let json = serde_json::to_string(&code).expect("json");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
