//! Webhooks (admins): where Keygate POSTs what happens to keys (SPEC §6.1). *Add webhook* takes
//! a URL and the event types it wants; the signing secret is shown once, with a copy button,
//! and dropped when its dialog closes. Each row's menu shows its deliveries (status, response
//! code, paged), sends a test (its outcome in place), switches it off or on, or deletes it.

use std::collections::BTreeSet;

use leptos::prelude::*;
use model::api::{
    AttemptStatus, DeliveryView, PageQuery, WebhookPatch, WebhookRequest, WebhookView,
};
use model::webhook::{EVENTS, MAX_URL_CHARS, check_events};

use crate::api::{self, ApiError};
use crate::components::confirm::ConfirmCall;
use crate::components::copy::CopyButton;
use crate::components::dialog::Dialog;
use crate::components::error_note::{ActionError, BusyButton, ErrorNote, loaded};
use crate::components::key_cells::When;
use crate::components::pager::{Pager, PagerButtons};
use crate::components::row_menu::RowMenu;
use crate::components::table::DataTable;
use crate::erased::{Call, Load};
use crate::form::now;

/// What each event type of [`EVENTS`] tells, for its checkbox (in the same order).
pub const EVENT_HELP: [(&str, &str); 8] = [
    ("key.created", "a key was generated"),
    ("key.revoked", "a key was revoked"),
    ("key.expiring", "a key expires in 7 days, then in 1 day"),
    ("key.expired", "a key has expired"),
    (
        "key.leaked",
        "a key was found in public and revoked by Keygate",
    ),
    (
        "key.extensive_use",
        "a key is used far beyond its habit or the threshold",
    ),
    ("key.credits_low", "a key is running out of usage credits"),
    ("key.policy_changed", "a key's usage policy changed"),
];

/// Deliveries shown per page.
const DELIVERIES_PAGE: u32 = 20;

/// The *Add webhook* form's fields as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookForm {
    pub url: String,
    pub description: String,
    /// The event types ticked.
    pub events: BTreeSet<String>,
}

impl Default for WebhookForm {
    /// Every event type ticked: people mostly want to hear of all of them.
    fn default() -> Self {
        Self {
            url: String::new(),
            description: String::new(),
            events: EVENTS.iter().map(|e| (*e).to_owned()).collect(),
        }
    }
}

impl WebhookForm {
    /// The request to send, or the message to show: the event types and the description by
    /// the model's own rules. Where a URL may point depends on the deployment
    /// (`--allow-private-webhooks`), so beyond its presence and length the host decides.
    pub fn to_request(&self) -> Result<WebhookRequest, String> {
        let url = self.url.trim();
        if url.is_empty() {
            return Err("url: the address to POST events to".into());
        }
        if url.chars().count() > MAX_URL_CHARS {
            return Err(format!("url: at most {MAX_URL_CHARS} characters"));
        }
        let ticked: Vec<String> = self.events.iter().cloned().collect();
        let events = check_events(&ticked).map_err(|m| format!("events: {m}"))?;
        let description =
            model::rules::description(Some(self.description.clone())).map_err(|e| e.to_string())?;
        Ok(WebhookRequest {
            url: url.to_owned(),
            events,
            description,
        })
    }
}

/// What a row's menu offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookAction {
    Deliveries,
    Test,
    Enable,
    Disable,
    Delete,
}

impl WebhookAction {
    /// The actions of `hook`: switching it on when it is off, off when it is on.
    pub fn offered(hook: &WebhookView) -> [WebhookAction; 4] {
        let switch = if hook.enabled {
            WebhookAction::Disable
        } else {
            WebhookAction::Enable
        };
        [
            WebhookAction::Deliveries,
            WebhookAction::Test,
            switch,
            WebhookAction::Delete,
        ]
    }

    /// The menu item's label and `data-testid`.
    pub fn label(self) -> (&'static str, &'static str) {
        match self {
            WebhookAction::Deliveries => ("Deliveries", "webhook-deliveries"),
            WebhookAction::Test => ("Send test", "webhook-test"),
            WebhookAction::Enable => ("Enable", "webhook-enable"),
            WebhookAction::Disable => ("Disable", "webhook-disable"),
            WebhookAction::Delete => ("Delete", "webhook-delete"),
        }
    }
}

