//! Webhooks (SPEC §6.1): admins subscribe endpoints to their organization's key events, and
//! every such event is delivered to each, signed (Standard Webhooks), at least once, in order
//! per key, from an outbox that lives in the store.
//!
//! The way of an event:
//! 1. The change that records it puts an outbox entry in its own batch (`events::record`), so
//!    a committed change is delivered even if the host dies the next instant.
//! 2. A delivery round ([`Keygate::deliver_webhooks`], run by the host: a task on the server,
//!    the control object's alarm at the edge) hands each outbox entry to the organization's
//!    enabled webhooks that take its type, as one message per webhook in that webhook's queue,
//!    and removes the entry — one batch, in the store's turn.
//! 3. The round then sends each webhook's due messages — outside the turn — and records each
//!    attempt in the turn: delivered (a 2xx) or given up after the last of
//!    [`crate::webhook::RETRY_SCHEDULE`], the message leaves the queue; otherwise it waits
//!    for its next attempt. A message about a key is not sent while an earlier message about
//!    the same key waits in its queue, so each key's events arrive in order.
//!
//! A host that dies between a receiver's answer and the record of it sends that message
//! again: receivers tell repeats by `webhook-id` (at least once, as the specification says).

use std::collections::{BTreeSet, HashMap};

use serde_json::json;

use super::events::record;
use super::scan::Scan;
use super::*;
use crate::api::{
    AttemptStatus, CreatedWebhook, DeliveryView, EventView, Page, PageQuery, WebhookPatch,
    WebhookRequest, WebhookView,
};
use crate::domain::{Delivery, Outgoing, Webhook};
use crate::webhook::{self as rules_of, UrlError};

/// The most webhooks an organization may have.
pub const MAX_WEBHOOKS: usize = 50;
/// How long the log of a webhook's attempts is kept.
pub const ATTEMPT_RETENTION: time::Duration = time::Duration::days(30);
/// The most outbox entries one round hands out.
const FAN_OUT: usize = 200;
/// The most messages of one webhook one round looks at.
const QUEUE_LOOK: usize = 100;
/// The most attempts one round makes (each may take the client's timeout).
const ROUND_ATTEMPTS: usize = 64;
/// The longest error text kept in an attempt's log.
const MAX_ERROR_CHARS: usize = 200;

/// The host's clock, read at each attempt (its signature's timestamp, its duration).
pub type Clock = fn() -> Timestamp;

/// How this host delivers webhooks: its HTTP client, its clock, and whether the operator
/// allows private addresses (`--allow-private-webhooks`).
pub struct Webhooks {
    client: Arc<dyn Fetch>,
    clock: Clock,
    allow_private: bool,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("allow_private", &self.allow_private)
            .finish_non_exhaustive()
    }
}

impl Webhooks {
    pub fn new(client: Arc<dyn Fetch>, clock: Clock, allow_private: bool) -> Self {
        Self {
            client,
            clock,
            allow_private,
        }
    }
}

/// What a round leaves waiting: when the next one is due (`None`: nothing waits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoundDone {
    /// Attempts made.
    pub attempts: usize,
    /// The earliest a waiting message is due, or the round's own time when it stopped with
    /// work left (its budget spent).
    pub next_due: Option<Timestamp>,
}

fn url_problem(e: UrlError) -> Error {
    Error::invalid("url", e.to_string())
}

/// The body every attempt of an event's message sends: `{type, timestamp, data}`, no secret
/// (events hold none).
fn payload(event: &EventView, org: &str) -> Result<String> {
    let body = json!({
        "type": event.kind,
        "timestamp": event.at.format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| Error::Internal(e.to_string()))?,
        "data": {
            "event_id": event.id,
            "organization_id": org,
            "key_id": event.target,
            "actor": event.actor,
            "details": event.details,
        },
    });
    Ok(body.to_string())
}

fn truncated(text: &str) -> String {
    text.chars().take(MAX_ERROR_CHARS).collect()
}

// Managing webhooks (admins).
impl<S: Store> Keygate<S> {
    fn allow_private(&self) -> bool {
        self.webhooks.as_ref().is_some_and(|w| w.allow_private)
    }

