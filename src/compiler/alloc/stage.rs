//! The ILP of one allocation stage at a fixed number of layers, in step
//! variables (solver-models/layer_allocation.md, "Formulation").
//!
//! Each block b has a window of sublayers of its kind, `lo..=hi`, and one
//! binary `y_b_t` = "b sits at sublayer t or earlier" for every t in it but
//! the last (where it is 1). Every quantity the objectives need is a
//! difference of at most two steps, so each row is short: a model of a
//! 500-s-op program has a few tens of thousands of nonzeros where the
//! placement form (`x_b_t`, with cumulative sums in every row) had millions.
//! Rows whose every term is fixed by the windows fold into constants, which
//! is also what makes a model with most blocks pinned (the window search in
//! `search.rs`) small.

use super::ilp::{Context, Objective};
use super::lp::{Cmp, Lp};
use crate::compiler::craft::{Block, BlockKind, Dir};
use std::collections::BTreeMap;

/// "Block b at sublayer s or earlier", as the model sees it.
#[derive(Clone, Copy, Debug)]
enum Step {
    No,
    Yes,
    Var(usize),
}

/// A linear expression: terms and a constant.
#[derive(Clone, Debug, Default)]
pub(super) struct Affine {
    pub terms: Vec<(usize, f64)>,
    pub constant: f64,
}

impl Affine {
    fn add(&mut self, s: Step, coef: f64) {
        match s {
            Step::No => {}
            Step::Yes => self.constant += coef,
            Step::Var(v) => self.terms.push((v, coef)),
        }
    }

    /// Value at a point.
    pub fn eval(&self, values: &[f64]) -> f64 {
        self.constant + self.terms.iter().map(|(v, c)| values[*v] * c).sum::<f64>()
    }
}

/// Which rows a model keeps when every term of a capacity or width row is fixed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Scope {
    /// The whole problem: a fixed row still bounds H, M or W from below.
    Global,
    /// A window search: the stage variables stand for the peaks of the rows
    /// the free blocks can change, so fixed rows are left out.
    Local,
}

/// How a stage's model treats the erasures residual sharing needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Erasures<'s> {
    /// A dying direction is erased by the MLP of its last reader's layer, at
    /// no cost: exact for the width, and what the width stage solves.
    Free,
    /// Erasures are decisions that cost MLP neurons (the stages after the
    /// width), each at most `within` layers after the last layer its last
    /// readers' windows reach (`usize::MAX`: anywhere). With `keep` (a
    /// window search's schedule), a group whose blocks are all pinned and
    /// that the schedule erases outside the layers the free blocks span
    /// keeps those erasures, as constants: a window's model then carries
    /// the erasure variables of the groups near it only.
    Priced { within: usize, keep: Option<&'s BTreeMap<Dir, usize>> },
}

/// A residual group as the erasure floor sees it.
#[derive(Clone, Copy)]
struct FloorGroup {
    /// The range of sublayers of its first write (None: embedded).
    write: Option<(usize, usize)>,
    /// The first layer whose MLP may erase it (None: never, the output's).
    erase: Option<usize>,
    /// Neurons per erasure: 0 with a free eraser (`Group::free`).
    cost: usize,
    /// Its directions.
    n: usize,
}

/// One stage's model.
pub(super) struct StageModel {
    pub lp: Lp,
    /// Per block: its window (lowest and highest sublayer, of its kind).
    pub window: Vec<(usize, usize)>,
    /// Per block: the step variable of each window sublayer but the last.
    steps: Vec<Vec<usize>>,
    pub heads: usize,
    pub mlp: usize,
    /// The width variable, when the stage has width rows.
    pub width: Option<usize>,
    /// The held variables: (group, position, variable).
    held: Vec<(usize, usize, usize)>,
    /// Heads that share a pattern, counted once per sublayer: (the heads,
    /// sublayer, variable), the variable at least each head's placement.
    merged: Vec<(Vec<usize>, usize, usize)>,
    /// Priced erasures (`Erasures::Priced`): (group, layer, variable
    /// "directions of the group erased by the MLP of that layer or an
    /// earlier one").
    erased: Vec<(usize, usize, usize)>,
    /// (group, layer, variable): of the group's erasures in that layer, those
    /// an existing neuron does (no new neuron).
    free: Vec<(usize, usize, usize)>,
    /// (group, position, variable): directions of a priced group that hold
    /// their dimension at that position.
    occupied: Vec<(usize, usize, usize)>,
    /// Priced groups whose erasures are kept (`Erasures::Priced::keep`):
    /// (group, directions erased by the MLP of each layer or an earlier one).
    kept: Vec<(usize, Vec<f64>)>,
    /// Their erasures, as kept.
    kept_schedule: Vec<(Dir, usize)>,
    /// Rows bounding H, M and W: (the variable, the load, the position:
    /// a sublayer for H and M, a stream position for W).
    pub peaks: Vec<(usize, Affine, usize)>,
    /// Rows of H, M and W whose every term is fixed: (the variable, the
    /// load, the position), as in `peaks`.
    fixed_peaks: Vec<(usize, f64, usize)>,
    /// The constraint index of each peak row.
    peak_rows: Vec<usize>,
}

impl StageModel {
    fn step(&self, b: usize, s: isize) -> Step {
        step_of(&self.window[b], &self.steps[b], s)
    }
}

fn step_of(window: &(usize, usize), steps: &[usize], s: isize) -> Step {
    let (lo, hi) = *window;
    if s < lo as isize {
        Step::No
    } else if s >= hi as isize {
        Step::Yes
    } else {
        Step::Var(steps[(s as usize - lo) / 2])
    }
}

