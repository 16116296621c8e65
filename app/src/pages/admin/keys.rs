//! Every key of the organization (admins): search over name, id and owner, status filter,
//! checkboxes with bulk revoke reporting a result per key, revoke per row, extensive-use badges.

use std::collections::BTreeSet;

use leptos::prelude::*;
use model::api::{BulkRevokeResponse, KeyListQuery, KeyView};
use model::domain::KeyStatus;

use crate::api::{self, ApiError};
use crate::components::error_note::{ActionError, BusyButton, loaded};
use crate::components::key_cells::{ExpiryBadge, ExtensiveBadge, StatusBadge, When};
use crate::components::pager::{Pager, PagerButtons};
use crate::components::row_menu::RowMenu;
use crate::components::table::DataTable;
use crate::erased::{Call, Load};
use crate::pages::key_actions::RevokeKeyDialog;
use crate::pages::keys::StatusSelect;
use crate::route::{AdminPage, Route};

/// How many keys a page of the table shows.
const PAGE: u32 = 50;

/// The organization's keys.
#[component]
pub fn AdminKeysPage() -> impl IntoView {
    let typed = RwSignal::new(String::new());
    let q = RwSignal::new(String::new());
    let status = RwSignal::new(None::<KeyStatus>);
    let pager = RwSignal::new(Pager::default());
    let selected = RwSignal::new(BTreeSet::<String>::new());
    let revoking = RwSignal::new(None::<KeyView>);
    let changed = RwSignal::new(0u32);
    let bulk = Call::new(move |ids: &Vec<String>| {
        let ids = ids.clone();
        async move {
            let answer = api::bulk_revoke(ids).await?;
            selected.set(BTreeSet::new());
            changed.update(|n| *n += 1);
            Ok::<BulkRevokeResponse, ApiError>(answer)
        }
    });
    let keys = Load::new(move || {
        changed.get();
        let query = KeyListQuery {
            limit: Some(PAGE),
            cursor: pager.with(Pager::cursor),
            all: Some(true),
            status: status.get(),
            q: Some(q.get()).filter(|q| !q.trim().is_empty()),
            ..Default::default()
        };
        async move { api::keys(&query).await }
    });
    let search = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        pager.update(Pager::reset);
        q.set(typed.get_untracked());
    };
    let on_status = Callback::new(move |s| {
        pager.update(Pager::reset);
        status.set(s);
    });
    view! {
        <section class="panel">
            <h1>"API keys of the organization"</h1>
            <form class="filters" role="search" on:submit=search>
                <label class="search">"Search name, id or owner"
                    <input type="search" data-testid="admin-keys-search" bind:value=typed/>
                </label>
                <StatusSelect on_change=on_status/>
                <button type="submit" data-testid="admin-keys-search-submit">"Search"</button>
            </form>
            <div class="bulkbar" role="group" aria-label="Selected keys">
                <span data-testid="selected-count">{move || format!("{} selected", selected.with(BTreeSet::len))}</span>
                <BusyButton pending=bulk.pending() label="Revoke selected" busy="Revoking…" testid="bulk-revoke"
                    on_click=Callback::new(move |()| {
                        let ids: Vec<String> = selected.get_untracked().into_iter().collect();
                        if !ids.is_empty() { bulk.dispatch(ids); }
                    })/>
            </div>
            <ActionError action=bulk/>
            {move || bulk.ok().map(|answer| view! {
                <ul class="results" data-testid="bulk-results" aria-live="polite">
                    {answer.results.into_iter().map(|r| view! {
                        <li data-testid="bulk-result" data-key-id=r.id.clone() class=if r.ok { "ok" } else { "error" }>
                            <code>{r.id.clone()}</code>": "
                            {if r.ok { "revoked".to_string() } else { r.code.unwrap_or_else(|| "failed".into()) }}
                        </li>
                    }).collect_view()}
                </ul>
            })}
            {move || revoking.get().map(|key| view! {
                <RevokeKeyDialog key
                    on_done=Callback::new(move |()| { revoking.set(None); changed.update(|n| *n += 1); })
                    on_cancel=Callback::new(move |()| revoking.set(None))/>
            })}
            <Transition fallback=|| view! { <p class="muted">"Loading keys…"</p> }>
                {move || keys.get().map(|answer| loaded(answer, |page| view! {
                    <AdminKeyTable keys=page.items selected on_revoke=Callback::new(move |k| revoking.set(Some(k)))/>
                    <PagerButtons pager next=page.next_cursor/>
                }))}
            </Transition>
        </section>
    }
}

