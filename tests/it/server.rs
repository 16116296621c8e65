//! Guarantees only the server gives: its store is transactional and its changes serialized,
//! so rules checked on reads hold under concurrency. (Workers KV cannot promise this; the
//! edge's account of it is in ARCHITECTURE.md.)

use serde_json::json;
use tests::{Api, As, Host};

#[tokio::test(flavor = "multi_thread")]
async fn the_active_key_quota_holds_under_concurrent_creation() {
    let host = Host::server(None).await.expect("server starts");
    let api = Api::new(&host.base);
    let (token, _) = api.login_admin().await.expect("admin signs in");
    let org = api.org_of(&token).await.expect("organization");
    let settings = json!({"api_keys_enabled": true, "max_active_keys_per_user": 5});
    let set = api
        .call("PATCH", "/v1/settings", As::Bearer(&token), Some(&settings))
        .await
        .expect("settings");
    assert_eq!(set.status, 200, "{set:?}");

    let attempts = (0..100).map(|i| {
        let (api, token, org) = (api.clone(), token.clone(), org.clone());
        tokio::spawn(async move {
            let body = json!({"name": format!("racer {i}"), "namespace": org, "role": "viewer"});
            api.call("POST", "/v1/keys", As::Bearer(&token), Some(&body))
                .await
                .expect("create")
        })
    });
    let mut created = 0;
    let mut refused = 0;
    for attempt in attempts {
        let answer = attempt.await.expect("task");
        match (answer.status, answer.code()) {
            (201, _) => created += 1,
            (409, "key_quota_exceeded") => refused += 1,
            other => panic!("unexpected answer {other:?}: {}", answer.body),
        }
    }
    assert_eq!(
        (created, refused),
        (5, 95),
        "exactly the quota is created, however the requests race"
    );
    let listed = api
        .call("GET", "/v1/keys?status=active", As::Bearer(&token), None)
        .await
        .expect("list");
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(5));
}
