//! The contract cases of the hostile security audit (issue #13): each finding as the calls
//! that broke Keygate before its fix, run against both hosts like every other case. Every case
//! builds what it needs (its own members, namespaces and resources, under names no other case
//! uses), so none depends on what another left behind.

use anyhow::{Result, ensure};
use serde_json::{Value, json};
use tests::As;

use super::{CaseFn, Ctx, problem};

/// The audit's cases, run after the rest of the contract.
pub(super) const CASES: &[(&str, CaseFn)] = cases![
    a_permission_held_on_some_resources_is_given_and_covers_exactly_those,
    resource_lists_name_resource_ids_and_nothing_else,
    a_resource_of_another_namespace_is_never_covered,
    a_grant_on_some_resources_does_not_act_on_the_namespace,
    only_admins_change_a_groups_members,
    pending_invitations_are_listed_and_withdrawn,
    an_invitation_dies_with_its_inviters_authority,
    inviting_tells_nothing_of_other_organizations,
    answers_that_carry_a_secret_are_never_stored,
    a_session_cookie_is_found_among_several_cookie_headers,
];

/// `POST` as the holder of `token`.
async fn post(c: &Ctx, token: &str, path: &str, body: Value) -> Result<tests::Answer> {
    c.api
        .call("POST", path, As::Bearer(token), Some(&body))
        .await
}

/// Defines `names` in the catalogue (a conflict means an earlier case did).
async fn define(c: &Ctx, names: &[&str]) -> Result<()> {
    for name in names {
        let defined = c
            .admin("POST", "/v1/permissions", Some(&json!({"name": name})))
            .await?;
        ensure!(
            defined.status == 201 || defined.code() == "conflict",
            "{defined:?}"
        );
    }
    Ok(())
}

/// A fresh application and one workspace in it: (app, workspace).
async fn app_and_workspace(c: &Ctx, name: &str) -> Result<(String, String)> {
    let app = c.created("/v1/apps", json!({"name": name})).await?;
    let ws = c
        .created("/v1/workspaces", json!({"name": name, "app": app}))
        .await?;
    Ok((app, ws))
}

/// The code of verifying `key` for `permissions` on `resource`.
async fn code_of(
    c: &Ctx,
    key: &str,
    permissions: &[&str],
    resource: Option<&str>,
) -> Result<Value> {
    let mut body = json!({"key": key, "permissions": permissions});
    if let Some(r) = resource {
        body["resource"] = json!(r);
    }
    Ok(c.verify(body).await?.body["code"].clone())
}

/// Finding 0 (seed 000): a developer holding `datasets.edit` on two resources asks for a key
/// with `datasets.edit` and no resource list, "Edit all datasets"; the key is made, and its
/// permission covers exactly what the creator holds, now and as that changes.
async fn a_permission_held_on_some_resources_is_given_and_covers_exactly_those(
    c: Ctx,
) -> Result<()> {
    define(&c, &["datasets.edit"]).await?;
    let (_, ws) = app_and_workspace(&c, "Seed 000").await?;
    let (dev, token) = c.join("seed000@example.com", json!(["developer"])).await?;
    let (ra, rb, rc) = ("res_seed000aaaaa", "res_seed000bbbbb", "res_seed000ccccc");
    c.created("/v1/grants", json!({"principal": dev, "namespace": ws, "permission": "datasets.edit", "resources": [ra, rb]})).await?;

    // The picker's hint: /v1/me says what the permission covers.
    let me = c
        .api
        .call("GET", "/v1/me", As::Bearer(&token), None)
        .await?;
    ensure!(
        me.body["namespaces"][0]["scopes"]
            == json!([{"permission": "datasets.edit", "resources": [ra, rb]}]),
        "{}",
        me.body
    );

    let made = post(&c, &token, "/v1/keys", json!({"name": "edit all datasets", "namespace": ws, "permissions": [{"permission": "datasets.edit"}]})).await?;
    ensure!(made.status == 201, "seed 000's key is refused: {made:?}");
    let key = made.body["key"].as_str().unwrap_or_default().to_owned();
    ensure!(
        code_of(&c, &key, &["datasets.edit"], Some(ra)).await? == "VALID",
        "a resource the creator holds it on"
    );
    ensure!(
        code_of(&c, &key, &["datasets.edit"], Some(rc)).await? == "INSUFFICIENT_PERMISSIONS",
        "a resource the creator does not hold it on"
    );
    let listed = c
        .verify(json!({"key": key, "permissions": ["datasets.edit"]}))
        .await?;
    ensure!(
        listed.body["code"] == "VALID"
            && listed.body["permissions"]
                == json!([{"permission": "datasets.edit", "resources": [ra, rb]}]),
        "the answer states the limit: {}",
        listed.body
    );
    // The creator is given a third: the key covers it at once.
    c.created("/v1/grants", json!({"principal": dev, "namespace": ws, "permission": "datasets.edit", "resources": [rc]})).await?;
    ensure!(
        code_of(&c, &key, &["datasets.edit"], Some(rc)).await? == "VALID",
        "the ceiling follows the creator's grants"
    );
    // What the creator does not hold at all is still refused.
    let other = post(
        &c,
        &token,
        "/v1/keys",
        json!({"name": "no", "namespace": ws, "permissions": [{"permission": "resources.write"}]}),
    )
    .await?;
    problem(&other, 403, "permission_not_held")
}

