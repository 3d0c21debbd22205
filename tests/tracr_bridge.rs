//! python/tracr_opt/bridge.py exports every program of Tracr's library from
//! Tracr's own Python objects; each compiles and verifies on every input
//! (causal and not), tracr-opt's interpreter agrees with Tracr's
//! `rasp.evaluate` on 50 random inputs per program, and the exporter's errors
//! name the node and the value. The check is python/tests/test_tracr_bridge.py,
//! run in a venv with `pip install tracr-pypi` and the tracr_opt wheel (made
//! once under target/tmp; the first run needs the network, ~30 s).

#[path = "common/python.rs"]
mod python;

use std::process::Command;

#[test]
fn tracr_library_programs_export_compile_and_match_tracr() {
    let py =
        python::venv_python("tracr-venv", &["tracr-pypi", "pytest"], "tracr.rasp.rasp, tracr.compiler.lib, pytest");
    python::install_package(&py);
    let out = Command::new(py)
        .arg(python::python_dir().join("tests").join("test_tracr_bridge.py"))
        .args(["--tracr-opt", env!("CARGO_BIN_EXE_tracr-opt")])
        .output()
        .expect("runs python");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the Tracr bridge check failed");
    assert!(text.contains("every Tracr library program exported, compiled, verified"));
    // every program of the reference, both ways, and the interpreter check on each
    let reference: serde_json::Value =
        serde_json::from_str(include_str!("../src/library/tracr_reference.json")).unwrap();
    for e in reference["programs"].as_array().unwrap() {
        let tag =
            format!("{} causal={}", e["name"].as_str().unwrap(), if e["causal"] == true { "True" } else { "False" });
        assert!(text.lines().any(|l| l.starts_with(&tag) && l.ends_with("ok")), "{tag} not checked");
    }
    let agreed = text.lines().filter(|l| l.contains("agrees with rasp.evaluate on 50 random inputs")).count();
    assert_eq!(agreed, reference["programs"].as_array().unwrap().len() / 2);
    assert_eq!(text.matches("refused as expected").count(), 5);
}
