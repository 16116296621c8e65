//! The console's components in headless Chromium: each test mounts into a fresh element,
//! lets the reactive system run, and asserts what a person would see.

use std::collections::BTreeSet;

use app::api::Namespaces;
use app::components::dialog::Dialog;
use app::components::new_key::NewKeyPanel;
use app::components::usage_chart::UsageChart;
use app::filter::KeyFilter;
use app::pages::admin::group_members::GroupMembership;
use app::pages::admin::keys::AdminKeyTable;
use app::pages::admin::namespaces::RenameNamespaceDialog;
use app::pages::admin::webhooks::{
    AddWebhookDialog, WebhookAction, WebhookSecretPanel, WebhookTable,
};
use app::pages::key_actions::KeyAction;
use app::pages::keys::{FilterBar, GenerateKeyDialog, KeyTable};
use leptos::prelude::*;
use model::api::{MeNamespace, NamespaceKind, NamespaceView, UsageItem, VerifyCode};
use model::domain::{KeyStatus, PermissionScope};
use wasm_bindgen::JsCast;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use web_sys::{HtmlElement, HtmlInputElement, HtmlSelectElement};

wasm_bindgen_test_configure!(run_in_browser);

mod fixtures;

use fixtures::{member, view_of};

const KEY: &str = "kg_AAAAAAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB000000";

fn fresh_root() -> HtmlElement {
    let document = web_sys::window()
        .and_then(|w| w.document())
        .expect("a document");
    let root: HtmlElement = document
        .create_element("div")
        .expect("div")
        .unchecked_into();
    document
        .body()
        .expect("body")
        .append_child(&root)
        .expect("append");
    root
}

fn find(root: &HtmlElement, testid: &str) -> Option<web_sys::Element> {
    root.query_selector(&format!("[data-testid={testid}]"))
        .expect("selector")
}

fn count(root: &HtmlElement, testid: &str) -> u32 {
    root.query_selector_all(&format!("[data-testid={testid}]"))
        .expect("selector")
        .length()
}

#[wasm_bindgen_test]
async fn new_key_is_shown_once_with_a_warning_and_forgotten_on_close() {
    let root = fresh_root();
    let shown = RwSignal::new(Some(KEY.to_string()));
    let _handle = leptos::mount::mount_to(root.clone(), move || {
        view! {
            {move || shown.get().map(|plaintext| view! {
                <NewKeyPanel plaintext on_close=Callback::new(move |()| shown.set(None))/>
            })}
        }
    });
    leptos::task::tick().await;
    let text = find(&root, "new-key-plaintext").and_then(|e| e.text_content());
    assert_eq!(text.as_deref(), Some(KEY));
    let warning = find(&root, "new-key-warning")
        .and_then(|e| e.text_content())
        .unwrap_or_default();
    assert!(warning.contains("will not be shown again"), "{warning}");
    // The ways to verify it, the key filled in: curl first, each tab its own snippet.
    let snippet = |id: &str| {
        find(&root, &format!("snippet-{id}"))
            .and_then(|e| e.text_content())
            .unwrap_or_default()
    };
    let origin = web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default();
    assert!(snippet("curl").contains(KEY), "{}", snippet("curl"));
    assert!(snippet("curl").contains(&format!("{origin}/v1/keys/verify")));
    assert!(
        find(&root, "snippet-typescript").is_none(),
        "one tab shows at a time"
    );
    let tab: HtmlElement = find(&root, "snippet-tab-typescript")
        .expect("a TypeScript tab")
        .unchecked_into();
    tab.click();
    leptos::task::tick().await;
    assert!(snippet("typescript").contains(KEY));
    assert_eq!(tab.get_attribute("aria-selected").as_deref(), Some("true"));
    assert!(find(&root, "snippet-curl").is_none());

    let close: HtmlElement = find(&root, "new-key-close")
        .expect("close button")
        .unchecked_into();
    close.click();
    leptos::task::tick().await;
    assert!(find(&root, "new-key-panel").is_none());
    assert!(
        !root.inner_html().contains(KEY),
        "the plaintext is gone from the page"
    );
}

