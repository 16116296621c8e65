//! Namespaces (admins): the organization, its applications, their workspaces and the user
//! groups, with forms to create them, renaming in a dialog, deletion behind a confirmation,
//! and the user groups' membership ([`super::group_members`]).

use leptos::prelude::*;
use model::api::{NamespaceRequest, NamespaceView, OrganizationView, PageQuery};

use super::group_members::GroupMembership;
use crate::api::{self, ApiError, Namespaces};
use crate::components::confirm::ConfirmCall;
use crate::components::dialog::Dialog;
use crate::components::error_note::{ActionError, BusyButton, loaded};
use crate::components::table::DataTable;
use crate::erased::{Call, Load};

/// The namespaces page.
#[component]
pub fn NamespacesPage(
    /// The organization (the root namespace).
    organization: OrganizationView,
) -> impl IntoView {
    let changed = RwSignal::new(0u32);
    let refresh = Callback::new(move |()| changed.update(|n| *n += 1));
    let all = Load::new(move || {
        changed.get();
        async move {
            let apps = api::namespaces(Namespaces::Apps).await?;
            let workspaces = api::namespaces(Namespaces::Workspaces).await?;
            let groups = api::namespaces(Namespaces::Usergroups).await?;
            let members = api::members(&PageQuery {
                limit: Some(model::service::MAX_LIMIT),
                cursor: None,
            })
            .await?;
            Ok::<_, ApiError>((apps.items, workspaces.items, groups.items, members.items))
        }
    });
    let deleting = RwSignal::new(None::<(Namespaces, NamespaceView)>);
    let renaming = RwSignal::new(None::<(Namespaces, NamespaceView)>);
    let org = organization.clone();
    view! {
        <section class="panel">
            <h1>"Namespaces"</h1>
            <p>"Organization "<strong>{organization.name.clone()}</strong>" "<code>{organization.id.clone()}</code>
                ". Rights are not inherited: a permission held in an application says nothing about its workspaces."</p>
            {move || deleting.get().map(|(kind, ns)| view! {
                <DeleteNamespaceDialog kind ns
                    on_done=Callback::new(move |()| { deleting.set(None); refresh.run(()); })
                    on_cancel=Callback::new(move |()| deleting.set(None))/>
            })}
            {move || renaming.get().map(|(kind, ns)| view! {
                <RenameNamespaceDialog kind ns
                    on_done=Callback::new(move |()| { renaming.set(None); refresh.run(()); })
                    on_cancel=Callback::new(move |()| renaming.set(None))/>
            })}
            <Transition fallback=|| view! { <p class="muted">"Loading namespaces…"</p> }>
                {move || all.get().map(|answer| {
                    let org = org.clone();
                    loaded(answer, move |(apps, workspaces, groups, members)| {
                        let on_delete = Callback::new(move |pick| deleting.set(Some(pick)));
                        let on_rename = Callback::new(move |pick| renaming.set(Some(pick)));
                        let parents: Vec<(String, String)> = std::iter::once((org.id.clone(), format!("{} (organization)", org.name)))
                            .chain(apps.iter().map(|a| (a.id.clone(), format!("{} (application)", a.name))))
                            .collect();
                        let app_choices: Vec<(String, String)> = apps.iter().map(|a| (a.id.clone(), a.name.clone())).collect();
                        let parent_names = std::sync::Arc::new(
                            std::iter::once((org.id.clone(), org.name.clone()))
                                .chain(app_choices.iter().cloned())
                                .collect::<std::collections::HashMap<_, _>>(),
                        );
                        view! {
                            <h2>"Applications"</h2>
                            <NamespaceTable kind=Namespaces::Apps items=apps on_delete=None on_rename=None parent_names=parent_names.clone()/>
                            <CreateNamespace kind=Namespaces::Apps parents=vec![] on_created=refresh/>
                            <h2>"Workspaces"</h2>
                            <NamespaceTable kind=Namespaces::Workspaces items=workspaces on_delete=Some(on_delete) on_rename=Some(on_rename) parent_names=parent_names.clone()/>
                            <CreateNamespace kind=Namespaces::Workspaces parents=app_choices on_created=refresh/>
                            <h2>"User groups"</h2>
                            <NamespaceTable kind=Namespaces::Usergroups items=groups.clone() on_delete=Some(on_delete) on_rename=Some(on_rename) parent_names/>
                            <CreateNamespace kind=Namespaces::Usergroups parents on_created=refresh/>
                            {(!groups.is_empty()).then(|| view! { <GroupMembership groups members/> })}
                        }
                    })
                })}
            </Transition>
        </section>
    }
}

fn testid(kind: Namespaces) -> &'static str {
    match kind {
        Namespaces::Apps => "apps",
        Namespaces::Workspaces => "workspaces",
        Namespaces::Usergroups => "usergroups",
    }
}

