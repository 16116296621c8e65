//! A confirmation dialog for an irreversible action, with its progress and error in place.

use leptos::prelude::*;

use crate::api::ApiError;
use crate::components::dialog::Dialog;
use crate::components::error_note::ErrorNote;
use crate::erased::Call;

/// Asks before doing something that cannot be undone.
#[component]
pub fn ConfirmDialog(
    /// The question, as the dialog's title.
    #[prop(into)]
    title: String,
    /// The `data-testid` of the dialog; its confirm button is `{testid}-confirm`.
    testid: &'static str,
    /// The confirm button's label, a verb ("Revoke").
    #[prop(into)]
    confirm_label: String,
    /// Whether the action is running.
    #[prop(into)]
    pending: Signal<bool>,
    /// The action's failure, shown in the dialog.
    #[prop(into)]
    error: Signal<Option<ApiError>>,
    /// Runs the action.
    on_confirm: Callback<()>,
    /// Closes the dialog without acting.
    on_close: Callback<()>,
    /// What will happen, in words.
    children: Children,
) -> impl IntoView {
    let confirm_id = format!("{testid}-confirm");
    view! {
        <Dialog title testid on_close>
            {children()}
            {move || error.get().map(|error| view! { <ErrorNote error/> })}
            <div class="actions">
                <button class="danger" data-testid=confirm_id disabled=move || pending.get()
                    on:click=move |_| on_confirm.run(())>
                    {move || if pending.get() { "Working…".to_string() } else { confirm_label.clone() }}
                </button>
                <button class="secondary" autofocus data-testid="dialog-cancel" on:click=move |_| on_close.run(())>
                    "Cancel"
                </button>
            </div>
        </Dialog>
    }
}

/// A [`ConfirmDialog`] that runs `call` when confirmed, then `on_done` if it succeeded; a
/// failure stays in the dialog.
#[component]
pub fn ConfirmCall<F, Fut>(
    /// The question, as the dialog's title.
    #[prop(into)]
    title: String,
    /// The `data-testid` of the dialog; its confirm button is `{testid}-confirm`.
    testid: &'static str,
    /// The confirm button's label, a verb.
    #[prop(into)]
    confirm_label: String,
    /// The call to make.
    call: F,
    /// Called once the call succeeded.
    on_done: Callback<()>,
    /// Closes the dialog without acting.
    on_close: Callback<()>,
    /// What will happen, in words.
    children: Children,
) -> impl IntoView
where
    F: Fn() -> Fut + 'static,
    Fut: Future<Output = Result<(), ApiError>> + 'static,
{
    let action = Call::new(move |_: &()| {
        let running = call();
        async move {
            running.await?;
            on_done.run(());
            Ok::<(), ApiError>(())
        }
    });
    view! {
        <ConfirmDialog title testid confirm_label pending=action.pending()
            error=Signal::derive(move || action.error())
            on_confirm=Callback::new(move |()| { action.dispatch(()); }) on_close>
            {children()}
        </ConfirmDialog>
    }
}
