//! Everything that runs the repository's Python code, in one test binary so
//! that its five checks share one wheel build and run side by side on two
//! cores (the venvs they need are made concurrently on a first run):
//! - the numpy loader (python/tracr_opt_model.py) on every bundled model;
//! - the Tracr bridge (python/tracr_opt/bridge.py) on Tracr's library;
//! - the `tracr_opt` package (pytest python/tests/test_package.py);
//! - TransformerLens 4.x and 3.x (pytest python/tests/test_transformer_lens.py).
//!
//! The venvs are made by the tests on first use (common/python.rs): small
//! ones under target/tmp, the TransformerLens ones (torch, about 6 GB each)
//! under `~/.cache/tracr-opt/venvs`, reused by every later run on the machine.

#[path = "common/python.rs"]
mod python;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The venv with Tracr (tracr-pypi) and pytest, with the tracr_opt wheel installed.
fn tracr_venv() -> PathBuf {
    let py =
        python::venv_python("tracr-venv", &["tracr-pypi", "pytest"], "tracr.rasp.rasp, tracr.compiler.lib, pytest");
    python::install_package(&py);
    py
}

fn tracr_reference() -> serde_json::Value {
    serde_json::from_str(include_str!("../src/library/tracr_reference.json")).unwrap()
}

/// Runs a check script of python/tests with `--tracr-opt BIN`; returns its stdout, having checked it succeeded.
fn run_script(py: &Path, script: &str, failure: &str) -> String {
    let out = Command::new(py)
        .arg(python::python_dir().join("tests").join(script))
        .args(["--tracr-opt", env!("CARGO_BIN_EXE_tracr-opt")])
        .env("OPENBLAS_NUM_THREADS", "1")
        .output()
        .expect("runs python");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{failure}");
    text
}

/// python/tracr_opt_model.py (numpy + safetensors only) loads every exported
/// bundled model from its files alone and gives the interpreter's outputs on
/// every input, causal and not, float32 (and float64 for a few): the check is
/// python/tests/test_export.py. It also measures three compressed models'
/// accuracy from their files and finds the recorded one, and checks that the
/// loader refuses a directory whose metadata does not fit its weights.
#[test]
fn python_loader_matches_the_interpreter_on_every_input() {
    let py = python::venv_python("python-venv", &["numpy", "safetensors"], "numpy, safetensors");
    let text = run_script(&py, "test_export.py", "the Python loader disagrees with the interpreter");
    assert!(text.contains("all outputs equal the interpreter's"));
    // metadata that does not fit the weights is refused by the numpy loader too
    for case in ["negated W_U", "reordered values", "a token too many", "W_in cut short"] {
        assert!(text.contains(&format!("loader: {case}: refused (")), "the numpy loader accepted: {case}");
    }
    // compressed (lossy) models: the accuracy measured from the files is the recorded one
    for program in ["frac_prevs", "sort_unique", "reverse"] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("compressed {program} ")) && l.ends_with(" ok")),
            "{program}: no agreeing accuracy line"
        );
    }
    // every bundled program was checked, both ways
    for b in tracr_opt::library::PROGRAMS {
        let passed = text.lines().filter(|l| l.starts_with(&format!("{:18} ", b.name)) && l.ends_with(" ok")).count();
        assert!(passed >= 2, "{}: {passed} checks passed", b.name);
    }
}

/// python/tracr_opt/bridge.py exports every program of Tracr's library from
/// Tracr's own Python objects; each compiles and verifies on every input
/// (causal and not), tracr-opt's interpreter agrees with Tracr's
/// `rasp.evaluate` on 50 random inputs per program, and the exporter's errors
/// name the node and the value (python/tests/test_tracr_bridge.py).
#[test]
fn tracr_library_programs_export_compile_and_match_tracr() {
    let text = run_script(&tracr_venv(), "test_tracr_bridge.py", "the Tracr bridge check failed");
    assert!(text.contains("every Tracr library program exported, compiled, verified"));
    // every program of the reference, both ways, and the interpreter check on each
    let reference = tracr_reference();
    for e in reference["programs"].as_array().unwrap() {
        let tag =
            format!("{} causal={}", e["name"].as_str().unwrap(), if e["causal"] == true { "True" } else { "False" });
        assert!(text.lines().any(|l| l.starts_with(&tag) && l.ends_with("ok")), "{tag} not checked");
    }
    let agreed = text.lines().filter(|l| l.contains("agrees with rasp.evaluate on 50 random inputs")).count();
    assert_eq!(agreed, reference["programs"].as_array().unwrap().len() / 2);
    assert_eq!(text.matches("refused as expected").count(), 5);
}

