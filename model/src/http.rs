//! The HTTP API as one table: every endpoint declared once — method, path, who may call it,
//! how it takes the store's turn, its body, query and answer types, its success status and the
//! operation it calls — and one host-neutral dispatcher, [`handle`], that serves it.
//!
//! Authentication, the CSRF rule, body and query decoding (the 400/422 split), problem JSON,
//! the 404 and 405 answers, the session cookie and `Cache-Control` are done here, once. A host
//! only turns its request into a [`Request`] (and [`Headers`]) and the [`Response`] back, and
//! adds what only it has (static assets, the gateway, background work). OpenAPI
//! (`openapi.rs`), the authorization matrix, the fuzz targets and the console's client read
//! [`ENDPOINTS`] too.
//!
//! No HTTP framework enters here: the types are plain.

use std::borrow::Cow;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::*;
use crate::error::{Error, Result};
use crate::meter::{CreditChange, PolicyRequest};
use crate::scanning;
use crate::service::{CSRF_HEADER, Caller, Keygate};
use crate::store::Store;
use crate::wire;

/// A request's headers, as the host holds them. Names are asked for in lower case.
pub trait Headers {
    /// The value of `name`; several values of one header joined as HTTP joins them (`, `, or
    /// `; ` for `Cookie`: `wire::credential` reads either).
    fn get(&self, name: &str) -> Option<Cow<'_, str>>;
}

/// No headers at all (tests, and hosts that have none to give).
impl Headers for () {
    fn get(&self, _: &str) -> Option<Cow<'_, str>> {
        None
    }
}

/// Several values of header `name` as one, joined as HTTP joins them (`, `, or `; ` for
/// `Cookie`): what a host whose header map keeps them apart gives [`Headers::get`].
pub fn joined<'a>(name: &str, mut values: impl Iterator<Item = &'a str>) -> Option<Cow<'a, str>> {
    let first = values.next()?;
    let separator = if name == "cookie" { "; " } else { ", " };
    Some(values.fold(Cow::Borrowed(first), |joined, more| {
        Cow::Owned(format!("{joined}{separator}{more}"))
    }))
}

/// Headers as a list of (lower-case name, value) pairs.
impl Headers for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        joined(
            name,
            self.iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str()),
        )
    }
}

/// A request body as the host could read it.
#[derive(Debug)]
pub enum Body {
    /// All of it.
    Bytes(Vec<u8>),
    /// More than [`wire::BODY_LIMIT`] bytes: 413.
    TooLarge,
    /// The connection failed or timed out while it was read: 400.
    Unreadable,
}

/// A request, as a host hands it to [`handle`], with its headers as the host holds them.
pub struct Request<'a, H: Headers + ?Sized> {
    pub method: &'a str,
    /// The path as sent (percent-encoded), without the query.
    pub path: &'a str,
    /// The query string, without `?`.
    pub query: Option<&'a str>,
    pub headers: &'a H,
    pub body: Body,
    /// Whether the request came over TLS: the session cookie is then `Secure` under its
    /// `__Host-` name ([`wire::session_cookie_name`]).
    pub secure: bool,
    /// The caller's address as the host knows it (the socket's peer on the server,
    /// `CF-Connecting-IP` at the edge), for what is throttled per address; `None` when the
    /// host has none.
    pub client: Option<std::net::IpAddr>,
}

/// An answer, for the host to send as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Every header of the answer (`content-type`, `cache-control`, `set-cookie`).
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// What went wrong inside, for the host's log only (a failing store, an internal error):
    /// never sent.
    pub log: Option<String>,
    /// A verification's code (`POST /v1/keys/verify` answered 200), for the host's metrics:
    /// never sent as such.
    pub verdict: Option<VerifyCode>,
}

impl Response {
    /// The value of header `name`, if set.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Anyone: no credential is read.
    Anyone,
    /// A signed-in user (session) or an API key (bearer); the operation decides the rest.
    Caller,
}

/// How an endpoint runs with respect to the store's turn ([`Store::turn`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// It changes nothing the turn protects: reads, and verification (which counts its use in
    /// memory).
    None,
    /// It changes state: the dispatcher runs it in the store's turn.
    Whole,
    /// It hashes or checks a password between its reads and its commit, and takes the turn
    /// itself around those only, so that nothing slow runs in the turn.
    Own,
    /// It fetches from outside (through the host's [`crate::service::Fetch`]) before it
    /// changes anything, and takes the turn itself around its change only, so that no wait on
    /// the network holds the turn.
    Fetches,
    /// It changes a key's meter (SPEC §4.5), which takes the turns it needs itself: the
    /// key's own, and the store's only around a write of the key's credits.
    Meter,
}

/// What an endpoint answers on success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A JSON body of this schema.
    One(&'static str),
    /// A page of this schema (`items`, `next_cursor`).
    List(&'static str),
    /// No body.
    Empty,
    /// A body the endpoint writes itself (`/healthz`, `/openapi.json`).
    Raw,
}

/// One endpoint's declaration.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    pub op: Op,
    pub method: &'static str,
    /// With `{name}` for a path parameter.
    pub path: &'static str,
    pub auth: Auth,
    pub turn: Turn,
    /// The request body's schema, if it takes one.
    pub body: Option<&'static str>,
    /// The query's schema, if it takes one.
    pub query: Option<&'static str>,
    pub answer: Answer,
    /// The success status.
    pub status: u16,
}

impl Endpoint {
    /// Whether it checks or hashes a password (a host may run it away from its request
    /// workers: Argon2 takes tens of milliseconds of CPU).
    pub fn is_password_work(&self) -> bool {
        self.turn == Turn::Own
    }

    /// The largest body it takes: [`wire::BODY_LIMIT`], or [`wire::SCAN_BODY_LIMIT`] for the
    /// secret scanning endpoint, whose batches hold hundreds of tokens. A host reads no more.
    pub fn body_limit(&self) -> usize {
        if self.op == Op::GithubSecretScanning {
            wire::SCAN_BODY_LIMIT
        } else {
            wire::BODY_LIMIT
        }
    }

    /// Whether it changes state (and so needs the CSRF header when authenticated by cookie).
    pub fn changes(&self) -> bool {
        wire::is_mutating(self.method)
    }

    /// Whether any instance of a host may answer it from the replicated read path alone:
    /// verification (it reads the records a change writes through, and counts its use in
    /// memory), `/healthz` and `/openapi.json`. Every other endpoint reads or changes state
    /// that must be exact (SPEC §10), and a host with a separate control plane (the edge's
    /// Durable Object) runs it there.
    pub fn is_read_path(&self) -> bool {
        self.scope() == Scope::ReadPath
    }

