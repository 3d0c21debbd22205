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

/// Largest weight an unselected position may receive in any attention head.
pub const EPS: f64 = 1e-9;

/// The softmax scale for a given maximum length (rule 1).
pub fn attention_scale(max_seq_len: usize) -> f64 {
    2.0 * (((max_seq_len + 1) as f64) / EPS).ln()
}

/// How the embeddings write an s-op that needs no block.
#[derive(Clone, Debug)]
pub enum Embedded {
    Tokens,
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
}

#[derive(Clone, Debug)]
pub enum OutputDecoder {
    /// Argmax over these directions (one per value); all below 0.5 means None.
    Categorical(Vec<(Dir, Value)>),
    Numerical(Dir),
}

pub struct Lowered {
    pub blocks: Vec<Block>,
    /// Per node: the block that writes its value, if any.
    pub producer: Vec<Option<usize>>,
    /// Per node: written by the embeddings instead.
    pub embedded: Vec<Option<Embedded>>,
    /// Every residual direction.
    pub dirs: BTreeSet<Dir>,
    pub scale: f64,
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
    pub tokens: Vec<DirVec>,
    pub positions: Vec<DirVec>,
}

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

pub fn lower(p: &Program, vs: &ValueSets, settings: &Settings, opts: &LowerOptions) -> Result<Lowered> {
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
        scale: attention_scale(settings.max_seq_len),
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
        let mut read: BTreeSet<Dir> = BTreeSet::new();
        for b in &self.blocks {
            match &b.body {
                Body::Head(h) => {
                    for (q, k, _) in h.qk_entries() {
                        read.insert(q.clone());
                        read.insert(k.clone());
                    }
                    read.extend(h.ov.iter().map(|(a, _, _)| a.clone()));
                }
                Body::Mlp(m) => read.extend(m.w_in.iter().map(|(d, _, _)| d.clone())),
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
        for h in 0..mlp.hidden {
            let pre = mlp.preact(h, &self.bos);
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

    fn numeric(&self, id: NodeId, v: &Value, what: &str) -> Result<f64> {
        v.as_f64().ok_or_else(|| self.err(id, format!("{what} {} is not a number", v.repr())))
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

    fn lower_map(&mut self, id: NodeId, input: NodeId) -> Result<()> {
        let Op::Map { f, .. } = &self.p.nodes[id].op else { unreachable!() };
        let f = f.clone();
        let apply = |x: &Value| {
            f.call(std::slice::from_ref(x))
                .map_err(|e| self.err(id, format!("the function raised {e} on {}", x.repr())))
        };
        let mut mlp = Mlp::default();
        let in_vals: Vec<Value> = self.vs.of(input).to_vec();
        match (self.enc(input), self.enc(id)) {
            (Encoding::Categorical, Encoding::Categorical) => {
                // one neuron per output value (Tracr's layout)
                let mut neuron: HashMap<Value, usize> = HashMap::new();
                for y in self.vs.of(id) {
                    let h = mlp.neuron();
                    neuron.insert(y.clone(), h);
                    mlp.w_out.push((h, Dir::valued(self.label(id), y), 1.0));
                }
                for x in &in_vals {
                    let y = apply(x)?;
                    if let Some(h) = neuron.get(&y) {
                        mlp.w_in.push((Dir::valued(self.label(input), x), *h, 1.0));
                    }
                }
            }
            (Encoding::Categorical, Encoding::Numerical) => {
                let ys: Vec<(Value, f64)> = in_vals
                    .iter()
                    .map(|x| {
                        let y = apply(x)?;
                        let fy = if matches!(y, Value::None) {
                            0.0
                        } else {
                            self.numeric(id, &y, "the numerical Map's result")?
                        };
                        Ok((x.clone(), fy))
                    })
                    .collect::<Result<_>>()?;
                // relu(z) - relu(-z) = z; one neuron suffices when no result is negative
                let pos = mlp.neuron();
                mlp.w_out.push((pos, Dir::named(self.label(id)), 1.0));
                let neg = if ys.iter().any(|(_, y)| *y < 0.0) {
                    let h = mlp.neuron();
                    mlp.w_out.push((h, Dir::named(self.label(id)), -1.0));
                    Some(h)
                } else {
                    None
                };
                for (x, y) in ys {
                    let d = Dir::valued(self.label(input), &x);
                    if y > 0.0 {
                        mlp.w_in.push((d, pos, y));
                    } else if y < 0.0 {
                        mlp.w_in.push((d, neg.unwrap(), -y));
                    }
                }
            }
            (Encoding::Numerical, _) => {
                let mut points = Vec::new();
                for x in &in_vals {
                    points.push((self.numeric(input, x, "the value")?, self.out_vec(id, &apply(x)?)?));
                }
                self.discretiser(&mut mlp, &Dir::named(self.label(input)), points, id)?;
            }
        }
        self.finish_mlp(id, "map", mlp, &[input]);
        Ok(())
    }

    /// A numerical input to any output, exact within a quarter gap of every
    /// value (rule 2). `points` are (input value, output vector).
    fn discretiser(&self, mlp: &mut Mlp, input: &Dir, mut points: Vec<(f64, DirVec)>, id: NodeId) -> Result<()> {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        points.dedup_by(|a, b| a.0 == b.0);
        let Some((_, first)) = points.first() else { return Ok(()) };
        // the value at the smallest input, from a neuron that is always on
        let start = mlp.neuron();
        mlp.w_in.push((Dir::one(), start, 1.0));
        for (d, w) in first {
            mlp.w_out.push((start, d.clone(), *w));
        }
        for i in 1..points.len() {
            let (lo, hi) = (points[i - 1].0, points[i].0);
            let gap = hi - lo;
            if !(gap.is_finite() && gap > 0.0) {
                return Err(self.err(id, "numerical input values too close together to separate"));
            }
            // ramp from 0 at lo + gap/4 to 1 at hi - gap/4
            let (a, width) = (lo + gap / 4.0, gap / 2.0);
            let up = mlp.neuron();
            let down = mlp.neuron();
            mlp.w_in.push((input.clone(), up, 1.0 / width));
            mlp.w_in.push((Dir::one(), up, -a / width));
            mlp.w_in.push((input.clone(), down, 1.0 / width));
            mlp.w_in.push((Dir::one(), down, -a / width - 1.0));
            let mut step: DirVec = points[i].1.clone();
            for (d, w) in &points[i - 1].1 {
                *step.entry(d.clone()).or_insert(0.0) -= w;
            }
            let mut keys: Vec<&Dir> = step.keys().collect();
            keys.sort();
            for d in keys {
                let w = step[d];
                if w != 0.0 {
                    mlp.w_out.push((up, d.clone(), w));
                    mlp.w_out.push((down, d.clone(), -w));
                }
            }
        }
        Ok(())
    }

    fn lower_sequence_map(&mut self, id: NodeId, inputs: [NodeId; 2]) -> Result<()> {
        for i in inputs {
            if self.enc(i) == Encoding::Numerical {
                return Err(self.err(
                    id,
                    format!("its input '{}' is numerical; a SequenceMap needs categorical inputs (use LinearSequenceMap for a linear function of numbers)", self.label(i)),
                ));
            }
        }
        let Op::SequenceMap { f, .. } = &self.p.nodes[id].op else { unreachable!() };
        let f = f.clone();
        if self.opts.rule_tables {
            let mlp = self.rule_table(id, inputs, &f)?;
            self.finish_mlp(id, "sequence_map", mlp, &inputs);
            return Ok(());
        }
        let mut mlp = Mlp::default();
        // one neuron per pair of input values (Tracr's layout): relu(x + y - 1)
        for x in self.vs.of(inputs[0]) {
            for y in self.vs.of(inputs[1]) {
                let z = f
                    .call(&[x.clone(), y.clone()])
                    .map_err(|e| self.err(id, format!("the function raised {e} on ({}, {})", x.repr(), y.repr())))?;
                let h = mlp.neuron();
                mlp.w_in.push((Dir::valued(self.label(inputs[0]), x), h, 1.0));
                mlp.w_in.push((Dir::valued(self.label(inputs[1]), y), h, 1.0));
                mlp.w_in.push((Dir::one(), h, -1.0));
                for (d, w) in self.out_vec(id, &z)? {
                    mlp.w_out.push((h, d, w));
                }
            }
        }
        self.finish_mlp(id, "sequence_map", mlp, &inputs);
        Ok(())
    }

    /// A categorical SequenceMap as rules: per value x of one input and per
    /// output value z, one neuron `relu(x + Σ_{y: f(x,y)=z} y - 1)`, on exactly
    /// when the input is x and the other input is one of those y; it writes
    /// z. Pairs giving None write nothing and need no neuron, nor do pairs
    /// that can never occur together (`reachable_pairs`). Grouped by
    /// whichever input gives fewer neurons (never more than Tracr's |X|·|Y|).
    fn rule_table(&self, id: NodeId, inputs: [NodeId; 2], f: &crate::rasp::func::Func) -> Result<Mlp> {
        let (xs, ys) = (self.vs.of(inputs[0]), self.vs.of(inputs[1]));
        let reachable = self.reachable_pairs(inputs);
        let mut out: HashMap<(usize, usize), Value> = HashMap::new();
        for (i, x) in xs.iter().enumerate() {
            for (j, y) in ys.iter().enumerate() {
                if reachable.as_ref().is_some_and(|r| !r.contains(&(x.clone(), y.clone()))) {
                    out.insert((i, j), Value::None); // never occurs: no rule
                    continue;
                }
                let z = f
                    .call(&[x.clone(), y.clone()])
                    .map_err(|e| self.err(id, format!("the function raised {e} on ({}, {})", x.repr(), y.repr())))?;
                out.insert((i, j), z);
            }
        }
        // rules[(outer value, output)] = inner values
        let rules = |by_first: bool| -> Vec<(usize, Value, Vec<usize>)> {
            let (n_outer, n_inner) = if by_first { (xs.len(), ys.len()) } else { (ys.len(), xs.len()) };
            let mut r: Vec<(usize, Value, Vec<usize>)> = Vec::new();
            for a in 0..n_outer {
                let mut groups: Vec<(Value, Vec<usize>)> = Vec::new();
                for b in 0..n_inner {
                    let z = &out[&if by_first { (a, b) } else { (b, a) }];
                    if matches!(z, Value::None) {
                        continue;
                    }
                    match groups.iter_mut().find(|(v, _)| v == z) {
                        Some((_, g)) => g.push(b),
                        None => groups.push((z.clone(), vec![b])),
                    }
                }
                r.extend(groups.into_iter().map(|(z, g)| (a, z, g)));
            }
            r
        };
        let (by_x, by_y) = (rules(true), rules(false));
        let by_first = by_x.len() <= by_y.len();
        let (outer, inner) = if by_first { (0, 1) } else { (1, 0) };
        let vals = [xs, ys];
        let mut mlp = Mlp::default();
        for (a, z, group) in if by_first { by_x } else { by_y } {
            let h = mlp.neuron();
            mlp.w_in.push((Dir::valued(self.label(inputs[outer]), &vals[outer][a]), h, 1.0));
            for b in group {
                mlp.w_in.push((Dir::valued(self.label(inputs[inner]), &vals[inner][b]), h, 1.0));
            }
            mlp.w_in.push((Dir::one(), h, -1.0));
            for (d, w) in self.out_vec(id, &z)? {
                mlp.w_out.push((h, d, w));
            }
        }
        Ok(mlp)
    }

    /// The (x, y) value pairs two s-ops can take together at one position,
    /// when both are computed element-wise from tokens, indices and length:
    /// every (token, index, length) with index < length ≤ max_seq_len. None
    /// when either depends on anything else (then every pair of the value
    /// sets is assumed reachable).
    fn reachable_pairs(&self, inputs: [NodeId; 2]) -> Option<std::collections::HashSet<(Value, Value)>> {
        let support = super::rewrite::supports(self.p);
        let leaves: BTreeSet<NodeId> = inputs.iter().flat_map(|i| support[*i].iter().cloned()).collect();
        // `length`, or Tracr's make_length: SelectorWidth of an all-true select
        let is_length = |l: NodeId| match &self.p.nodes[l].op {
            Op::Length => true,
            Op::SelectorWidth { selector } => {
                matches!(self.p.nodes[*selector].op, Op::Select { predicate: Predicate::Cmp(Comparison::TRUE), .. })
            }
            _ => false,
        };
        if !leaves.iter().all(|l| matches!(self.p.nodes[*l].op, Op::Tokens | Op::Indices) || is_length(*l)) {
            return None;
        }
        let msl = self.settings.max_seq_len;
        let tokens = self.settings.vocab.len().max(1);
        if tokens.saturating_mul(msl).saturating_mul(msl) > 1_000_000 {
            return None;
        }
        let mut pairs = std::collections::HashSet::new();
        for t in &self.settings.vocab {
            for n in 1..=msl {
                for i in 0..n {
                    let env: HashMap<NodeId, Value> = leaves
                        .iter()
                        .map(|l| {
                            let v = match self.p.nodes[*l].op {
                                Op::Tokens => t.clone(),
                                Op::Indices => Value::Int(i as i64),
                                _ => Value::Int(n as i64), // a length
                            };
                            (*l, v)
                        })
                        .collect();
                    let x = super::rewrite::eval_local(self.p, inputs[0], &env).ok()?;
                    let y = super::rewrite::eval_local(self.p, inputs[1], &env).ok()?;
                    pairs.insert((x, y));
                }
            }
        }
        Some(pairs)
    }

    fn lower_linear(&mut self, id: NodeId, inputs: [NodeId; 2], coeffs: &[Value; 2]) -> Result<()> {
        if self.enc(id) != Encoding::Numerical {
            return Err(self.err(id, "a LinearSequenceMap must be numerical (wrap it in numerical(...))"));
        }
        let mut mlp = Mlp::default();
        let out = Dir::named(self.label(id));
        for (i, c) in inputs.iter().zip(coeffs) {
            if self.enc(*i) != Encoding::Numerical {
                return Err(self.err(
                    id,
                    format!(
                        "its input '{}' is categorical; LinearSequenceMap needs numerical inputs (use SequenceMap)",
                        self.label(*i)
                    ),
                ));
            }
            let c = self.numeric(id, c, "the coefficient")?;
            // c·x = c·relu(x) - c·relu(-x)
            let d = Dir::named(self.label(*i));
            let pos = mlp.neuron();
            let neg = mlp.neuron();
            mlp.w_in.push((d.clone(), pos, 1.0));
            mlp.w_in.push((d, neg, -1.0));
            mlp.w_out.push((pos, out.clone(), c));
            mlp.w_out.push((neg, out.clone(), -c));
        }
        self.finish_mlp(id, "linear_sequence_map", mlp, &inputs);
        Ok(())
    }

    /// The relation a selector computes, over (key value, query value), if it
    /// is one Select or And/Or/Not of Selects over the same keys and queries.
    /// A selector as a conjunction of relations, one per (keys, queries)
    /// pair: `&` of selects over different s-ops is computed by one head as a
    /// sum of bilinear terms (see `selector_head`).
    fn terms(&self, sel: NodeId, owner: NodeId) -> Result<Vec<Relation>> {
        if let Op::SelectAnd(a, b) = &self.p.nodes[sel].op {
            let mut out = self.terms(*a, owner)?;
            for t in self.terms(*b, owner)? {
                match out.iter_mut().find(|o| o.keys == t.keys && o.queries == t.queries) {
                    Some(o) if o.all_true => *o = t,
                    Some(_) if t.all_true => {}
                    Some(o) => o.pairs = o.pairs.intersection(&t.pairs).cloned().collect(),
                    None => out.push(t),
                }
            }
            // TRUE terms select everything: they change no comparison
            if out.len() > 1 {
                out.retain(|t| !t.all_true);
            }
            if out.is_empty() {
                out.push(self.relation(*a, owner)?);
            }
            return Ok(out);
        }
        Ok(vec![self.relation(sel, owner)?])
    }

    fn relation(&self, sel: NodeId, owner: NodeId) -> Result<Relation> {
        match &self.p.nodes[sel].op {
            Op::Select { keys, queries, predicate } => {
                for s in [keys, queries] {
                    if self.enc(*s) == Encoding::Numerical {
                        return Err(self.err(owner, format!("its selector '{}' reads the numerical s-op '{}'; Select needs categorical keys and queries", self.label(sel), self.label(*s))));
                    }
                }
                let all_true = matches!(predicate, Predicate::Cmp(Comparison::TRUE));
                let mut pairs = BTreeSet::new();
                if !all_true {
                    for (ki, k) in self.vs.of(*keys).iter().enumerate() {
                        for (qi, q) in self.vs.of(*queries).iter().enumerate() {
                            if select_holds(predicate, k, q).map_err(|e| self.err(owner, e))? {
                                pairs.insert((ki, qi));
                            }
                        }
                    }
                }
                Ok(Relation {
                    keys: *keys,
                    queries: *queries,
                    kvals: self.vs.of(*keys).to_vec(),
                    qvals: self.vs.of(*queries).to_vec(),
                    all_true,
                    pairs,
                })
            }
            Op::SelectNot(a) => {
                let r = self.relation(*a, owner)?;
                if r.all_true {
                    return Ok(Relation { all_true: false, pairs: BTreeSet::new(), ..r });
                }
                let mut pairs = BTreeSet::new();
                for ki in 0..r.kvals.len() {
                    for qi in 0..r.qvals.len() {
                        if !r.pairs.contains(&(ki, qi)) {
                            pairs.insert((ki, qi));
                        }
                    }
                }
                Ok(Relation { pairs, ..r })
            }
            Op::SelectAnd(a, b) | Op::SelectOr(a, b) => {
                let (x, y) = (self.relation(*a, owner)?, self.relation(*b, owner)?);
                let and = matches!(self.p.nodes[sel].op, Op::SelectAnd(..));
                if x.all_true || y.all_true {
                    // TRUE & s == s, TRUE | s == TRUE
                    let (t, other) = if x.all_true { (x, y) } else { (y, x) };
                    return Ok(if and { other } else { t });
                }
                if x.keys != y.keys || x.queries != y.queries {
                    return Err(self.err(
                        owner,
                        format!("its selector '{}' combines selects over different s-ops; composite selectors of different keys/queries are not supported", self.label(sel)),
                    ));
                }
                let pairs = if and {
                    x.pairs.intersection(&y.pairs).cloned().collect()
                } else {
                    x.pairs.union(&y.pairs).cloned().collect()
                };
                Ok(Relation { pairs, ..x })
            }
            _ => Err(Error::internal("relation of a non-selector")),
        }
    }

    /// Builds a head's W_QK for a selector given as a conjunction of terms:
    /// `scale` per satisfied term, so a selected key scores `n·scale` and any
    /// other key at most `(n-1)·scale`; the BOS key at exactly `bos_target`
    /// (given for n = 1, shifted by `(n-1)·scale`) for every query; the BOS
    /// query attending only to BOS.
    fn selector_head(&self, terms: &[Relation], bos_target: f64) -> Head {
        let s = self.scale;
        let bos_target = bos_target + (terms.len() as f64 - 1.0) * s;
        let mut head = Head::default();
        for rel in terms {
            let (kl, ql) = (self.label(rel.keys).to_string(), self.label(rel.queries).to_string());
            if rel.all_true {
                head.add_qk(&Dir::one(), &Dir::one(), s);
            }
            for (ki, qi) in &rel.pairs {
                head.add_qk(&Dir::valued(&ql, &rel.qvals[*qi]), &Dir::valued(&kl, &rel.kvals[*ki]), s);
            }
        }
        // BOS key: compensate whatever the BOS position holds (rule 3). Each
        // query s-op has one direction on (or none), and scores add over
        // directions, so each query direction's share of the BOS key's score
        // is cancelled and `one` carries the target.
        let bos_key = self.bos.clone();
        let none_query: DirVec = [(Dir::one(), 1.0)].into_iter().collect();
        let base = bos_target - head.score(&none_query, &bos_key);
        head.add_qk(&Dir::one(), &Dir::bos(), base);
        let mut query_dirs: Vec<Dir> = Vec::new();
        for rel in terms {
            for q in &rel.qvals {
                let qd = Dir::valued(self.label(rel.queries), q);
                if !query_dirs.contains(&qd) {
                    query_dirs.push(qd);
                }
            }
        }
        for qd in query_dirs {
            let alone: DirVec = [(qd.clone(), 1.0)].into_iter().collect();
            let share = head.score(&alone, &bos_key);
            head.add_qk(&qd, &Dir::bos(), -share);
        }
        // BOS query: beat every other key by at least s/2. A key's score from
        // the BOS query is its `one` share plus, per key s-op, the share of
        // its value (or 0 for None): bounded by the best value of each.
        let bos_query = self.bos.clone();
        let one_key: DirVec = [(Dir::one(), 1.0)].into_iter().collect();
        let mut best_other = head.score(&bos_query, &one_key);
        let mut key_sops: Vec<(NodeId, &Vec<Value>)> = Vec::new();
        for rel in terms {
            if !key_sops.iter().any(|(k, _)| *k == rel.keys) {
                key_sops.push((rel.keys, &rel.kvals));
            }
        }
        for (k, kvals) in key_sops {
            let best = kvals
                .iter()
                .map(|v| head.score(&bos_query, &[(Dir::valued(self.label(k), v), 1.0)].into_iter().collect()))
                .fold(0.0f64, f64::max);
            best_other += best;
        }
        let bos_self = head.score(&bos_query, &bos_key);
        head.add_qk(&Dir::bos(), &Dir::bos(), (best_other - bos_self).max(0.0) + s / 2.0);
        head
    }

    fn lower_aggregate(&mut self, id: NodeId, selector: NodeId, sop: NodeId, default: &Value) -> Result<()> {
        let terms = self.terms(selector, id)?;
        let mut head = self.selector_head(&terms, self.scale / 2.0);
        let out_enc = self.enc(id);
        match (self.enc(sop), out_enc) {
            (Encoding::Categorical, Encoding::Categorical) => {
                if let [rel] = terms.as_slice() {
                    self.check_single_value(id, rel, sop)?;
                }
                for v in self.vs.of(sop) {
                    head.ov.push((Dir::valued(self.label(sop), v), Dir::valued(self.label(id), v), 1.0));
                }
            }
            (Encoding::Numerical, Encoding::Numerical) => {
                head.ov.push((Dir::named(self.label(sop)), Dir::named(self.label(id)), 1.0));
            }
            (Encoding::Categorical, Encoding::Numerical) => {
                // the mean of the selected values, read off the one-hot
                for v in self.vs.of(sop) {
                    let x = self.numeric(id, v, "the value")?;
                    if x != 0.0 {
                        head.ov.push((Dir::valued(self.label(sop), v), Dir::named(self.label(id)), x));
                    }
                }
            }
            (Encoding::Numerical, Encoding::Categorical) => {
                return Err(self.err(id, format!("it is categorical but aggregates the numerical s-op '{}'; wrap it in numerical(...) to average", self.label(sop))));
            }
        }
        if out_enc == Encoding::Numerical && !default.is_number() {
            return Err(
                self.err(id, format!("a numerical Aggregate needs a number as default, not {}", default.repr()))
            );
        }
        // BOS value: whatever the head reads at BOS, corrected to the default
        let mut at_bos = head.apply_ov(&self.bos);
        let want = self.out_vec(id, default)?;
        for (d, w) in &want {
            *at_bos.entry(d.clone()).or_insert(0.0) -= w;
        }
        let mut fix: Vec<(Dir, f64)> = at_bos.into_iter().filter(|(_, w)| *w != 0.0).collect();
        fix.sort_by(|a, b| a.0.cmp(&b.0));
        for (d, w) in fix {
            head.ov.push((Dir::bos(), d, -w));
        }
        // the BOS position attends to itself, so it now holds the default
        for d in sop_dirs(self.p, self.vs, id) {
            self.bos.remove(&d);
        }
        for (d, w) in want {
            self.bos.insert(d, w);
        }
        self.add_dirs(id);
        let mut reads: Vec<NodeId> = terms.iter().flat_map(|t| [t.keys, t.queries]).chain([sop]).collect();
        reads.sort();
        reads.dedup();
        let after = self.deps(&reads);
        let b = self.push(id, "aggregate", Body::Head(head), after);
        self.producer[id] = Some(b);
        Ok(())
    }

    /// A categorical Aggregate must select positions that agree. Refuse the
    /// cases the value sets prove can fail (non-causal): keys that are
    /// `indices` selecting two positions of `tokens`/`indices`, or keys that
    /// are `tokens` selecting two different tokens, or any token twice when
    /// aggregating `indices`. Other cases are left to `verify`.
    fn check_single_value(&self, id: NodeId, rel: &Relation, sop: NodeId) -> Result<()> {
        if self.settings.causal || self.settings.max_seq_len < 2 {
            return Ok(());
        }
        let keys_op = &self.p.nodes[rel.keys].op;
        let sop_op = &self.p.nodes[sop].op;
        let sop_differs = match sop_op {
            Op::Indices => true,
            Op::Tokens => self.vs.of(sop).len() >= 2,
            _ => false,
        };
        if !sop_differs {
            return Ok(());
        }
        let nk = rel.kvals.len();
        for qi in 0..rel.qvals.len().max(1) {
            let selected = if rel.all_true { nk } else { (0..nk).filter(|ki| rel.pairs.contains(&(*ki, qi))).count() };
            let provable = match keys_op {
                Op::Indices => selected >= 2,
                Op::Tokens if rel.keys == sop => selected >= 2,
                Op::Tokens => matches!(sop_op, Op::Indices) && selected >= 1,
                _ => false,
            };
            if provable {
                let q = if rel.all_true || rel.qvals.is_empty() {
                    "every query".to_string()
                } else {
                    format!("the query value {}", rel.qvals[qi].repr())
                };
                return Err(self.err(
                    id,
                    format!("it is categorical, but for {q} its selector can select several positions holding different values of '{}'; use numerical(...) to average, or a selector that selects one position", self.label(sop)),
                ));
            }
        }
        Ok(())
    }

    /// SelectorWidth (and `length`, which is SelectorWidth of an all-true selector).
    fn lower_width(&mut self, id: NodeId, selector: Option<NodeId>) -> Result<()> {
        let terms = match selector {
            Some(s) => self.terms(s, id)?,
            None => vec![Relation {
                keys: id,
                queries: id,
                kvals: vec![],
                qvals: vec![],
                all_true: true,
                pairs: BTreeSet::new(),
            }],
        };
        // BOS scores like a selected key, so the head writes 1 / (width + 1)
        let mut head = self.selector_head(&terms, self.scale);
        let attn_out = Dir::named(&format!("{}_selector_width_attn_output", self.label(id)));
        head.ov.push((Dir::bos(), attn_out.clone(), 1.0));
        self.dirs.insert(attn_out.clone());
        let mut reads: Vec<NodeId> =
            if selector.is_some() { terms.iter().flat_map(|t| [t.keys, t.queries]).collect() } else { vec![] };
        reads.sort();
        reads.dedup();
        let after = self.deps(&reads);
        let h = self.push(id, "selector_width.attn", Body::Head(head), after);
        // the BOS query attends only to BOS
        self.bos.insert(attn_out.clone(), 1.0);

        let min_width = if selector.is_none() { 1 } else { 0 };
        let mut points = Vec::new();
        for w in min_width..=self.settings.max_seq_len {
            points.push((1.0 / (w as f64 + 1.0), self.out_vec(id, &Value::Int(w as i64))?));
        }
        let mut mlp = Mlp::default();
        self.discretiser(&mut mlp, &attn_out, points, id)?;
        self.gate(&mut mlp);
        self.add_dirs(id);
        let m = self.push(id, "selector_width.mlp", Body::Mlp(mlp), vec![h]);
        self.producer[id] = Some(m);
        Ok(())
    }
}

/// The (key value index, query value index) pairs a selector selects.
struct Relation {
    keys: NodeId,
    queries: NodeId,
    /// Value sets of keys and queries (empty for `length`, which reads none).
    kvals: Vec<Value>,
    qvals: Vec<Value>,
    /// Selects every key, including keys with no value.
    all_true: bool,
    pairs: BTreeSet<(usize, usize)>,
}
