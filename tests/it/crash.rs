//! Crash: `kill -9` the server in the middle of a burst of key creations, restart it on the
//! same store, and check that the store opens cleanly and every creation that was answered 201
//! is there and verifies. redb commits each batch with fsync before the answer, so an
//! acknowledged write must survive whatever happens after.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use tests::{Api, As, Host};

/// Kill-and-restart rounds.
const ROUNDS: usize = 5;
/// Concurrent clients creating keys in each round.
const CLIENTS: usize = 16;
/// Acknowledged creations in a round before the kill.
const KILL_AFTER: usize = 40;

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let mut acknowledged: Vec<(String, String)> = Vec::new();
    for round in 0..ROUNDS {
        let mut host = Host::server_with(&store, None, &[])
            .await
            .unwrap_or_else(|e| panic!("round {round}: the store does not reopen: {e:#}"));
        let api = Api::new(&host.base);
        check_all_verify(&api, &acknowledged, round).await;
        let (token, _) = api.login_admin().await.expect("admin signs in");
        let org = api.org_of(&token).await.expect("organization");
        let settings = json!({"api_keys_enabled": true, "max_active_keys_per_user": 1000});
        api.call("PATCH", "/v1/settings", As::Bearer(&token), Some(&settings))
            .await
            .expect("settings");

        let acked = Arc::new(AtomicUsize::new(0));
        let mut clients = Vec::new();
        for client in 0..CLIENTS {
            let (api, token, org, acked) = (api.clone(), token.clone(), org.clone(), acked.clone());
            clients.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                for i in 0.. {
                    let body = json!({"name": format!("crash {round}.{client}.{i}"), "namespace": org, "role": "viewer"});
                    match api.call("POST", "/v1/keys", As::Bearer(&token), Some(&body)).await {
                        Ok(answer) if answer.status == 201 => {
                            let field = |f: &str| answer.body[f].as_str().unwrap_or_default().to_owned();
                            mine.push((field("id"), field("key")));
                            acked.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(answer) => panic!("a creation failed before the crash: {answer:?}"),
                        // The server is gone: this write was never acknowledged.
                        Err(_) => return mine,
                    }
                }
                mine
            }));
        }
        while acked.load(Ordering::SeqCst) < KILL_AFTER {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        host.kill().expect("kill -9");
        for client in clients {
            let mine = client.await.expect("client");
            acknowledged.extend(mine);
        }
    }
    let host = Host::server_with(&store, None, &[])
        .await
        .expect("the store reopens after the last crash");
    let api = Api::new(&host.base);
    check_all_verify(&api, &acknowledged, ROUNDS).await;
    let (token, _) = api.login_admin().await.expect("admin signs in");
    let mut listed = 0;
    let mut cursor = String::new();
    loop {
        let page = api
            .call(
                "GET",
                &format!("/v1/keys?limit=200{cursor}"),
                As::Bearer(&token),
                None,
            )
            .await
            .expect("list");
        listed += page.body["items"].as_array().map_or(0, Vec::len);
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert!(
        listed >= acknowledged.len(),
        "every acknowledged key is listed: {listed} < {}",
        acknowledged.len()
    );
    tests::figure(
        "crash",
        &format!(
            "{ROUNDS} kill -9 rounds, each during a burst of {CLIENTS} concurrent clients: {} acknowledged creations, 0 lost; the store reopened cleanly every time",
            acknowledged.len(),
        ),
    );
}

/// Every acknowledged key verifies `VALID`.
async fn check_all_verify(api: &Api, acknowledged: &[(String, String)], round: usize) {
    for (id, key) in acknowledged {
        let answer = api
            .call(
                "POST",
                "/v1/keys/verify",
                As::Nobody,
                Some(&json!({"key": key})),
            )
            .await
            .expect("verify");
        assert_eq!(
            (answer.body["code"].as_str(), answer.body["key_id"].as_str()),
            (Some("VALID"), Some(id.as_str())),
            "after crash {round}: acknowledged key {id} was lost"
        );
    }
}

