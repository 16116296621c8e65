//! A key's plaintext, shown once (after *Generate* or *Roll*) with a copy button and a warning.
//! Closing the dialog forgets it: the owner drops the only copy.

use leptos::prelude::*;

use crate::components::copy::CopyButton;
use crate::components::dialog::Dialog;

/// The plaintext of a key just created or rolled.
#[component]
pub fn NewKeyPanel(
    /// The plaintext key; it exists only in the owner's signal and this view.
    plaintext: String,
    /// Called when the person closes the dialog; the owner drops the plaintext.
    on_close: Callback<()>,
) -> impl IntoView {
    view! {
        <Dialog title="Your new API key" testid="new-key-panel" on_close>
            <p class="warning" data-testid="new-key-warning">
                "Copy this key now. It will not be shown again: Keygate keeps only a hash of it."
            </p>
            <code class="secret" data-testid="new-key-plaintext">{plaintext.clone()}</code>
            <div class="actions">
                <CopyButton text=plaintext testid="new-key-copy"/>
                <button class="secondary" data-testid="new-key-close" on:click=move |_| on_close.run(())>
                    "I have copied it"
                </button>
            </div>
        </Dialog>
    }
}
