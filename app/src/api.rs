//! The console's typed HTTP client. Request, query and response types are `model::api`'s, so no
//! JSON field or query parameter name is written here. The session lives in the HttpOnly
//! cookie; the CSRF token is kept in memory only, never in browser storage.
//!
//! A 401 from any call made on the session runs the hook set by [`on_session_lost`], so an
//! expired session sends the person back to sign in wherever the call was made.

use std::cell::RefCell;
use std::rc::Rc;

use std::future::Future;
use std::pin::Pin;

use gloo_net::http::Request;
use model::api::{
    AcceptRequest, AcceptResponse, BulkRevokeRequest, BulkRevokeResponse, CreateKeyRequest,
    CreatedKey, DeleteKeyQuery, EventQuery, EventView, GrantQuery, GrantRequest,
    GroupMemberRequest, InvitationResponse, InvitationView, InviteRequest, KeyListQuery, KeyPatch,
    KeyView, LoginRequest, LoginResponse, MeResponse, NamespaceRequest, NamespaceView, Page,
    PageQuery, PermissionRequest, PermissionView, Problem, RenameRequest, ResourceQuery,
    RolesPatch, RollRequest, SettingsPatch, SettingsView, SetupRequest, UsagePage, UsageQuery,
    UserView,
};
use model::domain::{Grant, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

thread_local! {
    static CSRF: RefCell<Option<String>> = const { RefCell::new(None) };
    static SESSION_LOST: RefCell<Option<Rc<dyn Fn()>>> = const { RefCell::new(None) };
}

/// Why a call failed, as the console shows it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// The server answered with a problem.
    #[error("{}: {}", .0.title, .0.detail)]
    Problem(Problem),
    /// The server could not be reached.
    #[error("the server could not be reached: {0}")]
    Network(String),
    /// The answer was not what the console expected.
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
}

impl ApiError {
    /// Whether the session is gone, so the person must sign in again.
    pub fn is_unauthenticated(&self) -> bool {
        matches!(self, ApiError::Problem(p) if p.status == 401)
    }

    /// The problem's stable code, when the server answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Problem(p) => Some(p.code.as_str()),
            _ => None,
        }
    }
}

/// A namespace collection of SPEC §7 (`/v1/apps`, `/v1/workspaces`, `/v1/usergroups`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespaces {
    Apps,
    Workspaces,
    Usergroups,
}

impl Namespaces {
    fn path(self) -> &'static str {
        match self {
            Namespaces::Apps => "/v1/apps",
            Namespaces::Workspaces => "/v1/workspaces",
            Namespaces::Usergroups => "/v1/usergroups",
        }
    }
}

/// Sets what happens when a call finds the session gone (a 401 on a session call).
pub fn on_session_lost(hook: impl Fn() + 'static) {
    SESSION_LOST.with(|h| *h.borrow_mut() = Some(Rc::new(hook)));
}

fn remember_csrf(token: Option<String>) {
    CSRF.with(|c| *c.borrow_mut() = token);
}

/// `path?query`, the query serialized from a `model::api` query type.
fn with_query<Q: Serialize>(path: &str, query: &Q) -> String {
    match serde_urlencoded::to_string(query) {
        Ok(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_owned(),
    }
}

/// Whether a 401 means "the session ended" (every call but signing in and resuming).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Session {
    Required,
    Optional,
}

/// The HTTP methods the console uses.
#[derive(Clone, Copy)]
enum Method {
    Get,
    Post,
    Patch,
    Delete,
}

/// A call's answer body, or why it failed.
type Answer = Pin<Box<dyn Future<Output = Result<String, ApiError>>>>;

/// Sends a request and reads the answer's body, turning a failure status into its problem.
///
/// Every call goes through this one boxed, non-generic future: typed calls only add their
/// (synchronous) decoding, rather than each carrying a copy of the request's state machine,
/// which keeps the console's wasm small.
fn send(method: Method, path: String, body: Option<String>, session: Session) -> Answer {
    Box::pin(async move {
        let builder = match method {
            Method::Get => Request::get(&path),
            Method::Post => Request::post(&path),
            Method::Patch => Request::patch(&path),
            Method::Delete => Request::delete(&path),
        };
        let builder = match CSRF.with(|c| c.borrow().clone()) {
            Some(token) => builder.header(model::service::CSRF_HEADER, &token),
            None => builder,
        };
        let request = match body {
            Some(json) => builder
                .header("content-type", "application/json")
                .body(json),
            None => builder.build(),
        }
        .map_err(|e| ApiError::Decode(e.to_string()))?;
        let response = request
            .send()
            .await
            .map_err(|e| ApiError::Network(e.to_string()))?;
        let text = response.text().await;
        if response.ok() {
            return text.map_err(|e| ApiError::Decode(e.to_string()));
        }
        let error = match text
            .ok()
            .and_then(|t| serde_json::from_str::<Problem>(&t).ok())
        {
            Some(problem) => ApiError::Problem(problem),
            None => ApiError::Decode(format!("status {}", response.status())),
        };
        if session == Session::Required && error.is_unauthenticated() {
            remember_csrf(None);
            if let Some(hook) = SESSION_LOST.with(|h| h.borrow().clone()) {
                hook();
            }
        }
        Err(error)
    })
}

