//! Value-set inference: every value each s-op can take, given vocab and max_seq_len.
//!
//! The sets over-approximate what inputs can reach, which is what a compiled
//! model must handle. The plain rule computes each node's set from its
//! inputs' sets independently. Numerical means are enumerated exactly;
//! Tracr's rule `{v / m}` misses most of them (e.g. 2/3), which is a bug we
//! do not copy. Numerical SequenceMaps, LinearSequenceMaps and Aggregates
//! are refined per position (`contexts`; Aggregates above max_seq_len 128
//! only on the way to a product):
//! their inputs are not independent there (two running fractions share
//! their denominator), and the plain product would enumerate values no
//! input reaches.

mod contexts;

pub use contexts::MAX_REFINED_SEQ_LEN;

use super::func::{Func, Table};
use super::interp::{linear, select_holds};
use super::program::{Encoding, NodeId, Op, Predicate, Program};
use crate::diagnostic::{Error, Result};
use crate::value::{binop, BinOp, Value};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

/// Largest value set we enumerate for one s-op before refusing.
pub const MAX_VALUE_SET: usize = 100_000;

/// Sorted, de-duplicated possible values per node (empty for selectors).
/// None ("no value") is never a member: it is carried as the zero vector.
#[derive(Clone, Debug)]
pub struct ValueSets {
    /// Per node, its values, sorted (empty for selectors).
    pub sets: Vec<Vec<Value>>,
}

impl ValueSets {
    /// The value set of node `id`.
    pub fn of(&self, id: NodeId) -> &[Value] {
        &self.sets[id]
    }
}

fn sorted(set: HashSet<Value>) -> Vec<Value> {
    let mut v: Vec<Value> = set.into_iter().filter(|v| !matches!(v, Value::None)).collect();
    v.sort();
    v
}

/// Error for a function that raises on a value in its input's value set.
fn raised(p: &Program, id: NodeId, f: &Func, e: &str, args: &[&Value]) -> Error {
    let shown: Vec<String> = args.iter().map(|v| v.repr()).collect();
    let what = if args.len() == 1 {
        format!("input value {}", shown[0])
    } else {
        format!("input values ({})", shown.join(", "))
    };
    let msg = format!("the function of {} raises {e} on {what}", p.describe(id));
    match f {
        Func::Closure(c) => match c.span() {
            Some(span) => Error::at_with_note(
                span,
                msg,
                "every function is evaluated on all values its inputs can take; guard the case (e.g. `x if x != 0 else 0`)",
            ),
            None => Error::program(msg),
        },
        Func::Table(_) => Error::program(msg),
    }
}

/// A SequenceMap's function, or a LinearSequenceMap's sum, on one pair of
/// values; an error names the s-op and the pair.
fn combine(p: &Program, id: NodeId, x: &Value, y: &Value) -> Result<Value> {
    match &p.nodes[id].op {
        Op::SequenceMap { f, .. } => f.call(&[x.clone(), y.clone()]).map_err(|e| raised(p, id, f, &e.0, &[x, y])),
        Op::LinearSequenceMap { coeffs, .. } => linear(coeffs, x, y)
            .map_err(|e| Error::program(format!("{} fails on ({}, {}): {e}", p.describe(id), x.repr(), y.repr()))),
        _ => unreachable!("combine is for SequenceMap and LinearSequenceMap"),
    }
}

fn check_size(p: &Program, id: NodeId, n: usize) -> Result<()> {
    if n > MAX_VALUE_SET {
        return Err(Error::program(format!(
            "the value set of {} has more than {MAX_VALUE_SET} values; use a smaller vocab or max_seq_len",
            p.describe(id)
        )));
    }
    Ok(())
}

/// The most (key, query) pairs a Select's own predicate is evaluated on
/// (value-set inference and tabulation each call it once per pair):
/// `Select(indices, indices, lambda ...)` passes it from max_seq_len 1 415 (about 15 s of predicate calls there).
pub const MAX_SELECT_PAIRS: usize = 2_000_000;

/// Refuses a Select with a custom predicate over more than
/// [`MAX_SELECT_PAIRS`] pairs, before any is evaluated.
fn check_pairs(p: &Program, id: NodeId, keys: usize, queries: usize) -> Result<()> {
    let pairs = keys.saturating_mul(queries);
    if pairs > MAX_SELECT_PAIRS {
        return Err(Error::program(format!(
            "{} calls its predicate on {keys} key values × {queries} query values = {pairs} pairs, over the limit of {MAX_SELECT_PAIRS}; use a smaller vocab or max_seq_len",
            p.describe(id)
        )));
    }
    Ok(())
}

