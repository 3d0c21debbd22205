//! A compiled transformer: weights in TransformerLens's layout and names, plus
//! the metadata needed to feed it tokens and read its answer.

pub mod forward;
pub mod io;

use crate::value::Value;
use ndarray::{Array2, Array3};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub n_layers: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub d_head: usize,
    pub d_mlp: usize,
    /// max_seq_len + 1 (the BOS position).
    pub n_ctx: usize,
    pub d_vocab: usize,
    pub d_vocab_out: usize,
    pub causal: bool,
}

/// One layer's weights, zero-padded to the model's uniform widths. Biases are
/// all zero (the `one` direction carries constants) and are not stored.
#[derive(Clone, Debug)]
pub struct Layer {
    /// [n_heads, d_model, d_head]; already multiplied by sqrt(d_head), since
    /// the forward pass divides scores by it (as TransformerLens does).
    pub w_q: Array3<f64>,
    pub w_k: Array3<f64>,
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
    Categorical { values: Vec<serde_json::Value> },
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
    pub node: String,
    pub role: String,
    /// Head dimensions used by W_Q/W_K (the rank of W_QK once factorised).
    pub qk_rank: usize,
    /// Head dimensions used by W_V/W_O (the rank of W_OV once factorised).
    pub ov_rank: usize,
    /// `svd` when the head's basis is rotated against the residual stream.
    pub qk_basis: Basis,
    pub ov_basis: Basis,
}

/// What one MLP block of one layer computes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MlpInfo {
    pub node: String,
    pub role: String,
    pub hidden: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LayerInfo {
    pub heads: Vec<HeadInfo>,
    pub mlps: Vec<MlpInfo>,
}

impl LayerInfo {
    pub fn mlp_width(&self) -> usize {
        self.mlps.iter().map(|m| m.hidden).sum()
    }
}

/// One direction in one residual dimension, with the sublayers between which
/// it is needed (`embed`, `L0.attn`, `L0.mlp`, …, `unembed`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResidualOccupant {
    pub dir: String,
    /// None when nothing needs the direction (it is in the stream anyway).
    pub written: Option<String>,
    pub last_read: Option<String>,
}

/// How the residual stream is laid out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResidualInfo {
    /// Dimensions are reused once their direction is dead.
    pub shared: bool,
    /// The most directions live at once under this layer allocation: no
    /// layout of this allocation has a smaller d_model.
    pub d_model_lower_bound: usize,
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
    pub tool: String,
    pub version: String,
    pub program: String,
    /// Token id → token: id 0 is "BOS", id 1 is "PAD", then the vocab in order.
    pub tokens: Vec<serde_json::Value>,
    pub bos_id: usize,
    pub pad_id: usize,
    pub output: Decoder,
    pub output_label: String,
    pub residual_labels: Vec<String>,
    /// Absent in models written before residual sharing.
    #[serde(default)]
    pub residual: Option<ResidualInfo>,
    pub layers: Vec<LayerInfo>,
    pub allocator: String,
    /// The attention sharpness used (see docs/EXACTNESS.md).
    pub attention_scale: f64,
    pub compile_flags: serde_json::Value,
    #[serde(default)]
    pub source: Option<String>,
    /// The stored weights' precision (`float32` or `float64`), set when the
    /// model is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Model {
    pub config: Config,
    /// [d_vocab, d_model]
    pub w_e: Array2<f64>,
    /// [n_ctx, d_model]
    pub w_pos: Array2<f64>,
    pub layers: Vec<Layer>,
    /// [d_model, d_vocab_out]
    pub w_u: Array2<f64>,
    pub meta: Meta,
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
