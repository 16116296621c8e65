//! HTTP ⇄ model: extractors, handlers, and the one mapping of `model::Error` to problem JSON.

use std::path::PathBuf;

use axum::body::Bytes;
use axum::extract::{
    DefaultBodyLimit, FromRequest, FromRequestParts, Path, RawQuery, Request, State,
};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use model::Error;
use model::api::{
    AcceptRequest, BulkRevokeRequest, CreateKeyRequest, CreateOrganizationRequest, DeleteKeyQuery,
    EventQuery, GrantQuery, GrantRequest, GroupMemberRequest, InviteRequest, KeyListQuery,
    KeyPatch, LoginRequest, NamespaceKind, NamespaceRequest, PageQuery, PermissionRequest,
    RenameRequest, ResourcePatch, ResourceQuery, ResourceRequest, RolesPatch, RollRequest,
    SettingsPatch, SetupRequest, UsageQuery,
};
use model::service::{CSRF_HEADER, Caller, Keygate};
use model::wire;
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
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
}

impl AppState {
    /// State over `keygate`.
    pub fn new(keygate: Keygate<RedbStore>, behind_tls: bool) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Self(std::sync::Arc::new(Shared {
            keygate,
            behind_tls,
            password_work: std::sync::Arc::new(tokio::sync::Semaphore::new(cores)),
        }))
    }
}

impl AppState {
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

/// Around every API request: changes run in the store's turn, one at a time
/// ([`wire::host_takes_turn`]: those that hash a password take theirs inside the model,
/// around their reads and commit only), and no answer may be stored by a cache: several
/// carry a secret shown once (a new key, a rolled key, a session, an invitation).
async fn api_layer(
    State(store): State<RedbStore>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    use model::store::Store;
    let mut response = if wire::host_takes_turn(request.method().as_str(), request.uri().path()) {
        let _turn = store.turn().await;
        next.run(request).await
    } else {
        next.run(request).await
    };
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The whole app: the API under `/v1`, `/healthz`, and the console from `assets` when given.
pub fn router(state: AppState, assets: Option<PathBuf>) -> Router {
    let api = Router::new()
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/me", get(me))
        .route("/v1/keys", get(list_keys).post(create_key))
        .route("/v1/keys/verify", post(verify))
        .route("/v1/keys/revoke", post(bulk_revoke))
        .route(
            "/v1/keys/{id}",
            get(get_key).patch(update_key).delete(delete_key),
        )
        .route("/v1/keys/{id}/revoke", post(revoke_key))
        .route("/v1/keys/{id}/roll", post(roll_key))
        .route("/v1/events", get(events))
        .route("/v1/members", get(members))
        .route(
            "/v1/members/{id}",
            axum::routing::patch(set_roles).delete(remove_member),
        )
        .route("/v1/invitations", get(invitations).post(invite))
        .route(
            "/v1/invitations/{id}",
            axum::routing::delete(revoke_invitation),
        )
        .route("/v1/invitations/{token}/accept", post(accept))
        .route("/v1/setup/{token}", post(setup))
        .route(
            "/v1/organizations",
            get(organizations).post(create_organization),
        )
        .route("/v1/apps", get(list_apps).post(create_app))
        .route(
            "/v1/workspaces",
            get(list_workspaces).post(create_workspace),
        )
        .route(
            "/v1/workspaces/{id}",
            get(get_workspace)
                .patch(rename_workspace)
                .delete(delete_workspace),
        )
        .route("/v1/usergroups", get(list_groups).post(create_group))
        .route(
            "/v1/usergroups/{id}",
            get(get_group).patch(rename_group).delete(delete_group),
        )
        .route("/v1/usergroups/{id}/members", post(add_group_member))
        .route(
            "/v1/usergroups/{id}/members/{user}",
            axum::routing::delete(remove_group_member),
        )
        .route("/v1/permissions", get(permissions).post(define_permission))
        .route("/v1/grants", get(grants).post(create_grant))
        .route("/v1/grants/{id}", axum::routing::delete(delete_grant))
        .route("/v1/keys/{id}/usage", get(key_usage))
        .route("/v1/resources", get(resources).post(create_resource))
        .route(
            "/v1/resources/{id}",
            get(get_resource)
                .patch(rename_resource)
                .delete(delete_resource),
        )
        .route("/v1/settings", get(settings).patch(update_settings))
        .route(
            "/v1/{*rest}",
            axum::routing::any(|| async { ApiError(Error::NotFound("endpoint")) }),
        )
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/openapi.json", get(openapi))
        .method_not_allowed_fallback(|| async { ApiError(Error::MethodNotAllowed) })
        .layer(DefaultBodyLimit::max(wire::BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            state.keygate.store().clone(),
            api_layer,
        ))
        .with_state(state.clone());
    // The console's index.html decides the policy (its inline script's hash); without a
    // console nothing is allowed to run at all.
    let index_html = assets
        .as_ref()
        .and_then(|dir| std::fs::read_to_string(dir.join("index.html")).ok())
        .unwrap_or_default();
    let app = match assets {
        Some(dir) => {
            let index = dir.join("index.html");
            api.fallback_service(ServeDir::new(dir).fallback(ServeFile::new(index)))
        }
        None => api,
    };
    let mut headers = Vec::new();
    if state.behind_tls {
        headers.push((
            axum::http::header::STRICT_TRANSPORT_SECURITY,
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
        headers.push((axum::http::HeaderName::from_static(name), value));
    }
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

/// A model error on its way out as problem JSON.
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self.0 {
            Error::Store(e) => tracing::error!(error = %e, "store failure"),
            Error::Internal(e) => tracing::error!(error = %e, "internal error"),
            Error::Upstream(e) => tracing::warn!(error = %e, "upstream unavailable"),
            _ => {}
        }
        let problem = self.0.problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(problem)).into_response();
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// A JSON body decoded by `model::wire::decode`: the same rules and problems as the worker.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = header(req.headers(), CONTENT_TYPE.as_str()).map(str::to_owned);
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|_| Error::PayloadTooLarge(wire::BODY_LIMIT))?;
        Ok(Body(wire::decode(content_type.as_deref(), &bytes)?))
    }
}

/// Path parameters. One that does not decode (not UTF-8) names nothing that exists, so it
/// answers 404 like any unknown id, as problem JSON (axum's own rejection is plain text).
pub struct Ids<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Ids<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Ids(value)),
            Err(_) => Err(ApiError(Error::NotFound("id"))),
        }
    }
}

