//! Lossy compression of a compiled model's residual stream by gradient
//! descent: the Tracr paper's §5, measured against the exact model
//! (docs/COMPRESSION.md).
//!
//! One matrix W (D×K, K ≤ D) is learned; every other weight stays frozen.
//! Every read of the residual stream goes through Wᵀ and every write through
//! W, and the loss is the output loss plus the layer-output loss against the
//! compiled model (`train`). The result is folded into an ordinary model
//! directory (`crate::model::project::fold`) whose `tracr_opt.json` says it
//! is lossy and how accurate it measured (`measure`).

mod measure;
mod train;

pub use measure::FeatureGeometry;
pub use train::Step;

use crate::diagnostic::{Error, Result};
use crate::model::{Compression, Model};
use crate::rasp::{Encoding, Program};
use crate::value::Value;

/// How W starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// The K principal directions of the compiled model's residual streams.
    Pca,
    /// K columns of a seeded random rotation.
    Random,
}

impl Init {
    /// The name used on the command line and in metadata.
    pub fn name(self) -> &'static str {
        match self {
            Init::Pca => "pca",
            Init::Random => "random",
        }
    }
}

/// The compression's settings. `Options::new(k)` has the defaults that reach
/// the figures in docs/RESULTS.md. Whatever they are, W is kept from the
/// checkpoint (the start, every 5 % of the steps at full attention
/// sharpness, and the end) where the loss over every training input is
/// lowest, so training never returns a worse model than it started from.
#[derive(Clone, Debug)]
pub struct Options {
    /// K, the compressed residual width.
    pub d_model: usize,
    /// Optimiser steps.
    pub steps: usize,
    /// AdamW's peak learning rates (cosine decay to 0 over the steps): one
    /// training run each, from the same start and seed; the run whose W has
    /// the lowest loss over every training input is kept. The landscape is
    /// sharp where attention is hard and MLPs discretise, and the rate that
    /// works differs by program (frac_prevs needs 0.01, sort_unique 0.001).
    pub lrs: Vec<f64>,
    /// Sequences per step (all of a length's inputs when there are fewer).
    pub batch: usize,
    /// Seeds the initial W (for `Init::Random`), the batches and the sample.
    pub seed: u64,
    /// Weight of the layer-output loss against the output loss.
    pub layer_weight: f64,
    /// Temperature of the categorical output loss: the compiled model's
    /// logits are 0/1, and dividing by 0.1 makes its distribution nearly
    /// one-hot.
    pub temperature: f64,
    /// How W starts.
    pub init: Init,
    /// Attention sharpness at the first step, as a fraction of the compiled
    /// model's; it rises linearly to 1 by `anneal_until` of the steps.
    pub sharpness_from: f64,
    /// Fraction of the steps after which attention is as sharp as compiled.
    pub anneal_until: f64,
    /// Most inputs trained on: all of them when there are at most this many,
    /// else a seeded sample of this size.
    pub train_inputs: usize,
    /// Inputs sampled for measuring when there are more than 100 000 in all.
    pub samples: usize,
    /// The model will be stored in float32: measure it with its weights
    /// rounded so, as its directory will give them back.
    pub f32_weights: bool,
}

impl Options {
    /// The defaults, at width `d_model`.
    pub fn new(d_model: usize) -> Options {
        Options {
            d_model,
            steps: 2000,
            lrs: vec![0.01, 0.003, 0.001],
            batch: 128,
            seed: 0,
            layer_weight: 1.0,
            temperature: 0.1,
            init: Init::Pca,
            sharpness_from: 0.1,
            anneal_until: 0.5,
            train_inputs: 20_000,
            samples: 20_000,
            f32_weights: true,
        }
    }

    /// The attention sharpness used at `step`.
    pub fn sharpness_at(&self, step: usize) -> f64 {
        let end = self.anneal_until * self.steps as f64;
        if self.sharpness_from >= 1.0 || step as f64 >= end {
            1.0
        } else {
            self.sharpness_from + (1.0 - self.sharpness_from) * step as f64 / end
        }
    }

    /// The settings as JSON (stored in the model's metadata).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "steps": self.steps,
            "lrs": self.lrs,
            "batch": self.batch,
            "seed": self.seed,
            "layer_weight": self.layer_weight,
            "temperature": self.temperature,
            "init": self.init.name(),
            "sharpness_from": self.sharpness_from,
            "anneal_until": self.anneal_until,
            "train_inputs": self.train_inputs,
        })
    }
}

/// Largest number of optimiser steps accepted.
pub const MAX_STEPS: usize = 10_000_000;

/// What compression produced and measured.
pub struct Outcome {
    /// The compressed model, W folded in, `meta.compression` filled.
    pub model: Model,
    /// The learned W, D×K.
    pub w: ndarray::Array2<f64>,
    /// The loss at every step.
    pub history: Vec<Step>,
    /// Per categorical s-op with three or more residual directions, how W
    /// lays its directions out (see [`FeatureGeometry`]).
    pub geometry: Vec<FeatureGeometry>,
    /// Wall time of training and measuring, in seconds.
    pub seconds: f64,
}

