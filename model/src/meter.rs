//! Usage policies (SPEC §4.5): a key's rate limits, credits and allowed networks, and the pure
//! meter that checks and spends them with the clock passed in.
//!
//! The rules are here once. Hosts only keep a [`Meter`]'s state where it can be exact: the
//! server in its process (credits leased from its store), the edge in a Durable Object per
//! metered key. Arithmetic is in integers, so "never exceeded" does not depend on rounding: a
//! bucket's level is counted in `1 / window_ms` of a token, which makes its refill of
//! `limit / window` tokens per millisecond exactly `limit` units.

use std::net::IpAddr;

use ipnet::IpNet;

use serde::{Deserialize, Serialize};
use time::{Date, Month, OffsetDateTime, Time};

pub use crate::domain::{Credits, Policy, RateLimit, Refill, RefillInterval};
use crate::domain::{Timestamp, VerifyCode};
use crate::error::{Error, Result};

/// Most named rate limits a key may carry.
pub const MAX_RATELIMITS: usize = 5;
/// The largest `limit` of a rate limit.
pub const MAX_LIMIT: u64 = 1_000_000_000;
/// The longest window of a rate limit: a day.
pub const MAX_WINDOW_SECONDS: u32 = 86_400;
/// Most networks in `allowed_cidrs`.
pub const MAX_CIDRS: usize = 100;
/// The largest `cost` of one verification.
pub const MAX_COST: u32 = 10_000;
/// The most credits a key may hold (and the largest refill or top-up).
pub const MAX_CREDITS: u64 = 1_000_000_000_000;
/// The longest name of a rate limit.
pub const MAX_NAME_CHARS: usize = 64;

/// A usage policy as a request states it (`POST /v1/keys`, `PUT /v1/keys/{id}/policy`): the
/// networks are text until [`PolicyRequest::validate`] has read them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyRequest {
    #[serde(default)]
    pub ratelimits: Vec<RateLimit>,
    #[serde(default)]
    pub credits: Option<Credits>,
    #[serde(default)]
    pub allowed_cidrs: Vec<String>,
}

impl PolicyRequest {
    /// The policy as a request would state it (what the key view shows).
    pub fn of(policy: &Policy) -> Self {
        Self {
            ratelimits: policy.ratelimits.clone(),
            credits: policy.credits,
            allowed_cidrs: policy
                .allowed_cidrs
                .iter()
                .map(ToString::to_string)
                .collect(),
        }
    }

    /// The policy, or a 422 naming the first field that is wrong.
    pub fn validate(&self) -> Result<Policy> {
        if self.ratelimits.len() > MAX_RATELIMITS {
            return Err(Error::invalid(
                "ratelimits",
                format!("a key may carry at most {MAX_RATELIMITS} rate limits"),
            ));
        }
        for (i, limit) in self.ratelimits.iter().enumerate() {
            let name = limit.name.trim();
            if name.is_empty()
                || name.chars().count() > MAX_NAME_CHARS
                || name != limit.name
                || limit.name.chars().any(char::is_control)
            {
                return Err(Error::invalid(
                    "ratelimits.name",
                    format!(
                        "a rate limit's name is 1 to {MAX_NAME_CHARS} characters, without surrounding spaces"
                    ),
                ));
            }
            if self.ratelimits[..i].iter().any(|l| l.name == limit.name) {
                return Err(Error::invalid(
                    "ratelimits.name",
                    "each rate limit of a key needs its own name",
                ));
            }
            if !(1..=MAX_LIMIT).contains(&limit.limit) {
                return Err(Error::invalid(
                    "ratelimits.limit",
                    format!("a limit is 1 to {MAX_LIMIT}"),
                ));
            }
            if !(1..=MAX_WINDOW_SECONDS).contains(&limit.window_seconds) {
                return Err(Error::invalid(
                    "ratelimits.window_seconds",
                    format!("a window is 1 to {MAX_WINDOW_SECONDS} seconds"),
                ));
            }
        }
        if let Some(credits) = &self.credits {
            if credits.remaining > MAX_CREDITS {
                return Err(Error::invalid(
                    "credits.remaining",
                    format!("a key holds at most {MAX_CREDITS} credits"),
                ));
            }
            if let Some(refill) = &credits.refill
                && !(1..=MAX_CREDITS).contains(&refill.amount)
            {
                return Err(Error::invalid(
                    "credits.refill.amount",
                    format!("a refill is 1 to {MAX_CREDITS} credits"),
                ));
            }
        }
        if self.allowed_cidrs.len() > MAX_CIDRS {
            return Err(Error::invalid(
                "allowed_cidrs",
                format!("a key allows at most {MAX_CIDRS} networks"),
            ));
        }
        let mut allowed_cidrs = Vec::with_capacity(self.allowed_cidrs.len());
        for text in &self.allowed_cidrs {
            allowed_cidrs.push(parse_network(text).ok_or_else(|| {
                Error::invalid(
                    "allowed_cidrs",
                    "each network is an IPv4 or IPv6 address or CIDR, like 203.0.113.0/24 or 2001:db8::/32",
                )
            })?);
        }
        Ok(Policy {
            ratelimits: self.ratelimits.clone(),
            credits: self.credits,
            allowed_cidrs,
        })
    }
}

