//! The new key, shown once with a copy button and a warning. Closing the panel forgets it.

use leptos::prelude::*;

/// The plaintext of a key just created.
#[component]
pub fn NewKeyPanel(
    /// The plaintext key; it exists only in this component's signal.
    plaintext: String,
    /// Called when the person closes the panel; the caller drops the plaintext.
    on_close: Callback<()>,
) -> impl IntoView {
    let copied = RwSignal::new(false);
    let to_copy = plaintext.clone();
    let copy = move |_| {
        let text = to_copy.clone();
        if let Some(window) = web_sys::window() {
            let promise = window.navigator().clipboard().write_text(&text);
            leptos::task::spawn_local(async move {
                if wasm_bindgen_futures::JsFuture::from(promise).await.is_ok() {
                    copied.set(true);
                }
            });
        }
    };
    view! {
        <section class="panel new-key" role="region" aria-label="Your new API key" data-testid="new-key-panel">
            <p class="warning" data-testid="new-key-warning">
                "Copy this key now. It will not be shown again: Keygate keeps only a hash of it."
            </p>
            <code class="secret" data-testid="new-key-plaintext">{plaintext}</code>
            <div class="actions">
                <button data-testid="new-key-copy" on:click=copy>
                    {move || if copied.get() { "Copied" } else { "Copy" }}
                </button>
                <button class="secondary" data-testid="new-key-close" on:click=move |_| on_close.run(())>
                    "I have copied it"
                </button>
            </div>
        </section>
    }
}
