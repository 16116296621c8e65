//! The console's plain-type logic, natively: forms, routes, the chart's buckets, the pickers
//! and the actions offered. Nothing here needs a browser (`web.rs` has what does), so these
//! run with `cargo test -p app --test plain` in seconds.

mod fixtures;

use std::collections::BTreeSet;

use app::components::key_cells::{exact, expiry_soon, relative};
use app::components::usage_chart::buckets;
use app::form::{NewKeyForm, RightsChoice, SettingsForm, least_privilege_hint};
use app::names::Names;
use app::pages::admin::events::describe;
use app::pages::admin::group_members::member_choices;
use app::pages::admin::permissions::principals;
use app::pages::key_actions::KeyAction;
use app::route::{AdminPage, Route};
use app::snippet::snippets;
use fixtures::{member, view_of};
use model::api::SettingsView;
use model::api::{UsageItem, VerifyCode};
use model::domain::{KeyRole, KeyStatus, Settings};

#[test]
fn the_form_applies_the_models_rules() {
    let now = time::macros::datetime!(2030-01-01 12:00 UTC);
    let mut form = NewKeyForm::new("org_000000000000".into());
    assert!(form.to_request(now, None).is_err(), "a name is required");
    form.name = "  ci  ".into();
    let request = form.to_request(now, None).expect("valid");
    assert_eq!(
        (request.name.as_str(), request.role),
        ("ci", Some(KeyRole::Viewer))
    );
    form.rights = RightsChoice::Permissions(vec![]);
    assert!(
        form.to_request(now, None).is_err(),
        "an empty permission list is refused"
    );
    form.rights = RightsChoice::Permissions(vec!["datasets.read".into()]);
    form.expiry = "2031-02-03".into();
    let request = form.to_request(now, None).expect("valid");
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

#[test]
fn the_expiry_is_clamped_to_the_maximum_and_checked_by_the_model() {
    let now = time::macros::datetime!(2030-01-01 12:00 UTC);
    let mut form = NewKeyForm::new("org_000000000000".into());
    form.name = "ci".into();
    form.expiry = "2030-01-31".into();
    let request = form
        .to_request(now, Some(30))
        .expect("the last day is allowed");
    assert_eq!(request.expires_at, Some(now + time::Duration::days(30)));
    form.expiry = "2030-02-01".into();
    assert!(
        form.to_request(now, Some(30)).is_err(),
        "beyond the maximum"
    );
    form.expiry = "2029-12-31".into();
    assert!(form.to_request(now, None).is_err(), "in the past");
}

#[test]
fn routes_round_trip_through_the_fragment() {
    for route in [
        Route::MyKeys,
        Route::Invitation("tok123".into()),
        Route::Setup("kgu_tok".into()),
        Route::Admin(AdminPage::Overview),
        Route::Admin(AdminPage::Keys),
        Route::Admin(AdminPage::Settings),
        Route::Admin(AdminPage::Events(None)),
        Route::Admin(AdminPage::Events(Some("key_aaaaaaaaaaaa".into()))),
        Route::Admin(AdminPage::Members),
        Route::Admin(AdminPage::Namespaces),
        Route::Admin(AdminPage::Permissions),
        Route::Admin(AdminPage::Webhooks),
    ] {
        assert_eq!(Route::parse(&route.href()), route);
    }
    assert_eq!(Route::parse(""), Route::MyKeys);
    assert_eq!(Route::parse("#/nowhere"), Route::MyKeys);
}

#[test]
fn the_settings_form_sends_only_what_changed() {
    let current = SettingsView::from(&Settings::default());
    let mut form = SettingsForm::from_settings(&current);
    let patch = form.to_patch(&current).expect("valid");
    assert!(patch.api_keys_enabled.is_none() && patch.max_expiry_days.is_none());
    form.api_keys_enabled = true;
    form.max_expiry_days = "90".into();
    let patch = form.to_patch(&current).expect("valid");
    assert_eq!(patch.api_keys_enabled, Some(true));
    assert_eq!(patch.max_expiry_days, Some(Some(90)));
    assert_eq!(patch.max_active_keys_per_user, None);
    form.max_active_keys_per_user = "lots".into();
    assert!(form.to_patch(&current).is_err());
}

#[test]
fn only_active_keys_can_be_rolled_or_revoked() {
    assert!(KeyAction::offered(KeyStatus::Active).contains(&KeyAction::Revoke));
    let revoked = KeyAction::offered(KeyStatus::Revoked);
    assert!(!revoked.contains(&KeyAction::Revoke) && !revoked.contains(&KeyAction::Roll));
    assert!(revoked.contains(&KeyAction::Delete) && revoked.contains(&KeyAction::Info));
}

#[test]
fn the_member_picker_leaves_out_who_is_known_to_be_in_the_group() {
    let members = vec![
        member("usr_a", "ann"),
        member("usr_b", "bob"),
        member("usr_c", "cy"),
    ];
    let mut known = BTreeSet::new();
    known.insert(("grp_1".to_string(), "usr_b".to_string()));
    let ids = |group: &str| -> Vec<String> {
        member_choices(&members, group, &known)
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    };
    assert_eq!(ids("grp_1"), ["usr_a", "usr_c"], "bob is already in grp_1");
    assert_eq!(
        ids("grp_2"),
        ["usr_a", "usr_b", "usr_c"],
        "but not in grp_2"
    );
    assert_eq!(
        member_choices(&members, "grp_1", &known)[0].1,
        "ann <ann@example.com>"
    );
}

#[test]
fn a_grant_can_name_a_key_as_its_principal() {
    let keys = vec![view_of("key_1", "ci", "bob")];
    let groups = vec![("grp_1".to_string(), "ops".to_string())];
    let all = principals(&[member("usr_a", "ann")], &groups, &keys);
    let ids: Vec<&str> = all.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["usr_a", "grp_1", "key_1"]);
    assert!(all[2].1.starts_with("key ci of "), "{}", all[2].1);
    assert_eq!(all[1].1, "group ops");
}

