//! `keygate-bench`, run by `cargo xtask bench` (which first runs the criterion benchmark of
//! `model` and builds everything in release): verification measured side by side with its
//! floor, on the server, at the edge and in the console, in one run so that ratios hold on a
//! noisy machine. Prints one table and writes it to `<target>/bench/report.md`.
//!
//! `keygate-bench [--seconds 10] [--connections 64] [--large 1000000] [--only core,server,…]`

mod load;
mod report;
mod sections;

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::report::Report;

/// Settings from the command line.
pub struct Settings {
    pub seconds: u64,
    pub connections: usize,
    pub large: usize,
    pub only: Option<Vec<String>>,
    pub target: PathBuf,
    pub repo: PathBuf,
}

impl Settings {
    fn from_args() -> Result<Self> {
        let mut settings = Settings {
            seconds: 10,
            connections: 64,
            large: 1_000_000,
            only: None,
            target: std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| tests::repo().join("target")),
            repo: tests::repo(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--seconds" => settings.seconds = value()?.parse()?,
                "--connections" => settings.connections = value()?.parse()?,
                "--large" => settings.large = value()?.parse()?,
                "--only" => {
                    settings.only = Some(value()?.split(',').map(str::to_owned).collect());
                }
                other => anyhow::bail!("unknown flag {other}"),
            }
        }
        Ok(settings)
    }

    fn wants(&self, section: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|s| s == section))
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let settings = Settings::from_args()?;
    // The hosts are the release builds next to this binary.
    let bin_dir = std::env::current_exe()?
        .parent()
        .context("binary directory")?
        .to_path_buf();
    let server_bin = bin_dir.join("keygate-server");
    let mut report = Report::default();
    // A section that fails is reported as failed; the others still run.
    let mut failed = Vec::new();
    if settings.wants("core") {
        note(&mut failed, "core", sections::core(&settings, &mut report));
    }
    if settings.wants("server") {
        let done = sections::server(&settings, &server_bin, &mut report).await;
        note(&mut failed, "server", done);
    }
    if settings.wants("edge") {
        note(
            &mut failed,
            "edge",
            sections::edge(&settings, &mut report).await,
        );
    }
    if settings.wants("console") {
        let done = sections::console(&settings, &mut report).await;
        note(&mut failed, "console", done);
    }
    let table = report.markdown();
    println!("{table}");
    let out = settings.target.join("bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("report.md"), &table)?;
    eprintln!("keygate-bench: wrote {}", out.join("report.md").display());
    if !failed.is_empty() {
        anyhow::bail!("sections failed: {}", failed.join(", "));
    }
    Ok(())
}

fn note(failed: &mut Vec<&'static str>, section: &'static str, done: Result<()>) {
    if let Err(e) = done {
        eprintln!("keygate-bench: {section} failed: {e:#}");
        failed.push(section);
    }
}