/// A network as a user writes it: a CIDR, or one address (a /32 or /128). Host bits are
/// cleared (`203.0.113.7/24` is `203.0.113.0/24`), so the policy shows what it matches.
pub fn parse_network(text: &str) -> Option<IpNet> {
    let text = text.trim();
    let net = match text.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => IpNet::from(text.parse::<IpAddr>().ok()?),
    };
    Some(net.trunc())
}

/// One bucket's state: its level (in `1 / window_ms` of a token) at `at_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    pub name: String,
    pub level: u64,
    pub at_ms: i64,
}

/// The credits' state: how many are left, and when the last refill was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditState {
    pub remaining: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub refilled_at: Timestamp,
}

/// The counting state of one metered key: a bucket per rate limit (in the policy's order) and
/// its credits. A host keeps one per key where it can be exact, and changes it only through
/// [`Meter::spend`], [`Meter::reconcile`] and [`Meter::change_credits`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meter {
    pub buckets: Vec<Bucket>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credits: Option<CreditState>,
}

/// A rate limit's state as a verification answer shows it (SPEC §4.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RateLimitState {
    pub name: String,
    pub limit: u64,
    pub remaining: u64,
    /// When the bucket is full again.
    #[serde(with = "time::serde::rfc3339")]
    pub reset_at: OffsetDateTime,
    /// On the limit that refused: how long until the refused `cost` would be taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// The credits left, as a verification answer shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreditsLeft {
    pub remaining: u64,
}

/// What the meter decided for one verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metered {
    /// `Valid`, `RateLimited` or `UsageExceeded`.
    pub code: VerifyCode,
    pub ratelimits: Vec<RateLimitState>,
    pub credits: Option<CreditsLeft>,
}

impl Metered {
    /// How long a refused caller should wait, in whole seconds rounded up (`Retry-After`):
    /// the refusing limit's wait, or for spent credits the time until their next refill.
    pub fn retry_after_s(&self, policy: &Policy, now: Timestamp) -> Option<u64> {
        match self.code {
            VerifyCode::RateLimited => self
                .ratelimits
                .iter()
                .find_map(|r| r.retry_after_ms)
                .map(|ms| ms.div_ceil(1000).max(1)),
            VerifyCode::UsageExceeded => {
                let refill = policy.credits?.refill?;
                let next = next_start(refill.interval, now);
                Some(
                    u64::try_from((next - now).whole_seconds())
                        .unwrap_or(0)
                        .max(1),
                )
            }
            _ => None,
        }
    }
}

/// The start of the interval after the one `now` is in.
fn next_start(interval: RefillInterval, now: Timestamp) -> Timestamp {
    let now = now.to_offset(time::UtcOffset::UTC);
    let date = match interval {
        RefillInterval::Daily => now.date().next_day(),
        RefillInterval::Monthly => {
            let (year, month) = match now.month() {
                Month::December => (now.year() + 1, Month::January),
                m => (now.year(), m.next()),
            };
            Date::from_calendar_date(year, month, 1).ok()
        }
    };
    date.map_or(now, |d| d.with_time(Time::MIDNIGHT).assume_utc())
}

/// Milliseconds since the Unix epoch.
pub fn millis(at: Timestamp) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

