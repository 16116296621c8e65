//! HTTP ⇄ model: the server is a transport for `model::http`'s one endpoint table. Every
//! request under the API's paths becomes a `model::http::Request` and its answer an axum
//! response; everything else is the console from `--assets`. What only the server has is
//! here too: password work on blocking threads, the security headers (HSTS behind TLS), and
//! the background tasks (usage flush, purge of expired records).

use std::borrow::Cow;
use std::path::PathBuf;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::STRICT_TRANSPORT_SECURITY;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use model::Error;
use model::http::{self as api, Body};
use model::service::Keygate;
use model::wire;
use time::OffsetDateTime;
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

use crate::store::RedbStore;

/// What every handler shares, behind one `Arc`: axum clones the state for each extractor of
/// each request, and this makes that one reference count rather than one per part.
#[derive(Clone)]
pub struct AppState(std::sync::Arc<Shared>);

/// The parts of [`AppState`].
pub struct Shared {
    pub keygate: Keygate<RedbStore>,
    /// Turns for the operations that check or hash a password (Argon2: tens of milliseconds of
    /// CPU each), one per core: they run on blocking threads, so a flood of sign-ins queues
    /// here instead of taking every async worker from the rest of the API.
    pub password_work: std::sync::Arc<tokio::sync::Semaphore>,
    /// Whether the server is told it is served over TLS (`--behind-tls`): the session cookie
    /// is then `Secure` under its `__Host-` name, and answers carry HSTS.
    pub behind_tls: bool,
    /// The header a proxy in front of the server sets to the caller's address
    /// (`--trusted-proxy-header`); none: the socket's peer is the caller.
    pub trusted_proxy_header: Option<String>,
}

impl AppState {
    /// State over `keygate`.
    pub fn new(keygate: Keygate<RedbStore>, behind_tls: bool) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Self(std::sync::Arc::new(Shared {
            keygate,
            behind_tls,
            trusted_proxy_header: None,
            password_work: std::sync::Arc::new(tokio::sync::Semaphore::new(cores)),
        }))
    }
}

impl AppState {
    /// This state with the caller's address read from `header` (set by a trusted proxy)
    /// instead of the socket's peer.
    pub fn with_trusted_proxy_header(self, header: Option<String>) -> Self {
        let shared = std::sync::Arc::try_unwrap(self.0).unwrap_or_else(|shared| Shared {
            keygate: shared.keygate.clone(),
            password_work: std::sync::Arc::clone(&shared.password_work),
            behind_tls: shared.behind_tls,
            trusted_proxy_header: shared.trusted_proxy_header.clone(),
        });
        Self(std::sync::Arc::new(Shared {
            trusted_proxy_header: header.map(|h| h.to_ascii_lowercase()),
            ..shared
        }))
    }

    /// Runs `work`, an operation that checks or hashes a password, on a blocking thread once
    /// one of [`Shared::password_work`]'s turns is free.
    async fn password_work<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = Result<T, Error>> + Send + 'static,
    ) -> Result<T, Error> {
        let _turn = self
            .password_work
            .acquire()
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || runtime.block_on(work))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The built console: files from `--assets`, `index.html` for any other path (the SPA).
type Assets = ServeDir<ServeFile>;

/// The whole app: the API's endpoints (`model::http`), and the console from `assets` when
/// given, with the security headers on every answer.
pub fn router(state: AppState, assets: Option<PathBuf>) -> Router {
    // The console's index.html decides the policy (its inline script's hash); without a
    // console nothing is allowed to run at all.
    let index_html = assets
        .as_ref()
        .and_then(|dir| std::fs::read_to_string(dir.join("index.html")).ok())
        .unwrap_or_default();
    let mut headers = Vec::new();
    if state.behind_tls {
        headers.push((
            STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(wire::HSTS),
        ));
    }
    for (name, value) in wire::security_headers(&index_html) {
        let value = if index_html.is_empty() && name == "content-security-policy" {
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'")
        } else {
            match HeaderValue::from_str(&value) {
                Ok(v) => v,
                Err(_) => continue,
            }
        };
        headers.push((HeaderName::from_static(name), value));
    }
    let assets: Option<Assets> =
        assets.map(|dir| ServeDir::new(&dir).fallback(ServeFile::new(dir.join("index.html"))));
    let app = Router::new()
        .fallback(move |State(state): State<AppState>, request: Request| {
            let assets = assets.clone();
            async move { dispatch(state, assets, request).await }
        })
        .with_state(state);
    // One layer for all of them (a layer per header cost a service clone each per request).
    let headers = std::sync::Arc::new(headers);
    app.layer(tower::util::MapResponseLayer::new(
        move |mut response: Response| {
            let present = response.headers_mut();
            for (name, value) in headers.iter() {
                if !present.contains_key(name) {
                    present.insert(name.clone(), value.clone());
                }
            }
            response
        },
    ))
}

