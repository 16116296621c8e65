//! Webhook delivery rounds (`Keygate::deliver_webhooks`) over the in-memory store with an
//! injected clock, so that the whole retry schedule (27 h 35 min) runs in a moment: when each
//! attempt is made, that a key's messages go in order while one waits, that a disabled
//! webhook gets nothing and that the outbox drains with or without webhooks.

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use futures_executor::block_on;
use model::api::{CreateKeyRequest, LoginRequest, SettingsPatch, WebhookPatch, WebhookRequest};
use model::domain::KeyRole;
use model::service::{Caller, Credential, Fetch, Fetching, Keygate, Posting, Webhooks};
use model::store::{MemoryStore, Store, schema};
use serde_json::Value;
use time::{Duration, OffsetDateTime};

thread_local! {
    /// The injected clock's time, per test thread.
    static NOW: Cell<i64> = const { Cell::new(1_800_000_000) };
}

fn clock() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(NOW.with(Cell::get)).expect("a time")
}

fn advance(seconds: i64) {
    NOW.with(|now| now.set(now.get() + seconds));
}

/// One POST the receiver got: its time, headers and body.
#[derive(Debug, Clone)]
struct Post {
    at: i64,
    id: String,
    timestamp: i64,
    signature: String,
    body: Value,
    raw: Vec<u8>,
}

/// A receiver: records each POST and answers 500 to messages about the keys in `failing`.
#[derive(Default)]
struct Receiver {
    posts: Mutex<Vec<Post>>,
    failing: Mutex<HashSet<String>>,
}

impl Receiver {
    fn posts(&self) -> Vec<Post> {
        self.posts.lock().expect("lock").clone()
    }
}

impl Fetch for Receiver {
    fn get<'a>(&'a self, _: &'a str) -> Fetching<'a> {
        Box::pin(async { Err("not a key list".to_owned()) })
    }

    fn post<'a>(
        &'a self,
        _url: &'a str,
        headers: &'a [(&'static str, String)],
        body: &'a [u8],
    ) -> Posting<'a> {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let raw = body;
        let body: Value = serde_json::from_slice(raw).unwrap_or(Value::Null);
        let key = body["data"]["key_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let fails = self.failing.lock().expect("lock").contains(&key);
        self.posts.lock().expect("lock").push(Post {
            at: clock().unix_timestamp(),
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp").parse().unwrap_or(0),
            signature: header("webhook-signature"),
            body,
            raw: raw.to_vec(),
        });
        Box::pin(async move { Ok(if fails { 500 } else { 204 }) })
    }
}

struct World {
    kg: Keygate<MemoryStore>,
    admin: Caller,
    receiver: Arc<Receiver>,
}

impl World {
    fn new(with_webhooks: bool) -> Self {
        let receiver = Arc::new(Receiver::default());
        let mut kg = Keygate::new(MemoryStore::default());
        if with_webhooks {
            let client: Arc<dyn Fetch> = receiver.clone();
            kg = kg.with_webhooks(Arc::new(Webhooks::new(client, clock, false)));
        }
        let admin = block_on(async {
            kg.bootstrap(
                Some("root@example.com".into()),
                Some("pw-123456".into()),
                clock(),
            )
            .await
            .expect("bootstrap");
            let login = kg
                .login(
                    LoginRequest {
                        email: "root@example.com".into(),
                        password: "pw-123456".into(),
                    },
                    clock(),
                )
                .await
                .expect("login");
            let admin = kg
                .authenticate(Credential::Bearer(&login.token), true, clock())
                .await
                .expect("auth");
            let enable = SettingsPatch {
                api_keys_enabled: Some(true),
                ..Default::default()
            };
            kg.update_settings(&admin, enable, clock())
                .await
                .expect("settings");
            kg.authenticate(Credential::Bearer(&login.token), true, clock())
                .await
                .expect("auth")
        });
        Self {
            kg,
            admin,
            receiver,
        }
    }

    fn webhook(&self, events: &[&str]) -> (String, String) {
        let request = WebhookRequest {
            url: "https://hooks.example.com/keygate".into(),
            events: events.iter().map(|e| (*e).to_owned()).collect(),
            description: None,
        };
        let made =
            block_on(self.kg.create_webhook(&self.admin, request, clock())).expect("webhook");
        (made.webhook.id, made.secret)
    }

    fn key(&self, name: &str) -> String {
        let request = CreateKeyRequest {
            name: name.into(),
            namespace: self.admin.org.id.clone(),
            role: Some(KeyRole::Viewer),
            ..Default::default()
        };
        block_on(self.kg.create_key(&self.admin, request, clock()))
            .expect("key")
            .record
            .id
    }

