//! The model's size estimated from the value sets alone, before anything is
//! lowered: what the size limit (`Options::max_weight_bytes`) is checked
//! against, so that a program whose model would not fit is refused in
//! milliseconds instead of after minutes of building.
//!
//! The estimate is of Tracr's layout (no factorisation, no residual
//! sharing), on the fewest layers (every s-op computed as soon as its inputs
//! are, which is what the allocator's first objective reaches), so it is
//! about the model before its optimisations: the compiled model is at most
//! this large for every bundled program, causal or not
//! (`tests/long_sequences.rs`), and 0.9× of it for sort at max_seq_len 256.
//!
//! Per s-op, as lowering builds it:
//! - residual directions: one per value (categorical) or one (numerical),
//!   counted only for s-ops something reads or the output (all of tokens
//!   and indices when nothing is folded into the embeddings: Tracr keeps them);
//! - an MLP: a categorical Map one neuron per output value, a numerical
//!   one two per input value, a SequenceMap one per input pair, a
//!   LinearSequenceMap four, SelectorWidth (and `length`) two per length;
//! - a head: one dimension per key value read (plus BOS), or per output
//!   value written, whichever is more.

use super::lower::sop_dirs;
use crate::rasp::valueset::ValueSets;
use crate::rasp::{Encoding, NodeId, Op, Program, Settings};

/// The estimated shape and size of a model.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Estimate {
    /// Layers.
    pub layers: usize,
    /// Residual width.
    pub d_model: usize,
    /// Heads per layer.
    pub n_heads: usize,
    /// Head width.
    pub d_head: usize,
    /// MLP width.
    pub d_mlp: usize,
    /// Parameters, biases included.
    pub params: u64,
}

impl Estimate {
    /// Bytes the weights take in memory (f64, as the compiler builds them).
    pub fn bytes(&self) -> u64 {
        self.params.saturating_mul(8)
    }
}

/// The s-ops a selector compares, as keys, queries, keys, queries, ….
fn compared(p: &Program, sel: NodeId, out: &mut Vec<NodeId>) {
    match &p.nodes[sel].op {
        Op::Select { keys, queries, .. } => out.extend([*keys, *queries]),
        Op::SelectAnd(a, b) | Op::SelectOr(a, b) => {
            compared(p, *a, out);
            compared(p, *b, out);
        }
        Op::SelectNot(a) => compared(p, *a, out),
        _ => {}
    }
}

