//! A Python virtual environment under target/tmp for the tests that run the
//! repository's Python code, created on first use with `pip install` (the
//! only test step that needs the network; later runs reuse it).

use std::path::PathBuf;
use std::process::Command;

/// The venv's python, with `packages` importable (`modules` checks them).
pub fn venv_python(name: &str, packages: &[&str], modules: &str) -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let python = venv.join("bin").join("python");
    let ready =
        || Command::new(&python).args(["-c", &format!("import {modules}")]).output().is_ok_and(|o| o.status.success());
    if !ready() {
        let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).status();
        assert!(made.is_ok_and(|s| s.success()), "python3 -m venv {} failed: is Python 3 installed?", venv.display());
        let pip = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .args(packages)
            .status();
        assert!(pip.is_ok_and(|s| s.success()), "pip install {} failed (needs network once)", packages.join(" "));
        assert!(ready(), "{modules} still not importable in {}", venv.display());
    }
    python
}

/// The repository's python/ directory.
pub fn python_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python")
}
