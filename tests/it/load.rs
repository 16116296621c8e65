//! Load: a bounded mixed run — creations, verifications, revocations and listings from many
//! concurrent clients — against each host on loopback. Zero 5xx, and zero lost writes:
//! afterwards every created key verifies `VALID` and every revoked one `REVOKED`.

use std::time::Instant;

use serde_json::json;
use tests::{Api, As, Host};

/// What one client did: its keys (id, plaintext, revoked) and its answers by status class.
#[derive(Default)]
struct Tally {
    keys: Vec<(String, String, bool)>,
    requests: usize,
    server_errors: Vec<String>,
}

async fn client(api: Api, token: String, org: String, n: usize, ops: usize) -> Tally {
    let mut t = Tally::default();
    let admin = As::Bearer(&token);
    for i in 0..ops {
        let answer = match i % 5 {
            // Create.
            0 | 1 => {
                let body =
                    json!({"name": format!("load {n}.{i}"), "namespace": org, "role": "viewer"});
                let a = api.call("POST", "/v1/keys", admin, Some(&body)).await;
                if let Ok(a) = &a
                    && a.status == 201
                {
                    let field = |f: &str| a.body[f].as_str().unwrap_or_default().to_owned();
                    t.keys.push((field("id"), field("key"), false));
                }
                a
            }
            // Verify one of ours.
            2 => {
                let key = t.keys.last().map(|k| k.1.clone()).unwrap_or_default();
                api.call(
                    "POST",
                    "/v1/keys/verify",
                    As::Nobody,
                    Some(&json!({"key": key})),
                )
                .await
            }
            // Revoke the oldest key not yet revoked.
            3 => match t.keys.iter_mut().find(|k| !k.2) {
                Some(k) => {
                    let a = api
                        .call("POST", &format!("/v1/keys/{}/revoke", k.0), admin, None)
                        .await;
                    if a.as_ref().is_ok_and(|a| a.status == 200) {
                        k.2 = true;
                    }
                    a
                }
                None => continue,
            },
            // List.
            _ => api.call("GET", "/v1/keys?limit=20", admin, None).await,
        };
        t.requests += 1;
        match answer {
            Ok(a) if a.status >= 500 => t.server_errors.push(format!("{}: {}", a.status, a.body)),
            Ok(_) => {}
            Err(e) => t.server_errors.push(format!("no answer: {e}")),
        }
    }
    t
}

async fn run(host: &Host, clients: usize, ops: usize) {
    let api = Api::new(&host.base);
    let (token, _) = api.login_admin().await.expect("admin signs in");
    let org = api.org_of(&token).await.expect("organization");
    let settings = json!({"api_keys_enabled": true, "max_active_keys_per_user": 1000});
    let set = api
        .call("PATCH", "/v1/settings", As::Bearer(&token), Some(&settings))
        .await
        .expect("settings");
    assert_eq!(set.status, 200, "{set:?}");

    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|n| tokio::spawn(client(api.clone(), token.clone(), org.clone(), n, ops)))
        .collect();
    let mut total = Tally::default();
    for task in tasks {
        let t = task.await.expect("client");
        total.keys.extend(t.keys);
        total.requests += t.requests;
        total.server_errors.extend(t.server_errors);
    }
    let elapsed = started.elapsed();
    assert!(
        total.server_errors.is_empty(),
        "{} of {} requests had no 2xx-4xx answer: {:?}",
        total.server_errors.len(),
        total.requests,
        &total.server_errors[..total.server_errors.len().min(5)]
    );

    let mut lost = Vec::new();
    for (id, key, revoked) in &total.keys {
        let answer = api
            .call(
                "POST",
                "/v1/keys/verify",
                As::Nobody,
                Some(&json!({"key": key})),
            )
            .await
            .expect("verify");
        let want = if *revoked { "REVOKED" } else { "VALID" };
        if answer.body["code"] != want {
            lost.push(format!("{id}: {} instead of {want}", answer.body["code"]));
        }
    }
    assert!(lost.is_empty(), "lost writes: {lost:?}");
    let revoked = total.keys.iter().filter(|k| k.2).count();
    tests::figure(
        &format!("load ({})", host.name),
        &format!(
            "{} mixed requests from {clients} concurrent clients in {:.1?} ({:.0}/s): 0 5xx; {} keys created and {revoked} revoked, all read back as written (0 lost)",
            total.requests,
            elapsed,
            total.requests as f64 / elapsed.as_secs_f64(),
            total.keys.len(),
        ),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mixed_load_on_the_server_loses_nothing() {
    let host = Host::server(None).await.expect("server starts");
    run(&host, 24, 40).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mixed_load_on_the_worker_loses_nothing() {
    let host = Host::worker().await.expect("worker starts under workerd");
    run(&host, 8, 25).await;
}
