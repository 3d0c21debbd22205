//! Lowering: every RASP primitive to blocks on named directions, exactly.
//!
//! Exactness rests on three rules (docs/EXACTNESS.md has the bounds):
//! 1. Attention scores are `s` for a selected key, `s/2` for BOS (the fallback)
//!    and 0 otherwise, with `s = 2 ln((max_seq_len + 1) / EPS)`, so the weight
//!    that leaks to unselected positions is below `EPS` whatever the length.
//! 2. Numerical-input MLPs step between neighbouring values of the input's value
//!    set, with flat regions of a quarter of the gap around every value: any
//!    input within that distance of a reachable value gives the exact output.
//! 3. The residual at the BOS position is a known constant: every MLP is gated
//!    off there by a -M·tokens:BOS term, and the BOS query attends only to BOS.
//!    Attention compensates that constant so the BOS key scores exactly `s/2`.

use super::craft::{Block, Body, Dir, DirVec, Head, Mlp, BOS, PAD};
use crate::diagnostic::{Error, Result};
use crate::rasp::interp::select_holds;
use crate::rasp::valueset::ValueSets;
use crate::rasp::{Comparison, Encoding, NodeId, Op, Predicate, Program, Settings};
use crate::value::Value;
use std::collections::{BTreeSet, HashMap};

mod attention;
mod mlp;

/// Largest weight an unselected position may receive in any attention head.
pub const EPS: f64 = 1e-9;

/// The softmax scale for a given maximum length (rule 1).
pub fn attention_scale(max_seq_len: usize) -> f64 {
    scale_for(max_seq_len, 1.0)
}

/// The softmax scale when numerical Aggregates carry values (or defaults)
/// up to `magnitude` (at least 1): every unselected key then gets weight at
/// most ε / ((max_seq_len + 1) · magnitude), so what leaks into a mean, the
/// default included, stays below ε however large the values are.
pub fn scale_for(max_seq_len: usize, magnitude: f64) -> f64 {
    2.0 * (((max_seq_len + 1) as f64) * magnitude.max(1.0) / EPS).ln()
}

/// The largest |value| a numerical Aggregate of `p` averages or falls back
/// to (1 when there is none or all are smaller).
fn aggregate_magnitude(p: &Program, vs: &ValueSets) -> f64 {
    let mut m = 1.0f64;
    for node in &p.nodes {
        if let Op::Aggregate { sop, default, .. } = &node.op {
            if node.encoding == Encoding::Numerical {
                for v in vs.of(*sop).iter().chain(std::iter::once(default)) {
                    if let Some(x) = v.as_f64().filter(|x| x.is_finite()) {
                        m = m.max(x.abs());
                    }
                }
            }
        }
    }
    m
}

/// How the embeddings write an s-op that needs no block.
#[derive(Clone, Debug)]
pub enum Embedded {
    /// Written with the token embedding.
    Tokens,
    /// Written with the position embedding.
    Indices,
    /// A constant: written by every token's embedding (not BOS's).
    Constant(Value),
    /// A function of the token (folded `Map(tokens)`): each token's embedding
    /// writes its value. Entries: (token, value).
    TokenMap(Vec<(Value, Value)>),
    /// A function of the position (folded `Map(indices)`): each position's
    /// embedding writes its value. Entries: (index, value).
    IndexMap(Vec<(Value, Value)>),
}

/// Lowering choices that the optimisation flags control.
#[derive(Clone, Debug, Default)]
pub struct LowerOptions {
    /// `Map(tokens)` / `Map(indices)` written by the embeddings, and embedded
    /// directions that no block reads left out of the residual stream.
    pub embed_maps: bool,
    /// A categorical SequenceMap as one neuron per (input value, output value)
    /// rule instead of one per input pair.
    pub rule_tables: bool,
    /// Discretisers (a numerical input to any output) get neurons only at
    /// the gaps where the output changes. The others would be dead (no
    /// output weight) and factorisation drops them anyway; Tracr's layout
    /// (the baseline) keeps them. With thousands of input values and a
    /// threshold, this is the difference between thousands of neurons built
    /// and then deleted and four.
    pub live_steps_only: bool,
}

