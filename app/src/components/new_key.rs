//! A key's plaintext, shown once (after *Generate* or *Roll*) with a copy button and a warning,
//! and the few lines that verify it ([`crate::snippet`]) in a tab per way of reaching
//! Keygate. Closing the dialog forgets it all: the owner drops the only copy.

use leptos::prelude::*;

use crate::components::copy::CopyButton;
use crate::components::dialog::Dialog;
use crate::snippet::snippets;

/// The plaintext of a key just created or rolled.
#[component]
pub fn NewKeyPanel(
    /// The plaintext key; it exists only in the owner's signal and this view.
    plaintext: String,
    /// Called when the person closes the dialog; the owner drops the plaintext.
    on_close: Callback<()>,
) -> impl IntoView {
    let origin = web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default();
    let snippets = snippets(&origin, &plaintext);
    let chosen = RwSignal::new(0usize);
    let tabs = snippets
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let selected = move || chosen.get() == i;
            view! {
                <button type="button" role="tab" id=format!("snippet-tab-{}", s.id)
                    aria-controls="snippet-panel"
                    aria-selected=move || selected().to_string()
                    tabindex=move || if selected() { "0" } else { "-1" }
                    data-testid=format!("snippet-tab-{}", s.id)
                    on:click=move |_| chosen.set(i)>
                    {s.label}
                </button>
            }
        })
        .collect_view();
    let shown = move || {
        let snippet = snippets[chosen.get().min(snippets.len() - 1)].clone();
        view! {
            <div role="tabpanel" id="snippet-panel"
                aria-labelledby=format!("snippet-tab-{}", snippet.id)>
                <pre class="snippet" tabindex="0" role="region"
                    aria-label=format!("{} snippet", snippet.label)><code data-testid=format!("snippet-{}", snippet.id)>
                    {snippet.text.clone()}
                </code></pre>
                <CopyButton text=snippet.text testid="snippet-copy"/>
            </div>
        }
    };
    view! {
        <Dialog title="Your new API key" testid="new-key-panel" on_close>
            <p class="warning" data-testid="new-key-warning">
                "Copy this key now. It will not be shown again: Keygate keeps only a hash of it."
            </p>
            <code class="secret" data-testid="new-key-plaintext">{plaintext.clone()}</code>
            <div class="actions">
                <CopyButton text=plaintext testid="new-key-copy"/>
            </div>
            <h3 class="snippets-title">"Verify it"</h3>
            <div role="tablist" aria-label="Ways to verify the key" class="tabs">{tabs}</div>
            {shown}
            <div class="actions">
                <button class="secondary" data-testid="new-key-close" on:click=move |_| on_close.run(())>
                    "I have copied it"
                </button>
            </div>
        </Dialog>
    }
}