    fn checked_url(&self, url: String) -> Result<String> {
        if url.chars().count() > rules_of::MAX_URL_CHARS {
            return Err(Error::invalid(
                "url",
                format!("at most {} characters", rules_of::MAX_URL_CHARS),
            ));
        }
        rules_of::check_url(&url, self.allow_private()).map_err(url_problem)?;
        Ok(url)
    }

    async fn org_webhooks(&self, org: &str) -> Result<Vec<Webhook>> {
        let mut hooks = Vec::new();
        let mut cursor = None;
        loop {
            let listing = self
                .store
                .list(&schema::org_webhooks(org), cursor.as_deref(), 100)
                .await?;
            for entry in &listing.keys {
                if let Some(hook) =
                    get_json::<S, Webhook>(&self.store, &schema::webhook(schema::id_of(entry)))
                        .await?
                {
                    hooks.push(hook);
                }
            }
            match listing.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(hooks),
            }
        }
    }

    /// A webhook of the caller's organization; another's is as absent as one that is not.
    async fn visible_webhook(&self, caller: &Caller, id: &str) -> Result<Webhook> {
        caller.require_admin()?;
        match get_json::<S, Webhook>(&self.store, &schema::webhook(id)).await? {
            Some(hook) if hook.org == caller.org.id => Ok(hook),
            _ => Err(Error::NotFound("webhook")),
        }
    }

    /// `GET /v1/webhooks`.
    pub async fn list_webhooks(
        &self,
        caller: &Caller,
        query: PageQuery,
    ) -> Result<Page<WebhookView>> {
        caller.require_admin()?;
        let limit = page_limit(query.limit)? as usize;
        let views = self
            .org_webhooks(&caller.org.id)
            .await?
            .iter()
            .map(WebhookView::from)
            .filter(|v| query.cursor.as_deref().is_none_or(|c| v.id.as_str() > c))
            .collect();
        Ok(page_by_id(views, limit, |v| &v.id))
    }

    /// `POST /v1/webhooks`: the answer holds the secret, this once.
    pub async fn create_webhook(
        &self,
        caller: &Caller,
        request: WebhookRequest,
        now: Timestamp,
    ) -> Result<CreatedWebhook> {
        caller.require_admin()?;
        let url = self.checked_url(request.url)?;
        let events =
            rules_of::check_events(&request.events).map_err(|m| Error::invalid("events", m))?;
        let description = rules::description(request.description)?;
        let existing = self
            .store
            .list(&schema::org_webhooks(&caller.org.id), None, MAX_WEBHOOKS)
            .await?;
        if existing.keys.len() >= MAX_WEBHOOKS {
            return Err(Error::Conflict(
                "this organization has 50 webhooks, the most it may have",
            ));
        }
        let hook = Webhook {
            id: new_id(Kind::Webhook)?,
            org: caller.org.id.clone(),
            url,
            events,
            description,
            enabled: true,
            secret: rules_of::new_secret()?,
            created_at: now,
            updated_at: now,
        };
        let mut batch = Batch::default();
        batch.put(schema::webhook(&hook.id), &hook)?;
        batch.mark(format!("{}{}", schema::org_webhooks(&hook.org), hook.id));
        batch.mark(format!("{}{}", schema::webhooks(), hook.id));
        let details = json!({"webhook_id": hook.id, "url": hook.url, "events": hook.events});
        record(
            &mut batch,
            &hook.org,
            caller.actor(),
            "webhook.created",
            Some(&hook.id),
            details,
            now,
        )?;
        self.store.commit(batch).await?;
        Ok(CreatedWebhook {
            webhook: WebhookView::from(&hook),
            secret: hook.secret,
        })
    }

    /// `PATCH /v1/webhooks/{id}`.
    pub async fn update_webhook(
        &self,
        caller: &Caller,
        id: &str,
        patch: WebhookPatch,
        now: Timestamp,
    ) -> Result<WebhookView> {
        let mut hook = self.visible_webhook(caller, id).await?;
        let WebhookPatch {
            url,
            events,
            description,
            enabled,
        } = patch;
        if url.is_none() && events.is_none() && description.is_none() && enabled.is_none() {
            return Err(Error::invalid(
                "body",
                "name the fields to change: url, events, description, enabled",
            ));
        }
        if let Some(url) = url {
            hook.url = self.checked_url(url)?;
        }
        if let Some(events) = events {
            hook.events =
                rules_of::check_events(&events).map_err(|m| Error::invalid("events", m))?;
        }
        if let Some(description) = description {
            hook.description = rules::description(description)?;
        }
        if let Some(enabled) = enabled {
            hook.enabled = enabled;
        }
        hook.updated_at = now;
        let mut batch = Batch::default();
        batch.put(schema::webhook(&hook.id), &hook)?;
        let details = json!({"webhook_id": hook.id, "url": hook.url, "events": hook.events, "enabled": hook.enabled});
        record(
            &mut batch,
            &hook.org,
            caller.actor(),
            "webhook.updated",
            Some(&hook.id),
            details,
            now,
        )?;
        self.store.commit(batch).await?;
        Ok(WebhookView::from(&hook))
    }

    /// `DELETE /v1/webhooks/{id}`: with its queue (its log expires by itself).
    pub async fn delete_webhook(&self, caller: &Caller, id: &str, now: Timestamp) -> Result<()> {
        let hook = self.visible_webhook(caller, id).await?;
        let mut batch = Batch::default();
        batch.delete(schema::webhook(&hook.id));
        batch.delete(format!("{}{}", schema::org_webhooks(&hook.org), hook.id));
        batch.delete(format!("{}{}", schema::webhooks(), hook.id));
        let mut cursor = None;
        loop {
            let listing = self
                .store
                .list(&schema::webhook_queue(&hook.id), cursor.as_deref(), 500)
                .await?;
            for entry in listing.keys {
                batch.delete(entry);
            }
            match listing.cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let details = json!({"webhook_id": hook.id, "url": hook.url});
        record(
            &mut batch,
            &hook.org,
            caller.actor(),
            "webhook.deleted",
            Some(&hook.id),
            details,
            now,
        )?;
        self.store.commit(batch).await?;
        Ok(())
    }

    /// `GET /v1/webhooks/{id}/deliveries`: its attempts, newest first.
    pub async fn webhook_deliveries(
        &self,
        caller: &Caller,
        id: &str,
        query: PageQuery,
    ) -> Result<Page<DeliveryView>> {
        let hook = self.visible_webhook(caller, id).await?;
        let limit = page_limit(query.limit)? as usize;
        Scan::new(
            &self.store,
            schema::webhook_attempts(&hook.id),
            query.cursor.as_deref(),
            200,
        )?
        .records(limit)
        .await
    }

    /// `POST /v1/webhooks/{id}/test`: one signed `webhook.test` message, sent at once and
    /// not retried; the answer is the attempt, which the log keeps too.
    pub async fn test_webhook(&self, caller: &Caller, id: &str) -> Result<DeliveryView> {
        let hook = self.visible_webhook(caller, id).await?;
        let webhooks = self
            .webhooks
            .as_ref()
            .ok_or_else(|| Error::Upstream("this host delivers no webhooks".into()))?;
        let now = (webhooks.clock)();
        let at = now
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let body = json!({
            "type": rules_of::TEST_EVENT,
            "timestamp": at,
            "data": {"webhook_id": hook.id, "organization_id": hook.org},
        })
        .to_string();
        let message = Delivery {
            id: new_id(Kind::Message)?,
            webhook: hook.id.clone(),
            kind: rules_of::TEST_EVENT.into(),
            key: None,
            body,
            created_at: now,
            attempts: 0,
            next_at: now,
        };
        let (view, _) = self.attempt(webhooks, &hook, &message, true).await?;
        let _turn = self.store.turn().await;
        let mut batch = Batch::default();
        log_attempt(&mut batch, &hook.id, &view)?;
        self.store.commit(batch).await?;
        Ok(view)
    }
}

