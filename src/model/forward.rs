//! The forward pass: embeddings, attention + ReLU MLP layers with residual
//! connections, no layer norm, unembedding. Compiled weights are >99% zeros,
//! so each matrix is stored by nonzero rows and the residual stream (itself
//! sparse) is multiplied row by row.

use super::Model;
use crate::diagnostic::{Error, Result};
use crate::value::Value;
use ndarray::{Array2, ArrayView2};
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

    /// `x · W` for a row vector x.
    fn vecmul(&self, x: &[f64], out: &mut [f64]) {
        out.iter_mut().for_each(|o| *o = 0.0);
        for (i, xi) in x.iter().enumerate() {
            if *xi != 0.0 {
                for (j, w) in &self.rows[i] {
                    out[*j] += xi * w;
                }
            }
        }
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

/// The nonzero entries of `row` among the dimensions `support` (in index
/// order; every nonzero of the row is in it), into `out`.
fn nonzeros(row: &[f64], support: &[usize], out: &mut Vec<(usize, f64)>) {
    out.clear();
    out.extend(support.iter().filter(|j| row[**j] != 0.0).map(|j| (*j, row[*j])));
}

/// Adds the dimensions of `written` (in index order) to the sorted `support`.
fn widen(support: &mut Vec<usize>, written: impl Iterator<Item = usize>) {
    let before = support.len();
    support.extend(written);
    if support.len() > before {
        support.sort_unstable();
        support.dedup();
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
        self.residual_traced(ids, |_, _| {})
    }

    /// The residual stream entering every sublayer and the final one:
    /// `streams[s]` enters sublayer s (layer l's attention is 2l, its MLP
    /// 2l + 1), `streams[2 * n_layers]` is what the unembedding reads.
    pub fn residual_streams(&self, ids: &[usize]) -> Vec<Array2<f64>> {
        let mut out = Vec::with_capacity(2 * self.layers.len() + 1);
        let last = self.residual_traced(ids, |_, x| out.push(x.clone()));
        out.push(last);
        out
    }

    /// The forward pass, calling `seen(s, x)` with the stream entering each
    /// sublayer s. Every product works on nonzero entries only (queries,
    /// keys and values of a compiled head are a few one-hot or numerical
    /// directions), so a pass costs about n² per head plus the weights it
    /// touches, not n·d_model·d_head.
    fn residual_traced(&self, ids: &[usize], mut seen: impl FnMut(usize, &Array2<f64>)) -> Array2<f64> {
        let c = &self.model.config;
        let n = ids.len();
        let d = c.d_model;
        // the stream, and per position the dimensions that may be nonzero
        let mut x = Array2::<f64>::zeros((n, d));
        let mut support: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (p, id) in ids.iter().enumerate() {
            let mut row = x.row_mut(p);
            for (j, v) in self.w_e.rows[*id].iter().chain(&self.w_pos.rows[p]) {
                row[*j] += v;
            }
            widen(&mut support[p], self.w_e.rows[*id].iter().chain(&self.w_pos.rows[p]).map(|(j, _)| *j));
        }
        let scale = 1.0 / (c.d_head as f64).sqrt();
        // per position: the stream's nonzeros, dense q and k (for the score's
        // lookups) and the nonzeros of q, k and v
        let mut x_nz: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
        let mut q = vec![vec![0.0; c.d_head]; n];
        let mut k = vec![vec![0.0; c.d_head]; n];
        let mut q_nz: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
        let mut k_nz: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
        let mut v_nz: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
        let mut head_dims = Scatter::new(c.d_head);
        let mut model_dims = Scatter::new(d);
        let mut hidden = Scatter::new(c.d_mlp);
        let mut z_nz: Vec<(usize, f64)> = Vec::new();
        let mut out_nz: Vec<(usize, f64)> = Vec::new();
        let mut delta: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
        let mut scores = vec![0.0; n];
        for (l, layer) in self.layers.iter().enumerate() {
            seen(2 * l, &x);
            for p in 0..n {
                nonzeros(x.row(p).as_slice().expect("standard layout"), &support[p], &mut x_nz[p]);
                delta[p].clear();
            }
            for head in &layer.heads {
                if head.q.rows.iter().all(Vec::is_empty) && head.v.rows.iter().all(Vec::is_empty) {
                    continue; // padding head
                }
                for p in 0..n {
                    for (w, nz) in [(&head.q, &mut q_nz[p]), (&head.k, &mut k_nz[p]), (&head.v, &mut v_nz[p])] {
                        w.scatter(&x_nz[p], &mut head_dims);
                        head_dims.drain(nz);
                    }
                    q_nz[p].iter().for_each(|(i, a)| q[p][*i] = *a);
                    k_nz[p].iter().for_each(|(i, a)| k[p][*i] = *a);
                }
                for qp in 0..n {
                    let visible = if c.causal { qp + 1 } else { n };
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
                let mut row = x.row_mut(p);
                for group in delta[p].chunk_by(|a, b| a.0 == b.0) {
                    row[group[0].0] += group.iter().fold(0.0, |sum, (_, v)| sum + v);
                }
                widen(&mut support[p], delta[p].iter().map(|(j, _)| *j));
            }
            seen(2 * l + 1, &x);
            for p in 0..n {
                nonzeros(x.row(p).as_slice().expect("standard layout"), &support[p], &mut x_nz[p]);
                layer.w_in.scatter(&x_nz[p], &mut hidden);
                hidden.drain(&mut z_nz);
                z_nz.retain(|(_, h)| *h > 0.0); // ReLU
                layer.w_out.scatter(&z_nz, &mut model_dims);
                model_dims.drain(&mut out_nz);
                let mut row = x.row_mut(p);
                for (j, v) in &out_nz {
                    row[*j] += v;
                }
                widen(&mut support[p], out_nz.iter().map(|(j, _)| *j));
            }
        }
        x
    }

    /// Output logits per position (BOS first), [n, d_vocab_out].
    pub fn logits(&self, ids: &[usize]) -> Array2<f64> {
        let x = self.residual(ids);
        let mut out = Array2::<f64>::zeros((ids.len(), self.w_u.cols));
        let mut row = vec![0.0; self.w_u.cols];
        for p in 0..ids.len() {
            let xr = x.row(p).to_owned();
            self.w_u.vecmul(xr.as_slice().unwrap(), &mut row);
            out.row_mut(p).assign(&ndarray::ArrayView1::from(&row));
        }
        out
    }

    /// The decoded output at every input position (BOS excluded), and the raw
    /// number read for each (the winning logit, or the numerical value).
    pub fn run(&self, ids: &[usize]) -> Vec<(Value, f64)> {
        let logits = self.logits(ids);
        (1..ids.len()).map(|p| decode(self.outputs.as_deref(), logits.row(p).as_slice().unwrap())).collect()
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
