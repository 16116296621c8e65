//! A deployment's own key prefix (SPEC §2, `KEYGATE_KEY_PREFIX`) on both hosts: keys start
//! with it, verify and work as bearer credentials; the same key spelled with another prefix
//! (and a checksum made for it) is not the key; the prefix recorded at the first start stays
//! when a later start asks for another, so every key made keeps verifying; a prefix that
//! cannot be stops the server from starting.

use std::process::Command;

use anyhow::{Context, Result, ensure};
use serde_json::json;
use tests::{Api, As, Host};

/// `key` spelled with `prefix` instead of its own, with the checksum that makes it well formed.
fn respelled(key: &str, prefix: &str) -> String {
    let rest = &key[key.find('_').unwrap_or(0)..];
    let head = format!("{prefix}{}", &rest[..rest.len() - model::key::CHECKSUM_LEN]);
    format!("{head}{}", model::key::checksum(&head))
}

/// Creates a key on `api` and checks what a deployment with `prefix` promises of it.
async fn keys_carry(api: &Api, prefix: &str) -> Result<String> {
    let fx = api.admin_with_key("prefixed").await?;
    ensure!(
        fx.key.starts_with(&format!("{prefix}_")) && fx.key.len() == model::key::key_len(prefix),
        "a key of this deployment starts with {prefix}_: {}…",
        &fx.key[..prefix.len() + 1]
    );
    ensure!(api.verify_code(&fx.key).await? == "VALID");
    let me = api.call("GET", "/v1/me", As::Bearer(&fx.key), None).await?;
    ensure!(me.status == 200, "the key is a bearer credential: {me:?}");
    for other in ["kg", "zz"].into_iter().filter(|p| *p != prefix) {
        let forged = respelled(&fx.key, other);
        ensure!(model::key::KeyRef::parse(&forged).is_ok(), "well formed");
        ensure!(
            api.verify_code(&forged).await? == "NOT_FOUND",
            "the key spelled with {other}_ is not the key"
        );
    }
    // Rolled, it keeps its prefix.
    let rolled = api
        .call(
            "POST",
            &format!("/v1/keys/{}/roll", fx.id),
            As::Bearer(&fx.token),
            Some(&json!({"grace_seconds": 0})),
        )
        .await?;
    let new = rolled.body["key"].as_str().context("rolled key")?;
    ensure!(
        new.starts_with(&format!("{prefix}_")),
        "a roll keeps the prefix"
    );
    ensure!(api.verify_code(new).await? == "VALID");
    Ok(new.to_owned())
}

#[tokio::test]
async fn a_deployment_s_own_prefix_on_the_server() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = dir.path().join("store");
    let key = {
        let host = Host::server_with(&store, None, &[("KEYGATE_KEY_PREFIX", "acme")]).await?;
        keys_carry(&Api::new(&host.base), "acme").await?
    };
    // A later start asking for another prefix keeps the recorded one, and says so.
    let host = Host::server_with(&store, None, &[("KEYGATE_KEY_PREFIX", "other")]).await?;
    let api = Api::new(&host.base);
    ensure!(
        api.verify_code(&key).await? == "VALID",
        "earlier keys verify"
    );
    let (token, _) = api.login_admin().await?;
    let org = api.org_of(&token).await?;
    let made = api
        .call(
            "POST",
            "/v1/keys",
            As::Bearer(&token),
            Some(&json!({"name": "later", "namespace": org, "role": "viewer"})),
        )
        .await?;
    let later = made.body["key"].as_str().unwrap_or_default();
    ensure!(
        later.starts_with("acme_"),
        "the recorded prefix stays: {made:?}"
    );
    let log = host
        .output
        .once(
            |text| text.contains("KEYGATE_KEY_PREFIX=other is ignored"),
            std::time::Duration::from_secs(5),
        )
        .await;
    ensure!(log.contains("`acme_`"), "the server warns: {log}");
    drop(host);

    // A prefix that cannot be: the server does not start, and says why.
    for bad in ["A1", "x", "kgs", "waytoolongprefix", "ac_me"] {
        let fresh = tempfile::tempdir()?;
        let out = Command::new(tests::server_bin()?)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(fresh.path())
            .env("KEYGATE_KEY_PREFIX", bad)
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            !out.status.success()
                && stderr.contains("KEYGATE_KEY_PREFIX must be 2 to 10 lowercase"),
            "{bad}: {stderr}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_deployment_s_own_prefix_at_the_edge() -> Result<()> {
    let host = Host::worker_with(&[("KEYGATE_KEY_PREFIX", "edge9")]).await?;
    keys_carry(&Api::new(&host.base), "edge9").await?;
    Ok(())
}

#[tokio::test]
async fn without_a_prefix_keys_start_with_kg() -> Result<()> {
    let api = Api::in_process().await?;
    keys_carry(&api, "kg").await?;
    Ok(())
}