/// Estimates the model of `p` (after rewrites) with value sets `vs`.
/// `embed_maps`: Maps of tokens or indices alone are written by the
/// embeddings (`LowerOptions::embed_maps`).
pub fn estimate(p: &Program, vs: &ValueSets, settings: &Settings, embed_maps: bool) -> Estimate {
    let n = p.nodes.len();
    let size = |id: NodeId| vs.of(id).len() as u64;
    let readers = p.readers();
    let read = |id: NodeId| id == p.output || !readers[id].is_empty();
    // the sublayer after which each s-op is in the stream (0: embedded), and
    // each block: (sublayer, head width, neurons)
    let mut ready = vec![0usize; n];
    let mut blocks: Vec<(usize, u64, u64)> = Vec::new();
    // one, tokens:BOS, tokens:PAD; Tracr's layout keeps every token and
    // index direction, read or not (with folding, only those read stay)
    let mut d_model: u64 = 3;
    if !embed_maps {
        d_model += settings.vocab.len() as u64 + settings.max_seq_len as u64;
    }
    let first_free = |after: usize, attention: bool| -> usize {
        // attention sublayers are even, MLPs odd
        if (after % 2 == 0) == attention {
            after
        } else {
            after + 1
        }
    };
    for (id, node) in p.nodes.iter().enumerate() {
        if node.op.is_selector() {
            continue;
        }
        let embedded = matches!(node.op, Op::Tokens | Op::Indices);
        if read(id) && (embed_maps || !embedded) {
            d_model += match node.encoding {
                Encoding::Categorical => size(id),
                Encoding::Numerical => 1,
            };
        }
        let inputs_ready = |ids: &[NodeId]| ids.iter().map(|i| ready[*i]).max().unwrap_or(0);
        // a dimension per key value read, plus BOS and `one`
        let key_dims = |pairs: &[NodeId]| pairs.iter().step_by(2).map(|k| size(*k)).sum::<u64>() + 2;
        let embedded_input = |i: NodeId| matches!(p.nodes[i].op, Op::Tokens | Op::Indices);
        match &node.op {
            Op::Tokens | Op::Indices | Op::Full(_) => {}
            Op::Map { input, .. } if embed_maps && embedded_input(*input) => {}
            Op::Map { input, .. } => {
                let neurons = match (p.nodes[*input].encoding, node.encoding) {
                    (Encoding::Categorical, Encoding::Categorical) => size(id),
                    (Encoding::Categorical, Encoding::Numerical) => 2,
                    (Encoding::Numerical, _) => 2 * size(*input),
                };
                let s = first_free(ready[*input], false);
                blocks.push((s, 0, neurons));
                ready[id] = s + 1;
            }
            Op::SequenceMap { inputs, .. } | Op::LinearSequenceMap { inputs, .. } => {
                let neurons = match &node.op {
                    Op::LinearSequenceMap { .. } => 4,
                    _ if inputs[0] == inputs[1] => size(inputs[0]).max(size(id)),
                    _ => size(inputs[0]).saturating_mul(size(inputs[1])),
                };
                let s = first_free(inputs_ready(inputs), false);
                blocks.push((s, 0, neurons));
                ready[id] = s + 1;
            }
            Op::Aggregate { selector, sop, .. } => {
                let mut pairs = Vec::new();
                compared(p, *selector, &mut pairs);
                let keys = key_dims(&pairs);
                let outputs = match node.encoding {
                    Encoding::Categorical => size(*sop),
                    Encoding::Numerical => 1,
                };
                pairs.push(*sop);
                let s = first_free(inputs_ready(&pairs), true);
                blocks.push((s, keys.max(outputs), 0));
                ready[id] = s + 1;
            }
            Op::SelectorWidth { .. } | Op::Length => {
                let mut pairs = Vec::new();
                if let Op::SelectorWidth { selector } = &node.op {
                    compared(p, *selector, &mut pairs);
                }
                let s = first_free(inputs_ready(&pairs), true);
                blocks.push((s, key_dims(&pairs), 0));
                blocks.push((s + 1, 0, 2 * settings.max_seq_len as u64 + 1));
                d_model += 1; // the head's output direction
                ready[id] = s + 2;
            }
            Op::Select { .. } | Op::SelectAnd(..) | Op::SelectOr(..) | Op::SelectNot(..) => {}
        }
    }
    let sublayers = ready.iter().copied().max().unwrap_or(0);
    let layers = sublayers.div_ceil(2).max(1);
    let mut heads = vec![0u64; layers];
    let mut neurons = vec![0u64; layers];
    let mut d_head = 1u64;
    for (s, width, hidden) in &blocks {
        if *s % 2 == 0 {
            heads[s / 2] += 1;
            d_head = d_head.max(*width);
        } else {
            neurons[s / 2] += hidden;
        }
    }
    let n_heads = heads.iter().copied().max().unwrap_or(0).max(1);
    let d_mlp = neurons.iter().copied().max().unwrap_or(0).max(1);
    let out_width = match p.nodes[p.output].encoding {
        Encoding::Categorical => sop_dirs(p, vs, p.output).len().max(1) as u64,
        Encoding::Numerical => 1,
    };
    let n_ctx = settings.max_seq_len as u64 + 1;
    let vocab = settings.vocab.len() as u64 + 2;
    let per_layer = 4u64
        .saturating_mul(n_heads)
        .saturating_mul(d_model)
        .saturating_mul(d_head)
        .saturating_add(3 * n_heads * d_head + d_model)
        .saturating_add(2u64.saturating_mul(d_model).saturating_mul(d_mlp))
        .saturating_add(d_mlp + d_model);
    let params = (layers as u64)
        .saturating_mul(per_layer)
        .saturating_add((vocab + n_ctx).saturating_mul(d_model))
        .saturating_add(d_model.saturating_mul(out_width) + out_width);
    Estimate {
        layers,
        d_model: d_model as usize,
        n_heads: n_heads as usize,
        d_head: d_head as usize,
        d_mlp: d_mlp as usize,
        params,
    }
}
