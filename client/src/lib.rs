//! A typed async client for Keygate's HTTP API.
//!
//! Every endpoint is a type of [`model::http::endpoints`], declared once in the endpoint table
//! with its method, path, body, query and answer types; [`Client::call`] sends any of them and
//! decodes its answer, so that no path or type is restated here. A refusal is an
//! [`Error::Api`] carrying the problem JSON, whose stable [`Error::code`] scripts branch on.
//!
//! ```no_run
//! # async fn demo() -> Result<(), keygate_client::Error> {
//! use keygate_client::{Client, endpoints};
//! use model::api::LoginRequest;
//! use model::http::{NoBody, NoQuery};
//!
//! let client = Client::new("http://127.0.0.1:8080");
//! let login = LoginRequest { email: "admin@example.com".into(), password: "…".into() };
//! let session = client.call::<endpoints::Login>(&[], &login, &NoQuery).await?;
//! let me = client
//!     .with_token(&session.token)
//!     .call::<endpoints::Me>(&[], &NoBody, &NoQuery)
//!     .await?;
//! println!("{}", me.user.email);
//! # Ok(())
//! # }
//! ```

use model::api::Problem;
pub use model::http::endpoints;
use model::http::{Answer, Typed, endpoint, path};

/// What went wrong with a call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Keygate answered with a problem (RFC 7807).
    #[error("{} {}: {}", .problem.status, .problem.code, .problem.detail)]
    Api { problem: Problem },
    /// The request did not get an answer (connection, timeout…).
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The answer was not what the endpoint declares.
    #[error("unexpected answer ({status}): {detail}")]
    Unexpected { status: u16, detail: String },
}

impl Error {
    /// The problem's stable code (`not_found`, `validation_failed`…), or `None` when Keygate
    /// gave no answer of its own.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { problem } => Some(&problem.code),
            _ => None,
        }
    }

    /// The HTTP status of a problem answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { problem } => Some(problem.status),
            Error::Unexpected { status, .. } => Some(*status),
            Error::Http(_) => None,
        }
    }
}

/// A client for one Keygate, optionally authenticated with a session token or an API key.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a credential: never printed.
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("authenticated", &self.token.is_some())
            .finish()
    }
}

impl Client {
    /// A client for the Keygate at `base` (`https://keygate.example.com`), unauthenticated.
    pub fn new(base: &str) -> Self {
        Self::with_http(base, reqwest::Client::new())
    }

    /// The same with an HTTP client of the caller's (timeouts, proxies, TLS roots).
    pub fn with_http(base: &str, http: reqwest::Client) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
            token: None,
        }
    }

    /// The same Keygate, sending `token` (a session token or an API key) as a bearer
    /// credential: no cookie, so no CSRF header is needed.
    pub fn with_token(&self, token: &str) -> Self {
        Self {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    /// Calls endpoint `E` with its path parameters in order, its body and its query, and
    /// decodes its answer as the table declares it.
    pub async fn call<E: Typed>(
        &self,
        params: &[&str],
        body: &E::Body,
        query: &E::Query,
    ) -> Result<E::Answer, Error> {
        let declared = endpoint(E::OP);
        let mut url = format!("{}{}", self.base, path(E::OP, params));
        if declared.query.is_some() {
            let encoded = serde_urlencoded::to_string(query).map_err(|e| Error::Unexpected {
                status: 0,
                detail: format!("the query does not encode: {e}"),
            })?;
            if !encoded.is_empty() {
                url.push('?');
                url.push_str(&encoded);
            }
        }
        let method = reqwest::Method::from_bytes(declared.method.as_bytes()).map_err(|e| {
            Error::Unexpected {
                status: 0,
                detail: e.to_string(),
            }
        })?;
        let mut request = self.http.request(method, url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if declared.body.is_some() {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        if status != declared.status {
            return Err(match serde_json::from_slice::<Problem>(&bytes) {
                Ok(problem) => Error::Api { problem },
                Err(_) => Error::Unexpected {
                    status,
                    detail: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
                },
            });
        }
        let text: &[u8] = match declared.answer {
            Answer::Empty => b"null",
            _ => &bytes,
        };
        serde_json::from_slice(text).map_err(|e| Error::Unexpected {
            status,
            detail: format!("the answer does not decode: {e}"),
        })
    }
}
