//! The JSON interchange format for programs (documented in docs/PROGRAM_FORMAT.md).
//!
//! Every Map/SequenceMap/custom predicate is a finite lookup table over the
//! value sets of its inputs, so any tool (e.g. an exporter from Tracr's Python
//! objects) can write programs without sharing a lambda language.

use super::func::{Func, Table};
use super::program::{Comparison, Encoding, Node, NodeId, Op, Predicate, Program, Settings};
use super::valueset::{infer, tabulate};
use crate::diagnostic::{Error, Result};
use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// The `format` field of every program file.
pub const FORMAT: &str = "tracr-opt-program";
/// The format version this build reads and writes.
pub const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    format: String,
    version: u32,
    name: String,
    #[serde(default)]
    settings: Option<JsonSettings>,
    output: String,
    nodes: Vec<JsonNode>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonSettings {
    vocab: Vec<serde_json::Value>,
    max_seq_len: usize,
    #[serde(default)]
    causal: bool,
}

#[derive(Serialize, Deserialize)]
struct JsonNode {
    label: String,
    #[serde(default = "categorical", skip_serializing_if = "is_categorical")]
    encoding: Encoding,
    #[serde(flatten)]
    op: JsonOp,
}

fn categorical() -> Encoding {
    Encoding::Categorical
}

