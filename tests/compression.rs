//! Gradient-descent compression (`tracr-opt compress`, docs/COMPRESSION.md)
//! and the exact residual rotation (`compile --rotate`).

use std::process::Command;
use tracr_opt::compress::{compress, Init, Options};
use tracr_opt::model::project::{fold, rotate};
use tracr_opt::{compile, CompileOptions, Model, Program, VerifyOptions};

/// A fresh, empty directory for one test.
fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tracr-opt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn exe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tracr-opt"))
}

fn baseline(name: &str) -> tracr_opt::Compiled {
    let p = Program::load(name).unwrap();
    let s = p.settings_with(None, None, None).unwrap();
    compile(&p, &s, &CompileOptions::baseline()).unwrap()
}

/// Largest |a - b| over every weight of two models of the same shape.
fn max_weight_difference(a: &Model, b: &Model) -> f64 {
    let mut worst = 0.0f64;
    let mut see = |x: &[f64], y: &[f64]| {
        assert_eq!(x.len(), y.len());
        for (p, q) in x.iter().zip(y) {
            worst = worst.max((p - q).abs());
        }
    };
    see(a.w_e.as_slice().unwrap(), b.w_e.as_slice().unwrap());
    see(a.w_pos.as_slice().unwrap(), b.w_pos.as_slice().unwrap());
    see(a.w_u.as_slice().unwrap(), b.w_u.as_slice().unwrap());
    for (la, lb) in a.layers.iter().zip(&b.layers) {
        for (x, y) in [(&la.w_q, &lb.w_q), (&la.w_k, &lb.w_k), (&la.w_v, &lb.w_v), (&la.w_o, &lb.w_o)] {
            see(x.as_slice().unwrap(), y.as_slice().unwrap());
        }
        see(la.w_in.as_slice().unwrap(), lb.w_in.as_slice().unwrap());
        see(la.w_out.as_slice().unwrap(), lb.w_out.as_slice().unwrap());
    }
    worst
}

#[test]
fn identity_folds_to_the_same_model() {
    for name in ["frac_prevs", "reverse", "sort_unique"] {
        for compiled in [baseline(name), {
            let p = Program::load(name).unwrap();
            let s = p.settings_with(None, None, None).unwrap();
            compile(&p, &s, &CompileOptions::default()).unwrap()
        }] {
            let m = &compiled.model;
            let id = ndarray::Array2::<f64>::eye(m.config.d_model);
            let folded = fold(m, &id);
            assert!(max_weight_difference(m, &folded) <= 1e-9, "{name}");
            // and it runs the same on every input
            let (ra, rb) = (m.runner().unwrap(), folded.runner().unwrap());
            let vocab = m.vocab().unwrap();
            for input in tracr_opt::rasp::inputs::all(&vocab, m.config.n_ctx - 1) {
                let ids = ra.encode(&input).unwrap();
                let d = (&ra.logits(&ids) - &rb.logits(&ids)).iter().fold(0.0f64, |w, x| w.max(x.abs()));
                assert!(d <= 1e-9, "{name} {input:?}: {d}");
            }
        }
    }
}

#[test]
fn full_width_compression_keeps_the_model_exact() {
    // K = D: the starting W is a rotation, so the model starts exact
    let c = baseline("frac_prevs");
    let d = c.model.config.d_model;
    let opts = Options { steps: 0, f32_weights: false, ..Options::new(d) };
    let out = compress(&c.model, &c.tabulated, "baseline", &opts, &mut |_| {}).unwrap();
    let meta = out.model.meta.compression.as_ref().unwrap();
    assert_eq!(meta.accuracy, 1.0);
    assert!(meta.output_mse < 1e-18, "{}", meta.output_mse);
    assert!(meta.exhaustive);
}

#[test]
fn training_lowers_the_loss_and_is_deterministic_for_a_seed() {
    let c = baseline("frac_prevs");
    // no annealing here: every step's loss is then the same objective
    let opts =
        Options { steps: 150, seed: 3, sharpness_from: 1.0, init: Init::Random, lrs: vec![0.01], ..Options::new(8) };
    let run = |o: &Options| compress(&c.model, &c.tabulated, "baseline", o, &mut |_| {}).unwrap();
    let a = run(&opts);
    let first = a.history.first().unwrap().loss;
    let last = a.history.iter().rev().take(10).map(|s| s.loss).sum::<f64>() / 10.0;
    assert!(last < 0.5 * first, "loss {first} → {last}");
    let b = run(&opts);
    assert_eq!(a.w, b.w, "the same seed gives the same W");
    let write = |m: &Model, dir: &std::path::Path| {
        m.save(dir, tracr_opt::DType::F32).unwrap();
        std::fs::read(dir.join("model.safetensors")).unwrap()
    };
    let tmp = temp_dir("compress-determinism");
    assert_eq!(write(&a.model, &tmp.join("a")), write(&b.model, &tmp.join("b")), "byte-identical weights");
    assert_eq!(
        std::fs::read(tmp.join("a/tracr_opt.json")).unwrap(),
        std::fs::read(tmp.join("b/tracr_opt.json")).unwrap()
    );
    let other = run(&Options { seed: 4, ..opts });
    assert_ne!(a.w, other.w, "another seed gives another W");
}

