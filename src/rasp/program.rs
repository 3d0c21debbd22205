//! A RASP program: a DAG of s-ops and selectors with stable labels.

use super::func::Func;
use crate::diagnostic::Span;
use crate::value::Value;
use serde::{Deserialize, Serialize};

/// A node's index in `Program::nodes`.
pub type NodeId = usize;

/// How an s-op's value is carried in the residual stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// One direction per possible value (one-hot). The default, as in Tracr.
    Categorical,
    /// A single direction holding the value as a number.
    Numerical,
}

/// The fixed predicates of `Select`, called as `predicate(key, query)` as in Tracr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Comparison {
    /// key == query
    EQ,
    /// key < query
    LT,
    /// key <= query
    LEQ,
    /// key > query
    GT,
    /// key >= query
    GEQ,
    /// key != query
    NEQ,
    /// always
    TRUE,
    /// never
    FALSE,
}

impl Comparison {
    /// Every comparison, in Tracr's order.
    pub const ALL: [Comparison; 8] = [
        Comparison::EQ,
        Comparison::LT,
        Comparison::LEQ,
        Comparison::GT,
        Comparison::GEQ,
        Comparison::NEQ,
        Comparison::TRUE,
        Comparison::FALSE,
    ];

    /// Tracr's name (`EQ`, `LT`, …).
    pub fn name(self) -> &'static str {
        match self {
            Comparison::EQ => "EQ",
            Comparison::LT => "LT",
            Comparison::LEQ => "LEQ",
            Comparison::GT => "GT",
            Comparison::GEQ => "GEQ",
            Comparison::NEQ => "NEQ",
            Comparison::TRUE => "TRUE",
            Comparison::FALSE => "FALSE",
        }
    }

    /// The comparison with Tracr's name `s`.
    pub fn from_name(s: &str) -> Option<Comparison> {
        Comparison::ALL.into_iter().find(|c| c.name() == s)
    }

    /// `predicate(key, query)`. Ordering comparisons between values Python cannot
    /// order (e.g. a string and a number) are false rather than errors, so that a
    /// None (no value) never matches.
    pub fn holds(self, key: &Value, query: &Value) -> bool {
        use crate::value::{compare, CmpOp};
        let cmp = |op| compare(op, key, query).unwrap_or(false);
        match self {
            Comparison::EQ => key == query,
            Comparison::NEQ => key != query,
            Comparison::LT => cmp(CmpOp::Lt),
            Comparison::LEQ => cmp(CmpOp::Le),
            Comparison::GT => cmp(CmpOp::Gt),
            Comparison::GEQ => cmp(CmpOp::Ge),
            Comparison::TRUE => true,
            Comparison::FALSE => false,
        }
    }
}

/// A selector's predicate: one of Tracr's comparisons or a function of (key, query).
#[derive(Clone, Debug)]
pub enum Predicate {
    /// One of Tracr's comparisons.
    Cmp(Comparison),
    /// Any other predicate of (key, query), as a function.
    Custom(Func),
}

/// What a node computes.
#[derive(Clone, Debug)]
pub enum Op {
    /// The input tokens.
    Tokens,
    /// The positions 0..n.
    Indices,
    /// The sequence length at every position (in causal mode: the visible length).
    Length,
    /// A constant s-op.
    Full(Value),
    /// `Map(f, input)`: f at every position.
    Map {
        /// The function.
        f: Func,
        /// The s-op it maps.
        input: NodeId,
    },
    /// `SequenceMap(f, x, y)`: f of the pair at every position.
    SequenceMap {
        /// The function of two values.
        f: Func,
        /// The two s-ops it combines, element-wise.
        inputs: [NodeId; 2],
    },
    /// `coeffs[0] * x + coeffs[1] * y`, numerical.
    LinearSequenceMap {
        /// The two s-ops.
        inputs: [NodeId; 2],
        /// Their coefficients.
        coeffs: [Value; 2],
    },
    /// `Aggregate(selector, sop, default)`: the mean (numerical) or the one
    /// value (categorical) of the selected positions.
    Aggregate {
        /// Which positions each query position averages.
        selector: NodeId,
        /// The s-op averaged.
        sop: NodeId,
        /// The value where nothing is selected.
        default: Value,
    },
    /// `SelectorWidth(selector)`: how many keys each query selects.
    SelectorWidth {
        /// The selector whose row widths are counted.
        selector: NodeId,
    },
    /// `Select(keys, queries, predicate)`: a selector.
    Select {
        /// The key s-op.
        keys: NodeId,
        /// The query s-op.
        queries: NodeId,
        /// Which (key, query) pairs are selected.
        predicate: Predicate,
    },
    /// Both selectors select.
    SelectAnd(NodeId, NodeId),
    /// Either selector selects.
    SelectOr(NodeId, NodeId),
    /// The complement of a selector.
    SelectNot(NodeId),
}

