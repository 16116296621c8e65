//! Usage policies (SPEC §4.5): rate limits and credits never exceeded under a burst, what a
//! refusal spends (nothing), `cost`, top-ups, policy changes, validation, and the counts.

use super::*;

pub const CASES: &[(&str, CaseFn)] = cases![
    a_burst_gets_exactly_the_limit,
    a_limit_refills_at_limit_per_window,
    cost_zero_and_refusals_spend_nothing,
    a_burst_spends_exactly_the_credits,
    credits_are_added_and_set_by_the_owner_or_an_admin,
    bad_policies_are_422_and_change_nothing,
    a_policy_is_replaced_whole,
    refusals_for_rate_and_credits_are_counted,
];

impl Ctx {
    /// A key with `policy` (its `ratelimits`, `credits` and `allowed_cidrs`) that may read
    /// resources; (plaintext, id).
    async fn metered_key(&self, policy: Value) -> Result<(String, String)> {
        let mut body = json!({"name": "metered", "namespace": self.org,
            "permissions": [{"permission": "resources.read"}]});
        for (field, value) in policy.as_object().into_iter().flatten() {
            body[field] = value.clone();
        }
        let made = self.create_key(body).await?;
        ensure!(made.status == 201, "{made:?}");
        let field = |f: &str| made.body[f].as_str().unwrap_or_default().to_owned();
        Ok((field("key"), field("id")))
    }

    /// `n` verifications of `body` at once; their codes.
    async fn burst(&self, n: usize, body: Value) -> Result<Vec<String>> {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (c, body) = (self.clone(), body.clone());
                tokio::spawn(async move { c.verify(body).await })
            })
            .collect();
        let mut codes = Vec::with_capacity(n);
        for task in tasks {
            let answer = task.await??;
            ensure!(answer.status == 200, "{answer:?}");
            codes.push(answer.body["code"].as_str().unwrap_or_default().to_owned());
        }
        Ok(codes)
    }

    async fn key_view(&self, id: &str) -> Result<Value> {
        let shown = self.admin("GET", &format!("/v1/keys/{id}"), None).await?;
        ensure!(shown.status == 200, "{shown:?}");
        Ok(shown.body)
    }
}

fn count(codes: &[String], code: &str) -> usize {
    codes.iter().filter(|c| *c == code).count()
}

async fn a_burst_gets_exactly_the_limit(c: Ctx) -> Result<()> {
    let limit = json!([{"name": "hourly", "limit": 20, "window_seconds": 3600}]);
    let (key, id) = c.metered_key(json!({"ratelimits": limit})).await?;
    let codes = c.burst(100, json!({"key": key})).await?;
    ensure!(
        count(&codes, "VALID") == 20 && count(&codes, "RATE_LIMITED") == 80,
        "100 at once of a 20-per-hour key: {} valid, {} rate limited, others {:?}",
        count(&codes, "VALID"),
        count(&codes, "RATE_LIMITED"),
        codes
            .iter()
            .filter(|c| *c != "VALID" && *c != "RATE_LIMITED")
            .collect::<Vec<_>>()
    );
    let refused = c.verify(json!({"key": key})).await?;
    let limits = &refused.body["ratelimits"];
    ensure!(
        refused.body["valid"] == false
            && limits[0]["name"] == "hourly"
            && limits[0]["limit"] == 20
            && limits[0]["remaining"] == 0
            && limits[0]["retry_after_ms"]
                .as_u64()
                .is_some_and(|ms| ms > 0 && ms <= 180_000)
            && limits[0]["reset_at"].is_string(),
        "{}",
        refused.body
    );
    let view = c.key_view(&id).await?;
    ensure!(view["ratelimits"] == limit, "{view}");
    ensure!(view["credits"].is_null(), "{view}");
    Ok(())
}

async fn a_limit_refills_at_limit_per_window(c: Ctx) -> Result<()> {
    // 2 per 2 s: a token a second.
    let (key, _) = c
        .metered_key(json!({"ratelimits": [{"name": "fast", "limit": 2, "window_seconds": 2}]}))
        .await?;
    let codes = c.burst(5, json!({"key": key})).await?;
    ensure!(count(&codes, "VALID") == 2, "{codes:?}");
    let refused = c.verify(json!({"key": key})).await?;
    ensure!(refused.body["code"] == "RATE_LIMITED", "{}", refused.body);
    let wait = refused.body["ratelimits"][0]["retry_after_ms"]
        .as_u64()
        .unwrap_or(u64::MAX);
    ensure!(
        wait <= 1000,
        "one token comes within a second: {}",
        refused.body
    );
    tokio::time::sleep(std::time::Duration::from_millis(wait + 100)).await;
    let codes = c.burst(4, json!({"key": key})).await?;
    ensure!(
        count(&codes, "VALID") == 1,
        "one token refilled after {wait} ms: {codes:?}"
    );
    Ok(())
}

