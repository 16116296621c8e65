//! User-group membership (admins): put a member of the organization into a group, or take one
//! out after a confirmation. The API lists no group's members, so the form cannot show who is
//! in a group; it remembers who it added during this visit and leaves them out of the picker.

use std::collections::BTreeSet;

use leptos::prelude::*;
use model::api::{NamespaceView, UserView};

use crate::api::{self, ApiError};
use crate::components::confirm::ConfirmCall;
use crate::components::error_note::{ActionError, BusyButton};
use crate::erased::Call;

/// How a picker names a member: name and email.
pub fn member_label(member: &UserView) -> String {
    format!("{} <{}>", member.name, member.email)
}

/// `(id, label)` of the members the add picker offers for `group`: every member of the
/// organization but those `known` (as `(group, user)`) to be in it already.
pub fn member_choices(
    members: &[UserView],
    group: &str,
    known: &BTreeSet<(String, String)>,
) -> Vec<(String, String)> {
    members
        .iter()
        .filter(|m| !known.contains(&(group.to_owned(), m.id.clone())))
        .map(|m| (m.id.clone(), member_label(m)))
        .collect()
}

/// The value of a picker: `picked` while it is still offered, else the first choice.
fn picked_or_first(picked: &str, choices: &[(String, String)]) -> Option<String> {
    choices
        .iter()
        .find(|(id, _)| id == picked)
        .or_else(|| choices.first())
        .map(|(id, _)| id.clone())
}

/// Adds members to, and removes them from, the user groups `groups`.
#[component]
pub fn GroupMembership(
    /// The user groups.
    groups: Vec<NamespaceView>,
    /// The organization's members.
    members: Vec<UserView>,
) -> impl IntoView {
    let group = RwSignal::new(groups.first().map(|g| g.id.clone()).unwrap_or_default());
    let known = RwSignal::new(BTreeSet::<(String, String)>::new());
    let to_add = RwSignal::new(String::new());
    let to_remove = RwSignal::new(members.first().map(|m| m.id.clone()).unwrap_or_default());
    let done = RwSignal::new(None::<String>);
    let removing = RwSignal::new(None::<(NamespaceView, UserView)>);
    let members = StoredValue::new(members);
    let groups = StoredValue::new(groups);
    let group_of = move |id: &str| groups.with_value(|gs| gs.iter().find(|g| g.id == id).cloned());
    let member_of =
        move |id: &str| members.with_value(|ms| ms.iter().find(|m| m.id == id).cloned());
    let choices = Memo::new(move |_| {
        let g = group.get();
        known.with(|k| members.with_value(|ms| member_choices(ms, &g, k)))
    });
    let add = Call::new(move |(g, u): &(String, String)| {
        let (g, u) = (g.clone(), u.clone());
        async move {
            api::add_group_member(&g, u.clone()).await?;
            let (who, into) = (member_of(&u), group_of(&g));
            done.set(Some(format!(
                "Added {} to {}.",
                who.map(|m| m.name).unwrap_or_else(|| u.clone()),
                into.map(|n| n.name).unwrap_or_else(|| g.clone())
            )));
            known.update(|k| {
                k.insert((g, u));
            });
            Ok::<(), ApiError>(())
        }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let user = choices.with_untracked(|c| picked_or_first(&to_add.get_untracked(), c));
        if let Some(user) = user {
            done.set(None);
            add.dispatch((group.get_untracked(), user));
        }
    };
    let ask_remove = Callback::new(move |()| {
        let g = group_of(&group.get_untracked());
        let m = member_of(&to_remove.get_untracked());
        if let (Some(g), Some(m)) = (g, m) {
            done.set(None);
            removing.set(Some((g, m)));
        }
    });
    let group_options = groups.with_value(|gs| {
        gs.iter()
            .map(|g| view! { <option value=g.id.clone()>{format!("{} ({})", g.name, g.id)}</option> })
            .collect_view()
    });
    let remove_options = members.with_value(|ms| {
        ms.iter()
            .map(|m| view! { <option value=m.id.clone()>{member_label(m)}</option> })
            .collect_view()
    });
    view! {
        <form class="inline-form" on:submit=submit data-testid="group-membership">
            <h2>"Group members"</h2>
            <p class="hint">"The API does not list a group's members: adding someone already in the group, or removing someone who is not, changes nothing."</p>
            <label>"Group"
                <select data-testid="group-membership-group" on:change=move |ev| group.set(event_target_value(&ev))>
                    {group_options}
                </select>
            </label>
            <label>"Add"
                <select data-testid="group-add-member" on:change=move |ev| to_add.set(event_target_value(&ev))>
                    {move || {
                        let offered = choices.get();
                        let current = picked_or_first(&to_add.get(), &offered);
                        offered.into_iter().map(|(id, label)| {
                            let selected = current.as_deref() == Some(id.as_str());
                            view! { <option value=id selected=selected>{label}</option> }
                        }).collect_view()
                    }}
                </select>
            </label>
            <BusyButton submit=true pending=add.pending() label="Add to group" busy="Adding…" testid="group-add-submit"/>
            <label>"Remove"
                <select data-testid="group-remove-member" on:change=move |ev| to_remove.set(event_target_value(&ev))>
                    {remove_options}
                </select>
            </label>
            <button type="button" class="secondary" data-testid="group-remove-open"
                on:click=move |_| ask_remove.run(())>"Remove from group…"</button>
            {move || done.get().map(|text| view! { <p class="notice" role="status" data-testid="group-membership-done">{text}</p> })}
            <ActionError action=add/>
        </form>
        {move || removing.get().map(|(g, m)| {
            let (gid, uid) = (g.id.clone(), m.id.clone());
            let call = move || {
                let (gid, uid) = (gid.clone(), uid.clone());
                async move { api::remove_group_member(&gid, &uid).await }
            };
            let (gid, uid, text) = (g.id.clone(), m.id.clone(), format!("Removed {} from {}.", m.name, g.name));
            let on_done = Callback::new(move |()| {
                known.update(|k| { k.remove(&(gid.clone(), uid.clone())); });
                done.set(Some(text.clone()));
                removing.set(None);
            });
            view! {
                <ConfirmCall title=format!("Remove {} from {}?", m.name, g.name) testid="remove-group-member-dialog"
                    confirm_label="Remove" call on_done on_close=Callback::new(move |()| removing.set(None))>
                    <p>{m.email.clone()}" loses what the group's grants give, in every namespace."</p>
                </ConfirmCall>
            }
        })}
    }
}
