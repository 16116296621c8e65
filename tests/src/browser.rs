//! A real browser for tests and benchmarks: chromedriver (Debian's, or `$CHROMEDRIVER`)
//! driving headless Chromium through WebDriver.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use fantoccini::{Client, ClientBuilder};
use serde_json::json;

/// chromedriver on a free port, stopped on drop.
pub struct Driver {
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
    pub async fn start() -> Result<(Driver, Client)> {
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

/// Starts chromedriver and a headless Chromium session.
pub async fn start() -> Result<(Driver, Client)> {
    Driver::start().await
}

/// A Chrome DevTools Protocol command sent through chromedriver's
/// `POST /session/{id}/goog/cdp/execute`.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: serde_json::Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({"cmd": self.cmd, "params": self.params});
        (http::Method::POST, Some(body.to_string()))
    }
}

/// The colour scheme the page's `prefers-color-scheme` reports: the console's dark theme is
/// a media query, so the audit switches it as the operating system would.
pub async fn color_scheme(client: &Client, dark: bool) -> Result<()> {
    let value = if dark { "dark" } else { "light" };
    client
        .issue_cmd(Cdp {
            cmd: "Emulation.setEmulatedMedia",
            params: json!({"features": [{"name": "prefers-color-scheme", "value": value}]}),
        })
        .await
        .context("Emulation.setEmulatedMedia")?;
    let applied = client
        .execute(
            "return matchMedia('(prefers-color-scheme: dark)').matches",
            vec![],
        )
        .await?;
    anyhow::ensure!(
        applied.as_bool() == Some(dark),
        "the page sees prefers-color-scheme: {value}"
    );
    Ok(())
}

/// The WCAG 2.1 A and AA rules axe-core checks.
const AXE_TAGS: [&str; 4] = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];

/// Runs axe-core (from `node_modules`, as npm installed it) on the page as it is and returns
/// its violations of WCAG 2.1 A/AA: an empty array when it finds nothing.
pub async fn axe(client: &Client) -> Result<serde_json::Value> {
    let source = std::fs::read_to_string(crate::repo().join("node_modules/axe-core/axe.min.js"))
        .context("axe-core is installed (npm ci)")?;
    let present = client
        .execute("return typeof window.axe === 'object'", vec![])
        .await?;
    if present.as_bool() != Some(true) {
        client
            .execute(&format!("{source}\n;return true"), vec![])
            .await
            .context("loading axe-core")?;
    }
    let answer = client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, {runOnly: {type: 'tag', values: arguments[0]}, resultTypes: ['violations']})
                .then(r => done({violations: r.violations.map(v => ({id: v.id, impact: v.impact,
                    help: v.help, nodes: v.nodes.map(n => ({target: n.target, summary: n.failureSummary}))}))}))
                .catch(e => done({error: String(e)}));",
            vec![json!(AXE_TAGS)],
        )
        .await
        .context("running axe-core")?;
    if let Some(error) = answer.get("error") {
        anyhow::bail!("axe-core failed: {error}");
    }
    Ok(answer["violations"].clone())
}

/// Presses each of `keys` (a character, or a `fantoccini::key::Key` as a char) in turn, as a
/// keyboard does: to whatever has the focus.
pub async fn press(client: &Client, keys: &[char]) -> Result<()> {
    use fantoccini::actions::{InputSource, KeyAction, KeyActions};
    let mut actions = KeyActions::new("keyboard".into());
    for &value in keys {
        actions = actions
            .then(KeyAction::Down { value })
            .then(KeyAction::Up { value });
    }
    client.perform_actions(actions).await?;
    Ok(())
}

/// Types `text` on the keyboard.
pub async fn type_text(client: &Client, text: &str) -> Result<()> {
    press(client, &text.chars().collect::<Vec<_>>()).await
}

/// Presses Tab until the focused element matches `selector` (at most `limit` times), as a
/// keyboard user walks a page.
pub async fn tab_to(client: &Client, selector: &str, limit: usize) -> Result<()> {
    // First what is pressed last has to render.
    for _ in 0..200 {
        let shown = client
            .execute(
                "return document.querySelector(arguments[0]) !== null",
                vec![json!(selector)],
            )
            .await?;
        if shown.as_bool() == Some(true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A dialog that just opened moves the focus itself, right after it renders.
    for _ in 0..20 {
        if focused(client, selector).await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..=limit {
        if focused(client, selector).await? {
            return Ok(());
        }
        press(client, &[fantoccini::key::Key::Tab.into()]).await?;
    }
    anyhow::bail!("{limit} presses of Tab never reached {selector}")
}

async fn focused(client: &Client, selector: &str) -> Result<bool> {
    let answer = client
        .execute(
            "return document.activeElement !== null && document.activeElement.matches(arguments[0])",
            vec![json!(selector)],
        )
        .await?;
    Ok(answer.as_bool() == Some(true))
}
