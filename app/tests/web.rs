//! The console's components in headless Chromium: each test mounts into a fresh element,
//! lets the reactive system run, and asserts what a person would see.

use app::components::new_key::NewKeyPanel;
use app::form::{NewKeyForm, RightsChoice, least_privilege_hint};
use app::pages::keys::{GenerateKeyDialog, KeyTable};
use leptos::prelude::*;
use model::api::{KeyOwner, KeyView, MeNamespace, NamespaceKind};
use model::domain::{KeyRole, KeyStatus};
use wasm_bindgen::JsCast;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use web_sys::{HtmlElement, HtmlInputElement, HtmlSelectElement};

wasm_bindgen_test_configure!(run_in_browser);

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

fn view_of(id: &str, name: &str, owner: &str) -> KeyView {
    let t = time::OffsetDateTime::UNIX_EPOCH;
    KeyView {
        id: id.into(),
        name: name.into(),
        description: None,
        namespace: "org_000000000000".into(),
        owner: KeyOwner {
            id: "usr_000000000000".into(),
            name: owner.into(),
            email: format!("{owner}@example.com"),
        },
        role: Some(KeyRole::Viewer),
        permissions: vec![],
        status: KeyStatus::Active,
        created_at: t,
        updated_at: t,
        expires_at: None,
        revoked_at: None,
        last_used_at: None,
        extensive_use: false,
    }
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
        assert!(model::rules::key_matches(&key, q), "{q}");
    }
    assert!(!model::rules::key_matches(&key, "backup"));
}

#[wasm_bindgen_test]
async fn permission_picker_offers_only_what_is_held_with_a_hint() {
    let root = fresh_root();
    let namespaces = vec![MeNamespace {
        id: "org_000000000000".into(),
        kind: NamespaceKind::Organization,
        name: "Acme".into(),
        permissions: vec!["datasets.read".into(), "datasets.edit".into()],
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

#[wasm_bindgen_test]
fn the_form_applies_the_models_rules() {
    let mut form = NewKeyForm::new("org_000000000000".into());
    assert!(form.to_request().is_err(), "a name is required");
    form.name = "  ci  ".into();
    let request = form.to_request().expect("valid");
    assert_eq!(
        (request.name.as_str(), request.role),
        ("ci", Some(KeyRole::Viewer))
    );
    form.rights = RightsChoice::Permissions(vec![]);
    assert!(
        form.to_request().is_err(),
        "an empty permission list is refused"
    );
    form.rights = RightsChoice::Permissions(vec!["datasets.read".into()]);
    form.expiry = "2031-02-03".into();
    let request = form.to_request().expect("valid");
    assert_eq!(request.permissions.map(|p| p.len()), Some(1));
    assert_eq!(
        request.expires_at.map(|t| t.to_string()),
        Some("2031-02-03 23:59:59.0 +00:00:00".into())
    );
    assert_eq!(
        least_privilege_hint(2, 2),
        "This key gets every permission you hold here; fewer is safer."
    );
}
