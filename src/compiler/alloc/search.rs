//! Solving one allocation stage (solver-models/layer_allocation.md, "Large
//! programs"): the whole model by branch and bound; when that is not proven
//! optimal in its share of the time, a lower bound from the model's LP
//! relaxation and a search over windows of layers that improves the
//! allocation while every block outside the window stays where it is.
//!
//! microlp proves small models (every bundled program) optimal in
//! milliseconds, but its branch and bound neither finds good allocations nor
//! closes the gap on programs of hundreds of s-ops. For the width the LP
//! relaxation of the step formulation is within 1–2 % of the optimum where
//! HiGHS could prove one, and a width window of a few layers solves in
//! milliseconds. For params the relaxation is looser (MLP blocks pack
//! badly: about 10 % at 200 s-ops) and windows often use their whole second
//! (docs/RESULTS.md, "ILP scaling").
//!
//! The stages after the width price erasures (solver-models/
//! residual_sharing.md, "Pricing erasures"): the whole priced model when
//! it is small and proven in time; otherwise the free model as above, then
//! the erasures scheduled for the allocation it found, then a window search
//! on the priced model from there.

use super::ilp::{Context, Objective};
use super::stage::{Erasures, Scope, StageModel};
use crate::compiler::craft::Dir;
use crate::diagnostic::Result;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// How one stage ended.
pub(super) struct Stage {
    /// The allocation.
    pub sub: Vec<usize>,
    /// Proven optimal (given the previous stages' values).
    pub optimal: bool,
    /// A lower bound on the objective, in the model's units.
    pub bound: f64,
    /// Whether the time ran out.
    pub timed_out: bool,
    /// The objective's value, in the model's units: with erasures priced
    /// when `erase` is given.
    pub value: f64,
    /// The erasures the stage priced (`Allocation::erase`), when it solved
    /// the priced model (`Context::model`) to optimality.
    pub erase: Option<BTreeMap<Dir, usize>>,
}

/// Most free blocks a window aims at (16, 24 and 32 were worse at 200
/// s-ops: more windows, each improving less).
const WINDOW_BLOCKS: usize = 48;
/// Models up to this many variables are solved whole (branch and bound,
/// then their LP relaxation for a bound); larger ones only by parts.
/// microlp's root LP of a 500-s-op program (59 000 variables) did not
/// finish in 38 s.
const FULL_MODEL_VARIABLES: usize = 5_000;
/// Variables a part of the model for an LP bound aims at.
const PART_VARIABLES: usize = 2_000;
/// Of a priced stage's time left after the whole priced model (when it was
/// not proven), the share kept to schedule erasures for the allocation found
/// and search windows of the priced model.
const SCHEDULE_SHARE: f64 = 0.5;
/// Layers after the last read within which the schedule may erase (later
/// rarely narrows an MLP, and each layer adds a variable per group).
const SCHEDULE_LAYERS: usize = 6;
/// Priced windows also flatten their own layers (`local_mlp_peak`) until
/// this many window solves have been cut by time: the extra objective
/// slows each solve, which pays at 100 and 200 s-ops (60 s runs without
/// it: random100_3 1.25 M parameters, random200_3 6.24 M; with it 1.19 M
/// and 6.09 M) and not at 500, where windows run out of their second.
const FLATTEN_CUT: usize = 3;
/// Seconds a window's solve may take.
const WINDOW_SECONDS: f64 = 1.0;

