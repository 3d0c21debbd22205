//! Optimal layer allocation as integer linear programs (solver-models/layer_allocation.md).
//!
//! Layers need no ILP: without per-layer capacities, the earliest-legal-sublayer
//! schedule (ASAP) reaches the critical-path lower bound, so its layer count is
//! optimal. The ILPs decide, for a fixed number of layers L, where each block
//! goes within its [ASAP, ALAP] window so that the widest attention layer
//! (heads), the widest MLP layer, or the padded parameter count is smallest.
//! Objectives are solved in order, each stage keeping the previous optima.

use super::stage::{self, parity};
use super::{Allocation, Allocator, SolveInfo};
use crate::compiler::craft::{Block, BlockKind, Body, Dir};
use crate::compiler::lower::Lowered;
use crate::compiler::residual::DirUse;
use crate::diagnostic::{Error, Result};
use crate::rasp::Program;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// What the ILP minimises (one lexicographic stage each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Objective {
    /// Layers.
    Layers,
    /// The most heads in a layer.
    Heads,
    /// The widest MLP layer.
    Mlp,
    /// Dense parameters in the padded layout.
    Params,
    /// Residual width: the most directions held at once (residual sharing).
    Width,
}

impl Objective {
    /// The name `--minimise` takes.
    pub fn name(self) -> &'static str {
        match self {
            Objective::Layers => "layers",
            Objective::Heads => "heads",
            Objective::Mlp => "mlp",
            Objective::Params => "params",
            Objective::Width => "width",
        }
    }

    /// Parses `layers,params` etc.
    pub fn parse_list(s: &str) -> Result<Vec<Objective>> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let o = match part {
                "layers" => Objective::Layers,
                "heads" => Objective::Heads,
                "mlp" => Objective::Mlp,
                "params" => Objective::Params,
                "width" => Objective::Width,
                other => {
                    return Err(Error::usage(format!(
                        "unknown objective '{other}' for --minimise (expected layers, width, heads, mlp, params)"
                    )))
                }
            };
            if out.contains(&o) {
                return Err(Error::usage(format!("--minimise names '{part}' twice")));
            }
            out.push(o);
        }
        if out.is_empty() {
            return Err(Error::usage("--minimise needs at least one objective"));
        }
        Ok(out)
    }
}

/// The optimal allocator (solver-models/layer_allocation.md).
pub struct Ilp {
    /// Objectives in order.
    pub objectives: Vec<Objective>,
    /// Seconds the solver may take before returning its best allocation.
    pub time_limit: f64,
    /// Write the model in LP format here.
    pub emit_lp: Option<PathBuf>,
}

/// What allocation costs, from the model's fixed widths.
#[derive(Clone, Copy, Debug)]
pub struct Costs {
    /// One dimension per direction; with `shared`, the width the allocation
    /// gives replaces it.
    pub d_model: f64,
    /// Residual sharing: d_model is the most directions held at once.
    pub shared: bool,
    /// Head width.
    pub d_head: f64,
    /// Input tokens (vocab + BOS + PAD).
    pub d_vocab: f64,
    /// Positions (max_seq_len + 1).
    pub n_ctx: f64,
    /// Unembedding columns.
    pub d_vocab_out: f64,
    /// Heads of one layer with the same attention pattern become one head
    /// (assembly's head sharing), so the allocation counts them once.
    pub share_heads: bool,
}

impl Costs {
    /// At one residual dimension per direction (before sharing), as
    /// `residual::Layout::unshared` lays them out.
    pub fn from_lowered(
        lowered: &Lowered,
        uses: &[crate::compiler::residual::DirUse],
        d_vocab: usize,
        n_ctx: usize,
        d_vocab_out: usize,
        shared: bool,
        share_heads: bool,
    ) -> Costs {
        Costs {
            d_model: crate::compiler::residual::unshared_dirs(lowered, uses).len() as f64,
            shared,
            d_head: lowered.blocks.iter().map(crate::compiler::assemble::head_width).max().unwrap_or(0).max(1) as f64,
            d_vocab: d_vocab as f64,
            n_ctx: n_ctx as f64,
            d_vocab_out: d_vocab_out as f64,
            share_heads,
        }
    }

    /// The same model with another residual width.
    pub fn with_d_model(self, d_model: f64) -> Costs {
        Costs { d_model, ..self }
    }

