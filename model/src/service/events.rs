//! The audit log (SPEC §6): every change appends an event in the same batch as the change, so
//! a change and its event are written together or not at all. Events never hold a secret.
//! A key's event also enters the webhooks' outbox in that batch (`webhooks.rs`).

use serde_json::Value;

use super::scan::Scan;
use super::{Caller, Keygate, Via, page_limit};
use crate::api::{Actor, EventQuery, EventView, Page};
use crate::domain::{Outgoing, Timestamp};
use crate::error::Result;
use crate::id::{Kind, new_id};
use crate::store::{Batch, Store, get_json, schema};

/// Largest number of index entries one listing call scans before it answers with a cursor.
const SCAN_BUDGET: usize = 5000;

impl Caller {
    /// Who an event names as its actor: the key when the caller authenticated with one.
    pub fn actor(&self) -> Actor {
        match &self.via {
            Via::Session { .. } => Actor {
                kind: "user".into(),
                id: self.user.id.clone(),
            },
            Via::Key(key) => Actor {
                kind: "key".into(),
                id: key.id.clone(),
            },
        }
    }
}

/// Events recorded by this process: the outbox's order among events of one instant.
static RECORDED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Adds the event `kind` on `target` to `batch`.
pub(crate) fn record(
    batch: &mut Batch,
    org: &str,
    actor: Actor,
    kind: &str,
    target: Option<&str>,
    details: Value,
    now: Timestamp,
) -> Result<()> {
    let event = EventView {
        id: new_id(Kind::Event)?,
        kind: kind.to_owned(),
        at: now,
        actor,
        target: target.map(str::to_owned),
        details,
    };
    let entry = schema::event_entry(org, now, &event.id);
    if crate::webhook::delivered(kind) {
        // In the change's own batch: what is committed is delivered, even after a crash.
        let outgoing = Outgoing {
            org: org.to_owned(),
            event: entry.clone(),
        };
        let seq = RECORDED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        batch.put(schema::outbox_entry(now, seq, &event.id), &outgoing)?;
    }
    batch.put(entry, &event)?;
    Ok(())
}

impl<S: Store> Keygate<S> {
    /// `GET /v1/events` (admins): newest first, filtered by type, key, actor and time range.
    pub async fn events(&self, caller: &Caller, query: EventQuery) -> Result<Page<EventView>> {
        caller.require_admin()?;
        let limit = page_limit(query.limit)? as usize;
        let matches = |e: &EventView| {
            query.kind.as_deref().is_none_or(|t| {
                e.kind == t || (t.ends_with(".*") && e.kind.starts_with(&t[..t.len() - 1]))
            }) && query.actor.as_deref().is_none_or(|a| e.actor.id == a)
                && query.key_id.as_deref().is_none_or(|k| {
                    e.target.as_deref() == Some(k)
                        || e.details.get("key_id").and_then(Value::as_str) == Some(k)
                })
                && query.since.is_none_or(|t| e.at >= t)
                && query.until.is_none_or(|t| e.at < t)
        };
        let prefix = schema::events(&caller.org.id);
        let mut items = Vec::new();
        let mut scan = Scan::new(&self.store, prefix, query.cursor.as_deref(), 200)?;
        let mut scanned = 0;
        while let Some(entry) = scan.next().await? {
            scanned += 1;
            if let Some(event) = get_json::<S, EventView>(&self.store, &entry).await? {
                // Newest first: once past `since`, nothing older can match.
                if query.since.is_some_and(|t| event.at < t) {
                    return Ok(Page {
                        items,
                        next_cursor: None,
                    });
                }
                if matches(&event) {
                    items.push(event);
                }
            }
            if items.len() == limit || scanned == SCAN_BUDGET {
                return Ok(Page {
                    items,
                    next_cursor: Some(scan.cursor()),
                });
            }
        }
        Ok(Page {
            items,
            next_cursor: None,
        })
    }
}
