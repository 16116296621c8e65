//! Accepting an invitation: the invited person chooses a name and password, and is signed in.

use leptos::prelude::*;
use model::api::{AcceptRequest, MeResponse};

use crate::api::{self, ApiError};
use crate::components::error_note::{ActionError, BusyButton};
use crate::erased::Call;

/// The invitation page, opened from the link an admin sent.
#[component]
pub fn InvitationPage(
    /// The one-time token from the link.
    token: String,
    /// Called with the new member, signed in.
    on_signed_in: Callback<MeResponse>,
) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let accept = Call::new(move |request: &AcceptRequest| {
        let (token, request) = (token.clone(), request.clone());
        async move {
            let password = request.password.clone();
            let joined = api::accept_invitation(&token, request).await?;
            api::login(joined.user.email, password).await?;
            on_signed_in.run(api::me().await?);
            Ok::<(), ApiError>(())
        }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        accept.dispatch(AcceptRequest {
            name: name.get_untracked(),
            password: password.get_untracked(),
        });
    };
    view! {
        <section class="panel narrow">
            <h1>"Join your organization"</h1>
            <p>"You were invited to Keygate. Choose the name others will see and a password."</p>
            <form on:submit=submit data-testid="invitation-form">
                <label>"Your name"
                    <input required autocomplete="name" data-testid="invitation-name" bind:value=name/>
                </label>
                <label>"Password"
                    <input type="password" required autocomplete="new-password" data-testid="invitation-password"
                        bind:value=password/>
                </label>
                <BusyButton submit=true pending=accept.pending() label="Join" busy="Joining…" testid="invitation-submit"/>
            </form>
            <ActionError action=accept/>
            <p><a href="#/">"I already have an account: sign in"</a></p>
        </section>
    }
}
