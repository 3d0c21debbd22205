//! Assembly: blocks placed in sublayers become dense weight matrices over a
//! fixed residual layout, padded to uniform widths.
//!
//! Per head, W_QK is folded into W_Q and W_K selects the key directions; W_OV is
//! folded into W_V and W_O places the output directions. The head dimension of
//! a head is therefore (keys read, outputs written); the model's d_head is the
//! largest over heads, and every head is padded to it.

use super::alloc::Allocation;
use super::craft::{Block, Body, Dir, Factor, Head, BOS, PAD};
use super::lower::{Embedded, Lowered, OutputDecoder};
use crate::diagnostic::Result;
use crate::model::{Config, Decoder, HeadInfo, Layer, LayerInfo, Meta, MlpInfo, Model};
use crate::rasp::json::value_to_json;
use crate::rasp::{Program, Settings};
use crate::value::Value;
use ndarray::{Array2, Array3};
use std::collections::HashMap;

pub struct AssembleInput<'a> {
    pub program: &'a Program,
    pub settings: &'a Settings,
    pub lowered: &'a Lowered,
    pub blocks: &'a [Block],
    pub allocation: &'a Allocation,
    pub allocator: &'a str,
    pub compile_flags: serde_json::Value,
    /// Merge heads of one layer that compute the same attention pattern.
    pub share_heads: bool,
    /// Factorise merged heads (as the factorisation pass did the others).
    pub factorise: bool,
}

/// Heads of one layer with identical W_QK attend identically: one head can
/// write all their outputs (their W_OV write disjoint directions). Returns the
/// layer's heads as (blocks merged, head).
fn share(blocks: &[Block], attn: &[usize], enabled: bool, factorise: bool) -> Vec<(Vec<usize>, Head)> {
    let mut out: Vec<(Vec<usize>, Head)> = Vec::new();
    for bi in attn {
        let Body::Head(h) = &blocks[*bi].body else { unreachable!() };
        match out.iter_mut().find(|(_, o)| enabled && o.qk == h.qk) {
            Some((members, o)) => {
                members.push(*bi);
                o.ov.extend(h.ov.iter().cloned());
                if let Some(layout) = &mut o.layout {
                    layout.ov = if factorise { super::factorise::factorise(&o.ov) } else { Factor::by_columns(&o.ov) };
                }
            }
            None => out.push((vec![*bi], h.clone())),
        }
    }
    out
}

/// A head's width: the larger rank of its two factors (Tracr's layout: keys
/// read and outputs written), 0 for an MLP.
pub fn head_width(b: &Block) -> usize {
    match &b.body {
        Body::Head(h) => h.width(),
        Body::Mlp(_) => 0,
    }
}