#[wasm_bindgen_test]
async fn key_table_lists_rows_or_says_there_are_none() {
    let root = fresh_root();
    let keys = vec![
        view_of("key_aaaaaaaaaaaa", "deploy", "ann"),
        view_of("key_bbbbbbbbbbbb", "backup", "bob"),
    ];
    let _a = leptos::mount::mount_to(
        root.clone(),
        move || view! { <KeyTable keys=keys.clone()/> },
    );
    leptos::task::tick().await;
    assert_eq!(count(&root, "key-row"), 2);
    assert!(root.inner_html().contains("key_bbbbbbbbbbbb"));

    // Namespaces by name with the id on hover; times relative with the exact time on hover;
    // a key expiring within a week says so.
    let names = std::sync::Arc::new(std::collections::HashMap::from([(
        "org_000000000000".to_string(),
        "Acme".to_string(),
    )]));
    let mut soon = view_of("key_cccccccccccc", "soon", "cy");
    soon.expires_at = Some(app::form::now() + time::Duration::days(3) + time::Duration::hours(1));
    let named = fresh_root();
    let _c = leptos::mount::mount_to(named.clone(), move || {
        view! { <KeyTable keys=vec![soon.clone()] namespace_names=names.clone()/> }
    });
    leptos::task::tick().await;
    let namespace = find(&named, "key-namespace").expect("the namespace cell");
    assert_eq!(namespace.text_content().as_deref(), Some("Acme"));
    assert_eq!(
        namespace.get_attribute("title").as_deref(),
        Some("org_000000000000")
    );
    let badge = find(&named, "expires-soon").and_then(|e| e.text_content());
    assert_eq!(badge.as_deref(), Some("expires in 3 days"));
    let times = named.query_selector_all("time").expect("times");
    let created = times
        .item(0)
        .expect("a time")
        .unchecked_into::<web_sys::Element>();
    assert_eq!(
        created.get_attribute("datetime").as_deref(),
        Some("1970-01-01T00:00:00Z")
    );
    assert_eq!(
        created.get_attribute("title").as_deref(),
        Some("1970-01-01 00:00 UTC")
    );
    assert!(
        created
            .text_content()
            .unwrap_or_default()
            .ends_with("years ago")
    );

    let empty = fresh_root();
    let _b = leptos::mount::mount_to(empty.clone(), || view! { <KeyTable keys=vec![]/> });
    leptos::task::tick().await;
    assert!(find(&empty, "keys-empty").is_some());
    assert!(find(&empty, "keys-table").is_none());
}

#[wasm_bindgen_test]
fn search_matches_name_id_and_owner() {
    let key = view_of("key_aaaaaaaaaaaa", "Deploy bot", "ann");
    for q in ["", "deploy", "KEY_AAAA", "ann@example", "ANN"] {
        assert!(key.matches(q), "{q}");
    }
    assert!(!key.matches("backup"));
    // The console's filter searches with the browser's lowercasing: the same matches.
    let filter = |q: &str| KeyFilter {
        q: q.into(),
        status: None,
    };
    for q in ["", "deploy", "KEY_AAAA", "ann@example", "ANN"] {
        assert!(filter(q).matches(&key), "{q}");
    }
    assert!(!filter("backup").matches(&key));
}

#[wasm_bindgen_test]
fn the_browser_lowercases_like_rust() {
    for text in [
        "Deploy BOT",
        "ÀÉÎÕÜ",
        "ΣΑΣ ΟΔΟΣ",
        "İstanbul",
        "ẞ STRASSE",
        "ǅ ǈ",
        "ＡＢＣ",
        "Ⓐ 𐐀",
    ] {
        assert_eq!(app::filter::lowercase(text), text.to_lowercase(), "{text}");
    }
}

