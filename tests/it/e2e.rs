//! End to end in a real browser: WebDriver → chromedriver → headless Chromium, against the
//! server serving the built console. Screenshots land in `<target>/e2e-artifacts/`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tests::{ADMIN_EMAIL, ADMIN_PASSWORD, Api, As, Host, repo};

/// chromedriver on a free port, stopped on drop.
struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start() -> Result<(Driver, Client)> {
        let bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(&bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {bin}"))?;
        let profile = tempfile::tempdir()?;
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _profile: profile,
        };
        let caps = json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--no-first-run", "--window-size=1280,900",
                    format!("--user-data-dir={}", driver._profile.path().display()),
                ]
            }
        });
        let caps = caps.as_object().cloned().context("capabilities")?;
        let mut last = None;
        for _ in 0..50 {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&driver.url)
                .await
            {
                Ok(client) => return Ok((driver, client)),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(anyhow::anyhow!(
            "chromedriver did not accept a session: {last:?}"
        ))
    }
}

fn artifacts() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .ancestors()
        .nth(3)
        .context("target dir")?
        .join("e2e-artifacts");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

async fn screenshot(client: &Client, name: &str) -> Result<()> {
    let png = client.screenshot().await?;
    std::fs::write(artifacts()?.join(format!("{name}.png")), png)?;
    Ok(())
}

async fn css(client: &Client, selector: &str) -> Result<fantoccini::elements::Element> {
    client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(selector))
        .await
        .with_context(|| format!("waiting for {selector}"))
}

/// A person signs in, generates a key, reads it from the page; it verifies over HTTP, it is
/// listed, and once the panel is closed it is nowhere in the page or the browser's storage.
async fn generate_a_key_in_the_browser(host: &Host, client: &Client, shot: &str) -> Result<()> {
    client.goto(&host.base).await?;
    css(client, "[data-testid=login-email]")
        .await?
        .send_keys(ADMIN_EMAIL)
        .await?;
    css(client, "[data-testid=login-password]")
        .await?
        .send_keys(ADMIN_PASSWORD)
        .await?;
    screenshot(client, &format!("{shot}-sign-in")).await?;
    css(client, "[data-testid=login-submit]")
        .await?
        .click()
        .await?;
    css(client, "[data-testid=new-key-open]").await?;
    // A fresh organization has API keys switched off (SPEC §5): the admin switches them on.
    css(client, "[data-testid=enable-api-keys]")
        .await?
        .click()
        .await?;
    client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("[data-testid=keys-empty]"))
        .await?;
    for _ in 0..100 {
        if client
            .find(Locator::Css("[data-testid=api-keys-disabled]"))
            .await
            .is_err()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    css(client, "[data-testid=new-key-open]")
        .await?
        .click()
        .await?;
    css(client, "[data-testid=new-key-name]")
        .await?
        .send_keys("browser key")
        .await?;
    screenshot(client, &format!("{shot}-generate-dialog")).await?;
    css(client, "[data-testid=new-key-submit]")
        .await?
        .click()
        .await?;
    let key = css(client, "[data-testid=new-key-plaintext]")
        .await?
        .text()
        .await?;
    let warning = css(client, "[data-testid=new-key-warning]")
        .await?
        .text()
        .await?;
    ensure!(
        warning.contains("will not be shown again"),
        "warning: {warning}"
    );
    ensure!(
        key.starts_with("kg_") && key.len() == 54,
        "the page shows a key: {key:?}"
    );

    let api = Api::new(&host.base);
    let verified = api
        .call(
            "POST",
            "/v1/keys/verify",
            As::Nobody,
            Some(&json!({"key": key})),
        )
        .await?;
    ensure!(
        verified.body["code"] == "VALID",
        "the copied key verifies: {}",
        verified.body
    );
    let id = verified.body["key_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    css(client, &format!("[data-testid=key-row][data-key-id={id}]")).await?;
    screenshot(client, &format!("{shot}-new-key")).await?;

    css(client, "[data-testid=new-key-close]")
        .await?
        .click()
        .await?;
    for _ in 0..50 {
        if !client.source().await?.contains(&key) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        !client.source().await?.contains(&key),
        "the key is gone from the page once closed"
    );
    let storage = client
        .execute("return JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie", vec![])
        .await?;
    let storage = storage.as_str().unwrap_or_default().to_owned();
    ensure!(
        !storage.contains(&key) && !storage.contains("kgs_"),
        "no secret in browser storage: {storage}"
    );
    screenshot(client, &format!("{shot}-keys")).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_generated_in_the_browser_verifies_on_the_server() {
    let host = Host::server(Some(&repo().join("dist")))
        .await
        .expect("server starts");
    let (_driver, client) = Driver::start().await.expect("chromedriver starts");
    let outcome = generate_a_key_in_the_browser(&host, &client, "server").await;
    if outcome.is_err() {
        let _ = screenshot(&client, "server-failure").await;
    }
    let _ = client.close().await;
    outcome.expect("browser flow on the server");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_generated_in_the_browser_verifies_on_the_worker() {
    let host = Host::worker().await.expect("worker starts under workerd");
    let (_driver, client) = Driver::start().await.expect("chromedriver starts");
    let outcome = generate_a_key_in_the_browser(&host, &client, "worker").await;
    if outcome.is_err() {
        let _ = screenshot(&client, "worker-failure").await;
    }
    let _ = client.close().await;
    outcome.expect("browser flow on the worker");
}
