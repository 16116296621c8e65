//! Paging through a list that answers `next_cursor` (SPEC §7), as a plain type and its buttons.

use leptos::prelude::*;

/// The cursors that led to the page shown, so *Previous* can go back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pager {
    trail: Vec<String>,
}

impl Pager {
    /// The cursor of the page shown (`None` = the first).
    pub fn cursor(&self) -> Option<String> {
        self.trail.last().cloned()
    }

    /// Goes to the page after the one shown.
    pub fn next(&mut self, cursor: String) {
        self.trail.push(cursor);
    }

    /// Goes back one page.
    pub fn previous(&mut self) {
        self.trail.pop();
    }

    /// Back to the first page (after a filter changes).
    pub fn reset(&mut self) {
        self.trail.clear();
    }

    /// The 1-based number of the page shown.
    pub fn page(&self) -> usize {
        self.trail.len() + 1
    }
}

/// *Previous* / *Next* buttons for a list.
#[component]
pub fn PagerButtons(
    /// The pager they move.
    pager: RwSignal<Pager>,
    /// The shown page's `next_cursor`.
    next: Option<String>,
) -> impl IntoView {
    let has_next = next.is_some();
    view! {
        <nav class="pager" aria-label="Pages">
            <button class="secondary" data-testid="page-previous" disabled=move || pager.with(|p| p.page() == 1)
                on:click=move |_| pager.update(Pager::previous)>"Previous"</button>
            <span data-testid="page-number">{move || format!("Page {}", pager.with(Pager::page))}</span>
            <button class="secondary" data-testid="page-next" disabled=!has_next
                on:click=move |_| if let Some(c) = next.clone() { pager.update(|p| p.next(c)) }>"Next"</button>
        </nav>
    }
}
