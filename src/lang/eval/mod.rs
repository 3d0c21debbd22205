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
use std::sync::{Arc, RwLock, Weak};

mod builtins;
use builtins::predefined;
mod expr;

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
///
/// It holds its module weakly: the module's names hold the function, so a
/// strong pointer back would be a cycle, and every program with a `def`
/// would never be freed (found by the fuzzing campaign: 1.4 KB a parse).
/// Whatever outlives the module's evaluation holds the module strongly: a
/// program node through [`Closure::callable`], an importing module through
/// `Globals::imports`.
#[derive(Debug)]
pub struct Closure {
    pub name: Option<String>,
    pub params: Vec<String>,
    pub body: Body,
    pub locals: HashMap<String, Meta>,
    /// None for the closures the evaluator writes itself (operator sugar),
    /// which look up no module name.
    pub globals: Option<Weak<Globals>>,
    pub span: Span,
}

impl Closure {
    /// The function as a program node keeps it: with its module alive.
    pub fn callable(self: &Arc<Closure>) -> Arc<dyn Callable> {
        Arc::new(Held { module: self.globals.as_ref().and_then(Weak::upgrade), closure: self.clone() })
    }

    /// Its module, for a call.
    fn module(&self) -> Result<Arc<Globals>> {
        match &self.globals {
            None => Ok(Arc::new(Globals::default())),
            Some(weak) => weak
                .upgrade()
                .ok_or_else(|| Error::at(&self.span, "internal error: the module that defines this function is gone")),
        }
    }
}

/// A closure with its module held, as program nodes keep it.
struct Held {
    closure: Arc<Closure>,
    /// Kept alive for the closure's name lookups; never read here.
    #[allow(dead_code)]
    module: Option<Arc<Globals>>,
}

impl Callable for Held {
    fn arity(&self) -> usize {
        self.closure.arity()
    }
    fn call(&self, args: &[Value]) -> PyResult<Value> {
        self.closure.call(args)
    }
    fn source(&self) -> String {
        self.closure.source()
    }
    fn span(&self) -> Option<&Span> {
        self.closure.span()
    }
}

/// Not [`Callable`] itself, so that no closure reaches a program without
/// its module: program nodes take [`Closure::callable`].
impl Closure {
    pub fn arity(&self) -> usize {
        self.params.len()
    }

    /// The lambda's text, for messages.
    pub fn source(&self) -> String {
        match &self.body {
            Body::Lambda(e) => format!("lambda {}: {}", self.params.join(", "), print_expr(e)),
            Body::Def(_) => format!("{}({})", self.name.as_deref().unwrap_or("<function>"), self.params.join(", ")),
        }
    }

    /// Calls the function on plain values (value level: no s-ops can be built).
    pub fn call(&self, args: &[Value]) -> PyResult<Value> {
        let metas: Vec<Meta> = args.iter().cloned().map(Meta::Value).collect();
        let mut ev = Evaluator { builder: None, loader: None, depth: 0 };
        match ev.call_closure(self, metas, &self.span) {
            Ok(Meta::Value(v)) => Ok(v),
            Ok(other) => Err(PyError(format!("TypeError: the function returned {}, not a value", other.kind()))),
            Err(e) => Err(PyError(e.message().to_string())),
        }
    }

    pub fn span(&self) -> Option<&Span> {
        Some(&self.span)
    }
}

/// Module-level names: late-bound, so a function may call one defined after it.
#[derive(Debug, Default)]
pub struct Globals {
    pub vars: RwLock<HashMap<String, Meta>>,
    /// The modules this one imported: their functions, now among `vars`,
    /// hold them only weakly.
    pub imports: RwLock<Vec<Arc<Globals>>>,
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
                    globals: Some(Arc::downgrade(&scope.globals)),
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
                scope.globals.imports.write().unwrap().push(module.globals.clone());
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
}
