//! Runs `.rasp` statements: builds the program DAG from RASP constructors and
//! evaluates lambdas on plain values with Python's semantics.
//!
//! Two levels share one evaluator. At the *program* level, expressions build
//! s-ops and selectors (`Map(f, tokens)`, `tokens == "x"`). At the *value* level,
//! a lambda is called on plain values (to tabulate a Map over its value set, or
//! by the interpreter); there, building s-ops is an error.

use super::ast::*;
use super::printer::print_expr;
use crate::diagnostic::{Error, Result, SourceFile, Span};
use crate::rasp::func::{Callable, Func};
use crate::rasp::program::{Comparison, Encoding, NodeId, Op as NodeOp, Predicate, Settings};
use crate::rasp::Builder;
use crate::value::{self, CmpOp, PyError, PyResult, Value};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Anything a name can stand for while a program runs.
#[derive(Clone, Debug)]
pub enum Meta {
    Value(Value),
    SOp(NodeId),
    Selector(NodeId),
    Closure(Arc<Closure>),
    Builtin(Builtin),
    Predicate(Comparison),
    /// `rasp` or `Comparison`: lets ported Tracr code keep its `rasp.` prefixes.
    Namespace(&'static str),
    /// `sop.named` waiting for its argument.
    Method(Box<Meta>, &'static str),
}

impl Meta {
    fn kind(&self) -> &'static str {
        match self {
            Meta::Value(v) => match v {
                Value::None => "None",
                Value::Bool(_) => "a bool",
                Value::Int(_) => "an int",
                Value::Float(_) => "a float",
                Value::Str(_) => "a string",
                Value::Tuple(_) => "a tuple",
            },
            Meta::SOp(_) => "an s-op",
            Meta::Selector(_) => "a selector",
            Meta::Closure(_) => "a function",
            Meta::Builtin(_) => "a built-in function",
            Meta::Predicate(_) => "a comparison predicate",
            Meta::Namespace(_) => "a namespace",
            Meta::Method(..) => "a method",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    Map,
    SequenceMap,
    LinearSequenceMap,
    Full,
    Select,
    Aggregate,
    SelectorWidth,
    SelectorAnd,
    SelectorOr,
    SelectorNot,
    Numerical,
    Categorical,
    Compile,
    Min,
    Max,
    Abs,
    Round,
    Int,
    Float,
    Str,
    Len,
    Bool,
}

const BUILTINS: &[(&str, Builtin)] = &[
    ("Map", Builtin::Map),
    ("SequenceMap", Builtin::SequenceMap),
    ("LinearSequenceMap", Builtin::LinearSequenceMap),
    ("Full", Builtin::Full),
    ("ConstantSOp", Builtin::Full),
    ("Select", Builtin::Select),
    ("Aggregate", Builtin::Aggregate),
    ("SelectorWidth", Builtin::SelectorWidth),
    ("SelectorAnd", Builtin::SelectorAnd),
    ("SelectorOr", Builtin::SelectorOr),
    ("SelectorNot", Builtin::SelectorNot),
    ("numerical", Builtin::Numerical),
    ("categorical", Builtin::Categorical),
    ("compile", Builtin::Compile),
    ("min", Builtin::Min),
    ("max", Builtin::Max),
    ("abs", Builtin::Abs),
    ("round", Builtin::Round),
    ("int", Builtin::Int),
    ("float", Builtin::Float),
    ("str", Builtin::Str),
    ("len", Builtin::Len),
    ("bool", Builtin::Bool),
];

fn builtin_name(b: Builtin) -> &'static str {
    BUILTINS.iter().find(|(_, x)| *x == b).map(|(n, _)| *n).unwrap_or("?")
}

/// The body of a function value.
#[derive(Debug)]
pub enum Body {
    Lambda(Expr),
    Def(Vec<Stmt>),
}

/// A function value with the names it closes over.
#[derive(Debug)]
pub struct Closure {
    pub name: Option<String>,
    pub params: Vec<String>,
    pub body: Body,
    pub locals: HashMap<String, Meta>,
    pub globals: Arc<Globals>,
    pub span: Span,
}

impl Callable for Closure {
    fn arity(&self) -> usize {
        self.params.len()
    }

    /// The lambda's text, for messages.
    fn source(&self) -> String {
        match &self.body {
            Body::Lambda(e) => format!("lambda {}: {}", self.params.join(", "), print_expr(e)),
            Body::Def(_) => format!("{}({})", self.name.as_deref().unwrap_or("<function>"), self.params.join(", ")),
        }
    }

    /// Calls the function on plain values (value level: no s-ops can be built).
    fn call(&self, args: &[Value]) -> PyResult<Value> {
        let metas: Vec<Meta> = args.iter().cloned().map(Meta::Value).collect();
        let mut ev = Evaluator { builder: None, loader: None, depth: 0 };
        match ev.call_closure(self, metas, &self.span) {
            Ok(Meta::Value(v)) => Ok(v),
            Ok(other) => Err(PyError(format!("TypeError: the function returned {}, not a value", other.kind()))),
            Err(e) => Err(PyError(e.message().to_string())),
        }
    }

    fn span(&self) -> Option<&Span> {
        Some(&self.span)
    }
}

/// Module-level names: late-bound, so a function may call one defined after it.
#[derive(Debug, Default)]
pub struct Globals {
    pub vars: RwLock<HashMap<String, Meta>>,
}

/// Resolves `import` targets to source files.
pub trait Loader {
    fn load(&mut self, target: &ImportTarget, from: &Span) -> Result<Arc<SourceFile>>;
}

/// One local scope (a function call); module scope lives in `Globals`.
struct Scope {
    locals: HashMap<String, Meta>,
    globals: Arc<Globals>,
    /// Settings declared with `compile(...)`, only honoured in the top-level file.
    is_top: bool,
    is_module: bool,
}

enum Flow {
    Normal,
    Return(Meta),
}

pub struct Evaluator<'a> {
    pub builder: Option<&'a mut Builder>,
    pub loader: Option<&'a mut dyn Loader>,
    depth: usize,
}

const MAX_CALL_DEPTH: usize = 150;

/// Result of running a top-level file.
pub struct ModuleResult {
    pub globals: Arc<Globals>,
    pub settings: Option<(Settings, Option<NodeId>, Span)>,
}

impl<'a> Evaluator<'a> {
    pub fn new(builder: &'a mut Builder, loader: &'a mut dyn Loader) -> Evaluator<'a> {
        Evaluator { builder: Some(builder), loader: Some(loader), depth: 0 }
    }

