//! Layer allocation: which sublayer each block goes to. Attention sublayers are
//! the even ones (2l), MLP sublayers the odd ones (2l + 1); a block comes
//! strictly after every block it reads from.

pub mod heuristic;
pub mod ilp;
pub mod lp;
mod search;
mod stage;

use super::craft::{Block, BlockKind, Dir};
use super::lower::Lowered;
use crate::diagnostic::{Error, Result};
use crate::rasp::Program;
pub use ilp::Costs;
use std::collections::BTreeMap;

/// How an optimising allocator's solve went.
#[derive(Clone, Debug, PartialEq)]
pub struct SolveInfo {
    /// Every objective proven optimal.
    pub optimal: bool,
    /// The largest of `gaps` (0 when optimal).
    pub gap: f64,
    /// Per objective solved by a stage, in order: the relative gap of its
    /// value to its lower bound given the values the stages before it kept
    /// (0 when proven optimal).
    pub gaps: Vec<(String, f64)>,
    /// Per objective solved by a stage, in order: its proven lower bound
    /// (given the stages before it), in its own units: dimensions, heads,
    /// hidden units, dense parameters. Equal to the value when optimal.
    pub bounds: Vec<(String, f64)>,
    /// Solver time in milliseconds.
    pub solve_ms: f64,
    /// The objectives minimised, in order.
    pub objectives: Vec<String>,
    /// Why the search stopped before proving every objective optimal
    /// (the time limit, or a model over the size limit); None when it did
    /// not stop early.
    pub stopped_by: Option<String>,
}

impl SolveInfo {
    /// The info of an allocation found without search (proven optimal at once).
    pub fn trivial() -> SolveInfo {
        SolveInfo {
            optimal: true,
            gap: 0.0,
            gaps: vec![],
            bounds: vec![],
            solve_ms: 0.0,
            objectives: vec![],
            stopped_by: None,
        }
    }
}

/// A sublayer per block.
#[derive(Clone, Debug, PartialEq)]
pub struct Allocation {
    /// The sublayer of each block (even: attention of layer s/2; odd: its MLP).
    pub sublayer: Vec<usize>,
    /// How the solver did, for allocators that search.
    pub info: Option<SolveInfo>,
    /// When the allocator priced residual erasures (the ILP's stages after
    /// `width`, with sharing): the layer whose MLP erases each direction it
    /// scheduled an erasure for; every other direction holds its dimension
    /// to the end. `residual::Layout::shared` follows it. None: the layout
    /// chooses (solver-models/residual_sharing.md).
    pub erase: Option<BTreeMap<Dir, usize>>,
}

impl Allocation {
    /// Layers the allocation uses.
    pub fn n_layers(&self) -> usize {
        self.sublayer.iter().map(|s| s / 2 + 1).max().unwrap_or(0)
    }

    /// Checks the allocation against the blocks' kinds and order.
    pub fn validate(&self, blocks: &[Block]) -> Result<()> {
        for (i, b) in blocks.iter().enumerate() {
            let s = self.sublayer[i];
            let parity_ok = match b.kind() {
                BlockKind::Attn => s % 2 == 0,
                BlockKind::Mlp => s % 2 == 1,
            };
            if !parity_ok {
                return Err(Error::internal(format!(
                    "block {i} ({}) placed in sublayer {s} of the wrong kind",
                    b.role
                )));
            }
            for a in &b.after {
                if self.sublayer[*a] >= s {
                    return Err(Error::internal(format!("block {i} ({}) placed at {s}, not after block {a}", b.role)));
                }
            }
        }
        Ok(())
    }
}

/// A way to allocate blocks to sublayers.
pub trait Allocator {
    /// The allocator's name (`ilp`, `heuristic`).
    fn name(&self) -> &'static str;
    /// Places every block in a sublayer.
    fn allocate(&self, program: &Program, lowered: &Lowered, costs: &Costs) -> Result<Allocation>;
}
