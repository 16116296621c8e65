//! Verification counts per key per minute by outcome, `last_used_at`, and the extensive-use
//! flag (SPEC §6).
//!
//! Counting is kept off the verification path: [`UsageBuffer`] aggregates in memory and a
//! host calls [`Keygate::flush_usage`] on its own schedule (the server every few seconds and
//! at shutdown; the worker after a response, through `wait_until`). A flush merges the
//! buffered counts into the store, so counts are exact once flushed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::events::record;
use super::{Caller, Keygate};
use crate::api::{Actor, UsageItem, UsagePage, UsageQuery, VerifyCode};
use crate::domain::{KeyRecord, Timestamp};
use crate::error::{Error, Result};
use crate::store::{Batch, Store, get_json, get_shared, schema};

/// Minutes of history the rolling per-key summary keeps (a day).
const WINDOW_MINUTES: i64 = 24 * 60;
/// An hour counts as far above a key's own recent rate at this multiple of its hourly average.
const SPIKE_FACTOR: u64 = 10;
/// …and only above this many verifications, so a quiet key's first busy hour is not flagged.
const SPIKE_FLOOR: u64 = 1000;

/// The minute of `at`, as minutes since the epoch.
pub fn minute_of(at: Timestamp) -> i64 {
    at.unix_timestamp().div_euclid(60)
}

/// Verifications by outcome.
type Counts = BTreeMap<VerifyCode, u64>;
/// One key's pending counts: its organization and its counts by minute.
#[derive(Debug, Default)]
struct KeyCounts {
    org: String,
    minutes: BTreeMap<i64, Counts>,
    /// The caller's address of the last verification that said one.
    last_ip: Option<String>,
}
/// Pending counts by key id. Keyed by the id alone so that counting a key already pending
/// (the common case, on the verification path) finds it without allocating; hashed, as a
/// flush writes every pending key in one batch, in any order. foldhash rather than SipHash:
/// key ids are not chosen by whoever verifies (an unknown key is never counted).
type Pending = HashMap<String, KeyCounts, foldhash::fast::RandomState>;

/// Counts waiting to be flushed, by key and minute.
///
/// Each buffer writes its counts under its own `writer` id (one per server process, one per
/// Worker isolate), so two isolates flushing the same key and minute write different records
/// and never overwrite each other's read-modify-write; a read sums the writers.
#[derive(Debug)]
pub struct UsageBuffer {
    writer: String,
    counts: Mutex<Pending>,
}

impl Default for UsageBuffer {
    fn default() -> Self {
        // Without the CSPRNG a fixed writer still counts; it only loses the isolation.
        let writer = crate::key::random_base62(8).unwrap_or_else(|_| "w".into());
        Self {
            writer,
            counts: Mutex::default(),
        }
    }
}

impl UsageBuffer {
    /// Counts one verification of `key`, from `client_ip` when the request said it.
    pub fn count(&self, key: &KeyRecord, at: Timestamp, code: VerifyCode, client_ip: Option<&str>) {
        if let Ok(mut counts) = self.counts.lock() {
            let slot = match counts.get_mut(key.id.as_str()) {
                Some(slot) => slot,
                None => counts.entry(key.id.clone()).or_insert_with(|| KeyCounts {
                    org: key.org.clone(),
                    minutes: BTreeMap::new(),
                    last_ip: None,
                }),
            };
            if let Some(ip) = client_ip
                && slot.last_ip.as_deref() != Some(ip)
            {
                slot.last_ip = Some(ip.to_owned());
            }
            *slot
                .minutes
                .entry(minute_of(at))
                .or_default()
                .entry(code)
                .or_default() += 1;
        }
    }

    /// Whether nothing waits to be flushed.
    pub fn is_empty(&self) -> bool {
        self.counts.lock().map(|c| c.is_empty()).unwrap_or(true)
    }

    fn take(&self) -> Pending {
        self.counts
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }

    fn restore(&self, pending: Pending) {
        if let Ok(mut counts) = self.counts.lock() {
            for (key, pending) in pending {
                let slot = counts.entry(key).or_insert_with(|| KeyCounts {
                    org: pending.org,
                    minutes: BTreeMap::new(),
                    last_ip: None,
                });
                // A newer count's address, taken while these were away, stays.
                if slot.last_ip.is_none() {
                    slot.last_ip = pending.last_ip;
                }
                for (minute, codes) in pending.minutes {
                    let stored = slot.minutes.entry(minute).or_default();
                    for (code, n) in codes {
                        *stored.entry(code).or_default() += n;
                    }
                }
            }
        }
    }
}

