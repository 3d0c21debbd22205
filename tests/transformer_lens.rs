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

/// The venv of one TransformerLens version, with the tracr_opt wheel installed;
/// `extra` packages too (and `extra_modules` importable).
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
    // config.json, a rotated model, a compressed one; circuit.json hooks on 3 programs, docs/CIRCUITS.md example
    // the two versions run side by side on two cores: one thread each
    let compressed = compressed_model().to_string_lossy().to_string();
    let env = [
        ("OMP_NUM_THREADS", "1"),
        ("MKL_NUM_THREADS", "1"),
        ("RAYON_NUM_THREADS", "1"),
        ("TRACR_OPT_COMPRESSED", compressed.as_str()),
    ];
    let text = python::pytest(&py, "test_transformer_lens.py", &env, programs * 4 + 10);
    for b in tracr_opt::library::PROGRAMS {
        let passed =
            text.lines().filter(|l| l.starts_with("PASSED") && l.contains(&format!("interpreter[{}-", b.name))).count();
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
