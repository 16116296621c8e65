//! Keygate's console: a Leptos 0.8 client-side app (Rust → wasm).
//!
//! Views are thin: they read signals and call plain types ([`form`], [`filter`], [`route`],
//! the chart's buckets) and the typed client ([`api`]). Secrets live only in signals: a new
//! key's plaintext is dropped when its dialog closes, and nothing is written to browser storage.

pub mod api;
pub mod components;
pub mod erased;
pub mod filter;
pub mod form;
pub mod names;
pub mod pages;
pub mod route;
pub mod snippet;

use leptos::prelude::*;
use model::api::MeResponse;
use model::domain::Role;

use crate::erased::Load;
use crate::pages::admin::Admin;
use crate::pages::invitation::InvitationPage;
use crate::pages::keys::KeysPage;
use crate::pages::login::LoginPage;
use crate::pages::setup::SetupPage;
use crate::route::{AdminPage, Route};

/// What the sign-in page says when a call found the session gone.
pub const SESSION_ENDED: &str = "Your session has ended. Sign in again to continue.";

/// The whole console: sign-in (or accepting an invitation) until a session exists, then the
/// signed-in pages.
#[component]
pub fn App() -> impl IntoView {
    let me: RwSignal<Option<MeResponse>> = RwSignal::new(None);
    let notice: RwSignal<Option<String>> = RwSignal::new(None);
    let route = RwSignal::new(Route::current());
    let _listener =
        window_event_listener(leptos::ev::hashchange, move |_| route.set(Route::current()));
    api::on_session_lost(move || {
        if me.get_untracked().is_some() {
            notice.set(Some(SESSION_ENDED.into()));
            me.set(None);
        }
    });
    // A console reloaded on a live cookie resumes its session.
    let resumed = Load::new(move || async move {
        if let Ok(answer) = api::me().await {
            land(&answer);
            me.set(Some(answer));
        }
    });
    let on_signed_in = Callback::new(move |answer: MeResponse| {
        notice.set(None);
        if matches!(
            route.get_untracked(),
            Route::Invitation(_) | Route::Setup(_)
        ) {
            Route::MyKeys.go();
        } else {
            land(&answer);
        }
        me.set(Some(answer));
    });
    let sign_out = move |_| {
        leptos::task::spawn_local(async move {
            let _ = api::logout().await;
            notice.set(None);
            me.set(None);
        });
    };
    view! {
        <a class="skip" href="#content">"Skip to content"</a>
        <header class="topbar">
            <span class="brand">"Keygate"</span>
            {move || me.get().map(|m| view! {
                <span class="who" data-testid="signed-in-as">{m.user.email.clone()}</span>
                <button class="link" data-testid="sign-out" on:click=sign_out>"Sign out"</button>
            })}
        </header>
        {move || me.get().map(|m| view! { <Nav me=m route/> })}
        <main class="shell" id="content">
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || resumed.get().map(|_| match (me.get(), route.get()) {
                    (None, Route::Invitation(token)) => view! { <InvitationPage token on_signed_in/> }.into_any(),
                    (None, Route::Setup(token)) => view! { <SetupPage token on_signed_in/> }.into_any(),
                    (None, _) => view! { <LoginPage notice on_signed_in/> }.into_any(),
                    (Some(m), Route::Admin(page)) if m.roles.contains(&Role::Admin) => {
                        view! { <Admin page me=m/> }.into_any()
                    }
                    (Some(m), _) => view! { <KeysPage me=m/> }.into_any(),
                })}
            </Suspense>
        </main>
    }
}

/// Where a session starts when the address names no page: an admin's landing page is the
/// overview; everyone else's is *My API keys*.
fn land(me: &MeResponse) {
    let named = web_sys::window()
        .and_then(|w| w.location().hash().ok())
        .is_some_and(|h| !h.trim_start_matches('#').is_empty());
    if !named && me.roles.contains(&Role::Admin) {
        Route::Admin(AdminPage::Overview).go();
    }
}

/// The signed-in navigation; the management console's links only for admins.
#[component]
fn Nav(me: MeResponse, route: RwSignal<Route>) -> impl IntoView {
    let mut links = vec![(Route::MyKeys, "My API keys", "nav-my-keys")];
    if me.roles.contains(&Role::Admin) {
        links.extend([
            (
                Route::Admin(AdminPage::Overview),
                "Overview",
                "nav-overview",
            ),
            (Route::Admin(AdminPage::Keys), "All keys", "nav-admin-keys"),
            (
                Route::Admin(AdminPage::Settings),
                "Settings",
                "nav-settings",
            ),
            (
                Route::Admin(AdminPage::Events(None)),
                "Events",
                "nav-events",
            ),
            (Route::Admin(AdminPage::Members), "Members", "nav-members"),
            (
                Route::Admin(AdminPage::Namespaces),
                "Namespaces",
                "nav-namespaces",
            ),
            (
                Route::Admin(AdminPage::Permissions),
                "Permissions",
                "nav-permissions",
            ),
            (
                Route::Admin(AdminPage::Webhooks),
                "Webhooks",
                "nav-webhooks",
            ),
        ]);
    }
    view! {
        <nav class="nav" aria-label="Console" data-testid="nav">
            {links.into_iter().map(|(to, label, testid)| {
                let href = to.href();
                let current = move || route.with(|r| same_page(r, &to)).then_some("page");
                view! { <a href=href data-testid=testid aria-current=current>{label}</a> }
            }).collect_view()}
        </nav>
    }
}

/// Whether `shown` is the page a link to `link` leads to (an events page for a key counts as
/// the events page).
fn same_page(shown: &Route, link: &Route) -> bool {
    match (shown, link) {
        (Route::Admin(AdminPage::Events(_)), Route::Admin(AdminPage::Events(_))) => true,
        (Route::Invitation(_) | Route::Setup(_), Route::MyKeys) => true,
        _ => shown == link,
    }
}
