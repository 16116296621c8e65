//! The `keygate` binary end to end against a real server: sign in (the token kept 0600),
//! switch keys on, create a key (its plaintext on stdout once, nowhere else), list it as a
//! table and as JSON, verify it, revoke it, the exit codes scripts test, events (and
//! `--follow`), members, completions.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::{ADMIN_EMAIL, ADMIN_PASSWORD, Api, Host};

/// What one run of `keygate` did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `keygate args…` with its config in `config`, `stdin` as its input, and `env`.
fn keygate(config: &Path, env: &[(&str, &str)], args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(args)
        .env("KEYGATE_CONFIG_DIR", config)
        .env_remove("KEYGATE_TOKEN")
        .env_remove("KEYGATE_URL")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("keygate runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("keygate ends");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_manages_a_key_from_login_to_revocation() {
    let host = Host::server(None).await.expect("server starts");
    let home = tempfile::tempdir().expect("tempdir");
    let config = home.path().join("keygate");
    let url = host.base.as_str();
    let mut everything = String::new();
    let mut run = |args: &[&str], stdin: &str| {
        let mut full = vec!["--url", url];
        full.extend_from_slice(args);
        let run = keygate(&config, &[], &full, stdin);
        everything.push_str(&run.stdout);
        everything.push_str(&run.stderr);
        run
    };

    let out = run(&["keys", "list"], "");
    assert_eq!(out.code, 4, "not signed in: {}", out.stderr);
    assert!(out.stderr.contains("keygate login"), "{}", out.stderr);

    let wrong = run(
        &["login", "--email", ADMIN_EMAIL, "--password-stdin"],
        "not-the-password\n",
    );
    assert_eq!(wrong.code, 1, "{}", wrong.stderr);
    assert!(wrong.stderr.contains("unauthenticated"), "{}", wrong.stderr);
    let login = run(
        &["login", "--email", ADMIN_EMAIL, "--password-stdin"],
        &format!("{ADMIN_PASSWORD}\n"),
    );
    assert_eq!(login.code, 0, "{}", login.stderr);
    let saved = config.join("hosts.json");
    let mode = std::fs::metadata(&saved)
        .expect("saved")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the token file is the owner's only");
    let saved_text = std::fs::read_to_string(&saved).expect("read");
    assert!(!saved_text.contains(ADMIN_PASSWORD), "never the password");

    let on = run(&["settings", "set", "--api-keys", "on"], "");
    assert_eq!(on.code, 0, "{}", on.stderr);
    assert!(
        on.stdout
            .lines()
            .any(|l| l.starts_with("api keys") && l.ends_with("on")),
        "{}",
        on.stdout
    );

    let made = run(
        &["keys", "create", "ci-deploy", "--expires-in-days", "30"],
        "",
    );
    assert_eq!(made.code, 0, "{}", made.stderr);
    let lines: Vec<&str> = made.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout is the key alone: {lines:?}");
    let key = lines[0].to_owned();
    assert!(key.starts_with("kg_"), "{key}");
    assert!(made.stderr.contains("only time"), "{}", made.stderr);
    let id = made
        .stderr
        .split_whitespace()
        .find(|w| w.starts_with("key_"))
        .expect("the id on stderr")
        .to_owned();

    let table = run(&["keys", "list"], "");
    assert_eq!(table.code, 0, "{}", table.stderr);
    let header = table.stdout.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("ID") && header.contains("NAME"),
        "{header}"
    );
    let row = table
        .stdout
        .lines()
        .find(|l| l.contains(&id))
        .expect("the key's row");
    assert!(row.contains("ci-deploy") && row.contains("active"), "{row}");

    let listed = run(&["--json", "keys", "list"], "");
    let keys: Value = serde_json::from_str(&listed.stdout).expect("JSON");
    let found = keys
        .as_array()
        .expect("an array")
        .iter()
        .find(|k| k["id"] == id.as_str())
        .expect("listed");
    assert_eq!(found["name"], "ci-deploy");
    assert!(found["expires_at"].is_string(), "{found}");

    let valid = run(&["keys", "verify"], &format!("{key}\n"));
    assert_eq!(valid.code, 0, "{}{}", valid.stdout, valid.stderr);
    assert_eq!(valid.stdout.trim(), format!("VALID {id} (ci-deploy)"));
    let missing = run(
        &["keys", "verify", "--permission", "billing.admin"],
        &format!("{key}\n"),
    );
    assert_eq!(missing.code, 3, "{}", missing.stdout);
    assert!(
        missing.stdout.starts_with("INSUFFICIENT_PERMISSIONS"),
        "{}",
        missing.stdout
    );

    let shown = run(&["keys", "show", &id], "");
    assert!(shown.stdout.contains("role viewer"), "{}", shown.stdout);
    let renamed = run(&["keys", "rename", &id, "ci-prod"], "");
    assert!(renamed.stdout.contains("ci-prod"), "{}", renamed.stdout);

    let revoked = run(&["keys", "revoke", &id], "");
    assert_eq!(revoked.code, 0, "{}", revoked.stderr);
    assert!(revoked.stdout.contains("revoked"), "{}", revoked.stdout);
    let refused = run(&["--json", "keys", "verify", "-"], &format!("{key}\n"));
    assert_eq!(refused.code, 3, "a refused verification exits 3");
    let verdict: Value = serde_json::from_str(&refused.stdout).expect("JSON");
    assert_eq!(verdict["code"], "REVOKED");

    let none = run(&["keys", "show", "key_doesnotexist"], "");
    assert_eq!(none.code, 1);
    assert!(none.stderr.contains("not_found"), "{}", none.stderr);

    let rolled = run(&["keys", "create", "to-roll"], "");
    let roll_id = rolled
        .stderr
        .split_whitespace()
        .find(|w| w.starts_with("key_"))
        .expect("id")
        .to_owned();
    let roll = run(&["--json", "keys", "roll", &roll_id], "");
    assert_eq!(roll.code, 0, "{}", roll.stderr);
    let new: Value = serde_json::from_str(&roll.stdout).expect("JSON");
    let new_key = new["key"].as_str().expect("the new secret").to_owned();
    assert_eq!(run(&["keys", "verify"], &format!("{new_key}\n")).code, 0);
    assert_eq!(run(&["keys", "delete", &roll_id], "").code, 0);
    assert_eq!(run(&["keys", "verify"], &format!("{new_key}\n")).code, 3);

    let events = run(&["--json", "events", "--type", "key.*"], "");
    let events: Value = serde_json::from_str(&events.stdout).expect("JSON");
    let kinds: Vec<&str> = events
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    for kind in ["key.created", "key.updated", "key.revoked"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let members = run(&["members"], "");
    assert!(members.stdout.contains(ADMIN_EMAIL), "{}", members.stdout);
    let settings = run(&["--json", "settings"], "");
    let settings: Value = serde_json::from_str(&settings.stdout).expect("JSON");
    assert_eq!(settings["api_keys_enabled"], true);
    let completions = run(&["completions", "bash"], "");
    assert!(completions.stdout.contains("_keygate"), "a bash completion");

    let out = run(&["logout"], "");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(run(&["keys", "list"], "").code, 4, "signed out");
    let tokens = std::fs::read_to_string(&saved).expect("read");
    assert!(
        !tokens.contains("\"token\""),
        "the session is forgotten: {tokens}"
    );
    // The secrets: each new key appeared once, on stdout, and nowhere else.
    assert_eq!(everything.matches(key.as_str()).count(), 1, "{key}");
    assert!(
        !std::fs::read_to_string(&saved)
            .expect("read")
            .contains(&key)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_from_the_environment_and_events_followed() {
    let host = Host::server(None).await.expect("server starts");
    let api = Api::new(&host.base);
    let (token, _) = api.login_admin().await.expect("admin");
    let home = tempfile::tempdir().expect("tempdir");
    let env = [
        ("KEYGATE_URL", host.base.as_str()),
        ("KEYGATE_TOKEN", token.as_str()),
    ];
    let on = keygate(
        home.path(),
        &env,
        &["settings", "set", "--api-keys", "on"],
        "",
    );
    assert_eq!(on.code, 0, "KEYGATE_TOKEN signs the call: {}", on.stderr);
    let bad = keygate(
        home.path(),
        &[
            ("KEYGATE_URL", host.base.as_str()),
            ("KEYGATE_TOKEN", "kgs_nope"),
        ],
        &["keys", "list"],
        "",
    );
    assert_eq!(bad.code, 4, "a refused token exits 4: {}", bad.stderr);

    let id_of = |made: &Run| {
        made.stderr
            .split_whitespace()
            .find(|w| w.starts_with("key_"))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no id: {}", made.stderr))
    };
    let before = id_of(&keygate(
        home.path(),
        &env,
        &["keys", "create", "before"],
        "",
    ));

    let mut follow = Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["--json", "events", "--follow", "--type", "key.created"])
        .env("KEYGATE_CONFIG_DIR", home.path())
        .envs(env)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("follow");
    let lines = BufReader::new(follow.stdout.take().expect("stdout"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Each event once, as one JSON line: first what was there, then what happens.
    let mut targets = Vec::new();
    let mut wait_for = |id: &str| {
        let started = Instant::now();
        while !targets.iter().any(|t| t == id) {
            let left = Duration::from_secs(20).saturating_sub(started.elapsed());
            let Ok(line) = rx.recv_timeout(left) else {
                panic!("{id} was not followed: {targets:?}");
            };
            let event: Value = serde_json::from_str(&line).expect("one JSON event per line");
            targets.push(event["target"].as_str().unwrap_or_default().to_owned());
        }
    };
    wait_for(&before);
    let after = id_of(&keygate(
        home.path(),
        &env,
        &["keys", "create", "after"],
        "",
    ));
    wait_for(&after);
    let _ = follow.kill();
    let _ = follow.wait();
    for id in [&before, &after] {
        assert_eq!(targets.iter().filter(|t| t == &id).count(), 1, "{id} once");
    }
}
