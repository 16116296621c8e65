//! Namespaces, the permission catalogue, grants, resources and the live key ceiling (SPEC §3).

use anyhow::{Result, ensure};
use serde_json::{Value, json};
use tests::As;

use super::{CaseFn, Ctx, problem};

pub(super) const CASES: &[(&str, CaseFn)] = cases![
    grants_give_rights_and_the_key_ceiling_follows_them_live,
    an_application_key_manages_only_its_applications_workspaces,
    grants_and_namespaces_are_validated,
    keys_own_resources_and_deleting_them_transfers_or_cascades,
    another_organizations_namespaces_grants_and_resources_are_not_found,
];

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

    let (_, other) = c
        .new_organization("Intruders", "intruder@other.example")
        .await?;
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