    /// Which part of the state it reads and changes ([`Scope`]): what a host that keeps one
    /// store per organization and one for the instance (the edge's objects) routes it by.
    /// Every endpoint is named here, so a new one cannot be added without deciding.
    pub fn scope(&self) -> Scope {
        match self.op {
            Op::Healthz | Op::Openapi | Op::Verify => Scope::ReadPath,
            // Emails are unique across the instance: claimed, checked, released.
            Op::Accept | Op::Invite | Op::RemoveMember => Scope::Instance,
            // The throttle of an email; the email's user.
            Op::Login => Scope::Instance,
            // The set-up link; a new organization.
            Op::Setup | Op::CreateOrganization => Scope::Instance,
            // Keys of any organization; the throttle of an address.
            Op::ReportLeaked | Op::GithubSecretScanning => Scope::Instance,
            Op::Logout
            | Op::Me
            | Op::Organizations
            | Op::Members
            | Op::SetRoles
            | Op::Invitations
            | Op::RevokeInvitation
            | Op::Apps
            | Op::CreateApp
            | Op::Workspaces
            | Op::CreateWorkspace
            | Op::Workspace
            | Op::RenameWorkspace
            | Op::DeleteWorkspace
            | Op::Usergroups
            | Op::CreateUsergroup
            | Op::Usergroup
            | Op::RenameUsergroup
            | Op::DeleteUsergroup
            | Op::AddGroupMember
            | Op::RemoveGroupMember
            | Op::Permissions
            | Op::DefinePermission
            | Op::Grants
            | Op::CreateGrant
            | Op::DeleteGrant
            | Op::Resources
            | Op::CreateResource
            | Op::GetResource
            | Op::RenameResource
            | Op::DeleteResource
            | Op::Keys
            | Op::CreateKey
            | Op::BulkRevoke
            | Op::GetKey
            | Op::UpdateKey
            | Op::DeleteKey
            | Op::RevokeKey
            | Op::RollKey
            | Op::SetPolicy
            | Op::ChangeCredits
            | Op::KeyUsage
            | Op::Events
            | Op::Overview
            | Op::Webhooks
            | Op::CreateWebhook
            | Op::UpdateWebhook
            | Op::DeleteWebhook
            | Op::WebhookDeliveries
            | Op::TestWebhook
            | Op::Settings
            | Op::UpdateSettings => Scope::Organization,
        }
    }
}

/// Which part of the state an endpoint reads and changes ([`Endpoint::scope`]), by the
/// [`Home`](crate::store::schema::Home) of the store keys it touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Verification and the raw endpoints: reads of the records a change writes through
    /// (and of the constants), no write; any replica answers it.
    ReadPath,
    /// The caller's organization only: it reads and writes nothing of the directory, and
    /// writes no constant.
    Organization,
    /// The directory too (emails, throttles, the first start's records), or more than one
    /// organization.
    Instance,
}

impl Scope {
    /// Whether an endpoint of this scope may read (`write` false) or write `key`: the rule
    /// each endpoint's declaration is held to (the in-process contract run checks every call).
    pub fn allows(self, key: &str, write: bool) -> bool {
        use crate::store::schema::{Home, home};
        match (self, home(key)) {
            (Scope::Instance, _) => true,
            (Scope::ReadPath, home) => !write && home != Home::Directory,
            (Scope::Organization, Home::Organization) => true,
            (Scope::Organization, Home::Constant) => !write,
            (Scope::Organization, Home::Directory) => false,
        }
    }
}

/// Where a request runs on a host that keeps one store per organization and one directory
/// (the edge's objects): [`runs`], from the endpoint's [`Scope`] and what the request
/// presents, without reading any store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runs {
    /// The read path: any replica of the records answers (verification, the raw endpoints,
    /// and a request no endpoint matches).
    ReadPath,
    /// In one organization's store: the organization a session, invitation or set-up token
    /// names ([`crate::service::token_org`]).
    Organization(String),
    /// In the organization of the API key with this id: the host reads the key's record to
    /// find it.
    KeyOrganization(String),
    /// In the directory, which reaches the organizations' stores for their part; with the
    /// organization the request names, when it names one.
    Directory(Option<String>),
}

