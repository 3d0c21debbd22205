//! Factorisation: every head at the numerical rank of its W_QK and W_OV, every
//! MLP block without neurons that cannot matter.
//!
//! Heads. Tracr folds W_QK into W_Q and lets W_K select the key directions, so
//! a head is as wide as the number of key values it reads; likewise W_OV. The
//! true width is the rank. When parallel columns (or rows) can be grouped to
//! reach that rank, the factor stays sparse and axis-aligned (`Basis::Axis` /
//! `Grouped`): an `Select(tokens, tokens, TRUE)` head keeps one key dimension
//! summing every token direction. Only when grouping cannot reach the rank do
//! we take singular vectors (`Basis::Svd`), balanced as U√Σ and V√Σ, with signs
//! fixed so the output is deterministic. Every factor is checked against the
//! matrix it replaces; a reconstruction error above `RECONSTRUCTION_TOLERANCE`
//! (relative) falls back to the exact column layout.
//!
//! Why the tolerance keeps the model exact: the smallest singular value kept is
//! above `max(m, n)·ε·σ₁` and everything dropped is below it, so the product
//! differs from W_QK by at most ~1e-15·|W| entry-wise, i.e. ~1e-13 on a score
//! of size s ≈ 45 — six orders of magnitude below the 1e-9 attention leakage
//! the scale s is chosen for (docs/EXACTNESS.md).
//!
//! MLPs. A neuron is dropped when it writes nothing (zero output row: e.g. a
//! discretiser step where the output does not change) or when it can never
//! fire: its largest pre-activation over every residual state the value sets
//! allow at a non-BOS position is ≤ 0 (at BOS every neuron is gated off).
//! Neurons with identical input weights are merged and their outputs summed.

use super::craft::{Basis, Block, Body, Dir, DirVec, Factor, HeadLayout, Mlp};
use crate::rasp::valueset::ValueSets;
use crate::rasp::{Encoding, Program};
use faer::Mat;
use std::collections::{BTreeMap, HashMap};

/// Largest relative entry-wise error a factorisation may have.
pub const RECONSTRUCTION_TOLERANCE: f64 = 1e-12;

/// What the pass did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Heads factorised.
    pub heads: usize,
    /// Heads whose factor needed singular vectors.
    pub rotated: usize,
    /// MLP neurons before the pass.
    pub neurons_before: usize,
    /// MLP neurons after it.
    pub neurons_after: usize,
}

/// Factorises every head and prunes every MLP block in place.
pub fn run(blocks: &mut [Block], program: &Program, vs: &ValueSets) -> Stats {
    let ranges = Ranges::new(program, vs);
    let mut stats = Stats::default();
    for b in blocks.iter_mut() {
        match &mut b.body {
            Body::Head(h) => {
                let qk = factorise(&h.qk_triplets());
                let ov = factorise(&h.ov);
                stats.heads += 1;
                stats.rotated += usize::from(qk.basis == Basis::Svd || ov.basis == Basis::Svd);
                h.layout = Some(HeadLayout { qk, ov });
            }
            Body::Mlp(m) => {
                stats.neurons_before += m.hidden;
                *m = prune(m, &ranges);
                stats.neurons_after += m.hidden;
            }
        }
    }
    stats
}

/// A sparse matrix over directions as a dense one over the rows and columns it
/// touches (sorted, so the result is deterministic).
struct Dense {
    rows: Vec<Dir>,
    cols: Vec<Dir>,
    m: Mat<f64>,
}

