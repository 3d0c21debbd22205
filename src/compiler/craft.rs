//! The intermediate representation: model blocks on vector spaces with named
//! basis directions (what Tracr calls craft). Weights are sparse triplets over
//! directions; assembly turns them into dense matrices over the residual layout.

use crate::rasp::NodeId;
use crate::value::{Strict, Value};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};

/// A named basis direction of the residual stream: `one`, `tokens:a`,
/// `opp_idx:3`, `frac_prevs` (numerical), `length_selector_width_attn_output`.
///
/// Interned (`internment`): a copy is a pointer, and two directions made
/// from the same name and value are the same pointer. Equality, hashing and
/// order are still those of (name, value) under Python's semantics (`x:1`
/// equals `x:1.0`), as before interning; the pointer is only a fast path.
/// Interning itself is strict (`DirData`'s equality sees types, `Strict`), so each
/// direction keeps the text it was made with whatever was interned before
/// in the process. The interner never frees: a compile makes a few
/// thousand distinct directions even at max_seq_len 256.
#[derive(Clone, Copy)]
pub struct Dir(internment::Intern<DirData>);

/// What a direction is: its s-op and value.
pub struct DirData {
    /// The s-op (or `tokens`, `indices`, `one`) it belongs to.
    pub name: String,
    /// The value it stands for (categorical), None for a numerical direction.
    pub value: Option<Value>,
    /// Hash of (name, value) under Python's equality (deterministic keys).
    py_hash: u64,
    /// The name, interned: directions of one s-op compare names by pointer.
    name_key: internment::Intern<str>,
}

impl PartialEq for DirData {
    fn eq(&self, other: &Self) -> bool {
        self.py_hash == other.py_hash
            && self.name == other.name
            && match (&self.value, &other.value) {
                (None, None) => true,
                (Some(a), Some(b)) => Strict(a) == Strict(b),
                _ => false,
            }
    }
}

impl Eq for DirData {}

impl Hash for DirData {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // strictly equal data have equal Python hashes
        self.py_hash.hash(state)
    }
}

impl Dir {
    fn make(name: &str, value: Option<Value>) -> Dir {
        let mut h = std::hash::DefaultHasher::new();
        name.hash(&mut h);
        value.hash(&mut h);
        Dir(internment::Intern::new(DirData {
            name: name.to_string(),
            value,
            py_hash: h.finish(),
            name_key: internment::Intern::from(name),
        }))
    }

    /// A numerical direction.
    pub fn named(name: &str) -> Dir {
        Dir::make(name, None)
    }

    /// The categorical direction of `name` for value `v`.
    pub fn valued(name: &str, v: &Value) -> Dir {
        Dir::make(name, Some(v.clone()))
    }

    /// The constant direction, 1 at every position.
    pub fn one() -> Dir {
        Dir::named("one")
    }

    /// `tokens:BOS`, 1 at the BOS position only.
    pub fn bos() -> Dir {
        Dir::valued("tokens", &Value::Str(BOS.into()))
    }

    /// `tokens:PAD`.
    pub fn pad() -> Dir {
        Dir::valued("tokens", &Value::Str(PAD.into()))
    }
}

impl std::ops::Deref for Dir {
    type Target = DirData;
    fn deref(&self) -> &DirData {
        &self.0
    }
}

impl PartialEq for Dir {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0 || (self.py_hash == other.py_hash && self.name == other.name && self.value == other.value)
    }
}

impl Eq for Dir {}

impl Hash for Dir {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.py_hash.hash(state)
    }
}

impl PartialOrd for Dir {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Dir {
    fn cmp(&self, other: &Self) -> Ordering {
        if self.0 == other.0 {
            return Ordering::Equal;
        }
        let names = if self.name_key == other.name_key { Ordering::Equal } else { self.name.cmp(&other.name) };
        names.then_with(|| self.value.cmp(&other.value))
    }
}

impl fmt::Debug for Dir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dir").field("name", &self.name).field("value", &self.value).finish()
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

/// The BOS token.
pub const BOS: &str = "BOS";
/// The PAD token.
pub const PAD: &str = "PAD";

/// A vector over directions (sparse).
pub type DirVec = BTreeMap<Dir, f64>;

/// Attention or MLP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockKind {
    /// An attention head.
    Attn,
    /// An MLP block.
    Mlp,
}

/// One attention head: `score(q, k) = Σ qk[(a, b)] q[a] k[b]` (before the
/// model's 1/sqrt(d_head), which assembly compensates), and the value map
/// `out[b] += Σ ov[(a, b)] x[a]`.
#[derive(Clone, Debug, Default)]
pub struct Head {
    /// W_QK by query direction, then key direction (ordered: deterministic output).
    pub qk: BTreeMap<Dir, BTreeMap<Dir, f64>>,
    /// W_OV as (input direction, output direction, weight) triplets.
    pub ov: Vec<(Dir, Dir, f64)>,
    /// How the head's weights are laid out in head dimensions; set by the
    /// factorisation pass, Tracr's layout when None.
    pub layout: Option<HeadLayout>,
}

pub use crate::model::Basis;