/// Finding 1: a key's (or a grant's) resource list names well-formed ids only, so no id can
/// carry text that reads downstream as more permissions; a refusal creates nothing.
async fn resource_lists_name_resource_ids_and_nothing_else(c: Ctx) -> Result<()> {
    define(&c, &["datasets.read"]).await?;
    let hostile = [
        "res_a,datasets.edit,billing.admin",
        "res_AAAAAAAAAAAA|res_BBBBBBBBBBBB",
        "res_AAAAAAAAAAAA=x",
        "usr_AAAAAAAAAAAA",
        "",
    ];
    let me = c.admin("GET", "/v1/me", None).await?;
    let admin = me.body["user"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for id in hostile {
        let key = c.create_key(json!({"name": "injected", "namespace": c.org, "permissions": [{"permission": "datasets.read", "resources": [id]}]})).await?;
        problem(&key, 422, "validation_failed").map_err(|e| e.context(id.to_owned()))?;
        let grant = c.admin("POST", "/v1/grants", Some(&json!({"principal": admin, "namespace": c.org, "permission": "datasets.read", "resources": [id]}))).await?;
        problem(&grant, 422, "validation_failed").map_err(|e| e.context(id.to_owned()))?;
    }
    let listed = c.admin("GET", "/v1/keys?q=injected", None).await?;
    ensure!(listed.body["items"] == json!([]), "{}", listed.body);
    Ok(())
}

/// Finding 3: a grant on every resource of a namespace covers that namespace's resources, not
/// a resource Keygate knows to live elsewhere; an id it does not know stays covered.
async fn a_resource_of_another_namespace_is_never_covered(c: Ctx) -> Result<()> {
    let (app, here) = app_and_workspace(&c, "Resource home").await?;
    let there = c
        .created("/v1/workspaces", json!({"name": "Elsewhere", "app": app}))
        .await?;
    let mut made = Vec::new();
    for ns in [&here, &there] {
        let body = json!({"namespace": ns, "kind": "dataset", "name": "home"});
        made.push(c.created("/v1/resources", body).await?);
    }
    let (mine, theirs) = (made[0].clone(), made[1].clone());
    let made = c
        .create_key(json!({"name": "home key", "namespace": here, "role": "editor"}))
        .await?;
    ensure!(made.status == 201, "{made:?}");
    let key = made.body["key"].as_str().unwrap_or_default().to_owned();
    let read = ["resources.read"];
    for (resource, code) in [
        (mine.as_str(), "VALID"),
        (theirs.as_str(), "INSUFFICIENT_PERMISSIONS"),
        ("res_unknownunkno", "VALID"),
        (mine.as_str(), "VALID"),
        (theirs.as_str(), "INSUFFICIENT_PERMISSIONS"),
    ] {
        ensure!(
            code_of(&c, &key, &read, Some(resource)).await? == code,
            "{resource}: expected {code}"
        );
    }
    ensure!(
        code_of(&c, &key, &[], Some(&theirs)).await? == "INSUFFICIENT_PERMISSIONS",
        "with no permission asked, the resource is still not the key's"
    );
    Ok(())
}

/// Finding 4: a grant limited to some resources is not a grant on the namespace: it creates no
/// resources, manages no workspaces or user groups, and does not make a key's receiver.
async fn a_grant_on_some_resources_does_not_act_on_the_namespace(c: Ctx) -> Result<()> {
    let (app, ws) = app_and_workspace(&c, "Limited").await?;
    let held = c
        .created(
            "/v1/resources",
            json!({"namespace": ws, "kind": "dataset", "name": "held"}),
        )
        .await?;
    let (dev, token) = c.join("limited@example.com", json!(["developer"])).await?;
    for (namespace, permission) in [
        (&ws, "resources.write"),
        (&ws, "resources.read"),
        (&app, "workspaces.write"),
        (&c.org, "usergroups.write"),
    ] {
        c.created("/v1/grants", json!({"principal": dev, "namespace": namespace, "permission": permission, "resources": [held]})).await?;
    }
    let calls = [
        (
            "/v1/resources",
            json!({"namespace": ws, "kind": "dataset", "name": "new"}),
        ),
        ("/v1/workspaces", json!({"name": "new", "app": app})),
        ("/v1/usergroups", json!({"name": "new", "parent": c.org})),
    ];
    for (path, body) in calls {
        let answer = post(&c, &token, path, body).await?;
        ensure!(answer.status == 403, "{path}: {answer:?}");
    }
    // The one resource it names stays usable.
    let renamed = c
        .api
        .call(
            "PATCH",
            &format!("/v1/resources/{held}"),
            As::Bearer(&token),
            Some(&json!({"name": "renamed"})),
        )
        .await?;
    ensure!(renamed.status == 200, "{renamed:?}");

    // A key owning a resource cannot hand it to a member with a limited grant.
    let key = c
        .create_key(json!({"name": "owner key", "namespace": ws, "role": "editor"}))
        .await?;
    let (plain, key_id) = (
        key.body["key"].as_str().unwrap_or_default().to_owned(),
        key.body["id"].as_str().unwrap_or_default().to_owned(),
    );
    let owned = post(
        &c,
        &plain,
        "/v1/resources",
        json!({"namespace": ws, "kind": "dataset", "name": "by key"}),
    )
    .await?;
    ensure!(owned.status == 201, "{owned:?}");
    let deleted = c
        .admin(
            "DELETE",
            &format!("/v1/keys/{key_id}?transfer_to={dev}"),
            None,
        )
        .await?;
    problem(&deleted, 422, "validation_failed")?;
    let still = c.admin("GET", &format!("/v1/keys/{key_id}"), None).await?;
    ensure!(still.status == 200, "nothing was deleted: {still:?}");
    Ok(())
}

/// Finding 2: a group's members hold its grants, so only an admin changes who they are:
/// holding `usergroups.write` creates and renames groups, never joins one, and a key never
/// changes membership.
async fn only_admins_change_a_groups_members(c: Ctx) -> Result<()> {
    let (_, ws) = app_and_workspace(&c, "Groups").await?;
    let (dev, token) = c.join("joiner@example.com", json!(["developer"])).await?;
    for permission in ["usergroups.read", "usergroups.write"] {
        c.created(
            "/v1/grants",
            json!({"principal": dev, "namespace": c.org, "permission": permission}),
        )
        .await?;
    }
    let group = c
        .created(
            "/v1/usergroups",
            json!({"name": "Powerful", "parent": c.org}),
        )
        .await?;
    c.created(
        "/v1/grants",
        json!({"principal": group, "namespace": ws, "permission": "resources.write"}),
    )
    .await?;
    let own = post(
        &c,
        &token,
        "/v1/usergroups",
        json!({"name": "Mine", "parent": c.org}),
    )
    .await?;
    ensure!(
        own.status == 201,
        "usergroups.write creates groups: {own:?}"
    );
    let own = own.body["id"].as_str().unwrap_or_default().to_owned();
    let org_key = c
        .create_key(json!({"name": "group key", "namespace": c.org, "role": "editor"}))
        .await?;
    let org_key = org_key.body["key"].as_str().unwrap_or_default().to_owned();
    for (who, target) in [(&token, &group), (&token, &own), (&org_key, &group)] {
        let join = post(
            &c,
            who,
            &format!("/v1/usergroups/{target}/members"),
            json!({"user": dev}),
        )
        .await?;
        problem(&join, 403, "forbidden")?;
        let leave = c
            .api
            .call(
                "DELETE",
                &format!("/v1/usergroups/{target}/members/{dev}"),
                As::Bearer(who),
                None,
            )
            .await?;
        problem(&leave, 403, "forbidden")?;
    }
    let me = c
        .api
        .call("GET", "/v1/me", As::Bearer(&token), None)
        .await?;
    let holds_ws = me.body["namespaces"]
        .as_array()
        .is_some_and(|n| n.iter().any(|n| n["id"] == ws.as_str()));
    ensure!(!holds_ws, "the group's grant was taken: {}", me.body);
    let added = c
        .admin(
            "POST",
            &format!("/v1/usergroups/{group}/members"),
            Some(&json!({"user": dev})),
        )
        .await?;
    ensure!(added.status == 204, "an admin adds members: {added:?}");
    Ok(())
}

/// The pending invitations of the organization, as the admin lists them.
async fn pending(c: &Ctx) -> Result<Vec<Value>> {
    let listed = c.admin("GET", "/v1/invitations?limit=200", None).await?;
    ensure!(listed.status == 200, "{listed:?}");
    ensure!(
        !listed.body.to_string().contains("kgi_"),
        "a listing never carries a token: {}",
        listed.body
    );
    Ok(listed.body["items"].as_array().cloned().unwrap_or_default())
}

/// Invites `email` as the holder of `token`; (invitation token, pending invitation id).
async fn invite_as(c: &Ctx, token: &str, email: &str) -> Result<(String, String)> {
    let invited = post(
        c,
        token,
        "/v1/invitations",
        json!({"email": email, "roles": ["developer"]}),
    )
    .await?;
    ensure!(invited.status == 201, "{invited:?}");
    let secret = invited.body["invitation_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let id = pending(c)
        .await?
        .iter()
        .find(|i| i["email"] == email)
        .and_then(|i| i["id"].as_str())
        .map(str::to_owned);
    Ok((secret, id.unwrap_or_default()))
}

/// `POST /v1/invitations/{token}/accept` with a fixed name and password.
async fn accept(c: &Ctx, token: &str) -> Result<tests::Answer> {
    c.api
        .call(
            "POST",
            &format!("/v1/invitations/{token}/accept"),
            As::Nobody,
            Some(&json!({"name": "Late", "password": "long-enough-pw"})),
        )
        .await
}

/// Finding 7: admins see pending invitations (never their tokens) and withdraw them; a
/// withdrawn link no longer works, and the log says who withdrew it.
async fn pending_invitations_are_listed_and_withdrawn(c: Ctx) -> Result<()> {
    let (token, id) = invite_as(&c, &c.token, "withdrawn@example.com").await?;
    let me = c.admin("GET", "/v1/me", None).await?;
    let listed = pending(&c).await?;
    let shown = listed
        .iter()
        .find(|i| i["id"] == id.as_str())
        .cloned()
        .unwrap_or_default();
    ensure!(
        id.starts_with("inv_")
            && shown["email"] == "withdrawn@example.com"
            && shown["roles"] == json!(["developer"])
            && shown["invited_by"] == me.body["user"]["id"]
            && shown["created_at"].is_string()
            && shown["expires_at"].is_string(),
        "{shown}"
    );
    let gone = c
        .admin("DELETE", &format!("/v1/invitations/{id}"), None)
        .await?;
    ensure!(gone.status == 204, "{gone:?}");
    problem(&accept(&c, &token).await?, 404, "not_found")?;
    ensure!(
        pending(&c).await?.iter().all(|i| i["id"] != id.as_str()),
        "withdrawn invitations are not pending"
    );
    problem(
        &c.admin("DELETE", &format!("/v1/invitations/{id}"), None)
            .await?,
        404,
        "not_found",
    )?;
    let events = c
        .admin("GET", "/v1/events?type=invitation.revoked", None)
        .await?;
    ensure!(
        events.body["items"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["target"] == id.as_str())),
        "{}",
        events.body
    );
    Ok(())
}

/// Finding 7: an invitation carries its inviter's authority, so it dies when the inviter is
/// removed or loses `admin`.
async fn an_invitation_dies_with_its_inviters_authority(c: Ctx) -> Result<()> {
    for (n, end) in ["removed", "demoted"].into_iter().enumerate() {
        let (admin, admin_token) = c
            .join(&format!("inviter{n}@example.com"), json!(["admin"]))
            .await?;
        let (token, id) =
            invite_as(&c, &admin_token, &format!("invitee-of-{end}@example.com")).await?;
        ensure!(!id.is_empty(), "the invitation is pending");
        let ended = match end {
            "removed" => {
                c.admin("DELETE", &format!("/v1/members/{admin}"), None)
                    .await?
            }
            _ => {
                c.admin(
                    "PATCH",
                    &format!("/v1/members/{admin}"),
                    Some(&json!({"roles": ["developer"]})),
                )
                .await?
            }
        };
        ensure!(ended.status < 300, "{ended:?}");
        ensure!(
            pending(&c).await?.iter().all(|i| i["id"] != id.as_str()),
            "the {end} admin's invitation is gone"
        );
        problem(&accept(&c, &token).await?, 404, "not_found")?;
    }
    Ok(())
}

/// Finding 8: inviting an email that belongs to a user of another organization answers as
/// for a free one; the invitee learns, on accepting, that the email is taken.
async fn inviting_tells_nothing_of_other_organizations(c: Ctx) -> Result<()> {
    c.new_organization("Elsewhere", "taken@elsewhere.example")
        .await?;
    let taken = c
        .admin(
            "POST",
            "/v1/invitations",
            Some(&json!({"email": "taken@elsewhere.example", "roles": []})),
        )
        .await?;
    let free = c
        .admin(
            "POST",
            "/v1/invitations",
            Some(&json!({"email": "free@nowhere.example", "roles": []})),
        )
        .await?;
    let keys = |a: &tests::Answer| {
        a.body
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
    };
    ensure!(
        (taken.status, keys(&taken)) == (free.status, keys(&free)) && taken.status == 201,
        "taken: {taken:?}; free: {free:?}"
    );
    let token = taken.body["invitation_token"].as_str().unwrap_or_default();
    let joined = accept(&c, token).await?;
    problem(&joined, 409, "conflict")?;
    ensure!(
        joined.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("already belongs")),
        "a clear message: {}",
        joined.body
    );
    // An email that is already a member here is still a conflict: the admin sees members.
    problem(
        &c.admin(
            "POST",
            "/v1/invitations",
            Some(&json!({"email": tests::ADMIN_EMAIL, "roles": []})),
        )
        .await?,
        409,
        "conflict",
    )
}