/// How to read the output s-op off the residual stream.
#[derive(Clone, Debug)]
pub enum OutputDecoder {
    /// Argmax over these directions (one per value); all below 0.5 means None.
    Categorical(Vec<(Dir, Value)>),
    /// One numerical direction holds the value.
    Numerical(Dir),
}

/// The program as blocks on named directions.
#[derive(Clone)]
pub struct Lowered {
    /// The blocks, each with the blocks it must follow.
    pub blocks: Vec<Block>,
    /// Per node: the block that writes its value, if any.
    pub producer: Vec<Option<usize>>,
    /// Per node: written by the embeddings instead.
    pub embedded: Vec<Option<Embedded>>,
    /// Every residual direction.
    pub dirs: BTreeSet<Dir>,
    /// The attention softmax scale (docs/EXACTNESS.md).
    pub scale: f64,
    /// How to decode the output.
    pub output: OutputDecoder,
    /// What the embeddings write, by direction.
    pub embedding: Embedding,
    /// The residual stream at the BOS position after the last block, by
    /// direction (rule 3: a constant).
    pub bos: DirVec,
}

/// The embeddings by direction: one row per token id (0 = BOS, 1 = PAD,
/// then the vocab in order) and one per position (position 0 holds BOS).
/// Only directions of the residual stream appear.
#[derive(Clone, Debug, Default)]
pub struct Embedding {
    /// Each token's embedding row (BOS, PAD, then the vocab), by direction.
    pub tokens: Vec<DirVec>,
    /// Each position's embedding row, by direction.
    pub positions: Vec<DirVec>,
}

/// The residual directions of s-op `id` (one per value if categorical).
pub fn sop_dirs(p: &Program, vs: &ValueSets, id: NodeId) -> Vec<Dir> {
    let n = &p.nodes[id];
    match n.encoding {
        Encoding::Categorical => vs.of(id).iter().map(|v| Dir::valued(&n.label, v)).collect(),
        Encoding::Numerical => vec![Dir::named(&n.label)],
    }
}

struct Ctx<'a> {
    p: &'a Program,
    vs: &'a ValueSets,
    settings: &'a Settings,
    scale: f64,
    blocks: Vec<Block>,
    producer: Vec<Option<usize>>,
    embedded: Vec<Option<Embedded>>,
    dirs: BTreeSet<Dir>,
    /// The residual content at the BOS position, per direction (rule 3).
    bos: DirVec,
    opts: LowerOptions,
}

/// Residual directions are named by label, so a label that names another
/// direction would make two values share one: the token and position
/// embeddings write `tokens:<v>` and `indices:<i>`, the constant direction is
/// `one`, and a selector width keeps its attention output in
/// `<label>_selector_width_attn_output`. Such a label is refused, naming the s-op.
pub fn check_labels(p: &Program) -> Result<()> {
    let helpers: BTreeSet<String> = p
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::SelectorWidth { .. } | Op::Length))
        .map(|n| format!("{}_selector_width_attn_output", n.label))
        .collect();
    for (id, n) in p.nodes.iter().enumerate() {
        let why = match (&n.op, n.label.as_str()) {
            (Op::Tokens, l) if l != "tokens" => {
                "the input tokens must be labelled 'tokens' (the token embedding writes the directions tokens:<value>)"
            }
            (Op::Indices, l) if l != "indices" => {
                "the positions must be labelled 'indices' (the position embedding writes the directions indices:<i>)"
            }
            (Op::Tokens, _) | (Op::Indices, _) => continue,
            (_, "tokens") => "'tokens' is the input tokens' label",
            (_, "indices") => "'indices' is the positions' label",
            (_, "one") => "'one' is the label of the model's constant residual direction",
            (_, l) if helpers.contains(l) => "the label is taken by a selector width's internal residual direction",
            _ => continue,
        };
        return Err(Error::program(format!("{}: {why}; rename the s-op", p.describe(id))));
    }
    Ok(())
}

