//! RASP programs: representation, construction, interpretation, value sets, JSON.

pub mod builder;
pub mod func;
pub mod inputs;
pub mod interp;
pub mod json;
pub mod program;
pub mod valueset;

pub use builder::Builder;
pub use program::{Comparison, Encoding, Node, NodeId, Op, Predicate, Program, Settings};

use std::collections::HashMap;

/// The program restricted to the nodes its output reads (order and labels kept).
pub fn prune_unreachable(p: &Program) -> Program {
    let mut keep = vec![false; p.nodes.len()];
    let mut stack = vec![p.output];
    while let Some(id) = stack.pop() {
        if !keep[id] {
            keep[id] = true;
            stack.extend(p.nodes[id].op.inputs());
        }
    }
    let order: Vec<NodeId> = (0..p.nodes.len()).filter(|i| keep[*i]).collect();
    let m: HashMap<NodeId, NodeId> = order.iter().enumerate().map(|(n, o)| (*o, n)).collect();
    let nodes = order
        .iter()
        .map(|o| {
            let n = &p.nodes[*o];
            Node { label: n.label.clone(), op: builder::remap(&n.op, &m), encoding: n.encoding, span: n.span.clone() }
        })
        .collect();
    Program {
        name: p.name.clone(),
        nodes,
        output: m[&p.output],
        settings: p.settings.clone(),
        source: p.source.clone(),
    }
}
