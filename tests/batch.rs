//! `tracr-opt batch`: a corpus compiled in parallel, one failure never stops
//! it, results equal separate `compile --json` runs, an interrupted batch
//! leaves only complete model directories and resumes.

#[path = "common/untimed.rs"]
mod untimed;
use untimed::untimed;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn exe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tracr-opt"))
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tracr-opt-batch-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A corpus directory: `n` generated programs (library::random), plus `extra` files.
fn corpus(dir: &Path, n: usize, size: usize, extra: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let text = tracr_opt::library::random::random_program_text(size, i as u64);
        std::fs::write(dir.join(format!("p{i:03}.rasp")), text).unwrap();
    }
    for (name, text) in extra {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

fn run(args: &[&str]) -> Output {
    exe().args(args).output().unwrap()
}

fn json_rows(dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("results.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&text).unwrap().as_array().unwrap().clone()
}

/// Every directory under `out` (hidden ones included) is a complete model,
/// except, with `cut_allowed`, the hidden `.NAME.tmp-PID` of a write a kill cut short.
fn only_complete_models(out: &Path, cut_allowed: bool) -> Vec<String> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(out).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            let name = e.file_name().to_string_lossy().to_string();
            if cut_allowed && name.starts_with('.') && name.contains(".tmp-") {
                continue;
            }
            for f in ["model.safetensors", "config.json", "tracr_opt.json", "circuit.json"] {
                assert!(e.path().join(f).is_file(), "{name} has no {f}: a partial model directory");
            }
            tracr_opt::Model::load(&e.path()).unwrap_or_else(|err| panic!("{name}: {err}"));
            names.push(name);
        }
    }
    names.sort();
    names
}

