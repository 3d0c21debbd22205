//! Long sequences: the size estimate, the size limit, and exact models at
//! lengths where every stage must be linear in the model's nonzeros. Times
//! are in `cargo bench` (groups `long` and `forward_long`) and
//! docs/RESULTS.md, not asserted here.

use std::process::Command;
use tracr_opt::library::PROGRAMS;
use tracr_opt::{compile, CompileOptions, Program, VerifyOptions};

fn tracr_opt(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tracr-opt")).args(args).output().unwrap()
}

const SORT_VOCAB: &str = "1 2 3 4 5 6 7 8 9 10";

#[test]
fn the_estimate_is_at_least_the_compiled_size_of_every_bundled_program() {
    // what the size limit is checked against must not refuse a model that
    // fits, causal or not (the baseline's heuristic allocation may use more
    // than the fewest layers the estimate assumes, so it is not covered)
    for b in PROGRAMS {
        let p = Program::load(b.name).unwrap();
        for causal in [false, true] {
            let s = p.settings_with(None, None, Some(causal)).unwrap();
            let options = CompileOptions::default();
            let c = compile(&p, &s, &options).unwrap();
            let (e, m) = (&c.estimate, &c.model.config);
            assert!(
                e.params >= c.model.params() as u64,
                "{}: estimated {} parameters, compiled {} ({e:?} against {m:?})",
                b.name,
                e.params,
                c.model.params()
            );
            assert_eq!(e.layers, m.n_layers, "{}: the estimate's layers are the fewest", b.name);
        }
    }
}

#[test]
fn a_model_over_the_size_limit_is_refused_with_its_estimate_and_the_flag() {
    let dir = std::env::temp_dir().join(format!("tracr-opt-too-large-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.to_string_lossy().to_string();
    for (args, flag) in [
        (vec!["compile", "sort", "--vocab", SORT_VOCAB, "--max-seq-len", "1024"], "--max-weights-gb 19"),
        // without verification, whose own limit would refuse it first
        (vec!["compile", "hist", "--vocab", "a b c", "--max-seq-len", "65535", "--no-verify"], "--max-weights-gb 207"),
        (
            vec!["compile", "sort", "--vocab", SORT_VOCAB, "--max-seq-len", "128", "--max-weights-gb", "0.2"],
            "--max-weights-gb 1",
        ),
    ] {
        let mut args = args.clone();
        args.extend(["--out", &out]);
        let o = tracr_opt(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("is estimated at") && err.contains("GB of weights") && err.contains(flag),
            "{args:?}: {err}"
        );
        assert!(!dir.exists(), "{args:?}: nothing is written");
    }
    for bad in ["0", "-1", "nan", "inf"] {
        let o = tracr_opt(&["compile", "reverse", &format!("--max-weights-gb={bad}")]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "--max-weights-gb {bad}: {err}");
        assert!(err.contains("--max-weights-gb must be a positive number"), "--max-weights-gb {bad}: {err}");
    }
}

#[test]
fn raising_the_limit_compiles_what_it_refused() {
    let p = Program::load("sort").unwrap();
    let vocab = tracr_opt::value::parse_tokens(SORT_VOCAB);
    let s = tracr_opt::rasp::Settings { vocab, max_seq_len: 128, causal: false };
    let tight = CompileOptions { max_weights_gb: Some(0.2), ..CompileOptions::default() };
    let e = compile(&p, &s, &tight).err().expect("0.2 GB is below sort's estimate at 128");
    assert!(e.to_string().contains("--max-weights-gb 1"), "{e}");
    let c = compile(&p, &s, &CompileOptions { max_weights_gb: Some(1.0), ..tight }).unwrap();
    assert!(c.estimate.bytes() > 200_000_000 && c.estimate.bytes() <= 1_000_000_000, "{:?}", c.estimate);
    let report = c.verify(&VerifyOptions { samples: 200, seed: 1, threads: 0 }).unwrap();
    assert_eq!(report.mismatches, 0, "{:?}", report.examples);
    // no limit at all (the library's None)
    let free = CompileOptions { max_weights_gb: None, ..CompileOptions::default() };
    let tiny = tracr_opt::rasp::Settings { max_seq_len: 8, ..s };
    assert!(compile(&p, &tiny, &free).is_ok());
}

#[test]
fn long_hist_sort_and_frac_prevs_verify_exactly() {
    // a long input has few distinct queries (hist) or thousands of distinct
    // keys (sort): both paths of the forward pass and of the interpreter
    for (name, vocab, m, samples) in
        [("hist", "a b c", 600, 300), ("sort", SORT_VOCAB, 96, 300), ("frac_prevs", "a b c x", 200, 300)]
    {
        let p = Program::load(name).unwrap();
        let s =
            tracr_opt::rasp::Settings { vocab: tracr_opt::value::parse_tokens(vocab), max_seq_len: m, causal: false };
        let c = compile(&p, &s, &CompileOptions::default()).unwrap_or_else(|e| panic!("{name} at {m}: {e}"));
        let report = c.verify(&VerifyOptions { samples, seed: 3, threads: 0 }).unwrap();
        assert_eq!(report.mismatches, 0, "{name} at {m}: {:?}", report.examples);
        assert_eq!(report.max_diff_from_unoptimised, Some(0.0), "{name} at {m}");
        eprintln!("{name} at {m}: {} parameters, {} samples verified", c.model.params(), report.inputs);
    }
}
