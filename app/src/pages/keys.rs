//! *My API keys*: the person's keys, and the *Generate new key* dialog.

use leptos::prelude::*;
use model::api::{CreatedKey, KeyView, MeResponse, SettingsPatch};
use model::domain::{KeyRole, KeyStatus, Role};
use model::rules::key_matches;

use crate::api::{self, ApiError};
use crate::components::error_note::ErrorNote;
use crate::components::new_key::NewKeyPanel;
use crate::form::{NewKeyForm, RightsChoice, least_privilege_hint};

/// The signed-in person's keys.
#[component]
pub fn KeysPage(
    /// Who is signed in.
    me: MeResponse,
    /// Called when a call finds the session gone.
    on_session_lost: Callback<Option<String>>,
) -> impl IntoView {
    let is_admin = me.roles.contains(&Role::Admin);
    let created = RwSignal::new(None::<String>);
    let dialog_open = RwSignal::new(false);
    let search = RwSignal::new(String::new());
    let enable = Action::new_local(|_: &()| async move {
        api::update_settings(SettingsPatch {
            api_keys_enabled: Some(true),
            ..Default::default()
        })
        .await
    });
    let settings = LocalResource::new(move || {
        enable.version().get();
        async move {
            if is_admin {
                api::settings().await.map(Some)
            } else {
                Ok(None)
            }
        }
    });
    let keys = LocalResource::new(move || {
        created.with(|_| ());
        async move { api::my_keys().await }
    });
    let lost = move |e: &ApiError| {
        if e.is_unauthenticated() {
            on_session_lost.run(Some("Your session has ended. Sign in again.".into()));
        }
    };
    let on_created = Callback::new(move |answer: CreatedKey| {
        dialog_open.set(false);
        created.set(Some(answer.key));
    });
    let namespaces = me.namespaces.clone();
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
                            <button data-testid="enable-api-keys" on:click=move |_| { enable.dispatch(()); }>
                                "Enable API keys"
                            </button>
                        </p>
                    }.into_any(),
                    Err(e) => { lost(&e); view! { <ErrorNote error=e/> }.into_any() }
                    _ => ().into_any(),
                })}
            </Transition>
            {move || created.get().map(|plaintext| view! {
                <NewKeyPanel plaintext on_close=Callback::new(move |()| created.set(None))/>
            })}
            <Show when=move || dialog_open.get()>
                <GenerateKeyDialog namespaces=namespaces.clone() on_created
                    on_cancel=Callback::new(move |()| dialog_open.set(false))/>
            </Show>
            <label class="search">"Search"
                <input type="search" placeholder="Name or id" data-testid="keys-search" bind:value=search/>
            </label>
            <Transition fallback=|| view! { <p class="muted">"Loading keys…"</p> }>
                {move || keys.get().map(|page| match page {
                    Ok(page) => {
                        let q = search.get();
                        let rows: Vec<KeyView> = page.items.into_iter().filter(|k| key_matches(k, &q)).collect();
                        view! { <KeyTable keys=rows/> }.into_any()
                    }
                    Err(e) => { lost(&e); view! { <ErrorNote error=e/> }.into_any() }
                })}
            </Transition>
        </section>
    }
}

