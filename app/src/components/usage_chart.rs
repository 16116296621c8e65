//! Verifications over time as an SVG bar chart drawn by the console, each bar stacked by
//! outcome (valid, then each refusal in its own colour): the buckets are a plain computation
//! ([`buckets`]), the view only scales them.

use leptos::prelude::*;
use model::api::{UsageItem, VerifyCode};
use time::{Duration, OffsetDateTime};

use crate::components::key_cells::minute;

/// Verifications in one slice of the chart's time window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub start: OffsetDateTime,
    /// `VALID` answers.
    pub valid: u64,
    /// Every other outcome.
    pub refused: u64,
    /// Each outcome's count, in the order of [`VerifyCode::ALL`].
    pub by_code: [u64; VerifyCode::ALL.len()],
}

/// Where `code` is in [`VerifyCode::ALL`] (and so its colour, `code-<i>` in the stylesheet).
pub fn code_index(code: VerifyCode) -> usize {
    VerifyCode::ALL
        .iter()
        .position(|c| *c == code)
        .unwrap_or_default()
}

/// Splits `[since, until)` into `n` equal buckets and adds each minute's counts to its bucket;
/// minutes outside the window are ignored.
pub fn buckets(
    items: &[UsageItem],
    since: OffsetDateTime,
    until: OffsetDateTime,
    n: usize,
) -> Vec<Bucket> {
    let n = n.max(1);
    let span = (until - since).max(Duration::minutes(1));
    let width = span / n as u32;
    let mut out: Vec<Bucket> = (0..n)
        .map(|i| Bucket {
            start: since + width * i as u32,
            valid: 0,
            refused: 0,
            by_code: [0; VerifyCode::ALL.len()],
        })
        .collect();
    for item in items {
        if item.minute < since || item.minute >= until {
            continue;
        }
        let offset = (item.minute - since).whole_seconds() as f64;
        let index = ((offset / span.whole_seconds() as f64) * n as f64) as usize;
        if let Some(bucket) = out.get_mut(index.min(n - 1)) {
            for (code, count) in &item.counts {
                bucket.by_code[code_index(*code)] += count;
                if *code == VerifyCode::Valid {
                    bucket.valid += count;
                } else {
                    bucket.refused += count;
                }
            }
        }
    }
    out
}

// The drawing's size in SVG units: ten per pixel of the original 600 × 160 design, so every
// coordinate is a whole number (formatting floats would pull float-printing code into the wasm).
const WIDTH: u64 = 6000;
const HEIGHT: u64 = 1600;

/// The chart of `items` between `since` and `until`, in `n` bars.
#[component]
pub fn UsageChart(
    /// The key's minutes, from `GET /v1/keys/{id}/usage`.
    items: Vec<UsageItem>,
    /// The window's start.
    since: OffsetDateTime,
    /// The window's end.
    until: OffsetDateTime,
    /// How many bars.
    bars: usize,
) -> impl IntoView {
    let data = buckets(&items, since, until, bars);
    let (valid, refused) = data
        .iter()
        .fold((0, 0), |(v, r), b| (v + b.valid, r + b.refused));
    let top = data
        .iter()
        .map(|b| b.valid + b.refused)
        .max()
        .unwrap_or(0)
        .max(1);
    let n = data.len().max(1) as u64;
    let mut totals = [0u64; VerifyCode::ALL.len()];
    for b in &data {
        for (t, n) in totals.iter_mut().zip(b.by_code) {
            *t += n;
        }
    }
    // The refusals present, in code order: what the legend and the label name.
    let refusals: Vec<(usize, u64)> = totals
        .iter()
        .copied()
        .enumerate()
        .skip(1)
        .filter(|(_, n)| *n > 0)
        .collect();
    let breakdown = refusals
        .iter()
        .map(|(i, n)| format!("{n} {}", VerifyCode::ALL[*i].as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let label = format!(
        "{valid} valid and {refused} refused verifications between {} and {} UTC{}",
        minute(since),
        minute(until),
        if breakdown.is_empty() {
            String::new()
        } else {
            format!(" (refused: {breakdown})")
        }
    );
    let scale = move |count: u64| count * HEIGHT / top;
    view! {
        <figure class="chart" data-testid="usage-chart">
            <svg viewBox=format!("0 0 {WIDTH} {}", HEIGHT + 20) role="img" aria-label=label.clone()
                preserveAspectRatio="none">
                {data.into_iter().enumerate().map(|(i, b)| {
                    // A bar fills the middle 80 % of its slot.
                    let x = (10 * i as u64 + 1) * WIDTH / (10 * n);
                    let w = 8 * WIDTH / (10 * n);
                    // Stacked from the axis up: valid first, then each refusal in code order.
                    let mut base = HEIGHT;
                    let mut said = vec![format!("{} valid", b.valid)];
                    let rects = b.by_code.iter().enumerate().filter(|(_, n)| **n > 0).map(|(i, n)| {
                        let h = scale(*n);
                        base -= h.min(base);
                        if i > 0 {
                            said.push(format!("{n} {}", VerifyCode::ALL[i].as_str()));
                        }
                        view! { <rect class=format!("code-{i}") x=x y=base width=w height=h/> }
                    }).collect_view();
                    view! {
                        <g data-testid="usage-bar">
                            <title>{format!("{}: {}", minute(b.start), said.join(", "))}</title>
                            {rects}
                        </g>
                    }
                }).collect_view()}
                <line class="axis" stroke-width="10" x1="0" y1=HEIGHT x2=WIDTH y2=HEIGHT/>
            </svg>
            <figcaption>
                <span class="legend code-0">"valid"</span>
                {refusals.iter().map(|(i, _)| view! {
                    " "<span class=format!("legend code-{i}")>{VerifyCode::ALL[*i].as_str()}</span>
                }).collect_view()}
                " · peak "{top}" per bar · "{label}
            </figcaption>
        </figure>
    }
}
