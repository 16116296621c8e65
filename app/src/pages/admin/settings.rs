//! The organization's settings (SPEC §5), each with what a change affects.

use leptos::prelude::*;
use model::api::SettingsView;

use crate::api::{self, ApiError};
use crate::components::error_note::{ActionError, BusyButton, loaded};
use crate::erased::{Call, Load};
use crate::form::SettingsForm;

/// The settings page.
#[component]
pub fn SettingsPage() -> impl IntoView {
    let current = Load::new(move || async move { api::settings().await });
    view! {
        <section class="panel">
            <h1>"Settings"</h1>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || current.get().map(|answer| loaded(answer, |s| view! {
                    <SettingsEditor current=s/>
                }))}
            </Transition>
        </section>
    }
}

/// The form over the current settings.
#[component]
fn SettingsEditor(
    /// The settings as stored.
    current: SettingsView,
) -> impl IntoView {
    let stored = RwSignal::new(current.clone());
    let form = RwSignal::new(SettingsForm::from_settings(&current));
    let invalid = RwSignal::new(None::<String>);
    let done = RwSignal::new(false);
    let save = Call::new(move |patch: &model::api::SettingsPatch| {
        let patch = patch.clone();
        async move {
            let answer = api::update_settings(patch).await?;
            form.set(SettingsForm::from_settings(&answer));
            stored.set(answer);
            done.set(true);
            Ok::<(), ApiError>(())
        }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        done.set(false);
        match stored.with_untracked(|s| form.with_untracked(|f| f.to_patch(s))) {
            Ok(patch) => {
                invalid.set(None);
                save.dispatch(patch);
            }
            Err(m) => invalid.set(Some(m)),
        }
    };
    let text = move |get: fn(&SettingsForm) -> String, set: fn(&mut SettingsForm, String)| {
        (
            move || form.with(get),
            move |ev: leptos::ev::Event| form.update(|f| set(f, event_target_value(&ev))),
        )
    };
    let (expiry_value, expiry_input) =
        text(|f| f.max_expiry_days.clone(), |f, v| f.max_expiry_days = v);
    let (active_value, active_input) = text(
        |f| f.max_active_keys_per_user.clone(),
        |f, v| f.max_active_keys_per_user = v,
    );
    let (use_value, use_input) = text(
        |f| f.extensive_use_per_hour.clone(),
        |f, v| f.extensive_use_per_hour = v,
    );
    view! {
        <form on:submit=submit novalidate data-testid="settings-form">
            <label class="check">
                <input type="checkbox" data-testid="settings-enabled"
                    prop:checked=move || form.with(|f| f.api_keys_enabled)
                    on:change=move |ev| form.update(|f| f.api_keys_enabled = event_target_checked(&ev))/>
                "API keys enabled"
            </label>
            <p class="hint">"Switching off makes every key of the organization verify as DISABLED at once, \
                and nobody can generate keys; switching on restores them with their status unchanged."</p>
            <label>"Maximum key lifetime (days; empty = no maximum)"
                <input type="number" min="1" max="36500" inputmode="numeric" data-testid="settings-max-expiry"
                    prop:value=expiry_value on:input=expiry_input/>
            </label>
            <p class="hint">"Applies to keys created afterwards: they must then have an expiry within it. Existing keys keep theirs."</p>
            <label>"Maximum active keys per person"
                <input type="number" min="1" max="1000" inputmode="numeric" data-testid="settings-max-active"
                    prop:value=active_value on:input=active_input/>
            </label>
            <p class="hint">"Applies to new keys only: creation is refused when it would exceed it; nobody loses a key."</p>
            <label>"Extensive-use threshold (verifications per hour; empty = relative to each key's own rate)"
                <input type="number" min="1" inputmode="numeric" data-testid="settings-extensive"
                    prop:value=use_value on:input=use_input/>
            </label>
            <p class="hint">"Keys used more than this in the last hour are flagged “extensive use” in the key list, with an event."</p>
            {move || invalid.get().map(|m| view! { <p class="error" role="alert">{m}</p> })}
            <ActionError action=save/>
            {move || done.get().then(|| view! { <p class="ok" role="status" data-testid="settings-saved">"Saved."</p> })}
            <div class="actions">
                <BusyButton submit=true pending=save.pending() label="Save settings" busy="Saving…" testid="settings-save"/>
            </div>
        </form>
    }
}
