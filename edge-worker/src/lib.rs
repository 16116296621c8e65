//! The edge host: Keygate's API on Cloudflare Workers over Workers KV, a transport for
//! `model::http`'s one endpoint table.
//!
//! `fetch` answers the read path here, over this isolate's cached view of KV (verification,
//! `/healthz`, `/openapi.json`: [`api::Endpoint::is_read_path`]) and the gateway; every other
//! API request goes to the control object ([`control`]), a Durable Object that runs it over
//! its own storage and writes what it commits through to KV. Both turn a `worker::Request`
//! into a `model::http::Request` and the answer back with [`serve_api`]. Also here: the test
//! build's fault injection, and the hand-over of verification counts after the response
//! (`wait_until`). The console is served by Workers static assets (`wrangler.toml`), which
//! hand the API's paths and the gateway's to this code.

mod control;
mod fetch;
mod meter;
mod remote;
mod store;

use std::borrow::Cow;
use std::cell::Cell;
use std::rc::Rc;

use model::http::{self as api, Body};
use model::service::Keygate;
use model::{Error, wire};
use time::OffsetDateTime;
use worker::{Context, Env, Request, Response, console_error, console_log, console_warn, event};

use crate::store::{BINDING, KvBackend};

type Kg = Rc<Keygate<KvBackend>>;

/// How long an isolate gathers verification counts before handing them to the object.
const USAGE_GATHER: std::time::Duration = std::time::Duration::from_millis(1_000);
/// Where gateway mode listens (SPEC §4.4): not an endpoint of the API.
const GATEWAY: &str = "/gateway";

thread_local! {
    /// Whether this isolate has already made sure the control object is ready.
    static BOOTSTRAPPED: Cell<bool> = const { Cell::new(false) };
    /// Verification counts of this isolate, across its requests.
    static USAGE: std::sync::Arc<model::service::UsageBuffer> = std::sync::Arc::default();
    /// Whether a hand-over of counts is running: one at a time per isolate.
    static FLUSHING: Cell<bool> = const { Cell::new(false) };
}

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let usage = USAGE.with(std::sync::Arc::clone);
    let meters = std::sync::Arc::new(meter::EdgeMeters::new(env.clone()));
    let keygate =
        Rc::new(Keygate::with_usage(KvBackend::new(env.kv(BINDING)?), usage).with_meters(meters));
    let url = req.url()?;
    let secure = url.scheme() == "https";
    let origin = url.origin().ascii_serialization();
    if !BOOTSTRAPPED.get() {
        // The control object migrates and bootstraps its storage, and renews the set-up link.
        if let Err(e) = control::client::ready(&env, &origin).await {
            return send(api::problem(&e));
        }
        BOOTSTRAPPED.set(true);
    }
    let path = url.path();
    let response = if path == GATEWAY || path.starts_with("/gateway/") {
        match gateway(&mut req, &keygate, &env).await {
            Ok(response) => Ok(response),
            Err(e) => send(api::problem(&e)),
        }
    } else if let Some(answer) = faults(&mut req, &env, &origin, path).await {
        answer
    } else {
        let method = req.method();
        let routed = api::route(method.as_ref(), path);
        // 404 and 405 need no state either.
        if routed
            .as_ref()
            .map_or(true, |(endpoint, _)| endpoint.is_read_path())
        {
            serve_api(&keygate, &mut req, Some(routed)).await
        } else {
            match forward(&keygate, &env, req, routed).await {
                Ok(answer) => Ok(answer),
                Err(e) => send(api::problem(&e)),
            }
        }
    };
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
        let (gets, lists) = keygate.store().calls();
        let _ = r
            .headers_mut()
            .set("x-keygate-kv-calls", &format!("gets={gets}, lists={lists}"));
        r
    });
    // Verification counts go to the control object after the response, off the request path.
    if keygate.usage_pending() && !FLUSHING.get() {
        FLUSHING.set(true);
        let usage = USAGE.with(std::sync::Arc::clone);
        ctx.wait_until(async move {
            // Counts added while this hand-over runs are taken by its next round. Each round
            // first gathers for a moment, so an isolate calls the object about once per
            // USAGE_GATHER however busy it is.
            while !usage.is_empty() {
                worker::Delay::from(USAGE_GATHER).await;
                let report = usage.report();
                if report.is_empty() {
                    break;
                }
                if let Some(left) = control::client::usage(&env, &origin, report).await {
                    usage.absorb(left);
                    break;
                }
            }
            FLUSHING.set(false);
        });
    }
    response
}

