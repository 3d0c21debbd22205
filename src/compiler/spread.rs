//! MLP neuron spreading (solver-models/layer_allocation.md, "Neuron
//! spreading"): after allocation, an MLP block whose inputs are ready
//! before its sublayer and whose output is read only later may have its
//! neurons split across the MLP sublayers of that window. An MLP is a sum
//! over its neurons and its inputs do not change in the window, so the
//! parts add up to the block's output before any reader runs: the result is
//! the same, and the widest MLP layer (every layer is padded to it) can
//! fall.
//!
//! A small ILP chooses the split: `n_b_t` neurons of block b in sublayer t,
//! minimising the widest MLP sublayer, then the number of parts. A split is
//! kept only when the model it gives has a narrower d_mlp once the residual
//! layout's erase neurons are counted, and no wider residual stream.

use super::alloc::lp::{Cmp, Lp};
use super::alloc::Allocation;
use super::craft::{Block, BlockKind, Body, Mlp};
use super::lower::Lowered;
use super::residual;
use crate::diagnostic::Result;

/// What spreading did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Spread {
    /// Per block split (by its index before the split): its node and the
    /// (layer, neurons) of each part.
    pub split: Vec<(crate::rasp::NodeId, Vec<(usize, usize)>)>,
    /// The widest MLP layer, erase neurons included, before and after.
    pub d_mlp: (usize, usize),
}

/// The widest MLP layer of a layout, erase neurons included.
fn d_mlp(blocks: &[Block], sub: &[usize], layout: &residual::Layout, layers: usize) -> usize {
    let mut width = vec![0usize; layers];
    for (b, s) in blocks.iter().zip(sub) {
        if b.kind() == BlockKind::Mlp {
            width[s / 2] += b.width();
        }
    }
    for e in &layout.erasures {
        width[e.layer] += e.with.new_neurons();
    }
    width.into_iter().max().unwrap_or(0)
}

/// Seconds the spreading ILP may take (it starts from the allocation as it
/// is, so it only ever improves on it).
pub const SPREAD_SECONDS: f64 = 2.0;

/// The blocks and allocation with MLP neurons spread where that narrows
/// the model (parts are inserted right after their block, so blocks still
/// follow the blocks they read), laid out with residual sharing when
/// `shared`. None when no split narrows it.
pub fn spread(
    lowered: &Lowered,
    allocation: &Allocation,
    shared: bool,
) -> Result<Option<(Lowered, Allocation, Spread)>> {
    let layout_of = |l: &Lowered, a: &Allocation| {
        let uses = residual::uses(l);
        if shared {
            residual::Layout::shared(l, &uses, a)
        } else {
            residual::Layout::unshared(l, &uses, a)
        }
    };
    let blocks = &lowered.blocks;
    let sub = &allocation.sublayer;
    let layers = allocation.n_layers();
    if layers == 0 {
        return Ok(None);
    }
    let mut readers = vec![Vec::new(); blocks.len()];
    for (r, b) in blocks.iter().enumerate() {
        for a in &b.after {
            readers[*a].push(r);
        }
    }
    // each MLP's window: after its inputs, before its readers, where they are now
    let window: Vec<(usize, usize)> = blocks
        .iter()
        .enumerate()
        .map(|(b, block)| {
            if block.kind() != BlockKind::Mlp || block.width() < 2 {
                return (sub[b], sub[b]);
            }
            let after = block.after.iter().map(|a| sub[*a] + 1).max().unwrap_or(0);
            let lo = if after % 2 == 1 { after } else { after + 1 };
            let before = readers[b].iter().map(|r| sub[*r]).min().unwrap_or(2 * layers);
            let hi = if (before - 1) % 2 == 1 { before - 1 } else { before - 2 };
            (lo.min(sub[b]), hi.max(sub[b]))
        })
        .collect();
    if window.iter().all(|(lo, hi)| lo == hi) {
        return Ok(None);
    }
    // the model: n_b_t, z_b_t (part used), M
    let mut lp = Lp { comment: "tracr-opt neuron spreading".into(), ..Lp::default() };
    let total: usize = blocks.iter().map(Block::width).sum();
    let m = lp.var("M".into(), 0.0, total as f64, true);
    let mut parts: Vec<Vec<(usize, usize, usize)>> = vec![Vec::new(); blocks.len()];
    let mut load: Vec<Vec<(usize, f64)>> = vec![Vec::new(); 2 * layers];
    let mut fixed = vec![0.0; 2 * layers];
    let mut z_terms = Vec::new();
    for (b, block) in blocks.iter().enumerate() {
        if block.kind() != BlockKind::Mlp {
            continue;
        }
        let (lo, hi) = window[b];
        let w = block.width() as f64;
        if lo == hi {
            fixed[sub[b]] += w;
            continue;
        }
        let mut sum = Vec::new();
        for t in (lo..=hi).step_by(2) {
            let n = lp.var(format!("n_b{b}_s{t}"), 0.0, w, true);
            let z = lp.var(format!("z_b{b}_s{t}"), 0.0, 1.0, true);
            lp.constrain(format!("part_b{b}_s{t}"), vec![(n, 1.0), (z, -w)], Cmp::Le, 0.0);
            sum.push((n, 1.0));
            load[t].push((n, 1.0));
            z_terms.push(z);
            parts[b].push((t, n, z));
        }
        lp.constrain(format!("all_b{b}"), sum, Cmp::Eq, w);
    }
    // an MLP reading a spread MLP: every part of the reader after every part of the read
    for (r, block) in blocks.iter().enumerate() {
        for a in &block.after {
            for (t, _, zr) in &parts[r] {
                for (t2, _, za) in parts[*a].iter().filter(|(t2, _, _)| t2 >= t) {
                    lp.constrain(format!("order_b{a}_s{t2}_b{r}_s{t}"), vec![(*zr, 1.0), (*za, 1.0)], Cmp::Le, 1.0);
                }
            }
        }
    }
    for t in (1..2 * layers).step_by(2) {
        let mut terms = load[t].clone();
        terms.push((m, -1.0));
        lp.constrain(format!("mlp_s{t}"), terms, Cmp::Le, -fixed[t]);
    }
    // the widest MLP first, then as few parts as possible
    let eps = 1.0 / (z_terms.len() as f64 + 1.0);
    lp.objective = std::iter::once((m, 1.0)).chain(z_terms.iter().map(|z| (*z, eps))).collect();
    // the allocation as it is: one part per block
    let mut warm = vec![0.0; lp.vars.len()];
    for (b, ps) in parts.iter().enumerate() {
        for (t, n, z) in ps {
            if *t == sub[b] {
                warm[*n] = blocks[b].width() as f64;
                warm[*z] = 1.0;
            }
        }
    }
    let mut widest = fixed.clone();
    for (b, ps) in parts.iter().enumerate() {
        if !ps.is_empty() {
            widest[sub[b]] += blocks[b].width() as f64;
        }
    }
    warm[m] = widest.iter().copied().fold(0.0, f64::max);
    let Some(out) = lp.solve_within(Some(&warm), SPREAD_SECONDS)? else { return Ok(None) };
    if out.values[m] > warm[m] - 0.5 {
        return Ok(None);
    }
    let split: Vec<Vec<(usize, usize)>> = parts
        .iter()
        .map(|ps| ps.iter().map(|(t, n, _)| (*t, out.values[*n].round() as usize)).filter(|(_, k)| *k > 0).collect())
        .collect();
    // every neuron placed once (the solver's integers, rounded)
    let whole = split
        .iter()
        .enumerate()
        .all(|(b, ps)| ps.is_empty() || ps.iter().map(|(_, k)| k).sum::<usize>() == blocks[b].width());
    if !whole {
        return Ok(None);
    }
    // the split model, checked against the one it replaces
    let before_layout = layout_of(lowered, allocation);
    let before = d_mlp(&lowered.blocks, &allocation.sublayer, &before_layout, layers);
    let (new_lowered, new_allocation) = apply(lowered, allocation, &split);
    let layout = layout_of(&new_lowered, &new_allocation);
    let after = d_mlp(&new_lowered.blocks, &new_allocation.sublayer, &layout, layers);
    if after >= before || layout.d_model() > before_layout.d_model() {
        return Ok(None);
    }
    let report = Spread {
        split: split
            .iter()
            .enumerate()
            .filter(|(_, ps)| ps.len() > 1)
            .map(|(b, ps)| (lowered.blocks[b].node, ps.iter().map(|(t, k)| (t / 2, *k)).collect()))
            .collect(),
        d_mlp: (before, after),
    };
    Ok(Some((new_lowered, new_allocation, report)))
}

