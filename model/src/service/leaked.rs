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

/// Where a leak was found, for its event.
#[derive(Debug, Clone)]
pub struct Leak {
    /// Who told Keygate: `public report`, or a secret scanner's name.
    pub source: String,
    /// Where the key was seen, when the reporter says.
    pub url: Option<String>,
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
        let leak = Leak {
            source: "public report".into(),
            url: None,
        };
        let tokens: Vec<&str> = report.keys.iter().map(String::as_str).collect();
        let live = self.revoke_leaked(&tokens, &leak, now).await?;
        if !live.iter().any(|l| *l) {
            self.store.commit(counted).await?;
        }
        Ok(LeakReportAnswer {
            received: u32::try_from(report.keys.len()).unwrap_or(u32::MAX),
        })
    }

    /// Revokes every live key among `tokens`, in one change per organization, each with a
    /// `key.leaked` event; answers, per token, whether it was a live key of this deployment.
    /// A token that is not a key, names no key, carries a wrong secret or names a key already
    /// revoked or expired changes nothing. The caller holds the store's turn.
    pub async fn revoke_leaked(
        &self,
        tokens: &[&str],
        leak: &Leak,
        now: Timestamp,
    ) -> Result<Vec<bool>> {
        let mut live = vec![false; tokens.len()];
        // Organization → the keys to revoke there (a key named twice is revoked once).
        let mut by_org: BTreeMap<String, BTreeMap<String, KeyRecord>> = BTreeMap::new();
        for (i, token) in tokens.iter().enumerate() {
            let Ok(key) = KeyRef::parse(token) else {
                continue;
            };
            let id = key.key_id();
            let Some(record) = get_json::<S, KeyRecord>(&self.store, &schema::key(&id)).await?
            else {
                continue;
            };
            if rules::check_secret(&record, &key.secret_hash(), now) != SecretCheck::Active
                || record.status(now) != KeyStatus::Active
            {
                continue;
            }
            live[i] = true;
            by_org
                .entry(record.org.clone())
                .or_default()
                .insert(id, record);
        }
        let actor = Actor {
            kind: "instance".into(),
            id: leak.source.clone(),
        };
        for (org, keys) in by_org {
            let mut batch = Batch::default();
            for (_, mut record) in keys {
                keys::write_revoked(&mut batch, &mut record, now)?;
                let details = json!({
                    "key_id": record.id,
                    "owner": record.owner,
                    "source": leak.source,
                    "url": leak.url,
                    "revoked": true,
                });
                events::record(
                    &mut batch,
                    &org,
                    actor.clone(),
                    "key.leaked",
                    Some(&record.id),
                    details,
                    now,
                )?;
            }
            self.store.commit(batch).await?;
        }
        Ok(live)
    }
}
