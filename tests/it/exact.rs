//! SPEC §10, what must be exact, on both hosts: each race below is run with many concurrent
//! requests against the server (whose store serializes changes) and against the worker under
//! workerd (whose changes run in the control object, a Durable Object), and ends as if the
//! requests had come one at a time. Before the control object, the worker lost every one of
//! these (a read of KV, then an unconditional write of the whole record).

use std::future::Future;
use std::pin::Pin;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use tests::{Api, As, Host};

/// One race: its name and the function that runs it against a host's API, returning the
/// figure it measured.
type Race = (
    &'static str,
    for<'a> fn(&'a Api, &'a Admin) -> Pin<Box<dyn Future<Output = Result<String>> + 'a>>,
);

/// The signed-in admin the races act as, with API keys switched on.
struct Admin {
    token: String,
    org: String,
}

impl Admin {
    /// A call as the admin that must answer `status`.
    async fn must(
        &self,
        api: &Api,
        method: &str,
        path: &str,
        body: Option<&Value>,
        status: u16,
    ) -> Result<tests::Answer> {
        let answer = api
            .call(method, path, As::Bearer(&self.token), body)
            .await?;
        ensure!(answer.status == status, "{method} {path}: {answer:?}");
        Ok(answer)
    }
}

/// In this order: the sign-in race comes last, since it locks the admin's email for the
/// throttle's window.
const RACES: &[Race] = &[
    ("revocation racing renames and rolls", |a, f| {
        Box::pin(revocation_racing_renames_and_rolls(a, f))
    }),
    ("switch-off racing settings changes", |a, f| {
        Box::pin(switch_off_racing_settings_changes(a, f))
    }),
    ("creations under a maximum", |a, f| {
        Box::pin(creations_under_a_maximum(a, f))
    }),
    ("acceptances of one invitation", |a, f| {
        Box::pin(acceptances_of_one_invitation(a, f))
    }),
    ("one email invited by two organizations", |a, f| {
        Box::pin(one_email_in_two_organizations(a, f))
    }),
    ("a removed member", |a, f| Box::pin(removed_member(a, f))),
    ("wrong passwords for one email", |a, f| {
        Box::pin(wrong_passwords(a, f))
    }),
    ("leak reports of nothing from one address", |a, f| {
        Box::pin(empty_leak_reports(a, f))
    }),
];

#[tokio::test(flavor = "multi_thread")]
async fn races_end_as_if_serial_on_the_server() {
    let host = Host::server(None).await.expect("server starts");
    run_races(&host).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn races_end_as_if_serial_at_the_edge() {
    let host = Host::worker().await.expect("worker starts");
    run_races(&host).await;
}

async fn run_races(host: &Host) {
    let api = Api::new(&host.base);
    let (token, _) = api.login_admin().await.expect("admin signs in");
    let org = api.org_of(&token).await.expect("organization");
    let on = json!({"api_keys_enabled": true});
    let set = api
        .call("PATCH", "/v1/settings", As::Bearer(&token), Some(&on))
        .await
        .expect("settings");
    assert_eq!(set.status, 200, "{set:?}");
    let admin = Admin { token, org };
    // Every race runs, so that a failure reports all that failed.
    let mut failed = Vec::new();
    for (name, race) in RACES {
        match race(&api, &admin).await {
            Ok(figure) => tests::figure(&format!("exact: {name} ({})", host.name), &figure),
            Err(e) => failed.push(format!("{name}: {e:#}")),
        }
    }
    assert!(failed.is_empty(), "{}:\n{}", host.name, failed.join("\n"));
}

/// Runs `n` copies of `request` at once and collects their answers.
async fn at_once<F, Fut>(n: usize, request: F) -> Result<Vec<tests::Answer>>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<tests::Answer>> + Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(request(i))).collect();
    let mut answers = Vec::with_capacity(n);
    for task in tasks {
        answers.push(task.await.context("task")??);
    }
    Ok(answers)
}