fn decode<T: DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    serde_json::from_str(text).map_err(|e| ApiError::Decode(e.to_string()))
}

fn json<B: Serialize>(body: &B) -> Result<Option<String>, ApiError> {
    serde_json::to_string(body)
        .map(Some)
        .map_err(|e| ApiError::Decode(e.to_string()))
}

async fn get<T: DeserializeOwned>(path: String) -> Result<T, ApiError> {
    decode(&send(Method::Get, path, None, Session::Required).await?)
}

async fn post<B: Serialize, T: DeserializeOwned>(path: String, body: &B) -> Result<T, ApiError> {
    let body = json(body)?;
    decode(&send(Method::Post, path, body, Session::Required).await?)
}

async fn post_empty<T: DeserializeOwned>(path: String) -> Result<T, ApiError> {
    decode(&send(Method::Post, path, None, Session::Required).await?)
}

async fn patch<B: Serialize, T: DeserializeOwned>(path: String, body: &B) -> Result<T, ApiError> {
    let body = json(body)?;
    decode(&send(Method::Patch, path, body, Session::Required).await?)
}

async fn delete(path: String) -> Result<(), ApiError> {
    send(Method::Delete, path, None, Session::Required)
        .await
        .map(|_| ())
}

/// Signs in; the server also sets the session cookie.
pub async fn login(email: String, password: String) -> Result<LoginResponse, ApiError> {
    let body = json(&LoginRequest { email, password })?;
    let answer: LoginResponse = decode(
        &send(
            Method::Post,
            "/v1/auth/login".into(),
            body,
            Session::Optional,
        )
        .await?,
    )?;
    remember_csrf(Some(answer.csrf_token.clone()));
    Ok(answer)
}

/// Ends the session.
pub async fn logout() -> Result<(), ApiError> {
    let answer = send(
        Method::Post,
        "/v1/auth/logout".into(),
        None,
        Session::Optional,
    )
    .await;
    remember_csrf(None);
    answer.map(|_| ())
}

/// Who is signed in (from the cookie), remembering the session's CSRF token. A 401 here only
/// means nobody is signed in yet.
pub async fn me() -> Result<MeResponse, ApiError> {
    let me: MeResponse =
        decode(&send(Method::Get, "/v1/me".into(), None, Session::Optional).await?)?;
    remember_csrf(me.csrf_token.clone());
    Ok(me)
}

/// Accepts an invitation, creating the member (no session needed).
pub async fn accept_invitation(
    token: &str,
    request: AcceptRequest,
) -> Result<AcceptResponse, ApiError> {
    let path = format!("/v1/invitations/{}/accept", encode(token));
    decode(&send(Method::Post, path, json(&request)?, Session::Optional).await?)
}

/// Keys: the caller's own, or with `all` every key of the organization (admins).
pub async fn keys(query: &KeyListQuery) -> Result<Page<KeyView>, ApiError> {
    get(with_query("/v1/keys", query)).await
}

/// The signed-in person's keys.
pub async fn my_keys() -> Result<Page<KeyView>, ApiError> {
    keys(&KeyListQuery {
        limit: Some(model::service::MAX_LIMIT),
        ..Default::default()
    })
    .await
}

/// Generates a key; the answer holds its plaintext, once.
pub async fn create_key(request: CreateKeyRequest) -> Result<CreatedKey, ApiError> {
    post("/v1/keys".into(), &request).await
}

/// A key's display information.
pub async fn key(id: &str) -> Result<KeyView, ApiError> {
    get(format!("/v1/keys/{}", encode(id))).await
}

/// Renames a key or changes its description.
pub async fn update_key(id: &str, patch_body: KeyPatch) -> Result<KeyView, ApiError> {
    patch(format!("/v1/keys/{}", encode(id)), &patch_body).await
}

/// Revokes one key.
pub async fn revoke_key(id: &str) -> Result<KeyView, ApiError> {
    post_empty(format!("/v1/keys/{}/revoke", encode(id))).await
}

/// Revokes many keys (admins), with a result per id.
pub async fn bulk_revoke(ids: Vec<String>) -> Result<BulkRevokeResponse, ApiError> {
    post("/v1/keys/revoke".into(), &BulkRevokeRequest { ids }).await
}

/// Gives a key a new secret; the old one keeps working for the grace period.
pub async fn roll_key(id: &str, grace_seconds: u32) -> Result<CreatedKey, ApiError> {
    post(
        format!("/v1/keys/{}/roll", encode(id)),
        &RollRequest { grace_seconds },
    )
    .await
}

/// Deletes a key, handing its resources over or deleting them as `query` says.
pub async fn delete_key(id: &str, query: &DeleteKeyQuery) -> Result<(), ApiError> {
    delete(with_query(&format!("/v1/keys/{}", encode(id)), query)).await
}

/// A key's verifications per minute.
pub async fn key_usage(id: &str, query: &UsageQuery) -> Result<UsagePage, ApiError> {
    get(with_query(&format!("/v1/keys/{}/usage", encode(id)), query)).await
}