    /// Runs a file's statements in a fresh module scope.
    pub fn run_module(&mut self, stmts: &[Stmt], is_top: bool) -> Result<ModuleResult> {
        let globals = Arc::new(Globals::default());
        let mut scope = Scope { locals: HashMap::new(), globals: globals.clone(), is_top, is_module: true };
        let mut settings = None;
        for s in stmts {
            if let Flow::Return(_) = self.stmt(s, &mut scope, &mut settings)? {
                let Stmt::Return { span, .. } = s else { unreachable!() };
                return Err(Error::at(span, "'return' outside a function"));
            }
        }
        Ok(ModuleResult { globals, settings })
    }

    fn builder(&mut self, span: &Span) -> Result<&mut Builder> {
        self.builder
            .as_deref_mut()
            .ok_or_else(|| Error::at(span, "s-ops and selectors cannot be built inside a lambda evaluated on values"))
    }

    fn stmt(
        &mut self,
        s: &Stmt,
        scope: &mut Scope,
        settings: &mut Option<(Settings, Option<NodeId>, Span)>,
    ) -> Result<Flow> {
        match s {
            Stmt::Assign { target, value } => {
                let v = self.expr(value, scope)?;
                if let (Meta::SOp(id) | Meta::Selector(id), Some(b)) = (&v, self.builder.as_deref_mut()) {
                    b.name_if_unnamed(*id, &target.name);
                }
                self.assign(scope, &target.name, v);
                Ok(Flow::Normal)
            }
            Stmt::Def { name, params, body } => {
                let c = Closure {
                    name: Some(name.name.clone()),
                    params: params.iter().map(|p| p.name.clone()).collect(),
                    body: Body::Def(body.clone()),
                    locals: if scope.is_module { HashMap::new() } else { scope.locals.clone() },
                    globals: scope.globals.clone(),
                    span: name.span.clone(),
                };
                self.assign(scope, &name.name, Meta::Closure(Arc::new(c)));
                Ok(Flow::Normal)
            }
            Stmt::Return { value, .. } => Ok(Flow::Return(self.expr(value, scope)?)),
            Stmt::Import { target, span } => {
                if !scope.is_module {
                    return Err(Error::at(span, "import is only allowed at the top level of a file"));
                }
                let loader = self.loader.take().ok_or_else(|| Error::at(span, "import is not available here"))?;
                let file = loader.load(target, span);
                let file = match file {
                    Ok(f) => f,
                    Err(e) => {
                        self.loader = Some(loader);
                        return Err(e);
                    }
                };
                self.loader = Some(loader);
                let stmts = super::parser::parse(&file)?;
                self.depth += 1;
                if self.depth > 20 {
                    return Err(Error::at(span, "imports nested too deeply (is there an import cycle?)"));
                }
                let result = self.run_module(&stmts, false);
                self.depth -= 1;
                let module = result?;
                let vars = module.globals.vars.read().unwrap().clone();
                let mut names: Vec<_> = vars.into_iter().collect();
                names.sort_by(|a, b| a.0.cmp(&b.0));
                for (k, v) in names {
                    self.assign(scope, &k, v);
                }
                Ok(Flow::Normal)
            }
            Stmt::Expr(e) => {
                if let ExprKind::Call { func, args, kwargs } = &e.kind {
                    if matches!(self.expr(func, scope)?, Meta::Builtin(Builtin::Compile)) {
                        let decl = self.compile_decl(args, kwargs, scope, &e.span)?;
                        if scope.is_top {
                            if let Some((_, _, prev)) = settings {
                                return Err(Error::at_with_note(
                                    &e.span,
                                    "compile settings declared twice",
                                    format!("first declared at {}", prev.location()),
                                ));
                            }
                            *settings = Some((decl.0, decl.1, e.span.clone()));
                        }
                        return Ok(Flow::Normal);
                    }
                }
                self.expr(e, scope)?;
                Ok(Flow::Normal)
            }
        }
    }

    fn assign(&self, scope: &mut Scope, name: &str, v: Meta) {
        if scope.is_module {
            scope.globals.vars.write().unwrap().insert(name.to_string(), v);
        } else {
            scope.locals.insert(name.to_string(), v);
        }
    }

