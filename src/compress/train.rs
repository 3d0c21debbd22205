//! The differentiable forward pass (candle, f64 on the CPU) of a compiled
//! model whose residual stream goes through a projection W, and the training
//! loop that learns W with every other weight frozen.
//!
//! With W (D×K) the stream is h (width K). Each sublayer reads x̂ = h·Wᵀ,
//! computes its output with the frozen weights in the original width D, and
//! adds output·W to h. Without W it is the compiled model itself, which gives
//! the targets. Inputs are grouped by length, so no batch needs padding.

use super::Options;
use crate::diagnostic::{Error, Result};
use crate::model::Model;
use crate::rasp::inputs::SplitMix64;
use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use ndarray::Array2;

/// candle's errors as ours: they mean a bug here, not bad input.
pub(super) fn internal(e: candle_core::Error) -> Error {
    Error::internal(format!("compression (candle): {e}"))
}

type CResult<T> = std::result::Result<T, candle_core::Error>;

struct Head {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    o: Tensor,
}

struct FrozenLayer {
    heads: Vec<Head>,
    /// (W_in, W_out), None when the layer has no MLP neuron.
    mlp: Option<(Tensor, Tensor)>,
}

/// The compiled model's weights as constant tensors.
pub(super) struct Frozen {
    layers: Vec<FrozenLayer>,
    w_u: Tensor,
    scale: f64,
    causal: bool,
    device: Device,
}

/// What one forward pass produced: per sublayer (attention of layer l is
/// 2l, its MLP 2l + 1) the output it adds to the stream, in the original
/// width D; and the logits. Shapes [B, n, D] and [B, n, d_vocab_out].
pub(super) struct Pass {
    pub sub: Vec<Tensor>,
    pub logits: Tensor,
}

/// x [B, n, a] · w [a, b] as one [B·n, a] · [a, b] product: candle's
/// broadcast_matmul would copy w once per batch row.
fn mm(x: &Tensor, w: &Tensor) -> CResult<Tensor> {
    let (b, n, a) = x.dims3()?;
    x.reshape((b * n, a))?.matmul(w)?.reshape((b, n, w.dim(1)?))
}

fn tensor2(a: ndarray::ArrayView2<f64>, device: &Device) -> CResult<Tensor> {
    Tensor::from_vec(a.iter().copied().collect::<Vec<f64>>(), a.dim(), device)
}

impl Frozen {
    pub fn new(model: &Model) -> Result<Frozen> {
        let device = Device::Cpu;
        let build = || -> CResult<Frozen> {
            let mut layers = Vec::new();
            for l in &model.layers {
                let mut heads = Vec::new();
                for h in 0..model.config.n_heads {
                    let at = |a: &ndarray::Array3<f64>| a.index_axis(ndarray::Axis(0), h).to_owned();
                    let (q, v) = (at(&l.w_q), at(&l.w_v));
                    if q.iter().all(|x| *x == 0.0) && v.iter().all(|x| *x == 0.0) {
                        continue; // padding head: it writes nothing
                    }
                    heads.push(Head {
                        q: tensor2(q.view(), &device)?,
                        k: tensor2(at(&l.w_k).view(), &device)?,
                        v: tensor2(v.view(), &device)?,
                        o: tensor2(at(&l.w_o).view(), &device)?,
                    });
                }
                let mlp = if l.w_in.iter().any(|x| *x != 0.0) {
                    Some((tensor2(l.w_in.view(), &device)?, tensor2(l.w_out.view(), &device)?))
                } else {
                    None
                };
                layers.push(FrozenLayer { heads, mlp });
            }
            Ok(Frozen {
                layers,
                w_u: tensor2(model.w_u.view(), &device)?,
                scale: 1.0 / (model.config.d_head as f64).sqrt(),
                causal: model.config.causal,
                device: device.clone(),
            })
        };
        build().map_err(internal)
    }

