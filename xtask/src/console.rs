//! Builds the console into `dist/`: the `app` binary for wasm32 with the size-optimised
//! `console` profile, the wasm-bindgen CLI (web target), npm's `wasm-opt -Oz`, esbuild for the
//! glue, the style sheets, and `index.html` from `app/index.html` with every asset named by its
//! content hash and loaded with Subresource Integrity.
//!
//! This is what Trunk did for Keygate, in a few steps that need no tool of their own: Trunk
//! took 20–30 minutes to compile on a fresh machine, a third of a cold CI run.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use sha2::Digest as _;

use crate::{cargo, sh, target_dir, tools};

/// The console's style sheets, in the order the page loads them.
const STYLES: [&str; 2] = ["style/tokens.css", "style/app.css"];
/// Where `app/index.html` wants the generated tags.
const ASSETS_MARKER: &str = "<!-- assets -->";

/// The first 16 hex digits of the SHA-256 of `bytes`: an asset's cache-busting name.
fn content_hash(bytes: &[u8]) -> String {
    model::key::hex(&sha2::Sha256::digest(bytes))[..16].to_owned()
}

/// The Subresource Integrity value of `bytes`.
fn integrity(bytes: &[u8]) -> String {
    format!(
        "sha384-{}",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha384::digest(bytes))
    )
}

/// Builds `dist/` from scratch.
pub fn build(root: &Path) -> Result<()> {
    let dist = root.join("dist");
    let stage = target_dir(root).join("console-stage");
    for dir in [&dist, &stage] {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir)?;
    }
    sh(cargo().args([
        "build",
        "-p",
        "app",
        "--bin",
        "app",
        "--profile",
        "console",
        "--target",
        "wasm32-unknown-unknown",
    ]))?;
    let built = target_dir(root).join("wasm32-unknown-unknown/console/app.wasm");
    sh(Command::new(tools::cargo_bin().join("wasm-bindgen"))
        .args([
            "--target",
            "web",
            "--no-typescript",
            "--out-name",
            "app",
            "--out-dir",
        ])
        .arg(&stage)
        .arg(&built))?;
    let wasm_in = stage.join("app_bg.wasm");
    let wasm_opt = stage.join("app_opt.wasm");
    sh(Command::new(root.join("node_modules/.bin/wasm-opt"))
        .arg("-Oz")
        .arg(format!("--output={}", wasm_opt.display()))
        .arg(&wasm_in))?;
    let glue = stage.join("app.js");
    sh(Command::new(root.join("node_modules/.bin/esbuild"))
        .arg(&glue)
        .args([
            "--minify",
            "--format=esm",
            "--allow-overwrite",
            "--log-level=warning",
        ])
        .arg(format!("--outfile={}", glue.display())))?;

    // The glue loads the wasm by the name the page gives it, so each is hashed alone.
    let wasm = std::fs::read(&wasm_opt)?;
    let wasm_name = format!("app-{}_bg.wasm", content_hash(&wasm));
    std::fs::write(dist.join(&wasm_name), &wasm)?;
    let js = std::fs::read(&glue)?;
    let js_name = format!("app-{}.js", content_hash(&js));
    std::fs::write(dist.join(&js_name), &js)?;

    let mut tags = String::new();
    // The one inline script: its SHA-256 goes into the CSP (`model::wire`).
    tags.push_str(&format!(
        "<script type=\"module\">\nimport init from '/{js_name}';\nawait init({{ module_or_path: '/{wasm_name}' }});\n</script>\n"
    ));
    for style in STYLES {
        let css = std::fs::read(root.join(style)).with_context(|| style.to_owned())?;
        let stem = Path::new(style)
            .file_stem()
            .and_then(|s| s.to_str())
            .context("style name")?;
        let name = format!("{stem}-{}.css", content_hash(&css));
        std::fs::write(dist.join(&name), &css)?;
        tags.push_str(&format!(
            "    <link rel=\"stylesheet\" href=\"/{name}\" integrity=\"{}\"/>\n",
            integrity(&css)
        ));
    }
    tags.push_str(&format!(
        "    <link rel=\"modulepreload\" href=\"/{js_name}\" crossorigin=\"anonymous\" integrity=\"{}\">\n",
        integrity(&js)
    ));
    tags.push_str(&format!(
        "    <link rel=\"preload\" href=\"/{wasm_name}\" crossorigin=\"anonymous\" integrity=\"{}\" as=\"fetch\" type=\"application/wasm\">",
        integrity(&wasm)
    ));
    let template = std::fs::read_to_string(root.join("app/index.html"))?;
    if !template.contains(ASSETS_MARKER) {
        bail!("app/index.html has no {ASSETS_MARKER} for the console's assets");
    }
    std::fs::write(
        dist.join("index.html"),
        template.replace(ASSETS_MARKER, &tags),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_names_follow_their_content() {
        assert_eq!(content_hash(b"a"), content_hash(b"a"));
        assert_ne!(content_hash(b"a"), content_hash(b"b"));
        assert_eq!(content_hash(b"a").len(), 16);
        // echo -n a | openssl dgst -sha384 -binary | base64
        assert_eq!(
            integrity(b"a"),
            "sha384-VKWbnyKwuAiA2EJ+VIt8I6vYc0huHwNdzpzWl+hRdQM8qojm1XvDXvrgta/TFF8x"
        );
    }
}
