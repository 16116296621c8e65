//! The store-fault sweep (issue #7): every operation of `model::service`, run once per store
//! call it makes with exactly that call failing (the 1st, the 2nd, … until a run makes no
//! failing call), from the same starting store each time.
//!
//! After every failing run the operation must have answered 503 `store_unavailable`, and the
//! store must hold exactly what it held before, or exactly what a run without failures leaves
//! (new ids, hashes and salts aside, which differ from run to run): never half a change.
//! Verification must never answer at all, let alone `VALID`, while one of its reads failed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_executor::block_on;
use model::Error;
use model::api::{
    AcceptRequest, CreateKeyRequest, CreateOrganizationRequest, DeleteKeyQuery, EventQuery,
    GrantQuery, GrantRequest, InviteRequest, KeyPatch, LoginRequest, NamespaceKind,
    NamespaceRequest, PageQuery, PermissionRequest, ResourcePatch, ResourceRequest, RolesPatch,
    RollRequest, SettingsPatch, VerifyCode, VerifyRequest, WebhookPatch, WebhookRequest,
};
use model::api::{GithubAlert, GithubAlerts};
use model::domain::{KeyRole, Role, Timestamp};
use model::service::{Caller, Credential, Keygate};
use model::store::{Batch, Listing, MemoryStore, Store, StoreError};
use time::{Duration, OffsetDateTime};

/// GitHub's side of the secret scanning endpoint: a fixed P-256 key and its list, served
/// from memory (the store is what fails here, never the list).
mod github {
    use std::sync::Arc;

    use base64::Engine;
    use model::service::{Fetch, Fetching, GithubKeys, Posting};
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::{Signature, SigningKey};
    use p256::pkcs8::{EncodePublicKey, LineEnding};

    pub const KEY_ID: &str = "sweep";

    fn key() -> SigningKey {
        SigningKey::from_slice(&[7u8; 32]).expect("a valid scalar")
    }

    pub fn sign(body: &[u8]) -> String {
        let signature: Signature = key().sign(body);
        base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes())
    }

    struct List;

    impl Fetch for List {
        fn get<'a>(&'a self, _: &'a str) -> Fetching<'a> {
            let pem = key()
                .verifying_key()
                .to_public_key_pem(LineEnding::LF)
                .expect("PEM");
            let list = serde_json::json!({"public_keys": [{"key_identifier": KEY_ID, "key": pem}]});
            Box::pin(async move { Ok(serde_json::to_vec(&list).expect("JSON")) })
        }

        fn post<'a>(
            &'a self,
            _: &'a str,
            _: &'a [(&'static str, String)],
            _: &'a [u8],
        ) -> Posting<'a> {
            Box::pin(async { Err("a key list takes no deliveries".to_owned()) })
        }
    }

    pub fn keys() -> Arc<GithubKeys> {
        Arc::new(GithubKeys::new("memory", Arc::new(List)))
    }
}

/// A store that fails exactly its `fail_at`-th call (get, list or commit; 0: none) and counts
/// every call. A failed commit writes nothing, as a failed redb transaction.
#[derive(Clone, Default)]
struct Sweep {
    inner: MemoryStore,
    calls: Arc<AtomicUsize>,
    fail_at: usize,
}

impl Sweep {
    fn call(&self) -> Result<(), StoreError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.fail_at {
            Err(StoreError::new(format!("injected failure of call {n}")))
        } else {
            Ok(())
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Store for Sweep {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.call()?;
        self.inner.get(key).await
    }

    async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Listing, StoreError> {
        self.call()?;
        self.inner.list(prefix, cursor, limit).await
    }

    async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        self.call()?;
        self.inner.commit(batch).await
    }
}

/// Everything a store holds.
type Contents = BTreeMap<String, Vec<u8>>;

fn contents(store: &MemoryStore) -> Contents {
    block_on(async {
        let listing = store.list("", None, 1_000_000).await.expect("list");
        let mut all = Contents::new();
        for key in listing.keys {
            let value = store.get(&key).await.expect("get").expect("listed");
            all.insert(key, value);
        }
        all
    })
}

