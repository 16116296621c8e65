//! GitHub's secret scanning partner endpoint through the dispatcher (SPEC §4.6), with a P-256
//! key pair made here and a key list served by an in-memory stand-in for GitHub's URL (the
//! hosts' tests serve it over loopback HTTP).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use futures_executor::block_on;
use model::api::{CreateKeyRequest, LoginRequest, SettingsPatch, VerifyCode};
use model::domain::KeyRole;
use model::http::{self, Body};
use model::scanning::{SigningKeys, signed_by};
use model::service::{Credential, Fetch, Fetching, GithubKeys, Keygate, Posting};
use model::store::MemoryStore;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

/// GitHub's key list as a URL would serve it, counting how often it is fetched.
#[derive(Default)]
struct KeyList {
    body: Mutex<Option<Vec<u8>>>,
    fetches: AtomicUsize,
}

impl Fetch for KeyList {
    fn get<'a>(&'a self, _url: &'a str) -> Fetching<'a> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let body = self.body.lock().expect("lock").clone();
        Box::pin(async move { body.ok_or_else(|| "connection refused".to_owned()) })
    }

    fn post<'a>(&'a self, _: &'a str, _: &'a [(&'static str, String)], _: &'a [u8]) -> Posting<'a> {
        Box::pin(async { Err("a key list takes no deliveries".to_owned()) })
    }
}

fn pair() -> (SigningKey, String) {
    let mut bytes = [0u8; 32];
    loop {
        getrandom::fill(&mut bytes).expect("random bytes");
        if let Ok(key) = SigningKey::from_slice(&bytes) {
            let pem = key
                .verifying_key()
                .to_public_key_pem(LineEnding::LF)
                .expect("PEM");
            return (key, pem);
        }
    }
}

fn listing(keys: &[(&str, &str)]) -> Vec<u8> {
    let keys: Vec<Value> = keys
        .iter()
        .map(|(id, pem)| json!({"key_identifier": id, "key": pem, "is_current": true}))
        .collect();
    serde_json::to_vec(&json!({ "public_keys": keys })).expect("JSON")
}

fn sign(key: &SigningKey, body: &[u8]) -> String {
    let signature: Signature = key.sign(body);
    base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes())
}

#[test]
fn signatures_are_checked_over_the_raw_body_with_the_named_key() {
    let (key, pem) = pair();
    let (other, other_pem) = pair();
    let keys = SigningKeys::parse(&listing(&[("one", &pem), ("two", &other_pem)])).expect("list");
    let body =
        br#"[{"token":"kg_x","type":"keygate_api_key","url":"https://x","source":"content"}]"#;
    let good = sign(&key, body);
    let one = keys.get("one").expect("listed");
    let two = keys.get("two").expect("listed");
    let cases: &[(&str, &VerifyingKey, &str, &[u8], bool)] = &[
        ("its own key's signature", one, &good, body, true),
        (
            "another key's signature",
            one,
            &sign(&other, body),
            body,
            false,
        ),
        ("checked against another key", two, &good, body, false),
        ("a changed body", one, &good, b"[]", false),
        ("not base64", one, "not base64!", body, false),
        ("base64 of no signature", one, "AAAA", body, false),
        ("empty", one, "", body, false),
    ];
    for (name, key, signature, body, expected) in cases {
        assert_eq!(signed_by(key, signature, body), *expected, "{name}");
    }
    assert!(keys.get("three").is_none());
}