async fn cost_zero_and_refusals_spend_nothing(c: Ctx) -> Result<()> {
    let (key, id) = c
        .metered_key(json!({
            "ratelimits": [{"name": "hourly", "limit": 3, "window_seconds": 3600}],
            "credits": {"remaining": 5}
        }))
        .await?;
    let state = |v: &Value| {
        (
            v["ratelimits"][0]["remaining"].as_u64(),
            v["credits"]["remaining"].as_u64(),
        )
    };
    for _ in 0..5 {
        let peek = c.verify(json!({"key": key, "cost": 0})).await?;
        ensure!(
            peek.body["code"] == "VALID" && state(&peek.body) == (Some(3), Some(5)),
            "cost 0: {}",
            peek.body
        );
    }
    for refused in [
        json!({"key": key, "namespace": "ws_000000000000"}),
        json!({"key": key, "permissions": ["resources.write"]}),
    ] {
        for _ in 0..4 {
            let answer = c.verify(refused.clone()).await?;
            ensure!(
                answer.body["valid"] == false && state(&answer.body) == (Some(3), Some(5)),
                "a refusal spends nothing: {}",
                answer.body
            );
        }
    }
    let two = c.verify(json!({"key": key, "cost": 2})).await?;
    ensure!(
        two.body["code"] == "VALID" && state(&two.body) == (Some(1), Some(3)),
        "cost 2: {}",
        two.body
    );
    // One token left: a cost of 2 is refused whole, and spends no credit either.
    let short = c.verify(json!({"key": key, "cost": 2})).await?;
    ensure!(
        short.body["code"] == "RATE_LIMITED" && state(&short.body) == (Some(1), Some(3)),
        "{}",
        short.body
    );
    let view = c.key_view(&id).await?;
    ensure!(view["credits"]["remaining"] == 3, "{view}");
    Ok(())
}

async fn a_burst_spends_exactly_the_credits(c: Ctx) -> Result<()> {
    let (key, id) = c.metered_key(json!({"credits": {"remaining": 30}})).await?;
    let codes = c.burst(120, json!({"key": key})).await?;
    ensure!(
        count(&codes, "VALID") == 30 && count(&codes, "USAGE_EXCEEDED") == 90,
        "120 at once with 30 credits: {} valid, {} usage exceeded",
        count(&codes, "VALID"),
        count(&codes, "USAGE_EXCEEDED")
    );
    let view = c.key_view(&id).await?;
    ensure!(
        view["credits"]["remaining"] == 0 && view["ratelimits"] == json!([]),
        "{view}"
    );
    let spent = c.verify(json!({"key": key})).await?;
    ensure!(
        spent.body["code"] == "USAGE_EXCEEDED" && spent.body["credits"]["remaining"] == 0,
        "{}",
        spent.body
    );
    Ok(())
}

