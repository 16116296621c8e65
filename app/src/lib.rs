//! Keygate's console: a Leptos 0.8 client-side app (Rust → wasm).
//!
//! Views are thin: they read signals and call plain types ([`form::NewKeyForm`]) and the typed
//! client ([`api`]). Secrets live only in signals: the new key's plaintext is dropped when its
//! panel closes, and nothing is written to browser storage.

pub mod api;
pub mod components;
pub mod form;
pub mod pages;

use leptos::prelude::*;
use model::api::MeResponse;

use crate::pages::keys::KeysPage;
use crate::pages::login::LoginPage;

/// The whole console: sign-in until a session exists, then the signed-in pages.
#[component]
pub fn App() -> impl IntoView {
    let me: RwSignal<Option<MeResponse>> = RwSignal::new(None);
    let notice: RwSignal<Option<String>> = RwSignal::new(None);
    // A console reloaded on a live cookie resumes its session.
    let resumed = LocalResource::new(move || async move {
        if let Ok(answer) = api::me().await {
            me.set(Some(answer));
        }
    });
    let on_signed_in = Callback::new(move |answer: MeResponse| {
        notice.set(None);
        me.set(Some(answer));
    });
    let on_signed_out = Callback::new(move |message: Option<String>| {
        notice.set(message);
        me.set(None);
    });
    view! {
        <main class="shell">
            <header class="topbar">
                <span class="brand">"Keygate"</span>
                {move || me.get().map(|m| view! {
                    <span class="who" data-testid="signed-in-as">{m.user.email.clone()}</span>
                    <button class="link" data-testid="sign-out" on:click=move |_| {
                        leptos::task::spawn_local(async move {
                            let _ = api::logout().await;
                            on_signed_out.run(None);
                        });
                    }>"Sign out"</button>
                })}
            </header>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || resumed.get().map(|_| match me.get() {
                    Some(m) => view! { <KeysPage me=m on_session_lost=on_signed_out/> }.into_any(),
                    None => view! { <LoginPage notice=notice on_signed_in=on_signed_in/> }.into_any(),
                })}
            </Suspense>
        </main>
    }
}
