//! Primitives and encodings the bundled programs do not use (or Tracr refuses)
//! compile and verify on every input, causal and not.

use std::sync::Arc;
use tracr_opt::compiler::alloc::heuristic::Heuristic;
use tracr_opt::compiler::{compile, Options};
use tracr_opt::diagnostic::SourceFile;
use tracr_opt::lang::load::load_source;
use tracr_opt::verify::{inputs_for, verify, Plan};

fn verifies(name: &str, body: &str, settings: &str) {
    let text = format!("{body}\ncompile(out, {settings})\n");
    let file = Arc::new(SourceFile { name: format!("{name}.rasp"), text });
    let p = load_source(file, None).unwrap_or_else(|e| panic!("{name}: {e}"));
    for causal in [false, true] {
        let mut s = p.settings.clone().unwrap();
        s.causal = causal;
        let c = compile(&p, &s, &Heuristic, &Options::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (inputs, exhaustive) = inputs_for(&s.vocab, s.max_seq_len, &Plan { samples: 500, seed: 1, threads: 0 });
        let r = verify(&c.model, &c.tabulated, &inputs, exhaustive);
        assert!(
            r.ok() && r.inputs > 0,
            "{name} causal={causal}: {} of {} mismatch, e.g. {:?}",
            r.mismatches,
            r.inputs,
            r.examples.first()
        );
    }
}

const SMALL: &str = "vocab={1, 2, 3}, max_seq_len=4";

#[test]
fn length_primitive_compiles() {
    verifies("length", "out = length - indices", SMALL);
}

#[test]
fn constants_compile_through_the_embedding() {
    verifies("full", "out = Full(7) + tokens", SMALL);
    verifies(
        "full_numerical",
        "c = numerical(Full(0.5))\nout = numerical(Aggregate(Select(indices, indices, LEQ), c, default=0))",
        SMALL,
    );
}

#[test]
fn aggregate_defaults_other_than_none_and_zero() {
    verifies(
        "cat_default",
        "out = Aggregate(Select(indices, indices, lambda k, q: q == k + 1), tokens, default=9)",
        SMALL,
    );
    verifies(
        "num_default",
        "x = numerical(Map(lambda t: t / 2, tokens))\nout = numerical(Aggregate(Select(tokens, tokens, GT), x, default=-1.5))",
        SMALL,
    );
}

#[test]
fn categorical_to_numerical_with_negative_values() {
    verifies("neg", "out = numerical(Map(lambda t: 2 - t, tokens))", SMALL);
}

#[test]
fn numerical_mean_of_categorical_numbers() {
    verifies("mean", "out = numerical(Aggregate(Select(indices, indices, LEQ), tokens, default=0))", SMALL);
}

#[test]
fn numerical_to_numerical_and_categorical_maps() {
    verifies(
        "num_maps",
        "frac = numerical(Aggregate(Select(indices, indices, LEQ), numerical(tokens == 1), default=0))\n\
         twice = numerical(Map(lambda x: 2 * x, frac))\n\
         out = Map(lambda x: round(x, 1), twice)",
        SMALL,
    );
}

#[test]
fn selector_logic_on_the_same_sops_and_true() {
    verifies("not", "out = SelectorWidth(~Select(tokens, tokens, EQ))", SMALL);
    verifies("and", "out = SelectorWidth(Select(indices, indices, LEQ) & Select(indices, indices, GEQ))", SMALL);
    verifies("or_true", "out = SelectorWidth(Select(tokens, tokens, TRUE) | Select(tokens, tokens, LT))", SMALL);
}

#[test]
fn none_flows_through_maps_and_selects() {
    verifies(
        "none",
        "prev = Aggregate(Select(indices, indices, lambda k, q: q == k + 1), tokens)\n\
         bigger = SequenceMap(lambda a, b: a > b, prev, tokens)\n\
         out = SelectorWidth(Select(prev, tokens, EQ)) + Map(lambda x: 0, bigger)",
        SMALL,
    );
}

#[test]
fn string_and_tuple_values() {
    verifies(
        "strings",
        "pair = SequenceMap(lambda t, i: (t, i % 2), tokens, indices)\nout = Map(lambda p: p[0] + str(p[1]), pair)",
        "vocab={'x', 'y'}, max_seq_len=4",
    );
}
