//! The audit log (admins) with filters and paging and, for one key, its usage chart.

use leptos::prelude::*;
use model::api::{EventQuery, EventView, OrganizationView, PageQuery, UsageQuery};
use time::{Duration, OffsetDateTime, Time};

use crate::api;
use crate::components::error_note::loaded;
use crate::components::key_cells::When;
use crate::components::pager::{Pager, PagerButtons};
use crate::components::table::DataTable;
use crate::components::usage_chart::UsageChart;
use crate::erased::Load;
use crate::form::{now, parse_day};
use crate::names::Names;

/// The event types of SPEC §6, offered as suggestions; `key.*` matches a family.
const EVENT_TYPES: [&str; 19] = [
    "key.*",
    "key.created",
    "key.updated",
    "key.revoked",
    "key.deleted",
    "key.rolled",
    "key.expiring",
    "key.expired",
    "key.extensive_use",
    "key.leaked",
    "settings.updated",
    "member.*",
    "member.invited",
    "member.joined",
    "member.roles_changed",
    "grant.changed",
    "resource.*",
    "login.failed",
    "webhook.*",
];

/// The filters as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub kind: String,
    pub key_id: String,
    pub actor: String,
    /// `YYYY-MM-DD`, from the start of that day (UTC).
    pub since: String,
    /// `YYYY-MM-DD`, to the end of that day (UTC).
    pub until: String,
}

impl EventFilter {
    /// The query for one page of events.
    pub fn query(&self, cursor: Option<String>) -> EventQuery {
        let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        EventQuery {
            kind: text(&self.kind),
            key_id: text(&self.key_id),
            actor: text(&self.actor),
            since: day_at(&self.since, Time::MIDNIGHT),
            until: day_at(&self.until, Time::MIDNIGHT).map(|t| t + Duration::days(1)),
            limit: Some(PAGE),
            cursor,
        }
    }
}

const PAGE: u32 = 50;

fn day_at(day: &str, at: Time) -> Option<OffsetDateTime> {
    parse_day(day.trim()).map(|d| d.with_time(at).assume_utc())
}