/// The authenticated caller of a request.
pub struct Auth(pub Caller);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let headers = &parts.headers;
        let cookies: Vec<&str> = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let cookie = cookies.join("; ");
        let credential = wire::credential(
            header(headers, AUTHORIZATION.as_str()),
            Some(cookie.as_str()).filter(|c| !c.is_empty()),
            header(headers, CSRF_HEADER),
            state.behind_tls,
        );
        let mutating = wire::is_mutating(parts.method.as_str());
        let caller = state
            .keygate
            .authenticate(credential, mutating, now())
            .await?;
        Ok(Auth(caller))
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn json<T: Serialize>(status: StatusCode, body: T) -> Response {
    (status, Json(body)).into_response()
}

async fn login(
    State(state): State<AppState>,
    Body(req): Body<LoginRequest>,
) -> ApiResult<Response> {
    let keygate = state.keygate.clone();
    let answer = state
        .password_work(async move { keygate.login(req, now()).await })
        .await?;
    let cookie = wire::session_cookie(&answer.token, state.behind_tls);
    let mut response = json(StatusCode::OK, answer);
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    Ok(response)
}

async fn logout(State(state): State<AppState>, Auth(caller): Auth) -> ApiResult<Response> {
    state.keygate.logout(&caller).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&wire::clear_cookie(state.behind_tls)) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    Ok(response)
}

async fn me(State(state): State<AppState>, Auth(caller): Auth) -> ApiResult<Response> {
    Ok(json(StatusCode::OK, state.keygate.me(&caller).await?))
}

async fn create_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Body(req): Body<CreateKeyRequest>,
) -> ApiResult<Response> {
    let created = state.keygate.create_key(&caller, req, now()).await?;
    tracing::info!(key_id = %created.record.id, owner = %caller.user.id, "key created");
    Ok(json(StatusCode::CREATED, created))
}

async fn list_keys(
    State(state): State<AppState>,
    Auth(caller): Auth,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let query: KeyListQuery = wire::query(query.as_deref())?;
    Ok(json(
        StatusCode::OK,
        state.keygate.list_keys(&caller, query, now()).await?,
    ))
}

async fn verify(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    let body = Bytes::from_request(request, &())
        .await
        .map_err(|_| Error::PayloadTooLarge(wire::BODY_LIMIT))?;
    let req = wire::decode_verify(&body)?;
    let answer = state.keygate.verify_json(&req, now()).await?;
    Ok((
        StatusCode::OK,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        answer,
    )
        .into_response())
}

async fn settings(State(state): State<AppState>, Auth(caller): Auth) -> ApiResult<Response> {
    Ok(json(StatusCode::OK, state.keygate.settings(&caller).await?))
}

async fn update_settings(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Body(patch): Body<SettingsPatch>,
) -> ApiResult<Response> {
    Ok(json(
        StatusCode::OK,
        state.keygate.update_settings(&caller, patch, now()).await?,
    ))
}

async fn get_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Ids(id): Ids<String>,
) -> ApiResult<Response> {
    Ok(json(
        StatusCode::OK,
        state.keygate.get_key(&caller, &id, now()).await?,
    ))
}

