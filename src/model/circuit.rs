//! The ground-truth circuit of a compiled model (`circuit.json`): for every
//! node of the program as written, the heads, neurons and embedding entries
//! that compute it (by TransformerLens hook name and index), the residual
//! dimensions that carry it, what the rewrites did to it, and which nodes'
//! dimensions it reads. Written by `compiler::circuit`; the schema is in
//! docs/EXPORT_FORMAT.md.

use serde::{Deserialize, Serialize};

/// `format` of a circuit file.
pub const FORMAT: &str = "tracr-opt-circuit";
/// The schema version this build writes and reads.
pub const VERSION: u32 = 1;

/// The whole map.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Circuit {
    /// Always [`FORMAT`].
    pub format: String,
    /// The schema version ([`VERSION`]).
    pub version: u32,
    /// The program's name.
    pub program: String,
    /// The output node's label.
    pub output: String,
    /// `standard`: residual dimensions are the model's own axes. `rotated` or
    /// `compressed`: the residual basis was changed after compiling, so
    /// `residual` entries and embedding columns are left out (heads and
    /// neurons keep their indices).
    pub residual_basis: String,
    /// Every node of the program as written, in program order, then the
    /// nodes rewrites added.
    pub nodes: Vec<Node>,
    /// MLP neurons that only erase a dead direction so that its dimension can
    /// be reused (residual sharing).
    pub erase: Vec<Erase>,
    /// Residual dimensions that carry no node's value but the model needs:
    /// `one` (1 at every position) and `tokens:BOS` (1 at BOS only).
    pub constants: Vec<Residual>,
    /// Heads, head dimensions and neurons no node uses (the uniform layout's
    /// padding): zero-ablating them changes nothing.
    pub padding: Padding,
}

/// One node of the program.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Its label.
    pub label: String,
    /// The operation (`tokens`, `map`, `aggregate`, `select`, …).
    pub op: String,
    /// `categorical`, `numerical`, or `selector`.
    pub encoding: String,
    /// Its inputs as written (labels).
    pub inputs: Vec<String>,
    /// What compiling did with it.
    pub fate: Fate,
    /// The node of the compiled program whose components compute it (itself
    /// unless merged, fused or replaced); None when nothing computes it.
    pub computed_by: Option<String>,
    /// Attention heads (their pattern for a selector, their output for an
    /// s-op).
    pub heads: Vec<HeadPart>,
    /// MLP neurons.
    pub neurons: Vec<Neurons>,
    /// Embedding entries (tokens, indices, folded and constant s-ops).
    pub embedding: Vec<EmbeddingPart>,
    /// The residual dimensions that carry its value, with when.
    pub residual: Vec<Residual>,
    /// The nodes whose residual dimensions its components read (`one` and
    /// `BOS` for the constant dimensions).
    pub reads: Vec<String>,
}

/// What compiling did with a node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fate {
    /// `compiled` (its own components), `embedded` (tokens, indices),
    /// `folded` (written by the token or position embedding), `constant`,
    /// `merged` (cse: computed as `into`), `fused` (computed inside `into`'s
    /// MLP), `joint` (a selector computed by the joint select `into`),
    /// `dropped` (not computed: the output no longer depends on it), or
    /// `added` (a node a rewrite introduced).
    pub kind: String,
    /// The node it went into, for `merged`, `fused` and `joint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub into: Option<String>,
    /// Other nodes computed by the same head (head sharing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shares_head_with: Vec<String>,
    /// In words.
    pub note: String,
}

/// Part of one attention head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadPart {
    /// The layer.
    pub layer: usize,
    /// The head.
    pub head: usize,
    /// `pattern` (W_Q/W_K: the selector) or `output` (W_V/W_O: the s-op the
    /// head writes).
    pub part: String,
    /// The hook holding this part: `blocks.L.attn.hook_pattern` for a
    /// pattern, `blocks.L.attn.hook_z` for an output.
    pub hook: String,
    /// For an output: `blocks.L.attn.hook_result` (index `[.., head, :]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_result: Option<String>,
    /// Head dimensions used: of `hook_q`/`hook_k` for a pattern, of `hook_z`
    /// for an output.
    pub dims: Vec<usize>,
    /// What the head does (`aggregate`, `selector_width.attn`, …).
    pub role: String,
    /// `axis`, `grouped` or `svd` (the head's basis is rotated against the
    /// residual stream's).
    pub basis: String,
}

/// Neurons of one layer's MLP.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Neurons {
    /// The layer.
    pub layer: usize,
    /// `blocks.L.mlp.hook_post`.
    pub hook: String,
    /// Indices in `hook_post`'s last axis.
    pub neurons: Vec<usize>,
    /// What they compute (`map`, `sequence_map`, `selector_width.mlp`, …).
    pub role: String,
}

/// Entries of an embedding matrix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingPart {
    /// `hook_embed` (token embedding) or `hook_pos_embed`.
    pub hook: String,
    /// `embed.W_E` or `pos_embed.W_pos`.
    pub weight: String,
    /// Rows (token ids or positions) that write a nonzero entry.
    pub rows: Vec<usize>,
    /// Residual dimensions written (empty when the basis is not standard).
    pub columns: Vec<usize>,
}