    /// `compile(output, vocab=..., max_seq_len=..., causal=...)`.
    fn compile_decl(
        &mut self,
        args: &[Expr],
        kwargs: &[(Ident, Expr)],
        scope: &mut Scope,
        span: &Span,
    ) -> Result<(Settings, Option<NodeId>)> {
        let mut output = None;
        if args.len() > 1 {
            return Err(Error::at(&args[1].span, "compile(...) takes the output s-op as its only positional argument"));
        }
        if let Some(a) = args.first() {
            output = Some(self.expect_sop(a, scope, "compile's output")?);
        }
        let mut vocab = None;
        let mut max_seq_len = None;
        let mut causal = false;
        for (k, e) in kwargs {
            match k.name.as_str() {
                "vocab" => {
                    let v = self.expr_value(e, scope)?;
                    let Value::Tuple(items) = v else {
                        return Err(Error::at(&e.span, format!("vocab must be a set of values, found {}", v.repr())));
                    };
                    if items.is_empty() {
                        return Err(Error::at(&e.span, "vocab must not be empty"));
                    }
                    if let Some(bad) = items.iter().find(|v| matches!(v, Value::None | Value::Tuple(_))) {
                        return Err(Error::at(
                            &e.span,
                            format!("vocab values must be numbers, strings or bools, found {}", bad.repr()),
                        ));
                    }
                    let mut items = items;
                    items.sort();
                    items.dedup();
                    vocab = Some(items);
                }
                "max_seq_len" => {
                    let v = self.expr_value(e, scope)?;
                    match v {
                        Value::Int(n) if n >= 1 => max_seq_len = Some(n as usize),
                        other => {
                            return Err(Error::at(
                                &e.span,
                                format!("max_seq_len must be a positive int, found {}", other.repr()),
                            ))
                        }
                    }
                }
                "causal" => match self.expr_value(e, scope)? {
                    Value::Bool(b) => causal = b,
                    other => {
                        return Err(Error::at(&e.span, format!("causal must be True or False, found {}", other.repr())))
                    }
                },
                "compiler_bos" | "compiler_pad" | "mlp_exactness" => {} // accepted for Tracr compatibility
                other => {
                    return Err(Error::at(
                        &k.span,
                        format!("unknown compile setting '{other}' (expected vocab, max_seq_len, causal)"),
                    ))
                }
            }
        }
        let vocab = vocab.ok_or_else(|| Error::at(span, "compile(...) needs vocab={...}"))?;
        let max_seq_len = max_seq_len.ok_or_else(|| Error::at(span, "compile(...) needs max_seq_len=N"))?;
        Ok((Settings { vocab, max_seq_len, causal }, output))
    }

    fn lookup(&self, name: &str, scope: &Scope) -> Option<Meta> {
        if let Some(v) = scope.locals.get(name) {
            return Some(v.clone());
        }
        if let Some(v) = scope.globals.vars.read().unwrap().get(name) {
            return Some(v.clone());
        }
        predefined(name)
    }

    fn expr_value(&mut self, e: &Expr, scope: &mut Scope) -> Result<Value> {
        match self.expr(e, scope)? {
            Meta::Value(v) => Ok(v),
            other => Err(Error::at(&e.span, format!("expected a plain value, found {}", other.kind()))),
        }
    }

    fn expect_sop(&mut self, e: &Expr, scope: &mut Scope, what: &str) -> Result<NodeId> {
        match self.expr(e, scope)? {
            Meta::SOp(id) => Ok(id),
            other => Err(Error::at(&e.span, format!("{what} must be an s-op, found {}", other.kind()))),
        }
    }

    fn expect_selector(&mut self, e: &Expr, scope: &mut Scope, what: &str) -> Result<NodeId> {
        match self.expr(e, scope)? {
            Meta::Selector(id) => Ok(id),
            other => Err(Error::at(&e.span, format!("{what} must be a selector, found {}", other.kind()))),
        }
    }

