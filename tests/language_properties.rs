//! Property tests for the `.rasp` front end:
//! printing is stable under re-parsing, and no input text makes it panic.

use proptest::prelude::*;
use std::sync::Arc;
use tracr_opt::diagnostic::{SourceFile, Span};
use tracr_opt::lang::ast::*;
use tracr_opt::lang::load::load_source;
use tracr_opt::lang::parser::parse;
use tracr_opt::lang::printer::print_program;
use tracr_opt::value::{BinOp, CmpOp, Value};

fn span() -> Span {
    let f = Arc::new(SourceFile { name: "gen".into(), text: String::new() });
    Span::new(&f, 0, 0)
}

fn e(kind: ExprKind) -> Expr {
    Expr::new(kind, span())
}

fn ident(n: &str) -> Ident {
    Ident { name: n.to_string(), span: span() }
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("x".to_string()),
        Just("y".to_string()),
        Just("tokens".to_string()),
        Just("Map".to_string()),
        Just("sel_2".to_string()),
        "[a-z_][a-z0-9_]{0,6}".prop_filter("not a keyword", |s| !tracr_opt::lang::KEYWORDS.contains(&s.as_str())),
    ]
}

fn constant() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::Int),
        (0.0f64..1e20).prop_map(Value::Float),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::Float),
        "[a-z'\"\\\\ \n\t(){}]{0,6}".prop_map(Value::Str),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::None),
    ]
}

fn binop() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Arith(BinOp::Add)),
        Just(Op::Arith(BinOp::Sub)),
        Just(Op::Arith(BinOp::Mul)),
        Just(Op::Arith(BinOp::Div)),
        Just(Op::Arith(BinOp::FloorDiv)),
        Just(Op::Arith(BinOp::Mod)),
        Just(Op::Arith(BinOp::Pow)),
        Just(Op::BitAnd),
        Just(Op::BitOr),
    ]
}

fn cmpop() -> impl Strategy<Value = CmpOp> {
    prop_oneof![
        Just(CmpOp::Eq),
        Just(CmpOp::Ne),
        Just(CmpOp::Lt),
        Just(CmpOp::Le),
        Just(CmpOp::Gt),
        Just(CmpOp::Ge),
        Just(CmpOp::In),
        Just(CmpOp::NotIn),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![name().prop_map(|n| e(ExprKind::Name(n))), constant().prop_map(|v| e(ExprKind::Const(v)))];
    leaf.prop_recursive(5, 48, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(|v| e(ExprKind::Tuple(v))),
            prop::collection::vec(inner.clone(), 0..3).prop_map(|v| e(ExprKind::List(v))),
            prop::collection::vec(inner.clone(), 0..3).prop_map(|v| e(ExprKind::Set(v))),
            (
                prop_oneof![Just(UnaryOp::Neg), Just(UnaryOp::Pos), Just(UnaryOp::Not), Just(UnaryOp::Invert)],
                inner.clone()
            )
                .prop_map(|(op, x)| e(ExprKind::Unary(op, Box::new(x)))),
            (binop(), inner.clone(), inner.clone()).prop_map(|(op, l, r)| e(ExprKind::Binary(
                op,
                Box::new(l),
                Box::new(r)
            ))),
            (inner.clone(), prop::collection::vec((cmpop(), inner.clone()), 1..3))
                .prop_map(|(f, rest)| e(ExprKind::Compare(Box::new(f), rest))),
            (prop_oneof![Just(BoolOp::And), Just(BoolOp::Or)], inner.clone(), inner.clone())
                .prop_map(|(op, l, r)| e(ExprKind::Bool(op, Box::new(l), Box::new(r)))),
            (inner.clone(), inner.clone(), inner.clone()).prop_map(|(b, c, o)| e(ExprKind::IfElse {
                body: Box::new(b),
                cond: Box::new(c),
                orelse: Box::new(o)
            })),
            (prop::collection::btree_set(name(), 0..3), inner.clone()).prop_map(|(ps, b)| e(ExprKind::Lambda {
                params: ps.iter().map(|p| ident(p)).collect(),
                body: Box::new(b)
            })),
            (
                inner.clone(),
                prop::collection::vec(inner.clone(), 0..3),
                prop::collection::btree_map(name(), inner.clone(), 0..2)
            )
                .prop_map(|(f, args, kw)| e(ExprKind::Call {
                    func: Box::new(f),
                    args,
                    kwargs: kw.into_iter().map(|(k, v)| (ident(&k), v)).collect()
                })),
            (inner.clone(), name()).prop_map(|(o, n)| e(ExprKind::Attr(Box::new(o), ident(&n)))),
            (inner.clone(), inner.clone()).prop_map(|(o, i)| e(ExprKind::Index(Box::new(o), Box::new(i)))),
        ]
    })
}