#[wasm_bindgen_test]
async fn permission_picker_offers_only_what_is_held_with_a_hint() {
    let root = fresh_root();
    let namespaces = vec![MeNamespace {
        id: "org_000000000000".into(),
        kind: NamespaceKind::Organization,
        name: "Acme".into(),
        permissions: vec!["datasets.read".into(), "datasets.edit".into()],
        scopes: vec![
            PermissionScope {
                permission: "datasets.read".into(),
                resources: None,
            },
            PermissionScope {
                permission: "datasets.edit".into(),
                resources: Some(vec!["res_aaaaaaaaaaaa".into(), "res_bbbbbbbbbbbb".into()]),
            },
        ],
    }];
    let _handle = leptos::mount::mount_to(root.clone(), move || {
        view! {
            <GenerateKeyDialog namespaces=namespaces.clone()
                on_created=Callback::new(|_| ()) on_cancel=Callback::new(|()| ())/>
        }
    });
    leptos::task::tick().await;
    assert!(
        find(&root, "permission-picker").is_none(),
        "a role is preselected"
    );

    let select: HtmlSelectElement = find(&root, "new-key-rights")
        .expect("rights select")
        .unchecked_into();
    select.set_value("permissions");
    select
        .dispatch_event(&web_sys::Event::new("change").expect("event"))
        .expect("dispatch");
    leptos::task::tick().await;
    assert_eq!(
        count(&root, "permission-option"),
        2,
        "only the two held permissions are offered"
    );
    let hint = find(&root, "least-privilege-hint")
        .and_then(|e| e.text_content())
        .unwrap_or_default();
    assert!(hint.contains("a key can do no more than you can"), "{hint}");
    // Seed 000: a permission held on some resources is offered, saying what it will cover.
    let coverage = find(&root, "permission-coverage")
        .and_then(|e| e.text_content())
        .unwrap_or_default();
    assert!(
        coverage.contains("the 2 resources")
            && coverage.contains("res_aaaaaaaaaaaa, res_bbbbbbbbbbbb"),
        "{coverage}"
    );
    assert_eq!(
        count(&root, "permission-coverage"),
        1,
        "only the limited one"
    );

    let first: HtmlInputElement = find(&root, "permission-option")
        .expect("option")
        .unchecked_into();
    first.click();
    leptos::task::tick().await;
    let hint = find(&root, "least-privilege-hint")
        .and_then(|e| e.text_content())
        .unwrap_or_default();
    assert!(hint.contains("1 of the 2"), "{hint}");
}

fn click(root: &HtmlElement, testid: &str) {
    let el: HtmlElement = find(root, testid)
        .unwrap_or_else(|| panic!("{testid} is shown"))
        .unchecked_into();
    el.click();
}

fn type_into(root: &HtmlElement, testid: &str, text: &str) {
    let input: HtmlInputElement = find(root, testid)
        .unwrap_or_else(|| panic!("{testid} is shown"))
        .unchecked_into();
    input.set_value(text);
    input
        .dispatch_event(&web_sys::Event::new("input").expect("event"))
        .expect("dispatch");
}

fn choose(root: &HtmlElement, testid: &str, value: &str) {
    let select: HtmlSelectElement = find(root, testid)
        .unwrap_or_else(|| panic!("{testid} is shown"))
        .unchecked_into();
    select.set_value(value);
    select
        .dispatch_event(&web_sys::Event::new("change").expect("event"))
        .expect("dispatch");
}

fn press(target: &web_sys::Element, key: &str, shift: bool) {
    let init = web_sys::KeyboardEventInit::new();
    init.set_key(key);
    init.set_shift_key(shift);
    init.set_bubbles(true);
    init.set_cancelable(true);
    let event = web_sys::KeyboardEvent::new_with_keyboard_event_init_dict("keydown", &init)
        .expect("keyboard event");
    target.dispatch_event(&event).expect("dispatch");
}

fn active_testid() -> Option<String> {
    web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.active_element())
        .and_then(|e| e.get_attribute("data-testid"))
}

#[wasm_bindgen_test]
async fn the_key_table_filters_by_search_and_status() {
    let root = fresh_root();
    let mut revoked = view_of("key_cccccccccccc", "old deploy", "cy");
    revoked.status = KeyStatus::Revoked;
    let keys = vec![
        view_of("key_aaaaaaaaaaaa", "deploy", "ann"),
        view_of("key_bbbbbbbbbbbb", "backup", "bob"),
        revoked,
    ];
    let filter = RwSignal::new(KeyFilter::default());
    let _handle = leptos::mount::mount_to(root.clone(), move || {
        let keys = keys.clone();
        view! {
            <FilterBar filter/>
            {move || view! { <KeyTable keys=filter.with(|f| f.apply(keys.clone()))/> }}
        }
    });
    leptos::task::tick().await;
    assert_eq!(count(&root, "key-row"), 3);

    type_into(&root, "keys-search", "DEPLOY");
    leptos::task::tick().await;
    assert_eq!(
        count(&root, "key-row"),
        2,
        "search is case-insensitive over names"
    );

    choose(&root, "keys-status", "revoked");
    leptos::task::tick().await;
    assert_eq!(count(&root, "key-row"), 1);
    assert!(root.inner_html().contains("key_cccccccccccc"));

    type_into(&root, "keys-search", "bob@example");
    leptos::task::tick().await;
    assert!(
        find(&root, "keys-empty").is_some(),
        "bob's key is active, not revoked"
    );

    choose(&root, "keys-status", "");
    leptos::task::tick().await;
    assert_eq!(count(&root, "key-row"), 1, "the owner's email matches");
}

