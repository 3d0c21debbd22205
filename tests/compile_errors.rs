//! Programs the compiler cannot turn into a model get an error naming the s-op
//! and why. Compiled without any rewrite: some rewrites make these programs
//! compilable (a numerical Map of tokens folds into the embedding; `|` over
//! different s-ops gets a joint key), and lowering's own refusals are what is
//! tested here.

use std::sync::Arc;
use tracr_opt::compiler::alloc::heuristic::Heuristic;
use tracr_opt::compiler::{compile, Options};
use tracr_opt::diagnostic::SourceFile;
use tracr_opt::lang::load::load_source;

fn compile_error(text: &str) -> String {
    let file = Arc::new(SourceFile { name: "p.rasp".into(), text: text.into() });
    let p = load_source(file, None).unwrap();
    let s = p.settings.clone().unwrap();
    match compile(&p, &s, &Heuristic, &Options { rewrite: None, ..Options::none() }) {
        Ok(_) => panic!("expected a compile error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn categorical_aggregate_that_can_mix_values_is_refused() {
    let e = compile_error(
        "out = Aggregate(Select(indices, indices, LEQ), tokens)\ncompile(out, vocab={'a', 'b'}, max_seq_len=3)\n",
    );
    assert!(e.contains("cannot compile 'out' (aggregate at p.rasp:1:7)"), "{e}");
    assert!(e.contains("can select several positions holding different values of 'tokens'"), "{e}");
}

#[test]
fn numerical_select_keys_are_refused() {
    let e = compile_error(
        "x = numerical(Map(lambda t: 1, tokens))\nout = SelectorWidth(Select(x, x, EQ))\ncompile(out, vocab={'a'}, max_seq_len=3)\n",
    );
    assert!(e.contains("cannot compile 'out'") && e.contains("reads the numerical s-op 'x'"), "{e}");
}

#[test]
fn sequence_map_of_numerical_is_refused() {
    let e = compile_error(
        "x = numerical(Map(lambda t: 1, tokens))\nout = SequenceMap(lambda a, b: a, x, tokens)\ncompile(out, vocab={'a'}, max_seq_len=3)\n",
    );
    assert!(e.contains("cannot compile 'out'") && e.contains("its input 'x' is numerical"), "{e}");
}

#[test]
fn categorical_aggregate_of_numerical_is_refused() {
    let e = compile_error(
        "x = numerical(Map(lambda t: 1, tokens))\nout = Aggregate(Select(indices, indices, EQ), x)\ncompile(out, vocab={'a'}, max_seq_len=3)\n",
    );
    assert!(e.contains("it is categorical but aggregates the numerical s-op 'x'"), "{e}");
}

#[test]
fn or_of_selectors_over_different_sops_needs_the_joint_rewrite() {
    let e = compile_error(
        "s = Select(tokens, tokens, EQ) | Select(indices, indices, LEQ)\nout = SelectorWidth(s)\ncompile(out, vocab={'a', 'b'}, max_seq_len=3)\n",
    );
    assert!(e.contains("combines selects over different s-ops"), "{e}");
}

#[test]
fn reserved_token_names_are_refused() {
    let e = compile_error("out = tokens == 'a'\ncompile(out, vocab={'a', 'BOS'}, max_seq_len=3)\n");
    assert!(e.contains("'BOS' is reserved"), "{e}");
}
