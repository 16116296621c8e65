//! Fail closed under workerd: with KV failing (injected through the test-only worker build),
//! verification answers 503 problem JSON and never `VALID`; management calls answer 503 and
//! nothing is half-written; garbage is still refused without a store read.

use serde_json::json;
use tests::{Api, As, Host};

#[tokio::test(flavor = "multi_thread")]
async fn verification_fails_closed_when_kv_fails() {
    let host = Host::faulty_worker()
        .await
        .expect("fault-injection worker starts");
    let api = Api::new(&host.base);
    let fx = api.admin_with_key("f").await.expect("admin with a key");
    let (token, org, key) = (fx.token.clone(), fx.org.clone(), fx.key.clone());
    let admin = As::Bearer(&token);
    let verify = json!({"key": key});
    assert_eq!(
        api.call("POST", "/v1/keys/verify", As::Nobody, Some(&verify))
            .await
            .expect("v")
            .body["code"],
        "VALID"
    );

    let inject = |prefix: Option<&str>| {
        let api = api.clone();
        let body = json!({"fail_prefix": prefix});
        async move {
            api.call("POST", "/__faults", As::Nobody, Some(&body))
                .await
                .expect("inject")
                .status
        }
    };
    for prefix in ["v1:key:", "v1:user:", "v1:org:", "v1:"] {
        assert_eq!(inject(Some(prefix)).await, 204);
        for _ in 0..5 {
            let answer = api
                .call("POST", "/v1/keys/verify", As::Nobody, Some(&verify))
                .await
                .expect("verify");
            assert_eq!(
                (answer.status, answer.code()),
                (503, "store_unavailable"),
                "{prefix}: {answer:?}"
            );
            assert!(
                answer.body.get("valid").is_none(),
                "a failing store never yields an outcome"
            );
        }
        // Garbage is refused by the checksum, without a store read, even now.
        let garbage = api
            .call(
                "POST",
                "/v1/keys/verify",
                As::Nobody,
                Some(&json!({"key": "kg_nope"})),
            )
            .await
            .expect("v");
        assert_eq!(
            (garbage.status, garbage.body["code"].as_str()),
            (200, Some("NOT_FOUND"))
        );
    }

    // A change whose writes fail answers 503 and leaves nothing behind.
    assert_eq!(inject(Some("v1:ix:")).await, 204);
    let refused = api
        .call(
            "POST",
            "/v1/keys",
            admin,
            Some(&json!({"name": "half", "namespace": org, "role": "viewer"})),
        )
        .await
        .expect("create");
    assert_eq!(
        (refused.status, refused.code()),
        (503, "store_unavailable"),
        "{refused:?}"
    );
    assert_eq!(inject(None).await, 204);
    assert_eq!(
        api.call("POST", "/v1/keys/verify", As::Nobody, Some(&verify))
            .await
            .expect("v")
            .body["code"],
        "VALID"
    );
    let listed = api
        .call("GET", "/v1/keys?limit=200", admin, None)
        .await
        .expect("list");
    assert!(
        !listed.body.to_string().contains(r#""half""#),
        "{}",
        listed.body
    );
}

#[test]
fn the_deployed_worker_carries_no_fault_injection() {
    let wasm = |dir: &str| {
        std::fs::read(tests::repo().join(format!("edge-worker/{dir}/index_bg.wasm")))
            .expect("built worker")
    };
    let has_route = |bytes: &[u8]| bytes.windows(b"/__faults".len()).any(|w| w == b"/__faults");
    assert!(
        has_route(&wasm("build-faults")),
        "the test build has the fault route"
    );
    assert!(
        !has_route(&wasm("build")),
        "the build wrangler.toml deploys has none"
    );
}
