//! The console's data tables: a heading row, the rows, cards or horizontal scrolling on narrow
//! screens, and a sentence instead of an empty table.

use leptos::prelude::*;

/// A table of `rows`, or `empty` when there are none.
#[component]
pub fn DataTable(
    /// The table's `data-testid`.
    #[prop(into)]
    testid: String,
    /// The column headings; an empty one is an actions column, named for screen readers only.
    headers: Vec<&'static str>,
    /// Content of an extra first heading cell (such as a select-all checkbox).
    #[prop(optional)]
    lead: Option<AnyView>,
    /// The rows (`<tr>`s).
    rows: Vec<AnyView>,
    /// Whether the table fits its panel at every width: its cells wrap, and under 700 px each
    /// row becomes a card whose cells are named by their `data-label` (the heading row is
    /// then read by screen readers only). Without it the table scrolls inside its panel.
    #[prop(optional)]
    cards: bool,
    /// What to say when there are no rows, and that sentence's `data-testid`.
    empty: (&'static str, &'static str),
) -> impl IntoView {
    if rows.is_empty() {
        let (text, empty_testid) = empty;
        return view! { <p class="muted" data-testid=empty_testid>{text}</p> }.into_any();
    }
    view! {
        <div class="table-wrap" class:fits=cards>
            <table data-testid=testid class:cards=cards>
                <thead><tr>
                    {lead.map(|l| view! { <th>{l}</th> })}
                    {headers.into_iter().map(|h| if h.is_empty() {
                        view! { <th><span class="visually-hidden">"Actions"</span></th> }.into_any()
                    } else {
                        view! { <th>{h}</th> }.into_any()
                    }).collect_view()}
                </tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
    .into_any()
}