impl Meter {
    /// A new key's meter: every bucket full, the credits as the policy gives them.
    pub fn new(policy: &Policy, now: Timestamp) -> Self {
        let mut meter = Meter::default();
        meter.set_policy(&Policy::default(), policy, now);
        meter
    }

    /// The buckets of a key whose policy was set before `at` by a process that is gone: empty
    /// at `at`, refilling from there, since what the key was given before is not known here.
    /// A restart never hands out a second burst. No credits (kept elsewhere).
    pub fn emptied(policy: &Policy, at: Timestamp) -> Self {
        let at_ms = millis(at);
        Meter {
            buckets: policy
                .ratelimits
                .iter()
                .map(|limit| Bucket {
                    name: limit.name.clone(),
                    level: 0,
                    at_ms,
                })
                .collect(),
            credits: None,
        }
    }

    /// Follows a policy changed from `old` to `new` (`PUT /v1/keys/{id}/policy` states the
    /// whole policy): a limit kept by name keeps the tokens it holds now, at most its new
    /// `limit`; a new limit starts full; a removed one goes. The credits are set to the new
    /// policy's `remaining`, or go with it.
    pub fn set_policy(&mut self, old: &Policy, new: &Policy, now: Timestamp) {
        let now_ms = millis(now);
        let held = |name: &str| {
            let (limit, bucket) = old
                .ratelimits
                .iter()
                .zip(&self.buckets)
                .find(|(limit, _)| limit.name == name)?;
            Some(level_at(limit, bucket, now_ms) / limit.window_ms())
        };
        let buckets = new
            .ratelimits
            .iter()
            .map(|limit| Bucket {
                name: limit.name.clone(),
                level: held(&limit.name).map_or(limit.capacity(), |tokens| {
                    tokens.min(limit.limit) * limit.window_ms()
                }),
                at_ms: now_ms,
            })
            .collect();
        self.buckets = buckets;
        self.credits = new.credits.map(|credits| CreditState {
            remaining: credits.remaining,
            refilled_at: now,
        });
    }

    /// `POST /v1/keys/{id}/credits`: adds `add` or sets `set` (after any refill due), at most
    /// [`MAX_CREDITS`]. `None` for a key without credits.
    pub fn change_credits(
        &mut self,
        policy: &Policy,
        change: CreditChange,
        now: Timestamp,
    ) -> Option<u64> {
        let state = self.credits.as_mut()?;
        refill(state, policy.credits.and_then(|c| c.refill), now);
        state.remaining = match change {
            CreditChange::Add(n) => state.remaining.saturating_add(n),
            CreditChange::Set(n) => n,
        }
        .min(MAX_CREDITS);
        Some(state.remaining)
    }

    /// The credits left at `now` (a refill due is counted), without changing anything.
    pub fn credits_left(&self, policy: &Policy, now: Timestamp) -> Option<u64> {
        let mut state = self.credits?;
        refill(&mut state, policy.credits.and_then(|c| c.refill), now);
        Some(state.remaining)
    }

    /// Whether every bucket holds `cost` tokens at `now`, changing nothing: the first half of
    /// a spend whose credits are kept elsewhere (the server leases them from its store).
    pub fn buckets_allow(&self, policy: &Policy, cost: u32, now: Timestamp) -> bool {
        let now_ms = millis(now);
        let cost = u64::from(cost);
        policy.ratelimits.iter().all(|limit| {
            let level = self
                .buckets
                .iter()
                .find(|b| b.name == limit.name)
                .map_or(limit.capacity(), |b| level_at(limit, b, now_ms));
            level >= cost.saturating_mul(limit.window_ms())
        })
    }