/// Lowers every node of `p` to blocks, exactly for these settings.
pub fn lower(p: &Program, vs: &ValueSets, settings: &Settings, opts: &LowerOptions) -> Result<Lowered> {
    check_labels(p)?;
    for v in &settings.vocab {
        if matches!(v, Value::Str(s) if s == BOS || s == PAD) {
            return Err(Error::usage(format!(
                "'{}' is reserved for the model's special tokens; rename that vocab token",
                v.display()
            )));
        }
    }
    let mut cx = Ctx {
        p,
        vs,
        settings,
        scale: scale_for(settings.max_seq_len, aggregate_magnitude(p, vs)),
        blocks: Vec::new(),
        producer: vec![None; p.nodes.len()],
        embedded: vec![None; p.nodes.len()],
        dirs: BTreeSet::new(),
        bos: DirVec::new(),
        opts: opts.clone(),
    };
    cx.dirs.insert(Dir::one());
    cx.dirs.insert(Dir::bos());
    cx.dirs.insert(Dir::pad());
    cx.bos.insert(Dir::one(), 1.0);
    cx.bos.insert(Dir::bos(), 1.0);
    // Tracr always embeds tokens and indices, read or not; so does the baseline
    for v in &settings.vocab {
        cx.dirs.insert(Dir::valued("tokens", v));
    }
    for i in 0..settings.max_seq_len {
        cx.dirs.insert(Dir::valued("indices", &Value::Int(i as i64)));
    }
    for id in 0..p.nodes.len() {
        cx.lower_node(id)?;
    }
    if opts.embed_maps {
        cx.drop_unread_embedded();
    }
    let out = p.output;
    let output = match p.nodes[out].encoding {
        Encoding::Categorical => OutputDecoder::Categorical(
            vs.of(out).iter().map(|v| (Dir::valued(&p.nodes[out].label, v), v.clone())).collect(),
        ),
        Encoding::Numerical => OutputDecoder::Numerical(Dir::named(&p.nodes[out].label)),
    };
    let embedding = cx.embedding();
    Ok(Lowered {
        blocks: cx.blocks,
        producer: cx.producer,
        embedded: cx.embedded,
        dirs: cx.dirs,
        scale: cx.scale,
        output,
        embedding,
        bos: cx.bos,
    })
}

