//! Compiled models in real TransformerLens: the current 4.x (TransformerBridge)
//! and the latest 3.x (HookedTransformer). Every bundled program, causal and
//! not, f32 and f64, loaded through `tracr_opt`'s `to_transformer_lens` /
//! `load_transformer_lens`, gives the interpreter's output on every input,
//! unpadded and in padded batches with masks (python/tests/test_transformer_lens.py).
//!
//! Each TransformerLens version has its own venv (torch included, about 6 GB,
//! a few minutes to install once) under `~/.cache/tracr-opt/venvs`, made here
//! on first use and reused by every later run on the machine.

#[path = "common/python.rs"]
mod python;

/// The versions checked: the current 4.x and the latest 3.x.
const VERSIONS: [&str; 2] = ["4.3.0", "3.9.0"];

fn check(version: &str) {
    let spec = format!("transformer-lens=={version}");
    let check = format!(
        "transformer_lens, torch, numpy, pytest, importlib.metadata as m; assert m.version('transformer-lens') == '{version}'"
    );
    let py = python::cached_venv_python(&format!("tl-{version}"), &[&spec, "numpy", "pytest"], &check);
    python::install_package(&py);
    let programs = tracr_opt::library::PROGRAMS.len();
    // every program x causal x dtype, and 3 checks of hooks, masks and the unembedding
    // the two versions run side by side on two cores: one thread each
    let one = [("OMP_NUM_THREADS", "1"), ("MKL_NUM_THREADS", "1"), ("RAYON_NUM_THREADS", "1")];
    let text = python::pytest(&py, "test_transformer_lens.py", &one, programs * 4 + 3);
    for b in tracr_opt::library::PROGRAMS {
        let passed =
            text.lines().filter(|l| l.starts_with("PASSED") && l.contains(&format!("interpreter[{}-", b.name))).count();
        assert_eq!(passed, 4, "{}: {passed} of 4 variants passed on TransformerLens {version}", b.name);
    }
}

#[test]
fn transformer_lens_4_runs_every_model_exactly() {
    check(VERSIONS[0]);
}

#[test]
fn transformer_lens_3_runs_every_model_exactly() {
    check(VERSIONS[1]);
}
