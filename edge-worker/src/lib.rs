//! The edge host: Keygate's API on Cloudflare Workers over Workers KV.
//!
//! `fetch` is a routing table of named handlers; each turns the request into a call of
//! `model::service::Keygate` and its answer (or `model::Error`, mapped once in [`respond`])
//! back into a response. The console is served by Workers static assets (`wrangler.toml`),
//! which hand `/v1/*` and `/healthz` to this code.

mod store;

use std::cell::Cell;
use std::rc::Rc;

use model::api::{
    AcceptRequest, BulkRevokeRequest, CreateKeyRequest, CreateOrganizationRequest, DeleteKeyQuery,
    EventQuery, GrantQuery, GrantRequest, GroupMemberRequest, InviteRequest, KeyListQuery,
    KeyPatch, LoginRequest, NamespaceKind, NamespaceRequest, PageQuery, PermissionRequest,
    RenameRequest, ResourcePatch, ResourceQuery, ResourceRequest, RolesPatch, RollRequest,
    SettingsPatch, SetupRequest, UsageQuery,
};
use model::service::{CSRF_HEADER, Caller, Keygate};
use model::{Error, wire};
use serde::Serialize;
use time::OffsetDateTime;
use worker::{
    Context, Env, Request, Response, RouteContext, Router, console_error, console_log, event,
};

use crate::store::{BINDING, KvBackend};

type Kg = Rc<Keygate<KvBackend>>;
type Ctx = RouteContext<Kg>;
type ApiResult = Result<Reply, Error>;

/// How long a usage flush gathers counts before writing them.
const USAGE_GATHER: std::time::Duration = std::time::Duration::from_millis(1_000);

thread_local! {
    /// Whether this isolate has already made sure the store is bootstrapped.
    static BOOTSTRAPPED: Cell<bool> = const { Cell::new(false) };
    /// Verification counts of this isolate, across its requests.
    static USAGE: std::sync::Arc<model::service::UsageBuffer> = std::sync::Arc::default();
    /// Whether a usage flush is running: one at a time per isolate, so none loses another's
    /// read-modify-write.
    static FLUSHING: Cell<bool> = const { Cell::new(false) };
}

