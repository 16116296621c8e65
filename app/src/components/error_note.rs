//! Shows a failed call's problem where the person is looking, and the buttons that show a
//! call's progress.

use leptos::prelude::*;

use crate::api::ApiError;
use crate::erased::Sent;

/// An error message with the problem's title and detail.
#[component]
pub fn ErrorNote(
    /// The error to show.
    error: ApiError,
) -> impl IntoView {
    view! { <p class="error" role="alert" data-testid="error">{error.to_string()}</p> }
}

/// The error of an action's last run, if it failed.
#[component]
pub fn ActionError(
    /// The call.
    #[prop(into)]
    action: Sent,
) -> impl IntoView {
    move || action.error().map(|error| view! { <ErrorNote error/> })
}

/// A loaded value's view, or its error.
pub fn loaded<T, V: IntoView + 'static>(
    answer: Result<T, ApiError>,
    show: impl FnOnce(T) -> V,
) -> AnyView {
    match answer {
        Ok(value) => show(value).into_any(),
        Err(error) => view! { <ErrorNote error/> }.into_any(),
    }
}

/// A button that says when its call is running and cannot be pressed twice meanwhile.
#[component]
pub fn BusyButton(
    /// Whether the call is running.
    #[prop(into)]
    pending: Signal<bool>,
    /// The label at rest.
    label: &'static str,
    /// The label while running.
    busy: &'static str,
    /// The button's `data-testid`.
    testid: &'static str,
    /// Submits its form (otherwise a plain button calling `on_click`).
    #[prop(optional)]
    submit: bool,
    /// Called on click.
    #[prop(optional)]
    on_click: Option<Callback<()>>,
) -> impl IntoView {
    view! {
        <button type=if submit { "submit" } else { "button" } data-testid=testid
            disabled=move || pending.get() aria-busy=move || pending.get().to_string()
            on:click=move |_| if let Some(f) = on_click { f.run(()) }>
            {move || if pending.get() { busy } else { label }}
        </button>
    }
}
