//! Exact rewrites of the (tabulated) program graph before lowering. Each is on
//! by default, has its own switch, and logs what it did (`compile --explain`).
//! The rewritten program computes the same output s-op on every input; the
//! model is still verified against the original program.
//!
//! - `cse`: structurally identical s-ops and selectors (same operation, same
//!   inputs, same table) computed once.
//! - `fold`: an s-op computed element-wise from `tokens` alone (or `indices`
//!   alone, or from constants alone) is a function of the token (position);
//!   it becomes one `Map` of `tokens` (`indices`) or a constant, which lowering
//!   writes with the embeddings: no MLP, no layer.
//! - `fuse`: a chain of element-wise s-ops (Map of Map, Map of SequenceMap,
//!   SequenceMap of Maps) whose intermediate has no other reader becomes one
//!   lookup table over the original inputs: one MLP instead of several MLP
//!   sublayers. Fusion trades width for depth, so it only happens when the
//!   fused MLP's estimated width stays within `max_mlp_width` (default: the
//!   widest MLP the unfused program already needs).
//! - `joint selectors`: a composite selector that no single head can compute
//!   (`|` of selects over different s-ops, `~` of such a composite) reads a
//!   joint key s-op (and joint query s-op): a SequenceMap pairing the s-ops, so
//!   the whole predicate becomes one Select over the pairs. Cost: one MLP per
//!   joint s-op, |K1|·|K2| pairs wide, and the layer it needs.
//! - dead code: s-ops that no longer reach the output are dropped.

use crate::diagnostic::{Error, Result};
use crate::rasp::func::{Func, Table};
use crate::rasp::interp::{linear, select_holds};
use crate::rasp::valueset::{infer, ValueSets};
use crate::rasp::{prune_unreachable, Encoding, Node, NodeId, Op, Predicate, Program, Settings};
use crate::value::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Which graph rewrites run.
#[derive(Clone, Debug, PartialEq)]
pub struct RewriteOptions {
    /// Merge structurally identical nodes.
    pub cse: bool,
    /// Fold functions of tokens or positions alone into the embeddings.
    pub fold: bool,
    /// Fuse chains of element-wise s-ops.
    pub fuse: bool,
    /// Largest estimated MLP width fusion may create (None: the widest MLP
    /// the program needs without fusion).
    pub max_mlp_width: Option<usize>,
}

impl RewriteOptions {
    /// Every rewrite.
    pub fn all() -> RewriteOptions {
        RewriteOptions { cse: true, fold: true, fuse: true, max_mlp_width: None }
    }

    /// None (the joint-selector rewrite still runs).
    pub fn none() -> RewriteOptions {
        RewriteOptions { cse: false, fold: false, fuse: false, max_mlp_width: None }
    }
}

/// One rewrite, for `--explain`.
#[derive(Clone, Debug, PartialEq)]
pub struct Rewrite {
    /// The rewrite (`cse`, `fold`, `fuse`, …).
    pub pass: &'static str,
    /// What it did, naming the nodes.
    pub what: String,
    /// What it did to which node, as data (None: a decision not to rewrite);
    /// the circuit map (`circuit.rs`) follows these from the program as
    /// written to the components that compute it.
    pub effect: Option<Effect>,
}

/// What a rewrite did to the program's nodes, by label.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// cse: a node is computed as another (and no longer on its own).
    Merged {
        /// The node merged away.
        node: String,
        /// The node that computes it.
        into: String,
    },
    /// fold: a node is a constant, written by the embeddings.
    Constant {
        /// The node.
        node: String,
    },
    /// fold: a node is a function of `tokens` or `indices` alone, written by
    /// that embedding.
    Embedded {
        /// The node.
        node: String,
        /// `tokens` or `indices`.
        of: String,
    },
    /// fuse: a node is computed inside its reader's MLP (one table).
    Fused {
        /// The node fused away.
        inner: String,
        /// The reader whose MLP computes both.
        into: String,
    },
    /// joint selectors: a composite selector and the selects under it are
    /// computed by one select over added joint s-ops.
    Joint {
        /// The composite selector.
        selector: String,
        /// It and every selector under it.
        covers: Vec<String>,
        /// The select that replaces it.
        joint: String,
        /// The nodes added (the joint key/query s-ops and the select).
        added: Vec<String>,
    },
    /// dead code: these nodes are no longer computed.
    Dropped {
        /// Their labels.
        nodes: Vec<String>,
    },
}

