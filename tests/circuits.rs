//! The circuit map (`circuit.json`) is causally true. For every bundled
//! program, optimised and as Tracr lays it out, causal and not, this test
//! reads only the model directory (`circuit.json` and the weights) and the
//! interpreter, never the compiler's internals:
//!
//! - zero-ablating everything `circuit.json` lists for no node (whole heads,
//!   hook_z dimensions, MLP neurons) leaves every output unchanged on every
//!   input, and that padding is exactly the complement of what it lists;
//! - zero-ablating the components of each node the output depends on changes
//!   the output on at least one input, except the nodes in [`NO_EFFECT`],
//!   each with the reason.
//!
//! Zero ablation is done on the weights, which is the same as zeroing the
//! hook (all biases are zero): an output part zeroes its `hook_z` dimensions
//! (rows of W_O), a pattern part its `hook_q` dimensions (columns of W_Q:
//! every score 0, a uniform pattern), neurons their `hook_post` entries
//! (rows of W_out), embedding parts their entries of W_E / W_pos.

mod common;

use common::bundled;
use rayon::prelude::*;
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use tracr_opt::library::PROGRAMS;
use tracr_opt::value::Value;
use tracr_opt::{compile, AllocatorKind, CompileOptions, Program, VerifyOptions};
use tracr_opt::{DType, Model};

/// Nodes on the output's path whose zero ablation cannot change the output,
/// as (program, node, variants, why); `*` is every program or variant, and
/// a variant matches by prefix (`optimised/causal`).
const NO_EFFECT: &[(&str, &str, &str, &str)] = &[
    (
        "*",
        "all_true_selector",
        "*",
        "length's select(TRUE): zeroing its query leaves a uniform pattern over every key and BOS, which is exactly \
         the pattern it computes",
    ),
    ("*", "select_all", "*", "select(TRUE) again (shuffle_dyck's has_neg): a uniform pattern is what it computes"),
    (
        "*",
        "prevs",
        "optimised/causal",
        "select(indices, indices, LEQ) under a causal mask selects every visible key, and the optimised head gives \
         BOS no weight (every query selects itself): the uniform pattern left by ablation is the same. The \
         baseline's BOS term makes it differ",
    ),
    (
        "length",
        "tokens",
        "*",
        "length counts positions: its selector reads tokens by name only (select(tokens, tokens, TRUE)), never a \
         token's value",
    ),
    ("*", "prevs_2", "optimised/causal", "as prevs (merged into it by cse)"),
    ("*", "prevs_3", "optimised/causal", "as prevs (merged into it by cse)"),
    ("*", "prevs_4", "optimised/causal", "as prevs (merged into it by cse)"),
    ("*", "prevs_5", "optimised/causal", "as prevs (merged into it by cse)"),
    ("*", "prevs_6", "optimised/causal", "as prevs (merged into it by cse)"),
];

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tracr-opt-circuits-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn usizes(j: &Json) -> Vec<usize> {
    j.as_array().expect("an array").iter().map(|x| x.as_u64().expect("an index") as usize).collect()
}

/// Zero-ablates a component list (`heads`, `neurons`, `embedding` of a node) in place.
fn ablate_node(m: &mut Model, node: &Json) {
    for h in node["heads"].as_array().unwrap() {
        let (l, head) = (h["layer"].as_u64().unwrap() as usize, h["head"].as_u64().unwrap() as usize);
        for d in usizes(&h["dims"]) {
            let layer = &mut m.layers[l];
            match h["part"].as_str().unwrap() {
                "output" => layer.w_o.slice_mut(ndarray::s![head, d, ..]).fill(0.0),
                "pattern" => layer.w_q.slice_mut(ndarray::s![head, .., d]).fill(0.0),
                other => panic!("unknown head part {other}"),
            }
        }
    }
    for n in node["neurons"].as_array().unwrap() {
        let l = n["layer"].as_u64().unwrap() as usize;
        for x in usizes(&n["neurons"]) {
            m.layers[l].w_out.row_mut(x).fill(0.0);
        }
    }
    for e in node["embedding"].as_array().unwrap() {
        let w = match e["weight"].as_str().unwrap() {
            "embed.W_E" => &mut m.w_e,
            "pos_embed.W_pos" => &mut m.w_pos,
            other => panic!("unknown embedding {other}"),
        };
        for r in usizes(&e["rows"]) {
            for c in usizes(&e["columns"]) {
                w[[r, c]] = 0.0;
            }
        }
    }
}

