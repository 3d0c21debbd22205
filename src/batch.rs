//! Compiling a corpus: many programs, N at a time, each verified and written
//! to its own model directory, with one results table, a resumable manifest
//! and no partial output when interrupted (`tracr-opt batch`).
//!
//! Each finished program updates `DIR/batch-manifest.json` (its content hash
//! and its row) and the results file atomically, so an interrupted batch
//! leaves complete model directories and a table of what finished; a second
//! run skips every program whose source, settings and flags hash the same
//! and whose model directory is complete.

use crate::diagnostic::{Error, Result};
use crate::{CompileOptions, DType, Program, Value, VerifyOptions};
use rayon::prelude::*;
use serde_json::{json, Value as Json};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// One program of the corpus.
#[derive(Clone, Debug)]
pub struct Job {
    /// Its model directory's name under the output directory (unique).
    pub name: String,
    /// Where it came from: a path, `path:line` for a JSONL line, or a bundled name.
    pub origin: String,
    /// Its text (`.rasp` or JSON).
    pub text: String,
    /// JSON (a `.json` file or a JSONL line) rather than `.rasp`.
    pub json: bool,
}

/// Finds the programs: each input is a `.rasp`/`.json` file, a directory
/// (every `.rasp`/`.json` under it, sorted), a `.jsonl` file (one JSON
/// program per non-empty line) or a bundled program's name. Names are the
/// file stems (the JSON program's own name for a JSONL line), made unique
/// with `-2`, `-3`, … in input order.
pub fn collect(inputs: &[String]) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    for input in inputs {
        let path = Path::new(input);
        if path.is_dir() {
            let mut files = Vec::new();
            walk(path, &mut files)?;
            files.sort();
            if files.is_empty() {
                return Err(Error::usage(format!("{input}: the directory holds no .rasp or .json program")));
            }
            for f in files {
                jobs.push(file_job(&f)?);
            }
        } else if input.ends_with(".jsonl") {
            let text = crate::files::read_text(path).map_err(|e| Error::usage(format!("cannot read {input}: {e}")))?;
            for (n, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let origin = format!("{input}:{}", n + 1);
                let name = serde_json::from_str::<Json>(line)
                    .ok()
                    .and_then(|j| j.get("name").and_then(Json::as_str).map(str::to_string))
                    .unwrap_or_else(|| format!("line{}", n + 1));
                jobs.push(Job { name: sanitise(&name), origin, text: line.to_string(), json: true });
            }
        } else if path.is_file() {
            jobs.push(file_job(path)?);
        } else if let Some(b) = crate::library::find(input) {
            jobs.push(Job { name: b.name.to_string(), origin: input.clone(), text: b.source.to_string(), json: false });
        } else {
            return Err(Error::usage(format!(
                "'{input}' is not a file, a directory or a bundled program (see `tracr-opt list`)"
            )));
        }
    }
    if jobs.is_empty() {
        return Err(Error::usage("no program to compile"));
    }
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for j in &mut jobs {
        let n = seen.entry(j.name.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            j.name = format!("{}-{n}", j.name);
        }
    }
    Ok(jobs)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::usage(format!("cannot read {}: {e}", dir.display())))?;
    for e in entries {
        let p = e.map_err(|e| Error::usage(format!("cannot read {}: {e}", dir.display())))?.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "rasp" || x == "json") {
            out.push(p);
        }
    }
    Ok(())
}

fn file_job(path: &Path) -> Result<Job> {
    let text =
        crate::files::read_text(path).map_err(|e| Error::usage(format!("cannot read {}: {e}", path.display())))?;
    let stem = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "program".into());
    Ok(Job {
        name: sanitise(&stem),
        origin: path.display().to_string(),
        text,
        json: path.extension().is_some_and(|x| x == "json"),
    })
}

