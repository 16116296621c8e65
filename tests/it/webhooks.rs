//! Webhooks on both hosts (SPEC §6.1), delivered to a real receiver on loopback that checks
//! every delivery's Standard Webhooks signature with the secret the host answered once.
//!
//! - Managing them: the secret once, lists without it, validation and SSRF refusals as 422
//!   (on hosts that do not allow private addresses, as an operator runs them).
//! - Delivery (hosts started with `KEYGATE_ALLOW_PRIVATE_WEBHOOKS=1`, since the receiver is
//!   on 127.0.0.1): signed, no secret in any body, retried with the same `webhook-id` after a
//!   500, in order per key while an earlier message waits, a test delivery, the delivery log,
//!   nothing for a disabled or deleted webhook.
//! - On the server: a message pending when the server is killed with SIGKILL arrives after
//!   the restart.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tests::{Api, As, Fixture, Host};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
    /// What the receiver answered.
    answered: u16,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn kind(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_owned()
    }
}

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// 204 to everything.
    Accept,
    /// 500 to the first attempt of each message, 204 to the later ones.
    FailFirst,
    /// 500 to everything.
    Fail,
}

#[derive(Default)]
struct Log {
    got: Vec<Received>,
    mode: Option<Mode>,
}

/// A webhook receiver on loopback.
#[derive(Clone)]
struct Receiver {
    url: String,
    log: Arc<Mutex<Log>>,
}

