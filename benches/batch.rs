//! `tracr-opt batch` over a directory of 200 generated programs
//! (`library::random`, 12 s-ops each): `--jobs 1` against `--jobs 2`, a
//! resumed second run, and every row checked against a separate
//! `compile --json` run of the same program (timings aside).
//!
//!     cargo bench --bench batch            (about 2 minutes on 2 cores)
//!
//! Prints one Markdown table (docs/RESULTS.md, "Batch").

#[path = "../tests/common/untimed.rs"]
mod untimed;
use untimed::untimed;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

const PROGRAMS: usize = 200;
const SIZE: usize = 12;

fn exe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tracr-opt"))
}

fn batch(progs: &Path, out: &Path, jobs: usize) -> f64 {
    let started = Instant::now();
    let o = exe()
        .args(["batch", progs.to_str().unwrap(), "--out", out.to_str().unwrap(), "--format", "json"])
        .args(["--jobs", &jobs.to_string()])
        .output()
        .expect("runs tracr-opt batch");
    assert!(o.status.success(), "batch failed: {}", String::from_utf8_lossy(&o.stderr));
    started.elapsed().as_secs_f64()
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would pass nothing useful
    let root = std::env::temp_dir().join(format!("tracr-opt-bench-batch-{}", std::process::id()));
    let progs = root.join("programs");
    std::fs::create_dir_all(&progs).unwrap();
    for i in 0..PROGRAMS {
        let text = tracr_opt::library::random::random_program_text(SIZE, i as u64);
        std::fs::write(progs.join(format!("r{i:03}.rasp")), text).unwrap();
    }
    let one = batch(&progs, &root.join("jobs1"), 1);
    let two = batch(&progs, &root.join("jobs2"), 2);
    let resumed = batch(&progs, &root.join("jobs2"), 2);

    // the same rows as 200 separate `compile --json` runs
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(root.join("jobs2/results.json")).unwrap()).unwrap();
    assert_eq!(rows.len(), PROGRAMS);
    let started = Instant::now();
    let mut same = 0;
    for r in &rows {
        let name = r["name"].as_str().unwrap();
        let o =
            exe().args(["compile", progs.join(format!("{name}.rasp")).to_str().unwrap(), "--json"]).output().unwrap();
        assert!(o.status.success(), "{name}: {}", String::from_utf8_lossy(&o.stderr));
        let mut alone: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        alone["program"] = name.into();
        assert_eq!(untimed(r["compiled"].clone()), untimed(alone), "{name}: batch and compile --json differ");
        same += 1;
    }
    let separate = started.elapsed().as_secs_f64();
    // where the time goes: per program, compile + verification (one thread each in a batch)
    let mut per: Vec<f64> = rows
        .iter()
        .map(|r| {
            let c = &r["compiled"];
            c["compile_ms"].as_f64().unwrap_or(0.0) + c["verified"]["verify_ms"].as_f64().unwrap_or(0.0)
        })
        .collect();
    per.sort_by(f64::total_cmp);
    let total: f64 = per.iter().sum();
    println!("| run | wall (s) | against --jobs 1 |");
    println!("|---|---|---|");
    println!("| {PROGRAMS} separate `compile --json` processes | {separate:.1} | {:.2}× |", one / separate);
    println!("| `batch --jobs 1` | {one:.1} | 1.00× |");
    println!("| `batch --jobs 2` | {two:.1} | {:.2}× faster |", one / two);
    println!(
        "| `batch --jobs 2`, again (all {PROGRAMS} unchanged: skipped) | {resumed:.2} | {:.1} % of the first run |",
        100.0 * resumed / two
    );
    println!("\n{same} of {PROGRAMS} rows equal a separate `compile --json` run (timings aside)");
    println!(
        "per program (batch --jobs 2, compile + verify): median {:.0} ms, slowest {:.0} ms, sum {:.1} s",
        per[per.len() / 2],
        per[per.len() - 1],
        total / 1e3
    );
    let _ = std::fs::remove_dir_all(&root);
}