#[test]
fn the_usage_chart_adds_minutes_into_bars() {
    let since = time::macros::datetime!(2030-01-01 00:00 UTC);
    let until = since + time::Duration::hours(24);
    let item = |hour: i64, valid: u64, refused: u64| UsageItem {
        minute: since + time::Duration::hours(hour) + time::Duration::minutes(5),
        counts: [(VerifyCode::Valid, valid), (VerifyCode::Revoked, refused)]
            .into_iter()
            .collect(),
    };
    let items = vec![item(0, 3, 1), item(0, 2, 0), item(23, 0, 4), item(30, 9, 9)];
    let bars = buckets(&items, since, until, 24);
    assert_eq!(bars.len(), 24);
    assert_eq!((bars[0].valid, bars[0].refused), (5, 1));
    assert_eq!((bars[23].valid, bars[23].refused), (0, 4));
    assert_eq!(
        bars.iter().map(|b| b.valid + b.refused).sum::<u64>(),
        10,
        "outside the window is ignored"
    );
    // Each outcome keeps its own count, for a bar stacked by code.
    let revoked = app::components::usage_chart::code_index(VerifyCode::Revoked);
    assert_eq!(VerifyCode::ALL[revoked], VerifyCode::Revoked);
    assert_eq!((bars[0].by_code[0], bars[0].by_code[revoked]), (5, 1));
    assert_eq!(bars[23].by_code[revoked], 4);
    assert_eq!(bars[0].by_code.iter().sum::<u64>(), 6);
}

