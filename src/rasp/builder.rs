//! Builds a program DAG while `.rasp` text runs, then fixes its labels.
//!
//! Labels come from the program text: the `.named(...)` label, else the first
//! variable the node is assigned to, else `<kind>_<k>` where k counts unnamed
//! nodes of that kind in the order they were written. Nothing depends on a
//! process-wide counter, so the same text always gives the same labels.

use super::func::{Callable, Composed, Func};
use super::program::{Encoding, Node, NodeId, Op, Program, Settings};
use crate::diagnostic::Span;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

struct Draft {
    op: Op,
    encoding: Encoding,
    span: Option<Span>,
    name: Option<String>,
}

/// Collects nodes while program text runs; `finish` orders and labels them.
#[derive(Default)]
pub struct Builder {
    nodes: Vec<Draft>,
    prims: HashMap<&'static str, NodeId>,
}

impl Builder {
    /// An empty builder.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// `tokens`, `indices` or `length`: one shared node each.
    pub fn primitive(&mut self, which: &'static str) -> NodeId {
        if let Some(id) = self.prims.get(which) {
            return *id;
        }
        let op = match which {
            "tokens" => Op::Tokens,
            "indices" => Op::Indices,
            _ => Op::Length,
        };
        let id = self.nodes.len();
        self.nodes.push(Draft { op, encoding: Encoding::Categorical, span: None, name: Some(which.to_string()) });
        self.prims.insert(which, id);
        id
    }

    /// Adds a node (no simplification) and returns its id.
    pub fn add(&mut self, op: Op, encoding: Encoding, span: &Span) -> NodeId {
        self.nodes.push(Draft { op, encoding, span: Some(span.clone()), name: None });
        self.nodes.len() - 1
    }

    /// `Map(f, x)`. With `simplify` (Tracr's default), a Map of a Map becomes
    /// one Map of the composed function, so ported programs get Tracr's graph.
    pub fn map(&mut self, f: Arc<dyn Callable>, x: NodeId, simplify: bool, span: &Span) -> NodeId {
        if simplify {
            if let Op::Map { f: Func::Closure(inner), input } = &self.nodes[x].op {
                let composed: Arc<dyn Callable> =
                    Arc::new(Composed { outer: f.clone(), inner: inner.clone(), span: span.clone() });
                let input = *input;
                return self.add(Op::Map { f: Func::Closure(composed), input }, Encoding::Categorical, span);
            }
        }
        self.add(Op::Map { f: Func::Closure(f), input: x }, Encoding::Categorical, span)
    }

    /// `numerical(x)` / `categorical(x)`: a copy with the new encoding (as
    /// Tracr's annotate copies), keeping x's label.
    pub fn with_encoding(&mut self, x: NodeId, encoding: Encoding) -> NodeId {
        let d = &self.nodes[x];
        if d.encoding == encoding
            || matches!(d.op, Op::Tokens | Op::Indices | Op::Length) && encoding == Encoding::Categorical
        {
            return x;
        }
        let copy = Draft { op: d.op.clone(), encoding, span: d.span.clone(), name: d.name.clone() };
        self.nodes.push(copy);
        self.nodes.len() - 1
    }

    /// The encoding of node `id`.
    pub fn encoding(&self, id: NodeId) -> Encoding {
        self.nodes[id].encoding
    }

    /// Names `id` after the variable it is first assigned to, unless it has a name.
    pub fn name_if_unnamed(&mut self, id: NodeId, name: &str) {
        if self.nodes[id].name.is_none() {
            self.nodes[id].name = Some(name.to_string());
        }
    }

    /// Names `id` (`.named(...)`), replacing any name.
    pub fn set_name(&mut self, id: NodeId, name: &str) {
        self.nodes[id].name = Some(name.to_string());
    }

    /// The name `id` has so far, or its kind.
    pub fn name_of(&self, id: NodeId) -> String {
        self.nodes[id].name.clone().unwrap_or_else(|| self.nodes[id].op.kind().to_string())
    }

