//! How answers are printed: JSON for scripts (the API's own shapes, so a script reads what
//! the API documents), tables and lines for people.

use comfy_table::{Table, presets::NOTHING};
use model::api::{EventView, KeyView, SettingsView, UserView, VerifyResponse};
use serde::Serialize;
use time::OffsetDateTime;

use crate::Failure;

/// Prints `value` as JSON, or as `human` renders it.
pub fn print<T: Serialize + ?Sized>(
    json: bool,
    value: &T,
    human: fn(&T) -> String,
) -> Result<(), Failure> {
    if json {
        let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        let text = human(value);
        if !text.is_empty() {
            println!("{}", text.trim_end());
        }
    }
    Ok(())
}

/// `2026-12-02 13:45` (UTC), or `-`.
fn when(at: Option<OffsetDateTime>) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    at.and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "-".into())
}

fn table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut table = Table::new();
    table.load_preset(NOTHING).set_header(header.to_vec());
    for row in rows {
        table.add_row(row);
    }
    // comfy-table pads every line to the widest: trim each for clean copying.
    table
        .to_string()
        .lines()
        .map(|l| l.trim().to_owned() + "\n")
        .collect()
}

fn lowercase<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub fn keys(keys: &[KeyView]) -> String {
    if keys.is_empty() {
        return "No keys.".into();
    }
    table(
        &["ID", "NAME", "STATUS", "OWNER", "EXPIRES", "LAST USED"],
        keys.iter().map(|k| {
            vec![
                k.id.clone(),
                k.name.clone(),
                lowercase(&k.status),
                k.owner.email.clone(),
                when(k.expires_at),
                when(k.last_used_at),
            ]
        }),
    )
}

pub fn key(k: &KeyView) -> String {
    let access = match (&k.role, k.permissions.is_empty()) {
        (Some(role), _) => format!("role {}", lowercase(role)),
        (None, false) => k
            .permissions
            .iter()
            .map(|p| match &p.resources {
                Some(r) => format!("{}={}", p.permission, r.join(",")),
                None => p.permission.clone(),
            })
            .collect::<Vec<_>>()
            .join(" "),
        (None, true) => "-".into(),
    };
    let limits = k
        .ratelimits
        .iter()
        .map(|l| format!("{} {}/{}s", l.name, l.limit, l.window_seconds))
        .collect::<Vec<_>>()
        .join(", ");
    let credits = match &k.credits {
        None => "unlimited".to_owned(),
        Some(c) => match &c.refill {
            None => c.remaining.to_string(),
            Some(r) => format!(
                "{} (set to {} {})",
                c.remaining,
                r.amount,
                lowercase(&r.interval)
            ),
        },
    };
    let or_dash = |s: String| if s.is_empty() { "-".to_owned() } else { s };
    let lines = [
        ("id", k.id.clone()),
        ("name", k.name.clone()),
        ("status", lowercase(&k.status)),
        ("namespace", k.namespace.clone()),
        ("owner", format!("{} <{}>", k.owner.name, k.owner.email)),
        ("access", access),
        ("created", when(Some(k.created_at))),
        ("expires", when(k.expires_at)),
        ("revoked", when(k.revoked_at)),
        ("last used", when(k.last_used_at)),
        (
            "last used ip",
            k.last_used_ip.clone().unwrap_or_else(|| "-".into()),
        ),
        ("rate limits", or_dash(limits)),
        ("credits", credits),
        ("networks", or_dash(k.allowed_cidrs.join(", "))),
        (
            "extensive use",
            if k.extensive_use { "yes" } else { "no" }.into(),
        ),
    ];
    lines
        .iter()
        .map(|(field, value)| format!("{field:<14}{value}\n"))
        .collect()
}

pub fn verdict(v: &VerifyResponse) -> String {
    let code = lowercase(&v.code).to_uppercase();
    match (&v.key_id, &v.name) {
        (Some(id), Some(name)) => format!("{code} {id} ({name})"),
        (Some(id), None) => format!("{code} {id}"),
        _ => code,
    }
}

pub fn settings(s: &SettingsView) -> String {
    let limit = |n: Option<u64>| n.map_or_else(|| "none".into(), |n| n.to_string());
    [
        (
            "api keys",
            if s.api_keys_enabled { "on" } else { "off" }.to_owned(),
        ),
        ("max expiry days", limit(s.max_expiry_days.map(u64::from))),
        (
            "max active keys per user",
            s.max_active_keys_per_user.to_string(),
        ),
        ("extensive use per hour", limit(s.extensive_use_per_hour)),
    ]
    .iter()
    .map(|(field, value)| format!("{field:<26}{value}\n"))
    .collect()
}

pub fn members(members: &[UserView]) -> String {
    table(
        &["ID", "NAME", "EMAIL", "ROLES"],
        members.iter().map(|m| {
            vec![
                m.id.clone(),
                m.name.clone(),
                m.email.clone(),
                m.roles.iter().map(lowercase).collect::<Vec<_>>().join(","),
            ]
        }),
    )
}

fn event_row(e: &EventView) -> Vec<String> {
    vec![
        when(Some(e.at)),
        e.kind.clone(),
        format!("{} {}", e.actor.kind, e.actor.id),
        e.target.clone().unwrap_or_else(|| "-".into()),
    ]
}

pub fn events(events: &[EventView]) -> String {
    if events.is_empty() {
        return "No events.".into();
    }
    table(
        &["AT", "TYPE", "ACTOR", "TARGET"],
        events.iter().map(event_row),
    )
}

/// One event of `events --follow`: a JSON line, or a tab-separated line.
pub fn follow_line(json: bool, e: &EventView) -> Result<(), Failure> {
    if json {
        println!("{}", serde_json::to_string(e).map_err(|e| e.to_string())?);
    } else {
        println!("{}", event_row(e).join("\t"));
    }
    Ok(())
}
