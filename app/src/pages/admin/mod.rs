//! The management console (admins only; the navigation hides it from everyone else and the
//! hosts refuse its calls to them anyway).

pub mod events;
pub mod group_members;
pub mod keys;
pub mod members;
pub mod namespaces;
pub mod overview;
pub mod permissions;
pub mod settings;
pub mod webhooks;

use leptos::prelude::*;
use model::api::MeResponse;

use crate::route::AdminPage;

/// The management console page of `page`.
#[component]
pub fn Admin(
    /// Which page.
    page: AdminPage,
    /// Who is signed in.
    me: MeResponse,
) -> impl IntoView {
    let organization = me.organization;
    match page {
        AdminPage::Overview => view! { <overview::OverviewPage/> }.into_any(),
        AdminPage::Keys => view! { <keys::AdminKeysPage/> }.into_any(),
        AdminPage::Settings => view! { <settings::SettingsPage/> }.into_any(),
        AdminPage::Events(key) => view! { <events::EventsPage key organization/> }.into_any(),
        AdminPage::Members => view! { <members::MembersPage/> }.into_any(),
        AdminPage::Namespaces => view! { <namespaces::NamespacesPage organization/> }.into_any(),
        AdminPage::Permissions => view! { <permissions::PermissionsPage organization/> }.into_any(),
        AdminPage::Webhooks => view! { <webhooks::WebhooksPage/> }.into_any(),
    }
}
