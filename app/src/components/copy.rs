//! A button that copies a text with the Clipboard API and says whether it worked.

use leptos::prelude::*;

/// What the copy button last achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Copied {
    Not,
    Yes,
    Failed,
}

/// Copies `text` to the clipboard.
#[component]
pub fn CopyButton(
    /// The text to copy.
    text: String,
    /// The button's `data-testid`.
    testid: &'static str,
) -> impl IntoView {
    let copied = RwSignal::new(Copied::Not);
    let copy = move |_| {
        let Some(window) = web_sys::window() else {
            copied.set(Copied::Failed);
            return;
        };
        let promise = window.navigator().clipboard().write_text(&text);
        leptos::task::spawn_local(async move {
            let done = wasm_bindgen_futures::JsFuture::from(promise).await.is_ok();
            copied.set(if done { Copied::Yes } else { Copied::Failed });
        });
    };
    view! {
        <button type="button" data-testid=testid on:click=copy>
            {move || match copied.get() {
                Copied::Not => "Copy",
                Copied::Yes => "Copied",
                Copied::Failed => "Copy failed: select the text",
            }}
        </button>
        <span class="visually-hidden" aria-live="polite">
            {move || (copied.get() == Copied::Yes).then_some("Copied to the clipboard")}
        </span>
    }
}