impl Context<'_> {
    /// The stage model at `layers` layers over the given block windows.
    /// `bounds` are previous stages' values, kept as upper bounds (in
    /// `Scope::Local`, as bounds on the window's own peaks, which keeps the
    /// global values from rising). Parameters are priced at residual width
    /// `d` (a stage's objectives are linear only at a fixed width).
    ///
    /// `Erasures::Priced` (with width rows, `Scope::Global` only): every
    /// direction holds its dimension until an MLP erases it, and the erase
    /// neurons count in their MLP's width, so the MLP and params objectives
    /// price residual sharing exactly (solver-models/residual_sharing.md,
    /// "Pricing erasures"). `Erasures::Free`: a direction is taken as erased
    /// by the MLP of its last reader's layer at no cost, exact for the width.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn model(
        &self,
        layers: usize,
        objective: Objective,
        bounds: &[(Objective, f64)],
        d: f64,
        window: &[(usize, usize)],
        scope: Scope,
        erasures: Erasures<'_>,
    ) -> StageModel {
        let blocks = self.blocks;
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
        let (h_lo, m_lo) = match scope {
            Scope::Global => super::ilp::interval_bounds(blocks, &self.share, &self.early, layers),
            Scope::Local => (0, 0),
        };
        // a model has at least one head and one hidden unit per layer (dense
        // padding), so parameters are priced with H, M ≥ 1
        let params = objective == Objective::Params || bounds.iter().any(|(o, _)| *o == Objective::Params);
        let least = (params && scope == Scope::Global) as usize;
        let (h_lo, m_lo) = (h_lo.max(least), m_lo.max(least));
        let width_bound = bounds.iter().find(|(o, _)| *o == Objective::Width).map(|(_, v)| *v);
        let with_width = objective == Objective::Width || width_bound.is_some();
        let (within, keep) = match erasures {
            Erasures::Priced { within, keep } if with_width && scope == Scope::Global => (Some(within), keep),
            _ => (None, None),
        };
        let priced = within.is_some();
        // erase neurons, when priced, widen MLPs up to one or two per direction
        let erasable: usize = match priced {
            true => self.residual.iter().filter(|g| !g.output).map(|g| g.width * g.erase_cost).sum(),
            false => 0,
        };
        // with erasures priced, M also carries the erasures a width of at
        // most W forces in each interval of layers
        let m_lo = match (priced, width_bound) {
            (true, Some(w)) => m_lo.max(self.erasure_floor(window, layers, (w + 1e-6).floor() as usize)),
            _ => m_lo,
        };
        let heads = lp.var("H".into(), h_lo as f64, n_attn.max(h_lo) as f64, true);
        let mlp = lp.var("M".into(), m_lo as f64, (total_width + erasable).max(m_lo) as f64, true);
        let mut steps: Vec<Vec<usize>> = Vec::with_capacity(blocks.len());
        for (b, (lo, hi)) in window.iter().enumerate() {
            let mut vars = Vec::new();
            let mut t = *lo;
            while t < *hi {
                let v = lp.var(format!("y_b{b}_s{t}"), 0.0, 1.0, true);
                if let Some(prev) = vars.last() {
                    // monotone: at or before t implies at or before t + 2
                    lp.constrain(format!("step_b{b}_s{t}"), vec![(*prev, 1.0), (v, -1.0)], Cmp::Le, 0.0);
                }
                vars.push(v);
                t += 2;
            }
            steps.push(vars);
        }
        let mut m = StageModel {
            lp,
            window: window.to_vec(),
            steps,
            heads,
            mlp,
            width: None,
            held: vec![],
            erased: vec![],
            free: vec![],
            occupied: vec![],
            kept: vec![],
            kept_schedule: vec![],
            merged: vec![],
            peaks: vec![],
            fixed_peaks: vec![],
            peak_rows: vec![],
        };
        // precedence: b at or before t needs a before t
        for (b, block) in blocks.iter().enumerate() {
            let (lo, hi) = m.window[b];
            for a in &block.after {
                for t in (lo..=hi).step_by(2) {
                    let mut e = Affine::default();
                    e.add(m.step(b, t as isize), 1.0);
                    e.add(m.step(*a, t as isize - 1), -1.0);
                    constrain_le(&mut m.lp, format!("prec_b{a}_b{b}_s{t}"), e);
                }
            }
        }
        // symmetry: interchangeable blocks in order (a window search starts
        // from any allocation, so it leaves them free)
        if scope == Scope::Global {
            for g in &self.groups {
                for pair in g.windows(2) {
                    let (p, q) = (pair[0], pair[1]);
                    let (lo, hi) = m.window[q];
                    for t in (lo..hi).step_by(2) {
                        let mut e = Affine::default();
                        e.add(m.step(q, t as isize), 1.0);
                        e.add(m.step(p, t as isize), -1.0);
                        constrain_le(&mut m.lp, format!("sym_b{p}_b{q}_s{t}"), e);
                    }
                }
            }
        }
        let erase_neurons = within.map_or_else(Vec::new, |within| self.erasure_rows(&mut m, layers, within, keep));
        // capacities: heads per attention sublayer (heads that share a
        // pattern once), hidden units per MLP sublayer (erase neurons included
        // when priced)
        for t in 0..2 * layers {
            let mut load = erase_neurons.get(t / 2).filter(|_| t % 2 == 1).cloned().unwrap_or_default();
            let mut merged: Vec<(usize, Vec<(usize, Affine)>)> = Vec::new();
            for (b, block) in blocks.iter().enumerate() {
                let (lo, hi) = m.window[b];
                if t % 2 != parity(block) || t < lo || t > hi {
                    continue;
                }
                let w = if t % 2 == 0 { 1.0 } else { block.width() as f64 };
                let mut here = Affine::default();
                here.add(m.step(b, t as isize), w);
                here.add(m.step(b, t as isize - 2), -w);
                match merged.iter_mut().find(|(g, _)| *g == self.share[b]) {
                    Some((_, members)) => members.push((b, here)),
                    None => merged.push((self.share[b], vec![(b, here)])),
                }
            }
            for (g, members) in merged {
                if members.len() == 1 || members.iter().any(|(_, e)| e.terms.is_empty() && e.constant >= 1.0) {
                    if members.len() == 1 {
                        let (_, e) = &members[0];
                        load.terms.extend(e.terms.iter().copied());
                        load.constant += e.constant;
                    } else {
                        load.constant += 1.0; // one of them surely here: one head
                    }
                    continue;
                }
                // u ≥ each head's placement here: one head if any is here
                let u = m.lp.var(format!("share_g{g}_s{t}"), 0.0, 1.0, false);
                for (b, mut e) in members.iter().cloned() {
                    e.terms.push((u, -1.0));
                    constrain_le(&mut m.lp, format!("share_b{b}_s{t}"), e);
                }
                m.merged.push((members.iter().map(|(b, _)| *b).collect(), t, u));
                load.terms.push((u, 1.0));
            }
            let var = if t % 2 == 0 { heads } else { mlp };
            m.peak(format!("{}_s{t}", if t % 2 == 0 { "heads" } else { "mlp" }), var, load, t, scope);
        }
        if with_width {
            self.width_rows(&mut m, layers, scope);
        }
        let costs = self.costs.with_d_model(d);
        let scale = costs.per_head().max(costs.per_mlp_unit());
        let params_terms = vec![(heads, costs.per_head() / scale), (mlp, costs.per_mlp_unit() / scale)];
        for (o, v) in bounds {
            match o {
                Objective::Width => {
                    let w = m.width.expect("width rows");
                    m.lp.constrain("keep_width".into(), vec![(w, 1.0)], Cmp::Le, *v + 1e-9)
                }
                Objective::Heads => m.lp.constrain("keep_heads".into(), vec![(heads, 1.0)], Cmp::Le, *v),
                Objective::Mlp => m.lp.constrain("keep_mlp".into(), vec![(mlp, 1.0)], Cmp::Le, *v),
                Objective::Params if scope == Scope::Global => {
                    m.lp.constrain("keep_params".into(), params_terms.clone(), Cmp::Le, *v + 1e-9)
                }
                // a window keeps H and M at most where they are (the caller's bounds)
                Objective::Params | Objective::Layers => {}
            }
        }
        m.lp.objective = match objective {
            Objective::Heads => vec![(heads, 1.0)],
            Objective::Mlp => vec![(mlp, 1.0)],
            Objective::Params => params_terms,
            Objective::Width => vec![(m.width.expect("width rows"), 1.0)],
            Objective::Layers => vec![],
        };
        m
    }

    /// The width rows (solver-models/residual_sharing.md): `held[g][p] ≥
    /// present + later − 1` for each first writer and last reader of group
    /// g, and `W ≥ Σ_g width_g held[g][p]` at every position p. A group
    /// certainly held at p counts as a constant, one certainly not held is
    /// left out, so only positions the windows leave open get a variable.
    fn width_rows(&self, m: &mut StageModel, layers: usize, scope: Scope) {
        let total: usize = self.residual.iter().map(|g| g.width).sum();
        let floor = match scope {
            Scope::Global => self.width_floor,
            Scope::Local => 0,
        };
        let w = m.lp.var("W".into(), floor as f64, total.max(floor) as f64, false);
        m.width = Some(w);
        let mut at: Vec<Affine> = vec![Affine::default(); 2 * layers + 1];
        // per priced group, its erasure variable of each layer (None: none erased yet)
        let mut erased: Vec<Vec<Option<usize>>> = vec![vec![None; layers]; self.residual.len()];
        for (g, l, v) in &m.erased {
            erased[*g][*l] = Some(*v);
        }
        // past its last variable a group erases no more: the last one stands
        for row in erased.iter_mut() {
            for l in 1..row.len() {
                if row[l].is_none() {
                    row[l] = row[l - 1];
                }
            }
        }
        let kept = std::mem::take(&mut m.kept);
        for (gi, g) in self.residual.iter().enumerate() {
            // a priced group whose erasures are kept: every term is constant
            if let Some((_, by)) = kept.iter().find(|(k, _)| *k == gi) {
                for (p, load) in at.iter_mut().enumerate() {
                    let present =
                        g.embedded || g.writers.iter().any(|a| matches!(m.step(*a, p as isize - 1), Step::Yes));
                    if present {
                        load.constant += g.width as f64 - (p / 2).checked_sub(1).map_or(0.0, |l| by[l]);
                    }
                }
                continue;
            }
            // a group with erasure variables is priced
            if erased[gi].iter().any(Option::is_some) {
                self.occupied_rows(m, gi, &erased[gi], &mut at);
                continue;
            }
            for (p, load) in at.iter_mut().enumerate() {
                // present: a first writer placed before p (1 for embedded)
                let present: Vec<Step> = if g.embedded {
                    vec![Step::Yes]
                } else {
                    g.writers.iter().map(|a| m.step(*a, p as isize - 1)).collect()
                };
                // later: a last reader in layer ⌊p/2⌋ or after (1 for the output);
                // as "not placed at or before 2⌊p/2⌋ − 1"
                let placed: Vec<Step> = if g.output {
                    vec![Step::No]
                } else {
                    g.readers.iter().map(|b| m.step(*b, 2 * (p / 2) as isize - 1)).collect()
                };
                let surely_present = present.iter().any(|s| matches!(s, Step::Yes));
                let surely_later = placed.iter().any(|s| matches!(s, Step::No));
                let never_present = present.iter().all(|s| matches!(s, Step::No));
                let never_later = placed.iter().all(|s| matches!(s, Step::Yes));
                if never_present || never_later {
                    continue;
                }
                if surely_present && surely_later {
                    load.constant += g.width as f64;
                    continue;
                }
                let v = m.lp.var(format!("held_g{gi}_p{p}"), 0.0, 1.0, false);
                m.held.push((gi, p, v));
                for (i, pr) in present.iter().enumerate().filter(|(_, s)| !matches!(s, Step::No)) {
                    for (j, pl) in placed.iter().enumerate().filter(|(_, s)| !matches!(s, Step::Yes)) {
                        // present + later − 1 ≤ held, later = 1 − placed
                        let mut e = Affine::default();
                        e.add(*pr, 1.0);
                        e.add(*pl, -1.0);
                        e.terms.push((v, -1.0));
                        constrain_le(&mut m.lp, format!("held_g{gi}_p{p}_{i}_{j}"), e);
                    }
                }
                load.terms.push((v, g.width as f64));
            }
        }
        m.kept = kept;
        for (p, load) in at.into_iter().enumerate() {
            m.peak(format!("width_p{p}"), w, load, p, scope);
        }
    }

    /// A lower bound on M in a priced model whose width is at most `width`,
    /// over the block windows `window` (solver-models/residual_sharing.md,
    /// "The erasure floor"). In layers a..=b the MLPs hold every MLP block
    /// whose window lies there, and the erase neurons of at least
    /// `n − width` directions: the n directions certainly occupying a
    /// dimension at position 2a or first written within those layers hold
    /// `n` dimensions unless erased there, and at most `width` are left at
    /// position 2b + 2. Directions that cannot be erased there (the
    /// output's, or read no earlier than layer b + 1) are never among the
    /// erased; of the others the cheapest count (a free eraser's at 0, as
    /// if its block sat there). O(layers · (groups + blocks + layers)).
    pub(super) fn erasure_floor(&self, window: &[(usize, usize)], layers: usize, width: usize) -> usize {
        let groups: Vec<FloorGroup> = self
            .residual
            .iter()
            .filter(|g| g.output || !g.readers.is_empty())
            .filter(|g| g.embedded || !g.writers.is_empty())
            .map(|g| {
                let write = (!g.embedded).then(|| {
                    (
                        g.writers.iter().map(|w| window[*w].0).min().unwrap_or(0),
                        g.writers.iter().map(|w| window[*w].1).min().unwrap_or(0),
                    )
                });
                let erase = (!g.output).then(|| g.readers.iter().map(|r| window[*r].0 / 2).max().unwrap_or(0));
                let cost = if g.free.is_empty() { g.erase_cost } else { 0 };
                FloorGroup { write, erase, cost, n: g.width }
            })
            .collect();
        let mut best = 0;
        for a in 0..layers {
            // per last layer b: changes to the kept count (cannot be erased
            // in a..=b), to the erasable counts by cost, and to the MLP load
            let mut kept = vec![0isize; layers + 1];
            let mut erasable = vec![[0isize; 3]; layers + 1];
            let mut load = vec![0usize; layers];
            for &FloorGroup { write, erase, cost, n } in &groups {
                // from which b the group counts: occupied at 2a, or written in a..=b
                let from = match write {
                    None => a,
                    Some((_, hi)) if hi < 2 * a => a,
                    Some((lo, hi)) if lo >= 2 * a => a.max(hi / 2),
                    Some(_) => continue,
                };
                match erase {
                    // erased before layer a: not surely occupied at 2a
                    Some(e) if e < a && from == a && write.is_none_or(|(_, hi)| hi < 2 * a) => continue,
                    Some(e) => {
                        let at = from.max(e);
                        if at >= layers {
                            kept[from] += n as isize;
                            continue;
                        }
                        kept[from] += n as isize;
                        kept[at] -= n as isize;
                        erasable[at][cost] += n as isize;
                    }
                    None => kept[from] += n as isize,
                }
            }
            for (b, block) in self.blocks.iter().enumerate() {
                if block.kind() == BlockKind::Mlp && window[b].0 >= 2 * a {
                    load[window[b].1 / 2] += block.width();
                }
            }
            let (mut k, mut c, mut units) = (0isize, [0isize; 3], 0usize);
            for b in a..layers {
                k += kept[b];
                for (x, d) in c.iter_mut().zip(erasable[b]) {
                    *x += d;
                }
                units += load[b];
                let n = k + c.iter().sum::<isize>();
                let mut need = (n - width as isize).max(0);
                if k > width as isize {
                    continue; // more kept than the width holds: no such allocation
                }
                let mut neurons = 0;
                for (cost, have) in c.iter().enumerate() {
                    let take = need.min(*have);
                    neurons += take as usize * cost;
                    need -= take;
                }
                best = best.max((units + neurons).div_ceil(b - a + 1));
            }
        }
        best
    }

    /// Priced erasures of every group that dies (not the output's): integer
    /// `E_g_l` ∈ [0, width_g], the directions of g erased by the MLP of layer
    /// l or an earlier one, from the first layer where every last reader can
    /// be done. `E_g_l ≤ width_g · Y_r(2l + 1)` for each last reader r (an
    /// MLP erases only what was read: its own layer's readers included) and
    /// `E_g_l` rises with l. Returns each layer's new erase neurons:
    /// `cost_g (E_g_l − E_g_{l−1}) − F_g_l`, where `F_g_l` ≤ the erasures in
    /// l and ≤ width_g · [a block with free erasers for g is in layer l].
    fn erasure_rows(
        &self,
        m: &mut StageModel,
        layers: usize,
        within: usize,
        keep: Option<&BTreeMap<Dir, usize>>,
    ) -> Vec<Affine> {
        let mut neurons = vec![Affine::default(); layers];
        // the layers the free blocks span (a window search's window)
        let moving: Vec<usize> = (0..self.blocks.len()).filter(|b| m.window[*b].0 < m.window[*b].1).collect();
        let span = (
            moving.iter().map(|b| m.window[*b].0 / 2).min().unwrap_or(usize::MAX),
            moving.iter().map(|b| m.window[*b].1 / 2).max().unwrap_or(0),
        );
        for (gi, g) in self.residual.iter().enumerate() {
            if g.output || g.readers.is_empty() {
                continue;
            }
            if let Some(schedule) = keep {
                let pinned = g.writers.iter().chain(&g.readers).chain(&g.free).all(|b| !moving.contains(b));
                let at: Vec<Option<usize>> = g.dirs.iter().map(|d| schedule.get(d).copied()).collect();
                let outside = at.iter().flatten().all(|l| *l < span.0 || *l > span.1);
                if pinned && outside {
                    // constants: the erase neurons of each layer (none where
                    // a free eraser sits), and the erased count by layer
                    let mut by = vec![0.0; layers];
                    for (d, l) in g.dirs.iter().zip(&at) {
                        let Some(l) = l.filter(|l| *l < layers) else { continue };
                        by[l] += 1.0;
                        m.kept_schedule.push((*d, l));
                        if !g.free.iter().any(|b| m.window[*b].0 / 2 == l) {
                            neurons[l].constant += g.erase_cost as f64;
                        }
                    }
                    for l in 1..layers {
                        by[l] += by[l - 1];
                    }
                    m.kept.push((gi, by));
                    continue;
                }
            }
            let w = g.width as f64;
            let first = g.readers.iter().map(|r| m.window[*r].0 / 2).max().unwrap_or(0);
            let reach = g.readers.iter().map(|r| m.window[*r].1 / 2).max().unwrap_or(0);
            let last = reach.saturating_add(within).min(layers - 1);
            let mut prev: Option<usize> = None;
            for l in first..=last {
                let e = m.lp.var(format!("erased_g{gi}_l{l}"), 0.0, w, true);
                m.erased.push((gi, l, e));
                for r in &g.readers {
                    let mut row = Affine { terms: vec![(e, 1.0)], constant: 0.0 };
                    match m.step(*r, 2 * l as isize + 1) {
                        Step::Yes => continue,
                        s => row.add(s, -w),
                    }
                    constrain_le(&mut m.lp, format!("erase_after_g{gi}_r{r}_l{l}"), row);
                }
                let mut here = Affine { terms: vec![(e, 1.0)], constant: 0.0 };
                if let Some(p) = prev {
                    constrain_le(
                        &mut m.lp,
                        format!("erase_rises_g{gi}_l{l}"),
                        Affine { terms: vec![(p, 1.0), (e, -1.0)], constant: 0.0 },
                    );
                    here.terms.push((p, -1.0));
                }
                prev = Some(e);
                let cost = g.erase_cost as f64;
                neurons[l].terms.extend(here.terms.iter().map(|(v, c)| (*v, c * cost)));
                // a free eraser in this layer: some block of g.free here
                let mut there = Affine::default();
                for b in &g.free {
                    there.add(m.step(*b, 2 * l as isize + 1), 1.0);
                    there.add(m.step(*b, 2 * l as isize - 1), -1.0);
                }
                if there.terms.is_empty() && there.constant < 0.5 {
                    continue;
                }
                let f = m.lp.var(format!("free_g{gi}_l{l}"), 0.0, w, false);
                m.free.push((gi, l, f));
                let mut row = here.clone();
                row.terms.iter_mut().for_each(|(_, c)| *c = -*c);
                row.terms.push((f, 1.0));
                constrain_le(&mut m.lp, format!("free_in_g{gi}_l{l}"), row);
                if !there.terms.is_empty() {
                    let mut row = Affine { terms: vec![(f, 1.0)], constant: -w * there.constant };
                    row.terms.extend(there.terms.iter().map(|(v, c)| (*v, -w * c)));
                    constrain_le(&mut m.lp, format!("free_at_g{gi}_l{l}"), row);
                }
                neurons[l].terms.push((f, -cost));
            }
        }
        neurons
    }

    /// The width rows' load of a priced group: `width_g · present − E_g` at
    /// every position after a first write, where E counts the erasures by
    /// the MLP before the position; a variable `O_g_p ≥ width_g Y_w(p − 1) −
    /// E_g` per first writer w where the write may come later.
    fn occupied_rows(&self, m: &mut StageModel, gi: usize, erased: &[Option<usize>], at: &mut [Affine]) {
        let g = &self.residual[gi];
        let w = g.width as f64;
        for (p, load) in at.iter_mut().enumerate() {
            let present: Vec<Step> = if g.embedded {
                vec![Step::Yes]
            } else {
                g.writers.iter().map(|a| m.step(*a, p as isize - 1)).collect()
            };
            if present.iter().all(|s| matches!(s, Step::No)) {
                continue;
            }
            // erased by the MLP of layer ⌊p/2⌋ − 1 or before
            let e = (p / 2).checked_sub(1).and_then(|l| erased.get(l).copied().flatten());
            if present.iter().any(|s| matches!(s, Step::Yes)) {
                load.constant += w;
                if let Some(e) = e {
                    load.terms.push((e, -1.0));
                }
                continue;
            }
            let o = m.lp.var(format!("occupied_g{gi}_p{p}"), 0.0, w, false);
            m.occupied.push((gi, p, o));
            for (i, pr) in present.iter().enumerate().filter(|(_, s)| !matches!(s, Step::No)) {
                let mut row = Affine { terms: vec![(o, -1.0)], constant: 0.0 };
                row.add(*pr, w);
                if let Some(e) = e {
                    row.terms.push((e, -1.0));
                }
                constrain_le(&mut m.lp, format!("occupied_g{gi}_p{p}_{i}"), row);
            }
            load.terms.push((o, 1.0));
        }
    }

    /// The erasures a solution of a priced model schedules: per direction,
    /// the layer whose MLP erases it (a group's directions in order).
    pub(super) fn read_erasures(&self, m: &StageModel, values: &[f64]) -> BTreeMap<Dir, usize> {
        let mut out: BTreeMap<Dir, usize> = m.kept_schedule.iter().copied().collect();
        let mut done: Vec<usize> = vec![0; self.residual.len()];
        for (g, l, v) in &m.erased {
            let by = values[*v].round().max(0.0) as usize;
            let dirs = &self.residual[*g].dirs;
            while done[*g] < by.min(dirs.len()) {
                out.insert(dirs[done[*g]], *l);
                done[*g] += 1;
            }
        }
        out
    }

    /// A point of the model for a given allocation (a warm start), with
    /// every direction erased by its last reader's layer when priced.
    pub(super) fn point(&self, m: &StageModel, sub: &[usize]) -> Vec<f64> {
        self.point_with(m, sub, None)
    }

    /// [`Context::point`] with the erasures of `schedule` (a direction it
    /// does not list is never erased), when given.
    pub(super) fn point_with(
        &self,
        m: &StageModel,
        sub: &[usize],
        schedule: Option<&BTreeMap<Dir, usize>>,
    ) -> Vec<f64> {
        let mut v = vec![0.0; m.lp.vars.len()];
        for (b, vars) in m.steps.iter().enumerate() {
            let lo = m.window[b].0;
            for (k, var) in vars.iter().enumerate() {
                v[*var] = (sub[b] <= lo + 2 * k) as u8 as f64;
            }
        }
        for (g, p, var) in &m.held {
            v[*var] = self.residual[*g].held(sub, *p) as u8 as f64;
        }
        for (heads, t, var) in &m.merged {
            v[*var] = heads.iter().any(|b| sub[*b] == *t) as u8 as f64;
        }
        // priced erasures: by default every direction erased by its last
        // reader's layer (what the unpriced model assumes, so the same width)
        let done = |g: usize| self.residual[g].readers.iter().map(|r| sub[*r] / 2).max().unwrap_or(0);
        // directions of group g erased by the MLP of layer l or before
        let erased_by = |g: usize, l: usize| -> f64 {
            let group = &self.residual[g];
            match schedule {
                None => (l >= done(g)) as u8 as f64 * group.width as f64,
                Some(s) => group.dirs.iter().filter(|d| s.get(*d).is_some_and(|at| *at <= l)).count() as f64,
            }
        };
        for (g, l, var) in &m.erased {
            v[*var] = erased_by(*g, *l);
        }
        for (g, l, var) in &m.free {
            let here = self.residual[*g].free.iter().any(|b| sub[*b] / 2 == *l);
            let now = erased_by(*g, *l) - l.checked_sub(1).map_or(0.0, |k| erased_by(*g, k));
            v[*var] = if here { now } else { 0.0 };
        }
        for (g, p, var) in &m.occupied {
            let group = &self.residual[*g];
            let present = group.embedded || group.writers.iter().any(|w| sub[*w] < *p);
            let erased = (*p / 2).checked_sub(1).map_or(0.0, |l| erased_by(*g, l));
            v[*var] = if present { group.width as f64 - erased } else { 0.0 };
        }
        // the peaks, from the rows (each the max of what it bounds)
        for var in [Some(m.heads), Some(m.mlp), m.width].into_iter().flatten() {
            let peak = m.peaks.iter().filter(|(x, _, _)| *x == var).map(|(_, e, _)| e.eval(&v)).fold(0.0, f64::max);
            v[var] = peak.max(m.lp.vars[var].lo).round();
        }
        v
    }

    /// The allocation a solution gives.
    pub(super) fn read(&self, m: &StageModel, values: &[f64]) -> Vec<usize> {
        (0..self.blocks.len())
            .map(|b| {
                let (lo, hi) = m.window[b];
                m.steps[b].iter().position(|v| values[*v] > 0.5).map_or(hi, |k| lo + 2 * k)
            })
            .collect()
    }

    /// How many variables [`Context::model`] makes over these windows (the
    /// width rows' included when `width`), counted without building it.
    pub(super) fn variables(&self, layers: usize, width: bool, window: &[(usize, usize)]) -> usize {
        let steps: usize = window.iter().map(|(lo, hi)| (hi.saturating_sub(*lo)) / 2).sum();
        let mut held = 0;
        if width {
            let open = |b: usize, s: isize| s >= window[b].0 as isize && s < window[b].1 as isize;
            for g in &self.residual {
                for p in 0..=2 * layers {
                    let pr = !g.embedded && g.writers.iter().any(|a| open(*a, p as isize - 1));
                    let la = !g.output && g.readers.iter().any(|b| open(*b, 2 * (p / 2) as isize - 1));
                    held += (pr || la) as usize;
                }
            }
        }
        3 + steps + held
    }
}