/// Where `endpoint` (with its path `params`) runs for a request presenting `credential`.
/// An organization endpoint called with nothing an organization can be read from (no
/// credential, a token of the earlier shape that names none) runs in the directory, which
/// answers 401 or finds the token's organization itself.
pub fn runs(
    endpoint: &Endpoint,
    params: &[(&'static str, String)],
    credential: &crate::service::Credential<'_>,
) -> Runs {
    use crate::service::{Credential, token_org};
    let presented = match credential {
        Credential::Bearer(token) | Credential::Cookie { token, .. } => Some(*token),
        Credential::None => None,
    };
    let key = presented
        .filter(|t| crate::key::looks_like_key(t))
        .and_then(|t| crate::key::KeyRef::parse(t).ok());
    // The credential's organization: a session token's, or the key's, read by the host.
    let caller = || match (presented.and_then(token_org), key) {
        (Some(org), _) => Some(Runs::Organization(org)),
        (None, Some(key)) => Some(Runs::KeyOrganization(key.key_id())),
        (None, None) => None,
    };
    match endpoint.scope() {
        Scope::ReadPath => Runs::ReadPath,
        Scope::Organization => caller().unwrap_or(Runs::Directory(None)),
        Scope::Instance => {
            // An invitation's or set-up link's token in the path names its organization.
            let in_path = params
                .iter()
                .find(|(name, _)| *name == "token")
                .and_then(|(_, token)| token_org(token));
            Runs::Directory(in_path.or_else(|| match caller() {
                Some(Runs::Organization(org)) => Some(org),
                _ => None,
            }))
        }
    }
}

/// A body-less endpoint's body.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct NoBody;
/// A query-less endpoint's query.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct NoQuery;

/// An endpoint as a type ([`endpoints`] has one per endpoint): what a typed client sends and
/// gets back, taken from the table so that no client restates a path or a type.
pub trait Typed {
    const OP: Op;
    /// The request body ([`NoBody`] when it takes none).
    type Body: Serialize;
    /// The query ([`NoQuery`] when it takes none).
    type Query: Serialize;
    /// The answer on success: the body's type, a [`Page`] of it for a list, `()` for no body,
    /// JSON for a body the endpoint writes itself.
    type Answer: DeserializeOwned;
}

/// The values one call works with.
struct Call<'r, H: Headers + ?Sized> {
    caller: Option<Caller>,
    params: Params,
    now: crate::domain::Timestamp,
    secure: bool,
    request: &'r Request<'r, H>,
}

impl<H: Headers + ?Sized> Call<'_, H> {
    fn caller(&self) -> Result<&Caller> {
        self.caller.as_ref().ok_or(Error::Unauthenticated)
    }

    fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// The path parameters of a matched route, decoded.
pub type Params = Vec<(&'static str, String)>;

/// What a call gives back before it becomes a [`Response`].
enum Reply {
    /// JSON text.
    Json(u16, String),
    /// No body.
    Empty(u16),
    /// A body of its own type.
    Raw(u16, &'static str, Vec<u8>),
    /// JSON with a `Set-Cookie`.
    WithCookie(u16, String, String),
    /// A verification's answer (200, JSON) and its code, for the host's metrics.
    Verdict(VerifyCode, String),
}

fn json<T: Serialize>(status: u16, value: &T) -> Result<Reply> {
    Ok(Reply::Json(status, serde_json::to_string(value)?))
}

/// Decodes the body of an endpoint that takes one of type `T`.
fn read_body<T: DeserializeOwned, H: Headers + ?Sized>(request: &Request<'_, H>) -> Result<T> {
    match &request.body {
        Body::Bytes(bytes) => {
            let content_type = request.headers.get("content-type");
            wire::decode(content_type.as_deref(), bytes)
        }
        Body::TooLarge => Err(Error::PayloadTooLarge(wire::BODY_LIMIT)),
        Body::Unreadable => Err(Error::BadRequest(
            "the request body could not be read".into(),
        )),
    }
}

/// The body bytes, for an endpoint that decodes them itself (verification).
fn body_bytes<'r, H: Headers + ?Sized>(request: &'r Request<'_, H>) -> Result<&'r [u8]> {
    match &request.body {
        Body::Bytes(bytes) => Ok(bytes),
        Body::TooLarge => Err(Error::PayloadTooLarge(wire::BODY_LIMIT)),
        Body::Unreadable => Err(Error::BadRequest(
            "the request body could not be read".into(),
        )),
    }
}

macro_rules! input {
    (body, NoBody, $request:expr) => {
        NoBody
    };
    // Verification's body is declared (for OpenAPI and typed clients) but decoded by the
    // endpoint itself, with the fast path's own decoder (`wire::decode_verify`).
    (body, VerifyRequest, $request:expr) => {
        NoBody
    };
    // GitHub's alerts are decoded only once their signature over the raw body is checked.
    (body, GithubAlerts, $request:expr) => {
        NoBody
    };
    (body, $t:ident, $request:expr) => {
        read_body::<$t, H>($request)?
    };
    (query, NoQuery, $request:expr) => {
        NoQuery
    };
    (query, $t:ident, $request:expr) => {
        wire::query::<$t>($request.query)?
    };
}

macro_rules! schema {
    (NoBody) => {
        None
    };
    (NoQuery) => {
        None
    };
    ($t:ident) => {
        Some(stringify!($t))
    };
}

macro_rules! answer {
    (One($t:ident)) => {
        Answer::One(stringify!($t))
    };
    (List($t:ident)) => {
        Answer::List(stringify!($t))
    };
    (Empty) => {
        Answer::Empty
    };
    (Raw) => {
        Answer::Raw
    };
}

macro_rules! answer_type {
    (One($t:ident)) => {
        $t
    };
    (List($t:ident)) => {
        Page<$t>
    };
    (Empty) => {
        ()
    };
    (Raw) => {
        serde_json::Value
    };
}

macro_rules! reply {
    (raw; $($rest:tt)*) => {
        reply!(@raw $($rest)*)
    };
    (@raw $kind:ident $(($t:ident))?, $status:expr, $value:expr) => {
        $value
    };
    (; $($rest:tt)*) => {
        reply!($($rest)*)
    };
    (One($t:ident), $status:expr, $value:expr) => {
        json($status, &$value)?
    };
    (List($t:ident), $status:expr, $value:expr) => {
        json($status, &$value)?
    };
    (Empty, $status:expr, $value:expr) => {{
        let () = $value;
        Reply::Empty($status)
    }};
    (Raw, $status:expr, $value:expr) => {
        $value
    };
}

#[cfg(feature = "openapi")]
macro_rules! query_parameters {
    (NoQuery) => {
        Vec::new()
    };
    ($t:ident) => {
        <$t as utoipa::IntoParams>::into_params(|| None)
    };
}

#[cfg(feature = "openapi")]
macro_rules! schema_of {
    ($components:ident, NoBody) => {
        $components
    };
    ($components:ident, $t:ident) => {
        $components.schema_from::<$t>()
    };
}

macro_rules! round_trip {
    (NoBody, $content_type:expr, $bytes:expr) => {
        Ok(None)
    };
    (VerifyRequest, $content_type:expr, $bytes:expr) => {
        wire::decode_verify($bytes).and_then(|value| Ok(Some(serde_json::to_vec(&value)?)))
    };
    (GithubAlerts, $content_type:expr, $bytes:expr) => {
        wire::decode_alerts($content_type, $bytes)
            .and_then(|value| Ok(Some(serde_json::to_vec(&value)?)))
    };
    ($t:ident, $content_type:expr, $bytes:expr) => {
        wire::decode::<$t>($content_type, $bytes)
            .and_then(|value| Ok(Some(serde_json::to_vec(&value)?)))
    };
}

/// Declares the endpoints: the [`Op`] enum, [`ENDPOINTS`], and the dispatcher's `call`.
macro_rules! endpoints {
    ($(
        $(#[doc = $doc:literal])*
        $op:ident: $method:literal $path:literal, $auth:ident, $turn:ident,
            $body:ident, $query:ident -> $kind:ident $(($answer:ident))? $($raw:ident)? = $status:literal,
            |$kg:ident, $call:ident, $b:pat_param, $q:pat_param| $run:expr;
    )*) => {
        /// Every endpoint, by name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Op {
            $($(#[doc = $doc])* $op,)*
        }

        /// Each endpoint as a type implementing [`Typed`], named as in [`Op`].
        pub mod endpoints {
            #[allow(unused_imports, reason = "each endpoint names only some of the API's types")]
            use super::*;
            $(
                $(#[doc = $doc])*
                #[derive(Debug, Clone, Copy)]
                pub struct $op;

                impl Typed for $op {
                    const OP: Op = Op::$op;
                    type Body = $body;
                    type Query = $query;
                    type Answer = answer_type!($kind $(($answer))?);
                }
            )*
        }

        /// Every endpoint of SPEC §7, declared once.
        pub const ENDPOINTS: &[Endpoint] = &[$(
            Endpoint {
                op: Op::$op,
                method: $method,
                path: $path,
                auth: Auth::$auth,
                turn: Turn::$turn,
                body: schema!($body),
                query: schema!($query),
                answer: answer!($kind $(($answer))?),
                status: $status,
            },
        )*];

        /// Endpoint `op`'s summary (its doc comment), for OpenAPI: kept out of [`Endpoint`] so
        /// that the console, which reads the table, carries no summary text.
        pub fn summary(op: Op) -> &'static str {
            match op {
                $(Op::$op => concat!($($doc),*),)*
            }
        }

        /// The query parameters of endpoint `op`, with their types, for OpenAPI.
        #[cfg(feature = "openapi")]
        pub fn query_parameters(op: Op) -> Vec<utoipa::openapi::path::Parameter> {
            match op {
                $(Op::$op => query_parameters!($query),)*
            }
        }

        /// Adds every body and answer schema of the table to `components` (with what they
        /// refer to), for OpenAPI.
        #[cfg(feature = "openapi")]
        pub fn schemas(
            components: utoipa::openapi::ComponentsBuilder,
        ) -> utoipa::openapi::ComponentsBuilder {
            let components = components;
            $(
                let components = schema_of!(components, $body);
                $(let components = schema_of!(components, $answer);)?
            )*
            components
        }

        /// Decodes `bytes` as endpoint `op`'s body exactly as [`handle`] does, and encodes
        /// what it decoded again (what the console would send back); `None` for an endpoint
        /// that takes no body. For the fuzz targets, which draw the body types from here.
        pub fn decode_body(
            op: Op,
            content_type: Option<&str>,
            bytes: &[u8],
        ) -> Result<Option<Vec<u8>>> {
            match op {
                $(Op::$op => round_trip!($body, content_type, bytes),)*
            }
        }

        /// Runs endpoint `op` for a request whose caller (if it needs one) is in `call`.
        async fn run<S: Store, H: Headers + ?Sized>(
            kg: &Keygate<S>,
            op: Op,
            call: &Call<'_, H>,
        ) -> Result<Reply> {
            match op {
                $(Op::$op => {
                    #[allow(unused_variables, reason = "not every endpoint reads everything")]
                    let $b = input!(body, $body, call.request);
                    #[allow(unused_variables, reason = "not every endpoint reads everything")]
                    let $q = input!(query, $query, call.request);
                    let $kg = kg;
                    let $call = call;
                    Ok(reply!($($raw)?; $kind $(($answer))?, $status, $run))
                })*
            }
        }
    };
}

endpoints! {
    /// Liveness: 200 once the host serves
    Healthz: "GET" "/healthz", Anyone, None, NoBody, NoQuery -> Raw = 200,
        |_kg, _c, _b, _q| Reply::Raw(200, "application/json", br#"{"status":"ok"}"#.to_vec());
    /// This document
    Openapi: "GET" "/openapi.json", Anyone, None, NoBody, NoQuery -> Raw = 200,
        |_kg, _c, _b, _q| Reply::Raw(200, "application/json", crate::OPENAPI_JSON.as_bytes().to_vec());
    /// Sign in; also sets the HttpOnly session cookie
    Login: "POST" "/v1/auth/login", Anyone, Own, LoginRequest, NoQuery -> One(LoginResponse) raw = 200,
        |kg, c, b, _q| {
            let answer = kg.login(b, c.now).await?;
            let cookie = wire::session_cookie(&answer.token, c.secure);
            Reply::WithCookie(200, serde_json::to_string(&answer)?, cookie)
        };
    /// End the session
    Logout: "POST" "/v1/auth/logout", Caller, Whole, NoBody, NoQuery -> Empty raw = 204,
        |kg, c, _b, _q| {
            kg.logout(c.caller()?).await?;
            Reply::WithCookie(204, String::new(), wire::clear_cookie(c.secure))
        };
    /// The caller, its organization, roles and namespaces
    Me: "GET" "/v1/me", Caller, None, NoBody, NoQuery -> One(MeResponse) = 200,
        |kg, c, _b, _q| kg.me(c.caller()?).await?;
    /// The caller's organization
    Organizations: "GET" "/v1/organizations", Caller, None, NoBody, NoQuery -> List(OrganizationView) = 200,
        |kg, c, _b, _q| kg.organizations(c.caller()?).await?;
    /// Create an organization (the instance's first admin)
    CreateOrganization: "POST" "/v1/organizations", Caller, Whole, CreateOrganizationRequest, NoQuery -> One(CreatedOrganization) = 201,
        |kg, c, b, _q| kg.create_organization(c.caller()?, b, c.now).await?;
    /// Members of the organization
    Members: "GET" "/v1/members", Caller, None, NoBody, PageQuery -> List(UserView) = 200,
        |kg, c, _b, q| kg.members(c.caller()?, q).await?;
    /// Set a member's roles (admins)
    SetRoles: "PATCH" "/v1/members/{id}", Caller, Whole, RolesPatch, NoQuery -> One(UserView) = 200,
        |kg, c, b, _q| kg.set_roles(c.caller()?, c.param("id"), b, c.now).await?;
    /// Remove a member (admins)
    RemoveMember: "DELETE" "/v1/members/{id}", Caller, Whole, NoBody, NoQuery -> Empty = 204,
        |kg, c, _b, _q| kg.remove_member(c.caller()?, c.param("id"), c.now).await?;
    /// Pending invitations (admins), never their tokens
    Invitations: "GET" "/v1/invitations", Caller, None, NoBody, PageQuery -> List(InvitationView) = 200,
        |kg, c, _b, q| kg.invitations(c.caller()?, q, c.now).await?;
    /// Invite someone (admins)
    Invite: "POST" "/v1/invitations", Caller, Whole, InviteRequest, NoQuery -> One(InvitationResponse) = 201,
        |kg, c, b, _q| kg.invite(c.caller()?, b, c.now).await?;
    /// Withdraw a pending invitation (admins)
    RevokeInvitation: "DELETE" "/v1/invitations/{id}", Caller, Whole, NoBody, NoQuery -> Empty = 204,
        |kg, c, _b, _q| kg.revoke_invitation(c.caller()?, c.param("id"), c.now).await?;
    /// Accept an invitation
    Accept: "POST" "/v1/invitations/{token}/accept", Anyone, Own, AcceptRequest, NoQuery -> One(AcceptResponse) = 201,
        |kg, c, b, _q| kg.accept(c.param("token"), b, c.now).await?;
    /// Choose the first admin's password through the one-time set-up link
    Setup: "POST" "/v1/setup/{token}", Anyone, Own, SetupRequest, NoQuery -> One(AcceptResponse) = 200,
        |kg, c, b, _q| kg.setup(c.param("token"), b, c.now).await?;
    /// Applications
    Apps: "GET" "/v1/apps", Caller, None, NoBody, PageQuery -> List(NamespaceView) = 200,
        |kg, c, _b, q| kg.list_namespaces(c.caller()?, NamespaceKind::Application, q).await?;
    /// Create an application (admins)
    CreateApp: "POST" "/v1/apps", Caller, Whole, NamespaceRequest, NoQuery -> One(NamespaceView) = 201,
        |kg, c, b, _q| kg.create_namespace(c.caller()?, NamespaceKind::Application, b, c.now).await?;
    /// Workspaces the caller may see
    Workspaces: "GET" "/v1/workspaces", Caller, None, NoBody, PageQuery -> List(NamespaceView) = 200,
        |kg, c, _b, q| kg.list_namespaces(c.caller()?, NamespaceKind::Workspace, q).await?;
    /// Create a workspace in an application
    CreateWorkspace: "POST" "/v1/workspaces", Caller, Whole, NamespaceRequest, NoQuery -> One(NamespaceView) = 201,
        |kg, c, b, _q| kg.create_namespace(c.caller()?, NamespaceKind::Workspace, b, c.now).await?;
    /// A workspace
    Workspace: "GET" "/v1/workspaces/{id}", Caller, None, NoBody, NoQuery -> One(NamespaceView) = 200,
        |kg, c, _b, _q| kg.get_namespace(c.caller()?, NamespaceKind::Workspace, c.param("id")).await?;
    /// Rename a workspace
    RenameWorkspace: "PATCH" "/v1/workspaces/{id}", Caller, Whole, RenameRequest, NoQuery -> One(NamespaceView) = 200,
        |kg, c, b, _q| kg.rename_namespace(c.caller()?, NamespaceKind::Workspace, c.param("id"), &b.name, c.now).await?;
    /// Delete a workspace and its grants
    DeleteWorkspace: "DELETE" "/v1/workspaces/{id}", Caller, Whole, NoBody, NoQuery -> Empty = 204,
        |kg, c, _b, _q| kg.delete_namespace(c.caller()?, NamespaceKind::Workspace, c.param("id"), c.now).await?;
    /// User groups the caller may see
    Usergroups: "GET" "/v1/usergroups", Caller, None, NoBody, PageQuery -> List(NamespaceView) = 200,
        |kg, c, _b, q| kg.list_namespaces(c.caller()?, NamespaceKind::Usergroup, q).await?;
    /// Create a user group in the organization or an application
    CreateUsergroup: "POST" "/v1/usergroups", Caller, Whole, NamespaceRequest, NoQuery -> One(NamespaceView) = 201,
        |kg, c, b, _q| kg.create_namespace(c.caller()?, NamespaceKind::Usergroup, b, c.now).await?;
    /// A user group
    Usergroup: "GET" "/v1/usergroups/{id}", Caller, None, NoBody, NoQuery -> One(NamespaceView) = 200,
        |kg, c, _b, _q| kg.get_namespace(c.caller()?, NamespaceKind::Usergroup, c.param("id")).await?;
    /// Rename a user group
    RenameUsergroup: "PATCH" "/v1/usergroups/{id}", Caller, Whole, RenameRequest, NoQuery -> One(NamespaceView) = 200,
        |kg, c, b, _q| kg.rename_namespace(c.caller()?, NamespaceKind::Usergroup, c.param("id"), &b.name, c.now).await?;
    /// Delete a user group and its grants
    DeleteUsergroup: "DELETE" "/v1/usergroups/{id}", Caller, Whole, NoBody, NoQuery -> Empty = 204,
        |kg, c, _b, _q| kg.delete_namespace(c.caller()?, NamespaceKind::Usergroup, c.param("id"), c.now).await?;
    /// Add a member to a user group (admins)
    AddGroupMember: "POST" "/v1/usergroups/{id}/members", Caller, Whole, GroupMemberRequest, NoQuery -> Empty = 204,
        |kg, c, b, _q| kg.set_group_member(c.caller()?, c.param("id"), &b.user, true, c.now).await?;
    /// Remove a member from a user group (admins)
    RemoveGroupMember: "DELETE" "/v1/usergroups/{id}/members/{user}", Caller, Whole, NoBody, NoQuery -> Empty = 204,
        |kg, c, _b, _q| kg.set_group_member(c.caller()?, c.param("id"), c.param("user"), false, c.now).await?;
    /// The permission catalogue
    Permissions: "GET" "/v1/permissions", Caller, None, NoBody, NoQuery -> List(PermissionView) = 200,
        |kg, c, _b, _q| kg.permissions(c.caller()?).await?;
    /// Add a permission to the catalogue (admins)
    DefinePermission: "POST" "/v1/permissions", Caller, Whole, PermissionRequest, NoQuery -> One(PermissionView) = 201,
        |kg, c, b, _q| kg.define_permission(c.caller()?, b, c.now).await?;
    /// Grants, by principal and namespace (admins)
    Grants: "GET" "/v1/grants", Caller, None, NoBody, GrantQuery -> List(GrantView) = 200,
        |kg, c, _b, q| kg.grants(c.caller()?, q).await?;
    /// Grant a permission (admins)
    CreateGrant: "POST" "/v1/grants", Caller, Whole, GrantRequest, NoQuery -> One(GrantView) = 201,
        |kg, c, b, _q| kg.create_grant(c.caller()?, b, c.now).await?;
    /// Remove a grant (admins)
    DeleteGrant: "DELETE" "/v1/grants/{id}", Caller, Whole, NoBody, NoQuery -> Empty = 204,
        |kg, c, _b, _q| kg.delete_grant(c.caller()?, c.param("id"), c.now).await?;
    /// Resources of a namespace the caller may read
    Resources: "GET" "/v1/resources", Caller, None, NoBody, ResourceQuery -> List(ResourceView) = 200,
        |kg, c, _b, q| kg.resources(c.caller()?, q).await?;
    /// Create a resource, owned by the caller (a user or its key)
    CreateResource: "POST" "/v1/resources", Caller, Whole, ResourceRequest, NoQuery -> One(ResourceView) = 201,
        |kg, c, b, _q| kg.create_resource(c.caller()?, b, c.now).await?;
    /// A resource
    GetResource: "GET" "/v1/resources/{id}", Caller, None, NoBody, NoQuery -> One(ResourceView) = 200,
        |kg, c, _b, _q| kg.get_resource(c.caller()?, c.param("id")).await?;
    /// Rename a resource
    RenameResource: "PATCH" "/v1/resources/{id}", Caller, Whole, ResourcePatch, NoQuery -> One(ResourceView) = 200,
        |kg, c, b, _q| kg.rename_resource(c.caller()?, c.param("id"), b, c.now).await?;
    /// Delete a resource
    DeleteResource: "DELETE" "/v1/resources/{id}", Caller, Whole, NoBody, NoQuery -> Empty = 204,
        |kg, c, _b, _q| kg.delete_resource(c.caller()?, c.param("id"), c.now).await?;
    /// The caller's keys, or with all=true every key of the organization (admins)
    Keys: "GET" "/v1/keys", Caller, None, NoBody, KeyListQuery -> List(KeyView) = 200,
        |kg, c, _b, q| kg.list_keys(c.caller()?, q, c.now).await?;
    /// Generate a key; the answer holds its plaintext, once
    CreateKey: "POST" "/v1/keys", Caller, Whole, CreateKeyRequest, NoQuery -> One(CreatedKey) = 201,
        |kg, c, b, _q| kg.create_key(c.caller()?, b, c.now).await?;
    /// Verify a key (SPEC §4.1)
    Verify: "POST" "/v1/keys/verify", Anyone, None, VerifyRequest, NoQuery -> One(VerifyResponse) raw = 200,
        |kg, c, _b, _q| {
            let request = wire::decode_verify(body_bytes(c.request)?)?;
            let (code, text) = kg.verify_json(&request, c.now).await?;
            Reply::Verdict(code, text)
        };
    /// Report leaked keys: each one that verifies is revoked (SPEC §4.6); no credential
    ReportLeaked: "POST" "/v1/keys/leaked", Anyone, Whole, LeakReport, NoQuery -> One(LeakReportAnswer) = 200,
        |kg, c, b, _q| kg.report_leaked(b, c.request.client, c.now).await?;
    /// GitHub's secret scanning partner endpoint: a batch of found tokens, signed by GitHub;
    /// each live key among them is revoked, and each token labelled (SPEC §4.6)
    GithubSecretScanning: "POST" "/v1/secret-scanning/github", Anyone, Fetches, GithubAlerts, NoQuery -> One(GithubLabels) = 200,
        |kg, c, _b, _q| {
            let (body, headers) = (body_bytes(c.request)?, c.request.headers);
            let (id, signature) = (headers.get(scanning::KEY_ID_HEADER), headers.get(scanning::SIGNATURE_HEADER));
            let signed = kg.github_signature(id.as_deref(), signature.as_deref(), body, c.now).await?;
            let alerts = wire::decode_alerts(headers.get("content-type").as_deref(), body)?;
            kg.github_alerts(signed, alerts, c.now).await?
        };
    /// Revoke many keys (admins), with a result per id
    BulkRevoke: "POST" "/v1/keys/revoke", Caller, Whole, BulkRevokeRequest, NoQuery -> One(BulkRevokeResponse) = 200,
        |kg, c, b, _q| kg.bulk_revoke(c.caller()?, b.ids, c.now).await?;
    /// A key's display information
    GetKey: "GET" "/v1/keys/{id}", Caller, None, NoBody, NoQuery -> One(KeyView) = 200,
        |kg, c, _b, _q| kg.get_key(c.caller()?, c.param("id"), c.now).await?;
    /// Rename a key or change its description
    UpdateKey: "PATCH" "/v1/keys/{id}", Caller, Whole, KeyPatch, NoQuery -> One(KeyView) = 200,
        |kg, c, b, _q| kg.update_key(c.caller()?, c.param("id"), b, c.now).await?;
    /// Delete a key (its owner), handing over or deleting its resources
    DeleteKey: "DELETE" "/v1/keys/{id}", Caller, Whole, NoBody, DeleteKeyQuery -> Empty = 204,
        |kg, c, _b, q| kg.delete_key(c.caller()?, c.param("id"), q, c.now).await?;
    /// Revoke a key
    RevokeKey: "POST" "/v1/keys/{id}/revoke", Caller, Whole, NoBody, NoQuery -> One(KeyView) = 200,
        |kg, c, _b, _q| kg.revoke_key(c.caller()?, c.param("id"), c.now).await?;
    /// Give a key a new secret, the old one valid for a grace period
    RollKey: "POST" "/v1/keys/{id}/roll", Caller, Whole, RollRequest, NoQuery -> One(CreatedKey) = 200,
        |kg, c, b, _q| kg.roll_key(c.caller()?, c.param("id"), b, c.now).await?;
    /// Replace a key's usage policy: rate limits, credits, allowed networks (its owner or
    /// an admin, never a key; SPEC §4.5)
    SetPolicy: "PUT" "/v1/keys/{id}/policy", Caller, Whole, PolicyRequest, NoQuery -> One(KeyView) = 200,
        |kg, c, b, _q| kg.set_policy(c.caller()?, c.param("id"), b, c.now).await?;
    /// Add to or set a key's credits (its owner or an admin, never a key; SPEC §4.5)
    ChangeCredits: "POST" "/v1/keys/{id}/credits", Caller, Meter, CreditChange, NoQuery -> One(KeyView) = 200,
        |kg, c, b, _q| kg.change_credits(c.caller()?, c.param("id"), b, c.now).await?;
    /// A key's verifications per minute, by outcome
    KeyUsage: "GET" "/v1/keys/{id}/usage", Caller, None, NoBody, UsageQuery -> One(UsagePage) = 200,
        |kg, c, _b, q| kg.key_usage(c.caller()?, c.param("id"), q).await?;
    /// The organization's audit log, newest first (admins)
    Events: "GET" "/v1/events", Caller, None, NoBody, EventQuery -> List(EventView) = 200,
        |kg, c, _b, q| kg.events(c.caller()?, q).await?;
    /// The organization's keys and their use at a glance (admins)
    Overview: "GET" "/v1/overview", Caller, None, NoBody, NoQuery -> One(OverviewView) = 200,
        |kg, c, _b, _q| kg.overview(c.caller()?, c.now).await?;
    /// The organization's webhooks (admins), never their secrets
    Webhooks: "GET" "/v1/webhooks", Caller, None, NoBody, PageQuery -> List(WebhookView) = 200,
        |kg, c, _b, q| kg.list_webhooks(c.caller()?, q).await?;
    /// Subscribe an endpoint to key events (admins); the answer holds its signing secret, once
    CreateWebhook: "POST" "/v1/webhooks", Caller, Whole, WebhookRequest, NoQuery -> One(CreatedWebhook) = 201,
        |kg, c, b, _q| kg.create_webhook(c.caller()?, b, c.now).await?;
    /// Change a webhook's URL, events, description or whether it is enabled (admins)
    UpdateWebhook: "PATCH" "/v1/webhooks/{id}", Caller, Whole, WebhookPatch, NoQuery -> One(WebhookView) = 200,
        |kg, c, b, _q| kg.update_webhook(c.caller()?, c.param("id"), b, c.now).await?;
    /// Delete a webhook and what waits in its queue (admins)
    DeleteWebhook: "DELETE" "/v1/webhooks/{id}", Caller, Whole, NoBody, NoQuery -> Empty = 204,
        |kg, c, _b, _q| kg.delete_webhook(c.caller()?, c.param("id"), c.now).await?;
    /// A webhook's delivery attempts, newest first (admins)
    WebhookDeliveries: "GET" "/v1/webhooks/{id}/deliveries", Caller, None, NoBody, PageQuery -> List(DeliveryView) = 200,
        |kg, c, _b, q| kg.webhook_deliveries(c.caller()?, c.param("id"), q).await?;
    /// Send a signed test message to a webhook now, once (admins); answers the attempt
    TestWebhook: "POST" "/v1/webhooks/{id}/test", Caller, Fetches, NoBody, NoQuery -> One(DeliveryView) = 200,
        |kg, c, _b, _q| kg.test_webhook(c.caller()?, c.param("id")).await?;
    /// The organization's API key settings (admins)
    Settings: "GET" "/v1/settings", Caller, None, NoBody, NoQuery -> One(SettingsView) = 200,
        |kg, c, _b, _q| kg.settings(c.caller()?).await?;
    /// Change the organization's settings (admins)
    UpdateSettings: "PATCH" "/v1/settings", Caller, Whole, SettingsPatch, NoQuery -> One(SettingsView) = 200,
        |kg, c, b, _q| kg.update_settings(c.caller()?, b, c.now).await?;
}

/// The declaration of `op` ([`ENDPOINTS`] is in [`Op`]'s order).
pub fn endpoint(op: Op) -> &'static Endpoint {
    &ENDPOINTS[op as usize]
}

/// A path segment's characters that stay as they are (RFC 3986's unreserved ones).
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The path of `op` with its parameters filled in, in their order, each percent-encoded as one
/// segment: how a client (the console) calls an endpoint without writing its path.
pub fn path(op: Op, params: &[&str]) -> String {
    let mut values = params.iter();
    endpoint(op)
        .path
        .split('/')
        .map(|segment| match segment.starts_with('{') {
            true => {
                percent_encoding::utf8_percent_encode(values.next().copied().unwrap_or(""), SEGMENT)
                    .to_string()
            }
            false => segment.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The paths that are the API's, as patterns (`*` ends a prefix): every endpoint's path falls
/// under one (a unit test checks), and the edge's `wrangler.toml` routes exactly these, plus
/// the gateway's, to the worker before its static assets (another test reads it).
pub const API_PATHS: &[&str] = &["/v1/*", "/healthz", "/openapi.json"];

/// Whether `path` is the API's ([`API_PATHS`]): the hosts serve everything else themselves
/// (the console).
pub fn owns(path: &str) -> bool {
    path == "/v1"
        || API_PATHS
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => path == *pattern,
            })
}

/// The endpoint for `method` and `path`, with its decoded path parameters: 404 for a path no
/// endpoint has, 405 for a method the path does not take. A path without parameters is found
/// by one comparison per endpoint (the verification path); a literal segment wins over a
/// parameter (`/v1/keys/verify` over `/v1/keys/{id}`).
pub fn route(method: &str, path: &str) -> Result<(&'static Endpoint, Params)> {
    let mut literal = false;
    for endpoint in ENDPOINTS {
        if endpoint.path == path {
            literal = true;
            if endpoint.method == method {
                return Ok((endpoint, Vec::new()));
            }
        }
    }
    if literal {
        return Err(Error::MethodNotAllowed);
    }
    let mut best: Option<(usize, &'static str)> = None;
    for endpoint in ENDPOINTS {
        if let Some(literals) = shape_matches(endpoint.path, path)
            && best.is_none_or(|(n, _)| literals > n)
        {
            best = Some((literals, endpoint.path));
        }
    }
    let Some((_, pattern)) = best else {
        return Err(Error::NotFound("endpoint"));
    };
    let endpoint = ENDPOINTS
        .iter()
        .find(|e| e.path == pattern && e.method == method)
        .ok_or(Error::MethodNotAllowed)?;
    let mut params = Vec::new();
    for (want, got) in pattern.split('/').zip(path.split('/')) {
        if let Some(name) = want.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
            // Not UTF-8 once decoded: it names nothing that exists.
            let value = percent_encoding::percent_decode_str(got)
                .decode_utf8()
                .map_err(|_| Error::NotFound("id"))?;
            params.push((name, value.into_owned()));
        }
    }
    Ok((endpoint, params))
}

/// When `path` has `pattern`'s shape, how many of its segments are literal.
fn shape_matches(pattern: &str, path: &str) -> Option<usize> {
    let (mut want, mut got) = (pattern.split('/'), path.split('/'));
    let mut literals = 0;
    loop {
        match (want.next(), got.next()) {
            (None, None) => return Some(literals),
            (Some(w), Some(g)) if w.starts_with('{') => {
                if g.is_empty() {
                    return None;
                }
            }
            (Some(w), Some(g)) if w == g => literals += 1,
            _ => return None,
        }
    }
}

/// Serves one API request: finds its endpoint, authenticates the caller it needs (CSRF
/// included), decodes its body and query, runs it — in the store's turn when it changes state
/// ([`Turn`]) — and answers JSON or problem JSON, never cached.
pub async fn handle<S: Store, H: Headers + ?Sized>(
    kg: &Keygate<S>,
    request: Request<'_, H>,
    now: crate::domain::Timestamp,
) -> Response {
    let routed = route(request.method, request.path);
    handle_routed(kg, request, routed, now).await
}

/// The most body bytes a host reads for a request `route` routed so (an unrouted one is
/// answered 404/405, and read as any other).
pub fn body_limit(routed: &Result<(&'static Endpoint, Params)>) -> usize {
    routed
        .as_ref()
        .map_or(wire::BODY_LIMIT, |(endpoint, _)| endpoint.body_limit())
}

/// [`handle`] for a request its host has already routed (to log its endpoint, or to pick
/// where it runs: [`Endpoint::is_password_work`]), so that no request is routed twice.
/// `routed` is what [`route`] gave for the request's method and path.
pub async fn handle_routed<S: Store, H: Headers + ?Sized>(
    kg: &Keygate<S>,
    request: Request<'_, H>,
    routed: Result<(&'static Endpoint, Params)>,
    now: crate::domain::Timestamp,
) -> Response {
    let answer = match routed {
        Ok((endpoint, params)) => serve(kg, endpoint, params, &request, now).await,
        Err(e) => Err(e),
    };
    let mut response = match answer {
        Ok(Reply::Json(status, text)) => json_response(status, text.into_bytes()),
        Ok(Reply::Raw(status, content_type, body)) => Response {
            status,
            headers: vec![("content-type", content_type.to_owned())],
            body,
            log: None,
            verdict: None,
        },
        Ok(Reply::Verdict(code, text)) => Response {
            verdict: Some(code),
            ..json_response(200, text.into_bytes())
        },
        Ok(Reply::Empty(status)) => empty(status),
        Ok(Reply::WithCookie(status, text, cookie)) => {
            let mut response = if text.is_empty() {
                empty(status)
            } else {
                json_response(status, text.into_bytes())
            };
            response.headers.push(("set-cookie", cookie));
            response
        }
        Err(e) => problem(&e),
    };
    // Several answers carry a secret shown once (a new or rolled key, a session, an
    // invitation): no answer of the API may be kept by a cache.
    response.headers.push(("cache-control", "no-store".into()));
    response
}

async fn serve<S: Store, H: Headers + ?Sized>(
    kg: &Keygate<S>,
    endpoint: &'static Endpoint,
    params: Params,
    request: &Request<'_, H>,
    now: crate::domain::Timestamp,
) -> Result<Reply> {
    // A body the host stopped reading at this endpoint's limit: said with that limit.
    if matches!(request.body, Body::TooLarge) {
        return Err(Error::PayloadTooLarge(endpoint.body_limit()));
    }
    let _turn = match endpoint.turn {
        Turn::Whole => Some(kg.store().turn().await),
        Turn::None | Turn::Own | Turn::Fetches | Turn::Meter => None,
    };
    let caller = match endpoint.auth {
        Auth::Anyone => None,
        Auth::Caller => {
            let (authorization, cookie, csrf) = (
                request.headers.get("authorization"),
                request.headers.get("cookie"),
                request.headers.get(CSRF_HEADER),
            );
            let credential = wire::credential(
                authorization.as_deref(),
                cookie.as_deref(),
                csrf.as_deref(),
                request.secure,
            );
            let caller = kg.authenticate(credential, endpoint.changes(), now).await?;
            // A key with allowed networks is used from inside them only, its own API too
            // (SPEC §4.5): the address is the socket's peer, or the configured proxy header.
            if let crate::service::Via::Key(record) = &caller.via
                && !request
                    .client
                    .is_some_and(|ip| record.policy.allows_addr(ip))
                && !record.policy.allowed_cidrs.is_empty()
            {
                return Err(Error::KeyRefused(crate::domain::VerifyCode::IpNotAllowed));
            }
            Some(caller)
        }
    };
    let call = Call {
        caller,
        params,
        now,
        secure: request.secure,
        request,
    };
    run(kg, endpoint.op, &call).await
}

fn json_response(status: u16, body: Vec<u8>) -> Response {
    Response {
        status,
        headers: vec![("content-type", "application/json".into())],
        body,
        log: None,
        verdict: None,
    }
}

fn empty(status: u16) -> Response {
    Response {
        status,
        headers: Vec::new(),
        body: Vec::new(),
        log: None,
        verdict: None,
    }
}

/// `error` as an RFC 7807 answer; what only the log may hear of it in [`Response::log`].
pub fn problem(error: &Error) -> Response {
    let problem = Problem::of(error);
    let log = match error {
        Error::Store(_) | Error::Internal(_) | Error::Upstream(_) => Some(format!("{error:?}")),
        _ => None,
    };
    Response {
        status: problem.status,
        headers: vec![("content-type", "application/problem+json".into())],
        body: serde_json::to_vec(&problem).unwrap_or_default(),
        log,
        verdict: None,
    }
}

#[cfg(test)]
mod tests {
    use futures_executor::block_on;

    use super::*;
    use crate::store::MemoryStore;

    #[test]
    fn each_request_runs_where_its_scope_and_its_token_say() {
        use crate::service::Credential;
        let org = "org_AAAAAAAAAAAA";
        let secret = "a".repeat(43);
        let session = format!("kgs_AAAAAAAAAAAA_{secret}");
        let invitation = format!("kgi_BBBBBBBBBBBB_{secret}");
        let legacy = format!("kgs_{secret}");
        let key = crate::key::ApiKey::generate("kg", "CCCCCCCCCCCC").expect("a key");
        let key = key.expose();
        let runs_for = |method: &str, path: &str, credential: Credential<'_>| {
            let (endpoint, params) = route(method, path).expect("a route");
            runs(endpoint, &params, &credential)
        };
        let bearer = Credential::Bearer;
        let cookie = |token| Credential::Cookie { token, csrf: None };
        let table: Vec<(&str, String, Credential<'_>, Runs)> = vec![
            (
                "POST",
                "/v1/keys/verify".into(),
                Credential::None,
                Runs::ReadPath,
            ),
            ("GET", "/healthz".into(), bearer(&session), Runs::ReadPath),
            (
                "GET",
                "/v1/keys".into(),
                cookie(&session),
                Runs::Organization(org.into()),
            ),
            (
                "GET",
                "/v1/keys".into(),
                bearer(&session),
                Runs::Organization(org.into()),
            ),
            (
                "GET",
                "/v1/keys".into(),
                bearer(key),
                Runs::KeyOrganization("key_CCCCCCCCCCCC".into()),
            ),
            // Nothing names an organization: the directory answers (401, or finds it).
            (
                "GET",
                "/v1/keys".into(),
                Credential::None,
                Runs::Directory(None),
            ),
            (
                "GET",
                "/v1/keys".into(),
                cookie(&legacy),
                Runs::Directory(None),
            ),
            (
                "POST",
                "/v1/auth/login".into(),
                Credential::None,
                Runs::Directory(None),
            ),
            (
                "POST",
                format!("/v1/invitations/{invitation}/accept"),
                Credential::None,
                Runs::Directory(Some("org_BBBBBBBBBBBB".into())),
            ),
            // The token in the path wins over the caller's.
            (
                "POST",
                format!("/v1/invitations/{invitation}/accept"),
                cookie(&session),
                Runs::Directory(Some("org_BBBBBBBBBBBB".into())),
            ),
            (
                "POST",
                format!("/v1/setup/kgu_AAAAAAAAAAAA_{secret}"),
                Credential::None,
                Runs::Directory(Some(org.into())),
            ),
            (
                "POST",
                "/v1/invitations".into(),
                cookie(&session),
                Runs::Directory(Some(org.into())),
            ),
            (
                "POST",
                "/v1/invitations".into(),
                bearer(key),
                Runs::Directory(None),
            ),
            (
                "POST",
                "/v1/keys/leaked".into(),
                Credential::None,
                Runs::Directory(None),
            ),
        ];
        for (method, path, credential, expected) in table {
            assert_eq!(
                runs_for(method, &path, credential),
                expected,
                "{method} {path}"
            );
        }
    }

    /// A concrete path for `pattern`, every parameter filled in.
    fn example(pattern: &str) -> String {
        pattern
            .split('/')
            .map(|s| if s.starts_with('{') { "x_1" } else { s })
            .collect::<Vec<_>>()
            .join("/")
    }

    #[test]
    fn every_endpoint_is_declared_once_and_routed_to_itself() {
        for (i, a) in ENDPOINTS.iter().enumerate() {
            for b in &ENDPOINTS[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {} twice",
                    a.method,
                    a.path
                );
                assert_ne!(a.op, b.op);
            }
            let (found, params) = route(a.method, &example(a.path)).expect("routed");
            assert_eq!(found.op, a.op, "{} {}", a.method, a.path);
            assert_eq!(params.len(), a.path.matches('{').count());
            assert_eq!(a.changes(), a.method != "GET", "{}", a.path);
            assert_eq!(
                a.turn == Turn::None,
                !a.changes() || a.op == Op::Verify,
                "{} {}: changes run in a turn",
                a.method,
                a.path
            );
        }
    }

    #[test]
    fn the_api_paths_cover_every_endpoint_and_nothing_of_the_console() {
        for e in ENDPOINTS {
            assert!(owns(&example(e.path)), "{}", e.path);
        }
        for path in ["/", "/index.html", "/app-1a2b.wasm", "/v1x", "/healthzz"] {
            assert!(!owns(path), "{path}");
        }
    }

    /// `wrangler.toml` sends the API's paths to the worker first, before the console's
    /// assets: its list is [`API_PATHS`] and the gateway's, nothing more or less.
    #[test]
    fn the_edge_routes_exactly_the_api_paths_to_the_worker() {
        let config = include_str!("../../edge-worker/wrangler.toml");
        let line = config
            .lines()
            .find_map(|l| l.strip_prefix("run_worker_first = "))
            .expect("run_worker_first in wrangler.toml");
        let listed: Vec<&str> = line
            .trim_matches(|c| c == '[' || c == ']')
            .split(',')
            .map(|p| p.trim().trim_matches('"'))
            .collect();
        let mut expected = API_PATHS.to_vec();
        expected.push("/gateway/*");
        assert_eq!(listed, expected);
    }

    #[test]
    fn clients_build_paths_from_the_table() {
        for (i, e) in ENDPOINTS.iter().enumerate() {
            assert_eq!(e.op as usize, i, "ENDPOINTS is in Op's order");
            assert_eq!(endpoint(e.op).path, e.path);
        }
        assert_eq!(path(Op::GetKey, &["key_1"]), "/v1/keys/key_1");
        assert_eq!(
            path(Op::RemoveGroupMember, &["grp_1", "a/b c"]),
            "/v1/usergroups/grp_1/members/a%2Fb%20c"
        );
        let (found, params) =
            route("DELETE", &path(Op::RemoveGroupMember, &["g", "a/b c"])).expect("routed");
        assert_eq!(found.op, Op::RemoveGroupMember);
        assert_eq!(params[1].1, "a/b c");
    }

    #[test]
    fn literal_segments_win_and_wrong_methods_are_405() {
        let op = |m, p| route(m, p).map(|(e, _)| e.op);
        assert_eq!(op("POST", "/v1/keys/verify").ok(), Some(Op::Verify));
        assert_eq!(op("POST", "/v1/keys/revoke").ok(), Some(Op::BulkRevoke));
        assert_eq!(op("GET", "/v1/keys/key_1").ok(), Some(Op::GetKey));
        assert!(matches!(
            op("GET", "/v1/keys/verify"),
            Err(Error::MethodNotAllowed)
        ));
        assert!(matches!(
            op("PUT", "/v1/keys/x"),
            Err(Error::MethodNotAllowed)
        ));
        assert!(matches!(op("GET", "/v1/nothing"), Err(Error::NotFound(_))));
        assert!(matches!(op("GET", "/v1/keys/"), Err(Error::NotFound(_))));
        let (_, params) = route("GET", "/v1/keys/a%20b").expect("routed");
        assert_eq!(params, [("id", "a b".to_owned())]);
        assert!(matches!(
            route("GET", "/v1/keys/%C3%28"),
            Err(Error::NotFound("id"))
        ));
    }

    fn call(
        kg: &Keygate<MemoryStore>,
        method: &str,
        path: &str,
        headers: &Vec<(String, String)>,
        body: &str,
    ) -> Response {
        let request = Request {
            method,
            path,
            query: None,
            headers,
            body: Body::Bytes(body.as_bytes().to_vec()),
            secure: false,
            client: None,
        };
        block_on(handle(kg, request, time::OffsetDateTime::now_utc()))
    }

    #[test]
    fn the_dispatcher_serves_the_api_in_process() {
        let kg = Keygate::new(MemoryStore::default());
        block_on(kg.bootstrap(
            Some("a@example.com".into()),
            Some("pw-123456".into()),
            time::OffsetDateTime::now_utc(),
        ))
        .expect("bootstrap");
        let json = vec![("content-type".to_owned(), "application/json".to_owned())];
        let login = call(
            &kg,
            "POST",
            "/v1/auth/login",
            &json,
            r#"{"email":"a@example.com","password":"pw-123456"}"#,
        );
        assert_eq!(login.status, 200);
        assert_eq!(login.header("cache-control"), Some("no-store"));
        assert!(
            login
                .header("set-cookie")
                .is_some_and(|c| c.starts_with("keygate_session="))
        );
        let token: LoginResponse = serde_json::from_slice(&login.body).expect("login answer");
        let bearer = vec![(
            "authorization".to_owned(),
            format!("Bearer {}", token.token),
        )];
        let me = call(&kg, "GET", "/v1/me", &bearer, "");
        assert_eq!(me.status, 200);
        let cookie = vec![(
            "cookie".to_owned(),
            format!("keygate_session={}", token.token),
        )];
        // A change made with the cookie needs the CSRF header.
        let refused = call(&kg, "PATCH", "/v1/settings", &cookie, "{}");
        assert_eq!(
            (refused.status, refused.header("content-type")),
            (403, Some("application/problem+json"))
        );
        let anonymous = call(&kg, "GET", "/v1/me", &Vec::new(), "");
        assert_eq!(anonymous.status, 401);
        let wrong = call(&kg, "DELETE", "/v1/me", &bearer, "");
        assert_eq!(wrong.status, 405);
        let verify = call(
            &kg,
            "POST",
            "/v1/keys/verify",
            &Vec::new(),
            r#"{"key":"kg_nope"}"#,
        );
        assert_eq!(
            (verify.status, verify.body.as_slice()),
            (200, &br#"{"valid":false,"code":"NOT_FOUND"}"#[..])
        );
    }
}