/// Runs the passes in order: joint selectors, cse, fold, fuse, dead code.
pub fn rewrite(
    p: &Program,
    vs: &ValueSets,
    settings: &Settings,
    opts: &RewriteOptions,
) -> Result<(Program, ValueSets, Vec<Rewrite>)> {
    let mut log = Vec::new();
    let mut p = joint_selectors(p, vs, &mut log)?;
    let mut vs = infer(&p, &settings.vocab, settings.max_seq_len)?;
    if opts.cse {
        p = cse(&p, &mut log);
    }
    if opts.fold {
        p = fold(&p, &vs, &mut log)?;
        vs = infer(&p, &settings.vocab, settings.max_seq_len)?;
    }
    if opts.fuse {
        let cap = opts.max_mlp_width.unwrap_or_else(|| widest_mlp(&p, &vs, settings));
        p = fuse(&p, &vs, cap, &mut log)?;
    }
    let before: Vec<String> = p.nodes.iter().map(|n| n.label.clone()).collect();
    let p = prune_unreachable(&p);
    let kept: BTreeSet<&str> = p.nodes.iter().map(|n| n.label.as_str()).collect();
    let dropped: Vec<&String> = before.iter().filter(|l| !kept.contains(l.as_str())).collect();
    if !dropped.is_empty() {
        log.push(Rewrite {
            pass: "dead code",
            what: format!(
                "dropped {} (no longer read on the way to the output)",
                dropped.iter().map(|l| format!("'{l}'")).collect::<Vec<_>>().join(", ")
            ),
            effect: Some(Effect::Dropped { nodes: dropped.iter().map(|l| l.to_string()).collect() }),
        });
    }
    let vs = infer(&p, &settings.vocab, settings.max_seq_len)?;
    Ok((p, vs, log))
}

fn table(arity: usize, source: Option<String>, entries: impl IntoIterator<Item = (Vec<Value>, Value)>) -> Func {
    let mut t = Table::new(arity);
    t.source = source;
    for (k, v) in entries {
        t.insert(k, v);
    }
    Func::Table(Arc::new(t))
}

/// Whether `id` is computed position by position from its inputs.
fn elementwise(op: &Op) -> bool {
    matches!(op, Op::Map { .. } | Op::SequenceMap { .. } | Op::LinearSequenceMap { .. } | Op::Full(_))
}

/// The value of element-wise node `id` given the values of some nodes below
/// it (`env`); None propagates as in the interpreter.
pub(crate) fn eval_local(p: &Program, id: NodeId, env: &HashMap<NodeId, Value>) -> Result<Value> {
    if let Some(v) = env.get(&id) {
        return Ok(v.clone());
    }
    let err = |e: String| Error::program(format!("evaluating {}: {e}", p.describe(id)));
    Ok(match &p.nodes[id].op {
        Op::Full(v) => v.clone(),
        Op::Map { f, input } => match eval_local(p, *input, env)? {
            Value::None => Value::None,
            x => f.call(&[x]).map_err(|e| err(e.0))?,
        },
        Op::SequenceMap { f, inputs } => {
            let (x, y) = (eval_local(p, inputs[0], env)?, eval_local(p, inputs[1], env)?);
            if matches!(x, Value::None) || matches!(y, Value::None) {
                Value::None
            } else {
                f.call(&[x, y]).map_err(|e| err(e.0))?
            }
        }
        Op::LinearSequenceMap { inputs, coeffs } => {
            let (x, y) = (eval_local(p, inputs[0], env)?, eval_local(p, inputs[1], env)?);
            if matches!(x, Value::None) || matches!(y, Value::None) {
                Value::None
            } else {
                linear(coeffs, &x, &y).map_err(err)?
            }
        }
        _ => return Err(Error::internal(format!("{} is not element-wise", p.describe(id)))),
    })
}

