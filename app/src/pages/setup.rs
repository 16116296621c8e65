//! The first admin's set-up link: a host started without `KEYGATE_ADMIN_PASSWORD` prints a
//! one-time link to this page, where the first person chooses the password, and is signed in.

use leptos::prelude::*;
use model::api::{MeResponse, SetupRequest};

use crate::api::{self, ApiError};
use crate::components::error_note::{ActionError, BusyButton};
use crate::erased::Call;

/// The set-up page, opened from the link the host printed.
#[component]
pub fn SetupPage(
    /// The one-time token from the link.
    token: String,
    /// Called with the admin, signed in.
    on_signed_in: Callback<MeResponse>,
) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let setup = Call::new(move |request: &SetupRequest| {
        let (token, request) = (token.clone(), request.clone());
        async move {
            let password = request.password.clone();
            let admin = api::setup(&token, request).await?;
            api::login(admin.user.email, password).await?;
            on_signed_in.run(api::me().await?);
            Ok::<(), ApiError>(())
        }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let name = name.get_untracked();
        setup.dispatch(SetupRequest {
            password: password.get_untracked(),
            name: (!name.trim().is_empty()).then_some(name),
        });
    };
    view! {
        <section class="panel narrow">
            <h1>"Set up Keygate"</h1>
            <p>"You are the first admin. Choose a password; this link works once, for an hour."</p>
            <form on:submit=submit data-testid="setup-form">
                <label>"Your name (optional)"
                    <input autocomplete="name" data-testid="setup-name" bind:value=name/>
                </label>
                <label>"Password (at least 8 characters)"
                    <input type="password" required minlength="8" autocomplete="new-password"
                        data-testid="setup-password" bind:value=password/>
                </label>
                <BusyButton submit=true pending=setup.pending() label="Save and sign in" busy="Saving…" testid="setup-submit"/>
            </form>
            <ActionError action=setup/>
        </section>
    }
}
