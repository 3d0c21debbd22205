//! Assembly: blocks placed in sublayers become dense weight matrices over the
//! residual layout (`residual.rs`), padded to uniform widths; the layout's
//! erasures become extra MLP neurons.
//!
//! Per head, W_QK is folded into W_Q and W_K selects the key directions; W_OV is
//! folded into W_V and W_O places the output directions. The head dimension of
//! a head is therefore (keys read, outputs written); the model's d_head is the
//! largest over heads, and every head is padded to it.

use super::alloc::Allocation;
use super::craft::{Block, Body, Dir, Factor, Head, BOS, PAD};
use super::lower::{Lowered, OutputDecoder};
use super::residual::{EraseWith, Layout};
use crate::diagnostic::Result;
use crate::model::{Config, Decoder, HeadInfo, Layer, LayerInfo, Meta, MlpInfo, Model};
use crate::rasp::json::value_to_json;
use crate::rasp::{Program, Settings};
use crate::value::Value;
use ndarray::{Array2, Array3};
use std::borrow::Cow;
use std::collections::HashMap;

/// What assembly needs.
pub struct AssembleInput<'a> {
    /// The program the blocks were lowered from.
    pub program: &'a Program,
    /// The settings.
    pub settings: &'a Settings,
    /// Directions, embeddings and output decoder.
    pub lowered: &'a Lowered,
    /// The blocks to place (factorised or as lowered).
    pub blocks: &'a [Block],
    /// The sublayer of each block.
    pub allocation: &'a Allocation,
    /// The residual column of each direction.
    pub layout: &'a Layout,
    /// The allocator's name, for the metadata.
    pub allocator: &'a str,
    /// The compile settings and switches, for the metadata.
    pub compile_flags: serde_json::Value,
    /// Merge heads of one layer that compute the same attention pattern.
    pub share_heads: bool,
    /// Factorise merged heads (as the factorisation pass did the others).
    pub factorise: bool,
}

/// Heads of one layer with identical W_QK attend identically: one head can
/// write all their outputs (their W_OV write disjoint directions). Heads of
/// one share group (`share_groups`: same pattern, W_OV widths that fit the
/// widest head) merge. Returns the layer's heads as (blocks merged, head).
/// A head is copied only when another joins it.
fn share<'b>(
    blocks: &'b [Block],
    attn: &[usize],
    group: &[usize],
    factorise: bool,
) -> Vec<(Vec<usize>, Cow<'b, Head>)> {
    let mut out: Vec<(Vec<usize>, Cow<Head>)> = Vec::new();
    for bi in attn {
        let Body::Head(h) = &blocks[*bi].body else { unreachable!() };
        match out.iter_mut().find(|(members, _)| group[members[0]] == group[*bi]) {
            Some((members, o)) => {
                members.push(*bi);
                let o = o.to_mut();
                o.ov.extend(h.ov.iter().cloned());
                if let Some(layout) = &mut o.layout {
                    layout.ov = if factorise { super::factorise::factorise(&o.ov) } else { Factor::by_columns(&o.ov) };
                }
            }
            None => out.push((vec![*bi], Cow::Borrowed(h))),
        }
    }
    out
}

/// Where assembly put each block and erasure: the component indices the
/// circuit map (`circuit.rs`) names.
#[derive(Clone, Debug, Default)]
pub struct Placement {
    /// Per block (by index in the blocks assembled).
    pub blocks: Vec<Option<Slot>>,
    /// Per erasure of the layout, in its order: (layer, neurons).
    pub erasures: Vec<(usize, Vec<usize>)>,
}

/// One block's place in the model.
#[derive(Clone, Debug, PartialEq)]
pub enum Slot {
    /// Head `head` of `layer`; the head's W_Q/W_K use dimensions
    /// `0..qk_rank`, and this block's outputs are written by the W_V/W_O
    /// dimensions `ov_dims`. `members` are every block the head computes
    /// (more than one when heads with the same pattern were merged).
    Head {
        /// The layer.
        layer: usize,
        /// The head within it.
        head: usize,
        /// W_QK's rank (head dimensions of W_Q and W_K used).
        qk_rank: usize,
        /// The W_V/W_O head dimensions that write this block's outputs.
        ov_dims: Vec<usize>,
        /// The blocks merged into this head.
        members: Vec<usize>,
        /// How W_QK's head basis was chosen.
        qk_basis: super::craft::Basis,
        /// How W_OV's head basis was chosen.
        ov_basis: super::craft::Basis,
    },
    /// Neurons `neurons` of `layer`'s MLP.
    Mlp {
        /// The layer.
        layer: usize,
        /// The hidden neurons, in `hook_post` order.
        neurons: std::ops::Range<usize>,
    },
}

/// A head's width: the larger rank of its two factors (Tracr's layout: keys
/// read and outputs written), 0 for an MLP.
pub fn head_width(b: &Block) -> usize {
    match &b.body {
        Body::Head(h) => h.width(),
        Body::Mlp(_) => 0,
    }
}

