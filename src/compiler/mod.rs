//! The compiler: program → value sets → blocks → layer allocation → weights.
//! Each stage is a module; docs/ARCHITECTURE.md describes the data between them.

pub mod alloc;
pub mod assemble;
pub mod circuit;
pub mod craft;
pub mod estimate;
pub mod factorise;
pub mod graph;
pub mod lower;
pub mod residual;
pub mod rewrite;
pub mod spread;

use crate::diagnostic::Result;
use crate::model::Model;
use crate::rasp::valueset::{infer, tabulate};
use crate::rasp::{Program, Settings};
use alloc::Allocator;
use std::time::Instant;

/// Which optimisations run (all on by default).
#[derive(Clone, Debug)]
pub struct Options {
    /// Heads at their true rank, MLPs without dead or duplicate neurons.
    pub factorise: bool,
    /// Graph rewrites before lowering (`rewrite.rs`). `RewriteOptions::none()`
    /// still runs the joint-selector rewrite, without which `|` over
    /// different s-ops cannot compile; None skips even that.
    pub rewrite: Option<rewrite::RewriteOptions>,
    /// Categorical SequenceMaps as rule tables (`lower::rule_table`).
    pub rule_tables: bool,
    /// One head for aggregates of one layer with the same attention pattern.
    pub share_heads: bool,
    /// Residual dimensions reused once their direction is dead (`residual.rs`).
    pub share_residual: bool,
    /// Split MLP blocks across the MLP sublayers their inputs and readers
    /// leave free where that narrows the widest MLP (`spread.rs`; ILP
    /// allocations only).
    pub spread: bool,
    /// Refuse, before lowering, a program whose model is estimated
    /// (`estimate.rs`) to take more bytes of weights than this. None: no limit.
    pub max_weight_bytes: Option<u64>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            factorise: true,
            rewrite: Some(rewrite::RewriteOptions::all()),
            rule_tables: true,
            share_heads: true,
            share_residual: true,
            spread: true,
            max_weight_bytes: None,
        }
    }
}

impl Options {
    /// No optimisation: Tracr's layout (the baseline). Only the
    /// joint-selector rewrite runs (it changes nothing in programs Tracr
    /// compiles).
    pub fn none() -> Options {
        Options {
            factorise: false,
            rewrite: Some(rewrite::RewriteOptions::none()),
            rule_tables: false,
            share_heads: false,
            share_residual: false,
            spread: false,
            max_weight_bytes: None,
        }
    }

    /// Every optimisation except the graph-level ones (rewrites, rule
    /// tables, head sharing): to measure what those add.
    pub fn without_rewrites() -> Options {
        Options {
            rewrite: Some(rewrite::RewriteOptions::none()),
            rule_tables: false,
            share_heads: false,
            ..Options::default()
        }
    }
}

/// What a compile produced, with how long each stage took.
pub struct Compiled {
    /// The model.
    pub model: Model,
    /// What assembles the reference model on demand ([`Compiled::reference`]).
    reference_parts: Option<ReferenceParts>,
    /// The reference model, once assembled.
    reference: std::sync::OnceLock<Model>,
    /// What factorisation did, when it ran.
    pub factorise: Option<factorise::Stats>,
    /// What the graph rewrites did, in order.
    pub rewrites: Vec<rewrite::Rewrite>,
    /// The sublayer of every block (after neuron spreading).
    pub allocation: alloc::Allocation,
    /// What neuron spreading split, when it narrowed the model.
    pub spread: Option<spread::Spread>,
    /// Which residual dimension each direction took.
    pub layout: residual::Layout,
    /// The program as given, every function tabulated (fast to interpret):
    /// what the model is verified against.
    pub tabulated: Program,
    /// The program the model was built from (after rewrites).
    pub compiled_program: Program,
    /// Milliseconds per stage, in order.
    pub stage_ms: Vec<(&'static str, f64)>,
    /// The size estimated before lowering (what the size limit is checked against).
    pub estimate: estimate::Estimate,
}

/// The blocks as lowered and the unshared layout they are placed on: all the
/// reference model needs beyond the compile's own settings. Kept instead of
/// the model itself, which is as large as the compiled one (1 GB of f64 for
/// sort at max_seq_len 256) and only verification reads.
struct ReferenceParts {
    lowered: lower::Lowered,
    layout: residual::Layout,
    settings: Settings,
    allocator: &'static str,
    flags: serde_json::Value,
    share_heads: bool,
    /// The allocation of `lowered`'s blocks (before neuron spreading).
    allocation: alloc::Allocation,
}

impl Compiled {
    /// The same allocation assembled from the blocks as lowered (before the
    /// block-level optimisations), one residual dimension per direction, to
    /// measure what they changed. None when no such optimisation ran.
    /// Assembled on the first call (it costs what assembling the model did).
    pub fn reference(&self) -> Result<Option<&Model>> {
        let Some(parts) = &self.reference_parts else { return Ok(None) };
        if let Some(m) = self.reference.get() {
            return Ok(Some(m));
        }
        let (model, _) = assemble::assemble(assemble::AssembleInput {
            program: &self.compiled_program,
            settings: &parts.settings,
            lowered: &parts.lowered,
            blocks: &parts.lowered.blocks,
            allocation: &parts.allocation,
            layout: &parts.layout,
            allocator: parts.allocator,
            compile_flags: parts.flags.clone(),
            share_heads: parts.share_heads,
            factorise: false,
        })?;
        Ok(Some(self.reference.get_or_init(|| model)))
    }