#[wasm_bindgen_test]
async fn a_dialog_takes_focus_keeps_tab_inside_closes_on_escape_and_gives_focus_back() {
    let root = fresh_root();
    let open = RwSignal::new(false);
    let _handle = leptos::mount::mount_to(root.clone(), move || {
        view! {
            <button data-testid="opener" on:click=move |_| open.set(true)>"Open"</button>
            <Show when=move || open.get()>
                <Dialog title="Test dialog" testid="test-dialog" on_close=Callback::new(move |()| open.set(false))>
                    <input data-testid="first"/>
                    <button data-testid="last">"Last"</button>
                </Dialog>
            </Show>
        }
    });
    leptos::task::tick().await;
    let opener: HtmlElement = find(&root, "opener").expect("opener").unchecked_into();
    opener.focus().expect("focus");
    opener.click();
    leptos::task::tick().await;
    leptos::task::tick().await;
    let dialog = find(&root, "test-dialog").expect("dialog is open");
    assert_eq!(dialog.get_attribute("role").as_deref(), Some("dialog"));
    assert_eq!(dialog.get_attribute("aria-modal").as_deref(), Some("true"));
    assert_eq!(
        active_testid().as_deref(),
        Some("first"),
        "focus moves inside"
    );

    let last: HtmlElement = find(&root, "last").expect("last").unchecked_into();
    last.focus().expect("focus");
    press(&last, "Tab", false);
    assert_eq!(
        active_testid().as_deref(),
        Some("first"),
        "Tab wraps to the first"
    );
    let first = find(&root, "first").expect("first");
    press(&first, "Tab", true);
    assert_eq!(
        active_testid().as_deref(),
        Some("last"),
        "Shift+Tab wraps to the last"
    );

    press(&last, "Escape", false);
    leptos::task::tick().await;
    assert!(find(&root, "test-dialog").is_none(), "Escape closes");
    assert_eq!(
        active_testid().as_deref(),
        Some("opener"),
        "focus goes back"
    );
}

#[wasm_bindgen_test]
async fn an_organization_maximum_makes_the_expiry_required_and_bounded() {
    let root = fresh_root();
    let namespaces = vec![MeNamespace {
        id: "org_000000000000".into(),
        kind: NamespaceKind::Organization,
        name: "Acme".into(),
        permissions: vec!["datasets.read".into()],
        scopes: Vec::new(),
    }];
    let _handle = leptos::mount::mount_to(root.clone(), move || {
        view! {
            <GenerateKeyDialog namespaces=namespaces.clone() max_expiry_days=Some(30)
                on_created=Callback::new(|_| ()) on_cancel=Callback::new(|()| ())/>
        }
    });
    leptos::task::tick().await;
    let expiry = find(&root, "new-key-expiry").expect("expiry input");
    assert!(expiry.has_attribute("required"));
    assert!(
        expiry.get_attribute("max").is_some(),
        "the picker stops at the maximum"
    );
    type_into(&root, "new-key-name", "ci");
    click(&root, "new-key-submit");
    leptos::task::tick().await;
    let error = find(&root, "form-error")
        .and_then(|e| e.text_content())
        .unwrap_or_default();
    assert!(error.contains("an expiry is required"), "{error}");
}

#[wasm_bindgen_test]
async fn the_admin_table_selects_every_row_for_bulk_revoke() {
    let root = fresh_root();
    let keys = vec![
        view_of("key_aaaaaaaaaaaa", "deploy", "ann"),
        view_of("key_bbbbbbbbbbbb", "backup", "bob"),
    ];
    let selected = RwSignal::new(BTreeSet::<String>::new());
    let _handle = leptos::mount::mount_to(root.clone(), move || {
        view! { <AdminKeyTable keys=keys.clone() selected on_revoke=Callback::new(|_| ())/> }
    });
    leptos::task::tick().await;
    click(&root, "select-all");
    leptos::task::tick().await;
    assert_eq!(selected.get_untracked().len(), 2);
    let first: HtmlInputElement = find(&root, "key-select")
        .expect("row checkbox")
        .unchecked_into();
    assert!(first.checked());
    first.click();
    leptos::task::tick().await;
    assert_eq!(
        selected.get_untracked().into_iter().collect::<Vec<_>>(),
        vec!["key_bbbbbbbbbbbb".to_string()]
    );
    assert_eq!(
        count(&root, "admin-key-revoke"),
        2,
        "active keys can be revoked one by one"
    );
}

