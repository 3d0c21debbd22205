//! The limits that keep every input bounded in time and memory (#20): each
//! refuses up front with the numbers and the way out, or bounds the work
//! and says so. The reproducers are the issue's.

use std::process::Command;
use tracr_opt::rasp::inputs::count_all_tokens;
use tracr_opt::value::Value;
use tracr_opt::verify::{Inputs, EXHAUSTIVE_TOKEN_LIMIT, MAX_VERIFY_TOKENS};
use tracr_opt::{compile, CompileOptions, Program, VerifyOptions};

fn tracr_opt(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tracr-opt")).args(args).output().expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn scratch_file(name: &str, text: &str) -> String {
    let path = std::env::temp_dir().join(format!("tracr-opt-limits-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into()
}

#[test]
fn tokens_in_all_inputs_are_counted_exactly() {
    // vocab 2 up to 3: 2 inputs of 1, 4 of 2, 8 of 3
    assert_eq!(count_all_tokens(2, 3), 2 + 2 * 4 + 3 * 8);
    assert_eq!(count_all_tokens(1, 100_000), 100_000 * 100_001 / 2);
    assert_eq!(count_all_tokens(100, 100_000), u128::MAX);
}

#[test]
fn exhaustive_verification_is_bounded_by_tokens_too() {
    let a = [Value::Str("a".into())];
    let plan = VerifyOptions::default();
    // a one-token vocab has one input per length: few inputs, many tokens
    let longest_exhaustive = (1..).find(|n| count_all_tokens(1, n + 1) > EXHAUSTIVE_TOKEN_LIMIT).unwrap();
    let inputs = Inputs::new(&a, longest_exhaustive, &plan);
    assert!(inputs.exhaustive && inputs.len() == longest_exhaustive);
    assert_eq!(inputs.iter().count(), longest_exhaustive);
    let inputs = Inputs::new(&a, longest_exhaustive + 1, &plan);
    assert!(!inputs.exhaustive);
    assert_eq!(inputs.len(), plan.samples);
    // batches hold every input once, in order, each within the batch size
    let mut n = 0;
    for (b, batch) in inputs.batches().enumerate() {
        assert!(!batch.is_empty());
        assert!(batch.len() == 1 || batch.iter().map(Vec::len).sum::<usize>() <= 1 << 20, "batch {b}");
        n += batch.len();
    }
    assert_eq!(n, plan.samples);
    assert_eq!(inputs.batches().flatten().collect::<Vec<_>>(), inputs.iter().collect::<Vec<_>>());
}

/// The issue's `out = tokens`, vocab {a}, at max_seq_len 100 000: 100 000
/// inputs of up to 100 000 tokens, 5·10⁹ in all, and the process aborted.
#[test]
fn verification_beyond_its_token_budget_is_refused_up_front_with_the_samples_that_fit() {
    let file = scratch_file("tokens.rasp", "out = tokens\ncompile(out, vocab={\"a\"}, max_seq_len=5)\n");
    let (code, _, err) = tracr_opt(&["compile", &file, "--max-seq-len", "100000"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("verifying at max_seq_len 100000 would check 2000 random inputs"), "{err}");
    assert!(err.contains(&format!("over the limit of {MAX_VERIFY_TOKENS}")), "{err}");
    assert!(err.contains("pass --samples 399 (or fewer), or --no-verify"), "{err}");
    // what it suggests works, and the model is exact
    let (code, out, err) = tracr_opt(&["compile", &file, "--max-seq-len", "100000", "--samples", "12", "--json"]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["verified"]["inputs"], 12);
    assert_eq!(j["verified"]["mismatches"], 0);
    assert_eq!(j["verified"]["exhaustive"], false);
    let _ = std::fs::remove_file(file);
}

/// The shift_by at max_seq_len 65 535: value-set inference called
/// the custom predicate on all 4.3·10⁹ index pairs and hung.
#[test]
fn a_custom_predicate_over_too_many_pairs_is_refused_naming_the_selector() {
    for (len, pairs) in
        [("65535", "65535 key values × 65535 query values = 4294836225 pairs"), ("1415", "2002225 pairs")]
    {
        let started = std::time::Instant::now();
        let (code, _, err) = tracr_opt(&["compile", "shift_by", "--max-seq-len", len, "--no-verify"]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("'select_off_by_offset' (select at <bundled>/shift_by.rasp:"), "{err}");
        assert!(err.contains(pairs) && err.contains("over the limit of 2000000"), "{err}");
        // refused before any pair is tried (not a timing claim: a hang took minutes)
        assert!(started.elapsed().as_secs() < 30, "{len}: {:?}", started.elapsed());
    }
    let p = Program::load("shift_by").unwrap();
    let s = p.settings_with(None, Some(1414), None).unwrap();
    assert!(compile(&p, &s, &CompileOptions::default()).is_ok(), "the largest length under the limit compiles");
}

/// A long chain whose every block has one place: the model folds to
/// constants (solver-models/layer_allocation.md, "Formulation"), so it is
/// solved, however long the chain. With residual sharing the params stage
/// also schedules erasures, which are decisions even when every block is
/// pinned (residual_sharing.md, "Pricing erasures"); the erasure floor
/// bounds M at what the schedule reaches, so that is proven too.
#[test]
fn a_long_chain_folds_to_a_model_without_variables_and_is_proven_optimal() {
    let p = Program::from_rasp("chain.rasp", &chain(1000, 0)).unwrap();
    let s = p.settings_with(None, None, None).unwrap();
    let options = CompileOptions { rewrites: false, share_residual: false, ..CompileOptions::default() };
    let compiled = compile(&p, &s, &options).unwrap();
    let info = compiled.allocation.info.as_ref().unwrap();
    assert!(info.optimal && info.stopped_by.is_none(), "{info:?}");
    assert_eq!(compiled.model.config.n_layers, 500, "a chain's allocation is its length");
    let report = compiled.verify(&VerifyOptions::default()).unwrap();
    assert!(report.exhaustive && report.ok(), "{report:?}");
    let shared = compile(&p, &s, &CompileOptions { rewrites: false, ..CompileOptions::default() }).unwrap();
    let info = shared.allocation.info.as_ref().unwrap();
    assert!(info.optimal && info.stopped_by.is_none(), "{info:?}");
    assert!(shared.allocation.erase.is_some(), "the erasures were scheduled: {info:?}");
    assert_eq!(shared.model.config.n_layers, 500);
    assert!(shared.model.config.d_model < compiled.model.config.d_model);
    let report = shared.verify(&VerifyOptions::default()).unwrap();
    assert!(report.exhaustive && report.ok(), "{report:?}");
}

/// An alternating chain of `n` s-ops, and `leaves` heads, the i-th reading
/// the chain's 2i-th s-op, that only the output reads (through a tree of
/// SequenceMaps), so each can sit in any layer of the chain after it.
fn chain(n: usize, leaves: usize) -> String {
    let mut text = String::from("x0 = tokens\n");
    for i in 1..n {
        if i % 2 == 1 {
            text += &format!("x{i} = Map(lambda t: t, x{})\n", i - 1);
        } else {
            text += &format!("x{i} = Aggregate(Select(indices, indices, EQ), x{})\n", i - 1);
        }
    }
    let mut level: Vec<String> = vec![format!("x{}", n - 1)];
    for j in 0..leaves {
        text += &format!("l{j} = Aggregate(Select(indices, indices, EQ), x{})\n", 2 * j);
        level.push(format!("l{j}"));
    }
    let mut k = 0;
    while level.len() > 1 {
        let mut next = Vec::new();
        for pair in level.chunks(2) {
            if let [a, b] = pair {
                text += &format!("j{k} = SequenceMap(lambda a, b: a, {a}, {b})\n");
                next.push(format!("j{k}"));
                k += 1;
            } else {
                next.push(pair[0].clone());
            }
        }
        level = next;
    }
    text += &format!("compile({}, vocab={{\"a\", \"b\"}}, max_seq_len=3)\n", level[0]);
    text
}

/// A chain with 800 heads each free to sit in any layer after its input:
/// the allocation model is over the variable limit, so the search keeps
/// Tracr's allocation, says why, and the model verifies.
#[test]
fn an_allocation_model_over_the_size_limit_keeps_tracrs_allocation_and_says_so() {
    let p = Program::from_rasp("wide.rasp", &chain(1600, 800)).unwrap();
    let s = p.settings_with(None, None, None).unwrap();
    let options = CompileOptions { rewrites: false, max_weights_gb: None, ..CompileOptions::default() };
    let compiled = compile(&p, &s, &options).unwrap();
    let info = compiled.allocation.info.as_ref().unwrap();
    assert!(!info.optimal);
    let why = info.stopped_by.as_deref().unwrap_or_default();
    assert!(why.contains("variables at") && why.contains("over the limit of 1000000"), "{why}");
    let report = compiled.verify(&VerifyOptions::default()).unwrap();
    assert!(report.exhaustive && report.ok(), "{report:?}");
}

/// The time limit bounds the whole allocation, building and solving, not
/// only branch and bound: a 400-s-op random program, which microlp does not
/// prove optimal in minutes, returns soon after a 0.5 s limit.
#[test]
fn the_time_limit_bounds_the_whole_allocation() {
    let text = tracr_opt::library::random::random_program_text(400, 1);
    let p = Program::from_rasp("random.rasp", &text).unwrap();
    let s = p.settings_with(None, None, None).unwrap();
    let options = CompileOptions { time_limit_secs: 0.5, ..CompileOptions::default() };
    let compiled = compile(&p, &s, &options).unwrap();
    let info = compiled.allocation.info.as_ref().unwrap();
    assert!(!info.optimal && info.stopped_by.as_deref() == Some("the time limit"), "{info:?}");
    let allocate_ms = compiled.stage_ms.iter().find(|(stage, _)| *stage == "allocate").unwrap().1;
    // the limit, the solver thread's grace (a quarter), and the model
    // building and incumbent around it; a solve that ignored the limit ran
    // for tens of seconds
    assert!(allocate_ms < 5_000.0, "allocation took {allocate_ms} ms against a 0.5 s limit");
}
