//! Fail closed under workerd: with KV failing (injected through the test-only worker build),
//! verification answers 503 problem JSON and never `VALID`, and garbage is still refused
//! without a store read; with the control object's storage or the object failing, changes
//! answer 503 and nothing is half-written; KV catches up with what the object committed.

use serde_json::json;
use tests::{Answer, Api, As, Host};

#[tokio::test(flavor = "multi_thread")]
async fn verification_fails_closed_when_kv_fails() {
    let host = Host::faulty_worker()
        .await
        .expect("fault-injection worker starts");
    let api = Api::new(&host.base);
    let fx = api.admin_with_key("f").await.expect("admin with a key");
    let verify = json!({"key": fx.key});
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

    assert_eq!(inject(None).await, 204);
    assert_eq!(
        api.call("POST", "/v1/keys/verify", As::Nobody, Some(&verify))
            .await
            .expect("v")
            .body["code"],
        "VALID"
    );
}

/// The control object's own failures (SPEC §10): a change whose storage fails midway answers
/// 503 and leaves nothing behind, a bulk revoke included (all or nothing); an object that
/// fails answers 503 to changes while verification, which never needs it, goes on; and when
/// KV fails under a committed change, the object's alarm writes it through once KV is back.
#[tokio::test(flavor = "multi_thread")]
async fn the_control_object_fails_closed_and_kv_catches_up() {
    let host = Host::faulty_worker()
        .await
        .expect("fault-injection worker starts");
    let api = Api::new(&host.base);
    let fx = api.admin_with_key("f").await.expect("admin with a key");
    let admin = As::Bearer(&fx.token);
    let set = |faults: serde_json::Value| set_faults(&api, faults);
    let code = |key: String| {
        let api = api.clone();
        async move {
            let answer = api
                .call(
                    "POST",
                    "/v1/keys/verify",
                    As::Nobody,
                    Some(&json!({"key": key})),
                )
                .await
                .expect("verify");
            (
                answer.status,
                answer.body["code"].as_str().unwrap_or_default().to_owned(),
            )
        }
    };
    let create = |name: &'static str| {
        let api = api.clone();
        let (token, org) = (fx.token.clone(), fx.org.clone());
        async move {
            api.call(
                "POST",
                "/v1/keys",
                As::Bearer(&token),
                Some(&json!({"name": name, "namespace": org, "role": "viewer"})),
            )
            .await
            .expect("create")
        }
    };
    let listed = || {
        let api = api.clone();
        let token = fx.token.clone();
        async move {
            api.call("GET", "/v1/keys?limit=200", As::Bearer(&token), None)
                .await
                .expect("list")
                .body
                .to_string()
        }
    };

    // Storage failing midway (index entries are written after the key's record): 503, and
    // the record written before the failure is rolled back with the rest.
    set(json!({"fail_object_prefix": "v1:ix:"})).await;
    let refused = create("half").await;
    assert_eq!(
        (refused.status, refused.code()),
        (503, "store_unavailable"),
        "{refused:?}"
    );
    let mut bulk = Vec::new();
    set(json!({})).await;
    for name in ["b1", "b2", "b3"] {
        let made = create(name).await;
        assert_eq!(made.status, 201, "{made:?}");
        bulk.push((
            made.body["id"].as_str().unwrap_or_default().to_owned(),
            made.body["key"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    // Each key's revocation is its record then its event: failing on events fails the
    // batch after the first record was written.
    set(json!({"fail_object_prefix": "v1:event:"})).await;
    let ids: Vec<&str> = bulk.iter().map(|(id, _)| id.as_str()).collect();
    let revoke = api
        .call("POST", "/v1/keys/revoke", admin, Some(&json!({"ids": ids})))
        .await
        .expect("bulk revoke");
    assert_eq!(
        (revoke.status, revoke.code()),
        (503, "store_unavailable"),
        "{revoke:?}"
    );
    set(json!({})).await;
    assert!(!listed().await.contains(r#""half""#), "nothing half-made");
    for (_, key) in &bulk {
        assert_eq!(
            code(key.clone()).await,
            (200, "VALID".into()),
            "none revoked"
        );
    }

    // The object itself failing: changes answer 503; verification does not need it.
    set(json!({"object_down": true})).await;
    let down = create("down").await;
    assert_eq!(
        (down.status, down.code()),
        (503, "store_unavailable"),
        "{down:?}"
    );
    let read = api
        .call("GET", "/v1/keys", admin, None)
        .await
        .expect("list");
    assert_eq!(read.status, 503, "{read:?}");
    assert_eq!(code(fx.key.clone()).await, (200, "VALID".into()));
    set(json!({})).await;
    assert!(!listed().await.contains(r#""down""#));

    // KV failing under a committed change: the change stands (it is in the object), KV gets
    // it from the alarm once it works again.
    set(json!({"fail_prefix": "v1:"})).await;
    let made = create("late").await;
    assert_eq!(made.status, 201, "committed in the object: {made:?}");
    let late = made.body["key"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        code(late.clone()).await.0,
        503,
        "KV unreadable: never VALID"
    );
    set(json!({})).await;
    let healed = std::time::Instant::now();
    let mut seen = code(late.clone()).await;
    while seen.1 != "VALID" && healed.elapsed() < std::time::Duration::from_secs(30) {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        seen = code(late.clone()).await;
    }
    assert_eq!(seen, (200, "VALID".into()), "KV caught up with the object");
    tests::figure(
        "control object faults (edge)",
        &format!(
            "storage failing midway: create and a 3-key bulk revoke answered 503, nothing half-done; object down: changes 503, verification VALID; KV down under a committed creation: VALID {:.1?} after KV came back (the alarm's retry, within the isolate's 5 s cache of the key as absent)",
            healed.elapsed()
        ),
    );
}

/// Each organization's requests run in its own object, the instance's in the directory,
/// verification in none (the test build names the object that served each answer).
/// A metered key's object (SPEC §4.5 at the edge): when it fails, the key's verification is
/// 503 and never `VALID`, while a key without a policy never asks it; bursts from requests
/// that each bypass the isolate's caches (as other locations would) stay exact.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_meter_fails_closed_and_bursts_stay_exact_without_caches() {
    let host = Host::faulty_worker()
        .await
        .expect("fault-injection worker starts");
    let api = Api::new(&host.base);
    let fx = api.admin_with_key("m").await.expect("admin with a key");
    let body = json!({"name": "metered", "namespace": fx.org, "role": "viewer",
        "ratelimits": [{"name": "h", "limit": 10, "window_seconds": 3600}],
        "credits": {"remaining": 8}});
    let made = api
        .call("POST", "/v1/keys", As::Bearer(&fx.token), Some(&body))
        .await
        .expect("create");
    assert_eq!(made.status, 201, "{made:?}");
    let key = made.body["key"].as_str().unwrap_or_default().to_owned();
    let verify = |key: String| {
        let api = api.clone();
        async move {
            let answer = api
                .call(
                    "POST",
                    "/v1/keys/verify",
                    As::Nobody,
                    Some(&json!({"key": key})),
                )
                .await
                .expect("verify");
            (
                answer.status,
                answer.body["code"].as_str().unwrap_or_default().to_owned(),
            )
        }
    };
    set_faults(&api, json!({"meter_down": true})).await;
    let down = verify(key.clone()).await;
    let plain = verify(fx.key.clone()).await;
    set_faults(&api, json!({})).await;
    assert_eq!(down.0, 503, "a failing meter: {down:?}");
    assert_eq!(plain, (200, "VALID".into()), "a plain key needs no meter");
    // Every request reads KV anew (no isolate cache), as at another location.
    set_faults(&api, json!({"detach_writes": true, "clear_cache": true})).await;
    let tasks: Vec<_> = (0..40).map(|_| tokio::spawn(verify(key.clone()))).collect();
    let mut codes = Vec::new();
    for task in tasks {
        codes.push(task.await.expect("task").1);
    }
    set_faults(&api, json!({})).await;
    let valid = codes.iter().filter(|c| *c == "VALID").count();
    let exceeded = codes.iter().filter(|c| *c == "USAGE_EXCEEDED").count();
    assert_eq!(
        (valid, exceeded),
        (8, 32),
        "8 credits, the failed call spent none: {codes:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_organization_is_served_by_its_own_object() {
    let host = Host::faulty_worker()
        .await
        .expect("fault-injection worker starts");
    let api = Api::new(&host.base);
    let fx = api.admin_with_key("o").await.expect("admin with a key");
    let served = |answer: &Answer| {
        answer
            .headers
            .get("x-keygate-served-by")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let keys = api
        .call("GET", "/v1/keys", As::Bearer(&fx.token), None)
        .await
        .expect("keys");
    assert_eq!(keys.status, 200, "{keys:?}");
    assert_eq!(
        served(&keys).as_deref(),
        Some(fx.org.as_str()),
        "by session"
    );
    // An API key's calls: its record's organization.
    let by_key = api
        .call("GET", "/v1/me", As::Bearer(&fx.key), None)
        .await
        .expect("me by key");
    assert_eq!(
        served(&by_key).as_deref(),
        Some(fx.org.as_str()),
        "{by_key:?}"
    );
    // A second organization, made and joined through the directory.
    let body = json!({"name": "Second", "admin_email": "second@example.com"});
    let created = api
        .call(
            "POST",
            "/v1/organizations",
            As::Bearer(&fx.token),
            Some(&body),
        )
        .await
        .expect("create organization");
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(served(&created).as_deref(), Some("instance"));
    let second = created.body["organization"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let invitation = created.body["invitation_token"]
        .as_str()
        .unwrap_or_default();
    let (_, token) = api
        .accept(invitation, "second@example.com")
        .await
        .expect("accept");
    let theirs = api
        .call("GET", "/v1/keys", As::Bearer(&token), None)
        .await
        .expect("their keys");
    assert_eq!(theirs.status, 200, "{theirs:?}");
    assert_eq!(served(&theirs).as_deref(), Some(second.as_str()));
    assert_ne!(second, fx.org);
    // Each sees only its own: the second organization's object has none of the first's keys.
    assert_eq!(
        theirs.body["items"].as_array().map(Vec::len),
        Some(0),
        "{theirs:?}"
    );
    // Signing in is the directory's; verification is no object's.
    let login = api
        .call(
            "POST",
            "/v1/auth/login",
            As::Nobody,
            Some(&json!({"email": "second@example.com", "password": "long-enough-pw"})),
        )
        .await
        .expect("login");
    assert_eq!(served(&login).as_deref(), Some("instance"), "{login:?}");
    let verify = api
        .call(
            "POST",
            "/v1/keys/verify",
            As::Nobody,
            Some(&json!({"key": fx.key})),
        )
        .await
        .expect("verify");
    assert_eq!(verify.body["code"], "VALID");
    assert_eq!(served(&verify), None);
}

/// A change of the directory and an organization (accepting an invitation: the email is
/// the directory's, the user the organization's) whose organization's part fails, or whose
/// directory object dies before or after the organization's part: the directory settles it
/// with the organization's object, so the change is whole or not at all. Before, a crash
/// between the two left the email claimed by no user, for good.
#[tokio::test(flavor = "multi_thread")]
async fn a_change_in_two_objects_is_whole_after_a_crash_between_them() {
    let host = Host::faulty_worker()
        .await
        .expect("fault-injection worker starts");
    let api = Api::new(&host.base);
    let fx = api.admin_with_key("c").await.expect("admin with a key");
    let admin = As::Bearer(&fx.token);
    let set = |faults: serde_json::Value| set_faults(&api, faults);
    let accept = |token: String| {
        let api = api.clone();
        async move {
            let body = json!({"name": "Dee Veloper", "password": "long-enough-pw"});
            api.call(
                "POST",
                &format!("/v1/invitations/{token}/accept"),
                As::Nobody,
                Some(&body),
            )
            .await
            .expect("accept")
        }
    };
    // (the fault, the invited email, whether the change happened)
    let cases = [
        (
            json!({"fail_object_prefix": "v1:event:"}),
            "fails@example.com",
            false,
        ),
        (
            json!({"crash_directory": "before_organization"}),
            "before@example.com",
            false,
        ),
        (
            json!({"crash_directory": "after_organization"}),
            "after@example.com",
            true,
        ),
    ];
    for (fault, email, happened) in cases {
        let invited = api
            .call(
                "POST",
                "/v1/invitations",
                admin,
                Some(&json!({"email": email, "roles": ["developer"]})),
            )
            .await
            .expect("invite");
        assert_eq!(invited.status, 201, "{invited:?}");
        let token = invited.body["invitation_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        set(fault.clone()).await;
        // Refused: 503 from the worker, or the runtime's 500 when the object died under it.
        let failed = accept(token.clone()).await;
        assert!(
            failed.status == 503 || (failed.status == 500 && fault["crash_directory"].is_string()),
            "{fault}: {failed:?}"
        );
        set(json!({})).await;
        let login = api
            .call(
                "POST",
                "/v1/auth/login",
                As::Nobody,
                Some(&json!({"email": email, "password": "long-enough-pw"})),
            )
            .await
            .expect("login");
        let again = accept(token.clone()).await;
        if happened {
            // The user was made with the email: signing in works, the invitation is spent.
            assert_eq!(login.status, 200, "{fault}: {login:?}");
            assert_ne!(again.status, 201, "{fault}: {again:?}");
        } else {
            // Nothing of it stands: the email is free and the invitation still good.
            assert_eq!(login.status, 401, "{fault}: {login:?}");
            assert_eq!(
                again.status, 201,
                "{fault}: the email stayed claimed: {again:?}"
            );
        }
        let members = api
            .call("GET", "/v1/members?limit=200", admin, None)
            .await
            .expect("members");
        let with_email = members.body["items"]
            .as_array()
            .map(|items| items.iter().filter(|m| m["email"] == email).count());
        assert_eq!(with_email, Some(1), "{fault}: {members:?}");
    }
}

#[test]
fn the_deployed_worker_carries_no_fault_injection() {
    let wasm = |dir: &str| {
        std::fs::read(tests::repo().join(format!("edge-worker/{dir}/index_bg.wasm")))
            .expect("built worker")
    };
    // The instrumentation's header name, written only by the test build (the fault route's
    // path may be compiled into comparisons of integers, so it is not looked for).
    let marker = b"x-keygate-kv-calls";
    let instrumented = |bytes: &[u8]| bytes.windows(marker.len()).any(|w| w == marker);
    assert!(
        instrumented(&wasm("build-faults")),
        "the test build has the instrumentation"
    );
    assert!(
        !instrumented(&wasm("build")),
        "the build wrangler.toml deploys has none"
    );
}

/// The KV calls (gets, lists) the instrumented worker says a request made: its cache misses.
fn kv_calls(answer: &Answer) -> (u32, u32) {
    let header = answer
        .headers
        .get("x-keygate-kv-calls")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let count = |name: &str| {
        header
            .split(", ")
            .find_map(|part| part.strip_prefix(name)?.strip_prefix('='))
            .and_then(|n| n.parse().ok())
            .unwrap_or(u32::MAX)
    };
    (count("gets"), count("lists"))
}

/// The hot path: once an isolate has verified one key of a creator, verifying another key of
/// that creator costs exactly one KV read (the key record), and a repeat costs none — for a
/// developer whose rights come from a direct grant and a group's grant.
#[tokio::test(flavor = "multi_thread")]
async fn a_warm_isolate_verifies_a_new_key_with_one_kv_read() {
    let host = Host::faulty_worker()
        .await
        .expect("fault-injection worker starts");
    let api = Api::new(&host.base);
    let fx = api.admin_with_key("warm").await.expect("admin with a key");
    let admin = As::Bearer(&fx.token);
    let made = |path: &'static str, body: serde_json::Value| {
        let api = api.clone();
        let token = fx.token.clone();
        async move {
            let answer = api
                .call("POST", path, As::Bearer(&token), Some(&body))
                .await
                .expect("call");
            assert_eq!(answer.status, 201, "{path}: {answer:?}");
            answer.body["id"].as_str().unwrap_or_default().to_owned()
        }
    };
    let app = made("/v1/apps", json!({"name": "Shop"})).await;
    let group = made("/v1/usergroups", json!({"name": "Ops", "parent": app})).await;
    let (dev, dev_token) = api
        .join(&fx.token, "hot@example.com", json!(["developer"]))
        .await
        .expect("developer joins");
    let added = api
        .call(
            "POST",
            &format!("/v1/usergroups/{group}/members"),
            admin,
            Some(&json!({"user": dev})),
        )
        .await
        .expect("add");
    assert_eq!(added.status, 204, "{added:?}");
    made(
        "/v1/grants",
        json!({"principal": group, "namespace": app, "permission": "workspaces.read"}),
    )
    .await;
    made(
        "/v1/grants",
        json!({"principal": dev, "namespace": app, "permission": "resources.read"}),
    )
    .await;
    let new_key = |name: &'static str| {
        let api = api.clone();
        let token = dev_token.clone();
        let app = app.clone();
        async move {
            let body = json!({"name": name, "namespace": app,
                "permissions": [{"permission": "workspaces.read"}, {"permission": "resources.read"}]});
            let answer = api
                .call("POST", "/v1/keys", As::Bearer(&token), Some(&body))
                .await
                .expect("create");
            assert_eq!(answer.status, 201, "{answer:?}");
            answer.body["key"].as_str().unwrap_or_default().to_owned()
        }
    };
    let verify = |key: String| {
        let api = api.clone();
        async move {
            let body = json!({"key": key, "permissions": ["workspaces.read", "resources.read"]});
            let answer = api
                .call("POST", "/v1/keys/verify", As::Nobody, Some(&body))
                .await
                .expect("verify");
            assert_eq!(answer.body["code"], "VALID", "{answer:?}");
            kv_calls(&answer)
        }
    };

    let first = new_key("first").await;
    let cleared = api
        .call(
            "POST",
            "/__faults",
            As::Nobody,
            Some(&json!({"fail_prefix": null, "clear_cache": true})),
        )
        .await
        .expect("clear");
    assert_eq!(cleared.status, 204);
    let cold = verify(first.clone()).await;
    assert!(
        cold.0 > 1 || cold.1 > 0,
        "a cold isolate reads the creator's records too: {cold:?}"
    );
    let second = new_key("second").await;
    assert_eq!(
        verify(second.clone()).await,
        (1, 0),
        "a new key of a known creator: one KV read"
    );
    assert_eq!(
        verify(second).await,
        (0, 0),
        "a repeat: answered from the cache"
    );
    assert_eq!(verify(first).await, (0, 0));
    eprintln!(
        "edge: cold isolate verify {cold:?} (gets, lists); warm new key (1, 0); repeat (0, 0)"
    );
}

/// A change made through another isolate (simulated: this isolate's writes stop dropping its
/// cache) is seen here within the cache's bound, `CACHE_TTL_MS` = 5 s. Measures and prints it.
#[tokio::test(flavor = "multi_thread")]
async fn a_revocation_made_elsewhere_is_seen_within_the_cache_bound() {
    let host = Host::faulty_worker()
        .await
        .expect("fault-injection worker starts");
    let api = Api::new(&host.base);
    let fx = api
        .admin_with_key("elsewhere")
        .await
        .expect("admin with a key");
    let admin = As::Bearer(&fx.token);
    let code = |key: String| {
        let api = api.clone();
        async move {
            api.call(
                "POST",
                "/v1/keys/verify",
                As::Nobody,
                Some(&json!({"key": key})),
            )
            .await
            .expect("verify")
            .body["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
    };
    let detach = |on: bool| {
        let api = api.clone();
        async move {
            let body = json!({"fail_prefix": null, "detach_writes": on});
            let answer = api
                .call("POST", "/__faults", As::Nobody, Some(&body))
                .await
                .expect("faults");
            assert_eq!(answer.status, 204);
        }
    };
    // Each change: warm the cache with VALID, make the change "elsewhere", poll until seen.
    let mut bounds = Vec::new();
    for change in ["revoke", "switch off"] {
        let created = api
            .call(
                "POST",
                "/v1/keys",
                admin,
                Some(&json!({"name": change, "namespace": fx.org, "role": "viewer"})),
            )
            .await
            .expect("create");
        let key = created.body["key"].as_str().unwrap_or_default().to_owned();
        let id = created.body["id"].as_str().unwrap_or_default().to_owned();
        let warmed = std::time::Instant::now();
        assert_eq!(code(key.clone()).await, "VALID");
        detach(true).await;
        let (path, body, expected) = match change {
            "revoke" => (format!("/v1/keys/{id}/revoke"), json!({}), "REVOKED"),
            _ => (
                "/v1/settings".to_owned(),
                json!({"api_keys_enabled": false}),
                "DISABLED",
            ),
        };
        let method = if change == "revoke" { "POST" } else { "PATCH" };
        let done = api
            .call(method, &path, admin, Some(&body))
            .await
            .expect("change");
        assert!(done.status < 300, "{done:?}");
        let changed = std::time::Instant::now();
        let first = code(key.clone()).await;
        if warmed.elapsed() < std::time::Duration::from_secs(4) {
            assert_eq!(
                first, "VALID",
                "the isolate still trusts its cached records: the write was not its own"
            );
        }
        let mut seen = first;
        while seen != expected {
            assert!(
                changed.elapsed() < std::time::Duration::from_millis(6_000),
                "{change}: still {seen} after {:?}",
                changed.elapsed()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            seen = code(key.clone()).await;
        }
        let bound = changed.elapsed();
        detach(false).await;
        if change == "switch off" {
            let on = api
                .call(
                    "PATCH",
                    "/v1/settings",
                    admin,
                    Some(&json!({"api_keys_enabled": true})),
                )
                .await
                .expect("switch on");
            assert_eq!(on.status, 200);
        }
        bounds.push(format!("{change} seen after {} ms", bound.as_millis()));
    }
    eprintln!("edge: a change made elsewhere: {}", bounds.join(", "));
}

/// The store-fault sweep of `model/tests/faults.rs`, over the control object's storage under
/// workerd: each change is run once per storage call it makes (a read, a listing, each write
/// of its transaction), with exactly that call failing, until it succeeds. Every failure
/// answers 503 `store_unavailable` and leaves what the API shows exactly as it was.
#[tokio::test(flavor = "multi_thread")]
async fn every_change_fails_whole_at_each_storage_call_of_the_object() {
    let host = Host::faulty_worker()
        .await
        .expect("fault-injection worker starts");
    let api = Api::new(&host.base);
    let fx = api.admin_with_key("sweep").await.expect("admin with a key");
    let call = |method: &'static str, path: String, body: serde_json::Value| {
        let (api, token) = (api.clone(), fx.token.clone());
        async move {
            let body = (!body.is_null()).then_some(body);
            api.call(method, &path, As::Bearer(&token), body.as_ref())
                .await
                .expect("call")
        }
    };
    let made = |path: &'static str, body: serde_json::Value| async move {
        let answer = call("POST", path.to_owned(), body).await;
        assert_eq!(answer.status, 201, "{path}: {answer:?}");
        answer
    };
    let key = |name: &'static str| {
        let (made, org) = (made, fx.org.clone());
        async move {
            let body = json!({"name": name, "namespace": org, "role": "viewer"});
            made("/v1/keys", body).await.body["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
    };
    let (edited, bulk_a, bulk_b) = (
        key("edited").await,
        key("bulk a").await,
        key("bulk b").await,
    );
    let invited = made(
        "/v1/invitations",
        json!({"email": "sweep-accept@example.com", "roles": ["developer"]}),
    )
    .await;
    let invitation = invited.body["invitation_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (member, _) = api
        .join(&fx.token, "sweep-member@example.com", json!(["developer"]))
        .await
        .expect("member joins");
    let sweep: Vec<(&str, &'static str, String, serde_json::Value)> = vec![
        (
            "create key",
            "POST",
            "/v1/keys".into(),
            json!({"name": "swept", "namespace": fx.org, "role": "viewer"}),
        ),
        (
            "rename key",
            "PATCH",
            format!("/v1/keys/{edited}"),
            json!({"name": "edited again"}),
        ),
        (
            "create key with a policy",
            "POST",
            "/v1/keys".into(),
            json!({"name": "swept metered", "namespace": fx.org, "role": "viewer",
                "ratelimits": [{"name": "a", "limit": 5, "window_seconds": 60}],
                "credits": {"remaining": 100}}),
        ),
        (
            "set policy",
            "PUT",
            format!("/v1/keys/{edited}/policy"),
            json!({"ratelimits": [{"name": "a", "limit": 5, "window_seconds": 60}],
                "credits": {"remaining": 100, "refill": {"interval": "daily", "amount": 100}}}),
        ),
        (
            "roll key",
            "POST",
            format!("/v1/keys/{edited}/roll"),
            json!({"grace_seconds": 60}),
        ),
        (
            "revoke key",
            "POST",
            format!("/v1/keys/{edited}/revoke"),
            json!({}),
        ),
        (
            "bulk revoke",
            "POST",
            "/v1/keys/revoke".into(),
            json!({"ids": [bulk_a, bulk_b]}),
        ),
        (
            "delete key",
            "DELETE",
            format!("/v1/keys/{edited}"),
            serde_json::Value::Null,
        ),
        (
            "change settings",
            "PATCH",
            "/v1/settings".into(),
            json!({"max_expiry_days": 90}),
        ),
        (
            "define permission",
            "POST",
            "/v1/permissions".into(),
            json!({"name": "sweep.read"}),
        ),
        (
            "create application",
            "POST",
            "/v1/apps".into(),
            json!({"name": "Swept"}),
        ),
        (
            "invite",
            "POST",
            "/v1/invitations".into(),
            json!({"email": "sweep-new@example.com", "roles": ["developer"]}),
        ),
        (
            "accept invitation",
            "POST",
            format!("/v1/invitations/{invitation}/accept"),
            json!({"name": "Swept", "password": "long-enough-pw"}),
        ),
        (
            "set roles",
            "PATCH",
            format!("/v1/members/{member}"),
            json!({"roles": ["developer", "admin"]}),
        ),
        (
            "remove member",
            "DELETE",
            format!("/v1/members/{member}"),
            serde_json::Value::Null,
        ),
    ];
    let state = || {
        let api = api.clone();
        let token = fx.token.clone();
        async move {
            let mut seen = String::new();
            for path in [
                "/v1/keys?all=true&limit=200",
                "/v1/settings",
                "/v1/members?limit=200",
                "/v1/invitations?limit=200",
                "/v1/events?limit=200",
                "/v1/apps?limit=200",
                "/v1/permissions",
            ] {
                let answer = api
                    .call("GET", path, As::Bearer(&token), None)
                    .await
                    .expect("read");
                assert_eq!(answer.status, 200, "{path}: {answer:?}");
                seen.push_str(&answer.body.to_string());
            }
            seen
        }
    };
    let faults = |at: Option<u32>| {
        let api = api.clone();
        async move {
            let body = json!({"fail_object_call": at});
            let answer = api
                .call("POST", "/__faults", As::Nobody, Some(&body))
                .await
                .expect("faults");
            assert_eq!(answer.status, 204);
        }
    };
    let mut failures = 0;
    for (name, method, path, body) in &sweep {
        let mut at = 0;
        loop {
            let before = state().await;
            faults(Some(at)).await;
            let answer = call(method, path.clone(), body.clone()).await;
            faults(None).await;
            if answer.status < 300 {
                assert!(at > 0, "{name}: made no storage call");
                break;
            }
            assert_eq!(
                (answer.status, answer.code()),
                (503, "store_unavailable"),
                "{name}, call {at} failing: {answer:?}"
            );
            assert_eq!(
                state().await,
                before,
                "{name}, call {at} failing: half a change"
            );
            failures += 1;
            at += 1;
            assert!(at < 400, "{name}: still failing after {at} calls");
        }
    }
    tests::figure(
        "control object store-fault sweep (edge)",
        &format!(
            "{failures} single-call failures of the object's storage over {} changes, each 503 store_unavailable with the API's view unchanged",
            sweep.len()
        ),
    );
}

/// Sets the test build's faults (in the isolate and every object).
async fn set_faults(api: &Api, faults: serde_json::Value) {
    let answer = api
        .call("POST", "/__faults", As::Nobody, Some(&faults))
        .await
        .expect("inject");
    assert_eq!(answer.status, 204, "{answer:?}");
}
