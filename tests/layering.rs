//! The crate's layering (docs/ARCHITECTURE.md, the crate root's docs): each
//! top-level module may name only the modules below it. A lower layer that
//! names a higher one (the compiler taking a helper from the CLI, the RASP
//! core depending on the `.rasp` front end, the model on the compiler, …)
//! fails this test with the file, line and import.

use std::path::{Path, PathBuf};

/// From the bottom up. A module may use `crate::X` only for X earlier in this
/// list (or itself). `api` is the crate root's public pipeline (src/api.rs,
/// re-exported by src/lib.rs); `main` is the binary.
const LAYERS: &[&str] = &[
    "value",
    "diagnostic",
    "files",
    "figures",
    "raster",
    "rasp",
    "library",
    "lang",
    "model",
    "compiler",
    "verify",
    "api",
    "show",
    "compress",
    "batch",
    "compare",
    "cli",
    "main",
];

/// The layer of a source file: its first path component under src/.
fn layer_of(relative: &Path) -> String {
    let first = relative.components().next().unwrap().as_os_str().to_string_lossy().to_string();
    let name = first.trim_end_matches(".rs").to_string();
    match name.as_str() {
        "lib" => "api".into(),
        other => other.into(),
    }
}

/// Every `crate::X` (X a top-level module) named in `text` outside comments,
/// with its line number; `use crate::{a, b::c}` counts as a and b.
fn named_modules(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            if let Some(group) = after.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or("");
                for part in inner.split(',') {
                    let name: String = part.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    if !name.is_empty() {
                        out.push((n + 1, name));
                    }
                }
            } else {
                let name: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                out.push((n + 1, name));
            }
            rest = &rest[i + "crate::".len()..];
        }
    }
    out
}

/// The layering violations in one file (`layer` is the file's layer).
fn violations(layer: &str, file: &str, text: &str) -> Vec<String> {
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
    let Some(own) = rank(layer) else { return vec![format!("{file}: module '{layer}' is in no layer of LAYERS")] };
    named_modules(text)
        .into_iter()
        .filter_map(|(line, m)| {
            // items re-exported at the crate root (crate::Result, crate::compile, …) belong to the api layer
            let target = rank(&m).unwrap_or_else(|| rank("api").unwrap());
            (target > own).then(|| format!("{file}:{line}: '{layer}' names 'crate::{m}', a higher layer"))
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_module_names_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    let mut layers_seen = std::collections::BTreeSet::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let layer = layer_of(rel);
        layers_seen.insert(layer.clone());
        bad.extend(violations(&layer, &rel.display().to_string(), &std::fs::read_to_string(f).unwrap()));
    }
    assert!(bad.is_empty(), "upward imports:\n{}", bad.join("\n"));
    // every layer the list names exists, so a renamed module cannot slip out of the check
    for l in LAYERS {
        assert!(layers_seen.contains(*l), "layer '{l}' has no source file");
    }
}

#[test]
fn the_check_catches_the_upward_imports_it_exists_for() {
    // the two that were in the tree before the check: the allocator writing
    // its LP file with the CLI's helper, and the RASP core using the front end
    let ilp = "use std::path::Path;\n    crate::cli::write_atomic(path, text)?;\n";
    assert_eq!(violations("compiler", "ilp.rs", ilp), ["ilp.rs:2: 'compiler' names 'crate::cli', a higher layer"]);
    let builder = "use crate::diagnostic::Span;\nuse crate::{lang::eval::Closure, value::Value};\n";
    assert_eq!(violations("rasp", "builder.rs", builder), ["builder.rs:2: 'rasp' names 'crate::lang', a higher layer"]);
    assert!(violations("model", "m.rs", "pub basis: crate::compiler::craft::Basis,").len() == 1);
    // comments and lower layers are fine
    assert!(violations("compiler", "x.rs", "// crate::cli is above\nuse crate::model::Model;").is_empty());
}
