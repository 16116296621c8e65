//! The worker's HTTP client for what Keygate fetches from or sends to outside (GitHub's secret
//! scanning keys, webhook deliveries): the runtime's `fetch`.
//!
//! Cloudflare's `fetch` reaches no private network of its own: a webhook's URL is checked by
//! `model::webhook::check_url` when it is made and before each attempt, and names are
//! resolved by Cloudflare (which refuses to connect to non-public addresses).

use model::service::{Fetch, Fetching, Posting};
use worker::{AbortSignal, Headers, Method, Request, RequestInit, RequestRedirect};

/// The longest a webhook delivery may take.
const POST_TIMEOUT_MS: u32 = 10_000;

/// `fetch` as `model`'s [`Fetch`].
pub struct Client;

fn user_agent() -> &'static str {
    concat!("keygate/", env!("CARGO_PKG_VERSION"))
}

impl Fetch for Client {
    fn get<'a>(&'a self, url: &'a str) -> Fetching<'a> {
        Box::pin(async move {
            let headers = Headers::new();
            let set = |name: &str, value: &str| headers.set(name, value).map_err(|e| e.to_string());
            set("accept", "application/json")?;
            // GitHub's API refuses requests without one.
            set("user-agent", user_agent())?;
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

    fn post<'a>(
        &'a self,
        url: &'a str,
        headers: &'a [(&'static str, String)],
        body: &'a [u8],
    ) -> Posting<'a> {
        Box::pin(async move {
            let sent = Headers::new();
            for (name, value) in headers {
                sent.set(name, value).map_err(|e| e.to_string())?;
            }
            sent.set("user-agent", user_agent())
                .map_err(|e| e.to_string())?;
            let mut init = RequestInit::new();
            init.with_method(Method::Post)
                .with_headers(sent)
                .with_redirect(RequestRedirect::Manual)
                .with_body(Some(js_sys::Uint8Array::from(body).into()));
            let request = Request::new_with_init(url, &init).map_err(|e| e.to_string())?;
            let signal = AbortSignal::from(web_sys::AbortSignal::timeout_with_u32(POST_TIMEOUT_MS));
            let answer = worker::Fetch::Request(request)
                .send_with_signal(&signal)
                .await
                .map_err(|e| e.to_string())?;
            Ok(answer.status_code())
        })
    }
}