/// Adds `attempt` to its webhook's log.
fn log_attempt(batch: &mut Batch, webhook: &str, attempt: &DeliveryView) -> Result<()> {
    let entry = schema::newest_first(&schema::webhook_attempts(webhook), attempt.at, &attempt.id);
    batch.put_expiring(entry, attempt, attempt.at + ATTEMPT_RETENTION)?;
    Ok(())
}

// Delivering.
impl<S: Store> Keygate<S> {
    /// Sends `message` to `hook` once, signed at this moment; `last` when no attempt follows
    /// whatever happens. The view of the attempt, and whether it was delivered.
    async fn attempt(
        &self,
        webhooks: &Webhooks,
        hook: &Webhook,
        message: &Delivery,
        last: bool,
    ) -> Result<(DeliveryView, bool)> {
        let started = (webhooks.clock)();
        let made = message.attempts.saturating_add(1);
        let sent = match rules_of::check_url(&hook.url, webhooks.allow_private) {
            Err(e) => Err(e.to_string()),
            Ok(_) => match rules_of::secret_key(&hook.secret) {
                None => Err("the webhook's secret is not readable".to_owned()),
                Some(key) => {
                    let timestamp = started.unix_timestamp();
                    let signature =
                        rules_of::sign(&key, &message.id, timestamp, message.body.as_bytes());
                    let headers = [
                        ("content-type", "application/json".to_owned()),
                        ("webhook-id", message.id.clone()),
                        ("webhook-timestamp", timestamp.to_string()),
                        ("webhook-signature", signature),
                    ];
                    webhooks
                        .client
                        .post(&hook.url, &headers, message.body.as_bytes())
                        .await
                }
            },
        };
        let ended = (webhooks.clock)();
        let delivered = matches!(sent, Ok(200..=299));
        let next_wait = (!delivered && !last)
            .then(|| rules_of::next_wait(made as usize))
            .flatten();
        let status = match (delivered, next_wait) {
            (true, _) => AttemptStatus::Succeeded,
            (false, Some(_)) => AttemptStatus::Retrying,
            (false, None) => AttemptStatus::Failed,
        };
        let (response_code, error) = match sent {
            Ok(code) => (Some(code), None),
            Err(e) => (None, Some(truncated(&e))),
        };
        let view = DeliveryView {
            id: new_id(Kind::Attempt)?,
            message_id: message.id.clone(),
            kind: message.kind.clone(),
            at: started,
            attempt: made,
            status,
            response_code,
            duration_ms: u64::try_from((ended - started).whole_milliseconds()).unwrap_or(0),
            error,
            next_attempt_at: next_wait.map(|w| ended + time::Duration::seconds(w)),
        };
        Ok((view, delivered))
    }

