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
        Ok(Runner { model, layers, w_u: Sparse::new(model.w_u.view()), ids, outputs })
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

    /// The forward pass, calling `seen(s, x)` with the stream entering each sublayer s.
    fn residual_traced(&self, ids: &[usize], mut seen: impl FnMut(usize, &Array2<f64>)) -> Array2<f64> {
        let c = &self.model.config;
        let n = ids.len();
        let d = c.d_model;
        let mut x = Array2::<f64>::zeros((n, d));
        for (p, id) in ids.iter().enumerate() {
            let row = &self.model.w_e.row(*id) + &self.model.w_pos.row(p);
            x.row_mut(p).assign(&row);
        }
        let scale = 1.0 / (c.d_head as f64).sqrt();
        let mut q = vec![vec![0.0; c.d_head]; n];
        let mut k = vec![vec![0.0; c.d_head]; n];
        let mut v = vec![vec![0.0; c.d_head]; n];
        let mut tmp = vec![0.0; d];
        let mut hidden = vec![0.0; c.d_mlp];
        let mut scores = vec![0.0; n];
        let mut q_nz: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
        let mut v_nz: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
        for (l, layer) in self.layers.iter().enumerate() {
            seen(2 * l, &x);
            let mut delta = Array2::<f64>::zeros((n, d));
            for head in &layer.heads {
                if head.q.rows.iter().all(Vec::is_empty) && head.v.rows.iter().all(Vec::is_empty) {
                    continue; // padding head
                }
                for p in 0..n {
                    let xr = x.row(p);
                    let xs = xr.as_slice().unwrap();
                    head.q.vecmul(xs, &mut q[p]);
                    head.k.vecmul(xs, &mut k[p]);
                    head.v.vecmul(xs, &mut v[p]);
                }
                // queries and values are sparse (a few one-hot or numerical
                // directions): their nonzero entries, once per position
                for p in 0..n {
                    for (nz, dense) in [(&mut q_nz[p], &q[p]), (&mut v_nz[p], &v[p])] {
                        nz.clear();
                        nz.extend(dense.iter().enumerate().filter(|(_, a)| **a != 0.0).map(|(i, a)| (i, *a)));
                    }
                }
                let mut z = vec![0.0; head.v.cols];
                for qp in 0..n {
                    let visible = if c.causal { qp + 1 } else { n };
                    let mut max = f64::NEG_INFINITY;
                    for kp in 0..visible {
                        let s: f64 = q_nz[qp].iter().map(|(i, a)| a * k[kp][*i]).sum::<f64>() * scale;
                        scores[kp] = s;
                        max = max.max(s);
                    }
                    let mut total = 0.0;
                    for s in scores.iter_mut().take(visible) {
                        *s = (*s - max).exp();
                        total += *s;
                    }
                    z.iter_mut().for_each(|e| *e = 0.0);
                    for kp in 0..visible {
                        let a = scores[kp] / total;
                        if a != 0.0 {
                            for (i, vi) in &v_nz[kp] {
                                z[*i] += a * vi;
                            }
                        }
                    }
                    head.o.vecmul(&z, &mut tmp);
                    let mut row = delta.row_mut(qp);
                    for (r, t) in row.iter_mut().zip(&tmp) {
                        *r += t;
                    }
                }
            }
            x += &delta;
            seen(2 * l + 1, &x);
            for p in 0..n {
                let xr = x.row(p).to_owned();
                layer.w_in.vecmul(xr.as_slice().unwrap(), &mut hidden);
                hidden.iter_mut().for_each(|h| *h = h.max(0.0));
                layer.w_out.vecmul(&hidden, &mut tmp);
                let mut row = x.row_mut(p);
                for (r, t) in row.iter_mut().zip(&tmp) {
                    *r += t;
                }
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
