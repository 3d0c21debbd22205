//! The RASP interpreter: the ground truth every compiled model is checked against.
//!
//! Semantics follow Tracr's `rasp.evaluate` (and `causal_eval` in causal mode),
//! with two rules made explicit because the compiled model obeys them:
//! - None means "no value". A Map or SequenceMap with a None input gives None,
//!   and a None key or query matches no predicate except TRUE.
//! - A categorical Aggregate whose selected positions hold different values is
//!   an error (Tracr silently averages), reported with the position.

use super::program::{Encoding, NodeId, Op, Predicate, Program};
use crate::diagnostic::{Error, Result};
use crate::value::{binop, BinOp, Strict, Value};
use std::collections::HashMap;

/// Every node's value on one input.
#[derive(Clone, Debug)]
pub struct Trace {
    /// s-op values per node (None for selectors).
    pub sops: Vec<Option<Vec<Value>>>,
    /// selector matrices `[query][key]` per node (None for s-ops).
    pub selectors: Vec<Option<Vec<Vec<bool>>>>,
    /// The output node.
    pub output: NodeId,
}

impl Trace {
    /// The output s-op's values.
    pub fn output(&self) -> &[Value] {
        self.sops[self.output].as_deref().expect("output is an s-op")
    }
}

/// Runs `p` on `input` (no BOS), with causal semantics when `causal`; an error names the node and position.
pub fn evaluate(p: &Program, input: &[Value], causal: bool) -> Result<Trace> {
    let n = input.len();
    let mut sops: Vec<Option<Vec<Value>>> = vec![None; p.nodes.len()];
    let mut sels: Vec<Option<Vec<Vec<bool>>>> = vec![None; p.nodes.len()];
    let visible = |q: usize, k: usize| !causal || k <= q;

    for (id, node) in p.nodes.iter().enumerate() {
        let val = |i: NodeId| sops[i].as_ref().expect("inputs evaluated first");
        let err_at =
            |pos: usize, msg: String| Error::program(format!("evaluating {} at position {pos}: {msg}", p.describe(id)));
        match &node.op {
            Op::Tokens => sops[id] = Some(input.to_vec()),
            Op::Indices => sops[id] = Some((0..n).map(|i| Value::Int(i as i64)).collect()),
            Op::Length => sops[id] = Some((0..n).map(|i| Value::Int(if causal { i + 1 } else { n } as i64)).collect()),
            Op::Full(v) => sops[id] = Some(vec![v.clone(); n]),
            Op::Map { f, input } => {
                let xs = val(*input);
                let mut out = Vec::with_capacity(n);
                for (pos, x) in xs.iter().enumerate() {
                    out.push(match x {
                        Value::None => Value::None,
                        x => f
                            .call(std::slice::from_ref(x))
                            .map_err(|e| err_at(pos, format!("the function raised {e} on input value {}", x.repr())))?,
                    });
                }
                sops[id] = Some(out);
            }
            Op::SequenceMap { f, inputs } => {
                let (xs, ys) = (val(inputs[0]), val(inputs[1]));
                let mut out = Vec::with_capacity(n);
                for pos in 0..n {
                    let (x, y) = (&xs[pos], &ys[pos]);
                    out.push(if matches!(x, Value::None) || matches!(y, Value::None) {
                        Value::None
                    } else {
                        f.call(&[x.clone(), y.clone()]).map_err(|e| {
                            err_at(pos, format!("the function raised {e} on input values ({}, {})", x.repr(), y.repr()))
                        })?
                    });
                }
                sops[id] = Some(out);
            }
            Op::LinearSequenceMap { inputs, coeffs } => {
                let (xs, ys) = (val(inputs[0]), val(inputs[1]));
                let mut out = Vec::with_capacity(n);
                for pos in 0..n {
                    let (x, y) = (&xs[pos], &ys[pos]);
                    out.push(if matches!(x, Value::None) || matches!(y, Value::None) {
                        Value::None
                    } else {
                        linear(coeffs, x, y).map_err(|e| err_at(pos, e))?
                    });
                }
                sops[id] = Some(out);
            }
            Op::Select { keys, queries, predicate } => {
                let (ks, qs) = (val(*keys), val(*queries));
                // the predicate once per pair of distinct values (strictly: a
                // custom predicate may tell 1 from 1.0), in the order a
                // plain double loop meets them, so an error names the same
                // first position; a long input has few distinct values
                let (kid, nk) = distinct(ks);
                let (qid, _) = distinct(qs);
                let mut holds: Vec<Option<bool>> = vec![None; nk * (qid.iter().max().map_or(0, |m| m + 1))];
                let mut m = vec![vec![false; n]; n];
                for (q, row) in m.iter_mut().enumerate() {
                    for (k, cell) in row.iter_mut().enumerate() {
                        if !visible(q, k) {
                            continue;
                        }
                        let pair = qid[q] * nk + kid[k];
                        *cell = match holds[pair] {
                            Some(h) => h,
                            None => {
                                let h = select_holds(predicate, &ks[k], &qs[q]).map_err(|e| err_at(q, e))?;
                                holds[pair] = Some(h);
                                h
                            }
                        };
                    }
                }
                sels[id] = Some(m);
            }
            Op::SelectAnd(a, b) | Op::SelectOr(a, b) => {
                let (x, y) = (sels[*a].as_ref().unwrap(), sels[*b].as_ref().unwrap());
                let and = matches!(node.op, Op::SelectAnd(..));
                let m = (0..n)
                    .map(|q| (0..n).map(|k| if and { x[q][k] && y[q][k] } else { x[q][k] || y[q][k] }).collect())
                    .collect();
                sels[id] = Some(m);
            }
            Op::SelectNot(a) => {
                let x = sels[*a].as_ref().unwrap();
                let m = (0..n).map(|q| (0..n).map(|k| visible(q, k) && !x[q][k]).collect()).collect();
                sels[id] = Some(m);
            }
            Op::SelectorWidth { selector } => {
                let m = sels[*selector].as_ref().unwrap();
                sops[id] = Some(m.iter().map(|row| Value::Int(row.iter().filter(|s| **s).count() as i64)).collect());
            }
            Op::Aggregate { selector, sop, default } => {
                let m = sels[*selector].as_ref().unwrap();
                let xs = val(*sop);
                let mut out = Vec::with_capacity(n);
                for (q, row) in m.iter().enumerate() {
                    let selected: Vec<(usize, &Value)> =
                        row.iter().enumerate().filter(|(_, s)| **s).map(|(k, _)| (k, &xs[k])).collect();
                    out.push(aggregate(node.encoding, &selected, default).map_err(|e| err_at(q, e))?);
                }
                sops[id] = Some(out);
            }
        }
    }
    Ok(Trace { sops, selectors: sels, output: p.output })
}