/// What a POSIX shell makes of `command`'s arguments after its first word: the snippet is run
/// by `sh` with the program replaced by `printf`, one argument per line.
fn shell_arguments(command: &str) -> Vec<String> {
    let (_, rest) = command.split_once(' ').expect("a command with arguments");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("printf '%s\\n' {rest}"))
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_new_keys_snippets_verify_it_and_quote_what_they_hold() {
    let key = "kg_0123456789abcdefABCDEF";
    // An origin with a quote: shell quoting must hold it whole.
    for origin in ["https://keys.example.com", "http://o'hara.test:8080"] {
        let all = snippets(origin, key);
        let ids: Vec<&str> = all.iter().map(|s| s.id).collect();
        assert_eq!(ids, ["curl", "cli", "typescript", "rust"]);
        for snippet in &all {
            assert_eq!(snippet.text.matches(key).count(), 1, "{}", snippet.text);
        }
        let curl = shell_arguments(&all[0].text.replace("\\\n", " "));
        assert_eq!(
            curl,
            [
                "-s",
                "-X",
                "POST",
                &format!("{origin}/v1/keys/verify"),
                "-H",
                "content-type: application/json",
                "-d",
                &serde_json::json!({"key": key}).to_string(),
            ]
        );
        let body: serde_json::Value = serde_json::from_str(&curl[7]).expect("the body is JSON");
        assert_eq!(body["key"], key);
        let (feed, cli) = all[1].text.split_once(" | ").expect("a pipe");
        assert_eq!(
            shell_arguments(feed),
            ["%s\\n", key],
            "printf gets its format and the key"
        );
        assert_eq!(shell_arguments(cli), ["--url", origin, "keys", "verify"]);
        let quoted = serde_json::to_string(origin).expect("json");
        assert!(
            all[2].text.contains(&format!("baseUrl: {quoted}")),
            "{}",
            all[2].text
        );
        assert!(
            all[3].text.contains(&format!("Client::new({quoted})")),
            "{}",
            all[3].text
        );
    }
}

#[test]
fn times_read_as_people_say_them() {
    let now = time::macros::datetime!(2026-12-02 13:45:10 UTC);
    let cases: [(i64, &str); 16] = [
        (0, "just now"),
        (-44, "just now"),
        (-45, "1 minute ago"),
        (-119, "1 minute ago"),
        (-120, "2 minutes ago"),
        (-3_599, "59 minutes ago"),
        (-3_600, "1 hour ago"),
        (-86_399, "23 hours ago"),
        (-86_400, "yesterday"),
        (-3 * 86_400 - 5, "3 days ago"),
        (86_400, "tomorrow"),
        (5 * 86_400 + 3_600, "in 5 days"),
        (6 * 86_400 + 86_399, "in 6 days"),
        (45 * 86_400, "in 1 month"),
        (-400 * 86_400, "1 year ago"),
        (3 * 3_600, "in 3 hours"),
    ];
    for (offset, said) in cases {
        let at = now + time::Duration::seconds(offset);
        assert_eq!(relative(now, at), said, "{offset} s");
    }
    assert_eq!(exact(now), "2026-12-02 13:45 UTC");

    let in_days = |d: i64| Some(now + time::Duration::days(d));
    assert_eq!(
        expiry_soon(now, in_days(5)).as_deref(),
        Some("expires in 5 days")
    );
    assert_eq!(
        expiry_soon(now, in_days(7)).as_deref(),
        Some("expires in 7 days")
    );
    assert_eq!(expiry_soon(now, in_days(8)), None, "more than a week away");
    assert_eq!(
        expiry_soon(now, in_days(-1)),
        None,
        "expired: the status says so"
    );
    assert_eq!(expiry_soon(now, None), None, "never expires");
    let soon = Some(now + time::Duration::hours(3));
    assert_eq!(
        expiry_soon(now, soon).as_deref(),
        Some("expires in 3 hours")
    );
}

