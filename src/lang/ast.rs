//! Syntax tree of the `.rasp` language.

use crate::diagnostic::Span;
use crate::value::{BinOp, CmpOp, Value};

/// A name as written, with its place.
#[derive(Clone, Debug)]
pub struct Ident {
    /// The name.
    pub name: String,
    /// Where it is written.
    pub span: Span,
}

/// One statement.
#[derive(Clone, Debug)]
pub enum Stmt {
    /// `name = expr`
    Assign {
        /// The variable assigned.
        target: Ident,
        /// The value.
        value: Expr,
    },
    /// `def name(params): body`
    Def {
        /// The function's name.
        name: Ident,
        /// Its parameters.
        params: Vec<Ident>,
        /// Its statements.
        body: Vec<Stmt>,
    },
    /// `return expr`
    Return {
        /// The value returned.
        value: Expr,
        /// The whole statement.
        span: Span,
    },
    /// `import "file.rasp"` or `import bundled_program`
    Import {
        /// What is imported.
        target: ImportTarget,
        /// The whole statement.
        span: Span,
    },
    /// An expression on its own line, e.g. `compile(...)`.
    Expr(Expr),
}

/// What an `import` names.
#[derive(Clone, Debug)]
pub enum ImportTarget {
    /// A quoted path, relative to the importing file.
    Path(String),
    /// A bare name: a bundled program.
    Bundled(String),
}

/// Prefix operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `+x`
    Pos,
    /// `not x`
    Not,
    /// `~x` (bitwise on ints, complement on selectors)
    Invert,
}

/// Short-circuit boolean operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoolOp {
    /// `a and b`
    And,
    /// `a or b`
    Or,
}

/// Binary operators, arithmetic plus the bitwise pair that RASP uses on s-ops and selectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `+ - * / // % **`
    Arith(BinOp),
    /// `&`
    BitAnd,
    /// `|`
    BitOr,
}

impl Op {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Arith(b) => b.symbol(),
            Op::BitAnd => "&",
            Op::BitOr => "|",
        }
    }
}

/// An expression with its place.
#[derive(Clone, Debug)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where it is written.
    pub span: Span,
}

/// The kinds of expression.
#[derive(Clone, Debug)]
pub enum ExprKind {
    /// A variable or built-in.
    Name(String),
    /// A literal (int, float, str, bool, None); also constants that sugar captures.
    Const(Value),
    /// `(a, b)`
    Tuple(Vec<Expr>),
    /// `[a, b]`
    List(Vec<Expr>),
    /// `{a, b}` (a vocab)
    Set(Vec<Expr>),
    /// A prefix operator applied.
    Unary(UnaryOp, Box<Expr>),
    /// A binary operator applied.
    Binary(Op, Box<Expr>, Box<Expr>),
    /// `a < b <= c`: Python's chained comparison.
    Compare(Box<Expr>, Vec<(CmpOp, Expr)>),
    /// `a and b`, `a or b`
    Bool(BoolOp, Box<Expr>, Box<Expr>),
    /// `body if cond else orelse`
    IfElse {
        /// The value when `cond` holds.
        body: Box<Expr>,
        /// The condition.
        cond: Box<Expr>,
        /// The value otherwise.
        orelse: Box<Expr>,
    },
    /// `lambda params: body`
    Lambda {
        /// The parameters.
        params: Vec<Ident>,
        /// The body.
        body: Box<Expr>,
    },
    /// `func(args, name=value)`
    Call {
        /// What is called.
        func: Box<Expr>,
        /// Positional arguments.
        args: Vec<Expr>,
        /// Keyword arguments.
        kwargs: Vec<(Ident, Expr)>,
    },
    /// `x.name`
    Attr(Box<Expr>, Ident),
    /// `x[i]`
    Index(Box<Expr>, Box<Expr>),
}

impl Expr {
    /// An expression of `kind` at `span`.
    pub fn new(kind: ExprKind, span: Span) -> Expr {
        Expr { kind, span }
    }
}
