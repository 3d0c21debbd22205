//! Tracr's baseline against the full optimiser, program by program: what
//! `tracr-opt compare` prints and docs/RESULTS.md holds.
//!
//! The baseline is Tracr's heuristic allocation with no optimisation
//! (`Options::none()`); the optimised model uses the given allocator and
//! options (by default the ILP and every pass). Both are verified against the
//! interpreter on the same inputs. Tracr's own figures are added where the
//! program is one of its library and the settings match its measurement.

pub mod table;

use crate::diagnostic::Result;
use crate::library::{tracr_figures, Bundled, TracrFigures};
use crate::model::Model;
use crate::rasp::{Program, Settings};
use crate::verify::{inputs_for, verify, Plan};
use crate::{compile, CompileOptions};

/// A model's size and how long it took to compile.
#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    /// Layers.
    pub layers: usize,
    /// Residual width.
    pub d_model: usize,
    /// Most heads in a layer.
    pub n_heads: usize,
    /// Head width.
    pub d_head: usize,
    /// Widest MLP.
    pub d_mlp: usize,
    /// Dense parameters.
    pub params: usize,
    /// Nonzero parameters.
    pub nonzero_params: usize,
    /// Parameters before the dense layout's padding ([`Model::structural_params`];
    /// None for Tracr's figures).
    pub structural_params: Option<usize>,
    /// Compile time in milliseconds.
    pub compile_ms: f64,
    /// The least d_model of any layout of the model's allocation (tracr-opt
    /// models only; equals d_model when sharing).
    pub d_model_lower_bound: Option<usize>,
    /// The least of any allocation with as many layers (the width stage's
    /// bound; tracr-opt models minimising layers, then width).
    pub d_model_bound_any_allocation: Option<usize>,
}

impl Shape {
    /// The share of dense parameters that is padding (0 for Tracr's figures).
    pub fn padding(&self) -> f64 {
        self.structural_params.map_or(0.0, |s| 1.0 - s as f64 / self.params.max(1) as f64)
    }

    fn of(m: &Model, compile_ms: f64) -> Shape {
        let c = &m.config;
        Shape {
            layers: c.n_layers,
            d_model: c.d_model,
            n_heads: c.n_heads,
            d_head: c.d_head,
            d_mlp: c.d_mlp,
            params: m.params(),
            nonzero_params: m.nonzero_params(),
            structural_params: Some(m.structural_params()),
            compile_ms,
            d_model_lower_bound: m.meta.residual.as_ref().map(|r| r.d_model_lower_bound),
            d_model_bound_any_allocation: m.meta.residual.as_ref().and_then(|r| r.d_model_bound_any_allocation),
        }
    }

    fn of_tracr(t: &TracrFigures) -> Shape {
        Shape {
            layers: t.layers,
            d_model: t.d_model,
            n_heads: t.heads,
            d_head: t.d_head,
            d_mlp: t.d_mlp,
            params: t.params,
            nonzero_params: t.nonzero_params,
            structural_params: None,
            compile_ms: t.compile_ms,
            d_model_lower_bound: None,
            d_model_bound_any_allocation: None,
        }
    }
}

/// How the two models fared against the interpreter.
#[derive(Clone, Debug, PartialEq)]
pub struct Verified {
    /// Inputs checked.
    pub inputs: usize,
    /// Whether those were every input.
    pub exhaustive: bool,
    /// Disagreements of the baseline model.
    pub baseline_mismatches: usize,
    /// Of the optimised model and its two variants (no rewrites, no residual sharing), together.
    pub optimised_mismatches: usize,
}

impl Verified {
    /// Neither model disagrees anywhere.
    pub fn ok(&self) -> bool {
        self.baseline_mismatches == 0 && self.optimised_mismatches == 0
    }
}

/// One program compared.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The program's name.
    pub program: String,
    /// The settings it was compiled at.
    pub settings: Settings,
    /// Tracr's own figures, where the reference measured these settings.
    pub tracr: Option<Shape>,
    /// Tracr's layout: heuristic allocation, no optimisation.
    pub baseline: Shape,
    /// Every optimisation, with the chosen allocator.
    pub optimised: Shape,
    /// The optimised model without the graph-level optimisations (rewrites,
    /// rule tables, head sharing): what those add.
    pub without_rewrites: Shape,
    /// The optimised model without residual sharing: what sharing adds.
    pub unshared: Shape,
    /// None when verification was skipped.
    pub verified: Option<Verified>,
}

impl Row {
    /// Optimised params / baseline params.
    pub fn params_ratio(&self) -> f64 {
        self.optimised.params as f64 / self.baseline.params.max(1) as f64
    }
}

/// Compiles `program` both ways (and verifies both unless `plan` is None).
pub fn compare(
    program: &Program,
    settings: &Settings,
    bundled: Option<&Bundled>,
    options: &CompileOptions,
    plan: Option<&Plan>,
) -> Result<Row> {
    // (both keep the joint-selector rewrite: without it `|` over different
    // s-ops does not compile at all)
    let base = compile(program, settings, &CompileOptions::baseline())?;
    let opt = compile(program, settings, options)?;
    let plain = compile(program, settings, &CompileOptions { rewrites: false, ..options.clone() })?;
    // the same allocator (and objectives) as the optimised model, so that
    // only the residual layout differs
    let allocator = options.allocator()?;
    let unshared_passes = CompileOptions { share_residual: false, ..options.clone() }.passes();
    let unshared = crate::compiler::compile(program, settings, allocator.as_ref(), &unshared_passes)?;
    let verified = match plan {
        None => None,
        Some(plan) => {
            let (inputs, exhaustive) = inputs_for(&settings.vocab, settings.max_seq_len, plan);
            let b = verify(&base.model, &base.tabulated, &inputs, exhaustive);
            let o = verify(&opt.model, &opt.tabulated, &inputs, exhaustive);
            let w = verify(&plain.model, &plain.tabulated, &inputs, exhaustive);
            let u = verify(&unshared.model, &unshared.tabulated, &inputs, exhaustive);
            Some(Verified {
                inputs: inputs.len(),
                exhaustive,
                baseline_mismatches: b.mismatches,
                optimised_mismatches: o.mismatches + w.mismatches + u.mismatches,
            })
        }
    };
    Ok(Row {
        program: program.name.clone(),
        settings: settings.clone(),
        tracr: bundled.and_then(|b| tracr_figures(b, settings)).map(|t| Shape::of_tracr(&t)),
        baseline: Shape::of(&base.model, base.total_ms()),
        optimised: Shape::of(&opt.model, opt.total_ms()),
        without_rewrites: Shape::of(&plain.model, plain.total_ms()),
        unshared: Shape::of(&unshared.model, unshared.total_ms()),
        verified,
    })
}
