//! The authorization matrix (OWASP API1/API5: object- and function-level authorization): every
//! endpoint × every kind of caller, with the status each must get and whether the call took
//! effect on (or showed) organization A's object. An endpoint of `model::http::ENDPOINTS` without a row fails
//! [`every_route_has_a_row`], so a new endpoint cannot ship without its authorization decided.
//!
//! Callers: anonymous; in organization A a member without roles, a developer holding
//! `workspaces.read` in application P and `resources.*` in workspace W, the admin (also the
//! instance's first admin) and an admin's org-level editor key; in organization B its admin
//! and its admin's key. Objects of A are made fresh for every cell that changes them, and
//! nothing of A may appear in any answer B's callers get.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use tests::{ADMIN_EMAIL, ADMIN_PASSWORD, Answer, Api, As, Host};

/// Who calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Anonymous,
    Member,
    Developer,
    Admin,
    OrgKey,
    OtherUser,
    OtherKey,
}

const WHO: [Who; 7] = [
    Who::Anonymous,
    Who::Member,
    Who::Developer,
    Who::Admin,
    Who::OrgKey,
    Who::OtherUser,
    Who::OtherKey,
];

/// What one cell expects: the status, and whether the call reached organization A's object —
/// for a change, it happened (checked by the row's probe); for a read, the answer shows it.
#[derive(Clone, Copy, Debug)]
enum Expect {
    Y(u16),
    N(u16),
}
use Expect::{N, Y};

impl Expect {
    fn status(self) -> u16 {
        match self {
            Y(s) | N(s) => s,
        }
    }
    fn reached(self) -> bool {
        matches!(self, Y(_))
    }
}

/// An object of organization A made fresh for each cell; its id replaces `{id}`.
#[derive(Clone, Copy, Debug)]
enum Fresh {
    None,
    Workspace,
    Group,
    Resource,
    /// A key of the developer's in W; `{key}` is its plaintext.
    DevKey,
    /// The same with 10 credits.
    DevCreditsKey,
    Member,
    Grant,
    Invitation,
    /// A pending invitation's id (not its token).
    InvitationId,
    /// The caller's own new session (for logout), in place of its usual credential.
    Session,
    /// A webhook (to a name that never resolves, taking an event that never comes).
    Webhook,
}

