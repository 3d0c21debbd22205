//! The bodies of tracr-opt's fuzz targets, one per kind of input a user
//! hands the tool: `.rasp` text, a JSON program, a model directory, and a
//! program to compile.
//!
//! Each returns quietly when the input is refused with an error. It panics
//! only on a bug:
//! - a panic or abort inside the library;
//! - a compiled model that disagrees with the interpreter;
//! - a JSON export that does not load back.
//!
//! libFuzzer drives these through `fuzz_targets/` (built by `fuzz/run`).
//! `tests/fuzz_smoke.rs` in the root crate includes this file as a module and
//! replays the committed corpus, then mutates it for a bounded time, on every
//! `cargo test` (docs/RESULTS.md, "Fuzzing", says why CI does not run the
//! instrumented build).
//!
//! Every setting is clamped to something small (at most 4 tokens of a vocab
//! of at most 4), so one execution takes milliseconds and a slow input means
//! a real hang, not a big model.

use std::path::Path;
use tracr_opt::model::io::{from_files, Files};
use tracr_opt::{compile as compile_program, CompileOptions, Program, Settings, Value, VerifyOptions};

/// The longest input the targets try.
pub const MAX_LEN: usize = 4;
/// The most vocabulary entries the targets keep.
pub const MAX_VOCAB: usize = 4;

/// Separates the files of a model directory in a `model_dir` input:
/// `tracr_opt.json`, `config.json`, `circuit.json` (may be empty: none) and
/// `model.safetensors`, in that order.
pub const MODEL_SEPARATOR: &[u8] = b"\n\0--8<--\0\n";

/// A `.rasp` program: parse and run it, then export it to JSON, load the
/// export back and run it too.
pub fn rasp(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(program) = Program::from_rasp("fuzz.rasp", text) {
        exercise(&program);
    }
}

/// A JSON program (docs/PROGRAM_FORMAT.md): load and run it, and round-trip
/// it through the exporter.
pub fn json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(program) = Program::from_json("fuzz.json", text) {
        exercise(&program);
    }
}

/// A model directory's four files joined by [`MODEL_SEPARATOR`]: load it
/// (every cross-check of the loader) and run it on short inputs.
pub fn model_dir(data: &[u8]) {
    let mut parts = split(data, MODEL_SEPARATOR, 4).into_iter();
    let (Some(meta), Some(config), Some(circuit), Some(weights)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let files = Files { meta, config, circuit: (!circuit.is_empty()).then_some(circuit), weights };
    let Ok(model) = from_files(Path::new("fuzz-model"), &files) else { return };
    let Ok(vocab) = model.vocab() else { return };
    let vocab: Vec<Value> = vocab.into_iter().take(MAX_VOCAB).collect();
    let longest = model.config.n_ctx.saturating_sub(1).min(MAX_LEN);
    for input in tracr_opt::rasp::inputs::all(&vocab, longest).take(64) {
        let _ = model.apply(&input);
    }
}

/// A program (`.rasp` text, or JSON when it starts with `{`) compiled at
/// small settings with options chosen by the input's hash, then verified
/// against the interpreter on every input: any disagreement is a bug.
pub fn compile(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let program = if text.trim_start().starts_with('{') {
        Program::from_json("fuzz.json", text)
    } else {
        Program::from_rasp("fuzz.rasp", text)
    };
    let Ok(program) = program else { return };
    let Some(settings) = small_settings(&program) else { return };
    let options = options_for(data);
    let Ok(compiled) = compile_program(&program, &settings, &options) else { return };
    // threads 1: libFuzzer runs one input at a time per process
    let plan = VerifyOptions { samples: 200, seed: 0, threads: 1 };
    let Ok(report) = compiled.verify(&plan) else { return };
    // an input the interpreter itself refuses (a categorical Aggregate that
    // selects different values, say) counts as a mismatch in the report but
    // has no output to get wrong: only disagreements beyond those are bugs
    let refused = tracr_opt::rasp::inputs::all(&settings.vocab, settings.max_seq_len)
        .filter(|input| program.evaluate(input, settings.causal).is_err())
        .count();
    assert!(
        report.mismatches <= refused,
        "the model of {:?} at {settings:?} with {options:?} disagrees with the interpreter: {report:?}",
        program.name
    );
}

/// The program's own settings, clamped to [`MAX_VOCAB`] values and
/// [`MAX_LEN`] tokens; None when it declares none or they are refused.
fn small_settings(program: &Program) -> Option<Settings> {
    let own = program.settings.as_ref()?;
    let mut vocab = own.vocab.clone();
    vocab.sort();
    vocab.dedup();
    vocab.truncate(MAX_VOCAB);
    program.settings_with(Some(vocab), Some(own.max_seq_len.min(MAX_LEN)), None).ok()
}

/// One of four option sets, picked by a hash of the input so that each
/// corpus entry always compiles the same way: the default pipeline, Tracr's
/// baseline, no rewrites, or a rotated basis.
fn options_for(data: &[u8]) -> CompileOptions {
    let hash = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    let mut options = CompileOptions { time_limit_secs: 2.0, max_weights_gb: Some(0.01), ..CompileOptions::default() };
    match hash % 4 {
        0 => {}
        1 => {
            options = CompileOptions { time_limit_secs: 2.0, max_weights_gb: Some(0.01), ..CompileOptions::baseline() }
        }
        2 => options.rewrites = false,
        _ => options.rotate = Some(hash >> 8),
    }
    options
}

/// Runs the interpreter on short inputs, and checks that the JSON export
/// loads back and runs.
fn exercise(program: &Program) {
    let Some(settings) = small_settings(program) else { return };
    let inputs: Vec<Vec<Value>> =
        tracr_opt::rasp::inputs::all(&settings.vocab, settings.max_seq_len).take(64).collect();
    let Ok(json) = program.to_json(&settings) else {
        for input in &inputs {
            let _ = program.evaluate(input, settings.causal);
        }
        return;
    };
    let back = match Program::from_json("round trip", &json) {
        Ok(back) => back,
        Err(e) => panic!("the JSON export of {:?} does not load back: {e}\n{json}", program.name),
    };
    // Both run; their outputs are not compared. Value sets follow Python's
    // set semantics, where 1 == 1.0, so a function that tells equal numbers
    // of different types apart (`str(x)`, or int and float arithmetic past
    // 2^53) is tabulated on one of them, and the export can then compute
    // another value or refuse. The fuzzer found such programs (docs/RESULTS.md,
    // "Fuzzing"); verification catches a model built from such a table.
    for input in &inputs {
        let _ = program.evaluate(input, settings.causal);
        let _ = back.evaluate(input, settings.causal);
    }
}

/// `data` cut at the first `n - 1` occurrences of `separator`.
pub fn split<'a>(data: &'a [u8], separator: &[u8], n: usize) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while parts.len() + 1 < n {
        match rest.windows(separator.len()).position(|w| w == separator) {
            Some(at) => {
                parts.push(&rest[..at]);
                rest = &rest[at + separator.len()..];
            }
            None => break,
        }
    }
    parts.push(rest);
    parts
}