/// A directory name: letters, digits, `-`, `_` and `.` (not leading).
fn sanitise(name: &str) -> String {
    let s: String = name.chars().map(|c| if c.is_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    let s = s.trim_start_matches('.').to_string();
    if s.is_empty() {
        "program".into()
    } else {
        s
    }
}

/// What every program is compiled with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Overrides of each program's vocab, max_seq_len and causal.
    pub vocab: Option<Vec<Value>>,
    /// See `vocab`.
    pub max_seq_len: Option<usize>,
    /// See `vocab`.
    pub causal: Option<bool>,
    /// The compile options.
    pub options: CompileOptions,
    /// How to verify.
    pub verify: VerifyOptions,
    /// Also compile Tracr's layout and record its figures.
    pub baseline: bool,
    /// Precision of the written weights.
    pub dtype: DType,
}

impl Settings {
    /// Everything that changes a program's result, as text (hashed with the source).
    fn fingerprint(&self) -> String {
        let o = &self.options;
        format!(
            "{} vocab={:?} max_seq_len={:?} causal={:?} options={:?} samples={} seed={} baseline={} dtype={}",
            env!("CARGO_PKG_VERSION"),
            self.vocab.as_ref().map(|v| v.iter().map(Value::repr).collect::<Vec<_>>()),
            self.max_seq_len,
            self.causal,
            (o.allocator, &o.minimise, o.time_limit_secs, o.factorise, o.rewrites, o.cse, o.fold, o.fuse),
            self.verify.samples,
            self.verify.seed,
            self.baseline,
            self.dtype.name()
        ) + &format!(
            " {:?}",
            (o.max_mlp_width, o.rule_tables, o.share_heads, o.share_residual, o.rotate, &o.emit_lp, o.max_weights_gb)
        )
    }
}