#[wasm_bindgen_test]
async fn the_usage_chart_draws_a_bar_per_bucket_and_says_what_it_shows() {
    let since = time::macros::datetime!(2030-01-01 00:00 UTC);
    let until = since + time::Duration::hours(24);
    let item = |hour: i64, valid: u64, refused: u64| UsageItem {
        minute: since + time::Duration::hours(hour) + time::Duration::minutes(5),
        counts: [(VerifyCode::Valid, valid), (VerifyCode::Revoked, refused)]
            .into_iter()
            .collect(),
    };
    let items = vec![item(0, 3, 1), item(0, 2, 0), item(23, 0, 4), item(30, 9, 9)];
    let root = fresh_root();
    let _handle = leptos::mount::mount_to(root.clone(), move || {
        view! { <UsageChart items=items.clone() since until bars=24/> }
    });
    leptos::task::tick().await;
    assert_eq!(count(&root, "usage-bar"), 24);
    let label = root
        .query_selector("svg")
        .ok()
        .flatten()
        .and_then(|s| s.get_attribute("aria-label"))
        .unwrap_or_default();
    assert!(label.starts_with("5 valid and 5 refused"), "{label}");
    assert!(label.ends_with("(refused: 5 REVOKED)"), "{label}");
    // The first bar is stacked: its valid part, then its REVOKED part in that code's colour.
    let first = root
        .query_selector("[data-testid=usage-bar]")
        .ok()
        .flatten()
        .expect("a bar");
    let classes: Vec<String> = (0..first.children().length())
        .filter_map(|i| first.children().item(i))
        .filter(|e| e.tag_name() == "rect")
        .filter_map(|e| e.get_attribute("class"))
        .collect();
    assert_eq!(classes, ["code-0", "code-3"]);
    let legend = root
        .query_selector("figcaption")
        .ok()
        .flatten()
        .and_then(|f| f.text_content())
        .unwrap_or_default();
    assert!(legend.starts_with("valid REVOKED"), "{legend}");
}

fn group(id: &str, name: &str) -> NamespaceView {
    NamespaceView {
        id: id.into(),
        kind: NamespaceKind::Usergroup,
        name: name.into(),
        parent: Some("org_000000000000".into()),
    }
}

fn options_of(root: &HtmlElement, testid: &str) -> Vec<String> {
    let list = root
        .query_selector_all(&format!("[data-testid={testid}] option"))
        .expect("selector");
    (0..list.length())
        .filter_map(|i| list.item(i))
        .filter_map(|n| n.dyn_into::<web_sys::Element>().ok())
        .filter_map(|e| e.get_attribute("value"))
        .collect()
}

#[wasm_bindgen_test]
async fn group_membership_offers_every_member_and_asks_before_removing() {
    let root = fresh_root();
    let _handle = leptos::mount::mount_to(root.clone(), move || {
        view! {
            <GroupMembership groups=vec![group("grp_1", "ops"), group("grp_2", "dev")]
                members=vec![member("usr_a", "ann"), member("usr_b", "bob")]/>
        }
    });
    leptos::task::tick().await;
    assert_eq!(
        options_of(&root, "group-membership-group"),
        ["grp_1", "grp_2"]
    );
    assert_eq!(options_of(&root, "group-add-member"), ["usr_a", "usr_b"]);
    assert_eq!(options_of(&root, "group-remove-member"), ["usr_a", "usr_b"]);
    assert!(find(&root, "remove-group-member-dialog").is_none());

    choose(&root, "group-membership-group", "grp_2");
    choose(&root, "group-remove-member", "usr_b");
    click(&root, "group-remove-open");
    leptos::task::tick().await;
    let dialog = find(&root, "remove-group-member-dialog").expect("removal asks first");
    let title = dialog.text_content().unwrap_or_default();
    assert!(title.contains("Remove bob from dev?"), "{title}");
    assert!(find(&root, "remove-group-member-dialog-confirm").is_some());

    click(&root, "dialog-cancel");
    leptos::task::tick().await;
    assert!(
        find(&root, "remove-group-member-dialog").is_none(),
        "cancel removes nobody"
    );
}