fn restore(contents: &Contents) -> MemoryStore {
    let store = MemoryStore::default();
    let mut batch = Batch::default();
    for (key, value) in contents {
        batch
            .ops
            .push(model::store::Op::Put(key.clone(), value.clone()));
    }
    block_on(store.commit(batch)).expect("restore");
    store
}

/// A store's contents with every token a run made up (ids, hashes, salts, tokens: anything
/// of 12 characters or more that the starting store does not hold) replaced by its kind
/// (`key_#`, `#`), as a multiset of lines: equal for two runs that wrote the same things.
fn normalized(contents: &Contents, known: &BTreeSet<String>) -> BTreeMap<String, usize> {
    let mut lines = BTreeMap::new();
    for (key, value) in contents {
        let line = format!("{key} = {}", String::from_utf8_lossy(value));
        let mut out = String::with_capacity(line.len());
        let mut token = String::new();
        for c in line.chars().chain(std::iter::once('\n')) {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '/') {
                token.push(c);
                continue;
            }
            if token.len() >= 12 && !known.contains(&token) {
                let kind = token.split_once('_').map_or("", |(kind, _)| kind);
                out.push_str(kind);
                out.push_str(if kind.is_empty() { "#" } else { "_#" });
            } else {
                out.push_str(&token);
            }
            token.clear();
            out.push(c);
        }
        *lines.entry(out).or_insert(0) += 1;
    }
    lines
}

/// Every token of 12 characters or more in `contents`.
fn tokens(contents: &Contents) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for (key, value) in contents {
        let line = format!("{key} = {}", String::from_utf8_lossy(value));
        for token in line.split(|c: char| !(c.is_ascii_alphanumeric() || "_+/".contains(c))) {
            if token.len() >= 12 {
                all.insert(token.to_owned());
            }
        }
    }
    all
}

/// The starting store of every run, and the callers and ids the operations act on.
struct World {
    contents: Contents,
    admin: Caller,
    developer: Caller,
    developer_id: String,
    leaver_id: String,
    invitation: String,
    /// The same pending invitation's id.
    invitation_id: String,
    app: String,
    workspace: String,
    group: String,
    keys: [String; 3],
    /// The developer's key in the workspace, named by a grant of its own.
    developer_key: (String, String),
    /// An admin key in the workspace that owns a resource.
    owning_key: String,
    group_grant: String,
    key_grant: String,
    resource: String,
    admin_key_plaintext: String,
    /// A webhook taking key events, with messages in its queue.
    webhook: String,
    at: Timestamp,
}

const PASSWORD: &str = "pw-123456";

async fn login(kg: &Keygate<MemoryStore>, email: &str) -> Caller {
    let request = LoginRequest {
        email: email.into(),
        password: PASSWORD.into(),
    };
    let token = kg.login(request, now()).await.expect("login").token;
    kg.authenticate(Credential::Bearer(&token), true, now())
        .await
        .expect("authenticate")
}

