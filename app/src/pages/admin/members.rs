//! Members (admins): invite by email (→ a copyable one-time invitation link), see and withdraw
//! pending invitations, give or take the `developer` and `admin` roles, remove a member.

use leptos::prelude::*;
use model::api::{InvitationView, InviteRequest, PageQuery, RolesPatch, UserView};
use model::domain::Role;

use crate::api::{self, ApiError};
use crate::components::confirm::ConfirmCall;
use crate::components::copy::CopyButton;
use crate::components::error_note::{ActionError, BusyButton, loaded};
use crate::components::key_cells::When;
use crate::components::table::DataTable;
use crate::erased::{Call, Load};
use crate::route::invitation_link;

/// The roles an admin hands out, with what each allows.
const ROLES: [(Role, &str, &str); 2] = [
    (Role::Developer, "developer", "may generate keys"),
    (Role::Admin, "admin", "manages the whole organization"),
];

/// The members page.
#[component]
pub fn MembersPage() -> impl IntoView {
    let changed = RwSignal::new(0u32);
    let members = Load::new(move || {
        changed.get();
        async move {
            api::members(&PageQuery {
                limit: Some(model::service::MAX_LIMIT),
                cursor: None,
            })
            .await
        }
    });
    let removing = RwSignal::new(None::<UserView>);
    let refresh = Callback::new(move |()| changed.update(|n| *n += 1));
    view! {
        <section class="panel">
            <h1>"Members"</h1>
            <InviteForm on_invited=refresh/>
            <PendingInvitations changed/>
            {move || removing.get().map(|m| view! {
                <RemoveMemberDialog member=m
                    on_done=Callback::new(move |()| { removing.set(None); refresh.run(()); })
                    on_cancel=Callback::new(move |()| removing.set(None))/>
            })}
            <Transition fallback=|| view! { <p class="muted">"Loading members…"</p> }>
                {move || members.get().map(|answer| loaded(answer, |page| {
                    let rows = page.items.into_iter().map(|m| {
                                    let who = m.clone();
                                    view! {
                                        <tr data-testid="member-row" data-member-id=m.id.clone()>
                                            <td>{m.name.clone()}</td>
                                            <td>{m.email.clone()}</td>
                                            <td><RolesEditor member=m.clone() on_changed=refresh/></td>
                                            <td><button class="small secondary" data-testid="member-remove"
                                                aria-label=format!("Remove {}", m.email)
                                                on:click=move |_| removing.set(Some(who.clone()))>"Remove"</button></td>
                                        </tr>
                                    }.into_any()
                                }).collect();
                    view! {
                        <DataTable testid="members-table" headers=vec!["Name", "Email", "Roles", ""] rows
                            empty=("No members.", "members-empty")/>
                    }
                }))}
            </Transition>
        </section>
    }
}

/// The pending invitations, each with a *Revoke* button (confirmed), refreshed whenever
/// `changed` moves.
#[component]
fn PendingInvitations(
    /// Bumped after an invitation is made or a member changes (removing an admin ends its
    /// invitations).
    changed: RwSignal<u32>,
) -> impl IntoView {
    let invitations = Load::new(move || {
        changed.get();
        api::invitations()
    });
    let revoking = RwSignal::new(None::<InvitationView>);
    view! {
        <h2>"Pending invitations"</h2>
        {move || revoking.get().map(|invitation| {
            let id = invitation.id.clone();
            let call = move || {
                let id = id.clone();
                async move { api::revoke_invitation(&id).await }
            };
            view! {
                <ConfirmCall title=format!("Revoke the invitation of {}?", invitation.email)
                    testid="revoke-invitation-dialog" confirm_label="Revoke" call
                    on_done=Callback::new(move |()| { revoking.set(None); changed.update(|n| *n += 1); })
                    on_close=Callback::new(move |()| revoking.set(None))>
                    <p>"Its link stops working at once. You can invite the same email again later."</p>
                </ConfirmCall>
            }
        })}
        <Transition fallback=|| view! { <p class="muted">"Loading invitations…"</p> }>
            {move || invitations.get().map(|answer| loaded(answer, |page| {
                let now = crate::form::now();
                let rows = page.items.into_iter().map(|i| {
                    let who = i.clone();
                    let roles = i.roles.iter().map(|r| match r {
                        Role::Admin => "admin",
                        Role::Developer => "developer",
                    }).collect::<Vec<_>>().join(", ");
                    view! {
                        <tr data-testid="invitation-row" data-invitation-id=i.id.clone()
                            data-invitation-email=i.email.clone()>
                            <td>{i.email.clone()}</td>
                            <td>{if roles.is_empty() { "none".to_owned() } else { roles }}</td>
                            <td><When at=i.created_at now/></td>
                            <td><When at=Some(i.expires_at) now/></td>
                            <td><button class="small secondary" data-testid="invitation-revoke"
                                aria-label=format!("Revoke the invitation of {}", i.email)
                                on:click=move |_| revoking.set(Some(who.clone()))>"Revoke"</button></td>
                        </tr>
                    }.into_any()
                }).collect();
                view! {
                    <DataTable testid="invitations-table"
                        headers=vec!["Email", "Roles", "Invited (UTC)", "Expires", ""] rows
                        empty=("No pending invitations.", "invitations-empty")/>
                }
            }))}
        </Transition>
    }
}

