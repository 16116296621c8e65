//! The overview, the admin's landing page: the organization's keys by status, its
//! verifications over the last 24 hours and 30 days by outcome, the keys refused most and
//! the keys flagged for extensive use, each a link to the key. One call,
//! `GET /v1/overview`.

use leptos::prelude::*;
use model::api::{KeyFigure, OverviewView, UsageBucket, UsageItem, VerifyCode};

use crate::api;
use crate::components::error_note::loaded;
use crate::components::usage_chart::UsageChart;
use crate::erased::Load;
use crate::route::{AdminPage, Route};

/// The outcomes of `buckets` summed, `VALID` first, then each refusal, most first (ties by
/// code), as (code as the API spells it, count). Codes never seen are left out.
pub fn outcomes(buckets: &[UsageBucket]) -> Vec<(String, u64)> {
    let mut sums: std::collections::BTreeMap<VerifyCode, u64> = Default::default();
    for b in buckets {
        for (code, n) in &b.counts {
            *sums.entry(*code).or_default() += n;
        }
    }
    let name = |code: &VerifyCode| {
        serde_json::to_value(code)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let mut rows: Vec<(bool, String, u64)> = sums
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(code, n)| (*code != VerifyCode::Valid, name(code), *n))
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0).then(b.2.cmp(&a.2)).then(a.1.cmp(&b.1)));
    rows.into_iter().map(|(_, code, n)| (code, n)).collect()
}

/// The overview page.
#[component]
pub fn OverviewPage() -> impl IntoView {
    let overview = Load::new(move || async move { api::overview().await });
    view! {
        <section class="panel" data-testid="overview">
            <h1>"Overview"</h1>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || overview.get().map(|answer| loaded(answer, |o| view! { <Figures o/> }))}
            </Transition>
        </section>
    }
}

/// The chart of `buckets` (one bar each), `step` seconds apart.
fn chart(buckets: &[UsageBucket], step: time::Duration) -> AnyView {
    let (Some(first), Some(last)) = (buckets.first(), buckets.last()) else {
        return ().into_any();
    };
    let items: Vec<UsageItem> = buckets
        .iter()
        .map(|b| UsageItem {
            minute: b.start,
            counts: b.counts.clone(),
        })
        .collect();
    view! {
        <UsageChart items since=first.start until=last.start + step bars=buckets.len()/>
    }
    .into_any()
}

/// A table of `outcomes`.
fn outcome_table(testid: &'static str, caption: &'static str, rows: Vec<(String, u64)>) -> AnyView {
    if rows.is_empty() {
        return view! { <p class="muted" data-testid=testid>{caption}": no verifications"</p> }
            .into_any();
    }
    view! {
        <table class="outcomes" data-testid=testid>
            <caption>{caption}</caption>
            <thead><tr><th scope="col">"Outcome"</th><th scope="col" class="num">"Verifications"</th></tr></thead>
            <tbody>
                {rows.into_iter().map(|(code, n)| {
                    let attr = code.clone();
                    view! {
                        <tr data-testid="outcome-row" data-code=attr>
                            <td><code>{code}</code></td><td class="num">{n}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

/// A list of keys with a figure each, every one a link to its events and usage.
fn key_list(
    testid: &'static str,
    empty: &'static str,
    unit: &'static str,
    keys: Vec<KeyFigure>,
) -> AnyView {
    if keys.is_empty() {
        return view! { <p class="muted" data-testid=testid>{empty}</p> }.into_any();
    }
    view! {
        <ol class="key-figures" data-testid=testid>
            {keys.into_iter().map(|k| {
                let href = Route::Admin(AdminPage::Events(Some(k.id.clone()))).href();
                let name = k.name.clone().unwrap_or_else(|| "deleted key".into());
                view! {
                    <li data-testid="key-figure" data-key=k.id.clone()>
                        <a href=href title=k.id.clone()>{name}</a>
                        " · "{k.count}" "{unit}
                    </li>
                }
            }).collect_view()}
        </ol>
    }
    .into_any()
}

#[component]
fn Figures(o: OverviewView) -> impl IntoView {
    let k = o.keys.clone();
    let card = |testid: &'static str, label: &'static str, n: u64| {
        view! {
            <div class="figure" data-testid=testid>
                <span class="figure-value">{n}</span>
                <span class="figure-label">{label}</span>
            </div>
        }
    };
    view! {
        <div class="figures">
            {card("overview-active", "active keys", k.active)}
            {card("overview-expiring", "expire within 7 days", k.expiring_soon)}
            {card("overview-revoked", "revoked", k.revoked)}
            {card("overview-expired", "expired", k.expired)}
        </div>
        <h2>"Last 24 hours"</h2>
        {chart(&o.hours, time::Duration::HOUR)}
        {outcome_table("overview-24h", "Verifications in the last 24 hours", outcomes(&o.hours))}
        <h2>"Last 30 days"</h2>
        {chart(&o.days, time::Duration::DAY)}
        {outcome_table("overview-30d", "Verifications in the last 30 days", outcomes(&o.days))}
        <h2>"Keys refused most (30 days)"</h2>
        {key_list("overview-refused", "No key was refused.", "refused", o.most_refused)}
        <h2>"Flagged for extensive use"</h2>
        {key_list("overview-extensive", "No key is flagged.", "in the last hour", o.extensive_use)}
    }
}