/// Adapts a named handler (`async fn(Request, Ctx) -> ApiResult`) to the router.
macro_rules! handler {
    ($name:ident) => {
        |req, ctx| async move { respond($name(req, ctx).await) }
    };
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let usage = USAGE.with(std::sync::Arc::clone);
    let keygate = Rc::new(Keygate::with_usage(KvBackend::new(env.kv(BINDING)?), usage));
    let url = req.url()?;
    let secure = url.scheme() == "https";
    if !BOOTSTRAPPED.get() {
        let origin = url.origin().ascii_serialization();
        if let Err(e) = bootstrap(&keygate, &env, &origin).await {
            return respond(Err(e));
        }
        BOOTSTRAPPED.set(true);
        let renewer = Rc::clone(&keygate);
        ctx.wait_until(async move { renew_setup(&renewer, &origin).await });
    }
    let flusher = Rc::clone(&keygate);
    let router = Router::with_data(keygate);
    #[cfg(feature = "fault-injection")]
    let router = router.post_async("/__faults", |mut req, _| async move {
        #[derive(serde::Deserialize)]
        struct Faults {
            fail_prefix: Option<String>,
            #[serde(default)]
            detach_writes: bool,
            #[serde(default)]
            clear_cache: bool,
        }
        let faults: Faults = req.json().await?;
        store::faults::set(faults.fail_prefix);
        store::faults::detach(faults.detach_writes);
        if faults.clear_cache {
            store::clear_cache();
        }
        Response::empty().map(|r| r.with_status(204))
    });
    let response = router
        .get_async("/healthz", handler!(healthz))
        .get_async("/openapi.json", handler!(openapi))
        .on_async("/gateway/*path", |req, ctx| async move {
            match gateway(req, ctx).await {
                Ok(response) => Ok(response),
                Err(e) => respond(Err(e)),
            }
        })
        .post_async("/v1/auth/login", handler!(login))
        .post_async("/v1/auth/logout", handler!(logout))
        .get_async("/v1/me", handler!(me))
        .get_async("/v1/keys", handler!(list_keys))
        .post_async("/v1/keys", handler!(create_key))
        .post_async("/v1/keys/verify", handler!(verify))
        .post_async("/v1/keys/revoke", handler!(bulk_revoke))
        .get_async("/v1/keys/:id", handler!(get_key))
        .patch_async("/v1/keys/:id", handler!(update_key))
        .delete_async("/v1/keys/:id", handler!(delete_key))
        .post_async("/v1/keys/:id/revoke", handler!(revoke_key))
        .post_async("/v1/keys/:id/roll", handler!(roll_key))
        .get_async("/v1/events", handler!(events))
        .get_async("/v1/members", handler!(members))
        .patch_async("/v1/members/:id", handler!(set_roles))
        .delete_async("/v1/members/:id", handler!(remove_member))
        .get_async("/v1/invitations", handler!(invitations))
        .post_async("/v1/invitations", handler!(invite))
        .delete_async("/v1/invitations/:id", handler!(revoke_invitation))
        .post_async("/v1/invitations/:token/accept", handler!(accept))
        .post_async("/v1/setup/:token", handler!(setup))
        .get_async("/v1/organizations", handler!(organizations))
        .post_async("/v1/organizations", handler!(create_organization))
        .get_async("/v1/apps", handler!(list_apps))
        .post_async("/v1/apps", handler!(create_app))
        .get_async("/v1/workspaces", handler!(list_workspaces))
        .post_async("/v1/workspaces", handler!(create_workspace))
        .get_async("/v1/workspaces/:id", handler!(get_workspace))
        .patch_async("/v1/workspaces/:id", handler!(rename_workspace))
        .delete_async("/v1/workspaces/:id", handler!(delete_workspace))
        .get_async("/v1/usergroups", handler!(list_groups))
        .post_async("/v1/usergroups", handler!(create_group))
        .get_async("/v1/usergroups/:id", handler!(get_group))
        .patch_async("/v1/usergroups/:id", handler!(rename_group))
        .delete_async("/v1/usergroups/:id", handler!(delete_group))
        .post_async("/v1/usergroups/:id/members", handler!(add_group_member))
        .delete_async(
            "/v1/usergroups/:id/members/:user",
            handler!(remove_group_member),
        )
        .get_async("/v1/permissions", handler!(permissions))
        .post_async("/v1/permissions", handler!(define_permission))
        .get_async("/v1/grants", handler!(grants))
        .post_async("/v1/grants", handler!(create_grant))
        .delete_async("/v1/grants/:id", handler!(delete_grant))
        .get_async("/v1/keys/:id/usage", handler!(key_usage))
        .get_async("/v1/resources", handler!(resources))
        .post_async("/v1/resources", handler!(create_resource))
        .get_async("/v1/resources/:id", handler!(get_resource))
        .patch_async("/v1/resources/:id", handler!(rename_resource))
        .delete_async("/v1/resources/:id", handler!(delete_resource))
        .get_async("/v1/settings", handler!(settings))
        .patch_async("/v1/settings", handler!(update_settings))
        .or_else_any_method_async("/*rest", handler!(no_such_endpoint))
        .run(req, env)
        .await;
    // Served over TLS (always, on Cloudflare): browsers are told to keep to it.
    let response = response.map(|mut r| {
        if secure {
            let _ = r.headers_mut().set("strict-transport-security", wire::HSTS);
        }
        r
    });
    // The test build reports the KV calls this request made (its cache misses).
    #[cfg(feature = "fault-injection")]
    let response = response.map(|mut r| {
        let (gets, lists) = flusher.store().calls();
        let _ = r
            .headers_mut()
            .set("x-keygate-kv-calls", &format!("gets={gets}, lists={lists}"));
        r
    });
    // Verification counts are written after the response, off the request path.
    if flusher.usage_pending() && !FLUSHING.get() {
        FLUSHING.set(true);
        ctx.wait_until(async move {
            // Counts added while this flush runs are taken by its next round. Each round
            // first gathers for a moment, so a busy key is written about once per
            // USAGE_GATHER per isolate: within KV's one write per second per key.
            while flusher.usage_pending() {
                worker::Delay::from(USAGE_GATHER).await;
                if let Err(e) = flusher.flush_usage(now()).await {
                    console_error!("keygate: usage flush failed: {e}");
                    break;
                }
            }
            FLUSHING.set(false);
        });
    }
    response
}