    /// Parameters per head in every layer (W_Q, W_K, W_V, W_O and biases).
    pub fn per_head(&self) -> f64 {
        4.0 * self.d_model * self.d_head + 3.0 * self.d_head
    }

    /// Parameters per MLP hidden unit in every layer.
    pub fn per_mlp_unit(&self) -> f64 {
        2.0 * self.d_model + 1.0
    }

    /// Parameters per layer regardless of widths (b_O, b_out).
    pub fn per_layer(&self) -> f64 {
        2.0 * self.d_model
    }

    /// Embeddings and unembedding.
    pub fn fixed(&self) -> f64 {
        (self.d_vocab + self.n_ctx) * self.d_model + self.d_model * self.d_vocab_out + self.d_vocab_out
    }

    /// Dense parameters of a model with these widths (padding to at least one head / unit).
    pub fn params(&self, layers: usize, heads: usize, mlp: usize) -> f64 {
        self.fixed()
            + layers as f64
                * (self.per_head() * heads.max(1) as f64 + self.per_mlp_unit() * mlp.max(1) as f64 + self.per_layer())
    }
}

/// Directions that share writers and readers: they are held over the same
/// positions under any allocation (residual.rs), so the width ILP counts them
/// together.
#[derive(Clone, Debug)]
pub(super) struct Group {
    pub(super) width: usize,
    pub(super) embedded: bool,
    pub(super) output: bool,
    /// Writers that no other writer precedes (the first write is one of them).
    pub(super) writers: Vec<usize>,
    /// Readers that precede no other reader (the last read is one of them).
    pub(super) readers: Vec<usize>,
    /// The directions, in the residual stream's order.
    pub(super) dirs: Vec<Dir>,
    /// New MLP neurons erasing one direction takes: 1 when it is never
    /// negative, else 2 (residual_sharing.md, "Erasure").
    pub(super) erase_cost: usize,
    /// MLP blocks with a neuron that erases each of the directions for free
    /// in the block's layer (`residual::eraser_neurons`).
    pub(super) free: Vec<usize>,
}

/// Directions grouped by what the allocation ILP needs to know of them:
/// first writers, last readers, embedded and output, and what erasing one
/// costs where.
fn groups_of_directions(uses: &[DirUse], blocks: &[Block], erasers: &BTreeMap<Dir, Vec<(usize, usize)>>) -> Vec<Group> {
    // before[b]: every block that must precede b (blocks follow their `after`)
    let mut before: Vec<Vec<bool>> = Vec::with_capacity(blocks.len());
    for b in blocks {
        let mut row = vec![false; blocks.len()];
        for a in &b.after {
            row[*a] = true;
            for (i, v) in before[*a].iter().enumerate() {
                row[i] |= *v;
            }
        }
        before.push(row);
    }
    let mut out: Vec<Group> = Vec::new();
    for u in uses.iter().filter(|u| u.needed()) {
        let writers: Vec<usize> = if u.embedded {
            vec![]
        } else {
            u.writers.iter().copied().filter(|w| !u.writers.iter().any(|v| before[*w][*v])).collect()
        };
        let readers: Vec<usize> = if u.output {
            vec![]
        } else {
            u.readers.iter().copied().filter(|r| !u.readers.iter().any(|q| before[*q][*r])).collect()
        };
        let erase_cost = if u.nonneg { 1 } else { 2 };
        let mut free: Vec<usize> = match erasers.get(&u.dir) {
            Some(found) if u.nonneg => found.iter().map(|(b, _)| *b).collect(),
            _ => vec![],
        };
        free.dedup();
        let same = |g: &Group| {
            g.embedded == u.embedded
                && g.output == u.output
                && g.writers == writers
                && g.readers == readers
                && g.erase_cost == erase_cost
                && g.free == free
        };
        match out.iter_mut().find(|g| same(g)) {
            Some(g) => {
                g.width += 1;
                g.dirs.push(u.dir);
            }
            None => out.push(Group {
                width: 1,
                embedded: u.embedded,
                output: u.output,
                writers,
                readers,
                dirs: vec![u.dir],
                erase_cost,
                free,
            }),
        }
    }
    out
}

