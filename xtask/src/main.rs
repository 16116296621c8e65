//! `cargo xtask`: Keygate's automation, in Rust (no shell scripts that drift).
//!
//! - `run`: installs what is missing, builds the console, starts the server on its embedded
//!   store and prints where to sign in.
//! - `test`: lints, builds every part (checking the console's size budget) and runs every test
//!   (native, the contract against the server and the worker under workerd, wasm in headless
//!   Chromium, the browser end to end).
//! - `edge`: builds the worker and the console and serves both under workerd.
//! - `bench`: the criterion benchmark of `model`, then `keygate-bench` (server, edge,
//!   console, writes) against release builds; prints the report table.
//! - `size`: builds the release console and prints its wasm, JS and CSS sizes, raw and gzip,
//!   failing when wasm + JS exceed the budget ([`CONSOLE_BUDGET_GZIP`]).
//! - `fuzz`: runs each cargo-fuzz target of `fuzz/` for a while and prints its executions.
//!
//! Every command first checks the pinned tools ([`tools`]) and installs only what is missing.

mod console;
mod tools;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Keygate's automation")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the console and run the server on its embedded store.
    Run {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        #[arg(long, default_value = ".keygate")]
        data_dir: PathBuf,
    },
    /// Run every test: lints, native, contract on both hosts, wasm in Chromium, end to end.
    Test {
        /// Skip `cargo fmt --check` and clippy.
        #[arg(long)]
        no_lint: bool,
    },
    /// Regenerate `model/openapi.json` from the code, and the TypeScript client's types from it.
    Openapi,
    /// Measure verification against its floor on every host; writes target/bench/report.md.
    Bench {
        /// Seconds each load run lasts.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Concurrent connections of each load run.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Keys in the large server store.
        #[arg(long, default_value_t = 1_000_000)]
        large: usize,
        /// Only these sections (comma-separated: core, server, edge, console).
        #[arg(long)]
        only: Option<String>,
    },
    /// Build the release console and print its sizes; fail above the gzip budget.
    Size,
    /// Run each fuzz target of `fuzz/` (cargo-fuzz, nightly) and print its executions.
    Fuzz {
        /// Seconds each target runs.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// Build the worker and the console and serve both under workerd (`wrangler dev`).
    Edge {
        #[arg(long, default_value_t = 8787)]
        port: u16,
        #[arg(long, default_value = ".keygate/edge")]
        persist_to: PathBuf,
        /// Only build (for `wrangler deploy`), do not serve.
        #[arg(long)]
        build_only: bool,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = root();
    std::env::set_current_dir(&root)?;
    match cli.command {
        Cmd::Run { listen, data_dir } => run(&root, &listen, &data_dir),
        Cmd::Test { no_lint } => test(&root, !no_lint),
        Cmd::Edge {
            port,
            persist_to,
            build_only,
        } => edge(&root, port, &persist_to, build_only),
        Cmd::Bench {
            seconds,
            connections,
            large,
            only,
        } => bench(&root, seconds, connections, large, only.as_deref()),
        Cmd::Size => {
            tools::ensure(&root, tools::Need::Console)?;
            build_console(&root)?;
            size(&root.join("dist"))
        }
        Cmd::Fuzz { seconds } => fuzz(&root, seconds).map(drop),
        Cmd::Openapi => {
            let path = root.join("model/openapi.json");
            std::fs::write(&path, model::openapi::json())?;
            eprintln!("xtask: wrote {}", path.display());
            // The TypeScript client's types come from it.
            tools::npm(&root)?;
            sh(Command::new("node")
                .arg(root.join("clients/typescript/scripts/generate.mjs"))
                .current_dir(&root))
        }
    }
}

/// The workspace root (this crate's parent). Read from the `CARGO_MANIFEST_DIR` that `cargo
/// run` sets, not the compiled-in path: checkouts sharing a target directory share this
/// binary, and the compiled path may be another checkout's.
fn root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Runs `cmd`, failing with its command line when it fails.
pub fn sh(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: $ {}", describe(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {}", describe(cmd)))?;
    if !status.success() {
        bail!("`{}` failed with {status}", describe(cmd));
    }
    Ok(())
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// PATH with node_modules/.bin (wasm-opt, esbuild, wrangler) and cargo's bin directory first.
fn tool_path(root: &Path) -> std::ffi::OsString {
    let mut dirs = vec![root.join("node_modules/.bin"), tools::cargo_bin()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap_or_default()
}

/// Builds the console into `dist/` ([`console::build`]), then the `_headers` file of Workers
/// static assets.
fn build_console(root: &Path) -> Result<()> {
    let started = Instant::now();
    console::build(root)?;
    // Workers static assets read their headers from `_headers`: the same ones the server
    // sends, computed once from the index.html just built.
    let index = std::fs::read_to_string(root.join("dist/index.html"))?;
    let mut headers = String::from("/*\n");
    for (name, value) in model::wire::security_headers(&index) {
        headers.push_str(&format!("  {name}: {value}\n"));
    }
    std::fs::write(root.join("dist/_headers"), headers)?;
    eprintln!("xtask: console built in {:.0?}", started.elapsed());
    Ok(())
}

/// Builds the worker into `edge-worker/build/` with worker-build, using only local tools.
fn build_worker(root: &Path) -> Result<()> {
    worker_build(root, "build", &[])
}

/// Builds the test-only worker with fault injection into `edge-worker/build-faults/`.
fn build_fault_worker(root: &Path) -> Result<()> {
    worker_build(root, "build-faults", &["--features", "fault-injection"])
}

fn worker_build(root: &Path, out_dir: &str, cargo_args: &[&str]) -> Result<()> {
    let started = Instant::now();
    let bin = root.join("node_modules/.bin");
    sh(Command::new(tools::cargo_bin().join("worker-build"))
        .args(["--release", "--out-dir", out_dir, "."])
        .args(cargo_args)
        .current_dir(root.join("edge-worker"))
        .env("PATH", tool_path(root))
        .env("WASM_BINDGEN_BIN", tools::cargo_bin().join("wasm-bindgen"))
        .env("WASM_OPT_BIN", bin.join("wasm-opt"))
        .env("ESBUILD_BIN", bin.join("esbuild")))?;
    eprintln!(
        "xtask: worker ({out_dir}) built in {:.0?}",
        started.elapsed()
    );
    Ok(())
}

fn run(root: &Path, listen: &str, data_dir: &Path) -> Result<()> {
    tools::ensure(root, tools::Need::Console)?;
    build_console(root)?;
    sh(cargo().args(["build", "--release", "-p", "server"]))?;
    let data_dir = root.join(data_dir);
    eprintln!(
        "xtask: starting Keygate on http://{listen} (store in {})",
        data_dir.display()
    );
    eprintln!(
        "xtask: sign in as $KEYGATE_ADMIN_EMAIL / $KEYGATE_ADMIN_PASSWORD; when no password is set, \
         open the one-time set-up link the server prints below to choose it (admin@keygate.local \
         when no email is set)"
    );
    sh(cargo()
        .args([
            "run",
            "--release",
            "-q",
            "-p",
            "server",
            "--bin",
            "keygate-server",
            "--",
        ])
        .args(["--listen", listen, "--data-dir"])
        .arg(&data_dir)
        .arg("--assets")
        .arg(root.join("dist")))
}

fn test(root: &Path, lint: bool) -> Result<()> {
    let started = Instant::now();
    tools::ensure(root, tools::Need::Everything)?;
    if lint {
        sh(cargo().args(["fmt", "--all", "--", "--check"]))?;
        sh(cargo().args([
            "clippy",
            "--workspace",
            "--exclude",
            "app",
            "--exclude",
            "edge-worker",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
        sh(cargo().args([
            "clippy",
            "-p",
            "app",
            "-p",
            "edge-worker",
            "--all-targets",
            "--target",
            "wasm32-unknown-unknown",
            "--",
            "-D",
            "warnings",
        ]))?;
        // The test-only instrumented worker too: it compiles code the deployable one does not.
        sh(cargo().args([
            "clippy",
            "-p",
            "edge-worker",
            "--features",
            "fault-injection",
            "--target",
            "wasm32-unknown-unknown",
            "--",
            "-D",
            "warnings",
        ]))?;
    }
    build_console(root)?;
    size(&root.join("dist"))?;
    build_worker(root)?;
    build_fault_worker(root)?;
    sh(cargo().args(["build", "-p", "server"]))?;
    // The OpenAPI document as its users check it: validated, and a client generated from it.
    sh(Command::new("node")
        .arg(root.join("xtask/js/check-openapi.mjs"))
        .arg(root.join("model/openapi.json"))
        .current_dir(root))?;
    // The TypeScript client: its types current with openapi.json, type-checked as its users
    // would compile against them, and driven against a real server by node's test runner.
    let typescript = root.join("clients/typescript");
    sh(Command::new("node")
        .arg(typescript.join("scripts/generate.mjs"))
        .arg("--check")
        .current_dir(root))?;
    sh(Command::new(root.join("node_modules/.bin/tsc"))
        .args(["--noEmit", "-p"])
        .arg(&typescript)
        .current_dir(root))?;
    sh(Command::new("node")
        .arg("--test")
        .arg(typescript.join("test/"))
        .env(
            "KEYGATE_SERVER_BIN",
            target_dir(root).join("debug/keygate-server"),
        )
        .current_dir(root))?;
    // The reliability tests append their measured figures here; printed at the end.
    let figures = target_dir(root).join("debug/reliability-figures.txt");
    let _ = std::fs::remove_file(&figures);
    // Native: model unit and property tests, the server's, the contract on both hosts, e2e,
    // and the reliability suite (authorization matrix, bad input, crash, load, secrets).
    sh(cargo()
        .args([
            "test",
            "--workspace",
            "--exclude",
            "app",
            "--exclude",
            "edge-worker",
        ])
        .env("PATH", tool_path(root))
        .env("CHROMEDRIVER", tools::CHROMEDRIVER))?;
    // The console's plain-type logic natively (forms, routes, buckets, pickers): no browser.
    sh(cargo().args(["test", "-p", "app", "--test", "plain"]))?;
    // The console's components in headless Chromium.
    sh(cargo()
        .args([
            "test",
            "-p",
            "app",
            "--target",
            "wasm32-unknown-unknown",
            "--test",
            "web",
        ])
        .env("PATH", tool_path(root))
        .env("CHROMEDRIVER", tools::CHROMEDRIVER)
        .env("WASM_BINDGEN_TEST_TIMEOUT", "120"))?;
    // Every fuzz target briefly, on top of its committed seeds.
    for (target, executions) in fuzz(root, FUZZ_SECONDS_IN_TEST)? {
        append_figure(
            &figures,
            &format!(
                "fuzz {target}: {executions} executions in {FUZZ_SECONDS_IN_TEST} s, 0 crashes"
            ),
        )?;
    }
    if let Ok(text) = std::fs::read_to_string(&figures) {
        eprintln!("xtask: reliability figures of this run:");
        for line in text.lines() {
            eprintln!("  {line}");
        }
    }
    eprintln!("xtask: every test passed in {:.0?}", started.elapsed());
    Ok(())
}

/// The targets of `fuzz/fuzz_targets/`.
const FUZZ_TARGETS: [&str; 4] = [
    "key_parse",
    "verify_request",
    "request_bodies",
    "github_alerts",
];
/// How long `cargo xtask test` runs each fuzz target.
const FUZZ_SECONDS_IN_TEST: u64 = 30;

/// Runs every fuzz target for `seconds` with `cargo +nightly fuzz run`, each on a working
/// corpus under the target directory seeded from `fuzz/corpus/<target>` (which stays as
/// committed), and returns the executions libFuzzer reports for each. A crash fails with
/// the end of libFuzzer's report; the input is kept in `fuzz/artifacts/<target>/`.
fn fuzz(root: &Path, seconds: u64) -> Result<Vec<(&'static str, u64)>> {
    tools::ensure_fuzz()?;
    let target_dir = target_dir(root).join("fuzz");
    let nightly = || {
        // The rustup proxy, not the cargo that runs xtask: `+nightly` picks the toolchain.
        let mut cmd = Command::new(tools::cargo_bin().join("cargo"));
        cmd.current_dir(root)
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO")
            .args(["+nightly", "fuzz"]);
        cmd
    };
    sh(nightly().arg("build").arg("--target-dir").arg(&target_dir))?;
    let mut figures = Vec::new();
    for target in FUZZ_TARGETS {
        let corpus = target_dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus)?;
        let mut cmd = nightly();
        cmd.args(["run", target, "--target-dir"])
            .arg(&target_dir)
            .arg(&corpus)
            .arg(root.join("fuzz/corpus").join(target))
            .args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-print_final_stats=1",
            ]);
        eprintln!("xtask: $ {}", describe(&cmd));
        let out = cmd
            .output()
            .with_context(|| format!("cannot start {}", describe(&cmd)))?;
        let log = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            for line in tail.iter().rev() {
                eprintln!("  {line}");
            }
            bail!("fuzz target {target} failed ({}); see above", out.status);
        }
        let executions = executions(&log)
            .with_context(|| format!("no execution count in the output of {target}"))?;
        eprintln!("xtask: fuzz {target}: {executions} executions in {seconds} s");
        figures.push((target, executions));
    }
    Ok(figures)
}