impl StageModel {
    /// `load ≤ var`, or, when the load is fixed, a lower bound on `var`
    /// (left out in a window search).
    fn peak(&mut self, name: String, var: usize, mut load: Affine, at: usize, scope: Scope) {
        if load.terms.is_empty() {
            self.fixed_peaks.push((var, load.constant, at));
            if scope == Scope::Global {
                let lo = &mut self.lp.vars[var].lo;
                *lo = lo.max(load.constant);
                let hi = &mut self.lp.vars[var].hi;
                *hi = hi.max(load.constant);
            }
            return;
        }
        self.peaks.push((var, load.clone(), at));
        self.peak_rows.push(self.lp.constraints.len());
        load.terms.push((var, -1.0));
        constrain_le(&mut self.lp, name, load);
    }

    /// Adds a variable P at least the MLP load of every layer in `layers`,
    /// at `weight` in the objective: a window that cannot lower the
    /// model's widest MLP can still flatten its own layers, which a later
    /// window (or the widest layer's own) then builds on. Returns P.
    pub(super) fn local_mlp_peak(&mut self, layers: std::ops::Range<usize>, weight: f64) -> usize {
        let hi = self.lp.vars[self.mlp].hi;
        let p = self.lp.var("P".into(), 0.0, hi, false);
        let rows: Vec<Affine> = self
            .peaks
            .iter()
            .filter(|(v, _, at)| *v == self.mlp && layers.contains(&(at / 2)))
            .map(|(_, e, _)| e.clone())
            .collect();
        for (k, mut e) in rows.into_iter().enumerate() {
            e.terms.push((p, -1.0));
            constrain_le(&mut self.lp, format!("local_mlp_{k}"), e);
        }
        self.lp.vars[p].lo = self.mlp_load(layers, &[]);
        self.lp.objective.push((p, weight));
        p
    }