    fn expr(&mut self, e: &Expr, scope: &mut Scope) -> Result<Meta> {
        match &e.kind {
            ExprKind::Name(n) => {
                let v = self.lookup(n, scope).ok_or_else(|| Error::at(&e.span, format!("unknown name '{n}'")))?;
                match v {
                    Meta::Namespace(ns) if matches!(n.as_str(), "tokens" | "indices" | "length") => {
                        let b = self.builder(&e.span)?;
                        Ok(Meta::SOp(b.primitive(ns)))
                    }
                    other => Ok(other),
                }
            }
            ExprKind::Const(v) => Ok(Meta::Value(v.clone())),
            ExprKind::Tuple(items) | ExprKind::List(items) => {
                let mut out = Vec::new();
                for it in items {
                    out.push(self.expr_value(it, scope)?);
                }
                Ok(Meta::Value(Value::Tuple(out)))
            }
            ExprKind::Set(items) => {
                let mut out = Vec::new();
                for it in items {
                    let v = self.expr_value(it, scope)?;
                    if !out.contains(&v) {
                        out.push(v);
                    }
                }
                out.sort();
                Ok(Meta::Value(Value::Tuple(out)))
            }
            ExprKind::Unary(op, x) => {
                let v = self.expr(x, scope)?;
                self.unary(*op, v, e)
            }
            ExprKind::Binary(op, l, r) => {
                let a = self.expr(l, scope)?;
                let b = self.expr(r, scope)?;
                self.binary(*op, a, b, e)
            }
            ExprKind::Compare(first, rest) => {
                let mut left = self.expr(first, scope)?;
                if rest.len() == 1 {
                    let right = self.expr(&rest[0].1, scope)?;
                    return self.compare(rest[0].0, left, right, e);
                }
                // chained: a < b < c == (a < b) and (b < c), values only
                for (op, x) in rest {
                    let right = self.expr(x, scope)?;
                    let r = self.compare(*op, left, right.clone(), e)?;
                    match r {
                        Meta::Value(v) if !v.truthy() => return Ok(Meta::Value(v)),
                        Meta::Value(_) => {}
                        _ => return Err(Error::at(&e.span, "chained comparisons are not supported on s-ops")),
                    }
                    left = right;
                }
                Ok(Meta::Value(Value::Bool(true)))
            }
            ExprKind::Bool(op, l, r) => {
                let a = self.expr(l, scope)?;
                let Meta::Value(av) = a else {
                    let sym = if *op == BoolOp::And { "and' (use '&'" } else { "or' (use '|'" };
                    return Err(Error::at(&e.span, format!("'{sym} to combine s-ops or selectors)")));
                };
                let short = match op {
                    BoolOp::And => !av.truthy(),
                    BoolOp::Or => av.truthy(),
                };
                if short {
                    return Ok(Meta::Value(av));
                }
                let b = self.expr(r, scope)?;
                if !matches!(b, Meta::Value(_)) {
                    return Err(Error::at(
                        &e.span,
                        "'and'/'or' work on plain values; use '&'/'|' on s-ops and selectors",
                    ));
                }
                Ok(b)
            }
            ExprKind::IfElse { body, cond, orelse } => {
                let c = self.expr(cond, scope)?;
                let Meta::Value(c) = c else {
                    return Err(Error::at(
                        &cond.span,
                        "the condition of 'x if c else y' must be a plain value; use Map on s-ops",
                    ));
                };
                if c.truthy() {
                    self.expr(body, scope)
                } else {
                    self.expr(orelse, scope)
                }
            }
            ExprKind::Lambda { params, body } => Ok(Meta::Closure(Arc::new(Closure {
                name: None,
                params: params.iter().map(|p| p.name.clone()).collect(),
                body: Body::Lambda((**body).clone()),
                locals: scope.locals.clone(),
                globals: scope.globals.clone(),
                span: e.span.clone(),
            }))),
            ExprKind::Attr(obj, name) => {
                let o = self.expr(obj, scope)?;
                match (&o, name.name.as_str()) {
                    (Meta::Namespace("rasp"), n) => match predefined(n) {
                        Some(Meta::Namespace(ns)) if matches!(n, "tokens" | "indices" | "length") => {
                            let b = self.builder(&e.span)?;
                            Ok(Meta::SOp(b.primitive(ns)))
                        }
                        Some(m) => Ok(m),
                        None => Err(Error::at(&name.span, format!("'rasp' has no member '{n}'"))),
                    },
                    (Meta::Namespace("Comparison"), n) => {
                        Comparison::from_name(n).map(Meta::Predicate).ok_or_else(|| {
                            Error::at(
                                &name.span,
                                format!("unknown comparison '{n}' (expected EQ, LT, LEQ, GT, GEQ, NEQ, TRUE or FALSE)"),
                            )
                        })
                    }
                    (Meta::SOp(_) | Meta::Selector(_), "named") => Ok(Meta::Method(Box::new(o.clone()), "named")),
                    (Meta::SOp(_), "label" | "name") => {
                        let Meta::SOp(id) = o else { unreachable!() };
                        let b = self.builder(&e.span)?;
                        Ok(Meta::Value(Value::Str(b.name_of(id))))
                    }
                    _ => Err(Error::at(&name.span, format!("{} has no attribute '{}'", o.kind(), name.name))),
                }
            }
            ExprKind::Index(obj, idx) => {
                let o = self.expr(obj, scope)?;
                let i = self.expr(idx, scope)?;
                match (o, i) {
                    (Meta::Value(a), Meta::Value(b)) => {
                        value::index(&a, &b).map(Meta::Value).map_err(|err| Error::at(&e.span, err.0))
                    }
                    (o, _) => Err(Error::at(&e.span, format!("{} cannot be indexed; use Map on s-ops", o.kind()))),
                }
            }
            ExprKind::Call { func, args, kwargs } => {
                let f = self.expr(func, scope)?;
                self.call(f, args, kwargs, scope, e)
            }
        }
    }

    fn call(&mut self, f: Meta, args: &[Expr], kwargs: &[(Ident, Expr)], scope: &mut Scope, e: &Expr) -> Result<Meta> {
        match f {
            Meta::Closure(c) => {
                if let Some((k, _)) = kwargs.first() {
                    return Err(Error::at(&k.span, "keyword arguments are only supported for built-in constructors"));
                }
                let mut vals = Vec::new();
                for a in args {
                    vals.push(self.expr(a, scope)?);
                }
                self.call_closure(&c, vals, &e.span)
            }
            Meta::Builtin(b) => self.call_builtin(b, args, kwargs, scope, e),
            Meta::Method(obj, "named") => {
                if args.len() != 1 || !kwargs.is_empty() {
                    return Err(Error::at(&e.span, "named(...) takes one string"));
                }
                let name = match self.expr_value(&args[0], scope)? {
                    Value::Str(s) if !s.is_empty() => s,
                    other => {
                        return Err(Error::at(
                            &args[0].span,
                            format!("a label must be a non-empty string, found {}", other.repr()),
                        ))
                    }
                };
                let (Meta::SOp(id) | Meta::Selector(id)) = *obj else { unreachable!() };
                self.builder(&e.span)?.set_name(id, &name);
                Ok(*obj)
            }
            other => Err(Error::at(&e.span, format!("{} is not callable", other.kind()))),
        }
    }

