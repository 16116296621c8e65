//! The worker's HTTP client for what Keygate fetches from outside (GitHub's secret scanning
//! keys): the runtime's `fetch`, answering the body of a 2xx answer only.

use model::service::{Fetch, Fetching};
use worker::{Headers, Method, Request, RequestInit};

/// `fetch` as `model`'s [`Fetch`].
pub struct Client;

impl Fetch for Client {
    fn get<'a>(&'a self, url: &'a str) -> Fetching<'a> {
        Box::pin(async move {
            let headers = Headers::new();
            let set = |name: &str, value: &str| headers.set(name, value).map_err(|e| e.to_string());
            set("accept", "application/json")?;
            // GitHub's API refuses requests without one.
            set("user-agent", concat!("keygate/", env!("CARGO_PKG_VERSION")))?;
            let mut init = RequestInit::new();
            init.with_method(Method::Get).with_headers(headers);
            let request = Request::new_with_init(url, &init).map_err(|e| e.to_string())?;
            let mut answer = worker::Fetch::Request(request)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !(200..300).contains(&answer.status_code()) {
                return Err(format!("answered {}", answer.status_code()));
            }
            answer.bytes().await.map_err(|e| e.to_string())
        })
    }
}