/// First start (SPEC §7): creates the organization and admin from `KEYGATE_ADMIN_*` when KV
/// is empty. Without a password, the worker's log gets a one-time set-up link instead (a
/// new one when an isolate starts after the last one expired; never a password, which Workers
/// Logs would keep).
async fn bootstrap(keygate: &Kg, env: &Env, origin: &str) -> Result<(), Error> {
    let var = |name: &str| {
        env.secret(name)
            .map(|s| s.to_string())
            .or_else(|_| env.var(name).map(|v| v.to_string()))
            .ok()
    };
    let first = keygate
        .bootstrap(
            var("KEYGATE_ADMIN_EMAIL"),
            var("KEYGATE_ADMIN_PASSWORD"),
            now(),
        )
        .await?;
    if let Some(first) = &first {
        console_log!(
            "Keygate: created the first organization and its admin {}",
            first.email
        );
    }
    if let Some(token) = first.and_then(|f| f.setup_token) {
        log_setup_link(origin, &token);
    }
    Ok(())
}

/// An isolate's later start: a new set-up link when the last one expired unused (off the
/// request path, in `wait_until`).
async fn renew_setup(keygate: &Kg, origin: &str) {
    match keygate.renew_setup(now(), false).await {
        Ok(Some(token)) => log_setup_link(origin, &token),
        Ok(None) => {}
        Err(e) => console_error!("keygate: set-up link not renewed: {e}"),
    }
}

/// A warning, not a log line: it asks the operator to act, and `wrangler dev` at its usual
/// log level (and a Workers Logs filter for problems) shows warnings.
fn log_setup_link(origin: &str, token: &str) {
    worker::console_warn!("{}", model::service::setup_notice(origin, token));
}

/// A successful answer: status, JSON body, and maybe a cookie.
struct Reply {
    status: u16,
    /// Serialized once, in the field order of the `model::api` type.
    body: Option<String>,
    cookie: Option<String>,
}

impl Reply {
    /// An answer already in JSON text.
    fn json_text(status: u16, body: String) -> Self {
        Self {
            status,
            body: Some(body),
            cookie: None,
        }
    }

    fn json<T: Serialize>(status: u16, value: &T) -> Self {
        Self {
            status,
            body: serde_json::to_string(value).ok(),
            cookie: None,
        }
    }
}

/// The one place results become responses; errors become problem JSON. No answer may be
/// stored by a cache: several carry a secret shown once.
fn respond(result: ApiResult) -> worker::Result<Response> {
    let mut response = answer(result)?;
    response.headers_mut().set("cache-control", "no-store")?;
    Ok(response)
}

fn answer(result: ApiResult) -> worker::Result<Response> {
    match result {
        Ok(reply) => {
            let mut response = match &reply.body {
                Some(body) => {
                    let mut response = Response::ok(body.as_str())?;
                    response
                        .headers_mut()
                        .set("content-type", "application/json")?;
                    response
                }
                None => Response::empty()?,
            }
            .with_status(reply.status);
            if let Some(cookie) = reply.cookie {
                response.headers_mut().set("set-cookie", &cookie)?;
            }
            Ok(response)
        }
        Err(e) => {
            if let Error::Store(_) | Error::Internal(_) | Error::Upstream(_) = &e {
                console_error!("keygate: {e:?}");
            }
            let problem = e.problem();
            let mut response = Response::from_json(&problem)?.with_status(problem.status);
            response
                .headers_mut()
                .set("content-type", "application/problem+json")?;
            Ok(response)
        }
    }
}