    fn call_closure(&mut self, c: &Closure, args: Vec<Meta>, call_span: &Span) -> Result<Meta> {
        if args.len() != c.params.len() {
            return Err(Error::at_with_note(
                call_span,
                format!(
                    "{} takes {} argument{} but {} were given",
                    c.name.as_deref().map_or("this lambda".to_string(), |n| format!("'{n}'")),
                    c.params.len(),
                    if c.params.len() == 1 { "" } else { "s" },
                    args.len()
                ),
                format!("defined at {}", c.span.location()),
            ));
        }
        self.depth += 1;
        if self.depth > MAX_CALL_DEPTH {
            self.depth -= 1;
            return Err(Error::at(call_span, "function calls nested too deeply (unbounded recursion?)"));
        }
        let mut locals = c.locals.clone();
        for (p, a) in c.params.iter().zip(args) {
            locals.insert(p.clone(), a);
        }
        let mut scope = Scope { locals, globals: c.globals.clone(), is_top: false, is_module: false };
        let r = match &c.body {
            Body::Lambda(body) => self.expr(body, &mut scope),
            Body::Def(stmts) => {
                let mut result = Err(Error::at(
                    &c.span,
                    format!("function '{}' ended without 'return'", c.name.as_deref().unwrap_or("?")),
                ));
                let mut unused = None;
                for s in stmts {
                    match self.stmt(s, &mut scope, &mut unused) {
                        Ok(Flow::Normal) => {}
                        Ok(Flow::Return(v)) => {
                            result = Ok(v);
                            break;
                        }
                        Err(err) => {
                            result = Err(err);
                            break;
                        }
                    }
                }
                result
            }
        };
        self.depth -= 1;
        r
    }

    fn call_builtin(
        &mut self,
        b: Builtin,
        args: &[Expr],
        kwargs: &[(Ident, Expr)],
        scope: &mut Scope,
        e: &Expr,
    ) -> Result<Meta> {
        let span = &e.span;
        let sig = signature(b);
        let bound = bind_args(b, sig, args, kwargs, span)?;
        let arg = |i: usize| bound[i];
        match b {
            Builtin::Map => {
                let f = self.expect_function(arg(0).unwrap(), scope, 1, "Map")?;
                let x = self.expect_sop(arg(1).unwrap(), scope, "Map's second argument")?;
                let simplify = match arg(2) {
                    Some(ex) => self.expr_value(ex, scope)?.truthy(),
                    None => true,
                };
                let bld = self.builder(span)?;
                Ok(Meta::SOp(bld.map(f, x, simplify, span)))
            }
            Builtin::SequenceMap => {
                let f = self.expect_function(arg(0).unwrap(), scope, 2, "SequenceMap")?;
                let x = self.expect_sop(arg(1).unwrap(), scope, "SequenceMap's second argument")?;
                let y = self.expect_sop(arg(2).unwrap(), scope, "SequenceMap's third argument")?;
                let bld = self.builder(span)?;
                Ok(Meta::SOp(bld.add(
                    NodeOp::SequenceMap { f: Func::Closure(f), inputs: [x, y] },
                    Encoding::Categorical,
                    span,
                )))
            }
            Builtin::LinearSequenceMap => {
                let x = self.expect_sop(arg(0).unwrap(), scope, "LinearSequenceMap's first argument")?;
                let y = self.expect_sop(arg(1).unwrap(), scope, "LinearSequenceMap's second argument")?;
                let mut coeffs = Vec::new();
                for i in [2, 3] {
                    let ex = arg(i).unwrap();
                    let v = self.expr_value(ex, scope)?;
                    if !v.is_number() {
                        return Err(Error::at(
                            &ex.span,
                            format!("a LinearSequenceMap coefficient must be a number, found {}", v.repr()),
                        ));
                    }
                    coeffs.push(v);
                }
                let bld = self.builder(span)?;
                let coeffs = [coeffs[0].clone(), coeffs[1].clone()];
                Ok(Meta::SOp(bld.add(NodeOp::LinearSequenceMap { inputs: [x, y], coeffs }, Encoding::Numerical, span)))
            }
            Builtin::Full => {
                let v = self.expr_value(arg(0).unwrap(), scope)?;
                let bld = self.builder(span)?;
                Ok(Meta::SOp(bld.add(NodeOp::Full(v), Encoding::Categorical, span)))
            }
            Builtin::Select => {
                let keys = self.expect_sop(arg(0).unwrap(), scope, "Select's keys")?;
                let queries = self.expect_sop(arg(1).unwrap(), scope, "Select's queries")?;
                let pe = arg(2).unwrap();
                let predicate = match self.expr(pe, scope)? {
                    Meta::Predicate(c) => Predicate::Cmp(c),
                    Meta::Closure(c) => {
                        if c.arity() != 2 {
                            return Err(Error::at(
                                &pe.span,
                                format!(
                                    "a Select predicate takes 2 arguments (key, query); this one takes {}",
                                    c.arity()
                                ),
                            ));
                        }
                        Predicate::Custom(Func::Closure(c))
                    }
                    other => {
                        return Err(Error::at(
                            &pe.span,
                            format!(
                                "Select's predicate must be a comparison (EQ, LT, ...) or a lambda k, q: ..., found {}",
                                other.kind()
                            ),
                        ))
                    }
                };
                let bld = self.builder(span)?;
                Ok(Meta::Selector(bld.add(NodeOp::Select { keys, queries, predicate }, Encoding::Categorical, span)))
            }
            Builtin::Aggregate => {
                let sel = self.expect_selector(arg(0).unwrap(), scope, "Aggregate's first argument")?;
                let sop = self.expect_sop(arg(1).unwrap(), scope, "Aggregate's second argument")?;
                let default = match arg(2) {
                    Some(ex) => self.expr_value(ex, scope)?,
                    None => Value::None,
                };
                let bld = self.builder(span)?;
                // Categorical unless wrapped in numerical(...), as in Tracr.
                Ok(Meta::SOp(bld.add(NodeOp::Aggregate { selector: sel, sop, default }, Encoding::Categorical, span)))
            }
            Builtin::SelectorWidth => {
                let sel = self.expect_selector(arg(0).unwrap(), scope, "SelectorWidth's argument")?;
                let bld = self.builder(span)?;
                Ok(Meta::SOp(bld.add(NodeOp::SelectorWidth { selector: sel }, Encoding::Categorical, span)))
            }
            Builtin::SelectorAnd | Builtin::SelectorOr => {
                let a = self.expect_selector(arg(0).unwrap(), scope, "the first argument")?;
                let c = self.expect_selector(arg(1).unwrap(), scope, "the second argument")?;
                let op = if b == Builtin::SelectorAnd { NodeOp::SelectAnd(a, c) } else { NodeOp::SelectOr(a, c) };
                let bld = self.builder(span)?;
                Ok(Meta::Selector(bld.add(op, Encoding::Categorical, span)))
            }
            Builtin::SelectorNot => {
                let a = self.expect_selector(arg(0).unwrap(), scope, "SelectorNot's argument")?;
                let bld = self.builder(span)?;
                Ok(Meta::Selector(bld.add(NodeOp::SelectNot(a), Encoding::Categorical, span)))
            }
            Builtin::Numerical | Builtin::Categorical => {
                let x = self.expect_sop(arg(0).unwrap(), scope, &format!("{}'s argument", builtin_name(b)))?;
                let enc = if b == Builtin::Numerical { Encoding::Numerical } else { Encoding::Categorical };
                let bld = self.builder(span)?;
                Ok(Meta::SOp(bld.with_encoding(x, enc)))
            }
            Builtin::Compile => {
                Err(Error::at(span, "compile(...) declares settings and must stand on its own line at the top level"))
            }
            _ => {
                let mut vals = Vec::new();
                for a in args {
                    match self.expr(a, scope)? {
                        Meta::Value(v) => vals.push(v),
                        other => {
                            return Err(Error::at(
                                &a.span,
                                format!(
                                    "{}() takes plain values, found {}; use Map on s-ops",
                                    builtin_name(b),
                                    other.kind()
                                ),
                            ))
                        }
                    }
                }
                value_builtin(b, &vals).map(Meta::Value).map_err(|err| Error::at(span, err.0))
            }
        }
    }

