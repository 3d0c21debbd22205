//! The circuit map (`circuit.json`, `model::circuit`): which heads, neurons
//! and embedding entries compute each node of the program as written, after
//! rewrites merged, fused, folded or replaced some of them, assembly shared
//! heads and residual sharing reused dimensions.
//!
//! A node is followed from its label in the program as written, through the
//! rewrites' effects (`rewrite::Effect`), to the node of the compiled
//! program that computes it; that node's blocks carry their place in the
//! model (`assemble::Placement`), and its directions their residual
//! dimension and span (`residual::Layout`).

use super::assemble::{Placement, Slot};
use super::craft::{Body, Dir};
use super::lower::{Embedded, Lowered};
use super::residual::{read_name, written_name, EraseWith, Layout, Span};
use super::rewrite::{selector_tree, Effect, Rewrite};
use crate::model::circuit::{
    resid_hook, Circuit, EmbeddingPart, Erase, Fate, HeadDims, HeadPart, HeadSlot, LayerNeurons, Neurons, Node,
    Padding, Residual, FORMAT, VERSION,
};
use crate::model::{Basis, Config};
use crate::rasp::{Encoding, NodeId, Op, Program};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What the map is built from.
pub struct CircuitInput<'a> {
    /// The program as written (the user's labels).
    pub original: &'a Program,
    /// The program after rewrites, which the blocks were lowered from.
    pub compiled: &'a Program,
    /// The rewrites, in order.
    pub rewrites: &'a [Rewrite],
    /// The lowered program; its blocks are the ones assembled.
    pub lowered: &'a Lowered,
    /// The residual layout.
    pub layout: &'a Layout,
    /// Where assembly put each block and erasure.
    pub placement: &'a Placement,
    /// The model's shape.
    pub config: &'a Config,
}

fn basis_name(b: Basis) -> String {
    match b {
        Basis::Axis => "axis",
        Basis::Grouped => "grouped",
        Basis::Svd => "svd",
    }
    .into()
}

/// The components, residual entries and reads of one node of the compiled program.
#[derive(Default, Clone)]
struct Parts {
    heads: Vec<HeadPart>,
    neurons: Vec<Neurons>,
    embedding: Vec<EmbeddingPart>,
    residual: Vec<Residual>,
    reads: Vec<String>,
    shares_head_with: Vec<String>,
}

