//! Permissions (admins): the organization's catalogue (built-in and custom), and grants of a
//! permission in a namespace to a member, a user group or a key, optionally limited to some
//! resources.

use leptos::prelude::*;
use model::api::GrantView;
use model::api::{
    GrantQuery, GrantRequest, KeyListQuery, KeyView, PageQuery, PermissionRequest, UserView,
};
use model::domain::KeyStatus;

use super::group_members::member_label;
use crate::api::{self, ApiError, Namespaces};
use crate::components::error_note::{ActionError, BusyButton, loaded};
use crate::components::table::DataTable;
use crate::erased::{Call, Load};

/// Everything the grant form offers: namespaces, principals and the catalogue.
#[derive(Debug, Clone, Default)]
struct Choices {
    /// `(id, label)` of every namespace.
    namespaces: Vec<(String, String)>,
    /// `(id, label)` of members, user groups and active keys ([`principals`]).
    principals: Vec<(String, String)>,
    permissions: Vec<String>,
}

/// The permissions and grants page.
#[component]
pub fn PermissionsPage(
    /// The organization (the root namespace).
    organization: model::api::OrganizationView,
) -> impl IntoView {
    let changed = RwSignal::new(0u32);
    let refresh = Callback::new(move |()| changed.update(|n| *n += 1));
    let catalogue = Load::new(move || {
        changed.get();
        async move { api::permissions().await }
    });
    let org = organization.clone();
    let choices = Load::new(move || {
        changed.get();
        let org = org.clone();
        async move {
            let mut namespaces = vec![(org.id.clone(), format!("{} (organization)", org.name))];
            for kind in [
                Namespaces::Apps,
                Namespaces::Workspaces,
                Namespaces::Usergroups,
            ] {
                for ns in api::namespaces(kind).await?.items {
                    namespaces.push((ns.id, ns.name));
                }
            }
            let page = PageQuery {
                limit: Some(model::service::MAX_LIMIT),
                cursor: None,
            };
            let members = api::members(&page).await?.items;
            let keys = api::keys(&KeyListQuery {
                limit: Some(model::service::MAX_LIMIT),
                all: Some(true),
                status: Some(KeyStatus::Active),
                ..Default::default()
            })
            .await?
            .items;
            let groups: Vec<(String, String)> = namespaces
                .iter()
                .filter(|(id, _)| id.starts_with("grp_"))
                .cloned()
                .collect();
            let principals = principals(&members, &groups, &keys);
            let permissions = api::permissions()
                .await?
                .items
                .into_iter()
                .map(|p| p.name)
                .collect();
            Ok::<_, ApiError>(Choices {
                namespaces,
                principals,
                permissions,
            })
        }
    });
    view! {
        <section class="panel">
            <h1>"Permissions"</h1>
            <Transition fallback=|| view! { <p class="muted">"Loading the catalogue…"</p> }>
                {move || catalogue.get().map(|answer| loaded(answer, |page| {
                    let rows = page.items.into_iter().map(|p| view! {
                                    <tr data-testid="permission-row">
                                        <td><code>{p.name}</code></td>
                                        <td>{p.description.unwrap_or_default()}</td>
                                        <td>{if p.builtin { "built-in (Keygate's own API)" } else { "custom" }}</td>
                                    </tr>
                                }.into_any()).collect();
                    view! {
                        <DataTable testid="permissions-table" headers=vec!["Permission", "Description", "Kind"] rows
                            empty=("The catalogue is empty.", "permissions-empty")/>
                    }
                }))}
            </Transition>
            <DefinePermission on_defined=refresh/>
        </section>
        <section class="panel">
            <h1>"Grants"</h1>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || choices.get().map(|answer| loaded(answer, |c| view! { <Grants choices=c/> }))}
            </Transition>
        </section>
    }
}

/// `(id, label)` of every principal a grant can name (SPEC §7): the members, the user groups
/// (`(id, name)`) and the keys, labelled by kind so a key is not mistaken for its owner.
pub fn principals(
    members: &[UserView],
    groups: &[(String, String)],
    keys: &[KeyView],
) -> Vec<(String, String)> {
    let members = members.iter().map(|m| (m.id.clone(), member_label(m)));
    let groups = groups
        .iter()
        .map(|(id, name)| (id.clone(), format!("group {name}")));
    let keys = keys
        .iter()
        .map(|k| (k.id.clone(), format!("key {} of {}", k.name, k.owner.email)));
    members.chain(groups).chain(keys).collect()
}

/// Adds a custom permission to the catalogue.
#[component]
fn DefinePermission(on_defined: Callback<()>) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let about = RwSignal::new(String::new());
    let define = Call::new(move |request: &PermissionRequest| {
        let request = request.clone();
        async move {
            api::define_permission(request).await?;
            name.set(String::new());
            about.set(String::new());
            on_defined.run(());
            Ok::<(), ApiError>(())
        }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        define.dispatch(PermissionRequest {
            name: name.get_untracked(),
            description: Some(about.get_untracked()).filter(|d| !d.trim().is_empty()),
        });
    };
    view! {
        <form class="inline-form" on:submit=submit data-testid="define-permission">
            <label>"New permission (like datasets.read)"
                <input required data-testid="permission-name" bind:value=name/>
            </label>
            <label>"Description" <input data-testid="permission-description" bind:value=about/></label>
            <BusyButton submit=true pending=define.pending() label="Add" busy="Adding…" testid="permission-submit"/>
            <ActionError action=define/>
        </form>
    }
}