impl Dense {
    /// Rows and columns sorted, entries of one (row, column) summed in the
    /// order given, lines whose sum is all zero left out. Directions are
    /// numbered through hash maps first: comparing and cloning them per entry
    /// cost seconds on a 1281×1280 W_QK.
    fn new(entries: &[(Dir, Dir, f64)]) -> Dense {
        let number = |dirs: &mut dyn Iterator<Item = &'_ Dir>| -> (Vec<Dir>, HashMap<Dir, usize>) {
            let distinct: std::collections::HashSet<&Dir> = dirs.collect();
            let mut sorted: Vec<&Dir> = distinct.into_iter().collect();
            sorted.sort();
            let index = sorted.iter().enumerate().map(|(i, d)| ((*d).clone(), i)).collect();
            (sorted.into_iter().cloned().collect(), index)
        };
        let (all_rows, ri) = number(&mut entries.iter().map(|(r, _, _)| r));
        let (all_cols, ci) = number(&mut entries.iter().map(|(_, c, _)| c));
        let mut full = Mat::<f64>::zeros(all_rows.len(), all_cols.len());
        for (r, c, w) in entries {
            full[(ri[r], ci[c])] += w;
        }
        let keep_rows: Vec<usize> =
            (0..all_rows.len()).filter(|i| (0..all_cols.len()).any(|j| full[(*i, j)] != 0.0)).collect();
        let keep_cols: Vec<usize> =
            (0..all_cols.len()).filter(|j| (0..all_rows.len()).any(|i| full[(i, *j)] != 0.0)).collect();
        let m = Mat::<f64>::from_fn(keep_rows.len(), keep_cols.len(), |i, j| full[(keep_rows[i], keep_cols[j])]);
        Dense {
            rows: keep_rows.iter().map(|i| all_rows[*i].clone()).collect(),
            cols: keep_cols.iter().map(|j| all_cols[*j].clone()).collect(),
            m,
        }
    }

    fn max_abs(&self) -> f64 {
        let mut best = 0.0f64;
        for j in 0..self.m.ncols() {
            for i in 0..self.m.nrows() {
                best = best.max(self.m[(i, j)].abs());
            }
        }
        best
    }
}

/// The numerical rank: singular values above `max(m, n)·ε·σ₁`.
pub fn numerical_rank(singular_values: &[f64], m: usize, n: usize) -> usize {
    let Some(top) = singular_values.iter().cloned().reduce(f64::max) else { return 0 };
    let tol = (m.max(n) as f64) * f64::EPSILON * top;
    singular_values.iter().filter(|s| **s > tol).count()
}

/// A factor over the dense matrix's row and column indices.
struct DenseFactor {
    left: Vec<Vec<f64>>,
    right: Vec<Vec<f64>>,
    basis: Basis,
}

impl DenseFactor {
    /// Largest entry-wise |W − Σ left ⊗ right|.
    fn error(&self, m: &Mat<f64>) -> f64 {
        let mut err = 0.0f64;
        for i in 0..m.nrows() {
            for j in 0..m.ncols() {
                let got: f64 = self.left.iter().zip(&self.right).map(|(l, r)| l[i] * r[j]).sum();
                err = err.max((got - m[(i, j)]).abs());
            }
        }
        err
    }

    fn over(&self, d: &Dense) -> Factor {
        let sparse = |v: &Vec<f64>, names: &[Dir]| -> DirVec {
            v.iter().zip(names).filter(|(x, _)| **x != 0.0).map(|(x, n)| (n.clone(), *x)).collect()
        };
        Factor {
            left: self.left.iter().map(|v| sparse(v, &d.rows)).collect(),
            right: self.right.iter().map(|v| sparse(v, &d.cols)).collect(),
            basis: self.basis,
        }
    }
}

