//! The library's front door: load a program, compile it, verify it, write it,
//! load it back and run it. The CLI, the Python package, the benches and the
//! tests all go through these calls; the passes underneath stay public in
//! [`crate::compiler`] for those who want one stage alone.
//!
//! Everything here is re-exported at the crate root. Error messages name
//! options by their `tracr-opt` flag (`--time-limit`); the Python package's
//! keyword arguments carry the same names (`time_limit`).

use crate::compiler::alloc::heuristic::Heuristic;
use crate::compiler::alloc::ilp::{Ilp, Objective};
use crate::compiler::alloc::Allocator;
use crate::compiler::rewrite::RewriteOptions;
use crate::compiler::{Compiled, Options};
use crate::diagnostic::{Error, Result, SourceFile};
use crate::model::forward::Runner;
use crate::model::io::DType;
use crate::model::Model;
use crate::rasp::{Program, Settings};
use crate::value::Value;
use crate::verify::{Plan, Report};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The longest ILP time limit accepted, in seconds (one day): beyond it a
/// limit is a typo, and `Duration` cannot hold infinite seconds.
pub const MAX_TIME_LIMIT_SECS: f64 = 86_400.0;

/// The longest max_seq_len accepted: `indices` takes one value per position,
/// and no value set may exceed [`crate::rasp::valueset::MAX_VALUE_SET`].
/// Checked before anything is built.
pub const MAX_SEQ_LEN: usize = crate::rasp::valueset::MAX_VALUE_SET;

/// The most random inputs verification draws (each is held in memory).
pub const MAX_SAMPLES: usize = 1_000_000;

/// Refuses a max_seq_len of 0 or over [`MAX_SEQ_LEN`].
pub fn check_max_seq_len(max_seq_len: usize) -> Result<()> {
    if max_seq_len == 0 {
        return Err(Error::usage("--max-seq-len must be at least 1"));
    }
    if max_seq_len > MAX_SEQ_LEN {
        return Err(Error::usage(format!(
            "max_seq_len {max_seq_len} is over the limit of {MAX_SEQ_LEN} (indices would take more values than any value set may)"
        )));
    }
    Ok(())
}

/// Refuses settings no model can be built for, before anything is allocated.
fn check_settings(settings: &Settings) -> Result<()> {
    check_max_seq_len(settings.max_seq_len)?;
    if settings.vocab.is_empty() {
        return Err(Error::usage("--vocab is empty"));
    }
    Ok(())
}

impl Program {
    /// Loads a program from a bundled name (see [`crate::library::PROGRAMS`]),
    /// a `.rasp` file or a `.json` file, with the output its text declares.
    pub fn load(spec: &str) -> Result<Program> {
        crate::lang::load::load(spec, None)
    }

    /// As [`Program::load`], with `output` (a top-level variable of a `.rasp`
    /// program) as the output s-op instead of the one its `compile(...)`
    /// declares.
    pub fn load_with_output(spec: &str, output: Option<&str>) -> Result<Program> {
        crate::lang::load::load(spec, output)
    }

    /// Runs `.rasp` program text; `name` names it in messages (a file name).
    pub fn from_rasp(name: &str, text: &str) -> Result<Program> {
        let file = Arc::new(SourceFile { name: name.to_string(), text: text.to_string() });
        crate::lang::load::load_source(file, None)
    }

    /// Reads a program in the JSON interchange format (docs/PROGRAM_FORMAT.md);
    /// `origin` names it in messages.
    pub fn from_json(origin: &str, text: &str) -> Result<Program> {
        crate::rasp::json::from_json(text, origin)
    }

    /// The program in the JSON interchange format, every function tabulated
    /// over the value sets of `settings`.
    pub fn to_json(&self, settings: &Settings) -> Result<String> {
        crate::rasp::json::to_json(self, Some(settings))
    }

