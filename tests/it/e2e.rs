//! End to end in a real browser: WebDriver → chromedriver → headless Chromium, against the
//! server serving the built console. Screenshots land in `<target>/e2e-artifacts/`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use fantoccini::{Client, Locator};
use serde_json::json;
use tests::{ADMIN_EMAIL, ADMIN_PASSWORD, Api, As, Host, repo};

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

/// Signs in from the sign-in page and waits for the landing page (*My API keys*, or an
/// admin's overview).
async fn sign_in(client: &Client, email: &str, password: &str, shot: Option<&str>) -> Result<()> {
    css(client, "[data-testid=login-email]")
        .await?
        .send_keys(email)
        .await?;
    css(client, "[data-testid=login-password]")
        .await?
        .send_keys(password)
        .await?;
    if let Some(shot) = shot {
        screenshot(client, shot).await?;
    }
    click(client, "[data-testid=login-submit]").await?;
    // An admin lands on the overview, everyone else on *My API keys*.
    css(
        client,
        "[data-testid=new-key-open], [data-testid=overview-24h]",
    )
    .await?;
    Ok(())
}

async fn click(client: &Client, selector: &str) -> Result<()> {
    css(client, selector).await?.click().await?;
    Ok(())
}

async fn text(client: &Client, selector: &str) -> Result<String> {
    Ok(css(client, selector).await?.text().await?)
}