/// The executions in a libFuzzer log: `stat::number_of_executed_units: N`, else `Done N runs`.
fn executions(log: &str) -> Option<u64> {
    let stat = log.lines().find_map(|l| {
        l.strip_prefix("stat::number_of_executed_units:")
            .and_then(|n| n.trim().parse().ok())
    });
    stat.or_else(|| {
        log.lines().find_map(|l| {
            l.strip_prefix("Done ")
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
    })
}

/// Appends a line to the figures file the reliability tests write.
fn append_figure(path: &Path, line: &str) -> Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(file, "{line}")?;
    Ok(())
}

fn bench(
    root: &Path,
    seconds: u64,
    connections: usize,
    large: usize,
    only: Option<&str>,
) -> Result<()> {
    tools::ensure(root, tools::Need::Everything)?;
    let wants = |section: &str| only.is_none_or(|o| o.split(',').any(|s| s == section));
    // The worker serves the console's assets (`wrangler.toml`): the edge needs it built too.
    if wants("console") || wants("edge") {
        build_console(root)?;
    }
    if wants("edge") {
        build_worker(root)?;
        build_fault_worker(root)?;
    }
    if wants("core") {
        sh(cargo().args([
            "bench",
            "-p",
            "model",
            "--bench",
            "verify",
            "--",
            "--warm-up-time",
            "2",
            "--measurement-time",
            "5",
        ]))?;
    }
    sh(cargo().args(["build", "--release", "-p", "server", "-p", "bench"]))?;
    let target = target_dir(root);
    let release = target.join("release");
    let mut cmd = Command::new(release.join("keygate-bench"));
    cmd.args(["--seconds", &seconds.to_string()])
        .args(["--connections", &connections.to_string()])
        .args(["--large", &large.to_string()])
        .env("CARGO_TARGET_DIR", &target)
        .env("KEYGATE_SERVER_BIN", release.join("keygate-server"))
        .env("PATH", tool_path(root))
        .env("CHROMEDRIVER", tools::CHROMEDRIVER);
    if let Some(only) = only {
        cmd.args(["--only", only]);
    }
    sh(&mut cmd)
}

/// Cargo's target directory: `$CARGO_TARGET_DIR`, else `target/` in the workspace.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_relative() {
                root.join(dir)
            } else {
                dir
            }
        })
        .unwrap_or_else(|| root.join("target"))
}