    /// Sublayers that can write something (the others are left out of the
    /// layer loss and the cosine).
    pub fn live_sublayers(&self) -> Vec<bool> {
        self.layers.iter().flat_map(|l| [!l.heads.is_empty(), l.mlp.is_some()]).collect()
    }

    /// The forward pass on x0 [B, n, D] (embedding + position rows), through
    /// `w` when given.
    pub fn forward(&self, x0: &Tensor, w: Option<&Tensor>) -> CResult<Pass> {
        self.forward_at(x0, w, 1.0)
    }

    /// The forward pass with every attention score multiplied by `sharpness`
    /// (1: the compiled model; below 1: softer patterns, for training).
    pub fn forward_at(&self, x0: &Tensor, w: Option<&Tensor>, sharpness: f64) -> CResult<Pass> {
        let n = x0.dim(1)?;
        let wt = w.map(|w| w.t()).transpose()?;
        let read = |h: &Tensor| -> CResult<Tensor> {
            match &wt {
                Some(wt) => mm(&h, wt),
                None => Ok(h.clone()),
            }
        };
        let write = |out: &Tensor| -> CResult<Tensor> {
            match w {
                Some(w) => mm(&out, w),
                None => Ok(out.clone()),
            }
        };
        // causal: position i sees keys 0..=i; the others get a score far
        // below any the compiled model uses
        let mask = if self.causal {
            let m: Vec<f64> = (0..n * n).map(|k| if k % n > k / n { -1e30 } else { 0.0 }).collect();
            Some(Tensor::from_vec(m, (n, n), &self.device)?)
        } else {
            None
        };
        let mut h = match w {
            Some(w) => mm(&x0, w)?,
            None => x0.clone(),
        };
        let d_model = x0.dim(2)?;
        let mut sub = Vec::with_capacity(2 * self.layers.len());
        for layer in &self.layers {
            let x = read(&h)?;
            let mut attn = Tensor::zeros((x.dim(0)?, n, d_model), DType::F64, &self.device)?;
            for head in &layer.heads {
                let q = mm(&x, &head.q)?;
                let k = mm(&x, &head.k)?;
                let v = mm(&x, &head.v)?;
                let mut scores = (q.matmul(&k.t()?.contiguous()?)? * (self.scale * sharpness))?;
                if let Some(m) = &mask {
                    scores = scores.broadcast_add(m)?;
                }
                let pattern = candle_nn::ops::softmax(&scores, D::Minus1)?;
                attn = (attn + mm(&pattern.matmul(&v)?, &head.o)?)?;
            }
            h = (h + write(&attn)?)?;
            sub.push(attn);
            let x = read(&h)?;
            let mlp = match &layer.mlp {
                Some((w_in, w_out)) => mm(&mm(&x, w_in)?.relu()?, w_out)?,
                None => x.zeros_like()?,
            };
            h = (h + write(&mlp)?)?;
            sub.push(mlp);
        }
        let logits = mm(&read(&h)?, &self.w_u)?;
        Ok(Pass { sub, logits })
    }
}

/// The inputs of one length: their first residual stream and what the
/// compiled model does on them.
pub(super) struct Bucket {
    /// [N, n, D]
    pub x0: Tensor,
    /// The compiled model's pass (the targets).
    pub target: Pass,
    /// N
    pub count: usize,
}

/// Groups `inputs` by length and runs the compiled model on each group.
pub(super) fn buckets(model: &Model, frozen: &Frozen, inputs: &[Vec<crate::value::Value>]) -> Result<Vec<Bucket>> {
    let runner = model.runner()?;
    let mut by_len: std::collections::BTreeMap<usize, Vec<Vec<usize>>> = Default::default();
    for input in inputs {
        let ids = runner.encode(input)?;
        by_len.entry(ids.len()).or_default().push(ids);
    }
    let d = model.config.d_model;
    let mut out = Vec::new();
    for (n, seqs) in by_len {
        let mut x0 = Vec::with_capacity(seqs.len() * n * d);
        for ids in &seqs {
            for (p, id) in ids.iter().enumerate() {
                x0.extend(model.w_e.row(*id).iter().zip(model.w_pos.row(p)).map(|(a, b)| a + b));
            }
        }
        let make = || -> CResult<Bucket> {
            let x0 = Tensor::from_vec(x0, (seqs.len(), n, d), &frozen.device)?;
            let target = frozen.forward(&x0, None)?;
            Ok(Bucket { x0, target, count: seqs.len() })
        };
        out.push(make().map_err(internal)?);
    }
    Ok(out)
}

