//! The built-in functions: RASP constructors (`Map`, `Select`, `Aggregate`,
//! …) with their signatures and argument binding, and Python's value-level
//! built-ins (`abs`, `min`, `round`, …).

use super::*;

impl<'a> Evaluator<'a> {
    pub(super) fn call_builtin(
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
                Ok(Meta::SOp(bld.map(f.callable(), x, simplify, span)))
            }
            Builtin::SequenceMap => {
                let f = self.expect_function(arg(0).unwrap(), scope, 2, "SequenceMap")?;
                let x = self.expect_sop(arg(1).unwrap(), scope, "SequenceMap's second argument")?;
                let y = self.expect_sop(arg(2).unwrap(), scope, "SequenceMap's third argument")?;
                let bld = self.builder(span)?;
                Ok(Meta::SOp(bld.add(
                    NodeOp::SequenceMap { f: Func::Closure(f.callable()), inputs: [x, y] },
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
                        Predicate::Custom(Func::Closure(c.callable()))
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
    pub(super) fn expect_function(
        &mut self,
        e: &Expr,
        scope: &mut Scope,
        arity: usize,
        who: &str,
    ) -> Result<Arc<Closure>> {
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
                    globals: None,
                    span,
                }))
            }
            other => Err(Error::at(
                &e.span,
                format!("{who}'s first argument must be a function (lambda), found {}", other.kind()),
            )),
        }
    }
}

pub(super) fn is_value_builtin(b: Builtin) -> bool {
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
pub(super) fn predefined(name: &str) -> Option<Meta> {
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
pub(super) fn signature(b: Builtin) -> (&'static [&'static str], usize) {
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
pub(super) fn bind_args<'e>(
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
pub(super) fn value_builtin(b: Builtin, vals: &[Value]) -> PyResult<Value> {
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