/// Sends a request that changes or reads more than verification does to the object where
/// it runs (`api::runs`): an organization's endpoint to its organization's object, found
/// from the session token, or from the record of the API key presenting it (one KV read,
/// through this isolate's cache); the instance's endpoints, and requests that name no
/// organization, to the directory object.
async fn forward(
    keygate: &Kg,
    env: &Env,
    req: Request,
    routed: model::error::Result<(&'static api::Endpoint, api::Params)>,
) -> Result<Response, Error> {
    let (authorization, cookie) = (header(&req, "authorization"), header(&req, "cookie"));
    let secure = req.url().is_ok_and(|u| u.scheme() == "https");
    let credential = wire::credential(authorization.as_deref(), cookie.as_deref(), None, secure);
    let runs = match &routed {
        Ok((endpoint, params)) => api::runs(endpoint, params, &credential),
        Err(_) => api::Runs::Directory(None),
    };
    let runs = match runs {
        api::Runs::KeyOrganization(id) => {
            #[derive(serde::Deserialize)]
            struct Named {
                org: String,
            }
            let key = model::store::schema::key(&id);
            match model::store::get_json::<_, Named>(keygate.store(), &key).await? {
                Some(record) => api::Runs::Organization(record.org),
                None => api::Runs::Directory(None),
            }
        }
        runs => runs,
    };
    match runs {
        api::Runs::Organization(org) => control::client::forward(env, req, &org, None).await,
        api::Runs::Directory(context) => {
            control::client::forward(env, req, control::OBJECT, context.as_deref()).await
        }
        api::Runs::ReadPath | api::Runs::KeyOrganization(_) => {
            control::client::forward(env, req, control::OBJECT, None).await
        }
    }
}

/// Serves an API request with `model::http` over `keygate`'s store: this isolate's KV for
/// the read path, the control object's storage for everything else. `routed` is what
/// `api::route` gave for it, when the caller has routed it already.
pub(crate) async fn serve_api<S: model::store::Store>(
    keygate: &Keygate<S>,
    req: &mut Request,
    routed: Option<model::error::Result<(&'static api::Endpoint, api::Params)>>,
) -> worker::Result<Response> {
    let url = req.url()?;
    let method = req.method();
    let routed = routed.unwrap_or_else(|| api::route(method.as_ref(), url.path()));
    let limit = api::body_limit(&routed);
    let body = match req.bytes().await {
        Ok(bytes) if bytes.len() > limit => Body::TooLarge,
        Ok(bytes) => Body::Bytes(bytes),
        Err(_) => Body::Unreadable,
    };
    let headers = WorkerHeaders(req.headers());
    let request = api::Request {
        method: method.as_ref(),
        path: url.path(),
        query: url.query(),
        headers: &headers,
        body,
        secure: url.scheme() == "https",
        // Set by Cloudflare (and by `wrangler dev`) on every request; a client cannot forge it.
        client: api::Headers::get(&headers, "cf-connecting-ip")
            .and_then(|ip| ip.trim().parse().ok()),
    };
    send(api::handle_routed(keygate, request, routed, now()).await)
}

/// The test build's fault settings (`POST /__faults`): which KV calls fail, whether this
/// isolate's writes leave its cache alone (as another isolate's would), clearing the cache,
/// which calls of the control object's storage fail, and whether the object fails.
#[cfg(feature = "fault-injection")]
#[derive(serde::Deserialize)]
pub(crate) struct Faults {
    pub fail_prefix: Option<String>,
    #[serde(default)]
    pub detach_writes: bool,
    #[serde(default)]
    pub clear_cache: bool,
    #[serde(default)]
    pub fail_object_prefix: Option<String>,
    #[serde(default)]
    pub object_down: bool,
    /// The control object's storage calls to let through before one fails.
    #[serde(default)]
    pub fail_object_call: Option<u32>,
    /// Where the directory object dies once, in its next change in two stores:
    /// `before_organization` (its part committed, the organization's not sent) or
    /// `after_organization` (both committed, the outcome not recorded).
    #[serde(default)]
    pub crash_directory: Option<String>,
    /// Whether every metered key's object fails (`crate::meter`).
    #[serde(default)]
    pub meter_down: bool,
}

/// The test build's `POST /__faults`, set in this isolate and passed on to the control
/// object. `None` for any other path.
#[cfg(feature = "fault-injection")]
async fn faults(
    req: &mut Request,
    env: &Env,
    origin: &str,
    path: &str,
) -> Option<worker::Result<Response>> {
    if path != "/__faults" {
        return None;
    }
    Some(set_faults(req, env, origin).await)
}

#[cfg(feature = "fault-injection")]
async fn set_faults(req: &mut Request, env: &Env, origin: &str) -> worker::Result<Response> {
    let text = req.text().await?;
    let faults: Faults = serde_json::from_str(&text)?;
    store::faults::set(faults.fail_prefix);
    store::faults::detach(faults.detach_writes);
    meter::set_down(faults.meter_down);
    if faults.clear_cache {
        store::clear_cache();
    }
    if let Err(e) = control::client::faults(env, origin, text).await {
        return send(api::problem(&e));
    }
    Response::empty().map(|r| r.with_status(204))
}

/// The deployable build has no fault injection, and no trace of its route.
#[cfg(not(feature = "fault-injection"))]
async fn faults(_: &mut Request, _: &Env, _: &str, _: &str) -> Option<worker::Result<Response>> {
    None
}

/// The worker's headers as `model::http` reads them.
struct WorkerHeaders<'a>(&'a worker::Headers);

impl api::Headers for WorkerHeaders<'_> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        self.0.get(name).ok().flatten().map(Cow::Owned)
    }
}

