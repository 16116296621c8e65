//! The console's typed HTTP client. Request and response types are `model::api`'s, so no JSON
//! field name is written here. The session lives in the HttpOnly cookie; the CSRF token is kept
//! in memory only, never in browser storage.

use std::cell::RefCell;

use gloo_net::http::{Request, RequestBuilder, Response};
use model::api::{
    CreateKeyRequest, CreatedKey, KeyView, LoginRequest, LoginResponse, MeResponse, Page, Problem,
    SettingsPatch, SettingsView,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

thread_local! {
    static CSRF: RefCell<Option<String>> = const { RefCell::new(None) };
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
}

fn remember_csrf(token: Option<String>) {
    CSRF.with(|c| *c.borrow_mut() = token);
}

fn with_csrf(builder: RequestBuilder) -> RequestBuilder {
    match CSRF.with(|c| c.borrow().clone()) {
        Some(token) => builder.header(model::service::CSRF_HEADER, &token),
        None => builder,
    }
}

async fn read<T: DeserializeOwned>(
    response: Result<Response, gloo_net::Error>,
) -> Result<T, ApiError> {
    let response = response.map_err(|e| ApiError::Network(e.to_string()))?;
    if response.ok() {
        response
            .json::<T>()
            .await
            .map_err(|e| ApiError::Decode(e.to_string()))
    } else {
        match response.json::<Problem>().await {
            Ok(problem) => Err(ApiError::Problem(problem)),
            Err(_) => Err(ApiError::Decode(format!("status {}", response.status()))),
        }
    }
}

async fn send_json<B: Serialize, T: DeserializeOwned>(
    builder: RequestBuilder,
    body: &B,
) -> Result<T, ApiError> {
    let request = with_csrf(builder)
        .json(body)
        .map_err(|e| ApiError::Decode(e.to_string()))?;
    read(request.send().await).await
}

/// Signs in; the server also sets the session cookie.
pub async fn login(email: String, password: String) -> Result<LoginResponse, ApiError> {
    let answer: LoginResponse = send_json(
        Request::post("/v1/auth/login"),
        &LoginRequest { email, password },
    )
    .await?;
    remember_csrf(Some(answer.csrf_token.clone()));
    Ok(answer)
}

/// Ends the session.
pub async fn logout() -> Result<(), ApiError> {
    let response = with_csrf(Request::post("/v1/auth/logout")).send().await;
    remember_csrf(None);
    response
        .map(|_| ())
        .map_err(|e| ApiError::Network(e.to_string()))
}

/// Who is signed in (from the cookie), remembering the session's CSRF token.
pub async fn me() -> Result<MeResponse, ApiError> {
    let me: MeResponse = read(Request::get("/v1/me").send().await).await?;
    remember_csrf(me.csrf_token.clone());
    Ok(me)
}

/// The signed-in person's keys.
pub async fn my_keys() -> Result<Page<KeyView>, ApiError> {
    read(Request::get("/v1/keys?limit=200").send().await).await
}

/// Generates a key; the answer holds its plaintext, once.
pub async fn create_key(request: CreateKeyRequest) -> Result<CreatedKey, ApiError> {
    send_json(Request::post("/v1/keys"), &request).await
}

/// The organization's settings (admins).
pub async fn settings() -> Result<SettingsView, ApiError> {
    read(Request::get("/v1/settings").send().await).await
}

/// Changes the organization's settings (admins).
pub async fn update_settings(patch: SettingsPatch) -> Result<SettingsView, ApiError> {
    send_json(Request::patch("/v1/settings"), &patch).await
}
