//! What can be done to one key, each in its own dialog: display information, rename, roll with
//! a grace period, revoke and delete (both confirmed; delete offers who receives the key's
//! resources when it owns some).

use leptos::prelude::*;
use model::api::{DeleteKeyQuery, KeyPatch, KeyView, PageQuery, ResourceQuery};
use model::domain::{KeyStatus, OwnerKind};
use model::rules::{KeyName, description};

use crate::api::{self, ApiError};
use crate::components::confirm::{ConfirmCall, ConfirmDialog};
use crate::components::dialog::Dialog;
use crate::components::error_note::{ActionError, BusyButton, ErrorNote};
use crate::components::key_cells::{ExpiryBadge, ExtensiveBadge, StatusBadge, When, rights};
use crate::erased::{Call, Load};

/// An action on one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    Info,
    Rename,
    Roll,
    Revoke,
    Delete,
}

impl KeyAction {
    /// The actions a key in `status` allows (revoke and roll only while active).
    pub fn offered(status: KeyStatus) -> Vec<KeyAction> {
        let active = status == KeyStatus::Active;
        [
            (KeyAction::Info, true),
            (KeyAction::Rename, true),
            (KeyAction::Roll, active),
            (KeyAction::Revoke, active),
            (KeyAction::Delete, true),
        ]
        .into_iter()
        .filter_map(|(a, on)| on.then_some(a))
        .collect()
    }

    /// The button's words.
    pub fn label(self) -> &'static str {
        match self {
            KeyAction::Info => "Details",
            KeyAction::Rename => "Rename",
            KeyAction::Roll => "Roll",
            KeyAction::Revoke => "Revoke",
            KeyAction::Delete => "Delete",
        }
    }

    /// The button's `data-testid`.
    pub fn testid(self) -> &'static str {
        match self {
            KeyAction::Info => "key-info",
            KeyAction::Rename => "key-rename",
            KeyAction::Roll => "key-roll",
            KeyAction::Revoke => "key-revoke",
            KeyAction::Delete => "key-delete",
        }
    }
}

/// The grace periods offered when rolling a key, in seconds (SPEC §3.8: 0 to 24 h).
pub const GRACE_PERIODS: [(u32, &str); 5] = [
    (0, "none: the old secret stops now"),
    (300, "5 minutes"),
    (3600, "1 hour"),
    (6 * 3600, "6 hours"),
    (24 * 3600, "24 hours"),
];

/// The dialog of `kind` for `key`.
#[component]
pub fn KeyActionDialog(
    /// Which action.
    kind: KeyAction,
    /// The key it acts on.
    key: KeyView,
    /// Called once the action is done, with a rolled key's new plaintext.
    on_done: Callback<Option<String>>,
    /// Called when the person closes the dialog without acting.
    on_cancel: Callback<()>,
    /// The name of the key's namespace, when the page knows it.
    #[prop(default = None)]
    namespace_name: Option<String>,
) -> impl IntoView {
    let done = Callback::new(move |()| on_done.run(None));
    match kind {
        KeyAction::Info => {
            view! { <KeyInfoDialog key namespace_name on_close=on_cancel/> }.into_any()
        }
        KeyAction::Rename => view! { <RenameKeyDialog key on_done=done on_cancel/> }.into_any(),
        KeyAction::Roll => view! { <RollKeyDialog key on_done on_cancel/> }.into_any(),
        KeyAction::Revoke => view! { <RevokeKeyDialog key on_done=done on_cancel/> }.into_any(),
        KeyAction::Delete => view! { <DeleteKeyDialog key on_done=done on_cancel/> }.into_any(),
    }
}

/// *Display information*: every field of the key, read fresh from the host.
#[component]
pub fn KeyInfoDialog(
    /// The key as listed.
    key: KeyView,
    /// The name of its namespace, when known: shown with the id on hover.
    #[prop(default = None)]
    namespace_name: Option<String>,
    /// Closes the dialog.
    on_close: Callback<()>,
) -> impl IntoView {
    let id = key.id.clone();
    let fresh = Load::new(move || {
        let id = id.clone();
        async move { api::key(&id).await }
    });
    view! {
        <Dialog title=format!("Key “{}”", key.name) testid="key-info-dialog" on_close>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || fresh.get().map(|answer| match answer {
                    Ok(k) => {
                        let now = crate::form::now();
                        view! {
                        <dl class="details">
                            <dt>"ID"</dt><dd><code>{k.id.clone()}</code></dd>
                            <dt>"Name"</dt><dd>{k.name.clone()}</dd>
                            <dt>"Description"</dt><dd>{k.description.clone().unwrap_or_else(|| "—".into())}</dd>
                            <dt>"Namespace"</dt><dd>{match namespace_name.clone() {
                                Some(name) => view! { <span title=k.namespace.clone()>{name}</span> }.into_any(),
                                None => view! { <code>{k.namespace.clone()}</code> }.into_any(),
                            }}</dd>
                            <dt>"Owner"</dt><dd>{format!("{} <{}>", k.owner.name, k.owner.email)}</dd>
                            <dt>"Role or permissions"</dt><dd>{rights(&k)}</dd>
                            <dt>"Status"</dt><dd><StatusBadge status=k.status/>" "<ExtensiveBadge flagged=k.extensive_use/></dd>
                            <dt>"Created"</dt><dd><When at=Some(k.created_at) now/></dd>
                            <dt>"Updated"</dt><dd><When at=Some(k.updated_at) now/></dd>
                            <dt>"Expires"</dt><dd><When at=k.expires_at now/> " " <ExpiryBadge expires_at=k.expires_at now/></dd>
                            <dt>"Revoked"</dt><dd><When at=k.revoked_at now/></dd>
                            <dt>"Last used"</dt><dd><When at=k.last_used_at now/></dd>
                        </dl>
                        }.into_any()
                    }
                    Err(error) => view! { <ErrorNote error/> }.into_any(),
                })}
            </Transition>
            <div class="actions">
                <button class="secondary" data-testid="dialog-close" on:click=move |_| on_close.run(())>"Close"</button>
            </div>
        </Dialog>
    }
}