/// Every s-op's value set for these settings (a sound over-approximation); refuses sets over the size limit.
pub fn infer(p: &Program, vocab: &[Value], max_seq_len: usize) -> Result<ValueSets> {
    let mut sets: Vec<Vec<Value>> = vec![Vec::new(); p.nodes.len()];
    let mut refinement = contexts::Contexts::new(p, vocab, max_seq_len);
    for (id, node) in p.nodes.iter().enumerate() {
        if let Some(r) = refinement.as_mut().filter(|r| r.refines(id)) {
            sets[id] = r.visit(id, &sets)?.expect("a refined node's union");
            continue;
        }
        let set: Vec<Value> = match &node.op {
            Op::Tokens => sorted(vocab.iter().cloned().collect()),
            Op::Indices => (0..max_seq_len as i64).map(Value::Int).collect(),
            Op::Length => (1..=max_seq_len as i64).map(Value::Int).collect(),
            Op::Full(v) => sorted([v.clone()].into_iter().collect()),
            Op::Map { f, input } => {
                let mut out = HashSet::new();
                for x in &sets[*input] {
                    let y = f.call(std::slice::from_ref(x)).map_err(|e| raised(p, id, f, &e.0, &[x]))?;
                    out.insert(y);
                }
                sorted(out)
            }
            Op::SequenceMap { inputs, .. } | Op::LinearSequenceMap { inputs, .. } => {
                let mut out = HashSet::new();
                check_size(p, id, sets[inputs[0]].len().saturating_mul(sets[inputs[1]].len()))?;
                for x in &sets[inputs[0]] {
                    for y in &sets[inputs[1]] {
                        out.insert(combine(p, id, x, y)?);
                    }
                }
                sorted(out)
            }
            Op::Aggregate { sop, default, .. } => {
                let mut out: HashSet<Value> = match node.encoding {
                    Encoding::Categorical => sets[*sop].iter().cloned().collect(),
                    Encoding::Numerical => means(p, id, &sets[*sop], max_seq_len)?,
                };
                out.insert(default.clone());
                sorted(out)
            }
            Op::SelectorWidth { .. } => (0..=max_seq_len as i64).map(Value::Int).collect(),
            Op::Select { keys, queries, predicate } => {
                if let Predicate::Custom(f) = predicate {
                    check_pairs(p, id, sets[*keys].len(), sets[*queries].len())?;
                    for k in &sets[*keys] {
                        for q in &sets[*queries] {
                            select_holds(predicate, k, q).map_err(|_| {
                                let e = f.call(&[k.clone(), q.clone()]).err().map(|e| e.0).unwrap_or_default();
                                raised(p, id, f, &e, &[k, q])
                            })?;
                        }
                    }
                }
                Vec::new()
            }
            Op::SelectAnd(..) | Op::SelectOr(..) | Op::SelectNot(..) => Vec::new(),
        };
        check_size(p, id, set.len())?;
        sets[id] = set;
        if let Some(r) = refinement.as_mut() {
            r.visit(id, &sets)?;
        }
    }
    Ok(ValueSets { sets })
}

/// Every mean of 1..=max_seq_len values drawn (with repetition) from `values`.
fn means(p: &Program, id: NodeId, values: &[Value], max_seq_len: usize) -> Result<HashSet<Value>> {
    if let Some(bad) = values.iter().find(|v| !v.is_number()) {
        return Err(Error::program(format!(
            "{} is a numerical Aggregate but its input can hold the non-number {}",
            p.describe(id),
            bad.repr()
        )));
    }
    let mut out: HashSet<Value> = values.iter().cloned().collect();
    // ordered sets: which of two equal values of different types (1, 1.0)
    // is kept must not depend on hashing
    let mut sums: BTreeSet<Value> = values.iter().cloned().collect();
    for m in 2..=max_seq_len {
        let mut next = BTreeSet::new();
        for s in &sums {
            for v in values {
                next.insert(binop(BinOp::Add, s, v).map_err(|e| Error::program(format!("{}: {e}", p.describe(id))))?);
            }
            // refuse as soon as the limit is passed, not after every sum
            check_size(p, id, next.len())?;
        }
        for s in &next {
            out.insert(binop(BinOp::Div, s, &Value::Int(m as i64)).map_err(|e| Error::program(e.0))?);
        }
        check_size(p, id, out.len())?;
        sums = next;
    }
    Ok(out)
}

/// The program with every function replaced by its table over the value sets:
/// the form the JSON format stores and the form verification evaluates fast.
pub fn tabulate(p: &Program, vs: &ValueSets) -> Result<Program> {
    let mut out = p.clone();
    for (id, node) in out.nodes.iter_mut().enumerate() {
        match &mut node.op {
            Op::Map { f, input } => {
                let mut t = Table::new(1);
                t.source = f.source();
                for x in vs.of(*input) {
                    let y = f.call(std::slice::from_ref(x)).map_err(|e| raised(p, id, f, &e.0, &[x]))?;
                    t.insert(vec![x.clone()], y);
                }
                *f = Func::Table(Arc::new(t));
            }
            Op::SequenceMap { f, inputs } => {
                let mut t = Table::new(2);
                t.source = f.source();
                for x in vs.of(inputs[0]) {
                    for y in vs.of(inputs[1]) {
                        let z = f.call(&[x.clone(), y.clone()]).map_err(|e| raised(p, id, f, &e.0, &[x, y]))?;
                        t.insert(vec![x.clone(), y.clone()], z);
                    }
                }
                *f = Func::Table(Arc::new(t));
            }
            Op::Select { keys, queries, predicate: Predicate::Custom(f) } => {
                check_pairs(p, id, vs.of(*keys).len(), vs.of(*queries).len())?;
                let mut t = Table::new(2);
                t.source = f.source();
                for k in vs.of(*keys) {
                    for q in vs.of(*queries) {
                        let r = f.call(&[k.clone(), q.clone()]).map_err(|e| raised(p, id, f, &e.0, &[k, q]))?;
                        t.insert(vec![k.clone(), q.clone()], Value::Bool(r.truthy()));
                    }
                }
                *f = Func::Table(Arc::new(t));
            }
            _ => {}
        }
    }
    Ok(out)
}
