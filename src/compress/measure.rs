//! What a compressed model is worth: its accuracy against the interpreter,
//! its logit error against the exact model, and how W lays out each
//! categorical s-op's directions.

use crate::diagnostic::{Error, Result};
use crate::model::forward::decode;
use crate::model::Model;
use crate::rasp::interp::evaluate;
use crate::rasp::Program;
use crate::value::Value;

/// The tolerance under which a numerical output counts as right.
pub const NUMERICAL_TOLERANCE: f64 = 0.01;

pub(super) struct Measured {
    pub accuracy: f64,
    pub within_0_05: Option<f64>,
    pub output_mse: f64,
}

#[derive(Default)]
struct Tally {
    positions: usize,
    right: usize,
    within_0_05: usize,
    squared: f64,
    cells: usize,
}

/// Decodes `compressed` on every input and counts the positions (BOS
/// excluded) whose value is the interpreter's: equal for a categorical
/// output, within [`NUMERICAL_TOLERANCE`] for a numerical one (positions
/// where the interpreter has None are not counted, as in verification).
/// Also the mean squared logit difference from `exact`.
pub(super) fn measure(
    compressed: &Model,
    exact: &Model,
    program: &Program,
    inputs: &[Vec<Value>],
    numerical: bool,
) -> Result<Measured> {
    let causal = exact.config.causal;
    let outputs = if numerical { None } else { Some(compressed.output_values()?) };
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 8);
    let chunk = inputs.len().div_ceil(threads).max(1);
    let parts: Vec<Result<Tally>> = std::thread::scope(|scope| {
        let handles: Vec<_> = inputs
            .chunks(chunk)
            .map(|part| {
                let outputs = outputs.as_deref();
                scope.spawn(move || -> Result<Tally> {
                    let (rc, re) = (compressed.runner()?, exact.runner()?);
                    let mut t = Tally::default();
                    for input in part {
                        let expected = evaluate(program, input, causal)
                            .map_err(|e| {
                                Error::program(format!(
                                    "the interpreter refuses the input {}: {e}",
                                    input.iter().map(Value::repr).collect::<Vec<_>>().join(" ")
                                ))
                            })?
                            .output()
                            .to_vec();
                        let ids = rc.encode(input)?;
                        let (lc, le) = (rc.logits(&ids), re.logits(&ids));
                        for (p, want) in expected.iter().enumerate() {
                            let (c, e) = (lc.row(p + 1), le.row(p + 1));
                            t.squared += c.iter().zip(e.iter()).map(|(a, b)| (a - b) * (a - b)).sum::<f64>();
                            t.cells += c.len();
                            let (got, _) = decode(outputs, c.as_slice().expect("a row of a standard array"));
                            if numerical {
                                let (Some(w), Some(g)) = (want.as_f64(), got.as_f64()) else { continue };
                                t.positions += 1;
                                t.right += usize::from((w - g).abs() <= NUMERICAL_TOLERANCE);
                                t.within_0_05 += usize::from((w - g).abs() <= 0.05);
                            } else {
                                t.positions += 1;
                                t.right += usize::from(&got == want);
                            }
                        }
                    }
                    Ok(t)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("measuring thread")).collect()
    });
    let mut all = Tally::default();
    for p in parts {
        let p = p?;
        all.positions += p.positions;
        all.right += p.right;
        all.within_0_05 += p.within_0_05;
        all.squared += p.squared;
        all.cells += p.cells;
    }
    let frac = |n: usize| if all.positions == 0 { 1.0 } else { n as f64 / all.positions as f64 };
    Ok(Measured {
        accuracy: frac(all.right),
        within_0_05: numerical.then(|| frac(all.within_0_05)),
        output_mse: if all.cells == 0 { 0.0 } else { all.squared / all.cells as f64 },
    })
}

/// How W places the directions of one categorical s-op (labels `name:value`,
/// in value order): whether they stay apart (a categorical code) or fall on a
/// line in value order (a numerical code, as the Tracr paper saw for
/// sort_unique's target_pos).
#[derive(Clone, Debug)]
pub struct FeatureGeometry {
    /// The s-op.
    pub sop: String,
    /// Its residual directions.
    pub directions: usize,
    /// Share of the variance of its centred W rows along their first
    /// principal axis: near 1 when they lie on a line.
    pub pc1_share: f64,
    /// Whether the positions along that axis follow the value order.
    pub monotone: bool,
    /// Mean |cosine| between two of its W rows: 0 when they are orthogonal.
    pub mean_abs_cosine: f64,
}

impl FeatureGeometry {
    /// As JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "sop": self.sop,
            "directions": self.directions,
            "pc1_share": self.pc1_share,
            "monotone": self.monotone,
            "mean_abs_cosine": self.mean_abs_cosine,
        })
    }
}

/// [`FeatureGeometry`] for every s-op with three or more directions that
/// each own a dimension (shared dimensions, `a | b`, are left out).
pub(super) fn geometry(w: &ndarray::Array2<f64>, labels: &[String]) -> Vec<FeatureGeometry> {
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, label) in labels.iter().enumerate() {
        if label.contains(" | ") {
            continue;
        }
        let Some((sop, _)) = label.split_once(':') else { continue };
        match groups.iter_mut().find(|(s, _)| s == sop) {
            Some((_, rows)) => rows.push(i),
            None => groups.push((sop.to_string(), vec![i])),
        }
    }
    let k = w.ncols();
    groups
        .into_iter()
        .filter(|(_, rows)| rows.len() >= 3)
        .map(|(sop, rows)| {
            let n = rows.len();
            let mean: Vec<f64> = (0..k).map(|j| rows.iter().map(|r| w[(*r, j)]).sum::<f64>() / n as f64).collect();
            let centred = faer::Mat::<f64>::from_fn(n, k, |i, j| w[(rows[i], j)] - mean[j]);
            let (share, proj) = match centred.thin_svd() {
                Ok(svd) => {
                    let s = svd.S().column_vector();
                    let total: f64 = (0..s.nrows()).map(|i| s[i] * s[i]).sum();
                    let u = svd.U();
                    let proj: Vec<f64> = (0..n).map(|i| u[(i, 0)] * s[0]).collect();
                    (if total > 0.0 { s[0] * s[0] / total } else { 0.0 }, proj)
                }
                Err(_) => (0.0, vec![0.0; n]),
            };
            let up = proj.windows(2).all(|p| p[1] > p[0]);
            let down = proj.windows(2).all(|p| p[1] < p[0]);
            let norm = |r: usize| w.row(r).iter().map(|x| x * x).sum::<f64>().sqrt();
            let mut cos = 0.0;
            let mut pairs = 0;
            for a in 0..n {
                for b in a + 1..n {
                    let (na, nb) = (norm(rows[a]), norm(rows[b]));
                    if na > 0.0 && nb > 0.0 {
                        cos += w.row(rows[a]).dot(&w.row(rows[b])).abs() / (na * nb);
                    }
                    pairs += 1;
                }
            }
            FeatureGeometry {
                sop,
                directions: n,
                pc1_share: share,
                monotone: up || down,
                mean_abs_cosine: if pairs > 0 { cos / pairs as f64 } else { 0.0 },
            }
        })
        .collect()
}