/// What became of an attempt, in words: `delivered: 200 in 12 ms`, `answered 500; will
/// retry`, `failed: connection refused`.
pub fn outcome(d: &DeliveryView) -> String {
    let cause = match (d.response_code, d.error.as_deref()) {
        (Some(code), _) => format!("answered {code}"),
        (None, Some(error)) => error.to_owned(),
        (None, None) => "no answer".to_owned(),
    };
    match d.status {
        AttemptStatus::Succeeded => format!(
            "delivered: {} in {} ms",
            d.response_code.unwrap_or_default(),
            d.duration_ms
        ),
        AttemptStatus::Retrying => format!("{cause}; will retry"),
        AttemptStatus::Failed => format!("failed: {cause}"),
    }
}

/// The webhooks page.
#[component]
pub fn WebhooksPage() -> impl IntoView {
    let changed = RwSignal::new(0u32);
    let refresh = Callback::new(move |()| changed.update(|n| *n += 1));
    let hooks = Load::new(move || {
        changed.get();
        api::webhooks()
    });
    let adding = RwSignal::new(false);
    // The secret of the webhook just added: only here, until its dialog closes.
    let secret = RwSignal::new(None::<String>);
    let deleting = RwSignal::new(None::<WebhookView>);
    let showing = RwSignal::new(None::<WebhookView>);
    let tested = RwSignal::new(None::<(String, Result<DeliveryView, ApiError>)>);
    let switch = Call::new(move |(id, enabled): &(String, bool)| {
        let (id, enabled) = (id.clone(), *enabled);
        async move {
            let patch = WebhookPatch {
                enabled: Some(enabled),
                ..Default::default()
            };
            api::update_webhook(&id, patch).await?;
            refresh.run(());
            Ok::<(), ApiError>(())
        }
    });
    let test = Call::new(move |hook: &WebhookView| {
        let hook = hook.clone();
        async move {
            let answer = api::test_webhook(&hook.id).await;
            tested.set(Some((hook.url.clone(), answer)));
            // The test is in its deliveries too.
            changed.update(|n| *n += 1);
            Ok::<(), ApiError>(())
        }
    });
    let on_pick = Callback::new(
        move |(action, hook): (WebhookAction, WebhookView)| match action {
            WebhookAction::Deliveries => showing.set(Some(hook)),
            WebhookAction::Test => {
                tested.set(None);
                test.dispatch(hook);
            }
            WebhookAction::Enable => switch.dispatch((hook.id, true)),
            WebhookAction::Disable => switch.dispatch((hook.id, false)),
            WebhookAction::Delete => deleting.set(Some(hook)),
        },
    );
    view! {
        <section class="panel">
            <h1>"Webhooks"</h1>
            <p>"Keygate POSTs what happens to keys to these addresses, signed with each webhook's secret "
                "(Standard Webhooks: verify "<code>"webhook-signature"</code>"), retried for about a day until the receiver answers 2xx."</p>
            <div class="actions">
                <button data-testid="add-webhook" on:click=move |_| adding.set(true)>"Add webhook"</button>
            </div>
            {move || adding.get().then(|| view! {
                <AddWebhookDialog
                    on_created=Callback::new(move |made: String| {
                        adding.set(false);
                        secret.set(Some(made));
                        refresh.run(());
                    })
                    on_cancel=Callback::new(move |()| adding.set(false))/>
            })}
            {move || secret.get().map(|secret_text| view! {
                <WebhookSecretPanel secret=secret_text on_close=Callback::new(move |()| secret.set(None))/>
            })}
            {move || deleting.get().map(|hook| {
                let id = hook.id.clone();
                let call = move || {
                    let id = id.clone();
                    async move { api::delete_webhook(&id).await }
                };
                view! {
                    <ConfirmCall title=format!("Delete the webhook to {}?", hook.url) testid="delete-webhook-dialog"
                        confirm_label="Delete" call
                        on_done=Callback::new(move |()| {
                            if showing.with_untracked(|s| s.as_ref().map(|s| s.id.clone())) == Some(hook.id.clone()) {
                                showing.set(None);
                            }
                            deleting.set(None);
                            refresh.run(());
                        })
                        on_close=Callback::new(move |()| deleting.set(None))>
                        <p>"Nothing more is sent to it, and what is still waiting to be delivered is dropped."</p>
                    </ConfirmCall>
                }
            })}
            <ActionError action=switch/>
            {move || test.pending().get().then(|| view! {
                <p class="muted" role="status" data-testid="webhook-test-pending">"Sending a test…"</p>
            })}
            {move || tested.get().map(|(url, answer)| match answer {
                Ok(delivery) => {
                    let good = delivery.status == AttemptStatus::Succeeded;
                    view! {
                        <p role="status" class=if good { "" } else { "error" } data-testid="webhook-test-result">
                            {format!("Test to {url}: {}", outcome(&delivery))}
                        </p>
                    }.into_any()
                }
                Err(error) => view! { <ErrorNote error/> }.into_any(),
            })}
            <Transition fallback=|| view! { <p class="muted">"Loading webhooks…"</p> }>
                {move || hooks.get().map(|answer| loaded(answer, move |page| view! {
                    <WebhookTable items=page.items on_pick/>
                }))}
            </Transition>
            {move || showing.get().map(|hook| view! {
                <Deliveries hook changed on_close=Callback::new(move |()| showing.set(None))/>
            })}
        </section>
    }
}