async fn credits_are_added_and_set_by_the_owner_or_an_admin(c: Ctx) -> Result<()> {
    let (key, id) = c.metered_key(json!({"credits": {"remaining": 2}})).await?;
    let path = format!("/v1/keys/{id}/credits");
    let added = c.admin("POST", &path, Some(&json!({"add": 3}))).await?;
    ensure!(
        added.status == 200 && added.body["credits"]["remaining"] == 5 && added.body["id"] == id,
        "{added:?}"
    );
    let set = c.admin("POST", &path, Some(&json!({"set": 1}))).await?;
    ensure!(set.body["credits"]["remaining"] == 1, "{set:?}");
    let codes = c.burst(3, json!({"key": key})).await?;
    ensure!(count(&codes, "VALID") == 1, "{codes:?}");
    for bad in [
        json!({"add": -1}),
        json!({"add": 1, "set": 2}),
        json!({"subtract": 1}),
        json!({}),
    ] {
        let answer = c.admin("POST", &path, Some(&bad)).await?;
        problem(&answer, 422, "validation_failed")?;
    }
    let too_many = c
        .admin("POST", &path, Some(&json!({"add": 1_000_000_000_001u64})))
        .await?;
    problem(&too_many, 422, "validation_failed")?;
    ensure!(
        c.key_view(&id).await?["credits"]["remaining"] == 0,
        "bad changes changed nothing"
    );
    // The key itself may not; another developer may not see it; a key without credits has
    // none to change.
    let by_key = c
        .api
        .call("POST", &path, As::Bearer(&key), Some(&json!({"add": 9})))
        .await?;
    problem(&by_key, 403, "forbidden")?;
    let (_, dev) = c
        .join("credits-dev@example.com", json!(["developer"]))
        .await?;
    let by_dev = c
        .api
        .call("POST", &path, As::Bearer(&dev), Some(&json!({"add": 9})))
        .await?;
    problem(&by_dev, 404, "not_found")?;
    let (_, plain) = c.new_key().await?;
    let none = c
        .admin(
            "POST",
            &format!("/v1/keys/{plain}/credits"),
            Some(&json!({"add": 1})),
        )
        .await?;
    problem(&none, 422, "validation_failed")?;
    ensure!(
        c.key_view(&id).await?["credits"]["remaining"] == 0,
        "refused changes changed nothing"
    );
    let events = c
        .admin("GET", &format!("/v1/events?key_id={id}"), None)
        .await?;
    let kinds: Vec<&str> = events.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["type"].as_str())
        .collect();
    ensure!(
        kinds
            .iter()
            .filter(|k| **k == "key.credits_changed")
            .count()
            == 2,
        "{kinds:?}"
    );
    Ok(())
}

