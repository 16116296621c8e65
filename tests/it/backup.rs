//! Backup and restore of the server's store (SPEC §11), with the real binary: a backup taken
//! while keys are being created holds every write acknowledged before it began and is one
//! consistent point (no gaps); a restored store serves; a damaged backup, an existing file
//! and a non-empty directory are refused and change nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keygate_client::{Client, endpoints as e};
use model::api::{CreateKeyRequest, SettingsPatch, VerifyCode};
use model::domain::KeyRole;
use model::http::{NoBody, NoQuery};
use tests::Host;

/// Runs `keygate-server <args>` to its end.
async fn server_command(args: &[&std::ffi::OsStr]) -> Output {
    let bin = tests::server_bin().expect("server binary");
    tokio::process::Command::new(bin)
        .args(args)
        .output()
        .await
        .expect("keygate-server runs")
}

async fn backup(store: &Path, to: &Path) -> Output {
    server_command(&[
        "backup".as_ref(),
        "--data-dir".as_ref(),
        store.as_os_str(),
        "--to".as_ref(),
        to.as_os_str(),
    ])
    .await
}

async fn restore(from: &Path, into: &Path) -> Output {
    server_command(&[
        "restore".as_ref(),
        "--from".as_ref(),
        from.as_os_str(),
        "--data-dir".as_ref(),
        into.as_os_str(),
    ])
    .await
}

fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The admin of `base`, signed in through the client, with API keys switched on; and the
/// organization's id.
async fn admin(base: &str) -> (Client, String) {
    let admin = tests::admin_client(base).await.expect("login");
    let on = SettingsPatch {
        api_keys_enabled: Some(true),
        ..Default::default()
    };
    admin
        .call::<e::UpdateSettings>(&[], &on, &NoQuery)
        .await
        .expect("keys on");
    let me = admin
        .call::<e::Me>(&[], &NoBody, &NoQuery)
        .await
        .expect("me");
    (admin, me.organization.id)
}

async fn create(admin: &Client, org: &str, name: &str) -> String {
    let body = CreateKeyRequest {
        name: name.into(),
        namespace: org.into(),
        role: Some(KeyRole::Viewer),
        ..Default::default()
    };
    admin
        .call::<e::CreateKey>(&[], &body, &NoQuery)
        .await
        .expect("create")
        .key
}