/// `model::http`'s answer as a worker response, its inner failure logged.
pub(crate) fn send(answer: api::Response) -> worker::Result<Response> {
    if let Some(failure) = &answer.log {
        console_error!("keygate: {failure}");
    }
    let headers = worker::Headers::new();
    for (name, value) in &answer.headers {
        headers.append(name, value)?;
    }
    let response = if answer.body.is_empty() {
        Response::empty()?
    } else {
        Response::from_bytes(answer.body)?
    };
    Ok(response.with_status(answer.status).with_headers(headers))
}

pub(crate) fn now() -> OffsetDateTime {
    let millis = js_sys::Date::now() as i128;
    OffsetDateTime::from_unix_timestamp_nanos(millis * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

/// First start (SPEC §7): creates the organization and admin from `KEYGATE_ADMIN_*` when KV
/// is empty. Without a password, the worker's log gets a one-time set-up link instead (a
/// new one when an isolate starts after the last one expired; never a password, which Workers
/// Logs would keep).
pub(crate) async fn bootstrap<S: model::store::Store>(
    keygate: &Keygate<S>,
    env: &Env,
    origin: &str,
) -> Result<(), Error> {
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
    // A prefix that cannot be fails every request (500), the reason in the log.
    let prefix = keygate
        .record_key_prefix(var("KEYGATE_KEY_PREFIX").as_deref())
        .await?;
    if let Some(warning) = prefix.warning() {
        console_warn!("Keygate: {warning}");
    }
    Ok(())
}

/// An isolate's later start: a new set-up link when the last one expired unused (off the
/// request path, in `wait_until`).
pub(crate) async fn renew_setup<S: model::store::Store>(keygate: &Keygate<S>, origin: &str) {
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

/// Gateway mode (SPEC §4.4): `/gateway/<path>` is verified at the edge and forwarded to
/// `KEYGATE_UPSTREAM/<path>` with the identity headers and without the key; a refused key is
/// answered here and never reaches the upstream.
async fn gateway(req: &mut Request, keygate: &Kg, env: &Env) -> Result<Response, Error> {
    let upstream = env
        .var("KEYGATE_UPSTREAM")
        .map(|v| v.to_string())
        .unwrap_or_default();
    if upstream.is_empty() {
        return Err(Error::NotFound(
            "gateway (KEYGATE_UPSTREAM is not configured)",
        ));
    }
    let (authorization, x_api_key) = (header(req, "authorization"), header(req, "x-api-key"));
    let key = wire::gateway_key(authorization.as_deref(), x_api_key.as_deref())
        .ok_or(Error::KeyRefused(model::api::VerifyCode::NotFound))?
        .to_owned();
    // The caller's address, for the key's allowed networks (SPEC §4.4): Cloudflare's.
    let verify = model::api::VerifyRequest {
        key,
        permissions: None,
        resource: None,
        namespace: None,
        cost: None,
        client_ip: header(req, "cf-connecting-ip"),
    };
    let at = now();
    let (answer, retry_after_s) = keygate.verdict(&verify, at).await?;
    let limits = wire::gateway_limits(&answer, retry_after_s, at);
    let identity = match wire::gateway_identity(&answer) {
        Ok(identity) => identity,
        Err(refused) => {
            // The refusal as a problem, with the key's limits (and when to come back).
            let mut problem = api::problem(&refused);
            problem.headers.extend(limits);
            return send(problem).map_err(internal);
        }
    };

    let url = req.url().map_err(|e| Error::BadRequest(e.to_string()))?;
    let rest = url.path().strip_prefix(GATEWAY).unwrap_or("/");
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
    for (name, value) in &limits {
        headers.set(name, value).map_err(internal)?;
    }
    // Same status, body streamed through: only the headers are new.
    Ok(answer.with_headers(headers))
}

fn internal(e: worker::Error) -> Error {
    Error::Internal(e.to_string())
}