#[test]
fn frac_prevs_compresses_from_14_to_6_dimensions() {
    // the Tracr paper's result, with the defaults `compress` uses
    let c = baseline("frac_prevs");
    assert_eq!(c.model.config.d_model, 14, "Tracr's layout has 14 dimensions");
    let out = compress(&c.model, &c.tabulated, "baseline", &Options::new(6), &mut |_| {}).unwrap();
    let meta = out.model.meta.compression.as_ref().unwrap();
    assert!(meta.exhaustive && meta.inputs == 1364, "measured on every input");
    let within = meta.accuracy_within_0_05.unwrap();
    assert!(within >= 0.95, "only {within} of positions within 0.05 at K = 6");
    assert_eq!(out.model.config.d_model, 6);
    assert!(meta.lossy && meta.from_d_model == 14);
}

#[test]
fn rotated_models_are_exact_for_every_bundled_program() {
    for b in tracr_opt::library::PROGRAMS {
        let p = Program::load(b.name).unwrap();
        for causal in [false, true] {
            let s = p.settings_with(None, None, Some(causal)).unwrap();
            let options = CompileOptions { rotate: Some(7), ..CompileOptions::default() };
            let c = compile(&p, &s, &options).unwrap();
            let r = c.verify(&VerifyOptions::default()).unwrap();
            assert_eq!(r.mismatches, 0, "{} causal={causal}", b.name);
            let rot = c.model.meta.rotation.as_ref().expect("the rotation is recorded");
            assert_eq!(rot.seed, 7);
            assert!(c.model.meta.residual_labels.iter().all(|l| l.starts_with("rot")));
            // really rotated: W_E is no longer one-hot rows
            let dense = c.model.w_e.iter().filter(|x| x.abs() > 1e-12).count();
            let plain = compile(&p, &s, &CompileOptions::default()).unwrap();
            let sparse = plain.model.w_e.iter().filter(|x| **x != 0.0).count();
            assert!(dense > sparse, "{}: {dense} vs {sparse} nonzero embedding entries", b.name);
        }
    }
    // and the same rotation is folded back out: rotating by Q then by Qᵀ gives the model
    let c = baseline("reverse");
    let r = rotate(&c.model, 11);
    let q = tracr_opt::model::project::random_rotation(c.model.config.d_model, 11);
    let back = fold(&r, &q.t().to_owned());
    assert!(max_weight_difference(&c.model, &back) <= 1e-9);
}

#[test]
fn bad_widths_and_directories_are_refused_and_nothing_is_written() {
    let tmp = temp_dir("compress-errors");
    let out = tmp.join("out");
    let not_a_model = tmp.join("not-a-model");
    std::fs::create_dir_all(&not_a_model).unwrap();
    std::fs::write(not_a_model.join("notes.txt"), "hello").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["frac_prevs".into(), "--d-model".into(), "0".into()], "--d-model must be at least 1"),
        (vec!["frac_prevs".into(), "--d-model".into(), "15".into()], "wider than the model's residual stream (14"),
        (
            vec!["frac_prevs".into(), "--d-model".into(), "10".into(), "--from".into(), "optimised".into()],
            "(9 dimensions)",
        ),
        (vec![not_a_model.display().to_string(), "--d-model".into(), "3".into()], "not-a-model"),
        (vec![tmp.join("missing").display().to_string(), "--d-model".into(), "3".into()], "missing"),
        (vec!["frac_prevs".into(), "--sweep".into(), "0..3".into()], "widths start at 1"),
        (vec!["frac_prevs".into(), "--d-model".into(), "4".into(), "--from".into(), "both".into()], "--sweep"),
    ];
    for (args, message) in cases {
        let o = exe().arg("compress").args(&args).arg("--out").arg(&out).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && o.status.code() != Some(101), "{args:?}: {:?} {err}", o.status);
        assert!(err.contains(message), "{args:?}: {err}");
        assert!(!out.exists(), "{args:?} wrote {}", out.display());
        let leftovers: Vec<_> = std::fs::read_dir(&tmp).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers.len(), 1, "{args:?} left {leftovers:?}");
    }
}