impl Op {
    /// Short kind name, used for default labels and messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Tokens => "tokens",
            Op::Indices => "indices",
            Op::Length => "length",
            Op::Full(_) => "full",
            Op::Map { .. } => "map",
            Op::SequenceMap { .. } => "sequence_map",
            Op::LinearSequenceMap { .. } => "linear_sequence_map",
            Op::Aggregate { .. } => "aggregate",
            Op::SelectorWidth { .. } => "selector_width",
            Op::Select { .. } => "select",
            Op::SelectAnd(..) => "select_and",
            Op::SelectOr(..) => "select_or",
            Op::SelectNot(..) => "select_not",
        }
    }

    /// Whether the node is a selector (not an s-op).
    pub fn is_selector(&self) -> bool {
        matches!(self, Op::Select { .. } | Op::SelectAnd(..) | Op::SelectOr(..) | Op::SelectNot(..))
    }

    /// The nodes this one reads, in a fixed order.
    pub fn inputs(&self) -> Vec<NodeId> {
        match self {
            Op::Tokens | Op::Indices | Op::Length | Op::Full(_) => vec![],
            Op::Map { input, .. } => vec![*input],
            Op::SequenceMap { inputs, .. } | Op::LinearSequenceMap { inputs, .. } => inputs.to_vec(),
            Op::Aggregate { selector, sop, .. } => vec![*selector, *sop],
            Op::SelectorWidth { selector } => vec![*selector],
            Op::Select { keys, queries, .. } => vec![*keys, *queries],
            Op::SelectAnd(a, b) | Op::SelectOr(a, b) => vec![*a, *b],
            Op::SelectNot(a) => vec![*a],
        }
    }
}

/// One node of the DAG.
#[derive(Clone, Debug)]
pub struct Node {
    /// Its stable label (the name, assigned variable or `<kind>_<k>`).
    pub label: String,
    /// What it computes.
    pub op: Op,
    /// Meaningful for s-ops only; selectors carry Categorical.
    pub encoding: Encoding,
    /// Where the node was written, for messages.
    pub span: Option<Span>,
}

impl Node {
    /// The function's source text, if it came from program text.
    pub fn op_source(&self) -> Option<String> {
        match &self.op {
            Op::Map { f, .. } | Op::SequenceMap { f, .. } => f.source(),
            Op::Select { predicate: Predicate::Custom(f), .. } => f.source(),
            _ => None,
        }
    }
}

/// Default compile settings a program can carry.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// The input tokens.
    pub vocab: Vec<Value>,
    /// The longest input.
    pub max_seq_len: usize,
    /// Causal attention (prefix semantics).
    pub causal: bool,
}

/// A whole program: nodes in topological order (inputs before readers), the
/// output s-op, and optional default settings.
#[derive(Clone, Debug)]
pub struct Program {
    /// The program's name (the file stem, or the JSON `name`).
    pub name: String,
    /// Nodes in topological order.
    pub nodes: Vec<Node>,
    /// The output s-op.
    pub output: NodeId,
    /// The settings its `compile(...)` line (or JSON `settings`) declares.
    pub settings: Option<Settings>,
    /// The text the program was loaded from (`.rasp` or JSON), kept in the
    /// model's metadata so a model directory says what it was compiled from.
    pub source: Option<std::sync::Arc<str>>,
}

impl Program {
    /// Node `id`.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    /// The node labelled `label`.
    pub fn find(&self, label: &str) -> Option<NodeId> {
        self.nodes.iter().position(|n| n.label == label)
    }

    /// Readers of each node.
    pub fn readers(&self) -> Vec<Vec<NodeId>> {
        let mut r = vec![Vec::new(); self.nodes.len()];
        for (id, n) in self.nodes.iter().enumerate() {
            for i in n.op.inputs() {
                if !r[i].contains(&id) {
                    r[i].push(id);
                }
            }
        }
        r
    }

    /// Describes a node for messages: `'label' (map, file:line:col)`.
    pub fn describe(&self, id: NodeId) -> String {
        let n = &self.nodes[id];
        match &n.span {
            Some(s) => format!("'{}' ({} at {})", n.label, n.op.kind(), s.location()),
            None => format!("'{}' ({})", n.label, n.op.kind()),
        }
    }
}
