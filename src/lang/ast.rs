//! Syntax tree of the `.rasp` language.

use crate::diagnostic::Span;
use crate::value::{BinOp, CmpOp, Value};

#[derive(Clone, Debug)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum Stmt {
    /// `name = expr`
    Assign { target: Ident, value: Expr },
    /// `def name(params): body`
    Def { name: Ident, params: Vec<Ident>, body: Vec<Stmt> },
    /// `return expr`
    Return { value: Expr, span: Span },
    /// `import "file.rasp"` or `import bundled_program`
    Import { target: ImportTarget, span: Span },
    /// An expression on its own line, e.g. `compile(...)`.
    Expr(Expr),
}

#[derive(Clone, Debug)]
pub enum ImportTarget {
    Path(String),
    Bundled(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Pos,
    Not,
    Invert,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoolOp {
    And,
    Or,
}

/// Binary operators, arithmetic plus the bitwise pair that RASP uses on s-ops and selectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Arith(BinOp),
    BitAnd,
    BitOr,
}

impl Op {
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Arith(b) => b.symbol(),
            Op::BitAnd => "&",
            Op::BitOr => "|",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum ExprKind {
    Name(String),
    /// A literal (int, float, str, bool, None); also constants that sugar captures.
    Const(Value),
    Tuple(Vec<Expr>),
    List(Vec<Expr>),
    Set(Vec<Expr>),
    Unary(UnaryOp, Box<Expr>),
    Binary(Op, Box<Expr>, Box<Expr>),
    /// `a < b <= c`: Python's chained comparison.
    Compare(Box<Expr>, Vec<(CmpOp, Expr)>),
    Bool(BoolOp, Box<Expr>, Box<Expr>),
    /// `body if cond else orelse`
    IfElse {
        body: Box<Expr>,
        cond: Box<Expr>,
        orelse: Box<Expr>,
    },
    Lambda {
        params: Vec<Ident>,
        body: Box<Expr>,
    },
    Call {
        func: Box<Expr>,
        args: Vec<Expr>,
        kwargs: Vec<(Ident, Expr)>,
    },
    Attr(Box<Expr>, Ident),
    Index(Box<Expr>, Box<Expr>),
}

impl Expr {
    pub fn new(kind: ExprKind, span: Span) -> Expr {
        Expr { kind, span }
    }
}
