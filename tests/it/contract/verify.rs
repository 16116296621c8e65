//! Verification: its answers and codes, and the usage it counts (SPEC §4).

use anyhow::{Result, ensure};
use serde_json::{Value, json};
use tests::As;

use super::{CaseFn, Ctx, problem};

pub(super) const CASES: &[(&str, CaseFn)] = cases![
    garbage_tampered_and_forged_keys_are_not_found,
    switching_keys_off_disables_them_at_once,
    verify_checks_permissions_and_namespace,
    verify_body_of_the_wrong_shape_is_400,
    allowed_networks_refuse_every_other_address,
    verifications_are_counted_per_minute_by_outcome,
    extensive_use_is_flagged_above_the_threshold,
];

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
        json!({"key": "x", "cost": 10_001}),
        json!({"key": "x", "cost": -1}),
        json!({"key": "x", "client_ip": "not an address"}),
        json!({"key": "x", "client_ip": "203.0.113.0/24"}),
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

/// `allowed_cidrs` (SPEC §4.5): kept as networks, checked after the namespace and before the
/// permissions, against `client_ip` in verification and the caller's address in bearer use;
/// a bad network is 422 and makes no key.
async fn allowed_networks_refuse_every_other_address(c: Ctx) -> Result<()> {
    let before = c.admin("GET", "/v1/keys", None).await?;
    let bad = c
        .create_key(json!({"name": "nets", "namespace": c.org, "role": "viewer", "allowed_cidrs": ["10.0.0.0/8", "10.0.0.0/33"]}))
        .await?;
    problem(&bad, 422, "validation_failed")?;
    ensure!(
        bad.body["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("allowed_cidrs")),
        "{}",
        bad.body
    );
    let after = c.admin("GET", "/v1/keys", None).await?;
    ensure!(
        before.body["items"] == after.body["items"],
        "a refused key was made"
    );
    let made = c
        .create_key(json!({"name": "nets", "namespace": c.org, "permissions": [{"permission": "resources.read"}],
            "allowed_cidrs": ["203.0.113.7/24", "2001:db8::/32"]}))
        .await?;
    ensure!(made.status == 201, "{made:?}");
    ensure!(
        made.body["allowed_cidrs"] == json!(["203.0.113.0/24", "2001:db8::/32"]),
        "{}",
        made.body
    );
    let key = made.body["key"].as_str().unwrap_or_default();
    let id = made.body["id"].as_str().unwrap_or_default();
    let shown = c.admin("GET", &format!("/v1/keys/{id}"), None).await?;
    ensure!(
        shown.body["allowed_cidrs"] == made.body["allowed_cidrs"],
        "{}",
        shown.body
    );
    let cases: [(Value, &str); 8] = [
        (json!({"client_ip": "203.0.113.9"}), "VALID"),
        (json!({"client_ip": "2001:db8:1::5"}), "VALID"),
        (json!({"client_ip": "::ffff:203.0.113.9"}), "VALID"),
        (json!({"client_ip": "198.51.100.1"}), "IP_NOT_ALLOWED"),
        (json!({}), "IP_NOT_ALLOWED"),
        // The namespace is checked first, the permissions after.
        (
            json!({"client_ip": "198.51.100.1", "namespace": "ws_000000000000"}),
            "WRONG_NAMESPACE",
        ),
        (
            json!({"client_ip": "198.51.100.1", "permissions": ["resources.write"]}),
            "IP_NOT_ALLOWED",
        ),
        (
            json!({"client_ip": "203.0.113.9", "permissions": ["resources.write"]}),
            "INSUFFICIENT_PERMISSIONS",
        ),
    ];
    for (extra, code) in cases {
        let mut body = extra.clone();
        body["key"] = json!(key);
        let v = c.verify(body).await?;
        ensure!(
            v.status == 200 && v.body["code"] == code && v.body["key_id"] == id,
            "{extra}: {}",
            v.body
        );
    }
    // Its own API, from an address outside its networks (every host's test caller is local).
    let me = c.api.call("GET", "/v1/me", As::Bearer(key), None).await?;
    problem(&me, 403, "key_ip_not_allowed")?;
    Ok(())
}

/// Polls `path` as the admin until `done` holds (counts are flushed off the request path).
pub(super) async fn eventually(
    c: &Ctx,
    path: &str,
    done: impl Fn(&Value) -> bool,
) -> Result<Value> {
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