/// The grants, filtered, with a form to add one and a button to remove each.
#[component]
fn Grants(choices: Choices) -> impl IntoView {
    let namespace = RwSignal::new(String::new());
    let principal = RwSignal::new(String::new());
    let changed = RwSignal::new(0u32);
    let grants = Load::new(move || {
        changed.get();
        let query = GrantQuery {
            principal: Some(principal.get()).filter(|p| !p.is_empty()),
            namespace: Some(namespace.get()).filter(|n| !n.is_empty()),
            limit: Some(model::service::MAX_LIMIT),
            cursor: None,
        };
        async move { api::grants(&query).await }
    });
    let remove = Call::new(move |id: &String| {
        let id = id.clone();
        async move {
            api::delete_grant(&id).await?;
            changed.update(|n| *n += 1);
            Ok::<(), ApiError>(())
        }
    });
    let options = |items: &[(String, String)]| {
        items
            .iter()
            .map(|(id, label)| view! { <option value=id.clone()>{format!("{label} ({id})")}</option> })
            .collect_view()
    };
    let (ns_options, who_options) = (options(&choices.namespaces), options(&choices.principals));
    let labels = choices.clone();
    view! {
        <div class="filters">
            <label>"Namespace"
                <select data-testid="grants-namespace" on:change=move |ev| namespace.set(event_target_value(&ev))>
                    <option value="">"Any"</option>
                    {ns_options}
                </select>
            </label>
            <label>"Principal"
                <select data-testid="grants-principal" on:change=move |ev| principal.set(event_target_value(&ev))>
                    <option value="">"Any"</option>
                    {who_options}
                </select>
            </label>
        </div>
        <ActionError action=remove/>
        <Transition fallback=|| view! { <p class="muted">"Loading grants…"</p> }>
            {move || grants.get().map(|answer| loaded(answer, |page| view! {
                <GrantTable grants=page.items labels=labels.clone() on_remove=Callback::new(move |id| { remove.dispatch(id); })/>
            }))}
        </Transition>
        <GrantForm choices on_granted=Callback::new(move |()| changed.update(|n| *n += 1))/>
    }
}

/// The label of `id` among `choices`, the id itself when it is not one of them (a key since
/// revoked, a member since removed).
pub fn label_of(choices: &[(String, String)], id: &str) -> String {
    choices
        .iter()
        .find(|(known, _)| known == id)
        .map(|(_, label)| label.clone())
        .unwrap_or_else(|| id.to_owned())
}

#[component]
fn GrantTable(
    grants: Vec<GrantView>,
    /// Names for the principals and namespaces the grants name.
    labels: Choices,
    on_remove: Callback<String>,
) -> impl IntoView {
    let rows = grants
        .into_iter()
        .map(|g| {
            let id = g.id.clone();
            let who = label_of(&labels.principals, &g.principal);
            let wher = label_of(&labels.namespaces, &g.namespace);
            view! {
                <tr data-testid="grant-row">
                    <td title=g.principal.clone() data-testid="grant-principal">{who.clone()}</td>
                    <td title=g.namespace.clone()>{wher}</td>
                    <td><code>{g.permission.clone()}</code></td>
                    <td>{g.resources.map(|r| r.join(", ")).unwrap_or_else(|| "all".into())}</td>
                    <td><button class="small secondary" aria-label=format!("Remove grant of {} to {who}", g.permission)
                        on:click=move |_| on_remove.run(id.clone())>"Remove"</button></td>
                </tr>
            }
            .into_any()
        })
        .collect();
    view! {
        <DataTable testid="grants-table" headers=vec!["Principal", "Namespace", "Permission", "Resources", ""] rows
            empty=("No grants match.", "grants-empty")/>
    }
}

/// Grants a permission.
#[component]
fn GrantForm(choices: Choices, on_granted: Callback<()>) -> impl IntoView {
    let first = |items: &[(String, String)]| items.first().map(|i| i.0.clone()).unwrap_or_default();
    let principal = RwSignal::new(first(&choices.principals));
    let namespace = RwSignal::new(first(&choices.namespaces));
    let permission = RwSignal::new(choices.permissions.first().cloned().unwrap_or_default());
    let resources = RwSignal::new(String::new());
    let grant = Call::new(move |request: &GrantRequest| {
        let request = request.clone();
        async move {
            api::create_grant(request).await?;
            on_granted.run(());
            Ok::<(), ApiError>(())
        }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let listed: Vec<String> = resources
            .get_untracked()
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        grant.dispatch(GrantRequest {
            principal: principal.get_untracked(),
            namespace: namespace.get_untracked(),
            permission: permission.get_untracked(),
            resources: (!listed.is_empty()).then_some(listed),
        });
    };
    let select = move |items: Vec<(String, String)>,
                       target: RwSignal<String>,
                       testid: &'static str| {
        view! {
            <select data-testid=testid on:change=move |ev| target.set(event_target_value(&ev))>
                {items.into_iter().map(|(id, label)| view! { <option value=id.clone()>{format!("{label} ({id})")}</option> }).collect_view()}
            </select>
        }
    };
    let permissions: Vec<(String, String)> = choices
        .permissions
        .iter()
        .map(|p| (p.clone(), p.clone()))
        .collect();
    view! {
        <form class="inline-form" on:submit=submit data-testid="grant-form">
            <h2>"Grant a permission"</h2>
            <label>"To" {select(choices.principals.clone(), principal, "grant-principal")}</label>
            <label>"In" {select(choices.namespaces.clone(), namespace, "grant-namespace")}</label>
            <label>"Permission" {select(permissions, permission, "grant-permission")}</label>
            <label>"Only these resources (ids, comma-separated; empty = every resource)"
                <input data-testid="grant-resources" bind:value=resources/>
            </label>
            <BusyButton submit=true pending=grant.pending() label="Grant" busy="Granting…" testid="grant-submit"/>
            <ActionError action=grant/>
        </form>
    }
}