/// Waits until `selector` is gone from the page.
async fn gone(client: &Client, selector: &str) -> Result<()> {
    for _ in 0..200 {
        if client.find(Locator::Css(selector)).await.is_err() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{selector} is still shown")
}

/// Waits until `selector`'s text contains `expected`.
async fn text_contains(client: &Client, selector: &str, expected: &str) -> Result<String> {
    let mut last = String::new();
    for _ in 0..200 {
        if let Ok(el) = client.find(Locator::Css(selector)).await {
            last = el.text().await.unwrap_or_default();
            if last.contains(expected) {
                return Ok(last);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{selector} never said {expected:?}; last: {last:?}")
}

/// Runs axe-core on the page in the light and the dark theme, attaches its report as
/// `<page>-axe.json`, and records what it found in `found` (asserted empty at the end of a
/// flow, so one run lists every page's violations).
async fn audit(client: &Client, page: &str, found: &mut Vec<String>) -> Result<()> {
    let mut report = serde_json::Map::new();
    for (theme, dark) in [("light", false), ("dark", true)] {
        tests::browser::color_scheme(client, dark).await?;
        let violations = tests::browser::axe(client).await?;
        if violations.as_array().is_none_or(|v| !v.is_empty()) {
            found.push(format!(
                "{page} ({theme}): {}",
                serde_json::to_string_pretty(&violations)?
            ));
        }
        report.insert(theme.into(), violations);
    }
    tests::browser::color_scheme(client, false).await?;
    std::fs::write(
        artifacts()?.join(format!("{page}-axe.json")),
        serde_json::to_vec_pretty(&report)?,
    )?;
    Ok(())
}

/// Fails with every violation axe-core found in a flow.
fn no_violations(found: &[String]) -> Result<()> {
    ensure!(
        found.is_empty(),
        "axe-core found WCAG 2.1 A/AA violations:\n{}",
        found.join("\n")
    );
    Ok(())
}

/// At `width` px the page does not scroll sideways and neither does any table: photographed
/// as `<shot>-<width>px`. Where a row menu is shown, it opens inside the screen.
async fn fits(client: &Client, width: u32, shot: &str) -> Result<()> {
    client.set_window_size(width, 900).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let overflow = client
        .execute(
            "const d = document.documentElement;
             const tables = [...document.querySelectorAll('.table-wrap')]
                 .map(t => t.scrollWidth - t.clientWidth);
             return {page: d.scrollWidth - d.clientWidth, tables, width: innerWidth};",
            vec![],
        )
        .await?;
    ensure!(
        overflow["page"].as_i64() == Some(0)
            && overflow["tables"]
                .as_array()
                .is_some_and(|t| t.iter().all(|o| o.as_i64() == Some(0))),
        "at {width} px nothing scrolls sideways: {overflow}"
    );
    if client
        .find(Locator::Css("[data-testid=row-menu-open]"))
        .await
        .is_ok()
    {
        click(client, "[data-testid=row-menu-open]").await?;
        let menu = client
            .execute(
                "const r = document.querySelector('.row-menu[open] .menu').getBoundingClientRect();
                 return {left: r.left, right: r.right, width: innerWidth};",
                vec![],
            )
            .await?;
        ensure!(
            menu["left"].as_f64().is_some_and(|l| l >= 0.0)
                && menu["right"].as_f64() <= menu["width"].as_f64(),
            "at {width} px the row menu opens on the screen: {menu}"
        );
        screenshot(client, &format!("{shot}-{width}px-menu")).await?;
        tests::browser::press(client, &[fantoccini::key::Key::Escape.into()]).await?;
        gone(client, ".row-menu[open]").await?;
    }
    screenshot(client, &format!("{shot}-{width}px")).await?;
    client.set_window_size(1280, 900).await?;
    Ok(())
}

async fn verify(api: &Api, key: &str, permissions: &[&str]) -> Result<serde_json::Value> {
    let body = json!({"key": key, "permissions": permissions});
    Ok(api
        .call("POST", "/v1/keys/verify", As::Nobody, Some(&body))
        .await?
        .body)
}

/// A person signs in, generates a key, reads it from the page; it verifies over HTTP, it is
/// listed, and once the panel is closed it is nowhere in the page or the browser's storage.
async fn generate_a_key_in_the_browser(
    host: &Host,
    client: &Client,
    shot: &str,
    found: &mut Vec<String>,
) -> Result<()> {
    client.goto(&host.base).await?;
    css(client, "[data-testid=login-email]").await?;
    audit(client, &format!("{shot}-sign-in"), found).await?;
    sign_in(
        client,
        ADMIN_EMAIL,
        ADMIN_PASSWORD,
        Some(&format!("{shot}-sign-in")),
    )
    .await?;
    // The admin lands on the overview; a fresh organization's is empty.
    let active = text(client, "[data-testid=overview-active] .figure-value").await?;
    ensure!(active == "0", "no key yet: {active}");
    screenshot(client, &format!("{shot}-overview")).await?;
    audit(client, &format!("{shot}-overview-empty"), found).await?;
    click(client, "[data-testid=nav-my-keys]").await?;
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
    audit(client, &format!("{shot}-generate-dialog"), found).await?;
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
    // The panel's curl snippet, run as it is shown, verifies the key.
    let curl = css(client, "[data-testid=snippet-curl]")
        .await?
        .text()
        .await?;
    let ran = std::process::Command::new("sh")
        .arg("-c")
        .arg(&curl)
        .output()?;
    let answer: serde_json::Value = serde_json::from_slice(&ran.stdout).with_context(|| {
        format!(
            "the snippet printed {:?}",
            String::from_utf8_lossy(&ran.stdout)
        )
    })?;
    ensure!(
        answer["code"] == "VALID" && answer["key_id"] == id.as_str(),
        "the snippet verifies the key: {answer}"
    );
    css(client, &format!("[data-testid=key-row][data-key-id={id}]")).await?;
    screenshot(client, &format!("{shot}-new-key")).await?;
    audit(client, &format!("{shot}-new-key"), found).await?;

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
    audit(client, &format!("{shot}-keys"), found).await?;
    // A laptop and a phone: the table fits, the row menu opens on the screen.
    fits(client, 1280, &format!("{shot}-keys")).await?;
    fits(client, 390, &format!("{shot}-keys")).await?;
    Ok(())
}

const DEVELOPER_EMAIL: &str = "dev@example.com";
const DEVELOPER_PASSWORD: &str = "developer-password-42";

/// The flow: the admin invites a developer from *Members*; the developer joins through
/// the link, generates a key with a subset of its permissions and copies it; the key verifies
/// over HTTP for that subset only; the admin finds it by its owner in the management console
/// and revokes it in bulk; it then verifies as `REVOKED`. Every main page is photographed.
async fn developer_key_revoked_by_an_admin(host: &Host, client: &Client) -> Result<()> {
    let api = Api::new(&host.base);
    let mut found = Vec::new();
    let found = &mut found;
    generate_a_key_in_the_browser(host, client, "server", found).await?;

    // The admin invites a developer and reads the link the console shows.
    click(client, "[data-testid=nav-members]").await?;
    css(client, "[data-testid=invite-email]")
        .await?
        .send_keys(DEVELOPER_EMAIL)
        .await?;
    click(client, "[data-testid=invite-submit]").await?;
    let link = text(client, "[data-testid=invitation-link]").await?;
    ensure!(link.contains("#/invitation/"), "an invitation link: {link}");
    css(client, "[data-testid=members-table]").await?;
    // The invitation is listed as pending; a second one is withdrawn from its row.
    text_contains(client, "[data-testid=invitations-table]", DEVELOPER_EMAIL).await?;
    let email = css(client, "[data-testid=invite-email]").await?;
    email.clear().await?;
    email.send_keys("withdrawn@example.com").await?;
    click(client, "[data-testid=invite-submit]").await?;
    text_contains(
        client,
        "[data-testid=invitations-table]",
        "withdrawn@example.com",
    )
    .await?;
    let withdrawn = "[data-testid=invitation-row][data-invitation-email='withdrawn@example.com']";
    click(
        client,
        &format!("{withdrawn} [data-testid=invitation-revoke]"),
    )
    .await?;
    click(client, "[data-testid=revoke-invitation-dialog-confirm]").await?;
    gone(client, withdrawn).await?;
    text_contains(client, "[data-testid=invitations-table]", DEVELOPER_EMAIL).await?;
    screenshot(client, "server-members").await?;
    audit(client, "server-members", found).await?;
    click(client, "[data-testid=sign-out]").await?;
    css(client, "[data-testid=login-email]").await?;

    // The developer joins through the link and is signed in.
    client.goto(&link).await?;
    css(client, "[data-testid=invitation-name]")
        .await?
        .send_keys("Dee Veloper")
        .await?;
    css(client, "[data-testid=invitation-password]")
        .await?
        .send_keys(DEVELOPER_PASSWORD)
        .await?;
    screenshot(client, "server-invitation").await?;
    audit(client, "server-invitation", found).await?;
    click(client, "[data-testid=invitation-submit]").await?;
    text_contains(client, "[data-testid=signed-in-as]", DEVELOPER_EMAIL).await?;
    ensure!(
        client
            .find(Locator::Css("[data-testid=nav-admin-keys]"))
            .await
            .is_err(),
        "the management console is hidden from a developer"
    );

    // The admin grants the developer three permissions in the organization (over HTTP: the
    // grant form is covered by the page screenshots; this keeps the flow about keys).
    let (token, _) = api.login_admin().await?;
    let admin = As::Bearer(&token);
    let me = api.call("GET", "/v1/me", admin, None).await?;
    let org = me.body["organization"]["id"]
        .as_str()
        .context("org")?
        .to_owned();
    let members = api.call("GET", "/v1/members", admin, None).await?;
    let dev = members.body["items"]
        .as_array()
        .and_then(|items| items.iter().find(|m| m["email"] == DEVELOPER_EMAIL))
        .and_then(|m| m["id"].as_str())
        .context("the developer is a member")?
        .to_owned();
    for permission in ["resources.read", "resources.write", "workspaces.read"] {
        let grant = json!({"principal": dev, "namespace": org, "permission": permission});
        let answer = api.call("POST", "/v1/grants", admin, Some(&grant)).await?;
        ensure!(
            answer.status == 201 || answer.status == 200,
            "grant: {answer:?}"
        );
    }
    // A reload resumes the session from its cookie and reads the new rights.
    client.refresh().await?;

    // The developer generates a key with one of the three permissions and copies it.
    click(client, "[data-testid=new-key-open]").await?;
    css(client, "[data-testid=new-key-name]")
        .await?
        .send_keys("subset key")
        .await?;
    css(client, "[data-testid=new-key-rights]")
        .await?
        .select_by_value("permissions")
        .await?;
    click(
        client,
        "[data-testid=permission-option][value='resources.read']",
    )
    .await?;
    text_contains(client, "[data-testid=least-privilege-hint]", "1 of the 3").await?;
    screenshot(client, "server-generate-subset").await?;
    audit(client, "server-generate-subset", found).await?;
    click(client, "[data-testid=new-key-submit]").await?;
    let key = text(client, "[data-testid=new-key-plaintext]").await?;
    click(client, "[data-testid=new-key-copy]").await?;
    let copied = text(client, "[data-testid=new-key-copy]").await?;
    ensure!(
        copied.starts_with("Cop"),
        "the copy button answers: {copied}"
    );
    click(client, "[data-testid=new-key-close]").await?;
    gone(client, "[data-testid=new-key-panel]").await?;

    let valid = verify(&api, &key, &["resources.read"]).await?;
    ensure!(valid["code"] == "VALID", "the copied key verifies: {valid}");
    let id = valid["key_id"].as_str().context("key id")?.to_owned();
    let beyond = verify(&api, &key, &["resources.write"]).await?;
    ensure!(
        beyond["code"] == "INSUFFICIENT_PERMISSIONS",
        "only the chosen subset: {beyond}"
    );
    css(client, &format!("[data-testid=key-row][data-key-id={id}]")).await?;
    click(client, "[data-testid=sign-out]").await?;

    // The admin finds the key by its owner and revokes it with the bulk action.
    sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD, None).await?;
    click(client, "[data-testid=nav-admin-keys]").await?;
    css(client, "[data-testid=admin-keys-search]")
        .await?
        .send_keys(DEVELOPER_EMAIL)
        .await?;
    click(client, "[data-testid=admin-keys-search-submit]").await?;
    let row = format!("[data-testid=admin-key-row][data-key-id={id}]");
    click(client, &format!("{row} [data-testid=key-select]")).await?;
    text_contains(client, "[data-testid=selected-count]", "1 selected").await?;
    screenshot(client, "server-admin-keys").await?;
    click(client, "[data-testid=bulk-revoke]").await?;
    text_contains(
        client,
        &format!("[data-testid=bulk-result][data-key-id={id}]"),
        "revoked",
    )
    .await?;
    text_contains(
        client,
        &format!("{row} [data-testid=key-status]"),
        "revoked",
    )
    .await?;
    let revoked = verify(&api, &key, &["resources.read"]).await?;
    ensure!(revoked["code"] == "REVOKED", "after the revoke: {revoked}");

    audit(client, "server-admin-keys", found).await?;
    // The same page on a laptop and a phone: no sideways scrolling, each key a card on the phone.
    fits(client, 1280, "server-admin-keys").await?;
    fits(client, 390, "server-admin-keys").await?;

    // The key's usage chart draws its three verifications once the server has flushed its
    // counts (every 2 s): one VALID, one INSUFFICIENT_PERMISSIONS, one REVOKED.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    client
        .goto(&format!("{}/#/admin/events/{id}", host.base))
        .await?;
    css(client, "[data-testid=events-table]").await?;
    let sentence = css(client, "[data-testid=event-sentence]")
        .await?
        .text()
        .await?;
    ensure!(
        !sentence.is_empty() && !sentence.contains('{'),
        "an event reads as a sentence, not JSON: {sentence}"
    );
    let chart = css(client, "[data-testid=usage-chart] svg")
        .await?
        .attr("aria-label")
        .await?
        .unwrap_or_default();
    ensure!(
        chart.starts_with("1 valid and 2 refused"),
        "the chart: {chart}"
    );
    screenshot(client, "server-events").await?;
    let actor = text(client, "[data-testid=event-actor]").await?;
    ensure!(
        !actor.contains("usr_") && actor.contains('@'),
        "an actor reads by name and email: {actor}"
    );
    audit(client, "server-events", found).await?;

    // The overview shows what the API answers: keys by status, outcomes, the key refused.
    click(client, "[data-testid=nav-overview]").await?;
    css(client, "[data-testid=overview-24h]").await?;
    let (admin_token, _) = api.login_admin().await?;
    let overview = api
        .call("GET", "/v1/overview", As::Bearer(&admin_token), None)
        .await?
        .body;
    for (card, field) in [
        ("overview-active", "active"),
        ("overview-expiring", "expiring_soon"),
        ("overview-revoked", "revoked"),
        ("overview-expired", "expired"),
    ] {
        let shown = text(client, &format!("[data-testid={card}] .figure-value")).await?;
        ensure!(
            shown.parse::<u64>().ok() == overview["keys"][field].as_u64(),
            "{card} shows {shown}, the API {}",
            overview["keys"]
        );
    }
    let revoked_row = text(
        client,
        "[data-testid=overview-24h] [data-testid=outcome-row][data-code=REVOKED]",
    )
    .await?;
    let revoked_24h: u64 = overview["hours"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["counts"]["REVOKED"].as_u64())
        .sum();
    ensure!(
        revoked_24h >= 1 && revoked_row.ends_with(&revoked_24h.to_string()),
        "REVOKED in 24 h: the page says {revoked_row}, the API {revoked_24h}"
    );
    let refused = text(
        client,
        &format!("[data-testid=overview-refused] [data-testid=key-figure][data-key={id}]"),
    )
    .await?;
    ensure!(
        refused.contains("2 refused"),
        "the key refused twice: {refused}"
    );
    screenshot(client, "server-overview").await?;
    audit(client, "server-overview", found).await?;
    for (nav, ready, shot) in [
        ("nav-settings", "settings-form", "server-settings"),
        ("nav-namespaces", "create-workspaces", "server-namespaces"),
        ("nav-permissions", "permissions-table", "server-permissions"),
    ] {
        click(client, &format!("[data-testid={nav}]")).await?;
        css(client, &format!("[data-testid={ready}]")).await?;
        screenshot(client, shot).await?;
        audit(client, shot, found).await?;
    }
    // Grants name their principals: the developer's three read as the developer, not an id.
    let principals = client
        .execute(
            "return [...document.querySelectorAll('[data-testid=grant-principal]')].map(e => e.textContent)",
            vec![],
        )
        .await?;
    let principals: Vec<String> = serde_json::from_value(principals)?;
    ensure!(
        principals
            .iter()
            .filter(|p| p.contains("Dee Veloper"))
            .count()
            >= 3
            && principals.iter().all(|p| !p.starts_with("usr_")),
        "grants by name: {principals:?}"
    );

    manage_webhooks(client, found).await?;

    // The session ends elsewhere: the next call sends the admin back to sign in, with a word.
    let session = client.get_named_cookie("keygate_session").await?;
    let ended = api
        .call("POST", "/v1/auth/logout", As::Bearer(session.value()), None)
        .await?;
    ensure!(ended.status == 204, "logout: {ended:?}");
    click(client, "[data-testid=nav-members]").await?;
    text_contains(client, "[data-testid=login-notice]", "session has ended").await?;
    screenshot(client, "server-session-ended").await?;
    audit(client, "server-session-ended", found).await?;

    by_keyboard_only(client).await?;
    no_violations(found)
}

/// The admin adds a webhook (every event ticked), reads its secret once, sends a test (to a
/// name that does not resolve, so it fails and says why), finds it among the deliveries,
/// disables it and deletes it.
async fn manage_webhooks(client: &Client, found: &mut Vec<String>) -> Result<()> {
    click(client, "[data-testid=nav-webhooks]").await?;
    css(client, "[data-testid=webhooks-empty]").await?;
    click(client, "[data-testid=add-webhook]").await?;
    css(client, "[data-testid=webhook-url-input]")
        .await?
        .send_keys("https://hooks.invalid/keygate")
        .await?;
    screenshot(client, "server-add-webhook").await?;
    audit(client, "server-add-webhook", found).await?;
    click(client, "[data-testid=webhook-submit]").await?;
    let secret = text(client, "[data-testid=webhook-secret]").await?;
    ensure!(secret.starts_with("whsec_"), "the secret: {secret}");
    audit(client, "server-webhook-secret", found).await?;
    click(client, "[data-testid=webhook-secret-close]").await?;
    gone(client, "[data-testid=webhook-secret-panel]").await?;
    text_contains(
        client,
        "[data-testid=webhook-url]",
        "https://hooks.invalid/keygate",
    )
    .await?;
    text_contains(client, "[data-testid=webhook-events]", "every key event").await?;
    let source = client.source().await?;
    ensure!(
        !source.contains(&secret),
        "the secret is gone from the page"
    );

    click(client, "[data-testid=row-menu-open]").await?;
    click(client, "[data-testid=webhook-test]").await?;
    let result = text_contains(client, "[data-testid=webhook-test-result]", "failed:").await?;
    ensure!(!result.contains(&secret), "{result}");
    click(client, "[data-testid=row-menu-open]").await?;
    click(client, "[data-testid=webhook-deliveries]").await?;
    text_contains(client, "[data-testid=delivery-status]", "failed").await?;
    text_contains(client, "[data-testid=delivery-outcome]", "failed:").await?;
    screenshot(client, "server-webhooks").await?;
    audit(client, "server-webhooks", found).await?;
    fits(client, 390, "server-webhooks").await?;

    click(client, "[data-testid=row-menu-open]").await?;
    click(client, "[data-testid=webhook-disable]").await?;
    text_contains(client, "[data-testid=webhook-status]", "Disabled").await?;
    click(client, "[data-testid=row-menu-open]").await?;
    click(client, "[data-testid=webhook-delete]").await?;
    click(client, "[data-testid=delete-webhook-dialog-confirm]").await?;
    css(client, "[data-testid=webhooks-empty]").await?;
    gone(client, "[data-testid=webhook-deliveries-panel]").await?;
    Ok(())
}

/// One whole flow with the keyboard only: sign in, go to *My API keys*, generate a key, close
/// its panel, rename it from its row menu. Every step is a Tab, Enter, Escape or typing.
async fn by_keyboard_only(client: &Client) -> Result<()> {
    use fantoccini::actions::InputSource;
    use fantoccini::key::Key;
    use tests::browser::{press, tab_to, type_text};
    let enter: char = Key::Enter.into();
    tab_to(client, "[data-testid=login-email]", 10).await?;
    type_text(client, ADMIN_EMAIL).await?;
    tab_to(client, "[data-testid=login-password]", 3).await?;
    type_text(client, ADMIN_PASSWORD).await?;
    press(client, &[enter]).await?;
    // Back on the page the session ended on.
    css(client, "[data-testid=signed-in-as]").await?;
    tab_to(client, "[data-testid=nav-my-keys]", 20).await?;
    press(client, &[enter]).await?;
    tab_to(client, "[data-testid=new-key-open]", 20).await?;
    press(client, &[enter]).await?;
    // The dialog puts the focus on its first field.
    tab_to(client, "[data-testid=new-key-name]", 0).await?;
    type_text(client, "keyboard key").await?;
    tab_to(client, "[data-testid=new-key-submit]", 15).await?;
    press(client, &[enter]).await?;
    let plaintext = text(client, "[data-testid=new-key-plaintext]").await?;
    ensure!(plaintext.starts_with("kg_"), "a key: {plaintext}");
    tab_to(client, "[data-testid=new-key-close]", 15).await?;
    press(client, &[enter]).await?;
    gone(client, "[data-testid=new-key-panel]").await?;
    // The new key's row menu, then *Rename*.
    let row = client
        .execute(
            "const r = [...document.querySelectorAll('[data-testid=key-row]')]
                 .find(r => r.querySelector('[data-testid=key-name]').textContent === 'keyboard key');
             return r ? r.dataset.keyId : null;",
            vec![],
        )
        .await?;
    let id = row.as_str().context("the new key is listed")?.to_owned();
    let row = format!("[data-testid=key-row][data-key-id={id}]");
    tab_to(client, &format!("{row} [data-testid=row-menu-open]"), 60).await?;
    press(client, &[enter]).await?;
    css(client, &format!("{row} .row-menu[open]")).await?;
    tab_to(client, &format!("{row} [data-testid=key-rename]"), 5).await?;
    press(client, &[enter]).await?;
    tab_to(client, "[data-testid=rename-name]", 0).await?;
    // Control held while 'a' is pressed: select all, then type over it.
    client
        .perform_actions(
            fantoccini::actions::KeyActions::new("chord".into())
                .then(fantoccini::actions::KeyAction::Down {
                    value: Key::Control.into(),
                })
                .then(fantoccini::actions::KeyAction::Down { value: 'a' })
                .then(fantoccini::actions::KeyAction::Up { value: 'a' })
                .then(fantoccini::actions::KeyAction::Up {
                    value: Key::Control.into(),
                }),
        )
        .await?;
    type_text(client, "keyboard key renamed").await?;
    press(client, &[enter]).await?;
    text_contains(
        client,
        &format!("{row} [data-testid=key-name]"),
        "keyboard key renamed",
    )
    .await?;
    let name = text(client, &format!("{row} [data-testid=key-name]")).await?;
    ensure!(
        name == "keyboard key renamed",
        "renamed by keyboard: {name}"
    );
    // The focus came back to the row's menu button, not to the page's start.
    let focused = client
        .execute(
            "return document.activeElement.dataset.testid || document.activeElement.tagName",
            vec![],
        )
        .await?;
    ensure!(
        focused.as_str() == Some("row-menu-open"),
        "after the dialog the focus is back on the menu: {focused}"
    );
    screenshot(client, "server-keyboard-flow").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_developer_key_is_revoked_by_an_admin_in_the_browser_on_the_server() {
    let host = Host::server(Some(&repo().join("dist")))
        .await
        .expect("server starts");
    let (_driver, client) = tests::browser::start().await.expect("chromedriver starts");
    let outcome = developer_key_revoked_by_an_admin(&host, &client).await;
    if outcome.is_err() {
        let _ = screenshot(&client, "server-failure").await;
    }
    let _ = client.close().await;
    outcome.expect("browser flow on the server");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_generated_in_the_browser_verifies_on_the_worker() {
    let host = Host::worker().await.expect("worker starts under workerd");
    let (_driver, client) = tests::browser::start().await.expect("chromedriver starts");
    let mut found = Vec::new();
    let outcome = generate_a_key_in_the_browser(&host, &client, "worker", &mut found)
        .await
        .and_then(|()| no_violations(&found));
    if outcome.is_err() {
        let _ = screenshot(&client, "worker-failure").await;
    }
    let _ = client.close().await;
    outcome.expect("browser flow on the worker");
}