async fn update_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Ids(id): Ids<String>,
    Body(patch): Body<KeyPatch>,
) -> ApiResult<Response> {
    Ok(json(
        StatusCode::OK,
        state.keygate.update_key(&caller, &id, patch, now()).await?,
    ))
}

async fn revoke_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Ids(id): Ids<String>,
) -> ApiResult<Response> {
    Ok(json(
        StatusCode::OK,
        state.keygate.revoke_key(&caller, &id, now()).await?,
    ))
}

async fn bulk_revoke(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Body(req): Body<BulkRevokeRequest>,
) -> ApiResult<Response> {
    Ok(json(
        StatusCode::OK,
        state.keygate.bulk_revoke(&caller, req.ids, now()).await?,
    ))
}

async fn roll_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Ids(id): Ids<String>,
    Body(req): Body<RollRequest>,
) -> ApiResult<Response> {
    Ok(json(
        StatusCode::OK,
        state.keygate.roll_key(&caller, &id, req, now()).await?,
    ))
}

async fn delete_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Ids(id): Ids<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let query: DeleteKeyQuery = wire::query(query.as_deref())?;
    state.keygate.delete_key(&caller, &id, query, now()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn events(
    State(state): State<AppState>,
    Auth(caller): Auth,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let query: EventQuery = wire::query(query.as_deref())?;
    Ok(json(
        StatusCode::OK,
        state.keygate.events(&caller, query).await?,
    ))
}

async fn members(
    State(state): State<AppState>,
    Auth(caller): Auth,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let query: PageQuery = wire::query(query.as_deref())?;
    Ok(json(
        StatusCode::OK,
        state.keygate.members(&caller, query).await?,
    ))
}

async fn set_roles(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Ids(id): Ids<String>,
    Body(req): Body<RolesPatch>,
) -> ApiResult<Response> {
    Ok(json(
        StatusCode::OK,
        state.keygate.set_roles(&caller, &id, req, now()).await?,
    ))
}

async fn remove_member(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Ids(id): Ids<String>,
) -> ApiResult<Response> {
    state.keygate.remove_member(&caller, &id, now()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn invite(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Body(req): Body<InviteRequest>,
) -> ApiResult<Response> {
    Ok(json(
        StatusCode::CREATED,
        state.keygate.invite(&caller, req, now()).await?,
    ))
}

async fn invitations(
    State(state): State<AppState>,
    Auth(caller): Auth,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let query: PageQuery = wire::query(query.as_deref())?;
    Ok(json(
        StatusCode::OK,
        state.keygate.invitations(&caller, query, now()).await?,
    ))
}

async fn revoke_invitation(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Ids(id): Ids<String>,
) -> ApiResult<Response> {
    state.keygate.revoke_invitation(&caller, &id, now()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn setup(
    State(state): State<AppState>,
    Ids(token): Ids<String>,
    Body(req): Body<SetupRequest>,
) -> ApiResult<Response> {
    let keygate = state.keygate.clone();
    let answer = state
        .password_work(async move { keygate.setup(&token, req, now()).await })
        .await?;
    Ok(json(StatusCode::OK, answer))
}

async fn accept(
    State(state): State<AppState>,
    Ids(token): Ids<String>,
    Body(req): Body<AcceptRequest>,
) -> ApiResult<Response> {
    let keygate = state.keygate.clone();
    let answer = state
        .password_work(async move { keygate.accept(&token, req, now()).await })
        .await?;
    Ok(json(StatusCode::CREATED, answer))
}

async fn organizations(State(state): State<AppState>, Auth(caller): Auth) -> ApiResult<Response> {
    Ok(json(
        StatusCode::OK,
        state.keygate.organizations(&caller).await?,
    ))
}

async fn create_organization(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Body(req): Body<CreateOrganizationRequest>,
) -> ApiResult<Response> {
    Ok(json(
        StatusCode::CREATED,
        state
            .keygate
            .create_organization(&caller, req, now())
            .await?,
    ))
}

macro_rules! namespace_handlers {
    ($kind:expr, $list:ident, $create:ident, $get:ident, $rename:ident, $delete:ident) => {
        async fn $list(
            State(state): State<AppState>,
            Auth(caller): Auth,
            RawQuery(query): RawQuery,
        ) -> ApiResult<Response> {
            let query: PageQuery = wire::query(query.as_deref())?;
            Ok(json(
                StatusCode::OK,
                state.keygate.list_namespaces(&caller, $kind, query).await?,
            ))
        }

        async fn $create(
            State(state): State<AppState>,
            Auth(caller): Auth,
            Body(req): Body<NamespaceRequest>,
        ) -> ApiResult<Response> {
            Ok(json(
                StatusCode::CREATED,
                state
                    .keygate
                    .create_namespace(&caller, $kind, req, now())
                    .await?,
            ))
        }

        #[allow(
            dead_code,
            reason = "applications are listed and created only (SPEC §7)"
        )]
        async fn $get(
            State(state): State<AppState>,
            Auth(caller): Auth,
            Ids(id): Ids<String>,
        ) -> ApiResult<Response> {
            Ok(json(
                StatusCode::OK,
                state.keygate.get_namespace(&caller, $kind, &id).await?,
            ))
        }

        #[allow(
            dead_code,
            reason = "applications are listed and created only (SPEC §7)"
        )]
        async fn $rename(
            State(state): State<AppState>,
            Auth(caller): Auth,
            Ids(id): Ids<String>,
            Body(req): Body<RenameRequest>,
        ) -> ApiResult<Response> {
            Ok(json(
                StatusCode::OK,
                state
                    .keygate
                    .rename_namespace(&caller, $kind, &id, &req.name, now())
                    .await?,
            ))
        }

        #[allow(
            dead_code,
            reason = "applications are listed and created only (SPEC §7)"
        )]
        async fn $delete(
            State(state): State<AppState>,
            Auth(caller): Auth,
            Ids(id): Ids<String>,
        ) -> ApiResult<Response> {
            state
                .keygate
                .delete_namespace(&caller, $kind, &id, now())
                .await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
    };
}

