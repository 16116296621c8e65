//! GitHub's secret scanning partner endpoint on both hosts (SPEC §4.6): a P-256 key pair made
//! here, its public key served on loopback as GitHub's `meta/public_keys/secret_scanning`
//! serves it, and each host pointed at it with `KEYGATE_GITHUB_KEYS_URL` as an operator would.
//! Signed batches revoke exactly the live keys and label every token; anything unsigned or
//! signed otherwise is 401 and changes nothing; a batch of 500 tokens is one call.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, ensure};
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};
use serde_json::{Value, json};
use tests::{Api, As, Fixture, Host};

const PATH: &str = "/v1/secret-scanning/github";
const KEY_ID: &str = "test-key-1";

/// GitHub's key list, served on loopback, counting its fetches.
struct KeyList {
    url: String,
    fetches: Arc<AtomicUsize>,
}

async fn serve_key_list(pem: String) -> Result<KeyList> {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&fetches);
    let body = json!({"public_keys": [
        {"key_identifier": KEY_ID, "key": pem, "is_current": true},
    ]});
    let app = axum::Router::new().route(
        "/meta/public_keys/secret_scanning",
        axum::routing::get(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            async move { axum::Json(body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!(
        "http://{}/meta/public_keys/secret_scanning",
        listener.local_addr()?
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(KeyList { url, fetches })
}

fn key_pair() -> Result<(SigningKey, String)> {
    let mut bytes = [0u8; 32];
    loop {
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Ok(key) = SigningKey::from_slice(&bytes) {
            let pem = key
                .verifying_key()
                .to_public_key_pem(LineEnding::LF)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            return Ok((key, pem));
        }
    }
}

fn sign(key: &SigningKey, body: &[u8]) -> String {
    let signature: Signature = key.sign(body);
    base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes())
}

fn alerts(tokens: &[&str]) -> Vec<u8> {
    let alerts: Vec<Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"token": t, "type": "keygate_api_key",
                "url": format!("https://github.com/octo/leaky/blob/main/config-{i}.env"),
                "source": "content"})
        })
        .collect();
    serde_json::to_vec(&alerts).unwrap_or_default()
}

/// What every case gets.
#[derive(Clone)]
struct Ctx {
    api: Api,
    admin: Arc<Fixture>,
    key: Arc<SigningKey>,
    other: Arc<SigningKey>,
}

impl Ctx {
    async fn send(&self, body: &[u8], headers: &[(&str, String)]) -> Result<tests::Answer> {
        let mut all = vec![("content-type".to_owned(), "application/json".to_owned())];
        all.extend(headers.iter().map(|(n, v)| ((*n).to_owned(), v.clone())));
        self.api
            .request("POST", PATH, &all, Some(body.to_vec()))
            .await
    }

    fn signed(&self, body: &[u8]) -> Vec<(&'static str, String)> {
        vec![
            ("Github-Public-Key-Identifier", KEY_ID.to_owned()),
            ("Github-Public-Key-Signature", sign(&self.key, body)),
        ]
    }

    async fn new_key(&self) -> Result<String> {
        let body = json!({"name": "scanned", "namespace": self.admin.org, "role": "viewer"});
        let made = self
            .api
            .call(
                "POST",
                "/v1/keys",
                As::Bearer(&self.admin.token),
                Some(&body),
            )
            .await?;
        ensure!(made.status == 201, "{made:?}");
        made.body["key"].as_str().map(str::to_owned).context("key")
    }

    async fn code(&self, key: &str) -> Result<String> {
        self.api.verify_code(key).await
    }
}

/// The id of the key whose plaintext is `key` (`kg_<id>_<secret>`).
fn id_of(key: &str) -> String {
    format!("key_{}", key.split('_').nth(1).unwrap_or_default())
}

type CaseFn = fn(Ctx) -> Pin<Box<dyn Future<Output = Result<()>> + Send>>;

const CASES: &[(&str, CaseFn)] = &[
    (
        "a signed batch revokes the live keys and labels each token",
        |c| Box::pin(a_signed_batch_revokes_the_live_keys(c)),
    ),
    (
        "anything but GitHub's signature is 401 and changes nothing",
        |c| Box::pin(anything_else_is_401(c)),
    ),
    ("a batch of 500 tokens is one call", |c| {
        Box::pin(a_batch_of_500(c))
    }),
];