/// Credits of a key hammered while the server is killed (SPEC §4.5): after each restart the
/// `VALID` answers given never exceed the credits the key had, and what a kill forfeits is
/// at most one lease (`model::service::lease_size`: 1 % of the credits, at most 100).
#[tokio::test(flavor = "multi_thread")]
async fn a_kill_9_forfeits_at_most_one_lease_of_credits() {
    const CREDITS: u64 = 5_000;
    const KILLS: usize = 3;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let mut host = Host::server_with(&store, None, &[]).await.expect("server");
    let api = Api::new(&host.base);
    let (token, _) = api.login_admin().await.expect("admin signs in");
    let org = api.org_of(&token).await.expect("organization");
    let on = json!({"api_keys_enabled": true});
    api.call("PATCH", "/v1/settings", As::Bearer(&token), Some(&on))
        .await
        .expect("settings");
    let body = json!({"name": "hammered", "namespace": org, "role": "viewer",
        "credits": {"remaining": CREDITS}});
    let made = api
        .call("POST", "/v1/keys", As::Bearer(&token), Some(&body))
        .await
        .expect("create");
    assert_eq!(made.status, 201, "{made:?}");
    let key = made.body["key"].as_str().expect("plaintext").to_owned();
    let id = made.body["id"].as_str().expect("id").to_owned();
    let mut given = 0u64;
    let mut forfeited = Vec::new();
    let mut left = CREDITS;
    for round in 0..=KILLS {
        let api = Api::new(&host.base);
        let valid = Arc::new(AtomicUsize::new(0));
        let mut clients = Vec::new();
        for _ in 0..CLIENTS {
            let (api, key, valid) = (api.clone(), key.clone(), valid.clone());
            clients.push(tokio::spawn(async move {
                loop {
                    match api
                        .call(
                            "POST",
                            "/v1/keys/verify",
                            As::Nobody,
                            Some(&json!({"key": key})),
                        )
                        .await
                    {
                        Ok(answer) if answer.body["code"] == "VALID" => {
                            valid.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(answer) if answer.body["code"] == "USAGE_EXCEEDED" => return,
                        Ok(answer) => panic!("round {round}: {answer:?}"),
                        Err(_) => return,
                    }
                }
            }));
        }
        let last = round == KILLS;
        if !last {
            while valid.load(Ordering::SeqCst) < 300 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            host.kill().expect("kill -9");
        }
        for client in clients {
            client.await.expect("client");
        }
        let this_round = valid.load(Ordering::SeqCst) as u64;
        given += this_round;
        if last {
            break;
        }
        host = Host::server_with(&store, None, &[])
            .await
            .expect("the store reopens");
        let (token, _) = Api::new(&host.base)
            .login_admin()
            .await
            .expect("admin signs in");
        let view = Api::new(&host.base)
            .call("GET", &format!("/v1/keys/{id}"), As::Bearer(&token), None)
            .await
            .expect("view");
        let now_left = view.body["credits"]["remaining"].as_u64().expect("credits");
        assert!(
            this_round + now_left <= left,
            "round {round}: {this_round} given and {now_left} left of {left}: credits granted"
        );
        let lost = left - this_round - now_left;
        let bound = model::service::lease_size(left);
        assert!(
            lost <= bound,
            "round {round}: the kill forfeited {lost} credits, more than one lease ({bound})"
        );
        forfeited.push(lost);
        left = now_left;
    }
    // The last round ran the credits out: every credit was given or forfeited, none twice.
    assert_eq!(
        given + forfeited.iter().sum::<u64>(),
        CREDITS,
        "given {given}, forfeited {forfeited:?}"
    );
    tests::figure(
        "crash",
        &format!(
            "{KILLS} kill -9 rounds during bursts of {CLIENTS} verifiers on a key with {CREDITS} credits: {given} VALID, forfeited per kill {forfeited:?} (bound: one lease, at most {})",
            model::service::lease_size(CREDITS)
        ),
    );
}
