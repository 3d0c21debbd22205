//! The element-wise functions of Map, SequenceMap and custom Select predicates:
//! either a closure from program text or a finite lookup table (JSON programs,
//! and every program once value sets are known).

use crate::diagnostic::Span;
use crate::value::{PyError, PyResult, Value};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// A function written in program text, as the RASP core sees it: something
/// it can call on plain values and show in messages. The `.rasp` front end
/// implements it for its lambdas (`lang::Closure`), so the core holds
/// closures without knowing the parser.
pub trait Callable: Send + Sync {
    /// How many arguments the function takes.
    fn arity(&self) -> usize;
    /// Calls the function on plain values.
    fn call(&self, args: &[Value]) -> PyResult<Value>;
    /// The function's text, for messages and tables.
    fn source(&self) -> String;
    /// Where the function was written, for error messages.
    fn span(&self) -> Option<&Span>;
}

/// `outer(inner(x))`, None when `inner` gives None: Tracr's Map-of-Map
/// simplification.
pub struct Composed {
    /// Applied second.
    pub outer: Arc<dyn Callable>,
    /// Applied first.
    pub inner: Arc<dyn Callable>,
    /// Where the outer Map was written.
    pub span: Span,
}

impl Callable for Composed {
    fn arity(&self) -> usize {
        self.inner.arity()
    }

    fn call(&self, args: &[Value]) -> PyResult<Value> {
        let mid = self.inner.call(args)?;
        if matches!(mid, Value::None) {
            return Ok(Value::None);
        }
        self.outer.call(&[mid])
    }

    fn source(&self) -> String {
        format!("({}) after ({})", self.outer.source(), self.inner.source())
    }

    fn span(&self) -> Option<&Span> {
        Some(&self.span)
    }
}

/// The function of a Map, SequenceMap or custom predicate.
#[derive(Clone)]
pub enum Func {
    /// A function from program text.
    Closure(Arc<dyn Callable>),
    /// A finite lookup table.
    Table(Arc<Table>),
}

/// A finite function: argument tuple → result.
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// How many arguments each entry takes.
    pub arity: usize,
    /// Argument tuple → result.
    pub entries: HashMap<Vec<Value>, Value>,
    /// Entry order as written, so that printing a table is deterministic.
    pub order: Vec<Vec<Value>>,
    /// The text of the function it was tabulated from, kept for readers.
    pub source: Option<String>,
}

impl Table {
    /// An empty table of the given arity.
    pub fn new(arity: usize) -> Table {
        Table { arity, entries: HashMap::new(), order: Vec::new(), source: None }
    }

    /// Adds (or replaces) one entry, keeping first-written order.
    pub fn insert(&mut self, args: Vec<Value>, out: Value) {
        if self.entries.insert(args.clone(), out).is_none() {
            self.order.push(args);
        }
    }
}

impl Func {
    /// How many arguments the function takes.
    pub fn arity(&self) -> usize {
        match self {
            Func::Closure(c) => c.arity(),
            Func::Table(t) => t.arity,
        }
    }

    /// Calls the function; a table without the entry raises KeyError.
    pub fn call(&self, args: &[Value]) -> PyResult<Value> {
        match self {
            Func::Closure(c) => c.call(args),
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
