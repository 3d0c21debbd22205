//! Expressions: names, literals, operators (with the sugar that turns
//! `tokens == "x"` into a Map or a Select), calls, and calling a lambda, at
//! the program level (building s-ops) and the value level (plain values).

use super::*;

impl<'a> Evaluator<'a> {
    pub(super) fn expr_value(&mut self, e: &Expr, scope: &mut Scope) -> Result<Value> {
        match self.expr(e, scope)? {
            Meta::Value(v) => Ok(v),
            other => Err(Error::at(&e.span, format!("expected a plain value, found {}", other.kind()))),
        }
    }
    pub(super) fn expect_sop(&mut self, e: &Expr, scope: &mut Scope, what: &str) -> Result<NodeId> {
        match self.expr(e, scope)? {
            Meta::SOp(id) => Ok(id),
            other => Err(Error::at(&e.span, format!("{what} must be an s-op, found {}", other.kind()))),
        }
    }
    pub(super) fn expect_selector(&mut self, e: &Expr, scope: &mut Scope, what: &str) -> Result<NodeId> {
        match self.expr(e, scope)? {
            Meta::Selector(id) => Ok(id),
            other => Err(Error::at(&e.span, format!("{what} must be a selector, found {}", other.kind()))),
        }
    }
    pub(super) fn expr(&mut self, e: &Expr, scope: &mut Scope) -> Result<Meta> {
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
                globals: Some(Arc::downgrade(&scope.globals)),
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
    pub(super) fn call(
        &mut self,
        f: Meta,
        args: &[Expr],
        kwargs: &[(Ident, Expr)],
        scope: &mut Scope,
        e: &Expr,
    ) -> Result<Meta> {
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
    pub(super) fn call_closure(&mut self, c: &Closure, args: Vec<Meta>, call_span: &Span) -> Result<Meta> {
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
        let mut scope = Scope { locals, globals: c.module()?, is_top: false, is_module: false };
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
    pub(super) fn unary(&mut self, op: UnaryOp, v: Meta, e: &Expr) -> Result<Meta> {
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
                Ok(Meta::SOp(b.map(f.callable(), x, true, &e.span)))
            }
            (UnaryOp::Not, Meta::SOp(_) | Meta::Selector(_)) => {
                Err(Error::at(&e.span, "'not' works on plain values; use '~' on s-ops and selectors"))
            }
            (_, other) => Err(Error::at(&e.span, format!("bad operand for unary operator: {}", other.kind()))),
        }
    }
    pub(super) fn binary(&mut self, op: Op, a: Meta, b: Meta, e: &Expr) -> Result<Meta> {
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
                    NodeOp::SequenceMap { f: Func::Closure(f.callable()), inputs: [*x, *y] },
                    Encoding::Categorical,
                    span,
                )))
            }
            (Meta::SOp(x), Meta::Value(c)) => {
                let body = op_body(op, var("x", span), konst(c, span), span);
                let f = sugar_closure(&["x"], body, span);
                let bld = self.builder(span)?;
                Ok(Meta::SOp(bld.map(f.callable(), *x, true, span)))
            }
            (Meta::Value(c), Meta::SOp(x)) => {
                let body = op_body(op, konst(c, span), var("x", span), span);
                let f = sugar_closure(&["x"], body, span);
                let bld = self.builder(span)?;
                Ok(Meta::SOp(bld.map(f.callable(), *x, true, span)))
            }
            _ => Err(Error::at(
                span,
                format!("unsupported operand kinds for '{}': {} and {}", op.symbol(), a.kind(), b.kind()),
            )),
        }
    }
    pub(super) fn compare(&mut self, op: CmpOp, a: Meta, b: Meta, e: &Expr) -> Result<Meta> {
        let span = &e.span;
        let cmp_body = |l: Expr, r: Expr| ExprKind::Compare(Box::new(l), vec![(op, r)]);
        match (&a, &b) {
            (Meta::Value(x), Meta::Value(y)) => {
                value::compare(op, x, y).map(|r| Meta::Value(Value::Bool(r))).map_err(|err| Error::at(span, err.0))
            }
            (Meta::SOp(x), Meta::Value(c)) => {
                let f = sugar_closure(&["x"], Expr::new(cmp_body(var("x", span), konst(c, span)), span.clone()), span);
                let bld = self.builder(span)?;
                Ok(Meta::SOp(bld.map(f.callable(), *x, true, span)))
            }
            (Meta::Value(c), Meta::SOp(x)) => {
                let f = sugar_closure(&["x"], Expr::new(cmp_body(konst(c, span), var("x", span)), span.clone()), span);
                let bld = self.builder(span)?;
                Ok(Meta::SOp(bld.map(f.callable(), *x, true, span)))
            }
            (Meta::SOp(x), Meta::SOp(y)) => {
                let f =
                    sugar_closure(&["x", "y"], Expr::new(cmp_body(var("x", span), var("y", span)), span.clone()), span);
                let bld = self.builder(span)?;
                Ok(Meta::SOp(bld.add(
                    NodeOp::SequenceMap { f: Func::Closure(f.callable()), inputs: [*x, *y] },
                    Encoding::Categorical,
                    span,
                )))
            }
            _ => Err(Error::at(span, format!("cannot compare {} with {}", a.kind(), b.kind()))),
        }
    }
}

pub(super) enum Op_ {
    And(NodeId, NodeId),
    Or(NodeId, NodeId),
}
pub(super) fn var(name: &str, span: &Span) -> Expr {
    Expr::new(ExprKind::Name(name.into()), span.clone())
}
pub(super) fn konst(v: &Value, span: &Span) -> Expr {
    Expr::new(ExprKind::Const(v.clone()), span.clone())
}
pub(super) fn op_body(op: Op, l: Expr, r: Expr, span: &Span) -> Expr {
    let kind = match op {
        Op::Arith(_) => ExprKind::Binary(op, Box::new(l), Box::new(r)),
        Op::BitAnd => ExprKind::Bool(BoolOp::And, Box::new(l), Box::new(r)),
        Op::BitOr => ExprKind::Bool(BoolOp::Or, Box::new(l), Box::new(r)),
    };
    Expr::new(kind, span.clone())
}
/// A lambda that operator sugar writes on the user's behalf, placed at the operator.
pub(super) fn sugar_closure(params: &[&str], body: Expr, span: &Span) -> Arc<Closure> {
    Arc::new(Closure {
        name: None,
        params: params.iter().map(|p| p.to_string()).collect(),
        body: Body::Lambda(body),
        locals: HashMap::new(),
        globals: None,
        span: span.clone(),
    })
}
pub(super) fn bit_op(op: Op, x: &Value, y: &Value) -> PyResult<Value> {
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