/// The dense model: each block's weights in its sublayer, each direction in
/// its column; and where each block went.
pub fn assemble(inp: AssembleInput) -> Result<(Model, Placement)> {
    let AssembleInput {
        program,
        settings,
        lowered,
        blocks,
        allocation,
        layout,
        allocator,
        compile_flags,
        share_heads,
        factorise,
    } = inp;
    // directions absent from the layout are zero (never written) or never read
    let col = |d: &Dir| layout.column.get(d).copied();
    let d_model = layout.d_model();
    let n_layers = allocation.n_layers();

    // blocks per sublayer, in block order (deterministic)
    let mut attn: Vec<Vec<usize>> = vec![Vec::new(); n_layers];
    let mut mlp: Vec<Vec<usize>> = vec![Vec::new(); n_layers];
    for (i, s) in allocation.sublayer.iter().enumerate() {
        if s % 2 == 0 {
            attn[s / 2].push(i);
        } else {
            mlp[s / 2].push(i);
        }
    }
    let group = super::alloc::ilp::share_groups(blocks, share_heads);
    let heads: Vec<Vec<(Vec<usize>, Cow<Head>)>> = attn.iter().map(|a| share(blocks, a, &group, factorise)).collect();
    let n_heads = heads.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let d_head = heads.iter().flatten().map(|(_, h)| h.width()).max().unwrap_or(0).max(1);
    // per layer, its erasures by index in the layout
    let mut erased: Vec<Vec<usize>> = vec![Vec::new(); n_layers];
    for (i, e) in layout.erasures.iter().enumerate() {
        erased[e.layer].push(i);
    }
    let d_mlp = (0..n_layers)
        .map(|l| {
            mlp[l].iter().map(|b| blocks[*b].width()).sum::<usize>()
                + erased[l].iter().map(|e| layout.erasures[*e].with.new_neurons()).sum::<usize>()
        })
        .max()
        .unwrap_or(0)
        .max(1);
    let q_factor = (d_head as f64).sqrt();

    let mut layers = Vec::with_capacity(n_layers);
    let mut infos = Vec::with_capacity(n_layers);
    let mut placement =
        Placement { blocks: vec![None; blocks.len()], erasures: vec![(0, vec![]); layout.erasures.len()] };
    for l in 0..n_layers {
        let mut layer = Layer {
            w_q: Array3::zeros((n_heads, d_model, d_head)),
            w_k: Array3::zeros((n_heads, d_model, d_head)),
            w_v: Array3::zeros((n_heads, d_model, d_head)),
            w_o: Array3::zeros((n_heads, d_head, d_model)),
            w_in: Array2::zeros((d_model, d_mlp)),
            w_out: Array2::zeros((d_mlp, d_model)),
        };
        let mut info = LayerInfo { heads: vec![], mlps: vec![] };
        for (h, (members, head)) in heads[l].iter().enumerate() {
            let b = &blocks[members[0]];
            let layout = head.layout();
            for (j, (q, k)) in layout.qk.left.iter().zip(&layout.qk.right).enumerate() {
                for (c, w) in q.iter().filter_map(|(d, w)| Some((col(d)?, w))) {
                    layer.w_q[[h, c, j]] = w * q_factor;
                }
                for (c, w) in k.iter().filter_map(|(d, w)| Some((col(d)?, w))) {
                    layer.w_k[[h, c, j]] = *w;
                }
            }
            for (j, (v, o)) in layout.ov.left.iter().zip(&layout.ov.right).enumerate() {
                for (c, w) in v.iter().filter_map(|(d, w)| Some((col(d)?, w))) {
                    layer.w_v[[h, c, j]] = *w;
                }
                for (c, w) in o.iter().filter_map(|(d, w)| Some((col(d)?, w))) {
                    layer.w_o[[h, j, c]] = *w;
                }
            }
            for m in members {
                let Body::Head(own) = &blocks[*m].body else { unreachable!() };
                let writes: std::collections::BTreeSet<&Dir> = own.ov.iter().map(|(_, o, _)| o).collect();
                let ov_dims =
                    (0..layout.ov.rank()).filter(|j| layout.ov.right[*j].keys().any(|d| writes.contains(d))).collect();
                placement.blocks[*m] = Some(Slot::Head {
                    layer: l,
                    head: h,
                    qk_rank: layout.qk.rank(),
                    ov_dims,
                    members: members.clone(),
                    qk_basis: layout.qk.basis,
                    ov_basis: layout.ov.basis,
                });
            }
            info.heads.push(HeadInfo {
                node: members
                    .iter()
                    .map(|m| program.nodes[blocks[*m].node].label.clone())
                    .collect::<Vec<_>>()
                    .join("+"),
                role: if members.len() > 1 { format!("{} (shared pattern)", b.role) } else { b.role.into() },
                qk_rank: layout.qk.rank(),
                ov_rank: layout.ov.rank(),
                qk_basis: layout.qk.basis,
                ov_basis: layout.ov.basis,
            });
        }
        let mut offset = 0;
        let mut block_offset = HashMap::new();
        for bi in &mlp[l] {
            let b = &blocks[*bi];
            let Body::Mlp(m) = &b.body else { unreachable!() };
            for (c, h, w) in m.w_in.iter().filter_map(|(d, h, w)| Some((col(d)?, h, w))) {
                layer.w_in[[c, offset + h]] += w;
            }
            for (h, c, w) in m.w_out.iter().filter_map(|(h, d, w)| Some((h, col(d)?, w))) {
                layer.w_out[[offset + h, c]] += w;
            }
            info.mlps.push(MlpInfo {
                node: program.nodes[b.node].label.clone(),
                role: b.role.into(),
                hidden: m.hidden,
            });
            block_offset.insert(*bi, offset);
            placement.blocks[*bi] = Some(Slot::Mlp { layer: l, neurons: offset..offset + m.hidden });
            offset += m.hidden;
        }
        // erasures: x + (-relu(x)) = 0 for x >= 0; relu(-x) restores negative x
        let start = offset;
        for ei in &erased[l] {
            let e = &layout.erasures[*ei];
            let c = layout.column[&e.dir];
            placement.erasures[*ei] = (l, (offset..offset + e.with.new_neurons()).collect());
            match e.with {
                EraseWith::Existing { block, neuron } => {
                    layer.w_out[[block_offset[&block] + neuron, c]] -= 1.0;
                    placement.erasures[*ei].1 = vec![block_offset[&block] + neuron];
                }
                EraseWith::Relu | EraseWith::ReluPair => {
                    layer.w_in[[c, offset]] = 1.0;
                    layer.w_out[[offset, c]] = -1.0;
                    offset += 1;
                    if e.with == EraseWith::ReluPair {
                        layer.w_in[[c, offset]] = -1.0;
                        layer.w_out[[offset, c]] = 1.0;
                        offset += 1;
                    }
                }
            }
        }
        if !erased[l].is_empty() {
            let mut names: Vec<&str> = erased[l].iter().map(|e| layout.erasures[*e].dir.name.as_str()).collect();
            names.dedup();
            info.mlps.push(MlpInfo {
                node: format!("erase({})", names.join(", ")),
                role: "erase".into(),
                hidden: offset - start,
            });
        }
        layers.push(layer);
        infos.push(info);
    }

    // embeddings: ids 0 = BOS, 1 = PAD, then the vocab
    let mut tokens: Vec<Value> = vec![Value::Str(BOS.into()), Value::Str(PAD.into())];
    tokens.extend(settings.vocab.iter().cloned());
    let n_ctx = settings.max_seq_len + 1;
    let dense = |rows: &[super::craft::DirVec]| {
        let mut m = Array2::<f64>::zeros((rows.len(), d_model));
        for (r, row) in rows.iter().enumerate() {
            for (c, v) in row.iter().filter_map(|(d, v)| Some((col(d)?, v))) {
                m[[r, c]] = *v;
            }
        }
        m
    };
    let w_e = dense(&lowered.embedding.tokens);
    let w_pos = dense(&lowered.embedding.positions);
    let (w_u, output) = match &lowered.output {
        OutputDecoder::Categorical(dirs) => {
            let mut w_u = Array2::<f64>::zeros((d_model, dirs.len().max(1)));
            for (j, c) in dirs.iter().enumerate().filter_map(|(j, (d, _))| Some((j, col(d)?))) {
                w_u[[c, j]] = 1.0;
            }
            let values = dirs.iter().map(|(_, v)| value_to_json(v)).collect::<Result<_>>()?;
            (w_u, Decoder::Categorical { values })
        }
        OutputDecoder::Numerical(d) => {
            let mut w_u = Array2::<f64>::zeros((d_model, 1));
            if let Some(c) = col(d) {
                w_u[[c, 0]] = 1.0;
            }
            (w_u, Decoder::Numerical)
        }
    };
    let config = Config {
        n_layers,
        d_model,
        n_heads,
        d_head,
        d_mlp,
        n_ctx,
        d_vocab: tokens.len(),
        d_vocab_out: w_u.ncols(),
        causal: settings.causal,
    };
    let meta = Meta {
        tool: "tracr-opt".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        program: program.name.clone(),
        tokens: tokens.iter().map(value_to_json).collect::<Result<_>>()?,
        bos_id: 0,
        pad_id: 1,
        output,
        output_label: program.nodes[program.output].label.clone(),
        residual_labels: layout.labels(),
        residual: Some(layout.info()),
        layers: infos,
        allocator: allocator.into(),
        attention_scale: lowered.scale,
        compile_flags,
        source: None,
        dtype: None,
        rotation: None,
        compression: None,
    };
    Ok((Model { config, w_e, w_pos, layers, w_u, meta, circuit: None }, placement))
}
