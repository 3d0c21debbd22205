//! With the heuristic allocator, the model's shape equals Tracr's for every
//! library program (src/library/tracr_reference.json, from Tracr itself):
//! layers, heads and residual width exactly; MLP width exactly except for the
//! two deliberate differences of docs/TRACR_DIFFERENCES.md, each checked here
//! against its stated reason.

mod common;

use common::*;
use tracr_opt::compiler::alloc::heuristic::Heuristic;
use tracr_opt::compiler::{compile, Options};
use tracr_opt::rasp::valueset::infer;
use tracr_opt::rasp::Op;

#[test]
fn heuristic_shapes_equal_tracr() {
    let reference = reference();
    for entry in reference["programs"].as_array().unwrap() {
        let tracr_name = entry["name"].as_str().unwrap();
        let causal = entry["causal"].as_bool().unwrap();
        let b = bundled_for_tracr(tracr_name);
        let p = bundled(b.name);
        let mut s = p.settings.clone().unwrap();
        s.causal = causal;
        let m = compile(&p, &s, &Heuristic, &Options::none()).unwrap().model;
        let c = &m.config;
        let want = |k: &str| entry[k].as_u64().unwrap() as usize;
        let ctx = format!("{} (causal={causal})", b.name);
        assert_eq!(c.n_layers, want("layers"), "{ctx}: layers");
        assert_eq!(c.n_heads, want("heads"), "{ctx}: heads");
        assert_eq!(c.d_model, want("d_model"), "{ctx}: residual width");
        let nonempty = |k: &str| {
            m.meta.layers.iter().filter(|l| if k == "attn" { !l.heads.is_empty() } else { !l.mlps.is_empty() }).count()
        };
        assert_eq!(nonempty("attn"), want("attn_layers"), "{ctx}: attention sublayers used");
        assert_eq!(nonempty("mlp"), want("mlp_layers"), "{ctx}: MLP sublayers used");

        let tracr_mlp = want("mlp_hidden");
        if c.d_mlp == tracr_mlp {
            continue;
        }
        let widest = m.meta.layers.iter().max_by_key(|l| l.mlp_width()).unwrap();
        if widest.mlps.iter().any(|x| x.role == "selector_width.mlp") {
            // Difference 1: no BOS clean-up neuron in SelectorWidth's MLP.
            assert_eq!(c.d_mlp + 1, tracr_mlp, "{ctx}: SelectorWidth MLP should be Tracr's minus its clean-up neuron");
        } else {
            // Difference 2: numerical-input MLPs step over the sound value set
            // of their input, which for means is larger than Tracr's {v/m}.
            assert!(c.d_mlp > tracr_mlp, "{ctx}");
            let vs = infer(&p, &s.vocab, s.max_seq_len).unwrap();
            for x in &widest.mlps {
                let id = p.find(&x.node).unwrap();
                let Op::Map { input, .. } = p.nodes[id].op else { panic!("{ctx}: {} is not a Map", x.node) };
                assert_eq!(
                    x.hidden,
                    2 * vs.of(input).len() - 1,
                    "{ctx}: {} steps over each value of its input",
                    x.node
                );
            }
        }
    }
}

#[test]
fn the_one_direction_is_laid_out_only_when_something_reads_it() {
    // Tracr's residual streams, measured with tracr-pypi's compile_rasp_to_model
    // at vocab {1, 2, 3}, max_seq_len 5: neither program has `one`
    // (categorical outputs need no bias), and frac_prevs does (its head reads it)
    let s = tracr_opt::Settings { vocab: (1..=3).map(tracr_opt::Value::Int).collect(), max_seq_len: 5, causal: false };
    let cases = [
        // indices:0-4, map:2-4, tokens:1-3, BOS, PAD
        ("y = Map(lambda t: t + 1, tokens)", 13),
        // indices:0-4, map:False/True, tokens:1-3, BOS, PAD
        ("x = numerical(Map(lambda t: t, tokens))\ny = Map(lambda v: v > 1, x)", 12),
    ];
    for (text, tracr_d_model) in cases {
        let text = format!("{text}\ncompile(y, vocab={{1, 2, 3}}, max_seq_len=5)\n");
        let p = tracr_opt::Program::from_rasp("p.rasp", &text).unwrap();
        let c = compile(&p, &s, &Heuristic, &Options::none()).unwrap();
        // without `one` the model is still exact, on every input
        let r = c.verify(&tracr_opt::VerifyOptions::default()).unwrap();
        assert!(r.exhaustive && r.ok(), "{text}: {r:?}");
        let m = c.model;
        assert_eq!(m.config.d_model, tracr_d_model, "{text}: {:?}", m.meta.residual_labels);
        assert!(!m.meta.residual_labels.iter().any(|l| l == "one"), "{:?}", m.meta.residual_labels);
    }
    let p = tracr_opt::Program::from_rasp("f.rasp", "f = numerical(Aggregate(Select(indices, indices, LEQ), numerical(Map(lambda t: 1 if t == 1 else 0, tokens)), default=0))\ncompile(f, vocab={1, 2, 3}, max_seq_len=5)\n").unwrap();
    let m = compile(&p, &s, &Heuristic, &Options::none()).unwrap().model;
    assert!(m.meta.residual_labels.iter().any(|l| l == "one"), "{:?}", m.meta.residual_labels);
}

#[test]
fn sequence_map_of_one_s_op_twice_is_a_map_as_in_tracr() {
    // Tracr (tracr-pypi, compile_rasp_to_model at vocab {1, 2, 3},
    // max_seq_len 5) compiles SequenceMap(f, tokens, tokens) as a Map of
    // f(x, x): 1 layer, d_model 15 (indices:0-4, tokens:1-3, BOS, PAD,
    // y:2-6), an MLP of 5 neurons (one per output value), no `one`.
    let s = tracr_opt::Settings { vocab: (1..=3).map(tracr_opt::Value::Int).collect(), max_seq_len: 5, causal: false };
    let text = "y = SequenceMap(lambda a, b: a + b, tokens, tokens)\ncompile(y, vocab={1, 2, 3}, max_seq_len=5)\n";
    let p = tracr_opt::Program::from_rasp("p.rasp", text).unwrap();
    let c = compile(&p, &s, &Heuristic, &Options::none()).unwrap();
    let r = c.verify(&tracr_opt::VerifyOptions::default()).unwrap();
    assert!(r.exhaustive && r.ok(), "{r:?}");
    let m = &c.model;
    assert_eq!((m.config.n_layers, m.config.d_model, m.config.d_mlp), (1, 15, 5), "{:?}", m.meta.residual_labels);
    assert!(!m.meta.residual_labels.iter().any(|l| l == "one"));
    // two different s-ops still get the pair table: |X|·|Y| neurons
    let text = "y = SequenceMap(lambda a, b: a + b, tokens, Map(lambda t: t, tokens))\ncompile(y, vocab={1, 2, 3}, max_seq_len=5)\n";
    let p = tracr_opt::Program::from_rasp("q.rasp", text).unwrap();
    let m = compile(&p, &s, &Heuristic, &Options::none()).unwrap().model;
    assert_eq!(m.meta.layers.iter().map(|l| l.mlp_width()).max(), Some(9));
}
