//! The one accessible modal dialog every dialog of the console is built on: it moves focus
//! inside when it opens, keeps Tab and Shift+Tab inside, closes on Escape, and gives focus back
//! to what had it (the button that opened it) when it goes away.

use std::sync::atomic::{AtomicU32, Ordering};

use leptos::html::Div;
use leptos::prelude::*;
use send_wrapper::SendWrapper;
use wasm_bindgen::JsCast;
use web_sys::{Element, HtmlElement};

const FOCUSABLE: &str = "a[href], button:not([disabled]), input:not([disabled]), \
    select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex=\"-1\"])";

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A modal dialog with a title.
#[component]
pub fn Dialog(
    /// The dialog's title, also its accessible name.
    #[prop(into)]
    title: String,
    /// The `data-testid` of the dialog box.
    testid: &'static str,
    /// Called on Escape (and by the content's own cancel buttons); the owner removes the dialog.
    on_close: Callback<()>,
    /// The dialog's content.
    children: Children,
) -> impl IntoView {
    let title_id = format!("dialog-title-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let label_id = title_id.clone();
    let node = NodeRef::<Div>::new();
    let opener = SendWrapper::new(active_element());
    on_cleanup(move || {
        if let Some(el) = opener.take().and_then(|e| e.dyn_into::<HtmlElement>().ok()) {
            let _ = el.focus();
        }
    });
    Effect::new(move |_| {
        if let Some(dialog) = node.get() {
            let autofocus = dialog.query_selector("[autofocus]").ok().flatten();
            let target = autofocus.or_else(|| focusables(&dialog).into_iter().next());
            match target.and_then(|e| e.dyn_into::<HtmlElement>().ok()) {
                Some(el) => {
                    let _ = el.focus();
                }
                None => {
                    let _ = dialog.focus();
                }
            }
        }
    });
    let on_keydown = move |ev: leptos::ev::KeyboardEvent| match ev.key().as_str() {
        "Escape" => {
            ev.prevent_default();
            ev.stop_propagation();
            on_close.run(());
        }
        "Tab" => {
            if let Some(dialog) = node.get_untracked() {
                trap_tab(&dialog, &ev);
            }
        }
        _ => {}
    };
    view! {
        <div class="dialog">
            <div class="dialog-box" role="dialog" aria-modal="true" aria-labelledby=label_id
                tabindex="-1" data-testid=testid node_ref=node on:keydown=on_keydown>
                <h2 id=title_id>{title}</h2>
                {children()}
            </div>
        </div>
    }
}

fn active_element() -> Option<Element> {
    web_sys::window()?.document()?.active_element()
}

fn focusables(root: &Element) -> Vec<Element> {
    let Ok(list) = root.query_selector_all(FOCUSABLE) else {
        return Vec::new();
    };
    (0..list.length())
        .filter_map(|i| list.item(i))
        .filter_map(|n| n.dyn_into::<Element>().ok())
        .collect()
}

/// Keeps Tab inside the dialog: from the last element to the first, and back with Shift.
fn trap_tab(dialog: &Element, ev: &web_sys::KeyboardEvent) {
    let items = focusables(dialog);
    let (Some(first), Some(last)) = (items.first(), items.last()) else {
        ev.prevent_default();
        return;
    };
    let active = active_element();
    let inside = active.as_ref().is_some_and(|a| dialog.contains(Some(a)));
    let wrap_to = if !inside {
        Some(first)
    } else if ev.shift_key() && active.as_ref() == Some(first) {
        Some(last)
    } else if !ev.shift_key() && active.as_ref() == Some(last) {
        Some(first)
    } else {
        None
    };
    if let Some(el) = wrap_to.and_then(|e| e.dyn_ref::<HtmlElement>()) {
        ev.prevent_default();
        let _ = el.focus();
    }
}