    fn expect_function(&mut self, e: &Expr, scope: &mut Scope, arity: usize, who: &str) -> Result<Arc<Closure>> {
        match self.expr(e, scope)? {
            Meta::Closure(c) => {
                if c.arity() != arity {
                    return Err(Error::at(
                        &e.span,
                        format!(
                            "{who} needs a function of {arity} argument{}, this one takes {}",
                            if arity == 1 { "" } else { "s" },
                            c.arity()
                        ),
                    ));
                }
                Ok(c)
            }
            Meta::Builtin(b) if arity == 1 && is_value_builtin(b) => {
                // `Map(abs, x)`: wrap the built-in in `lambda x: abs(x)`
                let span = e.span.clone();
                let body = Expr::new(
                    ExprKind::Call {
                        func: Box::new(Expr::new(ExprKind::Name(builtin_name(b).into()), span.clone())),
                        args: vec![Expr::new(ExprKind::Name("x".into()), span.clone())],
                        kwargs: vec![],
                    },
                    span.clone(),
                );
                Ok(Arc::new(Closure {
                    name: None,
                    params: vec!["x".into()],
                    body: Body::Lambda(body),
                    locals: HashMap::new(),
                    globals: Arc::new(Globals::default()),
                    span,
                }))
            }
            other => Err(Error::at(
                &e.span,
                format!("{who}'s first argument must be a function (lambda), found {}", other.kind()),
            )),
        }
    }

    fn unary(&mut self, op: UnaryOp, v: Meta, e: &Expr) -> Result<Meta> {
        match (op, v) {
            (_, Meta::Value(x)) => {
                let r = match op {
                    UnaryOp::Neg => value::negate(&x),
                    UnaryOp::Pos => {
                        if x.is_number() {
                            Ok(x)
                        } else {
                            Err(PyError(format!("TypeError: bad operand type for unary +: '{}'", x.type_name())))
                        }
                    }
                    UnaryOp::Not => Ok(Value::Bool(!x.truthy())),
                    UnaryOp::Invert => value::invert(&x),
                };
                r.map(Meta::Value).map_err(|err| Error::at(&e.span, err.0))
            }
            (UnaryOp::Invert, Meta::Selector(s)) => {
                let b = self.builder(&e.span)?;
                Ok(Meta::Selector(b.add(NodeOp::SelectNot(s), Encoding::Categorical, &e.span)))
            }
            (UnaryOp::Invert | UnaryOp::Neg | UnaryOp::Pos, Meta::SOp(x)) => {
                // Tracr: ~sop is `not x`, -sop is `-x`
                let body = match op {
                    UnaryOp::Invert => ExprKind::Unary(UnaryOp::Not, Box::new(var("x", &e.span))),
                    UnaryOp::Neg => ExprKind::Unary(UnaryOp::Neg, Box::new(var("x", &e.span))),
                    _ => ExprKind::Unary(UnaryOp::Pos, Box::new(var("x", &e.span))),
                };
                let f = sugar_closure(&["x"], Expr::new(body, e.span.clone()), &e.span);
                let b = self.builder(&e.span)?;
                Ok(Meta::SOp(b.map(f, x, true, &e.span)))
            }
            (UnaryOp::Not, Meta::SOp(_) | Meta::Selector(_)) => {
                Err(Error::at(&e.span, "'not' works on plain values; use '~' on s-ops and selectors"))
            }
            (_, other) => Err(Error::at(&e.span, format!("bad operand for unary operator: {}", other.kind()))),
        }
    }