    /// Milliseconds in all.
    pub fn total_ms(&self) -> f64 {
        self.stage_ms.iter().map(|(_, ms)| ms).sum()
    }
}

/// Runs the whole pipeline with an allocator and pass switches of your choice (`crate::compile` picks them from `CompileOptions`).
pub fn compile(
    program: &Program,
    settings: &Settings,
    allocator: &dyn Allocator,
    options: &Options,
) -> Result<Compiled> {
    let mut stage_ms = Vec::new();
    let mut t = Instant::now();
    let mut lap = |name: &'static str, t: &mut Instant| {
        stage_ms.push((name, t.elapsed().as_secs_f64() * 1e3));
        *t = Instant::now();
    };
    let vs = infer(program, &settings.vocab, settings.max_seq_len)?;
    let tabulated = tabulate(program, &vs)?;
    lap("value_sets", &mut t);
    let (program, vs, rewrites) = match &options.rewrite {
        Some(r) => {
            let out = rewrite::rewrite(&tabulated, &vs, settings, r)?;
            lap("rewrite", &mut t);
            out
        }
        None => (tabulated.clone(), vs, vec![]),
    };
    let lower_opts = lower::LowerOptions {
        embed_maps: options.rewrite.as_ref().is_some_and(|r| r.fold),
        rule_tables: options.rule_tables,
        live_steps_only: options.factorise,
    };
    let estimate = estimate::estimate(&program, &vs, settings, lower_opts.embed_maps);
    if let Some(limit) = options.max_weight_bytes.filter(|limit| estimate.bytes() > *limit) {
        return Err(too_large(&program, settings, &estimate, limit));
    }
    let mut lowered = lower::lower(&program, &vs, settings, &lower_opts)?;
    lap("lower", &mut t);
    let (as_lowered, factorise) = if options.factorise {
        let before = lowered.blocks.clone();
        let stats = factorise::run(&mut lowered.blocks, &program, &vs);
        lap("factorise", &mut t);
        (Some(before), Some(stats))
    } else {
        (None, None)
    };
    let out_width = match &lowered.output {
        lower::OutputDecoder::Categorical(v) => v.len().max(1),
        lower::OutputDecoder::Numerical(_) => 1,
    };
    let uses = residual::uses(&lowered);
    let costs = alloc::Costs::from_lowered(
        &lowered,
        &uses,
        settings.vocab.len() + 2,
        settings.max_seq_len + 1,
        out_width,
        options.share_residual,
        options.share_heads,
    );
    let mut allocation = allocator.allocate(&program, &lowered, &costs)?;
    allocation.validate(&lowered.blocks)?;
    lap("allocate", &mut t);
    // the reference model is assembled from the blocks as lowered, on this allocation
    let reference_allocation = allocation.clone();
    let mut spread = None;
    let mut before_spread = None;
    if options.spread && allocator.name() == "ilp" {
        if let Some((spread_lowered, spread_allocation, report)) =
            spread::spread(&lowered, &allocation, options.share_residual)?
        {
            spread_allocation.validate(&spread_lowered.blocks)?;
            before_spread = Some(std::mem::replace(&mut lowered, spread_lowered).blocks);
            allocation = spread_allocation;
            spread = Some(report);
        }
        lap("spread", &mut t);
    }
    let uses = if spread.is_some() { residual::uses(&lowered) } else { uses };
    let layout = if options.share_residual {
        residual::Layout::shared(&lowered, &uses, &allocation)
    } else {
        residual::Layout::unshared(&lowered, &uses, &allocation)
    };
    lap("residual", &mut t);
    let flags = serde_json::json!({
        "vocab": settings.vocab.iter().map(crate::rasp::json::value_to_json).collect::<Result<Vec<_>>>()?,
        "max_seq_len": settings.max_seq_len,
        "causal": settings.causal,
        "allocator": allocator.name(),
        "factorise": options.factorise,
        "rewrite": options.rewrite.as_ref().map(|r| serde_json::json!({
            "cse": r.cse, "fold": r.fold, "fuse": r.fuse, "max_mlp_width": r.max_mlp_width,
        })),
        "rule_tables": options.rule_tables,
        "share_heads": options.share_heads,
        "share_residual": options.share_residual,
        "spread_neurons": options.spread,
    });
    let assemble = |blocks: &[craft::Block], factorised: bool, layout: &residual::Layout| {
        assemble::assemble(assemble::AssembleInput {
            program: &program,
            settings,
            lowered: &lowered,
            blocks,
            allocation: &allocation,
            layout,
            allocator: allocator.name(),
            compile_flags: flags.clone(),
            share_heads: options.share_heads,
            factorise: factorised,
        })
    };
    let (mut model, placement) = assemble(&lowered.blocks, options.factorise, &layout)?;
    model.meta.source = tabulated.source.as_deref().map(str::to_string);
    if let (Some(r), Some(info)) = (model.meta.residual.as_mut(), &allocation.info) {
        r.d_model_bound_any_allocation = bound_any_allocation(info, r.shared);
    }
    model.circuit = Some(circuit::build(&circuit::CircuitInput {
        original: &tabulated,
        compiled: &program,
        rewrites: &rewrites,
        lowered: &lowered,
        layout: &layout,
        placement: &placement,
        config: &model.config,
    }));
    lap("assemble", &mut t);
    // the reference: blocks as lowered, one dimension per direction
    let reference_parts = if options.factorise || options.share_residual || spread.is_some() {
        // before factorisation, or else before spreading (indexed as the
        // allocation was before spreading)
        if let Some(blocks) = as_lowered.or(before_spread) {
            lowered.blocks = blocks;
        }
        let uses = residual::uses(&lowered);
        let layout = residual::Layout::unshared(&lowered, &uses, &reference_allocation);
        Some(ReferenceParts {
            lowered,
            layout,
            allocation: reference_allocation,
            settings: settings.clone(),
            allocator: allocator.name(),
            flags,
            share_heads: options.share_heads,
        })
    } else {
        None
    };
    Ok(Compiled {
        model,
        reference_parts,
        reference: std::sync::OnceLock::new(),
        factorise,
        rewrites,
        allocation,
        spread,
        layout,
        tabulated,
        compiled_program: program,
        stage_ms,
        estimate,
    })
}

