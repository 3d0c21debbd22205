//! Bad program text gets a clear error at file:line:col with the text underlined.

use std::sync::Arc;
use tracr_opt::diagnostic::SourceFile;
use tracr_opt::lang::load::load_source;
use tracr_opt::rasp::valueset::infer;

fn error_of(text: &str) -> String {
    let file = Arc::new(SourceFile { name: "prog.rasp".into(), text: text.into() });
    match load_source(file, None) {
        Ok(p) => {
            // some errors only show once functions meet their value sets
            let s = p.settings.clone().expect("test programs declare settings");
            match infer(&p, &s.vocab, s.max_seq_len) {
                Ok(_) => panic!("expected an error for:\n{text}"),
                Err(e) => e.to_string(),
            }
        }
        Err(e) => e.to_string(),
    }
}

/// Asserts the message, the location and the underline.
fn check(text: &str, location: &str, message: &str, underlined: &str) {
    let e = error_of(text);
    assert!(e.starts_with(&format!("{location}: error: ")), "wrong location in:\n{e}");
    assert!(e.contains(message), "message {message:?} missing in:\n{e}");
    let lines: Vec<&str> = e.lines().collect();
    let caret_line = lines.iter().find(|l| l.contains('^')).expect("an underline");
    let code_line = lines[lines.iter().position(|l| l.contains('^')).unwrap() - 1];
    let start = caret_line.find('^').unwrap();
    let width = caret_line.matches('^').count();
    let code = &code_line[start..start + width];
    assert_eq!(code, underlined, "underline in:\n{e}");
}

const SETTINGS: &str = "\ncompile(out, vocab={1, 2, 3}, max_seq_len=4)\n";

#[test]
fn unknown_name() {
    check(&format!("out = Map(lambda x: x, tokenz){SETTINGS}"), "prog.rasp:1:24", "unknown name 'tokenz'", "tokenz");
}

#[test]
fn selector_where_an_sop_is_expected() {
    let text = format!("sel = Select(tokens, tokens, EQ)\nout = Map(lambda x: x + 1, sel){SETTINGS}");
    check(&text, "prog.rasp:2:28", "Map's second argument must be an s-op, found a selector", "sel");
}

#[test]
fn sop_where_a_selector_is_expected() {
    let text = format!("out = Aggregate(tokens, tokens){SETTINGS}");
    check(&text, "prog.rasp:1:17", "Aggregate's first argument must be a selector, found an s-op", "tokens");
}

#[test]
fn lambda_arity() {
    let text = format!("out = SequenceMap(lambda x: x, tokens, indices){SETTINGS}");
    check(&text, "prog.rasp:1:19", "SequenceMap needs a function of 2 arguments, this one takes 1", "lambda x: x");
}

#[test]
fn lambda_that_raises_names_the_value() {
    let text = format!("out = Map(lambda x: 6 // (x - 2), tokens){SETTINGS}");
    check(
        &text,
        "prog.rasp:1:11",
        "raises ZeroDivisionError: integer division or modulo by zero on input value 2",
        "lambda x: 6 // (x - 2)",
    );
}

#[test]
fn predicate_that_raises_names_the_values() {
    let text = format!("sel = Select(tokens, tokens, lambda k, q: k < 'a')\nout = SelectorWidth(sel){SETTINGS}");
    check(&text, "prog.rasp:1:30", "on input values (1, 1)", "lambda k, q: k < 'a'");
}

#[test]
fn unsupported_construct() {
    check("for x in tokens:\n    pass\n", "prog.rasp:1:5", "expected end of line, found 'x'", "x");
    check("out = tokens and indices\n", "prog.rasp:1:7", "use '&'", "tokens and indices");
    check("out = tokens[0]\n", "prog.rasp:1:7", "an s-op cannot be indexed; use Map on s-ops", "tokens[0]");
}

#[test]
fn syntax_errors() {
    check("out = Map(lambda x: x, tokens\n", "prog.rasp:1:10", "'(' was never closed", "(");
    check("out = Map(lambda x: x, tokens))\n", "prog.rasp:1:31", "expected end of line, found ')'", ")");
    check("out = 'abc\n", "prog.rasp:1:7", "unterminated string literal", "'abc");
    check("out = 1 $ 2\n", "prog.rasp:1:9", "unexpected character '$'", "$");
    check("def f(x):\nreturn x\n", "prog.rasp:2:1", "expected an indented block", "return");
}

#[test]
fn missing_output_and_bad_settings() {
    let file = Arc::new(SourceFile { name: "p.rasp".into(), text: "x = tokens\n".into() });
    let e = load_source(file, None).unwrap_err().to_string();
    assert!(e.contains("no output s-op"), "{e}");
    check(
        "compile(tokens, vocab={1}, max_seq_len=0)\n",
        "prog.rasp:1:40",
        "max_seq_len must be a positive int, found 0",
        "0",
    );
    check("compile(tokens, vocab={1}, max_len=3)\n", "prog.rasp:1:28", "unknown compile setting 'max_len'", "max_len");
}

#[test]
fn function_call_arity_names_the_definition() {
    let text = format!("def f(a, b):\n    return a\nout = f(tokens){SETTINGS}");
    let e = error_of(&text);
    assert!(e.starts_with("prog.rasp:3:7: error: 'f' takes 2 arguments but 1 were given"), "{e}");
    assert!(e.contains("defined at prog.rasp:1:5"), "{e}");
}

#[test]
fn a_long_chain_of_operators_is_refused_not_a_stack_overflow() {
    // 9 000 chained `+ 1` aborted compile, eval and convert (stack overflow
    // in the recursive passes over the expression tree); now it is an error
    // that shows a window of the line, not all of it
    let text =
        format!("x = Map(lambda t: t{}, tokens)\ncompile(x, vocab={{1, 2}}, max_seq_len=3)\n", " + 1".repeat(9000));
    let e = error_of(&text);
    assert!(e.contains("expression too long: more than 2000 operators in one chain"), "{}", &e[..e.len().min(400)]);
    assert!(e.starts_with("prog.rasp:1:"), "{}", &e[..e.len().min(200)]);
    assert!(e.len() < 1000, "the message is {} bytes", e.len());
    // just under the limit, every pass that walks the tree runs
    let text =
        format!("x = Map(lambda t: t{}, tokens)\ncompile(x, vocab={{1, 2}}, max_seq_len=3)\n", " + 1".repeat(1990));
    let file = Arc::new(SourceFile { name: "long.rasp".into(), text });
    let p = load_source(file, None).unwrap();
    let s = p.settings.clone().unwrap();
    let c = tracr_opt::compile(&p, &s, &tracr_opt::CompileOptions::default()).unwrap();
    assert!(c.verify(&tracr_opt::VerifyOptions::default()).unwrap().ok());
    assert!(p.to_json(&s).unwrap().contains("\"format\""));
    assert_eq!(p.evaluate(&[tracr_opt::Value::Int(1)], false).unwrap(), vec![tracr_opt::Value::Int(1991)]);
}
