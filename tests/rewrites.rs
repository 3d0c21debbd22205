//! Graph rewrites (src/compiler/rewrite.rs), rule tables and head sharing:
//! each fires where it should and not where it must not, and every rewritten
//! model verifies against the original program on every input.

mod common;

use common::*;
use std::sync::Arc;
use tracr_opt::compiler::alloc::ilp::{Ilp, Objective};
use tracr_opt::compiler::rewrite::RewriteOptions;
use tracr_opt::compiler::{compile, Compiled, Options};
use tracr_opt::diagnostic::SourceFile;
use tracr_opt::lang::load::load_source;
use tracr_opt::library::PROGRAMS;
use tracr_opt::rasp::Program;
use tracr_opt::verify::{inputs_for, verify, Plan};

fn ilp() -> Ilp {
    Ilp { objectives: vec![Objective::Layers, Objective::Params], time_limit: 5.0, emit_lp: None }
}

fn source(text: &str) -> Program {
    load_source(Arc::new(SourceFile { name: "t.rasp".into(), text: text.into() }), None).unwrap()
}

/// Compiles with `options`, checks the model on every input, causal and not.
fn compiled(p: &Program, options: &Options) -> Compiled {
    let mut out = None;
    for causal in [true, false] {
        let mut s = p.settings.clone().unwrap();
        s.causal = causal;
        let c = compile(p, &s, &ilp(), options).unwrap_or_else(|e| panic!("{}: {e}", p.name));
        let (inputs, exhaustive) = inputs_for(&s.vocab, s.max_seq_len, &Plan { samples: 500, seed: 1, threads: 0 });
        let r = verify(&c.model, &c.tabulated, &inputs, exhaustive);
        assert!(r.ok(), "{} (causal={causal}): {} mismatches, e.g. {:?}", p.name, r.mismatches, r.examples.first());
        out = Some(c);
    }
    out.unwrap()
}

/// No graph-level rewrite, and no residual sharing (which would blur what a
/// rewrite alone does to d_model).
fn baseline() -> Options {
    Options { share_residual: false, ..Options::without_rewrites() }
}

fn only(f: impl FnOnce(&mut RewriteOptions)) -> Options {
    let mut r = RewriteOptions::none();
    f(&mut r);
    Options { rewrite: Some(r), ..baseline() }
}

fn passes(c: &Compiled) -> Vec<&'static str> {
    c.rewrites.iter().map(|r| r.pass).collect()
}

fn tracr_layers(name: &str) -> u64 {
    reference()["programs"].as_array().unwrap().iter().find(|e| e["name"] == name && e["causal"] == false).unwrap()
        ["layers"]
        .as_u64()
        .unwrap()
}

#[test]
fn folding_makes_frac_prevs_one_attention_layer() {
    assert_eq!(tracr_layers("make_frac_prevs"), 2);
    let p = bundled("frac_prevs");
    let on = compiled(&p, &only(|r| r.fold = true));
    assert_eq!(on.model.config.n_layers, 1);
    assert!(passes(&on).contains(&"fold"));
    // the token one-hot is read by nothing once `bools` is in the embedding
    assert!(!on.model.meta.residual_labels.iter().any(|l| l == "tokens:x"), "{:?}", on.model.meta.residual_labels);
    assert_eq!(on.model.meta.layers[0].mlp_width(), 0);
    let off = compiled(&p, &baseline());
    assert_eq!(off.model.config.n_layers, 2);
    assert!(on.model.config.d_model < off.model.config.d_model);
}

#[test]
fn folding_leaves_functions_of_length_alone() {
    let p = source("out = Map(lambda n: n + 1, length)\ncompile(out, vocab={'a', 'b'}, max_seq_len=4)\n");
    let c = compiled(&p, &only(|r| r.fold = true));
    assert!(c.rewrites.is_empty(), "{:?}", c.rewrites);
    assert!(c.model.meta.layers.iter().any(|l| l.mlps.iter().any(|m| m.node == "out")));
}

#[test]
fn fusion_gives_reverse_fewer_layers_than_tracr() {
    assert_eq!(tracr_layers("make_reverse"), 4);
    let p = bundled("reverse");
    let on = compiled(&p, &only(|r| r.fuse = true));
    assert_eq!(on.model.config.n_layers, 3);
    assert!(passes(&on).contains(&"fuse"));
    let off = compiled(&p, &baseline());
    assert_eq!(off.model.config.n_layers, 4);
}

#[test]
fn fusion_respects_the_width_cap() {
    let p = bundled("reverse");
    let capped = compiled(
        &p,
        &only(|r| {
            r.fuse = true;
            r.max_mlp_width = Some(5)
        }),
    );
    assert_eq!(capped.model.config.n_layers, 4);
    assert!(capped.rewrites.iter().any(|r| r.pass == "fuse" && r.what.starts_with("kept")), "{:?}", capped.rewrites);
}

#[test]
fn fusion_keeps_an_intermediate_that_others_read() {
    // `a` is also read by a selector: it must be computed, so nothing absorbs
    // it; `b` has one reader and is absorbed by `out`
    let p = source(
        "a = SequenceMap(lambda n, i: n - i, length, indices)\nb = Map(lambda x: x * 2, a)\nw = SelectorWidth(Select(a, a, EQ))\nout = SequenceMap(lambda x, y: x + y, b, w)\ncompile(out, vocab={'a'}, max_seq_len=4)\n",
    );
    let c = compiled(&p, &only(|r| r.fuse = true));
    assert!(c.compiled_program.find("a").is_some());
    assert!(c.compiled_program.find("b").is_none());
    let out = c.compiled_program.find("out").unwrap();
    let inputs: Vec<&str> =
        c.compiled_program.nodes[out].op.inputs().iter().map(|i| c.compiled_program.nodes[*i].label.as_str()).collect();
    assert_eq!(inputs, vec!["a", "w"]);
}

