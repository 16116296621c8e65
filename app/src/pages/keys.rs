//! *My API keys*: the person's keys with search and status filter, the *Generate new key*
//! dialog, and each key's actions (display information, rename, roll, revoke, delete).

use leptos::prelude::*;
use model::api::{CreatedKey, KeyView, MeResponse, SettingsPatch};
use model::domain::{KeyRole, KeyStatus, Role};

use crate::api::{self, ApiError};
use crate::components::dialog::Dialog;
use crate::components::error_note::{ActionError, BusyButton, ErrorNote};
use crate::components::key_cells::{ExpiryBadge, StatusBadge, When, rights};
use crate::components::new_key::NewKeyPanel;
use crate::components::row_menu::RowMenu;
use crate::components::table::DataTable;
use crate::erased::{Call, Load};
use crate::filter::KeyFilter;
use crate::form::{
    NewKeyForm, RightsChoice, coverage_hint, expiry_bounds, least_privilege_hint, now,
};
use crate::pages::key_actions::{KeyAction, KeyActionDialog};

/// The signed-in person's keys.
#[component]
pub fn KeysPage(
    /// Who is signed in.
    me: MeResponse,
) -> impl IntoView {
    let is_admin = me.roles.contains(&Role::Admin);
    let plaintext = RwSignal::new(None::<String>);
    let dialog_open = RwSignal::new(false);
    let filter = RwSignal::new(KeyFilter::default());
    let action = RwSignal::new(None::<(KeyAction, KeyView)>);
    let changed = RwSignal::new(0u32);
    let enable = Call::new(|_: &()| async move {
        api::update_settings(SettingsPatch {
            api_keys_enabled: Some(true),
            ..Default::default()
        })
        .await
    });
    let settings = Load::new(move || {
        enable.version().get();
        async move {
            if is_admin {
                api::settings().await.map(Some)
            } else {
                Ok(None)
            }
        }
    });
    let keys = Load::new(move || {
        changed.get();
        async move { api::my_keys().await }
    });
    let on_created = Callback::new(move |answer: CreatedKey| {
        dialog_open.set(false);
        plaintext.set(Some(answer.key));
        changed.update(|n| *n += 1);
    });
    let on_action = Callback::new(move |chosen: (KeyAction, KeyView)| action.set(Some(chosen)));
    let on_done = Callback::new(move |rolled: Option<String>| {
        action.set(None);
        if rolled.is_some() {
            plaintext.set(rolled);
        }
        changed.update(|n| *n += 1);
    });
    let namespaces = me.namespaces.clone();
    let namespace_names = std::sync::Arc::new(
        me.namespaces
            .iter()
            .map(|n| (n.id.clone(), n.name.clone()))
            .collect::<std::collections::HashMap<_, _>>(),
    );
    let max_expiry_days = me.max_expiry_days;
    let dialog_names = std::sync::Arc::clone(&namespace_names);
    view! {
        <section class="panel">
            <div class="heading">
                <h1>"My API keys"</h1>
                <button data-testid="new-key-open" on:click=move |_| dialog_open.set(true)>"Generate new key"</button>
            </div>
            <Transition fallback=|| ()>
                {move || settings.get().map(|s| match s {
                    Ok(Some(s)) if !s.api_keys_enabled => view! {
                        <p class="notice" data-testid="api-keys-disabled">
                            "API keys are disabled in this organization. "
                            <BusyButton pending=enable.pending() label="Enable API keys" busy="Enabling…" testid="enable-api-keys"
                                on_click=Callback::new(move |()| enable.dispatch(()))/>
                        </p>
                    }.into_any(),
                    Err(error) => view! { <ErrorNote error/> }.into_any(),
                    _ => ().into_any(),
                })}
            </Transition>
            <ActionError action=enable/>
            {move || plaintext.get().map(|plaintext_value| view! {
                <NewKeyPanel plaintext=plaintext_value on_close=Callback::new(move |()| plaintext.set(None))/>
            })}
            <Show when=move || dialog_open.get()>
                <GenerateKeyDialog namespaces=namespaces.clone() max_expiry_days on_created
                    on_cancel=Callback::new(move |()| dialog_open.set(false))/>
            </Show>
            {move || action.get().map(|(kind, key)| {
                let namespace_name = dialog_names.get(&key.namespace).cloned();
                view! {
                    <KeyActionDialog kind key namespace_name on_done on_cancel=Callback::new(move |()| action.set(None))/>
                }
            })}
            <FilterBar filter/>
            <Transition fallback=|| view! { <p class="muted">"Loading keys…"</p> }>
                {move || keys.get().map(|page| match page {
                    Ok(page) => {
                        let rows = filter.with(|f| f.apply(page.items));
                        let namespace_names = std::sync::Arc::clone(&namespace_names);
                        view! { <KeyTable keys=rows on_action namespace_names/> }.into_any()
                    }
                    Err(error) => view! { <ErrorNote error/> }.into_any(),
                })}
            </Transition>
        </section>
    }
}

