//! The console's typed HTTP client. Methods and paths come from `model::http`'s endpoint table,
//! request, query and response types are `model::api`'s, so no path, JSON field or query
//! parameter name is written here. The session lives in the HttpOnly
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
    CreatedKey, DeleteKeyQuery, EventQuery, EventView, GrantQuery, GrantRequest, GrantView,
    GroupMemberRequest, InvitationResponse, InvitationView, InviteRequest, KeyListQuery, KeyPatch,
    KeyView, LoginRequest, LoginResponse, MeResponse, NamespaceRequest, NamespaceView,
    OverviewView, Page, PageQuery, PermissionRequest, PermissionView, Problem, RenameRequest,
    ResourceQuery, ResourceView, RolesPatch, RollRequest, SettingsPatch, SettingsView,
    SetupRequest, UsagePage, UsageQuery, UserView,
};
use model::api::{CreatedWebhook, DeliveryView, WebhookPatch, WebhookRequest, WebhookView};
use model::http::{self, Op};
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
    /// The endpoints listing and creating this kind of namespace.
    fn ops(self) -> (Op, Op) {
        match self {
            Namespaces::Apps => (Op::Apps, Op::CreateApp),
            Namespaces::Workspaces => (Op::Workspaces, Op::CreateWorkspace),
            Namespaces::Usergroups => (Op::Usergroups, Op::CreateUsergroup),
        }
    }

    /// The endpoints renaming and deleting one (applications have neither: `None`).
    fn item_ops(self) -> Option<(Op, Op)> {
        match self {
            Namespaces::Apps => None,
            Namespaces::Workspaces => Some((Op::RenameWorkspace, Op::DeleteWorkspace)),
            Namespaces::Usergroups => Some((Op::RenameUsergroup, Op::DeleteUsergroup)),
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

/// A query string serialized from a `model::api` query type.
fn query_of<Q: Serialize>(query: &Q) -> Option<String> {
    serde_urlencoded::to_string(query).ok()
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

/// The method and path of endpoint `op` with `params` filled in, from the endpoint table.
fn at(op: Op, params: &[&str]) -> (Method, String) {
    let method = match http::endpoint(op).method {
        "POST" => Method::Post,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        _ => Method::Get,
    };
    (method, http::path(op, params))
}

/// Calls `op` on the session and reads its answer's body.
fn call(op: Op, params: &[&str], query: Option<String>, body: Option<String>) -> Answer {
    call_as(op, params, query, body, Session::Required)
}

fn call_as(
    op: Op,
    params: &[&str],
    query: Option<String>,
    body: Option<String>,
    session: Session,
) -> Answer {
    let (method, mut path) = at(op, params);
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        path.push('?');
        path.push_str(&q);
    }
    send(method, path, body, session)
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

/// Calls `op` and decodes its JSON answer.
async fn json_of<T: DeserializeOwned>(
    op: Op,
    params: &[&str],
    query: Option<String>,
    body: Option<String>,
) -> Result<T, ApiError> {
    decode(&call(op, params, query, body).await?)
}

/// Calls `op`, whose answer has no body.
async fn done(
    op: Op,
    params: &[&str],
    query: Option<String>,
    body: Option<String>,
) -> Result<(), ApiError> {
    call(op, params, query, body).await.map(|_| ())
}

/// Signs in; the server also sets the session cookie.
pub async fn login(email: String, password: String) -> Result<LoginResponse, ApiError> {
    let body = json(&LoginRequest { email, password })?;
    let answer: LoginResponse =
        decode(&call_as(Op::Login, &[], None, body, Session::Optional).await?)?;
    remember_csrf(Some(answer.csrf_token.clone()));
    Ok(answer)
}

/// Ends the session.
pub async fn logout() -> Result<(), ApiError> {
    let answer = call_as(Op::Logout, &[], None, None, Session::Optional).await;
    remember_csrf(None);
    answer.map(|_| ())
}

/// Who is signed in (from the cookie), remembering the session's CSRF token. A 401 here only
/// means nobody is signed in yet.
pub async fn me() -> Result<MeResponse, ApiError> {
    let me: MeResponse = decode(&call_as(Op::Me, &[], None, None, Session::Optional).await?)?;
    remember_csrf(me.csrf_token.clone());
    Ok(me)
}

/// Accepts an invitation, creating the member (no session needed).
pub async fn accept_invitation(
    token: &str,
    request: AcceptRequest,
) -> Result<AcceptResponse, ApiError> {
    let body = json(&request)?;
    decode(&call_as(Op::Accept, &[token], None, body, Session::Optional).await?)
}

/// Keys: the caller's own, or with `all` every key of the organization (admins).
pub async fn keys(query: &KeyListQuery) -> Result<Page<KeyView>, ApiError> {
    json_of(Op::Keys, &[], query_of(query), None).await
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
    json_of(Op::CreateKey, &[], None, json(&request)?).await
}

/// A key's display information.
pub async fn key(id: &str) -> Result<KeyView, ApiError> {
    json_of(Op::GetKey, &[id], None, None).await
}

/// Renames a key or changes its description.
pub async fn update_key(id: &str, patch_body: KeyPatch) -> Result<KeyView, ApiError> {
    json_of(Op::UpdateKey, &[id], None, json(&patch_body)?).await
}

/// Revokes one key.
pub async fn revoke_key(id: &str) -> Result<KeyView, ApiError> {
    json_of(Op::RevokeKey, &[id], None, None).await
}

/// Revokes many keys (admins), with a result per id.
pub async fn bulk_revoke(ids: Vec<String>) -> Result<BulkRevokeResponse, ApiError> {
    json_of(Op::BulkRevoke, &[], None, json(&BulkRevokeRequest { ids })?).await
}

/// Gives a key a new secret; the old one keeps working for the grace period.
pub async fn roll_key(id: &str, grace_seconds: u32) -> Result<CreatedKey, ApiError> {
    let body = json(&RollRequest { grace_seconds })?;
    json_of(Op::RollKey, &[id], None, body).await
}

/// Deletes a key, handing its resources over or deleting them as `query` says.
pub async fn delete_key(id: &str, query: &DeleteKeyQuery) -> Result<(), ApiError> {
    done(Op::DeleteKey, &[id], query_of(query), None).await
}

/// A key's verifications per minute.
pub async fn key_usage(id: &str, query: &UsageQuery) -> Result<UsagePage, ApiError> {
    json_of(Op::KeyUsage, &[id], query_of(query), None).await
}

/// The organization's keys and their use at a glance (admins).
pub async fn overview() -> Result<OverviewView, ApiError> {
    json_of(Op::Overview, &[], None, None).await
}

/// The organization's settings (admins).
pub async fn settings() -> Result<SettingsView, ApiError> {
    json_of(Op::Settings, &[], None, None).await
}

/// Changes the organization's settings (admins).
pub async fn update_settings(patch_body: SettingsPatch) -> Result<SettingsView, ApiError> {
    json_of(Op::UpdateSettings, &[], None, json(&patch_body)?).await
}

/// The audit log, newest first.
pub async fn events(query: &EventQuery) -> Result<Page<EventView>, ApiError> {
    json_of(Op::Events, &[], query_of(query), None).await
}

/// The organization's members.
pub async fn members(query: &PageQuery) -> Result<Page<UserView>, ApiError> {
    json_of(Op::Members, &[], query_of(query), None).await
}

/// Invites someone; the answer's token makes the invitation link.
pub async fn invite(request: InviteRequest) -> Result<InvitationResponse, ApiError> {
    json_of(Op::Invite, &[], None, json(&request)?).await
}

/// The pending invitations (admins), never their tokens.
pub async fn invitations() -> Result<Page<InvitationView>, ApiError> {
    let query = PageQuery {
        limit: Some(model::service::MAX_LIMIT),
        cursor: None,
    };
    json_of(Op::Invitations, &[], query_of(&query), None).await
}

/// Withdraws a pending invitation: its link stops working.
pub async fn revoke_invitation(id: &str) -> Result<(), ApiError> {
    done(Op::RevokeInvitation, &[id], None, None).await
}

/// Sets the first admin's password through the set-up link (no session needed).
pub async fn setup(token: &str, request: SetupRequest) -> Result<AcceptResponse, ApiError> {
    let body = json(&request)?;
    decode(&call_as(Op::Setup, &[token], None, body, Session::Optional).await?)
}

/// Sets a member's organization roles.
pub async fn set_roles(id: &str, roles: RolesPatch) -> Result<UserView, ApiError> {
    json_of(Op::SetRoles, &[id], None, json(&roles)?).await
}

/// Removes a member from the organization.
pub async fn remove_member(id: &str) -> Result<(), ApiError> {
    done(Op::RemoveMember, &[id], None, None).await
}

/// Applications, workspaces or user groups.
pub async fn namespaces(kind: Namespaces) -> Result<Page<NamespaceView>, ApiError> {
    let query = PageQuery {
        limit: Some(model::service::MAX_LIMIT),
        cursor: None,
    };
    json_of(kind.ops().0, &[], query_of(&query), None).await
}

/// Creates an application, workspace or user group.
pub async fn create_namespace(
    kind: Namespaces,
    request: NamespaceRequest,
) -> Result<NamespaceView, ApiError> {
    json_of(kind.ops().1, &[], None, json(&request)?).await
}

/// The endpoint that renames (`.0`) or deletes (`.1`) a namespace of `kind`.
fn item_op(kind: Namespaces, rename: bool) -> Result<Op, ApiError> {
    let (renames, deletes) = kind
        .item_ops()
        .ok_or_else(|| ApiError::Decode("applications are listed and created only".into()))?;
    Ok(if rename { renames } else { deletes })
}

/// Deletes a workspace or user group.
pub async fn delete_namespace(kind: Namespaces, id: &str) -> Result<(), ApiError> {
    done(item_op(kind, false)?, &[id], None, None).await
}

/// Renames a workspace or user group.
pub async fn rename_namespace(
    kind: Namespaces,
    id: &str,
    name: String,
) -> Result<NamespaceView, ApiError> {
    let body = json(&RenameRequest { name })?;
    json_of(item_op(kind, true)?, &[id], None, body).await
}

/// Puts a member into a user group (204; already in it changes nothing).
pub async fn add_group_member(group: &str, user: String) -> Result<(), ApiError> {
    let body = json(&GroupMemberRequest { user })?;
    done(Op::AddGroupMember, &[group], None, body).await
}

/// Takes a member out of a user group.
pub async fn remove_group_member(group: &str, user: &str) -> Result<(), ApiError> {
    done(Op::RemoveGroupMember, &[group, user], None, None).await
}

/// The permission catalogue.
pub async fn permissions() -> Result<Page<PermissionView>, ApiError> {
    json_of(Op::Permissions, &[], None, None).await
}

/// Adds a permission to the catalogue.
pub async fn define_permission(request: PermissionRequest) -> Result<PermissionView, ApiError> {
    json_of(Op::DefinePermission, &[], None, json(&request)?).await
}

/// Grants, filtered by principal and namespace.
pub async fn grants(query: &GrantQuery) -> Result<Page<GrantView>, ApiError> {
    json_of(Op::Grants, &[], query_of(query), None).await
}

/// Grants a permission.
pub async fn create_grant(request: GrantRequest) -> Result<GrantView, ApiError> {
    json_of(Op::CreateGrant, &[], None, json(&request)?).await
}

/// Removes a grant.
pub async fn delete_grant(id: &str) -> Result<(), ApiError> {
    done(Op::DeleteGrant, &[id], None, None).await
}

/// Resources of a namespace the caller may read.
pub async fn resources(query: &ResourceQuery) -> Result<Page<ResourceView>, ApiError> {
    json_of(Op::Resources, &[], query_of(query), None).await
}

/// The organization's webhooks (admins; at most [`model::service::MAX_WEBHOOKS`], one page).
pub async fn webhooks() -> Result<Page<WebhookView>, ApiError> {
    let query = PageQuery {
        limit: Some(model::service::MAX_LIMIT),
        cursor: None,
    };
    json_of(Op::Webhooks, &[], query_of(&query), None).await
}

/// Adds a webhook; the answer holds its signing secret, once.
pub async fn create_webhook(request: WebhookRequest) -> Result<CreatedWebhook, ApiError> {
    json_of(Op::CreateWebhook, &[], None, json(&request)?).await
}

/// Changes a webhook (its URL, events, description, or whether it is enabled).
pub async fn update_webhook(id: &str, patch_body: WebhookPatch) -> Result<WebhookView, ApiError> {
    json_of(Op::UpdateWebhook, &[id], None, json(&patch_body)?).await
}

/// Deletes a webhook and what waits in its queue.
pub async fn delete_webhook(id: &str) -> Result<(), ApiError> {
    done(Op::DeleteWebhook, &[id], None, None).await
}

/// A webhook's delivery attempts, newest first.
pub async fn webhook_deliveries(
    id: &str,
    query: &PageQuery,
) -> Result<Page<DeliveryView>, ApiError> {
    json_of(Op::WebhookDeliveries, &[id], query_of(query), None).await
}

/// Sends a `webhook.test` delivery now and answers how it went.
pub async fn test_webhook(id: &str) -> Result<DeliveryView, ApiError> {
    json_of(Op::TestWebhook, &[id], None, None).await
}