/// Factorises a sparse matrix over directions at its numerical rank.
pub fn factorise(entries: &[(Dir, Dir, f64)]) -> Factor {
    let d = Dense::new(entries);
    if d.rows.is_empty() {
        return Factor { left: vec![], right: vec![], basis: Basis::Axis };
    }
    let by_cols = group_parallel(&d.m, false);
    let by_rows = group_parallel(&d.m, true);
    let (groups, by_rows_chosen) = if by_cols.len() <= by_rows.len() { (&by_cols, false) } else { (&by_rows, true) };
    // the rank, from the structure when the representatives are triangular
    // up to a permutation (no dense decomposition), else from the singular values
    let rank = if triangular(&d.m, groups, by_rows_chosen) {
        groups.len()
    } else {
        let Ok(sv) = d.m.singular_values() else { return Factor::by_columns(entries) };
        numerical_rank(&sv, d.rows.len(), d.cols.len())
    };
    let candidate = (groups.len() == rank).then(|| grouped(&d.m, groups, by_rows_chosen));
    // a grouped factor is within the tolerance by construction: each member
    // line is α·representative, the very products `group_parallel` checked
    // against RECONSTRUCTION_TOLERANCE · (its largest entry ≤ the matrix's)
    if let Some(f) = candidate {
        return f.over(&d);
    }
    let factor = match svd_factor(&d.m, rank) {
        Some(f) => f,
        None => return Factor::by_columns(entries),
    };
    if factor.error(&d.m) <= RECONSTRUCTION_TOLERANCE * d.max_abs() {
        factor.over(&d)
    } else {
        Factor::by_columns(entries)
    }
}

/// An entry below this fraction of its line's largest (and not zero) makes
/// the line "unclean": with every line clean, parallel lines have the same
/// support, so only lines of one support need comparing.
const CLEAN: f64 = 1e-6;

/// Groups of parallel nonzero columns (rows when `by_rows`): per group, the
/// representative index and every member with its multiple of it.
///
/// A line joins the first group (in creation order) whose representative it
/// is parallel to within `RECONSTRUCTION_TOLERANCE` of its largest entry.
/// When every line is clean (`CLEAN`), lines parallel within that tolerance
/// have the same support: if x ≈ α·r and r_i ≠ 0 = x_i, then |α·r_i| > CLEAN·|x|∞
/// far above the tolerance, and symmetrically. So a line is compared only
/// with the groups of its support (a hash lookup), which gives the same
/// groups as comparing with all of them, in O(nonzeros) instead of
/// O(lines² · length) for matrices like a triangular W_QK whose lines all differ.
fn group_parallel(m: &Mat<f64>, by_rows: bool) -> Vec<(usize, Vec<(usize, f64)>)> {
    let (count, len) = if by_rows { (m.nrows(), m.ncols()) } else { (m.ncols(), m.nrows()) };
    let line = |v: usize| -> Vec<f64> { (0..len).map(|i| if by_rows { m[(v, i)] } else { m[(i, v)] }).collect() };
    let lines: Vec<Vec<f64>> = (0..count).map(line).collect();
    let norm = |x: &[f64]| x.iter().fold(0.0f64, |a, b| a.max(b.abs()));
    let clean = lines.iter().all(|x| {
        let n = norm(x);
        x.iter().all(|v| *v == 0.0 || v.abs() > CLEAN * n)
    });
    // per group: representative, the index of its largest entry (first on ties), members
    let mut groups: Vec<(usize, usize, Vec<(usize, f64)>)> = Vec::new();
    // support → the groups with that support, in creation order (clean matrices only)
    let mut by_support: HashMap<Vec<usize>, Vec<usize>> = HashMap::new();
    let mut all: Vec<usize> = Vec::new();
    for (v, x) in lines.iter().enumerate() {
        let n = norm(x);
        if n == 0.0 {
            continue;
        }
        let support: Vec<usize> = if clean { (0..len).filter(|i| x[*i] != 0.0).collect() } else { vec![] };
        let candidates = if clean { by_support.get(&support).map_or(&[][..], Vec::as_slice) } else { &all[..] };
        let home = candidates.iter().find_map(|g| {
            let (rep, p, _) = &groups[*g];
            let r = &lines[*rep];
            let alpha = x[*p] / r[*p];
            let parallel =
                alpha != 0.0 && x.iter().zip(r).all(|(xi, ri)| (xi - alpha * ri).abs() <= RECONSTRUCTION_TOLERANCE * n);
            parallel.then_some((*g, alpha))
        });
        match home {
            Some((g, alpha)) => groups[g].2.push((v, alpha)),
            None => {
                let p = (0..len).fold(0, |p, i| if x[i].abs() > x[p].abs() { i } else { p });
                groups.push((v, p, vec![(v, 1.0)]));
                if clean {
                    by_support.entry(support).or_default().push(groups.len() - 1);
                } else {
                    all.push(groups.len() - 1);
                }
            }
        }
    }
    groups.into_iter().map(|(rep, _, members)| (rep, members)).collect()
}

