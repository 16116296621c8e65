//! The API as a whole: health, the OpenAPI document, unknown endpoints, body limits, the settings and their audit trail (SPEC §5–§7).

use anyhow::{Result, ensure};
use serde_json::json;
use tests::{ADMIN_PASSWORD, As};

use super::{CaseFn, Ctx, problem};

pub(super) const CASES: &[(&str, CaseFn)] = cases![
    healthz_answers,
    the_openapi_document_is_served,
    oversized_management_bodies_are_refused,
    settings_are_validated,
    every_change_is_audited_without_secrets,
];

async fn healthz_answers(c: Ctx) -> Result<()> {
    let answer = c.api.call("GET", "/healthz", As::Nobody, None).await?;
    ensure!(
        answer.status == 200 && answer.body["status"] == "ok",
        "{answer:?}"
    );
    Ok(())
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