namespace_handlers!(
    NamespaceKind::Application,
    list_apps,
    create_app,
    _get_app,
    _rename_app,
    _delete_app
);
namespace_handlers!(
    NamespaceKind::Workspace,
    list_workspaces,
    create_workspace,
    get_workspace,
    rename_workspace,
    delete_workspace
);
namespace_handlers!(
    NamespaceKind::Usergroup,
    list_groups,
    create_group,
    get_group,
    rename_group,
    delete_group
);

async fn add_group_member(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Ids(id): Ids<String>,
    Body(req): Body<GroupMemberRequest>,
) -> ApiResult<Response> {
    state
        .keygate
        .set_group_member(&caller, &id, &req.user, true, now())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn remove_group_member(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Ids((id, user)): Ids<(String, String)>,
) -> ApiResult<Response> {
    state
        .keygate
        .set_group_member(&caller, &id, &user, false, now())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn permissions(State(state): State<AppState>, Auth(caller): Auth) -> ApiResult<Response> {
    Ok(json(
        StatusCode::OK,
        state.keygate.permissions(&caller).await?,
    ))
}

async fn define_permission(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Body(req): Body<PermissionRequest>,
) -> ApiResult<Response> {
    Ok(json(
        StatusCode::CREATED,
        state.keygate.define_permission(&caller, req, now()).await?,
    ))
}

async fn grants(
    State(state): State<AppState>,
    Auth(caller): Auth,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let query: GrantQuery = wire::query(query.as_deref())?;
    Ok(json(
        StatusCode::OK,
        state.keygate.grants(&caller, query).await?,
    ))
}

async fn create_grant(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Body(req): Body<GrantRequest>,
) -> ApiResult<Response> {
    Ok(json(
        StatusCode::CREATED,
        state.keygate.create_grant(&caller, req, now()).await?,
    ))
}

async fn delete_grant(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Ids(id): Ids<String>,
) -> ApiResult<Response> {
    state.keygate.delete_grant(&caller, &id, now()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn resources(
    State(state): State<AppState>,
    Auth(caller): Auth,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let query: ResourceQuery = wire::query(query.as_deref())?;
    Ok(json(
        StatusCode::OK,
        state.keygate.resources(&caller, query).await?,
    ))
}

async fn create_resource(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Body(req): Body<ResourceRequest>,
) -> ApiResult<Response> {
    Ok(json(
        StatusCode::CREATED,
        state.keygate.create_resource(&caller, req, now()).await?,
    ))
}

async fn get_resource(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Ids(id): Ids<String>,
) -> ApiResult<Response> {
    Ok(json(
        StatusCode::OK,
        state.keygate.get_resource(&caller, &id).await?,
    ))
}

async fn rename_resource(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Ids(id): Ids<String>,
    Body(req): Body<ResourcePatch>,
) -> ApiResult<Response> {
    Ok(json(
        StatusCode::OK,
        state
            .keygate
            .rename_resource(&caller, &id, req, now())
            .await?,
    ))
}

async fn delete_resource(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Ids(id): Ids<String>,
) -> ApiResult<Response> {
    state.keygate.delete_resource(&caller, &id, now()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn key_usage(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Ids(id): Ids<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let query: UsageQuery = wire::query(query.as_deref())?;
    Ok(json(
        StatusCode::OK,
        state.keygate.key_usage(&caller, &id, query).await?,
    ))
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

async fn openapi() -> Response {
    ([(CONTENT_TYPE, "application/json")], model::OPENAPI_JSON).into_response()
}