/// Whether the groups' representative lines are triangular up to a
/// permutation of lines and positions, found by eliminating singletons (a
/// position where only one remaining representative is nonzero pivots it):
/// then they are linearly independent and the rank is their number, with no
/// dense decomposition (a 2560×2560 W_QK of `sort` at max_seq_len 256 is
/// such a triangle). The singular values could only call such a matrix
/// rank-deficient if its condition number exceeded 1/(n·ε) ≈ 10¹²; even
/// then the grouped factor is exact by construction (it would only keep a
/// head dimension the SVD would drop).
fn triangular(m: &Mat<f64>, groups: &[(usize, Vec<(usize, f64)>)], by_rows: bool) -> bool {
    let len = if by_rows { m.ncols() } else { m.nrows() };
    let at = |rep: usize, i: usize| if by_rows { m[(rep, i)] } else { m[(i, rep)] };
    let support: Vec<Vec<usize>> =
        groups.iter().map(|(rep, _)| (0..len).filter(|i| at(*rep, *i) != 0.0).collect()).collect();
    let mut holders: Vec<Vec<usize>> = vec![Vec::new(); len];
    for (g, s) in support.iter().enumerate() {
        for i in s {
            holders[*i].push(g);
        }
    }
    let mut count: Vec<usize> = holders.iter().map(Vec::len).collect();
    let mut gone = vec![false; groups.len()];
    let mut queue: Vec<usize> = (0..len).filter(|i| count[*i] == 1).collect();
    let mut eliminated = 0;
    while let Some(i) = queue.pop() {
        if count[i] != 1 {
            continue;
        }
        let Some(&g) = holders[i].iter().find(|g| !gone[**g]) else { continue };
        gone[g] = true;
        eliminated += 1;
        for j in &support[g] {
            count[*j] -= 1;
            if count[*j] == 1 {
                queue.push(*j);
            }
        }
    }
    eliminated == groups.len()
}

/// The factor from parallel groups: per group, the representative line on
/// one side and the members (with their multiples) on the other.
fn grouped(m: &Mat<f64>, groups: &[(usize, Vec<(usize, f64)>)], by_rows: bool) -> DenseFactor {
    let (nr, nc) = (m.nrows(), m.ncols());
    let mut left = Vec::new();
    let mut right = Vec::new();
    for (rep, members) in groups {
        let line: Vec<f64> =
            if by_rows { (0..nc).map(|j| m[(*rep, j)]).collect() } else { (0..nr).map(|i| m[(i, *rep)]).collect() };
        let mut sel = vec![0.0; if by_rows { nr } else { nc }];
        for (v, a) in members {
            sel[*v] = *a;
        }
        if by_rows {
            left.push(sel);
            right.push(line);
        } else {
            left.push(line);
            right.push(sel);
        }
    }
    let axis = groups.iter().all(|(_, m)| m.len() == 1);
    DenseFactor { left, right, basis: if axis { Basis::Axis } else { Basis::Grouped } }
}

