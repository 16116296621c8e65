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