/// The search box and status filter above a key table.
#[component]
pub fn FilterBar(
    /// The filter the inputs edit.
    filter: RwSignal<KeyFilter>,
) -> impl IntoView {
    view! {
        <div class="filters" role="search">
            <label class="search">"Search"
                <input type="search" placeholder="Name, id or owner" data-testid="keys-search"
                    prop:value=move || filter.with(|f| f.q.clone())
                    on:input=move |ev| filter.update(|f| f.q = event_target_value(&ev))/>
            </label>
            <StatusSelect on_change=Callback::new(move |s| filter.update(|f| f.status = s))/>
        </div>
    }
}

/// A status filter: every status, or one.
#[component]
pub fn StatusSelect(
    /// Called with the chosen status (`None` = every status).
    on_change: Callback<Option<KeyStatus>>,
) -> impl IntoView {
    view! {
        <label>"Status"
            <select data-testid="keys-status"
                on:change=move |ev| on_change.run(crate::filter::parse_status(&event_target_value(&ev)))>
                <option value="">"Any status"</option>
                {crate::filter::STATUSES.into_iter().map(|s| {
                    let name = crate::filter::status_name(s);
                    view! { <option value=name>{name}</option> }
                }).collect_view()}
            </select>
        </label>
    }
}

/// The table of the person's keys, each row with its actions.
#[component]
pub fn KeyTable(
    /// The keys to show, already filtered.
    keys: Vec<KeyView>,
    /// Called when the person picks an action on a row.
    #[prop(optional)]
    on_action: Option<Callback<(KeyAction, KeyView)>>,
    /// Namespace names by id (from `GET /v1/me`): a namespace shows by its name, its id on
    /// hover; one not listed shows its id.
    #[prop(optional)]
    namespace_names: Option<std::sync::Arc<std::collections::HashMap<String, String>>>,
) -> impl IntoView {
    let now = crate::form::now();
    // Few, rich columns: the table fits a 1 280 px screen, and under 700 px each row is a card
    // (`data-label` names a cell there); the actions sit in one menu at the far right.
    let headers = vec![
        "Key",
        "Access",
        "Created",
        "Expires",
        "Status",
        "Last used",
        "",
    ];
    let rows = keys
        .into_iter()
        .map(|k| {
            let actions = on_action.map(|run| {
                let items = KeyAction::offered(k.status)
                    .into_iter()
                    .map(|kind| {
                        let key = k.clone();
                        view! {
                            <button type="button" data-testid=kind.testid()
                                on:click=move |_| run.run((kind, key.clone()))>
                                {kind.label()}
                            </button>
                        }
                    })
                    .collect_view();
                view! { <RowMenu name=k.name.clone()>{items}</RowMenu> }
            });
            let namespace = match namespace_names.as_ref().and_then(|n| n.get(&k.namespace)) {
                Some(name) => view! {
                    <span title=k.namespace.clone() data-testid="key-namespace">{name.clone()}</span>
                }
                .into_any(),
                None => view! { <code data-testid="key-namespace">{k.namespace.clone()}</code> }.into_any(),
            };
            view! {
                <tr data-testid="key-row" data-key-id=k.id.clone()>
                    <td class="lead" data-label="Key">
                        <span class="strong" data-testid="key-name">{k.name.clone()}</span>
                        <code class="muted sub">{k.id.clone()}</code>
                    </td>
                    <td class="wrap" data-label="Access">{namespace}<span class="muted sub">{rights(&k)}</span></td>
                    <td data-label="Created"><When at=Some(k.created_at) now/></td>
                    <td data-label="Expires"><When at=k.expires_at now/> " " <ExpiryBadge expires_at=k.expires_at now/></td>
                    <td data-label="Status"><StatusBadge status=k.status/></td>
                    <td data-label="Last used"><When at=k.last_used_at now/></td>
                    <td class="menu-cell">{actions}</td>
                </tr>
            }
            .into_any()
        })
        .collect();
    view! { <DataTable testid="keys-table" headers rows cards=true empty=("No keys to show.", "keys-empty")/> }
}