#[test]
fn a_broken_program_is_reported_and_the_rest_compile() {
    let tmp = temp_dir("broken");
    let progs = tmp.join("progs");
    corpus(
        &progs,
        3,
        6,
        &[("zz_broken.rasp", "x = Map(lambda t: 1 / 0, tokens)\ncompile(x, vocab={1, 2}, max_seq_len=3)\n")],
    );
    let out = tmp.join("out");
    let o = run(&["batch", progs.to_str().unwrap(), "--out", out.to_str().unwrap(), "--format", "json", "--summary"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("1 of 4 programs failed"), "{err}");
    assert!(err.contains("failures by message:") && err.contains("ZeroDivisionError"), "{err}");
    let rows = json_rows(&out);
    assert_eq!(rows.len(), 4);
    let broken = rows.iter().find(|r| r["name"] == "zz_broken").unwrap();
    assert_eq!(broken["status"], "failed");
    assert!(broken["error"].as_str().unwrap().contains("zz_broken.rasp:1:"), "{broken}");
    assert_eq!(only_complete_models(&out, false), ["p000", "p001", "p002"]);
    // each row is what `compile --json` says of that program alone
    for r in rows.iter().filter(|r| r["status"] == "ok") {
        let name = r["name"].as_str().unwrap();
        let alone = run(&["compile", progs.join(format!("{name}.rasp")).to_str().unwrap(), "--json"]);
        let mut alone: serde_json::Value = serde_json::from_slice(&alone.stdout).unwrap();
        alone["program"] = name.into();
        assert_eq!(untimed(r["compiled"].clone()), untimed(alone), "{name}");
    }
}

#[test]
fn a_killed_batch_leaves_complete_models_and_the_resume_finishes_it() {
    let tmp = temp_dir("killed");
    let progs = tmp.join("progs");
    corpus(&progs, 24, 12, &[]);
    let out = tmp.join("out");
    let args = ["batch", progs.to_str().unwrap(), "--out", out.to_str().unwrap(), "--jobs", "1", "--format", "json"];
    let mut child =
        exe().args(args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    // kill it once a few models are written, mid-corpus
    let started = std::time::Instant::now();
    loop {
        let written = std::fs::read_dir(&out).map(|d| d.flatten().filter(|e| e.path().is_dir()).count()).unwrap_or(0);
        if written >= 3 || started.elapsed().as_secs() > 120 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let hidden: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".") && n.contains(".tmp-"))
        .collect();
    // visible directories are all complete models (a write cut short is hidden, as .NAME.tmp-PID)
    let first: Vec<String> = only_complete_models(&out, true).into_iter().filter(|n| !n.starts_with('.')).collect();
    assert!(!first.is_empty() && first.len() < 24, "killed after {} programs", first.len());
    // the results file covers what finished
    let rows = json_rows(&out);
    assert!(rows.len() <= first.len() && rows.iter().all(|r| r["status"] == "ok"));
    // the resume compiles the rest, and clears the leftovers of a cut write
    let o = run(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let all = only_complete_models(&out, false);
    assert_eq!(all.len(), 24, "{all:?} (left over before: {hidden:?})");
    assert!(all.iter().all(|n| !n.starts_with('.')));
    assert_eq!(json_rows(&out).len(), 24);
}

#[test]
fn ctrl_c_finishes_the_running_programs_and_writes_the_results() {
    let tmp = temp_dir("sigint");
    let progs = tmp.join("progs");
    corpus(&progs, 24, 12, &[]);
    let out = tmp.join("out");
    let args = ["batch", progs.to_str().unwrap(), "--out", out.to_str().unwrap(), "--jobs", "1", "--format", "json"];
    let child =
        exe().args(args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let started = std::time::Instant::now();
    while std::fs::read_dir(&out).map(|d| d.flatten().filter(|e| e.path().is_dir()).count()).unwrap_or(0) < 2
        && started.elapsed().as_secs() < 120
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("interrupted after") && err.contains("run the same command again"), "{err}");
    // the program that was running finished: every directory is a complete
    // model, none hidden, and each is in the results
    let models = only_complete_models(&out, false);
    assert!(models.iter().all(|n| !n.starts_with('.')), "{models:?}");
    assert!(models.len() < 24, "Ctrl-C stopped nothing");
    let mut rows: Vec<String> = json_rows(&out).iter().map(|r| r["name"].as_str().unwrap().to_string()).collect();
    rows.sort();
    assert_eq!(rows, models);
}

#[test]
fn a_second_run_skips_unchanged_programs_and_redoes_changed_ones() {
    let tmp = temp_dir("resume");
    let progs = tmp.join("progs");
    corpus(&progs, 4, 6, &[]);
    let out = tmp.join("out");
    let base = ["batch", progs.to_str().unwrap(), "--out", out.to_str().unwrap(), "--summary"];
    assert!(run(&base).status.success());
    let modified =
        |name: &str| std::fs::metadata(out.join(name).join("model.safetensors")).unwrap().modified().unwrap();
    let before = modified("p000");
    let again = run(&base);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("(4 unchanged since the last run: not recompiled)"), "{err}");
    assert_eq!(modified("p000"), before, "an unchanged program is not rewritten");
    // an edited source is recompiled, the others are not
    let text = std::fs::read_to_string(progs.join("p001.rasp")).unwrap();
    std::fs::write(progs.join("p001.rasp"), format!("# edited\n{text}")).unwrap();
    let err = String::from_utf8_lossy(&run(&base).stderr).to_string();
    assert!(err.contains("(3 unchanged"), "{err}");
    // other flags change every hash
    let mut flags = base.to_vec();
    flags.push("--no-factorise");
    let err = String::from_utf8_lossy(&run(&flags).stderr).to_string();
    assert!(err.contains("4 compiled and verified, 0 failed\n"), "{err}");
    // a deleted model directory is rebuilt
    std::fs::remove_dir_all(out.join("p002")).unwrap();
    let err = String::from_utf8_lossy(&run(&flags).stderr).to_string();
    assert!(err.contains("(3 unchanged"), "{err}");
    assert!(out.join("p002/tracr_opt.json").is_file());
}

#[test]
fn jsonl_bundled_names_and_the_baseline_columns() {
    let tmp = temp_dir("jsonl");
    let json = |name: &str| {
        let o = run(&["convert", name, "--to", "json"]);
        assert!(o.status.success());
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v.to_string()
    };
    let lines = format!("{}\n\n{}\n", json("hist"), json("reverse"));
    std::fs::write(tmp.join("corpus.jsonl"), lines).unwrap();
    let out = tmp.join("out");
    let o = run(&[
        "batch",
        tmp.join("corpus.jsonl").to_str().unwrap(),
        "frac_prevs",
        "--out",
        out.to_str().unwrap(),
        "--baseline",
        "--format",
        "csv",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("name,status,layers,d_model") && lines[0].contains("baseline_d_model"));
    assert_eq!(lines.len(), 4, "{csv}");
    // frac_prevs: 9 dimensions optimised, Tracr's 14 beside it
    let fp = lines.iter().find(|l| l.starts_with("frac_prevs,")).unwrap();
    let cells: Vec<&str> = fp.split(',').collect();
    assert_eq!((cells[1], cells[3], cells[14]), ("ok", "9", "14"), "{fp}");
    assert_eq!(only_complete_models(&out, false), ["frac_prevs", "hist", "reverse"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), csv);
}

#[test]
fn bad_batch_arguments_are_refused_before_anything_runs() {
    let tmp = temp_dir("args");
    let out = tmp.join("out");
    for (args, message) in [
        (vec!["batch", "nothing-here", "--out"], "is not a file, a directory or a bundled program"),
        (vec!["batch", "reverse", "--jobs", "0", "--out"], "--jobs must be at least 1"),
        (vec!["batch", tmp.to_str().unwrap(), "--out"], "holds no .rasp or .json program"),
    ] {
        let o = exe().args(&args).arg(&out).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: {err}");
        assert!(!out.exists());
    }
}