#[test]
fn key_lists_are_read_as_github_serves_them() {
    let (_, pem) = pair();
    let cases: &[(&str, Vec<u8>, bool)] = &[
        ("GitHub's shape", listing(&[("a", &pem)]), true),
        (
            "a key that is not PEM among good ones",
            listing(&[("a", &pem), ("b", "nonsense")]),
            true,
        ),
        ("no usable key", listing(&[("b", "nonsense")]), false),
        ("an empty list", listing(&[]), false),
        ("not JSON", b"<html>".to_vec(), false),
        ("another shape", br#"{"keys": []}"#.to_vec(), false),
    ];
    for (name, bytes, ok) in cases {
        assert_eq!(SigningKeys::parse(bytes).is_ok(), *ok, "{name}");
    }
}

struct World {
    kg: Keygate<MemoryStore>,
    list: Arc<KeyList>,
    key: SigningKey,
    other: SigningKey,
    /// Keys made by the admin: live, revoked.
    live: Vec<(String, String)>,
    revoked: (String, String),
    now: OffsetDateTime,
}

fn world() -> World {
    let now = OffsetDateTime::now_utc();
    let (key, pem) = pair();
    let (other, _) = pair();
    let list = Arc::new(KeyList::default());
    *list.body.lock().expect("lock") = Some(listing(&[("github-1", &pem)]));
    let fetch: Arc<dyn Fetch> = list.clone();
    let kg = Keygate::new(MemoryStore::default())
        .with_github(Arc::new(GithubKeys::new("https://github.test/keys", fetch)));
    let (live, revoked) = block_on(async {
        kg.bootstrap(
            Some("root@example.com".into()),
            Some("pw-123456".into()),
            now,
        )
        .await
        .expect("bootstrap");
        let login = LoginRequest {
            email: "root@example.com".into(),
            password: "pw-123456".into(),
        };
        let token = kg.login(login, now).await.expect("login").token;
        let caller = kg
            .authenticate(Credential::Bearer(&token), true, now)
            .await
            .expect("auth");
        let on = SettingsPatch {
            api_keys_enabled: Some(true),
            ..Default::default()
        };
        kg.update_settings(&caller, on, now).await.expect("on");
        let caller = kg
            .authenticate(Credential::Bearer(&token), true, now)
            .await
            .expect("auth");
        let mut made = Vec::new();
        for name in ["one", "two", "three"] {
            let request = CreateKeyRequest {
                name: name.into(),
                namespace: caller.org.id.clone(),
                role: Some(KeyRole::Viewer),
                ..Default::default()
            };
            let created = kg.create_key(&caller, request, now).await.expect("create");
            made.push((created.key, created.record.id));
        }
        let revoked = made.pop().expect("three");
        kg.revoke_key(&caller, &revoked.1, now)
            .await
            .expect("revoke");
        (made, revoked)
    });
    World {
        kg,
        list,
        key,
        other,
        live,
        revoked,
        now,
    }
}

/// Sends `body` to the endpoint with these headers (lower-case names).
fn send(w: &World, body: &[u8], headers: &[(&str, String)], at: OffsetDateTime) -> (u16, Value) {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| ((*n).to_owned(), v.clone()))
        .chain([("content-type".to_owned(), "application/json".to_owned())])
        .collect();
    let request = http::Request {
        method: "POST",
        path: "/v1/secret-scanning/github",
        query: None,
        headers: &headers,
        body: Body::Bytes(body.to_vec()),
        secure: false,
        client: None,
    };
    let answer = block_on(http::handle(&w.kg, request, at));
    let value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    (answer.status, value)
}

fn signed(w: &World, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        ("github-public-key-identifier", "github-1".into()),
        ("github-public-key-signature", sign(&w.key, body)),
    ]
}

fn alerts(tokens: &[&str]) -> Vec<u8> {
    let alerts: Vec<Value> = tokens
        .iter()
        .map(|t| json!({"token": t, "type": "keygate_api_key", "url": "https://github.com/o/r/blob/1/.env", "source": "content"}))
        .collect();
    serde_json::to_vec(&alerts).expect("JSON")
}

