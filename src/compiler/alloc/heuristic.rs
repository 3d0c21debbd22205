//! Tracr's layer allocation, reproduced exactly (the baseline).
//!
//! The depth of an s-op is the longest path from the inputs to it, counting the
//! s-ops on the path that have model blocks (selectors count 0, SelectorWidth's
//! attention + MLP count 1). One pass merges a level holding only attention
//! with a following level holding only MLPs. Depth k becomes layer k - 1:
//! attention in its first half, MLPs in its second. Every level costs a layer.

use super::{Allocation, Allocator, Costs};
use crate::compiler::craft::BlockKind;
use crate::compiler::graph::ProgramGraph;
use crate::compiler::lower::Lowered;
use crate::diagnostic::Result;
use crate::rasp::{NodeId, Program};
use std::collections::BTreeMap;

/// Tracr's allocation: each block at its longest-path depth from the inputs.
pub struct Heuristic;

#[derive(Clone, Copy, PartialEq, Eq)]
enum NodeKind {
    Attn,
    Mlp,
    /// attention followed by MLP (SelectorWidth)
    Both,
}

impl Allocator for Heuristic {
    fn name(&self) -> &'static str {
        "heuristic"
    }

    fn allocate(&self, program: &Program, lowered: &Lowered, _costs: &Costs) -> Result<Allocation> {
        let blocks = &lowered.blocks;
        let mut kinds: BTreeMap<NodeId, NodeKind> = BTreeMap::new();
        for b in blocks {
            let k = match b.kind() {
                BlockKind::Attn => NodeKind::Attn,
                BlockKind::Mlp => NodeKind::Mlp,
            };
            kinds
                .entry(b.node)
                .and_modify(|e| {
                    if *e != k {
                        *e = NodeKind::Both
                    }
                })
                .or_insert(k);
        }
        let graph = ProgramGraph::new(program);
        let depth = graph.longest_path(|n| kinds.contains_key(&n));
        let mut by_depth: BTreeMap<usize, Vec<NodeId>> = BTreeMap::new();
        for n in kinds.keys() {
            by_depth.entry(depth[*n]).or_default().push(*n);
        }
        let mut node_depth: BTreeMap<NodeId, usize> = kinds.keys().map(|n| (*n, depth[*n])).collect();
        if let (Some(&min), Some(&max)) = (by_depth.keys().next(), by_depth.keys().last()) {
            let mut max = max;
            let mut d = min;
            let all = |v: Option<&Vec<NodeId>>, k: NodeKind| v.map_or(true, |v| v.iter().all(|n| kinds[n] == k));
            while d < max {
                if all(by_depth.get(&d), NodeKind::Attn) && all(by_depth.get(&(d + 1)), NodeKind::Mlp) {
                    for up in d + 1..=max {
                        let moved = by_depth.remove(&up).unwrap_or_default();
                        for n in &moved {
                            node_depth.insert(*n, up - 1);
                        }
                        by_depth.entry(up - 1).or_default().extend(moved);
                    }
                    max -= 1;
                }
                d += 1;
            }
        }
        let sublayer = blocks
            .iter()
            .map(|b| {
                let base = 2 * (node_depth[&b.node] - 1);
                match b.kind() {
                    BlockKind::Attn => base,
                    BlockKind::Mlp => base + 1,
                }
            })
            .collect();
        Ok(Allocation { sublayer, info: None, erase: None })
    }
}
