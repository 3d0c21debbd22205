//! A compiled transformer: weights in TransformerLens's layout and names, plus
//! the metadata needed to feed it tokens and read its answer.

pub mod circuit;
pub mod forward;
pub mod io;
pub mod project;

use crate::value::Value;
use ndarray::{Array2, Array3};
use serde::{Deserialize, Serialize};

/// The model's shape, as TransformerLens's config names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Layers (one attention and one MLP sublayer each).
    pub n_layers: usize,
    /// Residual stream width.
    pub d_model: usize,
    /// Heads per layer (padded to the most any layer has).
    pub n_heads: usize,
    /// Head width (padded to the widest head).
    pub d_head: usize,
    /// MLP width (padded to the widest layer).
    pub d_mlp: usize,
    /// max_seq_len + 1 (the BOS position).
    pub n_ctx: usize,
    /// Input tokens: BOS, PAD and the vocab.
    pub d_vocab: usize,
    /// Unembedding columns: the output values, or 1 for a numerical output.
    pub d_vocab_out: usize,
    /// Causal attention (each position sees itself and earlier ones).
    pub causal: bool,
}

/// One layer's weights, zero-padded to the model's uniform widths. Biases are
/// all zero (the `one` direction carries constants) and are not stored.
#[derive(Clone, Debug)]
pub struct Layer {
    /// [n_heads, d_model, d_head]; already multiplied by sqrt(d_head), since
    /// the forward pass divides scores by it (as TransformerLens does).
    pub w_q: Array3<f64>,
    /// [n_heads, d_model, d_head]
    pub w_k: Array3<f64>,
    /// [n_heads, d_model, d_head]
    pub w_v: Array3<f64>,
    /// [n_heads, d_head, d_model]
    pub w_o: Array3<f64>,
    /// [d_model, d_mlp]
    pub w_in: Array2<f64>,
    /// [d_mlp, d_model]
    pub w_out: Array2<f64>,
}

/// How to read the output s-op off the final residual stream.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Decoder {
    /// Column j of the unembedding is the j-th value; argmax, and None when no
    /// column reaches 0.5.
    Categorical {
        /// Column j decodes to `values[j]` (JSON values, tuples as arrays).
        values: Vec<serde_json::Value>,
    },
    /// The single unembedding column holds the number.
    Numerical,
}

/// How a factor's head-side basis was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Basis {
    /// One side is a selection of residual directions, weight 1 each (Tracr's layout).
    Axis,
    /// One side sums groups of residual directions with parallel partners: sparse, not rotated.
    Grouped,
    /// Singular vectors: the head's basis is rotated against the residual's.
    Svd,
}

/// What one head of one layer computes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HeadInfo {
    /// The s-op it computes (the node's label).
    pub node: String,
    /// What the head does for it (e.g. `aggregate`, `selector_width`).
    pub role: String,
    /// Head dimensions used by W_Q/W_K (the rank of W_QK once factorised).
    pub qk_rank: usize,
    /// Head dimensions used by W_V/W_O (the rank of W_OV once factorised).
    pub ov_rank: usize,
    /// `svd` when the head's basis is rotated against the residual stream.
    pub qk_basis: Basis,
    /// `svd` when the head's value/output basis is rotated.
    pub ov_basis: Basis,
}

/// What one MLP block of one layer computes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MlpInfo {
    /// The s-op it computes (the node's label).
    pub node: String,
    /// What the block does (e.g. `map`, `sequence_map`, `erase`).
    pub role: String,
    /// Hidden neurons.
    pub hidden: usize,
}

/// What one layer computes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LayerInfo {
    /// Its heads, in head order.
    pub heads: Vec<HeadInfo>,
    /// Its MLP blocks, in neuron order.
    pub mlps: Vec<MlpInfo>,
}

impl LayerInfo {
    /// Neurons the layer's MLP uses (before padding).
    pub fn mlp_width(&self) -> usize {
        self.mlps.iter().map(|m| m.hidden).sum()
    }
}