/// The organization's keys with a checkbox each.
#[component]
pub fn AdminKeyTable(
    /// The keys of the page.
    keys: Vec<KeyView>,
    /// The ids checked for bulk revoke.
    selected: RwSignal<BTreeSet<String>>,
    /// Called to revoke one key (after its confirmation).
    on_revoke: Callback<KeyView>,
) -> impl IntoView {
    let now = crate::form::now();
    let ids: Vec<String> = keys.iter().map(|k| k.id.clone()).collect();
    let all_checked = {
        let ids = ids.clone();
        move || selected.with(|s| ids.iter().all(|id| s.contains(id)))
    };
    let toggle_all = move |ev: leptos::ev::Event| {
        let on = event_target_checked(&ev);
        selected.update(|s| {
            for id in &ids {
                if on {
                    s.insert(id.clone());
                } else {
                    s.remove(id);
                }
            }
        });
    };
    let lead = view! {
        <input type="checkbox" aria-label="Select every key of this page" data-testid="select-all"
            prop:checked=all_checked on:change=toggle_all/>
    }
    .into_any();
    let headers = vec!["Key", "Owner", "Created", "Expires", "Status", ""];
    let rows = keys
        .into_iter()
        .map(|k| {
            let id = k.id.clone();
            let checked = {
                let id = id.clone();
                move || selected.with(|s| s.contains(&id))
            };
            let toggle = {
                let id = id.clone();
                move |ev: leptos::ev::Event| {
                    let on = event_target_checked(&ev);
                    selected.update(|s| {
                        if on {
                            s.insert(id.clone());
                        } else {
                            s.remove(&id);
                        }
                    });
                }
            };
            let usage = Route::Admin(AdminPage::Events(Some(id.clone()))).href();
            let active = k.status == KeyStatus::Active;
            let label = k.name.clone();
            let key = k.clone();
            view! {
                <tr data-testid="admin-key-row" data-key-id=id.clone()>
                    <td class="select"><input type="checkbox" data-testid="key-select" aria-label=format!("Select {label}")
                        prop:checked=checked on:change=toggle/></td>
                    <td class="lead" data-label="Key">
                        <span class="strong" data-testid="key-name">{k.name.clone()}</span>
                        <code class="muted sub">{k.id.clone()}</code>
                    </td>
                    <td class="wrap" data-label="Owner">{k.owner.name.clone()}<span class="muted sub">{k.owner.email.clone()}</span></td>
                    <td data-label="Created"><When at=Some(k.created_at) now/></td>
                    <td data-label="Expires"><When at=k.expires_at now/> " " <ExpiryBadge expires_at=k.expires_at now/></td>
                    <td data-label="Status"><StatusBadge status=k.status/>" "<ExtensiveBadge flagged=k.extensive_use/></td>
                    <td class="menu-cell">
                        <RowMenu name=k.name.clone()>
                            <a href=usage data-testid="key-usage-link">"Usage and events"</a>
                            {active.then(|| view! {
                                <button type="button" data-testid="admin-key-revoke"
                                    on:click=move |_| on_revoke.run(key.clone())>"Revoke"</button>
                            })}
                        </RowMenu>
                    </td>
                </tr>
            }
            .into_any()
        })
        .collect();
    view! {
        <DataTable testid="admin-keys-table" headers lead rows cards=true empty=("No keys match.", "keys-empty")/>
    }
}