#[test]
fn events_read_as_sentences() {
    use serde_json::json;
    let event = |kind: &str, details: serde_json::Value| model::api::EventView {
        id: "evt_1".into(),
        kind: kind.into(),
        at: time::OffsetDateTime::UNIX_EPOCH,
        actor: model::api::Actor {
            kind: "user".into(),
            id: "usr_1".into(),
        },
        target: None,
        details,
    };
    let grant = json!({"permission": "datasets.read", "namespace": "ns_1",
        "principal": "usr_2", "resources": ["res_a", "res_b"]});
    let cases = [
        (
            "key.created",
            json!({"name": "ci", "namespace": "org_1"}),
            "created key “ci” in org_1",
        ),
        (
            "key.updated",
            json!({"name": "ci-prod", "previous_name": "ci"}),
            "renamed the key from “ci” to “ci-prod”",
        ),
        (
            "key.updated",
            json!({"name": "ci", "previous_name": "ci"}),
            "changed the key's description",
        ),
        (
            "key.updated",
            json!({"name": "ci-prod"}),
            "renamed the key to “ci-prod”",
        ),
        (
            "key.rolled",
            json!({"grace_seconds": 60}),
            "rolled the key; the old secret works 60 s more",
        ),
        (
            "key.rolled",
            json!({"grace_seconds": 0}),
            "rolled the key; the old secret stopped at once",
        ),
        ("key.revoked", json!({}), "revoked the key"),
        (
            "key.leaked",
            json!({"source": "public report", "url": null, "revoked": true}),
            "revoked the key: it was reported leaked (public report)",
        ),
        (
            "key.leaked",
            json!({"source": "github", "url": "https://github.com/o/r/blob/x/.env", "revoked": true}),
            "revoked the key: it leaked at https://github.com/o/r/blob/x/.env (github)",
        ),
        (
            "key.deleted",
            json!({"resources": 2, "transferred_to": "usr_2"}),
            "deleted the key; its 2 resources went to usr_2",
        ),
        (
            "key.deleted",
            json!({"resources": 0, "transferred_to": null}),
            "deleted the key",
        ),
        (
            "member.invited",
            json!({"email": "ann@x.test", "roles": ["developer"]}),
            "invited ann@x.test as developer",
        ),
        (
            "member.roles_changed",
            json!({"from": ["developer"], "to": ["admin", "developer"]}),
            "changed roles from developer to admin, developer",
        ),
        (
            "grant.changed",
            json!({"added": grant}),
            "granted datasets.read in ns_1 on res_a, res_b to usr_2",
        ),
        (
            "grant.changed",
            json!({"removed": {"permission": "x.read", "namespace": "ns_1", "principal": "key_1", "resources": null}}),
            "removed the grant of x.read in ns_1 to key_1",
        ),
        (
            "settings.updated",
            json!({"api_keys_enabled": true}),
            "changed the settings: API keys on",
        ),
        (
            "login.failed",
            json!({"email": "ann@x.test"}),
            "a sign-in as ann@x.test failed",
        ),
        (
            "key.expiring",
            json!({"days_left": 7, "name": "ci"}),
            "reminded: the key expires in 7 days",
        ),
        (
            "key.expiring",
            json!({"days_left": 1, "name": "ci"}),
            "reminded: the key expires within a day",
        ),
        ("key.expired", json!({"name": "ci"}), "the key expired"),
        (
            "webhook.created",
            json!({"webhook_id": "wh_1", "url": "https://h.example/k", "events": ["key.created", "key.leaked"]}),
            "added a webhook to https://h.example/k for key.created, key.leaked",
        ),
        (
            "webhook.updated",
            json!({"url": "https://h.example/k", "events": ["key.leaked"], "enabled": false}),
            "changed the webhook to https://h.example/k: disabled, for key.leaked",
        ),
        (
            "webhook.deleted",
            json!({"url": "https://h.example/k"}),
            "deleted the webhook to https://h.example/k",
        ),
        ("something.new", json!({"a": 1}), "something.new"),
    ];
    for (kind, details, said) in cases {
        assert_eq!(
            describe(&event(kind, details), &Names::default()),
            said,
            "{kind}"
        );
    }
    // With the organization's names, members and namespaces read by name.
    let names = acme_names();
    let named = [
        (
            "key.created",
            json!({"name": "ci", "namespace": "org_000000000000"}),
            "created key “ci” in Acme",
        ),
        (
            "grant.changed",
            json!({"added": {"permission": "datasets.read", "namespace": "ws_000000000000",
                "principal": "usr_000000000001", "resources": null}}),
            "granted datasets.read in Research to Ann Lee",
        ),
        (
            "key.deleted",
            json!({"resources": 3, "transferred_to": "usr_000000000001"}),
            "deleted the key; its 3 resources went to Ann Lee",
        ),
    ];
    for (kind, details, said) in named {
        assert_eq!(describe(&event(kind, details), &names), said, "{kind}");
    }
}

fn acme_names() -> Names {
    use model::api::{NamespaceView, OrganizationView, UserView};
    use model::domain::{NamespaceKind, Role};
    Names::new(
        &OrganizationView {
            id: "org_000000000000".into(),
            name: "Acme".into(),
        },
        [UserView {
            id: "usr_000000000001".into(),
            email: "ann@acme.test".into(),
            name: "Ann Lee".into(),
            roles: vec![Role::Admin],
        }],
        [NamespaceView {
            id: "ws_000000000000".into(),
            kind: NamespaceKind::Workspace,
            name: "Research".into(),
            parent: Some("org_000000000000".into()),
        }],
    )
}