/// How a row learns whether its call reached A's object.
enum Check {
    /// Status only.
    None,
    /// The answer's body mentions this (after substitution).
    Shows(String),
    /// The admin reads this path; the function decides from that answer.
    Probe(String, fn(&Answer, &Subst) -> bool),
    /// Verifying the fresh key gives this code.
    Verifies(&'static str),
}

/// One endpoint: the route as `model::http::ENDPOINTS` spells it, the concrete call, and one expectation
/// per caller in [`WHO`]'s order.
struct Row {
    method: &'static str,
    route: &'static str,
    path: String,
    body: Option<Value>,
    fresh: Fresh,
    check: Check,
    expect: [Expect; 7],
}

/// Values substituted into a cell's path, body and checks.
struct Subst {
    id: String,
    key: String,
    n: usize,
}

impl Subst {
    fn apply(&self, text: &str) -> String {
        text.replace("\"{n:int}\"", &self.n.to_string())
            .replace("{id}", &self.id)
            .replace("{key}", &self.key)
            .replace("{n}", &self.n.to_string())
    }
}

/// A signed-in user: id, email, password, session token.
struct Person {
    id: String,
    email: String,
    password: String,
    token: String,
}

/// Organization A's standing ids, which the table is written over.
#[derive(Default)]
struct Ids {
    org: String,
    admin: String,
    member: String,
    developer: String,
    /// A member no caller is; grants and group memberships name it.
    bystander: String,
    app: String,
    ws: String,
    group: String,
    resource: String,
    grant: String,
    dev_key_id: String,
    dev_key: String,
    /// A pending invitation's id.
    invitation: String,
}

/// Both organizations, their callers and A's standing objects.
struct World {
    api: Api,
    ids: Ids,
    admin: Person,
    member: Person,
    developer: Person,
    org_key: String,
    other: Person,
    other_key: String,
    counter: AtomicUsize,
}

fn id_of(answer: &Answer, what: &str) -> Result<String> {
    ensure!(
        (200..300).contains(&answer.status),
        "setting up {what}: {answer:?}"
    );
    answer.body["id"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("{what} has no id: {}", answer.body))
}

impl World {
    fn next(&self) -> usize {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    async fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Answer> {
        self.api
            .call(method, path, As::Bearer(&self.admin.token), body)
            .await
    }

    async fn created(&self, path: &str, body: Value) -> Result<String> {
        id_of(&self.admin("POST", path, Some(&body)).await?, path)
    }

    /// Invites `email` into the admin's organization (`admin` is that organization's admin
    /// token) with `roles`, accepts and signs in.
    async fn join(api: &Api, admin: &str, email: &str, roles: Value) -> Result<Person> {
        let invited = api
            .call(
                "POST",
                "/v1/invitations",
                As::Bearer(admin),
                Some(&json!({"email": email, "roles": roles})),
            )
            .await?;
        let token = invited.body["invitation_token"]
            .as_str()
            .with_context(|| format!("invitation: {invited:?}"))?
            .to_owned();
        Self::accept(api, &token, email).await
    }

    async fn accept(api: &Api, token: &str, email: &str) -> Result<Person> {
        let password = "matrix-password-1".to_owned();
        let accepted = api
            .call(
                "POST",
                &format!("/v1/invitations/{token}/accept"),
                As::Nobody,
                Some(&json!({"name": "Matrix Person", "password": password})),
            )
            .await?;
        let id = accepted.body["user"]["id"]
            .as_str()
            .with_context(|| format!("accept: {accepted:?}"))?
            .to_owned();
        let token = login(api, email, &password).await?;
        Ok(Person {
            id,
            email: email.to_owned(),
            password,
            token,
        })
    }

    async fn build(api: Api) -> Result<World> {
        let admin_token = login(&api, ADMIN_EMAIL, ADMIN_PASSWORD).await?;
        let me = api
            .call("GET", "/v1/me", As::Bearer(&admin_token), None)
            .await?;
        let org = me.body["organization"]["id"]
            .as_str()
            .context("org")?
            .to_owned();
        let admin = Person {
            id: me.body["user"]["id"].as_str().context("id")?.to_owned(),
            email: ADMIN_EMAIL.into(),
            password: ADMIN_PASSWORD.into(),
            token: admin_token,
        };
        enable_keys(&api, &admin.token).await?;
        let member = Self::join(&api, &admin.token, "member@a.example", json!([])).await?;
        let developer = Self::join(
            &api,
            &admin.token,
            "developer@a.example",
            json!(["developer"]),
        )
        .await?;
        let bystander = Self::join(&api, &admin.token, "bystander@a.example", json!([]))
            .await?
            .id;
        let org_key = key_of(&api, &admin.token, &org, "editor").await?.1;

        let created = api
            .call(
                "POST",
                "/v1/organizations",
                As::Bearer(&admin.token),
                Some(&json!({"name": "Org B", "admin_email": "admin@b.example"})),
            )
            .await?;
        let token = created.body["invitation_token"]
            .as_str()
            .with_context(|| format!("organization B: {created:?}"))?;
        let other = Self::accept(&api, token, "admin@b.example").await?;
        enable_keys(&api, &other.token).await?;
        let other_org = created.body["organization"]["id"]
            .as_str()
            .context("org B")?;
        let other_key = key_of(&api, &other.token, other_org, "editor").await?.1;

        let mut world = World {
            api,
            ids: Ids {
                org,
                admin: admin.id.clone(),
                member: member.id.clone(),
                developer: developer.id.clone(),
                bystander,
                ..Ids::default()
            },
            admin,
            member,
            developer,
            org_key,
            other,
            other_key,
            counter: AtomicUsize::new(0),
        };
        let app = world
            .created("/v1/apps", json!({"name": "Matrix app"}))
            .await?;
        let ws = world
            .created("/v1/workspaces", json!({"name": "Matrix ws", "app": app}))
            .await?;
        world.ids.group = world
            .created(
                "/v1/usergroups",
                json!({"name": "Matrix group", "parent": world.ids.org}),
            )
            .await?;
        world.ids.resource = world
            .created(
                "/v1/resources",
                json!({"namespace": ws, "kind": "dataset", "name": "matrix target"}),
            )
            .await?;
        for (namespace, permission) in [
            (&app, "workspaces.read"),
            (&ws, "resources.read"),
            (&ws, "resources.write"),
        ] {
            world.ids.grant = world
                .created(
                    "/v1/grants",
                    json!({"principal": world.ids.developer, "namespace": namespace, "permission": permission}),
                )
                .await?;
        }
        let defined = world
            .admin(
                "POST",
                "/v1/permissions",
                Some(&json!({"name": "matrix.read"})),
            )
            .await?;
        ensure!(defined.status == 201, "{defined:?}");
        let made = world
            .api
            .call(
                "POST",
                "/v1/keys",
                As::Bearer(&world.developer.token),
                Some(&json!({"name": "matrix-target", "namespace": ws, "role": "viewer"})),
            )
            .await?;
        world.ids.dev_key_id = id_of(&made, "the developer's key")?;
        world.ids.dev_key = made.body["key"].as_str().context("plaintext")?.to_owned();
        (world.ids.app, world.ids.ws) = (app, ws);
        world.ids.invitation = world.pending("pending@a.example").await?;
        Ok(world)
    }

    /// Invites `email` into A; returns the pending invitation's id.
    async fn pending(&self, email: &str) -> Result<String> {
        let invited = self
            .admin(
                "POST",
                "/v1/invitations",
                Some(&json!({"email": email, "roles": []})),
            )
            .await?;
        ensure!(invited.status == 201, "{invited:?}");
        let listed = self.admin("GET", "/v1/invitations?limit=200", None).await?;
        listed.body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["email"] == email)
            .and_then(|i| i["id"].as_str())
            .map(str::to_owned)
            .with_context(|| format!("{email} is not pending: {}", listed.body))
    }