/// The blocks with each split block replaced by its parts (the first part
/// keeps the block's place, the others follow it), every index remapped.
fn apply(lowered: &Lowered, allocation: &Allocation, split: &[Vec<(usize, usize)>]) -> (Lowered, Allocation) {
    let blocks = &lowered.blocks;
    // new indices: each block, then its extra parts
    let mut first = Vec::with_capacity(blocks.len());
    let mut count = 0;
    for b in 0..blocks.len() {
        first.push(count);
        count += split[b].len().max(1);
    }
    let all = |b: usize| first[b]..first[b] + split[b].len().max(1);
    let mut out = Vec::with_capacity(count);
    let mut sub = Vec::with_capacity(count);
    for (b, block) in blocks.iter().enumerate() {
        let after: Vec<usize> = block.after.iter().flat_map(|a| all(*a)).collect();
        match (&block.body, split[b].len()) {
            (Body::Mlp(mlp), n) if n > 1 => {
                let mut from = 0;
                for (t, k) in &split[b] {
                    let part = from..from + k;
                    let body = Mlp {
                        hidden: *k,
                        w_in: mlp
                            .w_in
                            .iter()
                            .filter(|(_, n, _)| part.contains(n))
                            .map(|(d, n, w)| (*d, n - from, *w))
                            .collect(),
                        w_out: mlp
                            .w_out
                            .iter()
                            .filter(|(n, _, _)| part.contains(n))
                            .map(|(n, d, w)| (n - from, *d, *w))
                            .collect(),
                    };
                    out.push(Block { node: block.node, role: block.role, body: Body::Mlp(body), after: after.clone() });
                    sub.push(*t);
                    from += k;
                }
            }
            _ => {
                out.push(Block { after, ..block.clone() });
                sub.push(allocation.sublayer[b]);
            }
        }
    }
    let producer = lowered.producer.iter().map(|p| p.map(|b| first[b])).collect();
    (
        Lowered { blocks: out, producer, ..lowered.clone() },
        Allocation { sublayer: sub, info: allocation.info.clone(), erase: allocation.erase.clone() },
    )
}
