//! A linear map of the residual stream folded into the weights.
//!
//! A model with residual stream x (width D) becomes one whose stream is
//! h = x·W (width d) for a D×d matrix W. Every sublayer reads the stream
//! through Wᵀ and writes through W, so the map disappears into the weights:
//! W_E·W, W_pos·W, Wᵀ·W_Q/K/V, W_O·W, Wᵀ·W_in, W_out·W and Wᵀ·W_U. There is
//! no LayerNorm to break this. When W·Wᵀ = I (an orthogonal rotation, d = D)
//! the folded model computes exactly what the original does; with d < D it is
//! the Tracr paper's learned compression (see `crate::compress`).

use super::{Config, Layer, Model};
use ndarray::{Array2, Array3, Axis};
use rand::SeedableRng;
use rand_distr::Distribution;

/// `model` with `w` (d_model × d) folded into every read and write of the
/// residual stream; its d_model becomes d. The metadata is copied unchanged:
/// the caller says what the new dimensions hold.
pub fn fold(model: &Model, w: &Array2<f64>) -> Model {
    assert_eq!(w.nrows(), model.config.d_model, "W has one row per residual dimension");
    let d = w.ncols();
    let wt = w.t();
    // per head: reads [h, D, k] → [h, d, k]; writes [h, k, D] → [h, k, d]
    let read3 = |a: &Array3<f64>| {
        let mut out = Array3::zeros((a.shape()[0], d, a.shape()[2]));
        for (h, m) in a.outer_iter().enumerate() {
            out.index_axis_mut(Axis(0), h).assign(&wt.dot(&m));
        }
        out
    };
    let write3 = |a: &Array3<f64>| {
        let mut out = Array3::zeros((a.shape()[0], a.shape()[1], d));
        for (h, m) in a.outer_iter().enumerate() {
            out.index_axis_mut(Axis(0), h).assign(&m.dot(w));
        }
        out
    };
    let layers = model
        .layers
        .iter()
        .map(|l| Layer {
            w_q: read3(&l.w_q),
            w_k: read3(&l.w_k),
            w_v: read3(&l.w_v),
            w_o: write3(&l.w_o),
            w_in: wt.dot(&l.w_in),
            w_out: l.w_out.dot(w),
        })
        .collect();
    Model {
        config: Config { d_model: d, ..model.config.clone() },
        w_e: model.w_e.dot(w),
        w_pos: model.w_pos.dot(w),
        layers,
        w_u: wt.dot(&model.w_u),
        meta: model.meta.clone(),
        // heads and neurons keep their indices; residual axes do not
        circuit: model.circuit.as_ref().map(|c| c.with_basis("projected")),
    }
}

/// Rounds every weight to f32, as a model stored in float32 holds them, so
/// that what is measured on `model` is what its directory gives back.
pub fn round_to_f32(model: &mut Model) {
    let round = |x: &mut f64| *x = *x as f32 as f64;
    model.w_e.iter_mut().for_each(round);
    model.w_pos.iter_mut().for_each(round);
    model.w_u.iter_mut().for_each(round);
    for l in &mut model.layers {
        for a in [&mut l.w_q, &mut l.w_k, &mut l.w_v, &mut l.w_o] {
            a.iter_mut().for_each(round);
        }
        l.w_in.iter_mut().for_each(round);
        l.w_out.iter_mut().for_each(round);
    }
}

/// A random orthogonal n×n matrix, the same for the same seed on any machine:
/// the Q of a Householder QR of a matrix of seeded standard normal draws,
/// with column signs fixed by R's diagonal (so it is Haar-distributed).
pub fn random_rotation(n: usize, seed: u64) -> Array2<f64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let normal = rand_distr::StandardNormal;
    let mut g = faer::Mat::<f64>::zeros(n, n);
    // filled row by row so the draw order does not depend on faer's layout
    for i in 0..n {
        for j in 0..n {
            g[(i, j)] = normal.sample(&mut rng);
        }
    }
    let qr = g.qr();
    let q = qr.compute_Q();
    let r = qr.R();
    Array2::from_shape_fn((n, n), |(i, j)| if r[(j, j)] < 0.0 { -q[(i, j)] } else { q[(i, j)] })
}

/// `model` with its residual basis rotated by [`random_rotation`]`(d_model,
/// seed)`. Exact: the rotation is orthogonal and every read and write turns
/// with it. The residual labels become `rot0`, `rot1`, … (no dimension holds
/// one direction any more); the compiler's labels and the seed are kept in
/// `meta.rotation`, and the per-dimension layout (`meta.residual`) is dropped.
pub fn rotate(model: &Model, seed: u64) -> Model {
    let q = random_rotation(model.config.d_model, seed);
    let mut out = fold(model, &q);
    out.meta.rotation = Some(super::Rotation { seed, labels: model.meta.residual_labels.clone() });
    out.meta.residual_labels = (0..model.config.d_model).map(|i| format!("rot{i}")).collect();
    out.meta.residual = None;
    if let Some(c) = &mut out.circuit {
        c.residual_basis = "rotated".into();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotations_are_orthogonal_and_seeded() {
        let q = random_rotation(7, 3);
        let qtq = q.t().dot(&q);
        for i in 0..7 {
            for j in 0..7 {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((qtq[(i, j)] - want).abs() < 1e-12, "QᵀQ[{i},{j}] = {}", qtq[(i, j)]);
            }
        }
        assert_eq!(q, random_rotation(7, 3));
        assert_ne!(q, random_rotation(7, 4));
        // not a signed permutation: every column mixes several directions
        assert!(q.columns().into_iter().all(|c| c.iter().filter(|x| x.abs() > 1e-3).count() > 1));
    }
}