    /// Every id of organization A that B's callers must never see.
    fn ids_of_a(&self) -> Vec<&str> {
        let i = &self.ids;
        vec![
            &i.org,
            &i.admin,
            &i.member,
            &i.developer,
            &i.bystander,
            &i.app,
            &i.ws,
            &i.group,
            &i.resource,
            &i.grant,
            &i.dev_key_id,
            &i.invitation,
        ]
    }

    fn credential(&self, who: Who) -> Option<String> {
        match who {
            Who::Anonymous => None,
            Who::Member => Some(self.member.token.clone()),
            Who::Developer => Some(self.developer.token.clone()),
            Who::Admin => Some(self.admin.token.clone()),
            Who::OrgKey => Some(self.org_key.clone()),
            Who::OtherUser => Some(self.other.token.clone()),
            Who::OtherKey => Some(self.other_key.clone()),
        }
    }

    /// Makes the cell's fresh object; returns the substitution and the credential to use.
    async fn prepare(&self, fresh: Fresh, who: Who) -> Result<(Subst, Option<String>)> {
        let n = self.next();
        let mut subst = Subst {
            id: String::new(),
            key: String::new(),
            n,
        };
        let mut credential = self.credential(who);
        match fresh {
            Fresh::None => {}
            Fresh::Workspace => {
                subst.id = self
                    .created(
                        "/v1/workspaces",
                        json!({"name": format!("ws {n}"), "app": self.ids.app}),
                    )
                    .await?;
            }
            Fresh::Group => {
                subst.id = self
                    .created(
                        "/v1/usergroups",
                        json!({"name": format!("group {n}"), "parent": self.ids.org}),
                    )
                    .await?;
            }
            Fresh::Resource => {
                subst.id = self
                    .created(
                        "/v1/resources",
                        json!({"namespace": self.ids.ws, "kind": "dataset", "name": format!("res {n}")}),
                    )
                    .await?;
            }
            Fresh::DevKey => {
                let (id, key) =
                    key_of(&self.api, &self.developer.token, &self.ids.ws, "viewer").await?;
                (subst.id, subst.key) = (id, key);
            }
            Fresh::DevCreditsKey => {
                let body = json!({"name": "matrix", "namespace": self.ids.ws, "role": "viewer",
                    "credits": {"remaining": 10}});
                let made = self
                    .api
                    .call(
                        "POST",
                        "/v1/keys",
                        As::Bearer(&self.developer.token),
                        Some(&body),
                    )
                    .await?;
                subst.id = id_of(&made, "a key with credits")?;
                subst.key = made.body["key"].as_str().context("plaintext")?.to_owned();
            }
            Fresh::Member => {
                subst.id = Self::join(
                    &self.api,
                    &self.admin.token,
                    &format!("fresh{n}@a.example"),
                    json!([]),
                )
                .await?
                .id;
            }
            Fresh::Webhook => {
                subst.id = self
                    .created(
                        "/v1/webhooks",
                        json!({"url": format!("https://hooks.invalid/{n}"), "events": ["key.credits_low"]}),
                    )
                    .await?;
            }
            Fresh::Grant => {
                subst.id = self
                    .created(
                        "/v1/grants",
                        json!({"principal": self.ids.bystander, "namespace": self.ids.ws, "permission": "resources.read"}),
                    )
                    .await?;
            }
            Fresh::Invitation => {
                let invited = self
                    .admin(
                        "POST",
                        "/v1/invitations",
                        Some(&json!({"email": format!("invited{n}@a.example"), "roles": []})),
                    )
                    .await?;
                subst.id = invited.body["invitation_token"]
                    .as_str()
                    .context("invitation")?
                    .to_owned();
            }
            Fresh::InvitationId => {
                subst.id = self.pending(&format!("pending{n}@a.example")).await?;
            }
            Fresh::Session => {
                let person = match who {
                    Who::Member => Some(&self.member),
                    Who::Developer => Some(&self.developer),
                    Who::Admin => Some(&self.admin),
                    Who::OtherUser => Some(&self.other),
                    _ => None,
                };
                if let Some(p) = person {
                    credential = Some(login(&self.api, &p.email, &p.password).await?);
                }
            }
        }
        Ok((subst, credential))
    }

