//! Leaked keys reported by anyone (`POST /v1/keys/leaked`, SPEC §4.6): each key that verifies
//! is revoked with a `key.leaked` event that never holds the key; the answer says only how
//! many keys were received; reports that match nothing are throttled like sign-in.

use anyhow::{Result, ensure};
use serde_json::{Value, json};
use tests::As;

use super::{CaseFn, Ctx, problem};

// The throttle case runs last: the reports it makes count against this address for 15 minutes.
pub(super) const CASES: &[(&str, CaseFn)] = cases![
    a_reported_key_is_revoked_and_the_answer_tells_nothing,
    reports_that_match_nothing_are_throttled_like_sign_in,
];

async fn report(c: &Ctx, keys: Value) -> Result<tests::Answer> {
    c.api
        .call(
            "POST",
            "/v1/keys/leaked",
            As::Nobody,
            Some(&json!({"keys": keys})),
        )
        .await
}

async fn a_reported_key_is_revoked_and_the_answer_tells_nothing(c: Ctx) -> Result<()> {
    let (leaked, leaked_id) = c.new_key().await?;
    let (kept, _) = c.new_key().await?;
    // The kept key's id with another secret: a real key's shape, the wrong secret.
    let forged = {
        let id = kept.split('_').nth(1).unwrap_or_default();
        let head = format!("kg_{id}_{}", "A".repeat(32));
        format!("{head}{}", model::key::checksum(&head))
    };
    let answer = report(&c, json!([leaked, "kg_not-a-key", leaked, forged])).await?;
    ensure!(
        answer.status == 200 && answer.body == json!({"received": 4}),
        "the answer counts what was sent: {answer:?}"
    );
    let revoked = c.verify(json!({"key": leaked})).await?;
    ensure!(revoked.body["code"] == "REVOKED", "{:?}", revoked.body);
    let untouched = c.verify(json!({"key": kept})).await?;
    ensure!(
        untouched.body["code"] == "VALID",
        "a wrong secret for a real key revokes nothing: {:?}",
        untouched.body
    );

    let events = |id: String| {
        let c = c.clone();
        async move {
            c.admin(
                "GET",
                &format!("/v1/events?type=key.leaked&key_id={id}"),
                None,
            )
            .await
        }
    };
    let seen = events(leaked_id.clone()).await?;
    let items = seen.body["items"].as_array().cloned().unwrap_or_default();
    ensure!(
        items.len() == 1,
        "one event for a key sent twice: {}",
        seen.body
    );
    let event = &items[0];
    ensure!(
        event["target"] == leaked_id.as_str()
            && event["actor"]["type"] == "instance"
            && event["details"]["source"] == "public report"
            && event["details"]["revoked"] == true,
        "the event says what happened: {event}"
    );
    ensure!(
        !event.to_string().contains(&leaked[3..]),
        "the event never holds the key: {event}"
    );

    // Reported again, a revoked key changes nothing more.
    let again = report(&c, json!([leaked])).await?;
    ensure!(
        again.status == 200 && again.body == json!({"received": 1}),
        "{again:?}"
    );
    let still = events(leaked_id).await?;
    ensure!(
        still.body["items"].as_array().map(Vec::len) == Some(1),
        "no second event: {}",
        still.body
    );
    Ok(())
}

async fn reports_that_match_nothing_are_throttled_like_sign_in(c: Ctx) -> Result<()> {
    let mut accepted = 0;
    let mut refused = None;
    for _ in 0..=model::service::MAX_LOGIN_FAILURES {
        let answer = report(&c, json!(["kg_not-a-key"])).await?;
        if answer.status == 429 {
            refused = Some(answer);
            break;
        }
        ensure!(answer.status == 200, "{answer:?}");
        accepted += 1;
    }
    let Some(refused) = refused else {
        anyhow::bail!("{accepted} reports of nothing, none throttled");
    };
    problem(&refused, 429, "rate_limited")?;
    ensure!(
        accepted <= model::service::MAX_LOGIN_FAILURES,
        "at most {} reports of nothing: {accepted}",
        model::service::MAX_LOGIN_FAILURES
    );
    // Throttled, a report stays refused even with a real key in it (as a right password is,
    // after too many wrong ones), and changes nothing.
    let (key, _) = c.new_key().await?;
    let blocked = report(&c, json!([key])).await?;
    problem(&blocked, 429, "rate_limited")?;
    let valid = c.verify(json!({"key": key})).await?;
    ensure!(valid.body["code"] == "VALID", "{:?}", valid.body);
    Ok(())
}
