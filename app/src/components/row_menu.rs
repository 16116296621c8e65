//! A row's actions behind one button at the far right of the row (as the Qlik seed puts it),
//! so that a table keeps few columns and acting on a row never scrolls it away. A native
//! `<details>`: Enter or Space opens it, Tab walks its items, Escape closes it (the focus back on
//! its button), and choosing an item closes it; a dialog the item opens gives the focus back
//! to the menu's button (see [`crate::components::dialog`]), not to the item now hidden.

use leptos::prelude::*;

/// The menu of the row called `name`; `children` are its items (buttons and links).
#[component]
pub fn RowMenu(
    /// What the row is called, for the button's accessible name (`Actions for ci-deploy`).
    #[prop(into)]
    name: String,
    children: Children,
) -> impl IntoView {
    let menu = NodeRef::<leptos::html::Details>::new();
    let close = move |refocus: bool| {
        if let Some(details) = menu.get_untracked() {
            let _ = details.remove_attribute("open");
            let summary = details
                .first_element_child()
                .and_then(|s| wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlElement>(s).ok());
            if let (true, Some(summary)) = (refocus, summary) {
                let _ = summary.focus();
            }
        }
    };
    view! {
        <details class="row-menu" data-testid="row-menu" node_ref=menu
            on:keydown=move |ev: leptos::ev::KeyboardEvent| if ev.key() == "Escape" { close(true) }>
            <summary data-testid="row-menu-open">
                "Actions"<span class="visually-hidden">{format!(" for {name}")}</span>
            </summary>
            <div class="menu" on:click=move |_| close(false)>{children()}</div>
        </details>
    }
}
