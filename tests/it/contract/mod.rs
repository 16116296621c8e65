//! The HTTP contract (SPEC §7), written once as a list of cases and run against every host.
//!
//! A case is an async function of a [`Ctx`]; [`CASES`] is the table. Each host runs every case
//! in order and reports all failures at the end, so one broken rule does not hide another.

use std::future::Future;
use std::pin::Pin;

use anyhow::{Result, ensure};
use serde_json::{Value, json};
use tests::{ADMIN_EMAIL, ADMIN_PASSWORD, Answer, Api, As, Host};

/// What every case gets: a client for the host and a signed-in admin.
#[derive(Clone)]
struct Ctx {
    api: Api,
    token: String,
    csrf: String,
    org: String,
}

impl Ctx {
    /// Invites `email` with `roles`, accepts, signs in; returns (user id, token).
    async fn join(&self, email: &str, roles: Value) -> Result<(String, String)> {
        self.api.join(&self.token, email, roles).await
    }

    async fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Answer> {
        self.api
            .call(method, path, As::Bearer(&self.token), body)
            .await
    }

    async fn set_enabled(&self, on: bool) -> Result<()> {
        let answer = self
            .admin(
                "PATCH",
                "/v1/settings",
                Some(&json!({"api_keys_enabled": on})),
            )
            .await?;
        ensure!(
            answer.status == 200 && answer.body["api_keys_enabled"] == on,
            "toggle failed: {answer:?}"
        );
        Ok(())
    }

    async fn create_key(&self, body: Value) -> Result<Answer> {
        self.admin("POST", "/v1/keys", Some(&body)).await
    }

    async fn new_key(&self) -> Result<(String, String)> {
        let answer = self
            .create_key(json!({"name": "contract", "namespace": self.org, "role": "editor"}))
            .await?;
        ensure!(answer.status == 201, "create failed: {answer:?}");
        let key = answer.body["key"].as_str().unwrap_or_default().to_owned();
        let id = answer.body["id"].as_str().unwrap_or_default().to_owned();
        Ok((key, id))
    }

    async fn verify(&self, body: Value) -> Result<Answer> {
        self.api
            .call("POST", "/v1/keys/verify", As::Nobody, Some(&body))
            .await
    }
}

/// Asserts a problem answer: status, stable code, and the problem content type.
fn problem(answer: &Answer, status: u16, code: &str) -> Result<()> {
    answer.problem(status, code)
}

type CaseFn = fn(Ctx) -> Pin<Box<dyn Future<Output = Result<()>> + Send>>;

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        &[$((stringify!($name), (|c| Box::pin($name(c))) as CaseFn)),*]
    };
}

mod audit;

/// Every contract case, in the order they run (then [`audit::CASES`]).
const CASES: &[(&str, CaseFn)] = cases![
    healthz_answers,
    wrong_password_is_unauthenticated,
    unknown_email_answers_like_a_wrong_password,
    me_needs_a_session,
    me_shows_the_admin_and_the_organization_namespace,
    login_sets_an_httponly_strict_cookie,
    cookie_changes_need_the_csrf_header,
    keys_are_refused_while_the_organization_switch_is_off,
    created_key_is_shown_once_and_verifies,
    listed_keys_never_carry_the_secret,
    garbage_tampered_and_forged_keys_are_not_found,
    switching_keys_off_disables_them_at_once,
    verify_checks_permissions_and_namespace,
    verify_body_of_the_wrong_shape_is_400,
    invalid_key_requests_are_refused_and_write_nothing,
    permission_not_held_is_refused,
    settings_are_validated,
    unknown_endpoint_is_a_problem,
    logout_ends_the_session,
    keys_are_displayed_and_only_name_and_description_change,
    revocation_is_immediate_and_irreversible,
    bulk_revoke_reports_a_result_per_id,
    rolling_keeps_the_old_secret_for_the_grace_period_only,
    deletion_is_physical,
    admins_list_every_key_with_filters,
    every_change_is_audited_without_secrets,
    repeated_failed_logins_are_slowed_down,
    an_invited_developer_joins_and_holds_only_what_is_granted,
    invitations_are_validated_and_spent_once,
    roles_change_but_the_last_admin_stays,
    a_removed_member_loses_sessions_and_keys_at_once,
    new_organizations_are_isolated,
    grants_give_rights_and_the_key_ceiling_follows_them_live,
    an_application_key_manages_only_its_applications_workspaces,
    grants_and_namespaces_are_validated,
    keys_own_resources_and_deleting_them_transfers_or_cascades,
    verifications_are_counted_per_minute_by_outcome,
    extensive_use_is_flagged_above_the_threshold,
    the_active_key_quota_is_enforced,
    another_organizations_namespaces_grants_and_resources_are_not_found,
    the_openapi_document_is_served,
    oversized_management_bodies_are_refused,
];

