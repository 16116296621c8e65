//! The one error type of every operation, and its mapping to problem JSON (SPEC §7).
//!
//! The dispatcher (`http`) turns an [`Error`] into a response in one place, through
//! `api::Problem::of`.
//! Messages never contain a secret: they are written here, not built from request bodies.

use crate::domain::VerifyCode;

/// A store that could not answer. Verification treats it as "not valid" (fail closed).
#[derive(Debug, Clone, thiserror::Error)]
#[error("store failure: {0}")]
pub struct StoreError(pub String);

impl StoreError {
    /// A store error carrying `detail` for the host's log.
    pub fn new(detail: impl Into<String>) -> Self {
        Self(detail.into())
    }
}

/// Why an operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sign in, or send a valid session token or API key")]
    Unauthenticated,
    #[error("the email or password is wrong")]
    InvalidCredentials,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("a cookie-authenticated change needs the X-Keygate-CSRF header of its session")]
    CsrfRequired,
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("this endpoint does not take this method; see /openapi.json")]
    MethodNotAllowed,
    #[error("{field}: {message}")]
    Validation {
        field: &'static str,
        message: String,
    },
    #[error("the request body is not valid: {0}")]
    BadRequest(String),
    #[error("API keys are disabled in this organization; an admin can enable them in Settings")]
    ApiKeysDisabled,
    #[error("generating API keys needs the developer role")]
    DeveloperRoleRequired,
    #[error("you hold no permission in namespace {0}")]
    NamespaceNotHeld(String),
    #[error("you do not hold {0} in this namespace, so a key of yours cannot have it")]
    PermissionNotHeld(String),
    #[error("you already have {0} active keys, the maximum this organization allows")]
    KeyQuotaExceeded(u32),
    #[error("{0}")]
    Conflict(&'static str),
    #[error("only active keys can be changed this way; this key is {0}")]
    KeyNotActive(&'static str),
    #[error("too many attempts; wait a minute and try again")]
    RateLimited,
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{}", refusal_detail(*.0))]
    KeyRefused(VerifyCode),
    #[error("the upstream did not answer")]
    Upstream(String),
    #[error("the store is unavailable; nothing was changed")]
    Store(#[from] StoreError),
    #[error("an internal error occurred")]
    Internal(String),
}

impl Error {
    /// Shorthand for a validation failure on `field`.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Error::Validation {
            field,
            message: message.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Error::Unauthenticated | Error::InvalidCredentials => 401,
            Error::Forbidden(_)
            | Error::CsrfRequired
            | Error::ApiKeysDisabled
            | Error::DeveloperRoleRequired
            | Error::NamespaceNotHeld(_)
            | Error::PermissionNotHeld(_) => 403,
            Error::NotFound(_) => 404,
            Error::MethodNotAllowed => 405,
            Error::KeyQuotaExceeded(_) | Error::KeyNotActive(_) | Error::Conflict(_) => 409,
            Error::PayloadTooLarge(_) => 413,
            Error::Validation { .. } => 422,
            Error::BadRequest(_) => 400,
            Error::RateLimited => 429,
            Error::KeyRefused(code) => match code {
                VerifyCode::WrongNamespace
                | VerifyCode::IpNotAllowed
                | VerifyCode::InsufficientPermissions => 403,
                VerifyCode::RateLimited | VerifyCode::UsageExceeded => 429,
                _ => 401,
            },
            Error::Upstream(_) => 502,
            Error::Store(_) => 503,
            Error::Internal(_) => 500,
        }
    }

    /// The stable code clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Unauthenticated | Error::InvalidCredentials => "unauthenticated",
            Error::Forbidden(_) => "forbidden",
            Error::CsrfRequired => "csrf_required",
            Error::NotFound(_) => "not_found",
            Error::MethodNotAllowed => "method_not_allowed",
            Error::Validation { .. } => "validation_failed",
            Error::BadRequest(_) => "bad_request",
            Error::ApiKeysDisabled => "api_keys_disabled",
            Error::DeveloperRoleRequired => "developer_role_required",
            Error::NamespaceNotHeld(_) => "namespace_not_held",
            Error::PermissionNotHeld(_) => "permission_not_held",
            Error::KeyQuotaExceeded(_) => "key_quota_exceeded",
            Error::KeyNotActive(_) => "key_not_active",
            Error::Conflict(_) => "conflict",
            Error::RateLimited => "rate_limited",
            Error::PayloadTooLarge(_) => "payload_too_large",
            Error::KeyRefused(code) => match code {
                VerifyCode::Expired => "key_expired",
                VerifyCode::Revoked => "key_revoked",
                VerifyCode::Disabled => "key_disabled",
                VerifyCode::WrongNamespace => "key_wrong_namespace",
                VerifyCode::InsufficientPermissions => "key_insufficient_permissions",
                VerifyCode::IpNotAllowed => "key_ip_not_allowed",
                VerifyCode::RateLimited => "rate_limited",
                VerifyCode::UsageExceeded => "usage_exceeded",
                VerifyCode::NotFound | VerifyCode::Valid => "key_not_found",
            },
            Error::Upstream(_) => "upstream_unavailable",
            Error::Store(_) => "store_unavailable",
            Error::Internal(_) => "internal",
        }
    }

    /// The problem's title: a few words for its status.
    pub fn title(&self) -> &'static str {
        match self.status() {
            400 => "Bad request",
            401 => "Not signed in",
            403 => "Not allowed",
            404 => "Not found",
            405 => "Method not allowed",
            409 => "Conflict",
            413 => "Payload too large",
            422 => "Invalid input",
            429 => "Too many requests",
            502 => "Bad gateway",
            503 => "Service unavailable",
            _ => "Internal error",
        }
    }
}

/// What a refused key is told, by outcome; as little as the verify endpoint tells.
fn refusal_detail(code: VerifyCode) -> &'static str {
    match code {
        VerifyCode::Expired => "the API key has expired",
        VerifyCode::Revoked => "the API key was revoked",
        VerifyCode::Disabled => "API keys are disabled for this key",
        VerifyCode::WrongNamespace => "the API key does not belong to this namespace",
        VerifyCode::InsufficientPermissions => "the API key lacks a permission this needs",
        VerifyCode::IpNotAllowed => "the API key may not be used from this address",
        VerifyCode::RateLimited => "the API key is rate limited",
        VerifyCode::UsageExceeded => "the API key has no credits left for this",
        VerifyCode::NotFound | VerifyCode::Valid => {
            "send a valid API key (Authorization: Bearer kg_… or X-API-Key)"
        }
    }
}

impl From<getrandom::Error> for Error {
    fn from(e: getrandom::Error) -> Self {
        Error::Internal(format!("random number generator failed: {e}"))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Internal(format!("stored record does not decode: {e}"))
    }
}

/// Shorthand for operation results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