/// The organization's settings (admins).
pub async fn settings() -> Result<SettingsView, ApiError> {
    get("/v1/settings".into()).await
}

/// Changes the organization's settings (admins).
pub async fn update_settings(patch_body: SettingsPatch) -> Result<SettingsView, ApiError> {
    patch("/v1/settings".into(), &patch_body).await
}

/// The audit log, newest first.
pub async fn events(query: &EventQuery) -> Result<Page<EventView>, ApiError> {
    get(with_query("/v1/events", query)).await
}

/// The organization's members.
pub async fn members(query: &PageQuery) -> Result<Page<UserView>, ApiError> {
    get(with_query("/v1/members", query)).await
}

/// Invites someone; the answer's token makes the invitation link.
pub async fn invite(request: InviteRequest) -> Result<InvitationResponse, ApiError> {
    post("/v1/invitations".into(), &request).await
}

/// The pending invitations (admins), never their tokens.
pub async fn invitations() -> Result<Page<InvitationView>, ApiError> {
    let query = PageQuery {
        limit: Some(model::service::MAX_LIMIT),
        cursor: None,
    };
    get(with_query("/v1/invitations", &query)).await
}

/// Withdraws a pending invitation: its link stops working.
pub async fn revoke_invitation(id: &str) -> Result<(), ApiError> {
    delete(format!("/v1/invitations/{}", encode(id))).await
}

/// Sets the first admin's password through the set-up link (no session needed).
pub async fn setup(token: &str, request: SetupRequest) -> Result<AcceptResponse, ApiError> {
    let path = format!("/v1/setup/{}", encode(token));
    decode(&send(Method::Post, path, json(&request)?, Session::Optional).await?)
}

/// Sets a member's organization roles.
pub async fn set_roles(id: &str, roles: RolesPatch) -> Result<UserView, ApiError> {
    patch(format!("/v1/members/{}", encode(id)), &roles).await
}

/// Removes a member from the organization.
pub async fn remove_member(id: &str) -> Result<(), ApiError> {
    delete(format!("/v1/members/{}", encode(id))).await
}

/// Applications, workspaces or user groups.
pub async fn namespaces(kind: Namespaces) -> Result<Page<NamespaceView>, ApiError> {
    let query = PageQuery {
        limit: Some(model::service::MAX_LIMIT),
        cursor: None,
    };
    get(with_query(kind.path(), &query)).await
}

/// Creates an application, workspace or user group.
pub async fn create_namespace(
    kind: Namespaces,
    request: NamespaceRequest,
) -> Result<NamespaceView, ApiError> {
    post(kind.path().into(), &request).await
}

/// Deletes a workspace or user group.
pub async fn delete_namespace(kind: Namespaces, id: &str) -> Result<(), ApiError> {
    delete(format!("{}/{}", kind.path(), encode(id))).await
}

/// Renames a workspace or user group.
pub async fn rename_namespace(
    kind: Namespaces,
    id: &str,
    name: String,
) -> Result<NamespaceView, ApiError> {
    patch(
        format!("{}/{}", kind.path(), encode(id)),
        &RenameRequest { name },
    )
    .await
}

/// Puts a member into a user group (204; already in it changes nothing).
pub async fn add_group_member(group: &str, user: String) -> Result<(), ApiError> {
    let path = format!(
        "{}/{}/members",
        Namespaces::Usergroups.path(),
        encode(group)
    );
    let body = json(&GroupMemberRequest { user })?;
    send(Method::Post, path, body, Session::Required)
        .await
        .map(|_| ())
}

/// Takes a member out of a user group.
pub async fn remove_group_member(group: &str, user: &str) -> Result<(), ApiError> {
    delete(format!(
        "{}/{}/members/{}",
        Namespaces::Usergroups.path(),
        encode(group),
        encode(user)
    ))
    .await
}

/// The permission catalogue.
pub async fn permissions() -> Result<Page<PermissionView>, ApiError> {
    get("/v1/permissions".into()).await
}

/// Adds a permission to the catalogue.
pub async fn define_permission(request: PermissionRequest) -> Result<PermissionView, ApiError> {
    post("/v1/permissions".into(), &request).await
}

/// Grants, filtered by principal and namespace.
pub async fn grants(query: &GrantQuery) -> Result<Page<Grant>, ApiError> {
    get(with_query("/v1/grants", query)).await
}

/// Grants a permission.
pub async fn create_grant(request: GrantRequest) -> Result<Grant, ApiError> {
    post("/v1/grants".into(), &request).await
}

/// Removes a grant.
pub async fn delete_grant(id: &str) -> Result<(), ApiError> {
    delete(format!("/v1/grants/{}", encode(id))).await
}

/// Resources of a namespace the caller may read.
pub async fn resources(query: &ResourceQuery) -> Result<Page<Resource>, ApiError> {
    get(with_query("/v1/resources", query)).await
}

/// An id or token as one path segment.
fn encode(segment: &str) -> String {
    js_sys::encode_uri_component(segment).into()
}