#[test]
fn actors_read_by_name_and_targets_link_to_their_page() {
    use model::api::Actor;
    let names = acme_names();
    let actor = |kind: &str, id: &str| {
        let label = names.actor(&Actor {
            kind: kind.into(),
            id: id.into(),
        });
        (label.primary, label.secondary)
    };
    let actors = [
        (
            ("user", "usr_000000000001"),
            ("Ann Lee", Some("ann@acme.test")),
        ),
        (
            ("user", "usr_gone00000000"),
            ("former member usr_gone00000000", None),
        ),
        (
            ("key", "key_000000000009"),
            ("API key key_000000000009", None),
        ),
        (("instance", "instance"), ("Keygate", None)),
        (
            ("instance", "public report"),
            ("Keygate", Some("public report")),
        ),
    ];
    for ((kind, id), (primary, secondary)) in actors {
        assert_eq!(
            actor(kind, id),
            (primary.to_owned(), secondary.map(str::to_owned)),
            "{kind} {id}"
        );
    }
    let targets = [
        (
            "key_000000000009",
            "key_000000000009",
            Some("#/admin/events/key_000000000009"),
        ),
        ("usr_000000000001", "Ann Lee", Some("#/admin/members")),
        ("ws_000000000000", "Research", Some("#/admin/namespaces")),
        ("org_000000000000", "Acme", Some("#/admin/namespaces")),
        (
            "wh_000000000000",
            "wh_000000000000",
            Some("#/admin/webhooks"),
        ),
        ("res_000000000000", "res_000000000000", None),
    ];
    for (id, label, href) in targets {
        let t = names.target(id);
        assert_eq!(
            (t.label.as_str(), t.href.as_deref(), t.id.as_str()),
            (label, href, id),
            "{id}"
        );
    }
}

#[test]
fn the_overview_lists_valid_first_then_refusals_most_first() {
    use model::api::UsageBucket;
    let at = time::OffsetDateTime::UNIX_EPOCH;
    let bucket = |counts: &[(VerifyCode, u64)]| UsageBucket {
        start: at,
        counts: counts.iter().copied().collect(),
    };
    type Case = (&'static str, Vec<UsageBucket>, Vec<(&'static str, u64)>);
    let cases: &[Case] = &[
        ("nothing", vec![], vec![]),
        ("empty buckets", vec![bucket(&[]), bucket(&[])], vec![]),
        (
            "summed over buckets; VALID first although fewer",
            vec![
                bucket(&[(VerifyCode::Valid, 1), (VerifyCode::Revoked, 2)]),
                bucket(&[(VerifyCode::Revoked, 3), (VerifyCode::Expired, 5)]),
            ],
            vec![("VALID", 1), ("EXPIRED", 5), ("REVOKED", 5)],
        ),
        (
            "a zero count is left out",
            vec![bucket(&[(VerifyCode::Valid, 0), (VerifyCode::Disabled, 1)])],
            vec![("DISABLED", 1)],
        ),
    ];
    for (name, buckets, expected) in cases {
        let got = app::pages::admin::overview::outcomes(buckets);
        let expected: Vec<(String, u64)> = expected
            .iter()
            .map(|(c, n)| ((*c).to_owned(), *n))
            .collect();
        assert_eq!(got, expected, "{name}");
    }
}

#[test]
fn a_grant_names_its_principal_and_namespace_or_keeps_an_unknown_id() {
    use app::pages::admin::permissions::label_of;
    let choices = vec![
        (
            "usr_000000000001".to_string(),
            "Ann Lee <ann@acme.test>".to_string(),
        ),
        ("grp_000000000001".to_string(), "group ops".to_string()),
    ];
    let cases = [
        ("usr_000000000001", "Ann Lee <ann@acme.test>"),
        ("grp_000000000001", "group ops"),
        ("key_000000000001", "key_000000000001"),
    ];
    for (id, label) in cases {
        assert_eq!(label_of(&choices, id), label, "{id}");
    }
}

