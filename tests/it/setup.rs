//! The first start without a password (the audit's finding 11), on both hosts: the host prints
//! a one-time set-up link, never a password; the link sets the password once; while none is
//! set a later start prints a new link (the server: at every start, the earlier one then stops
//! working; the worker: when an isolate starts after the last link expired).

use serde_json::json;
use tests::{Api, As, Host};

/// The set-up token in `host`'s log, once it is there.
async fn link(host: &Host) -> Option<String> {
    for _ in 0..50 {
        let text = host.output.text();
        if let Some(rest) = text.lines().find_map(|l| l.split("/#/setup/").nth(1)) {
            return Some(
                rest.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    None
}

/// Sets the password through `token`; the answer's status and code.
async fn set_up(api: &Api, token: &str, password: &str) -> (u16, String) {
    let answer = api
        .call(
            "POST",
            &format!("/v1/setup/{token}"),
            As::Nobody,
            Some(&json!({"password": password, "name": "First"})),
        )
        .await
        .expect("setup");
    (answer.status, answer.code().to_owned())
}

/// Signs in as the first admin; the status.
async fn sign_in(api: &Api, password: &str) -> u16 {
    api.call(
        "POST",
        "/v1/auth/login",
        As::Nobody,
        Some(&json!({"email": "first@example.com", "password": password})),
    )
    .await
    .expect("login")
    .status
}

const UNSET: [(&str, &str); 2] = [
    ("KEYGATE_ADMIN_PASSWORD", ""),
    ("KEYGATE_ADMIN_EMAIL", "first@example.com"),
];

#[tokio::test(flavor = "multi_thread")]
async fn without_a_password_the_server_prints_a_set_up_link_not_a_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let first_token = {
        let host = Host::server_with(&store, None, &UNSET)
            .await
            .expect("server starts");
        let token = link(&host).await.expect("a set-up link is printed");
        assert!(
            !host.output.text().contains("sign in with password"),
            "no password is printed: {}",
            host.output.text()
        );
        assert_eq!(
            sign_in(&Api::new(&host.base), "").await,
            401,
            "no password works yet"
        );
        token
    };
    let host = Host::server_with(&store, None, &UNSET)
        .await
        .expect("restarts");
    let token = link(&host).await.expect("a new link at the next start");
    assert_ne!(token, first_token);
    let api = Api::new(&host.base);
    assert_eq!(
        set_up(&api, &first_token, "chosen-password").await,
        (404, "not_found".into()),
        "the earlier link stopped working"
    );
    assert_eq!(set_up(&api, &token, "chosen-password").await.0, 200);
    assert_eq!(sign_in(&api, "chosen-password").await, 200);
    assert_eq!(
        set_up(&api, &token, "another-password").await,
        (404, "not_found".into()),
        "spent"
    );
    drop(host);
    let host = Host::server_with(&store, None, &UNSET)
        .await
        .expect("restarts");
    assert_eq!(link(&host).await, None, "no link once a password is set");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_password_the_worker_logs_a_set_up_link_not_a_password() {
    let host = Host::worker_with(&UNSET).await.expect("worker starts");
    let api = Api::new(&host.base);
    // The first request starts an isolate, which bootstraps.
    api.call("GET", "/healthz", As::Nobody, None)
        .await
        .expect("healthz");
    let token = link(&host).await.expect("a set-up link is logged");
    assert!(!host.output.text().contains("sign in with password"));
    assert_eq!(sign_in(&api, "").await, 401, "no password works yet");
    assert_eq!(
        set_up(&api, "kgu_not-the-token", "chosen-password").await.0,
        404
    );
    assert_eq!(set_up(&api, &token, "chosen-password").await.0, 200);
    assert_eq!(sign_in(&api, "chosen-password").await, 200);
    assert_eq!(set_up(&api, &token, "again-password").await.0, 404, "spent");
}