fn now() -> OffsetDateTime {
    let millis = js_sys::Date::now() as i128;
    OffsetDateTime::from_unix_timestamp_nanos(millis * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

async fn caller(req: &Request, ctx: &Ctx) -> Result<Caller, Error> {
    let (authorization, cookie, csrf) = (
        header(req, "authorization"),
        header(req, "cookie"),
        header(req, CSRF_HEADER),
    );
    let credential = wire::credential(
        authorization.as_deref(),
        cookie.as_deref(),
        csrf.as_deref(),
        is_secure(req),
    );
    ctx.data
        .authenticate(credential, wire::is_mutating(req.method().as_ref()), now())
        .await
}

async fn body<T: serde::de::DeserializeOwned>(req: &mut Request) -> Result<T, Error> {
    let content_type = header(req, "content-type");
    let bytes = req
        .bytes()
        .await
        .map_err(|e| Error::BadRequest(e.to_string()))?;
    wire::decode(content_type.as_deref(), &bytes)
}

/// Whether the request came over TLS: the session cookie is then `Secure` and `__Host-`
/// prefixed (on Cloudflare always; under `wrangler dev`, plain HTTP, never).
fn is_secure(req: &Request) -> bool {
    req.url().map_or(true, |u| u.scheme() == "https")
}

async fn login(mut req: Request, ctx: Ctx) -> ApiResult {
    let login: LoginRequest = body(&mut req).await?;
    let answer = ctx.data.login(login, now()).await?;
    let cookie = wire::session_cookie(&answer.token, is_secure(&req));
    Ok(Reply {
        cookie: Some(cookie),
        ..Reply::json(200, &answer)
    })
}

async fn logout(req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    ctx.data.logout(&caller).await?;
    Ok(Reply {
        status: 204,
        body: None,
        cookie: Some(wire::clear_cookie(is_secure(&req))),
    })
}

async fn me(req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    Ok(Reply::json(200, &ctx.data.me(&caller).await?))
}

async fn create_key(mut req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    let create: CreateKeyRequest = body(&mut req).await?;
    Ok(Reply::json(
        201,
        &ctx.data.create_key(&caller, create, now()).await?,
    ))
}

async fn healthz(_: Request, _: Ctx) -> ApiResult {
    Ok(Reply::json(200, &serde_json::json!({"status": "ok"})))
}

async fn no_such_endpoint(_: Request, _: Ctx) -> ApiResult {
    Err(Error::NotFound("endpoint"))
}

async fn list_keys(req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    let query: KeyListQuery = wire::query(raw_query(&req).as_deref())?;
    Ok(Reply::json(
        200,
        &ctx.data.list_keys(&caller, query, now()).await?,
    ))
}

/// The raw query string, without `?`.
fn raw_query(req: &Request) -> Option<String> {
    req.url().ok().and_then(|u| u.query().map(str::to_owned))
}

/// The `:id` path parameter.
fn id(ctx: &Ctx) -> String {
    ctx.param("id").cloned().unwrap_or_default()
}

async fn verify(mut req: Request, ctx: Ctx) -> ApiResult {
    let bytes = req
        .bytes()
        .await
        .map_err(|e| Error::BadRequest(e.to_string()))?;
    let verify = wire::decode_verify(&bytes)?;
    Ok(Reply::json_text(
        200,
        ctx.data.verify_json(&verify, now()).await?,
    ))
}

async fn settings(req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    Ok(Reply::json(200, &ctx.data.settings(&caller).await?))
}

async fn update_settings(mut req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    let patch: SettingsPatch = body(&mut req).await?;
    Ok(Reply::json(
        200,
        &ctx.data.update_settings(&caller, patch, now()).await?,
    ))
}

async fn get_key(req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    Ok(Reply::json(
        200,
        &ctx.data.get_key(&caller, &id(&ctx), now()).await?,
    ))
}

async fn update_key(mut req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    let patch: KeyPatch = body(&mut req).await?;
    Ok(Reply::json(
        200,
        &ctx.data
            .update_key(&caller, &id(&ctx), patch, now())
            .await?,
    ))
}

async fn revoke_key(req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    Ok(Reply::json(
        200,
        &ctx.data.revoke_key(&caller, &id(&ctx), now()).await?,
    ))
}

async fn bulk_revoke(mut req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    let bulk: BulkRevokeRequest = body(&mut req).await?;
    Ok(Reply::json(
        200,
        &ctx.data.bulk_revoke(&caller, bulk.ids, now()).await?,
    ))
}

async fn roll_key(mut req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    let roll: RollRequest = body(&mut req).await?;
    Ok(Reply::json(
        200,
        &ctx.data.roll_key(&caller, &id(&ctx), roll, now()).await?,
    ))
}

async fn delete_key(req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    let query: DeleteKeyQuery = wire::query(raw_query(&req).as_deref())?;
    ctx.data
        .delete_key(&caller, &id(&ctx), query, now())
        .await?;
    Ok(Reply {
        status: 204,
        body: None,
        cookie: None,
    })
}

async fn events(req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    let query: EventQuery = wire::query(raw_query(&req).as_deref())?;
    Ok(Reply::json(200, &ctx.data.events(&caller, query).await?))
}

async fn members(req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    let query: PageQuery = wire::query(raw_query(&req).as_deref())?;
    Ok(Reply::json(200, &ctx.data.members(&caller, query).await?))
}

async fn set_roles(mut req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    let patch: RolesPatch = body(&mut req).await?;
    Ok(Reply::json(
        200,
        &ctx.data.set_roles(&caller, &id(&ctx), patch, now()).await?,
    ))
}

async fn remove_member(req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    ctx.data.remove_member(&caller, &id(&ctx), now()).await?;
    Ok(Reply {
        status: 204,
        body: None,
        cookie: None,
    })
}

async fn invite(mut req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    let invite: InviteRequest = body(&mut req).await?;
    Ok(Reply::json(
        201,
        &ctx.data.invite(&caller, invite, now()).await?,
    ))
}

async fn invitations(req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    let query: PageQuery = wire::query(raw_query(&req).as_deref())?;
    Ok(Reply::json(
        200,
        &ctx.data.invitations(&caller, query, now()).await?,
    ))
}

async fn revoke_invitation(req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    ctx.data
        .revoke_invitation(&caller, &id(&ctx), now())
        .await?;
    Ok(Reply {
        status: 204,
        body: None,
        cookie: None,
    })
}

async fn setup(mut req: Request, ctx: Ctx) -> ApiResult {
    let setup: SetupRequest = body(&mut req).await?;
    let token = ctx.param("token").cloned().unwrap_or_default();
    Ok(Reply::json(
        200,
        &ctx.data.setup(&token, setup, now()).await?,
    ))
}

async fn accept(mut req: Request, ctx: Ctx) -> ApiResult {
    let accept: AcceptRequest = body(&mut req).await?;
    let token = ctx.param("token").cloned().unwrap_or_default();
    Ok(Reply::json(
        201,
        &ctx.data.accept(&token, accept, now()).await?,
    ))
}

async fn organizations(req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    Ok(Reply::json(200, &ctx.data.organizations(&caller).await?))
}

async fn create_organization(mut req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    let create: CreateOrganizationRequest = body(&mut req).await?;
    Ok(Reply::json(
        201,
        &ctx.data.create_organization(&caller, create, now()).await?,
    ))
}

async fn list_namespaces(req: Request, ctx: Ctx, kind: NamespaceKind) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    let query: PageQuery = wire::query(raw_query(&req).as_deref())?;
    Ok(Reply::json(
        200,
        &ctx.data.list_namespaces(&caller, kind, query).await?,
    ))
}

async fn create_namespace(mut req: Request, ctx: Ctx, kind: NamespaceKind) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    let create: NamespaceRequest = body(&mut req).await?;
    Ok(Reply::json(
        201,
        &ctx.data
            .create_namespace(&caller, kind, create, now())
            .await?,
    ))
}