/// Changes a key's name and description (nothing else changes after creation).
#[component]
pub fn RenameKeyDialog(
    /// The key.
    key: KeyView,
    /// Called once renamed.
    on_done: Callback<()>,
    /// Closes without change.
    on_cancel: Callback<()>,
) -> impl IntoView {
    let name = RwSignal::new(key.name.clone());
    let about = RwSignal::new(key.description.clone().unwrap_or_default());
    let invalid = RwSignal::new(None::<String>);
    let id = key.id.clone();
    let save = Call::new(move |patch: &KeyPatch| {
        let (id, patch) = (id.clone(), patch.clone());
        async move {
            api::update_key(&id, patch).await?;
            on_done.run(());
            Ok::<(), ApiError>(())
        }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let checked = KeyName::try_from(name.get_untracked())
            .and_then(|n| Ok((n, description(Some(about.get_untracked()))?)));
        match checked {
            Ok((n, d)) => {
                invalid.set(None);
                save.dispatch(KeyPatch {
                    name: Some(n.into_inner()),
                    description: Some(d),
                });
            }
            Err(e) => invalid.set(Some(e.to_string())),
        }
    };
    view! {
        <Dialog title="Rename key" testid="rename-dialog" on_close=on_cancel>
            <form on:submit=submit novalidate>
                <label>"Name " <span class="required" aria-hidden="true">"*"</span>
                    <input autofocus required data-testid="rename-name" bind:value=name/>
                </label>
                <label>"Description"
                    <input data-testid="rename-description" bind:value=about/>
                </label>
                <p class="hint">"The expiry, namespace and rights of a key never change after creation."</p>
                {move || invalid.get().map(|m| view! { <p class="error" role="alert">{m}</p> })}
                <ActionError action=save/>
                <div class="actions">
                    <BusyButton submit=true pending=save.pending() label="Save" busy="Saving…" testid="rename-submit"/>
                    <button type="button" class="secondary" on:click=move |_| on_cancel.run(())>"Cancel"</button>
                </div>
            </form>
        </Dialog>
    }
}

/// Gives a key a new secret; the old one works for the chosen grace period.
#[component]
pub fn RollKeyDialog(
    /// The key.
    key: KeyView,
    /// Called with the new plaintext.
    on_done: Callback<Option<String>>,
    /// Closes without rolling.
    on_cancel: Callback<()>,
) -> impl IntoView {
    let grace = RwSignal::new(3600u32);
    let id = key.id.clone();
    let roll = Call::new(move |seconds: &u32| {
        let (id, seconds) = (id.clone(), *seconds);
        async move {
            let rolled = api::roll_key(&id, seconds).await?;
            on_done.run(Some(rolled.key));
            Ok::<(), ApiError>(())
        }
    });
    view! {
        <Dialog title=format!("Roll “{}”", key.name) testid="roll-dialog" on_close=on_cancel>
            <p>"The key gets a new secret with the same settings. Scripts using the old secret keep working for the grace period, then get NOT_FOUND."</p>
            <label>"Grace period for the old secret"
                <select autofocus data-testid="roll-grace"
                    on:change=move |ev| grace.set(event_target_value(&ev).parse().unwrap_or(0))>
                    {GRACE_PERIODS.into_iter().map(|(s, label)| view! {
                        <option value=s.to_string() selected=s == 3600>{label}</option>
                    }).collect_view()}
                </select>
            </label>
            <ActionError action=roll/>
            <div class="actions">
                <BusyButton pending=roll.pending() label="Roll key" busy="Rolling…" testid="roll-submit"
                    on_click=Callback::new(move |()| roll.dispatch(grace.get_untracked()))/>
                <button class="secondary" on:click=move |_| on_cancel.run(())>"Cancel"</button>
            </div>
        </Dialog>
    }
}

/// Revokes a key after confirmation: immediate and irreversible.
#[component]
pub fn RevokeKeyDialog(
    /// The key.
    key: KeyView,
    /// Called once revoked.
    on_done: Callback<()>,
    /// Closes without revoking.
    on_cancel: Callback<()>,
) -> impl IntoView {
    let id = key.id.clone();
    let call = move || {
        let id = id.clone();
        async move { api::revoke_key(&id).await.map(drop) }
    };
    view! {
        <ConfirmCall title=format!("Revoke “{}”?", key.name) testid="revoke-dialog" confirm_label="Revoke"
            call on_done on_close=on_cancel>
            <p>"Every verification of "<code>{key.id.clone()}</code>" answers REVOKED from now on. This cannot be undone."</p>
        </ConfirmCall>
    }
}

/// Where a deleted key's resources go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Disposal {
    /// To this member.
    Transfer(String),
    /// Deleted with the key.
    Delete,
}