    /// The interpreter's output on the inputs verification would check at
    /// `settings`: every input when there are at most
    /// [`crate::verify::EXHAUSTIVE_LIMIT`], else a seeded sample. Functions
    /// are tabulated first, so this is fast.
    pub fn reference_io(&self, settings: &Settings, options: &VerifyOptions) -> Result<Vec<IoPair>> {
        check_settings(settings)?;
        let vs = crate::rasp::valueset::infer(self, &settings.vocab, settings.max_seq_len)?;
        let tabulated = crate::rasp::valueset::tabulate(self, &vs)?;
        io_pairs(&tabulated, settings, options)
    }

    /// The settings to compile at: the program's own (from its
    /// `compile(...)` line), each overridden by the argument given. The vocab
    /// is sorted and deduplicated.
    pub fn settings_with(
        &self,
        vocab: Option<Vec<Value>>,
        max_seq_len: Option<usize>,
        causal: Option<bool>,
    ) -> Result<Settings> {
        let own = self.settings.as_ref();
        let mut vocab = match vocab {
            Some(v) => v,
            None => own
                .map(|s| s.vocab.clone())
                .ok_or_else(|| Error::usage(format!("{} declares no vocab: pass --vocab", self.name)))?,
        };
        vocab.sort();
        vocab.dedup();
        let max_seq_len = max_seq_len
            .or(own.map(|s| s.max_seq_len))
            .ok_or_else(|| Error::usage(format!("{} declares no max_seq_len: pass --max-seq-len", self.name)))?;
        let causal = causal.or(own.map(|s| s.causal)).unwrap_or(false);
        let settings = Settings { vocab, max_seq_len, causal };
        check_settings(&settings)?;
        Ok(settings)
    }

    /// Runs the program in the RASP interpreter (the ground truth) on one
    /// input, with causal (prefix-only) semantics when `causal`.
    pub fn evaluate(&self, input: &[Value], causal: bool) -> Result<Vec<Value>> {
        Ok(crate::rasp::interp::evaluate(self, input, causal)?.output().to_vec())
    }
}

/// One input (no BOS) and the interpreter's output on it.
pub type IoPair = (Vec<Value>, Vec<Value>);

fn io_pairs(tabulated: &Program, settings: &Settings, options: &VerifyOptions) -> Result<Vec<IoPair>> {
    // the pairs are held at once, so the token budget applies as to verification
    options.check_for(&settings.vocab, settings.max_seq_len)?;
    let (inputs, _) = crate::verify::inputs_for(&settings.vocab, settings.max_seq_len, options);
    inputs
        .into_iter()
        .map(|input| {
            let output = crate::rasp::interp::evaluate(tabulated, &input, settings.causal)?.output().to_vec();
            Ok((input, output))
        })
        .collect()
}

/// Which layer allocator to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AllocatorKind {
    /// Optimal allocation by integer linear programming (never more layers
    /// than Tracr's heuristic).
    #[default]
    Ilp,
    /// Tracr's longest-path allocation: the baseline.
    Heuristic,
}

/// How to compile: the allocator, what it minimises, and which optimisations
/// run. `CompileOptions::default()` is what `tracr-opt compile` does without
/// flags; [`CompileOptions::baseline`] is Tracr's layout.
#[derive(Clone, Debug, PartialEq)]
pub struct CompileOptions {
    /// The layer allocator.
    pub allocator: AllocatorKind,
    /// What the ILP minimises, in order (ties broken by the next). None: the
    /// default, `layers,width,params` with residual sharing and
    /// `layers,params` without.
    pub minimise: Option<Vec<Objective>>,
    /// Seconds the ILP solver may take before it returns its best allocation.
    pub time_limit_secs: f64,
    /// Write the ILP in LP format to this file.
    pub emit_lp: Option<PathBuf>,
    /// Heads at their true rank, MLPs without dead or duplicate neurons.
    pub factorise: bool,
    /// Graph rewrites (cse, folding, fusion), rule tables and head sharing.
    /// False turns all of them off, whatever the switches below say.
    pub rewrites: bool,
    /// Merge structurally identical s-ops and selectors.
    pub cse: bool,
    /// Write functions of tokens (or positions) alone with the embeddings.
    pub fold: bool,
    /// Fuse chains of element-wise s-ops into one MLP.
    pub fuse: bool,
    /// Widest MLP fusion may create (None: the widest the program needs).
    pub max_mlp_width: Option<usize>,
    /// Categorical SequenceMaps as one neuron per (input value, output value)
    /// rule instead of one per input pair.
    pub rule_tables: bool,
    /// One head for aggregates of a layer that share their attention pattern.
    pub share_heads: bool,
    /// Reuse the residual dimensions of dead s-ops.
    pub share_residual: bool,
    /// Split an MLP's neurons across the MLP sublayers between its inputs
    /// and its readers where that narrows the widest MLP (ILP allocator
    /// only; [`crate::compiler::spread`]).
    pub spread_neurons: bool,
    /// Turn the residual basis by the random orthogonal rotation of this
    /// seed (exact; for tools that assume a privileged basis). None: the
    /// compiler's basis, one labelled direction per dimension.
    pub rotate: Option<u64>,
    /// Refuse, before building it, a model estimated to take more than this
    /// many GB (10⁹ bytes) of f64 weights in memory
    /// ([`crate::compiler::estimate`]); None: no limit. Default
    /// [`DEFAULT_MAX_WEIGHTS_GB`].
    pub max_weights_gb: Option<f64>,
}

