//! Prints a syntax tree back to `.rasp` text with the fewest parentheses that
//! keep its meaning. `parse(print(t))` prints the same as `t` (a property test).

use super::ast::*;
use crate::value::{BinOp, Value};

/// Prints statements back as `.rasp` text (parses to the same tree).
pub fn print_program(stmts: &[Stmt]) -> String {
    let mut out = String::new();
    for s in stmts {
        stmt(&mut out, s, 0);
    }
    out
}

fn stmt(out: &mut String, s: &Stmt, indent: usize) {
    let pad = "    ".repeat(indent);
    match s {
        Stmt::Assign { target, value } => out.push_str(&format!("{pad}{} = {}\n", target.name, print_expr(value))),
        Stmt::Def { name, params, body } => {
            let ps: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
            out.push_str(&format!("{pad}def {}({}):\n", name.name, ps.join(", ")));
            for b in body {
                stmt(out, b, indent + 1);
            }
        }
        Stmt::Return { value, .. } => out.push_str(&format!("{pad}return {}\n", print_expr(value))),
        Stmt::Import { target, .. } => match target {
            ImportTarget::Path(p) => out.push_str(&format!("{pad}import {}\n", Value::Str(p.clone()).repr())),
            ImportTarget::Bundled(n) => out.push_str(&format!("{pad}import {n}\n")),
        },
        Stmt::Expr(e) => out.push_str(&format!("{pad}{}\n", print_expr(e))),
    }
}

/// Prints one expression.
pub fn print_expr(e: &Expr) -> String {
    expr(e, 0)
}

const LAMBDA: u8 = 0;
const IFELSE: u8 = 1;
const OR: u8 = 2;
const AND: u8 = 3;
const NOT: u8 = 4;
const CMP: u8 = 5;
const BITOR: u8 = 6;
const BITAND: u8 = 7;
const ADD: u8 = 8;
const MUL: u8 = 9;
const UNARY: u8 = 10;
const POW: u8 = 11;
const ATOM: u8 = 12;

fn prec(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Lambda { .. } => LAMBDA,
        ExprKind::IfElse { .. } => IFELSE,
        ExprKind::Bool(BoolOp::Or, ..) => OR,
        ExprKind::Bool(BoolOp::And, ..) => AND,
        ExprKind::Unary(UnaryOp::Not, _) => NOT,
        ExprKind::Compare(..) => CMP,
        ExprKind::Binary(Op::BitOr, ..) => BITOR,
        ExprKind::Binary(Op::BitAnd, ..) => BITAND,
        ExprKind::Binary(Op::Arith(BinOp::Add | BinOp::Sub), ..) => ADD,
        ExprKind::Binary(Op::Arith(BinOp::Pow), ..) => POW,
        ExprKind::Binary(Op::Arith(_), ..) => MUL,
        ExprKind::Unary(..) => UNARY,
        ExprKind::Const(v) if is_negative(v) => UNARY,
        _ => ATOM,
    }
}

fn is_negative(v: &Value) -> bool {
    match v {
        Value::Int(i) => *i < 0,
        Value::Float(f) => f.is_sign_negative(),
        _ => false,
    }
}

fn expr(e: &Expr, min: u8) -> String {
    let p = prec(e);
    let s = match &e.kind {
        ExprKind::Name(n) => n.clone(),
        ExprKind::Const(v) => v.repr(),
        ExprKind::Tuple(items) => match items.as_slice() {
            [one] => format!("({},)", expr(one, 0)),
            _ => format!("({})", list(items)),
        },
        ExprKind::List(items) => format!("[{}]", list(items)),
        ExprKind::Set(items) => format!("{{{}}}", list(items)),
        ExprKind::Unary(op, x) => {
            let (sym, inner) = match op {
                UnaryOp::Neg => ("-", UNARY),
                UnaryOp::Pos => ("+", UNARY),
                UnaryOp::Invert => ("~", UNARY),
                UnaryOp::Not => ("not ", NOT),
            };
            format!("{sym}{}", expr(x, inner))
        }
        ExprKind::Binary(Op::Arith(BinOp::Pow), l, r) => format!("{} ** {}", expr(l, ATOM), expr(r, UNARY)),
        ExprKind::Binary(op, l, r) => format!("{} {} {}", expr(l, p), op.symbol(), expr(r, p + 1)),
        ExprKind::Compare(first, rest) => {
            let mut s = expr(first, BITOR);
            for (op, x) in rest {
                s.push_str(&format!(" {} {}", op.symbol(), expr(x, BITOR)));
            }
            s
        }
        ExprKind::Bool(op, l, r) => {
            let sym = if *op == BoolOp::And { "and" } else { "or" };
            format!("{} {sym} {}", expr(l, p), expr(r, p + 1))
        }
        ExprKind::IfElse { body, cond, orelse } => {
            format!("{} if {} else {}", expr(body, OR), expr(cond, OR), expr(orelse, IFELSE))
        }
        ExprKind::Lambda { params, body } => {
            let ps: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
            if ps.is_empty() {
                format!("lambda: {}", expr(body, LAMBDA))
            } else {
                format!("lambda {}: {}", ps.join(", "), expr(body, LAMBDA))
            }
        }
        ExprKind::Call { func, args, kwargs } => {
            let mut parts: Vec<String> = args.iter().map(|a| expr(a, 0)).collect();
            parts.extend(kwargs.iter().map(|(k, v)| format!("{}={}", k.name, expr(v, 0))));
            format!("{}({})", expr(func, ATOM), parts.join(", "))
        }
        // `1.x` would lex as the float `1.` followed by `x`
        ExprKind::Attr(obj, name) => match &obj.kind {
            ExprKind::Const(Value::Int(_)) => format!("({}).{}", expr(obj, 0), name.name),
            _ => format!("{}.{}", expr(obj, ATOM), name.name),
        },
        ExprKind::Index(obj, idx) => format!("{}[{}]", expr(obj, ATOM), expr(idx, 0)),
    };
    if p < min {
        format!("({s})")
    } else {
        s
    }
}

fn list(items: &[Expr]) -> String {
    items.iter().map(|x| expr(x, 0)).collect::<Vec<_>>().join(", ")
}