/// The starting W: K principal directions of the residual streams the
/// compiled model produces (uncentred, so the `one` direction counts), or K
/// columns of a seeded random rotation.
pub(super) fn initial_w(frozen: &Frozen, buckets: &[Bucket], options: &Options, d: usize) -> Result<Array2<f64>> {
    let k = options.d_model;
    match options.init {
        super::Init::Random => {
            let q = crate::model::project::random_rotation(d, options.seed);
            Ok(q.slice(ndarray::s![.., ..k]).to_owned())
        }
        super::Init::Pca => {
            let gram = || -> CResult<Vec<Vec<f64>>> {
                let mut g = Tensor::zeros((d, d), DType::F64, &frozen.device)?;
                for b in buckets {
                    let mut stream = b.x0.clone();
                    let mut add = |s: &Tensor| -> CResult<()> {
                        let rows = s.reshape(((), d))?;
                        g = (&g + rows.t()?.matmul(&rows)?)?;
                        Ok(())
                    };
                    add(&stream)?;
                    for s in &b.target.sub {
                        stream = (stream + s)?;
                        add(&stream)?;
                    }
                }
                g.to_vec2()
            };
            let g = gram().map_err(internal)?;
            let m = faer::Mat::<f64>::from_fn(d, d, |i, j| g[i][j]);
            let svd = m.thin_svd().map_err(|e| Error::internal(format!("PCA of the residual stream: {e:?}")))?;
            let u = svd.U();
            // each direction's sign fixed (largest entry positive, first on ties)
            Ok(Array2::from_shape_fn((d, k), |(i, j)| {
                let p = (0..d).fold(0, |p, r| if u[(r, j)].abs() > u[(p, j)].abs() + 1e-12 { r } else { p });
                if u[(p, j)] < 0.0 {
                    -u[(i, j)]
                } else {
                    u[(i, j)]
                }
            }))
        }
    }
}

/// The loss of one pass against its targets: the output loss (softmax
/// cross-entropy against the compiled model's tempered output distribution,
/// less that distribution's entropy: the KL divergence,
/// or squared error for a numerical output) on non-BOS positions, plus
/// `layer_weight` × the mean squared error of every live sublayer's output.
pub(super) fn loss(
    out: &Pass,
    target: &Pass,
    live: &[bool],
    numerical: bool,
    options: &Options,
) -> CResult<(Tensor, Tensor, Tensor)> {
    let n = out.logits.dim(1)?;
    let o = out.logits.narrow(1, 1, n - 1)?;
    let t = target.logits.narrow(1, 1, n - 1)?;
    let output = if numerical {
        (&o - &t)?.sqr()?.mean_all()?
    } else {
        let tau = options.temperature;
        // KL(p ‖ q): the cross-entropy less the target's own entropy, so an
        // exact model scores 0 (positions with no value have a uniform p)
        let log_p = candle_nn::ops::log_softmax(&(&t / tau)?, D::Minus1)?;
        let log_q = candle_nn::ops::log_softmax(&(&o / tau)?, D::Minus1)?;
        (log_p.exp()? * (&log_p - log_q)?)?.sum(D::Minus1)?.mean_all()?
    };
    let mut layer = Tensor::new(0f64, o.device())?;
    let mut count = 0usize;
    for (s, is_live) in live.iter().enumerate() {
        if *is_live {
            layer = (layer + (&out.sub[s] - &target.sub[s])?.sqr()?.mean_all()?)?;
            count += 1;
        }
    }
    if count > 0 {
        layer = (layer / count as f64)?;
    }
    let total = (&output + (&layer * options.layer_weight)?)?;
    Ok((total, output, layer))
}