impl Context<'_> {
    /// Solves stage `o` at `layers` layers from the feasible allocation
    /// `sub`, by `deadline`. `bounds` are the previous stages' values.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn solve_stage(
        &self,
        layers: usize,
        o: Objective,
        bounds: &[(Objective, f64)],
        d: f64,
        sub: Vec<usize>,
        deadline: Instant,
        emit_lp: Option<&Path>,
    ) -> Result<Stage> {
        let late = super::ilp::alap(self.blocks, layers);
        let full: Vec<(usize, usize)> = self.early.iter().copied().zip(late.iter().copied()).collect();
        let left = || deadline.saturating_duration_since(Instant::now()).as_secs_f64();
        // after the width, MLP widths and params with erase neurons priced,
        // when branch and bound proves the whole model in a third of the time
        let priced = self.costs.shared
            && matches!(o, Objective::Params | Objective::Mlp)
            && bounds.iter().any(|(b, _)| *b == Objective::Width);
        let mut priced_bound = f64::NEG_INFINITY;
        let mut emit_lp = emit_lp;
        if priced {
            let m = self.model(
                layers,
                o,
                bounds,
                d,
                &full,
                Scope::Global,
                Erasures::Priced { within: usize::MAX, keep: None },
            );
            // the variables' own bounds: H's interval bound, M's erasure floor
            priced_bound = m.lp.objective.iter().map(|(i, c)| m.lp.vars[*i].lo * c).sum::<f64>() - 1e-9;
            if m.lp.vars.len() <= FULL_MODEL_VARIABLES {
                if let Some(path) = emit_lp.take() {
                    crate::files::write_atomic(path, m.lp.to_lp_text().as_bytes())?;
                }
                let warm = self.point(&m, &sub);
                let start: f64 = m.lp.objective.iter().map(|(i, c)| warm[*i] * c).sum();
                if let Some(out) = m.lp.solve_within(Some(&warm), left() / 3.0)? {
                    let candidate = self.read(&m, &out.values);
                    let least: f64 = m.lp.objective.iter().map(|(i, c)| out.values[*i] * c).sum();
                    if out.optimal && least <= start + 1e-9 && super::ilp::validate(self.blocks, &candidate, layers) {
                        let erase = Some(self.read_erasures(&m, &out.values));
                        return Ok(Stage {
                            sub: candidate,
                            optimal: true,
                            bound: least,
                            timed_out: false,
                            value: least,
                            erase,
                        });
                    }
                }
                // not proven: its LP relaxation still bounds the priced value,
                // above the free model's (erasures cost); 100 s-ops: 3-5 s.
                // (Rounding H and M up as `relaxation_bound` does raised it
                // by under 1 % there for two more LPs.)
                if let Some(out) = m.lp.relaxed().solve_within(None, left() / 4.0)? {
                    if out.optimal {
                        let relaxed = m.lp.objective.iter().map(|(i, c)| out.values[*i] * c).sum::<f64>() - 1e-9;
                        priced_bound = priced_bound.max(relaxed);
                    }
                }
            }
        }
        if !priced {
            return self.solve_free(layers, o, bounds, d, sub, &full, deadline, emit_lp);
        }
        // else: the free model, keeping time to schedule erasures for what it finds
        let reserve = std::time::Duration::from_secs_f64(left() * SCHEDULE_SHARE);
        let mut stage = self.solve_free(layers, o, bounds, d, sub, &full, deadline - reserve, emit_lp)?;
        // no priced value is below the free model's bound
        stage.bound = stage.bound.max(priced_bound);
        match self.schedule_erasures(layers, o, bounds, d, &stage.sub, deadline)? {
            Some((value, erase)) => {
                let (sub, erase, value) =
                    self.improve_priced(layers, o, bounds, d, stage.sub, erase, value, &full, stage.bound, deadline)?;
                stage.sub = sub;
                stage.value = value;
                stage.erase = Some(erase);
                stage.optimal = value <= stage.bound + 1e-9;
            }
            // the free value leaves the erasures out: nothing is proven
            None => stage.optimal = false,
        }
        Ok(stage)
    }

    /// The erasures that price the allocation `sub` least (the priced model
    /// with every block where it is, erasures up to `SCHEDULE_LAYERS` layers
    /// after the last read), by `deadline`: the priced value and the
    /// schedule. None when the solver found no solution in time (the layout
    /// then places the erasures itself).
    #[allow(clippy::too_many_arguments)]
    fn schedule_erasures(
        &self,
        layers: usize,
        o: Objective,
        bounds: &[(Objective, f64)],
        d: f64,
        sub: &[usize],
        deadline: Instant,
    ) -> Result<Option<(f64, BTreeMap<Dir, usize>)>> {
        let pinned: Vec<(usize, usize)> = sub.iter().map(|s| (*s, *s)).collect();
        let erasures = Erasures::Priced { within: SCHEDULE_LAYERS, keep: None };
        // no wider than this allocation's held peak (what the layout reaches)
        let width = self.width(sub) as f64;
        let bounds: Vec<(Objective, f64)> =
            bounds.iter().map(|(b, v)| if *b == Objective::Width { (*b, v.min(width)) } else { (*b, *v) }).collect();
        let m = self.model(layers, o, &bounds, d, &pinned, Scope::Global, erasures);
        let warm = self.point(&m, sub);
        let seconds = deadline.saturating_duration_since(Instant::now()).as_secs_f64();
        let Some(out) = m.lp.solve_within(Some(&warm), seconds)? else { return Ok(None) };
        let value: f64 = m.lp.objective.iter().map(|(i, c)| out.values[*i] * c).sum();
        Ok(Some((value, self.read_erasures(&m, &out.values))))
    }

    /// [`Context::solve_stage`] with erasures free (`Erasures::Free`).
    #[allow(clippy::too_many_arguments)]
    fn solve_free(
        &self,
        layers: usize,
        o: Objective,
        bounds: &[(Objective, f64)],
        d: f64,
        sub: Vec<usize>,
        full: &[(usize, usize)],
        deadline: Instant,
        emit_lp: Option<&Path>,
    ) -> Result<Stage> {
        let left = || deadline.saturating_duration_since(Instant::now()).as_secs_f64();
        let m = self.model(layers, o, bounds, d, full, Scope::Global, Erasures::Free);
        if let Some(path) = emit_lp {
            crate::files::write_atomic(path, m.lp.to_lp_text().as_bytes())?;
        }
        let mut sub = sub;
        // the whole model, with a sixth of the time, when microlp can take it
        let mut timed_out = false;
        let small = m.lp.vars.len() <= FULL_MODEL_VARIABLES;
        let whole = if small { m.lp.solve_within(Some(&self.point(&m, &sub)), left() / 6.0)? } else { None };
        match whole {
            Some(out) => {
                let candidate = self.read(&m, &out.values);
                if self.acceptable(o, bounds, &candidate, &sub, d, layers) {
                    sub = candidate;
                }
                if out.optimal {
                    // the solver's optimum is the least value; the allocation
                    // kept is proven optimal when it reaches it
                    let least: f64 = m.lp.objective.iter().map(|(i, c)| out.values[*i] * c).sum();
                    let value = self.lp_value(o, &sub, d);
                    let optimal = value <= least + 1e-6;
                    return Ok(Stage { sub, optimal, bound: least.min(value), timed_out: false, value, erase: None });
                }
            }
            None => timed_out = small,
        }
        // a lower bound from the LP relaxation, then windows until the allocation meets it
        let bound = self.relaxation_bound(&m, o, layers, &sub, left() / 2.0)?;
        let value = self.lp_value(o, &sub, d);
        if value <= bound + 1e-9 {
            return Ok(Stage { sub, optimal: true, bound, timed_out: false, value, erase: None });
        }
        let sub = self.improve(layers, o, bounds, d, sub, full, bound, deadline)?;
        let value = self.lp_value(o, &sub, d);
        let optimal = value <= bound + 1e-9;
        let timed_out = timed_out || (!optimal && left() <= 0.0);
        Ok(Stage { sub, optimal, bound, timed_out, value, erase: None })
    }

    /// A lower bound from LP relaxations, by `seconds` from now: the whole
    /// model's when it is small, else the largest of those of its parts
    /// over a few consecutive layers (`StageModel::part`), the parts where
    /// the allocation `sub` peaks first. Each is rounded up where the
    /// objective is integral; for params, the least H and the least M are
    /// rounded up too. Without an LP in time, the variables' own lower
    /// bounds (the interval bounds on H and M, the width floor).
    fn relaxation_bound(
        &self,
        m: &StageModel,
        o: Objective,
        layers: usize,
        sub: &[usize],
        seconds: f64,
    ) -> Result<f64> {
        let deadline = Instant::now() + std::time::Duration::from_secs_f64(seconds.max(0.0));
        let v = &m.lp.vars;
        let mut bound = match o {
            Objective::Heads => v[m.heads].lo,
            Objective::Mlp => v[m.mlp].lo,
            Objective::Width => m.width.map_or(0.0, |w| v[w].lo),
            Objective::Params => m.lp.objective.iter().map(|(i, c)| v[*i].lo * c).sum(),
            Objective::Layers => return Ok(0.0),
        };
        let point = self.point(m, sub);
        let current: f64 = m.lp.objective.iter().map(|(i, c)| point[*i] * c).sum();
        let span = if m.lp.vars.len() <= FULL_MODEL_VARIABLES {
            layers
        } else if o == Objective::Params {
            // three LPs a part are too many: the interval bounds on H and M stand
            return Ok(bound);
        } else {
            (PART_VARIABLES * layers / m.lp.vars.len()).clamp(1, layers)
        };
        // disjoint parts, then the same shifted by half a part
        let mut parts: Vec<(usize, usize)> =
            (0..layers).step_by(span).map(|l| (l, (l + span - 1).min(layers - 1))).collect();
        if span > 1 && span < layers {
            parts.extend((span / 2..layers).step_by(span).map(|l| (l, (l + span - 1).min(layers - 1))));
        }
        // where the allocation peaks first: that is where the bound is decided
        let local = |(first, last): (usize, usize)| -> f64 {
            m.peaks
                .iter()
                .filter(|(_, _, at)| (first..=last).contains(&(at / 2)))
                .map(|(var, e, _)| {
                    e.eval(&point) * m.lp.objective.iter().find(|(i, _)| i == var).map_or(0.0, |(_, c)| *c)
                })
                .fold(0.0, f64::max)
        };
        parts.sort_by(|a, b| local(*b).total_cmp(&local(*a)).then(a.cmp(b)));
        for (first, last) in parts {
            if Instant::now() >= deadline || bound >= current - 1e-9 {
                break;
            }
            let Some((lp, old)) = m.part(first, last) else { continue };
            let left = deadline.saturating_duration_since(Instant::now()).as_secs_f64();
            let Some(part) = lp.relaxed().solve_within(None, left)? else { break };
            if !part.optimal {
                break;
            }
            let objective: f64 = lp.objective.iter().map(|(i, c)| part.values[*i] * c).sum();
            let rounded = match o {
                Objective::Params => {
                    // H ≥ ⌈least H⌉ and M ≥ ⌈least M⌉ in every allocation
                    let mut floors = 0.0;
                    for (var, c) in &m.lp.objective {
                        let Some(k) = old.iter().position(|x| x == var) else { continue };
                        let mut alone = lp.relaxed();
                        alone.objective = vec![(k, 1.0)];
                        let left = deadline.saturating_duration_since(Instant::now()).as_secs_f64();
                        match alone.solve_within(None, left)? {
                            Some(out) if out.optimal => floors += c * (out.values[k] - 1e-6).ceil(),
                            _ => floors = f64::NEG_INFINITY,
                        }
                    }
                    (objective - 1e-9).max(floors)
                }
                _ => (objective - 1e-6).ceil(),
            };
            bound = bound.max(rounded);
        }
        Ok(bound)
    }

    /// Re-solves windows of consecutive layers with every other block fixed,
    /// sweeping the model until a sweep changes nothing at the largest
    /// window, the allocation meets `bound`, or the deadline passes.
    #[allow(clippy::too_many_arguments)]
    fn improve(
        &self,
        layers: usize,
        o: Objective,
        bounds: &[(Objective, f64)],
        d: f64,
        mut sub: Vec<usize>,
        full: &[(usize, usize)],
        bound: f64,
        deadline: Instant,
    ) -> Result<Vec<usize>> {
        self.sweep(layers, |first, span| {
            if Instant::now() >= deadline || self.lp_value(o, &sub, d) <= bound + 1e-9 {
                return Ok(None);
            }
            let window = layer_window(full, &sub, first, span, layers);
            if window.iter().all(|(a, b)| a == b) {
                return Ok(Some(false));
            }
            let keep = self.local_bounds(o, bounds, &sub);
            let m = self.model(layers, o, &keep, d, &window, Scope::Local, Erasures::Free);
            let warm = self.point(&m, &sub);
            let before: f64 = m.lp.objective.iter().map(|(i, c)| warm[*i] * c).sum();
            let seconds = WINDOW_SECONDS.min(deadline.saturating_duration_since(Instant::now()).as_secs_f64());
            let Some(out) = m.lp.solve_within(Some(&warm), seconds)? else { return Ok(Some(false)) };
            let candidate = self.read(&m, &out.values);
            let after: f64 = m.lp.objective.iter().map(|(i, c)| out.values[*i] * c).sum();
            let better = after < before - 1e-9 && self.acceptable(o, bounds, &candidate, &sub, d, layers);
            if better {
                sub = candidate;
            }
            Ok(Some(better))
        })?;
        Ok(sub)
    }

    /// Sweeps windows of consecutive layers over the model: `step(first,
    /// span)` tries the window of `span` layers from `first` and says whether
    /// it changed the allocation (None: stop). Windows of about
    /// `WINDOW_BLOCKS` blocks slide by half their length; a sweep that
    /// changes nothing doubles their length, up to the whole model, where a
    /// sweep that changes nothing ends the search.
    fn sweep(&self, layers: usize, mut step: impl FnMut(usize, usize) -> Result<Option<bool>>) -> Result<()> {
        let per_layer = self.blocks.len().div_ceil(layers).max(1);
        let mut span = (WINDOW_BLOCKS / per_layer).clamp(2, layers.max(2));
        loop {
            let mut changed = false;
            let stride = (span / 2).max(1);
            let mut first = 0;
            while first < layers {
                match step(first, span)? {
                    None => return Ok(()),
                    Some(c) => changed |= c,
                }
                if first + span >= layers {
                    break;
                }
                first += stride;
            }
            if !changed {
                if span >= layers {
                    return Ok(());
                }
                span = (span * 2).min(layers);
            }
        }
    }

    /// The window search on the priced model: each window of layers frees
    /// its blocks and the erasures of the groups near it (the rest of the
    /// model pinned, erasures elsewhere kept as `schedule` has them,
    /// `Scope::Global`, so the objective is the whole model's priced value),
    /// warm-started from the allocation and its erasure `schedule`. A
    /// window's solution replaces both when it lowers the priced value, or
    /// keeps it and lowers the window's own widest MLP (`local_mlp_peak`:
    /// where several layers share the widest MLP no window lowers it alone).
    /// Sweeps as [`Context::improve`] does (`sweep`), until `bound` or the
    /// deadline.
    #[allow(clippy::too_many_arguments)]
    fn improve_priced(
        &self,
        layers: usize,
        o: Objective,
        bounds: &[(Objective, f64)],
        d: f64,
        mut sub: Vec<usize>,
        mut schedule: BTreeMap<Dir, usize>,
        mut value: f64,
        full: &[(usize, usize)],
        bound: f64,
        deadline: Instant,
    ) -> Result<(Vec<usize>, BTreeMap<Dir, usize>, f64)> {
        // windows whose solve was cut by time
        let mut cut = 0;
        self.sweep(layers, |first, span| {
            if Instant::now() >= deadline || value <= bound + 1e-9 {
                return Ok(None);
            }
            let window = layer_window(full, &sub, first, span, layers);
            if window.iter().all(|(a, b)| a == b) {
                return Ok(Some(false));
            }
            // the erasures of groups away from the window stay as scheduled
            let erasures = Erasures::Priced { within: SCHEDULE_LAYERS, keep: Some(&schedule) };
            let mut m = self.model(layers, o, bounds, d, &window, Scope::Global, erasures);
            let mut warm = self.point_with(&m, &sub, Some(&schedule));
            // the window's own widest MLP, at a weight below one unit of M,
            // while windows finish in their time
            let here = first..(first + span).min(layers);
            let local_before = m.mlp_load(here.clone(), &warm);
            let p = (cut < FLATTEN_CUT).then(|| {
                let unit = m.lp.objective.iter().find(|(v, _)| *v == m.mlp).map_or(0.0, |(_, c)| *c);
                m.local_mlp_peak(here.clone(), unit / (2.0 * (warm[m.mlp] + 1.0)))
            });
            if p.is_some() {
                warm.push(local_before);
            }
            let seconds = WINDOW_SECONDS.min(deadline.saturating_duration_since(Instant::now()).as_secs_f64());
            let Some(out) = m.lp.solve_within(Some(&warm), seconds)? else {
                cut += 1;
                return Ok(Some(false));
            };
            cut += !out.optimal as usize;
            let candidate = self.read(&m, &out.values);
            let after: f64 =
                m.lp.objective.iter().filter(|(i, _)| Some(*i) != p).map(|(i, c)| out.values[*i] * c).sum();
            let flatter = p.is_some() && m.mlp_load(here, &out.values) < local_before - 0.5;
            let lower = after < value - 1e-9 || (after <= value + 1e-9 && flatter);
            let keeps = bounds.iter().all(|(b, v)| self.lp_value(*b, &candidate, d) <= v + 1e-9);
            let better = lower && super::ilp::validate(self.blocks, &candidate, layers) && keeps;
            let lowered = better && after < value - 1e-9;
            if better {
                sub = candidate;
                schedule = self.read_erasures(&m, &out.values);
                value = after.min(value);
            }
            // a flatter window alone is no change to the sweep: windows
            // still grow when nothing lowers the priced value
            Ok(Some(lowered))
        })?;
        Ok((sub, schedule, value))
    }

    /// What a window must keep: no peak above the allocation's, for the
    /// stage's objective and every previous one.
    fn local_bounds(&self, o: Objective, bounds: &[(Objective, f64)], sub: &[usize]) -> Vec<(Objective, f64)> {
        let s = super::ilp::shape(self.blocks, &self.share, sub);
        let mut keep = Vec::new();
        for objective in bounds.iter().map(|(b, _)| *b).chain([o]) {
            match objective {
                Objective::Width => keep.push((Objective::Width, self.width(sub) as f64)),
                Objective::Heads => keep.push((Objective::Heads, s.heads as f64)),
                Objective::Mlp => keep.push((Objective::Mlp, s.mlp as f64)),
                Objective::Params => {
                    keep.push((Objective::Heads, s.heads as f64));
                    keep.push((Objective::Mlp, s.mlp as f64));
                }
                Objective::Layers => {}
            }
        }
        keep
    }

    /// A candidate replaces the current allocation when it is valid, keeps
    /// every previous stage's value and does not raise this stage's.
    fn acceptable(
        &self,
        o: Objective,
        bounds: &[(Objective, f64)],
        candidate: &[usize],
        current: &[usize],
        d: f64,
        layers: usize,
    ) -> bool {
        super::ilp::validate(self.blocks, candidate, layers)
            && bounds.iter().all(|(b, v)| self.lp_value(*b, candidate, d) <= v + 1e-9)
            && self.lp_value(o, candidate, d) <= self.lp_value(o, current, d) + 1e-9
    }
}

/// Block windows for a window search over layers `first..first + span`:
/// a block placed there may move within those layers (inside its own
/// window `full`), every other block stays where it is.
pub(super) fn layer_window(
    full: &[(usize, usize)],
    sub: &[usize],
    first: usize,
    span: usize,
    layers: usize,
) -> Vec<(usize, usize)> {
    let (lo, hi) = (2 * first, 2 * (first + span).min(layers) - 1);
    full.iter()
        .zip(sub)
        .map(|(&(e, l), &s)| {
            if s < lo || s > hi {
                return (s, s);
            }
            let from = if (lo % 2) == (s % 2) { lo } else { lo + 1 };
            let to = if (hi % 2) == (s % 2) { hi } else { hi - 1 };
            (e.max(from), l.min(to))
        })
        .collect()
}
