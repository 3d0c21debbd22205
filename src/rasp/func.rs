//! The element-wise functions of Map, SequenceMap and custom Select predicates:
//! either a closure from program text or a finite lookup table (JSON programs,
//! and every program once value sets are known).

use crate::lang::Closure;
use crate::value::{PyError, PyResult, Value};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

#[derive(Clone)]
pub enum Func {
    Closure(Arc<Closure>),
    Table(Arc<Table>),
}

/// A finite function: argument tuple → result.
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub arity: usize,
    pub entries: HashMap<Vec<Value>, Value>,
    /// Entry order as written, so that printing a table is deterministic.
    pub order: Vec<Vec<Value>>,
    /// The text of the function it was tabulated from, kept for readers.
    pub source: Option<String>,
}

impl Table {
    pub fn new(arity: usize) -> Table {
        Table { arity, entries: HashMap::new(), order: Vec::new(), source: None }
    }

    pub fn insert(&mut self, args: Vec<Value>, out: Value) {
        if self.entries.insert(args.clone(), out).is_none() {
            self.order.push(args);
        }
    }
}

impl Func {
    pub fn arity(&self) -> usize {
        match self {
            Func::Closure(c) => c.arity(),
            Func::Table(t) => t.arity,
        }
    }

    pub fn call(&self, args: &[Value]) -> PyResult<Value> {
        match self {
            Func::Closure(c) => c.call_values(args),
            Func::Table(t) => t.entries.get(args).cloned().ok_or_else(|| {
                let shown: Vec<String> = args.iter().map(Value::repr).collect();
                PyError(format!(
                    "KeyError: the lookup table has no entry for ({}); it covers only the value set it was written for",
                    shown.join(", ")
                ))
            }),
        }
    }

    /// Source text of the function, when it has one.
    pub fn source(&self) -> Option<String> {
        match self {
            Func::Closure(c) => Some(c.source()),
            Func::Table(t) => t.source.clone(),
        }
    }
}

impl fmt::Debug for Func {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Func::Closure(c) => write!(f, "Closure({})", c.source()),
            Func::Table(t) => write!(f, "Table({} entries)", t.entries.len()),
        }
    }
}