/// One recorded step of training.
#[derive(Clone, Copy, Debug)]
pub struct Step {
    /// The step (0-based).
    pub step: usize,
    /// The loss on that step's batch: total, output part, layer part.
    pub loss: f64,
    /// The output loss.
    pub output: f64,
    /// The layer-output loss.
    pub layer: f64,
}

/// What training produced.
pub(super) struct Trained {
    /// The kept W.
    pub w: Array2<f64>,
    /// Every step's batch loss.
    pub history: Vec<Step>,
    /// The full-sharpness loss over every training input at the kept W.
    pub objective: f64,
    /// The step after which W was kept (0: the start).
    pub kept_step: usize,
}

/// Learns W from `w0` with AdamW at peak rate `lr`, every other weight frozen. Each step takes
/// a batch of one length, the length drawn in proportion to its inputs and
/// the inputs drawn uniformly (all of them when the batch is larger), from a
/// generator seeded with `options.seed`: the same seed gives the same W.
pub(super) fn train(
    frozen: &Frozen,
    buckets: &[Bucket],
    numerical: bool,
    w0: &Array2<f64>,
    options: &Options,
    lr: f64,
    on_step: &mut dyn FnMut(&Step),
) -> Result<Trained> {
    let live = frozen.live_sublayers();
    let (d, k) = w0.dim();
    let total: usize = buckets.iter().map(|b| b.count).sum();
    let mut rng = SplitMix64::new(options.seed ^ 0x5EED_C0DE);
    let mut history = Vec::with_capacity(options.steps);
    // the objective at full sharpness on every training input: W is kept
    // from the checkpoint where it is lowest, so annealing (or an unlucky
    // step) never leaves a worse model than the start
    let objective = |w: &Tensor| -> CResult<f64> {
        let mut sum = 0.0;
        for b in buckets {
            let mut start = 0;
            while start < b.count {
                let len = 1024.min(b.count - start);
                let part = |t: &Tensor| t.narrow(0, start, len);
                let target = Pass {
                    sub: b.target.sub.iter().map(part).collect::<CResult<_>>()?,
                    logits: part(&b.target.logits)?,
                };
                let out = frozen.forward(&part(&b.x0)?, Some(w))?;
                let (l, _, _) = loss(&out, &target, &live, numerical, options)?;
                sum += l.to_scalar::<f64>()? * len as f64;
                start += len;
            }
        }
        Ok(sum / total as f64)
    };
    let every = (options.steps / 20).max(1);
    let mut best = (f64::INFINITY, 0usize, w0.iter().copied().collect::<Vec<f64>>());
    let run = |history: &mut Vec<Step>,
               rng: &mut SplitMix64,
               on_step: &mut dyn FnMut(&Step),
               best: &mut (f64, usize, Vec<f64>)|
     -> CResult<()> {
        let w = Var::from_tensor(&tensor2(w0.view(), &frozen.device)?)?;
        let params = ParamsAdamW { lr, weight_decay: 0.0, ..ParamsAdamW::default() };
        let mut opt = AdamW::new(vec![w.clone()], params)?;
        let checkpoint = |step: usize, best: &mut (f64, usize, Vec<f64>)| -> CResult<()> {
            let value = objective(w.as_tensor())?;
            if value < best.0 {
                *best = (value, step, w.as_tensor().flatten_all()?.to_vec1()?);
            }
            Ok(())
        };
        checkpoint(0, best)?;
        for step in 0..options.steps {
            let mut pick = rng.below(total);
            let bucket = buckets
                .iter()
                .find(|b| {
                    let here = pick < b.count;
                    pick = pick.saturating_sub(b.count);
                    here
                })
                .expect("the draw is below the total");
            let (x0, target) = if options.batch >= bucket.count {
                (bucket.x0.clone(), Pass { sub: bucket.target.sub.clone(), logits: bucket.target.logits.clone() })
            } else {
                let ids: Vec<u32> = (0..options.batch).map(|_| rng.below(bucket.count) as u32).collect();
                let ids = Tensor::from_vec(ids, options.batch, &frozen.device)?;
                let pick = |t: &Tensor| t.index_select(&ids, 0);
                (
                    pick(&bucket.x0)?,
                    Pass {
                        sub: bucket.target.sub.iter().map(pick).collect::<CResult<_>>()?,
                        logits: pick(&bucket.target.logits)?,
                    },
                )
            };
            // cosine decay of the learning rate, to settle in the sharp minima
            // the compiled weights make
            let progress = step as f64 / options.steps.max(1) as f64;
            opt.set_learning_rate(lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()));
            let sharpness = options.sharpness_at(step);
            let out = frozen.forward_at(&x0, Some(w.as_tensor()), sharpness)?;
            let (total_loss, output, layer) = loss(&out, &target, &live, numerical, options)?;
            opt.backward_step(&total_loss)?;
            let s =
                Step { step, loss: total_loss.to_scalar()?, output: output.to_scalar()?, layer: layer.to_scalar()? };
            on_step(&s);
            history.push(s);
            // checkpoints only once attention is at full sharpness
            if (step + 1) % every == 0 && sharpness >= 1.0 || step + 1 == options.steps {
                checkpoint(step + 1, best)?;
            }
        }
        Ok(())
    };
    run(&mut history, &mut rng, on_step, &mut best).map_err(internal)?;
    let w = Array2::from_shape_vec((d, k), best.2).map_err(|e| Error::internal(e.to_string()))?;
    Ok(Trained { w, history, objective: best.0, kept_step: best.1 })
}

