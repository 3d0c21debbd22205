//! The intermediate representation: model blocks on vector spaces with named
//! basis directions (what Tracr calls craft). Weights are sparse triplets over
//! directions; assembly turns them into dense matrices over the residual layout.

use crate::rasp::NodeId;
use crate::value::Value;
use std::collections::BTreeMap;
use std::fmt;

/// A named basis direction of the residual stream: `one`, `tokens:a`,
/// `opp_idx:3`, `frac_prevs` (numerical), `length_selector_width_attn_output`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dir {
    pub name: String,
    pub value: Option<Value>,
}

impl Dir {
    pub fn named(name: &str) -> Dir {
        Dir { name: name.to_string(), value: None }
    }

    pub fn valued(name: &str, v: &Value) -> Dir {
        Dir { name: name.to_string(), value: Some(v.clone()) }
    }

    pub fn one() -> Dir {
        Dir::named("one")
    }

    pub fn bos() -> Dir {
        Dir::valued("tokens", &Value::Str(BOS.into()))
    }

    pub fn pad() -> Dir {
        Dir::valued("tokens", &Value::Str(PAD.into()))
    }
}

impl fmt::Display for Dir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            None => f.write_str(&self.name),
            Some(v) => write!(f, "{}:{}", self.name, v.display()),
        }
    }
}

pub const BOS: &str = "BOS";
pub const PAD: &str = "PAD";

/// A vector over directions (sparse).
pub type DirVec = BTreeMap<Dir, f64>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockKind {
    Attn,
    Mlp,
}

/// One attention head: `score(q, k) = Σ qk[(a, b)] q[a] k[b]` (before the
/// model's 1/sqrt(d_head), which assembly compensates), and the value map
/// `out[b] += Σ ov[(a, b)] x[a]`.
#[derive(Clone, Debug, Default)]
pub struct Head {
    /// W_QK by query direction, then key direction (ordered: deterministic output).
    pub qk: BTreeMap<Dir, BTreeMap<Dir, f64>>,
    pub ov: Vec<(Dir, Dir, f64)>,
}

impl Head {
    /// The bilinear score of two sparse residual vectors.
    pub fn score(&self, q: &DirVec, k: &DirVec) -> f64 {
        let mut total = 0.0;
        for (qd, qv) in q {
            if let Some(row) = self.qk.get(qd) {
                for (kd, kv) in k {
                    if let Some(w) = row.get(kd) {
                        total += w * qv * kv;
                    }
                }
            }
        }
        total
    }

    /// `qk[(a, b)] += w`.
    pub fn add_qk(&mut self, a: &Dir, b: &Dir, w: f64) {
        if w != 0.0 {
            *self.qk.entry(a.clone()).or_default().entry(b.clone()).or_insert(0.0) += w;
        }
    }

    /// Every (query dir, key dir, weight).
    pub fn qk_entries(&self) -> impl Iterator<Item = (&Dir, &Dir, f64)> {
        self.qk.iter().flat_map(|(q, row)| row.iter().map(move |(k, w)| (q, k, *w)))
    }

    pub fn apply_ov(&self, x: &DirVec) -> DirVec {
        let mut out = DirVec::new();
        for (a, b, w) in &self.ov {
            if let Some(v) = x.get(a) {
                *out.entry(b.clone()).or_insert(0.0) += w * v;
            }
        }
        out
    }
}

/// One MLP: `hidden = relu(Σ w_in x)`, `out = Σ w_out hidden`. Biases are
/// carried by the `one` direction, as in Tracr.
#[derive(Clone, Debug, Default)]
pub struct Mlp {
    pub hidden: usize,
    pub w_in: Vec<(Dir, usize, f64)>,
    pub w_out: Vec<(usize, Dir, f64)>,
}

impl Mlp {
    pub fn neuron(&mut self) -> usize {
        self.hidden += 1;
        self.hidden - 1
    }

    /// Pre-activation of neuron `h` on a residual vector.
    pub fn preact(&self, h: usize, x: &DirVec) -> f64 {
        self.w_in.iter().filter(|(_, j, _)| *j == h).map(|(d, _, w)| w * x.get(d).unwrap_or(&0.0)).sum()
    }
}

#[derive(Clone, Debug)]
pub enum Body {
    Head(Head),
    Mlp(Mlp),
}

/// A block of the model: computes (part of) one s-op in one sublayer.
#[derive(Clone, Debug)]
pub struct Block {
    pub node: NodeId,
    /// What it implements, e.g. `map`, `aggregate`, `selector_width.attn`.
    pub role: &'static str,
    pub body: Body,
    /// Blocks that must sit in earlier sublayers.
    pub after: Vec<usize>,
}

impl Block {
    pub fn kind(&self) -> BlockKind {
        match self.body {
            Body::Head(_) => BlockKind::Attn,
            Body::Mlp(_) => BlockKind::Mlp,
        }
    }

    /// Hidden width for MLPs, 0 for heads.
    pub fn width(&self) -> usize {
        match &self.body {
            Body::Mlp(m) => m.hidden,
            Body::Head(_) => 0,
        }
    }
}