    /// The widest MLP among `layers` at a point (of the fixed rows alone
    /// when `values` is empty).
    pub(super) fn mlp_load(&self, layers: std::ops::Range<usize>, values: &[f64]) -> f64 {
        let fixed = self.fixed_peaks.iter().filter(|(v, _, at)| *v == self.mlp && layers.contains(&(at / 2)));
        let open = self.peaks.iter().filter(|(v, _, at)| *v == self.mlp && layers.contains(&(at / 2)));
        let open = open.filter(|_| !values.is_empty()).map(|(_, e, _)| e.eval(values));
        fixed.map(|(_, c, _)| *c).chain(open).fold(0.0, f64::max)
    }

    /// A relaxation of the model for a bound from layers `first..=last`:
    /// their peak rows, the held rows those read, and every other row whose
    /// variables all occur in them. Leaving rows out only lowers the
    /// optimum, so the relaxation's LP optimum bounds the whole model's.
    /// Returns the LP (variables renumbered) and the old index of each of
    /// its variables; None when no peak row falls in the layers.
    pub fn part(&self, first: usize, last: usize) -> Option<(Lp, Vec<usize>)> {
        let n = self.lp.vars.len();
        let mut used = vec![false; n];
        let mut keep = vec![false; self.lp.constraints.len()];
        let mut any = false;
        for ((_, _, at), row) in self.peaks.iter().zip(&self.peak_rows) {
            if (first..=last).contains(&(at / 2)) {
                keep[*row] = true;
                any = true;
                for (v, _) in &self.lp.constraints[*row].terms {
                    used[*v] = true;
                }
            }
        }
        if !any {
            return None;
        }
        let mut is_held = vec![false; n];
        for (_, _, v) in &self.held {
            is_held[*v] = true;
        }
        // the held rows of the held variables kept, with the steps they read
        for (r, c) in self.lp.constraints.iter().enumerate() {
            if !keep[r] && c.terms.iter().any(|(v, _)| is_held[*v] && used[*v]) {
                keep[r] = true;
            }
        }
        let mut is_peak = vec![false; self.lp.constraints.len()];
        for r in &self.peak_rows {
            is_peak[*r] = true;
        }
        for (r, c) in self.lp.constraints.iter().enumerate() {
            if keep[r] && !is_peak[r] {
                for (v, _) in &c.terms {
                    used[*v] = true;
                }
            }
        }
        for &v in [Some(self.heads), Some(self.mlp), self.width].iter().flatten() {
            used[v] = true;
        }
        for (r, c) in self.lp.constraints.iter().enumerate() {
            if !keep[r] && c.terms.iter().all(|(v, _)| used[*v]) {
                keep[r] = true;
            }
        }
        let old: Vec<usize> = (0..n).filter(|v| used[*v]).collect();
        let mut new = vec![usize::MAX; n];
        for (i, v) in old.iter().enumerate() {
            new[*v] = i;
        }
        let lp = Lp {
            vars: old.iter().map(|v| self.lp.vars[*v].clone()).collect(),
            constraints: self
                .lp
                .constraints
                .iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(c, _)| super::lp::Constraint {
                    terms: c.terms.iter().map(|(v, k)| (new[*v], *k)).collect(),
                    ..c.clone()
                })
                .collect(),
            objective: self.lp.objective.iter().map(|(v, k)| (new[*v], *k)).collect(),
            comment: String::new(),
        };
        Some((lp, old))
    }
}

