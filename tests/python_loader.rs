//! python/tracr_opt_model.py (numpy + safetensors only) loads every exported
//! bundled model from its files alone and gives the interpreter's outputs on
//! every input, causal and not, float32 (and float64 for a few): the check is
//! python/tests/test_export.py, run here in a venv. It also measures three
//! compressed models' accuracy from their files and finds the recorded one.

#[path = "common/python.rs"]
mod python;

use std::process::Command;

#[test]
fn python_loader_matches_the_interpreter_on_every_input() {
    let py = python::venv_python("python-venv", &["numpy", "safetensors"], "numpy, safetensors");
    let out = Command::new(py)
        .arg(python::python_dir().join("tests").join("test_export.py"))
        .args(["--tracr-opt", env!("CARGO_BIN_EXE_tracr-opt")])
        .env("OPENBLAS_NUM_THREADS", "1")
        .output()
        .expect("runs python");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the Python loader disagrees with the interpreter");
    assert!(text.contains("all outputs equal the interpreter's"));
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