/// Finding 10: answers that carry a secret (a new or rolled key, a session, an invitation)
/// tell every cache not to keep them.
async fn answers_that_carry_a_secret_are_never_stored(c: Ctx) -> Result<()> {
    let no_store = |what: &str, answer: &tests::Answer| {
        ensure!(
            answer.status < 300
                && answer
                    .headers
                    .get("cache-control")
                    .and_then(|v| v.to_str().ok())
                    == Some("no-store"),
            "{what}: {answer:?}"
        );
        Ok(())
    };
    let login = c
        .api
        .call(
            "POST",
            "/v1/auth/login",
            As::Nobody,
            Some(&json!({"email": tests::ADMIN_EMAIL, "password": tests::ADMIN_PASSWORD})),
        )
        .await?;
    no_store("login", &login)?;
    let made = c
        .create_key(json!({"name": "cached?", "namespace": c.org, "role": "viewer"}))
        .await?;
    no_store("create", &made)?;
    let id = made.body["id"].as_str().unwrap_or_default();
    let rolled = c
        .admin(
            "POST",
            &format!("/v1/keys/{id}/roll"),
            Some(&json!({"grace_seconds": 0})),
        )
        .await?;
    no_store("roll", &rolled)?;
    let invited = c
        .admin(
            "POST",
            "/v1/invitations",
            Some(&json!({"email": "cache@example.com", "roles": []})),
        )
        .await?;
    no_store("invitation", &invited)
}

/// The endpoint table (issue #14) reads credentials once for both hosts: a session cookie sent
/// in the second of two `Cookie` headers is found on each, however the host joins them.
async fn a_session_cookie_is_found_among_several_cookie_headers(c: Ctx) -> Result<()> {
    let headers = [
        ("cookie".to_owned(), "theme=dark".to_owned()),
        ("cookie".to_owned(), format!("keygate_session={}", c.token)),
    ];
    let me = c.api.request("GET", "/v1/me", &headers, None).await?;
    ensure!(me.status == 200, "{me:?}");
    Ok(())
}