/// The default size limit: 4 GB of weights in memory (half that written as f32).
pub const DEFAULT_MAX_WEIGHTS_GB: f64 = 4.0;

impl Default for CompileOptions {
    fn default() -> CompileOptions {
        CompileOptions {
            allocator: AllocatorKind::Ilp,
            minimise: None,
            time_limit_secs: 5.0,
            emit_lp: None,
            factorise: true,
            rewrites: true,
            cse: true,
            fold: true,
            fuse: true,
            max_mlp_width: None,
            rule_tables: true,
            share_heads: true,
            share_residual: true,
            spread_neurons: true,
            rotate: None,
            max_weights_gb: Some(DEFAULT_MAX_WEIGHTS_GB),
        }
    }
}

impl CompileOptions {
    /// Tracr's layout: its heuristic allocation and no optimisation.
    pub fn baseline() -> CompileOptions {
        CompileOptions {
            allocator: AllocatorKind::Heuristic,
            factorise: false,
            rewrites: false,
            share_residual: false,
            spread_neurons: false,
            ..CompileOptions::default()
        }
    }

    /// The optimisation switches as the compiler takes them.
    pub fn passes(&self) -> Options {
        Options {
            factorise: self.factorise,
            // without rewrites only the joint-selector rewrite runs: it is
            // what makes `|` over different s-ops compilable at all
            rewrite: Some(if self.rewrites {
                RewriteOptions { cse: self.cse, fold: self.fold, fuse: self.fuse, max_mlp_width: self.max_mlp_width }
            } else {
                RewriteOptions::none()
            }),
            rule_tables: self.rewrites && self.rule_tables,
            share_heads: self.rewrites && self.share_heads,
            share_residual: self.share_residual,
            spread: self.spread_neurons,
            max_weight_bytes: self.max_weights_gb.map(|gb| (gb * 1e9).min(u64::MAX as f64) as u64),
        }
    }

    /// The allocator, after checking that the options fit together.
    pub fn allocator(&self) -> Result<Box<dyn Allocator>> {
        Ok(match self.allocator {
            AllocatorKind::Heuristic => {
                if self.emit_lp.is_some() || self.minimise.is_some() {
                    return Err(Error::usage(
                        "--minimise and --emit-lp need the ILP allocator (drop --allocator heuristic)",
                    ));
                }
                Box::new(Heuristic)
            }
            AllocatorKind::Ilp => {
                let t = self.time_limit_secs;
                if !(t > 0.0 && t <= MAX_TIME_LIMIT_SECS) {
                    return Err(Error::usage(format!(
                        "--time-limit must be a positive number of seconds, at most {MAX_TIME_LIMIT_SECS} (got {t:?})"
                    )));
                }
                let objectives = match &self.minimise {
                    Some(list) if list.is_empty() => return Err(Error::usage("--minimise lists no objective")),
                    Some(list) => list.clone(),
                    None if self.share_residual => vec![Objective::Layers, Objective::Width, Objective::Params],
                    None => vec![Objective::Layers, Objective::Params],
                };
                if !self.share_residual && objectives.contains(&Objective::Width) {
                    return Err(Error::usage("--minimise width needs residual sharing (drop --no-share-residual)"));
                }
                Box::new(Ilp { objectives, time_limit: t, emit_lp: self.emit_lp.clone() })
            }
        })
    }
}