async fn a_signed_batch_revokes_the_live_keys(c: Ctx) -> Result<()> {
    let (first, second, gone) = (c.new_key().await?, c.new_key().await?, c.new_key().await?);
    let gone_id = id_of(&gone);
    let revoked = c
        .api
        .call(
            "POST",
            &format!("/v1/keys/{gone_id}/revoke"),
            As::Bearer(&c.admin.token),
            None,
        )
        .await?;
    ensure!(revoked.status == 200, "{revoked:?}");
    let tokens = [
        first.as_str(),
        "kg_not_a_key_at_all",
        gone.as_str(),
        second.as_str(),
    ];
    let body = alerts(&tokens);
    let answer = c.send(&body, &c.signed(&body)).await?;
    ensure!(answer.status == 200, "{answer:?}");
    let expected: Vec<Value> = tokens
        .iter()
        .zip(["true_positive", "false_positive", "true_positive", "true_positive"])
        .map(|(t, label)| {
            json!({"token_hash": model::service::token_hash(t), "token_type": "keygate_api_key", "label": label})
        })
        .collect();
    ensure!(
        answer.body == Value::Array(expected),
        "labels: {}",
        answer.body
    );
    for key in [&first, &second] {
        ensure!(c.code(key).await? == "REVOKED", "a found key is revoked");
    }
    let first_id = id_of(&first);
    let events = c
        .api
        .call(
            "GET",
            &format!("/v1/events?type=key.leaked&key_id={first_id}"),
            As::Bearer(&c.admin.token),
            None,
        )
        .await?;
    let items = events.body["items"].as_array().cloned().unwrap_or_default();
    ensure!(items.len() == 1, "one event: {}", events.body);
    let event = &items[0];
    ensure!(
        event["actor"]["type"] == "instance"
            && event["actor"]["id"] == model::service::GITHUB_REPORTER
            && event["details"]["source"] == "content"
            && event["details"]["url"] == "https://github.com/octo/leaky/blob/main/config-0.env",
        "the event says where it leaked: {event}"
    );
    ensure!(
        !event.to_string().contains(&first[3..]),
        "never the key: {event}"
    );
    Ok(())
}

async fn anything_else_is_401(c: Ctx) -> Result<()> {
    let key = c.new_key().await?;
    let body = alerts(&[&key]);
    let good = sign(&c.key, &body);
    let id = |v: &str| ("Github-Public-Key-Identifier", v.to_owned());
    let sig = |v: String| ("Github-Public-Key-Signature", v);
    let tampered = alerts(&[&key, "kg_more"]);
    type Case<'a> = (&'a str, &'a [u8], Vec<(&'a str, String)>);
    let cases: Vec<Case> = vec![
        (
            "a tampered body",
            &tampered,
            vec![id(KEY_ID), sig(good.clone())],
        ),
        (
            "another key's signature",
            &body,
            vec![id(KEY_ID), sig(sign(&c.other, &body))],
        ),
        (
            "an unknown key identifier",
            &body,
            vec![id("test-key-9"), sig(good.clone())],
        ),
        ("no signature", &body, vec![id(KEY_ID)]),
        ("no identifier", &body, vec![sig(good.clone())]),
        ("no headers", &body, vec![]),
    ];
    for (name, body, headers) in cases {
        let answer = c.send(body, &headers).await?;
        ensure!(
            answer.status == 401 && answer.body["code"] == "unauthenticated",
            "{name}: {answer:?}"
        );
    }
    ensure!(c.code(&key).await? == "VALID", "nothing was revoked");
    Ok(())
}

async fn a_batch_of_500(c: Ctx) -> Result<()> {
    let live = [c.new_key().await?, c.new_key().await?];
    let mut tokens: Vec<String> = (0..498).map(|i| format!("kg_{i:040}")).collect();
    tokens.insert(100, live[0].clone());
    tokens.push(live[1].clone());
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let body = alerts(&refs);
    ensure!(
        body.len() > model::wire::BODY_LIMIT,
        "larger than any other body"
    );
    let answer = c.send(&body, &c.signed(&body)).await?;
    ensure!(answer.status == 200, "{:?}", answer.status);
    let labels = answer.body.as_array().cloned().unwrap_or_default();
    let positives: Vec<usize> = labels
        .iter()
        .enumerate()
        .filter(|(_, l)| l["label"] == "true_positive")
        .map(|(i, _)| i)
        .collect();
    ensure!(
        labels.len() == 500 && positives == [100, 499],
        "{positives:?} of {}",
        labels.len()
    );
    for key in &live {
        ensure!(c.code(key).await? == "REVOKED");
    }
    Ok(())
}

/// The cases on `host`, whose key list `list` serves `key`'s public key.
async fn run(host: &Host, list: &KeyList, key: SigningKey) -> Result<()> {
    let api = Api::new(&host.base);
    let admin = Arc::new(api.admin_with_key("scanning").await?);
    let ctx = Ctx {
        api,
        admin,
        key: Arc::new(key),
        other: Arc::new(key_pair()?.0),
    };
    let mut failures = Vec::new();
    for (name, case) in CASES {
        if let Err(e) = case(ctx.clone()).await {
            failures.push(format!("{name}: {e:#}"));
        }
    }
    ensure!(
        failures.is_empty(),
        "{} on {}:\n{}",
        failures.len(),
        host.name,
        failures.join("\n")
    );
    // Fetched once: the unknown identifier came within the minute of the first fetch.
    let fetches = list.fetches.load(Ordering::SeqCst);
    ensure!(
        fetches == 1,
        "the key list was fetched {fetches} times on {}",
        host.name
    );
    Ok(())
}

/// The cases on each host, each with its own key pair and list (a host keeps what it fetched).
#[tokio::test]
async fn github_secret_scanning_on_both_hosts() -> Result<()> {
    for host in ["server", "worker"] {
        let (key, pem) = key_pair()?;
        let list = serve_key_list(pem).await?;
        let env = [("KEYGATE_GITHUB_KEYS_URL", list.url.as_str())];
        let dir = tempfile::tempdir()?;
        let host = match host {
            "server" => Host::server_with(&dir.path().join("store"), None, &env).await?,
            _ => Host::worker_with(&env).await?,
        };
        run(&host, &list, key).await?;
    }
    Ok(())
}
