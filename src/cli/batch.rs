//! `tracr-opt batch`: a corpus compiled in parallel, resumable, with one
//! results table (the engine is `crate::batch`).

use super::{Format, ModelArgs, SettingsArgs, VerifyArgs};
use crate::batch::{Row, Settings};
use crate::diagnostic::{Error, Result};
use crate::model::io::DType;
use clap::Args;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Args)]
pub struct BatchArgs {
    /// Programs: .rasp/.json files, directories (every .rasp/.json under
    /// them), .jsonl files (one JSON program per line) or bundled names.
    #[arg(required = true)]
    pub inputs: Vec<String>,
    /// Where the models (DIR/<name>/), the results table and the manifest go.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Programs compiled at a time [default: the available cores].
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// The results table's format (DIR/results.<format>, also printed).
    #[arg(long, value_enum, default_value = "md")]
    pub format: Format,
    /// Also compile each program as Tracr lays it out, for its figures.
    #[arg(long)]
    pub baseline: bool,
    /// Print aggregates: counts, geomean ratios and deltas against the
    /// baseline, failures by message.
    #[arg(long)]
    pub summary: bool,
    /// Settings for every program (each program's own where not given).
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub verify: VerifyArgs,
    /// Precision of the written weights.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: DType,
}

pub fn run(args: BatchArgs) -> Result<()> {
    let options = args.model.options()?;
    options.allocator()?; // the flags' consistency, before anything runs
    let verify = args.verify.options();
    verify.check()?;
    if args.jobs == Some(0) {
        return Err(Error::usage("--jobs must be at least 1"));
    }
    if let Some(m) = args.settings.max_seq_len {
        crate::check_max_seq_len(m)?; // once here, not once per program
    }
    let parent = args.out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    if !parent.is_dir() {
        return Err(Error::usage(format!("the directory {} does not exist", parent.display())));
    }
    let jobs = crate::batch::collect(&args.inputs)?;
    let settings = Settings {
        vocab: args.settings.vocab()?,
        max_seq_len: args.settings.max_seq_len,
        causal: args.settings.causal,
        options,
        verify,
        baseline: args.baseline,
        dtype: args.dtype,
    };
    let threads = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));

    // Ctrl-C: no new program starts; the running ones finish and are recorded
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || {
            if !stop.swap(true, Ordering::SeqCst) {
                eprintln!("\ninterrupted: finishing the programs already running, then writing the results");
            }
        });
    }
    let bar = indicatif::ProgressBar::new(jobs.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("[{bar:30}] {pos}/{len} programs, {msg} (eta {eta})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message("0 failed");
    let progress = |_: &Row, done: usize, failed: usize| {
        bar.set_position(done as u64);
        bar.set_message(format!("{failed} failed"));
    };
    let results_path = args.out.join(format!("results.{}", args.format.name()));
    let format = args.format.name();
    let write =
        |rows: &[Row]| crate::files::write_atomic(&results_path, crate::batch::format_rows(rows, format).as_bytes());
    let rows = crate::batch::run(&jobs, &settings, &args.out, threads, &stop, &progress, &write)?;
    bar.finish_and_clear();
    print!("{}", crate::batch::format_rows(&rows, format));
    if args.summary {
        eprint!("{}", crate::batch::summary(&rows));
    }
    eprintln!(
        "wrote {} and a model directory per compiled program under {}",
        results_path.display(),
        args.out.display()
    );
    if stop.load(Ordering::SeqCst) && rows.len() < jobs.len() {
        return Err(Error::usage(format!(
            "interrupted after {} of {} programs; run the same command again to finish (finished programs are skipped)",
            rows.len(),
            jobs.len()
        )));
    }
    let failed = rows.iter().filter(|r| r.error.is_some()).count();
    if failed > 0 {
        return Err(Error::program(format!(
            "{failed} of {} programs failed (see {})",
            rows.len(),
            results_path.display()
        )));
    }
    Ok(())
}