/// Compiles `program` at `settings` into a transformer. The model is not yet
/// verified: call [`Compiled::verify`].
pub fn compile(program: &Program, settings: &Settings, options: &CompileOptions) -> Result<Compiled> {
    check_settings(settings)?;
    if let Some(gb) = options.max_weights_gb.filter(|gb| !(gb.is_finite() && *gb > 0.0)) {
        return Err(Error::usage(format!("--max-weights-gb must be a positive number of GB (got {gb:?})")));
    }
    let allocator = options.allocator()?;
    let mut compiled = crate::compiler::compile(program, settings, allocator.as_ref(), &options.passes())?;
    if let Some(seed) = options.rotate {
        let started = std::time::Instant::now();
        compiled.model = crate::model::project::rotate(&compiled.model, seed);
        compiled.model.meta.compile_flags["rotate"] = seed.into();
        compiled.stage_ms.push(("rotate", started.elapsed().as_secs_f64() * 1e3));
    }
    Ok(compiled)
}

/// How to verify: every input when there are at most
/// [`crate::verify::EXHAUSTIVE_LIMIT`], else `samples` seeded random inputs.
pub type VerifyOptions = Plan;

impl Default for Plan {
    fn default() -> Plan {
        Plan { samples: 2000, seed: 0, threads: 0 }
    }
}

impl Plan {
    /// [`Plan::check`], and refuses a check of more than
    /// [`crate::verify::MAX_VERIFY_TOKENS`] input tokens over this vocab up
    /// to this length, naming the `--samples` that would fit.
    pub fn check_for(&self, vocab: &[Value], max_seq_len: usize) -> Result<()> {
        use crate::verify::{Inputs, MAX_VERIFY_TOKENS};
        self.check()?;
        let inputs = Inputs::new(vocab, max_seq_len, self);
        if inputs.tokens() <= MAX_VERIFY_TOKENS {
            return Ok(());
        }
        // exhaustive checks hold at most EXHAUSTIVE_TOKEN_LIMIT tokens, under
        // this budget: only a sample can be over it
        let what = format!("{} random inputs of {} tokens on average", self.samples, max_seq_len.div_ceil(2));
        let fits = (MAX_VERIFY_TOKENS * 2 / (max_seq_len as u128 + 1)) as usize;
        Err(Error::usage(format!(
            "verifying at max_seq_len {max_seq_len} would check {what}, about {} tokens, over the limit of {MAX_VERIFY_TOKENS}; pass --samples {fits} (or fewer), or --no-verify",
            inputs.tokens()
        )))
    }

    /// Refuses a sample size of 0 or beyond [`MAX_SAMPLES`] (before anything is drawn).
    pub fn check(&self) -> Result<()> {
        if self.samples == 0 {
            return Err(Error::usage("--samples must be at least 1 (use --no-verify to skip verification)"));
        }
        if self.samples > MAX_SAMPLES {
            return Err(Error::usage(format!("--samples {} is over the limit of {MAX_SAMPLES}", self.samples)));
        }
        Ok(())
    }
}

impl Compiled {
    /// Checks the model against the interpreter (on the program as written,
    /// before rewrites), and measures how far its logits moved from the
    /// unoptimised model's.
    pub fn verify(&self, options: &VerifyOptions) -> Result<Report> {
        self.model.verify_against(&self.tabulated, options, self.reference()?)
    }

    /// [`Compiled::verify`], calling `progress(done, total)` as inputs are checked.
    pub fn verify_with(&self, options: &VerifyOptions, progress: &(dyn Fn(usize, usize) + Sync)) -> Result<Report> {
        self.model.verify_against_with(&self.tabulated, options, self.reference()?, progress)
    }

