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
    the_rest_of_the_table_answers,
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

/// The endpoints no other case calls: webhooks from creation to deletion, the catalogue, a
/// group's rename, a set-up link that is not one and an unsigned secret scanning batch. With
/// them, the in-process run calls every endpoint of the table, each held to its scope.
async fn the_rest_of_the_table_answers(c: Ctx) -> Result<()> {
    let made = c
        .admin(
            "POST",
            "/v1/webhooks",
            Some(&json!({"url": "https://hooks.example.com/keygate", "events": ["key.created"], "description": "contract"})),
        )
        .await?;
    let id = made.body["id"].as_str().unwrap_or_default().to_owned();
    ensure!(
        made.status == 201
            && id.starts_with("wh_")
            && made.body["secret"]
                .as_str()
                .is_some_and(|s| s.starts_with("whsec_")),
        "{made:?}"
    );
    let listed = c.admin("GET", "/v1/webhooks", None).await?;
    ensure!(
        listed.status == 200
            && listed.body["items"].as_array().is_some_and(|items| items
                .iter()
                .any(|w| w["id"] == id.as_str() && w.get("secret").is_none())),
        "listed with its secret left out: {listed:?}"
    );
    let path = format!("/v1/webhooks/{id}");
    let off = c
        .admin("PATCH", &path, Some(&json!({"enabled": false})))
        .await?;
    ensure!(off.status == 200 && off.body["enabled"] == false, "{off:?}");
    let deliveries = c.admin("GET", &format!("{path}/deliveries"), None).await?;
    ensure!(
        deliveries.status == 200 && deliveries.body["items"] == json!([]),
        "{deliveries:?}"
    );
    let deleted = c.admin("DELETE", &path, None).await?;
    ensure!(deleted.status == 204, "{deleted:?}");
    problem(
        &c.admin("GET", &format!("{path}/deliveries"), None).await?,
        404,
        "not_found",
    )?;
    problem(
        &c.admin("POST", &format!("{path}/test"), None).await?,
        404,
        "not_found",
    )?;

    let catalogue = c.admin("GET", "/v1/permissions", None).await?;
    ensure!(
        catalogue.status == 200
            && catalogue.body["items"]
                .as_array()
                .is_some_and(|items| items.iter().any(|p| p["builtin"] == true)),
        "the catalogue holds the built-in permissions: {catalogue:?}"
    );
    let group = c
        .created("/v1/usergroups", json!({"name": "before", "parent": c.org}))
        .await?;
    let renamed = c
        .admin(
            "PATCH",
            &format!("/v1/usergroups/{group}"),
            Some(&json!({"name": "after"})),
        )
        .await?;
    ensure!(
        renamed.status == 200 && renamed.body["name"] == "after",
        "{renamed:?}"
    );

    let setup = c
        .api
        .call(
            "POST",
            "/v1/setup/kgu_not-a-link",
            As::Nobody,
            Some(&json!({"password": ADMIN_PASSWORD})),
        )
        .await?;
    problem(&setup, 404, "not_found")?;
    let unsigned = c
        .api
        .call(
            "POST",
            "/v1/secret-scanning/github",
            As::Nobody,
            Some(&json!([{"token": "kg_nothing", "type": "keygate_api_key", "url": "https://example.com", "source": "content"}])),
        )
        .await?;
    // Refused either way: 401 where the host can fetch GitHub's keys, 502 in process, which
    // has no HTTP client to fetch them with (`tests/it/scanning.rs` tells the two apart).
    match unsigned.status {
        401 => problem(&unsigned, 401, "unauthenticated"),
        _ => problem(&unsigned, 502, "upstream_unavailable"),
    }
}