/// No allocation holds fewer directions at once than the embeddings write
/// (all held at position 0) or than any block reads (all held when it runs).
fn width_floor(uses: &[DirUse], blocks: &[Block]) -> usize {
    let needed: Vec<&DirUse> = uses.iter().filter(|u| u.needed()).collect();
    let embedded = needed.iter().filter(|u| u.embedded).count();
    let read = (0..blocks.len()).map(|b| needed.iter().filter(|u| u.readers.contains(&b)).count());
    read.max().unwrap_or(0).max(embedded)
}

impl Group {
    /// Held at position `p` (the residual entering sublayer p): written
    /// before p, and not yet erased, which the MLP of the last reader's layer
    /// does: some reader sits in layer ⌊p/2⌋ or later.
    pub(super) fn held(&self, sub: &[usize], p: usize) -> bool {
        let present = self.embedded || self.writers.iter().any(|w| sub[*w] < p);
        present && (self.output || self.readers.iter().any(|r| sub[*r] >= 2 * (p / 2)))
    }
}

/// The shape an allocation gives.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Shape {
    pub layers: usize,
    pub heads: usize,
    pub mlp: usize,
}

/// `share[b]`: the first head with head b's attention pattern when heads
/// are shared (assembly merges those of one layer into one head), else b.
pub(super) fn shape(blocks: &[Block], share: &[usize], sub: &[usize]) -> Shape {
    let layers = sub.iter().map(|s| s / 2 + 1).max().unwrap_or(0);
    let mut heads: Vec<Vec<usize>> = vec![Vec::new(); layers];
    let mut mlp = vec![0usize; layers];
    for (b, (block, s)) in blocks.iter().zip(sub).enumerate() {
        match block.kind() {
            BlockKind::Attn => {
                if !heads[s / 2].contains(&share[b]) {
                    heads[s / 2].push(share[b]);
                }
            }
            BlockKind::Mlp => mlp[s / 2] += block.width(),
        }
    }
    Shape {
        layers,
        heads: heads.into_iter().map(|h| h.len()).max().unwrap_or(0),
        mlp: mlp.into_iter().max().unwrap_or(0),
    }
}

/// Per block, the first head of its share group (itself for MLPs and when
/// heads are not shared): heads with the same attention pattern, in groups
/// whose W_OV widths sum to at most the widest head's width, so that a
/// merged head never widens d_head. Assembly merges the heads of a group
/// that share a layer into one head, and the allocation ILP counts them
/// once, which is then exact: d_head stays what `Costs::d_head` prices.
/// Groups are filled first-fit in block order (deterministic).
pub(crate) fn share_groups(blocks: &[Block], share_heads: bool) -> Vec<usize> {
    let mut out: Vec<usize> = (0..blocks.len()).collect();
    if !share_heads {
        return out;
    }
    let widest = blocks.iter().map(crate::compiler::assemble::head_width).max().unwrap_or(0);
    // (first head, its pattern, W_OV widths so far)
    let mut groups: Vec<(usize, &crate::compiler::craft::Head, usize)> = Vec::new();
    for (b, block) in blocks.iter().enumerate() {
        let Body::Head(h) = &block.body else { continue };
        let w = h.ov_width();
        match groups.iter_mut().find(|(_, g, sum)| g.same_pattern(h) && *sum + w <= widest) {
            Some((first, _, sum)) => {
                *sum += w;
                out[b] = *first;
            }
            None => groups.push((b, h, w)),
        }
    }
    out
}

/// Earliest sublayer of each block (blocks are listed after the blocks they follow).
pub fn asap(blocks: &[Block]) -> Vec<usize> {
    let mut t = vec![0usize; blocks.len()];
    for (i, b) in blocks.iter().enumerate() {
        let after = b.after.iter().map(|a| t[*a] + 1).max().unwrap_or(0);
        t[i] = if after % 2 == parity(b) { after } else { after + 1 };
    }
    t
}

/// Latest sublayer of each block when the model has `layers` layers.
pub(super) fn alap(blocks: &[Block], layers: usize) -> Vec<usize> {
    let last = 2 * layers - 1;
    let mut t: Vec<usize> = blocks.iter().map(|b| if last % 2 == parity(b) { last } else { last - 1 }).collect();
    for i in (0..blocks.len()).rev() {
        for a in &blocks[i].after {
            // callers use layers >= the critical path, so these never go below zero
            let bound = t[i].saturating_sub(1);
            let latest = if bound % 2 == parity(&blocks[*a]) { bound } else { bound.saturating_sub(1) };
            t[*a] = t[*a].min(latest);
        }
    }
    t
}