    fn key_expiring(&self, name: &str, after: Duration) -> String {
        let request = CreateKeyRequest {
            name: name.into(),
            namespace: self.admin.org.id.clone(),
            role: Some(KeyRole::Viewer),
            expires_at: Some(clock() + after),
            ..Default::default()
        };
        block_on(self.kg.create_key(&self.admin, request, clock()))
            .expect("key")
            .record
            .id
    }

    fn revoke(&self, id: &str) {
        block_on(self.kg.revoke_key(&self.admin, id, clock())).expect("revoke");
    }

    /// Delivery rounds until one leaves nothing due now.
    fn deliver(&self) {
        for _ in 0..20 {
            let done = block_on(self.kg.deliver_webhooks()).expect("round");
            if done.next_due.is_none_or(|at| at > clock()) {
                return;
            }
        }
        panic!("rounds never settled");
    }

    fn left(&self, prefix: &str) -> usize {
        block_on(self.kg.store().list(prefix, None, 1000))
            .expect("list")
            .keys
            .len()
    }
}

fn about<'a>(posts: &'a [Post], key: &str) -> Vec<&'a Post> {
    posts
        .iter()
        .filter(|p| p.body["data"]["key_id"] == key)
        .collect()
}

#[test]
fn a_failing_receiver_is_tried_on_the_schedule_then_given_up() {
    let w = World::new(true);
    let (hook, _) = w.webhook(&["key.created"]);
    let key = w.key("unlucky");
    w.receiver.failing.lock().expect("lock").insert(key.clone());
    let start = clock().unix_timestamp();
    // A day and more, a second at a time around each due attempt, 100 s otherwise.
    for _ in 0..2_000 {
        w.deliver();
        advance(100);
    }
    let posts = w.receiver.posts();
    let mine = about(&posts, &key);
    let offsets: Vec<i64> = mine.iter().map(|p| p.at - start).collect();
    // Attempt n is made at the first round at or after the sum of the waits before it.
    let mut due = 0;
    for (n, wait) in model::webhook::RETRY_SCHEDULE.iter().enumerate() {
        due += wait;
        let at = offsets.get(n).copied().unwrap_or(-1);
        assert!(
            at >= due && at < due + 100,
            "attempt {} at {at} s, due at {due} s: {offsets:?}",
            n + 1
        );
    }
    assert_eq!(mine.len(), 8, "eight attempts, then given up: {offsets:?}");
    assert!(mine.iter().all(|p| p.id == mine[0].id), "one webhook-id");
    assert_eq!(
        w.left(&schema::webhook_queue(&hook)),
        0,
        "given up, out of the queue"
    );
    let log = block_on(w.kg.webhook_deliveries(&w.admin, &hook, Default::default())).expect("log");
    let statuses: Vec<String> = log
        .items
        .iter()
        .map(|a| {
            serde_json::to_value(a.status)
                .expect("json")
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(
        statuses[0], "failed",
        "the last attempt says it was given up"
    );
    assert!(
        statuses[1..].iter().all(|s| s == "retrying"),
        "{statuses:?}"
    );
    assert_eq!(log.items.len(), 8);
}

#[test]
fn a_keys_messages_wait_for_its_earlier_one_and_others_flow() {
    let w = World::new(true);
    let (_, secret) = w.webhook(&["key.created", "key.revoked"]);
    let (stuck, free) = (w.key("stuck"), w.key("free"));
    w.receiver
        .failing
        .lock()
        .expect("lock")
        .insert(stuck.clone());
    w.revoke(&stuck);
    w.revoke(&free);
    for _ in 0..10 {
        w.deliver();
        advance(60);
    }
    let posts = w.receiver.posts();
    let kinds = |key: &str| -> Vec<String> {
        about(&posts, key)
            .iter()
            .map(|p| p.body["type"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(kinds(&free), ["key.created", "key.revoked"]);
    assert!(
        kinds(&stuck).iter().all(|k| k == "key.created") && kinds(&stuck).len() >= 3,
        "the revocation waits while the creation is retried: {:?}",
        kinds(&stuck)
    );
    w.receiver.failing.lock().expect("lock").clear();
    for _ in 0..30 {
        w.deliver();
        advance(120);
    }
    let posts = w.receiver.posts();
    let stuck_kinds: Vec<&str> = about(&posts, &stuck)
        .iter()
        .map(|p| p.body["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(stuck_kinds.last(), Some(&"key.revoked"), "{stuck_kinds:?}");
    assert_eq!(
        stuck_kinds.iter().filter(|k| **k == "key.revoked").count(),
        1,
        "delivered once, after the creation"
    );
    let key = model::webhook::secret_key(&secret).expect("secret");
    for post in &posts {
        assert!(
            model::webhook::verify(&key, &post.id, post.timestamp, &post.raw, &post.signature),
            "signed: {post:?}"
        );
        assert!(!post.body.to_string().contains(&secret));
    }
}

#[test]
fn the_outbox_drains_and_only_enabled_webhooks_that_take_an_event_get_it() {
    // Without webhooks at all: the outbox still drains, so it never grows.
    let w = World::new(false);
    let key = w.key("unheard");
    w.revoke(&key);
    assert_eq!(w.left(&schema::outbox()), 2, "key events enter the outbox");
    w.deliver();
    assert_eq!(w.left(&schema::outbox()), 0);

    let w = World::new(true);
    let (revoked_only, _) = w.webhook(&["key.revoked"]);
    let (disabled, _) = w.webhook(&["key.created", "key.revoked"]);
    let off = WebhookPatch {
        enabled: Some(false),
        ..Default::default()
    };
    block_on(w.kg.update_webhook(&w.admin, &disabled, off, clock())).expect("disable");
    // Settings changes are not key events: they do not enter the outbox.
    let before = w.left(&schema::outbox());
    let patch = SettingsPatch {
        max_active_keys_per_user: Some(50),
        ..Default::default()
    };
    block_on(w.kg.update_settings(&w.admin, patch, clock())).expect("settings");
    assert_eq!(w.left(&schema::outbox()), before);
    let key = w.key("heard once");
    w.revoke(&key);
    w.deliver();
    let posts = w.receiver.posts();
    let kinds: Vec<&str> = posts
        .iter()
        .map(|p| p.body["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["key.revoked"], "only the revocation, only once");
    assert_eq!(w.left(&schema::webhook_queue(&disabled)), 0);
    assert_eq!(
        w.left(&schema::webhook_queue(&revoked_only)),
        0,
        "delivered, dequeued"
    );
    assert_eq!(w.left(&schema::outbox()), 0);
    // A deleted webhook's queue goes with it.
    w.receiver.failing.lock().expect("lock").insert(key.clone());
    let other = w.key("queued");
    w.revoke(&other);
    w.receiver
        .failing
        .lock()
        .expect("lock")
        .insert(other.clone());
    w.deliver();
    assert_eq!(
        w.left(&schema::webhook_queue(&revoked_only)),
        1,
        "waits for its retry"
    );
    block_on(w.kg.delete_webhook(&w.admin, &revoked_only, clock())).expect("delete");
    assert_eq!(w.left(&schema::webhook_queue(&revoked_only)), 0);
    advance(Duration::hours(1).whole_seconds());
    w.deliver();
    assert_eq!(w.receiver.posts().len(), 2, "nothing for a deleted webhook");
}

/// The world's store, failing exactly its `fail_at`-th call (0: none), counting calls.
#[derive(Clone)]
struct Failing {
    inner: MemoryStore,
    fail_at: usize,
    calls: Arc<std::sync::atomic::AtomicUsize>,
}

impl Failing {
    fn call(&self) -> Result<(), model::store::StoreError> {
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if n == self.fail_at {
            return Err(model::store::StoreError::new("injected"));
        }
        Ok(())
    }
}

impl Store for Failing {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, model::store::StoreError> {
        self.call()?;
        self.inner.get(key).await
    }

    async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<model::store::Listing, model::store::StoreError> {
        self.call()?;
        self.inner.list(prefix, cursor, limit).await
    }

    async fn commit(&self, batch: model::store::Batch) -> Result<(), model::store::StoreError> {
        self.call()?;
        self.inner.commit(batch).await
    }
}

#[test]
fn a_round_cut_short_at_any_store_call_loses_nothing() {
    let mut n = 1;
    loop {
        let w = World::new(true);
        w.webhook(&["key.created", "key.revoked"]);
        let keys = [w.key("one"), w.key("two")];
        for key in &keys {
            w.revoke(key);
        }
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let faulty = Keygate::new(Failing {
            inner: w.kg.store().clone(),
            fail_at: n,
            calls: Arc::clone(&calls),
        })
        .with_webhooks(Arc::new(Webhooks::new(w.receiver.clone(), clock, false)));
        let failed = block_on(faulty.deliver_webhooks()).is_err();
        let made = calls.load(std::sync::atomic::Ordering::SeqCst);
        w.deliver();
        let posts = w.receiver.posts();
        for key in &keys {
            let kinds: Vec<&str> = about(&posts, key)
                .iter()
                .map(|p| p.body["type"].as_str().unwrap_or(""))
                .collect();
            let mut seen = kinds.clone();
            seen.dedup();
            assert_eq!(
                seen,
                ["key.created", "key.revoked"],
                "call {n} failing: each event delivered, in order ({kinds:?})"
            );
        }
        assert_eq!(w.left(&schema::outbox()), 0, "call {n}: the outbox drained");
        if !failed {
            assert!(
                made < n,
                "a round that did not fail made fewer than {n} calls"
            );
            break;
        }
        n += 1;
    }
    assert!(n > 10, "the clean round makes its calls: {n}");
}

#[test]
fn an_organization_has_at_most_max_webhooks() {
    let w = World::new(true);
    for _ in 0..model::service::MAX_WEBHOOKS {
        w.webhook(&["key.created"]);
    }
    let request = WebhookRequest {
        url: "https://hooks.example.com/one-more".into(),
        events: vec!["key.created".into()],
        description: None,
    };
    let refused = block_on(w.kg.create_webhook(&w.admin, request, clock())).err();
    assert_eq!(
        refused.map(|e| (e.status(), e.code())),
        Some((409, "conflict"))
    );
    assert_eq!(
        w.left(&schema::org_webhooks(&w.admin.org.id)),
        model::service::MAX_WEBHOOKS
    );
}

/// What the receiver got about `key`: (type, days_left) in order.
fn reminders_of(w: &World, key: &str) -> Vec<(String, Option<i64>)> {
    about(&w.receiver.posts(), key)
        .iter()
        .map(|p| {
            (
                p.body["type"].as_str().unwrap_or("").to_owned(),
                p.body["data"]["details"]["days_left"].as_i64(),
            )
        })
        .filter(|(kind, _)| kind != "key.created")
        .collect()
}

#[test]
fn expiry_reminders_come_once_each_seven_days_and_one_day_before_and_at_expiry() {
    let w = World::new(true);
    w.webhook(&["key.created", "key.expiring", "key.expired", "key.revoked"]);
    let ten_days = w.key_expiring("ten days", Duration::days(10));
    let week = w.key_expiring("a week", Duration::days(7) - Duration::minutes(1));
    let hours = w.key_expiring("three hours", Duration::hours(3));
    let revoked = w.key_expiring("revoked", Duration::days(2));
    w.revoke(&revoked);
    // Twelve days, an hour at a time.
    for _ in 0..(12 * 24) {
        w.deliver();
        advance(3600);
    }
    w.deliver();
    let expiring = |days| ("key.expiring".to_owned(), Some(days));
    let expired = ("key.expired".to_owned(), None);
    assert_eq!(
        reminders_of(&w, &ten_days),
        [expiring(7), expiring(1), expired.clone()]
    );
    assert_eq!(
        reminders_of(&w, &week),
        [expiring(7), expiring(1), expired.clone()],
        "a key made 7 days ahead is told at once"
    );
    assert_eq!(
        reminders_of(&w, &hours),
        [expiring(1), expired],
        "no week reminder sent late"
    );
    assert_eq!(
        reminders_of(&w, &revoked),
        [("key.revoked".to_owned(), None)],
        "a revoked key is reminded of nothing"
    );
    assert_eq!(w.left(&schema::reminders()), 0, "nothing left to remind");
    // They are audit events too, by the reminders.
    let events = block_on(w.kg.events(
        &w.admin,
        model::api::EventQuery {
            kind: Some("key.expiring".into()),
            ..Default::default()
        },
    ))
    .expect("events");
    assert_eq!(events.items.len(), 5, "2 + 2 + 1");
    assert!(
        events
            .items
            .iter()
            .all(|e| e.actor.id == model::service::REMINDER_ACTOR)
    );
}

#[test]
fn keys_made_before_reminders_get_theirs_once() {
    let w = World::new(true);
    let live = w.key_expiring("live", Duration::days(3));
    let soon_gone = w.key_expiring("soon gone", Duration::hours(1));
    let forever = w.key("forever");
    // As a store written before reminders existed: no entries, no marker.
    let entries = block_on(w.kg.store().list(&schema::reminders(), None, 100)).expect("list");
    let mut batch = model::store::Batch::default();
    for entry in entries.keys {
        batch.delete(entry);
    }
    block_on(w.kg.store().commit(batch)).expect("commit");
    advance(7200);
    assert_eq!(block_on(w.kg.index_reminders(clock())).expect("index"), 1);
    assert_eq!(
        block_on(w.kg.index_reminders(clock())).expect("again"),
        0,
        "once"
    );
    w.webhook(&["key.expiring", "key.expired"]);
    w.deliver();
    assert_eq!(
        reminders_of(&w, &live),
        [("key.expiring".to_owned(), Some(3))]
    );
    assert!(
        reminders_of(&w, &soon_gone).is_empty(),
        "expired before: not told late"
    );
    assert!(reminders_of(&w, &forever).is_empty());
}