fn edge(root: &Path, port: u16, persist_to: &Path, build_only: bool) -> Result<()> {
    tools::ensure(root, tools::Need::Edge)?;
    build_console(root)?;
    build_worker(root)?;
    if build_only {
        return Ok(());
    }
    let mut cmd = Command::new(root.join("node_modules/.bin/wrangler"));
    cmd.current_dir(root.join("edge-worker"))
        .args([
            "dev",
            "--ip",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--persist-to",
        ])
        .arg(root.join(persist_to))
        .env("WRANGLER_SEND_METRICS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false");
    // Every KEYGATE_* setting of this environment, so that both hosts are configured alike.
    for (name, value) in std::env::vars().filter(|(name, _)| name.starts_with("KEYGATE_")) {
        cmd.args(["--var", &format!("{name}:{value}")]);
    }
    eprintln!(
        "xtask: serving the edge on http://127.0.0.1:{port}; without KEYGATE_ADMIN_PASSWORD, the first admin's one-time set-up link appears in the log below"
    );
    sh(&mut cmd)
}

/// The most the console's wasm and JS may weigh together, gzip-compressed (issue #5), in
/// bytes: 400 kB, decimal, the stricter reading.
pub const CONSOLE_BUDGET_GZIP: u64 = 400_000;

/// Prints the sizes of the built console in `dist` and checks the budget.
fn size(dist: &Path) -> Result<()> {
    use std::io::Write;

    let mut code_gzip = 0;
    let mut rows = Vec::new();
    for entry in std::fs::read_dir(dist).with_context(|| format!("reading {}", dist.display()))? {
        let path = entry?.path();
        let Some(kind) = path.extension().and_then(|e| e.to_str()).map(str::to_owned) else {
            continue;
        };
        if !["wasm", "js", "css"].contains(&kind.as_str()) {
            continue;
        }
        let bytes = std::fs::read(&path)?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&bytes)?;
        let gzip = gz.finish()?.len() as u64;
        if kind != "css" {
            code_gzip += gzip;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        rows.push((kind, name, bytes.len() as u64, gzip));
    }
    rows.sort();
    println!("{:<5} {:>10} {:>10}  file", "kind", "raw", "gzip");
    for (kind, name, raw, gzip) in &rows {
        println!("{kind:<5} {:>10} {:>10}  {name}", kb(*raw), kb(*gzip));
    }
    println!(
        "wasm + JS: {} gzip (budget {})",
        kb(code_gzip),
        kb(CONSOLE_BUDGET_GZIP)
    );
    if code_gzip > CONSOLE_BUDGET_GZIP {
        bail!(
            "the console's wasm + JS weigh {} gzip, above the {} budget",
            kb(code_gzip),
            kb(CONSOLE_BUDGET_GZIP)
        );
    }
    Ok(())
}

fn kb(bytes: u64) -> String {
    format!("{:.1} kB", bytes as f64 / 1000.0)
}
