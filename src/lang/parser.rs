//! Recursive-descent parser for `.rasp` text, following Python's precedence:
//! lambda < if-else < or < and < not < comparisons < | < & < +,- < *,/,//,% < unary < ** < call/attr/index.

use super::ast::*;
use super::lexer::{lex, Tok, Token, KEYWORDS};
use crate::diagnostic::{Error, Result, SourceFile, Span};
use crate::value::{BinOp, CmpOp, Value};
use std::sync::Arc;

/// Nesting limit: deeper input is rejected with an error rather than overflowing the stack.
const MAX_DEPTH: usize = 200;
/// Most binary operators in one left-associative chain (with the nesting
/// around it): each is a level of the expression tree.
const MAX_CHAIN: usize = 2000;

/// Parses `.rasp` text into statements; errors name the place.
pub fn parse(file: &Arc<SourceFile>) -> Result<Vec<Stmt>> {
    let tokens = lex(file)?;
    let mut p = Parser { toks: tokens, pos: 0, depth: 0 };
    let mut out = Vec::new();
    while !p.at(&Tok::Eof) {
        if p.eat(&Tok::Newline) {
            continue;
        }
        out.push(p.statement()?);
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }

    fn peek_at(&self, k: usize) -> &Tok {
        &self.toks[(self.pos + k).min(self.toks.len() - 1)].tok
    }

    fn at(&self, t: &Tok) -> bool {
        &self.peek().tok == t
    }

    fn at_op(&self, op: &str) -> bool {
        matches!(&self.peek().tok, Tok::Op(o) if *o == op)
    }

    fn at_kw(&self, kw: &str) -> bool {
        matches!(&self.peek().tok, Tok::Name(n) if n == kw)
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn eat(&mut self, t: &Tok) -> bool {
        if self.at(t) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn eat_op(&mut self, op: &str) -> bool {
        if self.at_op(op) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.at_kw(kw) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn describe(t: &Tok) -> String {
        match t {
            Tok::Name(n) => format!("'{n}'"),
            Tok::Int(i) => format!("number {i}"),
            Tok::Float(f) => format!("number {f}"),
            Tok::Str(_) => "a string".into(),
            Tok::Op(o) => format!("'{o}'"),
            Tok::Newline => "end of line".into(),
            Tok::Indent => "an indented block".into(),
            Tok::Dedent => "end of block".into(),
            Tok::Eof => "end of file".into(),
        }
    }

    fn error_here(&self, expected: &str) -> Error {
        let t = self.peek();
        Error::at(&t.span, format!("expected {expected}, found {}", Self::describe(&t.tok)))
    }

    fn expect_op(&mut self, op: &str) -> Result<Span> {
        if self.at_op(op) {
            Ok(self.bump().span)
        } else {
            Err(self.error_here(&format!("'{op}'")))
        }
    }

    fn ident(&mut self) -> Result<Ident> {
        match &self.peek().tok {
            Tok::Name(n) if !KEYWORDS.contains(&n.as_str()) => {
                let name = n.clone();
                let span = self.bump().span;
                Ok(Ident { name, span })
            }
            _ => Err(self.error_here("a name")),
        }
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Error::at(&self.peek().span, "expression nested too deeply"));
        }
        Ok(())
    }

    fn end_of_statement(&mut self) -> Result<()> {
        if self.eat(&Tok::Newline) || self.at(&Tok::Eof) || self.at(&Tok::Dedent) {
            Ok(())
        } else {
            Err(self.error_here("end of line"))
        }
    }

    fn statement(&mut self) -> Result<Stmt> {
        let start = self.peek().span.clone();
        if self.eat_kw("def") {
            let name = self.ident()?;
            self.expect_op("(")?;
            let params = self.params(")")?;
            self.expect_op(")")?;
            self.expect_op(":")?;
            let body = self.block()?;
            return Ok(Stmt::Def { name, params, body });
        }
        if self.eat_kw("return") {
            let value = self.expr()?;
            let span = start.to(&value.span);
            self.end_of_statement()?;
            return Ok(Stmt::Return { value, span });
        }
        if self.eat_kw("import") {
            let t = self.bump();
            let target = match t.tok {
                Tok::Str(s) => ImportTarget::Path(s),
                Tok::Name(n) if !KEYWORDS.contains(&n.as_str()) => ImportTarget::Bundled(n),
                other => {
                    return Err(Error::at(
                        &t.span,
                        format!(
                            "expected a file path in quotes or a bundled program name, found {}",
                            Self::describe(&other)
                        ),
                    ))
                }
            };
            let span = start.to(&t.span);
            self.end_of_statement()?;
            return Ok(Stmt::Import { target, span });
        }
        // assignment: NAME '=' expr (but not '==')
        if let (Tok::Name(n), Tok::Op("=")) = (self.peek_at(0), self.peek_at(1)) {
            if !KEYWORDS.contains(&n.as_str()) {
                let target = self.ident()?;
                self.bump();
                let value = self.expr()?;
                self.end_of_statement()?;
                return Ok(Stmt::Assign { target, value });
            }
        }
        let e = self.expr()?;
        if self.at_op("=") {
            return Err(Error::at(&e.span, "only a plain name can be assigned to"));
        }
        self.end_of_statement()?;
        Ok(Stmt::Expr(e))
    }

    fn block(&mut self) -> Result<Vec<Stmt>> {
        if !self.eat(&Tok::Newline) {
            // one-line body: `def f(x): return x`
            return Ok(vec![self.statement()?]);
        }
        if !self.eat(&Tok::Indent) {
            return Err(self.error_here("an indented block"));
        }
        let mut body = Vec::new();
        while !self.eat(&Tok::Dedent) {
            if self.at(&Tok::Eof) {
                break;
            }
            if self.eat(&Tok::Newline) {
                continue;
            }
            self.enter()?;
            body.push(self.statement()?);
            self.depth -= 1;
        }
        Ok(body)
    }

    fn params(&mut self, close: &str) -> Result<Vec<Ident>> {
        let mut params: Vec<Ident> = Vec::new();
        while !self.at_op(close) {
            let p = self.ident()?;
            if params.iter().any(|q| q.name == p.name) {
                return Err(Error::at(&p.span, format!("duplicate parameter '{}'", p.name)));
            }
            params.push(p);
            if !self.eat_op(",") {
                break;
            }
        }
        Ok(params)
    }

    pub fn expr(&mut self) -> Result<Expr> {
        self.enter()?;
        let r = self.expr_inner();
        self.depth -= 1;
        r
    }

    fn expr_inner(&mut self) -> Result<Expr> {
        if self.at_kw("lambda") {
            let start = self.bump().span;
            let params = self.params(":")?;
            self.expect_op(":")?;
            let body = self.expr()?;
            let span = start.to(&body.span);
            return Ok(Expr::new(ExprKind::Lambda { params, body: Box::new(body) }, span));
        }
        let body = self.or_expr()?;
        if self.eat_kw("if") {
            let cond = self.or_expr()?;
            if !self.eat_kw("else") {
                return Err(self.error_here("'else'"));
            }
            let orelse = self.expr()?;
            let span = body.span.to(&orelse.span);
            return Ok(Expr::new(
                ExprKind::IfElse { body: Box::new(body), cond: Box::new(cond), orelse: Box::new(orelse) },
                span,
            ));
        }
        Ok(body)
    }

    fn or_expr(&mut self) -> Result<Expr> {
        let mut l = self.and_expr()?;
        while self.eat_kw("or") {
            let r = self.and_expr()?;
            let span = l.span.to(&r.span);
            l = Expr::new(ExprKind::Bool(BoolOp::Or, Box::new(l), Box::new(r)), span);
        }
        Ok(l)
    }

    fn and_expr(&mut self) -> Result<Expr> {
        let mut l = self.not_expr()?;
        while self.eat_kw("and") {
            let r = self.not_expr()?;
            let span = l.span.to(&r.span);
            l = Expr::new(ExprKind::Bool(BoolOp::And, Box::new(l), Box::new(r)), span);
        }
        Ok(l)
    }

    fn not_expr(&mut self) -> Result<Expr> {
        if self.at_kw("not") {
            let start = self.bump().span;
            self.enter()?;
            let e = self.not_expr();
            self.depth -= 1;
            let e = e?;
            let span = start.to(&e.span);
            return Ok(Expr::new(ExprKind::Unary(UnaryOp::Not, Box::new(e)), span));
        }
        self.comparison()
    }

    fn cmp_op(&mut self) -> Option<CmpOp> {
        let op = match &self.peek().tok {
            Tok::Op("==") => CmpOp::Eq,
            Tok::Op("!=") => CmpOp::Ne,
            Tok::Op("<") => CmpOp::Lt,
            Tok::Op("<=") => CmpOp::Le,
            Tok::Op(">") => CmpOp::Gt,
            Tok::Op(">=") => CmpOp::Ge,
            Tok::Name(n) if n == "in" => CmpOp::In,
            Tok::Name(n) if n == "not" && matches!(self.peek_at(1), Tok::Name(m) if m == "in") => {
                self.bump();
                CmpOp::NotIn
            }
            _ => return None,
        };
        self.bump();
        Some(op)
    }

    fn comparison(&mut self) -> Result<Expr> {
        let first = self.bitor()?;
        let mut rest = Vec::new();
        while let Some(op) = self.cmp_op() {
            rest.push((op, self.bitor()?));
        }
        if rest.is_empty() {
            return Ok(first);
        }
        let span = first.span.to(&rest.last().unwrap().1.span);
        Ok(Expr::new(ExprKind::Compare(Box::new(first), rest), span))
    }

    fn binary_level(&mut self, ops: &[(&str, Op)], next: fn(&mut Self) -> Result<Expr>) -> Result<Expr> {
        let mut l = next(self)?;
        // a chain `a + b + c + …` parses in a loop but builds a tree as deep
        // as it is long, and evaluating, printing and dropping that tree
        // recurse: bound it as nesting is bounded
        let mut chain = 0usize;
        'outer: loop {
            for (sym, op) in ops {
                if self.eat_op(sym) {
                    chain += 1;
                    if chain + self.depth > MAX_CHAIN {
                        return Err(Error::at(
                            &self.peek().span,
                            format!("expression too long: more than {MAX_CHAIN} operators in one chain; split it over several assignments"),
                        ));
                    }
                    let r = next(self)?;
                    let span = l.span.to(&r.span);
                    l = Expr::new(ExprKind::Binary(*op, Box::new(l), Box::new(r)), span);
                    continue 'outer;
                }
            }
            return Ok(l);
        }
    }

    fn bitor(&mut self) -> Result<Expr> {
        self.binary_level(&[("|", Op::BitOr)], Self::bitand)
    }

    fn bitand(&mut self) -> Result<Expr> {
        self.binary_level(&[("&", Op::BitAnd)], Self::arith)
    }

    fn arith(&mut self) -> Result<Expr> {
        self.binary_level(&[("+", Op::Arith(BinOp::Add)), ("-", Op::Arith(BinOp::Sub))], Self::term)
    }

    fn term(&mut self) -> Result<Expr> {
        self.binary_level(
            &[
                ("*", Op::Arith(BinOp::Mul)),
                ("//", Op::Arith(BinOp::FloorDiv)),
                ("/", Op::Arith(BinOp::Div)),
                ("%", Op::Arith(BinOp::Mod)),
            ],
            Self::unary,
        )
    }

    fn unary(&mut self) -> Result<Expr> {
        let op = match &self.peek().tok {
            Tok::Op("-") => UnaryOp::Neg,
            Tok::Op("+") => UnaryOp::Pos,
            Tok::Op("~") => UnaryOp::Invert,
            _ => return self.power(),
        };
        let start = self.bump().span;
        self.enter()?;
        let e = self.unary();
        self.depth -= 1;
        let e = e?;
        let span = start.to(&e.span);
        Ok(Expr::new(ExprKind::Unary(op, Box::new(e)), span))
    }

    fn power(&mut self) -> Result<Expr> {
        let base = self.postfix()?;
        if self.eat_op("**") {
            // right-associative, binds tighter than unary on its left only
            self.enter()?;
            let exp = self.unary();
            self.depth -= 1;
            let exp = exp?;
            let span = base.span.to(&exp.span);
            return Ok(Expr::new(ExprKind::Binary(Op::Arith(BinOp::Pow), Box::new(base), Box::new(exp)), span));
        }
        Ok(base)
    }

    fn postfix(&mut self) -> Result<Expr> {
        let mut e = self.atom()?;
        loop {
            if self.eat_op("(") {
                let (args, kwargs) = self.call_args()?;
                let end = self.expect_op(")")?;
                let span = e.span.to(&end);
                e = Expr::new(ExprKind::Call { func: Box::new(e), args, kwargs }, span);
            } else if self.eat_op(".") {
                let name = self.ident()?;
                let span = e.span.to(&name.span);
                e = Expr::new(ExprKind::Attr(Box::new(e), name), span);
            } else if self.eat_op("[") {
                let idx = self.expr()?;
                let end = self.expect_op("]")?;
                let span = e.span.to(&end);
                e = Expr::new(ExprKind::Index(Box::new(e), Box::new(idx)), span);
            } else {
                return Ok(e);
            }
        }
    }

    fn call_args(&mut self) -> Result<(Vec<Expr>, Vec<(Ident, Expr)>)> {
        let mut args = Vec::new();
        let mut kwargs: Vec<(Ident, Expr)> = Vec::new();
        while !self.at_op(")") {
            if let (Tok::Name(n), Tok::Op("=")) = (self.peek_at(0), self.peek_at(1)) {
                if !KEYWORDS.contains(&n.as_str()) {
                    let name = self.ident()?;
                    self.bump();
                    if kwargs.iter().any(|(k, _)| k.name == name.name) {
                        return Err(Error::at(&name.span, format!("keyword argument '{}' given twice", name.name)));
                    }
                    let v = self.expr()?;
                    kwargs.push((name, v));
                    if !self.eat_op(",") {
                        break;
                    }
                    continue;
                }
            }
            let e = self.expr()?;
            if !kwargs.is_empty() {
                return Err(Error::at(&e.span, "positional argument follows keyword argument"));
            }
            args.push(e);
            if !self.eat_op(",") {
                break;
            }
        }
        Ok((args, kwargs))
    }

    fn atom(&mut self) -> Result<Expr> {
        let t = self.peek().clone();
        let span = t.span.clone();
        match t.tok {
            Tok::Int(i) => {
                self.bump();
                Ok(Expr::new(ExprKind::Const(Value::Int(i)), span))
            }
            Tok::Float(f) => {
                self.bump();
                Ok(Expr::new(ExprKind::Const(Value::Float(f)), span))
            }
            Tok::Str(s) => {
                self.bump();
                // adjacent string literals concatenate, as in Python
                let mut s = s;
                let mut span = span;
                while let Tok::Str(more) = &self.peek().tok {
                    s.push_str(more);
                    span = span.to(&self.bump().span);
                }
                Ok(Expr::new(ExprKind::Const(Value::Str(s)), span))
            }
            Tok::Name(n) => match n.as_str() {
                "True" => {
                    self.bump();
                    Ok(Expr::new(ExprKind::Const(Value::Bool(true)), span))
                }
                "False" => {
                    self.bump();
                    Ok(Expr::new(ExprKind::Const(Value::Bool(false)), span))
                }
                "None" => {
                    self.bump();
                    Ok(Expr::new(ExprKind::Const(Value::None), span))
                }
                kw if KEYWORDS.contains(&kw) => Err(self.error_here("an expression")),
                _ => {
                    self.bump();
                    Ok(Expr::new(ExprKind::Name(n), span))
                }
            },
            Tok::Op("(") => {
                self.bump();
                if let Some(end) = self.at_op(")").then(|| self.bump().span) {
                    return Ok(Expr::new(ExprKind::Tuple(vec![]), span.to(&end)));
                }
                let first = self.expr()?;
                if self.at_op(")") {
                    let end = self.bump().span;
                    // parentheses only group; keep the inner node but widen its span
                    return Ok(Expr::new(first.kind, span.to(&end)));
                }
                let mut items = vec![first];
                while self.eat_op(",") {
                    if self.at_op(")") {
                        break;
                    }
                    items.push(self.expr()?);
                }
                let end = self.expect_op(")")?;
                Ok(Expr::new(ExprKind::Tuple(items), span.to(&end)))
            }
            Tok::Op("[") => {
                self.bump();
                let items = self.items("]")?;
                let end = self.expect_op("]")?;
                Ok(Expr::new(ExprKind::List(items), span.to(&end)))
            }
            Tok::Op("{") => {
                self.bump();
                let items = self.items("}")?;
                let end = self.expect_op("}")?;
                Ok(Expr::new(ExprKind::Set(items), span.to(&end)))
            }
            _ => Err(self.error_here("an expression")),
        }
    }

    fn items(&mut self, close: &str) -> Result<Vec<Expr>> {
        let mut items = Vec::new();
        while !self.at_op(close) {
            items.push(self.expr()?);
            if !self.eat_op(",") {
                break;
            }
        }
        Ok(items)
    }
}
