//! The forward pass: embeddings, attention + ReLU MLP layers with residual
//! connections, no layer norm, unembedding. Compiled weights are >99% zeros,
//! so each matrix is stored by nonzero rows and the residual stream (itself
//! sparse) is multiplied row by row.

use super::Model;
use crate::diagnostic::{Error, Result};
use crate::value::Value;
use ndarray::{Array2, ArrayView2};
use std::cmp::Ordering;
use std::collections::HashMap;

/// A matrix as, per row, its nonzero (column, value) entries.
struct Sparse {
    rows: Vec<Vec<(usize, f64)>>,
    cols: usize,
}

impl Sparse {
    fn new(a: ArrayView2<f64>) -> Sparse {
        let rows = a
            .outer_iter()
            .map(|r| r.iter().enumerate().filter(|(_, v)| **v != 0.0).map(|(j, v)| (j, *v)).collect())
            .collect();
        Sparse { rows, cols: a.ncols() }
    }

    /// `x · W` for a row vector given by its nonzero entries, into `out`.
    fn scatter(&self, x: &[(usize, f64)], out: &mut Scatter) {
        for (i, xi) in x {
            for (j, w) in &self.rows[*i] {
                out.add(*j, xi * w);
            }
        }
    }
}

/// A dense vector that lists the entries written since it was last
/// drained, so that reading its nonzeros and clearing it cost what was
/// written, not its length (a long model's residual stream has thousands of
/// dimensions and a position uses a few). Sums are formed in the same order
/// as a dense product's, so results are the same to the bit.
struct Scatter {
    dense: Vec<f64>,
    touched: Vec<usize>,
    seen: Vec<bool>,
}

impl Scatter {
    fn new(len: usize) -> Scatter {
        Scatter { dense: vec![0.0; len], touched: Vec::new(), seen: vec![false; len] }
    }

    fn add(&mut self, i: usize, v: f64) {
        if !self.seen[i] {
            self.seen[i] = true;
            self.touched.push(i);
        }
        self.dense[i] += v;
    }

    /// The nonzero entries in index order (into `out`); the vector is zero after.
    fn drain(&mut self, out: &mut Vec<(usize, f64)>) {
        out.clear();
        if self.touched.len() * 16 > self.dense.len() {
            // many entries written: a scan in order beats sorting them
            self.touched.clear();
            for (i, (v, seen)) in self.dense.iter_mut().zip(self.seen.iter_mut()).enumerate().filter(|(_, (_, s))| **s)
            {
                *seen = false;
                let v = std::mem::take(v);
                if v != 0.0 {
                    out.push((i, v));
                }
            }
            return;
        }
        self.touched.sort_unstable();
        for i in self.touched.drain(..) {
            let v = std::mem::take(&mut self.dense[i]);
            self.seen[i] = false;
            if v != 0.0 {
                out.push((i, v));
            }
        }
    }
}

/// A sparse row vector: its nonzero (dimension, value) entries in dimension order.
type Row = Vec<(usize, f64)>;

/// `row += add` (both sparse, in dimension order), through `scratch`. An
/// entry that sums to zero is dropped: what a dense row holds, nonzeros only.
fn add_into(row: &mut Row, add: &[(usize, f64)], scratch: &mut Row) {
    if add.is_empty() {
        return;
    }
    scratch.clear();
    let (mut i, mut j) = (0, 0);
    while i < row.len() || j < add.len() {
        let (dim, v) = match order(row.get(i), add.get(j)) {
            Ordering::Equal => {
                (i, j) = (i + 1, j + 1);
                (row[i - 1].0, row[i - 1].1 + add[j - 1].1)
            }
            Ordering::Less => {
                i += 1;
                row[i - 1]
            }
            Ordering::Greater => {
                j += 1;
                (add[j - 1].0, 0.0 + add[j - 1].1)
            }
        };
        if v != 0.0 {
            scratch.push((dim, v));
        }
    }
    std::mem::swap(row, scratch);
}

/// Which of two sparse entries comes first in a merge (a missing one comes last).
fn order(a: Option<&(usize, f64)>, b: Option<&(usize, f64)>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.0.cmp(&b.0),
        (Some(_), None) => Ordering::Less,
        (None, _) => Ordering::Greater,
    }
}

