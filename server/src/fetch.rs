//! The server's HTTP client for what Keygate fetches from or sends to outside: GitHub's secret
//! scanning keys, and webhook deliveries. reqwest over rustls, with timeouts.
//!
//! The webhook client connects only to addresses `model::webhook::public_address` accepts
//! (unless the operator allows private ones): its resolver drops every other address a name
//! resolves to, so the check is made on the very addresses it connects to (a name that
//! resolves to a public address when the webhook is made and to 127.0.0.1 at delivery gets
//! nowhere), and it follows no redirect and uses no proxy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use model::service::{Fetch, Fetching, Posting};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The longest a fetch may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read (GitHub's key list is a few kilobytes).
const MAX_BODY: usize = 1024 * 1024;

/// reqwest's client as `model`'s [`Fetch`].
pub struct Client(reqwest::Client);

impl Client {
    /// The client for GitHub's keys.
    pub fn new() -> Result<Self, String> {
        Self::builder().build().map(Self).map_err(|e| e.to_string())
    }

    /// The client for webhook deliveries: public addresses only unless `allow_private`, no
    /// redirects, no proxy.
    pub fn webhooks(allow_private: bool) -> Result<Self, String> {
        Self::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(PublicOnly { allow_private }))
            .build()
            .map(Self)
            .map_err(|e| e.to_string())
    }

    fn builder() -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .user_agent(concat!("keygate/", env!("CARGO_PKG_VERSION")))
    }
}

/// The system's resolver, keeping only the addresses a webhook may be delivered to.
struct PublicOnly {
    allow_private: bool,
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|at| allow_private || model::webhook::public_address(at.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!(
                    "{} resolves to no address a webhook may be delivered to",
                    name.as_str()
                )
                .into());
            }
            Ok(Box::new(found.into_iter()) as Addrs)
        })
    }
}

/// An error's text with its causes (reqwest's own says little: "error sending request").
fn reason(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl Fetch for Client {
    fn get<'a>(&'a self, url: &'a str) -> Fetching<'a> {
        Box::pin(async move {
            let answer = self
                .0
                .get(url)
                .header("accept", "application/json")
                .send()
                .await
                .map_err(|e| reason(&e))?;
            if !answer.status().is_success() {
                return Err(format!("answered {}", answer.status()));
            }
            if answer.content_length().is_some_and(|n| n > MAX_BODY as u64) {
                return Err("answered more than 1 MiB".into());
            }
            let body = answer.bytes().await.map_err(|e| reason(&e))?;
            if body.len() > MAX_BODY {
                return Err("answered more than 1 MiB".into());
            }
            Ok(body.to_vec())
        })
    }

    fn post<'a>(
        &'a self,
        url: &'a str,
        headers: &'a [(&'static str, String)],
        body: &'a [u8],
    ) -> Posting<'a> {
        Box::pin(async move {
            let mut request = self.0.post(url).body(body.to_vec());
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            let answer = request.send().await.map_err(|e| reason(&e))?;
            Ok(answer.status().as_u16())
        })
    }
}
