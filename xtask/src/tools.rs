//! The pinned tools Keygate builds and tests with, checked before every build and installed
//! only when missing or at another version (see TOOLCHAIN.md for why each is installed so).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::sh;

/// worker-build, matching the `worker` crate's minor version.
const WORKER_BUILD: &str = "0.8.7";
/// cargo-fuzz, for `cargo xtask fuzz` (it drives the nightly toolchain, installed alongside).
const CARGO_FUZZ: &str = "0.13.2";
/// Where Debian's chromedriver lives.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// What a command needs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Console,
    Edge,
    Everything,
}

/// `~/.cargo/bin` (or `$CARGO_HOME/bin`).
pub fn cargo_bin() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo")
        });
    home.join("bin")
}

/// Checks every tool `need` requires and installs what is missing, printing what it does.
pub fn ensure(root: &Path, need: Need) -> Result<()> {
    wasm_target()?;
    let bindgen = locked_version(root, "wasm-bindgen")?;
    cargo_tool(
        "wasm-bindgen",
        &bindgen,
        &["install", "wasm-bindgen-cli", "--version", &bindgen],
    )?;
    npm(root)?;
    if need != Need::Console {
        cargo_tool(
            "worker-build",
            WORKER_BUILD,
            &[
                "install",
                "--locked",
                "worker-build",
                "--version",
                WORKER_BUILD,
            ],
        )?;
    }
    if need == Need::Everything {
        browser()?;
    }
    Ok(())
}

/// The nightly toolchain and cargo-fuzz, which `cargo xtask fuzz` needs (libFuzzer's
/// instrumentation is nightly-only).
pub fn ensure_fuzz() -> Result<()> {
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"])).unwrap_or_default();
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        eprintln!("xtask: installing the nightly toolchain (for cargo fuzz)");
        sh(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    cargo_tool(
        "cargo-fuzz",
        CARGO_FUZZ,
        &["install", "cargo-fuzz", "--version", CARGO_FUZZ, "--locked"],
    )
}

fn output(cmd: &mut Command) -> Option<String> {
    cmd.output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
}

fn wasm_target() -> Result<()> {
    let installed =
        output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if !installed
        .lines()
        .any(|l| l.trim() == "wasm32-unknown-unknown")
    {
        eprintln!("xtask: installing the wasm32-unknown-unknown target");
        sh(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))?;
    }
    Ok(())
}

/// The version of `package` in Cargo.lock.
fn locked_version(root: &Path, package: &str) -> Result<String> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).context("reading Cargo.lock")?;
    let name = format!("name = \"{package}\"");
    let lines: Vec<&str> = lock.lines().collect();
    let version = lines
        .windows(2)
        .find(|pair| pair[0] == name)
        .and_then(|pair| pair[1].strip_prefix("version = \""))
        .map(|v| v.trim_end_matches('"').to_owned());
    if let Some(version) = version {
        return Ok(version);
    }
    bail!("{package} is not in Cargo.lock")
}

/// Installs a cargo tool unless `<bin> --version` already reports `version`.
fn cargo_tool(bin: &str, version: &str, install: &[&str]) -> Result<()> {
    let path = cargo_bin().join(bin);
    let reported = output(Command::new(&path).arg("--version")).unwrap_or_default();
    if reported
        .split_whitespace()
        .any(|w| w.trim_start_matches('v') == version)
    {
        return Ok(());
    }
    eprintln!(
        "xtask: installing {bin} {version} (found: {}); this compiles for a while, once",
        reported.trim()
    );
    sh(Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())).args(install))
}

/// `npm ci` when node_modules is missing or older than package-lock.json.
pub fn npm(root: &Path) -> Result<()> {
    let stamp = root.join("node_modules/.package-lock.json");
    let lock = root.join("package-lock.json");
    let fresh = match (std::fs::metadata(&stamp), std::fs::metadata(&lock)) {
        (Ok(s), Ok(l)) => s.modified().ok() >= l.modified().ok(),
        _ => false,
    };
    if !fresh {
        eprintln!("xtask: installing the npm tools of package-lock.json");
        sh(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(root))?;
    }
    Ok(())
}

/// Debian's Chromium and chromedriver, for the browser tests.
fn browser() -> Result<()> {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return Ok(());
    }
    eprintln!("xtask: installing chromium and chromium-driver with apt");
    sh(Command::new("apt-get").arg("update").arg("-qq"))?;
    sh(Command::new("apt-get")
        .args(["install", "-y", "-qq", "chromium", "chromium-driver"])
        .env("DEBIAN_FRONTEND", "noninteractive"))
}