    /// One verification's use of the key: with `cost` tokens in every bucket and `cost`
    /// credits, takes them all and answers `Valid`; otherwise takes nothing and answers
    /// `RateLimited` (a bucket is short; checked first) or `UsageExceeded`. A clock that went
    /// back refills nothing.
    pub fn spend(&mut self, policy: &Policy, cost: u32, now: Timestamp) -> Metered {
        let now_ms = millis(now);
        self.align(policy, now_ms);
        let cost = u64::from(cost);
        let mut levels = [0u64; MAX_RATELIMITS];
        let mut short: Option<(usize, u64)> = None;
        for (i, (limit, bucket)) in policy.ratelimits.iter().zip(&self.buckets).enumerate() {
            let level = level_at(limit, bucket, now_ms);
            levels[i] = level;
            let need = cost.saturating_mul(limit.window_ms());
            if level < need {
                // The bucket that keeps the caller waiting longest is the one that refused.
                let wait = need
                    .min(limit.capacity())
                    .saturating_sub(level)
                    .div_ceil(limit.limit);
                if short.is_none_or(|(_, longest)| wait > longest) {
                    short = Some((i, wait));
                }
            }
        }
        let mut credits = self.credits;
        if let Some(state) = credits.as_mut() {
            refill(state, policy.credits.and_then(|c| c.refill), now);
        }
        let code = if short.is_some() {
            VerifyCode::RateLimited
        } else if credits.is_some_and(|c| c.remaining < cost) {
            VerifyCode::UsageExceeded
        } else {
            VerifyCode::Valid
        };
        let spent = code == VerifyCode::Valid;
        if spent {
            for (i, (limit, bucket)) in policy.ratelimits.iter().zip(&mut self.buckets).enumerate()
            {
                levels[i] -= cost * limit.window_ms();
                bucket.level = levels[i];
                bucket.at_ms = bucket.at_ms.max(now_ms);
            }
        }
        if spent && let Some(state) = credits.as_mut() {
            state.remaining -= cost;
            self.credits = credits;
        }
        let ratelimits = policy
            .ratelimits
            .iter()
            .enumerate()
            .map(|(i, limit)| {
                let level = levels[i];
                let full_in = limit.capacity().saturating_sub(level).div_ceil(limit.limit);
                RateLimitState {
                    name: limit.name.clone(),
                    limit: limit.limit,
                    remaining: level / limit.window_ms(),
                    reset_at: now + time::Duration::milliseconds(full_in as i64),
                    retry_after_ms: short.filter(|(s, _)| *s == i).map(|(_, wait)| wait),
                }
            })
            .collect();
        Metered {
            code,
            ratelimits,
            credits: credits.map(|c| CreditsLeft {
                remaining: c.remaining,
            }),
        }
    }
}

impl Meter {
    /// Gives every limit of `policy` its bucket, found by name, or a full one for a limit
    /// this state has not seen (as [`Meter::set_policy`] would): a state left by another
    /// policy never leaves a limit unenforced.
    fn align(&mut self, policy: &Policy, now_ms: i64) {
        let aligned = self.buckets.len() == policy.ratelimits.len()
            && self
                .buckets
                .iter()
                .zip(&policy.ratelimits)
                .all(|(b, l)| b.name == l.name);
        if aligned {
            return;
        }
        let mut old = std::mem::take(&mut self.buckets);
        self.buckets = policy
            .ratelimits
            .iter()
            .map(
                |limit| match old.iter().position(|b| b.name == limit.name) {
                    Some(i) => {
                        let mut bucket = old.swap_remove(i);
                        bucket.level = bucket.level.min(limit.capacity());
                        bucket
                    }
                    None => Bucket {
                        name: limit.name.clone(),
                        level: limit.capacity(),
                        at_ms: now_ms,
                    },
                },
            )
            .collect();
    }
}

/// A bucket's level at `now_ms`: refilled by `limit` units per millisecond since it was last
/// written, never beyond its capacity, never less for a clock that went back.
fn level_at(limit: &RateLimit, bucket: &Bucket, now_ms: i64) -> u64 {
    let elapsed = u64::try_from(now_ms.saturating_sub(bucket.at_ms)).unwrap_or(0);
    bucket
        .level
        .saturating_add(elapsed.saturating_mul(limit.limit))
        .min(limit.capacity())
}

/// Takes the refill due at `now`, if any: a refill sets `remaining` to its amount.
fn refill(state: &mut CreditState, refill: Option<Refill>, now: Timestamp) {
    if let Some(refill) = refill {
        let start = refill.last_start(now);
        if start > state.refilled_at {
            state.remaining = refill.amount;
            state.refilled_at = start;
        }
    }
}

/// `POST /v1/keys/{id}/credits`: `{"add": n}` or `{"set": n}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CreditChange {
    Add(u64),
    Set(u64),
}