async fn member(
    kg: &Keygate<MemoryStore>,
    admin: &Caller,
    email: &str,
    roles: Vec<Role>,
) -> String {
    let invite = InviteRequest {
        email: email.into(),
        roles,
    };
    let token = kg
        .invite(admin, invite, now())
        .await
        .expect("invite")
        .invitation_token;
    let accept = AcceptRequest {
        name: "Member".into(),
        password: PASSWORD.into(),
    };
    kg.accept(&token, accept, now())
        .await
        .expect("accept")
        .user
        .id
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn key_request(name: &str, namespace: &str) -> CreateKeyRequest {
    CreateKeyRequest {
        name: name.into(),
        namespace: namespace.into(),
        role: Some(KeyRole::Editor),
        ..Default::default()
    }
}

fn grant(principal: &str, namespace: &str, permission: &str) -> GrantRequest {
    GrantRequest {
        principal: principal.into(),
        namespace: namespace.into(),
        permission: permission.into(),
        resources: None,
    }
}

fn namespace(name: &str, app: Option<&str>, parent: Option<&str>) -> NamespaceRequest {
    NamespaceRequest {
        name: name.into(),
        app: app.map(Into::into),
        parent: parent.map(Into::into),
    }
}

/// An organization with API keys on, an admin and two members, an application with a
/// workspace, a user group with a member and grants, keys (one named by a grant, one owning a
/// resource), a resource and a pending invitation.
fn world() -> World {
    let kg = Keygate::new(MemoryStore::default());
    let root = "root@example.com";
    let mut world = block_on(async {
        kg.bootstrap(Some(root.into()), Some(PASSWORD.into()), now())
            .await
            .expect("bootstrap");
        let admin = login(&kg, root).await;
        let on = SettingsPatch {
            api_keys_enabled: Some(true),
            ..Default::default()
        };
        kg.update_settings(&admin, on, now())
            .await
            .expect("enable keys");
        let admin = login(&kg, root).await;
        let developer_id = member(&kg, &admin, "dev@example.com", vec![Role::Developer]).await;
        let leaver_id = member(&kg, &admin, "leaver@example.com", vec![]).await;
        let org = admin.org.id.clone();
        let app = kg
            .create_namespace(
                &admin,
                NamespaceKind::Application,
                namespace("billing", None, None),
                now(),
            )
            .await
            .expect("app")
            .id;
        let workspace = kg
            .create_namespace(
                &admin,
                NamespaceKind::Workspace,
                namespace("invoices", Some(&app), None),
                now(),
            )
            .await
            .expect("workspace")
            .id;
        let group = kg
            .create_namespace(
                &admin,
                NamespaceKind::Usergroup,
                namespace("finance", None, Some(&org)),
                now(),
            )
            .await
            .expect("group")
            .id;
        kg.set_group_member(&admin, &group, &developer_id, true, now())
            .await
            .expect("group member");
        let group_grant = kg
            .create_grant(&admin, grant(&group, &workspace, "resources.write"), now())
            .await
            .expect("group grant")
            .id;
        kg.create_grant(
            &admin,
            grant(&developer_id, &workspace, "resources.read"),
            now(),
        )
        .await
        .expect("user grant");
        let mut keys = Vec::new();
        let mut admin_key_plaintext = String::new();
        for name in ["one", "two", "three"] {
            let created = kg
                .create_key(&admin, key_request(name, &org), now())
                .await
                .expect("key");
            admin_key_plaintext = created.key;
            keys.push(created.record.id);
        }
        let developer = login(&kg, "dev@example.com").await;
        let developer_key = kg
            .create_key(&developer, key_request("dev", &workspace), now())
            .await
            .expect("developer key");
        let key_grant = kg
            .create_grant(
                &admin,
                grant(&developer_key.record.id, &workspace, "resources.read"),
                now(),
            )
            .await
            .expect("key grant")
            .id;
        let owning = kg
            .create_key(&admin, key_request("owner", &workspace), now())
            .await
            .expect("owning key");
        let as_key = kg
            .authenticate(Credential::Bearer(&owning.key), true, now())
            .await
            .expect("key caller");
        let dataset = ResourceRequest {
            namespace: workspace.clone(),
            kind: "dataset".into(),
            name: "q3".into(),
        };
        kg.create_resource(&as_key, dataset.clone(), now())
            .await
            .expect("key's resource");
        let resource = kg
            .create_resource(&admin, dataset, now())
            .await
            .expect("resource")
            .id;
        let invitation = kg
            .invite(
                &admin,
                InviteRequest {
                    email: "new@example.com".into(),
                    roles: vec![Role::Developer],
                },
                now(),
            )
            .await
            .expect("invitation")
            .invitation_token;
        let invitation_id = kg
            .invitations(&admin, PageQuery::default(), now())
            .await
            .expect("invitations")
            .items
            .into_iter()
            .find(|i| i.email == "new@example.com")
            .expect("pending")
            .id;
        let webhook = kg
            .create_webhook(
                &admin,
                WebhookRequest {
                    url: "https://hooks.example.com/keygate".into(),
                    events: vec!["key.created".into(), "key.revoked".into()],
                    description: None,
                },
                now(),
            )
            .await
            .expect("webhook")
            .webhook
            .id;
        // A message in its queue (this Keygate sends nothing: it only hands out the outbox).
        kg.create_key(&admin, key_request("told", &admin.org.id), now())
            .await
            .expect("told key");
        kg.deliver_webhooks().await.expect("fan out");
        World {
            contents: Contents::new(),
            webhook,
            admin,
            developer,
            developer_id,
            leaver_id,
            invitation,
            invitation_id,
            app,
            workspace,
            group,
            keys: [keys[0].clone(), keys[1].clone(), keys[2].clone()],
            developer_key: (developer_key.record.id, developer_key.key),
            owning_key: owning.record.id,
            group_grant,
            key_grant,
            resource,
            admin_key_plaintext,
            at: now() + Duration::minutes(1),
        }
    });
    world.contents = contents(kg.store());
    world
}

/// One operation, run over a fresh copy of the world's store.
type Operation = Box<dyn Fn(&Keygate<Sweep>, &World) -> Result<(), Error>>;

/// `op!(name, |kg, w| future)`: an operation that changes the store; `read!(…)`: one that
/// only reads it. Either runs its future to completion and drops the answer.
macro_rules! op {
    ($name:expr, |$kg:ident, $w:ident| $body:expr) => {
        (
            $name,
            true,
            Box::new(|$kg: &Keygate<Sweep>, $w: &World| block_on($body).map(drop)) as Operation,
        )
    };
}
macro_rules! read {
    ($($op:tt)*) => {{
        let (name, _, operation) = op!($($op)*);
        (name, false, operation)
    }};
}

/// Every management operation, and reads whose answer is built from several store calls.
fn operations() -> Vec<(&'static str, bool, Operation)> {
    vec![
        op!("create key", |kg, w| kg.create_key(
            &w.admin,
            key_request("new", &w.admin.org.id),
            w.at
        )),
        op!("create key (developer, group grant)", |kg, w| kg
            .create_key(
                &w.developer,
                key_request("new", &w.workspace),
                w.at
            )),
        op!("rename key", |kg, w| kg.update_key(
            &w.admin,
            &w.keys[0],
            KeyPatch {
                name: Some("renamed".into()),
                description: Some(Some("why".into())),
            },
            w.at
        )),
        op!("revoke key", |kg, w| kg
            .revoke_key(&w.admin, &w.keys[0], w.at)),
        op!("bulk revoke", |kg, w| kg.bulk_revoke(
            &w.admin,
            w.keys.to_vec(),
            w.at
        )),
        op!("report leaked keys (a live one and garbage)", |kg, w| kg
            .report_leaked(
                model::api::LeakReport {
                    keys: vec![w.admin_key_plaintext.clone(), "kg_not-a-key".into()],
                },
                None,
                w.at
            )),
        op!("report leaked keys (nothing matches)", |kg, w| kg
            .report_leaked(
                model::api::LeakReport {
                    keys: vec!["kg_not-a-key".into()],
                },
                None,
                w.at
            )),
        op!(
            "GitHub secret scanning alerts (a live key and garbage)",
            |kg, w| async {
                let alerts = GithubAlerts(
                    [w.admin_key_plaintext.as_str(), "kg_not-a-key"]
                        .iter()
                        .map(|token| GithubAlert {
                            token: (*token).to_owned(),
                            token_type: "keygate_api_key".into(),
                            url: Some("https://github.com/o/r/blob/main/.env".into()),
                            source: Some("content".into()),
                        })
                        .collect(),
                );
                let body = serde_json::to_vec(&alerts).unwrap_or_default();
                let signature = github::sign(&body);
                let signed = kg
                    .github_signature(Some(github::KEY_ID), Some(&signature), &body, w.at)
                    .await?;
                kg.github_alerts(signed, alerts, w.at).await
            }
        ),
        op!("roll key", |kg, w| kg.roll_key(
            &w.admin,
            &w.keys[1],
            RollRequest {
                grace_seconds: 3600
            },
            w.at
        )),
        op!("delete key", |kg, w| kg.delete_key(
            &w.admin,
            &w.keys[2],
            DeleteKeyQuery::default(),
            w.at
        )),
        op!("delete key (grant, transfer)", |kg, w| kg.delete_key(
            &w.admin,
            &w.owning_key,
            DeleteKeyQuery {
                transfer_to: Some(w.developer_id.clone()),
                delete_resources: None,
            },
            w.at
        )),
        op!("delete key (its grant)", |kg, w| kg.delete_key(
            &w.developer,
            &w.developer_key.0,
            DeleteKeyQuery::default(),
            w.at
        )),
        op!("patch settings", |kg, w| kg.update_settings(
            &w.admin,
            SettingsPatch {
                max_active_keys_per_user: Some(7),
                max_expiry_days: Some(Some(90)),
                ..Default::default()
            },
            w.at
        )),
        op!("invite", |kg, w| kg.invite(
            &w.admin,
            InviteRequest {
                email: "other@example.com".into(),
                roles: vec![Role::Developer],
            },
            w.at
        )),
        op!("accept invitation", |kg, w| kg.accept(
            &w.invitation,
            AcceptRequest {
                name: "New Person".into(),
                password: PASSWORD.into(),
            },
            w.at
        )),
        op!("revoke invitation", |kg, w| kg.revoke_invitation(
            &w.admin,
            &w.invitation_id,
            w.at
        )),
        op!("set roles", |kg, w| kg.set_roles(
            &w.admin,
            &w.developer_id,
            RolesPatch {
                roles: vec![Role::Developer, Role::Admin]
            },
            w.at
        )),
        op!("remove member", |kg, w| kg.remove_member(
            &w.admin,
            &w.leaver_id,
            w.at
        )),
        op!("create organization", |kg, w| kg.create_organization(
            &w.admin,
            CreateOrganizationRequest {
                name: "Acme".into(),
                admin_email: "boss@acme.example".into(),
            },
            w.at
        )),
        op!("create application", |kg, w| kg.create_namespace(
            &w.admin,
            NamespaceKind::Application,
            namespace("shop", None, None),
            w.at
        )),
        op!("create workspace", |kg, w| kg.create_namespace(
            &w.admin,
            NamespaceKind::Workspace,
            namespace("refunds", Some(&w.app), None),
            w.at
        )),
        op!("create user group", |kg, w| kg.create_namespace(
            &w.admin,
            NamespaceKind::Usergroup,
            namespace("auditors", None, Some(&w.app)),
            w.at
        )),
        op!("rename workspace", |kg, w| kg.rename_namespace(
            &w.admin,
            NamespaceKind::Workspace,
            &w.workspace,
            "receipts",
            w.at
        )),
        op!("delete user group (members, grants)", |kg, w| kg
            .delete_namespace(
                &w.admin,
                NamespaceKind::Usergroup,
                &w.group,
                w.at
            )),
        op!("add group member", |kg, w| kg.set_group_member(
            &w.admin,
            &w.group,
            &w.leaver_id,
            true,
            w.at
        )),
        op!("remove group member", |kg, w| kg.set_group_member(
            &w.admin,
            &w.group,
            &w.developer_id,
            false,
            w.at
        )),
        op!("define permission", |kg, w| kg.define_permission(
            &w.admin,
            PermissionRequest {
                name: "datasets.delete".into(),
                description: None,
            },
            w.at
        )),
        op!("create grant (group)", |kg, w| kg.create_grant(
            &w.admin,
            grant(&w.group, &w.workspace, "resources.read"),
            w.at
        )),
        op!("create grant (key)", |kg, w| kg.create_grant(
            &w.admin,
            grant(&w.keys[0], &w.admin.org.id, "resources.read"),
            w.at
        )),
        op!("delete grant (group)", |kg, w| kg.delete_grant(
            &w.admin,
            &w.group_grant,
            w.at
        )),
        op!("delete grant (key)", |kg, w| kg.delete_grant(
            &w.admin,
            &w.key_grant,
            w.at
        )),
        op!("create resource (developer)", |kg, w| kg.create_resource(
            &w.developer,
            ResourceRequest {
                namespace: w.workspace.clone(),
                kind: "dataset".into(),
                name: "q4".into(),
            },
            w.at
        )),
        op!("rename resource", |kg, w| kg.rename_resource(
            &w.admin,
            &w.resource,
            ResourcePatch {
                name: "q3-final".into()
            },
            w.at
        )),
        op!("delete resource", |kg, w| kg.delete_resource(
            &w.admin,
            &w.resource,
            w.at
        )),
        op!("sign in", |kg, w| kg.login(
            LoginRequest {
                email: "dev@example.com".into(),
                password: PASSWORD.into(),
            },
            w.at
        )),
        op!("sign out", |kg, w| kg.logout(&w.developer)),
        read!("list keys (all)", |kg, w| kg.list_keys(
            &w.admin,
            model::api::KeyListQuery {
                all: Some(true),
                ..Default::default()
            },
            w.at
        )),
        read!("me (developer)", |kg, w| kg.me(&w.developer)),
        read!("invitations", |kg, w| kg.invitations(
            &w.admin,
            PageQuery::default(),
            w.at
        )),
        read!("members", |kg, w| kg
            .members(&w.admin, PageQuery::default())),
        read!("grants", |kg, w| kg.grants(&w.admin, GrantQuery::default())),
        read!("events", |kg, w| kg.events(&w.admin, EventQuery::default())),
        op!("create webhook", |kg, w| kg.create_webhook(
            &w.admin,
            WebhookRequest {
                url: "https://other.example.com/hook".into(),
                events: vec!["key.leaked".into()],
                description: Some("second".into()),
            },
            w.at
        )),
        op!("update webhook", |kg, w| kg.update_webhook(
            &w.admin,
            &w.webhook,
            WebhookPatch {
                enabled: Some(false),
                ..Default::default()
            },
            w.at
        )),
        op!("delete webhook", |kg, w| kg
            .delete_webhook(&w.admin, &w.webhook, w.at)),
        read!("webhooks", |kg, w| kg
            .list_webhooks(&w.admin, PageQuery::default())),
        read!("webhook deliveries", |kg, w| kg.webhook_deliveries(
            &w.admin,
            &w.webhook,
            PageQuery::default()
        )),
    ]
}

/// Runs `op` over a copy of the world's store failing call `fail_at` (0: none); the result,
/// the calls made and what the store holds afterwards.
fn run(w: &World, op: &Operation, fail_at: usize) -> (Result<(), Error>, usize, Contents) {
    let store = Sweep {
        inner: restore(&w.contents),
        fail_at,
        ..Default::default()
    };
    let kg = Keygate::new(store.clone()).with_github(github::keys());
    let result = op(&kg, w);
    (result, store.calls(), contents(&store.inner))
}

#[test]
fn every_operation_fails_whole_at_every_store_call() {
    let w = world();
    let known = tokens(&w.contents);
    let before = normalized(&w.contents, &known);
    let (mut faults, mut covered, mut problems) = (0, 0, Vec::new());
    for (name, writes, op) in operations() {
        let (clean, calls, after) = run(&w, &op, 0);
        if let Err(e) = clean {
            panic!("{name}: fails without a fault: {e}");
        }
        let success = normalized(&after, &known);
        assert_eq!(success != before, writes, "{name}: what it changes");
        covered += 1;
        // Sign-in counts the attempt in a batch of its own before the password is tried (so
        // that racing sign-ins cannot try more than five): that count is all a failure after
        // it may leave behind — a failing store never gives an attempt back.
        let residue: &[&str] = if name == "sign in" {
            &["v1:throttle:login:"]
        } else {
            &[]
        };
        let without = |lines: &BTreeMap<String, usize>| -> BTreeMap<String, usize> {
            lines
                .iter()
                .filter(|(line, _)| !residue.iter().any(|p| line.starts_with(p)))
                .map(|(line, n)| (line.clone(), *n))
                .collect()
        };
        let (before, success) = (without(&before), without(&success));
        for n in 1..=calls {
            faults += 1;
            let (result, _, after) = run(&w, &op, n);
            match &result {
                Err(e) if (e.status(), e.code()) == (503, "store_unavailable") => {}
                Err(e) => problems.push(format!("{name}, call {n} failing: {} {e}", e.code())),
                Ok(()) => problems.push(format!("{name}, call {n} failing: answered Ok")),
            }
            let left = without(&normalized(&after, &known));
            if left != before && left != success {
                problems.push(format!("{name}, call {n} failing: half applied"));
            }
            // A 503 says nothing was changed: a change must not fail after its commit.
            if result.is_err() && left != before {
                problems.push(format!(
                    "{name}, call {n} failing: 503 after the change was made"
                ));
            }
        }
    }
    figure(
        "store faults",
        &format!(
            "{faults} single-call failures over {covered} operations, {} wrong",
            problems.len()
        ),
    );
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Verification of keys whose answer takes several reads (a developer's key with a group
/// grant and a grant of its own; an admin's key): with any one read failing it answers 503,
/// never a verdict, and writes nothing.
#[test]
fn verification_never_answers_while_a_read_fails() {
    let w = world();
    let asks = [
        (w.admin_key_plaintext.clone(), vec!["resources.write"], None),
        (
            w.developer_key.1.clone(),
            vec!["resources.read"],
            Some(w.workspace.clone()),
        ),
    ];
    let mut faults = 0;
    for (key, permissions, namespace) in asks {
        let request = VerifyRequest {
            key,
            permissions: Some(permissions.into_iter().map(Into::into).collect()),
            resource: None,
            namespace,
            ..Default::default()
        };
        let verify = |fail_at| {
            let store = Sweep {
                inner: restore(&w.contents),
                fail_at,
                ..Default::default()
            };
            let kg = Keygate::new(store.clone());
            let answer = block_on(kg.verify(&request, w.at));
            (answer, store.calls(), contents(&store.inner))
        };
        let (answer, calls, _) = verify(0);
        assert_eq!(answer.expect("verify").code, VerifyCode::Valid);
        assert!(calls >= 3, "{calls} reads");
        for n in 1..=calls {
            faults += 1;
            let (answer, _, after) = verify(n);
            match answer {
                Err(e) => assert_eq!((e.status(), e.code()), (503, "store_unavailable")),
                Ok(a) => panic!("read {n} failing, verification answered {:?}", a.code),
            }
            assert!(after == w.contents, "verification wrote");
        }
    }
    figure(
        "store faults, verification",
        &format!("{faults} single-read failures over 2 keys, never VALID"),
    );
}

/// Prints a measured figure and appends it to `<target>/debug/reliability-figures.txt`, which
/// `cargo xtask test` prints at the end (as `tests::figure` does for the host suite).
fn figure(name: &str, line: &str) {
    use std::io::Write;
    eprintln!("figure: {name}: {line}");
    // This test binary lives in <target>/debug/deps/.
    let file = std::env::current_exe().ok().and_then(|exe| {
        let debug = exe.parent()?.parent()?;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(debug.join("reliability-figures.txt"))
            .ok()
    });
    if let Some(mut file) = file {
        let _ = writeln!(file, "{name}: {line}");
    }
}