fn ablate_padding(m: &mut Model, padding: &Json) {
    for h in padding["heads"].as_array().unwrap() {
        let (l, head) = (h["layer"].as_u64().unwrap() as usize, h["head"].as_u64().unwrap() as usize);
        m.layers[l].w_o.slice_mut(ndarray::s![head, .., ..]).fill(0.0);
    }
    for h in padding["head_dims"].as_array().unwrap() {
        let (l, head) = (h["layer"].as_u64().unwrap() as usize, h["head"].as_u64().unwrap() as usize);
        for d in usizes(&h["dims"]) {
            m.layers[l].w_o.slice_mut(ndarray::s![head, d, ..]).fill(0.0);
        }
    }
    for n in padding["neurons"].as_array().unwrap() {
        let l = n["layer"].as_u64().unwrap() as usize;
        for x in usizes(&n["neurons"]) {
            m.layers[l].w_out.row_mut(x).fill(0.0);
        }
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if !matches!(a, Value::Bool(_)) => (x - y).abs() <= 1e-6 * (1.0 + x.abs()),
        _ => a == b,
    }
}

/// The first input on which the model's decoded output differs from the interpreter's.
fn first_difference(m: &Model, io: &[(Vec<Value>, Vec<Value>)]) -> Option<usize> {
    let runner = m.runner().unwrap();
    io.iter().position(|(input, want)| {
        let got = runner.run(&runner.encode(input).unwrap());
        got.len() != want.len() || got.iter().zip(want).any(|((g, _), w)| !same(g, w))
    })
}

/// The labels the output depends on in the program as written (its
/// ancestors, by the inputs `circuit.json` lists).
fn ancestors(circuit: &Json) -> BTreeSet<String> {
    let inputs: BTreeMap<&str, Vec<&str>> = circuit["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["label"].as_str().unwrap(),
                n["inputs"].as_array().unwrap().iter().map(|i| i.as_str().unwrap()).collect(),
            )
        })
        .collect();
    let mut seen = BTreeSet::new();
    let mut todo = vec![circuit["output"].as_str().unwrap()];
    while let Some(l) = todo.pop() {
        if seen.insert(l.to_string()) {
            todo.extend(inputs.get(l).cloned().unwrap_or_default());
        }
    }
    seen
}

