//! The `tracr-opt` command line. Each subcommand lives in its own module; this
//! one holds the argument types they share.

mod compare;
mod compile;
mod convert;
mod eval;
mod list;
mod run;
mod verify;

use crate::diagnostic::{Error, Result};
use crate::rasp::load::load;
use crate::rasp::{Program, Settings};
use crate::value::Value;
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
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

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
}

impl ModelArgs {
    pub fn compile(&self, p: &Program, settings: &Settings) -> Result<crate::compiler::Compiled> {
        crate::compiler::compile(p, settings, self.allocator()?.as_ref(), &self.options())
    }

    pub fn allocator(&self) -> Result<Box<dyn crate::compiler::alloc::Allocator>> {
        use crate::compiler::alloc::{heuristic::Heuristic, ilp::Ilp, ilp::Objective, Allocator};
        let allocator: Box<dyn Allocator> = match self.allocator {
            AllocatorChoice::Heuristic => {
                if self.emit_lp.is_some() || self.minimise.is_some() {
                    return Err(Error::usage(
                        "--minimise and --emit-lp need the ILP allocator (drop --allocator heuristic)",
                    ));
                }
                Box::new(Heuristic)
            }
            AllocatorChoice::Ilp => {
                if !(self.time_limit > 0.0) {
                    return Err(Error::usage("--time-limit must be positive"));
                }
                let default = if self.no_share_residual { "layers,params" } else { "layers,width,params" };
                let objectives = Objective::parse_list(self.minimise.as_deref().unwrap_or(default))?;
                if self.no_share_residual && objectives.contains(&Objective::Width) {
                    return Err(Error::usage("--minimise width needs residual sharing (drop --no-share-residual)"));
                }
                Box::new(Ilp { objectives, time_limit: self.time_limit, emit_lp: self.emit_lp.clone() })
            }
        };
        Ok(allocator)
    }

    pub fn options(&self) -> crate::compiler::Options {
        use crate::compiler::rewrite::RewriteOptions;
        crate::compiler::Options {
            factorise: !self.no_factorise,
            // with --no-rewrites only the joint-selector rewrite runs: it is
            // what makes `|` over different s-ops compilable at all
            rewrite: Some(if self.no_rewrites {
                RewriteOptions::none()
            } else {
                RewriteOptions {
                    cse: !self.no_cse,
                    fold: !self.no_fold,
                    fuse: !self.no_fuse,
                    max_mlp_width: self.max_mlp_width,
                }
            }),
            rule_tables: !self.no_rewrites && !self.no_rule_tables,
            share_heads: !self.no_rewrites && !self.no_share_heads,
            share_residual: !self.no_share_residual,
        }
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
    /// The sampling plan, refusing an empty sample.
    pub fn plan(&self) -> Result<crate::verify::Plan> {
        if self.samples == 0 {
            return Err(Error::usage("--samples must be at least 1 (use --no-verify to skip verification)"));
        }
        Ok(crate::verify::Plan { samples: self.samples, seed: self.seed })
    }

    /// Verifies `model`; with a `reference` (the unoptimised model) also
    /// measures how far the optimised model's logits moved from it.
    pub fn run(
        &self,
        model: &crate::model::Model,
        reference: Option<&crate::model::Model>,
        tabulated: &Program,
    ) -> Result<crate::verify::Report> {
        let plan = self.plan()?;
        let vocab = model.vocab()?;
        let (inputs, exhaustive) = crate::verify::inputs_for(&vocab, model.config.n_ctx - 1, &plan);
        let mut report = crate::verify::verify(model, tabulated, &inputs, exhaustive);
        if let Some(r) = reference {
            report.max_diff_from_unoptimised = Some(crate::verify::max_logit_difference(model, r, &inputs)?);
        }
        Ok(report)
    }
}

/// Which program, and the settings that override its own.
#[derive(Args, Clone, Debug)]
pub struct ProgramArgs {
    /// A bundled program name, a .rasp file or a .json file.
    pub program: String,
    /// Vocabulary, e.g. "a b c" or "1,2,3" (numbers become ints/floats, True/False bools).
    #[arg(long)]
    pub vocab: Option<String>,
    /// Longest input the model must handle.
    #[arg(long)]
    pub max_seq_len: Option<usize>,
    /// Causal attention: each position sees only itself and earlier positions.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub causal: Option<bool>,
    /// Use this top-level variable of a .rasp program as the output.
    #[arg(long, value_name = "NAME")]
    pub output: Option<String>,
}

impl ProgramArgs {
    pub fn load(&self) -> Result<Program> {
        load(&self.program, self.output.as_deref())
    }

    /// The program's own settings, overridden by the flags given.
    pub fn settings(&self, p: &Program) -> Result<Settings> {
        let own = p.settings.clone();
        let vocab = match &self.vocab {
            Some(v) => parse_vocab(v)?,
            None => own
                .as_ref()
                .map(|s| s.vocab.clone())
                .ok_or_else(|| Error::usage(format!("{} declares no vocab: pass --vocab", self.program)))?,
        };
        let max_seq_len = match self.max_seq_len {
            Some(0) => return Err(Error::usage("--max-seq-len must be at least 1")),
            Some(n) => n,
            None => own
                .as_ref()
                .map(|s| s.max_seq_len)
                .ok_or_else(|| Error::usage(format!("{} declares no max_seq_len: pass --max-seq-len", self.program)))?,
        };
        let causal = self.causal.unwrap_or(own.map(|s| s.causal).unwrap_or(false));
        Ok(Settings { vocab, max_seq_len, causal })
    }
}

/// A token typed on the command line, read as Python would read a literal.
pub fn parse_token(s: &str) -> Value {
    if let Ok(i) = s.parse::<i64>() {
        return Value::Int(i);
    }
    if let Ok(f) = s.parse::<f64>() {
        if s.chars().any(|c| c.is_ascii_digit()) {
            return Value::Float(f);
        }
    }
    match s {
        "True" => Value::Bool(true),
        "False" => Value::Bool(false),
        _ => Value::Str(s.to_string()),
    }
}

fn split_list(s: &str) -> Vec<&str> {
    s.split(|c: char| c == ',' || c.is_whitespace()).filter(|t| !t.is_empty()).collect()
}

pub fn parse_vocab(s: &str) -> Result<Vec<Value>> {
    let mut v: Vec<Value> = split_list(s).into_iter().map(parse_token).collect();
    if v.is_empty() {
        return Err(Error::usage("--vocab is empty"));
    }
    v.sort();
    v.dedup();
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

/// Writes a file atomically: a temporary file beside it, then a rename, so a
/// failure never leaves a partly written file.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let name = path.file_name().ok_or_else(|| Error::usage(format!("{} is not a file path", path.display())))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let result = std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::usage(format!("cannot write {}: {e}", path.display())));
    }
    Ok(())
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::List(a) => list::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Convert(a) => convert::run(a),
        Command::Compile(a) => compile::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Run(a) => run::run(a),
        Command::Compare(a) => compare::run(a),
    }
}