async fn get_namespace(req: Request, ctx: Ctx, kind: NamespaceKind) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    Ok(Reply::json(
        200,
        &ctx.data.get_namespace(&caller, kind, &id(&ctx)).await?,
    ))
}

async fn rename_namespace(mut req: Request, ctx: Ctx, kind: NamespaceKind) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    let rename: RenameRequest = body(&mut req).await?;
    Ok(Reply::json(
        200,
        &ctx.data
            .rename_namespace(&caller, kind, &id(&ctx), &rename.name, now())
            .await?,
    ))
}

async fn delete_namespace(req: Request, ctx: Ctx, kind: NamespaceKind) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    ctx.data
        .delete_namespace(&caller, kind, &id(&ctx), now())
        .await?;
    Ok(Reply {
        status: 204,
        body: None,
        cookie: None,
    })
}

async fn list_apps(req: Request, ctx: Ctx) -> ApiResult {
    list_namespaces(req, ctx, NamespaceKind::Application).await
}
async fn create_app(req: Request, ctx: Ctx) -> ApiResult {
    create_namespace(req, ctx, NamespaceKind::Application).await
}
async fn list_workspaces(req: Request, ctx: Ctx) -> ApiResult {
    list_namespaces(req, ctx, NamespaceKind::Workspace).await
}
async fn create_workspace(req: Request, ctx: Ctx) -> ApiResult {
    create_namespace(req, ctx, NamespaceKind::Workspace).await
}
async fn get_workspace(req: Request, ctx: Ctx) -> ApiResult {
    get_namespace(req, ctx, NamespaceKind::Workspace).await
}
async fn rename_workspace(req: Request, ctx: Ctx) -> ApiResult {
    rename_namespace(req, ctx, NamespaceKind::Workspace).await
}
async fn delete_workspace(req: Request, ctx: Ctx) -> ApiResult {
    delete_namespace(req, ctx, NamespaceKind::Workspace).await
}
async fn list_groups(req: Request, ctx: Ctx) -> ApiResult {
    list_namespaces(req, ctx, NamespaceKind::Usergroup).await
}
async fn create_group(req: Request, ctx: Ctx) -> ApiResult {
    create_namespace(req, ctx, NamespaceKind::Usergroup).await
}
async fn get_group(req: Request, ctx: Ctx) -> ApiResult {
    get_namespace(req, ctx, NamespaceKind::Usergroup).await
}
async fn rename_group(req: Request, ctx: Ctx) -> ApiResult {
    rename_namespace(req, ctx, NamespaceKind::Usergroup).await
}
async fn delete_group(req: Request, ctx: Ctx) -> ApiResult {
    delete_namespace(req, ctx, NamespaceKind::Usergroup).await
}