/// The leaves an element-wise node is computed from (itself if it is not
/// element-wise).
pub(crate) fn supports(p: &Program) -> Vec<BTreeSet<NodeId>> {
    let mut s: Vec<BTreeSet<NodeId>> = Vec::with_capacity(p.nodes.len());
    for (id, n) in p.nodes.iter().enumerate() {
        let set = if elementwise(&n.op) {
            n.op.inputs().iter().flat_map(|i| s[*i].iter().cloned()).collect()
        } else {
            [id].into()
        };
        s.push(set);
    }
    s
}

/// The table of element-wise node `id` over the product of `leaves`' value sets.
fn table_over(p: &Program, vs: &ValueSets, id: NodeId, leaves: &[NodeId]) -> Result<Func> {
    let source = p.nodes[id].op_source();
    let mut entries = Vec::new();
    let mut combo = vec![0usize; leaves.len()];
    if leaves.iter().any(|l| vs.of(*l).is_empty()) {
        return Ok(table(leaves.len(), source, entries));
    }
    loop {
        let args: Vec<Value> = leaves.iter().zip(&combo).map(|(l, i)| vs.of(*l)[*i].clone()).collect();
        let env: HashMap<NodeId, Value> = leaves.iter().cloned().zip(args.iter().cloned()).collect();
        entries.push((args, eval_local(p, id, &env)?));
        // next combination (odometer)
        let mut k = leaves.len();
        loop {
            if k == 0 {
                return Ok(table(leaves.len(), source, entries));
            }
            k -= 1;
            combo[k] += 1;
            if combo[k] < vs.of(leaves[k]).len() {
                break;
            }
            combo[k] = 0;
        }
    }
}

// ---------------------------------------------------------------- cse

/// A node's structure, for finding duplicates.
fn structure(n: &Node, remap: &[NodeId]) -> String {
    let canon = |f: &Func| -> String {
        match f {
            Func::Table(t) => {
                let mut e: Vec<(&Vec<Value>, &Value)> = t.entries.iter().collect();
                e.sort();
                format!("{e:?}")
            }
            Func::Closure(c) => format!("closure@{:p}", Arc::as_ptr(c)),
        }
    };
    let inputs: Vec<NodeId> = n.op.inputs().iter().map(|i| remap[*i]).collect();
    let detail = match &n.op {
        Op::Map { f, .. } | Op::SequenceMap { f, .. } => canon(f),
        Op::Select { predicate: Predicate::Custom(f), .. } => canon(f),
        Op::Select { predicate: Predicate::Cmp(c), .. } => c.name().to_string(),
        Op::Full(v) => v.repr(),
        Op::LinearSequenceMap { coeffs, .. } => format!("{}, {}", coeffs[0].repr(), coeffs[1].repr()),
        Op::Aggregate { default, .. } => default.repr(),
        _ => String::new(),
    };
    format!("{} {:?} {inputs:?} {detail}", n.op.kind(), n.encoding)
}

fn cse(p: &Program, log: &mut Vec<Rewrite>) -> Program {
    let mut remap: Vec<NodeId> = (0..p.nodes.len()).collect();
    let mut seen: HashMap<String, NodeId> = HashMap::new();
    for (id, n) in p.nodes.iter().enumerate() {
        let key = structure(n, &remap);
        match seen.get(&key) {
            // the output keeps its own node (and label)
            Some(first) if id != p.output => {
                remap[id] = *first;
                log.push(Rewrite {
                    pass: "cse",
                    what: format!("'{}' is computed exactly as '{}': computed once", n.label, p.nodes[*first].label),
                    effect: Some(Effect::Merged { node: n.label.clone(), into: p.nodes[*first].label.clone() }),
                });
            }
            _ => {
                seen.insert(key, id);
            }
        }
    }
    let remap: HashMap<NodeId, NodeId> = remap.into_iter().enumerate().collect();
    let mut out = p.clone();
    for n in out.nodes.iter_mut() {
        n.op = crate::rasp::builder::remap(&n.op, &remap);
    }
    out
}

