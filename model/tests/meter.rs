//! The usage-policy rules of SPEC §4.5 as tables, and the two promises as properties: for any
//! sequence of verifications and any clock, no rate limit hands out more than it holds, and
//! credits are never overspent; a refusal changes nothing.

use model::domain::VerifyCode;
use model::meter::{
    CreditChange, Credits, Meter, Policy, PolicyRequest, RateLimit, Refill, RefillInterval, millis,
};
use proptest::prelude::*;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const T0: OffsetDateTime = datetime!(2026-12-07 10:00:00 UTC);

fn limit(name: &str, limit: u64, window_seconds: u32) -> RateLimit {
    RateLimit {
        name: name.into(),
        limit,
        window_seconds,
    }
}

fn policy(ratelimits: Vec<RateLimit>, credits: Option<Credits>) -> Policy {
    Policy {
        ratelimits,
        credits,
        allowed_cidrs: Vec::new(),
    }
}

fn credits(remaining: u64, refill: Option<(RefillInterval, u64)>) -> Option<Credits> {
    Some(Credits {
        remaining,
        refill: refill.map(|(interval, amount)| Refill { interval, amount }),
    })
}

fn limits(ratelimits: Vec<RateLimit>) -> PolicyRequest {
    PolicyRequest {
        ratelimits,
        ..Default::default()
    }
}

fn with_credits(credits: Option<Credits>) -> PolicyRequest {
    PolicyRequest {
        credits,
        ..Default::default()
    }
}

fn networks(allowed_cidrs: Vec<String>) -> PolicyRequest {
    PolicyRequest {
        allowed_cidrs,
        ..Default::default()
    }
}

#[test]
fn bad_policies_name_their_field() {
    let many = |n: usize| (0..n).map(|i| limit(&format!("l{i}"), 1, 1)).collect();
    let cases: Vec<(&str, PolicyRequest, Option<&str>)> = vec![
        ("empty", PolicyRequest::default(), None),
        ("five limits", limits(many(5)), None),
        ("six limits", limits(many(6)), Some("ratelimits")),
        (
            "duplicate name",
            limits(vec![limit("a", 1, 1), limit("a", 2, 2)]),
            Some("ratelimits.name"),
        ),
        (
            "empty name",
            limits(vec![limit("", 1, 1)]),
            Some("ratelimits.name"),
        ),
        (
            "name with spaces around",
            limits(vec![limit(" a", 1, 1)]),
            Some("ratelimits.name"),
        ),
        (
            "name of 65 characters",
            limits(vec![limit(&"n".repeat(65), 1, 1)]),
            Some("ratelimits.name"),
        ),
        (
            "limit 0",
            limits(vec![limit("a", 0, 1)]),
            Some("ratelimits.limit"),
        ),
        (
            "limit 10^9 + 1",
            limits(vec![limit("a", 1_000_000_001, 1)]),
            Some("ratelimits.limit"),
        ),
        (
            "limit 10^9 per day",
            limits(vec![limit("a", 1_000_000_000, 86_400)]),
            None,
        ),
        (
            "window 0",
            limits(vec![limit("a", 1, 0)]),
            Some("ratelimits.window_seconds"),
        ),
        (
            "window over a day",
            limits(vec![limit("a", 1, 86_401)]),
            Some("ratelimits.window_seconds"),
        ),
        (
            "too many credits",
            with_credits(credits(1_000_000_000_001, None)),
            Some("credits.remaining"),
        ),
        (
            "refill of 0",
            with_credits(credits(5, Some((RefillInterval::Daily, 0)))),
            Some("credits.refill.amount"),
        ),
        (
            "no credits left, refilled monthly",
            with_credits(credits(0, Some((RefillInterval::Monthly, 10)))),
            None,
        ),
        (
            "a network that is not one",
            networks(vec!["203.0.113.0/33".into()]),
            Some("allowed_cidrs"),
        ),
        (
            "a name, not a network",
            networks(vec!["example.com".into()]),
            Some("allowed_cidrs"),
        ),
        (
            "101 networks",
            networks(vec!["10.0.0.0/8".into(); 101]),
            Some("allowed_cidrs"),
        ),
        (
            "IPv4, IPv6 and a bare address",
            networks(vec![
                "203.0.113.0/24".into(),
                "2001:db8::/32".into(),
                "198.51.100.7".into(),
            ]),
            None,
        ),
    ];
    for (case, request, field) in cases {
        match (request.validate(), field) {
            (Ok(_), None) => {}
            (Err(model::Error::Validation { field: got, .. }), Some(want)) => {
                assert_eq!(got, want, "{case}")
            }
            (other, want) => panic!("{case}: {other:?}, wanted an error on {want:?}"),
        }
    }
}