async fn create_key(api: &Api, admin: &Admin, name: &str) -> Result<(String, String)> {
    let body = json!({"name": name, "namespace": admin.org, "role": "viewer"});
    let made = admin
        .must(api, "POST", "/v1/keys", Some(&body), 201)
        .await?;
    let field = |f: &str| {
        made.body[f]
            .as_str()
            .map(str::to_owned)
            .context("created key")
    };
    Ok((field("id")?, field("key")?))
}

async fn code(api: &Api, key: &str) -> Result<String> {
    let answer = api
        .call(
            "POST",
            "/v1/keys/verify",
            As::Nobody,
            Some(&json!({"key": key})),
        )
        .await?;
    ensure!(answer.status == 200, "verify: {answer:?}");
    Ok(answer.body["code"].as_str().unwrap_or_default().to_owned())
}

/// A revocation racing 12 renames and 12 rolls of the same key, 5 rounds: the key ends
/// revoked, and neither its first secret nor any secret a roll handed out verifies.
async fn revocation_racing_renames_and_rolls(api: &Api, admin: &Admin) -> Result<String> {
    const ROUNDS: usize = 5;
    const EACH: usize = 12;
    let mut secrets_checked = 0;
    for round in 0..ROUNDS {
        let (id, first) = create_key(api, admin, &format!("contested {round}")).await?;
        ensure!(code(api, &first).await? == "VALID");
        let answers = at_once(1 + 2 * EACH, |i| {
            let (api, token, id) = (api.clone(), admin.token.clone(), id.clone());
            async move {
                let (method, path, body) = match i {
                    0 => ("POST", format!("/v1/keys/{id}/revoke"), json!({})),
                    i if i % 2 == 1 => (
                        "PATCH",
                        format!("/v1/keys/{id}"),
                        json!({"name": format!("renamed {i}")}),
                    ),
                    _ => (
                        "POST",
                        format!("/v1/keys/{id}/roll"),
                        json!({"grace_seconds": 3600}),
                    ),
                };
                api.call(method, &path, As::Bearer(&token), Some(&body))
                    .await
            }
        })
        .await?;
        ensure!(answers[0].status == 200, "revoke: {:?}", answers[0]);
        let mut secrets = vec![first];
        for answer in &answers[1..] {
            ensure!(
                answer.status == 200 || (answer.status == 409 && answer.code() == "key_not_active"),
                "a change racing the revocation: {answer:?}"
            );
            if let Some(key) = answer.body["key"].as_str() {
                secrets.push(key.to_owned());
            }
        }
        let view = api
            .call(
                "GET",
                &format!("/v1/keys/{id}"),
                As::Bearer(&admin.token),
                None,
            )
            .await?;
        ensure!(
            view.body["revoked_at"].is_string(),
            "round {round}: the key came back: {}",
            view.body
        );
        for secret in &secrets {
            let got = code(api, secret).await?;
            ensure!(
                got != "VALID",
                "round {round}: a secret still verifies ({got})"
            );
            secrets_checked += 1;
        }
    }
    Ok(format!(
        "{ROUNDS} rounds of 1 revocation racing {EACH} renames and {EACH} rolls: every key ended revoked, 0 of {secrets_checked} secrets verify"
    ))
}