async fn add_group_member(mut req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    let member: GroupMemberRequest = body(&mut req).await?;
    ctx.data
        .set_group_member(&caller, &id(&ctx), &member.user, true, now())
        .await?;
    Ok(Reply {
        status: 204,
        body: None,
        cookie: None,
    })
}

async fn remove_group_member(req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    let user = ctx.param("user").cloned().unwrap_or_default();
    ctx.data
        .set_group_member(&caller, &id(&ctx), &user, false, now())
        .await?;
    Ok(Reply {
        status: 204,
        body: None,
        cookie: None,
    })
}

async fn permissions(req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    Ok(Reply::json(200, &ctx.data.permissions(&caller).await?))
}

async fn define_permission(mut req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    let define: PermissionRequest = body(&mut req).await?;
    Ok(Reply::json(
        201,
        &ctx.data.define_permission(&caller, define, now()).await?,
    ))
}

async fn grants(req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    let query: GrantQuery = wire::query(raw_query(&req).as_deref())?;
    Ok(Reply::json(200, &ctx.data.grants(&caller, query).await?))
}

async fn create_grant(mut req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    let grant: GrantRequest = body(&mut req).await?;
    Ok(Reply::json(
        201,
        &ctx.data.create_grant(&caller, grant, now()).await?,
    ))
}

async fn delete_grant(req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    ctx.data.delete_grant(&caller, &id(&ctx), now()).await?;
    Ok(Reply {
        status: 204,
        body: None,
        cookie: None,
    })
}

async fn resources(req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    let query: ResourceQuery = wire::query(raw_query(&req).as_deref())?;
    Ok(Reply::json(200, &ctx.data.resources(&caller, query).await?))
}

async fn create_resource(mut req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    let create: ResourceRequest = body(&mut req).await?;
    Ok(Reply::json(
        201,
        &ctx.data.create_resource(&caller, create, now()).await?,
    ))
}

