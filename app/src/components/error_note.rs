//! Shows a failed call's problem where the person is looking.

use leptos::prelude::*;

use crate::api::ApiError;

/// An error message with the problem's title and detail.
#[component]
pub fn ErrorNote(
    /// The error to show.
    error: ApiError,
) -> impl IntoView {
    view! { <p class="error" role="alert" data-testid="error">{error.to_string()}</p> }
}