/// The circuit map of a compiled model.
pub fn build(inp: &CircuitInput) -> Circuit {
    let CircuitInput { original, compiled, rewrites, lowered, layout, placement, config } = *inp;
    let blocks = &lowered.blocks;
    let label = |id: NodeId| compiled.nodes[id].label.clone();
    let by_label: HashMap<&str, NodeId> =
        compiled.nodes.iter().enumerate().map(|(i, n)| (n.label.as_str(), i)).collect();

    // who each direction belongs to: its writer's node, else the s-op it is named after
    let mut owner: HashMap<Dir, String> = HashMap::new();
    for b in blocks {
        let writes: Vec<&Dir> = match &b.body {
            Body::Mlp(m) => m.w_out.iter().map(|(_, d, _)| d).collect(),
            Body::Head(h) => h.ov.iter().map(|(_, d, _)| d).collect(),
        };
        for d in writes {
            owner.entry(*d).or_insert_with(|| label(b.node));
        }
    }
    let owner_of = |d: &Dir| -> String {
        if *d == Dir::one() {
            "one".into()
        } else if *d == Dir::bos() {
            "BOS".into()
        } else {
            owner.get(d).cloned().unwrap_or_else(|| d.name.clone())
        }
    };
    // each direction once, whatever the number of weights on it (millions in a long head)
    let owners_of = |dirs: &mut dyn Iterator<Item = &Dir>| -> Vec<String> {
        let distinct: std::collections::HashSet<&Dir> = dirs.collect();
        distinct.into_iter().map(|d| owner_of(d)).collect()
    };
    let span_of: HashMap<&Dir, Option<Span>> = layout.occupants.iter().flatten().map(|o| (&o.dir, o.span)).collect();
    let residual = |d: &Dir| -> Option<Residual> {
        let dim = *layout.column.get(d)?;
        let span = span_of.get(d).copied().flatten();
        Some(Residual {
            dir: d.to_string(),
            dim,
            from: span.as_ref().map(written_name),
            to: span.as_ref().map(read_name),
            first_hook: span.and_then(|s| resid_hook(s.first, config.n_layers)),
            last_hook: span.and_then(|s| resid_hook(s.live_last, config.n_layers)),
        })
    };

    // the parts of every compiled node
    let mut parts: Vec<Parts> = vec![Parts::default(); compiled.nodes.len()];
    let mut reads: Vec<BTreeSet<String>> = vec![BTreeSet::new(); compiled.nodes.len()];
    for (bi, b) in blocks.iter().enumerate() {
        let Some(slot) = &placement.blocks[bi] else { continue };
        let p = &mut parts[b.node];
        match (slot, &b.body) {
            (Slot::Mlp { layer, neurons }, Body::Mlp(m)) => {
                p.neurons.push(Neurons {
                    layer: *layer,
                    hook: format!("blocks.{layer}.mlp.hook_post"),
                    neurons: neurons.clone().collect(),
                    role: b.role.into(),
                });
                reads[b.node].extend(owners_of(&mut m.w_in.iter().map(|(d, _, _)| d)));
            }
            (Slot::Head { layer, head, qk_rank, ov_dims, members, qk_basis, ov_basis }, Body::Head(h)) => {
                p.heads.push(HeadPart {
                    layer: *layer,
                    head: *head,
                    part: "output".into(),
                    hook: format!("blocks.{layer}.attn.hook_z"),
                    hook_result: Some(format!("blocks.{layer}.attn.hook_result")),
                    dims: ov_dims.clone(),
                    role: b.role.into(),
                    basis: basis_name(*ov_basis),
                });
                for m in members.iter().filter(|m| blocks[**m].node != b.node) {
                    let other = label(blocks[*m].node);
                    if !p.shares_head_with.contains(&other) {
                        p.shares_head_with.push(other);
                    }
                }
                reads[b.node].extend(owners_of(&mut h.ov.iter().map(|(d, _, _)| d)));
                // the pattern belongs to the selector (and every select under it)
                let selector = match &compiled.nodes[b.node].op {
                    Op::Aggregate { selector, .. } | Op::SelectorWidth { selector } => Some(*selector),
                    _ => None,
                };
                let pattern = HeadPart {
                    layer: *layer,
                    head: *head,
                    part: "pattern".into(),
                    hook: format!("blocks.{layer}.attn.hook_pattern"),
                    hook_result: None,
                    dims: (0..*qk_rank).collect(),
                    role: b.role.into(),
                    basis: basis_name(*qk_basis),
                };
                let qk_reads = owners_of(&mut h.qk_entries().flat_map(|(q, k, _)| [q, k]));
                let owners = match selector {
                    Some(s) => selector_tree(compiled, s),
                    // Length: a head of its own with an always-true pattern
                    None => vec![b.node],
                };
                for s in owners {
                    if !parts[s].heads.contains(&pattern) {
                        parts[s].heads.push(pattern.clone());
                    }
                    reads[s].extend(qk_reads.iter().cloned());
                }
            }
            _ => unreachable!("a block's slot matches its body"),
        }
    }
    // embeddings and residual dimensions; each direction's owner is looked
    // up once (a long chain has thousands of nodes and of directions)
    let mut owned: HashMap<String, Vec<&Dir>> = HashMap::new();
    for d in layout.column.keys().filter(|d| **d != Dir::bos()) {
        owned.entry(owner_of(d)).or_default().push(d);
    }
    for (id, n) in compiled.nodes.iter().enumerate() {
        let own = |d: &Dir| owner_of(d) == n.label && *d != Dir::bos();
        let mut dirs: Vec<&Dir> = owned.remove(&n.label).unwrap_or_default();
        dirs.sort();
        parts[id].residual = dirs.iter().filter_map(|d| residual(d)).collect();
        if lowered.embedded.get(id).is_some_and(Option::is_some) {
            let by_pos = matches!(lowered.embedded[id], Some(Embedded::Indices | Embedded::IndexMap(_)));
            let rows = if by_pos { &lowered.embedding.positions } else { &lowered.embedding.tokens };
            // the token (position) itself is also carried by the s-ops folded
            // into its embedding: when nothing else reads it, only by them
            let folded_into = |d: &Dir| {
                let kind = by_label.get(d.name.as_str()).and_then(|i| lowered.embedded[*i].as_ref());
                match &compiled.nodes[id].op {
                    Op::Tokens => matches!(kind, Some(Embedded::TokenMap(_))),
                    Op::Indices => matches!(kind, Some(Embedded::IndexMap(_))),
                    _ => false,
                }
            };
            let carried = |d: &Dir| (own(d) || folded_into(d)) && layout.column.contains_key(d);
            let mut carried_dirs: Vec<(&Dir, usize)> =
                layout.column.iter().filter(|(d, _)| carried(d)).map(|(d, c)| (d, *c)).collect();
            carried_dirs.sort();
            let columns: Vec<usize> = carried_dirs.into_iter().map(|(_, c)| c).collect();
            let rows: Vec<usize> = rows
                .iter()
                .enumerate()
                .filter(|(_, row)| row.iter().any(|(d, v)| *v != 0.0 && carried(d)))
                .map(|(r, _)| r)
                .collect();
            let (hook, weight) =
                if by_pos { ("hook_pos_embed", "pos_embed.W_pos") } else { ("hook_embed", "embed.W_E") };
            if !rows.is_empty() {
                parts[id].embedding.push(EmbeddingPart { hook: hook.into(), weight: weight.into(), rows, columns });
            }
        }
        let mut r: Vec<String> = reads[id].iter().filter(|x| **x != n.label).cloned().collect();
        // program order, then `one` and `BOS`
        r.sort_by_key(|x| by_label.get(x.as_str()).copied().unwrap_or(usize::MAX));
        parts[id].reads = r;
    }

    // what the rewrites did, by label
    let mut merged: HashMap<&str, &str> = HashMap::new();
    let mut fused: HashMap<&str, &str> = HashMap::new();
    let mut absorbed: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut joint: HashMap<&str, (&str, &str)> = HashMap::new();
    let mut added_by: HashMap<&str, &str> = HashMap::new();
    let mut folded: HashMap<&str, &str> = HashMap::new();
    for r in rewrites {
        match &r.effect {
            Some(Effect::Merged { node, into }) => {
                merged.insert(node, into);
            }
            Some(Effect::Fused { inner, into }) => {
                fused.insert(inner, into);
                absorbed.entry(into).or_default().push(inner);
            }
            Some(Effect::Joint { selector, covers, joint: j, added }) => {
                for c in covers {
                    joint.insert(c, (j, selector));
                }
                for a in added {
                    added_by.insert(a, selector);
                }
            }
            Some(Effect::Embedded { node, of }) => {
                folded.insert(node, of);
            }
            Some(Effect::Constant { .. } | Effect::Dropped { .. }) | None => {}
        }
    }
    // the compiled node that computes a label, following merges, fusions and joints
    let resolve = |start: &str| -> Option<String> {
        let mut l = start.to_string();
        for _ in 0..=original.nodes.len() + compiled.nodes.len() {
            if by_label.contains_key(l.as_str()) {
                return Some(l);
            }
            let s = l.as_str();
            l = merged.get(s).or_else(|| fused.get(s)).copied().or_else(|| joint.get(s).map(|j| j.0))?.to_string();
        }
        None
    };

    let mut nodes = Vec::new();
    let node_entry = |label: &str, op: &Op, encoding: Encoding, inputs: Vec<String>, fate: Fate, by: Option<String>| {
        let p = by.as_deref().map(|b| parts[by_label[b]].clone()).unwrap_or_default();
        let carries =
            matches!(fate.kind.as_str(), "compiled" | "embedded" | "folded" | "constant" | "merged" | "added");
        let mut fate = fate;
        fate.shares_head_with = p.shares_head_with.clone();
        Node {
            label: label.to_string(),
            op: op.kind().into(),
            encoding: if op.is_selector() {
                "selector".into()
            } else {
                match encoding {
                    Encoding::Categorical => "categorical",
                    Encoding::Numerical => "numerical",
                }
                .into()
            },
            inputs,
            fate,
            computed_by: by,
            heads: p.heads,
            // a fused node is computed by its reader's neurons, but never
            // written to the residual stream on its own
            neurons: p.neurons,
            embedding: p.embedding,
            residual: if carries { p.residual } else { vec![] },
            reads: p.reads,
        }
    };
    let fate = |kind: &str, into: Option<&str>, note: String| Fate {
        kind: kind.into(),
        into: into.map(str::to_string),
        shares_head_with: vec![],
        note,
    };
    for n in &original.nodes {
        let l = n.label.as_str();
        let inputs = n.op.inputs().iter().map(|i| original.nodes[*i].label.clone()).collect();
        let (f, by) = if let Some(&id) = by_label.get(l) {
            let f = match (&compiled.nodes[id].op, lowered.embedded.get(id).and_then(Option::as_ref)) {
                (Op::Tokens, _) => {
                    fate("embedded", None, "the token embedding writes it, and the s-ops folded into it".into())
                }
                (Op::Indices, _) => {
                    fate("embedded", None, "the position embedding writes it, and the s-ops folded into it".into())
                }
                (_, Some(Embedded::Constant(v))) => {
                    fate("constant", None, format!("the constant {}, written by the token embedding", v.repr()))
                }
                (_, Some(Embedded::TokenMap(_) | Embedded::IndexMap(_))) => fate(
                    "folded",
                    None,
                    format!(
                        "a function of {} alone, written by the {} embedding (no MLP)",
                        folded.get(l).copied().unwrap_or("its input"),
                        if matches!(lowered.embedded[id], Some(Embedded::IndexMap(_))) { "position" } else { "token" }
                    ),
                ),
                _ => {
                    let mut note = "compiled as written".to_string();
                    if let Some(inner) = absorbed.get(l) {
                        note = format!(
                            "its MLP also computes {} (fused)",
                            inner.iter().map(|i| format!("'{i}'")).collect::<Vec<_>>().join(", ")
                        );
                    }
                    fate("compiled", None, note)
                }
            };
            (f, Some(l.to_string()))
        } else if let Some(into) = merged.get(l) {
            (fate("merged", Some(into), format!("computed exactly as '{into}' (cse)")), resolve(into))
        } else if let Some(into) = fused.get(l) {
            (fate("fused", Some(into), format!("computed inside the MLP of '{into}' (fused)")), resolve(into))
        } else if let Some((j, sel)) = joint.get(l) {
            let note = format!("part of the composite selector '{sel}', computed by the joint select '{j}'");
            (fate("joint", Some(j), note), resolve(j))
        } else {
            (fate("dropped", None, "not computed: the output no longer depends on it after the rewrites".into()), None)
        };
        nodes.push(node_entry(l, &n.op, n.encoding, inputs, f, by));
    }
    let written: BTreeSet<&str> = original.nodes.iter().map(|n| n.label.as_str()).collect();
    for n in compiled.nodes.iter().filter(|n| !written.contains(n.label.as_str())) {
        let note = match added_by.get(n.label.as_str()) {
            Some(sel) => format!("added for the composite selector '{sel}' (joint selectors)"),
            None => "added by a rewrite".into(),
        };
        let inputs = n.op.inputs().iter().map(|i| compiled.nodes[*i].label.clone()).collect();
        nodes.push(node_entry(&n.label, &n.op, n.encoding, inputs, fate("added", None, note), Some(n.label.clone())));
    }

    // erasures and the constant dimensions
    let erase = layout
        .erasures
        .iter()
        .zip(&placement.erasures)
        .map(|(e, (layer, neurons))| Erase {
            layer: *layer,
            hook: format!("blocks.{layer}.mlp.hook_post"),
            neurons: neurons.clone(),
            dir: e.dir.to_string(),
            dim: layout.column.get(&e.dir).copied(),
            of: owner_of(&e.dir),
            existing_of: match e.with {
                EraseWith::Existing { block, .. } => Some(label(blocks[block].node)),
                _ => None,
            },
        })
        .collect::<Vec<_>>();
    let constants = [Dir::one(), Dir::bos()].iter().filter_map(residual).collect();

    // padding: what no node and no erasure uses
    let mut used_heads: BTreeMap<(usize, usize), BTreeSet<usize>> = BTreeMap::new();
    let mut used_neurons: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); config.n_layers];
    for n in &nodes {
        for h in &n.heads {
            let dims = used_heads.entry((h.layer, h.head)).or_default();
            if h.part == "output" {
                dims.extend(&h.dims);
            }
        }
        for m in &n.neurons {
            used_neurons[m.layer].extend(&m.neurons);
        }
    }
    for e in &erase {
        used_neurons[e.layer].extend(&e.neurons);
    }
    let mut padding = Padding::default();
    for layer in 0..config.n_layers {
        for head in 0..config.n_heads {
            match used_heads.get(&(layer, head)) {
                None => padding.heads.push(HeadSlot { layer, head }),
                Some(dims) => {
                    let free: Vec<usize> = (0..config.d_head).filter(|d| !dims.contains(d)).collect();
                    if !free.is_empty() {
                        padding.head_dims.push(HeadDims { layer, head, dims: free });
                    }
                }
            }
        }
        let free: Vec<usize> = (0..config.d_mlp).filter(|x| !used_neurons[layer].contains(x)).collect();
        if !free.is_empty() {
            padding.neurons.push(LayerNeurons { layer, neurons: free });
        }
    }

    Circuit {
        format: FORMAT.into(),
        version: VERSION,
        program: original.name.clone(),
        output: original.nodes[original.output].label.clone(),
        residual_basis: "standard".into(),
        nodes,
        erase,
        constants,
        padding,
    }
}