fn stmts() -> impl Strategy<Value = Vec<Stmt>> {
    let simple = prop_oneof![
        (name(), expr()).prop_map(|(n, v)| Stmt::Assign { target: ident(&n), value: v }),
        expr().prop_map(Stmt::Expr),
        "[a-z/._]{1,8}".prop_map(|p| Stmt::Import { target: ImportTarget::Path(p), span: span() }),
        name().prop_map(|n| Stmt::Import { target: ImportTarget::Bundled(n), span: span() }),
    ];
    let def = (name(), prop::collection::btree_set(name(), 0..3), prop::collection::vec(simple.clone(), 0..3), expr())
        .prop_map(|(n, ps, mut body, ret)| {
            body.push(Stmt::Return { value: ret, span: span() });
            Stmt::Def { name: ident(&n), params: ps.iter().map(|p| ident(p)).collect(), body }
        });
    prop::collection::vec(prop_oneof![3 => simple, 1 => def], 1..5)
}

fn reparse(text: &str) -> Vec<Stmt> {
    let f = Arc::new(SourceFile { name: "printed.rasp".into(), text: text.to_string() });
    parse(&f).unwrap_or_else(|err| panic!("printed text does not parse:\n{text}\n{err}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn parse_print_parse_is_stable(program in stmts()) {
        let printed = print_program(&program);
        let again = print_program(&reparse(&printed));
        prop_assert_eq!(&printed, &again);
        // and once more: printing is a fixed point
        let third = print_program(&reparse(&again));
        prop_assert_eq!(again, third);
    }

    #[test]
    fn random_text_never_panics(text in "\\PC{0,200}") {
        let f = Arc::new(SourceFile { name: "random.rasp".into(), text });
        let _ = load_source(f, None);
    }

    #[test]
    fn random_token_soup_never_panics(parts in prop::collection::vec(prop_oneof![
        Just("Map"), Just("Select"), Just("Aggregate"), Just("SelectorWidth"), Just("tokens"), Just("indices"),
        Just("lambda"), Just("x"), Just(":"), Just("("), Just(")"), Just(","), Just("="), Just("\n"), Just("    "),
        Just("def"), Just("return"), Just("1"), Just("'a'"), Just("=="), Just("&"), Just("~"), Just("EQ"),
        Just("compile"), Just("vocab"), Just("{"), Just("}"), Just("numerical"), Just("if"), Just("else"),
        Just("**"), Just("//"), Just("."), Just("named"), Just("["), Just("]"), Just("import"), Just("length"),
    ], 0..60)) {
        let text = parts.join(" ");
        let f = Arc::new(SourceFile { name: "soup.rasp".into(), text });
        let _ = load_source(f, None);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for text in
        ["x = ".to_string() + &"(".repeat(5000) + &")".repeat(5000), "x = ".to_string() + &"-".repeat(5000) + "1"]
    {
        let f = Arc::new(SourceFile { name: "deep.rasp".into(), text });
        let err = load_source(f, None).unwrap_err().to_string();
        assert!(err.contains("nested too deeply"), "{err}");
    }
}

#[test]
fn the_bundled_programs_print_and_reparse_stably() {
    for b in tracr_opt::library::PROGRAMS {
        let printed = print_program(&reparse(b.source));
        assert_eq!(printed, print_program(&reparse(&printed)), "{}", b.name);
    }
}