/// Switching API keys off while 24 other settings and catalogue changes race it: it stays
/// off, and keys answer DISABLED.
async fn switch_off_racing_settings_changes(api: &Api, admin: &Admin) -> Result<String> {
    const OTHERS: usize = 24;
    let (_, key) = create_key(api, admin, "switched").await?;
    ensure!(code(api, &key).await? == "VALID");
    let answers = at_once(1 + OTHERS, |i| {
        let (api, token) = (api.clone(), admin.token.clone());
        async move {
            let (method, path, body) = match i {
                0 => ("PATCH", "/v1/settings", json!({"api_keys_enabled": false})),
                i if i % 2 == 1 => (
                    "PATCH",
                    "/v1/settings",
                    json!({"max_active_keys_per_user": 100 + i}),
                ),
                i => (
                    "POST",
                    "/v1/permissions",
                    json!({"name": format!("race.perm{i}")}),
                ),
            };
            api.call(method, path, As::Bearer(&token), Some(&body))
                .await
        }
    })
    .await?;
    for answer in &answers {
        ensure!(answer.status < 300, "{answer:?}");
    }
    let settings = api
        .call("GET", "/v1/settings", As::Bearer(&admin.token), None)
        .await?;
    ensure!(
        settings.body["api_keys_enabled"] == Value::Bool(false),
        "switched back on: {}",
        settings.body
    );
    let permissions = api
        .call("GET", "/v1/permissions", As::Bearer(&admin.token), None)
        .await?;
    let defined = permissions.body["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|p| p["name"].as_str().is_some_and(|n| n.starts_with("race.")))
                .count()
        })
        .unwrap_or(0);
    ensure!(
        defined == OTHERS / 2,
        "{defined} of {} permissions kept",
        OTHERS / 2
    );
    let got = code(api, &key).await?;
    ensure!(got == "DISABLED", "a key answers {got}");
    // Back on for the races that follow.
    let on = json!({"api_keys_enabled": true, "max_active_keys_per_user": null});
    admin
        .must(api, "PATCH", "/v1/settings", Some(&on), 200)
        .await?;
    Ok(format!(
        "1 switch-off racing {OTHERS} settings and catalogue changes: stayed off, {defined} of {} permissions kept, keys DISABLED",
        OTHERS / 2
    ))
}