    /// Runs one cell; an error names what went wrong.
    async fn cell(&self, row: &Row, who: Who, expect: Expect) -> Result<()> {
        let (subst, credential) = self.prepare(row.fresh, who).await?;
        let path = subst.apply(&row.path);
        let body = match &row.body {
            Some(b) => Some(serde_json::from_str::<Value>(&subst.apply(&b.to_string()))?),
            None => None,
        };
        let auth = credential.as_deref().map_or(As::Nobody, As::Bearer);
        let answer = self
            .api
            .call(row.method, &path, auth, body.as_ref())
            .await?;
        ensure!(
            answer.status == expect.status(),
            "{} {path}: expected {}, got {} {}",
            row.method,
            expect.status(),
            answer.status,
            answer.body
        );
        if answer.status >= 400 {
            ensure!(
                answer.content_type.starts_with("application/problem+json")
                    && answer.body["code"].is_string(),
                "a refusal is problem JSON with a code: {answer:?}"
            );
        }
        let reached = match &row.check {
            Check::None => expect.reached(),
            Check::Shows(needle) => answer.body.to_string().contains(&subst.apply(needle)),
            Check::Probe(probe, reached) => {
                let probe = self.admin("GET", &subst.apply(probe), None).await?;
                reached(&probe, &subst)
            }
            Check::Verifies(code) => {
                let verified = self
                    .api
                    .call(
                        "POST",
                        "/v1/keys/verify",
                        As::Nobody,
                        Some(&json!({"key": subst.key})),
                    )
                    .await?;
                verified.body["code"] == *code
            }
        };
        ensure!(
            reached == expect.reached(),
            "{} {path}: expected the call {} organization A's object, it did{}: {}",
            row.method,
            if expect.reached() {
                "to reach"
            } else {
                "not to reach"
            },
            if reached { "" } else { " not" },
            answer.body
        );
        let public = matches!(row.expect[0], Y(_));
        if matches!(who, Who::OtherUser | Who::OtherKey) && !public {
            // An id the caller itself sent may be echoed (bulk revoke's per-id results).
            let sent = format!(
                "{path} {}",
                body.as_ref().map(Value::to_string).unwrap_or_default()
            );
            let text = answer.body.to_string();
            let mut ids = self.ids_of_a();
            ids.push(&subst.id);
            let leaked = ids
                .iter()
                .find(|id| !id.is_empty() && text.contains(*id) && !sent.contains(*id));
            if let Some(leak) = leaked {
                bail!(
                    "{} {path}: organization B was shown A's {leak}: {text}",
                    row.method
                );
            }
        }
        Ok(())
    }
}

async fn login(api: &Api, email: &str, password: &str) -> Result<String> {
    let answer = api
        .call(
            "POST",
            "/v1/auth/login",
            As::Nobody,
            Some(&json!({"email": email, "password": password})),
        )
        .await?;
    answer.body["token"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("login of {email}: {answer:?}"))
}

async fn enable_keys(api: &Api, admin: &str) -> Result<()> {
    let answer = api
        .call(
            "PATCH",
            "/v1/settings",
            As::Bearer(admin),
            Some(&json!({"api_keys_enabled": true})),
        )
        .await?;
    ensure!(answer.status == 200, "{answer:?}");
    Ok(())
}

/// Creates a key as `token` in `namespace` with `role`; returns (id, plaintext).
async fn key_of(api: &Api, token: &str, namespace: &str, role: &str) -> Result<(String, String)> {
    let made = api
        .call(
            "POST",
            "/v1/keys",
            As::Bearer(token),
            Some(&json!({"name": "matrix", "namespace": namespace, "role": role})),
        )
        .await?;
    let id = id_of(&made, "a key")?;
    let key = made.body["key"].as_str().context("plaintext")?.to_owned();
    Ok((id, key))
}

fn gone(answer: &Answer, _: &Subst) -> bool {
    answer.status == 404
}

fn limited(answer: &Answer, _: &Subst) -> bool {
    answer.body["ratelimits"][0]["limit"] == 7
}

fn topped_up(answer: &Answer, _: &Subst) -> bool {
    answer.body["credits"]["remaining"] == 15
}

fn renamed(answer: &Answer, s: &Subst) -> bool {
    answer.body["name"] == s.apply("renamed {n}").as_str()
}

fn described(answer: &Answer, s: &Subst) -> bool {
    answer.body["items"].as_array().is_some_and(|items| {
        items.iter().any(|w| {
            w["id"] == s.id.as_str() && w["description"] == s.apply("renamed {n}").as_str()
        })
    })
}

fn lacks_id(answer: &Answer, s: &Subst) -> bool {
    answer.status == 200 && !answer.body.to_string().contains(&s.id)
}

fn made_developer(answer: &Answer, s: &Subst) -> bool {
    answer.body["items"].as_array().is_some_and(|items| {
        items
            .iter()
            .any(|m| m["id"] == s.id.as_str() && m["roles"] == json!(["developer"]))
    })
}

fn threshold_set(answer: &Answer, s: &Subst) -> bool {
    answer.body["extensive_use_per_hour"] == s.n
}

fn permission_defined(answer: &Answer, s: &Subst) -> bool {
    answer
        .body
        .to_string()
        .contains(&s.apply("\"custom{n}.read\""))
}

/// The table. Columns: anonymous, member, developer, admin, org key, other org's user, its key.
#[rustfmt::skip] // a table reads best one row to a line
fn rows(w: &Ids) -> Vec<Row> {
    let row = |method, route, path: String, body: Option<Value>, fresh, check, expect| Row {
        method,
        route,
        path,
        body,
        fresh,
        check,
        expect,
    };
    let (app, ws, group, res, dev_key_id) = (&w.app, &w.ws, &w.group, &w.resource, &w.dev_key_id);
    let renamed_body = Some(json!({"name": "renamed {n}"}));
    vec![
        row("GET", "/healthz", "/healthz".into(), None, Fresh::None, Check::None,
            [Y(200), Y(200), Y(200), Y(200), Y(200), Y(200), Y(200)]),
        row("GET", "/openapi.json", "/openapi.json".into(), None, Fresh::None, Check::None,
            [Y(200), Y(200), Y(200), Y(200), Y(200), Y(200), Y(200)]),
        row("POST", "/v1/auth/login", "/v1/auth/login".into(), Some(json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})), Fresh::None, Check::None,
            [Y(200), Y(200), Y(200), Y(200), Y(200), Y(200), Y(200)]),
        row("POST", "/v1/auth/logout", "/v1/auth/logout".into(), None, Fresh::Session, Check::None,
            [N(401), Y(204), Y(204), Y(204), N(403), Y(204), N(403)]),
        row("GET", "/v1/me", "/v1/me".into(), None, Fresh::None, Check::None,
            [N(401), Y(200), Y(200), Y(200), Y(200), Y(200), Y(200)]),
        row("GET", "/v1/organizations", "/v1/organizations".into(), None, Fresh::None, Check::Shows(w.org.clone()),
            [N(401), Y(200), Y(200), Y(200), Y(200), N(200), N(200)]),
        row("POST", "/v1/organizations", "/v1/organizations".into(), Some(json!({"name": "Org {n}", "admin_email": "org{n}@c.example"})), Fresh::None, Check::None,
            [N(401), N(403), N(403), Y(201), N(403), N(403), N(403)]),
        // Members and invitations.
        row("GET", "/v1/members", "/v1/members?limit=200".into(), None, Fresh::None, Check::Shows(w.developer.clone()),
            [N(401), Y(200), Y(200), Y(200), N(403), N(200), N(403)]),
        row("PATCH", "/v1/members/{id}", "/v1/members/{id}".into(), Some(json!({"roles": ["developer"]})), Fresh::Member, Check::Probe("/v1/members?limit=200".into(), made_developer),
            [N(401), N(403), N(403), Y(200), N(403), N(404), N(403)]),
        row("DELETE", "/v1/members/{id}", "/v1/members/{id}".into(), None, Fresh::Member, Check::Probe("/v1/members?limit=200".into(), lacks_id),
            [N(401), N(403), N(403), Y(204), N(403), N(404), N(403)]),
        row("POST", "/v1/invitations", "/v1/invitations".into(), Some(json!({"email": "invitee{n}@example.com", "roles": []})), Fresh::None, Check::None,
            [N(401), N(403), N(403), Y(201), N(403), Y(201), N(403)]),
        row("GET", "/v1/invitations", "/v1/invitations?limit=200".into(), None, Fresh::None, Check::Shows(w.invitation.clone()),
            [N(401), N(403), N(403), Y(200), N(403), N(200), N(403)]),
        row("DELETE", "/v1/invitations/{id}", "/v1/invitations/{id}".into(), None, Fresh::InvitationId, Check::Probe("/v1/invitations?limit=200".into(), lacks_id),
            [N(401), N(403), N(403), Y(204), N(403), N(404), N(403)]),
        // A set-up link exists only while the first admin has no password: none here.
        row("POST", "/v1/setup/{token}", "/v1/setup/kgu_notatoken".into(), Some(json!({"password": "long-enough-pw"})), Fresh::None, Check::None,
            [N(404), N(404), N(404), N(404), N(404), N(404), N(404)]),
        // The token is the credential: whoever holds it may accept, once.
        row("POST", "/v1/invitations/{token}/accept", "/v1/invitations/{id}/accept".into(), Some(json!({"name": "Invitee", "password": "long-enough-pw"})), Fresh::Invitation, Check::None,
            [Y(201), Y(201), Y(201), Y(201), Y(201), Y(201), Y(201)]),
        // Settings, events, the catalogue.
        row("GET", "/v1/settings", "/v1/settings".into(), None, Fresh::None, Check::None,
            [N(401), N(403), N(403), Y(200), N(403), Y(200), N(403)]),
        row("PATCH", "/v1/settings", "/v1/settings".into(), Some(json!({"extensive_use_per_hour": "{n:int}"})), Fresh::None, Check::Probe("/v1/settings".into(), threshold_set),
            [N(401), N(403), N(403), Y(200), N(403), N(200), N(403)]),
        row("GET", "/v1/events", "/v1/events".into(), None, Fresh::None, Check::None,
            [N(401), N(403), N(403), Y(200), N(403), Y(200), N(403)]),
        // Webhooks: admins of the organization only, never a key.
        row("GET", "/v1/webhooks", "/v1/webhooks".into(), None, Fresh::Webhook, Check::Shows("{id}".into()),
            [N(401), N(403), N(403), Y(200), N(403), N(200), N(403)]),
        row("POST", "/v1/webhooks", "/v1/webhooks".into(), Some(json!({"url": "https://hooks.invalid/{n}", "events": ["key.credits_low"]})), Fresh::None, Check::None,
            [N(401), N(403), N(403), Y(201), N(403), N(201), N(403)]),
        row("PATCH", "/v1/webhooks/{id}", "/v1/webhooks/{id}".into(), Some(json!({"description": "renamed {n}"})), Fresh::Webhook, Check::Probe("/v1/webhooks".into(), described),
            [N(401), N(403), N(403), Y(200), N(403), N(404), N(403)]),
        row("DELETE", "/v1/webhooks/{id}", "/v1/webhooks/{id}".into(), None, Fresh::Webhook, Check::Probe("/v1/webhooks".into(), lacks_id),
            [N(401), N(403), N(403), Y(204), N(403), N(404), N(403)]),
        row("GET", "/v1/webhooks/{id}/deliveries", "/v1/webhooks/{id}/deliveries".into(), None, Fresh::Webhook, Check::None,
            [N(401), N(403), N(403), Y(200), N(403), N(404), N(403)]),
        row("POST", "/v1/webhooks/{id}/test", "/v1/webhooks/{id}/test".into(), None, Fresh::Webhook, Check::Shows("webhook.test".into()),
            [N(401), N(403), N(403), Y(200), N(403), N(404), N(403)]),
        row("GET", "/v1/overview", "/v1/overview".into(), None, Fresh::None, Check::Shows("most_refused".into()),
            [N(401), N(403), N(403), Y(200), N(403), Y(200), N(403)]),
        row("GET", "/v1/permissions", "/v1/permissions".into(), None, Fresh::None, Check::Shows("matrix.read".into()),
            [N(401), Y(200), Y(200), Y(200), Y(200), N(200), N(200)]),
        row("POST", "/v1/permissions", "/v1/permissions".into(), Some(json!({"name": "custom{n}.read"})), Fresh::None, Check::Probe("/v1/permissions".into(), permission_defined),
            [N(401), N(403), N(403), Y(201), N(403), N(201), N(403)]),
        // Namespaces.
        row("GET", "/v1/apps", "/v1/apps".into(), None, Fresh::None, Check::Shows(app.clone()),
            [N(401), N(200), Y(200), Y(200), N(200), N(200), N(200)]),
        row("POST", "/v1/apps", "/v1/apps".into(), Some(json!({"name": "app {n}"})), Fresh::None, Check::None,
            [N(401), N(403), N(403), Y(201), N(403), Y(201), N(403)]),
        row("GET", "/v1/workspaces", "/v1/workspaces".into(), None, Fresh::None, Check::Shows(ws.clone()),
            [N(401), N(200), Y(200), Y(200), N(200), N(200), N(200)]),
        row("POST", "/v1/workspaces", "/v1/workspaces".into(), Some(json!({"name": "ws {n}", "app": app})), Fresh::None, Check::None,
            [N(401), N(403), N(403), Y(201), N(403), N(404), N(404)]),
        row("GET", "/v1/workspaces/{id}", format!("/v1/workspaces/{ws}"), None, Fresh::None, Check::Shows(ws.clone()),
            [N(401), N(404), Y(200), Y(200), N(404), N(404), N(404)]),
        row("PATCH", "/v1/workspaces/{id}", "/v1/workspaces/{id}".into(), renamed_body.clone(), Fresh::Workspace, Check::Probe("/v1/workspaces/{id}".into(), renamed),
            [N(401), N(404), N(403), Y(200), N(404), N(404), N(404)]),
        row("DELETE", "/v1/workspaces/{id}", "/v1/workspaces/{id}".into(), None, Fresh::Workspace, Check::Probe("/v1/workspaces/{id}".into(), gone),
            [N(401), N(404), N(403), Y(204), N(404), N(404), N(404)]),
        row("GET", "/v1/usergroups", "/v1/usergroups".into(), None, Fresh::None, Check::Shows(group.clone()),
            [N(401), N(200), N(200), Y(200), Y(200), N(200), N(200)]),
        row("POST", "/v1/usergroups", "/v1/usergroups".into(), Some(json!({"name": "group {n}", "parent": w.org})), Fresh::None, Check::None,
            [N(401), N(403), N(403), Y(201), Y(201), N(404), N(404)]),
        row("GET", "/v1/usergroups/{id}", format!("/v1/usergroups/{group}"), None, Fresh::None, Check::Shows(group.clone()),
            [N(401), N(404), N(404), Y(200), Y(200), N(404), N(404)]),
        row("PATCH", "/v1/usergroups/{id}", "/v1/usergroups/{id}".into(), renamed_body.clone(), Fresh::Group, Check::Probe("/v1/usergroups/{id}".into(), renamed),
            [N(401), N(404), N(404), Y(200), Y(200), N(404), N(404)]),
        row("DELETE", "/v1/usergroups/{id}", "/v1/usergroups/{id}".into(), None, Fresh::Group, Check::Probe("/v1/usergroups/{id}".into(), gone),
            [N(401), N(404), N(404), Y(204), Y(204), N(404), N(404)]),
        // Joining a group takes its grants: only an admin changes who is in one, never a key.
        row("POST", "/v1/usergroups/{id}/members", "/v1/usergroups/{id}/members".into(), Some(json!({"user": w.bystander})), Fresh::Group, Check::None,
            [N(401), N(404), N(404), Y(204), N(403), N(404), N(404)]),
        row("DELETE", "/v1/usergroups/{id}/members/{user}", format!("/v1/usergroups/{{id}}/members/{}", w.bystander), None, Fresh::Group, Check::None,
            [N(401), N(404), N(404), Y(204), N(403), N(404), N(404)]),
        // Grants.
        row("GET", "/v1/grants", format!("/v1/grants?principal={}", w.developer), None, Fresh::None, Check::Shows(w.grant.clone()),
            [N(401), N(403), N(403), Y(200), N(403), N(200), N(403)]),
        row("POST", "/v1/grants", "/v1/grants".into(), Some(json!({"principal": w.bystander, "namespace": ws, "permission": "resources.read"})), Fresh::None, Check::None,
            [N(401), N(403), N(403), Y(201), N(403), N(404), N(403)]),
        row("DELETE", "/v1/grants/{id}", "/v1/grants/{id}".into(), None, Fresh::Grant, Check::Probe(format!("/v1/grants?limit=200&principal={}", w.bystander), lacks_id),
            [N(401), N(403), N(403), Y(204), N(403), N(404), N(403)]),
        // Resources.
        row("GET", "/v1/resources", format!("/v1/resources?namespace={ws}"), None, Fresh::None, Check::Shows(res.clone()),
            [N(401), N(200), Y(200), Y(200), N(200), N(404), N(404)]),
        row("POST", "/v1/resources", "/v1/resources".into(), Some(json!({"namespace": ws, "kind": "dataset", "name": "res {n}"})), Fresh::None, Check::None,
            [N(401), N(403), Y(201), Y(201), N(403), N(404), N(404)]),
        row("GET", "/v1/resources/{id}", format!("/v1/resources/{res}"), None, Fresh::None, Check::Shows(res.clone()),
            [N(401), N(404), Y(200), Y(200), N(404), N(404), N(404)]),
        row("PATCH", "/v1/resources/{id}", "/v1/resources/{id}".into(), renamed_body.clone(), Fresh::Resource, Check::Probe("/v1/resources/{id}".into(), renamed),
            [N(401), N(404), Y(200), Y(200), N(404), N(404), N(404)]),
        row("DELETE", "/v1/resources/{id}", "/v1/resources/{id}".into(), None, Fresh::Resource, Check::Probe("/v1/resources/{id}".into(), gone),
            [N(401), N(404), Y(204), Y(204), N(404), N(404), N(404)]),
        // Keys: the owner manages its own; an admin sees, edits and revokes any of the
        // organization's but only the owner rolls or deletes; keys never manage keys.
        row("GET", "/v1/keys", "/v1/keys?q=matrix-target".into(), None, Fresh::None, Check::Shows(dev_key_id.clone()),
            [N(401), N(200), Y(200), N(200), N(403), N(200), N(403)]),
        row("GET", "/v1/keys", "/v1/keys?all=true&q=matrix-target".into(), None, Fresh::None, Check::Shows(dev_key_id.clone()),
            [N(401), N(403), N(403), Y(200), N(403), N(200), N(403)]),
        row("POST", "/v1/keys", "/v1/keys".into(), Some(json!({"name": "made {n}", "namespace": ws, "role": "viewer"})), Fresh::None, Check::None,
            [N(401), N(403), Y(201), Y(201), N(403), N(404), N(403)]),
        row("POST", "/v1/keys/verify", "/v1/keys/verify".into(), Some(json!({"key": w.dev_key})), Fresh::None, Check::Shows("\"VALID\"".into()),
            [Y(200), Y(200), Y(200), Y(200), Y(200), Y(200), Y(200)]),
        // Anyone may report a leaked key: it is revoked whoever reports it.
        row("POST", "/v1/keys/leaked", "/v1/keys/leaked".into(), Some(json!({"keys": ["{key}"]})), Fresh::DevKey, Check::Verifies("REVOKED"),
            [Y(200), Y(200), Y(200), Y(200), Y(200), Y(200), Y(200)]),
        // GitHub's alerts need GitHub's signature, whoever sends them (tests/it/scanning.rs
        // sends signed ones): the key stays live.
        row("POST", "/v1/secret-scanning/github", "/v1/secret-scanning/github".into(), Some(json!([{"token": "{key}", "type": "keygate_api_key"}])), Fresh::DevKey, Check::Verifies("REVOKED"),
            [N(401), N(401), N(401), N(401), N(401), N(401), N(401)]),
        row("POST", "/v1/keys/revoke", "/v1/keys/revoke".into(), Some(json!({"ids": ["{id}"]})), Fresh::DevKey, Check::Verifies("REVOKED"),
            [N(401), N(200), Y(200), Y(200), N(403), N(200), N(403)]),
        row("GET", "/v1/keys/{id}", format!("/v1/keys/{dev_key_id}"), None, Fresh::None, Check::Shows(dev_key_id.clone()),
            [N(401), N(404), Y(200), Y(200), N(403), N(404), N(403)]),
        row("PATCH", "/v1/keys/{id}", "/v1/keys/{id}".into(), renamed_body, Fresh::DevKey, Check::Probe("/v1/keys/{id}".into(), renamed),
            [N(401), N(404), Y(200), Y(200), N(403), N(404), N(403)]),
        row("DELETE", "/v1/keys/{id}", "/v1/keys/{id}".into(), None, Fresh::DevKey, Check::Probe("/v1/keys/{id}".into(), gone),
            [N(401), N(404), Y(204), N(403), N(403), N(404), N(403)]),
        row("POST", "/v1/keys/{id}/revoke", "/v1/keys/{id}/revoke".into(), None, Fresh::DevKey, Check::Verifies("REVOKED"),
            [N(401), N(404), Y(200), Y(200), N(403), N(404), N(403)]),
        row("POST", "/v1/keys/{id}/roll", "/v1/keys/{id}/roll".into(), Some(json!({"grace_seconds": 0})), Fresh::DevKey, Check::Verifies("NOT_FOUND"),
            [N(401), N(404), Y(200), N(403), N(403), N(404), N(403)]),
        // A key's policy and credits: its owner or an admin, never a key (SPEC §4.2).
        row("PUT", "/v1/keys/{id}/policy", "/v1/keys/{id}/policy".into(), Some(json!({"ratelimits": [{"name": "m", "limit": 7, "window_seconds": 60}]})), Fresh::DevKey, Check::Probe("/v1/keys/{id}".into(), limited),
            [N(401), N(404), Y(200), Y(200), N(403), N(404), N(403)]),
        row("POST", "/v1/keys/{id}/credits", "/v1/keys/{id}/credits".into(), Some(json!({"add": 5})), Fresh::DevCreditsKey, Check::Probe("/v1/keys/{id}".into(), topped_up),
            [N(401), N(404), Y(200), Y(200), N(403), N(404), N(403)]),
        row("GET", "/v1/keys/{id}/usage", format!("/v1/keys/{dev_key_id}/usage"), None, Fresh::None, Check::None,
            [N(401), N(404), Y(200), Y(200), N(403), N(404), N(403)]),
    ]
}

