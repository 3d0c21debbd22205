//! The `tracr_opt` Python package, built from python/ as `pip install ./python`
//! builds it and installed in a venv with Tracr (tracr-pypi): every Tracr
//! library program through `compile_rasp_to_model` agrees with `rasp.evaluate`
//! and with the interpreter on every input; `save()` is byte-identical to
//! `tracr-opt compile --out`; bad input raises clear exceptions. The checks
//! are python/tests/test_package.py (pytest).

#[path = "common/python.rs"]
mod python;

#[test]
fn python_package_compiles_tracr_programs_exactly() {
    let py =
        python::venv_python("tracr-venv", &["tracr-pypi", "pytest"], "tracr.rasp.rasp, tracr.compiler.lib, pytest");
    python::install_package(&py);
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("../src/library/tracr_reference.json")).unwrap();
    let library = reference["programs"].as_array().unwrap().len();
    // one test per library entry (16 programs, causal and not), and 14 others
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