/// Pending counts as they travel between hosts: the edge's isolates hand theirs to the
/// organization's control object, which writes them ([`UsageBuffer::report`],
/// [`UsageBuffer::absorb`]). One row per key, minute and outcome: (key id, organization,
/// minute, code, count), and each key's last caller address: (key id, organization, address).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageReport {
    pub rows: Vec<(String, String, i64, VerifyCode, u64)>,
    #[serde(default)]
    pub ips: Vec<(String, String, String)>,
}

impl UsageReport {
    /// Whether it counts nothing.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.ips.is_empty()
    }

    /// Adds `other`'s counts.
    pub fn extend(&mut self, other: UsageReport) {
        self.rows.extend(other.rows);
        self.ips.extend(other.ips);
    }

    /// Its counts by the organization of their keys: each organization's store writes its
    /// own (a host that keeps one store per organization hands each its part).
    pub fn by_organization(self) -> std::collections::BTreeMap<String, UsageReport> {
        let mut parts: std::collections::BTreeMap<String, UsageReport> = Default::default();
        for row in self.rows {
            parts.entry(row.1.clone()).or_default().rows.push(row);
        }
        for ip in self.ips {
            parts.entry(ip.1.clone()).or_default().ips.push(ip);
        }
        parts
    }
}

impl UsageBuffer {
    /// Takes every pending count out of the buffer, as a report for another host to write.
    pub fn report(&self) -> UsageReport {
        let mut report = UsageReport::default();
        for (key, counts) in self.take() {
            if let Some(ip) = counts.last_ip {
                report.ips.push((key.clone(), counts.org.clone(), ip));
            }
            for (minute, codes) in counts.minutes {
                for (code, n) in codes {
                    report
                        .rows
                        .push((key.clone(), counts.org.clone(), minute, code, n));
                }
            }
        }
        report
    }

    /// Adds a report's counts to the buffer (the receiving host's, or the sender's own
    /// when handing it over failed: nothing is lost).
    pub fn absorb(&self, report: UsageReport) {
        let mut pending = Pending::default();
        for (key, org, ip) in report.ips {
            pending
                .entry(key)
                .or_insert_with(|| KeyCounts {
                    org,
                    minutes: BTreeMap::new(),
                    last_ip: None,
                })
                .last_ip = Some(ip);
        }
        for (key, org, minute, code, n) in report.rows {
            let slot = pending.entry(key).or_insert_with(|| KeyCounts {
                org,
                minutes: BTreeMap::new(),
                last_ip: None,
            });
            *slot
                .minutes
                .entry(minute)
                .or_default()
                .entry(code)
                .or_default() += n;
        }
        self.restore(pending);
    }
}

/// One key's rolling summary: when it was last used and its totals per minute over a day.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UsageSummary {
    pub last_used_minute: Option<i64>,
    /// The caller's address at the last use that said one (`client_ip`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_ip: Option<String>,
    /// (minute, verifications) for the last [`WINDOW_MINUTES`].
    pub minutes: Vec<(i64, u64)>,
    /// The minute the key was last flagged for extensive use.
    pub flagged_minute: Option<i64>,
}

impl UsageSummary {
    /// Verifications in the hour ending at `minute`.
    pub fn last_hour(&self, minute: i64) -> u64 {
        self.minutes
            .iter()
            .filter(|(m, _)| minute - m < 60)
            .map(|(_, n)| n)
            .sum()
    }

    /// Whether use in the last hour is far above this key's own recent rate, or above the
    /// organization's threshold when one is set.
    pub fn is_extensive(&self, minute: i64, threshold: Option<u64>) -> bool {
        let hour = self.last_hour(minute);
        if let Some(limit) = threshold {
            return hour > limit;
        }
        let before: u64 = self
            .minutes
            .iter()
            .filter(|(m, _)| minute - m >= 60)
            .map(|(_, n)| n)
            .sum();
        let hourly_average = before / 23;
        hour > SPIKE_FLOOR && hour > SPIKE_FACTOR * hourly_average.max(1)
    }

    /// Whether the flag is up: the key was flagged within the last hour.
    pub fn flagged(&self, minute: i64) -> bool {
        self.flagged_minute.is_some_and(|f| minute - f < 60)
    }
}

/// One hour of an organization's verifications as one writer counted them (summed over
/// writers when read): what the overview reads, so that it never lists every key's minutes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct OrgHour {
    pub counts: Counts,
    /// Refused verifications (every code but `VALID`) by key id.
    #[serde(default)]
    pub refused: BTreeMap<String, u64>,
    /// The keys flagged for extensive use in this hour.
    #[serde(default)]
    pub flagged: std::collections::BTreeSet<String>,
}