#[test]
fn cse_computes_duplicates_once_and_only_duplicates() {
    let p = source(
        "a = SelectorWidth(Select(tokens, tokens, EQ))\nb = SelectorWidth(Select(tokens, tokens, EQ))\nd = SelectorWidth(Select(tokens, tokens, LT))\nout = SequenceMap(lambda x, y: x + y, SequenceMap(lambda x, y: x + y, a, b), d)\ncompile(out, vocab={'a', 'b'}, max_seq_len=3)\n",
    );
    let on = compiled(&p, &only(|r| r.cse = true));
    let off = compiled(&p, &baseline());
    let heads = |c: &Compiled| c.model.meta.layers.iter().map(|l| l.heads.len()).sum::<usize>();
    assert_eq!(heads(&off), 3);
    assert_eq!(heads(&on), 2, "a and b merged, d (LT) kept");
    assert!(on.rewrites.iter().any(|r| r.pass == "cse" && r.what.contains("'b'")));
}

#[test]
fn head_sharing_merges_equal_patterns_only() {
    let p = bundled("shuffle_dyck");
    let shared = compiled(&p, &Options { share_heads: true, ..baseline() });
    let apart = compiled(&p, &baseline());
    let layer_of = |c: &Compiled, node: &str| {
        c.model
            .meta
            .layers
            .iter()
            .find(|l| l.heads.iter().any(|h| h.node.split('+').any(|n| n == node)))
            .unwrap()
            .clone()
    };
    // opens and closes aggregate over the same selector in one layer
    assert_eq!(layer_of(&apart, "opens").heads.len(), 2);
    let l = layer_of(&shared, "opens");
    assert_eq!(l.heads.len(), 1);
    assert_eq!(l.heads[0].node, "opens+closes");
    assert_eq!(l.heads[0].ov_rank, 2);
    // composite_select's two first-layer heads attend differently: never merged
    let c = compiled(&bundled("composite_select"), &Options::default());
    assert_eq!(c.model.meta.layers[0].heads.len(), 2);
}

#[test]
fn rule_tables_use_one_neuron_per_rule() {
    // `x` is indices copied by a head, so no pair of (length, x) is known to
    // be unreachable: the grouping alone is measured
    let p = source(
        "x = Aggregate(Select(indices, indices, EQ), indices)\nout = SequenceMap(lambda n, i: n > i, length, x)\ncompile(out, vocab={'a'}, max_seq_len=5)\n",
    );
    let width =
        |c: &Compiled| c.model.meta.layers.iter().flat_map(|l| &l.mlps).find(|m| m.node == "out").unwrap().hidden;
    let rules = compiled(&p, &Options { rule_tables: true, ..baseline() });
    let pairs = compiled(&p, &baseline());
    // 5 lengths x 5 indices in Tracr's layout; per length, one neuron per
    // output value: True and False for lengths 1-4, only True for 5
    assert_eq!(width(&pairs), 25);
    assert_eq!(width(&rules), 9);
}

#[test]
fn composite_selectors_compile_into_the_bundled_library() {
    let b = tracr_opt::library::find("composite_select").expect("bundled");
    assert!(b.source.contains(" & ") && b.source.contains(" | ") && b.source.contains('~'));
    let p = bundled("composite_select");
    let c = compiled(&p, &Options::default());
    assert!(passes(&c).contains(&"joint selector"));
    // & and ~ over different s-ops: one head each, no joint s-op
    let layer0: Vec<&str> = c.model.meta.layers[0].heads.iter().map(|h| h.node.as_str()).collect();
    assert!(layer0.contains(&"n_before") && layer0.contains(&"n_other_upto"), "{layer0:?}");
    assert!(c.compiled_program.find("same_before_keys").is_none());
    // without the rewrite, `|` is refused with the selector named
    let s = p.settings.clone().unwrap();
    let e = compile(&p, &s, &ilp(), &Options { rewrite: None, ..Options::none() }).err().expect("refused").to_string();
    assert!(e.contains("'other_or_me'"), "{e}");
}

#[test]
fn each_rewrite_alone_keeps_every_bundled_program_exact() {
    let variants: Vec<(&str, Options)> = vec![
        ("cse", only(|r| r.cse = true)),
        ("fold", only(|r| r.fold = true)),
        ("fuse", only(|r| r.fuse = true)),
        // (only the joint-selector rewrite, which composite_select needs)
        ("rule tables", Options { rule_tables: true, ..only(|_| {}) }),
        ("head sharing", Options { share_heads: true, ..only(|_| {}) }),
    ];
    for b in PROGRAMS.iter().filter(|b| b.name != "shuffle_dyck3") {
        for (name, options) in &variants {
            let p = bundled(b.name);
            eprintln!("{} with {name} alone", b.name);
            compiled(&p, options);
        }
    }
}

#[test]
fn rule_tables_skip_pairs_that_never_occur_together() {
    // reverse's fused `length - indices - 1` reads (length, index) pairs; only
    // index < length occurs: 15 of the 6 x 5 pairs of the value sets
    let p = bundled("reverse");
    let width = |c: &Compiled| {
        c.model.meta.layers.iter().flat_map(|l| &l.mlps).find(|m| m.node == "opp_idx_minus_1").unwrap().hidden
    };
    let rules = compiled(&p, &Options::default());
    let pairs = compiled(&p, &Options { rule_tables: false, ..Options::default() });
    assert_eq!(width(&pairs), 30);
    assert_eq!(width(&rules), 15);
}