fn verifies(w: &World, key: &str) -> VerifyCode {
    let request = model::api::VerifyRequest {
        key: key.into(),
        permissions: None,
        resource: None,
        namespace: None,
        ..Default::default()
    };
    block_on(w.kg.verify(&request, w.now)).expect("verify").code
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn a_signed_batch_revokes_the_live_keys_and_labels_every_token() {
    let w = world();
    // The id of a live key with a well-formed checksum, and a secret that is not its own.
    let forged = model::key::ApiKey::generate("kg", &w.live[1].1["key_".len()..]).expect("csprng");
    let forged = forged.expose().to_owned();
    let tokens = [
        w.live[0].0.as_str(),
        "kg_not_a_key",
        w.revoked.0.as_str(),
        forged.as_str(),
        w.live[0].0.as_str(),
    ];
    let body = alerts(&tokens);
    let (status, answer) = send(&w, &body, &signed(&w, &body), w.now);
    assert_eq!(status, 200, "{answer}");
    let labels: Vec<&str> = answer
        .as_array()
        .expect("a list")
        .iter()
        .map(|l| l["label"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        labels,
        [
            "true_positive",
            "false_positive",
            "true_positive",
            "false_positive",
            "true_positive"
        ]
    );
    for (label, token) in answer.as_array().expect("a list").iter().zip(tokens) {
        assert_eq!(label["token_hash"], sha256_hex(token));
        assert_eq!(label["token_type"], "keygate_api_key");
    }
    assert!(
        !answer.to_string().contains("kg_"),
        "no token in the answer"
    );
    assert_eq!(verifies(&w, &w.live[0].0), VerifyCode::Revoked);
    assert_eq!(
        verifies(&w, &w.live[1].0),
        VerifyCode::Valid,
        "a forged secret revokes nothing"
    );
    assert_eq!(w.list.fetches.load(Ordering::SeqCst), 1);
}

#[test]
fn anything_but_github_s_signature_is_401_and_changes_nothing() {
    let w = world();
    let body = alerts(&[&w.live[0].0]);
    let good = sign(&w.key, &body);
    let tampered = alerts(&[&w.live[1].0]);
    let id = |v: &str| ("github-public-key-identifier", v.to_owned());
    let sig = |v: String| ("github-public-key-signature", v);
    type Case<'a> = (&'a str, &'a [u8], Vec<(&'a str, String)>);
    let cases: Vec<Case> = vec![
        (
            "a tampered body",
            &tampered,
            vec![id("github-1"), sig(good.clone())],
        ),
        (
            "another key's signature",
            &body,
            vec![id("github-1"), sig(sign(&w.other, &body))],
        ),
        (
            "an unknown key",
            &body,
            vec![id("github-9"), sig(good.clone())],
        ),
        ("no identifier", &body, vec![sig(good.clone())]),
        ("no signature", &body, vec![id("github-1")]),
        ("no headers", &body, vec![]),
        (
            "a signature that is not base64",
            &body,
            vec![id("github-1"), sig("%%%".into())],
        ),
        (
            "a body that is not JSON, signed by another",
            b"nonsense",
            vec![id("github-1"), sig(sign(&w.other, b"nonsense"))],
        ),
    ];
    for (name, body, headers) in cases {
        let (status, answer) = send(&w, body, &headers, w.now);
        assert_eq!(status, 401, "{name}: {answer}");
        assert_eq!(answer["code"], "unauthenticated", "{name}");
    }
    assert_eq!(verifies(&w, &w.live[0].0), VerifyCode::Valid);
    assert_eq!(verifies(&w, &w.live[1].0), VerifyCode::Valid);
}

