//! Expiry reminders (SPEC §6.1): `key.expiring` 7 days and 1 day before a key expires (once
//! each) and `key.expired` when it does, as events — so the audit log shows them and the
//! webhooks' outbox takes them like any other key event.
//!
//! Each key with an expiry has one entry in the reminder index, keyed by when its next
//! reminder is due (`schema::reminder_entry`); a round ([`Keygate::remind`], run at the start
//! of every delivery round) reads the index from its start up to now only, so a round with
//! nothing due is one listing. A reminder sent moves the key's entry to the next one's time.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::events;
use super::*;
use crate::api::Actor;

/// How long before its expiry a key gets each `key.expiring`.
pub const EXPIRING_WEEK: time::Duration = time::Duration::days(7);
pub const EXPIRING_DAY: time::Duration = time::Duration::days(1);
/// Who sends reminders, in their events.
pub const REMINDER_ACTOR: &str = "Keygate reminders";
/// The most reminders one round sends.
const ROUND: usize = 200;

/// A key's next reminder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Reminder {
    Week,
    Day,
    Expired,
}

impl Reminder {
    fn due(self, expires_at: Timestamp) -> Timestamp {
        match self {
            Reminder::Week => expires_at - EXPIRING_WEEK,
            Reminder::Day => expires_at - EXPIRING_DAY,
            Reminder::Expired => expires_at,
        }
    }

    /// What is sent for this entry at `now`: a reminder whose moment has passed is not sent
    /// late (after expiry, only `key.expired`; within the last day, only the 1-day one).
    fn at(self, expires_at: Timestamp, now: Timestamp) -> Reminder {
        if now >= expires_at {
            Reminder::Expired
        } else if now >= expires_at - EXPIRING_DAY && self == Reminder::Week {
            Reminder::Day
        } else {
            self
        }
    }

    fn next(self) -> Option<Reminder> {
        match self {
            Reminder::Week => Some(Reminder::Day),
            Reminder::Day => Some(Reminder::Expired),
            Reminder::Expired => None,
        }
    }
}

/// The whole second at or after `at`, which its index entry is keyed by (so no reminder is
/// sent before its moment, `key.expired` in particular).
fn second_of(at: Timestamp) -> i64 {
    let seconds = at.unix_timestamp();
    if at.nanosecond() > 0 {
        seconds + 1
    } else {
        seconds
    }
}

/// Adds the first reminder of a key that expires at `expires_at` to `batch`.
pub(crate) fn schedule(batch: &mut Batch, key: &str, expires_at: Timestamp) -> Result<()> {
    let first = Reminder::Week;
    batch.put(
        schema::reminder_entry(second_of(first.due(expires_at)), key),
        &first,
    )?;
    Ok(())
}

impl<S: Store> Keygate<S> {
    /// Sends the reminders due at `now` (up to a round's worth), in one batch in the store's
    /// turn; when the next one is due, if any is scheduled.
    pub async fn remind(&self, now: Timestamp) -> Result<Option<Timestamp>> {
        let prefix = schema::reminders();
        let due_of = |entry: &str| schema::reminder_due(entry).unwrap_or(i64::MAX);
        match self.next_reminder().await? {
            None => return Ok(None),
            Some(due) if due > now => return Ok(Some(due)),
            Some(_) => {}
        }
        let _turn = self.store.turn().await;
        let listing = self.store.list(&prefix, None, ROUND + 1).await?;
        let mut batch = Batch::default();
        let mut next = None;
        for entry in &listing.keys {
            let due = due_of(entry);
            if due > now.unix_timestamp() {
                next = time::OffsetDateTime::from_unix_timestamp(due).ok();
                break;
            }
            batch.delete(entry.clone());
            let Some(stage) = get_json::<S, Reminder>(&self.store, entry).await? else {
                continue;
            };
            let key = schema::id_of(entry);
            let Some(record) = get_json::<S, KeyRecord>(&self.store, &schema::key(key)).await?
            else {
                continue;
            };
            let Some(expires_at) = record.expires_at.filter(|_| record.revoked_at.is_none()) else {
                continue;
            };
            let sent = stage.at(expires_at, now);
            let left = expires_at - now;
            let (kind, details) = match sent {
                Reminder::Expired => (
                    "key.expired",
                    json!({"key_id": record.id, "owner": record.owner, "name": record.name, "expires_at": expires_at.unix_timestamp()}),
                ),
                _ => (
                    "key.expiring",
                    json!({
                        "key_id": record.id,
                        "owner": record.owner,
                        "name": record.name,
                        "expires_at": expires_at.unix_timestamp(),
                        "days_left": (left.whole_seconds() + 86_399) / 86_400,
                    }),
                ),
            };
            let actor = Actor {
                kind: "instance".into(),
                id: REMINDER_ACTOR.into(),
            };
            events::record(
                &mut batch,
                &record.org,
                actor,
                kind,
                Some(&record.id),
                details,
                now,
            )?;
            if let Some(following) = sent.next() {
                let at = following.due(expires_at);
                batch.put(schema::reminder_entry(second_of(at), key), &following)?;
                next = Some(next.map_or(at, |n: Timestamp| n.min(at)));
            }
        }
        self.store.commit(batch).await?;
        if listing.keys.len() > ROUND {
            next = Some(now);
        }
        Ok(next)
    }

    /// When the soonest scheduled reminder is due, if any: one listing. A host whose rounds
    /// are not on a fixed beat (the edge's alarm) asks it before it sleeps, so a key made
    /// during a round is reminded on time.
    pub async fn next_reminder(&self) -> Result<Option<Timestamp>> {
        let first = self.store.list(&schema::reminders(), None, 1).await?;
        Ok(first
            .keys
            .first()
            .and_then(|e| schema::reminder_due(e))
            .and_then(|due| time::OffsetDateTime::from_unix_timestamp(due).ok()))
    }

    /// Once per store: schedules the reminders of every live key made before reminders
    /// existed (recorded by `schema::reminders_indexed`); keys already expired get none.
    /// Idempotent: a key's entry is where [`schedule`] puts it, so a run cut short and run
    /// again writes the same entries. Hosts call it at start, before they serve (the edge in
    /// its object's turn, which it therefore does not take).
    pub async fn index_reminders(&self, now: Timestamp) -> Result<usize> {
        if self
            .store
            .get(&schema::reminders_indexed())
            .await?
            .is_some()
        {
            return Ok(0);
        }
        let mut cursor = None;
        let mut indexed = 0;
        loop {
            let listing = self
                .store
                .list(&schema::key(""), cursor.as_deref(), 500)
                .await?;
            let mut batch = Batch::default();
            for entry in &listing.keys {
                if let Some(record) = get_json::<S, KeyRecord>(&self.store, entry).await?
                    && let (Some(expires_at), None) = (record.expires_at, record.revoked_at)
                    && expires_at > now
                {
                    schedule(&mut batch, &record.id, expires_at)?;
                    indexed += 1;
                }
            }
            if listing.cursor.is_none() {
                batch.mark(schema::reminders_indexed());
            }
            self.store.commit(batch).await?;
            match listing.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(indexed),
            }
        }
    }
}