/// A quick hash of a sparse vector's exact contents, to find equal ones
/// (compared with [`same_row`] after): a multiply-xor fold, since a long
/// query row has thousands of entries and this runs once per position.
fn row_hash(nz: &[(usize, f64)], extra: usize) -> u64 {
    nz.iter().fold(extra as u64 ^ 0x243f_6a88_85a3_08d3, |h, (i, v)| {
        (h ^ (*i as u64).rotate_left(32) ^ v.to_bits()).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29)
    })
}

/// Whether two sparse vectors are equal to the bit.
fn same_row(a: &[(usize, f64)], b: &[(usize, f64)]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.0 == y.0 && x.1.to_bits() == y.1.to_bits())
}

/// Positions grouped by equal sparse vectors: `find` returns an earlier
/// position whose vector (and `extra`) equal this one's, else remembers it.
#[derive(Default)]
struct SameRows {
    by_hash: HashMap<u64, Vec<(usize, usize)>>,
}

impl SameRows {
    fn find(&mut self, rows: &[Row], p: usize, extra: usize) -> Option<usize> {
        let bucket = self.by_hash.entry(row_hash(&rows[p], extra)).or_default();
        if let Some((q, _)) = bucket.iter().find(|(q, e)| *e == extra && same_row(&rows[*q], &rows[p])) {
            return Some(*q);
        }
        bucket.push((p, extra));
        None
    }
}

struct HeadW {
    q: Sparse,
    k: Sparse,
    v: Sparse,
    o: Sparse,
}

struct LayerW {
    heads: Vec<HeadW>,
    w_in: Sparse,
    w_out: Sparse,
}

/// A model prepared for fast repeated forward passes.
pub struct Runner<'m> {
    /// The model run.
    pub model: &'m Model,
    layers: Vec<LayerW>,
    w_e: Sparse,
    w_pos: Sparse,
    w_u: Sparse,
    /// Token → id, decoded from the metadata once.
    ids: HashMap<Value, usize>,
    /// Output value per unembedding column (None for a numerical output).
    outputs: Option<Vec<Value>>,
}

