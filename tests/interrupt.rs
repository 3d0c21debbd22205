//! Ctrl-C never leaves a partial model: 50 `compile --out` runs interrupted
//! (SIGINT) at points spread over the whole run leave either the previous
//! model or the new one, complete, and no temporary directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use tracr_opt::Model;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tracr-opt-interrupt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A compile with a write large enough (f64, ~7 MB) to be hit mid-way.
fn compile_args(out: &Path, max_seq_len: &str) -> Vec<String> {
    [
        "compile",
        "sort",
        "--vocab",
        "1 2 3 4 5 6 7 8 9 10",
        "--max-seq-len",
        max_seq_len,
        "--no-verify",
        "--dtype",
        "f64",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(["--out".to_string(), out.to_string_lossy().to_string()])
    .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn interrupted_compiles_leave_the_old_model_or_the_new_one_and_no_temporary() {
    let root = temp_dir("compile");
    let (previous, out) = (root.join("previous"), root.join("model"));
    let bin = env!("CARGO_BIN_EXE_tracr-opt");
    assert!(Command::new(bin).args(compile_args(&previous, "10")).output().unwrap().status.success());
    // how long an uninterrupted run takes
    copy_dir(&previous, &out);
    let started = Instant::now();
    assert!(Command::new(bin).args(compile_args(&out, "20")).output().unwrap().status.success());
    let full = started.elapsed();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let (mut kept_old, mut got_new) = (0, 0);
    for trial in 0..50 {
        copy_dir(&previous, &out);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // anywhere from start-up to a little past the end
        let delay = full.mul_f64((seed % 1000) as f64 / 1000.0 * 1.1);
        let mut child = Command::new(bin).args(compile_args(&out, "20")).spawn().unwrap();
        std::thread::sleep(delay);
        let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
        let status = child.wait().unwrap();
        // exit 130 from the handler; a SIGINT that lands in start-up, before
        // the handler is installed (and before anything is written), ends
        // the process by the signal itself
        let by_signal = std::os::unix::process::ExitStatusExt::signal(&status) == Some(2);
        assert!(status.code() == Some(130) || status.success() || by_signal, "trial {trial}: {status:?}");
        let leftovers: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "trial {trial} (SIGINT after {delay:?}) left {leftovers:?}");
        let m = Model::load(&out).unwrap_or_else(|e| panic!("trial {trial} (SIGINT after {delay:?}): {e}"));
        match m.config.n_ctx {
            11 => kept_old += 1,
            21 => got_new += 1,
            n => panic!("trial {trial}: a model of n_ctx {n}"),
        }
    }
    eprintln!("50 interrupts over {full:?} runs: {kept_old} kept the previous model, {got_new} finished the new one");
    assert!(kept_old > 0 && got_new > 0, "the interrupts should fall both before and after the write");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn temporaries_of_a_killed_process_are_swept_by_the_next_write() {
    // SIGKILL runs no handler: the next write beside it removes what it left
    // (4194305 is above Linux's largest possible PID)
    let root = temp_dir("sweep");
    let out = root.join("model");
    let dead = root.join(".model.tmp-4194305");
    let live = root.join(format!(".model.tmp-{}", std::process::id()));
    for d in [&dead, &live] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("model.safetensors"), b"truncated").unwrap();
    }
    let o =
        Command::new(env!("CARGO_BIN_EXE_tracr-opt")).args(["compile", "reverse", "--out"]).arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!dead.exists(), "a dead process's temporary is removed");
    assert!(live.exists(), "a running process's temporary is left alone");
    Model::load(&out).unwrap();
    let _ = std::fs::remove_dir_all(&root);
}