    /// One delivery round: the expiry reminders that are due (they become events), then the
    /// outbox handed to the webhooks' queues, then what is due sent (up to a budget), each
    /// attempt recorded. Without a host's [`Webhooks`], the outbox is
    /// still handed out (so it does not grow) and nothing is sent.
    pub async fn deliver_webhooks(&self) -> Result<RoundDone> {
        let now = self
            .webhooks
            .as_ref()
            .map_or_else(time::OffsetDateTime::now_utc, |w| (w.clock)());
        let mut done = RoundDone {
            attempts: 0,
            next_due: self.remind(now).await?,
        };
        if self.fan_out(now).await? {
            done.next_due = Some(now);
        }
        let Some(webhooks) = self.webhooks.clone() else {
            return Ok(done);
        };
        let mut cursor = None;
        loop {
            let listing = self
                .store
                .list(&schema::webhooks(), cursor.as_deref(), 500)
                .await?;
            for entry in &listing.keys {
                let id = schema::id_of(entry);
                let Some(hook) = get_json::<S, Webhook>(&self.store, &schema::webhook(id)).await?
                else {
                    continue;
                };
                if !hook.enabled {
                    continue;
                }
                self.send_due(&webhooks, &hook, now, &mut done).await?;
            }
            match listing.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(done),
            }
        }
    }

    /// Hands up to [`FAN_OUT`] outbox entries to their webhooks' queues, in one batch; whether
    /// more wait.
    async fn fan_out(&self, now: Timestamp) -> Result<bool> {
        // Looked at outside the turn first: most rounds find nothing.
        if self
            .store
            .list(&schema::outbox(), None, 1)
            .await?
            .keys
            .is_empty()
        {
            return Ok(false);
        }
        let _turn = self.store.turn().await;
        let listing = self.store.list(&schema::outbox(), None, FAN_OUT).await?;
        let mut hooks: HashMap<String, Vec<Webhook>> = HashMap::new();
        let mut batch = Batch::default();
        for entry in &listing.keys {
            batch.delete(entry.clone());
            let Some(outgoing) = get_json::<S, Outgoing>(&self.store, entry).await? else {
                continue;
            };
            let Some(event) = get_json::<S, EventView>(&self.store, &outgoing.event).await? else {
                continue;
            };
            if !hooks.contains_key(&outgoing.org) {
                let found = self.org_webhooks(&outgoing.org).await?;
                hooks.insert(outgoing.org.clone(), found);
            }
            let takers = hooks[&outgoing.org]
                .iter()
                .filter(|h| h.enabled && h.events.contains(&event.kind));
            let mut body = None;
            for hook in takers {
                let body = match &body {
                    Some(body) => String::clone(body),
                    None => body.insert(payload(&event, &outgoing.org)?).clone(),
                };
                let message = Delivery {
                    id: new_id(Kind::Message)?,
                    webhook: hook.id.clone(),
                    kind: event.kind.clone(),
                    key: event.target.clone(),
                    body,
                    created_at: now,
                    attempts: 0,
                    next_at: now,
                };
                batch.put(schema::webhook_queue_entry(&hook.id, entry), &message)?;
            }
        }
        self.store.commit(batch).await?;
        Ok(listing.cursor.is_some())
    }

    /// Sends `hook`'s due messages, each key's in order, and records the attempts.
    async fn send_due(
        &self,
        webhooks: &Webhooks,
        hook: &Webhook,
        now: Timestamp,
        done: &mut RoundDone,
    ) -> Result<()> {
        let queue = self
            .store
            .list(&schema::webhook_queue(&hook.id), None, QUEUE_LOOK)
            .await?;
        if queue.cursor.is_some() {
            // More wait beyond what this round looks at: another round soon.
            done.next_due = Some(done.next_due.map_or(now, |d| d.min(now)));
        }
        // Keys with an earlier message still queued: their later messages wait.
        let mut waiting: BTreeSet<String> = BTreeSet::new();
        for entry in &queue.keys {
            let Some(message) = get_json::<S, Delivery>(&self.store, entry).await? else {
                continue;
            };
            if let Some(key) = &message.key
                && !waiting.insert(key.clone())
            {
                continue;
            }
            if message.next_at > now {
                done.next_due = Some(
                    done.next_due
                        .map_or(message.next_at, |d| d.min(message.next_at)),
                );
                continue;
            }
            if done.attempts == ROUND_ATTEMPTS {
                done.next_due = Some(now);
                return Ok(());
            }
            done.attempts += 1;
            let (view, delivered) = self.attempt(webhooks, hook, &message, false).await?;
            let _turn = self.store.turn().await;
            // Deleted (with its webhook) while it was being sent: nothing to record.
            if get_json::<S, Delivery>(&self.store, entry).await?.is_none() {
                continue;
            }
            let mut batch = Batch::default();
            match view.next_attempt_at {
                Some(next_at) if !delivered => {
                    let waits = Delivery {
                        attempts: view.attempt,
                        next_at,
                        ..message
                    };
                    batch.put(entry.clone(), &waits)?;
                    done.next_due = Some(done.next_due.map_or(next_at, |d| d.min(next_at)));
                }
                _ => {
                    batch.delete(entry.clone());
                    if let Some(key) = &message.key {
                        // Out of the queue: its key's next message may go in this round.
                        waiting.remove(key);
                    }
                }
            }
            log_attempt(&mut batch, &hook.id, &view)?;
            self.store.commit(batch).await?;
        }
        Ok(())
    }
}
