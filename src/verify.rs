//! Verification: the compiled model's decoded output against the interpreter,
//! on every input when there are at most EXHAUSTIVE_LIMIT of them, otherwise on
//! a seeded random sample.

use crate::model::forward::Runner;
use crate::model::Model;
use crate::rasp::inputs;
use crate::rasp::interp::evaluate;
use crate::rasp::{Encoding, Program};
use crate::value::Value;

/// Inputs in all up to which verification checks every input.
pub const EXHAUSTIVE_LIMIT: u128 = 100_000;

/// Numerical outputs must agree to this (absolute, plus the same relative).
pub const NUMERIC_TOLERANCE: f64 = 1e-6;

/// One input where model and interpreter disagree.
#[derive(Clone, Debug)]
pub struct Mismatch {
    /// The input (no BOS).
    pub input: Vec<Value>,
    /// The interpreter's output.
    pub expected: Vec<Value>,
    /// The model's decoded output.
    pub got: Vec<Value>,
    /// The interpreter's error, when it refused the input.
    pub error: Option<String>,
}

/// What verification found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Inputs checked.
    pub inputs: usize,
    /// Whether those were every input of every length.
    pub exhaustive: bool,
    /// Inputs with any disagreeing position.
    pub mismatches: usize,
    /// The first few, for display.
    pub examples: Vec<Mismatch>,
    /// Largest |model - interpreter| over numerical outputs.
    pub max_abs_error: f64,
    /// Smallest margin by which a categorical answer won (winning logit).
    pub min_margin: f64,
    /// Largest |logit difference| from the unoptimised model on the same
    /// inputs, when it was compared.
    pub max_diff_from_unoptimised: Option<f64>,
    /// Wall time of the check in milliseconds (the logit comparison included).
    pub ms: f64,
}

impl Report {
    /// No mismatch.
    pub fn ok(&self) -> bool {
        self.mismatches == 0
    }

    /// The figures as JSON (`inputs`, `exhaustive`, `mismatches`,
    /// `max_abs_error`, `max_diff_from_unoptimised`): the `verified` object of
    /// `compile --json`, which `verify --json` and the Python package extend.
    pub fn summary_json(&self) -> serde_json::Value {
        serde_json::json!({
            "inputs": self.inputs,
            "exhaustive": self.exhaustive,
            "mismatches": self.mismatches,
            "max_abs_error": self.max_abs_error,
            "max_diff_from_unoptimised": self.max_diff_from_unoptimised,
            "verify_ms": self.ms,
        })
    }
}

/// Which inputs to check (also [`crate::VerifyOptions`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Random inputs when there are more than [`EXHAUSTIVE_LIMIT`].
    pub samples: usize,
    /// Seed for them.
    pub seed: u64,
    /// Threads to check with: 0 for every core (`batch` checks one program
    /// per thread and passes 1).
    pub threads: usize,
}

/// The inputs to check: all, or a sample.
pub fn inputs_for(vocab: &[Value], max_seq_len: usize, plan: &Plan) -> (Vec<Vec<Value>>, bool) {
    if inputs::count_all(vocab.len(), max_seq_len) <= EXHAUSTIVE_LIMIT {
        (inputs::all(vocab, max_seq_len).collect(), true)
    } else {
        (inputs::sample_mixed(vocab, max_seq_len, plan.samples, plan.seed), false)
    }
}

fn agree(expected: &Value, got: &Value, numerical: bool) -> (bool, f64) {
    if numerical {
        match (expected.as_f64(), got.as_f64()) {
            (Some(e), Some(g)) => {
                let err = (e - g).abs();
                (err <= NUMERIC_TOLERANCE * (1.0 + e.abs()), err)
            }
            // a numerical model cannot say "no value": positions where the
            // interpreter has None are not compared
            (None, _) if matches!(expected, Value::None) => (true, 0.0),
            _ => (false, f64::INFINITY),
        }
    } else {
        (expected == got, 0.0)
    }
}

/// Checks `model` against `program` (tabulated, for speed) on `inputs`, using
/// both cores.
pub fn verify(model: &Model, program: &Program, inputs: &[Vec<Value>], exhaustive: bool) -> Report {
    verify_with(model, program, inputs, exhaustive, 0, &|_| {})
}

