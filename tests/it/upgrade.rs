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

/// SPEC §10 at the edge, for deployments made before the control object: today's worker,
/// started on the local state a KV-only worker left (`tests/fixtures/edge-kv-1`, written by
/// `cargo run -p tests --bin edge-fixture`), takes every record from KV into its object once:
/// the admin signs in, the keys verify as they did and list with their names, the member and
/// the events are there, and changes work on them — a revocation included, which verification
/// (still reading KV) then sees.
#[tokio::test(flavor = "multi_thread")]
async fn an_edge_deployment_made_before_the_control_object_keeps_its_data() {
    let fixture = tests::edge_fixture();
    let about: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture.join("keys.json")).expect("keys.json"),
    )
    .expect("keys.json is JSON");
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&fixture.join("state"), dir.path()).expect("copy the fixture's state");
    let host = Host::worker_on(dir.path())
        .await
        .expect("today's worker starts on the older state");
    let key = |name: &str| {
        let entry = &about["keys"][name];
        (
            entry["id"].as_str().expect("id").to_owned(),
            plaintext(entry["hex"].as_str().expect("hex")),
        )
    };
    let anonymous = Client::new(&host.base);
    let verify = |plaintext: String| {
        let anonymous = anonymous.clone();
        async move {
            anonymous
                .call::<e::Verify>(&[], &tests::verify_of(&plaintext), &NoQuery)
                .await
                .expect("verify")
                .code
        }
    };
    for (name, expected) in [
        ("active", VerifyCode::Valid),
        ("revoked", VerifyCode::Revoked),
        ("renamed", VerifyCode::Valid),
    ] {
        assert_eq!((name, verify(key(name).1).await), (name, expected));
    }
    let admin = tests::admin_client(&host.base)
        .await
        .expect("the fixture's admin signs in through the object");
    let listed = admin
        .call::<e::Keys>(&[], &NoBody, &model::api::KeyListQuery::default())
        .await
        .expect("keys");
    let mut names: Vec<&str> = listed.items.iter().map(|k| k.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["active", "renamed-later", "revoked"]);
    let members = admin
        .call::<e::Members>(&[], &NoBody, &model::api::PageQuery::default())
        .await
        .expect("members");
    let member = about["member"]["id"].as_str().expect("member id");
    assert!(
        members.items.iter().any(|m| m.id == member),
        "the member was taken over"
    );
    let events = admin
        .call::<e::Events>(&[], &NoBody, &EventQuery::default())
        .await
        .expect("events");
    let created = events
        .items
        .iter()
        .filter(|e| e.kind == "key.created")
        .count();
    assert_eq!(created, 3, "the events were taken over");

    let (active, plaintext) = key("active");
    admin
        .call::<e::RevokeKey>(&[&active], &NoBody, &NoQuery)
        .await
        .expect("revoke a key made before the object");
    assert_eq!(verify(plaintext).await, VerifyCode::Revoked);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