    /// Verifies, and fails with the first disagreements when there are any.
    pub fn verified(&self, options: &VerifyOptions) -> Result<Report> {
        let report = self.verify(options)?;
        if !report.ok() {
            return Err(Error::program(format!(
                "the compiled model of '{}' disagrees with the interpreter on {} of {} inputs",
                self.model.meta.program, report.mismatches, report.inputs
            )));
        }
        Ok(report)
    }

    /// Writes the model directory (docs/EXPORT_FORMAT.md) atomically.
    pub fn save(&self, dir: &Path, dtype: DType) -> Result<()> {
        self.model.save(dir, dtype)
    }

    /// The interpreter's outputs on the inputs [`Compiled::verify`] checks
    /// (see [`Program::reference_io`]).
    pub fn reference_io(&self, options: &VerifyOptions) -> Result<Vec<IoPair>> {
        let c = &self.model.config;
        let settings = Settings { vocab: self.model.vocab()?, max_seq_len: c.n_ctx - 1, causal: c.causal };
        io_pairs(&self.tabulated, &settings, options)
    }

    /// What `tracr-opt compile --json` prints: the model's shape and size,
    /// its residual layout, per-stage times, the verification report (when
    /// given), head ranks, layer structure and the allocation's optimality.
    pub fn summary_json(&self, report: Option<&Report>) -> serde_json::Value {
        let m = &self.model;
        let c = &m.config;
        let (compile_ms, stages) = (self.total_ms(), &self.stage_ms);
        let mut j = serde_json::json!({
            "program": m.meta.program,
            "allocator": m.meta.allocator,
            "causal": c.causal,
            "max_seq_len": c.n_ctx - 1,
            "layers": c.n_layers,
            "d_model": c.d_model,
            "d_model_lower_bound": m.meta.residual.as_ref().map(|r| r.d_model_lower_bound),
            "d_model_bound_any_allocation": m.meta.residual.as_ref().and_then(|r| r.d_model_bound_any_allocation),
            "rotated": m.meta.rotation.as_ref().map(|r| r.seed),
            "residual": m.meta.residual.as_ref().map(|r| serde_json::json!({
                "shared": r.shared,
                "d_model_unshared": r.d_model_unshared,
                "gap": c.d_model.saturating_sub(r.d_model_lower_bound),
                "d_model_live_peak": r.d_model_live_peak,
                "erase_neurons": r.erase_neurons,
                "free_erasures": r.free_erasures,
            })),
            "n_heads": c.n_heads,
            "d_head": c.d_head,
            "d_mlp": c.d_mlp,
            "params": m.params(),
            "nonzero_params": m.nonzero_params(),
            "estimate": serde_json::to_value(&self.estimate).unwrap_or_default(),
            "compile_ms": compile_ms,
            "stage_ms": stages.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
            "verified": report.map(Report::summary_json),
            "qk_ranks": m.meta.layers.iter().map(|l| l.heads.iter().map(|h| h.qk_rank).collect::<Vec<_>>()).collect::<Vec<_>>(),
            "ov_ranks": m.meta.layers.iter().map(|l| l.heads.iter().map(|h| h.ov_rank).collect::<Vec<_>>()).collect::<Vec<_>>(),
            "rotated_heads": m.meta.layers.iter().enumerate().flat_map(|(l, info)| info.heads.iter().filter(|h| h.qk_basis == crate::compiler::craft::Basis::Svd || h.ov_basis == crate::compiler::craft::Basis::Svd).map(move |h| format!("L{l} {} ({})", h.node, h.role))).collect::<Vec<_>>(),
            "layer_structure": m.meta.layers.iter().map(|l| serde_json::json!({
                "heads": l.heads.iter().map(|h| format!("{} ({})", h.node, h.role)).collect::<Vec<_>>(),
                "mlp_hidden": l.mlp_width(),
                "mlps": l.mlps.iter().map(|x| format!("{} ({}, {})", x.node, x.role, x.hidden)).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        if let Some(info) = &self.allocation.info {
            j["optimal"] = info.optimal.into();
            j["stopped_by"] = info.stopped_by.clone().into();
            j["gap"] = info.gap.into();
            // {objective: value} in stage order
            let by_objective = |pairs: &[(String, f64)]| -> serde_json::Value {
                pairs
                    .iter()
                    .map(|(o, v)| (o.clone(), serde_json::Value::from(*v)))
                    .collect::<serde_json::Map<_, _>>()
                    .into()
            };
            j["bounds"] = by_objective(&info.bounds);
            j["gaps"] = by_objective(&info.gaps);
            j["solve_ms"] = info.solve_ms.into();
            j["objectives"] = info.objectives.clone().into();
            j["solver"] = crate::compiler::alloc::lp::SOLVER.into();
            j["spread"] = match &self.spread {
                Some(s) => serde_json::json!({
                    "d_mlp_before": s.d_mlp.0,
                    "d_mlp_after": s.d_mlp.1,
                    "split": s.split.iter().map(|(node, parts)| serde_json::json!({
                        "node": self.compiled_program.nodes[*node].label,
                        "parts": parts.iter().map(|(layer, neurons)| serde_json::json!({"layer": layer, "neurons": neurons})).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                }),
                None => serde_json::Value::Null,
            };
        }
        j
    }
}

impl Model {
    /// Loads a model directory written by [`Model::save`] (or `compile --out`).
    pub fn load(dir: &Path) -> Result<Model> {
        if !dir.is_dir() {
            return Err(Error::usage(format!(
                "{} is not a model directory (write one with `tracr-opt compile PROGRAM --out DIR`)",
                dir.display()
            )));
        }
        crate::model::io::load(dir)
    }

    /// Writes the model directory atomically: `model.safetensors`,
    /// `config.json` and `tracr_opt.json`.
    pub fn save(&self, dir: &Path, dtype: DType) -> Result<()> {
        crate::model::io::save(self, dir, dtype)
    }

    /// Runs the model on one input (BOS is added) and decodes its output at
    /// every position, as the interpreter would give it.
    pub fn apply(&self, input: &[Value]) -> Result<Vec<Value>> {
        let runner = Runner::new(self)?;
        Ok(runner.run(&runner.encode(input)?).into_iter().map(|(v, _)| v).collect())
    }

    /// A runner for many forward passes (the weights prepared once).
    pub fn runner(&self) -> Result<Runner<'_>> {
        Runner::new(self)
    }

    /// Checks the model against `program`'s interpreter on the inputs
    /// `options` chooses; with a `reference` model, also measures the largest
    /// logit difference from it.
    pub fn verify_against(
        &self,
        program: &Program,
        options: &VerifyOptions,
        reference: Option<&Model>,
    ) -> Result<Report> {
        self.verify_against_with(program, options, reference, &|_, _| {})
    }

    /// [`Model::verify_against`], calling `progress(done, total)` as inputs
    /// are checked (about every 256 per thread; for a progress bar).
    pub fn verify_against_with(
        &self,
        program: &Program,
        options: &VerifyOptions,
        reference: Option<&Model>,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Report> {
        let vocab = self.vocab()?;
        options.check_for(&vocab, self.config.n_ctx - 1)?;
        let started = std::time::Instant::now();
        let inputs = crate::verify::Inputs::new(&vocab, self.config.n_ctx - 1, options);
        let total = inputs.len();
        let done = std::sync::atomic::AtomicUsize::new(0);
        let step = |n: usize| {
            let d = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
            progress(d.min(total), total);
        };
        let mut report = Report { exhaustive: inputs.exhaustive, min_margin: f64::INFINITY, ..Report::default() };
        for batch in inputs.batches() {
            report.absorb(crate::verify::verify_with(self, program, &batch, inputs.exhaustive, options.threads, &step));
            if let Some(r) = reference {
                let diff = crate::verify::max_logit_difference(self, r, &batch, options.threads)?;
                report.max_diff_from_unoptimised = Some(report.max_diff_from_unoptimised.unwrap_or(0.0).max(diff));
            }
        }
        report.ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(report)
    }
}
