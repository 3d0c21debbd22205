//! Verification: the compiled model's decoded output against the interpreter,
//! on every input when there are at most EXHAUSTIVE_LIMIT of them holding at
//! most EXHAUSTIVE_TOKEN_LIMIT tokens, otherwise on a seeded random sample.
//! Inputs are drawn a batch at a time, so memory does not grow with their
//! number or length.

use crate::model::forward::Runner;
use crate::model::Model;
use crate::rasp::inputs;
use crate::rasp::interp::evaluate;
use crate::rasp::{Encoding, Program};
use crate::value::Value;

/// Inputs in all up to which verification checks every input.
pub const EXHAUSTIVE_LIMIT: u128 = 100_000;

/// Tokens in all up to which verification checks every input: with a
/// one-token vocab there are only max_seq_len inputs, but at max_seq_len
/// 100 000 they hold 5·10⁹ tokens.
pub const EXHAUSTIVE_TOKEN_LIMIT: u128 = 10_000_000;

/// The most input tokens one verification may check (expected, when
/// sampled): about 30 s for the smallest model on this project's 2-core
/// reference machine, more for larger ones. Refused up front beyond it.
pub const MAX_VERIFY_TOKENS: u128 = 20_000_000;
const _: () = assert!(EXHAUSTIVE_TOKEN_LIMIT <= MAX_VERIFY_TOKENS, "an exhaustive check always fits the budget");

/// Tokens of input verification holds at once (at least one input).
pub const BATCH_TOKENS: usize = 1 << 20;

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
    /// Adds the findings of `part`, a check of later inputs, to these.
    pub fn absorb(&mut self, part: Report) {
        self.inputs += part.inputs;
        self.mismatches += part.mismatches;
        self.max_abs_error = self.max_abs_error.max(part.max_abs_error);
        self.min_margin = self.min_margin.min(part.min_margin);
        for e in part.examples {
            if self.examples.len() < 5 {
                self.examples.push(e);
            }
        }
    }

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

/// The inputs to check: all, or a sample, drawn on demand.
pub struct Inputs<'a> {
    vocab: &'a [Value],
    max_len: usize,
    /// Every input of every length (else `samples` random ones).
    pub exhaustive: bool,
    samples: usize,
    seed: u64,
}

impl<'a> Inputs<'a> {
    /// What `plan` checks for a model over `vocab` up to `max_seq_len` tokens.
    pub fn new(vocab: &'a [Value], max_seq_len: usize, plan: &Plan) -> Inputs<'a> {
        let exhaustive = inputs::count_all(vocab.len(), max_seq_len) <= EXHAUSTIVE_LIMIT
            && inputs::count_all_tokens(vocab.len(), max_seq_len) <= EXHAUSTIVE_TOKEN_LIMIT;
        Inputs { vocab, max_len: max_seq_len, exhaustive, samples: plan.samples, seed: plan.seed }
    }

    /// How many inputs there are.
    pub fn len(&self) -> usize {
        if self.exhaustive {
            inputs::count_all(self.vocab.len(), self.max_len) as usize
        } else {
            self.samples
        }
    }

    /// Tokens in all the inputs: exact when exhaustive, else the expected
    /// number (lengths are uniform in 1..=max_seq_len).
    pub fn tokens(&self) -> u128 {
        if self.exhaustive {
            inputs::count_all_tokens(self.vocab.len(), self.max_len)
        } else {
            (self.samples as u128 * (self.max_len as u128 + 1)).div_ceil(2)
        }
    }

    /// Whether there are none (never, for a plan that passed its check).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The inputs one at a time, always in the same order.
    pub fn iter(&self) -> Box<dyn Iterator<Item = Vec<Value>> + 'a> {
        if self.exhaustive {
            Box::new(inputs::all(self.vocab, self.max_len))
        } else {
            Box::new(inputs::sample_mixed_iter(self.vocab, self.max_len, self.samples, self.seed))
        }
    }

    /// The inputs in order, in batches of at most [`BATCH_TOKENS`] tokens
    /// (or one input, when it alone is longer).
    pub fn batches(&self) -> impl Iterator<Item = Vec<Vec<Value>>> + 'a {
        let mut all = self.iter().peekable();
        std::iter::from_fn(move || {
            let mut batch = Vec::new();
            let mut tokens = 0;
            while let Some(next) = all.peek() {
                if !batch.is_empty() && tokens + next.len() > BATCH_TOKENS {
                    break;
                }
                tokens += next.len();
                batch.push(all.next().expect("peeked"));
            }
            (!batch.is_empty()).then_some(batch)
        })
    }
}

/// The inputs to check, all held at once: all, or a sample.
pub fn inputs_for(vocab: &[Value], max_seq_len: usize, plan: &Plan) -> (Vec<Vec<Value>>, bool) {
    let inputs = Inputs::new(vocab, max_seq_len, plan);
    (inputs.iter().collect(), inputs.exhaustive)
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
        total.absorb(p);
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