async fn verdict(base: &str, key: &str) -> VerifyCode {
    let body = tests::verify_of(key);
    Client::new(base)
        .call::<e::Verify>(&[], &body, &NoQuery)
        .await
        .expect("verify")
        .code
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_during_writes_holds_every_acknowledged_write_and_restores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let host = Host::server_with(&store, None, &[]).await.expect("server");
    let mode = std::fs::metadata(store.join("control.sock"))
        .expect("the control socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "only the store's owner reaches it");
    let (admin, org) = admin(&host.base).await;

    // One writer, creating keys one after another: the order of acknowledgements is the
    // order of commits, so a consistent snapshot holds a prefix of them.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let writer = {
        let (admin, org, acked) = (admin.clone(), org.clone(), Arc::clone(&acked));
        tokio::spawn(async move {
            // Under the default quota of 100 active keys a user holds.
            for n in 0..90 {
                let key = create(&admin, &org, &format!("w-{n}")).await;
                acked.lock().expect("lock").push(key);
            }
        })
    };
    let count = || acked.lock().expect("lock").len();
    while count() < 20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = count();
    let file = dir.path().join("keygate.backup");
    let started = Instant::now();
    let out = backup(&store, &file).await;
    let took = started.elapsed();
    let after = count();
    assert!(out.status.success(), "backup: {}", said(&out));
    assert!(said(&out).contains("backed up"), "{}", said(&out));
    writer.await.expect("writer");
    let written = acked.lock().expect("lock").clone();
    assert!(
        after < written.len(),
        "writes went on after the backup (else the test proves nothing)"
    );
    let meta = std::fs::metadata(&file).expect("backup file");
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "the backup is private"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&store)
        .expect("store dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("snapshot") || name.contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "the server cleaned up: {leftovers:?}");

    let restored = dir.path().join("restored");
    let out = restore(&file, &restored).await;
    assert!(out.status.success(), "restore: {}", said(&out));
    let copy = Host::server_with(&restored, None, &[])
        .await
        .expect("a server starts on the restored store");
    let mut codes = Vec::new();
    for key in &written {
        codes.push(verdict(&copy.base, key).await);
    }
    let present = codes
        .iter()
        .take_while(|c| **c == VerifyCode::Valid)
        .count();
    assert!(
        codes[present..].iter().all(|c| *c == VerifyCode::NotFound),
        "one point in time, no gaps: {codes:?}"
    );
    assert!(
        (before..=after).contains(&present),
        "every key acknowledged before the backup began ({before}) is there, none created \
         after it ended ({after}): {present}"
    );
    // The restored store is a working store: it takes writes too.
    let (restored_admin, org) = self::admin(&copy.base).await;
    let fresh = create(&restored_admin, &org, "after restore").await;
    assert_eq!(verdict(&copy.base, &fresh).await, VerifyCode::Valid);
    tests::figure(
        "backup",
        &format!(
            "online backup during writes: {} bytes in {} ms; {before} writes acknowledged \
             before it, {present} in it, {} after",
            meta.len(),
            took.as_millis(),
            written.len()
        ),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn damaged_backups_existing_files_and_full_directories_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let canary = "canary-7Qm2xZ";
    let key = {
        let host = Host::server_with(&store, None, &[]).await.expect("server");
        let (admin, org) = admin(&host.base).await;
        create(&admin, &org, canary).await
    };
    // The server has stopped: the backup reads the store directly.
    let file = dir.path().join("offline.backup");
    let out = backup(&store, &file).await;
    assert!(out.status.success(), "offline backup: {}", said(&out));

    let again = backup(&store, &file).await;
    assert!(!again.status.success(), "a backup never overwrites a file");
    assert!(said(&again).contains("already exists"), "{}", said(&again));
    let nothing = backup(&dir.path().join("none"), &dir.path().join("x.backup")).await;
    assert!(!nothing.status.success(), "no store, no backup");
    assert!(said(&nothing).contains("no store"), "{}", said(&nothing));

    let full = restore(&file, &store).await;
    assert!(!full.status.success(), "restore into a non-empty directory");
    assert!(said(&full).contains("not empty"), "{}", said(&full));

    // One byte of a stored record changed, and the backup cut short: each refused, and the
    // target gets nothing.
    let bytes = std::fs::read(&file).expect("read backup");
    let at = bytes
        .windows(canary.len())
        .position(|w| w == canary.as_bytes())
        .expect("the key's name is in the backup");
    let mut flipped = bytes.clone();
    flipped[at] ^= 0x20;
    let cut = bytes[..bytes.len() / 2].to_vec();
    for (what, damaged) in [("a changed byte", flipped), ("a truncated file", cut)] {
        let path = dir.path().join("damaged.backup");
        std::fs::write(&path, &damaged).expect("write damaged");
        let into = dir.path().join("from-damaged");
        let out = restore(&path, &into).await;
        assert!(!out.status.success(), "{what} is refused");
        assert!(
            said(&out).contains("damaged"),
            "{what}: the message says why: {}",
            said(&out)
        );
        let written = std::fs::read_dir(&into).map(|d| d.count()).unwrap_or(0);
        assert_eq!(written, 0, "{what}: nothing was restored");
        std::fs::remove_file(&path).expect("remove");
    }

    let restored = dir.path().join("restored");
    let out = restore(&file, &restored).await;
    assert!(out.status.success(), "restore: {}", said(&out));
    let host = Host::server_with(&restored, None, &[])
        .await
        .expect("server");
    assert_eq!(verdict(&host.base, &key).await, VerifyCode::Valid);
}