#[test]
fn the_webhook_form_applies_the_models_rules() {
    use app::pages::admin::webhooks::WebhookForm;
    let every: Vec<String> = model::webhook::EVENTS
        .iter()
        .map(|e| (*e).to_owned())
        .collect();
    let form = |url: &str, events: &[&str], description: &str| WebhookForm {
        url: url.into(),
        description: description.into(),
        events: events.iter().map(|e| (*e).to_owned()).collect(),
    };
    // Every event type is ticked at first.
    let fresh = WebhookForm::default();
    assert_eq!(
        fresh.events.iter().cloned().collect::<Vec<_>>().len(),
        every.len()
    );
    let long_url = format!(
        "https://h.example/{}",
        "a".repeat(model::webhook::MAX_URL_CHARS)
    );
    let long_description = "d".repeat(model::rules::MAX_DESCRIPTION_CHARS + 1);
    type Case<'a> = (
        &'a str,
        WebhookForm,
        Result<(&'a str, Vec<&'a str>), &'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            "trimmed, events in the model's order",
            form(" https://h.example/k ", &["key.leaked", "key.created"], ""),
            Ok(("https://h.example/k", vec!["key.created", "key.leaked"])),
        ),
        ("no url", form("  ", &["key.created"], ""), Err("url:")),
        (
            "too long a url",
            form(&long_url, &["key.created"], ""),
            Err("url: at most"),
        ),
        (
            "no event",
            form("https://h.example/k", &[], ""),
            Err("events: at least one"),
        ),
        (
            "an unknown event",
            form("https://h.example/k", &["key.sold"], ""),
            Err("events: `key.sold` is not an event type"),
        ),
        (
            "too long a description",
            form("https://h.example/k", &["key.created"], &long_description),
            Err("description"),
        ),
    ];
    for (what, form, expected) in cases {
        match (form.to_request(), expected) {
            (Ok(request), Ok((url, events))) => {
                assert_eq!(request.url, url, "{what}");
                assert_eq!(request.events, events, "{what}");
                assert_eq!(request.description, None, "{what}");
            }
            (Err(message), Err(start)) => assert!(message.starts_with(start), "{what}: {message}"),
            (got, want) => panic!("{what}: got {:?}, want {want:?}", got.map(|r| r.url)),
        }
    }
    // The checkboxes explain exactly the model's event types, in its order.
    let explained: Vec<&str> = app::pages::admin::webhooks::EVENT_HELP
        .iter()
        .map(|(k, _)| *k)
        .collect();
    assert_eq!(explained, model::webhook::EVENTS.to_vec());
}

#[test]
fn a_webhook_offers_to_switch_the_other_way_and_attempts_read_as_words() {
    use app::pages::admin::webhooks::{WebhookAction, outcome};
    use model::api::{AttemptStatus, DeliveryView, WebhookView};
    let hook = |enabled| WebhookView {
        id: "wh_1".into(),
        url: "https://h.example/k".into(),
        events: vec!["key.created".into()],
        description: None,
        enabled,
        created_at: time::OffsetDateTime::UNIX_EPOCH,
        updated_at: time::OffsetDateTime::UNIX_EPOCH,
    };
    assert!(WebhookAction::offered(&hook(true)).contains(&WebhookAction::Disable));
    assert!(!WebhookAction::offered(&hook(true)).contains(&WebhookAction::Enable));
    assert!(WebhookAction::offered(&hook(false)).contains(&WebhookAction::Enable));
    let attempt = |status, response_code, error: Option<&str>| DeliveryView {
        id: "att_1".into(),
        message_id: "msg_1".into(),
        kind: "key.created".into(),
        at: time::OffsetDateTime::UNIX_EPOCH,
        attempt: 1,
        status,
        response_code,
        duration_ms: 12,
        error: error.map(str::to_owned),
        next_attempt_at: None,
    };
    let cases = [
        (
            attempt(AttemptStatus::Succeeded, Some(204), None),
            "delivered: 204 in 12 ms",
        ),
        (
            attempt(AttemptStatus::Retrying, Some(500), None),
            "answered 500; will retry",
        ),
        (
            attempt(AttemptStatus::Retrying, None, Some("connection refused")),
            "connection refused; will retry",
        ),
        (
            attempt(AttemptStatus::Failed, Some(410), None),
            "failed: answered 410",
        ),
        (
            attempt(AttemptStatus::Failed, None, None),
            "failed: no answer",
        ),
    ];
    for (delivery, said) in cases {
        assert_eq!(outcome(&delivery), said);
    }
}