/// The `tracr_opt` package, built as `pip install ./python` builds it, in a
/// venv with Tracr: every Tracr library program through
/// `compile_rasp_to_model` agrees with `rasp.evaluate` and with the
/// interpreter on every input; `save()` is byte-identical to `tracr-opt
/// compile --out`; bad input raises clear exceptions (python/tests/test_package.py).
#[test]
fn python_package_compiles_tracr_programs_exactly() {
    let py = tracr_venv();
    let reference = tracr_reference();
    let library = reference["programs"].as_array().unwrap().len();
    // one test per library entry (16 programs, causal and not), and 15 others
    let text =
        python::pytest(&py, "test_package.py", &[("TRACR_OPT_CLI", env!("CARGO_BIN_EXE_tracr-opt"))], library + 15);
    for e in reference["programs"].as_array().unwrap() {
        let id = format!(
            "test_tracr_library_program[{}-{}]",
            e["name"].as_str().unwrap(),
            if e["causal"] == true { "causal" } else { "bidir" }
        );
        assert!(text.lines().any(|l| l.starts_with("PASSED") && l.contains(&id)), "{id} did not pass");
    }
}

/// Compiled models in real TransformerLens: the current 4.x (TransformerBridge)
/// and the latest 3.x (HookedTransformer). Every bundled program, causal and
/// not, f32 and f64, loaded through `tracr_opt`'s `to_transformer_lens` /
/// `load_transformer_lens`, gives the interpreter's output on every input,
/// unpadded and in padded batches with masks (python/tests/test_transformer_lens.py).
mod transformer_lens {
    use super::python;

    /// The versions checked: the current 4.x and the latest 3.x.
    const VERSIONS: [&str; 2] = ["4.3.0", "3.9.0"];

    /// The venv of one TransformerLens version (cached, see common/python.rs),
    /// with the tracr_opt wheel installed; `extra` packages too (and `extra_modules` importable).
    fn venv(version: &str, extra: &[&str], extra_modules: &str) -> std::path::PathBuf {
        let spec = format!("transformer-lens=={version}");
        let check = format!(
            "transformer_lens, torch, numpy, pytest{extra_modules}, importlib.metadata as m; assert m.version('transformer-lens') == '{version}'"
        );
        let packages: Vec<&str> = [spec.as_str(), "numpy", "pytest"].into_iter().chain(extra.iter().copied()).collect();
        let py = python::cached_venv_python(&format!("tl-{version}"), &packages, &check);
        python::install_package(&py);
        py
    }

    /// A compressed (lossy) model directory, made once: frac_prevs from Tracr's
    /// layout (14 dimensions) to 6, trained briefly.
    fn compressed_model() -> &'static std::path::Path {
        static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
        DIR.get_or_init(|| {
            let p = tracr_opt::Program::load("frac_prevs").unwrap();
            let s = p.settings_with(None, None, None).unwrap();
            let c = tracr_opt::compile(&p, &s, &tracr_opt::CompileOptions::baseline()).unwrap();
            let options =
                tracr_opt::compress::Options { steps: 300, lrs: vec![0.01], ..tracr_opt::compress::Options::new(6) };
            let out = tracr_opt::compress::compress(&c.model, &c.tabulated, "baseline", &options, &mut |_| {}).unwrap();
            let dir = python::python_dir().parent().unwrap().join("target/tmp/tl-compressed-frac_prevs");
            out.model.save(&dir, tracr_opt::DType::F32).unwrap();
            dir
        })
    }

    fn check(py: &std::path::Path, version: &str) {
        let programs = tracr_opt::library::PROGRAMS.len();
        // every program x causal x dtype, and 6 checks: hooks, masks, the unembedding,
        // config.json, a rotated model, a compressed one; circuit.json hooks on 3 programs, docs/CIRCUITS.md example.
        // The tests of this binary run two at a time on two cores: one thread each.
        let compressed = compressed_model().to_string_lossy().to_string();
        let env = [
            ("OMP_NUM_THREADS", "1"),
            ("MKL_NUM_THREADS", "1"),
            ("RAYON_NUM_THREADS", "1"),
            ("TRACR_OPT_COMPRESSED", compressed.as_str()),
        ];
        let text = python::pytest(py, "test_transformer_lens.py", &env, programs * 4 + 10);
        for b in tracr_opt::library::PROGRAMS {
            let passed = text
                .lines()
                .filter(|l| l.starts_with("PASSED") && l.contains(&format!("interpreter[{}-", b.name)))
                .count();
            assert_eq!(passed, 4, "{}: {passed} of 4 variants passed on TransformerLens {version}", b.name);
        }
    }

    #[test]
    fn transformer_lens_4_runs_every_model_exactly() {
        // with Tracr too, for docs/PYTHON.md's tour (python/examples/tour.py)
        let py = venv(VERSIONS[0], &["tracr-pypi"], ", tracr.compiler.lib");
        check(&py, VERSIONS[0]);
        let out = std::process::Command::new(&py)
            .arg(python::python_dir().join("examples").join("tour.py"))
            .env("OMP_NUM_THREADS", "1")
            .output()
            .expect("runs the tour");
        let text = String::from_utf8_lossy(&out.stdout);
        eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && text.ends_with("tour ok\n"), "the docs/PYTHON.md tour failed");
        assert!(text.contains("TransformerBridge; blocks.0.hook_resid_mid"));
    }

    #[test]
    fn transformer_lens_3_runs_every_model_exactly() {
        let py = venv(VERSIONS[1], &[], "");
        check(&py, VERSIONS[1]);
    }
}