/// Balanced singular-vector factor of the given rank, signs fixed so that
/// each left vector's largest entry (first on ties) is positive, and entries
/// below 1e-15 of their vector's largest set to zero.
fn svd_factor(m: &Mat<f64>, rank: usize) -> Option<DenseFactor> {
    let svd = m.thin_svd().ok()?;
    let (u, s, v) = (svd.U(), svd.S().column_vector(), svd.V());
    let clean = |x: Vec<f64>| -> Vec<f64> {
        let top = x.iter().fold(0.0f64, |a, b| a.max(b.abs()));
        x.into_iter().map(|e| if e.abs() <= 1e-15 * top { 0.0 } else { e }).collect()
    };
    let mut left = Vec::with_capacity(rank);
    let mut right = Vec::with_capacity(rank);
    for j in 0..rank {
        let root = s[j].sqrt();
        let p = (0..u.nrows()).fold(0, |p, i| if u[(i, j)].abs() > u[(p, j)].abs() { i } else { p });
        let sign = if u[(p, j)] < 0.0 { -root } else { root };
        left.push(clean((0..u.nrows()).map(|i| sign * u[(i, j)]).collect()));
        right.push(clean((0..v.nrows()).map(|i| sign * v[(i, j)]).collect()));
    }
    Some(DenseFactor { left, right, basis: Basis::Svd })
}

/// What a residual direction can hold at a non-BOS position.
#[derive(Clone, Copy, Debug)]
enum Range {
    /// One of a categorical s-op's directions: its group holds at most one 1.
    OneHot,
    Interval(f64, f64),
    Unknown,
}

/// Residual ranges from the value sets.
pub struct Ranges {
    numerical: HashMap<String, (f64, f64)>,
    categorical: std::collections::HashSet<String>,
}

impl Ranges {
    /// The bounds every s-op's directions can take, from the value sets.
    pub fn new(program: &Program, vs: &ValueSets) -> Ranges {
        let mut numerical = HashMap::new();
        let mut categorical: std::collections::HashSet<String> = ["tokens".to_string(), "indices".to_string()].into();
        for (id, n) in program.nodes.iter().enumerate() {
            match n.encoding {
                Encoding::Categorical => {
                    categorical.insert(n.label.clone());
                }
                Encoding::Numerical => {
                    // None is written as nothing (0)
                    let xs: Vec<f64> = vs.of(id).iter().map(|v| v.as_f64().unwrap_or(0.0)).collect();
                    if !xs.is_empty() && xs.iter().all(|x| x.is_finite()) {
                        let lo = xs.iter().cloned().fold(f64::INFINITY, f64::min);
                        let hi = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                        numerical.insert(n.label.clone(), (lo, hi));
                    }
                }
            }
        }
        Ranges { numerical, categorical }
    }

    fn of(&self, d: &Dir) -> Range {
        match &d.value {
            Some(_) if self.categorical.contains(&d.name) => Range::OneHot,
            Some(_) => Range::Unknown,
            None if *d == Dir::one() => Range::Interval(1.0, 1.0),
            None => self.numerical.get(&d.name).map_or(Range::Unknown, |(lo, hi)| Range::Interval(*lo, *hi)),
        }
    }

    /// An upper bound on a neuron's pre-activation at any non-BOS position.
    fn max_preact(&self, weights: &[(Dir, f64)]) -> f64 {
        let mut groups: HashMap<&str, f64> = HashMap::new();
        let mut total = 0.0;
        for (d, w) in weights {
            match self.of(d) {
                Range::OneHot => {
                    let g = groups.entry(&d.name).or_insert(0.0);
                    *g = g.max(*w);
                }
                Range::Interval(lo, hi) => total += (w * lo).max(w * hi),
                Range::Unknown => return f64::INFINITY,
            }
        }
        total + groups.values().sum::<f64>()
    }
}

