//! Sign in.

use leptos::prelude::*;
use model::api::MeResponse;

use crate::api::{self, ApiError};
use crate::components::error_note::{ActionError, BusyButton};
use crate::erased::Call;

/// The sign-in form.
#[component]
pub fn LoginPage(
    /// A message to show above the form (e.g. "your session expired").
    notice: RwSignal<Option<String>>,
    /// Called with the signed-in person.
    on_signed_in: Callback<MeResponse>,
) -> impl IntoView {
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let sign_in = Call::new(move |(email, password): &(String, String)| {
        let (email, password) = (email.clone(), password.clone());
        async move {
            api::login(email, password).await?;
            let me = api::me().await?;
            on_signed_in.run(me);
            Ok::<(), ApiError>(())
        }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        sign_in.dispatch((email.get_untracked(), password.get_untracked()));
    };
    view! {
        <section class="panel narrow">
            <h1>"Sign in"</h1>
            {move || notice.get().map(|n| view! { <p class="notice" role="status" data-testid="login-notice">{n}</p> })}
            <form on:submit=submit>
                <label>"Email"
                    <input type="email" required autocomplete="username" data-testid="login-email"
                        bind:value=email/>
                </label>
                <label>"Password"
                    <input type="password" required autocomplete="current-password" data-testid="login-password"
                        bind:value=password/>
                </label>
                <BusyButton submit=true pending=sign_in.pending() label="Sign in" busy="Signing in…" testid="login-submit"/>
            </form>
            <ActionError action=sign_in/>
        </section>
    }
}
