//! The model's layers are one-way (`model::LAYERS`): no module names one that comes after it,
//! so that, say, a change of the stored records cannot reach the API's shapes unseen, and the
//! rules never depend on how they are served.

use std::collections::BTreeSet;
use std::path::Path;

/// The modules a source text names as `crate::<module>` outside comments.
fn named_modules(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            let rest = rest.trim_start_matches('{').trim_start();
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
        // `use crate::{a, b::X}` names every module in the braces.
        if let Some(list) = code.trim().strip_prefix("use crate::{") {
            for part in list.split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        }
    }
    found
}

/// Every source file of `module` (a file, or a directory of files).
fn sources(src: &Path, module: &str) -> Vec<(String, String)> {
    let file = src.join(format!("{module}.rs"));
    let dir = src.join(module);
    let mut paths = Vec::new();
    if file.exists() {
        paths.push(file);
    }
    if let Ok(entries) = std::fs::read_dir(&dir) {
        paths.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
    }
    assert!(!paths.is_empty(), "no source for module {module}");
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable source");
            (p.display().to_string(), text)
        })
        .collect()
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut listed = BTreeSet::new();
    let mut violations = Vec::new();
    for (rank, module) in model::LAYERS.iter().enumerate() {
        listed.insert(module.to_string());
        for (path, text) in sources(&src, module) {
            for named in named_modules(&text) {
                let Some(other) = model::LAYERS.iter().position(|m| *m == named) else {
                    // `crate::OPENAPI_JSON` and the like: the crate root, not a layer.
                    continue;
                };
                if other > rank {
                    violations.push(format!("{path} ({module}) uses {named}, a later layer"));
                }
            }
        }
    }
    // Every module of the crate is in a layer.
    for entry in std::fs::read_dir(&src).expect("src") {
        let path = entry.expect("entry").path();
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if name != "lib" {
            assert!(
                listed.contains(name),
                "{name} is in no layer of model::LAYERS"
            );
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_check_sees_what_it_looks_for() {
    let names = named_modules(
        "use crate::{api::X, store};\n// crate::http in a comment\nlet a = crate::wire::f();",
    );
    let expected: BTreeSet<String> = ["api", "store", "wire"].map(String::from).into();
    assert_eq!(names, expected);
}
