//! `tracr-opt compress`: a compiled model's residual stream squeezed to K
//! dimensions by gradient descent (lossy; docs/COMPRESSION.md).

use super::{ProgramArgs, VerifyArgs};
use crate::compress::{Init, Options, Outcome, Step, SweepPoint};
use crate::diagnostic::{Error, Result};
use crate::model::io::DType;
use crate::model::Model;
use crate::{CompileOptions, Program};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

/// Which exact model to start from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum From {
    /// Tracr's layout: heuristic allocation, no optimisation (the paper's setting).
    Baseline,
    /// tracr-opt's exact optimised model.
    Optimised,
    /// Both, one after the other (with --sweep).
    Both,
}

/// How W starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InitChoice {
    /// The K principal directions of the exact model's residual streams.
    Pca,
    /// K columns of a random rotation (seeded).
    Random,
}

#[derive(Args)]
pub struct CompressArgs {
    /// A bundled program, a .rasp or .json file, or a model directory
    /// written by `tracr-opt compile --out` (which keeps its program text).
    #[command(flatten)]
    pub program: ProgramArgs,
    /// K: the residual width to compress to (at most the model's d_model).
    #[arg(long, value_name = "K", required_unless_present = "sweep", conflicts_with = "sweep")]
    pub d_model: Option<usize>,
    /// Compress to every K in the range, e.g. 14..2, and tabulate accuracy
    /// and layer cosine against K (widths above the model's are skipped).
    #[arg(long, value_name = "K1..K2")]
    pub sweep: Option<String>,
    /// The exact model to start from [default: baseline].
    #[arg(long, value_enum)]
    pub from: Option<From>,
    /// Write the compressed model here (with figures/*.svg); with --sweep, a
    /// directory of models d<K>/ (per starting point) and sweep.svg.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// Optimiser steps.
    #[arg(long, default_value_t = 2000)]
    pub steps: usize,
    /// AdamW peak learning rates, comma-separated: one run each, the best kept.
    #[arg(long, value_name = "LIST", default_value = "0.01,0.003,0.001")]
    pub lr: String,
    /// Sequences per step (of one length).
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Weight of the layer-output loss against the output loss.
    #[arg(long, default_value_t = 1.0)]
    pub layer_weight: f64,
    /// How W starts.
    #[arg(long, value_enum, default_value = "pca")]
    pub init: InitChoice,
    /// Attention sharpness at the first step, as a fraction of the compiled
    /// model's (rising to 1 halfway through; 1: no annealing).
    #[arg(long, default_value_t = 0.1)]
    pub sharpness_from: f64,
    /// Train on every input when there are at most this many, else on this
    /// many random ones.
    #[arg(long, default_value_t = 20_000)]
    pub train_inputs: usize,
    /// Seed for the batches, the random start and any sample of inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Random inputs to measure on when there are more than 100 000 (and to
    /// verify the exact model on).
    #[arg(long, default_value_t = 20_000)]
    pub samples: usize,
    /// Precision of the written weights (accuracy is measured on them).
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: DType,
}

/// The exact model to compress, the program to measure it against, and
/// what it is called in the metadata.
struct Start {
    model: Model,
    program: Program,
    from: &'static str,
}

/// Reads `K1..K2` (either order) as the widths from high to low.
fn parse_sweep(s: &str) -> Result<Vec<usize>> {
    let bad = || Error::usage(format!("--sweep {s}: give a range of widths such as 14..2"));
    let (a, b) = s.split_once("..").ok_or_else(bad)?;
    let (a, b): (usize, usize) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
    let (lo, hi) = (a.min(b), a.max(b));
    if lo == 0 {
        return Err(Error::usage(format!("--sweep {s}: widths start at 1")));
    }
    Ok((lo..=hi).rev().collect())
}

