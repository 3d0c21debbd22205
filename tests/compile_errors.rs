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

#[test]
fn labels_that_name_another_direction_are_refused() {
    // an s-op called `one` would share the constant direction (the model was wrong and
    // only verification caught it)
    let e = compile_error(
        "one = numerical(Map(lambda x: 2 if x == 'a' else 0, tokens))\nout = numerical(Aggregate(Select(indices, indices, EQ), one, default=0))\ncompile(out, vocab={'a', 'b'}, max_seq_len=3)\n",
    );
    assert!(
        e.contains("'one' (map at p.rasp:1:17)") && e.contains("constant residual direction; rename the s-op"),
        "{e}"
    );
    let e = compile_error(
        "length_selector_width_attn_output = Map(lambda x: x, tokens)\nlength = SelectorWidth(Select(tokens, tokens, TRUE))\nout = SequenceMap(lambda a, b: a, length, length_selector_width_attn_output)\ncompile(out, vocab={'a'}, max_seq_len=3)\n",
    );
    assert!(
        e.contains("'length_selector_width_attn_output' (map at p.rasp:1:") && e.contains("selector width's internal"),
        "{e}"
    );
}

#[test]
fn json_tokens_with_another_label_are_refused() {
    // it used to compile to a model that answered None everywhere (d_model 0 reads)
    let text = tracr_opt::Program::load("reverse")
        .unwrap()
        .to_json(&tracr_opt::Program::load("reverse").unwrap().settings_with(None, None, None).unwrap())
        .unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    fn rename(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) if s == "tokens" => *s = "toks".into(),
            serde_json::Value::Array(a) => a.iter_mut().for_each(rename),
            serde_json::Value::Object(o) => o.iter_mut().filter(|(k, _)| *k != "op").for_each(|(_, x)| rename(x)),
            _ => {}
        }
    }
    doc["nodes"].as_array_mut().unwrap().iter_mut().for_each(rename);
    let p = tracr_opt::Program::from_json("toks.json", &doc.to_string()).unwrap();
    let s = p.settings_with(None, None, None).unwrap();
    for options in [tracr_opt::CompileOptions::default(), tracr_opt::CompileOptions::baseline()] {
        let e = match tracr_opt::compile(&p, &s, &options) {
            Ok(_) => panic!("a tokens node labelled 'toks' compiled"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains("'toks'") && e.contains("the input tokens must be labelled 'tokens'"), "{e}");
    }
}

/// Found by the fuzz smoke pass: an infinite default (`1e309`) gave a model
/// that answered inf everywhere (verification caught it, `--no-verify`
/// would have written it).
#[test]
fn non_finite_numbers_are_refused() {
    let e = compile_error(
        "b = numerical(Map(lambda t: 1 if t == 'x' else 0, tokens))\nout = numerical(Aggregate(Select(indices, indices, LEQ), b, default=1e309))\ncompile(out, vocab={'a', 'x'}, max_seq_len=3)\n",
    );
    assert!(e.contains("cannot compile 'out'") && e.contains("needs a finite number as default, not inf"), "{e}");
    let e = compile_error(
        "big = numerical(Map(lambda t: float('inf') if t == 'x' else 0, tokens))\ncompile(big, vocab={'a', 'x'}, max_seq_len=3)\n",
    );
    assert!(e.contains("cannot compile 'big'") && e.contains("inf is not a finite number"), "{e}");
}