/// The webhooks as a table, each row's actions in its menu.
#[component]
pub fn WebhookTable(
    items: Vec<WebhookView>,
    /// Called with the action chosen and its webhook.
    on_pick: Callback<(WebhookAction, WebhookView)>,
) -> impl IntoView {
    let now = now();
    let rows = items
        .into_iter()
        .map(|hook| {
            let items = WebhookAction::offered(&hook)
                .into_iter()
                .map(|action| {
                    let (label, testid) = action.label();
                    let picked = hook.clone();
                    view! {
                        <button type="button" data-testid=testid
                            on:click=move |_| on_pick.run((action, picked.clone()))>{label}</button>
                    }
                })
                .collect_view();
            let events = if hook.events.len() == EVENTS.len() {
                "every key event".to_owned()
            } else {
                hook.events.join(", ")
            };
            view! {
                <tr data-testid="webhook-row" data-webhook-id=hook.id.clone()>
                    <td class="lead"><code class="wrap" data-testid="webhook-url">{hook.url.clone()}</code>
                        {hook.description.clone().map(|d| view! { <div class="muted">{d}</div> })}</td>
                    <td data-label="Events" data-testid="webhook-events">{events}</td>
                    <td data-label="Status" data-testid="webhook-status">
                        {if hook.enabled { "Enabled" } else { "Disabled" }}</td>
                    <td data-label="Added"><When at=Some(hook.created_at) now/></td>
                    <td class="menu-cell"><RowMenu name=hook.url.clone()>{items}</RowMenu></td>
                </tr>
            }
            .into_any()
        })
        .collect();
    view! {
        <DataTable testid="webhooks-table" headers=vec!["URL", "Events", "Status", "Added", ""] rows cards=true
            empty=("No webhooks yet. Add one to hear when keys are created, revoked, expire or leak.", "webhooks-empty")/>
    }
}