/// One request: the API's through the endpoint table (password work on a blocking thread),
/// anything else from the console's files.
async fn dispatch(state: AppState, assets: Option<Assets>, request: Request) -> Response {
    if !api::owns(request.uri().path()) {
        return match assets {
            Some(dir) => match dir.oneshot(request).await {
                Ok(file) => file.into_response(),
                Err(never) => match never {},
            },
            None => answer(api::problem(&Error::NotFound("page"))),
        };
    }
    // `None` unless metrics are on (`--metrics-listen`): then nothing is timed or counted.
    let started = crate::metrics::clock();
    let (parts, body) = request.into_parts();
    // Routed once: for the body's limit, the log, where it runs, and the dispatcher.
    let routed = api::route(parts.method.as_str(), parts.uri.path());
    let body = read_body(body, api::body_limit(&routed)).await;
    let endpoint = routed.as_ref().ok().map(|(endpoint, _)| *endpoint);
    // The endpoint's declared path, never the one sent: a path can carry a token.
    let logged = endpoint.map_or("(no endpoint)", |e| e.path);
    tracing::trace!(method = %parts.method, endpoint = logged, "request");
    let response = if endpoint.is_some_and(|e| e.is_password_work()) {
        let (keygate, secure) = (state.keygate.clone(), state.behind_tls);
        let proxy = state.trusted_proxy_header.clone();
        let work = async move {
            let headers = AxumHeaders(&parts.headers);
            let request = api_request(&parts, &headers, body, secure, proxy.as_deref());
            Ok(api::handle_routed(&keygate, request, routed, now()).await)
        };
        state
            .password_work(work)
            .await
            .unwrap_or_else(|e| api::problem(&e))
    } else {
        let headers = AxumHeaders(&parts.headers);
        let proxy = state.trusted_proxy_header.as_deref();
        let request = api_request(&parts, &headers, body, state.behind_tls, proxy);
        api::handle_routed(&state.keygate, request, routed, now()).await
    };
    if let Some(started) = started {
        crate::metrics::request(endpoint, response.status, started, response.verdict);
    }
    answer(response)
}

fn api_request<'a>(
    parts: &'a axum::http::request::Parts,
    headers: &'a AxumHeaders<'a>,
    body: Body,
    secure: bool,
    proxy_header: Option<&str>,
) -> api::Request<'a, AxumHeaders<'a>> {
    // Behind a proxy, the address it says (the last one of a list: what the nearest proxy,
    // the trusted one, added); a missing or unreadable one is no address, never the peer's.
    let client = match proxy_header {
        Some(name) => parts
            .headers
            .get_all(name)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|ip| ip.trim().parse().ok()),
        // The socket's peer ([`crate::serve::serve`] records it per connection).
        None => parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|peer| peer.0.ip()),
    };
    api::Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers,
        body,
        secure,
        client,
    }
}

/// The body, at most `limit` bytes of it (the endpoint's, [`api::body_limit`]).
async fn read_body(body: axum::body::Body, limit: usize) -> Body {
    match http_body_util::Limited::new(body, limit).collect().await {
        // Without a copy: the collected buffer becomes the Vec when it is the only owner.
        Ok(collected) => Body::Bytes(collected.to_bytes().into()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Body::TooLarge,
        Err(_) => Body::Unreadable,
    }
}

/// axum's headers as `model::http` reads them.
struct AxumHeaders<'a>(&'a HeaderMap);

impl api::Headers for AxumHeaders<'_> {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        api::joined(
            name,
            self.0.get_all(name).iter().filter_map(|v| v.to_str().ok()),
        )
    }
}

/// `model::http`'s answer as axum's, its inner failure logged.
fn answer(response: api::Response) -> Response {
    if let Some(failure) = &response.log {
        tracing::error!(error = %failure, status = response.status, "request failed");
    }
    let mut out = Response::new(axum::body::Body::from(response.body));
    *out.status_mut() =
        StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in response.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            out.headers_mut()
                .append(HeaderName::from_static(name), value);
        }
    }
    out
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// How often buffered verification counts are written to the store.
pub const USAGE_FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Flushes verification counts every [`USAGE_FLUSH_EVERY`] until `stop` resolves, then once
/// more, so counts survive a clean shutdown.
pub async fn flush_usage_until(
    keygate: Keygate<RedbStore>,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut tick = tokio::time::interval(USAGE_FLUSH_EVERY);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = keygate.flush_usage(now()).await {
                    tracing::warn!(error = %e, "usage flush failed; counts kept for the next flush");
                }
            }
            () = &mut stop => break,
        }
    }
    if let Err(e) = keygate.flush_usage(now()).await {
        tracing::error!(error = %e, "final usage flush failed");
    }
}

/// How often the webhook outbox and queues are looked at when nothing is due sooner.
pub const DELIVER_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs webhook delivery rounds until `stop` resolves: every [`DELIVER_EVERY`], and at once
/// after a round that left work it could not finish. A round in progress when `stop` comes
/// is dropped where it waits; what it had not recorded is sent again after the restart.
pub async fn deliver_webhooks_until(
    keygate: Keygate<RedbStore>,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        let round = tokio::select! {
            round = keygate.deliver_webhooks() => round,
            () = &mut stop => break,
        };
        let wait = match round {
            Ok(done) => match done.next_due {
                Some(at) if at <= now() => std::time::Duration::ZERO,
                _ => DELIVER_EVERY,
            },
            Err(e) => {
                tracing::warn!(error = %e, "webhook delivery round failed; retried");
                DELIVER_EVERY
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = &mut stop => break,
        }
    }
}

/// How often expired records are purged from the store.
pub const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Purges expired records (sessions, invitations, throttles, old usage) every
/// [`PURGE_EVERY`] until `stop` resolves, a full round of batches each time.
pub async fn purge_expired_until(store: RedbStore, stop: impl std::future::Future<Output = ()>) {
    let mut tick = tokio::time::interval(PURGE_EVERY);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tick.tick() => loop {
                match store.purge_expired(now().unix_timestamp()).await {
                    Ok(n) if n >= 1000 => continue,
                    Ok(n) => {
                        if n > 0 {
                            tracing::debug!(purged = n, "expired records purged");
                        }
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "purge failed; retried at the next round");
                        break;
                    }
                }
            },
            () = &mut stop => break,
        }
    }
}