impl<'m> Runner<'m> {
    /// Prepares `model`'s weights as sparse rows (fails on inconsistent metadata).
    pub fn new(model: &'m Model) -> Result<Runner<'m>> {
        let ids = model.vocab()?.into_iter().enumerate().map(|(i, v)| (v, i + 2)).collect();
        let outputs = match &model.meta.output {
            super::Decoder::Categorical { .. } => Some(model.output_values()?),
            super::Decoder::Numerical => None,
        };
        let layers = model
            .layers
            .iter()
            .map(|l| LayerW {
                heads: (0..model.config.n_heads)
                    .map(|h| HeadW {
                        q: Sparse::new(l.w_q.index_axis(ndarray::Axis(0), h)),
                        k: Sparse::new(l.w_k.index_axis(ndarray::Axis(0), h)),
                        v: Sparse::new(l.w_v.index_axis(ndarray::Axis(0), h)),
                        o: Sparse::new(l.w_o.index_axis(ndarray::Axis(0), h)),
                    })
                    .collect(),
                w_in: Sparse::new(l.w_in.view()),
                w_out: Sparse::new(l.w_out.view()),
            })
            .collect();
        Ok(Runner {
            model,
            layers,
            w_e: Sparse::new(model.w_e.view()),
            w_pos: Sparse::new(model.w_pos.view()),
            w_u: Sparse::new(model.w_u.view()),
            ids,
            outputs,
        })
    }

    /// Token ids for an input sequence, BOS first.
    pub fn encode(&self, input: &[Value]) -> Result<Vec<usize>> {
        let n_max = self.model.config.n_ctx - 1;
        if input.len() > n_max {
            return Err(Error::usage(format!(
                "the input has {} tokens but the model takes at most {n_max}",
                input.len()
            )));
        }
        let mut ids = vec![self.model.meta.bos_id];
        for v in input {
            ids.push(
                *self
                    .ids
                    .get(v)
                    .ok_or_else(|| Error::usage(format!("the token {} is not in the model's vocab", v.repr())))?,
            );
        }
        Ok(ids)
    }

    /// The final residual stream, one row per position (BOS first).
    pub fn residual(&self, ids: &[usize]) -> Array2<f64> {
        self.dense(&self.stream(ids, None))
    }

    /// The residual stream entering every sublayer and the final one:
    /// `streams[s]` enters sublayer s (layer l's attention is 2l, its MLP
    /// 2l + 1), `streams[2 * n_layers]` is what the unembedding reads.
    pub fn residual_streams(&self, ids: &[usize]) -> Vec<Array2<f64>> {
        let mut out = Vec::with_capacity(2 * self.layers.len() + 1);
        let last = self.stream(ids, Some(&mut |_, rows: &[Row]| out.push(self.dense(rows))));
        out.push(self.dense(&last));
        out
    }

    /// Rows of nonzeros as a dense [n, d_model] matrix.
    fn dense(&self, rows: &[Row]) -> Array2<f64> {
        let mut x = Array2::<f64>::zeros((rows.len(), self.model.config.d_model));
        for (p, row) in rows.iter().enumerate() {
            for (j, v) in row {
                x[[p, *j]] = *v;
            }
        }
        x
    }

    /// The forward pass: the final stream, each position's nonzero entries
    /// in dimension order, calling `seen(s, rows)` with the stream entering
    /// each sublayer s. The stream is kept as those nonzeros and every
    /// product works on nonzero entries only (queries, keys and values of a
    /// compiled head are a few one-hot or numerical directions), so a pass
    /// costs about n² per head plus the weights it touches, not
    /// n·d_model·d_head. Every sum is formed in the order a dense pass
    /// forms it, so the results are the same to the bit.
    fn stream(&self, ids: &[usize], mut seen: Option<&mut dyn FnMut(usize, &[Row])>) -> Vec<Row> {
        let c = &self.model.config;
        let n = ids.len();
        let mut merged = Row::new();
        let mut x: Vec<Row> = ids
            .iter()
            .enumerate()
            .map(|(p, id)| {
                let mut row = Row::new();
                add_into(&mut row, &self.w_e.rows[*id], &mut merged);
                add_into(&mut row, &self.w_pos.rows[p], &mut merged);
                row
            })
            .collect();
        let scale = 1.0 / (c.d_head as f64).sqrt();
        // per position: dense q and k (for the score's lookups) and the
        // nonzeros of q, k and v
        let mut q = vec![vec![0.0; c.d_head]; n];
        let mut k = vec![vec![0.0; c.d_head]; n];
        let mut q_nz: Vec<Row> = vec![Vec::new(); n];
        let mut k_nz: Vec<Row> = vec![Vec::new(); n];
        let mut v_nz: Vec<Row> = vec![Vec::new(); n];
        let mut head_dims = Scatter::new(c.d_head);
        let mut model_dims = Scatter::new(c.d_model);
        let mut hidden = Scatter::new(c.d_mlp);
        let mut z_nz = Row::new();
        let mut out_nz = Row::new();
        let mut delta: Vec<Row> = vec![Vec::new(); n];
        let mut scores = vec![0.0; n];
        for (l, layer) in self.layers.iter().enumerate() {
            if let Some(seen) = seen.as_mut() {
                seen(2 * l, &x);
            }
            delta.iter_mut().for_each(Vec::clear);
            for head in &layer.heads {
                if head.q.rows.iter().all(Vec::is_empty) && head.v.rows.iter().all(Vec::is_empty) {
                    continue; // padding head
                }
                for p in 0..n {
                    for (w, nz) in [(&head.q, &mut q_nz[p]), (&head.k, &mut k_nz[p]), (&head.v, &mut v_nz[p])] {
                        w.scatter(&x[p], &mut head_dims);
                        head_dims.drain(nz);
                    }
                    q_nz[p].iter().for_each(|(i, a)| q[p][*i] = *a);
                    k_nz[p].iter().for_each(|(i, a)| k[p][*i] = *a);
                }
                // a query's output depends only on its query vector (and,
                // causal, on how many keys it sees): positions with the same
                // one get the same result, computed once (a long hist has
                // thousands of positions and a few distinct queries)
                let mut same = SameRows::default();
                let mut outputs: Vec<Row> = vec![Vec::new(); n];
                for qp in 0..n {
                    let visible = if c.causal { qp + 1 } else { n };
                    if let Some(earlier) = same.find(&q_nz, qp, if c.causal { visible } else { 0 }) {
                        let (done, now) = outputs.split_at_mut(qp);
                        now[0].clone_from(&done[earlier]);
                        delta[qp].extend_from_slice(&now[0]);
                        continue;
                    }
                    let mut max = f64::NEG_INFINITY;
                    for kp in 0..visible {
                        // over the sparser side: a long selector's query row
                        // can have thousands of entries against a one-hot key
                        // (the same nonzero products, in the same order)
                        let s: f64 = if q_nz[qp].len() <= k_nz[kp].len() {
                            q_nz[qp].iter().map(|(i, a)| a * k[kp][*i]).sum::<f64>()
                        } else {
                            k_nz[kp].iter().map(|(i, b)| q[qp][*i] * b).sum::<f64>()
                        } * scale;
                        scores[kp] = s;
                        max = max.max(s);
                    }
                    let mut total = 0.0;
                    for s in scores.iter_mut().take(visible) {
                        *s = (*s - max).exp();
                        total += *s;
                    }
                    for kp in 0..visible {
                        let a = scores[kp] / total;
                        if a != 0.0 {
                            for (i, vi) in &v_nz[kp] {
                                head_dims.add(*i, a * vi);
                            }
                        }
                    }
                    head_dims.drain(&mut z_nz);
                    head.o.scatter(&z_nz, &mut model_dims);
                    model_dims.drain(&mut out_nz);
                    delta[qp].extend_from_slice(&out_nz);
                    outputs[qp].clone_from(&out_nz);
                }
                for p in 0..n {
                    q_nz[p].iter().for_each(|(i, _)| q[p][*i] = 0.0);
                    k_nz[p].iter().for_each(|(i, _)| k[p][*i] = 0.0);
                }
            }
            // the heads' outputs, added after every head has read the stream:
            // summed per dimension first (in head order), then added
            for p in 0..n {
                delta[p].sort_by_key(|(j, _)| *j);
                out_nz.clear();
                out_nz.extend(
                    delta[p].chunk_by(|a, b| a.0 == b.0).map(|g| (g[0].0, g.iter().fold(0.0, |sum, (_, v)| sum + v))),
                );
                add_into(&mut x[p], &out_nz, &mut merged);
            }
            if let Some(seen) = seen.as_mut() {
                seen(2 * l + 1, &x);
            }
            // position-wise: the same input on the dimensions W_in reads gives
            // the same output, computed once
            let reads: Vec<Row> = x
                .iter()
                .map(|row| row.iter().filter(|(i, _)| !layer.w_in.rows[*i].is_empty()).copied().collect())
                .collect();
            let mut same = SameRows::default();
            let mut outputs: Vec<Row> = vec![Vec::new(); n];
            for p in 0..n {
                if let Some(earlier) = same.find(&reads, p, 0) {
                    let (done, now) = outputs.split_at_mut(p);
                    now[0].clone_from(&done[earlier]);
                } else {
                    layer.w_in.scatter(&reads[p], &mut hidden);
                    hidden.drain(&mut z_nz);
                    z_nz.retain(|(_, h)| *h > 0.0); // ReLU
                    layer.w_out.scatter(&z_nz, &mut model_dims);
                    model_dims.drain(&mut outputs[p]);
                }
                add_into(&mut x[p], &outputs[p], &mut merged);
            }
        }
        x
    }

    /// Output logits per position (BOS first), each row's nonzero entries.
    fn logit_rows(&self, ids: &[usize]) -> Vec<Row> {
        let mut out = Scatter::new(self.w_u.cols);
        self.stream(ids, None)
            .iter()
            .map(|row| {
                let mut logits = Row::new();
                self.w_u.scatter(row, &mut out);
                out.drain(&mut logits);
                logits
            })
            .collect()
    }

    /// Output logits per position (BOS first), [n, d_vocab_out].
    pub fn logits(&self, ids: &[usize]) -> Array2<f64> {
        let rows = self.logit_rows(ids);
        let mut out = Array2::<f64>::zeros((ids.len(), self.w_u.cols));
        for (p, row) in rows.iter().enumerate() {
            for (j, v) in row {
                out[[p, *j]] = *v;
            }
        }
        out
    }

    /// The largest |difference| between this model's logits and `other`'s
    /// on `ids`, over the input positions (BOS excluded).
    pub fn max_logit_difference(&self, other: &Runner, ids: &[usize]) -> f64 {
        let (a, b) = (self.logit_rows(ids), other.logit_rows(ids));
        let mut worst = 0.0f64;
        for (x, y) in a.iter().zip(&b).skip(1) {
            // a dimension missing from one side is 0 there
            let (mut i, mut j) = (0, 0);
            while i < x.len() || j < y.len() {
                let d = match order(x.get(i), y.get(j)) {
                    Ordering::Equal => {
                        (i, j) = (i + 1, j + 1);
                        x[i - 1].1 - y[j - 1].1
                    }
                    Ordering::Less => {
                        i += 1;
                        x[i - 1].1
                    }
                    Ordering::Greater => {
                        j += 1;
                        y[j - 1].1
                    }
                };
                worst = worst.max(d.abs());
            }
        }
        worst
    }

    /// The decoded output at every input position (BOS excluded), and the raw
    /// number read for each (the winning logit, or the numerical value).
    pub fn run(&self, ids: &[usize]) -> Vec<(Value, f64)> {
        let rows = self.logit_rows(ids);
        rows.iter().skip(1).map(|row| decode_sparse(self.outputs.as_deref(), row, self.w_u.cols)).collect()
    }
}

/// [`decode`] of a logits row given by its nonzero entries (of `width` in all).
fn decode_sparse(outputs: Option<&[Value]>, row: &[(usize, f64)], width: usize) -> (Value, f64) {
    let Some(values) = outputs else {
        let x = row.first().filter(|(j, _)| *j == 0).map_or(0.0, |(_, v)| *v);
        return (Value::Float(x), x);
    };
    // the first largest entry, as a dense argmax finds it: the first zero
    // entry (dimension not listed) when every listed one is negative
    let mut best = (0usize, f64::NEG_INFINITY);
    let mut expected = 0; // the next dimension, to spot the first unlisted one
    let mut first_zero: Option<usize> = None;
    for (j, v) in row {
        if first_zero.is_none() && *j > expected {
            first_zero = Some(expected);
        }
        expected = j + 1;
        if *v > best.1 {
            best = (*j, *v);
        }
    }
    if first_zero.is_none() && expected < width {
        first_zero = Some(expected);
    }
    if let Some(z) = first_zero.filter(|_| best.1 < 0.0) {
        best = (z, 0.0); // listed entries are nonzero: no tie with 0
    }
    let (best, score) = best;
    if score < 0.5 || values.is_empty() {
        (Value::None, score.max(0.0))
    } else {
        (values[best].clone(), score)
    }
}

/// Reads one position's value from its logits: the number for a numerical
/// output (`outputs` None), else the argmax value if it reaches 0.5, else None.
pub fn decode(outputs: Option<&[Value]>, logits: &[f64]) -> (Value, f64) {
    let Some(values) = outputs else { return (Value::Float(logits[0]), logits[0]) };
    let (best, score) =
        logits.iter().enumerate().fold((0, f64::NEG_INFINITY), |acc, (i, v)| if *v > acc.1 { (i, *v) } else { acc });
    if score < 0.5 || values.is_empty() {
        (Value::None, score.max(0.0))
    } else {
        (values[best].clone(), score)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dense rows with zeros, negatives and ties, and their nonzeros.
    fn cases() -> Vec<Vec<f64>> {
        let mut rows = vec![vec![0.0; 4], vec![-1.0; 4], vec![-1.0, 0.0, -2.0, 0.0], vec![0.7, 0.0, 0.7, 0.2]];
        rows.extend([vec![-0.5, -0.25, 0.0, 0.6], vec![0.0, 0.0, 0.0, -3.0], vec![0.3, 0.4, 0.1, 0.2]]);
        rows.push(vec![1.0, 0.0, 1.0, 0.0]);
        rows
    }

    fn sparse(row: &[f64]) -> Row {
        row.iter().enumerate().filter(|(_, v)| **v != 0.0).map(|(j, v)| (j, *v)).collect()
    }

    #[test]
    fn sparse_decoding_is_dense_decoding() {
        let values: Vec<Value> = (0..4).map(Value::Int).collect();
        for row in cases() {
            for outputs in [Some(values.as_slice()), None] {
                let dense = decode(outputs, &row);
                let from_sparse = decode_sparse(outputs, &sparse(&row), row.len());
                assert_eq!(dense.0.repr(), from_sparse.0.repr(), "{row:?}");
                assert_eq!(dense.1.to_bits(), from_sparse.1.to_bits(), "{row:?}");
            }
        }
    }

    #[test]
    fn sparse_addition_is_dense_addition_without_zeros() {
        for a in cases() {
            for b in cases() {
                let mut row = sparse(&a);
                add_into(&mut row, &sparse(&b), &mut Row::new());
                let dense: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
                assert_eq!(row, sparse(&dense), "{a:?} + {b:?}");
            }
        }
    }
}