/// The *Generate new key* dialog.
#[component]
pub fn GenerateKeyDialog(
    /// The namespaces the person holds permissions in, with those permissions.
    namespaces: Vec<model::api::MeNamespace>,
    /// The organization's maximum key lifetime in days, if any: the expiry is then required.
    #[prop(default = None)]
    max_expiry_days: Option<u32>,
    /// Called with the created key (and its plaintext, once).
    on_created: Callback<CreatedKey>,
    /// Called when the person cancels.
    on_cancel: Callback<()>,
) -> impl IntoView {
    let first = namespaces.first().map(|n| n.id.clone()).unwrap_or_default();
    let form = RwSignal::new(NewKeyForm::new(first));
    let invalid = RwSignal::new(None::<String>);
    let create = Call::new(move |request: &model::api::CreateKeyRequest| {
        let request = request.clone();
        async move {
            let answer = api::create_key(request).await?;
            on_created.run(answer);
            Ok::<(), ApiError>(())
        }
    });
    let held = {
        let namespaces = namespaces.clone();
        move || {
            let ns = form.with(|f| f.namespace.clone());
            namespaces
                .iter()
                .find(|n| n.id == ns)
                .map(|n| {
                    // What each covers: `scopes`, from a host that sends it; else the names.
                    n.permissions
                        .iter()
                        .map(|p| {
                            n.scopes
                                .iter()
                                .find(|s| &s.permission == p)
                                .cloned()
                                .unwrap_or(model::domain::PermissionScope {
                                    permission: p.clone(),
                                    resources: None,
                                })
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        }
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        match form.with_untracked(|f| f.to_request(now(), max_expiry_days)) {
            Ok(request) => {
                invalid.set(None);
                create.dispatch(request);
            }
            Err(message) => invalid.set(Some(message)),
        }
    };
    let rights_mode = move || match form.with(|f| f.rights.clone()) {
        RightsChoice::Role(KeyRole::Viewer) => "viewer",
        RightsChoice::Role(KeyRole::Editor) => "editor",
        RightsChoice::Permissions(_) => "permissions",
    };
    let (first_day, last_day) = expiry_bounds(now(), max_expiry_days);
    let expiry_label = match max_expiry_days {
        Some(days) => format!("Expires (required, at most {days} days)"),
        None => "Expires (optional)".to_string(),
    };
    view! {
        <Dialog title="Generate new key" testid="new-key-dialog" on_close=on_cancel>
            <form on:submit=submit novalidate>
                <label>"Name " <span class="required" aria-hidden="true">"*"</span>
                    <span class="visually-hidden">"(required)"</span>
                    <input required autofocus maxlength="100" data-testid="new-key-name" aria-required="true"
                        prop:value=move || form.with(|f| f.name.clone())
                        on:input=move |ev| form.update(|f| f.name = event_target_value(&ev))/>
                </label>
                <label>"Description"
                    <input data-testid="new-key-description"
                        prop:value=move || form.with(|f| f.description.clone())
                        on:input=move |ev| form.update(|f| f.description = event_target_value(&ev))/>
                </label>
                <label>"Namespace"
                    <select data-testid="new-key-namespace"
                        on:change=move |ev| form.update(|f| {
                            f.namespace = event_target_value(&ev);
                            // Permissions held in the old namespace mean nothing in the new one.
                            if let RightsChoice::Permissions(list) = &mut f.rights { list.clear(); }
                        })>
                        {namespaces.iter().map(|n| view! {
                            <option value=n.id.clone()>{format!("{} ({})", n.name, n.id)}</option>
                        }).collect_view()}
                    </select>
                </label>
                <label>"Access"
                    <select data-testid="new-key-rights" prop:value=rights_mode
                        on:change=move |ev| {
                            let choice = match event_target_value(&ev).as_str() {
                                "editor" => RightsChoice::Role(KeyRole::Editor),
                                "permissions" => RightsChoice::Permissions(Vec::new()),
                                _ => RightsChoice::Role(KeyRole::Viewer),
                            };
                            form.update(|f| f.rights = choice);
                        }>
                        <option value="viewer">"Viewer: your read permissions"</option>
                        <option value="editor">"Editor: your read and write permissions"</option>
                        <option value="permissions">"Specific permissions"</option>
                    </select>
                </label>
                {move || matches!(form.with(|f| f.rights.clone()), RightsChoice::Permissions(_)).then(|| {
                    let held = held();
                    let count = held.len();
                    view! {
                        <fieldset data-testid="permission-picker">
                            <legend>"Permissions you hold here"</legend>
                            {held.into_iter().map(|scope| {
                                let hint = coverage_hint(&scope);
                                let p = scope.permission;
                                let name = p.clone();
                                let checked = {
                                    let name = name.clone();
                                    move || form.with(|f| matches!(&f.rights, RightsChoice::Permissions(l) if l.contains(&name)))
                                };
                                view! {
                                    <label class="check">
                                        <input type="checkbox" data-testid="permission-option" value=name.clone()
                                            prop:checked=checked
                                            on:change=move |ev| {
                                                let on = event_target_checked(&ev);
                                                let name = name.clone();
                                                form.update(|f| if let RightsChoice::Permissions(list) = &mut f.rights {
                                                    list.retain(|x| x != &name);
                                                    if on { list.push(name); }
                                                });
                                            }/>
                                        {p}
                                        {hint.map(|h| view! { <span class="hint" data-testid="permission-coverage">{h}</span> })}
                                    </label>
                                }
                            }).collect_view()}
                            <p class="hint" data-testid="least-privilege-hint" aria-live="polite">{move || {
                                let selected = form.with(|f| match &f.rights { RightsChoice::Permissions(l) => l.len(), _ => 0 });
                                least_privilege_hint(selected, count)
                            }}</p>
                        </fieldset>
                    }
                })}
                <label>{expiry_label}
                    <input type="date" data-testid="new-key-expiry" min=first_day max=last_day
                        required=max_expiry_days.is_some()
                        prop:value=move || form.with(|f| f.expiry.clone())
                        on:input=move |ev| form.update(|f| f.expiry = event_target_value(&ev))/>
                </label>
                {move || invalid.get().map(|m| view! { <p class="error" role="alert" data-testid="form-error">{m}</p> })}
                <ActionError action=create/>
                <div class="actions">
                    <BusyButton submit=true pending=create.pending() label="Generate" busy="Generating…" testid="new-key-submit"/>
                    <button type="button" class="secondary" on:click=move |_| on_cancel.run(())>"Cancel"</button>
                </div>
            </form>
        </Dialog>
    }
}