/// 20 concurrent creations with room for 5 more active keys under the per-user maximum make
/// exactly 5.
async fn creations_under_a_maximum(api: &Api, admin: &Admin) -> Result<String> {
    let active = active_keys(api, admin).await?;
    // (API keys on again, so that this race does not depend on the one before.)
    let cap = json!({"api_keys_enabled": true, "max_active_keys_per_user": active + 5});
    admin
        .must(api, "PATCH", "/v1/settings", Some(&cap), 200)
        .await?;
    let answers = at_once(20, |i| {
        let (api, token, org) = (api.clone(), admin.token.clone(), admin.org.clone());
        async move {
            let body = json!({"name": format!("racer {i}"), "namespace": org, "role": "viewer"});
            api.call("POST", "/v1/keys", As::Bearer(&token), Some(&body))
                .await
        }
    })
    .await?;
    let created = answers.iter().filter(|a| a.status == 201).count();
    let refused = answers
        .iter()
        .filter(|a| a.status == 409 && a.code() == "key_quota_exceeded")
        .count();
    ensure!(
        (created, refused) == (5, 15),
        "{created} created, {refused} refused: {:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    let now = active_keys(api, admin).await?;
    ensure!(now == active + 5, "{active} active keys, then {now}");
    let off = json!({"max_active_keys_per_user": null});
    api.call(
        "PATCH",
        "/v1/settings",
        As::Bearer(&admin.token),
        Some(&off),
    )
    .await?;
    Ok(format!(
        "20 concurrent creations with room for 5 under the maximum ({}): 5 created, 15 refused",
        active + 5
    ))
}

/// The caller's active keys.
async fn active_keys(api: &Api, admin: &Admin) -> Result<usize> {
    let listed = admin
        .must(api, "GET", "/v1/keys?status=active&limit=200", None, 200)
        .await?;
    ensure!(
        listed.body["next_cursor"].is_null(),
        "one page: {}",
        listed.body
    );
    listed.body["items"]
        .as_array()
        .map(Vec::len)
        .context("keys")
}

/// 16 concurrent acceptances of one invitation (each with its own password) make one user.
async fn acceptances_of_one_invitation(api: &Api, admin: &Admin) -> Result<String> {
    let before = members(api, admin).await?;
    let invite = json!({"email": "twice@example.com", "roles": ["developer"]});
    let invited = admin
        .must(api, "POST", "/v1/invitations", Some(&invite), 201)
        .await?;
    let token = invited.body["invitation_token"]
        .as_str()
        .context("invitation_token")?
        .to_owned();
    let answers = at_once(16, |i| {
        let (api, token) = (api.clone(), token.clone());
        async move {
            let body =
                json!({"name": format!("Twin {i}"), "password": format!("password number {i}")});
            api.call(
                "POST",
                &format!("/v1/invitations/{token}/accept"),
                As::Nobody,
                Some(&body),
            )
            .await
        }
    })
    .await?;
    let accepted = answers.iter().filter(|a| a.status == 201).count();
    ensure!(
        accepted == 1,
        "{accepted} acceptances: {:?}",
        answers
            .iter()
            .map(|a| (a.status, a.code().to_owned()))
            .collect::<Vec<_>>()
    );
    for refused in answers.iter().filter(|a| a.status != 201) {
        ensure!(refused.status < 500, "{refused:?}");
    }
    let after = members(api, admin).await?;
    ensure!(after == before + 1, "{before} members, then {after}");
    Ok("16 concurrent acceptances of one invitation: 1 user made, 15 refused".into())
}

/// One email invited by two organizations (at the edge: two objects, the email in the
/// directory), 8 concurrent acceptances of each invitation: one user, in one of them.
/// (The organization is made here, after the races of one organization.)
async fn one_email_in_two_organizations(api: &Api, admin: &Admin) -> Result<String> {
    let body = json!({"name": "Other", "admin_email": "other-admin@example.com"});
    let created = admin
        .must(api, "POST", "/v1/organizations", Some(&body), 201)
        .await?;
    let other = created.body["organization"]["id"]
        .as_str()
        .context("organization")?
        .to_owned();
    let invitation = created.body["invitation_token"]
        .as_str()
        .context("invitation_token")?;
    let (_, other_token) = api.accept(invitation, "other-admin@example.com").await?;
    let other_admin = Admin {
        token: other_token,
        org: other.clone(),
    };
    let invite = json!({"email": "both@example.com", "roles": ["developer"]});
    let mut tokens = Vec::new();
    for inviter in [admin, &other_admin] {
        let invited = inviter
            .must(api, "POST", "/v1/invitations", Some(&invite), 201)
            .await?;
        tokens.push(
            invited.body["invitation_token"]
                .as_str()
                .context("invitation_token")?
                .to_owned(),
        );
    }
    let answers = at_once(16, |i| {
        let (api, token) = (api.clone(), tokens[i % 2].clone());
        async move {
            let body =
                json!({"name": format!("Both {i}"), "password": format!("password number {i}")});
            api.call(
                "POST",
                &format!("/v1/invitations/{token}/accept"),
                As::Nobody,
                Some(&body),
            )
            .await
        }
    })
    .await?;
    let accepted: Vec<&tests::Answer> = answers.iter().filter(|a| a.status == 201).collect();
    ensure!(
        accepted.len() == 1,
        "{} acceptances: {:?}",
        accepted.len(),
        answers
            .iter()
            .map(|a| (a.status, a.code().to_owned()))
            .collect::<Vec<_>>()
    );
    for refused in answers.iter().filter(|a| a.status != 201) {
        ensure!(refused.status < 500, "{refused:?}");
    }
    // One member with that email, in one of the two organizations.
    let mut count = 0;
    for inviter in [admin, &other_admin] {
        let listed = inviter
            .must(api, "GET", "/v1/members?limit=200", None, 200)
            .await?;
        count += listed.body["items"].as_array().map_or(0, |m| {
            m.iter()
                .filter(|m| m["email"] == "both@example.com")
                .count()
        });
    }
    ensure!(count == 1, "both@example.com is a member {count} times");
    Ok("one email invited by two organizations, 16 concurrent acceptances: 1 user made, 15 refused".into())
}

async fn members(api: &Api, admin: &Admin) -> Result<usize> {
    let listed = admin
        .must(api, "GET", "/v1/members?limit=200", None, 200)
        .await?;
    listed.body["items"]
        .as_array()
        .map(Vec::len)
        .context("members")
}

/// A removed member's session and keys stop working at once, while the member keeps using
/// them: nothing the member does during or after the removal brings either back.
async fn removed_member(api: &Api, admin: &Admin) -> Result<String> {
    let (user, session) = api
        .join(&admin.token, "leaver@example.com", json!(["developer"]))
        .await?;
    let grant = json!({"principal": user, "namespace": admin.org, "permission": "workspaces.read"});
    admin
        .must(api, "POST", "/v1/grants", Some(&grant), 201)
        .await?;
    let body = json!({"name": "leaver's", "namespace": admin.org,
        "permissions": [{"permission": "workspaces.read"}]});
    let made = api
        .call("POST", "/v1/keys", As::Bearer(&session), Some(&body))
        .await?;
    ensure!(made.status == 201, "{made:?}");
    let key = made.body["key"].as_str().context("key")?.to_owned();
    let id = made.body["id"].as_str().context("id")?.to_owned();
    ensure!(code(api, &key).await? == "VALID");
    // The member renames its key and reads its profile while the admin removes it.
    let answers = at_once(17, |i| {
        let (api, admin_token, session, user, id) = (
            api.clone(),
            admin.token.clone(),
            session.clone(),
            user.clone(),
            id.clone(),
        );
        async move {
            match i {
                0 => {
                    api.call(
                        "DELETE",
                        &format!("/v1/members/{user}"),
                        As::Bearer(&admin_token),
                        None,
                    )
                    .await
                }
                i if i % 2 == 1 => {
                    let body = json!({"name": format!("still mine {i}")});
                    api.call(
                        "PATCH",
                        &format!("/v1/keys/{id}"),
                        As::Bearer(&session),
                        Some(&body),
                    )
                    .await
                }
                _ => api.call("GET", "/v1/me", As::Bearer(&session), None).await,
            }
        }
    })
    .await?;
    ensure!(answers[0].status == 204, "remove: {:?}", answers[0]);
    let me = api
        .call("GET", "/v1/me", As::Bearer(&session), None)
        .await?;
    ensure!(me.status == 401, "the session still works: {me:?}");
    let got = code(api, &key).await?;
    ensure!(got != "VALID", "the member's key still verifies");
    let members = api
        .call(
            "GET",
            "/v1/members?limit=200",
            As::Bearer(&admin.token),
            None,
        )
        .await?;
    ensure!(
        !members.body.to_string().contains(&user),
        "the member came back: {}",
        members.body
    );
    Ok(format!(
        "a member removed while it made 16 calls: its session answered 401 and its key {got} right after"
    ))
}

/// 40 concurrent leak reports that match no key, from one address: exactly 5 are taken, as
/// sign-in takes 5 wrong passwords (SPEC §4.6: throttled like login).
async fn empty_leak_reports(api: &Api, _: &Admin) -> Result<String> {
    let answers = at_once(40, |i| {
        let api = api.clone();
        async move {
            let body = json!({"keys": [format!("kg_not-a-key-{i}")]});
            api.call("POST", "/v1/keys/leaked", As::Nobody, Some(&body))
                .await
        }
    })
    .await?;
    let taken = answers.iter().filter(|a| a.status == 200).count();
    let throttled = answers
        .iter()
        .filter(|a| a.status == 429 && a.code() == "rate_limited")
        .count();
    ensure!(
        (taken, throttled) == (5, 35),
        "{taken} taken, {throttled} throttled of 40: {:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    Ok(format!(
        "40 concurrent reports of nothing: {taken} taken, {throttled} answered 429"
    ))
}

/// 40 concurrent wrong passwords for one email: at most 5 are tried.
async fn wrong_passwords(api: &Api, _: &Admin) -> Result<String> {
    let answers = at_once(40, |i| {
        let api = api.clone();
        async move {
            let body = json!({"email": tests::ADMIN_EMAIL, "password": format!("guess {i}")});
            api.call("POST", "/v1/auth/login", As::Nobody, Some(&body))
                .await
        }
    })
    .await?;
    let tried = answers
        .iter()
        .filter(|a| a.status == 401 && a.code() == "unauthenticated")
        .count();
    let throttled = answers
        .iter()
        .filter(|a| a.status == 429 && a.code() == "rate_limited")
        .count();
    ensure!(
        (tried, throttled) == (5, 35),
        "{tried} tried, {throttled} throttled of 40: {:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    let right = api
        .call(
            "POST",
            "/v1/auth/login",
            As::Nobody,
            Some(&json!({"email": tests::ADMIN_EMAIL, "password": tests::ADMIN_PASSWORD})),
        )
        .await?;
    ensure!(right.status == 429, "a sixth try: {right:?}");
    Ok(format!(
        "40 concurrent wrong passwords for one email: {tried} tried, {throttled} answered 429"
    ))
}