/// Per layer, the mean cosine similarity between what the compiled model's
/// layer (attention + MLP) adds to the stream and what the compressed one's
/// adds, both in the original width, over every position where the compiled
/// layer writes something. None for a layer that never does.
pub(super) fn layer_cosines(frozen: &Frozen, buckets: &[Bucket], w: &Array2<f64>) -> Result<Vec<Option<f64>>> {
    let layers = frozen.layers.len();
    let mut sums = vec![(0.0f64, 0usize); layers];
    let go = |sums: &mut Vec<(f64, usize)>| -> CResult<()> {
        let wt = tensor2(w.view(), &frozen.device)?;
        for b in buckets {
            // in chunks, to bound the memory of the pass
            let chunk = 2048usize;
            let mut start = 0;
            while start < b.count {
                let len = chunk.min(b.count - start);
                let x0 = b.x0.narrow(0, start, len)?;
                let out = frozen.forward(&x0, Some(&wt))?;
                for (l, sum) in sums.iter_mut().enumerate() {
                    let exact = (b.target.sub[2 * l].narrow(0, start, len)?
                        + b.target.sub[2 * l + 1].narrow(0, start, len)?)?;
                    let approx = (&out.sub[2 * l] + &out.sub[2 * l + 1])?;
                    let d = exact.dim(2)?;
                    let e = exact.reshape(((), d))?.to_vec2::<f64>()?;
                    let a = approx.reshape(((), d))?.to_vec2::<f64>()?;
                    for (e, a) in e.iter().zip(&a) {
                        let ne = e.iter().map(|x| x * x).sum::<f64>().sqrt();
                        if ne <= 1e-9 {
                            continue;
                        }
                        let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
                        let dot: f64 = e.iter().zip(a).map(|(x, y)| x * y).sum();
                        sum.0 += if na > 0.0 { dot / (ne * na) } else { 0.0 };
                        sum.1 += 1;
                    }
                }
                start += len;
            }
        }
        Ok(())
    };
    go(&mut sums).map_err(internal)?;
    Ok(sums.into_iter().map(|(s, n)| (n > 0).then(|| s / n as f64)).collect())
}
