//! GitHub's secret scanning endpoint (`POST /v1/secret-scanning/github`) through the
//! dispatcher on any bytes. The first byte picks how the rest is sent: with a signature header
//! made of fuzzed bytes (it must answer 401: nothing is read without GitHub's signature), or as
//! a body signed by the listed key (it must never fail inside: 200 with one label per alert,
//! each `token_hash` 64 hex digits, or a 400/422 refusal of the body's shape, never 5xx).

#![no_main]

use std::sync::{Arc, LazyLock};

use base64::Engine;
use futures_executor::block_on;
use libfuzzer_sys::fuzz_target;
use model::http::{self, Body};
use model::service::{Fetch, Fetching, GithubKeys, Keygate, Posting};
use model::store::MemoryStore;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};

const KEY_ID: &str = "fuzz";

static KEY: LazyLock<SigningKey> =
    LazyLock::new(|| SigningKey::from_slice(&[7u8; 32]).expect("a valid scalar"));

static KEYGATE: LazyLock<Keygate<MemoryStore>> = LazyLock::new(|| {
    Keygate::new(MemoryStore::default())
        .with_github(Arc::new(GithubKeys::new("memory", Arc::new(List))))
});

/// GitHub's key list, from memory.
struct List;

impl Fetch for List {
    fn get<'a>(&'a self, _: &'a str) -> Fetching<'a> {
        let pem = KEY
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("PEM");
        let list = serde_json::json!({"public_keys": [{"key_identifier": KEY_ID, "key": pem}]});
        Box::pin(async move { Ok(serde_json::to_vec(&list).expect("JSON")) })
    }

    fn post<'a>(&'a self, _: &'a str, _: &'a [(&'static str, String)], _: &'a [u8]) -> Posting<'a> {
        Box::pin(async { Err("a key list takes no deliveries".to_owned()) })
    }
}

fn send(body: &[u8], signature: String) -> http::Response {
    let headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("github-public-key-identifier".to_owned(), KEY_ID.to_owned()),
        ("github-public-key-signature".to_owned(), signature),
    ];
    let request = http::Request {
        method: "POST",
        path: "/v1/secret-scanning/github",
        query: None,
        headers: &headers,
        body: Body::Bytes(body.to_vec()),
        secure: false,
        client: None,
    };
    block_on(http::handle(
        &KEYGATE,
        request,
        time::OffsetDateTime::now_utc(),
    ))
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        // A signature made of the fuzzer's bytes, over the rest.
        let cut = usize::from(*mode >> 1).min(rest.len());
        let (signature, body) = rest.split_at(cut);
        let signature = base64::engine::general_purpose::STANDARD.encode(signature);
        let answer = send(body, signature);
        assert_eq!(answer.status, 401, "read without GitHub's signature");
        return;
    }
    let signature: Signature = KEY.sign(rest);
    let signature = base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes());
    let answer = send(rest, signature);
    match answer.status {
        200 => {
            let labels: Vec<serde_json::Value> =
                serde_json::from_slice(&answer.body).expect("a JSON list");
            // Counted as the host reads them: a field it ignores is skipped, not checked (so
            // invalid UTF-8 there, which a `Value` would refuse, is no reason to refuse).
            let alerts: Vec<serde::de::IgnoredAny> =
                serde_json::from_slice(rest).expect("the alerts it labelled");
            assert_eq!(labels.len(), alerts.len());
            for label in &labels {
                let hash = label["token_hash"].as_str().unwrap_or_default();
                assert!(hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
                assert!(matches!(
                    label["label"].as_str(),
                    Some("true_positive" | "false_positive")
                ));
            }
        }
        400 | 422 => {}
        other => panic!(
            "{other} for a signed body: {}",
            String::from_utf8_lossy(&answer.body)
        ),
    }
});