/// Blocks that are interchangeable (same kind, width, predecessors and
/// successors): ordering them breaks symmetry without losing optima.
fn symmetric_groups(blocks: &[Block], succs: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let key = |i: usize| {
        let mut a = blocks[i].after.clone();
        a.sort();
        (parity(&blocks[i]), blocks[i].width(), a, succs[i].clone())
    };
    let mut seen: Vec<(usize, Vec<usize>, Vec<usize>, usize, usize)> = Vec::new();
    for i in 0..blocks.len() {
        let (p, w, a, s) = key(i);
        if let Some(g) = seen.iter().position(|(gp, ga, gs, gw, _)| *gp == p && *gw == w && *ga == a && *gs == s) {
            let gi = seen[g].4;
            groups[gi].push(i);
        } else {
            seen.push((p, a, s, w, groups.len()));
            groups.push(vec![i]);
        }
    }
    groups.into_iter().filter(|g| g.len() > 1).collect()
}

/// The best allocation of the layer-count search so far.
struct Best {
    rank: Vec<f64>,
    sub: Vec<usize>,
    /// Every stage proven optimal.
    proven: bool,
    gaps: Vec<(Objective, f64)>,
    bounds: Vec<(Objective, f64)>,
    /// The erasures the last priced stage scheduled for `sub`.
    erase: Option<BTreeMap<Dir, usize>>,
}

pub(super) struct Context<'a> {
    pub blocks: &'a [Block],
    /// ASAP sublayer of each block.
    pub early: Vec<usize>,
    /// Interchangeable blocks (symmetry rows).
    pub groups: Vec<Vec<usize>>,
    pub costs: Costs,
    /// Directions grouped by their first writers and last readers.
    pub residual: Vec<Group>,
    /// No allocation holds fewer directions at once.
    pub width_floor: usize,
    /// Heads merged by head sharing ([`share_groups`]).
    pub share: Vec<usize>,
}

impl<'a> Context<'a> {
    /// What every stage model of `lowered`'s blocks needs.
    pub(super) fn new(lowered: &'a Lowered, costs: &Costs) -> Context<'a> {
        let blocks = &lowered.blocks;
        let mut succs = vec![Vec::new(); blocks.len()];
        for (b, block) in blocks.iter().enumerate() {
            for a in &block.after {
                succs[*a].push(b);
            }
        }
        let uses = crate::compiler::residual::uses(lowered);
        Context {
            blocks,
            early: asap(blocks),
            groups: symmetric_groups(blocks, &succs),
            costs: *costs,
            residual: groups_of_directions(&uses, blocks, &crate::compiler::residual::eraser_neurons(lowered)),
            width_floor: width_floor(&uses, blocks),
            share: share_groups(blocks, costs.share_heads),
        }
    }

    /// The d_model an allocation gives.
    pub(super) fn d_model(&self, sub: &[usize]) -> f64 {
        if self.costs.shared {
            self.width(sub) as f64
        } else {
            self.costs.d_model
        }
    }

    /// The width parameters are priced at in a stage: the width a previous
    /// stage fixed, else the warm start's.
    fn stage_d(&self, bounds: &[(Objective, f64)], warm: &[usize]) -> f64 {
        bounds.iter().find(|(o, _)| *o == Objective::Width).map_or_else(|| self.d_model(warm), |(_, v)| *v)
    }

    /// Directions held at once, at most (what residual sharing reaches).
    pub(super) fn width(&self, sub: &[usize]) -> usize {
        let positions = 2 * shape(self.blocks, &self.share, sub).layers + 1;
        (0..positions)
            .map(|p| self.residual.iter().filter(|g| g.held(sub, p)).map(|g| g.width).sum::<usize>())
            .max()
            .unwrap_or(0)
    }

    /// Value of an objective for an allocation, in the LP's units (fixed layers).
    pub(super) fn lp_value(&self, o: Objective, sub: &[usize], d: f64) -> f64 {
        let s = shape(self.blocks, &self.share, sub);
        match o {
            Objective::Layers => s.layers as f64,
            Objective::Heads => s.heads as f64,
            Objective::Mlp => s.mlp as f64,
            Objective::Width => self.width(sub) as f64,
            Objective::Params => {
                let costs = self.costs.with_d_model(d);
                let scale = costs.per_head().max(costs.per_mlp_unit());
                // dense padding: at least one head and one hidden unit
                (costs.per_head() * s.heads.max(1) as f64 + costs.per_mlp_unit() * s.mlp.max(1) as f64) / scale
            }
        }
    }

    /// The relative gap of a stage's value to its lower bound (both in the
    /// model's units), measured on what the objective stands for: the
    /// dense parameter count for `params`.
    pub(super) fn gap(&self, o: Objective, value: f64, bound: f64, d: f64, layers: usize) -> f64 {
        let (value, bound) = (self.in_units(o, value, d, layers), self.in_units(o, bound, d, layers));
        if value > 0.0 {
            ((value - bound) / value).max(0.0)
        } else {
            0.0
        }
    }

    /// A stage's value or bound in the objective's own units (dense
    /// parameters for `params`).
    pub(super) fn in_units(&self, o: Objective, v: f64, d: f64, layers: usize) -> f64 {
        match o {
            Objective::Params => {
                let costs = self.costs.with_d_model(d);
                let scale = costs.per_head().max(costs.per_mlp_unit());
                costs.fixed() + layers as f64 * (costs.per_layer() + v * scale)
            }
            _ => v,
        }
    }

    /// Value of an objective for ranking allocations with different layer counts.
    fn rank(&self, o: Objective, sub: &[usize]) -> f64 {
        let s = shape(self.blocks, &self.share, sub);
        match o {
            Objective::Params => self.costs.with_d_model(self.d_model(sub)).params(s.layers, s.heads, s.mlp),
            _ => self.lp_value(o, sub, self.costs.d_model),
        }
    }
}

impl Allocator for Ilp {
    fn name(&self) -> &'static str {
        "ilp"
    }

