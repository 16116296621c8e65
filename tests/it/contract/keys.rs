//! API keys: creation, the secret shown once, listing, changes, revocation, rolling, deletion, the quota (SPEC §2–§3).

use anyhow::{Result, ensure};
use serde_json::{Value, json};
use tests::{ADMIN_EMAIL, As};

use super::{CaseFn, Ctx, problem};

pub(super) const CASES: &[(&str, CaseFn)] = cases![
    keys_are_refused_while_the_organization_switch_is_off,
    created_key_is_shown_once_and_verifies,
    listed_keys_never_carry_the_secret,
    invalid_key_requests_are_refused_and_write_nothing,
    keys_are_displayed_and_only_name_and_description_change,
    revocation_is_immediate_and_irreversible,
    bulk_revoke_reports_a_result_per_id,
    rolling_keeps_the_old_secret_for_the_grace_period_only,
    deletion_is_physical,
    admins_list_every_key_with_filters,
    the_active_key_quota_is_enforced,
];

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
    let logged = c
        .admin(
            "GET",
            &format!("/v1/events?key_id={id}&type=key.updated"),
            None,
        )
        .await?;
    let details = &logged.body["items"][0]["details"];
    ensure!(
        details["name"] == "renamed" && details["previous_name"] == "contract",
        "the rename is logged with the name before: {}",
        logged.body
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
    // A revoked key of its own, so that the status filter has something to find.
    let (_, gone) = c.new_key().await?;
    c.admin("POST", &format!("/v1/keys/{gone}/revoke"), None)
        .await?;
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

async fn the_active_key_quota_is_enforced(c: Ctx) -> Result<()> {
    // At least one active key of the admin's own, so that a maximum of one is reached; the
    // maximum is put back as it was, so that no later case sees it.
    c.new_key().await?;
    let before =
        c.admin("GET", "/v1/settings", None).await?.body["max_active_keys_per_user"].clone();
    c.admin(
        "PATCH",
        "/v1/settings",
        Some(&json!({"max_active_keys_per_user": 1})),
    )
    .await?;
    let refused = c
        .create_key(json!({"name": "one too many", "namespace": c.org, "role": "viewer"}))
        .await;
    let restored = c
        .admin(
            "PATCH",
            "/v1/settings",
            Some(&json!({"max_active_keys_per_user": before})),
        )
        .await?;
    ensure!(restored.status == 200, "{restored:?}");
    problem(&refused?, 409, "key_quota_exceeded")
}
