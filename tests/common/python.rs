//! Python environments for the tests that run the repository's Python code,
//! made by the tests themselves on first use (the only test steps that need
//! the network; later runs reuse them):
//! - small venvs under target/tmp (`venv_python`);
//! - the heavy TransformerLens venvs (torch, about 6 GB each) under
//!   `~/.cache/tracr-opt/venvs` (`cached_venv_python`), outside the checkout,
//!   so only the first run on a machine pays for them;
//! - the `tracr_opt` wheel, built from python/ the way `pip install ./python`
//!   builds it (`install_package`).

#![allow(dead_code)] // each test binary uses its own part

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

/// One lock per venv: tests of one binary that share a venv run side by
/// side, and two `pip install`s into one venv must not interleave (different
/// venvs are made concurrently).
fn venv_lock(venv: &Path) -> Arc<Mutex<()>> {
    static LOCKS: Mutex<Option<HashMap<PathBuf, Arc<Mutex<()>>>>> = Mutex::new(None);
    let mut locks = LOCKS.lock().unwrap_or_else(|e| e.into_inner());
    locks.get_or_insert_with(HashMap::new).entry(venv.to_path_buf()).or_default().clone()
}

fn importable(python: &Path, modules: &str) -> bool {
    Command::new(python).args(["-c", &format!("import {modules}")]).output().is_ok_and(|o| o.status.success())
}

/// Makes (or completes) a venv at `venv` with `packages`, unless `modules` import already.
fn ensure_venv(venv: &Path, packages: &[&str], modules: &str) -> PathBuf {
    let python = venv.join("bin").join("python");
    // a venv two tests share is made once (the second finds its modules importable)
    let lock = venv_lock(venv);
    let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
    if !importable(&python, modules) {
        if !python.exists() {
            let made = Command::new("python3").args(["-m", "venv"]).arg(venv).status();
            assert!(
                made.is_ok_and(|s| s.success()),
                "python3 -m venv {} failed: is Python 3 installed?",
                venv.display()
            );
        }
        let pip = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .args(packages)
            .status();
        assert!(pip.is_ok_and(|s| s.success()), "pip install {} failed (needs network once)", packages.join(" "));
        assert!(importable(&python, modules), "{modules} still not importable in {}", venv.display());
    }
    python
}

/// The python of a venv under target/tmp with `packages` importable (`modules` checks them).
pub fn venv_python(name: &str, packages: &[&str], modules: &str) -> PathBuf {
    ensure_venv(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name), packages, modules)
}

/// Where venvs too heavy to remake per checkout live: `$XDG_CACHE_HOME/tracr-opt/venvs`
/// (default `~/.cache/tracr-opt/venvs`).
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .expect("neither XDG_CACHE_HOME nor HOME is set");
    base.join("tracr-opt").join("venvs")
}

/// The python of a cached venv (see `cache_dir`) with `packages` importable.
pub fn cached_venv_python(name: &str, packages: &[&str], modules: &str) -> PathBuf {
    let dir = cache_dir();
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    ensure_venv(&dir.join(name), packages, modules)
}

/// The repository's python/ directory.
pub fn python_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// The tracr_opt wheel, built once per test binary with `pip wheel ./python`
/// (the PEP 517 build `pip install ./python` runs: maturin, in release mode,
/// sharing this workspace's target directory).
pub fn wheel() -> &'static Path {
    static WHEEL: OnceLock<PathBuf> = OnceLock::new();
    WHEEL.get_or_init(|| {
        let builder = venv_python("wheel-venv", &["pip"], "pip");
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wheels");
        let _ = std::fs::remove_dir_all(&out);
        let status = Command::new(builder)
            .args(["-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps", "-w"])
            .arg(&out)
            .arg(python_dir())
            .status();
        assert!(status.is_ok_and(|s| s.success()), "pip wheel ./python failed");
        let wheels: Vec<PathBuf> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "whl"))
            .collect();
        assert_eq!(wheels.len(), 1, "expected one wheel in {}: {wheels:?}", out.display());
        wheels[0].clone()
    })
}

/// Installs the freshly built tracr_opt wheel into the venv of `python`
/// (once per venv and test binary).
pub fn install_package(python: &Path) {
    static INSTALLED: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if !installed.get_or_insert_with(HashSet::new).insert(python.to_path_buf()) {
        return;
    }
    let status = Command::new(python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--force-reinstall", "--no-deps"])
        .arg(wheel())
        .status();
    assert!(status.is_ok_and(|s| s.success()), "installing the tracr_opt wheel into {} failed", python.display());
    // numpy is the package's one dependency
    assert!(importable(python, "tracr_opt, numpy"), "tracr_opt does not import in {}", python.display());
}

/// Runs pytest on one file of python/tests; returns its output, having
/// checked that it passed exactly `expected` tests, skipped none and failed none.
pub fn pytest(python: &Path, file: &str, env: &[(&str, &str)], expected: usize) -> String {
    let mut cmd = Command::new(python);
    cmd.args(["-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider"])
        .arg(python_dir().join("tests").join(file))
        .current_dir(python_dir().join("tests"))
        .env("OPENBLAS_NUM_THREADS", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("runs pytest");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{text}");
    assert!(out.status.success(), "pytest {file} failed");
    let summary = text.lines().rev().find(|l| l.contains(" passed")).unwrap_or("");
    assert!(summary.contains(&format!("{expected} passed")), "{file}: expected {expected} passed, got '{summary}'");
    assert!(!summary.contains("skipped") && !summary.contains("failed"), "{file}: '{summary}'");
    text
}