/// The refusal of a model over the size limit, with the estimate and how to lift it.
fn too_large(p: &Program, settings: &Settings, e: &estimate::Estimate, limit: u64) -> crate::diagnostic::Error {
    let gb = |bytes: u64| bytes as f64 / 1e9;
    crate::diagnostic::Error::usage(format!(
        "the model of '{}' at max_seq_len {} is estimated at {:.1} GB of weights ({} parameters: {} layer(s), d_model {}, {} head(s) of width {}, d_mlp {}), over the limit of {:.1} GB; raise it with --max-weights-gb {} (Python: max_weights_gb={}), or use a shorter max_seq_len or a smaller vocab",
        p.name,
        settings.max_seq_len,
        gb(e.bytes()),
        e.params,
        e.layers,
        e.d_model,
        e.n_heads,
        e.d_head,
        e.d_mlp,
        gb(limit),
        gb(e.bytes()).ceil(),
        gb(e.bytes()).ceil(),
    ))
}

/// The least held peak of any allocation with the model's layer count: the
/// width stage's bound, when the allocator minimised layers, then width
/// (with any other order the width stage's bound holds only given the
/// stages before it).
fn bound_any_allocation(info: &alloc::SolveInfo, shared: bool) -> Option<usize> {
    let first_two: Vec<&str> = info.objectives.iter().take(2).map(String::as_str).collect();
    if !shared || first_two != ["layers", "width"] {
        return None;
    }
    let (_, b) = info.bounds.iter().find(|(o, _)| o == "width")?;
    Some((b - 1e-6).ceil().max(0.0) as usize)
}