/// A matrix over directions written as `Σ_j left[j] ⊗ right[j]`: for W_QK the
/// columns of W_Q and W_K, for W_OV the columns of W_V and the rows of W_O.
/// The rank (head dimensions used) is the number of terms.
#[derive(Clone, Debug, PartialEq)]
pub struct Factor {
    /// Query-side (W_Q) or value-side (W_V) vectors, one per head dimension.
    pub left: Vec<DirVec>,
    /// Key-side (W_K) or output-side (W_O) vectors, one per head dimension.
    pub right: Vec<DirVec>,
    /// How the head-side basis was chosen.
    pub basis: Basis,
}

impl Factor {
    /// Head dimensions used.
    pub fn rank(&self) -> usize {
        self.left.len()
    }

    /// Tracr's layout: one term per column direction, that direction on the
    /// right and the column's entries on the left.
    pub fn by_columns(entries: &[(Dir, Dir, f64)]) -> Factor {
        // grouped by hash, then each group sorted once (a long head has
        // millions of entries); a repeated entry sums in the order given
        let mut columns: std::collections::HashMap<Dir, Vec<(Dir, f64)>> = std::collections::HashMap::new();
        for (r, c, w) in entries {
            columns.entry(*c).or_default().push((*r, *w));
        }
        let mut columns: Vec<(Dir, Vec<(Dir, f64)>)> = columns.into_iter().collect();
        columns.sort_by(|a, b| a.0.cmp(&b.0));
        let (left, right) = columns
            .into_iter()
            .map(|(c, mut rows)| {
                rows.sort_by(|a, b| a.0.cmp(&b.0));
                let col: DirVec = rows
                    .chunk_by(|a, b| a.0 == b.0)
                    .map(|g| (g[0].0, g.iter().fold(0.0, |sum, (_, w)| sum + w)))
                    .collect();
                (col, [(c, 1.0)].into_iter().collect())
            })
            .unzip();
        Factor { left, right, basis: Basis::Axis }
    }
}

/// A head's two factorisations.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadLayout {
    /// W_QK's factors.
    pub qk: Factor,
    /// W_OV's factors.
    pub ov: Factor,
}

impl Head {
    /// Same attention pattern (the same W_QK): heads of one layer with the
    /// same pattern are assembled as one head (assembly's head sharing),
    /// and the allocation ILP counts them once.
    pub fn same_pattern(&self, other: &Head) -> bool {
        self.qk == other.qk
    }

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

    /// The head's layout: the factorised one if set, otherwise Tracr's
    /// (W_K selects the key directions read, W_O places the outputs written).
    pub fn layout(&self) -> std::borrow::Cow<'_, HeadLayout> {
        match &self.layout {
            Some(l) => std::borrow::Cow::Borrowed(l),
            None => std::borrow::Cow::Owned(HeadLayout {
                qk: Factor::by_columns(&self.qk_triplets()),
                ov: Factor::by_columns(&self.ov),
            }),
        }
    }

    /// Head dimensions needed: the larger rank of the two factors.
    pub fn width(&self) -> usize {
        match &self.layout {
            Some(l) => l.qk.rank().max(l.ov.rank()),
            // Tracr's layout: a dimension per key direction read and per output written
            None => {
                let keys: std::collections::HashSet<&Dir> = self.qk.values().flat_map(|row| row.keys()).collect();
                let outputs: std::collections::HashSet<&Dir> = self.ov.iter().map(|(_, o, _)| o).collect();
                keys.len().max(outputs.len())
            }
        }
    }

    /// Head dimensions W_OV needs: its factor's rank, or one per output
    /// written in Tracr's layout. Heads merged by head sharing need at most
    /// the sum of theirs.
    pub fn ov_width(&self) -> usize {
        match &self.layout {
            Some(l) => l.ov.rank(),
            None => self.ov.iter().map(|(_, o, _)| o).collect::<std::collections::HashSet<&Dir>>().len(),
        }
    }

    /// W_QK as (query direction, key direction, weight) triplets.
    pub fn qk_triplets(&self) -> Vec<(Dir, Dir, f64)> {
        self.qk_entries().map(|(q, k, w)| (q.clone(), k.clone(), w)).collect()
    }

    /// W_OV applied to a vector over directions.
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
    /// Hidden neurons.
    pub hidden: usize,
    /// (input direction, neuron, weight) entries.
    pub w_in: Vec<(Dir, usize, f64)>,
    /// (neuron, output direction, weight) entries.
    pub w_out: Vec<(usize, Dir, f64)>,
}

impl Mlp {
    /// Adds a neuron and returns its index.
    pub fn neuron(&mut self) -> usize {
        self.hidden += 1;
        self.hidden - 1
    }
}

/// A block's weights.
#[derive(Clone, Debug)]
pub enum Body {
    /// An attention head.
    Head(Head),
    /// An MLP block.
    Mlp(Mlp),
}

/// A block of the model: computes (part of) one s-op in one sublayer.
#[derive(Clone, Debug)]
pub struct Block {
    /// The s-op it computes.
    pub node: NodeId,
    /// What it implements, e.g. `map`, `aggregate`, `selector_width.attn`.
    pub role: &'static str,
    /// Its weights.
    pub body: Body,
    /// Blocks that must sit in earlier sublayers.
    pub after: Vec<usize>,
}

impl Block {
    /// Attention or MLP.
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