impl Outcome {
    /// The measured figures (`compress --json`): d_model, from_d_model,
    /// accuracy, output_mse, layer_cosine, steps, seconds and the rest.
    pub fn summary_json(&self) -> serde_json::Value {
        let c = self.model.meta.compression.as_ref().expect("a compressed model");
        let first = self.history.first().map(|s| s.loss);
        let last = self.history.last().map(|s| s.loss);
        serde_json::json!({
            "program": self.model.meta.program,
            "lossy": true,
            "from": c.from,
            "d_model": c.d_model,
            "from_d_model": c.from_d_model,
            "accuracy": c.accuracy,
            "accuracy_within_0_05": c.accuracy_within_0_05,
            "output_mse": c.output_mse,
            "layer_cosine": c.layer_cosine,
            "inputs": c.inputs,
            "exhaustive": c.exhaustive,
            "steps": self.history.len(),
            "first_loss": first,
            "final_loss": last,
            "seconds": self.seconds,
            "training": c.training,
            "feature_geometry": self.geometry.iter().map(FeatureGeometry::to_json).collect::<Vec<_>>(),
        })
    }
}

/// Checks the width and the training settings before any work.
pub fn check(model: &Model, options: &Options) -> Result<()> {
    let d = model.config.d_model;
    if model.meta.compression.is_some() {
        return Err(Error::usage(format!(
            "the model of '{}' is already compressed (to {d} dimensions); compress the exact model instead",
            model.meta.program
        )));
    }
    if options.d_model == 0 {
        return Err(Error::usage("--d-model must be at least 1"));
    }
    if options.d_model > d {
        return Err(Error::usage(format!(
            "--d-model {} is wider than the model's residual stream ({d} dimensions): compression needs K ≤ {d}",
            options.d_model
        )));
    }
    if options.steps > MAX_STEPS {
        return Err(Error::usage(format!("--steps {} is over the limit of {MAX_STEPS}", options.steps)));
    }
    if options.batch == 0 {
        return Err(Error::usage("--batch must be at least 1"));
    }
    if options.lrs.is_empty() || options.lrs.iter().any(|lr| !(lr.is_finite() && *lr > 0.0)) {
        return Err(Error::usage(format!("--lr must list positive numbers (got {:?})", options.lrs)));
    }
    if !(options.layer_weight.is_finite() && options.layer_weight >= 0.0) {
        return Err(Error::usage(format!("--layer-weight must be 0 or more (got {})", options.layer_weight)));
    }
    if options.train_inputs == 0 || options.samples == 0 {
        return Err(Error::usage("--train-inputs and --samples must be at least 1"));
    }
    if options.train_inputs > crate::MAX_SAMPLES || options.samples > crate::MAX_SAMPLES {
        return Err(Error::usage(format!("--train-inputs and --samples may be at most {}", crate::MAX_SAMPLES)));
    }
    Ok(())
}

/// Compresses `model` (compiled from `program`, tabulated or not) to
/// `options.d_model` residual dimensions. `from` names the starting point
/// (`baseline`, `optimised` or `model`) in the metadata. `on_step` sees every
/// training step (for a progress bar).
pub fn compress(
    model: &Model,
    program: &Program,
    from: &str,
    options: &Options,
    on_step: &mut dyn FnMut(&Step),
) -> Result<Outcome> {
    check(model, options)?;
    let started = std::time::Instant::now();
    let numerical = program.nodes[program.output].encoding == Encoding::Numerical;
    let vocab: Vec<Value> = model.vocab()?;
    let max_len = model.config.n_ctx - 1;
    let training_inputs = if crate::rasp::inputs::count_all(vocab.len(), max_len) <= options.train_inputs as u128 {
        crate::rasp::inputs::all(&vocab, max_len).collect()
    } else {
        crate::rasp::inputs::sample(&vocab, max_len, options.train_inputs, options.seed)
    };
    let frozen = train::Frozen::new(model)?;
    let buckets = train::buckets(model, &frozen, &training_inputs)?;
    let d = model.config.d_model;
    let w0 = train::initial_w(&frozen, &buckets, options, d)?;
    let mut kept: Option<(f64, train::Trained)> = None;
    for &lr in &options.lrs {
        let run = train::train(&frozen, &buckets, numerical, &w0, options, lr, on_step)?;
        if kept.as_ref().is_none_or(|(_, k)| run.objective < k.objective) {
            kept = Some((lr, run));
        }
    }
    let (kept_lr, trained) = kept.expect("at least one learning rate");
    let (w, history) = (trained.w, trained.history);
    let layer_cosine = train::layer_cosines(&frozen, &buckets, &w)?;

    let mut out = crate::model::project::fold(model, &w);
    if let Some(c) = &mut out.circuit {
        c.residual_basis = "compressed".into();
    }
    out.meta.residual_labels = (0..options.d_model).map(|i| format!("c{i}")).collect();
    out.meta.residual = None;
    if options.f32_weights {
        crate::model::project::round_to_f32(&mut out);
    }
    let plan = crate::verify::Plan { samples: options.samples, seed: options.seed, threads: 0 };
    plan.check_for(&vocab, max_len)?;
    let (inputs, exhaustive) = crate::verify::inputs_for(&vocab, max_len, &plan);
    let m = measure::measure(&out, model, program, &inputs, numerical)?;
    out.meta.compression = Some(Compression {
        lossy: true,
        d_model: options.d_model,
        from_d_model: d,
        from: from.to_string(),
        labels: model.meta.residual_labels.clone(),
        w: w.rows().into_iter().map(|r| r.to_vec()).collect(),
        accuracy: m.accuracy,
        accuracy_within_0_05: m.within_0_05,
        output_mse: m.output_mse,
        layer_cosine,
        inputs: inputs.len(),
        exhaustive,
        training: {
            let mut t = options.to_json();
            t["kept_step"] = trained.kept_step.into();
            t["kept_lr"] = kept_lr.into();
            t["objective"] = trained.objective.into();
            t
        },
    });
    let geometry = measure::geometry(&w, &model.meta.residual_labels);
    Ok(Outcome { model: out, w, history, geometry, seconds: started.elapsed().as_secs_f64() })
}

