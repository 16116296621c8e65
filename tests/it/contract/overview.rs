//! The overview (`GET /v1/overview`): an organization's keys by status and their use, in one
//! call, and nothing of another organization's.

use anyhow::{Result, ensure};
use serde_json::{Value, json};
use tests::As;

use super::{CaseFn, Ctx};

pub(super) const CASES: &[(&str, CaseFn)] =
    cases![the_overview_adds_up_an_organizations_keys_and_use];

/// The sum over `buckets` of `code`.
fn total(buckets: &Value, code: &str) -> u64 {
    buckets
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["counts"][code].as_u64())
        .sum()
}

/// Starts of consecutive buckets `step` seconds apart, the last one holding `now`.
fn consecutive(buckets: &Value, len: usize, step: i64) -> bool {
    let starts: Vec<i64> = buckets
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["start"].as_str())
        .filter_map(|s| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
        })
        .map(|t| t.unix_timestamp())
        .collect();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    starts.len() == len
        && starts.windows(2).all(|w| w[1] - w[0] == step)
        && starts.iter().all(|s| s % step == 0)
        && starts
            .last()
            .is_some_and(|last| (*last..last + step).contains(&now))
}

async fn the_overview_adds_up_an_organizations_keys_and_use(c: Ctx) -> Result<()> {
    // A fresh organization of its own, so that nothing another case does is counted here.
    let (org, admin) = c
        .new_organization("Overview", "boss@overview.example")
        .await?;
    let call = |method: &'static str, path: String, body: Option<Value>| {
        let (api, admin) = (c.api.clone(), admin.clone());
        async move {
            api.call(method, &path, As::Bearer(&admin), body.as_ref())
                .await
        }
    };

    let empty = call("GET", "/v1/overview".into(), None).await?;
    ensure!(empty.status == 200, "{empty:?}");
    let o = &empty.body;
    ensure!(
        o["keys"] == json!({"active": 0, "expiring_soon": 0, "expired": 0, "revoked": 0})
            && consecutive(&o["hours"], 24, 3600)
            && consecutive(&o["days"], 30, 86_400)
            && total(&o["days"], "VALID") == 0
            && o["most_refused"] == json!([])
            && o["extensive_use"] == json!([]),
        "a new organization's overview is empty: {o}"
    );

    let settings = json!({"api_keys_enabled": true, "extensive_use_per_hour": 3});
    let set = call("PATCH", "/v1/settings".into(), Some(settings)).await?;
    ensure!(set.status == 200, "{set:?}");
    let soon = (time::OffsetDateTime::now_utc() + time::Duration::days(2))
        .format(&time::format_description::well_known::Rfc3339)?;
    let mut keys = Vec::new();
    for (name, expires) in [("busy", None), ("soon", Some(soon)), ("gone", None)] {
        let mut body = json!({"name": name, "namespace": org, "role": "editor"});
        if let Some(at) = expires {
            body["expires_at"] = json!(at);
        }
        let answer = call("POST", "/v1/keys".into(), Some(body)).await?;
        ensure!(answer.status == 201, "{answer:?}");
        keys.push((
            answer.body["key"].as_str().unwrap_or_default().to_owned(),
            answer.body["id"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    let [(busy, busy_id), _, (gone, gone_id)] = &keys[..] else {
        anyhow::bail!("three keys");
    };
    let revoked = call("POST", format!("/v1/keys/{gone_id}/revoke"), None).await?;
    ensure!(revoked.status == 200, "{revoked:?}");
    let expect = |body: Value, code: &'static str| {
        let c = c.clone();
        async move {
            let v = c.verify(body).await?;
            ensure!(v.body["code"] == code, "{}", v.body);
            anyhow::Ok(())
        }
    };
    for _ in 0..3 {
        expect(json!({"key": busy}), "VALID").await?;
    }
    expect(
        json!({"key": busy, "permissions": ["nothing.here"]}),
        "INSUFFICIENT_PERMISSIONS",
    )
    .await?;
    for _ in 0..2 {
        expect(json!({"key": gone}), "REVOKED").await?;
    }

    // Counts are flushed off the request path: poll until every one is in.
    let mut o = Value::Null;
    for _ in 0..60 {
        o = call("GET", "/v1/overview".into(), None).await?.body;
        if total(&o["days"], "VALID") == 3
            && !o["extensive_use"].as_array().is_none_or(Vec::is_empty)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    ensure!(
        o["keys"] == json!({"active": 2, "expiring_soon": 1, "expired": 0, "revoked": 1}),
        "keys by status: {}",
        o["keys"]
    );
    for (code, n) in [
        ("VALID", 3),
        ("INSUFFICIENT_PERMISSIONS", 1),
        ("REVOKED", 2),
    ] {
        ensure!(
            total(&o["hours"], code) == n && total(&o["days"], code) == n,
            "{code}: {n} in the last 24 hours and 30 days: {o}"
        );
    }
    ensure!(
        o["most_refused"]
            == json!([
                {"id": gone_id, "name": "gone", "count": 2},
                {"id": busy_id, "name": "busy", "count": 1},
            ]),
        "most refused first: {}",
        o["most_refused"]
    );
    ensure!(
        o["extensive_use"] == json!([{"id": busy_id, "name": "busy", "count": 4}]),
        "4 verifications in an hour over a threshold of 3: {}",
        o["extensive_use"]
    );

    // The first organization's overview counts none of it.
    let first = c.admin("GET", "/v1/overview", None).await?;
    ensure!(
        first.status == 200 && !first.body.to_string().contains(busy_id.as_str()),
        "{}",
        first.body
    );
    Ok(())
}