    fn binary(&mut self, op: Op, a: Meta, b: Meta, e: &Expr) -> Result<Meta> {
        let span = &e.span;
        match (&a, &b) {
            (Meta::Value(x), Meta::Value(y)) => {
                let r = match op {
                    Op::Arith(bo) => value::binop(bo, x, y),
                    Op::BitAnd | Op::BitOr => bit_op(op, x, y),
                };
                r.map(Meta::Value).map_err(|err| Error::at(span, err.0))
            }
            (Meta::Selector(s), Meta::Selector(t)) => {
                let node = match op {
                    Op::BitAnd => Op_::And(*s, *t),
                    Op::BitOr => Op_::Or(*s, *t),
                    _ => {
                        return Err(Error::at(
                            span,
                            format!("'{}' is not defined on selectors (use &, | or ~)", op.symbol()),
                        ))
                    }
                };
                let bld = self.builder(span)?;
                let id = match node {
                    Op_::And(x, y) => bld.add(NodeOp::SelectAnd(x, y), Encoding::Categorical, span),
                    Op_::Or(x, y) => bld.add(NodeOp::SelectOr(x, y), Encoding::Categorical, span),
                };
                Ok(Meta::Selector(id))
            }
            (Meta::SOp(x), Meta::SOp(y)) => {
                // Tracr: sop OP sop is SequenceMap(lambda x, y: x OP y); & and | are `and`/`or`
                let body = op_body(op, var("x", span), var("y", span), span);
                let f = sugar_closure(&["x", "y"], body, span);
                let bld = self.builder(span)?;
                Ok(Meta::SOp(bld.add(
                    NodeOp::SequenceMap { f: Func::Closure(f), inputs: [*x, *y] },
                    Encoding::Categorical,
                    span,
                )))
            }
            (Meta::SOp(x), Meta::Value(c)) => {
                let body = op_body(op, var("x", span), konst(c, span), span);
                let f = sugar_closure(&["x"], body, span);
                let bld = self.builder(span)?;
                Ok(Meta::SOp(bld.map(f, *x, true, span)))
            }
            (Meta::Value(c), Meta::SOp(x)) => {
                let body = op_body(op, konst(c, span), var("x", span), span);
                let f = sugar_closure(&["x"], body, span);
                let bld = self.builder(span)?;
                Ok(Meta::SOp(bld.map(f, *x, true, span)))
            }
            _ => Err(Error::at(
                span,
                format!("unsupported operand kinds for '{}': {} and {}", op.symbol(), a.kind(), b.kind()),
            )),
        }
    }

    fn compare(&mut self, op: CmpOp, a: Meta, b: Meta, e: &Expr) -> Result<Meta> {
        let span = &e.span;
        let cmp_body = |l: Expr, r: Expr| ExprKind::Compare(Box::new(l), vec![(op, r)]);
        match (&a, &b) {
            (Meta::Value(x), Meta::Value(y)) => {
                value::compare(op, x, y).map(|r| Meta::Value(Value::Bool(r))).map_err(|err| Error::at(span, err.0))
            }
            (Meta::SOp(x), Meta::Value(c)) => {
                let f = sugar_closure(&["x"], Expr::new(cmp_body(var("x", span), konst(c, span)), span.clone()), span);
                let bld = self.builder(span)?;
                Ok(Meta::SOp(bld.map(f, *x, true, span)))
            }
            (Meta::Value(c), Meta::SOp(x)) => {
                let f = sugar_closure(&["x"], Expr::new(cmp_body(konst(c, span), var("x", span)), span.clone()), span);
                let bld = self.builder(span)?;
                Ok(Meta::SOp(bld.map(f, *x, true, span)))
            }
            (Meta::SOp(x), Meta::SOp(y)) => {
                let f =
                    sugar_closure(&["x", "y"], Expr::new(cmp_body(var("x", span), var("y", span)), span.clone()), span);
                let bld = self.builder(span)?;
                Ok(Meta::SOp(bld.add(
                    NodeOp::SequenceMap { f: Func::Closure(f), inputs: [*x, *y] },
                    Encoding::Categorical,
                    span,
                )))
            }
            _ => Err(Error::at(span, format!("cannot compare {} with {}", a.kind(), b.kind()))),
        }
    }
}

enum Op_ {
    And(NodeId, NodeId),
    Or(NodeId, NodeId),
}

fn var(name: &str, span: &Span) -> Expr {
    Expr::new(ExprKind::Name(name.into()), span.clone())
}

fn konst(v: &Value, span: &Span) -> Expr {
    Expr::new(ExprKind::Const(v.clone()), span.clone())
}

fn op_body(op: Op, l: Expr, r: Expr, span: &Span) -> Expr {
    let kind = match op {
        Op::Arith(_) => ExprKind::Binary(op, Box::new(l), Box::new(r)),
        Op::BitAnd => ExprKind::Bool(BoolOp::And, Box::new(l), Box::new(r)),
        Op::BitOr => ExprKind::Bool(BoolOp::Or, Box::new(l), Box::new(r)),
    };
    Expr::new(kind, span.clone())
}

/// A lambda that operator sugar writes on the user's behalf, placed at the operator.
fn sugar_closure(params: &[&str], body: Expr, span: &Span) -> Arc<Closure> {
    Arc::new(Closure {
        name: None,
        params: params.iter().map(|p| p.to_string()).collect(),
        body: Body::Lambda(body),
        locals: HashMap::new(),
        globals: Arc::new(Globals::default()),
        span: span.clone(),
    })
}