/// The MLP without neurons that write nothing or never fire, and with
/// neurons of identical input weights merged.
pub fn prune(m: &Mlp, ranges: &Ranges) -> Mlp {
    let mut inputs: Vec<BTreeMap<Dir, f64>> = vec![BTreeMap::new(); m.hidden];
    for (d, h, w) in &m.w_in {
        *inputs[*h].entry(d.clone()).or_insert(0.0) += w;
    }
    let mut outputs: Vec<BTreeMap<Dir, f64>> = vec![BTreeMap::new(); m.hidden];
    for (h, d, w) in &m.w_out {
        *outputs[*h].entry(d.clone()).or_insert(0.0) += w;
    }
    // neurons by their input weights, in first-seen order
    let mut merged: Vec<(Vec<(Dir, f64)>, BTreeMap<Dir, f64>)> = Vec::new();
    let mut by_input: HashMap<Vec<(Dir, u64)>, usize> = HashMap::new();
    for h in 0..m.hidden {
        let w_in: Vec<(Dir, f64)> =
            inputs[h].iter().filter(|(_, w)| **w != 0.0).map(|(d, w)| (d.clone(), *w)).collect();
        if w_in.is_empty() || ranges.max_preact(&w_in) <= 0.0 {
            continue;
        }
        let key: Vec<(Dir, u64)> = w_in.iter().map(|(d, w)| (d.clone(), w.to_bits())).collect();
        let slot = *by_input.entry(key).or_insert_with(|| {
            merged.push((w_in.clone(), BTreeMap::new()));
            merged.len() - 1
        });
        for (d, w) in &outputs[h] {
            *merged[slot].1.entry(d.clone()).or_insert(0.0) += w;
        }
    }
    let mut out = Mlp::default();
    for (w_in, w_out) in merged {
        if w_out.values().all(|w| *w == 0.0) {
            continue;
        }
        let h = out.neuron();
        out.w_in.extend(w_in.into_iter().map(|(d, w)| (d, h, w)));
        out.w_out.extend(w_out.into_iter().filter(|(_, w)| *w != 0.0).map(|(d, w)| (h, d, w)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    fn v(name: &str, x: i64) -> Dir {
        Dir::valued(name, &Value::Int(x))
    }

    fn product(f: &Factor, r: &Dir, c: &Dir) -> f64 {
        f.left.iter().zip(&f.right).map(|(l, rr)| l.get(r).unwrap_or(&0.0) * rr.get(c).unwrap_or(&0.0)).sum()
    }

    #[test]
    fn all_true_selector_keeps_one_summed_key_direction() {
        // rows a, b, c all select keys a, b, c; plus the BOS entry
        let mut e = vec![];
        for q in 0..3 {
            for k in 0..3 {
                e.push((v("t", q), v("t", k), 5.0));
            }
        }
        e.push((Dir::one(), Dir::bos(), 2.5));
        let f = factorise(&e);
        assert_eq!(f.rank(), 2);
        assert_eq!(f.basis, Basis::Grouped);
        for (r, c, w) in &e {
            assert!((product(&f, r, c) - w).abs() < 1e-12);
        }
        assert_eq!(product(&f, &Dir::one(), &v("t", 0)), 0.0);
    }

    #[test]
    fn lines_parallel_up_to_a_tiny_entry_still_group() {
        // column k1 = 2·k0 plus an entry far below the tolerance where k0 has
        // none: their supports differ, so grouping must compare across supports
        let e = vec![
            (v("q", 0), v("k", 0), 1.0),
            (v("q", 1), v("k", 0), 2.0),
            (v("q", 0), v("k", 1), 2.0),
            (v("q", 1), v("k", 1), 4.0),
            (v("q", 2), v("k", 1), 1e-13),
        ];
        let groups = group_parallel(&Dense::new(&e).m, false);
        assert_eq!(groups.len(), 1, "{groups:?}");
        assert_eq!(groups[0].1, vec![(0, 1.0), (1, 2.0)]);
        // and lines of one support that are not parallel stay apart
        let e = vec![
            (v("q", 0), v("k", 0), 1.0),
            (v("q", 1), v("k", 0), 2.0),
            (v("q", 0), v("k", 1), 1.0),
            (v("q", 1), v("k", 1), 3.0),
        ];
        assert_eq!(group_parallel(&Dense::new(&e).m, false).len(), 2);
    }

    #[test]
    fn permutation_stays_axis_aligned() {
        let e: Vec<_> = (0..4).map(|i| (v("q", i), v("k", 3 - i), 7.0)).collect();
        let f = factorise(&e);
        assert_eq!((f.rank(), f.basis), (4, Basis::Axis));
        assert!(f.right.iter().all(|r| r.len() == 1 && r.values().all(|w| *w == 1.0)));
    }

    #[test]
    fn rank_deficient_without_parallel_lines_rotates() {
        // rows r0, r1, r0 + r1: rank 2, no two rows or columns parallel
        let rows = [[1.0, 2.0, 0.0], [0.0, 1.0, 3.0], [1.0, 3.0, 3.0]];
        let mut e = vec![];
        for (i, row) in rows.iter().enumerate() {
            for (j, w) in row.iter().enumerate() {
                if *w != 0.0 {
                    e.push((v("a", i as i64), v("b", j as i64), *w));
                }
            }
        }
        let f = factorise(&e);
        assert_eq!((f.rank(), f.basis), (2, Basis::Svd));
        for i in 0..3 {
            for j in 0..3 {
                assert!((product(&f, &v("a", i), &v("b", j)) - rows[i as usize][j as usize]).abs() < 1e-12);
            }
        }
        // deterministic: the same input gives the same factor
        assert_eq!(factorise(&e), f);
    }

    #[test]
    fn numerical_rank_ignores_roundoff() {
        assert_eq!(numerical_rank(&[3.0, 1.0, 1e-17], 3, 3), 2);
        assert_eq!(numerical_rank(&[], 0, 0), 0);
    }

    fn ranges() -> Ranges {
        Ranges {
            numerical: [("x".to_string(), (0.0, 1.0))].into(),
            categorical: ["c".to_string(), "tokens".to_string()].into(),
        }
    }

    #[test]
    fn prune_drops_silent_and_dead_neurons_and_merges_twins() {
        let mut m = Mlp::default();
        let (live, silent, dead, twin) = (m.neuron(), m.neuron(), m.neuron(), m.neuron());
        for h in [live, silent, twin] {
            m.w_in.push((v("c", 1), h, 1.0));
            m.w_in.push((Dir::bos(), h, -2.0));
        }
        // dead: x ≤ 1, so x - 1 ≤ 0 everywhere
        m.w_in.push((Dir::named("x"), dead, 1.0));
        m.w_in.push((Dir::one(), dead, -1.0));
        m.w_out.push((live, v("out", 0), 1.0));
        m.w_out.push((twin, v("out", 0), 2.0));
        m.w_out.push((twin, v("out", 1), 1.0));
        m.w_out.push((dead, v("out", 1), 1.0));
        let p = prune(&m, &ranges());
        assert_eq!(p.hidden, 1);
        let out: Vec<_> = p.w_out.iter().map(|(_, d, w)| (d.clone(), *w)).collect();
        assert_eq!(out, vec![(v("out", 0), 3.0), (v("out", 1), 1.0)]);
    }

    #[test]
    fn prune_keeps_neurons_that_can_fire() {
        let mut m = Mlp::default();
        let (a, b, c) = (m.neuron(), m.neuron(), m.neuron());
        // fires at x = 1
        m.w_in.push((Dir::named("x"), a, 1.0));
        m.w_in.push((Dir::one(), a, -0.5));
        // unknown direction: cannot be bounded
        m.w_in.push((Dir::named("attn_out"), b, 1.0));
        // one-hot: -1 on c:0 but +1 on c:1
        m.w_in.push((v("c", 0), c, -1.0));
        m.w_in.push((v("c", 1), c, 1.0));
        for h in [a, b, c] {
            m.w_out.push((h, v("out", h as i64), 1.0));
        }
        assert_eq!(prune(&m, &ranges()).hidden, 3);
    }
}
