//! The operations of `model::service` over the in-memory store: the rules without a host.

use futures_executor::block_on;
use model::Error;
use model::api::{
    CreateKeyRequest, LoginRequest, SettingsPatch, VerifyCode, VerifyRequest, VerifyResponse,
};
use model::domain::{KeyRole, PermissionScope};
use model::key::ApiKey;
use model::service::{Caller, Credential, Keygate};
use model::store::{MemoryStore, Store};
use time::{Duration, OffsetDateTime};

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn signed_in(kg: &Keygate<MemoryStore>) -> Caller {
    block_on(async {
        kg.bootstrap(
            Some("root@example.com".into()),
            Some("pw-123456".into()),
            now(),
        )
        .await
        .expect("bootstrap");
        let login = kg
            .login(
                LoginRequest {
                    email: "ROOT@example.com".into(),
                    password: "pw-123456".into(),
                },
                now(),
            )
            .await
            .expect("login");
        kg.authenticate(Credential::Bearer(&login.token), true, now())
            .await
            .expect("auth")
    })
}

fn request(caller: &Caller) -> CreateKeyRequest {
    CreateKeyRequest {
        name: "ci".into(),
        namespace: caller.org.id.clone(),
        role: Some(KeyRole::Editor),
        ..Default::default()
    }
}

fn verify(key: &str) -> VerifyRequest {
    VerifyRequest {
        key: key.into(),
        ..Default::default()
    }
}

#[test]
fn bootstrap_happens_once() {
    let kg = Keygate::new(MemoryStore::default());
    let first = block_on(kg.bootstrap(None, Some("pw-123456".into()), now())).expect("bootstrap");
    assert!(first.is_some_and(|b| b.setup_token.is_none()));
    assert!(
        block_on(kg.bootstrap(None, None, now()))
            .expect("second")
            .is_none()
    );
}

/// Finding 11: without a password, the first admin has none, and a one-time set-up link
/// (valid for an hour, renewed at a later start) lets the first person choose it.
#[test]
fn without_a_password_the_first_admin_chooses_one_through_a_set_up_link() {
    use model::api::SetupRequest;
    let kg = Keygate::new(MemoryStore::default());
    let t0 = now();
    let token = block_on(kg.bootstrap(None, None, t0))
        .expect("bootstrap")
        .and_then(|b| b.setup_token)
        .expect("a set-up token");
    assert!(token.starts_with("kgu_") && token.len() > 40);
    let login = |password: &str| {
        block_on(kg.login(
            LoginRequest {
                email: "admin@keygate.local".into(),
                password: password.into(),
            },
            now(),
        ))
    };
    // No password works yet, not even an empty one.
    assert!(matches!(login(""), Err(Error::InvalidCredentials)));
    let setup = |token: &str, at| {
        block_on(kg.setup(
            token,
            SetupRequest {
                password: "chosen-password".into(),
                name: Some("Ada".into()),
            },
            at,
        ))
    };
    // An hour later the link is dead; a start then prints a new one, and only the new works.
    assert!(matches!(
        setup(&token, t0 + Duration::minutes(61)),
        Err(Error::NotFound(_))
    ));
    assert_eq!(
        block_on(kg.renew_setup(t0 + Duration::minutes(5), false)).expect("renew"),
        None,
        "a link that still works is not replaced unless asked"
    );
    let renewed = block_on(kg.renew_setup(t0 + Duration::minutes(61), false))
        .expect("renew")
        .expect("a new link");
    assert!(matches!(setup(&token, now()), Err(Error::NotFound(_))));
    let user = setup(&renewed, now()).expect("set up").user;
    assert_eq!(user.name, "Ada");
    assert!(login("chosen-password").is_ok());
    // Spent: neither the link nor a later start sets it again.
    assert!(matches!(setup(&renewed, now()), Err(Error::NotFound(_))));
    assert_eq!(block_on(kg.renew_setup(now(), true)).expect("renew"), None);
}

#[test]
fn wrong_password_and_unknown_email_answer_alike() {
    let kg = Keygate::new(MemoryStore::default());
    block_on(kg.bootstrap(Some("a@example.com".into()), Some("right".into()), now()))
        .expect("bootstrap");
    for (email, password) in [("a@example.com", "wrong"), ("b@example.com", "right")] {
        let err = block_on(kg.login(
            LoginRequest {
                email: email.into(),
                password: password.into(),
            },
            now(),
        ));
        assert!(matches!(err, Err(Error::InvalidCredentials)));
    }
}

fn enable(kg: &Keygate<MemoryStore>, caller: &Caller) -> Caller {
    block_on(async {
        let patch = SettingsPatch {
            api_keys_enabled: Some(true),
            ..Default::default()
        };
        kg.update_settings(caller, patch, now())
            .await
            .expect("enable");
        let login = LoginRequest {
            email: "root@example.com".into(),
            password: "pw-123456".into(),
        };
        let token = kg.login(login, now()).await.expect("login").token;
        kg.authenticate(Credential::Bearer(&token), true, now())
            .await
            .expect("auth")
    })
}

