//! GitHub's secret scanning partner endpoint (SPEC §4.6): a signed batch of tokens found in
//! public places; each live key among them is revoked like a reported leak, and every token
//! gets GitHub's label.
//!
//! The signing keys come from the list at the operator's `KEYGATE_GITHUB_KEYS_URL`, fetched
//! through the host's [`Fetch`] and kept: fetched again for an identifier the kept list does
//! not name at most once per [`REFETCH_AFTER`], and whenever it is older than [`KEEP_FOR`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use super::leaked::{Found, Leak};
use super::*;
use crate::api::{GithubAlerts, GithubLabel, GithubLabels, LeakLabel};
use crate::scanning::{SigningKeys, signed_by};

/// The earliest a key list is fetched again for an identifier it does not name.
pub const REFETCH_AFTER: time::Duration = time::Duration::minutes(1);
/// The longest a fetched key list is trusted before it is fetched again (GitHub withdraws a
/// key from its list when it retires it).
pub const KEEP_FOR: time::Duration = time::Duration::hours(24);
/// Who revokes a key found by GitHub, in its event.
pub const GITHUB_REPORTER: &str = "GitHub secret scanning";

/// A fetch's future: `Send` where the host's threads need it (the server), not on wasm32,
/// whose hosts are single-threaded and whose fetches are not.
#[cfg(not(target_arch = "wasm32"))]
pub type Fetching<'a> =
    Pin<Box<dyn Future<Output = std::result::Result<Vec<u8>, String>> + Send + 'a>>;
#[cfg(target_arch = "wasm32")]
pub type Fetching<'a> = Pin<Box<dyn Future<Output = std::result::Result<Vec<u8>, String>> + 'a>>;

/// A webhook delivery's future: the receiver's HTTP status, or why none came.
#[cfg(not(target_arch = "wasm32"))]
pub type Posting<'a> = Pin<Box<dyn Future<Output = std::result::Result<u16, String>> + Send + 'a>>;
#[cfg(target_arch = "wasm32")]
pub type Posting<'a> = Pin<Box<dyn Future<Output = std::result::Result<u16, String>> + 'a>>;

/// The host's HTTP client, for what Keygate sends to or fetches from outside. The client is
/// shared (`Send + Sync`); its futures need be `Send` only off wasm32 ([`Fetching`]).
pub trait Fetch: Send + Sync {
    /// `GET url`, answering the body of a 2xx answer, or what went wrong.
    fn get<'a>(&'a self, url: &'a str) -> Fetching<'a>;
    /// `POST body` (JSON) to `url` with `headers`, following no redirect, answering the
    /// status (its body is not read), or what went wrong before one came.
    fn post<'a>(
        &'a self,
        url: &'a str,
        headers: &'a [(&'static str, String)],
        body: &'a [u8],
    ) -> Posting<'a>;
}

/// GitHub's signing keys as this host knows them: where to fetch them, how, and the list last
/// fetched. One per process (server) or per object (edge), shared by its requests.
pub struct GithubKeys {
    url: String,
    fetch: Arc<dyn Fetch>,
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    keys: Arc<SigningKeys>,
    /// When the list was last asked for (even if the fetch failed): the once-a-minute bound.
    asked_at: Option<Timestamp>,
    /// When the kept list was fetched.
    fetched_at: Option<Timestamp>,
}

impl std::fmt::Debug for GithubKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubKeys")
            .field("url", &self.url)
            .finish()
    }
}

impl GithubKeys {
    /// Keys fetched from `url` through `fetch`, on first use.
    pub fn new(url: impl Into<String>, fetch: Arc<dyn Fetch>) -> Self {
        Self {
            url: url.into(),
            fetch,
            kept: Mutex::default(),
        }
    }

