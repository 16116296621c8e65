//! Leaked keys (SPEC §4.6): a key someone found where it should not be is revoked at once, in
//! one change per organization, with a `key.leaked` event that says where it was found and
//! never holds the key.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::json;

use super::*;
use crate::api::{Actor, LeakReport, LeakReportAnswer};
use crate::domain::KeyStatus;

/// The most keys one leak report may carry.
pub const MAX_LEAK_REPORT: usize = 100;

/// Who reports a leak made through `POST /v1/keys/leaked`, in its event.
pub const PUBLIC_REPORTER: &str = "public report";

/// Where a leak was found, for its event.
#[derive(Debug, Clone)]
pub struct Leak {
    /// Who told Keygate (the event's actor): [`PUBLIC_REPORTER`], or a secret scanner.
    pub reporter: &'static str,
    /// What kind of place the key was seen in, as the reporter says (`content`, `commit`…;
    /// `public report` for a report).
    pub source: String,
    /// Where the key was seen, when the reporter says.
    pub url: Option<String>,
}

/// What a reported token turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Not a key of this deployment: malformed, no such key, or a wrong secret.
    Nothing,
    /// A key of this deployment that was live: it is revoked now.
    Live,
    /// A key of this deployment (its secret matches) already revoked or expired.
    Inactive,
}

impl<S: Store> Keygate<S> {
    /// `POST /v1/keys/leaked`: anyone may report keys; each one that verifies (its current
    /// secret, or the previous one within its grace period, of a key not yet revoked or
    /// expired) is revoked. The answer says only how many keys were received. Throttled like
    /// sign-in: from one address, at most [`MAX_LOGIN_FAILURES`] reports that matched no key
    /// per [`LOGIN_WINDOW`], then 429 until the window ends (a report that revokes a key is
    /// never counted).
    pub async fn report_leaked(
        &self,
        report: LeakReport,
        client: Option<IpAddr>,
        now: Timestamp,
    ) -> Result<LeakReportAnswer> {
        if report.keys.is_empty() || report.keys.len() > MAX_LEAK_REPORT {
            return Err(Error::invalid(
                "keys",
                format!("between 1 and {MAX_LEAK_REPORT} keys"),
            ));
        }
        // Refused before any work when the address is throttled already.
        let throttle_key = schema::leak_throttle(client);
        let mut counted = Batch::default();
        self.count_failure(&mut counted, &throttle_key, now).await?;
        let leaks: Vec<(&str, Leak)> = report
            .keys
            .iter()
            .map(|token| {
                let leak = Leak {
                    reporter: PUBLIC_REPORTER,
                    source: PUBLIC_REPORTER.into(),
                    url: None,
                };
                (token.as_str(), leak)
            })
            .collect();
        let found = self.revoke_leaked(&leaks, now).await?;
        if !found.contains(&Found::Live) {
            self.store.commit(counted).await?;
        }
        Ok(LeakReportAnswer {
            received: u32::try_from(report.keys.len()).unwrap_or(u32::MAX),
        })
    }

    /// Revokes every live key among the `leaks`' tokens, in one change per organization, each
    /// with a `key.leaked` event saying where it leaked (a key named twice is revoked once,
    /// with the first one's place); answers what each token was. A token that is not a key,
    /// names no key, carries a wrong secret or names a key already revoked or expired changes
    /// nothing. The caller holds the store's turn.
    pub async fn revoke_leaked(
        &self,
        leaks: &[(&str, Leak)],
        now: Timestamp,
    ) -> Result<Vec<Found>> {
        let mut found = vec![Found::Nothing; leaks.len()];
        // Organization → the keys to revoke there, each with where it leaked.
        let mut by_org: BTreeMap<String, BTreeMap<String, (KeyRecord, &Leak)>> = BTreeMap::new();
        for (i, (token, leak)) in leaks.iter().enumerate() {
            let Ok(key) = KeyRef::parse(token) else {
                continue;
            };
            let id = key.key_id();
            let Some(record) = get_json::<S, KeyRecord>(&self.store, &schema::key(&id)).await?
            else {
                continue;
            };
            found[i] = match rules::check_secret(&record, &key, now) {
                SecretCheck::Unknown => continue,
                SecretCheck::Refused(_) => Found::Inactive,
                SecretCheck::Active if record.status(now) != KeyStatus::Active => Found::Inactive,
                SecretCheck::Active => Found::Live,
            };
            if found[i] == Found::Live {
                by_org
                    .entry(record.org.clone())
                    .or_default()
                    .entry(id)
                    .or_insert((record, leak));
            }
        }
        for (org, keys) in by_org {
            let mut batch = Batch::default();
            for (_, (mut record, leak)) in keys {
                keys::write_revoked(&mut batch, &mut record, now)?;
                let details = json!({
                    "key_id": record.id,
                    "owner": record.owner,
                    "reporter": leak.reporter,
                    "source": leak.source,
                    "url": leak.url,
                    "revoked": true,
                });
                let actor = Actor {
                    kind: "instance".into(),
                    id: leak.reporter.into(),
                };
                events::record(
                    &mut batch,
                    &org,
                    actor,
                    "key.leaked",
                    Some(&record.id),
                    details,
                    now,
                )?;
            }
            self.store.commit(batch).await?;
        }
        Ok(found)
    }
}