/// 64-bit FNV-1a: a stable content hash (the same on every machine and
/// Rust version, unlike std's hasher).
fn fnv1a(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// One program's row of the results.
#[derive(Clone, Debug)]
pub struct Row {
    /// The job's name (its model directory).
    pub name: String,
    /// Where it came from.
    pub origin: String,
    /// None when it compiled and verified; else the error.
    pub error: Option<String>,
    /// `compile --json`'s object (with `verified`), when it compiled.
    pub compiled: Option<Json>,
    /// Tracr's layout (`--baseline`): layers, d_model, params, nonzero_params.
    pub baseline: Option<Json>,
    /// Whether this run reused it from the manifest.
    pub skipped: bool,
}

impl Row {
    /// The row as JSON (the manifest's and `--format json`'s form).
    pub fn to_json(&self) -> Json {
        json!({
            "name": self.name,
            "source": self.origin,
            "status": if self.error.is_none() { "ok" } else { "failed" },
            "error": self.error,
            "compiled": self.compiled,
            "baseline": self.baseline,
        })
    }

    fn from_json(j: &Json) -> Option<Row> {
        Some(Row {
            name: j.get("name")?.as_str()?.to_string(),
            origin: j.get("source")?.as_str()?.to_string(),
            error: j.get("error").and_then(Json::as_str).map(str::to_string),
            compiled: j.get("compiled").filter(|c| !c.is_null()).cloned(),
            baseline: j.get("baseline").filter(|c| !c.is_null()).cloned(),
            skipped: true,
        })
    }
}

/// The manifest file under the output directory.
pub const MANIFEST: &str = "batch-manifest.json";

/// Progress as programs finish: (rows done, failures so far, total).
pub type Progress<'a> = &'a (dyn Fn(&Row, usize, usize) + Sync);

/// Compiles every job into `out/<name>/` with `jobs` at a time, skipping
/// those the manifest says are done; stops starting new ones once `stop` is
/// set. Returns the rows of the jobs that finished (or were skipped), in job
/// order, and calls `write_results` with them after each one finishes.
pub fn run(
    all: &[Job],
    settings: &Settings,
    out: &Path,
    jobs: usize,
    stop: &AtomicBool,
    progress: Progress,
    write_results: &(dyn Fn(&[Row]) -> Result<()> + Sync),
) -> Result<Vec<Row>> {
    std::fs::create_dir_all(out).map_err(|e| Error::usage(format!("cannot create {}: {e}", out.display())))?;
    remove_stale_temporaries(out);
    let fingerprint = settings.fingerprint();
    let manifest_path = out.join(MANIFEST);
    let old: serde_json::Map<String, Json> = crate::files::read_text(&manifest_path)
        .ok()
        .and_then(|t| serde_json::from_str::<Json>(&t).ok())
        .and_then(|j| j.get("entries").and_then(Json::as_object).cloned())
        .unwrap_or_default();
    // (hash, row) per job index, filled as jobs finish
    let state: Mutex<Vec<Option<(String, Row)>>> = Mutex::new(vec![None; all.len()]);
    let failures = std::sync::atomic::AtomicUsize::new(0);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let hash_of = |job: &Job| fnv1a(format!("{fingerprint}\n{}\n{}", job.origin, job.text).as_bytes());
    let write_all = |s: &[Option<(String, Row)>]| -> Result<()> {
        let rows: Vec<Row> = s.iter().flatten().map(|(_, r)| r.clone()).collect();
        let entries: serde_json::Map<String, Json> =
            s.iter().flatten().map(|(h, r)| (r.name.clone(), json!({ "hash": h, "row": r.to_json() }))).collect();
        let text = serde_json::to_string_pretty(&json!({ "tool": "tracr-opt", "entries": entries }))
            .map_err(|e| Error::internal(e.to_string()))?;
        crate::files::write_atomic(&manifest_path, format!("{text}\n").as_bytes())?;
        write_results(&rows)
    };
    // first the programs that are done already: same hash, complete directory
    let mut todo = Vec::new();
    {
        let mut s = state.lock().expect("no thread panics holding the batch state");
        for (i, job) in all.iter().enumerate() {
            let hash = hash_of(job);
            let reused = old.get(&job.name).and_then(|prev| {
                let same = prev.get("hash").and_then(Json::as_str) == Some(hash.as_str());
                let row = prev.get("row").and_then(Row::from_json)?;
                (same && row.error.is_none() && complete(&out.join(&job.name))).then_some(row)
            });
            match reused {
                Some(row) => {
                    let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                    progress(&row, n, 0);
                    s[i] = Some((hash, row));
                }
                None => todo.push((i, job, hash)),
            }
        }
        write_all(&s)?;
    }
    let record = |i: usize, hash: String, row: Row| -> Result<()> {
        if row.error.is_some() {
            failures.fetch_add(1, Ordering::SeqCst);
        }
        let mut s = state.lock().expect("no thread panics holding the batch state");
        s[i] = Some((hash, row.clone()));
        write_all(&s)?;
        let n = done.fetch_add(1, Ordering::SeqCst) + 1;
        progress(&row, n, failures.load(Ordering::SeqCst));
        Ok(())
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .build()
        .map_err(|e| Error::internal(format!("thread pool: {e}")))?;
    let results: Vec<Result<()>> = pool.install(|| {
        todo.into_par_iter()
            .with_max_len(1)
            .map(|(i, job, hash)| {
                if stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                let row = compile_one(job, settings, &out.join(&job.name));
                record(i, hash, row)
            })
            .collect()
    });
    results.into_iter().collect::<Result<Vec<()>>>()?;
    let s = state.into_inner().expect("no thread panics holding the batch state");
    Ok(s.into_iter().flatten().map(|(_, r)| r).collect())
}

/// A model directory with its four files (one written before circuit.json is recompiled).
fn complete(dir: &Path) -> bool {
    ["model.safetensors", "config.json", "tracr_opt.json", "circuit.json"].iter().all(|f| dir.join(f).is_file())
}

/// Model directories are written as `.NAME.tmp-PID` and renamed; a process
/// killed in between leaves one behind. They are never complete: remove them.
fn remove_stale_temporaries(out: &Path) {
    let Ok(entries) = std::fs::read_dir(out) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') && (name.contains(".tmp-") || name.contains(".old-")) && e.path().is_dir() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Compiles, verifies and writes one program; any failure becomes the row's error.
fn compile_one(job: &Job, settings: &Settings, dir: &Path) -> Row {
    let mut row = Row {
        name: job.name.clone(),
        origin: job.origin.clone(),
        error: None,
        compiled: None,
        baseline: None,
        skipped: false,
    };
    let attempt = || -> Result<(Json, Option<Json>)> {
        let program = if job.json {
            Program::from_json(&job.origin, &job.text)?
        } else {
            Program::from_rasp(&job.origin, &job.text)?
        };
        let s = program.settings_with(settings.vocab.clone(), settings.max_seq_len, settings.causal)?;
        let compiled = crate::compile(&program, &s, &settings.options)?;
        // one thread per program: --jobs is the number of cores the batch uses
        let report = compiled.verified(&VerifyOptions { threads: 1, ..settings.verify.clone() })?;
        let mut summary = compiled.summary_json(Some(&report));
        summary["program"] = job.name.clone().into();
        let baseline = if settings.baseline {
            let b = crate::compile(&program, &s, &CompileOptions::baseline())?;
            let m = &b.model;
            Some(json!({
                "layers": m.config.n_layers,
                "d_model": m.config.d_model,
                "d_mlp": m.config.d_mlp,
                "params": m.params(),
                "nonzero_params": m.nonzero_params(),
            }))
        } else {
            None
        };
        compiled.save(dir, settings.dtype)?;
        Ok((summary, baseline))
    };
    // a panic in one program is that program's failure, not the batch's
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(attempt)) {
        Ok(Ok((summary, baseline))) => {
            row.compiled = Some(summary);
            row.baseline = baseline;
        }
        Ok(Err(e)) => row.error = Some(e.to_string()),
        Err(p) => {
            let what = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown".into());
            row.error = Some(format!("internal error (a bug in tracr-opt): {what}"));
        }
    }
    row
}

/// The flat columns of the CSV and Markdown tables.
pub const COLUMNS: [&str; 17] = [
    "name",
    "status",
    "layers",
    "d_model",
    "n_heads",
    "d_head",
    "d_mlp",
    "params",
    "nonzero_params",
    "compile_ms",
    "verify_ms",
    "inputs",
    "mismatches",
    "baseline_layers",
    "baseline_d_model",
    "baseline_params",
    "error",
];

fn cells(r: &Row) -> Vec<String> {
    let c = |k: &str| -> String {
        r.compiled
            .as_ref()
            .and_then(|j| j.get(k).or_else(|| j.get("verified").and_then(|v| v.get(k))))
            .map(|v| match v {
                Json::Number(n) if n.is_f64() => format!("{:.1}", n.as_f64().unwrap_or(0.0)),
                Json::Null => String::new(),
                other => other.to_string(),
            })
            .unwrap_or_default()
    };
    let b = |k: &str| r.baseline.as_ref().and_then(|j| j.get(k)).map(|v| v.to_string()).unwrap_or_default();
    vec![
        r.name.clone(),
        if r.error.is_none() { "ok".into() } else { "failed".into() },
        c("layers"),
        c("d_model"),
        c("n_heads"),
        c("d_head"),
        c("d_mlp"),
        c("params"),
        c("nonzero_params"),
        c("compile_ms"),
        c("verify_ms"),
        c("inputs"),
        c("mismatches"),
        b("layers"),
        b("d_model"),
        b("params"),
        r.error.clone().unwrap_or_default(),
    ]
}

/// The results table in `format` (`csv`, `json` or `md`).
pub fn format_rows(rows: &[Row], format: &str) -> String {
    match format {
        "json" => {
            let mut s = serde_json::to_string_pretty(&rows.iter().map(Row::to_json).collect::<Vec<_>>())
                .expect("rows serialise");
            s.push('\n');
            s
        }
        "csv" => {
            let quote = |s: &str| {
                if s.contains([',', '"', '\n']) {
                    format!("\"{}\"", s.replace('"', "\"\""))
                } else {
                    s.to_string()
                }
            };
            let mut s = COLUMNS.join(",") + "\n";
            for r in rows {
                s += &(cells(r).iter().map(|c| quote(c)).collect::<Vec<_>>().join(",") + "\n");
            }
            s
        }
        _ => {
            let mut s = format!("| {} |\n|{}\n", COLUMNS.join(" | "), "---|".repeat(COLUMNS.len()));
            for r in rows {
                let row: Vec<String> = cells(r).iter().map(|c| c.replace('|', "\\|").replace('\n', " ")).collect();
                s += &format!("| {} |\n", row.join(" | "));
            }
            s
        }
    }
}

/// Aggregates over the rows (`--summary`): counts, geomean ratios to Tracr's
/// layout, layer and d_model deltas, and failures grouped by message.
pub fn summary(rows: &[Row]) -> String {
    let ok: Vec<&Row> = rows.iter().filter(|r| r.error.is_none()).collect();
    let failed = rows.len() - ok.len();
    let skipped = rows.iter().filter(|r| r.skipped).count();
    let mut s = format!(
        "{} programs: {} compiled and verified, {failed} failed{}\n",
        rows.len(),
        ok.len(),
        if skipped > 0 { format!(" ({skipped} unchanged since the last run: not recompiled)") } else { String::new() }
    );
    let pairs: Vec<(&Json, &Json)> =
        ok.iter().filter_map(|r| Some((r.compiled.as_ref()?, r.baseline.as_ref()?))).collect();
    if !pairs.is_empty() {
        let num = |j: &Json, k: &str| j.get(k).and_then(Json::as_f64).unwrap_or(0.0);
        let geomean = |k: &str| {
            let logs: Vec<f64> = pairs
                .iter()
                .filter(|(c, b)| num(c, k) > 0.0 && num(b, k) > 0.0)
                .map(|(c, b)| (num(c, k) / num(b, k)).ln())
                .collect();
            (logs.iter().sum::<f64>() / logs.len().max(1) as f64).exp()
        };
        let delta = |k: &str| -> (f64, f64, f64) {
            let d: Vec<f64> = pairs.iter().map(|(c, b)| num(c, k) - num(b, k)).collect();
            let mean = d.iter().sum::<f64>() / d.len() as f64;
            (mean, d.iter().copied().fold(f64::INFINITY, f64::min), d.iter().copied().fold(f64::NEG_INFINITY, f64::max))
        };
        let (p, nz) = (geomean("params"), geomean("nonzero_params"));
        s += &format!(
            "against Tracr's layout ({} programs): params geomean ×{p:.3} ({:.2}× fewer), nonzero ×{nz:.3} ({:.2}× fewer)\n",
            pairs.len(),
            1.0 / p,
            1.0 / nz
        );
        for k in ["layers", "d_model"] {
            let (mean, lo, hi) = delta(k);
            s += &format!("  {k}: mean change {mean:+.2}, from {lo:+} to {hi:+}\n");
        }
    }
    if failed > 0 {
        let mut by: Vec<(String, usize)> = Vec::new();
        for r in rows.iter().filter(|r| r.error.is_some()) {
            // the message without its place, so one cause groups together
            let msg = r.error.as_deref().unwrap_or_default();
            let key = msg.split_once(": ").map(|(_, m)| m).unwrap_or(msg).lines().next().unwrap_or("").to_string();
            match by.iter_mut().find(|(k, _)| *k == key) {
                Some((_, n)) => *n += 1,
                None => by.push((key, 1)),
            }
        }
        by.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        s += "failures by message:\n";
        for (k, n) in by {
            s += &format!("  {n}× {k}\n");
        }
    }
    s
}