    /// The list to check key `id` against at `now`: the kept one, or a new one when the kept
    /// list does not name `id` (at most once per [`REFETCH_AFTER`]) or is older than
    /// [`KEEP_FOR`]. A fetch that fails leaves the kept list in use; with none kept, 502.
    async fn for_key(&self, id: &str, now: Timestamp) -> Result<Arc<SigningKeys>> {
        let (kept, due) = {
            let mut kept = self
                .kept
                .lock()
                .map_err(|_| Error::Internal("key list".into()))?;
            let stale = kept.fetched_at.is_none_or(|at| now - at >= KEEP_FOR);
            let may_ask = kept.asked_at.is_none_or(|at| now - at >= REFETCH_AFTER);
            let due = may_ask && (stale || kept.keys.get(id).is_none());
            if due {
                // Claimed before the fetch, so concurrent requests do not fetch it again.
                kept.asked_at = Some(now);
            }
            (Arc::clone(&kept.keys), due)
        };
        if !due {
            return Ok(kept);
        }
        let fetched = self
            .fetch
            .get(&self.url)
            .await
            .and_then(|bytes| SigningKeys::parse(&bytes).map_err(|e| e.to_string()));
        match fetched {
            Ok(keys) => {
                let keys = Arc::new(keys);
                let mut kept = self
                    .kept
                    .lock()
                    .map_err(|_| Error::Internal("key list".into()))?;
                kept.keys = Arc::clone(&keys);
                kept.fetched_at = Some(now);
                Ok(keys)
            }
            Err(e) if kept.is_empty() => Err(Error::Upstream(format!(
                "GitHub's signing keys could not be fetched from {}: {e}",
                self.url
            ))),
            Err(_) => Ok(kept),
        }
    }
}

/// Proof that a batch's signature was checked: [`Keygate::github_alerts`] takes one, and only
/// [`Keygate::github_signature`] makes it.
#[derive(Debug)]
pub struct Signed(());

impl<S: Store> Keygate<S> {
    /// The first half of `POST /v1/secret-scanning/github`: whether `signature` (the
    /// `Github-Public-Key-Signature` header) is the signature of the raw `body` by GitHub's key
    /// `key_id` (`Github-Public-Key-Identifier`). Anything missing, unknown or wrong is 401, and
    /// nothing of the body is read; 502 when no key list could ever be fetched.
    pub async fn github_signature(
        &self,
        key_id: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: Timestamp,
    ) -> Result<Signed> {
        let github = self.github.as_ref().ok_or_else(|| {
            Error::Upstream("this host has no client to fetch GitHub's signing keys".into())
        })?;
        let (Some(id), Some(signature)) = (key_id.map(str::trim), signature) else {
            return Err(Error::Unauthenticated);
        };
        let keys = github.for_key(id, now).await?;
        let key = keys.get(id).ok_or(Error::Unauthenticated)?;
        if !signed_by(key, signature, body) {
            return Err(Error::Unauthenticated);
        }
        Ok(Signed(()))
    }

    /// The second half: revokes every live key among the alerts' tokens — one change per
    /// organization, a `key.leaked` event each with the alert's `url` and `source` — and
    /// labels each token, in the order sent: `true_positive` for a key of this deployment (its
    /// secret matches, live or not), `false_positive` for anything else. Takes the store's
    /// turn for the change only, never while the key list is fetched.
    pub async fn github_alerts(
        &self,
        _: Signed,
        GithubAlerts(alerts): GithubAlerts,
        now: Timestamp,
    ) -> Result<GithubLabels> {
        let leaks: Vec<(&str, Leak)> = alerts
            .iter()
            .map(|a| {
                let leak = Leak {
                    reporter: GITHUB_REPORTER,
                    source: a.source.clone().unwrap_or_else(|| "github".into()),
                    url: a.url.clone(),
                };
                (a.token.as_str(), leak)
            })
            .collect();
        let found = {
            let _turn = self.store.turn().await;
            self.revoke_leaked(&leaks, now).await?
        };
        let labels = alerts
            .iter()
            .zip(found)
            .map(|(alert, found)| GithubLabel {
                token_hash: token_hash(&alert.token),
                token_type: alert.token_type.clone(),
                label: match found {
                    Found::Live | Found::Inactive => LeakLabel::TruePositive,
                    Found::Nothing => LeakLabel::FalsePositive,
                },
            })
            .collect();
        Ok(GithubLabels(labels))
    }
}