/// Adds a webhook; `on_created` gets its secret (shown once by the page).
#[component]
pub fn AddWebhookDialog(on_created: Callback<String>, on_cancel: Callback<()>) -> impl IntoView {
    let form = RwSignal::new(WebhookForm::default());
    let invalid = RwSignal::new(None::<String>);
    let create = Call::new(move |request: &WebhookRequest| {
        let request = request.clone();
        async move {
            let made = api::create_webhook(request).await?;
            on_created.run(made.secret);
            Ok::<(), ApiError>(())
        }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        match form.with_untracked(WebhookForm::to_request) {
            Ok(request) => {
                invalid.set(None);
                create.dispatch(request);
            }
            Err(message) => invalid.set(Some(message)),
        }
    };
    let boxes = EVENT_HELP
        .into_iter()
        .map(|(kind, help)| {
            let ticked = move || form.with(|f| f.events.contains(kind));
            view! {
                <label class="check">
                    <input type="checkbox" data-testid=format!("webhook-event-{}", kind.replace('.', "-")) prop:checked=ticked
                        on:change=move |ev| {
                            let on = event_target_checked(&ev);
                            form.update(|f| {
                                if on { f.events.insert(kind.to_owned()); } else { f.events.remove(kind); }
                            });
                        }/>
                    <code>{kind}</code>" — "{help}
                </label>
            }
        })
        .collect_view();
    view! {
        <Dialog title="Add webhook".to_string() testid="add-webhook-dialog" on_close=on_cancel>
            <form on:submit=submit novalidate>
                <label>"URL " <span class="required" aria-hidden="true">"*"</span>
                    <input type="url" autofocus required placeholder="https://example.com/keygate" data-testid="webhook-url-input"
                        prop:value=move || form.with(|f| f.url.clone())
                        on:input=move |ev| form.update(|f| f.url = event_target_value(&ev))/>
                </label>
                <label>"Description"
                    <input data-testid="webhook-description-input"
                        prop:value=move || form.with(|f| f.description.clone())
                        on:input=move |ev| form.update(|f| f.description = event_target_value(&ev))/>
                </label>
                <fieldset>
                    <legend>"Events"</legend>
                    {boxes}
                </fieldset>
                {move || invalid.get().map(|m| view! { <p class="error" role="alert" data-testid="webhook-invalid">{m}</p> })}
                <ActionError action=create/>
                <div class="actions">
                    <BusyButton submit=true pending=create.pending() label="Add" busy="Adding…" testid="webhook-submit"/>
                    <button type="button" class="secondary" data-testid="dialog-cancel" on:click=move |_| on_cancel.run(())>"Cancel"</button>
                </div>
            </form>
        </Dialog>
    }
}

/// A new webhook's signing secret, shown once; closing forgets it.
#[component]
pub fn WebhookSecretPanel(
    /// `whsec_…`; it exists only in the owner's signal and this view.
    secret: String,
    /// The owner drops the secret.
    on_close: Callback<()>,
) -> impl IntoView {
    view! {
        <Dialog title="Your webhook's signing secret".to_string() testid="webhook-secret-panel" on_close>
            <p class="warning" data-testid="webhook-secret-warning">
                "Copy this secret now. It will not be shown again. Your receiver checks each delivery's "
                <code>"webhook-signature"</code>" with it."
            </p>
            <code class="secret" data-testid="webhook-secret">{secret.clone()}</code>
            <div class="actions">
                <CopyButton text=secret testid="webhook-secret-copy"/>
                <button class="secondary" data-testid="webhook-secret-close" on:click=move |_| on_close.run(())>
                    "I have copied it"
                </button>
            </div>
        </Dialog>
    }
}

/// The attempts to deliver to one webhook, newest first, a page at a time; reloaded when
/// `changed` moves (after a test).
#[component]
fn Deliveries(hook: WebhookView, changed: RwSignal<u32>, on_close: Callback<()>) -> impl IntoView {
    let pager = RwSignal::new(Pager::default());
    let id = hook.id.clone();
    let deliveries = Load::new(move || {
        changed.get();
        let query = PageQuery {
            limit: Some(DELIVERIES_PAGE),
            cursor: pager.with(Pager::cursor),
        };
        let id = id.clone();
        async move { api::webhook_deliveries(&id, &query).await }
    });
    view! {
        <section data-testid="webhook-deliveries-panel" aria-label=format!("Deliveries to {}", hook.url)>
            <h2>"Deliveries to "<code class="wrap">{hook.url.clone()}</code></h2>
            <div class="actions">
                <button class="secondary small" data-testid="deliveries-refresh" on:click=move |_| changed.update(|n| *n += 1)>"Refresh"</button>
                <button class="secondary small" data-testid="deliveries-close" on:click=move |_| on_close.run(())>"Close"</button>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Loading deliveries…"</p> }>
                {move || deliveries.get().map(|answer| loaded(answer, move |page| {
                    let now = now();
                    let rows = page.items.into_iter().map(|d| {
                        let status = match d.status {
                            AttemptStatus::Succeeded => "succeeded",
                            AttemptStatus::Retrying => "retrying",
                            AttemptStatus::Failed => "failed",
                        };
                        view! {
                            <tr data-testid="delivery-row" data-status=status>
                                <td data-label="When"><When at=Some(d.at) now/></td>
                                <td data-label="Type"><code>{d.kind.clone()}</code></td>
                                <td data-label="Attempt">{d.attempt}</td>
                                <td data-label="Status" data-testid="delivery-status">{status}</td>
                                <td data-label="Response" data-testid="delivery-code">
                                    {d.response_code.map(|c| c.to_string()).unwrap_or_else(|| "—".into())}</td>
                                <td data-label="What happened" data-testid="delivery-outcome">{outcome(&d)}
                                    {d.next_attempt_at.map(|at| view! { <div class="muted">"next attempt "<When at=Some(at) now/></div> })}</td>
                            </tr>
                        }.into_any()
                    }).collect();
                    view! {
                        <DataTable testid="deliveries-table" headers=vec!["When", "Type", "Attempt", "Status", "Response", "What happened"]
                            rows cards=true empty=("Nothing sent yet.", "deliveries-empty")/>
                        <PagerButtons pager next=page.next_cursor/>
                    }
                }))}
            </Transition>
        </section>
    }
}