/// One direction in one residual dimension.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Residual {
    /// The direction (`reverse:a`, `frac_prevs`).
    pub dir: String,
    /// The residual dimension.
    pub dim: usize,
    /// Where it is written: `embed` or a sublayer (`L1.mlp`); None when
    /// nothing needs the direction (Tracr's layout carries it anyway).
    pub from: Option<String>,
    /// Its last reader: a sublayer or `unembed`.
    pub to: Option<String>,
    /// The first residual hook holding it (`blocks.1.hook_resid_mid`).
    pub first_hook: Option<String>,
    /// The last residual hook where it is still needed.
    pub last_hook: Option<String>,
}

/// An erasure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Erase {
    /// The layer whose MLP erases.
    pub layer: usize,
    /// `blocks.L.mlp.hook_post`.
    pub hook: String,
    /// The neurons (new ones, or one of `existing_of`'s).
    pub neurons: Vec<usize>,
    /// The direction erased.
    pub dir: String,
    /// Its residual dimension (None when the basis is not standard).
    pub dim: Option<usize>,
    /// The node the direction belongs to.
    pub of: String,
    /// Set when a neuron of this node's MLP erases as a side job (no new neuron).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing_of: Option<String>,
}

/// What no node uses.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Padding {
    /// Whole heads.
    pub heads: Vec<HeadSlot>,
    /// Unused dimensions of used heads: of W_V/W_O (`hook_z`).
    pub head_dims: Vec<HeadDims>,
    /// Unused neurons per layer.
    pub neurons: Vec<LayerNeurons>,
}

/// A head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadSlot {
    /// The layer.
    pub layer: usize,
    /// The head.
    pub head: usize,
}

/// Dimensions of a head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadDims {
    /// The layer.
    pub layer: usize,
    /// The head.
    pub head: usize,
    /// `hook_z` dimensions.
    pub dims: Vec<usize>,
}

/// Neurons of a layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerNeurons {
    /// The layer.
    pub layer: usize,
    /// Indices in `blocks.L.mlp.hook_post`.
    pub neurons: Vec<usize>,
}

/// The TransformerLens residual hook holding the stream at position `p`
/// (the stream entering sublayer p; 2L is the final one), None for a model
/// without layers.
pub fn resid_hook(p: usize, n_layers: usize) -> Option<String> {
    if n_layers == 0 {
        return None;
    }
    Some(if p >= 2 * n_layers {
        format!("blocks.{}.hook_resid_post", n_layers - 1)
    } else if p % 2 == 0 {
        format!("blocks.{}.hook_resid_pre", p / 2)
    } else {
        format!("blocks.{}.hook_resid_mid", p / 2)
    })
}

impl Circuit {
    /// The node labelled `label`.
    pub fn node(&self, label: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.label == label)
    }

    /// The same map for a model whose residual basis was changed (rotated
    /// or compressed): heads and neurons keep their indices, residual
    /// dimensions and embedding columns no longer mean anything.
    pub fn with_basis(&self, basis: &str) -> Circuit {
        let mut c = self.clone();
        c.residual_basis = basis.to_string();
        for n in &mut c.nodes {
            n.residual.clear();
            for e in &mut n.embedding {
                e.columns.clear();
            }
        }
        c.constants.clear();
        for e in &mut c.erase {
            e.dim = None;
        }
        c
    }
}

impl Circuit {
    /// Refuses a map that names components the model does not have (a
    /// circuit.json from another model), with what is wrong.
    pub fn check(&self, c: &super::Config) -> std::result::Result<(), String> {
        if self.format != FORMAT || self.version != VERSION {
            return Err(format!(
                "is {} version {}; this build reads {FORMAT} version {VERSION}",
                self.format, self.version
            ));
        }
        let heads = self.nodes.iter().flat_map(|n| n.heads.iter().map(move |h| (n, h)));
        for (n, h) in heads {
            let width = c.d_head;
            if h.layer >= c.n_layers || h.head >= c.n_heads || h.dims.iter().any(|d| *d >= width) {
                return Err(format!(
                    "places '{}' in head {}.{} dims {:?}, outside the model ({} layers, {} heads of {width})",
                    n.label, h.layer, h.head, h.dims, c.n_layers, c.n_heads
                ));
            }
        }
        let neurons =
            self.nodes.iter().flat_map(|n| n.neurons.iter().map(move |m| (n.label.as_str(), m.layer, &m.neurons)));
        let erase = self.erase.iter().map(|e| ("an erasure", e.layer, &e.neurons));
        for (what, layer, ns) in neurons.chain(erase) {
            if layer >= c.n_layers || ns.iter().any(|x| *x >= c.d_mlp) {
                return Err(format!(
                    "places {what} in layer {layer} neurons {ns:?}, outside the model ({} layers, d_mlp {})",
                    c.n_layers, c.d_mlp
                ));
            }
        }
        let dims = self.nodes.iter().flat_map(|n| n.residual.iter()).chain(&self.constants).map(|r| r.dim);
        if let Some(d) = dims.into_iter().find(|d| *d >= c.d_model) {
            return Err(format!("names residual dimension {d}, but d_model is {}", c.d_model));
        }
        Ok(())
    }
}
