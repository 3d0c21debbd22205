//! The `tracr-opt` command line. Each subcommand lives in its own module; this
//! one holds the argument types they share.

mod batch;
mod compare;
mod compile;
mod compress;
mod convert;
mod eval;
mod list;
mod progress;
mod run;
mod show;
mod verify;

use crate::diagnostic::{Error, Result};
use crate::value::Value;
use crate::{AllocatorKind, CompileOptions, Objective, Program, Settings, VerifyOptions};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "tracr-opt",
    version,
    about = "Compile RASP programs into the exact weights of a transformer",
    long_about = "tracr-opt compiles RASP programs (the language of DeepMind's Tracr) into the \
weights of a decoder-only transformer, and checks every model against the RASP interpreter.\n\n\
A PROGRAM is the name of a bundled program (see `tracr-opt list`), a .rasp file or a .json file.",
    after_help = "Examples:\n  tracr-opt list\n  tracr-opt eval reverse --input \"a b c\"\n  tracr-opt convert my_program.rasp --to json -o my_program.json"
)]
/// The command line, as clap parses it.
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// List the bundled programs with their default settings.
    List(list::ListArgs),
    /// Run a program in the RASP interpreter on one input.
    Eval(eval::EvalArgs),
    /// Convert a program to the JSON interchange format.
    Convert(convert::ConvertArgs),
    /// Compile a program into a transformer, verify it and optionally write it.
    Compile(compile::CompileArgs),
    /// Compile a program and check the model against the interpreter.
    Verify(verify::VerifyCmdArgs),
    /// Run a model written by `compile --out` on one input.
    Run(run::RunArgs),
    /// Tracr vs baseline vs optimised model size, per program, as a table.
    Compare(compare::CompareArgs),
    /// Squeeze a model's residual stream to K dimensions by gradient descent
    /// (lossy: the Tracr paper's compression), and measure what it costs.
    Compress(compress::CompressArgs),
    /// Draw a model: its layers, its residual stream, every head's W_QK and
    /// W_OV, and (with --input) its residual stream at every layer.
    Show(show::ShowArgs),
    /// Compile and verify a corpus in parallel: a model directory per program,
    /// one results table, resumable.
    Batch(batch::BatchArgs),
}

/// A table's format (`compare`, `batch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Markdown table.
    Md,
    /// Comma-separated values.
    Csv,
    /// JSON (one object per row).
    Json,
}

impl Format {
    /// Its name, also the file extension.
    pub fn name(self) -> &'static str {
        match self {
            Format::Md => "md",
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }
}

/// Which allocator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AllocatorChoice {
    /// Tracr's longest-path layer allocation (the baseline).
    Heuristic,
    /// Optimal allocation by integer linear programming (see --minimise).
    Ilp,
}

/// How to build the model.
#[derive(Args, Clone, Debug)]
pub struct ModelArgs {
    /// Layer allocator: the ILP (never worse than Tracr's) or Tracr's heuristic.
    #[arg(long, value_enum, default_value = "ilp")]
    pub allocator: AllocatorChoice,
    /// What the ILP allocator minimises, in order (ties broken by the next):
    /// layers, width (residual width with sharing), heads (most heads in a
    /// layer), mlp (widest MLP layer), params (dense parameter count)
    /// [default: layers,width,params; layers,params with --no-share-residual].
    #[arg(long, value_name = "LIST")]
    pub minimise: Option<String>,
    /// Seconds the ILP solver may take before returning its best allocation.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    pub time_limit: f64,
    /// Write the ILP in LP format (for checking with another solver).
    #[arg(long, value_name = "FILE")]
    pub emit_lp: Option<std::path::PathBuf>,
    /// Keep Tracr's head layout and every MLP neuron (no factorisation pass).
    #[arg(long)]
    pub no_factorise: bool,
    /// No graph rewrite, rule table or head sharing (the switches below, all at
    /// once; `|` over different s-ops still gets its joint key and query).
    #[arg(long)]
    pub no_rewrites: bool,
    /// Do not merge structurally identical s-ops and selectors.
    #[arg(long)]
    pub no_cse: bool,
    /// Do not write functions of tokens (positions) alone with the embeddings.
    #[arg(long)]
    pub no_fold: bool,
    /// Do not fuse chains of element-wise s-ops into one MLP.
    #[arg(long)]
    pub no_fuse: bool,
    /// Widest MLP fusion may create [default: the widest the program already needs].
    #[arg(long, value_name = "N")]
    pub max_mlp_width: Option<usize>,
    /// Categorical SequenceMaps with one neuron per input pair (Tracr's layout)
    /// instead of one per (input value, output value) rule.
    #[arg(long)]
    pub no_rule_tables: bool,
    /// One head per aggregate even when two in a layer share their attention pattern.
    #[arg(long)]
    pub no_share_heads: bool,
    /// One residual dimension per direction for the whole network (Tracr's
    /// layout) instead of reusing the dimensions of dead s-ops.
    #[arg(long)]
    pub no_share_residual: bool,
    /// Keep every MLP block's neurons in one layer (no neuron spreading
    /// across the MLP sublayers between its inputs and its readers).
    #[arg(long)]
    pub no_spread_neurons: bool,
    /// Turn the residual basis by a random orthogonal rotation with this seed
    /// (exact: every read and write turns with it). For testing tools that
    /// assume each dimension holds one feature.
    #[arg(long, value_name = "SEED")]
    pub rotate: Option<u64>,
    /// Refuse, before building it, a model estimated to need more than this
    /// many GB of weights in memory (f64; the file in f32 is half).
    #[arg(long, value_name = "GB", default_value_t = crate::api::DEFAULT_MAX_WEIGHTS_GB)]
    pub max_weights_gb: f64,
}

