//! Optimal layer allocation as integer linear programs (solver-models/layer_allocation.md).
//!
//! Layers need no ILP: without per-layer capacities, the earliest-legal-sublayer
//! schedule (ASAP) reaches the critical-path lower bound, so its layer count is
//! optimal. The ILPs decide, for a fixed number of layers L, where each block
//! goes within its [ASAP, ALAP] window so that the widest attention layer
//! (heads), the widest MLP layer, or the padded parameter count is smallest.
//! Objectives are solved in order, each stage keeping the previous optima.

use super::lp::{Cmp, Lp};
use super::{Allocation, Allocator, SolveInfo};
use crate::compiler::craft::{Block, BlockKind};
use crate::compiler::lower::Lowered;
use crate::diagnostic::{Error, Result};
use crate::rasp::Program;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Objective {
    Layers,
    Heads,
    Mlp,
    Params,
}

impl Objective {
    pub fn name(self) -> &'static str {
        match self {
            Objective::Layers => "layers",
            Objective::Heads => "heads",
            Objective::Mlp => "mlp",
            Objective::Params => "params",
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
                other => {
                    return Err(Error::usage(format!(
                        "unknown objective '{other}' for --minimise (expected layers, heads, mlp, params)"
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

pub struct Ilp {
    pub objectives: Vec<Objective>,
    pub time_limit: f64,
    pub emit_lp: Option<PathBuf>,
}

/// What allocation costs, from the model's fixed widths.
#[derive(Clone, Copy, Debug)]
pub struct Costs {
    /// Parameters per head in every layer (W_Q, W_K, W_V, W_O and biases).
    pub per_head: f64,
    /// Parameters per MLP hidden unit in every layer.
    pub per_mlp_unit: f64,
    /// Parameters per layer regardless of widths (b_O, b_out).
    pub per_layer: f64,
    /// Embeddings and unembedding.
    pub fixed: f64,
}

impl Costs {
    pub fn from_lowered(lowered: &Lowered, d_vocab: usize, n_ctx: usize, d_vocab_out: usize) -> Costs {
        let d = lowered.dirs.len() as f64;
        let k = lowered.blocks.iter().map(crate::compiler::assemble::head_width).max().unwrap_or(0).max(1) as f64;
        Costs {
            per_head: 4.0 * d * k + 3.0 * k,
            per_mlp_unit: 2.0 * d + 1.0,
            per_layer: 2.0 * d,
            fixed: (d_vocab + n_ctx) as f64 * d + d * d_vocab_out as f64 + d_vocab_out as f64,
        }
    }

    /// Dense parameters of a model with these widths (padding to at least one head / unit).
    pub fn params(&self, layers: usize, heads: usize, mlp: usize) -> f64 {
        self.fixed
            + layers as f64
                * (self.per_head * heads.max(1) as f64 + self.per_mlp_unit * mlp.max(1) as f64 + self.per_layer)
    }
}

/// The shape an allocation gives.
#[derive(Clone, Debug, PartialEq)]
struct Shape {
    layers: usize,
    heads: usize,
    mlp: usize,
}

fn shape(blocks: &[Block], sub: &[usize]) -> Shape {
    let layers = sub.iter().map(|s| s / 2 + 1).max().unwrap_or(0);
    let mut heads = vec![0usize; layers];
    let mut mlp = vec![0usize; layers];
    for (b, s) in blocks.iter().zip(sub) {
        match b.kind() {
            BlockKind::Attn => heads[s / 2] += 1,
            BlockKind::Mlp => mlp[s / 2] += b.width(),
        }
    }
    Shape { layers, heads: heads.into_iter().max().unwrap_or(0), mlp: mlp.into_iter().max().unwrap_or(0) }
}

fn parity(b: &Block) -> usize {
    match b.kind() {
        BlockKind::Attn => 0,
        BlockKind::Mlp => 1,
    }
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
fn alap(blocks: &[Block], layers: usize) -> Vec<usize> {
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

/// The ILP of one stage for a fixed number of layers.
struct StageModel {
    lp: Lp,
    /// Per block: (sublayer, variable) pairs.
    x: Vec<Vec<(usize, usize)>>,
    heads: usize,
    mlp: usize,
}

struct Context<'a> {
    blocks: &'a [Block],
    early: Vec<usize>,
    groups: Vec<Vec<usize>>,
    costs: Costs,
}

impl<'a> Context<'a> {
    /// Variables and constraints shared by every stage at `layers` layers;
    /// `bounds` are previous stages' optima.
    fn model(&self, layers: usize, objective: Objective, bounds: &[(Objective, f64)]) -> StageModel {
        let blocks = self.blocks;
        let late = alap(blocks, layers);
        let mut lp = Lp {
            comment: format!(
                "tracr-opt layer allocation: {} blocks, {layers} layers, minimise {}",
                blocks.len(),
                objective.name()
            ),
            ..Lp::default()
        };
        let n_attn = blocks.iter().filter(|b| b.kind() == BlockKind::Attn).count();
        let total_width: usize = blocks.iter().map(Block::width).sum();
        // counting bounds: L layers must hold every head and every hidden unit
        let (h_lo, m_lo) = width_bounds(blocks, layers);
        let heads = lp.var("H".into(), h_lo as f64, n_attn as f64, true);
        let mlp = lp.var("M".into(), m_lo as f64, total_width as f64, true);
        let mut x: Vec<Vec<(usize, usize)>> = Vec::with_capacity(blocks.len());
        for (b, _) in blocks.iter().enumerate() {
            let mut vars = Vec::new();
            let mut t = self.early[b];
            while t <= late[b] {
                vars.push((t, lp.var(format!("x_b{b}_s{t}"), 0.0, 1.0, true)));
                t += 2;
            }
            lp.constrain(format!("assign_b{b}"), vars.iter().map(|(_, v)| (*v, 1.0)).collect(), Cmp::Eq, 1.0);
            x.push(vars);
        }
        // precedence, cumulative: b placed at or before t needs a placed before t
        for (b, block) in blocks.iter().enumerate() {
            for a in &block.after {
                for (t, _) in &x[b] {
                    let mut terms: Vec<(usize, f64)> =
                        x[b].iter().filter(|(s, _)| s <= t).map(|(_, v)| (*v, 1.0)).collect();
                    terms.extend(x[*a].iter().filter(|(s, _)| s < t).map(|(_, v)| (*v, -1.0)));
                    lp.constrain(format!("prec_b{a}_b{b}_s{t}"), terms, Cmp::Le, 0.0);
                }
            }
        }
        // capacities: heads per attention sublayer, hidden units per MLP sublayer
        for t in 0..2 * layers {
            let mut terms: Vec<(usize, f64)> = Vec::new();
            for (b, block) in blocks.iter().enumerate() {
                if let Some((_, v)) = x[b].iter().find(|(s, _)| *s == t) {
                    let w = if t % 2 == 0 { 1.0 } else { block.width() as f64 };
                    terms.push((*v, w));
                }
            }
            if terms.is_empty() {
                continue;
            }
            terms.push((if t % 2 == 0 { heads } else { mlp }, -1.0));
            lp.constrain(format!("{}_s{t}", if t % 2 == 0 { "heads" } else { "mlp" }), terms, Cmp::Le, 0.0);
        }
        // symmetry: interchangeable blocks in order
        for g in &self.groups {
            for pair in g.windows(2) {
                let (p, q) = (pair[0], pair[1]);
                for (t, _) in &x[q] {
                    let mut terms: Vec<(usize, f64)> =
                        x[q].iter().filter(|(s, _)| s <= t).map(|(_, v)| (*v, 1.0)).collect();
                    terms.extend(x[p].iter().filter(|(s, _)| s <= t).map(|(_, v)| (*v, -1.0)));
                    lp.constrain(format!("sym_b{p}_b{q}_s{t}"), terms, Cmp::Le, 0.0);
                }
            }
        }
        let scale = self.costs.per_head.max(self.costs.per_mlp_unit);
        let params_terms = vec![(heads, self.costs.per_head / scale), (mlp, self.costs.per_mlp_unit / scale)];
        for (o, v) in bounds {
            match o {
                Objective::Heads => lp.constrain("keep_heads".into(), vec![(heads, 1.0)], Cmp::Le, *v),
                Objective::Mlp => lp.constrain("keep_mlp".into(), vec![(mlp, 1.0)], Cmp::Le, *v),
                Objective::Params => lp.constrain("keep_params".into(), params_terms.clone(), Cmp::Le, *v + 1e-9),
                Objective::Layers => {}
            }
        }
        lp.objective = match objective {
            Objective::Heads => vec![(heads, 1.0)],
            Objective::Mlp => vec![(mlp, 1.0)],
            Objective::Params => params_terms,
            Objective::Layers => vec![],
        };
        StageModel { lp, x, heads, mlp }
    }

    /// A point of the stage model for a given allocation (the warm start).
    fn point(&self, m: &StageModel, sub: &[usize]) -> Vec<f64> {
        let mut v = vec![0.0; m.lp.vars.len()];
        for (b, vars) in m.x.iter().enumerate() {
            for (t, var) in vars {
                if *t == sub[b] {
                    v[*var] = 1.0;
                }
            }
        }
        let s = shape(self.blocks, sub);
        v[m.heads] = s.heads as f64;
        v[m.mlp] = s.mlp as f64;
        v
    }

    fn read(&self, m: &StageModel, values: &[f64]) -> Vec<usize> {
        m.x.iter()
            .map(|vars| vars.iter().max_by(|a, b| values[a.1].total_cmp(&values[b.1])).map(|(t, _)| *t).unwrap())
            .collect()
    }

    /// Value of an objective for an allocation, in the LP's units (fixed layers).
    fn lp_value(&self, o: Objective, sub: &[usize]) -> f64 {
        let s = shape(self.blocks, sub);
        match o {
            Objective::Layers => s.layers as f64,
            Objective::Heads => s.heads as f64,
            Objective::Mlp => s.mlp as f64,
            Objective::Params => {
                let scale = self.costs.per_head.max(self.costs.per_mlp_unit);
                (self.costs.per_head * s.heads as f64 + self.costs.per_mlp_unit * s.mlp as f64) / scale
            }
        }
    }

    /// Value of an objective for ranking allocations with different layer counts.
    fn rank(&self, o: Objective, sub: &[usize]) -> f64 {
        let s = shape(self.blocks, sub);
        match o {
            Objective::Params => self.costs.params(s.layers, s.heads, s.mlp),
            _ => self.lp_value(o, sub),
        }
    }
}

impl Allocator for Ilp {
    fn name(&self) -> &'static str {
        "ilp"
    }

    fn allocate(&self, program: &Program, lowered: &Lowered, costs: &Costs) -> Result<Allocation> {
        let start = Instant::now();
        let blocks = &lowered.blocks;
        if blocks.is_empty() {
            return Ok(Allocation { sublayer: vec![], info: Some(SolveInfo::trivial()) });
        }
        let mut succs = vec![Vec::new(); blocks.len()];
        for (b, block) in blocks.iter().enumerate() {
            for a in &block.after {
                succs[*a].push(b);
            }
        }
        let early = asap(blocks);
        let groups = symmetric_groups(blocks, &succs);
        let cx = Context { blocks, early: early.clone(), groups, costs: *costs };
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
        let deadline = self.time_limit;
        let mut all_optimal = true;
        // the first objective a solve could not prove optimal
        let mut unproven: Option<Objective> = None;
        // Tracr's allocation is the incumbent: the result is never worse
        let incumbent = super::heuristic::Heuristic.allocate(program, lowered, costs)?.sublayer;
        let rank_of = |sub: &[usize]| -> Vec<f64> { objectives.iter().map(|o| cx.rank(*o, sub)).collect() };
        let mut best: Option<(Vec<f64>, Vec<usize>)> = None;
        let mut emitted = false;
        // the smallest value each objective can take, at any number of layers
        let widest = blocks.iter().map(Block::width).max().unwrap_or(0);
        let any_attn = blocks.iter().any(|b| b.kind() == BlockKind::Attn);
        for &layers in &layer_choices {
            if let Some((_, best_sub)) = &best {
                // more layers cannot improve the objectives ranked above layers: stop
                let b = shape(blocks, best_sub);
                let settled = objectives.iter().take_while(|o| **o != Objective::Layers).all(|o| match o {
                    Objective::Heads => b.heads <= any_attn as usize,
                    Objective::Mlp => b.mlp <= widest,
                    Objective::Params => {
                        costs.params(layers, any_attn as usize, widest) >= costs.params(b.layers, b.heads, b.mlp)
                    }
                    Objective::Layers => true,
                });
                if settled {
                    break;
                }
            }
            if start.elapsed().as_secs_f64() > deadline {
                all_optimal = false;
                unproven.get_or_insert(objectives[0]);
                break;
            }
            // stages at this number of layers, warm-started from ASAP
            let mut sub = early.clone();
            let mut bounds: Vec<(Objective, f64)> = Vec::new();
            for &o in objectives.iter().filter(|o| **o != Objective::Layers) {
                let m = cx.model(layers, o, &bounds);
                if !emitted {
                    if let Some(path) = &self.emit_lp {
                        crate::cli::write_atomic(path, m.lp.to_lp_text().as_bytes())?;
                    }
                    emitted = true;
                }
                let warm = cx.point(&m, &sub);
                let remaining = deadline - start.elapsed().as_secs_f64();
                match m.lp.solve(Some(&warm), remaining)? {
                    Some(out) => {
                        let candidate = cx.read(&m, &out.values);
                        if validate(blocks, &candidate, layers)
                            && cx.lp_value(o, &candidate) <= cx.lp_value(o, &sub) + 1e-9
                        {
                            sub = candidate;
                        }
                        if !out.optimal {
                            all_optimal = false;
                            unproven.get_or_insert(o);
                        }
                    }
                    None => {
                        all_optimal = false;
                        unproven.get_or_insert(o);
                    }
                }
                bounds.push((o, cx.lp_value(o, &sub)));
            }
            let vec = rank_of(&sub);
            let better = best.as_ref().is_none_or(|(b, _)| lex_less(&vec, b));
            if better {
                best = Some((vec, sub));
            }
        }
        let incumbent_rank = rank_of(&incumbent);
        let sub = match best {
            Some((rank, sub)) if !lex_less(&incumbent_rank, &rank) => sub,
            _ => {
                all_optimal = false;
                incumbent
            }
        };
        if !emitted {
            if let Some(path) = &self.emit_lp {
                // layers alone: the feasibility model at the optimal layer count
                let m = cx.model(min_layers, Objective::Layers, &[]);
                crate::cli::write_atomic(path, m.lp.to_lp_text().as_bytes())?;
            }
        }
        let s = shape(blocks, &sub);
        // gap of the first objective not proven optimal, against the counting bounds
        let gap = match (all_optimal, unproven) {
            (true, _) | (false, None) => 0.0,
            (false, Some(o)) => {
                let (h_lo, m_lo) = width_bounds(blocks, s.layers);
                let (value, lower) = match o {
                    Objective::Layers => (s.layers as f64, min_layers as f64),
                    Objective::Heads => (s.heads as f64, h_lo.max(any_attn as usize) as f64),
                    Objective::Mlp => (s.mlp as f64, m_lo.max(widest) as f64),
                    Objective::Params => (costs.params(s.layers, s.heads, s.mlp), costs.params(s.layers, h_lo, m_lo)),
                };
                if value > 0.0 {
                    ((value - lower) / value).max(0.0)
                } else {
                    0.0
                }
            }
        };
        Ok(Allocation {
            sublayer: sub,
            info: Some(SolveInfo {
                optimal: all_optimal,
                gap,
                solve_ms: start.elapsed().as_secs_f64() * 1e3,
                objectives: objectives.iter().map(|o| o.name().to_string()).collect(),
            }),
        })
    }
}

/// Lower bounds on H and M at `layers` layers: ⌈heads / L⌉ and
/// max(widest block, ⌈total width / L⌉).
fn width_bounds(blocks: &[Block], layers: usize) -> (usize, usize) {
    let n_attn = blocks.iter().filter(|b| b.kind() == BlockKind::Attn).count();
    let total: usize = blocks.iter().map(Block::width).sum();
    let widest = blocks.iter().map(Block::width).max().unwrap_or(0);
    (n_attn.div_ceil(layers.max(1)), widest.max(total.div_ceil(layers.max(1))))
}

/// Lexicographic `a < b` with a tolerance for the LP's floating point.
fn lex_less(a: &[f64], b: &[f64]) -> bool {
    a.iter().zip(b).find(|(x, y)| (**x - **y).abs() > 1e-9).is_some_and(|(x, y)| x < y)
}

fn validate(blocks: &[Block], sub: &[usize], layers: usize) -> bool {
    blocks
        .iter()
        .enumerate()
        .all(|(i, b)| sub[i] % 2 == parity(b) && sub[i] < 2 * layers && b.after.iter().all(|a| sub[*a] < sub[i]))
}