/// The table of keys.
#[component]
pub fn KeyTable(
    /// The keys to show, already filtered.
    keys: Vec<KeyView>,
) -> impl IntoView {
    if keys.is_empty() {
        return view! { <p class="muted" data-testid="keys-empty">"No keys yet."</p> }.into_any();
    }
    let date = |t: time::OffsetDateTime| t.date().to_string();
    view! {
        <div class="table-wrap">
            <table data-testid="keys-table">
                <thead><tr>
                    <th>"Name"</th><th>"ID"</th><th>"Namespace"</th><th>"Role or permissions"</th>
                    <th>"Created"</th><th>"Updated"</th><th>"Expires"</th><th>"Status"</th><th>"Last used"</th>
                </tr></thead>
                <tbody>
                    {keys.into_iter().map(|k| {
                        let rights = match k.role {
                            Some(KeyRole::Viewer) => "Viewer".to_string(),
                            Some(KeyRole::Editor) => "Editor".to_string(),
                            None => k.permissions.iter().map(|p| p.permission.clone()).collect::<Vec<_>>().join(", "),
                        };
                        let status = match k.status {
                            KeyStatus::Active => "active",
                            KeyStatus::Expired => "expired",
                            KeyStatus::Revoked => "revoked",
                        };
                        view! {
                            <tr data-testid="key-row" data-key-id=k.id.clone()>
                                <td>{k.name.clone()}</td>
                                <td><code>{k.id.clone()}</code></td>
                                <td><code>{k.namespace.clone()}</code></td>
                                <td>{rights}</td>
                                <td>{date(k.created_at)}</td>
                                <td>{date(k.updated_at)}</td>
                                <td>{k.expires_at.map(date).unwrap_or_else(|| "never".into())}</td>
                                <td><span class=format!("badge {status}")>{status}</span></td>
                                <td>{k.last_used_at.map(date).unwrap_or_else(|| "never".into())}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}

/// The *Generate new key* dialog.
#[component]
pub fn GenerateKeyDialog(
    /// The namespaces the person holds permissions in, with those permissions.
    namespaces: Vec<model::api::MeNamespace>,
    /// Called with the created key (and its plaintext, once).
    on_created: Callback<CreatedKey>,
    /// Called when the person cancels.
    on_cancel: Callback<()>,
) -> impl IntoView {
    let first = namespaces.first().map(|n| n.id.clone()).unwrap_or_default();
    let form = RwSignal::new(NewKeyForm::new(first));
    let invalid = RwSignal::new(None::<String>);
    let create = Action::new_local(move |request: &model::api::CreateKeyRequest| {
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
                .map(|n| n.permissions.clone())
                .unwrap_or_default()
        }
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        match form.with_untracked(NewKeyForm::to_request) {
            Ok(request) => {
                invalid.set(None);
                create.dispatch(request);
            }
            Err(message) => invalid.set(Some(message)),
        }
    };
    let on_keydown = move |ev: leptos::ev::KeyboardEvent| {
        if ev.key() == "Escape" {
            on_cancel.run(());
        }
    };
    let rights_mode = move || match form.with(|f| f.rights.clone()) {
        RightsChoice::Role(KeyRole::Viewer) => "viewer",
        RightsChoice::Role(KeyRole::Editor) => "editor",
        RightsChoice::Permissions(_) => "permissions",
    };
    let held_for_picker = held.clone();
    view! {
        <div class="dialog" role="dialog" aria-modal="true" aria-labelledby="new-key-title" on:keydown=on_keydown
            data-testid="new-key-dialog">
            <form on:submit=submit>
                <h2 id="new-key-title">"Generate new key"</h2>
                <label>"Name " <span class="required" aria-hidden="true">"*"</span>
                    <input required autofocus maxlength="100" data-testid="new-key-name"
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
                        on:change=move |ev| form.update(|f| f.namespace = event_target_value(&ev))>
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
                    let held = held_for_picker();
                    let count = held.len();
                    view! {
                        <fieldset data-testid="permission-picker">
                            <legend>"Permissions you hold here"</legend>
                            {held.into_iter().map(|p| {
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
                                    </label>
                                }
                            }).collect_view()}
                            <p class="hint" data-testid="least-privilege-hint">{move || {
                                let selected = form.with(|f| match &f.rights { RightsChoice::Permissions(l) => l.len(), _ => 0 });
                                least_privilege_hint(selected, count)
                            }}</p>
                        </fieldset>
                    }
                })}
                <label>"Expires (optional)"
                    <input type="date" data-testid="new-key-expiry"
                        prop:value=move || form.with(|f| f.expiry.clone())
                        on:input=move |ev| form.update(|f| f.expiry = event_target_value(&ev))/>
                </label>
                {move || invalid.get().map(|m| view! { <p class="error" role="alert">{m}</p> })}
                {move || create.value().get().and_then(Result::err).map(|error| view! { <ErrorNote error/> })}
                <div class="actions">
                    <button type="submit" data-testid="new-key-submit" disabled=move || create.pending().get()>
                        {move || if create.pending().get() { "Generating…" } else { "Generate" }}
                    </button>
                    <button type="button" class="secondary" on:click=move |_| on_cancel.run(())>"Cancel"</button>
                </div>
            </form>
        </div>
    }
}
