//! How a key's fields read in tables and details, shared by *My API keys* and the management
//! console.

use leptos::prelude::*;
use model::api::KeyView;
use model::domain::{KeyRole, KeyStatus};
use time::OffsetDateTime;

use crate::filter::status_name;

/// A day, `YYYY-MM-DD` (UTC).
pub fn day(t: OffsetDateTime) -> String {
    t.date().to_string()
}

/// A day and minute, `YYYY-MM-DD HH:MM` (UTC).
pub fn minute(t: OffsetDateTime) -> String {
    format!("{} {:02}:{:02}", t.date(), t.hour(), t.minute())
}

/// How long ago (or how far ahead) `t` is from `now`, as people say it: `just now`,
/// `5 minutes ago`, `yesterday`, `3 days ago`, `in 5 days`, `in 2 months`. Whole units,
/// rounded down, so "in 6 days" is never 7 days away.
pub fn relative(now: OffsetDateTime, t: OffsetDateTime) -> String {
    let seconds = (t - now).whole_seconds();
    let ahead = seconds > 0;
    let s = seconds.unsigned_abs();
    const MINUTE: u64 = 60;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;
    let (n, unit) = match s {
        0..45 => return "just now".into(),
        45..HOUR => ((s / MINUTE).max(1), "minute"),
        HOUR..DAY => (s / HOUR, "hour"),
        _ if s < 30 * DAY => (s / DAY, "day"),
        _ if s < 365 * DAY => (s / (30 * DAY), "month"),
        _ => (s / (365 * DAY), "year"),
    };
    match (n, unit, ahead) {
        (1, "day", false) => "yesterday".into(),
        (1, "day", true) => "tomorrow".into(),
        (n, unit, true) => format!("in {n} {unit}{}", if n == 1 { "" } else { "s" }),
        (n, unit, false) => format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" }),
    }
}

/// `2026-12-02 13:45 UTC`: what hovering a relative time shows.
pub fn exact(t: OffsetDateTime) -> String {
    format!("{} UTC", minute(t))
}

/// The badge a key gets when it expires within a week (the overview's
/// [`model::service::EXPIRING_SOON`]): `expires in 5 days`, `expires
/// tomorrow`, `expires in 3 hours`; `None` otherwise (and once it has expired: its status
/// says so).
pub fn expiry_soon(now: OffsetDateTime, expires_at: Option<OffsetDateTime>) -> Option<String> {
    let at = expires_at?;
    let left = at - now;
    (left > time::Duration::ZERO && left <= model::service::EXPIRING_SOON)
        .then(|| format!("expires {}", relative(now, at)))
}

/// A time as people read it (relative), the exact UTC time on hover, machine-readable in
/// `datetime`; `never` without one.
#[component]
pub fn When(
    /// The time shown.
    at: Option<OffsetDateTime>,
    /// What "now" is (one clock for the whole table).
    now: OffsetDateTime,
) -> impl IntoView {
    match at {
        Some(t) => {
            let t = t.to_offset(time::UtcOffset::UTC);
            // RFC 3339 spelled by hand: `time`'s formatter would add its machinery to the wasm.
            let machine = format!(
                "{}T{:02}:{:02}:{:02}Z",
                t.date(),
                t.hour(),
                t.minute(),
                t.second()
            );
            view! { <time datetime=machine title=exact(t)>{relative(now, t)}</time> }.into_any()
        }
        None => view! { <span class="muted">"never"</span> }.into_any(),
    }
}

/// The *expires soon* badge ([`expiry_soon`]), when it applies.
#[component]
pub fn ExpiryBadge(expires_at: Option<OffsetDateTime>, now: OffsetDateTime) -> impl IntoView {
    expiry_soon(now, expires_at).map(|text| {
        view! { <span class="badge warn" data-testid="expires-soon">{text}</span> }
    })
}

/// An optional time as a day, or `never`.
pub fn day_or_never(t: Option<OffsetDateTime>) -> String {
    t.map(day).unwrap_or_else(|| "never".into())
}

/// The key's role, or its permissions with their resource limits.
pub fn rights(key: &KeyView) -> String {
    match key.role {
        Some(KeyRole::Viewer) => "Viewer".into(),
        Some(KeyRole::Editor) => "Editor".into(),
        None => key
            .permissions
            .iter()
            .map(|p| match &p.resources {
                None => p.permission.clone(),
                Some(ids) => format!("{} ({})", p.permission, ids.join(", ")),
            })
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The status as a coloured badge.
#[component]
pub fn StatusBadge(
    /// The key's status.
    status: KeyStatus,
) -> impl IntoView {
    let name = status_name(status);
    view! { <span class=format!("badge {name}") data-testid="key-status">{name}</span> }
}

/// The *extensive use* flag (SPEC §6), when set.
#[component]
pub fn ExtensiveBadge(
    /// Whether the key is flagged.
    flagged: bool,
) -> impl IntoView {
    flagged.then(|| {
        view! {
            <span class="badge warn" data-testid="extensive-use"
                title="Used far above its own recent rate or the organization's threshold in the last hour">
                "extensive use"
            </span>
        }
    })
}