/// Each value's number among the distinct values (strictly), and how many there are.
fn distinct(values: &[Value]) -> (Vec<usize>, usize) {
    let mut seen: HashMap<Strict, usize> = HashMap::new();
    let ids = values
        .iter()
        .map(|v| {
            let next = seen.len();
            *seen.entry(Strict(v)).or_insert(next)
        })
        .collect();
    (ids, seen.len())
}

/// Whether a query selects a key. None matches nothing except TRUE.
pub fn select_holds(predicate: &Predicate, key: &Value, query: &Value) -> std::result::Result<bool, String> {
    use super::program::Comparison;
    match predicate {
        Predicate::Cmp(Comparison::TRUE) => Ok(true),
        _ if matches!(key, Value::None) || matches!(query, Value::None) => Ok(false),
        Predicate::Cmp(c) => Ok(c.holds(key, query)),
        Predicate::Custom(f) => f
            .call(&[key.clone(), query.clone()])
            .map(|v| v.truthy())
            .map_err(|e| format!("the predicate raised {e} on (key, query) = ({}, {})", key.repr(), query.repr())),
    }
}

/// `coeffs[0] * x + coeffs[1] * y` with Python arithmetic.
pub fn linear(coeffs: &[Value; 2], x: &Value, y: &Value) -> std::result::Result<Value, String> {
    let a = binop(BinOp::Mul, &coeffs[0], x).map_err(|e| e.0)?;
    let b = binop(BinOp::Mul, &coeffs[1], y).map_err(|e| e.0)?;
    binop(BinOp::Add, &a, &b).map_err(|e| e.0)
}

/// One query's aggregate over its selected (position, value) pairs.
pub fn aggregate(
    encoding: Encoding,
    selected: &[(usize, &Value)],
    default: &Value,
) -> std::result::Result<Value, String> {
    match selected {
        [] => Ok(default.clone()),
        [(_, v)] => Ok((*v).clone()),
        _ => match encoding {
            Encoding::Categorical => {
                let first = selected[0].1;
                if let Some((k, other)) = selected.iter().find(|(_, v)| *v != first) {
                    return Err(format!(
                        "a categorical Aggregate selected positions holding different values ({} at position {}, {} at position {k}); \
                         it needs the selected positions to agree (use numerical(...) to average numbers)",
                        first.repr(),
                        selected[0].0,
                        other.repr()
                    ));
                }
                Ok(first.clone())
            }
            Encoding::Numerical => {
                let mut sum = Value::Int(0);
                for (k, v) in selected {
                    if !v.is_number() {
                        return Err(format!(
                            "a numerical Aggregate can only average numbers, found {} at position {k}",
                            v.repr()
                        ));
                    }
                    sum = binop(BinOp::Add, &sum, v).map_err(|e| e.0)?;
                }
                binop(BinOp::Div, &sum, &Value::Int(selected.len() as i64)).map_err(|e| e.0)
            }
        },
    }
}