/// One direction in one residual dimension, with the sublayers between which
/// it is needed (`embed`, `L0.attn`, `L0.mlp`, …, `unembed`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResidualOccupant {
    /// The direction's label (e.g. `tokens:a`, `frac_prevs`).
    pub dir: String,
    /// None when nothing needs the direction (it is in the stream anyway).
    pub written: Option<String>,
    /// The sublayer that reads it last (None: nothing reads it).
    pub last_read: Option<String>,
}

/// How the residual stream is laid out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResidualInfo {
    /// Dimensions are reused once their direction is dead.
    pub shared: bool,
    /// The most directions held at once under this layer allocation (live,
    /// or read last by an attention sublayer whose layer's MLP has not yet
    /// run): no layout of this allocation that erases in MLPs has a smaller
    /// d_model. Equals d_model when sharing.
    pub d_model_lower_bound: usize,
    /// The most directions live at once: no layout of this allocation is
    /// narrower, whatever could erase (0 in models written before it was kept).
    #[serde(default)]
    pub d_model_live_peak: usize,
    /// No allocation with this many layers has a narrower held peak: the
    /// width stage's proven lower bound (its optimum when proven optimal).
    /// None unless the allocation minimised `layers`, then `width`.
    #[serde(default)]
    pub d_model_bound_any_allocation: Option<usize>,
    /// d_model with one dimension per direction (Tracr's layout).
    pub d_model_unshared: usize,
    /// Per dimension, its directions in time order.
    pub dims: Vec<Vec<ResidualOccupant>>,
    /// MLP neurons added only to erase dying directions.
    pub erase_neurons: usize,
    /// Erasures done by a neuron the MLP already had.
    pub free_erasures: usize,
}

/// Everything besides the weights, written as `tracr_opt.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Meta {
    /// Always `tracr-opt`.
    pub tool: String,
    /// The tracr-opt version that wrote it.
    pub version: String,
    /// The program's name.
    pub program: String,
    /// Token id → token: id 0 is "BOS", id 1 is "PAD", then the vocab in order.
    pub tokens: Vec<serde_json::Value>,
    /// BOS's token id (0).
    pub bos_id: usize,
    /// PAD's token id (1).
    pub pad_id: usize,
    /// How to read the output off the unembedding.
    pub output: Decoder,
    /// The output s-op's label.
    pub output_label: String,
    /// What each residual dimension holds.
    pub residual_labels: Vec<String>,
    /// Absent in models written before residual sharing.
    #[serde(default)]
    pub residual: Option<ResidualInfo>,
    /// What each layer computes.
    pub layers: Vec<LayerInfo>,
    /// Which allocator placed the blocks (`ilp`, `heuristic`).
    pub allocator: String,
    /// The attention sharpness used (see docs/EXACTNESS.md).
    pub attention_scale: f64,
    /// The settings and switches it was compiled with.
    pub compile_flags: serde_json::Value,
    /// The program text it was compiled from, when known.
    #[serde(default)]
    pub source: Option<String>,
    /// The stored weights' precision (`float32` or `float64`), set when the
    /// model is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
    /// Set when the residual basis was turned by a random rotation (`compile --rotate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
    /// Set when the residual stream was compressed by gradient descent
    /// (`tracr-opt compress`): the model is lossy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
}

/// How a rotated model's basis was made (see [`project::rotate`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rotation {
    /// The seed of [`project::random_rotation`]: the rotation is that matrix.
    pub seed: u64,
    /// The compiler's residual labels, which the rotation's rows refer to.
    pub labels: Vec<String>,
}

/// What a compressed model is and how well it does (`tracr-opt compress`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Compression {
    /// Always true: the model is not exact.
    pub lossy: bool,
    /// The compressed residual width (K).
    pub d_model: usize,
    /// The width it was compressed from (D).
    pub from_d_model: usize,
    /// Which model it started from: `baseline`, `optimised` or `model` (a directory).
    pub from: String,
    /// The labels of the D dimensions W's rows refer to.
    pub labels: Vec<String>,
    /// The learned projection W, D rows of K (the model's stream is x·W).
    pub w: Vec<Vec<f64>>,
    /// Fraction of non-BOS positions that decode to the interpreter's output
    /// (numerical: within 0.01).
    pub accuracy: f64,
    /// Numerical outputs only: fraction of positions within 0.05.
    pub accuracy_within_0_05: Option<f64>,
    /// Mean squared logit error against the exact model, non-BOS positions.
    pub output_mse: f64,
    /// Per layer, the mean cosine similarity between the exact and the
    /// compressed model's layer outputs (None where the layer writes nothing).
    pub layer_cosine: Vec<Option<f64>>,
    /// Inputs the figures were measured on, and whether that was all of them.
    pub inputs: usize,
    /// Whether `inputs` was every input of every length.
    pub exhaustive: bool,
    /// The training settings (seed, steps, lr, batch, …).
    pub training: serde_json::Value,
}