    fn allocate(&self, program: &Program, lowered: &Lowered, costs: &Costs) -> Result<Allocation> {
        const TIME: &str = "the time limit";
        let start = Instant::now();
        let deadline = start + std::time::Duration::from_secs_f64(self.time_limit.max(0.0));
        let blocks = &lowered.blocks;
        if blocks.is_empty() {
            return Ok(Allocation { sublayer: vec![], info: Some(SolveInfo::trivial()), erase: None });
        }
        let cx = Context::new(lowered, costs);
        let early = cx.early.clone();
        let floor_costs = if costs.shared { costs.with_d_model(cx.width_floor as f64) } else { *costs };
        let min_layers = early.iter().map(|t| t / 2 + 1).max().unwrap_or(1);
        let mut objectives = self.objectives.clone();
        if !objectives.contains(&Objective::Layers) {
            objectives.push(Objective::Layers); // the final tie-break
        }
        let layer_choices: Vec<usize> = if objectives[0] == Objective::Layers {
            vec![min_layers]
        } else {
            (min_layers..=min_layers + blocks.len()).collect()
        };
        let stages: Vec<Objective> = objectives.iter().copied().filter(|o| *o != Objective::Layers).collect();
        let mut stopped_by: Option<String> = None;
        // Tracr's allocation is the incumbent: the result is never worse
        let incumbent = super::heuristic::Heuristic.allocate(program, lowered, costs)?.sublayer;
        let rank_of = |sub: &[usize]| -> Vec<f64> { objectives.iter().map(|o| cx.rank(*o, sub)).collect() };
        // the best allocation, whether its stages were all proven, and each stage's gap and bound
        let mut best: Option<Best> = None;
        let mut emitted = false;
        // the smallest value each objective can take, at any number of layers
        let widest = blocks.iter().map(Block::width).max().unwrap_or(0);
        let any_attn = blocks.iter().any(|b| b.kind() == BlockKind::Attn);
        for &layers in &layer_choices {
            if let Some(Best { sub: best_sub, .. }) = &best {
                // more layers cannot improve the objectives ranked above layers: stop
                let b = shape(blocks, &cx.share, best_sub);
                let settled = objectives.iter().take_while(|o| **o != Objective::Layers).all(|o| match o {
                    Objective::Heads => b.heads <= any_attn as usize,
                    Objective::Mlp => b.mlp <= widest,
                    Objective::Params => {
                        floor_costs.params(layers, any_attn as usize, widest) >= cx.rank(Objective::Params, best_sub)
                    }
                    Objective::Width => cx.width(best_sub) <= cx.width_floor,
                    Objective::Layers => true,
                });
                if settled {
                    break;
                }
            }
            if Instant::now() >= deadline {
                stopped_by.get_or_insert_with(|| TIME.into());
                break;
            }
            let late = alap(blocks, layers);
            let full: Vec<(usize, usize)> = early.iter().copied().zip(late).collect();
            let variables = cx.variables(layers, objectives.contains(&Objective::Width), &full);
            if variables > MAX_ILP_VARIABLES {
                stopped_by.get_or_insert_with(|| {
                    format!("the model's size ({variables} variables at {layers} layers, over the limit of {MAX_ILP_VARIABLES})")
                });
                break;
            }
            // stages at this number of layers, starting from ASAP
            let mut sub = early.clone();
            let mut bounds: Vec<(Objective, f64)> = Vec::new();
            let mut proven = true;
            let mut gaps: Vec<(Objective, f64)> = Vec::new();
            let mut stage_bounds: Vec<(Objective, f64)> = Vec::new();
            let mut erase: Option<BTreeMap<Dir, usize>> = None;
            for (k, &o) in stages.iter().enumerate() {
                let now = Instant::now();
                if now >= deadline {
                    proven = false;
                    stopped_by.get_or_insert_with(|| TIME.into());
                    break;
                }
                // each remaining stage gets an equal share of the time left
                let share = deadline.saturating_duration_since(now) / (stages.len() - k) as u32;
                let d = cx.stage_d(&bounds, &sub);
                let emit = if emitted { None } else { self.emit_lp.as_deref() };
                emitted = true;
                let stage = cx.solve_stage(layers, o, &bounds, d, sub.clone(), now + share, emit)?;
                // a priced stage's erasures hold while later stages keep its allocation
                if stage.erase.is_some() || stage.sub != sub {
                    erase = stage.erase;
                }
                sub = stage.sub;
                let value = stage.value;
                if !stage.optimal {
                    proven = false;
                    if stage.timed_out {
                        stopped_by.get_or_insert_with(|| TIME.into());
                    }
                }
                gaps.push((o, cx.gap(o, value, stage.bound, d, layers)));
                stage_bounds.push((o, cx.in_units(o, stage.bound, d, layers)));
                bounds.push((o, value));
            }
            let vec = rank_of(&sub);
            let better = best.as_ref().is_none_or(|b| lex_less(&vec, &b.rank));
            if better {
                let proven = proven && bounds.len() == stages.len();
                best = Some(Best { rank: vec, sub, proven, gaps, bounds: stage_bounds, erase });
            }
        }
        let incumbent_rank = rank_of(&incumbent);
        let (sub, all_optimal, gaps, stage_bounds, erase) = match best {
            Some(b) if !lex_less(&incumbent_rank, &b.rank) => {
                (b.sub, b.proven && stopped_by.is_none(), b.gaps, b.bounds, b.erase)
            }
            _ => {
                // Tracr's allocation: its gap against the counting bounds
                let s = shape(blocks, &cx.share, &incumbent);
                let (h_lo, m_lo) = width_bounds(blocks, &cx.share, s.layers);
                let o = objectives[0];
                let (value, lower) = match o {
                    Objective::Layers => (s.layers as f64, min_layers as f64),
                    Objective::Heads => (s.heads as f64, h_lo.max(any_attn as usize) as f64),
                    Objective::Mlp => (s.mlp as f64, m_lo.max(widest) as f64),
                    Objective::Params => (
                        cx.rank(Objective::Params, &incumbent),
                        floor_costs.params(s.layers, h_lo.max(any_attn as usize), m_lo.max(widest)),
                    ),
                    Objective::Width => (cx.width(&incumbent) as f64, cx.width_floor as f64),
                };
                let gap = if value > 0.0 { ((value - lower) / value).max(0.0) } else { 0.0 };
                (incumbent, false, vec![(o, gap)], vec![], None)
            }
        };
        if !emitted {
            if let Some(path) = &self.emit_lp {
                // layers alone: the feasibility model at the optimal layer count
                let late = alap(blocks, min_layers);
                let full: Vec<(usize, usize)> = early.iter().copied().zip(late).collect();
                let m = cx.model(
                    min_layers,
                    Objective::Layers,
                    &[],
                    costs.d_model,
                    &full,
                    stage::Scope::Global,
                    stage::Erasures::Free,
                );
                crate::files::write_atomic(path, m.lp.to_lp_text().as_bytes())?;
            }
        }
        let gap = if all_optimal { 0.0 } else { gaps.iter().map(|(_, g)| *g).fold(0.0, f64::max) };
        Ok(Allocation {
            sublayer: sub,
            erase,
            info: Some(SolveInfo {
                optimal: all_optimal,
                gap,
                gaps: gaps.iter().map(|(o, g)| (o.name().to_string(), if all_optimal { 0.0 } else { *g })).collect(),
                bounds: stage_bounds.iter().map(|(o, b)| (o.name().to_string(), *b)).collect(),
                solve_ms: start.elapsed().as_secs_f64() * 1e3,
                objectives: objectives.iter().map(|o| o.name().to_string()).collect(),
                stopped_by: if all_optimal { None } else { stopped_by },
            }),
        })
    }
}