#[test]
fn a_signed_body_of_the_wrong_shape_is_refused_and_changes_nothing() {
    let w = world();
    let cases: &[(&str, &[u8], u16)] = &[
        ("not JSON", b"[{", 400),
        ("an object", br#"{"token": "kg_x"}"#, 422),
        (
            "an alert without a token",
            br#"[{"type": "keygate_api_key"}]"#,
            422,
        ),
    ];
    for (name, body, status) in cases {
        let (got, answer) = send(&w, body, &signed(&w, body), w.now);
        assert_eq!(got, *status, "{name}: {answer}");
    }
    let (status, answer) = send(&w, b"[]", &signed(&w, b"[]"), w.now);
    assert_eq!((status, answer), (200, json!([])), "an empty batch");
}

#[test]
fn an_unknown_identifier_fetches_the_list_at_most_once_a_minute() {
    let w = world();
    let body = alerts(&["kg_nothing"]);
    let (status, _) = send(&w, &body, &signed(&w, &body), w.now);
    assert_eq!(status, 200);
    assert_eq!(
        w.list.fetches.load(Ordering::SeqCst),
        1,
        "first use fetches"
    );
    // GitHub rotates: a new key, not in the kept list.
    let (rotated, pem) = pair();
    *w.list.body.lock().expect("lock") = Some(listing(&[("github-2", &pem)]));
    let headers = vec![
        ("github-public-key-identifier", "github-2".to_owned()),
        ("github-public-key-signature", sign(&rotated, &body)),
    ];
    let steps: &[(&str, Duration, u16, usize)] = &[
        (
            "within the minute: not fetched again, so unknown",
            Duration::seconds(30),
            401,
            1,
        ),
        (
            "after it: fetched again, and known",
            Duration::seconds(61),
            200,
            2,
        ),
        ("known now: not fetched", Duration::seconds(62), 200, 2),
        (
            "the old key is gone from the list",
            Duration::seconds(200),
            401,
            3,
        ),
        (
            "a day later the list is fetched again",
            Duration::hours(25),
            200,
            4,
        ),
    ];
    for (name, after, status, fetches) in steps {
        let headers = if *status == 401 && name.contains("old key") {
            signed(&w, &body)
        } else {
            headers.clone()
        };
        let (got, answer) = send(&w, &body, &headers, w.now + *after);
        assert_eq!(got, *status, "{name}: {answer}");
        assert_eq!(w.list.fetches.load(Ordering::SeqCst), *fetches, "{name}");
    }
}

#[test]
fn without_a_key_list_the_endpoint_fails_closed() {
    let w = world();
    *w.list.body.lock().expect("lock") = None;
    let body = alerts(&[&w.live[0].0]);
    let (status, answer) = send(&w, &body, &signed(&w, &body), w.now);
    assert_eq!(status, 502, "{answer}");
    assert!(!answer.to_string().contains("kg_"));
    assert_eq!(verifies(&w, &w.live[0].0), VerifyCode::Valid);
    // A host without a client at all answers the same.
    let bare = Keygate::new(MemoryStore::default());
    let w = World { kg: bare, ..w };
    let (status, _) = send(&w, &body, &signed(&w, &body), w.now);
    assert_eq!(status, 502);
}

#[test]
fn a_batch_of_500_tokens_is_one_call() {
    let w = world();
    let mut tokens: Vec<String> = (0..498).map(|i| format!("kg_{i:040}")).collect();
    tokens.push(w.live[0].0.clone());
    tokens.push(w.live[1].0.clone());
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let body = alerts(&refs);
    assert!(
        body.len() > model::wire::BODY_LIMIT,
        "larger than any other body"
    );
    let (status, answer) = send(&w, &body, &signed(&w, &body), w.now);
    assert_eq!(status, 200);
    let labels = answer.as_array().expect("a list");
    assert_eq!(labels.len(), 500);
    let positives = labels
        .iter()
        .filter(|l| l["label"] == "true_positive")
        .count();
    assert_eq!(positives, 2);
    assert_eq!(verifies(&w, &w.live[0].0), VerifyCode::Revoked);
    assert_eq!(verifies(&w, &w.live[1].0), VerifyCode::Revoked);
}

#[test]
fn a_batch_over_its_limit_is_413_naming_that_limit() {
    let w = world();
    for (path, limit) in [
        ("/v1/secret-scanning/github", model::wire::SCAN_BODY_LIMIT),
        ("/v1/keys/leaked", model::wire::BODY_LIMIT),
    ] {
        let headers: Vec<(String, String)> = Vec::new();
        let request = http::Request {
            method: "POST",
            path,
            query: None,
            headers: &headers,
            body: Body::TooLarge,
            secure: false,
            client: None,
        };
        let answer = block_on(http::handle(&w.kg, request, w.now));
        let problem: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        assert_eq!(answer.status, 413, "{path}");
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains(&limit.to_string())),
            "{path}: {problem}"
        );
    }
}