// ---------------------------------------------------------------- fold

fn fold(p: &Program, vs: &ValueSets, log: &mut Vec<Rewrite>) -> Result<Program> {
    let support = supports(p);
    let mut out = p.clone();
    for (id, n) in p.nodes.iter().enumerate() {
        if !matches!(n.op, Op::Map { .. } | Op::SequenceMap { .. } | Op::LinearSequenceMap { .. }) {
            continue;
        }
        let leaves: Vec<NodeId> = support[id].iter().cloned().collect();
        let kinds: BTreeSet<&str> = leaves.iter().map(|l| p.nodes[*l].op.kind()).collect();
        if leaves.is_empty() {
            let v = eval_local(p, id, &HashMap::new())?;
            if n.encoding == Encoding::Numerical && !v.is_number() {
                continue;
            }
            log.push(Rewrite {
                pass: "fold",
                what: format!("'{}' is the constant {}: written by the embeddings", n.label, v.repr()),
                effect: Some(Effect::Constant { node: n.label.clone() }),
            });
            out.nodes[id].op = Op::Full(v);
        } else if leaves.len() == 1 && (kinds.contains("tokens") || kinds.contains("indices")) {
            let leaf = leaves[0];
            let what = p.nodes[leaf].op.kind();
            let direct = matches!(&n.op, Op::Map { input, .. } if *input == leaf);
            if !direct {
                out.nodes[id].op = Op::Map { f: table_over(p, vs, id, &leaves)?, input: leaf };
            }
            log.push(Rewrite {
                pass: "fold",
                what: format!(
                    "'{}' is a function of {what} alone: written by the {} embedding (no MLP)",
                    n.label,
                    if what == "tokens" { "token" } else { "position" }
                ),
                effect: Some(Effect::Embedded { node: n.label.clone(), of: what.to_string() }),
            });
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- fuse

/// Estimated hidden width of the MLP lowering builds for an element-wise node
/// with these inputs (before factorisation prunes it).
fn estimate(p: &Program, vs: &ValueSets, id: NodeId, inputs: &[NodeId], f: Option<&Func>) -> usize {
    let enc = |i: NodeId| p.nodes[i].encoding;
    match inputs {
        [x] => match (enc(*x), p.nodes[id].encoding) {
            (Encoding::Categorical, Encoding::Categorical) => {
                let outs: BTreeSet<Value> = vs
                    .of(*x)
                    .iter()
                    .filter_map(|v| f.and_then(|f| f.call(std::slice::from_ref(v)).ok()))
                    .filter(|v| !matches!(v, Value::None))
                    .collect();
                outs.len()
            }
            (Encoding::Categorical, Encoding::Numerical) => 2,
            (Encoding::Numerical, _) => (2 * vs.of(*x).len()).saturating_sub(1),
        },
        [x, y] => vs.of(*x).len() * vs.of(*y).len(),
        _ => 0,
    }
}

/// The widest MLP block the program needs as it stands (estimate).
fn widest_mlp(p: &Program, vs: &ValueSets, settings: &Settings) -> usize {
    let mut widest = 0;
    for (id, n) in p.nodes.iter().enumerate() {
        let w = match &n.op {
            Op::Map { f, input } => estimate(p, vs, id, &[*input], Some(f)),
            Op::SequenceMap { f, inputs } => estimate(p, vs, id, inputs, Some(f)),
            Op::LinearSequenceMap { .. } => 4,
            Op::SelectorWidth { .. } | Op::Length => 2 * settings.max_seq_len + 1,
            _ => 0,
        };
        widest = widest.max(w);
    }
    widest
}

fn fuse(p: &Program, vs: &ValueSets, cap: usize, log: &mut Vec<Rewrite>) -> Result<Program> {
    let mut out = p.clone();
    let mut readers = out.readers();
    for id in 0..out.nodes.len() {
        loop {
            let n = &out.nodes[id];
            let inputs = match &n.op {
                Op::Map { input, .. } => vec![*input],
                Op::SequenceMap { inputs, .. } => inputs.to_vec(),
                _ => break,
            };
            // an input that is itself a Map/SequenceMap read only here
            let Some(inner) = inputs.iter().cloned().find(|i| {
                matches!(out.nodes[*i].op, Op::Map { .. } | Op::SequenceMap { .. })
                    && readers[*i].len() == 1
                    && *i != out.output
            }) else {
                break;
            };
            let mut leaves: Vec<NodeId> = Vec::new();
            for i in &inputs {
                let expand = if *i == inner { out.nodes[inner].op.inputs() } else { vec![*i] };
                for l in expand {
                    if !leaves.contains(&l) {
                        leaves.push(l);
                    }
                }
            }
            let categorical = leaves.iter().all(|l| out.nodes[*l].encoding == Encoding::Categorical);
            if leaves.len() > 2 || (leaves.len() == 2 && !categorical) {
                break;
            }
            let f = table_over(&out, vs, id, &leaves)?;
            let width = estimate(&out, vs, id, &leaves, Some(&f));
            if width > cap {
                log.push(Rewrite {
                    pass: "fuse",
                    what: format!(
                        "kept '{}' and '{}' apart: the fused MLP would be ~{width} wide (limit {cap}, --max-mlp-width)",
                        out.nodes[inner].label, out.nodes[id].label
                    ),
                    effect: None,
                });
                break;
            }
            log.push(Rewrite {
                pass: "fuse",
                what: format!(
                    "'{}' and '{}' fused into one MLP over {} (~{width} wide): one MLP sublayer less on this path",
                    out.nodes[inner].label,
                    out.nodes[id].label,
                    leaves.iter().map(|l| format!("'{}'", out.nodes[*l].label)).collect::<Vec<_>>().join(" and ")
                ),
                effect: Some(Effect::Fused {
                    inner: out.nodes[inner].label.clone(),
                    into: out.nodes[id].label.clone(),
                }),
            });
            out.nodes[id].op = match leaves.as_slice() {
                [x] => Op::Map { f, input: *x },
                [x, y] => Op::SequenceMap { f, inputs: [*x, *y] },
                _ => unreachable!(),
            };
            readers = out.readers();
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- selectors

/// The (keys, queries) s-op pairs a selector expression reads.
fn select_pairs(p: &Program, sel: NodeId, out: &mut BTreeSet<(NodeId, NodeId)>) {
    match &p.nodes[sel].op {
        Op::Select { keys, queries, .. } => {
            out.insert((*keys, *queries));
        }
        Op::SelectAnd(a, b) | Op::SelectOr(a, b) => {
            select_pairs(p, *a, out);
            select_pairs(p, *b, out);
        }
        Op::SelectNot(a) => select_pairs(p, *a, out),
        _ => {}
    }
}

/// A selector and every selector under it (through `&`, `|`, `~`), in
/// node order.
pub fn selector_tree(p: &Program, sel: NodeId) -> Vec<NodeId> {
    let mut out = BTreeSet::new();
    let mut todo = vec![sel];
    while let Some(s) = todo.pop() {
        if out.insert(s) {
            match &p.nodes[s].op {
                Op::SelectAnd(a, b) | Op::SelectOr(a, b) => todo.extend([*a, *b]),
                Op::SelectNot(a) => todo.push(*a),
                _ => {}
            }
        }
    }
    out.into_iter().collect()
}

/// Whether one head computes this selector: a Select; `~`/`&`/`|` over one
/// (keys, queries) pair; or `&` of such (a sum of bilinear terms, see
/// `lower::selector_head`).
pub fn single_head(p: &Program, sel: NodeId) -> bool {
    let mut pairs = BTreeSet::new();
    select_pairs(p, sel, &mut pairs);
    if pairs.len() <= 1 {
        return true;
    }
    match &p.nodes[sel].op {
        Op::SelectAnd(a, b) => single_head(p, *a) && single_head(p, *b),
        _ => false,
    }
}

/// Whether an s-op can be None ("no value") at some position.
fn can_be_none(p: &Program, id: NodeId) -> bool {
    match &p.nodes[id].op {
        Op::Tokens | Op::Indices | Op::Length | Op::SelectorWidth { .. } => false,
        Op::Full(v) => matches!(v, Value::None),
        Op::Map { f, input } => {
            can_be_none(p, *input)
                || matches!(f, Func::Table(t) if t.entries.values().any(|v| matches!(v, Value::None)))
        }
        Op::SequenceMap { f, inputs } => {
            inputs.iter().any(|i| can_be_none(p, *i))
                || matches!(f, Func::Table(t) if t.entries.values().any(|v| matches!(v, Value::None)))
        }
        Op::LinearSequenceMap { inputs, .. } => inputs.iter().any(|i| can_be_none(p, *i)),
        Op::Aggregate { default, sop, .. } => matches!(default, Value::None) || can_be_none(p, *sop),
        _ => true,
    }
}

/// The truth of selector expression `sel` for one key position and one query
/// position, given each s-op's value there.
fn holds(p: &Program, sel: NodeId, key: &HashMap<NodeId, Value>, query: &HashMap<NodeId, Value>) -> Result<bool> {
    Ok(match &p.nodes[sel].op {
        Op::Select { keys, queries, predicate } => {
            select_holds(predicate, &key[keys], &query[queries]).map_err(Error::program)?
        }
        Op::SelectAnd(a, b) => holds(p, *a, key, query)? && holds(p, *b, key, query)?,
        Op::SelectOr(a, b) => holds(p, *a, key, query)? || holds(p, *b, key, query)?,
        Op::SelectNot(a) => !holds(p, *a, key, query)?,
        _ => return Err(Error::internal("not a selector")),
    })
}

fn joint_selectors(p: &Program, vs: &ValueSets, log: &mut Vec<Rewrite>) -> Result<Program> {
    let users: Vec<NodeId> = p
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(id, n)| match n.op {
            Op::Aggregate { selector, .. } | Op::SelectorWidth { selector } if !single_head(p, selector) => Some(id),
            _ => None,
        })
        .collect();
    if users.is_empty() {
        return Ok(p.clone());
    }
    // rebuild, inserting the joint s-ops and selector before each user
    let mut nodes: Vec<Node> = Vec::new();
    let mut map: Vec<NodeId> = Vec::with_capacity(p.nodes.len());
    let mut joint_sel: BTreeMap<NodeId, NodeId> = BTreeMap::new();
    for (id, n) in p.nodes.iter().enumerate() {
        let sel = match n.op {
            Op::Aggregate { selector, .. } | Op::SelectorWidth { selector } if users.contains(&id) => Some(selector),
            _ => None,
        };
        if let Some(sel) = sel.filter(|s| !joint_sel.contains_key(s)) {
            let mut pairs = BTreeSet::new();
            select_pairs(p, sel, &mut pairs);
            let keys: Vec<NodeId> = pairs.iter().map(|(k, _)| *k).collect::<BTreeSet<_>>().into_iter().collect();
            let queries: Vec<NodeId> = pairs.iter().map(|(_, q)| *q).collect::<BTreeSet<_>>().into_iter().collect();
            let label = &p.nodes[sel].label;
            if keys.len() > 2 || queries.len() > 2 {
                return Err(Error::program(format!(
                    "the composite selector {} reads {} key and {} query s-ops; at most two of each can be combined",
                    p.describe(sel),
                    keys.len(),
                    queries.len()
                )));
            }
            if let Some(x) = keys.iter().chain(&queries).find(|x| can_be_none(p, **x)) {
                return Err(Error::program(format!(
                    "the composite selector {} reads '{}', which can be None; a joint key/query would change how None matches",
                    p.describe(sel),
                    p.nodes[*x].label
                )));
            }
            // a joint s-op per side (the s-op itself when there is only one)
            let joint = |side: &[NodeId], what: &str, nodes: &mut Vec<Node>| -> NodeId {
                if side.len() == 1 {
                    return map[side[0]];
                }
                let mut entries = Vec::new();
                for a in vs.of(side[0]) {
                    for b in vs.of(side[1]) {
                        entries.push((vec![a.clone(), b.clone()], Value::Tuple(vec![a.clone(), b.clone()])));
                    }
                }
                nodes.push(Node {
                    label: format!("{label}_{what}"),
                    op: Op::SequenceMap {
                        f: table(2, Some("lambda a, b: (a, b)".into()), entries),
                        inputs: [map[side[0]], map[side[1]]],
                    },
                    encoding: Encoding::Categorical,
                    span: p.nodes[sel].span.clone(),
                });
                nodes.len() - 1
            };
            let jk = joint(&keys, "keys", &mut nodes);
            let jq = joint(&queries, "queries", &mut nodes);
            // the predicate over (joint key, joint query)
            let values = |side: &[NodeId]| -> Vec<(Value, HashMap<NodeId, Value>)> {
                if side.len() == 1 {
                    vs.of(side[0]).iter().map(|v| (v.clone(), [(side[0], v.clone())].into())).collect()
                } else {
                    let mut out = Vec::new();
                    for a in vs.of(side[0]) {
                        for b in vs.of(side[1]) {
                            out.push((
                                Value::Tuple(vec![a.clone(), b.clone()]),
                                [(side[0], a.clone()), (side[1], b.clone())].into(),
                            ));
                        }
                    }
                    out
                }
            };
            let mut entries = Vec::new();
            for (kv, kenv) in values(&keys) {
                for (qv, qenv) in values(&queries) {
                    entries.push((vec![kv.clone(), qv.clone()], Value::Bool(holds(p, sel, &kenv, &qenv)?)));
                }
            }
            nodes.push(Node {
                label: format!("{label}_joint"),
                op: Op::Select { keys: jk, queries: jq, predicate: Predicate::Custom(table(2, None, entries)) },
                encoding: Encoding::Categorical,
                span: p.nodes[sel].span.clone(),
            });
            joint_sel.insert(sel, nodes.len() - 1);
            log.push(Rewrite {
                pass: "joint selector",
                what: format!(
                    "'{label}' combines selects over different s-ops in a way no single head computes; it reads {} instead",
                    [(keys.len() > 1).then(|| format!("the joint key '{label}_keys'")), (queries.len() > 1).then(|| format!("the joint query '{label}_queries'"))]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
                effect: Some(Effect::Joint {
                    selector: label.clone(),
                    covers: selector_tree(p, sel).into_iter().map(|s| p.nodes[s].label.clone()).collect(),
                    joint: nodes[nodes.len() - 1].label.clone(),
                    added: [jk, jq, nodes.len() - 1]
                        .into_iter()
                        .filter(|i| !map.contains(i))
                        .map(|i| nodes[i].label.clone())
                        .collect(),
                }),
            });
        }
        // every input is an earlier node, already in `map`
        let inputs: HashMap<NodeId, NodeId> = n.op.inputs().into_iter().map(|i| (i, map[i])).collect();
        let mut op = crate::rasp::builder::remap(&n.op, &inputs);
        if let (Some(sel), Op::Aggregate { selector, .. } | Op::SelectorWidth { selector }) = (sel, &mut op) {
            *selector = joint_sel[&sel];
        }
        nodes.push(Node { label: n.label.clone(), op, encoding: n.encoding, span: n.span.clone() });
        map.push(nodes.len() - 1);
    }
    Ok(Program {
        name: p.name.clone(),
        nodes,
        output: map[p.output],
        settings: p.settings.clone(),
        source: p.source.clone(),
    })
}
