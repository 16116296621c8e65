//! `GET /v1/overview`: an organization's keys and their use at a glance, for the admin's
//! landing page. One call reads the key index and the organization's hourly usage records
//! (`schema::usage_org`, written by the usage flush), never every key's minutes.

use std::collections::BTreeMap;

use super::usage::{OrgHour, UsageSummary};
use super::{Caller, Keygate};
use crate::api::{KeyFigure, KeyTotals, OverviewView, UsageBucket, VerifyCode};
use crate::domain::{KeyRecord, KeyStatus, Timestamp};
use crate::error::{Error, Result};
use crate::store::{Store, get_json, schema};

/// What counts as expiring soon in the overview (and the console's badge).
pub const EXPIRING_SOON: time::Duration = time::Duration::days(7);
/// How many keys the overview lists by refusals.
const MOST_REFUSED: usize = 5;
const HOURS: i64 = 24;
const DAYS: i64 = 30;

type Counts = BTreeMap<VerifyCode, u64>;

fn add(into: &mut Counts, from: &Counts) {
    for (code, n) in from {
        *into.entry(*code).or_default() += n;
    }
}

fn start(seconds: i64) -> Result<Timestamp> {
    Timestamp::from_unix_timestamp(seconds).map_err(|e| Error::Internal(e.to_string()))
}

impl<S: Store> Keygate<S> {
    /// The overview at `now` (admins).
    pub async fn overview(&self, caller: &Caller, now: Timestamp) -> Result<OverviewView> {
        caller.require_admin()?;
        let org = caller.org.id.as_str();
        let mut keys = KeyTotals::default();
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        for entry in self.list_all(&schema::org_keys(org)).await? {
            let id = schema::id_of(&entry);
            let Some(record) = get_json::<S, KeyRecord>(&self.store, &schema::key(id)).await?
            else {
                continue;
            };
            match record.status(now) {
                KeyStatus::Active => {
                    keys.active += 1;
                    let soon = record
                        .expires_at
                        .is_some_and(|at| at - now <= EXPIRING_SOON);
                    keys.expiring_soon += u64::from(soon);
                }
                KeyStatus::Expired => keys.expired += 1,
                KeyStatus::Revoked => keys.revoked += 1,
            }
            names.insert(record.id, record.name);
        }

        let hour_now = now.unix_timestamp().div_euclid(3600);
        let day_now = hour_now.div_euclid(24);
        let first_hour = (day_now - DAYS + 1) * 24;
        // Summed over writers, by hour, within the 30 days.
        let mut by_hour: BTreeMap<i64, OrgHour> = BTreeMap::new();
        for entry in self.list_all(&schema::usage_org_prefix(org)).await? {
            let Some(hour) = schema::usage_org_hour(&entry) else {
                continue;
            };
            if !(first_hour..=hour_now).contains(&hour) {
                continue;
            }
            if let Some(stored) = get_json::<S, OrgHour>(&self.store, &entry).await? {
                by_hour.entry(hour).or_default().merge(stored);
            }
        }

        let mut hours = Vec::with_capacity(HOURS as usize);
        for hour in hour_now - HOURS + 1..=hour_now {
            let counts = by_hour
                .get(&hour)
                .map(|h| h.counts.clone())
                .unwrap_or_default();
            hours.push(UsageBucket {
                start: start(hour * 3600)?,
                counts,
            });
        }
        let mut days = Vec::with_capacity(DAYS as usize);
        let mut refused: BTreeMap<&str, u64> = BTreeMap::new();
        for day in day_now - DAYS + 1..=day_now {
            let mut counts = Counts::new();
            for (_, h) in by_hour.range(day * 24..(day + 1) * 24) {
                add(&mut counts, &h.counts);
                for (key, n) in &h.refused {
                    *refused.entry(key).or_default() += n;
                }
            }
            days.push(UsageBucket {
                start: start(day * 86_400)?,
                counts,
            });
        }
        let figure = |id: &str, count| KeyFigure {
            id: id.to_owned(),
            name: names.get(id).cloned(),
            count,
        };
        let mut most: Vec<(&str, u64)> = refused.into_iter().filter(|(_, n)| *n > 0).collect();
        most.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let most_refused = most
            .into_iter()
            .take(MOST_REFUSED)
            .map(|(id, n)| figure(id, n))
            .collect();

        // A flag stays up for an hour (`UsageSummary::flagged`): it was raised in this hour
        // or the one before; the key's summary says whether it still is, and its last hour.
        let minute = super::minute_of(now);
        let mut extensive_use = Vec::new();
        let candidates: std::collections::BTreeSet<&String> = (hour_now - 1..=hour_now)
            .filter_map(|h| by_hour.get(&h))
            .flat_map(|h| &h.flagged)
            .collect();
        for id in candidates {
            let summary: Option<UsageSummary> = self.usage_summary(id).await?;
            if let Some(summary) = summary.filter(|s| s.flagged(minute)) {
                extensive_use.push(figure(id, summary.last_hour(minute)));
            }
        }
        extensive_use.sort_by(|a, b| b.count.cmp(&a.count).then(a.id.cmp(&b.id)));

        Ok(OverviewView {
            keys,
            hours,
            days,
            most_refused,
            extensive_use,
        })
    }
}
