//! The server's HTTP client for what Keygate fetches from outside (GitHub's secret scanning
//! keys): reqwest over rustls, with timeouts, answering the body of a 2xx answer only.

use std::time::Duration;

use model::service::{Fetch, Fetching};

/// The longest a fetch may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read (GitHub's key list is a few kilobytes).
const MAX_BODY: usize = 1024 * 1024;

/// reqwest's client as `model`'s [`Fetch`].
pub struct Client(reqwest::Client);

impl Client {
    pub fn new() -> Result<Self, String> {
        reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .user_agent(concat!("keygate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map(Self)
            .map_err(|e| e.to_string())
    }
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
                .map_err(|e| e.to_string())?;
            if !answer.status().is_success() {
                return Err(format!("answered {}", answer.status()));
            }
            if answer.content_length().is_some_and(|n| n > MAX_BODY as u64) {
                return Err("answered more than 1 MiB".into());
            }
            let body = answer.bytes().await.map_err(|e| e.to_string())?;
            if body.len() > MAX_BODY {
                return Err("answered more than 1 MiB".into());
            }
            Ok(body.to_vec())
        })
    }
}