/// The figures for one compressed model, as (file name, SVG): W·Wᵀ on the
/// residual labels (which features share directions), the layer cosine per
/// layer, and the loss curve.
pub fn figures(outcome: &Outcome) -> Vec<(String, String)> {
    let c = outcome.model.meta.compression.as_ref().expect("a compressed model");
    let wwt = outcome.w.dot(&outcome.w.t());
    let values: Vec<Vec<f64>> = wwt.rows().into_iter().map(|r| r.to_vec()).collect();
    let program = &outcome.model.meta.program;
    let heatmap = crate::figures::Heatmap {
        title: &format!("{program}: W·Wᵀ at K = {} of {} (off-diagonal: shared directions)", c.d_model, c.from_d_model),
        rows: &c.labels,
        cols: &c.labels,
        values: &values,
    }
    .svg();
    let layers: Vec<String> = (0..c.layer_cosine.len()).map(|l| format!("L{l}")).collect();
    let cosine = crate::figures::LineChart {
        title: &format!("{program}: layer-output cosine, compiled vs compressed (K = {})", c.d_model),
        x_label: "layer",
        y_label: "mean cosine similarity",
        series: &[(
            format!("K = {}", c.d_model),
            c.layer_cosine.iter().enumerate().map(|(l, v)| (l as f64, *v)).collect(),
        )],
        x_ticks: Some(&layers),
        y_range: Some((0.0, 1.0)),
    }
    .svg();
    let every = (outcome.history.len() / 200).max(1);
    let thin = |f: fn(&Step) -> f64| -> Vec<(f64, Option<f64>)> {
        outcome.history.iter().step_by(every).map(|s| (s.step as f64, Some(f(s).max(1e-12).log10()))).collect()
    };
    let loss = crate::figures::LineChart {
        title: &format!("{program}: training loss (log10), K = {}", c.d_model),
        x_label: "step",
        y_label: "log10 loss",
        series: &[
            ("total".to_string(), thin(|s| s.loss)),
            ("output".to_string(), thin(|s| s.output)),
            ("layer outputs".to_string(), thin(|s| s.layer)),
        ],
        x_ticks: None,
        y_range: None,
    }
    .svg();
    vec![
        ("figures/w_wt.svg".to_string(), heatmap),
        ("figures/layer_cosine.svg".to_string(), cosine),
        ("figures/loss.svg".to_string(), loss),
    ]
}

/// One point of a sweep over K.
#[derive(Clone, Debug)]
pub struct SweepPoint {
    /// K.
    pub d_model: usize,
    /// Accuracy at K.
    pub accuracy: f64,
    /// Numerical outputs: fraction within 0.05.
    pub within_0_05: Option<f64>,
    /// Layer cosines at K.
    pub layer_cosine: Vec<Option<f64>>,
}

/// Accuracy and mean layer cosine against K (the paper's Figure 7), one
/// series per starting point.
pub fn sweep_figure(program: &str, series: &[(String, Vec<SweepPoint>)]) -> String {
    let mut lines = Vec::new();
    for (name, points) in series {
        lines
            .push((format!("{name}: accuracy"), points.iter().map(|p| (p.d_model as f64, Some(p.accuracy))).collect()));
        if points.iter().any(|p| p.within_0_05.is_some()) {
            lines.push((
                format!("{name}: within 0.05"),
                points.iter().map(|p| (p.d_model as f64, p.within_0_05)).collect(),
            ));
        }
        lines.push((
            format!("{name}: mean layer cosine"),
            points
                .iter()
                .map(|p| {
                    let live: Vec<f64> = p.layer_cosine.iter().flatten().copied().collect();
                    (p.d_model as f64, (!live.is_empty()).then(|| live.iter().sum::<f64>() / live.len() as f64))
                })
                .collect(),
        ));
    }
    crate::figures::LineChart {
        title: &format!("{program}: accuracy and layer cosine against the residual width K"),
        x_label: "K (residual dimensions)",
        y_label: "fraction / cosine",
        series: &lines,
        x_ticks: None,
        y_range: Some((0.0, 1.0)),
    }
    .svg()
}
