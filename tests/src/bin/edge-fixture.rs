//! Writes the edge's upgrade fixture, `tests/fixtures/edge-kv-1/`: the local state
//! (`wrangler dev --persist-to`) of a worker that kept everything in Workers KV, before the
//! control object existed — an admin, a member, three keys (one active, one revoked, one
//! renamed) and their events — and `keys.json`, the keys' plaintexts hex-encoded (see
//! `upgrade-fixture.rs` for why). `tests/it/upgrade.rs` starts today's worker on a copy of it.
//!
//! It was made once, with the worker of commit c380681 built in another checkout:
//!
//! ```sh
//! git worktree add /tmp/before c380681 && (cd /tmp/before && npm ci && cargo xtask edge --build-only)
//! cargo run -p tests --bin edge-fixture -- /tmp/before
//! ```
//!
//! then each `*.sqlite` under `state/` checkpointed (`PRAGMA wal_checkpoint(TRUNCATE)`, which
//! folds the write-ahead log into the database) and `state/v3/cache` and
//! `state/v3/workflows`, which hold nothing of Keygate's, removed: 66 KB instead of 836.

use anyhow::{Context, Result, ensure};
use serde_json::json;
use tests::{ADMIN_EMAIL, Api, Host};

#[tokio::main]
async fn main() -> Result<()> {
    let checkout = std::env::args()
        .nth(1)
        .context("usage: edge-fixture <checkout with the earlier worker built>")?;
    let out = tests::edge_fixture();
    ensure!(
        !out.exists(),
        "{} exists: a fixture is never rewritten",
        out.display()
    );
    let state = out.join("state");
    std::fs::create_dir_all(&state)?;
    let mut host = Host::worker_of(std::path::Path::new(&checkout), &state).await?;
    let admin = tests::admin_client(&host.base).await?;
    let keys = tests::fixture_keys(&admin).await?;
    let api = Api::new(&host.base);
    let (token, _) = api.login_admin().await?;
    let (member, _) = api
        .join(&token, "member@example.com", json!(["developer"]))
        .await?;
    // Let workerd write its state out before it is stopped.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    host.kill()?;
    let commit = std::process::Command::new("git")
        .args(["-C", &checkout, "rev-parse", "--short", "HEAD"])
        .output()?;
    let commit = String::from_utf8_lossy(&commit.stdout).trim().to_owned();
    let about = json!({
        "made_by": format!("the worker of commit {commit}, before the control object"),
        "admin": ADMIN_EMAIL,
        "member": {"id": member, "email": "member@example.com"},
        "keys": keys,
    });
    std::fs::write(
        out.join("keys.json"),
        serde_json::to_string_pretty(&about)? + "\n",
    )?;
    eprintln!("edge-fixture: wrote {}", out.display());
    Ok(())
}