async fn get_resource(req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    Ok(Reply::json(
        200,
        &ctx.data.get_resource(&caller, &id(&ctx)).await?,
    ))
}

async fn rename_resource(mut req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    let patch: ResourcePatch = body(&mut req).await?;
    Ok(Reply::json(
        200,
        &ctx.data
            .rename_resource(&caller, &id(&ctx), patch, now())
            .await?,
    ))
}

async fn delete_resource(req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    ctx.data.delete_resource(&caller, &id(&ctx), now()).await?;
    Ok(Reply {
        status: 204,
        body: None,
        cookie: None,
    })
}

async fn key_usage(req: Request, ctx: Ctx) -> ApiResult {
    let caller = caller(&req, &ctx).await?;
    let query: UsageQuery = wire::query(raw_query(&req).as_deref())?;
    Ok(Reply::json(
        200,
        &ctx.data.key_usage(&caller, &id(&ctx), query).await?,
    ))
}

async fn openapi(_: Request, _: Ctx) -> ApiResult {
    Ok(Reply {
        status: 200,
        body: Some(model::OPENAPI_JSON.to_owned()),
        cookie: None,
    })
}

/// Gateway mode (SPEC §4.4): `/gateway/<path>` is verified at the edge and forwarded to
/// `KEYGATE_UPSTREAM/<path>` with the identity headers and without the key; a refused key is
/// answered here and never reaches the upstream.
async fn gateway(mut req: Request, ctx: Ctx) -> Result<Response, Error> {
    let upstream = ctx
        .env
        .var("KEYGATE_UPSTREAM")
        .map(|v| v.to_string())
        .unwrap_or_default();
    if upstream.is_empty() {
        return Err(Error::NotFound(
            "gateway (KEYGATE_UPSTREAM is not configured)",
        ));
    }
    let (authorization, x_api_key) = (header(&req, "authorization"), header(&req, "x-api-key"));
    let key = wire::gateway_key(authorization.as_deref(), x_api_key.as_deref())
        .ok_or(Error::KeyRefused(model::api::VerifyCode::NotFound))?
        .to_owned();
    let verify = model::api::VerifyRequest {
        key,
        permissions: None,
        resource: None,
        namespace: None,
    };
    let answer = ctx.data.verify(&verify, now()).await?;
    let identity = wire::gateway_identity(&answer)?;

    let url = req.url().map_err(|e| Error::BadRequest(e.to_string()))?;
    let rest = url.path().strip_prefix("/gateway").unwrap_or("/");
    let mut target = format!(
        "{}{}",
        upstream.trim_end_matches('/'),
        if rest.is_empty() { "/" } else { rest }
    );
    if let Some(query) = url.query() {
        target.push('?');
        target.push_str(query);
    }
    let headers = worker::Headers::new();
    for (name, value) in req.headers().entries() {
        if !wire::gateway_drops(&name) {
            headers.set(&name, &value).map_err(internal)?;
        }
    }
    for (name, value) in identity {
        headers.set(name, &value).map_err(internal)?;
    }
    let method = req.method();
    let body = req.bytes().await.unwrap_or_default();
    let mut init = worker::RequestInit::new();
    init.with_method(method.clone()).with_headers(headers);
    if !body.is_empty() && !matches!(method, worker::Method::Get | worker::Method::Head) {
        init.with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
    }
    let forwarded = Request::new_with_init(&target, &init).map_err(internal)?;
    let answer = worker::Fetch::Request(forwarded)
        .send()
        .await
        .map_err(|e| Error::Upstream(e.to_string()))?;
    // The upstream's answer shares the console's origin: it sets no session cookie, and
    // whatever it holds runs sandboxed.
    let headers = worker::Headers::new();
    for (name, value) in answer.headers().entries() {
        if wire::gateway_passes_back(&name, &value) {
            headers.append(&name, &value).map_err(internal)?;
        }
    }
    for (name, value) in wire::GATEWAY_ANSWER_HEADERS {
        headers.set(name, value).map_err(internal)?;
    }
    // Same status, body streamed through: only the headers are new.
    Ok(answer.with_headers(headers))
}

fn internal(e: worker::Error) -> Error {
    Error::Internal(e.to_string())
}