async fn bad_policies_are_422_and_change_nothing(c: Ctx) -> Result<()> {
    let limit = |name: &str, limit: i64, window: i64| json!({"name": name, "limit": limit, "window_seconds": window});
    let six: Vec<Value> = (0..6).map(|i| limit(&format!("l{i}"), 1, 1)).collect();
    let rows: [(Value, &str); 9] = [
        (json!({"ratelimits": six}), "ratelimits"),
        (json!({"ratelimits": [limit("", 1, 1)]}), "ratelimits.name"),
        (
            json!({"ratelimits": [limit("a", 1, 1), limit("a", 2, 2)]}),
            "ratelimits.name",
        ),
        (
            json!({"ratelimits": [limit("a", 0, 1)]}),
            "ratelimits.limit",
        ),
        (
            json!({"ratelimits": [limit("a", 1_000_000_001, 1)]}),
            "ratelimits.limit",
        ),
        (
            json!({"ratelimits": [limit("a", 1, 0)]}),
            "ratelimits.window_seconds",
        ),
        (
            json!({"ratelimits": [limit("a", 1, 86_401)]}),
            "ratelimits.window_seconds",
        ),
        (
            json!({"credits": {"remaining": 1_000_000_000_001u64}}),
            "credits.remaining",
        ),
        (
            json!({"credits": {"remaining": 1, "refill": {"interval": "daily", "amount": 0}}}),
            "credits.refill.amount",
        ),
    ];
    let before = c.admin("GET", "/v1/keys", None).await?;
    for (policy, field) in &rows {
        let mut body = json!({"name": "bad", "namespace": c.org, "role": "viewer"});
        for (k, v) in policy.as_object().into_iter().flatten() {
            body[k] = v.clone();
        }
        let answer = c.create_key(body).await?;
        problem(&answer, 422, "validation_failed")?;
        ensure!(
            answer.body["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with(field)),
            "{policy} names {field}: {}",
            answer.body
        );
    }
    let after = c.admin("GET", "/v1/keys", None).await?;
    ensure!(
        before.body["items"] == after.body["items"],
        "a refused key was made"
    );
    // The same rules for a change; the key keeps its policy.
    let (_, id) = c
        .metered_key(json!({"ratelimits": [limit("a", 5, 60)]}))
        .await?;
    let path = format!("/v1/keys/{id}/policy");
    for (policy, field) in &rows {
        let answer = c.admin("PUT", &path, Some(policy)).await?;
        problem(&answer, 422, "validation_failed")?;
        ensure!(
            answer.body["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with(field)),
            "{}",
            answer.body
        );
    }
    let unknown = c
        .admin("PUT", &path, Some(&json!({"ratelimit": []})))
        .await?;
    problem(&unknown, 422, "validation_failed")?;
    ensure!(
        c.key_view(&id).await?["ratelimits"] == json!([limit("a", 5, 60)]),
        "refused changes changed nothing"
    );
    Ok(())
}

async fn a_policy_is_replaced_whole(c: Ctx) -> Result<()> {
    let (key, id) = c
        .metered_key(json!({"ratelimits": [{"name": "a", "limit": 3, "window_seconds": 3600}]}))
        .await?;
    let codes = c.burst(2, json!({"key": key})).await?;
    ensure!(count(&codes, "VALID") == 2, "{codes:?}");
    let path = format!("/v1/keys/{id}/policy");
    let policy = json!({
        "ratelimits": [
            {"name": "a", "limit": 10, "window_seconds": 3600},
            {"name": "b", "limit": 4, "window_seconds": 60}
        ],
        "credits": {"remaining": 50, "refill": {"interval": "monthly", "amount": 100}},
        "allowed_cidrs": ["198.51.100.0/24"]
    });
    let changed = c.admin("PUT", &path, Some(&policy)).await?;
    ensure!(changed.status == 200, "{changed:?}");
    for field in ["ratelimits", "credits", "allowed_cidrs"] {
        ensure!(
            changed.body[field] == policy[field],
            "{field}: {}",
            changed.body
        );
    }
    ensure!(
        c.key_view(&id).await?["credits"] == policy["credits"],
        "the view shows it"
    );
    // "a" kept its 1 token (a change hands out no new burst); "b" starts full.
    let from = json!({"key": key, "client_ip": "198.51.100.7"});
    let codes = c.burst(6, from.clone()).await?;
    ensure!(count(&codes, "VALID") == 1, "{codes:?}");
    let answer = c.verify(from).await?;
    ensure!(
        answer.body["code"] == "RATE_LIMITED"
            && answer.body["ratelimits"][0]["remaining"] == 0
            && answer.body["ratelimits"][1]["remaining"] == 3
            && answer.body["credits"]["remaining"] == 49,
        "{}",
        answer.body
    );
    let outside = c
        .verify(json!({"key": key, "client_ip": "203.0.113.1"}))
        .await?;
    ensure!(outside.body["code"] == "IP_NOT_ALLOWED", "{}", outside.body);
    // An empty policy takes every limit away.
    let cleared = c.admin("PUT", &path, Some(&json!({}))).await?;
    ensure!(
        cleared.status == 200
            && cleared.body["ratelimits"] == json!([])
            && cleared.body["credits"].is_null()
            && cleared.body["allowed_cidrs"] == json!([]),
        "{cleared:?}"
    );
    let codes = c.burst(5, json!({"key": key})).await?;
    ensure!(count(&codes, "VALID") == 5, "{codes:?}");
    let by_key = c
        .api
        .call("PUT", &path, As::Bearer(&key), Some(&policy))
        .await?;
    problem(&by_key, 403, "forbidden")?;
    let events = c
        .admin("GET", "/v1/events?type=key.policy_changed", None)
        .await?;
    let mine = events.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["target"] == id)
        .count();
    ensure!(mine == 2, "{}", events.body);
    Ok(())
}

async fn refusals_for_rate_and_credits_are_counted(c: Ctx) -> Result<()> {
    let (key, id) = c
        .metered_key(json!({
            "ratelimits": [{"name": "a", "limit": 2, "window_seconds": 3600}],
            "credits": {"remaining": 1}
        }))
        .await?;
    let body = json!({"key": key, "client_ip": "192.0.2.44"});
    let first = c.verify(body.clone()).await?;
    ensure!(first.body["code"] == "VALID", "{}", first.body);
    let second = c.verify(body.clone()).await?;
    ensure!(second.body["code"] == "USAGE_EXCEEDED", "{}", second.body);
    let third = c.verify(json!({"key": key, "cost": 2})).await?;
    ensure!(third.body["code"] == "RATE_LIMITED", "{}", third.body);
    let total = |v: &Value, code: &str| -> u64 {
        v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["counts"][code].as_u64())
            .sum()
    };
    super::verify::eventually(&c, &format!("/v1/keys/{id}/usage"), |v| {
        total(v, "VALID") == 1 && total(v, "USAGE_EXCEEDED") == 1 && total(v, "RATE_LIMITED") == 1
    })
    .await?;
    let view = c.key_view(&id).await?;
    ensure!(view["last_used_ip"] == "192.0.2.44", "{view}");
    Ok(())
}