impl<'a> Ctx<'a> {
    fn err(&self, id: NodeId, why: impl std::fmt::Display) -> Error {
        Error::program(format!("cannot compile {}: {why}", self.p.describe(id)))
    }
    fn label(&self, id: NodeId) -> &str {
        &self.p.nodes[id].label
    }
    fn enc(&self, id: NodeId) -> Encoding {
        self.p.nodes[id].encoding
    }
    fn add_dirs(&mut self, id: NodeId) {
        for d in sop_dirs(self.p, self.vs, id) {
            self.dirs.insert(d);
        }
    }
    fn push(&mut self, id: NodeId, role: &'static str, body: Body, after: Vec<usize>) -> usize {
        self.blocks.push(Block { node: id, role, body, after });
        self.blocks.len() - 1
    }
    /// Blocks that must come before a block reading these s-ops.
    fn deps(&self, sops: &[NodeId]) -> Vec<usize> {
        let mut v: Vec<usize> = sops.iter().filter_map(|s| self.producer[*s]).collect();
        v.sort();
        v.dedup();
        v
    }
    fn lower_node(&mut self, id: NodeId) -> Result<()> {
        let node = &self.p.nodes[id];
        match node.op.clone() {
            Op::Tokens => {
                if node.encoding == Encoding::Numerical {
                    return Err(self.err(id, "numerical tokens are not supported (tokens are categorical)"));
                }
                self.add_dirs(id);
                self.embedded[id] = Some(Embedded::Tokens);
            }
            Op::Indices => {
                if node.encoding == Encoding::Numerical {
                    return Err(self.err(id, "numerical indices are not supported (indices are categorical)"));
                }
                self.add_dirs(id);
                self.embedded[id] = Some(Embedded::Indices);
            }
            Op::Full(v) => {
                if node.encoding == Encoding::Numerical && !v.is_number() {
                    return Err(self.err(id, format!("a numerical constant must be a number, not {}", v.repr())));
                }
                self.add_dirs(id);
                self.embedded[id] = Some(Embedded::Constant(v));
            }
            Op::Length => self.lower_width(id, None)?,
            Op::SelectorWidth { selector } => self.lower_width(id, Some(selector))?,
            Op::Map { input, f }
                if self.opts.embed_maps && matches!(self.p.nodes[input].op, Op::Tokens | Op::Indices) =>
            {
                let mut entries = Vec::new();
                for x in self.vs.of(input) {
                    let y = f
                        .call(std::slice::from_ref(x))
                        .map_err(|e| self.err(id, format!("the function raised {e} on {}", x.repr())))?;
                    if node.encoding == Encoding::Numerical && !matches!(y, Value::None) {
                        self.numeric(id, &y, "the numerical Map's result")?;
                    }
                    entries.push((x.clone(), y));
                }
                self.add_dirs(id);
                self.embedded[id] = Some(if matches!(self.p.nodes[input].op, Op::Tokens) {
                    Embedded::TokenMap(entries)
                } else {
                    Embedded::IndexMap(entries)
                });
            }
            Op::Map { input, .. } => self.lower_map(id, input)?,
            Op::SequenceMap { inputs, .. } => self.lower_sequence_map(id, inputs)?,
            Op::LinearSequenceMap { inputs, coeffs } => self.lower_linear(id, inputs, &coeffs)?,
            Op::Aggregate { selector, sop, default } => self.lower_aggregate(id, selector, sop, &default)?,
            Op::Select { .. } | Op::SelectAnd(..) | Op::SelectOr(..) | Op::SelectNot(..) => {}
        }
        Ok(())
    }
    /// Embedded directions (token and position one-hots, folded maps,
    /// constants) that no block reads and the output does not use need not
    /// be in the residual stream. `one` and `tokens:BOS` always stay (every
    /// MLP's BOS gate reads the latter).
    fn drop_unread_embedded(&mut self) {
        let mut read: std::collections::HashSet<Dir> = std::collections::HashSet::new();
        for b in &self.blocks {
            match &b.body {
                Body::Head(h) => {
                    for (q, row) in &h.qk {
                        read.insert(*q);
                        read.extend(row.keys());
                    }
                    read.extend(h.ov.iter().map(|(a, _, _)| *a));
                }
                Body::Mlp(m) => read.extend(m.w_in.iter().map(|(d, _, _)| *d)),
            }
        }
        for d in sop_dirs(self.p, self.vs, self.p.output) {
            read.insert(d);
        }
        let embedded: BTreeSet<&str> = self
            .embedded
            .iter()
            .enumerate()
            .filter(|(_, e)| e.is_some())
            .map(|(id, _)| self.p.nodes[id].label.as_str())
            .chain(["tokens", "indices"])
            .collect();
        let keep = |d: &Dir| *d == Dir::one() || *d == Dir::bos() || *d == Dir::pad() || read.contains(d);
        self.dirs.retain(|d| !embedded.contains(d.name.as_str()) || keep(d));
    }
    /// The embedding rows: BOS writes `one` and `tokens:BOS`, PAD its own
    /// direction, every token `one`, its token direction, the constants and
    /// folded token maps; every position its index and folded index maps.
    fn embedding(&self) -> Embedding {
        let vocab = &self.settings.vocab;
        let n_ctx = self.settings.max_seq_len + 1;
        let mut e = Embedding { tokens: vec![DirVec::new(); vocab.len() + 2], positions: vec![DirVec::new(); n_ctx] };
        let set = |row: &mut DirVec, d: Dir, v: f64| {
            if v != 0.0 && self.dirs.contains(&d) {
                row.insert(d, v);
            }
        };
        set(&mut e.tokens[0], Dir::bos(), 1.0);
        set(&mut e.tokens[0], Dir::one(), 1.0);
        set(&mut e.tokens[1], Dir::pad(), 1.0);
        for (t, v) in vocab.iter().enumerate() {
            set(&mut e.tokens[t + 2], Dir::one(), 1.0);
            set(&mut e.tokens[t + 2], Dir::valued("tokens", v), 1.0);
        }
        for p in 1..n_ctx {
            set(&mut e.positions[p], Dir::valued("indices", &Value::Int(p as i64 - 1)), 1.0);
        }
        for (id, emb) in self.embedded.iter().enumerate() {
            let label = self.label(id);
            let numerical = self.enc(id) == Encoding::Numerical;
            // a value as (direction, weight); None writes nothing
            let dir_of = |y: &Value| match y {
                Value::None => None,
                y if numerical => Some((Dir::named(label), y.as_f64().unwrap_or(0.0))),
                y => Some((Dir::valued(label, y), 1.0)),
            };
            match emb {
                None | Some(Embedded::Tokens) | Some(Embedded::Indices) => {}
                Some(Embedded::Constant(c)) => {
                    if let Some((d, w)) = dir_of(c) {
                        for t in 0..vocab.len() {
                            set(&mut e.tokens[t + 2], d.clone(), w);
                        }
                    }
                }
                Some(Embedded::TokenMap(entries)) => {
                    for (x, y) in entries {
                        if let (Some(t), Some((d, w))) = (vocab.iter().position(|v| v == x), dir_of(y)) {
                            set(&mut e.tokens[t + 2], d, w);
                        }
                    }
                }
                Some(Embedded::IndexMap(entries)) => {
                    // position p holds index p - 1 (position 0 is BOS)
                    for (x, y) in entries {
                        let row = match x.as_f64() {
                            Some(i) if i >= 0.0 && (i as usize) + 1 < n_ctx => i as usize + 1,
                            _ => continue,
                        };
                        if let Some((d, w)) = dir_of(y) {
                            set(&mut e.positions[row], d, w);
                        }
                    }
                }
            }
        }
        e
    }
    /// Adds the BOS gate to every neuron of an MLP (rule 3): `-(preact at BOS)⁺ - 1`
    /// on tokens:BOS, so each neuron is exactly off at the BOS position.
    fn gate(&self, mlp: &mut Mlp) {
        // every neuron's pre-activation at BOS in one pass over W_in
        let mut pre = vec![0.0; mlp.hidden];
        for (d, h, w) in &mlp.w_in {
            if let Some(x) = self.bos.get(d) {
                pre[*h] += w * x;
            }
        }
        for (h, pre) in pre.into_iter().enumerate() {
            mlp.w_in.push((Dir::bos(), h, -(pre.max(0.0) + 1.0)));
        }
    }
    /// Finishes an MLP that computes node `id` from `reads`.
    fn finish_mlp(&mut self, id: NodeId, role: &'static str, mut mlp: Mlp, reads: &[NodeId]) -> usize {
        self.gate(&mut mlp);
        self.add_dirs(id);
        let after = self.deps(reads);
        let b = self.push(id, role, Body::Mlp(mlp), after);
        self.producer[id] = Some(b);
        b
    }
    /// A value a numerical direction carries, refused unless it is a finite
    /// number: inf or nan in a weight turns every product it meets, the
    /// zeros of unselected keys included, into inf or nan.
    fn numeric(&self, id: NodeId, v: &Value, what: &str) -> Result<f64> {
        match v.as_f64() {
            Some(x) if x.is_finite() => Ok(x),
            Some(_) => {
                Err(self
                    .err(id, format!("{what} {} is not a finite number, and no weight can carry it exactly", v.repr())))
            }
            None => Err(self.err(id, format!("{what} {} is not a number", v.repr()))),
        }
    }
    /// The output of node `id` for value `v`, as a vector over its directions.
    fn out_vec(&self, id: NodeId, v: &Value) -> Result<DirVec> {
        let mut out = DirVec::new();
        if matches!(v, Value::None) {
            return Ok(out);
        }
        match self.enc(id) {
            Encoding::Categorical => {
                out.insert(Dir::valued(self.label(id), v), 1.0);
            }
            Encoding::Numerical => {
                out.insert(Dir::named(self.label(id)), self.numeric(id, v, "the numerical value")?);
            }
        }
        Ok(out)
    }
}