#[test]
fn networks_are_normalized_and_matched() {
    let request = networks(vec![
        "203.0.113.7/24".into(),
        "2001:db8::1/32".into(),
        "198.51.100.7".into(),
    ]);
    let policy = request.validate().expect("valid");
    assert_eq!(
        PolicyRequest::of(&policy).allowed_cidrs,
        ["203.0.113.0/24", "2001:db8::/32", "198.51.100.7/32"]
    );
    let cases = [
        (Some("203.0.113.200"), true),
        (Some("203.0.114.1"), false),
        (Some("2001:db8:ffff::1"), true),
        (Some("2001:db9::1"), false),
        (Some("198.51.100.7"), true),
        (Some("198.51.100.8"), false),
        // An IPv4-mapped IPv6 address is the IPv4 address it carries.
        (Some("::ffff:203.0.113.9"), true),
        (Some(" 203.0.113.9 "), true),
        (None, false),
        (Some(""), false),
        (Some("not an address"), false),
        (Some("203.0.113.0/24"), false),
    ];
    for (ip, allowed) in cases {
        assert_eq!(policy.allows(ip), allowed, "{ip:?}");
    }
    assert!(Policy::default().allows(None), "no networks: any caller");
}

/// One verification of a sequence: seconds after T0, cost, the expected code and the
/// remaining tokens of each limit and credits afterwards.
type Step = (f64, u32, VerifyCode, &'static [u64], Option<u64>);

#[test]
fn buckets_and_credits_follow_the_rules() {
    use VerifyCode::{RateLimited as Limited, UsageExceeded as Exceeded, Valid};
    let cases: Vec<(&str, Policy, Vec<Step>)> = vec![
        (
            "3 per 3 s: a burst of 3, then one token a second",
            policy(vec![limit("a", 3, 3)], None),
            vec![
                (0.0, 1, Valid, &[2], None),
                (0.0, 1, Valid, &[1], None),
                (0.0, 1, Valid, &[0], None),
                (0.0, 1, Limited, &[0], None),
                (0.999, 1, Limited, &[0], None),
                (1.0, 1, Valid, &[0], None),
                (1.5, 1, Limited, &[0], None),
                (10.0, 2, Valid, &[1], None),
            ],
        ),
        (
            "cost 0 checks and spends nothing, even when empty",
            policy(vec![limit("a", 1, 60)], credits(1, None)),
            vec![
                (0.0, 0, Valid, &[1], Some(1)),
                (0.0, 1, Valid, &[0], Some(0)),
                (0.0, 0, Valid, &[0], Some(0)),
            ],
        ),
        (
            "all or none: a short second limit takes nothing from the first",
            policy(vec![limit("many", 100, 60), limit("few", 2, 60)], None),
            vec![
                (0.0, 2, Valid, &[98, 0], None),
                (0.0, 1, Limited, &[98, 0], None),
                (0.0, 1, Limited, &[98, 0], None),
            ],
        ),
        (
            "credits: spent by cost, refused when fewer remain, refusal spends nothing",
            policy(vec![], credits(5, None)),
            vec![
                (0.0, 3, Valid, &[], Some(2)),
                (0.0, 3, Exceeded, &[], Some(2)),
                (0.0, 2, Valid, &[], Some(0)),
                (100.0, 1, Exceeded, &[], Some(0)),
            ],
        ),
        (
            "rate limits are checked before credits and a refusal takes no credit",
            policy(vec![limit("a", 1, 60)], credits(10, None)),
            vec![
                (0.0, 1, Valid, &[0], Some(9)),
                (0.0, 1, Limited, &[0], Some(9)),
            ],
        ),
        (
            "credits refused take no token",
            policy(vec![limit("a", 10, 60)], credits(1, None)),
            vec![
                (0.0, 2, Exceeded, &[10], Some(1)),
                (0.0, 1, Valid, &[9], Some(0)),
            ],
        ),
        (
            "a daily refill sets the credits at 00:00 UTC",
            policy(vec![], credits(2, Some((RefillInterval::Daily, 3)))),
            vec![
                (0.0, 2, Valid, &[], Some(0)),
                // 13:59:59 later is 23:59:59: not refilled yet.
                (50_399.0, 1, Exceeded, &[], Some(0)),
                (50_400.0, 1, Valid, &[], Some(2)),
                // Set, not added: a day later it is 3 again, not 5.
                (50_400.0 + 86_400.0, 0, Valid, &[], Some(3)),
            ],
        ),
        (
            "a clock that goes back refills nothing",
            policy(vec![limit("a", 1, 10)], None),
            vec![
                (100.0, 1, Valid, &[0], None),
                (50.0, 1, Limited, &[0], None),
                (105.0, 1, Limited, &[0], None),
                (110.0, 1, Valid, &[0], None),
            ],
        ),
        (
            "a cost above the limit is never taken",
            policy(vec![limit("a", 5, 1)], None),
            vec![
                (0.0, 6, Limited, &[5], None),
                (1000.0, 6, Limited, &[5], None),
                (1000.0, 5, Valid, &[0], None),
            ],
        ),
    ];
    for (case, policy, steps) in cases {
        let mut meter = Meter::new(&policy, T0);
        for (i, &(at, cost, code, tokens, credits)) in steps.iter().enumerate() {
            let now = T0 + Duration::seconds_f64(at);
            let metered = meter.spend(&policy, cost, now);
            let got: Vec<u64> = metered.ratelimits.iter().map(|r| r.remaining).collect();
            assert_eq!(metered.code, code, "{case}, step {i}");
            assert_eq!(got, tokens, "{case}, step {i}: tokens");
            assert_eq!(
                metered.credits.map(|c| c.remaining),
                credits,
                "{case}, step {i}: credits"
            );
        }
    }
}

#[test]
fn the_refusing_limit_says_when_to_retry() {
    let policy = policy(vec![limit("minute", 60, 60), limit("hour", 2, 3600)], None);
    let mut meter = Meter::new(&policy, T0);
    assert_eq!(meter.spend(&policy, 2, T0).code, VerifyCode::Valid);
    let refused = meter.spend(&policy, 1, T0);
    assert_eq!(refused.code, VerifyCode::RateLimited);
    let waits: Vec<Option<u64>> = refused
        .ratelimits
        .iter()
        .map(|r| r.retry_after_ms)
        .collect();
    // One token of 2 per hour takes 1800 s; only the refusing limit carries a wait.
    assert_eq!(waits, [None, Some(1_800_000)]);
    assert_eq!(refused.retry_after_s(&policy, T0), Some(1800));
    // Each limit is full again when its spent tokens are back.
    assert_eq!(refused.ratelimits[0].reset_at, T0 + Duration::seconds(2));
    assert_eq!(refused.ratelimits[1].reset_at, T0 + Duration::seconds(3600));
    // A key out of credits with a monthly refill waits for the 1st.
    let monthly = self::policy(vec![], credits(0, Some((RefillInterval::Monthly, 9))));
    let mut meter = Meter::new(&monthly, T0);
    let refused = meter.spend(&monthly, 1, T0);
    assert_eq!(refused.code, VerifyCode::UsageExceeded);
    let to_january = datetime!(2027-01-01 00:00:00 UTC) - T0;
    assert_eq!(
        refused.retry_after_s(&monthly, T0),
        Some(to_january.whole_seconds() as u64)
    );
    assert_eq!(
        meter
            .spend(&monthly, 1, datetime!(2027-01-01 00:00:00 UTC))
            .credits,
        Some(model::meter::CreditsLeft { remaining: 8 })
    );
}

#[test]
fn a_changed_policy_keeps_what_was_spent() {
    let old = policy(
        vec![limit("a", 10, 60), limit("b", 5, 60)],
        credits(7, None),
    );
    let mut meter = Meter::new(&old, T0);
    for _ in 0..4 {
        assert_eq!(meter.spend(&old, 1, T0).code, VerifyCode::Valid);
    }
    // "a" keeps its 6 tokens, capped by its new limit of 3; "c" is new and full; "b" goes;
    // the credits are the new policy's.
    let new = policy(
        vec![limit("c", 2, 1), limit("a", 3, 600)],
        credits(100, None),
    );
    meter.set_policy(&old, &new, T0);
    let metered = meter.spend(&new, 0, T0);
    let remaining: Vec<(String, u64)> = metered
        .ratelimits
        .into_iter()
        .map(|r| (r.name, r.remaining))
        .collect();
    assert_eq!(remaining, [("c".into(), 2), ("a".into(), 3)]);
    assert_eq!(metered.credits.map(|c| c.remaining), Some(100));
    // A state left by another policy gives an unseen limit a full bucket, never none.
    let other = policy(vec![limit("z", 1, 60)], None);
    assert_eq!(meter.spend(&other, 1, T0).code, VerifyCode::Valid);
    assert_eq!(meter.spend(&other, 1, T0).code, VerifyCode::RateLimited);
}

#[test]
fn credits_are_added_and_set() {
    let policy = policy(vec![], credits(3, Some((RefillInterval::Daily, 10))));
    let mut meter = Meter::new(&policy, T0);
    let cases = [
        (CreditChange::Add(4), T0, Some(7)),
        (CreditChange::Set(1), T0, Some(1)),
        (
            CreditChange::Add(u64::MAX),
            T0,
            Some(model::meter::MAX_CREDITS),
        ),
        // The refill due is taken first: set to 10, then 2 added.
        (CreditChange::Add(2), T0 + Duration::days(1), Some(12)),
    ];
    for (change, at, left) in cases {
        assert_eq!(
            meter.change_credits(&policy, change, at),
            left,
            "{change:?}"
        );
        assert_eq!(meter.credits_left(&policy, at), left);
    }
    let none = self::policy(vec![], None);
    assert_eq!(
        Meter::new(&none, T0).change_credits(&none, CreditChange::Add(1), T0),
        None
    );
}

/// A policy of 1 to 3 limits with small numbers (so that the buckets run dry), and maybe
/// credits with a daily refill.
fn policies() -> impl Strategy<Value = Policy> {
    let limits = prop::collection::vec((1u64..20, 1u32..30), 1..=3);
    let credits = prop::option::of((0u64..40, prop::option::of(1u64..40)));
    (limits, credits).prop_map(|(limits, credits)| Policy {
        ratelimits: limits
            .into_iter()
            .enumerate()
            .map(|(i, (l, w))| limit(&format!("l{i}"), l, w))
            .collect(),
        credits: credits.map(|(remaining, refill)| Credits {
            remaining,
            refill: refill.map(|amount| Refill {
                interval: RefillInterval::Daily,
                amount,
            }),
        }),
        allowed_cidrs: Vec::new(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Over every interval [t_i, t_j] of the sequence, what a limit gave out is at most what it
    /// held at the start (its capacity) plus what it refilled since: cost × window_ms ≤
    /// limit × window_ms + (t_j − t_i) × limit, in the meter's own exact units. Credits given
    /// out since the last refill never exceed what there was after it. A refusal changes
    /// nothing, and a `VALID` takes `cost` from every bucket.
    #[test]
    fn never_exceeded_never_overspent(
        policy in policies(),
        steps in prop::collection::vec((-2_000i64..3_000, 0u32..6), 1..120),
    ) {
        let mut meter = Meter::new(&policy, T0);
        let mut now = T0;
        let mut given: Vec<(i64, u64)> = Vec::new();
        let mut credit_budget = policy.credits.map(|c| c.remaining);
        let mut spent_since_refill = 0u64;
        let mut day = T0.date();
        // The meter's own time: the latest instant it answered `VALID` at. A clock that went
        // back refills nothing, and a refusal changes nothing, not even the time.
        let mut seen = T0;
        for (dt, cost) in steps {
            // The clock may jump ahead (up to a day and more, to cross refills) or go back.
            now += Duration::milliseconds(dt * 40);
            let before = meter.clone();
            let metered = meter.spend(&policy, cost, now);
            if metered.code == VerifyCode::Valid {
                seen = seen.max(now);
            }
            if seen.date() > day {
                if let Some(refill) = policy.credits.and_then(|c| c.refill) {
                    credit_budget = Some(refill.amount);
                    spent_since_refill = 0;
                }
                day = seen.date();
            }
            if metered.code == VerifyCode::Valid {
                given.push((millis(seen), u64::from(cost)));
                spent_since_refill += u64::from(cost);
                for (b, a) in before.buckets.iter().zip(&meter.buckets) {
                    let window_ms = policy.ratelimits.iter().find(|l| l.name == b.name)
                        .map(|l| u64::from(l.window_seconds) * 1000).unwrap_or(1);
                    let refilled = u64::try_from(a.at_ms - b.at_ms).unwrap_or(0);
                    prop_assert!(a.level + u64::from(cost) * window_ms
                        <= b.level + refilled * policy.ratelimits.iter()
                            .find(|l| l.name == b.name).map_or(0, |l| l.limit));
                }
            } else {
                prop_assert_eq!(&before, &meter, "a refusal changed the meter");
            }
            if let Some(budget) = credit_budget {
                prop_assert!(spent_since_refill <= budget, "credits overspent");
            }
        }
        for limit in &policy.ratelimits {
            let window_ms = u64::from(limit.window_seconds) * 1000;
            for i in 0..given.len() {
                let mut taken = 0u64;
                for j in i..given.len() {
                    taken += given[j].1;
                    let span = u64::try_from(given[j].0 - given[i].0).unwrap_or(0);
                    prop_assert!(
                        taken * window_ms <= limit.limit * window_ms + span * limit.limit,
                        "limit {} gave {} in {} ms", limit.name, taken, span
                    );
                }
            }
        }
    }
}