pub fn assemble(inp: AssembleInput) -> Result<Model> {
    let AssembleInput {
        program,
        settings,
        lowered,
        blocks,
        allocation,
        allocator,
        compile_flags,
        share_heads,
        factorise,
    } = inp;
    let residual: Vec<Dir> = lowered.dirs.iter().cloned().collect();
    let index: HashMap<&Dir, usize> = residual.iter().enumerate().map(|(i, d)| (d, i)).collect();
    let d_model = residual.len();
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
    let heads: Vec<Vec<(Vec<usize>, Head)>> = attn.iter().map(|a| share(blocks, a, share_heads, factorise)).collect();
    let n_heads = heads.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let d_head = heads.iter().flatten().map(|(_, h)| h.width()).max().unwrap_or(0).max(1);
    let d_mlp = mlp.iter().map(|l| l.iter().map(|b| blocks[*b].width()).sum::<usize>()).max().unwrap_or(0).max(1);
    let q_factor = (d_head as f64).sqrt();

    let mut layers = Vec::with_capacity(n_layers);
    let mut infos = Vec::with_capacity(n_layers);
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
                for (d, w) in q {
                    layer.w_q[[h, index[d], j]] = w * q_factor;
                }
                for (d, w) in k {
                    layer.w_k[[h, index[d], j]] = *w;
                }
            }
            for (j, (v, o)) in layout.ov.left.iter().zip(&layout.ov.right).enumerate() {
                for (d, w) in v {
                    layer.w_v[[h, index[d], j]] = *w;
                }
                for (d, w) in o {
                    layer.w_o[[h, j, index[d]]] = *w;
                }
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
        for bi in &mlp[l] {
            let b = &blocks[*bi];
            let Body::Mlp(m) = &b.body else { unreachable!() };
            for (d, h, w) in &m.w_in {
                layer.w_in[[index[d], offset + h]] += w;
            }
            for (h, d, w) in &m.w_out {
                layer.w_out[[offset + h, index[d]]] += w;
            }
            info.mlps.push(MlpInfo {
                node: program.nodes[b.node].label.clone(),
                role: b.role.into(),
                hidden: m.hidden,
            });
            offset += m.hidden;
        }
        layers.push(layer);
        infos.push(info);
    }

    // embeddings: ids 0 = BOS, 1 = PAD, then the vocab
    let mut tokens: Vec<Value> = vec![Value::Str(BOS.into()), Value::Str(PAD.into())];
    tokens.extend(settings.vocab.iter().cloned());
    let n_ctx = settings.max_seq_len + 1;
    let mut w_e = Array2::<f64>::zeros((tokens.len(), d_model));
    let mut w_pos = Array2::<f64>::zeros((n_ctx, d_model));
    // directions left out of the residual stream (nothing reads them) are skipped
    let set = |m: &mut Array2<f64>, row: usize, d: &Dir, v: f64| {
        if let Some(j) = index.get(d) {
            m[[row, *j]] = v;
        }
    };
    w_e[[0, index[&Dir::bos()]]] = 1.0;
    w_e[[0, index[&Dir::one()]]] = 1.0;
    w_e[[1, index[&Dir::pad()]]] = 1.0;
    for (id, emb) in lowered.embedded.iter().enumerate() {
        let label = &program.nodes[id].label;
        let numerical = program.nodes[id].encoding == crate::rasp::Encoding::Numerical;
        match emb {
            // written below, whether the program reads them or not
            None | Some(Embedded::Tokens) | Some(Embedded::Indices) => {}
            Some(Embedded::Constant(c)) => {
                for t in 0..settings.vocab.len() {
                    if numerical {
                        set(&mut w_e, t + 2, &Dir::named(label), c.as_f64().unwrap_or(0.0));
                    } else if !matches!(c, Value::None) {
                        set(&mut w_e, t + 2, &Dir::valued(label, c), 1.0);
                    }
                }
            }
            Some(Embedded::TokenMap(entries)) | Some(Embedded::IndexMap(entries)) => {
                let by_token = matches!(emb, Some(Embedded::TokenMap(_)));
                for (x, y) in entries {
                    let row = if by_token {
                        match settings.vocab.iter().position(|v| v == x) {
                            Some(t) => t + 2,
                            None => continue,
                        }
                    } else {
                        // position p holds index p - 1 (position 0 is BOS)
                        match x.as_f64() {
                            Some(i) if i >= 0.0 && (i as usize) + 1 < n_ctx => i as usize + 1,
                            _ => continue,
                        }
                    };
                    let m = if by_token { &mut w_e } else { &mut w_pos };
                    match y {
                        Value::None => {}
                        y if numerical => set(m, row, &Dir::named(label), y.as_f64().unwrap_or(0.0)),
                        y => set(m, row, &Dir::valued(label, y), 1.0),
                    }
                }
            }
        }
    }
    for (t, v) in settings.vocab.iter().enumerate() {
        set(&mut w_e, t + 2, &Dir::one(), 1.0);
        set(&mut w_e, t + 2, &Dir::valued("tokens", v), 1.0);
    }
    for p in 1..n_ctx {
        set(&mut w_pos, p, &Dir::valued("indices", &Value::Int(p as i64 - 1)), 1.0);
    }
    let (w_u, output) = match &lowered.output {
        OutputDecoder::Categorical(dirs) => {
            let mut w_u = Array2::<f64>::zeros((d_model, dirs.len().max(1)));
            for (j, (d, _)) in dirs.iter().enumerate() {
                w_u[[index[d], j]] = 1.0;
            }
            let values = dirs.iter().map(|(_, v)| value_to_json(v)).collect::<Result<_>>()?;
            (w_u, Decoder::Categorical { values })
        }
        OutputDecoder::Numerical(d) => {
            let mut w_u = Array2::<f64>::zeros((d_model, 1));
            w_u[[index[d], 0]] = 1.0;
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
        residual_labels: residual.iter().map(|d| d.to_string()).collect(),
        layers: infos,
        allocator: allocator.into(),
        attention_scale: lowered.scale,
        compile_flags,
        source: None,
    };
    Ok(Model { config, w_e, w_pos, layers, w_u, meta })
}