    /// The program reachable from `output`, with final labels.
    pub fn finish(&self, name: &str, output: NodeId, settings: Option<Settings>) -> Program {
        // reachable nodes, in creation order (which is topological)
        let mut keep = vec![false; self.nodes.len()];
        let mut stack = vec![output];
        while let Some(id) = stack.pop() {
            if !keep[id] {
                keep[id] = true;
                stack.extend(self.nodes[id].op.inputs());
            }
        }
        let order: Vec<NodeId> = (0..self.nodes.len()).filter(|i| keep[*i]).collect();
        let new_id: HashMap<NodeId, NodeId> = order.iter().enumerate().map(|(n, o)| (*o, n)).collect();

        let mut taken: HashSet<String> = HashSet::new();
        let mut labels: Vec<Option<String>> = vec![None; order.len()];
        let claim = |taken: &mut HashSet<String>, base: &str| -> String {
            let mut label = base.to_string();
            let mut k = 2;
            while taken.contains(&label) {
                label = format!("{base}_{k}");
                k += 1;
            }
            taken.insert(label.clone());
            label
        };
        // primitives keep their names; then named nodes; then defaults
        for (n, o) in order.iter().enumerate() {
            if matches!(self.nodes[*o].op, Op::Tokens | Op::Indices | Op::Length) {
                labels[n] = Some(claim(&mut taken, self.nodes[*o].name.as_deref().unwrap()));
            }
        }
        for (n, o) in order.iter().enumerate() {
            if labels[n].is_none() {
                if let Some(name) = &self.nodes[*o].name {
                    labels[n] = Some(claim(&mut taken, name));
                }
            }
        }
        let mut per_kind: HashMap<&'static str, usize> = HashMap::new();
        for (n, o) in order.iter().enumerate() {
            if labels[n].is_none() {
                let kind = self.nodes[*o].op.kind();
                let mut label;
                loop {
                    let k = per_kind.entry(kind).or_insert(0);
                    *k += 1;
                    label = format!("{kind}_{k}");
                    if !taken.contains(&label) {
                        break;
                    }
                }
                taken.insert(label.clone());
                labels[n] = Some(label);
            }
        }

        let nodes = order
            .iter()
            .zip(labels)
            .map(|(o, label)| {
                let d = &self.nodes[*o];
                Node { label: label.unwrap(), op: remap(&d.op, &new_id), encoding: d.encoding, span: d.span.clone() }
            })
            .collect();
        Program { name: name.to_string(), nodes, output: new_id[&output], settings, source: None }
    }
}

/// The same op with its inputs renumbered.
pub fn remap(op: &Op, m: &HashMap<NodeId, NodeId>) -> Op {
    let r = |i: &NodeId| m[i];
    match op {
        Op::Tokens | Op::Indices | Op::Length | Op::Full(_) => op.clone(),
        Op::Map { f, input } => Op::Map { f: f.clone(), input: r(input) },
        Op::SequenceMap { f, inputs } => Op::SequenceMap { f: f.clone(), inputs: [r(&inputs[0]), r(&inputs[1])] },
        Op::LinearSequenceMap { inputs, coeffs } => {
            Op::LinearSequenceMap { inputs: [r(&inputs[0]), r(&inputs[1])], coeffs: coeffs.clone() }
        }
        Op::Aggregate { selector, sop, default } => {
            Op::Aggregate { selector: r(selector), sop: r(sop), default: default.clone() }
        }
        Op::SelectorWidth { selector } => Op::SelectorWidth { selector: r(selector) },
        Op::Select { keys, queries, predicate } => {
            Op::Select { keys: r(keys), queries: r(queries), predicate: predicate.clone() }
        }
        Op::SelectAnd(a, b) => Op::SelectAnd(r(a), r(b)),
        Op::SelectOr(a, b) => Op::SelectOr(r(a), r(b)),
        Op::SelectNot(a) => Op::SelectNot(r(a)),
    }
}