async fn run_all(host: &Host) {
    let api = Api::new(&host.base);
    let (token, csrf) = api.login_admin().await.expect("admin signs in");
    let org = api.org_of(&token).await.expect("organization");
    let ctx = Ctx {
        api,
        token,
        csrf,
        org,
    };
    ctx.set_enabled(true).await.expect("enable API keys");
    let mut failures = Vec::new();
    for (name, case) in CASES.iter().chain(audit::CASES) {
        match case(ctx.clone()).await {
            Ok(()) => println!("{} {name} ... ok", host.name),
            Err(e) => {
                println!("{} {name} ... FAILED: {e:#}", host.name);
                failures.push(format!("{name}: {e:#}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} contract cases failed on the {}:\n{}",
        failures.len(),
        CASES.len() + audit::CASES.len(),
        host.name,
        failures.join("\n")
    );
}

/// The contract against the server logging at its most verbose level; afterwards neither its
/// log nor its events nor any listing holds a key, session or invitation token, or a password
/// (SPEC §2, NIST SP 800-63B: secrets are never logged).
#[tokio::test(flavor = "multi_thread")]
async fn contract_against_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::server_with(&dir.path().join("store"), None, &[("KEYGATE_LOG", "trace")])
        .await
        .expect("server starts");
    run_all(&host).await;
    let api = Api::new(&host.base);
    let (token, _) = api.login_admin().await.expect("admin signs in");
    let mut seen = host.output.text();
    let lines = seen.lines().count();
    assert!(
        seen.contains("TRACE") || seen.contains("key created"),
        "the server logged: {seen}"
    );
    for path in [
        "/v1/events?limit=200",
        "/v1/keys?all=true&limit=200",
        "/v1/members?limit=200",
    ] {
        let answer = api
            .call("GET", path, As::Bearer(&token), None)
            .await
            .expect(path);
        seen.push_str(&answer.body.to_string());
    }
    let found = secrets_in(&seen);
    assert!(
        found.is_empty(),
        "secrets in the log, events or listings: {found:?}"
    );
    tests::figure(
        "secrets",
        &format!(
            "the contract at log level trace: {lines} log lines, the events and listings scanned, 0 keys, tokens or passwords found"
        ),
    );
}

/// Every key, session or invitation token (by its prefix) or contract password in `text`.
fn secrets_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for prefix in [model::key::PREFIX, "kgs_", "kgi_"] {
        for (at, _) in text.match_indices(prefix) {
            let tail: String = text[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            // Short tails are the contract's own garbage (`kg_`, `kgs_not-a-session`).
            if tail.len() >= 20 {
                found.push(format!("{prefix}{tail}"));
            }
        }
    }
    for password in [ADMIN_PASSWORD, "long-enough-pw"] {
        if text.contains(password) {
            found.push(password.to_owned());
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn contract_against_the_worker() {
    let host = Host::worker().await.expect("worker starts under workerd");
    run_all(&host).await;
}

async fn healthz_answers(c: Ctx) -> Result<()> {
    let answer = c.api.call("GET", "/healthz", As::Nobody, None).await?;
    ensure!(
        answer.status == 200 && answer.body["status"] == "ok",
        "{answer:?}"
    );
    Ok(())
}

async fn wrong_password_is_unauthenticated(c: Ctx) -> Result<()> {
    let body = json!({"email": ADMIN_EMAIL, "password": "not-it"});
    problem(
        &c.api
            .call("POST", "/v1/auth/login", As::Nobody, Some(&body))
            .await?,
        401,
        "unauthenticated",
    )
}

async fn unknown_email_answers_like_a_wrong_password(c: Ctx) -> Result<()> {
    let wrong = c
        .api
        .call(
            "POST",
            "/v1/auth/login",
            As::Nobody,
            Some(&json!({"email": ADMIN_EMAIL, "password": "x"})),
        )
        .await?;
    let unknown = c
        .api
        .call(
            "POST",
            "/v1/auth/login",
            As::Nobody,
            Some(&json!({"email": "nobody@example.com", "password": ADMIN_PASSWORD})),
        )
        .await?;
    problem(&unknown, 401, "unauthenticated")?;
    ensure!(
        wrong.body == unknown.body,
        "answers differ: {} vs {}",
        wrong.body,
        unknown.body
    );
    Ok(())
}

async fn me_needs_a_session(c: Ctx) -> Result<()> {
    problem(
        &c.api.call("GET", "/v1/me", As::Nobody, None).await?,
        401,
        "unauthenticated",
    )?;
    problem(
        &c.api
            .call("GET", "/v1/me", As::Bearer("kgs_not-a-session"), None)
            .await?,
        401,
        "unauthenticated",
    )
}

async fn me_shows_the_admin_and_the_organization_namespace(c: Ctx) -> Result<()> {
    let me = c.admin("GET", "/v1/me", None).await?;
    ensure!(me.status == 200, "{me:?}");
    ensure!(me.body["user"]["email"] == ADMIN_EMAIL, "{}", me.body);
    let roles = &me.body["roles"];
    ensure!(roles == &json!(["admin", "developer"]), "roles {roles}");
    let ns = &me.body["namespaces"][0];
    ensure!(
        ns["id"] == c.org.as_str() && ns["kind"] == "organization",
        "{ns}"
    );
    ensure!(
        ns["permissions"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p == "resources.write")),
        "{ns}"
    );
    Ok(())
}

async fn login_sets_an_httponly_strict_cookie(c: Ctx) -> Result<()> {
    let body = json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD});
    let answer = c
        .api
        .call("POST", "/v1/auth/login", As::Nobody, Some(&body))
        .await?;
    let cookie = answer.set_cookie.unwrap_or_default();
    let token = answer.body["token"].as_str().unwrap_or("-");
    ensure!(
        cookie.starts_with(&format!("keygate_session={token}")),
        "cookie {cookie}"
    );
    ensure!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "cookie {cookie}"
    );
    ensure!(
        !cookie.contains("Secure"),
        "loopback cookies are not Secure: {cookie}"
    );
    Ok(())
}

async fn cookie_changes_need_the_csrf_header(c: Ctx) -> Result<()> {
    let body = json!({"api_keys_enabled": true});
    let read = c
        .api
        .call("GET", "/v1/settings", As::Cookie(&c.token, None), None)
        .await?;
    ensure!(
        read.status == 200,
        "a cookie read needs no CSRF header: {read:?}"
    );
    let without = c
        .api
        .call(
            "PATCH",
            "/v1/settings",
            As::Cookie(&c.token, None),
            Some(&body),
        )
        .await?;
    problem(&without, 403, "csrf_required")?;
    let wrong = c
        .api
        .call(
            "PATCH",
            "/v1/settings",
            As::Cookie(&c.token, Some("nope")),
            Some(&body),
        )
        .await?;
    problem(&wrong, 403, "csrf_required")?;
    let with = c
        .api
        .call(
            "PATCH",
            "/v1/settings",
            As::Cookie(&c.token, Some(&c.csrf)),
            Some(&body),
        )
        .await?;
    ensure!(with.status == 200, "{with:?}");
    Ok(())
}

async fn keys_are_refused_while_the_organization_switch_is_off(c: Ctx) -> Result<()> {
    c.set_enabled(false).await?;
    let answer = c
        .create_key(json!({"name": "off", "namespace": c.org, "role": "viewer"}))
        .await;
    c.set_enabled(true).await?;
    problem(&answer?, 403, "api_keys_disabled")
}

async fn created_key_is_shown_once_and_verifies(c: Ctx) -> Result<()> {
    let answer = c.create_key(json!({"name": " deploy bot ", "description": "CI", "namespace": c.org, "role": "viewer"})).await?;
    ensure!(answer.status == 201, "{answer:?}");
    let b = &answer.body;
    let key = b["key"].as_str().unwrap_or_default();
    ensure!(
        key.starts_with("kg_") && key.len() == 54,
        "key shape: {key}"
    );
    ensure!(
        b["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("key_") && key[3..15] == id[4..]),
        "id {}",
        b["id"]
    );
    ensure!(
        b["name"] == "deploy bot" && b["status"] == "active" && b["role"] == "viewer",
        "{b}"
    );
    ensure!(
        b["owner"]["email"] == ADMIN_EMAIL && b["namespace"] == c.org.as_str(),
        "{b}"
    );
    let verified = c.verify(json!({"key": key})).await?;
    ensure!(verified.status == 200, "{verified:?}");
    let v = &verified.body;
    ensure!(v["valid"] == true && v["code"] == "VALID", "{v}");
    ensure!(
        v["key_id"] == b["id"] && v["owner"] == b["owner"]["id"] && v["name"] == "deploy bot",
        "{v}"
    );
    let perms: Vec<&str> = v["permissions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["permission"].as_str())
        .collect();
    ensure!(
        !perms.is_empty() && perms.iter().all(|p| p.ends_with(".read")),
        "a viewer key has only reads: {perms:?}"
    );
    Ok(())
}

async fn listed_keys_never_carry_the_secret(c: Ctx) -> Result<()> {
    let (key, id) = c.new_key().await?;
    let list = c.admin("GET", "/v1/keys", None).await?;
    ensure!(list.status == 200, "{list:?}");
    ensure!(
        list.body["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|k| k["id"] == id.as_str())),
        "new key listed"
    );
    ensure!(
        list.body.get("next_cursor").is_some(),
        "pages carry next_cursor"
    );
    let text = list.body.to_string();
    ensure!(
        !text.contains(&key[16..48]) && !text.contains("\"key\""),
        "listing leaks a secret"
    );
    let page = c.admin("GET", "/v1/keys?limit=1", None).await?;
    ensure!(
        page.body["items"].as_array().is_some_and(|i| i.len() == 1)
            && page.body["next_cursor"].is_string(),
        "{}",
        page.body
    );
    // Walk every page of two: each key once, in the order of the full listing. Cursors are
    // opaque (they carry the store's cursor) and go back URL-encoded.
    for _ in 0..3 {
        c.new_key().await?;
    }
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let query = serde_urlencoded::to_string([
            ("limit", "2"),
            ("cursor", cursor.as_deref().unwrap_or("")),
        ])?;
        let query = if cursor.is_some() {
            query
        } else {
            "limit=2".to_owned()
        };
        let page = c.admin("GET", &format!("/v1/keys?{query}"), None).await?;
        ensure!(page.status == 200, "{page:?}");
        for item in page.body["items"].as_array().into_iter().flatten() {
            walked.push(item["id"].clone());
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let all = c.admin("GET", "/v1/keys?limit=200", None).await?;
    let all: Vec<Value> = all.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| k["id"].clone())
        .collect();
    ensure!(
        walked == all && all.len() > 2,
        "paging by two walks the whole listing once: {walked:?} vs {all:?}"
    );
    problem(
        &c.admin("GET", "/v1/keys?cursor=not-a-cursor", None).await?,
        422,
        "validation_failed",
    )?;
    problem(
        &c.admin("GET", "/v1/keys?limit=0", None).await?,
        422,
        "validation_failed",
    )?;
    problem(
        &c.admin("GET", "/v1/keys?limit=100000", None).await?,
        422,
        "validation_failed",
    )
}

async fn garbage_tampered_and_forged_keys_are_not_found(c: Ctx) -> Result<()> {
    let (key, _) = c.new_key().await?;
    let mut tampered = key.clone().into_bytes();
    tampered[30] = if tampered[30] == b'a' { b'b' } else { b'a' };
    let tampered = String::from_utf8(tampered)?;
    // Same id, valid checksum, another secret.
    let head = format!("{}{}", &key[..16], "A".repeat(32));
    let forged = format!("{head}{}", model::key::checksum(&head));
    for candidate in [
        "",
        "kg_",
        "not a key at all",
        &key[..key.len() - 1],
        &tampered,
        &forged,
        "kg_000000000000_00000000000000000000000000000000000000",
    ] {
        let v = c.verify(json!({"key": candidate})).await?;
        ensure!(
            v.status == 200 && v.body == json!({"valid": false, "code": "NOT_FOUND"}),
            "{candidate:?}: {}",
            v.body
        );
    }
    Ok(())
}

async fn switching_keys_off_disables_them_at_once(c: Ctx) -> Result<()> {
    let (key, _) = c.new_key().await?;
    c.set_enabled(false).await?;
    let off = c.verify(json!({"key": key})).await;
    c.set_enabled(true).await?;
    let off = off?;
    ensure!(
        off.body["code"] == "DISABLED" && off.body["valid"] == false,
        "{}",
        off.body
    );
    let on = c.verify(json!({"key": key})).await?;
    ensure!(
        on.body["code"] == "VALID",
        "switching on restores the key: {}",
        on.body
    );
    Ok(())
}

async fn verify_checks_permissions_and_namespace(c: Ctx) -> Result<()> {
    let answer = c
        .create_key(json!({"name": "scoped", "namespace": c.org, "permissions": [{"permission": "resources.read"}]}))
        .await?;
    ensure!(answer.status == 201, "{answer:?}");
    let key = answer.body["key"].as_str().unwrap_or_default();
    let ok = c
        .verify(json!({"key": key, "permissions": ["resources.read"], "namespace": c.org}))
        .await?;
    ensure!(ok.body["code"] == "VALID", "{}", ok.body);
    let more = c
        .verify(json!({"key": key, "permissions": ["resources.write"]}))
        .await?;
    ensure!(
        more.body["code"] == "INSUFFICIENT_PERMISSIONS" && more.body["valid"] == false,
        "{}",
        more.body
    );
    let elsewhere = c
        .verify(json!({"key": key, "namespace": "ws_000000000000"}))
        .await?;
    ensure!(
        elsewhere.body["code"] == "WRONG_NAMESPACE",
        "{}",
        elsewhere.body
    );
    Ok(())
}

async fn verify_body_of_the_wrong_shape_is_400(c: Ctx) -> Result<()> {
    for body in [
        json!({}),
        json!({"key": 5}),
        json!([1]),
        json!({"key": "x", "extra": true}),
    ] {
        let answer = c.verify(body.clone()).await?;
        problem(&answer, 400, "bad_request").map_err(|e| e.context(body.to_string()))?;
    }
    let raw = c
        .api
        .raw(
            "POST",
            "/v1/keys/verify",
            As::Nobody,
            "application/json",
            b"{\"key\": ".to_vec(),
        )
        .await?;
    problem(&raw, 400, "bad_request")?;
    let big = c
        .api
        .raw(
            "POST",
            "/v1/keys/verify",
            As::Nobody,
            "application/json",
            vec![b' '; 70 * 1024],
        )
        .await?;
    problem(&big, 413, "payload_too_large")
}

async fn invalid_key_requests_are_refused_and_write_nothing(c: Ctx) -> Result<()> {
    let before = c.admin("GET", "/v1/keys?limit=200", None).await?.body["items"]
        .as_array()
        .map_or(0, Vec::len);
    let past = "2001-01-01T00:00:00Z";
    let refused = [
        (
            json!({"name": "", "namespace": c.org, "role": "viewer"}),
            422,
            "validation_failed",
        ),
        (
            json!({"name": "x".repeat(101), "namespace": c.org, "role": "viewer"}),
            422,
            "validation_failed",
        ),
        (
            json!({"name": "past", "namespace": c.org, "role": "viewer", "expires_at": past}),
            422,
            "validation_failed",
        ),
        (
            json!({"name": "admin", "namespace": c.org, "role": "admin"}),
            422,
            "validation_failed",
        ),
        (
            json!({"name": "both", "namespace": c.org, "role": "viewer", "permissions": [{"permission": "resources.read"}]}),
            422,
            "validation_failed",
        ),
        (
            json!({"name": "unknown field", "namespace": c.org, "role": "viewer", "status": "revoked"}),
            422,
            "validation_failed",
        ),
        (
            json!({"name": "elsewhere", "namespace": "org_000000000000", "role": "viewer"}),
            404,
            "not_found",
        ),
    ];
    for (body, status, code) in refused {
        problem(&c.create_key(body.clone()).await?, status, code)
            .map_err(|e| e.context(body.to_string()))?;
    }
    let text = c
        .api
        .raw(
            "POST",
            "/v1/keys",
            As::Bearer(&c.token),
            "text/plain",
            b"name=x".to_vec(),
        )
        .await?;
    problem(&text, 400, "bad_request")?;
    let after = c.admin("GET", "/v1/keys?limit=200", None).await?.body["items"]
        .as_array()
        .map_or(0, Vec::len);
    ensure!(
        before == after,
        "refused requests wrote keys: {before} → {after}"
    );
    Ok(())
}

async fn permission_not_held_is_refused(c: Ctx) -> Result<()> {
    let body = json!({"name": "too much", "namespace": c.org, "permissions": [{"permission": "datasets.delete"}]});
    problem(&c.create_key(body).await?, 403, "permission_not_held")
}

async fn settings_are_validated(c: Ctx) -> Result<()> {
    for body in [
        json!({"max_active_keys_per_user": 0}),
        json!({"max_active_keys_per_user": 1001}),
        json!({"max_expiry_days": 0}),
        json!({"nope": 1}),
    ] {
        problem(
            &c.admin("PATCH", "/v1/settings", Some(&body)).await?,
            422,
            "validation_failed",
        )?;
    }
    let s = c.admin("GET", "/v1/settings", None).await?;
    ensure!(
        s.body["max_active_keys_per_user"] == 100 && s.body["max_expiry_days"].is_null(),
        "unchanged defaults: {}",
        s.body
    );
    let set = c
        .admin(
            "PATCH",
            "/v1/settings",
            Some(&json!({"max_expiry_days": 30})),
        )
        .await?;
    ensure!(set.body["max_expiry_days"] == 30, "{}", set.body);
    let no_expiry = c
        .create_key(json!({"name": "forever", "namespace": c.org, "role": "viewer"}))
        .await?;
    let cleared = c
        .admin(
            "PATCH",
            "/v1/settings",
            Some(&json!({"max_expiry_days": null})),
        )
        .await?;
    ensure!(
        cleared.body["max_expiry_days"].is_null(),
        "{}",
        cleared.body
    );
    problem(&no_expiry, 422, "validation_failed")
}

async fn unknown_endpoint_is_a_problem(c: Ctx) -> Result<()> {
    problem(
        &c.admin("GET", "/v1/nothing-here", None).await?,
        404,
        "not_found",
    )
}

async fn logout_ends_the_session(c: Ctx) -> Result<()> {
    let (token, _) = c.api.login_admin().await?;
    let out = c
        .api
        .call("POST", "/v1/auth/logout", As::Bearer(&token), None)
        .await?;
    ensure!(out.status == 204, "{out:?}");
    problem(
        &c.api
            .call("GET", "/v1/me", As::Bearer(&token), None)
            .await?,
        401,
        "unauthenticated",
    )
}

async fn keys_are_displayed_and_only_name_and_description_change(c: Ctx) -> Result<()> {
    let (key, id) = c.new_key().await?;
    // Verified first, so a host that caches the record has it when the name changes.
    let before = c.verify(json!({"key": key})).await?;
    ensure!(before.body["name"] == "contract", "{}", before.body);
    let path = format!("/v1/keys/{id}");
    let shown = c.admin("GET", &path, None).await?;
    ensure!(
        shown.status == 200 && shown.body["id"] == id.as_str() && shown.body.get("key").is_none(),
        "{shown:?}"
    );
    let renamed = c
        .admin(
            "PATCH",
            &path,
            Some(&json!({"name": "renamed", "description": "why"})),
        )
        .await?;
    ensure!(
        renamed.status == 200
            && renamed.body["name"] == "renamed"
            && renamed.body["description"] == "why",
        "{renamed:?}"
    );
    let after = c.verify(json!({"key": key})).await?;
    ensure!(
        after.body["code"] == "VALID" && after.body["name"] == "renamed",
        "verification still tells the old name: {}",
        after.body
    );
    for body in [
        json!({"expires_at": "2099-01-01T00:00:00Z"}),
        json!({"status": "revoked"}),
        json!({"namespace": "x"}),
        json!({}),
    ] {
        problem(
            &c.admin("PATCH", &path, Some(&body)).await?,
            422,
            "validation_failed",
        )
        .map_err(|e| e.context(body.to_string()))?;
    }
    let cleared = c
        .admin("PATCH", &path, Some(&json!({"description": null})))
        .await?;
    ensure!(
        cleared.body["description"].is_null() && cleared.body["name"] == "renamed",
        "{}",
        cleared.body
    );
    problem(
        &c.admin("GET", "/v1/keys/key_000000000000", None).await?,
        404,
        "not_found",
    )
}

async fn revocation_is_immediate_and_irreversible(c: Ctx) -> Result<()> {
    let (key, id) = c.new_key().await?;
    let revoked = c
        .admin("POST", &format!("/v1/keys/{id}/revoke"), None)
        .await?;
    ensure!(
        revoked.status == 200
            && revoked.body["status"] == "revoked"
            && revoked.body["revoked_at"].is_string(),
        "{revoked:?}"
    );
    let v = c.verify(json!({"key": key})).await?;
    ensure!(
        v.body["code"] == "REVOKED" && v.body["valid"] == false && v.body["key_id"] == id.as_str(),
        "{}",
        v.body
    );
    problem(
        &c.admin("POST", &format!("/v1/keys/{id}/revoke"), None)
            .await?,
        409,
        "key_not_active",
    )
}

async fn bulk_revoke_reports_a_result_per_id(c: Ctx) -> Result<()> {
    let (k1, a) = c.new_key().await?;
    let (k2, b) = c.new_key().await?;
    let (_, gone) = c.new_key().await?;
    c.admin("POST", &format!("/v1/keys/{gone}/revoke"), None)
        .await?;
    let body = json!({"ids": [a, "key_000000000000", b, gone]});
    let answer = c.admin("POST", "/v1/keys/revoke", Some(&body)).await?;
    ensure!(answer.status == 200, "{answer:?}");
    let results = &answer.body["results"];
    ensure!(
        results[0] == json!({"id": a, "ok": true}) && results[2] == json!({"id": b, "ok": true}),
        "{results}"
    );
    ensure!(
        results[1]["ok"] == false && results[1]["code"] == "not_found",
        "{results}"
    );
    ensure!(
        results[3]["ok"] == false && results[3]["code"] == "key_not_active",
        "{results}"
    );
    for key in [k1, k2] {
        ensure!(
            c.verify(json!({"key": key})).await?.body["code"] == "REVOKED",
            "bulk-revoked keys are revoked"
        );
    }
    problem(
        &c.admin("POST", "/v1/keys/revoke", Some(&json!({"ids": []})))
            .await?,
        422,
        "validation_failed",
    )
}

async fn rolling_keeps_the_old_secret_for_the_grace_period_only(c: Ctx) -> Result<()> {
    let (old, id) = c.new_key().await?;
    let rolled = c
        .admin(
            "POST",
            &format!("/v1/keys/{id}/roll"),
            Some(&json!({"grace_seconds": 3600})),
        )
        .await?;
    ensure!(rolled.status == 200, "{rolled:?}");
    let new = rolled.body["key"].as_str().unwrap_or_default().to_owned();
    ensure!(new != old && new[..16] == old[..16], "same id, new secret");
    for key in [&old, &new] {
        ensure!(
            c.verify(json!({"key": key})).await?.body["code"] == "VALID",
            "both work during the grace period"
        );
    }
    let again = c
        .admin(
            "POST",
            &format!("/v1/keys/{id}/roll"),
            Some(&json!({"grace_seconds": 0})),
        )
        .await?;
    let newest = again.body["key"].as_str().unwrap_or_default().to_owned();
    ensure!(
        c.verify(json!({"key": new})).await?.body["code"] == "NOT_FOUND",
        "no grace: the previous secret stops at once"
    );
    ensure!(
        c.verify(json!({"key": old})).await?.body["code"] == "NOT_FOUND",
        "older secrets are gone"
    );
    ensure!(
        c.verify(json!({"key": newest})).await?.body["code"] == "VALID",
        "the newest works"
    );
    let too_long = c
        .admin(
            "POST",
            &format!("/v1/keys/{id}/roll"),
            Some(&json!({"grace_seconds": 86401})),
        )
        .await?;
    problem(&too_long, 422, "validation_failed")
}

async fn deletion_is_physical(c: Ctx) -> Result<()> {
    let (key, id) = c.new_key().await?;
    let path = format!("/v1/keys/{id}");
    problem(
        &c.admin(
            "DELETE",
            &format!("{path}?transfer_to=usr_000000000000"),
            None,
        )
        .await?,
        404,
        "not_found",
    )?;
    let deleted = c.admin("DELETE", &path, None).await?;
    ensure!(deleted.status == 204, "{deleted:?}");
    problem(&c.admin("GET", &path, None).await?, 404, "not_found")?;
    ensure!(
        c.verify(json!({"key": key})).await?.body == json!({"valid": false, "code": "NOT_FOUND"}),
        "a deleted key is unknown"
    );
    let listed = c.admin("GET", "/v1/keys?limit=200", None).await?;
    ensure!(
        !listed.body.to_string().contains(&id),
        "a deleted key is not listed"
    );
    problem(&c.admin("DELETE", &path, None).await?, 404, "not_found")
}

async fn admins_list_every_key_with_filters(c: Ctx) -> Result<()> {
    let unique = format!("needle-{}", &c.token[4..12]);
    let made = c
        .create_key(json!({"name": unique, "namespace": c.org, "role": "viewer"}))
        .await?;
    let id = made.body["id"].as_str().unwrap_or_default().to_owned();
    let found = c
        .admin("GET", &format!("/v1/keys?all=true&q={unique}"), None)
        .await?;
    let items = found.body["items"].as_array().cloned().unwrap_or_default();
    ensure!(
        items.len() == 1 && items[0]["id"] == id.as_str(),
        "search by name: {}",
        found.body
    );
    let by_id = c
        .admin(
            "GET",
            &format!("/v1/keys?all=true&q={}", id.to_uppercase()),
            None,
        )
        .await?;
    ensure!(
        by_id.body["items"].as_array().is_some_and(|i| i.len() == 1),
        "search by id: {}",
        by_id.body
    );
    let revoked = c
        .admin("GET", "/v1/keys?all=true&status=revoked&limit=200", None)
        .await?;
    let statuses: Vec<&Value> = revoked.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| &k["status"])
        .collect();
    ensure!(
        !statuses.is_empty() && statuses.iter().all(|s| *s == "revoked"),
        "status filter: {statuses:?}"
    );
    problem(
        &c.admin("GET", "/v1/keys?all=true&status=sleeping", None)
            .await?,
        422,
        "validation_failed",
    )
}

async fn every_change_is_audited_without_secrets(c: Ctx) -> Result<()> {
    let (key, id) = c.new_key().await?;
    c.admin("POST", &format!("/v1/keys/{id}/revoke"), None)
        .await?;
    let created = c
        .admin(
            "GET",
            &format!("/v1/events?type=key.created&key_id={id}"),
            None,
        )
        .await?;
    let items = created.body["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    ensure!(
        items.len() == 1 && items[0]["type"] == "key.created" && items[0]["target"] == id.as_str(),
        "{}",
        created.body
    );
    ensure!(
        items[0]["actor"]["type"] == "user"
            && items[0]["at"].is_string()
            && items[0]["id"]
                .as_str()
                .is_some_and(|i| i.starts_with("evt_")),
        "{}",
        items[0]
    );
    let family = c
        .admin("GET", &format!("/v1/events?type=key.*&key_id={id}"), None)
        .await?;
    let kinds: Vec<&str> = family.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["type"].as_str())
        .collect();
    ensure!(
        kinds == ["key.revoked", "key.created"],
        "newest first: {kinds:?}"
    );
    let all = c.admin("GET", "/v1/events?limit=200", None).await?;
    ensure!(
        all.body["items"]
            .as_array()
            .is_some_and(|i| i.iter().any(|e| e["type"] == "settings.updated")),
        "settings changes are audited"
    );
    ensure!(
        !all.body.to_string().contains(&key[16..48])
            && !all.body.to_string().contains(ADMIN_PASSWORD),
        "no secret in events"
    );
    let future = c
        .admin("GET", "/v1/events?since=2999-01-01T00:00:00Z", None)
        .await?;
    ensure!(
        future.body["items"].as_array().is_some_and(Vec::is_empty),
        "{}",
        future.body
    );
    problem(
        &c.api.call("GET", "/v1/events", As::Nobody, None).await?,
        401,
        "unauthenticated",
    )
}

async fn repeated_failed_logins_are_slowed_down(c: Ctx) -> Result<()> {
    let body = json!({"email": "throttled@example.com", "password": "guess"});
    for attempt in 1..=5 {
        let answer = c
            .api
            .call("POST", "/v1/auth/login", As::Nobody, Some(&body))
            .await?;
        problem(&answer, 401, "unauthenticated")
            .map_err(|e| e.context(format!("attempt {attempt}")))?;
    }
    problem(
        &c.api
            .call("POST", "/v1/auth/login", As::Nobody, Some(&body))
            .await?,
        429,
        "rate_limited",
    )
}

async fn an_invited_developer_joins_and_holds_only_what_is_granted(c: Ctx) -> Result<()> {
    let (id, token) = c.join("dev@example.com", json!(["developer"])).await?;
    let me = c
        .api
        .call("GET", "/v1/me", As::Bearer(&token), None)
        .await?;
    ensure!(
        me.body["roles"] == json!(["developer"]) && me.body["user"]["id"] == id.as_str(),
        "{}",
        me.body
    );
    let create = json!({"name": "mine", "namespace": c.org, "role": "viewer"});
    let refused = c
        .api
        .call("POST", "/v1/keys", As::Bearer(&token), Some(&create))
        .await?;
    problem(&refused, 403, "namespace_not_held")?;
    problem(
        &c.api
            .call("GET", "/v1/settings", As::Bearer(&token), None)
            .await?,
        403,
        "forbidden",
    )?;
    problem(
        &c.api
            .call("GET", "/v1/keys?all=true", As::Bearer(&token), None)
            .await?,
        403,
        "forbidden",
    )?;
    problem(
        &c.api
            .call(
                "POST",
                "/v1/invitations",
                As::Bearer(&token),
                Some(&json!({"email": "x@example.com"})),
            )
            .await?,
        403,
        "forbidden",
    )?;
    let members = c
        .api
        .call("GET", "/v1/members", As::Bearer(&token), None)
        .await?;
    ensure!(
        members.body["items"]
            .as_array()
            .is_some_and(|m| m.iter().any(|u| u["email"] == ADMIN_EMAIL)),
        "{}",
        members.body
    );
    Ok(())
}

async fn invitations_are_validated_and_spent_once(c: Ctx) -> Result<()> {
    problem(
        &c.admin(
            "POST",
            "/v1/invitations",
            Some(&json!({"email": ADMIN_EMAIL})),
        )
        .await?,
        409,
        "conflict",
    )?;
    problem(
        &c.admin(
            "POST",
            "/v1/invitations",
            Some(&json!({"email": "not-an-email"})),
        )
        .await?,
        422,
        "validation_failed",
    )?;
    let invited = c
        .admin(
            "POST",
            "/v1/invitations",
            Some(&json!({"email": "once@example.com", "roles": []})),
        )
        .await?;
    let token = invited.body["invitation_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let path = format!("/v1/invitations/{token}/accept");
    problem(
        &c.api
            .call(
                "POST",
                &path,
                As::Nobody,
                Some(&json!({"name": "Short", "password": "short"})),
            )
            .await?,
        422,
        "validation_failed",
    )?;
    let ok = c
        .api
        .call(
            "POST",
            &path,
            As::Nobody,
            Some(&json!({"name": "Once", "password": "long-enough-pw"})),
        )
        .await?;
    ensure!(
        ok.status == 201 && ok.body["user"]["roles"] == json!([]),
        "{ok:?}"
    );
    let again = c
        .api
        .call(
            "POST",
            &path,
            As::Nobody,
            Some(&json!({"name": "Twice", "password": "long-enough-pw"})),
        )
        .await?;
    problem(&again, 404, "not_found")?;
    let events = c
        .admin("GET", "/v1/events?type=member.joined", None)
        .await?;
    ensure!(
        !events.body.to_string().contains(&token),
        "no invitation token in events"
    );
    Ok(())
}

async fn roles_change_but_the_last_admin_stays(c: Ctx) -> Result<()> {
    let (id, _) = c.join("promoted@example.com", json!([])).await?;
    let path = format!("/v1/members/{id}");
    let up = c
        .admin("PATCH", &path, Some(&json!({"roles": ["developer"]})))
        .await?;
    ensure!(
        up.status == 200 && up.body["roles"] == json!(["developer"]),
        "{up:?}"
    );
    let me = c.admin("GET", "/v1/me", None).await?;
    let my_id = me.body["user"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let demote = c
        .admin(
            "PATCH",
            &format!("/v1/members/{my_id}"),
            Some(&json!({"roles": ["developer"]})),
        )
        .await?;
    problem(&demote, 409, "conflict")?;
    problem(
        &c.admin("PATCH", &path, Some(&json!({"roles": ["owner"]})))
            .await?,
        422,
        "validation_failed",
    )?;
    problem(
        &c.admin(
            "PATCH",
            "/v1/members/usr_000000000000",
            Some(&json!({"roles": []})),
        )
        .await?,
        404,
        "not_found",
    )?;
    let changed = c
        .admin("GET", "/v1/events?type=member.roles_changed", None)
        .await?;
    ensure!(
        changed.body["items"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["target"] == id.as_str())),
        "audited"
    );
    Ok(())
}

async fn a_removed_member_loses_sessions_and_keys_at_once(c: Ctx) -> Result<()> {
    let (id, token) = c
        .join("leaver@example.com", json!(["admin", "developer"]))
        .await?;
    let made = c
        .api
        .call(
            "POST",
            "/v1/keys",
            As::Bearer(&token),
            Some(&json!({"name": "k", "namespace": c.org, "role": "viewer"})),
        )
        .await?;
    ensure!(made.status == 201, "{made:?}");
    let key = made.body["key"].as_str().unwrap_or_default().to_owned();
    ensure!(
        c.verify(json!({"key": key})).await?.body["code"] == "VALID",
        "works before"
    );
    let removed = c
        .admin("DELETE", &format!("/v1/members/{id}"), None)
        .await?;
    ensure!(removed.status == 204, "{removed:?}");
    problem(
        &c.api
            .call("GET", "/v1/me", As::Bearer(&token), None)
            .await?,
        401,
        "unauthenticated",
    )?;
    let after = c.verify(json!({"key": key})).await?;
    ensure!(
        after.body["code"] == "DISABLED" && after.body["valid"] == false,
        "{}",
        after.body
    );
    Ok(())
}

async fn new_organizations_are_isolated(c: Ctx) -> Result<()> {
    let orgs = c.admin("GET", "/v1/organizations", None).await?;
    ensure!(
        orgs.body["items"]
            .as_array()
            .is_some_and(|o| o.len() == 1 && o[0]["id"] == c.org.as_str()),
        "{}",
        orgs.body
    );
    let created = c
        .admin(
            "POST",
            "/v1/organizations",
            Some(&json!({"name": "Other", "admin_email": "boss@other.example"})),
        )
        .await?;
    ensure!(created.status == 201, "{created:?}");
    let other_org = created.body["organization"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let token = created.body["invitation_token"]
        .as_str()
        .unwrap_or_default();
    let (user, other) = c.api.accept(token, "boss@other.example").await?;
    ensure!(user["roles"] == json!(["admin", "developer"]), "{user}");
    let me = c
        .api
        .call("GET", "/v1/me", As::Bearer(&other), None)
        .await?;
    ensure!(
        me.body["organization"]["id"] == other_org.as_str() && other_org != c.org,
        "{}",
        me.body
    );

    // Nothing crosses organizations: the first organization's ids answer 404 there.
    let (_, key_id) = c.new_key().await?;
    let admin_id = c.admin("GET", "/v1/me", None).await?.body["user"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for (method, path) in [
        ("GET", format!("/v1/keys/{key_id}")),
        ("PATCH", format!("/v1/keys/{key_id}")),
        ("POST", format!("/v1/keys/{key_id}/revoke")),
        ("POST", format!("/v1/keys/{key_id}/roll")),
        ("DELETE", format!("/v1/keys/{key_id}")),
        ("PATCH", format!("/v1/members/{admin_id}")),
        ("DELETE", format!("/v1/members/{admin_id}")),
    ] {
        let body = match method {
            "PATCH" if path.contains("members") => Some(json!({"roles": []})),
            "PATCH" => Some(json!({"name": "stolen"})),
            "POST" if path.ends_with("roll") => Some(json!({"grace_seconds": 0})),
            _ => None,
        };
        let answer = c
            .api
            .call(method, &path, As::Bearer(&other), body.as_ref())
            .await?;
        problem(&answer, 404, "not_found").map_err(|e| e.context(format!("{method} {path}")))?;
    }
    let bulk = c
        .api
        .call(
            "POST",
            "/v1/keys/revoke",
            As::Bearer(&other),
            Some(&json!({"ids": [key_id]})),
        )
        .await?;
    ensure!(
        bulk.body["results"][0]["code"] == "not_found",
        "{}",
        bulk.body
    );
    let create = json!({"name": "x", "namespace": c.org, "role": "viewer"});
    c.api
        .call(
            "PATCH",
            "/v1/settings",
            As::Bearer(&other),
            Some(&json!({"api_keys_enabled": true})),
        )
        .await?;
    problem(
        &c.api
            .call("POST", "/v1/keys", As::Bearer(&other), Some(&create))
            .await?,
        404,
        "not_found",
    )?;
    let members = c
        .api
        .call("GET", "/v1/members", As::Bearer(&other), None)
        .await?;
    ensure!(
        !members.body.to_string().contains(ADMIN_EMAIL),
        "members stay in their organization"
    );
    let events = c
        .api
        .call("GET", "/v1/events?limit=200", As::Bearer(&other), None)
        .await?;
    ensure!(
        !events.body.to_string().contains(&key_id),
        "events stay in their organization"
    );
    ensure!(
        c.admin("GET", &format!("/v1/keys/{key_id}"), None)
            .await?
            .body["name"]
            == "contract",
        "untouched"
    );
    let nested = c
        .api
        .call(
            "POST",
            "/v1/organizations",
            As::Bearer(&other),
            Some(&json!({"name": "N", "admin_email": "n@n.example"})),
        )
        .await?;
    problem(&nested, 403, "forbidden")
}

impl Ctx {
    async fn created(&self, path: &str, body: Value) -> Result<String> {
        let answer = self.admin("POST", path, Some(&body)).await?;
        ensure!(answer.status == 201, "POST {path} {body}: {answer:?}");
        Ok(answer.body["id"].as_str().unwrap_or_default().to_owned())
    }
}

async fn grants_give_rights_and_the_key_ceiling_follows_them_live(c: Ctx) -> Result<()> {
    for name in ["datasets.read", "datasets.edit"] {
        let defined = c
            .admin("POST", "/v1/permissions", Some(&json!({"name": name})))
            .await?;
        ensure!(
            defined.status == 201 || defined.code() == "conflict",
            "{defined:?}"
        );
    }
    let app = c.created("/v1/apps", json!({"name": "Analytics"})).await?;
    let ws = c
        .created("/v1/workspaces", json!({"name": "Sales", "app": app}))
        .await?;
    let (dev, token) = c.join("ceiling@example.com", json!(["developer"])).await?;
    let (ra, rb) = ("res_aaaaaaaaaaaa", "res_bbbbbbbbbbbb");
    let read = c
        .created(
            "/v1/grants",
            json!({"principal": dev, "namespace": ws, "permission": "datasets.read"}),
        )
        .await?;
    c.created("/v1/grants", json!({"principal": dev, "namespace": ws, "permission": "datasets.edit", "resources": [ra, rb]})).await?;

    let me = c
        .api
        .call("GET", "/v1/me", As::Bearer(&token), None)
        .await?;
    let ns = me.body["namespaces"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    ensure!(
        ns.len() == 1 && ns[0]["id"] == ws.as_str() && ns[0]["kind"] == "workspace",
        "{}",
        me.body
    );
    ensure!(
        ns[0]["permissions"] == json!(["datasets.edit", "datasets.read"]),
        "{}",
        ns[0]
    );

    let dev_post = |body: Value| {
        let api = c.api.clone();
        let token = token.clone();
        async move {
            api.call("POST", "/v1/keys", As::Bearer(&token), Some(&body))
                .await
        }
    };
    // Held on some resources, a permission is given without a list and covers those
    // (seed 000; `audit::a_permission_held_on_some_resources_…` checks what it covers).
    let wide = dev_post(
        json!({"name": "wide", "namespace": ws, "permissions": [{"permission": "datasets.edit"}]}),
    )
    .await?;
    ensure!(wide.status == 201, "{wide:?}");
    let beyond = dev_post(json!({"name": "beyond", "namespace": ws, "permissions": [{"permission": "datasets.edit", "resources": ["res_cccccccccccc"]}]})).await?;
    problem(&beyond, 403, "permission_not_held")?;
    let narrow = dev_post(json!({"name": "narrow", "namespace": ws, "permissions": [{"permission": "datasets.edit", "resources": [ra]}]})).await?;
    ensure!(narrow.status == 201, "{narrow:?}");
    let in_app = dev_post(json!({"name": "app", "namespace": app, "role": "viewer"})).await?;
    problem(&in_app, 403, "namespace_not_held")?;
    let editor = dev_post(json!({"name": "editor", "namespace": ws, "role": "editor"})).await?;
    ensure!(editor.status == 201, "{editor:?}");
    let key = editor.body["key"].as_str().unwrap_or_default().to_owned();

    let check = |perm: &str, resource: Option<&str>, namespace: Option<&str>| {
        let mut body = json!({"key": key, "permissions": [perm]});
        if let Some(r) = resource {
            body["resource"] = json!(r);
        }
        if let Some(n) = namespace {
            body["namespace"] = json!(n);
        }
        c.verify(body)
    };
    ensure!(
        check("datasets.edit", Some(ra), Some(&ws)).await?.body["code"] == "VALID",
        "edit on a granted resource"
    );
    ensure!(
        check("datasets.edit", Some("res_cccccccccccc"), None)
            .await?
            .body["code"]
            == "INSUFFICIENT_PERMISSIONS",
        "edit elsewhere"
    );
    ensure!(
        check("datasets.read", Some("res_cccccccccccc"), None)
            .await?
            .body["code"]
            == "VALID",
        "read everywhere"
    );
    ensure!(
        check("datasets.read", None, Some(&app)).await?.body["code"] == "WRONG_NAMESPACE",
        "namespaces are not hierarchical"
    );
    let limited = check("datasets.edit", None, None).await?;
    let perms = &limited.body["permissions"];
    ensure!(
        perms.as_array().is_some_and(|p| p
            .iter()
            .any(|p| p["permission"] == "datasets.edit" && p["resources"] == json!([ra, rb]))),
        "{perms}"
    );

    // The creator loses a right: every key it made loses it at once.
    let gone = c
        .admin("DELETE", &format!("/v1/grants/{read}"), None)
        .await?;
    ensure!(gone.status == 204, "{gone:?}");
    ensure!(
        check("datasets.read", None, None).await?.body["code"] == "INSUFFICIENT_PERMISSIONS",
        "the ceiling is live"
    );
    Ok(())
}

async fn an_application_key_manages_only_its_applications_workspaces(c: Ctx) -> Result<()> {
    let app = c.created("/v1/apps", json!({"name": "Portal"})).await?;
    let other = c.created("/v1/apps", json!({"name": "Elsewhere"})).await?;
    let ws = c
        .created("/v1/workspaces", json!({"name": "Inside", "app": app}))
        .await?;
    let outside = c
        .created("/v1/workspaces", json!({"name": "Outside", "app": other}))
        .await?;
    let made = c
        .create_key(json!({"name": "app key", "namespace": app, "role": "editor"}))
        .await?;
    let key = made.body["key"].as_str().unwrap_or_default().to_owned();
    let k = As::Bearer(&key);

    let listed = c.api.call("GET", "/v1/workspaces", k, None).await?;
    let ids: Vec<&str> = listed.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w["id"].as_str())
        .collect();
    ensure!(
        ids == [ws.as_str()],
        "only its application's workspaces: {ids:?}"
    );
    let apps = c.api.call("GET", "/v1/apps", k, None).await?;
    ensure!(
        apps.body["items"]
            .as_array()
            .is_some_and(|a| a.len() == 1 && a[0]["id"] == app.as_str()),
        "{}",
        apps.body
    );
    let orgs = c.api.call("GET", "/v1/organizations", k, None).await?;
    ensure!(
        orgs.body["items"].as_array().is_some_and(|o| o.len() == 1),
        "{}",
        orgs.body
    );

    let created = c
        .api
        .call(
            "POST",
            "/v1/workspaces",
            k,
            Some(&json!({"name": "By key", "app": app})),
        )
        .await?;
    ensure!(created.status == 201, "{created:?}");
    let new_ws = created.body["id"].as_str().unwrap_or_default().to_owned();
    let renamed = c
        .api
        .call(
            "PATCH",
            &format!("/v1/workspaces/{new_ws}"),
            k,
            Some(&json!({"name": "Renamed"})),
        )
        .await?;
    ensure!(renamed.body["name"] == "Renamed", "{renamed:?}");
    let deleted = c
        .api
        .call("DELETE", &format!("/v1/workspaces/{new_ws}"), k, None)
        .await?;
    ensure!(deleted.status == 204, "{deleted:?}");
    problem(
        &c.api
            .call(
                "POST",
                "/v1/workspaces",
                k,
                Some(&json!({"name": "No", "app": other})),
            )
            .await?,
        403,
        "forbidden",
    )?;
    problem(
        &c.api
            .call("GET", &format!("/v1/workspaces/{outside}"), k, None)
            .await?,
        404,
        "not_found",
    )?;
    problem(
        &c.api
            .call("DELETE", &format!("/v1/workspaces/{outside}"), k, None)
            .await?,
        404,
        "not_found",
    )?;

    // A key never mints keys nor changes settings, members or roles.
    let mint = c
        .api
        .call(
            "POST",
            "/v1/keys",
            k,
            Some(&json!({"name": "child", "namespace": app, "role": "viewer"})),
        )
        .await?;
    problem(&mint, 403, "forbidden")?;
    problem(
        &c.api
            .call(
                "PATCH",
                "/v1/settings",
                k,
                Some(&json!({"api_keys_enabled": false})),
            )
            .await?,
        403,
        "forbidden",
    )?;
    problem(
        &c.api
            .call(
                "POST",
                "/v1/invitations",
                k,
                Some(&json!({"email": "k@example.com"})),
            )
            .await?,
        403,
        "forbidden",
    )?;
    let id = made.body["id"].as_str().unwrap_or_default();
    problem(
        &c.api
            .call(
                "POST",
                &format!("/v1/keys/{id}/roll"),
                k,
                Some(&json!({"grace_seconds": 0})),
            )
            .await?,
        403,
        "forbidden",
    )?;

    // A workspace key sees only its workspace.
    let ws_key = c
        .create_key(json!({"name": "ws key", "namespace": ws, "role": "viewer"}))
        .await?;
    let ws_key = ws_key.body["key"].as_str().unwrap_or_default().to_owned();
    let mine = c
        .api
        .call("GET", "/v1/workspaces", As::Bearer(&ws_key), None)
        .await?;
    let ids: Vec<&str> = mine.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w["id"].as_str())
        .collect();
    ensure!(ids == [ws.as_str()], "{ids:?}");
    Ok(())
}

async fn grants_and_namespaces_are_validated(c: Ctx) -> Result<()> {
    let app = c.created("/v1/apps", json!({"name": "Validated"})).await?;
    problem(
        &c.admin("POST", "/v1/workspaces", Some(&json!({"name": "orphan"})))
            .await?,
        422,
        "validation_failed",
    )?;
    problem(
        &c.admin(
            "POST",
            "/v1/workspaces",
            Some(&json!({"name": "x", "app": c.org})),
        )
        .await?,
        422,
        "validation_failed",
    )?;
    problem(
        &c.admin(
            "POST",
            "/v1/workspaces",
            Some(&json!({"name": "x", "app": "app_000000000000"})),
        )
        .await?,
        404,
        "not_found",
    )?;
    problem(
        &c.admin("POST", "/v1/apps", Some(&json!({"name": ""})))
            .await?,
        422,
        "validation_failed",
    )?;
    problem(
        &c.admin(
            "POST",
            "/v1/permissions",
            Some(&json!({"name": "Not Valid"})),
        )
        .await?,
        422,
        "validation_failed",
    )?;
    problem(
        &c.admin(
            "POST",
            "/v1/permissions",
            Some(&json!({"name": "workspaces.read"})),
        )
        .await?,
        409,
        "conflict",
    )?;
    let me = c.admin("GET", "/v1/me", None).await?.body["user"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let bad = [
        (
            json!({"principal": me, "namespace": app, "permission": "nope.never"}),
            422,
            "validation_failed",
        ),
        (
            json!({"principal": "usr_000000000000", "namespace": app, "permission": "workspaces.read"}),
            404,
            "not_found",
        ),
        (
            json!({"principal": me, "namespace": "ws_000000000000", "permission": "workspaces.read"}),
            404,
            "not_found",
        ),
        (
            json!({"principal": me, "namespace": app, "permission": "workspaces.read", "resources": []}),
            422,
            "validation_failed",
        ),
    ];
    for (body, status, code) in bad {
        problem(
            &c.admin("POST", "/v1/grants", Some(&body)).await?,
            status,
            code,
        )
        .map_err(|e| e.context(body.to_string()))?;
    }
    let group = c
        .created("/v1/usergroups", json!({"name": "Ops", "parent": app}))
        .await?;
    let (dev, token) = c.join("grouped@example.com", json!(["developer"])).await?;
    let added = c
        .admin(
            "POST",
            &format!("/v1/usergroups/{group}/members"),
            Some(&json!({"user": dev})),
        )
        .await?;
    ensure!(added.status == 204, "{added:?}");
    c.created(
        "/v1/grants",
        json!({"principal": group, "namespace": app, "permission": "workspaces.read"}),
    )
    .await?;
    let me_dev = c
        .api
        .call("GET", "/v1/me", As::Bearer(&token), None)
        .await?;
    ensure!(
        me_dev.body["namespaces"][0]["permissions"] == json!(["workspaces.read"]),
        "members get the group's grants: {}",
        me_dev.body
    );
    let listed = c
        .admin("GET", &format!("/v1/grants?principal={group}"), None)
        .await?;
    ensure!(
        listed.body["items"]
            .as_array()
            .is_some_and(|g| g.len() == 1),
        "{}",
        listed.body
    );
    let removed = c
        .admin(
            "DELETE",
            &format!("/v1/usergroups/{group}/members/{dev}"),
            None,
        )
        .await?;
    ensure!(removed.status == 204, "{removed:?}");
    let me_dev = c
        .api
        .call("GET", "/v1/me", As::Bearer(&token), None)
        .await?;
    ensure!(me_dev.body["namespaces"] == json!([]), "{}", me_dev.body);
    problem(
        &c.api
            .call("GET", "/v1/grants", As::Bearer(&token), None)
            .await?,
        403,
        "forbidden",
    )?;
    problem(
        &c.admin("DELETE", "/v1/grants/gnt_000000000000", None)
            .await?,
        404,
        "not_found",
    )
}

async fn keys_own_resources_and_deleting_them_transfers_or_cascades(c: Ctx) -> Result<()> {
    let app = c.created("/v1/apps", json!({"name": "Maps"})).await?;
    let ws = c
        .created("/v1/workspaces", json!({"name": "Layers", "app": app}))
        .await?;
    let made = c
        .create_key(json!({"name": "loader", "namespace": ws, "role": "editor"}))
        .await?;
    let key = made.body["key"].as_str().unwrap_or_default().to_owned();
    let key_id = made.body["id"].as_str().unwrap_or_default().to_owned();
    let k = As::Bearer(&key);
    let mut owned = Vec::new();
    for name in ["roads", "rivers"] {
        let r = c
            .api
            .call(
                "POST",
                "/v1/resources",
                k,
                Some(&json!({"namespace": ws, "kind": "dataset", "name": name})),
            )
            .await?;
        ensure!(
            r.status == 201 && r.body["owner"] == json!({"type": "key", "id": key_id}),
            "{r:?}"
        );
        owned.push(r.body["id"].as_str().unwrap_or_default().to_owned());
    }
    let elsewhere = c
        .api
        .call(
            "POST",
            "/v1/resources",
            k,
            Some(&json!({"namespace": app, "kind": "dataset", "name": "x"})),
        )
        .await?;
    problem(&elsewhere, 403, "forbidden")?;
    let listed = c.api.call("GET", "/v1/resources", k, None).await?;
    ensure!(
        listed.body["items"]
            .as_array()
            .is_some_and(|i| i.len() == 2),
        "{}",
        listed.body
    );
    let renamed = c
        .api
        .call(
            "PATCH",
            &format!("/v1/resources/{}", owned[0]),
            k,
            Some(&json!({"name": "highways"})),
        )
        .await?;
    ensure!(renamed.body["name"] == "highways", "{renamed:?}");

    let path = format!("/v1/keys/{key_id}");
    problem(&c.admin("DELETE", &path, None).await?, 409, "conflict")?;
    let (nobody, _) = c.join("no-write@example.com", json!([])).await?;
    problem(
        &c.admin("DELETE", &format!("{path}?transfer_to={nobody}"), None)
            .await?,
        422,
        "validation_failed",
    )?;
    let me = c.admin("GET", "/v1/me", None).await?.body["user"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let deleted = c
        .admin("DELETE", &format!("{path}?transfer_to={me}"), None)
        .await?;
    ensure!(deleted.status == 204, "{deleted:?}");
    for id in &owned {
        let r = c.admin("GET", &format!("/v1/resources/{id}"), None).await?;
        ensure!(
            r.body["owner"] == json!({"type": "user", "id": me}),
            "transferred: {}",
            r.body
        );
    }

    // A key whose resources are accepted as lost takes them along.
    let second = c
        .create_key(json!({"name": "temp", "namespace": ws, "role": "editor"}))
        .await?;
    let second_key = second.body["key"].as_str().unwrap_or_default().to_owned();
    let second_id = second.body["id"].as_str().unwrap_or_default().to_owned();
    let r = c
        .api
        .call(
            "POST",
            "/v1/resources",
            As::Bearer(&second_key),
            Some(&json!({"namespace": ws, "kind": "tmp", "name": "t"})),
        )
        .await?;
    let res = r.body["id"].as_str().unwrap_or_default().to_owned();
    let gone = c
        .admin(
            "DELETE",
            &format!("/v1/keys/{second_id}?delete_resources=true"),
            None,
        )
        .await?;
    ensure!(gone.status == 204, "{gone:?}");
    problem(
        &c.admin("GET", &format!("/v1/resources/{res}"), None)
            .await?,
        404,
        "not_found",
    )
}

/// Polls `path` as the admin until `done` holds (counts are flushed off the request path).
async fn eventually(c: &Ctx, path: &str, done: impl Fn(&Value) -> bool) -> Result<Value> {
    let mut last = Value::Null;
    for _ in 0..60 {
        last = c.admin("GET", path, None).await?.body;
        if done(&last) {
            return Ok(last);
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    anyhow::bail!("{path} never reached the expected state: {last}")
}

async fn verifications_are_counted_per_minute_by_outcome(c: Ctx) -> Result<()> {
    let (key, id) = c.new_key().await?;
    for _ in 0..3 {
        ensure!(
            c.verify(json!({"key": key})).await?.body["code"] == "VALID",
            "valid"
        );
    }
    let denied = c
        .verify(json!({"key": key, "permissions": ["nothing.here"]}))
        .await?;
    ensure!(
        denied.body["code"] == "INSUFFICIENT_PERMISSIONS",
        "{}",
        denied.body
    );
    let total = |v: &Value, code: &str| -> u64 {
        v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["counts"][code].as_u64())
            .sum()
    };
    let usage = eventually(&c, &format!("/v1/keys/{id}/usage"), |v| {
        total(v, "VALID") == 3 && total(v, "INSUFFICIENT_PERMISSIONS") == 1
    })
    .await?;
    ensure!(
        usage["items"][0]["minute"]
            .as_str()
            .is_some_and(|m| m.ends_with(":00Z")),
        "{usage}"
    );
    let shown = c.admin("GET", &format!("/v1/keys/{id}"), None).await?;
    ensure!(
        shown.body["last_used_at"].is_string() && shown.body["extensive_use"] == false,
        "{}",
        shown.body
    );
    let none = c
        .admin(
            "GET",
            &format!("/v1/keys/{id}/usage?until=2001-01-01T00:00:00Z"),
            None,
        )
        .await?;
    ensure!(none.body["items"] == json!([]), "{}", none.body);
    problem(
        &c.admin("GET", "/v1/keys/key_000000000000/usage", None)
            .await?,
        404,
        "not_found",
    )
}

async fn extensive_use_is_flagged_above_the_threshold(c: Ctx) -> Result<()> {
    c.admin(
        "PATCH",
        "/v1/settings",
        Some(&json!({"extensive_use_per_hour": 2})),
    )
    .await?;
    let (key, id) = c.new_key().await?;
    for _ in 0..3 {
        c.verify(json!({"key": key})).await?;
    }
    let flagged = eventually(&c, &format!("/v1/keys/{id}"), |v| {
        v["extensive_use"] == true
    })
    .await;
    c.admin(
        "PATCH",
        "/v1/settings",
        Some(&json!({"extensive_use_per_hour": null})),
    )
    .await?;
    flagged?;
    let events = c
        .admin(
            "GET",
            &format!("/v1/events?type=key.extensive_use&key_id={id}"),
            None,
        )
        .await?;
    ensure!(
        events.body["items"]
            .as_array()
            .is_some_and(|e| e.len() == 1 && e[0]["actor"]["id"] == id.as_str()),
        "{}",
        events.body
    );
    Ok(())
}

async fn the_active_key_quota_is_enforced(c: Ctx) -> Result<()> {
    c.admin(
        "PATCH",
        "/v1/settings",
        Some(&json!({"max_active_keys_per_user": 1})),
    )
    .await?;
    let refused = c
        .create_key(json!({"name": "one too many", "namespace": c.org, "role": "viewer"}))
        .await;
    c.admin(
        "PATCH",
        "/v1/settings",
        Some(&json!({"max_active_keys_per_user": 1000})),
    )
    .await?;
    problem(&refused?, 409, "key_quota_exceeded")
}

async fn another_organizations_namespaces_grants_and_resources_are_not_found(c: Ctx) -> Result<()> {
    let app = c.created("/v1/apps", json!({"name": "Private"})).await?;
    let ws = c
        .created("/v1/workspaces", json!({"name": "Private ws", "app": app}))
        .await?;
    let group = c
        .created(
            "/v1/usergroups",
            json!({"name": "Private group", "parent": c.org}),
        )
        .await?;
    let me = c.admin("GET", "/v1/me", None).await?.body["user"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let grant = c
        .created(
            "/v1/grants",
            json!({"principal": me, "namespace": ws, "permission": "resources.read"}),
        )
        .await?;
    let resource = c
        .created(
            "/v1/resources",
            json!({"namespace": ws, "kind": "dataset", "name": "secret plans"}),
        )
        .await?;

    let created = c
        .admin(
            "POST",
            "/v1/organizations",
            Some(&json!({"name": "Intruders", "admin_email": "intruder@other.example"})),
        )
        .await?;
    let token = created.body["invitation_token"]
        .as_str()
        .unwrap_or_default();
    let (_, other) = c.api.accept(token, "intruder@other.example").await?;
    let o = As::Bearer(&other);

    let attempts: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/v1/workspaces/{ws}"), None),
        (
            "PATCH",
            format!("/v1/workspaces/{ws}"),
            Some(json!({"name": "mine"})),
        ),
        ("DELETE", format!("/v1/workspaces/{ws}"), None),
        ("GET", format!("/v1/usergroups/{group}"), None),
        ("DELETE", format!("/v1/usergroups/{group}"), None),
        (
            "POST",
            format!("/v1/usergroups/{group}/members"),
            Some(json!({"user": me})),
        ),
        (
            "POST",
            "/v1/workspaces".into(),
            Some(json!({"name": "inside", "app": app})),
        ),
        ("DELETE", format!("/v1/grants/{grant}"), None),
        (
            "POST",
            "/v1/grants".into(),
            Some(json!({"principal": me, "namespace": ws, "permission": "resources.read"})),
        ),
        ("GET", format!("/v1/resources/{resource}"), None),
        (
            "PATCH",
            format!("/v1/resources/{resource}"),
            Some(json!({"name": "mine"})),
        ),
        ("DELETE", format!("/v1/resources/{resource}"), None),
        ("GET", format!("/v1/resources?namespace={ws}"), None),
        (
            "POST",
            "/v1/resources".into(),
            Some(json!({"namespace": ws, "kind": "x", "name": "x"})),
        ),
    ];
    for (method, path, body) in attempts {
        let answer = c.api.call(method, &path, o, body.as_ref()).await?;
        problem(&answer, 404, "not_found").map_err(|e| e.context(format!("{method} {path}")))?;
    }
    for list in ["/v1/apps", "/v1/workspaces", "/v1/usergroups", "/v1/grants"] {
        let answer = c.api.call("GET", list, o, None).await?;
        ensure!(answer.status == 200, "{list}: {answer:?}");
        let text = answer.body.to_string();
        ensure!(
            ![&app, &ws, &group, &grant]
                .iter()
                .any(|id| text.contains(id.as_str())),
            "{list} leaks: {text}"
        );
    }
    ensure!(
        c.admin("GET", &format!("/v1/resources/{resource}"), None)
            .await?
            .body["name"]
            == "secret plans",
        "untouched"
    );
    Ok(())
}

async fn the_openapi_document_is_served(c: Ctx) -> Result<()> {
    let answer = c.api.call("GET", "/openapi.json", As::Nobody, None).await?;
    ensure!(
        answer.status == 200 && answer.content_type.starts_with("application/json"),
        "{answer:?}"
    );
    ensure!(
        answer.body["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.")),
        "{}",
        answer.body["openapi"]
    );
    ensure!(
        answer.body["paths"]["/v1/keys/verify"]["post"].is_object(),
        "verify is documented"
    );
    Ok(())
}

async fn oversized_management_bodies_are_refused(c: Ctx) -> Result<()> {
    let name = "x".repeat(70 * 1024);
    let body = serde_json::to_vec(&json!({"name": name, "namespace": c.org, "role": "viewer"}))?;
    let answer = c
        .api
        .raw(
            "POST",
            "/v1/keys",
            As::Bearer(&c.token),
            "application/json",
            body,
        )
        .await?;
    problem(&answer, 413, "payload_too_large")?;
    let listed = c.admin("GET", "/v1/keys?limit=200", None).await?;
    ensure!(
        !listed.body.to_string().contains("xxxxxxxxxx"),
        "nothing was created"
    );
    Ok(())
}

#[test]
fn the_secret_scanner_finds_what_it_looks_for() {
    let key = model::key::ApiKey::generate("7Hq2mX9pLa3B").expect("csprng");
    let text = format!(
        "ok kg_ kgs_not-a-session; {} token=kgs_{} {ADMIN_PASSWORD}",
        key.expose(),
        "A".repeat(40)
    );
    assert_eq!(secrets_in(&text).len(), 3, "{text}");
    assert!(secrets_in("kg_ kgs_not-a-session key_7Hq2mX9pLa3B").is_empty());
}