/// One kind of namespace as a table.
#[component]
fn NamespaceTable(
    kind: Namespaces,
    items: Vec<NamespaceView>,
    /// Deletion, where the API allows it.
    on_delete: Option<Callback<(Namespaces, NamespaceView)>>,
    /// Renaming, where the API allows it.
    on_rename: Option<Callback<(Namespaces, NamespaceView)>>,
    /// The names of the namespaces that can be a parent (the organization, its applications):
    /// a parent reads by its name, its id on hover.
    parent_names: std::sync::Arc<std::collections::HashMap<String, String>>,
) -> impl IntoView {
    let rows = items
        .into_iter()
        .map(|ns| {
            let parent = ns.parent.clone().map(|p| match parent_names.get(&p) {
                Some(name) => view! { <span title=p.clone()>{name.clone()}</span> }.into_any(),
                None => view! { <code>{p}</code> }.into_any(),
            });
            let pick = ns.clone();
            let renamed = ns.clone();
            view! {
                <tr data-testid="namespace-row" data-namespace-id=ns.id.clone()>
                    <td>{ns.name.clone()}</td>
                    <td><code>{ns.id.clone()}</code></td>
                    <td>{parent}</td>
                    <td>{on_rename.map(|run| view! {
                        <button class="small secondary" data-testid="namespace-rename" aria-label=format!("Rename {}", ns.name)
                            on:click=move |_| run.run((kind, renamed.clone()))>"Rename"</button>
                    })}
                    " "
                    {on_delete.map(|run| view! {
                        <button class="small secondary" aria-label=format!("Delete {}", ns.name)
                            on:click=move |_| run.run((kind, pick.clone()))>"Delete"</button>
                    })}</td>
                </tr>
            }
            .into_any()
        })
        .collect();
    view! {
        <DataTable testid=format!("{}-table", testid(kind)) headers=vec!["Name", "ID", "Inside", ""] rows
            empty=("None yet.", "namespaces-empty")/>
    }
}

/// Creates a namespace of `kind`, inside one of `parents` when it needs one.
#[component]
fn CreateNamespace(
    kind: Namespaces,
    /// `(id, label)` of the possible parents: applications for a workspace, the organization
    /// or an application for a user group, none for an application.
    parents: Vec<(String, String)>,
    on_created: Callback<()>,
) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let parent = RwSignal::new(parents.first().map(|p| p.0.clone()).unwrap_or_default());
    let needs_parent = kind != Namespaces::Apps;
    let create = Call::new(move |request: &NamespaceRequest| {
        let request = request.clone();
        async move {
            api::create_namespace(kind, request).await?;
            name.set(String::new());
            on_created.run(());
            Ok::<(), ApiError>(())
        }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let inside = Some(parent.get_untracked()).filter(|p| !p.is_empty());
        create.dispatch(NamespaceRequest {
            name: name.get_untracked(),
            app: inside.clone().filter(|_| kind == Namespaces::Workspaces),
            parent: inside.filter(|_| kind == Namespaces::Usergroups),
        });
    };
    let what = match kind {
        Namespaces::Apps => "application",
        Namespaces::Workspaces => "workspace",
        Namespaces::Usergroups => "user group",
    };
    let id = testid(kind);
    view! {
        <form class="inline-form" on:submit=submit data-testid=format!("create-{id}")>
            <label>{format!("New {what}")}
                <input required data-testid=format!("create-{id}-name") bind:value=name/>
            </label>
            {needs_parent.then(|| view! {
                <label>"Inside"
                    <select data-testid=format!("create-{id}-parent") on:change=move |ev| parent.set(event_target_value(&ev))>
                        {parents.into_iter().map(|(pid, label)| view! { <option value=pid>{label}</option> }).collect_view()}
                    </select>
                </label>
            })}
            <BusyButton submit=true pending=create.pending() label="Create" busy="Creating…" testid="create-namespace-submit"/>
            <ActionError action=create/>
        </form>
    }
}

/// Deletes a workspace or user group after confirmation.
#[component]
fn DeleteNamespaceDialog(
    kind: Namespaces,
    ns: NamespaceView,
    on_done: Callback<()>,
    on_cancel: Callback<()>,
) -> impl IntoView {
    let id = ns.id.clone();
    let call = move || {
        let id = id.clone();
        async move { api::delete_namespace(kind, &id).await }
    };
    view! {
        <ConfirmCall title=format!("Delete {}?", ns.name) testid="delete-namespace-dialog" confirm_label="Delete"
            call on_done on_close=on_cancel>
            <p>"Grants in "<code>{ns.id.clone()}</code>" go with it, and keys restricted to it stop working."</p>
        </ConfirmCall>
    }
}

/// Renames a workspace or user group, checking the name by the model's rule first.
#[component]
pub fn RenameNamespaceDialog(
    kind: Namespaces,
    ns: NamespaceView,
    /// Called once renamed.
    on_done: Callback<()>,
    /// Closes without change.
    on_cancel: Callback<()>,
) -> impl IntoView {
    let name = RwSignal::new(ns.name.clone());
    let invalid = RwSignal::new(None::<String>);
    let id = ns.id.clone();
    let save = Call::new(move |name: &String| {
        let (id, name) = (id.clone(), name.clone());
        async move {
            api::rename_namespace(kind, &id, name).await?;
            on_done.run(());
            Ok::<(), ApiError>(())
        }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        match model::rules::namespace_name(&name.get_untracked()) {
            Ok(checked) => {
                invalid.set(None);
                save.dispatch(checked);
            }
            Err(e) => invalid.set(Some(e.to_string())),
        }
    };
    view! {
        <Dialog title=format!("Rename {}", ns.name) testid="rename-namespace-dialog" on_close=on_cancel>
            <form on:submit=submit novalidate>
                <label>"Name " <span class="required" aria-hidden="true">"*"</span>
                    <input autofocus required data-testid="rename-namespace-name" bind:value=name/>
                </label>
                <p class="hint">"Only the name changes: the id "<code>{ns.id.clone()}</code>", its grants and keys stay."</p>
                {move || invalid.get().map(|m| view! { <p class="error" role="alert" data-testid="rename-namespace-invalid">{m}</p> })}
                <ActionError action=save/>
                <div class="actions">
                    <BusyButton submit=true pending=save.pending() label="Save" busy="Saving…" testid="rename-namespace-submit"/>
                    <button type="button" class="secondary" data-testid="dialog-cancel" on:click=move |_| on_cancel.run(())>"Cancel"</button>
                </div>
            </form>
        </Dialog>
    }
}