fn is_categorical(e: &Encoding) -> bool {
    *e == Encoding::Categorical
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum JsonOp {
    Tokens,
    Indices,
    Length,
    Full {
        value: serde_json::Value,
    },
    Map {
        input: String,
        table: Vec<Vec<serde_json::Value>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
    },
    SequenceMap {
        inputs: [String; 2],
        table: Vec<Vec<serde_json::Value>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
    },
    LinearSequenceMap {
        inputs: [String; 2],
        coefficients: [serde_json::Value; 2],
    },
    Select {
        keys: String,
        queries: String,
        predicate: JsonPredicate,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
    },
    Aggregate {
        selector: String,
        sop: String,
        #[serde(default)]
        default: serde_json::Value,
    },
    SelectorWidth {
        selector: String,
    },
    SelectAnd {
        inputs: [String; 2],
    },
    SelectOr {
        inputs: [String; 2],
    },
    SelectNot {
        input: String,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum JsonPredicate {
    Named(String),
    Table { table: Vec<Vec<serde_json::Value>> },
}

/// A value in the format's JSON encoding (tuples as arrays; no inf/nan).
pub fn value_to_json(v: &Value) -> Result<serde_json::Value> {
    Ok(match v {
        Value::None => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => serde_json::Value::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .ok_or_else(|| Error::program(format!("the value {} cannot be written as JSON", v.repr())))?,
        Value::Str(s) => serde_json::Value::String(s.clone()),
        Value::Tuple(t) => serde_json::Value::Array(t.iter().map(value_to_json).collect::<Result<_>>()?),
    })
}

/// A value from the format's JSON encoding.
pub fn value_from_json(j: &serde_json::Value) -> Result<Value> {
    Ok(match j {
        serde_json::Value::Null => Value::None,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if n.is_f64() {
                Value::Float(n.as_f64().unwrap())
            } else {
                return Err(Error::usage(format!("the number {n} does not fit in a 64-bit int")));
            }
        }
        serde_json::Value::String(s) => Value::Str(s.clone()),
        serde_json::Value::Array(a) => Value::Tuple(a.iter().map(value_from_json).collect::<Result<_>>()?),
        serde_json::Value::Object(_) => return Err(Error::usage("objects are not values; use arrays for tuples")),
    })
}

fn table_to_json(t: &Table) -> Result<Vec<Vec<serde_json::Value>>> {
    let mut rows = Vec::new();
    for args in &t.order {
        let mut row: Vec<serde_json::Value> = args.iter().map(value_to_json).collect::<Result<_>>()?;
        row.push(value_to_json(&t.entries[args])?);
        rows.push(row);
    }
    Ok(rows)
}

/// Writes a program as JSON. Functions are tabulated over the value sets given
/// by `settings` (the program's own when None).
pub fn to_json(p: &Program, settings: Option<&Settings>) -> Result<String> {
    let settings = settings.or(p.settings.as_ref()).ok_or_else(|| {
        Error::usage("writing JSON needs vocab and max_seq_len (declare compile(...) in the program or pass --vocab and --max-seq-len)")
    })?;
    let vs = infer(p, &settings.vocab, settings.max_seq_len)?;
    let t = tabulate(p, &vs)?;
    let label = |i: NodeId| t.nodes[i].label.clone();
    let table = |f: &Func| -> Result<Vec<Vec<serde_json::Value>>> {
        match f {
            Func::Table(tb) => table_to_json(tb),
            Func::Closure(_) => Err(Error::internal("function not tabulated")),
        }
    };
    let mut nodes = Vec::new();
    for (id, n) in t.nodes.iter().enumerate() {
        let source = p.nodes[id].op_source();
        let op = match &n.op {
            Op::Tokens => JsonOp::Tokens,
            Op::Indices => JsonOp::Indices,
            Op::Length => JsonOp::Length,
            Op::Full(v) => JsonOp::Full { value: value_to_json(v)? },
            Op::Map { f, input } => JsonOp::Map { input: label(*input), table: table(f)?, source },
            Op::SequenceMap { f, inputs } => {
                JsonOp::SequenceMap { inputs: [label(inputs[0]), label(inputs[1])], table: table(f)?, source }
            }
            Op::LinearSequenceMap { inputs, coeffs } => JsonOp::LinearSequenceMap {
                inputs: [label(inputs[0]), label(inputs[1])],
                coefficients: [value_to_json(&coeffs[0])?, value_to_json(&coeffs[1])?],
            },
            Op::Select { keys, queries, predicate } => JsonOp::Select {
                keys: label(*keys),
                queries: label(*queries),
                predicate: match predicate {
                    Predicate::Cmp(c) => JsonPredicate::Named(c.name().to_string()),
                    Predicate::Custom(f) => JsonPredicate::Table { table: table(f)? },
                },
                source,
            },
            Op::Aggregate { selector, sop, default } => {
                JsonOp::Aggregate { selector: label(*selector), sop: label(*sop), default: value_to_json(default)? }
            }
            Op::SelectorWidth { selector } => JsonOp::SelectorWidth { selector: label(*selector) },
            Op::SelectAnd(a, b) => JsonOp::SelectAnd { inputs: [label(*a), label(*b)] },
            Op::SelectOr(a, b) => JsonOp::SelectOr { inputs: [label(*a), label(*b)] },
            Op::SelectNot(a) => JsonOp::SelectNot { input: label(*a) },
        };
        nodes.push(JsonNode { label: n.label.clone(), encoding: n.encoding, op });
    }
    let doc = Doc {
        format: FORMAT.into(),
        version: VERSION,
        name: p.name.clone(),
        settings: Some(JsonSettings {
            vocab: settings.vocab.iter().map(value_to_json).collect::<Result<_>>()?,
            max_seq_len: settings.max_seq_len,
            causal: settings.causal,
        }),
        output: label(t.output),
        nodes,
    };
    let v = serde_json::to_value(&doc).map_err(|e| Error::internal(e.to_string()))?;
    let mut s = String::new();
    write_compact_pretty(&v, 0, &mut s);
    s.push('\n');
    Ok(s)
}

/// Pretty JSON with objects broken over lines but arrays without objects on
/// one line, so that a table row reads as `[x, y, f(x, y)]`.
pub fn write_compact_pretty(v: &serde_json::Value, indent: usize, out: &mut String) {
    use serde_json::Value as J;
    let has_object = |a: &Vec<J>| {
        a.iter().any(|x| {
            matches!(x, J::Object(_)) || matches!(x, J::Array(b) if b.iter().any(|y| matches!(y, J::Object(_))))
        })
    };
    match v {
        J::Object(m) if !m.is_empty() => {
            out.push_str("{\n");
            for (i, (k, x)) in m.iter().enumerate() {
                out.push_str(&"  ".repeat(indent + 1));
                out.push_str(&J::String(k.clone()).to_string());
                out.push_str(": ");
                write_compact_pretty(x, indent + 1, out);
                out.push_str(if i + 1 < m.len() { ",\n" } else { "\n" });
            }
            out.push_str(&"  ".repeat(indent));
            out.push('}');
        }
        J::Array(a) if has_object(a) || a.iter().filter(|x| matches!(x, J::Array(_))).count() > 1 => {
            out.push_str("[\n");
            for (i, x) in a.iter().enumerate() {
                out.push_str(&"  ".repeat(indent + 1));
                write_compact_pretty(x, indent + 1, out);
                out.push_str(if i + 1 < a.len() { ",\n" } else { "\n" });
            }
            out.push_str(&"  ".repeat(indent));
            out.push(']');
        }
        J::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_compact_pretty(x, indent, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Reads a program from JSON text; `origin` names the file in messages.
pub fn from_json(text: &str, origin: &str) -> Result<Program> {
    let doc: Doc = serde_json::from_str(text)
        .map_err(|e| Error::usage(format!("{origin}:{}:{}: invalid program JSON: {e}", e.line(), e.column())))?;
    let bad = |msg: String| Error::usage(format!("{origin}: {msg}"));
    if doc.format != FORMAT {
        return Err(bad(format!("\"format\" must be \"{FORMAT}\", found \"{}\"", doc.format)));
    }
    if doc.version != VERSION {
        return Err(bad(format!(
            "unsupported format version {} (this tracr-opt reads version {VERSION})",
            doc.version
        )));
    }
    let mut ids: HashMap<String, NodeId> = HashMap::new();
    let mut nodes: Vec<Node> = Vec::new();
    for (i, jn) in doc.nodes.iter().enumerate() {
        let here = format!("node {} ('{}')", i, jn.label);
        let r = |name: &String| -> Result<NodeId> {
            ids.get(name).copied().ok_or_else(|| {
                bad(format!(
                    "{here} reads '{name}', which is not defined before it (nodes must be listed inputs first)"
                ))
            })
        };
        let tab = |rows: &Vec<Vec<serde_json::Value>>, arity: usize, source: &Option<String>| -> Result<Func> {
            let mut t = Table::new(arity);
            t.source = source.clone();
            for row in rows {
                if row.len() != arity + 1 {
                    return Err(bad(format!(
                        "{here}: every table row needs {} entries (arguments then result), found {}",
                        arity + 1,
                        row.len()
                    )));
                }
                let vals: Vec<Value> = row.iter().map(value_from_json).collect::<Result<_>>()?;
                let (args, out) = (&vals[..arity], &vals[arity]);
                // a repeated row must agree: two results for one input is a
                // broken table, not something to settle by order
                if let Some(earlier) = t.entries.get(args) {
                    if earlier != out {
                        let shown: Vec<String> = args.iter().map(Value::repr).collect();
                        return Err(bad(format!(
                            "{here}: the table has two rows for ({}) with different results, {} and {}",
                            shown.join(", "),
                            earlier.repr(),
                            out.repr()
                        )));
                    }
                }
                t.insert(args.to_vec(), out.clone());
            }
            Ok(Func::Table(Arc::new(t)))
        };
        let op = match &jn.op {
            JsonOp::Tokens => Op::Tokens,
            JsonOp::Indices => Op::Indices,
            JsonOp::Length => Op::Length,
            JsonOp::Full { value } => Op::Full(value_from_json(value)?),
            JsonOp::Map { input, table, source } => Op::Map { f: tab(table, 1, source)?, input: r(input)? },
            JsonOp::SequenceMap { inputs, table, source } => {
                Op::SequenceMap { f: tab(table, 2, source)?, inputs: [r(&inputs[0])?, r(&inputs[1])?] }
            }
            JsonOp::LinearSequenceMap { inputs, coefficients } => {
                let c0 = value_from_json(&coefficients[0])?;
                let c1 = value_from_json(&coefficients[1])?;
                if !c0.is_number() || !c1.is_number() {
                    return Err(bad(format!("{here}: coefficients must be numbers")));
                }
                Op::LinearSequenceMap { inputs: [r(&inputs[0])?, r(&inputs[1])?], coeffs: [c0, c1] }
            }
            JsonOp::Select { keys, queries, predicate, source } => Op::Select {
                keys: r(keys)?,
                queries: r(queries)?,
                predicate: match predicate {
                    JsonPredicate::Named(name) => Predicate::Cmp(
                        Comparison::from_name(name)
                            .ok_or_else(|| bad(format!("{here}: unknown predicate \"{name}\" (expected EQ, LT, LEQ, GT, GEQ, NEQ, TRUE, FALSE or a table)")))?,
                    ),
                    JsonPredicate::Table { table } => Predicate::Custom(tab(table, 2, source)?),
                },
            },
            JsonOp::Aggregate { selector, sop, default } => {
                Op::Aggregate { selector: r(selector)?, sop: r(sop)?, default: value_from_json(default)? }
            }
            JsonOp::SelectorWidth { selector } => Op::SelectorWidth { selector: r(selector)? },
            JsonOp::SelectAnd { inputs } => Op::SelectAnd(r(&inputs[0])?, r(&inputs[1])?),
            JsonOp::SelectOr { inputs } => Op::SelectOr(r(&inputs[0])?, r(&inputs[1])?),
            JsonOp::SelectNot { input } => Op::SelectNot(r(input)?),
        };
        // kind checks: selectors where selectors are expected, s-ops elsewhere
        for (pos, inp) in op.inputs().iter().enumerate() {
            let want_selector = match &op {
                Op::Aggregate { .. } | Op::SelectorWidth { .. } => pos == 0,
                Op::SelectAnd(..) | Op::SelectOr(..) | Op::SelectNot(..) => true,
                _ => false,
            };
            if nodes[*inp].op.is_selector() != want_selector {
                return Err(bad(format!(
                    "{here}: input '{}' must be {}",
                    nodes[*inp].label,
                    if want_selector { "a selector" } else { "an s-op" }
                )));
            }
        }
        if ids.insert(jn.label.clone(), i).is_some() {
            return Err(bad(format!("{here}: the label '{}' is used twice", jn.label)));
        }
        nodes.push(Node { label: jn.label.clone(), op, encoding: jn.encoding, span: None });
    }
    let output = *ids.get(&doc.output).ok_or_else(|| bad(format!("the output '{}' is not a node", doc.output)))?;
    if nodes[output].op.is_selector() {
        return Err(bad(format!("the output '{}' must be an s-op, not a selector", doc.output)));
    }
    let settings = match doc.settings {
        None => None,
        Some(s) => {
            let mut vocab: Vec<Value> = s.vocab.iter().map(value_from_json).collect::<Result<_>>()?;
            vocab.sort();
            vocab.dedup();
            if vocab.is_empty() || s.max_seq_len == 0 {
                return Err(bad("settings need a non-empty vocab and max_seq_len >= 1".into()));
            }
            Some(Settings { vocab, max_seq_len: s.max_seq_len, causal: s.causal })
        }
    };
    // keep only what the output reads, as .rasp programs do
    let p = Program { name: doc.name, nodes, output, settings, source: Some(text.into()) };
    Ok(super::prune_unreachable(&p))
}
