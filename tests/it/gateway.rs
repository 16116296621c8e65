//! Gateway mode at the edge (SPEC §4.4), against a real upstream the test serves on loopback:
//! verified requests arrive with the identity headers and without the key; refused ones are
//! answered by the worker and never reach the upstream.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use serde_json::json;
use tests::{Api, As, Host};

/// What the upstream saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

async fn upstream() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let app = Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let log = Arc::clone(&log);
            async move {
                let headers = headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                    .collect();
                let entry = Seen {
                    method: method.to_string(),
                    uri: uri.to_string(),
                    headers,
                    body: body.to_vec(),
                };
                log.lock().expect("log").push(entry);
                axum::Json(json!({"upstream": "hello", "path": uri.path()}))
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("upstream serves") });
    (format!("http://{addr}"), seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_forwards_verified_requests_and_refuses_the_rest_at_the_edge() {
    let (upstream_url, seen) = upstream().await;
    let host = Host::worker_with(&[("KEYGATE_UPSTREAM", &upstream_url)])
        .await
        .expect("worker starts");
    let api = Api::new(&host.base);
    let fx = api.admin_with_key("gw").await.expect("admin with a key");
    let (token, org, key) = (fx.token.clone(), fx.org.clone(), fx.key.clone());
    let admin = As::Bearer(&token);
    let (id, owner) = (fx.id.clone(), fx.owner.clone());

    let ok = api
        .call("GET", "/gateway/hello/world?x=1", As::Bearer(&key), None)
        .await
        .expect("gateway");
    assert_eq!(
        (ok.status, ok.body["upstream"].as_str()),
        (200, Some("hello")),
        "{ok:?}"
    );
    let client = reqwest::Client::new();
    let posted = client
        .post(format!("{}/gateway/items", host.base))
        .header("x-api-key", &key)
        .header("x-keygate-owner", "usr_forged000000")
        .header("cookie", "keygate_session=kgs_nope")
        .body("payload")
        .send()
        .await
        .expect("post");
    assert_eq!(posted.status().as_u16(), 200);

    let log = seen.lock().expect("log").clone();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(
        (log[0].method.as_str(), log[0].uri.as_str()),
        ("GET", "/hello/world?x=1")
    );
    assert_eq!(
        (
            log[1].method.as_str(),
            log[1].uri.as_str(),
            log[1].body.as_slice()
        ),
        ("POST", "/items", &b"payload"[..])
    );
    for request in &log {
        let h = &request.headers;
        assert_eq!(h.get("x-keygate-key-id"), Some(&id));
        assert_eq!(
            h.get("x-keygate-owner"),
            Some(&owner),
            "a forged identity header is replaced"
        );
        assert_eq!(
            h.get("x-keygate-namespace").map(String::as_str),
            Some(org.as_str())
        );
        assert!(
            h.get("x-keygate-permissions")
                .is_some_and(|p| p.split(',').all(|p| p.ends_with(".read"))),
            "{h:?}"
        );
        assert!(
            !h.contains_key("authorization")
                && !h.contains_key("x-api-key")
                && !h.contains_key("cookie"),
            "{h:?}"
        );
        assert!(
            !h.values().any(|v| v.contains(&key[16..48])),
            "the key never reaches the upstream"
        );
    }

    let refused = |answer: &tests::Answer, status: u16, code: &str| {
        assert_eq!((answer.status, answer.code()), (status, code), "{answer:?}");
        assert!(answer.content_type.starts_with("application/problem+json"));
    };
    refused(
        &api.call("GET", "/gateway/x", As::Nobody, None)
            .await
            .expect("no key"),
        401,
        "key_not_found",
    );
    refused(
        &api.call("GET", "/gateway/x", As::Bearer("kg_garbage"), None)
            .await
            .expect("garbage"),
        401,
        "key_not_found",
    );
    api.call(
        "PATCH",
        "/v1/settings",
        admin,
        Some(&json!({"api_keys_enabled": false})),
    )
    .await
    .expect("off");
    refused(
        &api.call("GET", "/gateway/x", As::Bearer(&key), None)
            .await
            .expect("disabled"),
        401,
        "key_disabled",
    );
    api.call(
        "PATCH",
        "/v1/settings",
        admin,
        Some(&json!({"api_keys_enabled": true})),
    )
    .await
    .expect("on");
    api.call("POST", &format!("/v1/keys/{id}/revoke"), admin, None)
        .await
        .expect("revoke");
    refused(
        &api.call("GET", "/gateway/x", As::Bearer(&key), None)
            .await
            .expect("revoked"),
        401,
        "key_revoked",
    );
    assert_eq!(
        seen.lock().expect("log").len(),
        2,
        "refused requests never reach the upstream"
    );
}

/// The audit's findings 1 and 9 at the gateway: key data in the identity headers is encoded,
/// so that a key's name, ids and permissions reach the upstream as exactly what they are and
/// nothing more; and the upstream's answer, which shares the console's origin, sets no
/// session cookie and runs sandboxed.
#[tokio::test(flavor = "multi_thread")]
async fn key_data_cannot_split_the_identity_headers_nor_the_upstream_set_the_session() {
    let seen = Arc::new(Mutex::new(Vec::<BTreeMap<String, String>>::new()));
    let log = Arc::clone(&seen);
    let app = Router::new().fallback(move |headers: HeaderMap| {
        let log = Arc::clone(&log);
        async move {
            let headers = headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect();
            log.lock().expect("log").push(headers);
            (
                [
                    ("set-cookie", "keygate_session=planted; Path=/"),
                    (
                        "set-cookie",
                        "__Host-keygate_session=planted; Secure; Path=/",
                    ),
                    ("set-cookie", "theme=dark; Path=/"),
                    ("content-type", "text/html"),
                ],
                "<script>fetch('/v1/me')</script>",
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("upstream serves") });
    let host = Host::worker_with(&[("KEYGATE_UPSTREAM", &format!("http://{addr}"))])
        .await
        .expect("worker starts");
    let api = Api::new(&host.base);
    let fx = api.admin_with_key("plain").await.expect("admin");
    let name = "ci, prod|x=1; \"ünïcødé\" %41";
    let scopes = json!([
        {"permission": "resources.read", "resources": ["res_AAAAAAAAAAAA", "res_BBBBBBBBBBBB"]},
        {"permission": "resources.write"},
    ]);
    let made = api
        .call(
            "POST",
            "/v1/keys",
            As::Bearer(&fx.token),
            Some(&json!({"name": name, "namespace": fx.org, "permissions": scopes})),
        )
        .await
        .expect("create");
    assert_eq!(made.status, 201, "{made:?}");
    let key = made.body["key"].as_str().expect("key").to_owned();

    let client = reqwest::Client::new();
    let answer = client
        .get(format!("{}/gateway/page", host.base))
        .bearer_auth(&key)
        .send()
        .await
        .expect("gateway");
    assert_eq!(answer.status().as_u16(), 200);
    let cookies: Vec<String> = answer
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    assert!(
        cookies.iter().all(|c| !c.contains("keygate_session")),
        "{cookies:?}"
    );
    assert!(
        cookies.iter().any(|c| c.starts_with("theme=dark")),
        "{cookies:?}"
    );
    assert_eq!(
        answer
            .headers()
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok()),
        Some("sandbox")
    );

    let log = seen.lock().expect("log").clone();
    let h = log.first().expect("forwarded");
    let permissions = h.get("x-keygate-permissions").expect("permissions header");
    let parsed = model::wire::parse_permissions_header(permissions);
    let expected: Vec<model::domain::PermissionScope> =
        serde_json::from_value(scopes).expect("scopes");
    assert_eq!(parsed, Some(expected), "{permissions}");
    let sent_name = h.get("x-keygate-key-name").expect("name header");
    assert!(
        !sent_name.contains([',', ';', '"', ' ', '|', '=']),
        "{sent_name}"
    );
    let decoded = percent_encoding::percent_decode_str(sent_name).decode_utf8();
    assert_eq!(decoded.ok().as_deref(), Some(name), "{sent_name}");
}

/// A key with a rate limit through the gateway (SPEC §4.4): `X-RateLimit-*` on every answer,
/// forwarded or refused; the refusal is 429 with `Retry-After` and never reaches the
/// upstream. Spent credits are 429 `usage_exceeded`.
#[tokio::test(flavor = "multi_thread")]
async fn a_limited_key_gets_429_with_its_limits_and_never_reaches_the_upstream() {
    let (upstream_url, seen) = upstream().await;
    let host = Host::worker_with(&[("KEYGATE_UPSTREAM", &upstream_url)])
        .await
        .expect("worker starts");
    let api = Api::new(&host.base);
    let fx = api.admin_with_key("gwl").await.expect("admin with a key");
    let made = |policy: serde_json::Value| {
        let (api, token, org) = (api.clone(), fx.token.clone(), fx.org.clone());
        async move {
            let mut body = json!({"name": "limited", "namespace": org, "role": "viewer"});
            for (k, v) in policy.as_object().into_iter().flatten() {
                body[k] = v.clone();
            }
            let made = api
                .call("POST", "/v1/keys", As::Bearer(&token), Some(&body))
                .await
                .expect("create");
            assert_eq!(made.status, 201, "{made:?}");
            made.body["key"].as_str().unwrap_or_default().to_owned()
        }
    };
    let key = made(json!({"ratelimits": [{"name": "m", "limit": 2, "window_seconds": 60}]})).await;
    let header = |a: &tests::Answer, name: &str| {
        a.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let before = seen.lock().expect("seen").len();
    for remaining in ["1", "0"] {
        let ok = api
            .call("GET", "/gateway/limited", As::Bearer(&key), None)
            .await
            .expect("gateway");
        assert_eq!(ok.status, 200, "{ok:?}");
        assert_eq!(header(&ok, "x-ratelimit-limit").as_deref(), Some("2"));
        assert_eq!(
            header(&ok, "x-ratelimit-remaining").as_deref(),
            Some(remaining)
        );
        let reset: u64 = header(&ok, "x-ratelimit-reset")
            .and_then(|r| r.parse().ok())
            .expect("reset");
        assert!((1..=60).contains(&reset), "{reset}");
    }
    let refused = api
        .call("GET", "/gateway/limited", As::Bearer(&key), None)
        .await
        .expect("gateway");
    assert_eq!(
        (refused.status, refused.code()),
        (429, "rate_limited"),
        "{refused:?}"
    );
    assert_eq!(
        header(&refused, "x-ratelimit-remaining").as_deref(),
        Some("0")
    );
    let retry: u64 = header(&refused, "retry-after")
        .and_then(|r| r.parse().ok())
        .expect("Retry-After");
    assert!((1..=30).contains(&retry), "a token every 30 s: {retry}");
    assert_eq!(
        seen.lock().expect("seen").len(),
        before + 2,
        "the refused request never reached the upstream"
    );

    let spent =
        made(json!({"credits": {"remaining": 1, "refill": {"interval": "daily", "amount": 1}}}))
            .await;
    let first = api
        .call("GET", "/gateway/credits", As::Bearer(&spent), None)
        .await
        .expect("gateway");
    assert_eq!(first.status, 200, "{first:?}");
    assert!(
        header(&first, "x-ratelimit-limit").is_none(),
        "no limits, no limit headers"
    );
    let out = api
        .call("GET", "/gateway/credits", As::Bearer(&spent), None)
        .await
        .expect("gateway");
    assert_eq!((out.status, out.code()), (429, "usage_exceeded"), "{out:?}");
    let retry: u64 = header(&out, "retry-after")
        .and_then(|r| r.parse().ok())
        .expect("Retry-After until the refill");
    assert!((1..=86_400).contains(&retry), "{retry}");
}