#[test]
fn keys_need_the_switch_on() {
    let kg = Keygate::new(MemoryStore::default());
    let caller = signed_in(&kg);
    let refused = block_on(kg.create_key(&caller, request(&caller), now()));
    assert!(matches!(refused, Err(Error::ApiKeysDisabled)));
    let caller = enable(&kg, &caller);
    assert!(block_on(kg.create_key(&caller, request(&caller), now())).is_ok());
}

#[test]
fn created_key_verifies_and_a_wrong_secret_does_not() {
    let kg = Keygate::new(MemoryStore::default());
    let caller = enable(&kg, &signed_in(&kg));
    let created = block_on(kg.create_key(&caller, request(&caller), now())).expect("create");
    let ok = block_on(kg.verify(&verify(&created.key), now())).expect("verify");
    assert_eq!(ok.code, VerifyCode::Valid);
    assert_eq!(ok.key_id.as_deref(), Some(created.record.id.as_str()));

    // Same id, well-formed checksum, different secret: indistinguishable from an unknown key.
    let forged = ApiKey::generate("kg", &created.record.id["key_".len()..]).expect("csprng");
    let answer = block_on(kg.verify(&verify(forged.expose()), now())).expect("verify");
    assert_eq!(answer, VerifyResponse::bare(VerifyCode::NotFound));

    let mut req = verify(&created.key);
    req.permissions = Some(vec!["custom.thing".into()]);
    assert_eq!(
        block_on(kg.verify(&req, now())).expect("verify").code,
        VerifyCode::InsufficientPermissions
    );
    req.permissions = Some(vec!["resources.write".into()]);
    req.namespace = Some("ws_elsewhere".into());
    assert_eq!(
        block_on(kg.verify(&req, now())).expect("verify").code,
        VerifyCode::WrongNamespace
    );
}

#[test]
fn an_expired_key_verifies_as_expired() {
    let kg = Keygate::new(MemoryStore::default());
    let caller = enable(&kg, &signed_in(&kg));
    let mut req = request(&caller);
    req.expires_at = Some(now() + Duration::hours(1));
    let created = block_on(kg.create_key(&caller, req, now())).expect("create");
    let later = now() + Duration::hours(2);
    assert_eq!(
        block_on(kg.verify(&verify(&created.key), later))
            .expect("verify")
            .code,
        VerifyCode::Expired
    );
}

#[test]
fn permissions_beyond_the_creator_are_refused_and_nothing_is_written() {
    let kg = Keygate::new(MemoryStore::default());
    let caller = enable(&kg, &signed_in(&kg));
    let mut req = request(&caller);
    req.role = None;
    req.permissions = Some(vec![PermissionScope {
        permission: "datasets.delete".into(),
        resources: None,
    }]);
    assert!(matches!(
        block_on(kg.create_key(&caller, req, now())),
        Err(Error::PermissionNotHeld(_))
    ));
    let listed = block_on(kg.list_keys(&caller, Default::default(), now())).expect("list");
    assert!(listed.items.is_empty());
}

/// A store that fails every call on keys under a prefix: fault injection, not a host.
#[derive(Clone, Default)]
struct Faulty {
    inner: MemoryStore,
    fail: std::sync::Arc<std::sync::Mutex<Option<&'static str>>>,
}

impl Faulty {
    fn check(&self, key: &str) -> Result<(), model::store::StoreError> {
        match *self.fail.lock().expect("lock") {
            Some(prefix) if key.starts_with(prefix) => {
                Err(model::store::StoreError::new("injected"))
            }
            _ => Ok(()),
        }
    }
}

impl model::store::Store for Faulty {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, model::store::StoreError> {
        self.check(key)?;
        self.inner.get(key).await
    }
    async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<model::store::Listing, model::store::StoreError> {
        self.check(prefix)?;
        self.inner.list(prefix, cursor, limit).await
    }
    async fn commit(&self, batch: model::store::Batch) -> Result<(), model::store::StoreError> {
        for op in &batch.ops {
            let (model::store::Op::Put(k, _) | model::store::Op::Delete(k)) = op;
            self.check(k)?;
        }
        self.inner.commit(batch).await
    }
}