/// Every (layer, head, hook_z dim) and (layer, neuron) the circuit lists,
/// for nodes, erasures and padding: padding must be exactly the rest.
fn check_padding_is_complement(m: &Model, c: &Json) -> Result<(), String> {
    let cfg = &m.config;
    let mut dims: BTreeMap<(usize, usize), BTreeSet<usize>> = BTreeMap::new();
    let mut neurons: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    let idx = |j: &Json, k: &str| j[k].as_u64().unwrap() as usize;
    for n in c["nodes"].as_array().unwrap() {
        for h in n["heads"].as_array().unwrap() {
            let e = dims.entry((idx(h, "layer"), idx(h, "head"))).or_default();
            if h["part"] == "output" {
                e.extend(usizes(&h["dims"]));
            }
        }
        for x in n["neurons"].as_array().unwrap() {
            neurons.entry(idx(x, "layer")).or_default().extend(usizes(&x["neurons"]));
        }
    }
    for e in c["erase"].as_array().unwrap() {
        neurons.entry(idx(e, "layer")).or_default().extend(usizes(&e["neurons"]));
    }
    let p = &c["padding"];
    let pad_heads: BTreeSet<(usize, usize)> =
        p["heads"].as_array().unwrap().iter().map(|h| (idx(h, "layer"), idx(h, "head"))).collect();
    let pad_dims: BTreeMap<(usize, usize), BTreeSet<usize>> = p["head_dims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| ((idx(h, "layer"), idx(h, "head")), usizes(&h["dims"]).into_iter().collect()))
        .collect();
    let pad_neurons: BTreeMap<usize, BTreeSet<usize>> = p["neurons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (idx(x, "layer"), usizes(&x["neurons"]).into_iter().collect()))
        .collect();
    for l in 0..cfg.n_layers {
        for h in 0..cfg.n_heads {
            match dims.get(&(l, h)) {
                None if !pad_heads.contains(&(l, h)) => return Err(format!("head {l}.{h} is listed nowhere")),
                None => {}
                Some(used) => {
                    let pad = pad_dims.get(&(l, h)).cloned().unwrap_or_default();
                    let rest: BTreeSet<usize> = (0..cfg.d_head).filter(|d| !used.contains(d)).collect();
                    if pad != rest || pad_heads.contains(&(l, h)) {
                        return Err(format!("head {l}.{h}: padding dims {pad:?}, unused dims {rest:?}"));
                    }
                }
            }
        }
        let used = neurons.get(&l).cloned().unwrap_or_default();
        let pad = pad_neurons.get(&l).cloned().unwrap_or_default();
        let rest: BTreeSet<usize> = (0..cfg.d_mlp).filter(|x| !used.contains(x)).collect();
        if pad != rest {
            return Err(format!("layer {l}: padding neurons {pad:?}, unused neurons {rest:?}"));
        }
    }
    Ok(())
}

/// Checks one model; returns the failures, the nodes without effect and how
/// many node ablations changed the output.
fn check(name: &str, causal: bool, optimised: bool) -> (Vec<String>, Vec<(String, String)>, usize) {
    let variant =
        format!("{}{}", if optimised { "optimised" } else { "baseline" }, if causal { "/causal" } else { "" });
    let p = bundled(name);
    let mut s = p.settings.clone().unwrap();
    s.causal = causal;
    let options = if optimised { CompileOptions::default() } else { CompileOptions::baseline() };
    let options =
        CompileOptions { allocator: if optimised { AllocatorKind::Ilp } else { AllocatorKind::Heuristic }, ..options };
    let dir = temp_dir(&format!("{name}-{variant}").replace('/', "-"));
    compile(&p, &s, &options).unwrap().save(&dir, DType::F64).unwrap();

    // from here on: the directory and the interpreter only
    let model = Model::load(&dir).unwrap();
    let circuit: Json = serde_json::from_slice(&std::fs::read(dir.join("circuit.json")).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let program = Program::load(name).unwrap();
    let io = program.reference_io(&s, &VerifyOptions::default()).unwrap();
    let mut failures = Vec::new();
    let mut no_effect = Vec::new();
    let at = |what: String| format!("{name} ({variant}): {what}");
    if let Err(e) = check_padding_is_complement(&model, &circuit) {
        failures.push(at(e));
    }
    assert_eq!(first_difference(&model, &io), None, "{name} ({variant}) is exact before any ablation");
    let mut padded = model.clone();
    ablate_padding(&mut padded, &circuit["padding"]);
    if let Some(i) = first_difference(&padded, &io) {
        failures.push(at(format!("ablating the padding changes the output on {:?}", io[i].0)));
    }
    let needed = ancestors(&circuit);
    let mut effective = 0;
    for node in circuit["nodes"].as_array().unwrap() {
        let label = node["label"].as_str().unwrap();
        if !needed.contains(label) {
            continue;
        }
        let mut ablated = model.clone();
        ablate_node(&mut ablated, node);
        match first_difference(&ablated, &io) {
            None => no_effect.push((variant.clone(), label.to_string())),
            Some(_) => effective += 1,
        }
    }
    (failures, no_effect, effective)
}

#[test]
fn circuit_json_is_causally_true_for_every_bundled_program() {
    let cases: Vec<(&str, bool, bool)> = PROGRAMS
        .iter()
        .flat_map(|b| [(b.name, false, false), (b.name, true, false), (b.name, false, true), (b.name, true, true)])
        .collect();
    let results: Vec<_> = cases.par_iter().map(|(n, c, o)| (*n, check(n, *c, *o))).collect();
    let mut failures = Vec::new();
    let mut seen_exceptions = BTreeSet::new();
    let (models, mut changed, mut n_excused) = (results.len(), 0, 0);
    for (name, (fails, no_effect, effective)) in results {
        failures.extend(fails);
        changed += effective;
        for (variant, label) in no_effect {
            let excused = NO_EFFECT
                .iter()
                .find(|(p, l, v, _)| (*p == "*" || *p == name) && *l == label && (*v == "*" || variant.starts_with(v)));
            match excused {
                Some(e) => {
                    seen_exceptions.insert((e.0, e.1, e.2));
                    n_excused += 1;
                }
                None => failures
                    .push(format!("{name} ({variant}): zero-ablating the components of '{label}' changes no output")),
            }
        }
    }
    // an exception that no longer applies is stale
    for (p, l, v, _) in NO_EFFECT {
        if !seen_exceptions.contains(&(*p, *l, *v)) {
            failures.push(format!("NO_EFFECT lists {p} '{l}' ({v}), but its ablation now changes the output"));
        }
    }
    eprintln!(
        "{models} models: padding inert on every input; {changed} node ablations changed the output, {n_excused} \
         excused (NO_EFFECT)"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
