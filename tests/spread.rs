//! MLP neuron spreading (src/compiler/spread.rs): it fires on a generated
//! program, splits an MLP across layers between its inputs and its readers,
//! narrows the widest MLP and the dense parameter count, and the model
//! verifies on every input.

use tracr_opt::library::random::random_program_text;
use tracr_opt::{compile, CompileOptions, Program, VerifyOptions};

#[test]
fn spreading_an_mlp_across_layers_narrows_the_model_and_stays_exact() {
    let p = Program::from_rasp("random10_208.rasp", &random_program_text(10, 208)).unwrap();
    let s = p.settings.clone().unwrap();
    let spread = compile(&p, &s, &CompileOptions::default()).unwrap();
    let kept = compile(&p, &s, &CompileOptions { spread_neurons: false, ..CompileOptions::default() }).unwrap();
    let report = spread.spread.as_ref().expect("spreading fires on random10_208");
    assert!(kept.spread.is_none());
    // the same allocation otherwise: the same layers, and d_mlp as reported
    assert_eq!(spread.model.config.n_layers, kept.model.config.n_layers);
    assert_eq!(report.d_mlp, (kept.model.config.d_mlp, spread.model.config.d_mlp));
    assert!(spread.model.config.d_mlp < kept.model.config.d_mlp, "{:?}", report);
    assert!(spread.model.params() < kept.model.params(), "{} vs {}", spread.model.params(), kept.model.params());
    assert!(spread.model.config.d_model <= kept.model.config.d_model);
    // a block in parts over different layers, each with some neurons
    let (_, parts) = &report.split[0];
    assert!(parts.len() > 1 && parts.iter().all(|(_, n)| *n > 0), "{parts:?}");
    assert!(parts.windows(2).all(|w| w[0].0 < w[1].0), "{parts:?}");
    let placed: usize =
        spread.model.meta.layers.iter().flat_map(|l| &l.mlps).filter(|m| m.role != "erase").map(|m| m.hidden).sum();
    let unsplit: usize =
        kept.model.meta.layers.iter().flat_map(|l| &l.mlps).filter(|m| m.role != "erase").map(|m| m.hidden).sum();
    assert_eq!(placed, unsplit, "every neuron placed once");
    // exact on every input (vocab 5, max_seq_len 5: 3 905 inputs)
    let r = spread.verify(&VerifyOptions::default()).unwrap();
    assert!(r.exhaustive && r.ok(), "{r:?}");
    assert_eq!(r.inputs, 3905);
}

/// Where no split narrows the model nothing changes: every bundled
/// program's model is the one without spreading.
#[test]
fn spreading_leaves_bundled_programs_alone_unless_it_narrows_them() {
    for b in tracr_opt::library::PROGRAMS {
        let p = Program::load(b.name).unwrap();
        let s = p.settings.clone().unwrap();
        let with = compile(&p, &s, &CompileOptions::default()).unwrap();
        let without = compile(&p, &s, &CompileOptions { spread_neurons: false, ..CompileOptions::default() }).unwrap();
        match &with.spread {
            None => assert_eq!(with.model.params(), without.model.params(), "{}", b.name),
            Some(r) => assert!(with.model.config.d_mlp < without.model.config.d_mlp, "{}: {r:?}", b.name),
        }
    }
}
