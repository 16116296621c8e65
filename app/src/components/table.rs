//! The console's data tables: a heading row, the rows, horizontal scrolling on narrow screens,
//! and a sentence instead of an empty table.

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
    /// What to say when there are no rows, and that sentence's `data-testid`.
    empty: (&'static str, &'static str),
) -> impl IntoView {
    if rows.is_empty() {
        let (text, empty_testid) = empty;
        return view! { <p class="muted" data-testid=empty_testid>{text}</p> }.into_any();
    }
    view! {
        <div class="table-wrap">
            <table data-testid=testid>
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
