//! `tracr-opt show`: well-formed SVG that names every s-op of the program,
//! PNG output, and clear errors that write nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use tracr_opt::library::PROGRAMS;

fn tracr_opt(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tracr-opt")).args(args).output().expect("runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tracr-opt-show-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().to_string());
            }
        }
    }
    out.sort();
    out
}

/// The text content of an SVG document, which must parse as strict XML with
/// an `svg` root.
fn svg_text(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let doc =
        roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{}: not well-formed XML: {e}", path.display()));
    assert_eq!(doc.root_element().tag_name().name(), "svg", "{}", path.display());
    doc.descendants().filter(|n| n.is_text()).filter_map(|n| n.text()).collect::<Vec<_>>().join("\n")
}

/// Whether `label` appears in the text as a whole name (not inside a longer one).
fn names(text: &str, label: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(label).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + label.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

#[test]
fn show_draws_every_bundled_program_naming_every_s_op() {
    for b in PROGRAMS {
        let dir = temp_dir(b.name);
        let (ok, out, err) = tracr_opt(&["show", b.name, "--out", dir.to_str().unwrap(), "--allocator", "heuristic"]);
        assert!(ok, "{}: {err}", b.name);
        assert!(out.contains("layers.svg") && out.contains("residual.svg"), "{out}");
        let all = files(&dir);
        assert!(all.iter().all(|f| f.ends_with(".svg")), "{all:?}");
        let heads = all.iter().filter(|f| f.starts_with("heads/")).count();
        assert!(heads % 2 == 0, "{}: a W_QK and a W_OV per head: {all:?}", b.name);
        let texts: Vec<String> = all.iter().map(|f| svg_text(&dir.join(f))).collect();
        // the layer diagram alone names every node of the program as written
        let layers = svg_text(&dir.join("layers.svg"));
        let program = common::bundled(b.name);
        for n in &program.nodes {
            assert!(names(&layers, &n.label), "{}: layers.svg does not name '{}'", b.name, n.label);
        }
        // the residual chart names every s-op that holds a dimension, by its directions
        let circuit: serde_json::Value =
            serde_json::from_slice(&std::fs::read(tracr_opt_model(b.name).join("circuit.json")).unwrap()).unwrap();
        let residual = svg_text(&dir.join("residual.svg"));
        for n in circuit["nodes"].as_array().unwrap() {
            for r in n["residual"].as_array().unwrap() {
                let dir_label = r["dir"].as_str().unwrap();
                assert!(residual.contains(dir_label), "{}: residual.svg lacks {dir_label}", b.name);
            }
        }
        // a W_QK and a W_OV heatmap for every head the circuit uses
        let used: std::collections::BTreeSet<(u64, u64)> = circuit["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|n| n["heads"].as_array().unwrap().iter())
            .map(|h| (h["layer"].as_u64().unwrap(), h["head"].as_u64().unwrap()))
            .collect();
        assert_eq!(heads, 2 * used.len(), "{}: {all:?}", b.name);
        for (l, h) in used {
            assert!(all.contains(&format!("heads/L{l}H{h}_qk.svg")), "{}: no W_QK of L{l}H{h}", b.name);
        }
        assert!(texts.iter().all(|t| !t.is_empty()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The bundled program compiled as `show` compiled it above, with its circuit.json.
fn tracr_opt_model(name: &str) -> PathBuf {
    let dir = temp_dir(&format!("model-{name}"));
    let (ok, _, err) = tracr_opt(&["compile", name, "--allocator", "heuristic", "--out", dir.to_str().unwrap()]);
    assert!(ok, "{err}");
    dir
}

#[test]
fn show_draws_an_input_and_png() {
    let dir = temp_dir("input");
    let (ok, out, err) = tracr_opt(&["show", "reverse", "--out", dir.to_str().unwrap(), "--input", "a b c"]);
    assert!(ok, "{err}");
    assert!(out.contains("input.svg"), "{out}");
    let text = svg_text(&dir.join("input.svg"));
    // one panel per stream position (3 layers: 7), each naming its hook
    assert_eq!(text.matches("· stream ").count(), 7, "{text}");
    assert!(text.contains("blocks.0.hook_resid_pre") && text.contains("blocks.2.hook_resid_post"));
    assert!(text.contains("'a' 'b' 'c' → output 'c' 'b' 'a'"), "{text}");

    let png = temp_dir("png");
    let (ok, _, err) = tracr_opt(&["show", "reverse", "--out", png.to_str().unwrap(), "--format", "png"]);
    assert!(ok, "{err}");
    for f in files(&png) {
        let bytes = std::fs::read(png.join(&f)).unwrap();
        assert!(f.ends_with(".png") && bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{f}");
    }
    // a model directory is drawn from its files, and a previous output is replaced
    let model = tracr_opt_model("reverse");
    let (ok, _, err) = tracr_opt(&["show", model.to_str().unwrap(), "--out", png.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(files(&png).iter().all(|f| f.ends_with(".svg")), "{:?}", files(&png));
    for d in [dir, png, model] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn bad_show_arguments_are_clear_errors_that_write_nothing() {
    let root = temp_dir("errors");
    std::fs::create_dir_all(&root).unwrap();
    let out = root.join("pictures");
    let out_s = out.to_str().unwrap();
    let missing = root.join("no-such-model");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["show".into(), missing.to_str().unwrap().into(), "--out".into(), out_s.into()],
            "no such model directory",
        ),
        (
            vec!["show".into(), "reverse".into(), "--out".into(), root.join("no/such/dir").to_str().unwrap().into()],
            "does not exist",
        ),
        (
            vec!["show".into(), "reverse".into(), "--out".into(), out_s.into(), "--input".into(), "a z".into()],
            "input token 'z' is not in the vocab",
        ),
        (
            vec!["show".into(), "reverse".into(), "--out".into(), out_s.into(), "--input".into(), "a a a a a a".into()],
            "the input has 6 tokens but max_seq_len is 5",
        ),
        (
            vec!["show".into(), "reverse".into(), "--out".into(), out_s.into(), "--input".into(), " ".into()],
            "the input is empty",
        ),
    ];
    for (args, message) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = Command::new(env!("CARGO_BIN_EXE_tracr-opt")).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: expected '{message}' in:\n{err}");
        assert_eq!(files(&root), Vec::<String>::new(), "{args:?} wrote something");
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0, "{args:?} left an entry");
    }
    // a directory holding other files is not replaced
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let (ok, _, err) = tracr_opt(&["show", "reverse", "--out", out_s]);
    assert!(!ok && err.contains("files `show` did not write (notes.txt)"), "{err}");
    assert_eq!(files(&out), vec!["notes.txt".to_string()]);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn docs_figures_are_what_show_draws_now() {
    // the commands docs/CIRCUITS.md gives for docs/figures/
    let cases: [(&str, &[&str]); 3] = [
        ("reverse", &["reverse"]),
        (
            "reverse-baseline",
            &["reverse", "--allocator", "heuristic", "--no-factorise", "--no-rewrites", "--no-share-residual"],
        ),
        ("shuffle_dyck3", &["shuffle_dyck3"]),
    ];
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/CIRCUITS.md")).unwrap();
    for (name, args) in cases {
        let command = format!("cargo run --release -- show {} --out docs/figures/{name}", args.join(" "));
        assert!(doc.contains(&command), "docs/CIRCUITS.md does not give `{command}`");
        let dir = temp_dir(&format!("docs-{name}"));
        let mut all = vec!["show"];
        all.extend_from_slice(args);
        all.extend(["--out", dir.to_str().unwrap()]);
        let (ok, _, err) = tracr_opt(&all);
        assert!(ok, "{err}");
        let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/figures").join(name);
        assert_eq!(files(&dir), files(&committed), "{name}: regenerate with `{command}`");
        for f in files(&dir) {
            let (a, b) = (std::fs::read(dir.join(&f)).unwrap(), std::fs::read(committed.join(&f)).unwrap());
            assert!(a == b, "docs/figures/{name}/{f} is out of date: regenerate with `{command}`");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