impl ModelArgs {
    /// The compile options these flags ask for.
    pub fn options(&self) -> Result<CompileOptions> {
        Ok(CompileOptions {
            allocator: match self.allocator {
                AllocatorChoice::Ilp => AllocatorKind::Ilp,
                AllocatorChoice::Heuristic => AllocatorKind::Heuristic,
            },
            minimise: self.minimise.as_deref().map(Objective::parse_list).transpose()?,
            time_limit_secs: self.time_limit,
            emit_lp: self.emit_lp.clone(),
            factorise: !self.no_factorise,
            rewrites: !self.no_rewrites,
            cse: !self.no_cse,
            fold: !self.no_fold,
            fuse: !self.no_fuse,
            max_mlp_width: self.max_mlp_width,
            rule_tables: !self.no_rule_tables,
            share_heads: !self.no_share_heads,
            share_residual: !self.no_share_residual,
            spread_neurons: !self.no_spread_neurons,
            rotate: self.rotate,
            max_weights_gb: Some(self.max_weights_gb),
        })
    }
}

/// How to verify.
#[derive(Args, Clone, Debug)]
pub struct VerifyArgs {
    /// Random inputs to check when there are more than 100 000 inputs in all.
    #[arg(long, default_value_t = 2000)]
    pub samples: usize,
    /// Seed for the random inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl VerifyArgs {
    /// The verification options these flags ask for.
    pub fn options(&self) -> VerifyOptions {
        VerifyOptions { samples: self.samples, seed: self.seed, threads: 0 }
    }
}

/// Settings that override a program's own `compile(...)` line.
#[derive(Args, Clone, Debug)]
pub struct SettingsArgs {
    /// Vocabulary, e.g. "a b c" or "1,2,3" (numbers become ints/floats, True/False bools).
    #[arg(long)]
    pub vocab: Option<String>,
    /// Longest input the model must handle.
    #[arg(long)]
    pub max_seq_len: Option<usize>,
    /// Causal attention: each position sees only itself and earlier positions.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub causal: Option<bool>,
}

impl SettingsArgs {
    /// The vocab given, parsed.
    pub fn vocab(&self) -> Result<Option<Vec<Value>>> {
        self.vocab.as_deref().map(parse_vocab).transpose()
    }
}

/// Which program, and the settings that override its own.
#[derive(Args, Clone, Debug)]
pub struct ProgramArgs {
    /// A bundled program name, a .rasp file or a .json file.
    pub program: String,
    /// The settings that override the program's own.
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// Use this top-level variable of a .rasp program as the output.
    #[arg(long, value_name = "NAME")]
    pub output: Option<String>,
}

impl ProgramArgs {
    /// The program these arguments name.
    pub fn load(&self) -> Result<Program> {
        Program::load_with_output(&self.program, self.output.as_deref())
    }

    /// The program's own settings, overridden by the flags given.
    pub fn settings(&self, p: &Program) -> Result<Settings> {
        let o = &self.settings;
        p.settings_with(o.vocab()?, o.max_seq_len, o.causal)
    }
}

/// Reads a `--vocab` list ("a b c" or "1,2,3").
pub fn parse_vocab(s: &str) -> Result<Vec<Value>> {
    let v = crate::value::parse_tokens(s);
    if v.is_empty() {
        return Err(Error::usage("--vocab is empty"));
    }
    Ok(v)
}

/// Reads an input sequence given as space-separated tokens, checked against the vocab.
pub fn parse_input(s: &str, settings: &Settings) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for tok in s.split_whitespace() {
        let v = settings.vocab.iter().find(|v| v.display() == tok || v.repr() == tok).cloned().ok_or_else(|| {
            Error::usage(format!(
                "input token '{tok}' is not in the vocab {{{}}}",
                settings.vocab.iter().map(Value::display).collect::<Vec<_>>().join(", ")
            ))
        })?;
        out.push(v);
    }
    if out.is_empty() {
        return Err(Error::usage("the input is empty: give at least one token"));
    }
    if out.len() > settings.max_seq_len {
        return Err(Error::usage(format!(
            "the input has {} tokens but max_seq_len is {}",
            out.len(),
            settings.max_seq_len
        )));
    }
    Ok(out)
}

/// Python-style list display of a sequence.
pub fn show_seq(vals: &[Value]) -> String {
    format!("[{}]", vals.iter().map(Value::repr).collect::<Vec<_>>().join(", "))
}

/// Ctrl-C (and SIGTERM, SIGHUP) for every command but `batch` (which stops
/// starting programs instead): wait for an atomic write in progress to end,
/// so that no temporary file or directory is left, then exit 130.
fn exit_on_interrupt() {
    let _ = ctrlc::set_handler(|| {
        let _no_more = crate::files::no_more_writes();
        eprintln!("\ninterrupted");
        std::process::exit(130);
    });
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    if !matches!(cli.command, Command::Batch(_)) {
        exit_on_interrupt();
    }
    match cli.command {
        Command::List(a) => list::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Convert(a) => convert::run(a),
        Command::Compile(a) => compile::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Run(a) => run::run(a),
        Command::Compare(a) => compare::run(a),
        Command::Compress(a) => compress::run(a),
        Command::Batch(a) => batch::run(a),
        Command::Show(a) => show::run(a),
    }
}