/// The starting points the arguments ask for.
fn starts(args: &CompressArgs) -> Result<Vec<Start>> {
    let path = Path::new(&args.program.program);
    if path.is_dir() {
        if args.from.is_some() || args.program.settings.vocab.is_some() || args.program.settings.max_seq_len.is_some() {
            return Err(Error::usage(
                "a model directory is compressed as it is: --from, --vocab and --max-seq-len apply to programs",
            ));
        }
        let model = Model::load(path)?;
        let text = model.meta.source.clone().ok_or_else(|| {
            Error::usage(format!(
                "{}: the model directory does not keep its program's text, so its accuracy cannot be measured; compress the program instead",
                path.display()
            ))
        })?;
        let name = format!("{} (from {})", model.meta.program, path.display());
        let program = if text.trim_start().starts_with('{') {
            Program::from_json(&name, &text)?
        } else {
            Program::from_rasp(&name, &text)?
        };
        if program.nodes[program.output].label != model.meta.output_label {
            return Err(Error::usage(format!(
                "{}: the model computes '{}' but its program text's output is '{}'",
                path.display(),
                model.meta.output_label,
                program.nodes[program.output].label
            )));
        }
        let c = &model.config;
        let settings = crate::Settings { vocab: model.vocab()?, max_seq_len: c.n_ctx - 1, causal: c.causal };
        let vs = crate::rasp::valueset::infer(&program, &settings.vocab, settings.max_seq_len)?;
        let program = crate::rasp::valueset::tabulate(&program, &vs)?;
        return Ok(vec![Start { model, program, from: "model" }]);
    }
    let p = args.program.load()?;
    let settings = args.program.settings(&p)?;
    let which = match args.from.unwrap_or(From::Baseline) {
        From::Both if args.sweep.is_none() => {
            return Err(Error::usage("--from both compares two starting points: use it with --sweep"))
        }
        From::Both => vec![From::Baseline, From::Optimised],
        f => vec![f],
    };
    let plan = VerifyArgs { samples: args.samples.min(crate::MAX_SAMPLES), seed: args.seed }.options();
    which
        .into_iter()
        .map(|f| {
            let (options, from) = match f {
                From::Optimised => (CompileOptions::default(), "optimised"),
                _ => (CompileOptions::baseline(), "baseline"),
            };
            let compiled = crate::compile(&p, &settings, &options)?;
            // the exact model is checked first: a lossy copy of a wrong model measures nothing
            compiled.verified(&plan)?;
            Ok(Start { model: compiled.model, program: compiled.tabulated, from })
        })
        .collect()
}

fn lrs(s: &str) -> Result<Vec<f64>> {
    s.split(',')
        .map(|x| {
            x.trim().parse::<f64>().map_err(|_| Error::usage(format!("--lr {s}: give numbers such as 0.01,0.001")))
        })
        .collect()
}

fn options(args: &CompressArgs, k: usize) -> Result<Options> {
    Ok(Options {
        steps: args.steps,
        lrs: lrs(&args.lr)?,
        batch: args.batch,
        seed: args.seed,
        layer_weight: args.layer_weight,
        init: match args.init {
            InitChoice::Pca => Init::Pca,
            InitChoice::Random => Init::Random,
        },
        train_inputs: args.train_inputs,
        sharpness_from: args.sharpness_from,
        samples: args.samples,
        f32_weights: args.dtype == DType::F32,
        ..Options::new(k)
    })
}

/// Trains with a progress bar on stderr (drawn only when it is a terminal).
fn run_one(start: &Start, options: &Options) -> Result<Outcome> {
    let bar = indicatif::ProgressBar::new((options.steps * options.lrs.len()) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} loss {msg} (eta {eta})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{} K={} from {}", start.model.meta.program, options.d_model, start.from));
    let mut on_step = |s: &Step| {
        if s.step % 10 == 0 {
            bar.set_message(format!("{:.3e}", s.loss));
        }
        bar.inc(1);
    };
    let outcome = crate::compress::compress(&start.model, &start.program, start.from, options, &mut on_step);
    bar.finish_and_clear();
    outcome
}

