//! Signing in and out, the session cookie and its CSRF rule, the sign-in throttle (SPEC §1, §7).

use anyhow::{Result, ensure};
use serde_json::json;
use tests::{ADMIN_EMAIL, ADMIN_PASSWORD, As};

use super::{CaseFn, Ctx, problem};

pub(super) const CASES: &[(&str, CaseFn)] = cases![
    unknown_email_answers_like_a_wrong_password,
    me_shows_the_admin_and_the_organization_namespace,
    login_sets_an_httponly_strict_cookie,
    cookie_changes_need_the_csrf_header,
    logout_ends_the_session,
    repeated_failed_logins_are_slowed_down,
];

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