impl OrgHour {
    pub fn merge(&mut self, other: OrgHour) {
        for (code, n) in other.counts {
            *self.counts.entry(code).or_default() += n;
        }
        for (key, n) in other.refused {
            *self.refused.entry(key).or_default() += n;
        }
        self.flagged.extend(other.flagged);
    }
}

/// How long a key's per-minute verification counts are kept (`GET /v1/keys/{id}/usage`
/// answers from them); the store purges older ones (SPEC §11).
pub const USAGE_RETENTION: time::Duration = time::Duration::days(90);

impl<S: Store> Keygate<S> {
    /// Writes the buffered counts into the store. On a store failure the counts go back into
    /// the buffer for the next flush, so they are not lost.
    pub async fn flush_usage(&self, now: Timestamp) -> Result<()> {
        let pending = self.usage.take();
        if pending.is_empty() {
            return Ok(());
        }
        match self.write_usage(&pending, now).await {
            Ok(()) => Ok(()),
            Err(e) => {
                self.usage.restore(pending);
                Err(e)
            }
        }
    }

    async fn write_usage(&self, pending: &Pending, now: Timestamp) -> Result<()> {
        let current = minute_of(now);
        // One batch for the whole flush: one durable commit on the server however many keys.
        let mut batch = Batch::default();
        let mut hours: BTreeMap<(&str, i64), OrgHour> = BTreeMap::new();
        for (
            key,
            KeyCounts {
                org,
                minutes,
                last_ip,
            },
        ) in pending
        {
            let mut summary: UsageSummary = get_json(&self.store, &schema::usage_summary(key))
                .await?
                .unwrap_or_default();
            if last_ip.is_some() {
                summary.last_used_ip.clone_from(last_ip);
            }
            for (&minute, codes) in minutes {
                let slot = schema::usage(key, minute, &self.usage.writer);
                let mut stored: Counts = get_json(&self.store, &slot).await?.unwrap_or_default();
                let mut total = 0;
                let hour = hours
                    .entry((org.as_str(), minute.div_euclid(60)))
                    .or_default();
                for (code, n) in codes {
                    *stored.entry(*code).or_default() += n;
                    *hour.counts.entry(*code).or_default() += n;
                    if *code != VerifyCode::Valid {
                        *hour.refused.entry(key.clone()).or_default() += n;
                    }
                    total += n;
                }
                // Kept for USAGE_RETENTION, then purged by the store.
                let ends = time::OffsetDateTime::from_unix_timestamp(minute * 60)
                    .map_err(|e| Error::Internal(e.to_string()))?
                    + USAGE_RETENTION;
                batch.put_expiring(slot, &stored, ends)?;
                match summary.minutes.iter_mut().find(|(m, _)| *m == minute) {
                    Some((_, n)) => *n += total,
                    None => summary.minutes.push((minute, total)),
                }
                summary.last_used_minute = summary.last_used_minute.max(Some(minute));
            }
            summary
                .minutes
                .retain(|(m, _)| current - m < WINDOW_MINUTES);
            summary.minutes.sort_unstable();
            let org_record =
                get_shared::<S, crate::domain::Organization>(&self.store, &schema::org(org))
                    .await?;
            let threshold = org_record.and_then(|o| o.settings.extensive_use_per_hour);
            if summary.is_extensive(current, threshold) && !summary.flagged(current) {
                summary.flagged_minute = Some(current);
                hours
                    .entry((org.as_str(), current.div_euclid(60)))
                    .or_default()
                    .flagged
                    .insert(key.clone());
                let actor = Actor {
                    kind: "key".into(),
                    id: key.to_owned(),
                };
                let details = json!({"key_id": key, "last_hour": summary.last_hour(current), "threshold": threshold});
                record(
                    &mut batch,
                    org,
                    actor,
                    "key.extensive_use",
                    Some(key),
                    details,
                    now,
                )?;
            }
            batch.put(schema::usage_summary(key), &summary)?;
        }
        for ((org, hour), counted) in hours {
            let slot = schema::usage_org(org, hour, &self.usage.writer);
            let mut stored: OrgHour = get_json(&self.store, &slot).await?.unwrap_or_default();
            stored.merge(counted);
            let ends = time::OffsetDateTime::from_unix_timestamp(hour * 3600)
                .map_err(|e| Error::Internal(e.to_string()))?
                + USAGE_RETENTION;
            batch.put_expiring(slot, &stored, ends)?;
        }
        self.store.commit(batch).await?;
        Ok(())
    }