/// [`verify`] on `threads` threads (0: every core, at most 8), calling
/// `progress(n)` as each thread finishes n more inputs (for a progress bar).
pub fn verify_with(
    model: &Model,
    program: &Program,
    inputs: &[Vec<Value>],
    exhaustive: bool,
    threads: usize,
    progress: &(dyn Fn(usize) + Sync),
) -> Report {
    let numerical = program.nodes[program.output].encoding == Encoding::Numerical;
    let causal = model.config.causal;
    let threads = match threads {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 8),
        n => n,
    };
    let chunk = inputs.len().div_ceil(threads).max(1);
    let parts: Vec<Report> = std::thread::scope(|scope| {
        let handles: Vec<_> = inputs
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let runner = Runner::new(model).expect("a compiled model's metadata decodes");
                    let mut r = Report { min_margin: f64::INFINITY, ..Report::default() };
                    for (k, input) in part.iter().enumerate() {
                        if k % 256 == 255 {
                            progress(256);
                        }
                        r.inputs += 1;
                        let expected = match evaluate(program, input, causal) {
                            Ok(t) => t.output().to_vec(),
                            Err(e) => {
                                r.mismatches += 1;
                                if r.examples.len() < 5 {
                                    r.examples.push(Mismatch {
                                        input: input.clone(),
                                        expected: vec![],
                                        got: vec![],
                                        error: Some(e.to_string()),
                                    });
                                }
                                continue;
                            }
                        };
                        let ids = match runner.encode(input) {
                            Ok(ids) => ids,
                            Err(e) => {
                                r.mismatches += 1;
                                if r.examples.len() < 5 {
                                    r.examples.push(Mismatch {
                                        input: input.clone(),
                                        expected,
                                        got: vec![],
                                        error: Some(e.to_string()),
                                    });
                                }
                                continue;
                            }
                        };
                        let out = runner.run(&ids);
                        let mut bad = false;
                        for (e, (g, score)) in expected.iter().zip(&out) {
                            let (ok, err) = agree(e, g, numerical);
                            if numerical && err.is_finite() {
                                r.max_abs_error = r.max_abs_error.max(err);
                            }
                            if !numerical && !matches!(g, Value::None) {
                                r.min_margin = r.min_margin.min(*score);
                            }
                            bad |= !ok;
                        }
                        if bad {
                            r.mismatches += 1;
                            if r.examples.len() < 5 {
                                r.examples.push(Mismatch {
                                    input: input.clone(),
                                    expected,
                                    got: out.into_iter().map(|(v, _)| v).collect(),
                                    error: None,
                                });
                            }
                        }
                    }
                    r
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("verification thread")).collect()
    });
    let mut total = Report { exhaustive, min_margin: f64::INFINITY, ..Report::default() };
    for p in parts {
        total.inputs += p.inputs;
        total.mismatches += p.mismatches;
        total.max_abs_error = total.max_abs_error.max(p.max_abs_error);
        total.min_margin = total.min_margin.min(p.min_margin);
        for e in p.examples {
            if total.examples.len() < 5 {
                total.examples.push(e);
            }
        }
    }
    total
}

/// Largest absolute difference between two models' output logits (every
/// non-BOS position) on `inputs`, using both cores. The models must share
/// vocab and output columns, as a model and its unoptimised reference do.
pub fn max_logit_difference(
    a: &Model,
    b: &Model,
    inputs: &[Vec<Value>],
    threads: usize,
) -> crate::diagnostic::Result<f64> {
    let (ra, rb) = (Runner::new(a)?, Runner::new(b)?);
    if a.config.d_vocab_out != b.config.d_vocab_out || a.meta.tokens != b.meta.tokens {
        return Err(crate::diagnostic::Error::internal("compared models differ in vocab or outputs"));
    }
    let threads = match threads {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 8),
        n => n,
    };
    let chunk = inputs.len().div_ceil(threads).max(1);
    let parts: Vec<crate::diagnostic::Result<f64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = inputs
            .chunks(chunk)
            .map(|part| {
                let (ra, rb) = (&ra, &rb);
                scope.spawn(move || {
                    let mut worst = 0.0f64;
                    for input in part {
                        let ids = ra.encode(input)?;
                        worst = worst.max(ra.max_logit_difference(rb, &ids));
                    }
                    Ok(worst)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("comparison thread")).collect()
    });
    parts.into_iter().try_fold(0.0f64, |acc, p| Ok(acc.max(p?)))
}