fn bit_op(op: Op, x: &Value, y: &Value) -> PyResult<Value> {
    match (x, y) {
        (Value::Bool(a), Value::Bool(b)) => Ok(Value::Bool(if op == Op::BitAnd { *a & *b } else { *a | *b })),
        (Value::Int(_) | Value::Bool(_), Value::Int(_) | Value::Bool(_)) => {
            let (a, b) = (x.as_f64().unwrap() as i64, y.as_f64().unwrap() as i64);
            Ok(Value::Int(if op == Op::BitAnd { a & b } else { a | b }))
        }
        _ => Err(PyError(format!(
            "TypeError: unsupported operand type(s) for {}: '{}' and '{}'",
            op.symbol(),
            x.type_name(),
            y.type_name()
        ))),
    }
}

fn is_value_builtin(b: Builtin) -> bool {
    matches!(
        b,
        Builtin::Min
            | Builtin::Max
            | Builtin::Abs
            | Builtin::Round
            | Builtin::Int
            | Builtin::Float
            | Builtin::Str
            | Builtin::Len
            | Builtin::Bool
    )
}

/// Names every program sees.
fn predefined(name: &str) -> Option<Meta> {
    if let Some(c) = Comparison::from_name(name) {
        return Some(Meta::Predicate(c));
    }
    match name {
        "tokens" => return Some(Meta::Namespace("tokens")),
        "indices" => return Some(Meta::Namespace("indices")),
        "length" => return Some(Meta::Namespace("length")),
        "rasp" => return Some(Meta::Namespace("rasp")),
        "Comparison" => return Some(Meta::Namespace("Comparison")),
        _ => {}
    }
    BUILTINS.iter().find(|(n, _)| *n == name).map(|(_, b)| Meta::Builtin(*b))
}

/// Parameter names of each constructor, with how many are required.
fn signature(b: Builtin) -> (&'static [&'static str], usize) {
    match b {
        Builtin::Map => (&["f", "inner", "simplify"], 2),
        Builtin::SequenceMap => (&["f", "fst", "snd"], 3),
        Builtin::LinearSequenceMap => (&["fst", "snd", "fst_fac", "snd_fac"], 4),
        Builtin::Full => (&["fill"], 1),
        Builtin::Select => (&["keys", "queries", "predicate"], 3),
        Builtin::Aggregate => (&["selector", "sop", "default"], 2),
        Builtin::SelectorWidth => (&["selector"], 1),
        Builtin::SelectorAnd | Builtin::SelectorOr => (&["fst", "snd"], 2),
        Builtin::SelectorNot => (&["inner"], 1),
        Builtin::Numerical | Builtin::Categorical => (&["sop"], 1),
        _ => (&[], 0),
    }
}

/// Matches positional and keyword arguments to a constructor's parameters.
fn bind_args<'e>(
    b: Builtin,
    (names, required): (&'static [&'static str], usize),
    args: &'e [Expr],
    kwargs: &'e [(Ident, Expr)],
    span: &Span,
) -> Result<Vec<Option<&'e Expr>>> {
    if names.is_empty() {
        if let Some((k, _)) = kwargs.first() {
            return Err(Error::at(&k.span, format!("{}() takes no keyword arguments", builtin_name(b))));
        }
        return Ok(vec![]);
    }
    if args.len() > names.len() {
        return Err(Error::at(
            &args[names.len()].span,
            format!(
                "{} takes at most {} arguments ({}), {} given",
                builtin_name(b),
                names.len(),
                names.join(", "),
                args.len()
            ),
        ));
    }
    let mut out: Vec<Option<&Expr>> = vec![None; names.len()];
    for (i, a) in args.iter().enumerate() {
        out[i] = Some(a);
    }
    for (k, v) in kwargs {
        let Some(i) = names.iter().position(|n| *n == k.name) else {
            return Err(Error::at(
                &k.span,
                format!("{} has no parameter '{}' (parameters: {})", builtin_name(b), k.name, names.join(", ")),
            ));
        };
        if out[i].is_some() {
            return Err(Error::at(&k.span, format!("{} got two values for '{}'", builtin_name(b), k.name)));
        }
        out[i] = Some(v);
    }
    if let Some(i) = (0..required).find(|i| out[*i].is_none()) {
        return Err(Error::at(
            span,
            format!("{} is missing its argument '{}' (parameters: {})", builtin_name(b), names[i], names.join(", ")),
        ));
    }
    Ok(out)
}

fn value_builtin(b: Builtin, vals: &[Value]) -> PyResult<Value> {
    let one = |name: &str| -> PyResult<&Value> {
        if vals.len() == 1 {
            Ok(&vals[0])
        } else {
            Err(PyError(format!("TypeError: {name}() takes exactly one argument ({} given)", vals.len())))
        }
    };
    match b {
        Builtin::Min | Builtin::Max => {
            if vals.is_empty() {
                return Err(PyError("TypeError: min/max expected at least 1 argument".into()));
            }
            value::min_max(vals, b == Builtin::Max)
        }
        Builtin::Abs => value::abs(one("abs")?),
        Builtin::Round => match vals {
            [x] => value::round(x, None),
            [x, n] => value::round(x, Some(n)),
            _ => Err(PyError("TypeError: round() takes 1 or 2 arguments".into())),
        },
        Builtin::Int => value::to_int(one("int")?),
        Builtin::Float => value::to_float(one("float")?),
        Builtin::Str => Ok(Value::Str(one("str")?.display())),
        Builtin::Len => value::len(one("len")?),
        Builtin::Bool => Ok(Value::Bool(one("bool")?.truthy())),
        _ => unreachable!("not a value built-in"),
    }
}