    /// A key's usage summary, if it was ever used.
    pub(crate) async fn usage_summary(&self, key: &str) -> Result<Option<UsageSummary>> {
        get_json(&self.store, &schema::usage_summary(key)).await
    }

    /// `GET /v1/keys/{id}/usage?since=&until=`: verifications per minute by outcome.
    pub async fn key_usage(
        &self,
        caller: &Caller,
        id: &str,
        query: UsageQuery,
    ) -> Result<UsagePage> {
        self.visible_key_record(caller, id).await?;
        let since = query.since.map(minute_of);
        let until = query.until.map(minute_of);
        // Entries sort by minute, then writer: sum each minute's writers.
        let mut by_minute: BTreeMap<i64, Counts> = BTreeMap::new();
        for entry in self.list_all(&schema::usage_prefix(id)).await? {
            let Some(minute) = schema::usage_minute(&entry) else {
                continue;
            };
            if since.is_some_and(|s| minute < s) || until.is_some_and(|u| minute >= u) {
                continue;
            }
            let counts: Counts = get_json(&self.store, &entry).await?.unwrap_or_default();
            let slot = by_minute.entry(minute).or_default();
            for (code, n) in counts {
                *slot.entry(code).or_default() += n;
            }
        }
        let mut items = Vec::with_capacity(by_minute.len());
        for (minute, counts) in by_minute {
            let at = time::OffsetDateTime::from_unix_timestamp(minute * 60)
                .map_err(|e| Error::Internal(e.to_string()))?;
            items.push(UsageItem { minute: at, counts });
        }
        Ok(UsagePage { items })
    }
}

#[cfg(test)]
mod tests {
    use super::{UsageBuffer, UsageReport, UsageSummary};
    use crate::api::VerifyCode;

    #[test]
    fn a_report_carries_every_count_to_another_buffer_and_merges_repeats() {
        let row =
            |key: &str, minute, code, n| (key.to_owned(), "org_a".to_owned(), minute, code, n);
        let cases: &[(&str, Vec<_>, Vec<_>)] = &[
            ("nothing", vec![], vec![]),
            (
                "one row",
                vec![row("k1", 5, VerifyCode::Valid, 3)],
                vec![row("k1", 5, VerifyCode::Valid, 3)],
            ),
            (
                "repeats add up, distinct rows stay",
                vec![
                    row("k1", 5, VerifyCode::Valid, 3),
                    row("k1", 5, VerifyCode::Valid, 4),
                    row("k1", 6, VerifyCode::Revoked, 1),
                    row("k2", 5, VerifyCode::Valid, 2),
                ],
                vec![
                    row("k1", 5, VerifyCode::Valid, 7),
                    row("k1", 6, VerifyCode::Revoked, 1),
                    row("k2", 5, VerifyCode::Valid, 2),
                ],
            ),
        ];
        for (name, sent, expected) in cases {
            let receiver = UsageBuffer::default();
            let report = UsageReport {
                rows: sent.clone(),
                ips: Vec::new(),
            };
            let wire = serde_json::to_vec(&report).expect("encodes");
            receiver.absorb(serde_json::from_slice(&wire).expect("decodes"));
            assert_eq!(receiver.is_empty(), expected.is_empty(), "{name}");
            let mut got = receiver.report().rows;
            got.sort();
            assert_eq!(&got, expected, "{name}");
            assert!(
                receiver.is_empty(),
                "{name}: a report takes what it carries"
            );
        }
    }

    #[test]
    fn extensive_use_is_a_spike_over_the_keys_own_rate_or_over_the_threshold() {
        let now = 100_000;
        let steady: Vec<(i64, u64)> = (0..24 * 60).map(|m| (now - m, 10)).collect();
        let summary = UsageSummary {
            minutes: steady,
            ..Default::default()
        };
        assert_eq!(summary.last_hour(now), 600);
        assert!(
            !summary.is_extensive(now, None),
            "a steady rate is normal, however high"
        );
        assert!(
            summary.is_extensive(now, Some(599)),
            "above the admin's threshold"
        );

        let mut spike = summary.clone();
        for slot in spike.minutes.iter_mut().filter(|(m, _)| now - m < 60) {
            slot.1 = 200;
        }
        assert!(
            spike.is_extensive(now, None),
            "12 000 in an hour against ~600 an hour before"
        );
        let quiet = UsageSummary {
            minutes: vec![(now, 50)],
            ..Default::default()
        };
        assert!(
            !quiet.is_extensive(now, None),
            "a quiet key's first use is not a spike"
        );
    }
}