impl Receiver {
    async fn start() -> Result<Self> {
        let log: Arc<Mutex<Log>> = Arc::default();
        let seen = Arc::clone(&log);
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let seen = Arc::clone(&seen);
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let id = header("webhook-id");
                    let mut log = seen.lock().unwrap_or_else(|e| e.into_inner());
                    let earlier = log.got.iter().any(|r| r.id == id);
                    let answered = match log.mode.unwrap_or(Mode::Accept) {
                        Mode::Accept => 204,
                        Mode::FailFirst if earlier => 204,
                        Mode::FailFirst | Mode::Fail => 500,
                    };
                    log.got.push(Received {
                        id,
                        timestamp: header("webhook-timestamp"),
                        signature: header("webhook-signature"),
                        body,
                        answered,
                    });
                    StatusCode::from_u16(answered).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { url, log })
    }

    fn set(&self, mode: Mode) {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).mode = Some(mode);
    }

    fn got(&self) -> Vec<Received> {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .got
            .clone()
    }

    /// Waits until `done` holds for what was received, up to `limit`.
    async fn until(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Result<Vec<Received>> {
        let start = std::time::Instant::now();
        loop {
            let got = self.got();
            if done(&got) {
                return Ok(got);
            }
            if start.elapsed() > limit {
                let kinds: Vec<String> = got
                    .iter()
                    .map(|r| format!("{} {} → {}", r.kind(), r.id, r.answered))
                    .collect();
                bail!("{what}: not within {limit:?}; received {kinds:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Checks a delivery as a receiver does: its signature by `secret`, a fresh timestamp, a body
/// `{type, timestamp, data}` that holds no secret.
fn check_delivery(r: &Received, secret: &str, secrets: &[&str]) -> Result<()> {
    let key = model::webhook::secret_key(secret).context("the secret decodes")?;
    let at: i64 = r.timestamp.parse().context("webhook-timestamp")?;
    ensure!(
        model::webhook::verify(&key, &r.id, at, r.body.as_bytes(), &r.signature),
        "the signature of {} checks: {r:?}",
        r.id
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    ensure!((now - at).abs() < 300, "a fresh timestamp: {at} at {now}");
    ensure!(r.id.starts_with("msg_"), "a message id: {}", r.id);
    let body = r.json();
    ensure!(
        body["type"].is_string() && body["timestamp"].is_string() && body["data"].is_object(),
        "shaped {{type, timestamp, data}}: {}",
        r.body
    );
    for secret in secrets {
        ensure!(!r.body.contains(secret), "no secret in a body: {}", r.body);
    }
    Ok(())
}

async fn new_key(api: &Api, admin: &Fixture, name: &str) -> Result<(String, String)> {
    let body = json!({"name": name, "namespace": admin.org, "role": "viewer"});
    let made = api
        .call("POST", "/v1/keys", As::Bearer(&admin.token), Some(&body))
        .await?;
    ensure!(made.status == 201, "{made:?}");
    let field = |f: &str| made.body[f].as_str().map(str::to_owned).context("key");
    Ok((field("id")?, field("key")?))
}

async fn new_key_expiring(
    api: &Api,
    admin: &Fixture,
    name: &str,
    after: time::Duration,
) -> Result<String> {
    let at = (time::OffsetDateTime::now_utc() + after)
        .format(&time::format_description::well_known::Rfc3339)?;
    let body = json!({"name": name, "namespace": admin.org, "role": "viewer", "expires_at": at});
    let made = api
        .call("POST", "/v1/keys", As::Bearer(&admin.token), Some(&body))
        .await?;
    ensure!(made.status == 201, "{made:?}");
    made.body["id"].as_str().map(str::to_owned).context("id")
}

async fn create_webhook(
    api: &Api,
    admin: &Fixture,
    url: &str,
    events: &[&str],
) -> Result<(String, String)> {
    let body = json!({"url": url, "events": events, "description": "the test's receiver"});
    let made = api
        .call(
            "POST",
            "/v1/webhooks",
            As::Bearer(&admin.token),
            Some(&body),
        )
        .await?;
    ensure!(made.status == 201, "{made:?}");
    let secret = made.body["secret"].as_str().context("secret")?.to_owned();
    let id = made.body["id"].as_str().context("id")?.to_owned();
    Ok((id, secret))
}

async fn revoke(api: &Api, admin: &Fixture, key_id: &str) -> Result<()> {
    let answer = api
        .call(
            "POST",
            &format!("/v1/keys/{key_id}/revoke"),
            As::Bearer(&admin.token),
            None,
        )
        .await?;
    ensure!(answer.status == 200, "{answer:?}");
    Ok(())
}

/// Creation, listing, change and refusal, on a host that allows no private address.
async fn managing(host: &Host) -> Result<()> {
    let api = Api::new(&host.base);
    let admin = api.admin_with_key("webhooks").await?;
    let me = As::Bearer(&admin.token);
    let (id, secret) = create_webhook(
        &api,
        &admin,
        "https://hooks.example.com/keygate",
        &["key.revoked"],
    )
    .await?;
    ensure!(
        secret.starts_with("whsec_")
            && model::webhook::secret_key(&secret).is_some_and(|k| k.len() == 24),
        "whsec_ + base64 of 24 bytes: {secret}"
    );
    let list = api.call("GET", "/v1/webhooks", me, None).await?;
    ensure!(list.status == 200, "{list:?}");
    let items = list.body["items"].as_array().cloned().unwrap_or_default();
    ensure!(
        items.len() == 1 && items[0]["id"] == id.as_str() && items[0]["enabled"] == true,
        "{}",
        list.body
    );
    ensure!(
        !list.body.to_string().contains(&secret) && items[0].get("secret").is_none(),
        "the secret is shown once: {}",
        list.body
    );
    let patched = api
        .call(
            "PATCH",
            &format!("/v1/webhooks/{id}"),
            me,
            Some(&json!({"events": ["key.leaked", "key.created", "key.leaked"], "enabled": false})),
        )
        .await?;
    ensure!(
        patched.status == 200
            && patched.body["events"] == json!(["key.created", "key.leaked"])
            && patched.body["enabled"] == false,
        "{patched:?}"
    );
    let refused: &[(&str, Value, &str)] = &[
        (
            "plain http",
            json!({"url": "http://hooks.example.com/x", "events": ["key.created"]}),
            "url",
        ),
        (
            "loopback",
            json!({"url": "https://127.0.0.1:8443/x", "events": ["key.created"]}),
            "url",
        ),
        (
            "localhost",
            json!({"url": "https://localhost/x", "events": ["key.created"]}),
            "url",
        ),
        (
            "a private network",
            json!({"url": "https://10.1.2.3/x", "events": ["key.created"]}),
            "url",
        ),
        (
            "the metadata service",
            json!({"url": "https://169.254.169.254/latest/meta-data/", "events": ["key.created"]}),
            "url",
        ),
        (
            "IPv6 loopback",
            json!({"url": "https://[::1]/x", "events": ["key.created"]}),
            "url",
        ),
        (
            "IPv4 inside IPv6",
            json!({"url": "https://[::ffff:10.0.0.1]/x", "events": ["key.created"]}),
            "url",
        ),
        (
            "a cloud's internal name",
            json!({"url": "https://metadata.google.internal/x", "events": ["key.created"]}),
            "url",
        ),
        (
            "credentials",
            json!({"url": "https://me:pw@hooks.example.com/x", "events": ["key.created"]}),
            "url",
        ),
        (
            "not a URL",
            json!({"url": "hooks", "events": ["key.created"]}),
            "url",
        ),
        (
            "no events",
            json!({"url": "https://hooks.example.com/x", "events": []}),
            "events",
        ),
        (
            "an unknown event",
            json!({"url": "https://hooks.example.com/x", "events": ["key.exploded"]}),
            "events",
        ),
    ];
    for (name, body, field) in refused {
        let answer = api.call("POST", "/v1/webhooks", me, Some(body)).await?;
        answer
            .problem(422, "validation_failed")
            .with_context(|| name.to_string())?;
        ensure!(
            answer.body["detail"]
                .as_str()
                .unwrap_or_default()
                .starts_with(field),
            "{name}: names {field}: {}",
            answer.body
        );
        let patch = json!({"url": body["url"], "events": body["events"]});
        let answer = api
            .call("PATCH", &format!("/v1/webhooks/{id}"), me, Some(&patch))
            .await?;
        answer
            .problem(422, "validation_failed")
            .with_context(|| format!("patch: {name}"))?;
    }
    let list = api.call("GET", "/v1/webhooks", me, None).await?;
    ensure!(
        list.body["items"].as_array().map(Vec::len) == Some(1)
            && list.body["items"][0]["url"] == "https://hooks.example.com/keygate",
        "nothing refused changed anything: {}",
        list.body
    );
    // A key cannot manage webhooks; another organization's id is absent.
    let as_key = api
        .call("GET", "/v1/webhooks", As::Bearer(&admin.key), None)
        .await?;
    ensure!(as_key.status == 403, "{as_key:?}");
    let deleted = api
        .call("DELETE", &format!("/v1/webhooks/{id}"), me, None)
        .await?;
    ensure!(deleted.status == 204, "{deleted:?}");
    let again = api
        .call("DELETE", &format!("/v1/webhooks/{id}"), me, None)
        .await?;
    again.problem(404, "not_found")?;
    Ok(())
}

/// Deliveries to the loopback receiver, on a host that allows private addresses.
async fn delivering(host: &Host, receiver: &Receiver) -> Result<()> {
    let api = Api::new(&host.base);
    let admin = api.admin_with_key("deliveries").await?;
    let me = As::Bearer(&admin.token);
    let events = [
        "key.created",
        "key.revoked",
        "key.leaked",
        "key.expiring",
        "key.expired",
    ];
    let (hook, secret) = create_webhook(&api, &admin, &receiver.url, &events).await?;
    let limit = Duration::from_secs(20);

    // Signed deliveries of a key's events, in order, with no secret in them.
    let (key_id, key) = new_key(&api, &admin, "told").await?;
    revoke(&api, &admin, &key_id).await?;
    let about =
        |r: &Received, kind: &str, id: &str| r.kind() == kind && r.json()["data"]["key_id"] == id;
    let got = receiver
        .until("created and revoked", limit, |got| {
            got.iter().any(|r| about(r, "key.revoked", &key_id))
        })
        .await?;
    let mine: Vec<&Received> = got
        .iter()
        .filter(|r| r.json()["data"]["key_id"] == key_id.as_str())
        .collect();
    ensure!(
        mine.len() == 2
            && about(mine[0], "key.created", &key_id)
            && about(mine[1], "key.revoked", &key_id),
        "created, then revoked: {mine:?}"
    );
    for r in &got {
        check_delivery(r, &secret, &[&secret, &key[3..], &admin.token])?;
    }
    ensure!(
        mine[0].json()["data"]["organization_id"] == admin.org.as_str(),
        "the organization: {}",
        mine[0].body
    );

    // A 500 is retried with the same webhook-id (5 s later); the key's next message waits
    // for it, so the order holds.
    receiver.set(Mode::FailFirst);
    let (key_id, key) = new_key(&api, &admin, "retried").await?;
    revoke(&api, &admin, &key_id).await?;
    let got = receiver
        .until("the retry and the revocation after it", limit, |got| {
            got.iter()
                .any(|r| about(r, "key.revoked", &key_id) && r.answered == 204)
        })
        .await?;
    let mine: Vec<&Received> = got
        .iter()
        .filter(|r| r.json()["data"]["key_id"] == key_id.as_str())
        .collect();
    let created: Vec<&&Received> = mine.iter().filter(|r| r.kind() == "key.created").collect();
    ensure!(
        created.len() == 2
            && created[0].id == created[1].id
            && created[0].answered == 500
            && created[1].answered == 204,
        "the same message again after its 500: {mine:?}"
    );
    let second_created = mine
        .iter()
        .position(|r| r.kind() == "key.created" && r.answered == 204);
    let first_revoked = mine.iter().position(|r| r.kind() == "key.revoked");
    ensure!(
        second_created < first_revoked,
        "the revocation waited for the creation's delivery: {mine:?}"
    );
    let (a, b) = (
        created[0].timestamp.parse::<i64>()?,
        created[1].timestamp.parse::<i64>()?,
    );
    ensure!(b - a >= 4, "retried after the schedule's 5 s: {a} then {b}");
    for r in &mine {
        check_delivery(r, &secret, &[&secret, &key[3..]])?;
    }
    receiver.set(Mode::Accept);

    // The delivery log: newest first, each attempt with its status and response code.
    let log = api
        .call(
            "GET",
            &format!("/v1/webhooks/{hook}/deliveries?limit=200"),
            me,
            None,
        )
        .await?;
    ensure!(log.status == 200, "{log:?}");
    let attempts = log.body["items"].as_array().cloned().unwrap_or_default();
    let of = |id: &str| -> Vec<Value> {
        attempts
            .iter()
            .filter(|a| a["message_id"] == id)
            .cloned()
            .collect()
    };
    let retried = of(&created[0].id);
    ensure!(
        retried.len() == 2
            && retried[0]["attempt"] == 2
            && retried[0]["status"] == "succeeded"
            && retried[0]["response_code"] == 204
            && retried[1]["attempt"] == 1
            && retried[1]["status"] == "retrying"
            && retried[1]["response_code"] == 500
            && retried[1]["next_attempt_at"].is_string(),
        "both attempts logged, newest first: {retried:?}"
    );
    ensure!(
        !log.body.to_string().contains(&secret),
        "no secret in the log"
    );

    // A leak report is told, without the key.
    let (leaked_id, leaked) = new_key(&api, &admin, "leaked").await?;
    let report = api
        .call(
            "POST",
            "/v1/keys/leaked",
            As::Nobody,
            Some(&json!({"keys": [leaked]})),
        )
        .await?;
    ensure!(report.status == 200, "{report:?}");
    let got = receiver
        .until("the leak", limit, |got| {
            got.iter().any(|r| about(r, "key.leaked", &leaked_id))
        })
        .await?;
    let leak = got
        .iter()
        .find(|r| about(r, "key.leaked", &leaked_id))
        .context("leak")?;
    check_delivery(leak, &secret, &[&secret, &leaked[3..]])?;

    // Expiry reminders: a key made 7 days ahead is told at once; one expiring in seconds is
    // told it has a day at most, then that it expired.
    let week = new_key_expiring(
        &api,
        &admin,
        "a week",
        time::Duration::days(7) - time::Duration::minutes(1),
    )
    .await?;
    let seconds = new_key_expiring(&api, &admin, "seconds", time::Duration::seconds(4)).await?;
    let days_left = |r: &Received| r.json()["data"]["details"]["days_left"].as_i64();
    let got = receiver
        .until("the reminders", limit, |got| {
            got.iter().any(|r| about(r, "key.expiring", &week))
                && got.iter().any(|r| about(r, "key.expired", &seconds))
        })
        .await?;
    let told = |key: &str| -> Vec<(String, Option<i64>)> {
        got.iter()
            .filter(|r| r.json()["data"]["key_id"] == key && r.kind() != "key.created")
            .map(|r| (r.kind(), days_left(r)))
            .collect()
    };
    ensure!(
        told(&week) == [("key.expiring".to_owned(), Some(7))],
        "7 days ahead: {:?}",
        told(&week)
    );
    ensure!(
        told(&seconds)
            == [
                ("key.expiring".to_owned(), Some(1)),
                ("key.expired".to_owned(), None)
            ],
        "seconds ahead: {:?}",
        told(&seconds)
    );
    for r in got.iter().filter(|r| r.kind().starts_with("key.expir")) {
        check_delivery(r, &secret, &[&secret])?;
        ensure!(
            r.json()["data"]["actor"]["id"] == model::service::REMINDER_ACTOR,
            "sent by the reminders: {}",
            r.body
        );
    }

    // A test delivery answers its attempt.
    let test = api
        .call("POST", &format!("/v1/webhooks/{hook}/test"), me, None)
        .await?;
    ensure!(
        test.status == 200
            && test.body["status"] == "succeeded"
            && test.body["response_code"] == 204
            && test.body["type"] == "webhook.test",
        "{test:?}"
    );
    let message = test.body["message_id"]
        .as_str()
        .context("message_id")?
        .to_owned();
    let got = receiver.got();
    let sent = got
        .iter()
        .find(|r| r.id == message)
        .context("the test arrived")?;
    check_delivery(sent, &secret, &[&secret])?;

    // Disabled, then deleted: nothing more arrives.
    let off = api
        .call(
            "PATCH",
            &format!("/v1/webhooks/{hook}"),
            me,
            Some(&json!({"enabled": false})),
        )
        .await?;
    ensure!(off.status == 200, "{off:?}");
    let (quiet, _) = new_key(&api, &admin, "unheard").await?;
    let deleted = api
        .call("DELETE", &format!("/v1/webhooks/{hook}"), me, None)
        .await?;
    ensure!(deleted.status == 204, "{deleted:?}");
    revoke(&api, &admin, &quiet).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure!(
        !receiver
            .got()
            .iter()
            .any(|r| r.json()["data"]["key_id"] == quiet.as_str()),
        "a disabled or deleted webhook is sent nothing"
    );
    Ok(())
}

async fn start(kind: &str, store: &std::path::Path, env: &[(&str, &str)]) -> Result<Host> {
    match kind {
        "server" => Host::server_with(store, None, env).await,
        _ => Host::worker_with(env).await,
    }
}

#[tokio::test]
async fn webhooks_on_both_hosts() -> Result<()> {
    let private = [("KEYGATE_ALLOW_PRIVATE_WEBHOOKS", "1")];
    for kind in ["server", "worker"] {
        let dir = tempfile::tempdir()?;
        let host = start(kind, &dir.path().join("plain"), &[]).await?;
        managing(&host)
            .await
            .with_context(|| format!("managing on {kind}"))?;
        drop(host);
        let receiver = Receiver::start().await?;
        let host = start(kind, &dir.path().join("private"), &private).await?;
        delivering(&host, &receiver)
            .await
            .with_context(|| format!("delivering on {kind}"))?;
    }
    Ok(())
}

/// A message whose receiver keeps failing, pending when the server is killed with SIGKILL,
/// is delivered after the restart, with the same `webhook-id`.
#[tokio::test]
async fn a_pending_delivery_survives_kill_9() -> Result<()> {
    let env = [("KEYGATE_ALLOW_PRIVATE_WEBHOOKS", "1")];
    let dir = tempfile::tempdir()?;
    let store = dir.path().join("store");
    let receiver = Receiver::start().await?;
    receiver.set(Mode::Fail);
    let mut host = Host::server_with(&store, None, &env).await?;
    let api = Api::new(&host.base);
    let admin = api.admin_with_key("crash").await?;
    let (_, secret) = create_webhook(&api, &admin, &receiver.url, &["key.created"]).await?;
    let (key_id, _) = new_key(&api, &admin, "pending").await?;
    let got = receiver
        .until("the first attempt", Duration::from_secs(10), |got| {
            got.iter()
                .any(|r| r.json()["data"]["key_id"] == key_id.as_str())
        })
        .await?;
    let message = got
        .iter()
        .find(|r| r.json()["data"]["key_id"] == key_id.as_str())
        .context("first attempt")?
        .id
        .clone();
    host.kill()?;
    receiver.set(Mode::Accept);
    let host = Host::server_with(&store, None, &env).await?;
    let got = receiver
        .until(
            "the delivery after the restart",
            Duration::from_secs(20),
            |got| got.iter().any(|r| r.id == message && r.answered == 204),
        )
        .await?;
    let delivered = got
        .iter()
        .find(|r| r.id == message && r.answered == 204)
        .context("delivered")?;
    check_delivery(delivered, &secret, &[&secret])?;
    tests::figure(
        "webhook_crash",
        &format!(
            "a message pending at kill -9 arrived after the restart ({} attempts in all)",
            got.iter().filter(|r| r.id == message).count()
        ),
    );
    drop(host);
    Ok(())
}
