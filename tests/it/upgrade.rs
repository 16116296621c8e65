//! The upgrade guarantee (SPEC §11): a store written by an earlier release opens in this one,
//! its keys verify as they did and its events read. The fixture was written by
//! `cargo run -p tests --bin upgrade-fixture`; every stored-format change adds a migration
//! (`server/src/store.rs`) that this test then runs on it.

use keygate_client::{Client, endpoints as e};
use model::api::{EventQuery, VerifyCode};
use model::domain::KeyStatus;
use model::http::{NoBody, NoQuery};
use serde_json::Value;
use tests::Host;

fn plaintext(hex: &str) -> String {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    String::from_utf8(bytes).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_of_the_first_format_opens_and_its_keys_verify() {
    let fixture = tests::upgrade_fixture();
    let about: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture.join("keys.json")).expect("keys.json"),
    )
    .expect("keys.json is JSON");
    // A copy: the server writes (the format marker, sessions), and the fixture stays as the
    // older release left it.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).expect("mkdir");
    std::fs::copy(fixture.join("keygate.redb"), store.join("keygate.redb")).expect("copy");
    let host = Host::server_with(&store, None, &[])
        .await
        .expect("this release opens the older store");

    let key = |name: &str| {
        let entry = &about["keys"][name];
        (
            entry["id"].as_str().expect("id").to_owned(),
            plaintext(entry["hex"].as_str().expect("hex")),
        )
    };
    let anonymous = Client::new(&host.base);
    let cases = [
        ("active", VerifyCode::Valid),
        ("revoked", VerifyCode::Revoked),
        ("renamed", VerifyCode::Valid),
    ];
    for (name, expected) in cases {
        let (id, plaintext) = key(name);
        let body = tests::verify_of(&plaintext);
        let answer = anonymous
            .call::<e::Verify>(&[], &body, &NoQuery)
            .await
            .expect("verify");
        assert_eq!((name, answer.code), (name, expected));
        if expected == VerifyCode::Valid {
            assert_eq!(answer.key_id.as_deref(), Some(id.as_str()), "{name}");
        }
    }

    let admin = tests::admin_client(&host.base)
        .await
        .expect("the fixture's admin signs in");
    let (renamed, _) = key("renamed");
    let view = admin
        .call::<e::GetKey>(&[&renamed], &NoBody, &NoQuery)
        .await
        .expect("get");
    assert_eq!(
        (view.name.as_str(), view.status),
        ("renamed-later", KeyStatus::Active)
    );
    let events = admin
        .call::<e::Events>(&[], &NoBody, &EventQuery::default())
        .await
        .expect("events");
    let kinds: Vec<&str> = events.items.iter().map(|e| e.kind.as_str()).collect();
    for (kind, times) in [("key.created", 3), ("key.revoked", 1), ("key.updated", 1)] {
        assert_eq!(
            kinds.iter().filter(|k| **k == kind).count(),
            times,
            "{kind} in {kinds:?}"
        );
    }
}