#[test]
fn a_failing_store_never_yields_valid_and_leaves_nothing_half_written() {
    let store = Faulty::default();
    let kg = Keygate::new(store.clone());
    block_on(kg.bootstrap(
        Some("root@example.com".into()),
        Some("pw-123456".into()),
        now(),
    ))
    .expect("bootstrap");
    let login = LoginRequest {
        email: "root@example.com".into(),
        password: "pw-123456".into(),
    };
    let token = block_on(kg.login(login, now())).expect("login").token;
    let caller = block_on(kg.authenticate(Credential::Bearer(&token), true, now())).expect("auth");
    block_on(kg.update_settings(
        &caller,
        SettingsPatch {
            api_keys_enabled: Some(true),
            ..Default::default()
        },
        now(),
    ))
    .expect("enable");
    let caller = block_on(kg.authenticate(Credential::Bearer(&token), true, now())).expect("auth");
    let created = block_on(kg.create_key(&caller, request(&caller), now())).expect("create");

    for prefix in ["v1:key:", "v1:user:", "v1:org:"] {
        *store.fail.lock().expect("lock") = Some(prefix);
        assert!(
            matches!(
                block_on(kg.verify(&verify(&created.key), now())),
                Err(Error::Store(_))
            ),
            "{prefix}"
        );
    }
    *store.fail.lock().expect("lock") = Some("v1:ix:");
    let refused = block_on(kg.create_key(&caller, request(&caller), now()));
    assert!(matches!(refused, Err(Error::Store(_))));
    *store.fail.lock().expect("lock") = None;
    let listed = block_on(kg.list_keys(&caller, Default::default(), now())).expect("list");
    assert_eq!(
        listed.items.len(),
        1,
        "the refused creation left nothing behind"
    );
    assert_eq!(
        block_on(kg.verify(&verify(&created.key), now()))
            .expect("verify")
            .code,
        VerifyCode::Valid
    );
}

/// Two writers (isolates) counting the same key in the same minute: neither overwrites the
/// other, and the usage read sums them.
#[test]
fn usage_from_two_writers_adds_up() {
    let store = MemoryStore::default();
    let one = Keygate::new(store.clone());
    let caller = enable(&one, &signed_in(&one));
    let created = block_on(one.create_key(&caller, request(&caller), now())).expect("create");
    let other = Keygate::new(store);
    let at = now();
    for (kg, times) in [(&one, 3), (&other, 4)] {
        for _ in 0..times {
            let answer = block_on(kg.verify(&verify(&created.key), at)).expect("verify");
            assert_eq!(answer.code, VerifyCode::Valid);
        }
    }
    block_on(one.flush_usage(at)).expect("flush one");
    block_on(other.flush_usage(at)).expect("flush other");
    let usage =
        block_on(one.key_usage(&caller, &created.record.id, Default::default())).expect("usage");
    assert_eq!(usage.items.len(), 1, "{usage:?}");
    assert_eq!(usage.items[0].counts.get(&VerifyCode::Valid), Some(&7));
    // Each wrote its own record, so concurrent flushes cannot lose each other's counts.
    let slots = block_on(one.store().list(
        &model::store::schema::usage_prefix(&created.record.id),
        None,
        100,
    ))
    .expect("list");
    assert_eq!(slots.keys.len(), 2, "{slots:?}");
}

/// The audit's finding 6: a sign-in with an email that is no email (absurdly long, no `@`)
/// is refused as invalid input and writes nothing: no store key is built from it.
#[test]
fn absurd_sign_in_input_is_refused_and_writes_nothing() {
    let kg = Keygate::new(MemoryStore::default());
    let _ = signed_in(&kg);
    let everything = |kg: &Keygate<MemoryStore>| {
        block_on(kg.store().list("", None, 100_000))
            .expect("list")
            .keys
    };
    let before = everything(&kg);
    for email in [
        format!("{}@example.com", "a".repeat(60_000)),
        "no at sign".to_owned(),
        String::new(),
    ] {
        let answer = block_on(kg.login(
            LoginRequest {
                email: email.clone(),
                password: "x".into(),
            },
            now(),
        ));
        assert!(
            matches!(answer, Err(Error::Validation { field: "email", .. })),
            "{}",
            &email[..email.len().min(20)]
        );
    }
    assert_eq!(everything(&kg), before);
    // A valid email's throttle key is bounded by the email's own bound.
    let longest = format!("{}@{}.com", "a".repeat(64), "b".repeat(185));
    assert!(model::store::schema::login_throttle(&longest).len() <= model::store::MAX_KEY_BYTES);
}

/// Changes less than a millisecond apart list newest first (the events' index is kept to the
/// nanosecond; the in-process contract found `key.created` listed before `key.revoked` when
/// both happened within one millisecond). Eight creations a microsecond apart: with a
/// millisecond index they would come back in their random ids' order.
#[test]
fn events_made_within_one_millisecond_list_newest_first() {
    let kg = Keygate::new(MemoryStore::default());
    let caller = enable(&kg, &signed_in(&kg));
    let at = time::macros::datetime!(2030-01-01 12:00:00.000_100 UTC);
    let mut made = Vec::new();
    for micros in 0..8 {
        let when = at + Duration::microseconds(micros);
        let created = block_on(kg.create_key(&caller, request(&caller), when)).expect("create");
        made.push(created.record.id);
    }
    let query = model::api::EventQuery {
        kind: Some("key.created".into()),
        ..Default::default()
    };
    let listed = block_on(kg.events(&caller, query)).expect("events");
    let targets: Vec<&str> = listed
        .items
        .iter()
        .filter_map(|e| e.target.as_deref())
        .collect();
    made.reverse();
    assert_eq!(targets, made);
}