/// The events page; `key` (from the route) preselects a key and shows its usage.
#[component]
pub fn EventsPage(
    /// A key id to filter by and chart.
    key: Option<String>,
    /// The organization (its name stands for its id).
    organization: OrganizationView,
) -> impl IntoView {
    let names = Load::new(move || load_names(organization.clone()));
    let typed = RwSignal::new(EventFilter {
        key_id: key.clone().unwrap_or_default(),
        ..Default::default()
    });
    let applied = RwSignal::new(typed.get_untracked());
    let pager = RwSignal::new(Pager::default());
    let chart = RwSignal::new(key);
    let events = Load::new(move || {
        let query = applied.with(|f| f.query(pager.with(Pager::cursor)));
        async move { api::events(&query).await }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        pager.update(Pager::reset);
        let filter = typed.get_untracked();
        // The chart follows the key filter.
        chart.set(Some(filter.key_id.trim().to_owned()).filter(|k| !k.is_empty()));
        applied.set(filter);
    };
    let field = move |get: fn(&EventFilter) -> String, set: fn(&mut EventFilter, String)| {
        (
            move || typed.with(get),
            move |ev: leptos::ev::Event| typed.update(|f| set(f, event_target_value(&ev))),
        )
    };
    let (kind_value, kind_input) = field(|f| f.kind.clone(), |f, v| f.kind = v);
    let (key_value, key_input) = field(|f| f.key_id.clone(), |f, v| f.key_id = v);
    let (actor_value, actor_input) = field(|f| f.actor.clone(), |f, v| f.actor = v);
    let (since_value, since_input) = field(|f| f.since.clone(), |f, v| f.since = v);
    let (until_value, until_input) = field(|f| f.until.clone(), |f, v| f.until = v);
    view! {
        <section class="panel">
            <h1>"Events"</h1>
            {move || chart.get().map(|id| view! { <KeyUsage id/> })}
            <form class="filters" role="search" on:submit=submit data-testid="events-filters">
                <label>"Type"
                    <input list="event-types" data-testid="events-type" prop:value=kind_value on:input=kind_input/>
                    <datalist id="event-types">
                        {EVENT_TYPES.into_iter().map(|t| view! { <option value=t/> }).collect_view()}
                    </datalist>
                </label>
                <label>"Key id" <input data-testid="events-key" prop:value=key_value on:input=key_input/></label>
                <label>"Actor (user or key id)" <input data-testid="events-actor" prop:value=actor_value on:input=actor_input/></label>
                <label>"From" <input type="date" data-testid="events-since" prop:value=since_value on:input=since_input/></label>
                <label>"To" <input type="date" data-testid="events-until" prop:value=until_value on:input=until_input/></label>
                <button type="submit" data-testid="events-apply">"Apply filters"</button>
            </form>
            <Transition fallback=|| view! { <p class="muted">"Loading events…"</p> }>
                {move || events.get().zip(names.get()).map(|(answer, names)| loaded(answer, |page| view! {
                    <EventTable events=page.items names/>
                    <PagerButtons pager next=page.next_cursor/>
                }))}
            </Transition>
        </section>
    }
}

/// What an event says, as a sentence about its details (the raw JSON stays one click away):
/// `created key “ci” in Acme`, `invited ann@example.com as developer`, `changed roles from
/// developer to admin, developer`; members and namespaces by their `names`. A type it does
/// not know reads as its type.
pub fn describe(e: &EventView, names: &Names) -> String {
    let d = &e.details;
    let text = |field: &str| d[field].as_str().unwrap_or_default().to_owned();
    let named = |field: &str| names.name(d[field].as_str().unwrap_or_default());
    let list = |field: &str| {
        d[field]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let grant = |g: &serde_json::Value| {
        let on = match g["resources"].as_array() {
            Some(ids) => format!(
                " on {}",
                ids.iter()
                    .filter_map(|i| i.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => String::new(),
        };
        format!(
            "{} in {}{on} to {}",
            g["permission"].as_str().unwrap_or_default(),
            names.name(g["namespace"].as_str().unwrap_or_default()),
            names.name(g["principal"].as_str().unwrap_or_default())
        )
    };
    match e.kind.as_str() {
        "key.created" => format!("created key “{}” in {}", text("name"), named("namespace")),
        "key.updated" => match d["previous_name"].as_str() {
            Some(before) if before != text("name") => {
                format!("renamed the key from “{before}” to “{}”", text("name"))
            }
            Some(_) => "changed the key's description".into(),
            None => format!("renamed the key to “{}”", text("name")),
        },
        "key.rolled" => match d["grace_seconds"].as_u64() {
            Some(s) if s > 0 => format!("rolled the key; the old secret works {s} s more"),
            _ => "rolled the key; the old secret stopped at once".into(),
        },
        "key.revoked" => "revoked the key".into(),
        "key.leaked" => match d["url"].as_str() {
            Some(url) => format!("revoked the key: it leaked at {url} ({})", text("source")),
            None => format!(
                "revoked the key: it was reported leaked ({})",
                text("source")
            ),
        },
        "key.expiring" => match d["days_left"].as_u64() {
            Some(1) => "reminded: the key expires within a day".into(),
            Some(days) => format!("reminded: the key expires in {days} days"),
            None => "reminded: the key expires soon".into(),
        },
        "key.expired" => "the key expired".into(),
        "key.deleted" => match (d["resources"].as_u64(), d["transferred_to"].as_str()) {
            (Some(n), Some(to)) if n > 0 => {
                format!(
                    "deleted the key; its {n} resources went to {}",
                    names.name(to)
                )
            }
            (Some(n), None) if n > 0 => format!("deleted the key and its {n} resources"),
            _ => "deleted the key".into(),
        },
        "key.extensive_use" => format!(
            "flagged for extensive use: {} verifications in the last hour (threshold {})",
            d["last_hour"], d["threshold"]
        ),
        "settings.updated" => format!(
            "changed the settings: API keys {}",
            if d["api_keys_enabled"].as_bool() == Some(true) {
                "on"
            } else {
                "off"
            }
        ),
        "member.invited" => format!("invited {} as {}", text("email"), list("roles")),
        "member.joined" => format!("{} joined", text("email")),
        "member.roles_changed" => format!("changed roles from {} to {}", list("from"), list("to")),
        "member.removed" => format!("removed {}", text("email")),
        "member.password_set" => {
            format!("{} chose a password ({})", text("email"), text("through"))
        }
        "login.failed" => format!("a sign-in as {} failed", text("email")),
        "invitation.revoked" => format!("withdrew the invitation of {}", text("email")),
        "organization.created" => format!(
            "created the organization “{}” with admin {}",
            text("name"),
            text("admin_email")
        ),
        "permission.defined" => format!("defined the permission {}", text("name")),
        "grant.changed" if !d["added"].is_null() => format!("granted {}", grant(&d["added"])),
        "grant.changed" => format!("removed the grant of {}", grant(&d["removed"])),
        "namespace.created" => format!("created “{}”", text("name")),
        "namespace.updated" => format!("renamed it to “{}”", text("name")),
        "namespace.deleted" => format!("deleted “{}”", text("name")),
        "resource.created" => format!("created a resource in {}", named("namespace")),
        "resource.updated" => format!("renamed the resource to “{}”", text("name")),
        "resource.deleted" => "deleted the resource".into(),
        "webhook.created" => format!("added a webhook to {} for {}", text("url"), list("events")),
        "webhook.updated" => format!(
            "changed the webhook to {}: {}, for {}",
            text("url"),
            if d["enabled"].as_bool() == Some(false) {
                "disabled"
            } else {
                "enabled"
            },
            list("events")
        ),
        "webhook.deleted" => format!("deleted the webhook to {}", text("url")),
        other => other.to_owned(),
    }
}

/// A page of events: who acted by name and email, what was acted on as a link, and what
/// happened as a sentence with the raw details behind a disclosure.
#[component]
pub fn EventTable(
    /// The events, newest first.
    events: Vec<EventView>,
    /// The names behind the ids.
    #[prop(optional)]
    names: Names,
) -> impl IntoView {
    let headers = vec!["When", "Type", "Actor", "Target", "What happened"];
    let now = now();
    let rows = events
        .into_iter()
        .map(|e| {
            let actor = names.actor(&e.actor);
            let target = e
                .target
                .as_deref()
                .map(|t| names.target(t))
                .map(|t| match t.href {
                    Some(href) => view! {
                        <a href=href title=t.id.clone() data-testid="event-target">{t.label}</a>
                    }
                    .into_any(),
                    None => view! { <code data-testid="event-target">{t.label}</code> }.into_any(),
                });
            view! {
                <tr data-testid="event-row">
                    <td><When at=Some(e.at) now/></td>
                    <td><code>{e.kind.clone()}</code></td>
                    <td data-testid="event-actor" title=e.actor.id.clone()>
                        {actor.primary}
                        {actor.secondary.map(|s| view! { <span class="muted sub">{s}</span> })}
                    </td>
                    <td>{target}</td>
                    <td class="wrap">
                        <span data-testid="event-sentence">{describe(&e, &names)}</span>
                        <details>
                            <summary>"details"</summary>
                            <code>{e.details.to_string()}</code>
                        </details>
                    </td>
                </tr>
            }
            .into_any()
        })
        .collect();
    view! { <DataTable testid="events-table" headers rows empty=("No events match.", "events-empty")/> }
}

/// The names of the organization's members and namespaces, for the events table. A page it
/// cannot load leaves those ids as they are rather than failing the page.
async fn load_names(organization: OrganizationView) -> Names {
    use crate::api::Namespaces;
    let page = PageQuery {
        limit: Some(model::service::MAX_LIMIT),
        cursor: None,
    };
    let members = api::members(&page)
        .await
        .map(|p| p.items)
        .unwrap_or_default();
    let mut namespaces = Vec::new();
    for kind in [
        Namespaces::Apps,
        Namespaces::Workspaces,
        Namespaces::Usergroups,
    ] {
        namespaces.extend(
            api::namespaces(kind)
                .await
                .map(|p| p.items)
                .unwrap_or_default(),
        );
    }
    Names::new(&organization, members, namespaces)
}

/// The windows the usage chart offers: label, length, bars.
const WINDOWS: [(&str, i64, usize); 3] = [
    ("last hour", 60, 60),
    ("last 24 hours", 24 * 60, 24),
    ("last 7 days", 7 * 24 * 60, 28),
];

/// One key's verifications over a chosen window.
#[component]
fn KeyUsage(
    /// The key id.
    id: String,
) -> impl IntoView {
    let window = RwSignal::new(1usize);
    // The key's name (a key of another organization, or none, leaves the id alone).
    let name = {
        let id = id.clone();
        Load::new(move || {
            let id = id.clone();
            async move {
                api::key(&id)
                    .await
                    .map(|k| format!("“{}”", k.name))
                    .unwrap_or_default()
            }
        })
    };
    let key = id.clone();
    let usage = Load::new(move || {
        let (_, minutes, bars) = WINDOWS[window.get().min(WINDOWS.len() - 1)];
        let until = now();
        let since = until - Duration::minutes(minutes);
        let key = key.clone();
        async move {
            // The host excludes the minute `until` falls in; the chart wants the current one.
            let query = UsageQuery {
                since: Some(since),
                until: Some(until + Duration::minutes(1)),
            };
            api::key_usage(&key, &query)
                .await
                .map(|page| (page.items, since, until, bars))
        }
    });
    view! {
        <div class="usage" data-testid="key-usage">
            <h2>"Usage of "
                <Transition fallback=|| ()>
                    {move || name.get().map(|n| view! { <span data-testid="key-usage-name">{n}</span>" " })}
                </Transition>
                <code class="muted">{id}</code>
            </h2>
            <label>"Window"
                <select data-testid="usage-window" on:change=move |ev| window.set(event_target_value(&ev).parse().unwrap_or(1))>
                    {WINDOWS.into_iter().enumerate().map(|(i, (label, _, _))| view! {
                        <option value=i.to_string() selected=i == 1>{label}</option>
                    }).collect_view()}
                </select>
            </label>
            <Transition fallback=|| view! { <p class="muted">"Loading usage…"</p> }>
                {move || usage.get().map(|answer| loaded(answer, |(items, since, until, bars)| view! {
                    <UsageChart items since until bars/>
                }))}
            </Transition>
        </div>
    }
}