/// Deletes a key after confirmation; when it owns resources, the person picks a member to
/// receive them or accepts that they are deleted too.
#[component]
pub fn DeleteKeyDialog(
    /// The key.
    key: KeyView,
    /// Called once deleted.
    on_done: Callback<()>,
    /// Closes without deleting.
    on_cancel: Callback<()>,
) -> impl IntoView {
    let (id, namespace) = (key.id.clone(), key.namespace.clone());
    // The key's resources, when the owner may list them; the host's 409 is the fallback.
    let owned = Load::new(move || {
        let (id, namespace) = (id.clone(), namespace.clone());
        async move {
            let query = ResourceQuery {
                namespace: Some(namespace),
                limit: Some(model::service::MAX_LIMIT),
                cursor: None,
            };
            api::resources(&query)
                .await
                .map(|page| {
                    page.items
                        .into_iter()
                        .filter(|r| r.owner.kind == OwnerKind::Key && r.owner.id == id)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        }
    });
    let conflict = RwSignal::new(false);
    let disposal = RwSignal::new(None::<Disposal>);
    let needs_choice = move || conflict.get() || owned.get().is_some_and(|o| !o.is_empty());
    let members = Load::new(move || async move {
        api::members(&PageQuery {
            limit: Some(model::service::MAX_LIMIT),
            cursor: None,
        })
        .await
    });
    let id = key.id.clone();
    let remove = Call::new(move |choice: &Option<Disposal>| {
        let id = id.clone();
        let query = match choice {
            Some(Disposal::Transfer(to)) => DeleteKeyQuery {
                transfer_to: Some(to.clone()),
                delete_resources: None,
            },
            Some(Disposal::Delete) => DeleteKeyQuery {
                transfer_to: None,
                delete_resources: Some(true),
            },
            None => DeleteKeyQuery::default(),
        };
        async move {
            match api::delete_key(&id, &query).await {
                Ok(()) => {
                    on_done.run(());
                    Ok(())
                }
                Err(e) if e.code() == Some("conflict") => {
                    conflict.set(true);
                    Err(e)
                }
                Err(e) => Err(e),
            }
        }
    });
    let confirm = Callback::new(move |()| {
        remove.dispatch(disposal.get_untracked());
    });
    let namespace = key.namespace.clone();
    view! {
        <ConfirmDialog title=format!("Delete “{}”?", key.name) testid="delete-dialog" confirm_label="Delete"
            pending=remove.pending() error=Signal::derive(move || remove.error())
            on_confirm=confirm on_close=on_cancel>
            <p>"The key and every grant naming it are removed for good. Scripts using it get NOT_FOUND."</p>
            {move || needs_choice().then(|| {
                let count = owned.get().map(|o| o.len()).unwrap_or_default();
                view! {
                    <fieldset data-testid="transfer-picker">
                        <legend>{if count > 0 { format!("This key owns {count} resource(s)") } else { "This key owns resources".to_string() }}</legend>
                        <label>"Give them to a member with resources.write in "<code>{namespace.clone()}</code>
                            <select data-testid="transfer-to" on:change=move |ev| {
                                let v = event_target_value(&ev);
                                disposal.set(match v.as_str() {
                                    "" => None,
                                    "delete" => Some(Disposal::Delete),
                                    _ => Some(Disposal::Transfer(v)),
                                });
                            }>
                                <option value="">"Choose…"</option>
                                {move || members.get().and_then(Result::ok).map(|page| page.items.into_iter().map(|m| view! {
                                    <option value=m.id.clone()>{format!("{} <{}>", m.name, m.email)}</option>
                                }).collect_view())}
                                <option value="delete">"Nobody: delete the resources with the key"</option>
                            </select>
                        </label>
                    </fieldset>
                }
            })}
        </ConfirmDialog>
    }
}