/// Every (method, path) of the endpoint table.
fn documented_routes() -> BTreeSet<(String, String)> {
    model::http::ENDPOINTS
        .iter()
        .map(|e| (e.method.to_owned(), e.path.to_owned()))
        .collect()
}

#[test]
fn every_route_has_a_row() {
    let documented = documented_routes();
    assert!(documented.len() > 40, "the endpoint table lists the routes");
    let table: BTreeSet<(String, String)> = rows(&Ids::default())
        .iter()
        .map(|r| (r.method.to_owned(), r.route.to_owned()))
        .collect();
    let missing: Vec<_> = documented.difference(&table).collect();
    let unknown: Vec<_> = table.difference(&documented).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "routes without an authorization row: {missing:?}; rows for undocumented routes: {unknown:?}"
    );
}

async fn run_matrix(host: &Host) {
    let world = World::build(Api::new(&host.base))
        .await
        .expect("both organizations are set up");
    let rows = rows(&world.ids);
    let mut failures = Vec::new();
    let mut cells = 0;
    for row in &rows {
        for (who, expect) in WHO.iter().zip(row.expect) {
            cells += 1;
            if let Err(e) = world.cell(row, *who, expect).await {
                failures.push(format!("{:?} × {} {}: {e:#}", who, row.method, row.route));
            }
        }
    }
    tests::figure(
        &format!("authorization matrix ({})", host.name),
        &format!(
            "{} rows × {} callers = {cells} cells, {} failed",
            rows.len(),
            WHO.len(),
            failures.len()
        ),
    );
    assert!(
        failures.is_empty(),
        "{} of {cells} cells failed on the {}:\n{}",
        failures.len(),
        host.name,
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn authorization_matrix_on_the_server() {
    let host = Host::server(None).await.expect("server starts");
    run_matrix(&host).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn authorization_matrix_on_the_worker() {
    let host = Host::worker().await.expect("worker starts under workerd");
    run_matrix(&host).await;
}
