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
