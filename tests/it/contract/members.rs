//! Members and invitations, roles, removal, and organizations kept apart (SPEC §1, §7).

use anyhow::{Result, ensure};
use serde_json::json;
use tests::{ADMIN_EMAIL, As};

use super::{CaseFn, Ctx, problem};

pub(super) const CASES: &[(&str, CaseFn)] = cases![
    an_invited_developer_joins_and_holds_only_what_is_granted,
    invitations_are_validated_and_spent_once,
    roles_change_but_the_last_admin_stays,
    a_removed_member_loses_sessions_and_keys_at_once,
    new_organizations_are_isolated,
];

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
    let (other_org, other) = c.new_organization("Other", "boss@other.example").await?;
    let me = c
        .api
        .call("GET", "/v1/me", As::Bearer(&other), None)
        .await?;
    ensure!(
        me.body["organization"]["id"] == other_org.as_str()
            && other_org != c.org
            && me.body["user"]["roles"] == json!(["admin", "developer"]),
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
