//! The one accessible modal dialog every dialog of the console is built on: it moves focus
//! inside when it opens, keeps Tab and Shift+Tab inside, closes on Escape, and gives focus back
//! to what had it (the button that opened it) when it goes away, or to the same button of the
//! same key's row when the change it made drew the row anew.

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
    let opener = SendWrapper::new(active_element().map(|e| return_target(&e)));
    let again = opener.as_ref().and_then(same_control);
    on_cleanup(move || {
        let Some(el) = opener.take().and_then(|e| e.dyn_into::<HtmlElement>().ok()) else {
            return;
        };
        if el.is_connected() {
            let _ = el.focus();
        } else if let Some(selector) = again {
            // The row was drawn anew (its list reloaded after the change): the same control
            // of the same row gets the focus once it is back.
            refocus(selector, 40);
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

/// Where the focus goes back to: the element that opened the dialog or, when that sits in a
/// menu (a `<details>`, closed once an item is chosen), the menu's button.
fn return_target(opener: &Element) -> Element {
    opener
        .closest("details")
        .ok()
        .flatten()
        .and_then(|menu| menu.query_selector("summary").ok().flatten())
        .unwrap_or_else(|| opener.clone())
}

/// A selector for `opener` that survives its row being drawn again: its `data-testid` inside
/// the element carrying its row's `data-key-id`.
fn same_control(opener: &Element) -> Option<String> {
    let testid = opener.get_attribute("data-testid")?;
    let row = opener.closest("[data-key-id]").ok()??;
    let key = row.get_attribute("data-key-id")?;
    Some(format!(
        "[data-key-id=\"{key}\"] [data-testid=\"{testid}\"]"
    ))
}

/// Focuses what `selector` finds, trying every 50 ms up to `tries` times while it is not there.
fn refocus(selector: String, tries: u32) {
    let found = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.query_selector(&selector).ok().flatten())
        .and_then(|e| e.dyn_into::<HtmlElement>().ok());
    match found {
        Some(el) => {
            let _ = el.focus();
        }
        None if tries > 0 => set_timeout(
            move || refocus(selector, tries - 1),
            std::time::Duration::from_millis(50),
        ),
        None => {}
    }
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
