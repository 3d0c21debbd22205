//! The program as a petgraph DAG (edges from input to reader).

use crate::rasp::{NodeId, Program};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;

/// The program as a petgraph DAG (edges from inputs to readers).
pub struct ProgramGraph {
    /// Node weights are the program's node ids.
    pub graph: DiGraph<NodeId, ()>,
}

impl ProgramGraph {
    /// The DAG of `p`.
    pub fn new(p: &Program) -> ProgramGraph {
        let mut graph = DiGraph::with_capacity(p.nodes.len(), p.nodes.len() * 2);
        for id in 0..p.nodes.len() {
            graph.add_node(id);
        }
        for (id, n) in p.nodes.iter().enumerate() {
            for i in n.op.inputs() {
                graph.update_edge(NodeIndex::new(i), NodeIndex::new(id), ());
            }
        }
        ProgramGraph { graph }
    }

    /// Per node: the largest number of counted nodes on any path from a source
    /// to it, itself included.
    pub fn longest_path(&self, counts: impl Fn(NodeId) -> bool) -> Vec<usize> {
        let order = petgraph::algo::toposort(&self.graph, None).expect("programs are acyclic");
        let mut depth = vec![0usize; self.graph.node_count()];
        for ix in order {
            let before =
                self.graph.neighbors_directed(ix, Direction::Incoming).map(|i| depth[i.index()]).max().unwrap_or(0);
            depth[ix.index()] = before + usize::from(counts(ix.index()));
        }
        depth
    }
}