fn cosines(c: &[Option<f64>]) -> String {
    c.iter()
        .enumerate()
        .map(|(l, v)| match v {
            Some(v) => format!("L{l} {v:.3}"),
            None => format!("L{l} -"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe(o: &Outcome) -> String {
    let c = o.model.meta.compression.as_ref().expect("compressed");
    let numerical = c.accuracy_within_0_05.is_some();
    let mut s = format!(
        "compressed {} from {} to {} residual dimensions, starting from the {} model (lossy)\n",
        o.model.meta.program,
        c.from_d_model,
        c.d_model,
        if c.from == "model" { "given" } else { c.from.as_str() }
    );
    s.push_str(&format!(
        "  accuracy {:.4} ({}, {} inputs{})",
        c.accuracy,
        if c.exhaustive { "every input" } else { "random sample" },
        c.inputs,
        if numerical { "; a numerical position counts within 0.01" } else { "" }
    ));
    if let Some(w) = c.accuracy_within_0_05 {
        s.push_str(&format!("; within 0.05: {w:.4}"));
    }
    s.push_str(&format!(
        "\n  logit MSE against the exact model {:.3e}; layer-output cosine {}\n",
        c.output_mse,
        cosines(&c.layer_cosine)
    ));
    let t = &c.training;
    s.push_str(&format!(
        "  {} steps per learning rate in {:.1} s; kept W from step {} at lr {} (loss over the training inputs {:.3e})",
        o.history.len(),
        o.seconds,
        t["kept_step"],
        t["kept_lr"],
        t["objective"].as_f64().unwrap_or(f64::NAN)
    ));
    for g in &o.geometry {
        s.push_str(&format!(
            "\n  {} ({} directions): {:.0}% of their spread on one axis{}, mean |cos| {:.2}",
            g.sop,
            g.directions,
            100.0 * g.pc1_share,
            if g.monotone { " in value order" } else { "" },
            g.mean_abs_cosine
        ));
    }
    s
}

fn save(o: &Outcome, dir: &Path, dtype: DType) -> Result<()> {
    let figures: Vec<(String, Vec<u8>)> =
        crate::compress::figures(o).into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
    crate::model::io::save_with(&o.model, dir, dtype, &figures)
}

pub fn run(args: CompressArgs) -> Result<()> {
    let mut check = Options::new(args.d_model.unwrap_or(1));
    check =
        Options { steps: args.steps, batch: args.batch, lrs: lrs(&args.lr)?, layer_weight: args.layer_weight, ..check };
    if let Some(dir) = &args.out {
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if !parent.is_dir() {
            return Err(Error::usage(format!("the directory {} does not exist", parent.display())));
        }
    }
    let widths = match &args.sweep {
        Some(s) => Some(parse_sweep(s)?),
        None => None,
    };
    let starts = starts(&args)?;
    let Some(widths) = widths else {
        let k = args.d_model.expect("clap requires --d-model without --sweep");
        let start = &starts[0];
        crate::compress::check(&start.model, &Options { d_model: k, ..check })?;
        let outcome = run_one(start, &options(&args, k)?)?;
        if let Some(dir) = &args.out {
            save(&outcome, dir, args.dtype)?;
        }
        if args.json {
            println!("{}", outcome.summary_json());
        } else {
            println!("{}", describe(&outcome));
            if let Some(dir) = &args.out {
                println!("wrote {} (figures/w_wt.svg, layer_cosine.svg, loss.svg)", dir.display());
            }
        }
        return Ok(());
    };
    if let Some(dir) = &args.out {
        if dir.exists() && std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
            let is_sweep = dir.join("sweep.json").is_file();
            if !is_sweep {
                return Err(Error::usage(format!(
                    "{} exists and is not a sweep directory; choose a new or empty --out directory",
                    dir.display()
                )));
            }
        }
    }
    let mut series: Vec<(String, Vec<SweepPoint>)> = Vec::new();
    let mut json_series = Vec::new();
    if !args.json {
        println!("| from | K | accuracy | within 0.05 | logit MSE | layer cosine | seconds |");
        println!("|---|---|---|---|---|---|---|");
    }
    for start in &starts {
        let d = start.model.config.d_model;
        let mut points = Vec::new();
        let mut rows = Vec::new();
        for &k in widths.iter().filter(|k| **k <= d) {
            crate::compress::check(&start.model, &Options { d_model: k, ..check.clone() })?;
            let o = run_one(start, &options(&args, k)?)?;
            let c = o.model.meta.compression.as_ref().expect("compressed");
            if let Some(dir) = &args.out {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::usage(format!("cannot create {}: {e}", dir.display())))?;
                let sub = if starts.len() > 1 { dir.join(start.from) } else { dir.to_path_buf() };
                std::fs::create_dir_all(&sub)
                    .map_err(|e| Error::usage(format!("cannot create {}: {e}", sub.display())))?;
                save(&o, &sub.join(format!("d{k}")), args.dtype)?;
            }
            if !args.json {
                println!(
                    "| {} | {k} | {:.4} | {} | {:.2e} | {} | {:.1} |",
                    start.from,
                    c.accuracy,
                    c.accuracy_within_0_05.map(|w| format!("{w:.4}")).unwrap_or_else(|| "-".into()),
                    c.output_mse,
                    cosines(&c.layer_cosine),
                    o.seconds
                );
            }
            points.push(SweepPoint {
                d_model: k,
                accuracy: c.accuracy,
                within_0_05: c.accuracy_within_0_05,
                layer_cosine: c.layer_cosine.clone(),
            });
            rows.push(o.summary_json());
        }
        if !args.json && widths.iter().any(|k| *k > d) {
            println!("| {} | > {d} | (wider than the exact model: skipped) | | | | |", start.from);
        }
        series.push((start.from.to_string(), points));
        json_series.push(serde_json::json!({ "from": start.from, "from_d_model": d, "points": rows }));
    }
    let program = starts[0].model.meta.program.clone();
    let j = serde_json::json!({ "program": program, "sweep": json_series });
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).map_err(|e| Error::usage(format!("cannot create {}: {e}", dir.display())))?;
        crate::files::write_atomic(
            &dir.join("sweep.svg"),
            crate::compress::sweep_figure(&program, &series).as_bytes(),
        )?;
        let mut text = serde_json::to_string_pretty(&j).map_err(|e| Error::internal(e.to_string()))?;
        text.push('\n');
        crate::files::write_atomic(&dir.join("sweep.json"), text.as_bytes())?;
    }
    if args.json {
        println!("{j}");
    } else if let Some(dir) = &args.out {
        println!("wrote {} (sweep.json, sweep.svg and a model per width)", dir.display());
    }
    Ok(())
}