#[wasm_bindgen_test]
async fn renaming_a_namespace_checks_the_name_by_the_models_rule() {
    let root = fresh_root();
    let done = RwSignal::new(false);
    let _handle = leptos::mount::mount_to(root.clone(), move || {
        view! {
            <RenameNamespaceDialog kind=Namespaces::Workspaces ns=group("wsp_1", "staging")
                on_done=Callback::new(move |()| done.set(true)) on_cancel=Callback::new(|()| {})/>
        }
    });
    leptos::task::tick().await;
    leptos::task::tick().await;
    let input: HtmlInputElement = find(&root, "rename-namespace-name")
        .expect("the name field")
        .unchecked_into();
    assert_eq!(input.value(), "staging", "starts from the current name");
    assert_eq!(active_testid().as_deref(), Some("rename-namespace-name"));

    type_into(&root, "rename-namespace-name", "   ");
    click(&root, "rename-namespace-submit");
    leptos::task::tick().await;
    let invalid = find(&root, "rename-namespace-invalid").expect("a blank name is refused");
    assert!(
        invalid
            .text_content()
            .unwrap_or_default()
            .starts_with("name:"),
        "the model's message"
    );
    assert!(!done.get_untracked(), "nothing was sent");
}

#[wasm_bindgen_test]
async fn a_row_menu_closes_on_escape_or_a_choice_and_its_dialog_returns_focus_to_it() {
    let root = fresh_root();
    let chosen = RwSignal::new(None::<(KeyAction, model::api::KeyView)>);
    let keys = vec![view_of("key_aaaaaaaaaaaa", "deploy", "ann")];
    let _handle = leptos::mount::mount_to(root.clone(), move || {
        view! {
            <KeyTable keys=keys.clone() on_action=Callback::new(move |c| chosen.set(Some(c)))/>
            {move || chosen.get().map(|_| view! {
                <Dialog title="Chosen" testid="chosen-dialog" on_close=Callback::new(move |()| chosen.set(None))>
                    <button data-testid="inside">"Inside"</button>
                </Dialog>
            })}
        }
    });
    leptos::task::tick().await;
    let menu = find(&root, "row-menu").expect("a row menu");
    let summary: HtmlElement = find(&root, "row-menu-open")
        .expect("its button")
        .unchecked_into();
    assert!(
        summary
            .text_content()
            .unwrap_or_default()
            .contains("Actions for deploy"),
        "the button is named for its row"
    );
    summary.click();
    assert!(menu.has_attribute("open"), "the button opens the menu");
    let inside_menu = find(&root, "key-rename").expect("rename in the menu");
    press(&inside_menu, "Escape", false);
    assert!(!menu.has_attribute("open"), "Escape closes it");
    assert_eq!(active_testid().as_deref(), Some("row-menu-open"));

    summary.click();
    let rename: HtmlElement = find(&root, "key-rename").expect("rename").unchecked_into();
    rename.focus().expect("focus");
    rename.click();
    leptos::task::tick().await;
    leptos::task::tick().await;
    assert!(!menu.has_attribute("open"), "a choice closes the menu");
    assert_eq!(
        chosen.get_untracked().map(|(kind, key)| (kind, key.id)),
        Some((KeyAction::Rename, "key_aaaaaaaaaaaa".to_string()))
    );
    let inside = find(&root, "inside").expect("the dialog is open");
    press(&inside, "Escape", false);
    leptos::task::tick().await;
    assert!(find(&root, "chosen-dialog").is_none());
    assert_eq!(
        active_testid().as_deref(),
        Some("row-menu-open"),
        "the focus is back on the menu's button, not on the hidden item"
    );
}

fn webhook(id: &str, url: &str, enabled: bool) -> model::api::WebhookView {
    model::api::WebhookView {
        id: id.into(),
        url: url.into(),
        events: vec!["key.created".into(), "key.leaked".into()],
        description: Some("pager".into()),
        enabled,
        created_at: time::OffsetDateTime::UNIX_EPOCH,
        updated_at: time::OffsetDateTime::UNIX_EPOCH,
    }
}