/// The largest allocation model solved: beyond it the search keeps Tracr's
/// allocation and says so. Its width rows grow as residual groups × layers,
/// so a 2 000-block chain makes 4 million variables and 1.5 GB; at this
/// limit building and solving take about 0.5 GB and a few seconds.
pub const MAX_ILP_VARIABLES: usize = 1_000_000;

/// Lower bounds on H and M at `layers` layers: ⌈heads / L⌉ (heads that
/// share a pattern counted once) and max(widest block, ⌈total width / L⌉).
pub(super) fn width_bounds(blocks: &[Block], share: &[usize], layers: usize) -> (usize, usize) {
    let n_attn = blocks.iter().enumerate().filter(|(b, x)| x.kind() == BlockKind::Attn && share[*b] == *b).count();
    let total: usize = blocks.iter().map(Block::width).sum();
    let widest = blocks.iter().map(Block::width).max().unwrap_or(0);
    (n_attn.div_ceil(layers.max(1)), widest.max(total.div_ceil(layers.max(1))))
}

/// Lower bounds on H and M at `layers` layers from every interval of
/// sublayers: the blocks whose windows lie inside it must fit in its
/// sublayers of their kind (the energetic bound of cumulative scheduling),
/// and M is at least the widest block. Never below [`width_bounds`], which
/// is the interval of the whole model.
pub(super) fn interval_bounds(blocks: &[Block], share: &[usize], early: &[usize], layers: usize) -> (usize, usize) {
    let late = alap(blocks, layers);
    let (mut h, mut m) = width_bounds(blocks, share, layers);
    for first in 0..layers {
        // per kind: load of the blocks inside layers first..=last; heads
        // that share a pattern count once (they may all share one layer)
        let mut heads: Vec<Vec<usize>> = vec![Vec::new(); layers];
        let mut units = vec![0usize; layers];
        for (b, block) in blocks.iter().enumerate() {
            if early[b] / 2 < first {
                continue;
            }
            let last = late[b] / 2;
            match block.kind() {
                BlockKind::Attn => heads[last].push(share[b]),
                BlockKind::Mlp => units[last] += block.width(),
            }
        }
        let (mut seen, mut hs, mut us) = (Vec::new(), 0usize, 0usize);
        for last in first..layers {
            for g in &heads[last] {
                if !seen.contains(g) {
                    seen.push(*g);
                    hs += 1;
                }
            }
            us += units[last];
            let n = last - first + 1;
            h = h.max(hs.div_ceil(n));
            m = m.max(us.div_ceil(n));
        }
    }
    (h, m)
}

/// Lexicographic `a < b` with a tolerance for the LP's floating point.
fn lex_less(a: &[f64], b: &[f64]) -> bool {
    a.iter().zip(b).find(|(x, y)| (**x - **y).abs() > 1e-9).is_some_and(|(x, y)| x < y)
}

pub(super) fn validate(blocks: &[Block], sub: &[usize], layers: usize) -> bool {
    blocks
        .iter()
        .enumerate()
        .all(|(i, b)| sub[i] % 2 == parity(b) && sub[i] < 2 * layers && b.after.iter().all(|a| sub[*a] < sub[i]))
}