/// Invites someone and shows the link to send them.
#[component]
fn InviteForm(
    /// Called once an invitation is made.
    on_invited: Callback<()>,
) -> impl IntoView {
    let email = RwSignal::new(String::new());
    let developer = RwSignal::new(true);
    let admin = RwSignal::new(false);
    let invite = Call::new(move |request: &InviteRequest| {
        let request = request.clone();
        async move {
            let answer = api::invite(request).await?;
            on_invited.run(());
            Ok::<String, ApiError>(invitation_link(&answer.invitation_token))
        }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let roles = [(developer, Role::Developer), (admin, Role::Admin)]
            .into_iter()
            .filter_map(|(on, role)| on.get_untracked().then_some(role))
            .collect();
        invite.dispatch(InviteRequest {
            email: email.get_untracked(),
            roles,
        });
    };
    view! {
        <form class="inline-form" on:submit=submit data-testid="invite-form">
            <h2>"Invite someone"</h2>
            <label>"Email"
                <input type="email" required data-testid="invite-email" bind:value=email/>
            </label>
            <label class="check"><input type="checkbox" data-testid="invite-developer" bind:checked=developer/>"developer (may generate keys)"</label>
            <label class="check"><input type="checkbox" data-testid="invite-admin" bind:checked=admin/>"admin"</label>
            <BusyButton submit=true pending=invite.pending() label="Invite" busy="Inviting…" testid="invite-submit"/>
            <ActionError action=invite/>
            {move || invite.ok().map(|link| view! {
                <div class="notice" role="status">
                    <p>"Send this one-time link to the person; it lets them choose a name and password."</p>
                    <code class="secret" data-testid="invitation-link">{link.clone()}</code>
                    <CopyButton text=link testid="invitation-copy"/>
                </div>
            })}
        </form>
    }
}

/// A member's roles as checkboxes; each change is saved at once.
#[component]
fn RolesEditor(
    /// The member.
    member: UserView,
    /// Called after a change is saved.
    on_changed: Callback<()>,
) -> impl IntoView {
    let roles = RwSignal::new(member.roles.clone());
    let id = member.id.clone();
    let save = Call::new(move |next: &Vec<Role>| {
        let (id, next) = (id.clone(), next.clone());
        async move {
            let answer = api::set_roles(&id, RolesPatch { roles: next }).await?;
            roles.set(answer.roles);
            on_changed.run(());
            Ok::<(), ApiError>(())
        }
    });
    view! {
        <fieldset class="roles" disabled=move || save.pending().get() aria-busy=move || save.pending().get().to_string()>
            <legend class="visually-hidden">{format!("Roles of {}", member.email)}</legend>
            {ROLES.into_iter().map(|(role, name, what)| view! {
                <label class="check" title=what>
                    <input type="checkbox" data-testid=format!("role-{name}")
                        prop:checked=move || roles.with(|r| r.contains(&role))
                        on:change=move |ev| {
                            let on = event_target_checked(&ev);
                            let mut next = roles.get_untracked();
                            next.retain(|r| *r != role);
                            if on { next.push(role); }
                            save.dispatch(next);
                        }/>
                    {name}
                </label>
            }).collect_view()}
            <ActionError action=save/>
        </fieldset>
    }
}

/// Removes a member after confirmation.
#[component]
fn RemoveMemberDialog(
    /// The member.
    member: UserView,
    /// Called once removed.
    on_done: Callback<()>,
    /// Closes without removing.
    on_cancel: Callback<()>,
) -> impl IntoView {
    let id = member.id.clone();
    let call = move || {
        let id = id.clone();
        async move { api::remove_member(&id).await }
    };
    view! {
        <ConfirmCall title=format!("Remove {}?", member.email) testid="remove-member-dialog" confirm_label="Remove"
            call on_done on_close=on_cancel>
            <p>"They can no longer sign in, and every key they created stops working at once."</p>
        </ConfirmCall>
    }
}
