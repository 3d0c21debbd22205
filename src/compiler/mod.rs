//! The compiler: program → value sets → blocks → layer allocation → weights.
//! Each stage is a module; docs/ARCHITECTURE.md describes the data between them.

pub mod alloc;
pub mod assemble;
pub mod craft;
pub mod factorise;
pub mod graph;
pub mod lower;

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
}

impl Default for Options {
    fn default() -> Options {
        Options { factorise: true }
    }
}

impl Options {
    /// No optimisation: Tracr's layout (the baseline).
    pub fn none() -> Options {
        Options { factorise: false }
    }
}

/// What a compile produced, with how long each stage took.
pub struct Compiled {
    pub model: Model,
    /// The same allocation assembled from the blocks as lowered (before the
    /// block-level optimisations), to measure what they changed. None when
    /// no such optimisation ran.
    pub reference: Option<Model>,
    pub factorise: Option<factorise::Stats>,
    pub allocation: alloc::Allocation,
    /// The program with every function tabulated (fast to interpret).
    pub tabulated: Program,
    pub stage_ms: Vec<(&'static str, f64)>,
}

impl Compiled {
    pub fn total_ms(&self) -> f64 {
        self.stage_ms.iter().map(|(_, ms)| ms).sum()
    }
}

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
    let mut lowered = lower::lower(&tabulated, &vs, settings)?;
    lap("lower", &mut t);
    let (as_lowered, factorise) = if options.factorise {
        let before = lowered.blocks.clone();
        let stats = factorise::run(&mut lowered.blocks, &tabulated, &vs);
        lap("factorise", &mut t);
        (Some(before), Some(stats))
    } else {
        (None, None)
    };
    let out_width = match &lowered.output {
        lower::OutputDecoder::Categorical(v) => v.len().max(1),
        lower::OutputDecoder::Numerical(_) => 1,
    };
    let costs = alloc::Costs::from_lowered(&lowered, settings.vocab.len() + 2, settings.max_seq_len + 1, out_width);
    let allocation = allocator.allocate(&tabulated, &lowered, &costs)?;
    allocation.validate(&lowered.blocks)?;
    lap("allocate", &mut t);
    let flags = serde_json::json!({
        "vocab": settings.vocab.iter().map(crate::rasp::json::value_to_json).collect::<Result<Vec<_>>>()?,
        "max_seq_len": settings.max_seq_len,
        "causal": settings.causal,
        "allocator": allocator.name(),
        "factorise": options.factorise,
    });
    let assemble = |blocks: &[craft::Block]| {
        assemble::assemble(assemble::AssembleInput {
            program: &tabulated,
            settings,
            lowered: &lowered,
            blocks,
            allocation: &allocation,
            allocator: allocator.name(),
            compile_flags: flags.clone(),
        })
    };
    let model = assemble(&lowered.blocks)?;
    lap("assemble", &mut t);
    let reference = as_lowered.map(|b| assemble(&b)).transpose()?;
    Ok(Compiled { model, reference, factorise, allocation, tabulated, stage_ms })
}