/// A compiled transformer: weights in TransformerLens's layout (f64) and its metadata.
#[derive(Clone, Debug)]
pub struct Model {
    /// The shape.
    pub config: Config,
    /// [d_vocab, d_model]
    pub w_e: Array2<f64>,
    /// [n_ctx, d_model]
    pub w_pos: Array2<f64>,
    /// The layers, in order.
    pub layers: Vec<Layer>,
    /// [d_model, d_vocab_out]
    pub w_u: Array2<f64>,
    /// Everything besides the weights (`tracr_opt.json`).
    pub meta: Meta,
    /// Which components compute which node (`circuit.json`); None for a
    /// model directory written without one.
    pub circuit: Option<circuit::Circuit>,
}

impl Model {
    /// Dense parameter count in the padded TransformerLens layout, embeddings,
    /// unembedding and (zero) biases included.
    pub fn params(&self) -> usize {
        let c = &self.config;
        let (d, h, k, m) = (c.d_model, c.n_heads, c.d_head, c.d_mlp);
        let per_layer = 3 * (h * d * k + h * k) + h * k * d + d + d * m + m + m * d + d;
        c.d_vocab * d + c.n_ctx * d + c.n_layers * per_layer + d * c.d_vocab_out + c.d_vocab_out
    }

    /// Parameters of the blocks as they are, before TransformerLens's dense
    /// layout pads every head to `d_head` and `n_heads` and every MLP to
    /// `d_mlp`: each head's W_Q and W_K at its QK rank, W_V and W_O at its OV
    /// rank, each MLP at its own width, with their biases; embeddings and
    /// unembedding as they are. [`Model::params`] minus this is padding.
    pub fn structural_params(&self) -> usize {
        let c = &self.config;
        let d = c.d_model;
        let blocks: usize = self
            .meta
            .layers
            .iter()
            .map(|l| {
                let heads: usize =
                    l.heads.iter().map(|h| 2 * (d * h.qk_rank + h.qk_rank) + 2 * d * h.ov_rank + h.ov_rank).sum();
                let m = l.mlp_width();
                heads + if l.heads.is_empty() { 0 } else { d } + if m == 0 { 0 } else { 2 * d * m + m + d }
            })
            .sum();
        c.d_vocab * d + c.n_ctx * d + blocks + d * c.d_vocab_out + c.d_vocab_out
    }

    /// Number of nonzero weights.
    pub fn nonzero_params(&self) -> usize {
        let nz2 = |a: &Array2<f64>| a.iter().filter(|x| **x != 0.0).count();
        let nz3 = |a: &Array3<f64>| a.iter().filter(|x| **x != 0.0).count();
        nz2(&self.w_e)
            + nz2(&self.w_pos)
            + nz2(&self.w_u)
            + self
                .layers
                .iter()
                .map(|l| nz3(&l.w_q) + nz3(&l.w_k) + nz3(&l.w_v) + nz3(&l.w_o) + nz2(&l.w_in) + nz2(&l.w_out))
                .sum::<usize>()
    }

    /// The vocab (token ids 2.. in order), decoded from the metadata.
    pub fn vocab(&self) -> crate::diagnostic::Result<Vec<Value>> {
        self.meta.tokens.iter().skip(2).map(crate::rasp::json::value_from_json).collect()
    }

    /// The output values by unembedding column (empty for a numerical output).
    pub fn output_values(&self) -> crate::diagnostic::Result<Vec<Value>> {
        match &self.meta.output {
            Decoder::Categorical { values } => values.iter().map(crate::rasp::json::value_from_json).collect(),
            Decoder::Numerical => Ok(vec![]),
        }
    }
}