#[wasm_bindgen_test]
async fn a_webhook_secret_is_shown_once_and_forgotten_on_close() {
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let root = fresh_root();
    let shown = RwSignal::new(Some(SECRET.to_string()));
    let _handle = leptos::mount::mount_to(root.clone(), move || {
        view! {
            {move || shown.get().map(|secret| view! {
                <WebhookSecretPanel secret on_close=Callback::new(move |()| shown.set(None))/>
            })}
        }
    });
    leptos::task::tick().await;
    let text = find(&root, "webhook-secret").and_then(|e| e.text_content());
    assert_eq!(text.as_deref(), Some(SECRET));
    assert!(
        find(&root, "webhook-secret-copy").is_some(),
        "a copy button"
    );
    let warning = find(&root, "webhook-secret-warning")
        .and_then(|e| e.text_content())
        .unwrap_or_default();
    assert!(warning.contains("will not be shown again"), "{warning}");
    click(&root, "webhook-secret-close");
    leptos::task::tick().await;
    assert_eq!(shown.get_untracked(), None, "the owner dropped it");
    let html = root.inner_html();
    assert!(!html.contains(SECRET), "nothing of it stays in the page");
}

#[wasm_bindgen_test]
async fn adding_a_webhook_ticks_every_event_and_refuses_none_by_the_models_rule() {
    let root = fresh_root();
    let created = RwSignal::new(None::<String>);
    let _handle = leptos::mount::mount_to(root.clone(), move || {
        view! {
            <AddWebhookDialog on_created=Callback::new(move |s| created.set(Some(s)))
                on_cancel=Callback::new(|()| {})/>
        }
    });
    leptos::task::tick().await;
    leptos::task::tick().await;
    assert_eq!(active_testid().as_deref(), Some("webhook-url-input"));
    for kind in model::webhook::EVENTS {
        let checkbox: HtmlInputElement =
            find(&root, &format!("webhook-event-{}", kind.replace('.', "-")))
                .unwrap_or_else(|| panic!("a checkbox for {kind}"))
                .unchecked_into();
        assert!(checkbox.checked(), "{kind} is ticked at first");
        checkbox.click();
        assert!(!checkbox.checked(), "{kind} can be unticked");
    }
    type_into(&root, "webhook-url-input", "https://hooks.example/keygate");
    click(&root, "webhook-submit");
    leptos::task::tick().await;
    let invalid = find(&root, "webhook-invalid")
        .and_then(|e| e.text_content())
        .unwrap_or_default();
    assert!(invalid.starts_with("events: at least one"), "{invalid}");
    assert_eq!(created.get_untracked(), None, "nothing was sent");
}

#[wasm_bindgen_test]
async fn the_webhook_table_offers_each_rows_actions_in_its_menu() {
    let root = fresh_root();
    let picked = RwSignal::new(None::<(WebhookAction, String)>);
    let hooks = vec![
        webhook("wh_aaaaaaaaaaaa", "https://a.example/k", true),
        webhook("wh_bbbbbbbbbbbb", "https://b.example/k", false),
    ];
    let _handle = leptos::mount::mount_to(root.clone(), move || {
        view! {
            <WebhookTable items=hooks.clone()
                on_pick=Callback::new(move |(action, hook): (WebhookAction, model::api::WebhookView)| picked.set(Some((action, hook.id))))/>
        }
    });
    leptos::task::tick().await;
    assert_eq!(count(&root, "webhook-row"), 2);
    let statuses: Vec<String> = (0..2)
        .map(|i| {
            root.query_selector_all("[data-testid=webhook-status]")
                .expect("selector")
                .item(i)
                .and_then(|n| n.text_content())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(statuses, ["Enabled", "Disabled"]);
    // The enabled one offers Disable, the disabled one Enable; each row offers the rest.
    assert_eq!(count(&root, "webhook-disable"), 1);
    assert_eq!(count(&root, "webhook-enable"), 1);
    assert_eq!(count(&root, "webhook-test"), 2);
    assert_eq!(count(&root, "webhook-deliveries"), 2);
    let enable: HtmlElement = find(&root, "webhook-enable")
        .expect("enable")
        .unchecked_into();
    enable.click();
    leptos::task::tick().await;
    assert_eq!(
        picked.get_untracked(),
        Some((WebhookAction::Enable, "wh_bbbbbbbbbbbb".to_string()))
    );
}

#[wasm_bindgen_test]
async fn no_webhooks_reads_as_a_sentence() {
    let root = fresh_root();
    let _handle = leptos::mount::mount_to(root.clone(), move || {
        view! { <WebhookTable items=vec![] on_pick=Callback::new(|_| {})/> }
    });
    leptos::task::tick().await;
    assert!(find(&root, "webhooks-empty").is_some());
    assert!(find(&root, "webhooks-table").is_none());
}