/// `e ≤ 0`; a row without variables, or one that holds whatever its 0/1
/// variables are, is dropped (the windows make it hold).
fn constrain_le(lp: &mut Lp, name: String, e: Affine) {
    if e.terms.is_empty() {
        debug_assert!(e.constant <= 1e-9, "{name} cannot hold: {}", e.constant);
        return;
    }
    // a row of 0/1 variables that holds at every corner is left out
    let binary = e.terms.iter().all(|(v, _)| lp.vars[*v].lo >= 0.0 && lp.vars[*v].hi <= 1.0);
    if binary && e.terms.iter().map(|(_, c)| c.max(0.0)).sum::<f64>() + e.constant <= 1e-9 {
        return;
    }
    // 0.0 - c, not -c: a zero right-hand side prints as 0, not -0
    lp.constrain(name, e.terms, Cmp::Le, 0.0 - e.constant);
}

pub(super) fn parity(b: &Block) -> usize {
    match b.kind() {
        BlockKind::Attn => 0,
        BlockKind::Mlp => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::super::ilp::{alap, interval_bounds, Context, Costs, Objective};
    use super::super::lp::Cmp;
    use super::super::search::layer_window;
    use super::{Erasures, Scope};
    use crate::compiler::lower::{lower, LowerOptions, Lowered, OutputDecoder};
    use crate::compiler::residual::uses;
    use crate::library::random::random_program_text;
    use crate::rasp::valueset::{infer, tabulate};
    use crate::rasp::Program;

    /// A generated program lowered as `compile` lowers it (rewrites off),
    /// with its costs under residual and head sharing.
    fn lowered(n: usize, seed: u64) -> (Lowered, Costs) {
        let program = Program::from_rasp("random.rasp", &random_program_text(n, seed)).unwrap();
        let settings = program.settings.clone().unwrap();
        let vs = infer(&program, &settings.vocab, settings.max_seq_len).unwrap();
        let program = tabulate(&program, &vs).unwrap();
        let opts = LowerOptions { embed_maps: false, rule_tables: false, live_steps_only: true };
        let lowered = lower(&program, &vs, &settings, &opts).unwrap();
        let out = match &lowered.output {
            OutputDecoder::Categorical(v) => v.len().max(1),
            OutputDecoder::Numerical(_) => 1,
        };
        let u = uses(&lowered);
        let costs =
            Costs::from_lowered(&lowered, &u, settings.vocab.len() + 2, settings.max_seq_len + 1, out, true, true);
        (lowered, costs)
    }

    /// The least layers, every block's full window, and the least width
    /// there with an allocation that reaches it.
    type LeastWidth = (usize, Vec<(usize, usize)>, f64, Vec<usize>);

    /// [`LeastWidth`] (None: not proven in time).
    fn least_width(cx: &Context) -> Option<LeastWidth> {
        let layers = cx.early.iter().map(|t| t / 2 + 1).max().unwrap();
        let full: Vec<(usize, usize)> = cx.early.iter().copied().zip(alap(cx.blocks, layers)).collect();
        let wm = cx.model(layers, Objective::Width, &[], cx.costs.d_model, &full, Scope::Global, Erasures::Free);
        let w = wm.lp.solve_within(None, 20.0).unwrap().filter(|o| o.optimal)?;
        Some((layers, full.clone(), w.values[wm.width.unwrap()].round(), cx.read(&wm, &w.values)))
    }

    /// The erasure floor is a true lower bound: on generated programs, the
    /// priced MLP model at the least width, solved to optimality with M's
    /// floor taken off (the interval bound left), never ends below it. And
    /// it is not vacuous: on some of them it is above the interval bound.
    #[test]
    fn the_erasure_floor_is_below_every_priced_optimum() {
        let (mut checked, mut above_interval) = (0, 0);
        for (n, seed) in (1..=8).map(|s| (10, s)).chain((1..=6).map(|s| (20, s))) {
            let (lowered, costs) = lowered(n, seed);
            let cx = Context::new(&lowered, &costs);
            let Some((layers, full, width, _)) = least_width(&cx) else { continue };
            let bounds = [(Objective::Width, width)];
            let priced = Erasures::Priced { within: usize::MAX, keep: None };
            let mut m = cx.model(layers, Objective::Mlp, &bounds, width, &full, Scope::Global, priced);
            let floor = cx.erasure_floor(&full, layers, width as usize);
            let interval = interval_bounds(cx.blocks, &cx.share, &cx.early, layers).1;
            // the model carries the floor; solve without it
            assert_eq!(m.lp.vars[m.mlp].lo, floor.max(interval) as f64);
            m.lp.vars[m.mlp].lo = interval as f64;
            let Some(o) = m.lp.solve_within(None, 20.0).unwrap().filter(|o| o.optimal) else { continue };
            let least = o.values[m.mlp].round() as usize;
            assert!(
                floor <= least,
                "random{n}_{seed}: erasure floor {floor} above the priced optimum {least} at width {width}"
            );
            checked += 1;
            above_interval += (floor > interval) as usize;
        }
        assert!(checked >= 10, "only {checked} programs solved to optimality");
        assert!(above_interval > 0, "the floor never rose above the interval bound");
    }

    /// A window model that keeps the erasures of the groups away from it
    /// (`Erasures::Priced::keep`) prices an allocation and its schedule as
    /// the model with every erasure variable does: at the schedule found
    /// for an allocation, every window's warm start is feasible, has the
    /// same value, and reads back the same schedule.
    #[test]
    fn kept_erasures_price_a_window_as_the_whole_schedule_does() {
        let (mut windows, mut kept, mut freed) = (0, 0, 0);
        for seed in 1..=6 {
            let (lowered, costs) = lowered(20, seed);
            let cx = Context::new(&lowered, &costs);
            let Some((layers, full, width, sub)) = least_width(&cx) else { continue };
            let bounds = [(Objective::Width, width)];
            let pinned: Vec<(usize, usize)> = sub.iter().map(|s| (*s, *s)).collect();
            let all = Erasures::Priced { within: 6, keep: None };
            let m = cx.model(layers, Objective::Params, &bounds, width, &pinned, Scope::Global, all);
            let out = m.lp.solve_within(Some(&cx.point(&m, &sub)), 20.0).unwrap().unwrap();
            let value: f64 = m.lp.objective.iter().map(|(i, c)| out.values[*i] * c).sum();
            let schedule = cx.read_erasures(&m, &out.values);
            for first in (0..layers).step_by(2) {
                let window = layer_window(&full, &sub, first, 3, layers);
                let keep = Erasures::Priced { within: 6, keep: Some(&schedule) };
                let w = cx.model(layers, Objective::Params, &bounds, width, &window, Scope::Global, keep);
                let warm = cx.point_with(&w, &sub, Some(&schedule));
                for c in &w.lp.constraints {
                    let lhs: f64 = c.terms.iter().map(|(v, k)| warm[*v] * k).sum();
                    let holds = match c.cmp {
                        Cmp::Le => lhs <= c.rhs + 1e-6,
                        Cmp::Eq => (lhs - c.rhs).abs() <= 1e-6,
                    };
                    assert!(holds, "random20_{seed}, layers {first}+3: {} broken at the schedule", c.name);
                }
                let here: f64 = w.lp.objective.iter().map(|(i, c)| warm[*i] * c).sum();
                assert!((here - value).abs() < 1e-6, "random20_{seed}, layers {first}+3: {here} against {value}");
                assert_eq!(cx.read_erasures(&w, &warm), schedule, "random20_{seed}, layers {first}+3");
                windows += 1;
                kept += (!w.kept.is_empty()) as usize;
                freed += (!w.erased.is_empty()) as usize;
            }
        }
        // both kinds of group occur: kept ones and ones the window re-times
        assert!(kept >= 10 && freed >= 10, "of {windows} windows, {kept} kept erasures and {freed} freed some");
    }
}
