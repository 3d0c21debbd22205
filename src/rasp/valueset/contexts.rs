//! Value sets per position: the refinement that keeps numerical value sets
//! to what positions can reach together (docs/EXACTNESS.md §4).
//!
//! The plain analysis (`super::infer`) gives each s-op one set, computed from
//! its inputs' sets as if they were independent. For a numerical
//! `opens - closes` over two running fractions that is every difference of
//! two fractions with denominators up to max_seq_len (about 240 000 values
//! at 40), although at one position both fractions share the denominator
//! (the prefix length) and only about 2·max_seq_len differences occur there.
//!
//! Here every numerical SequenceMap and LinearSequenceMap (and, up to
//! max_seq_len 128, every numerical Aggregate), and every s-op it depends
//! on, gets one set per *context*: a position `i` of an
//! input of length `n` (non-causal semantics), or position `i` under causal
//! semantics (length `i + 1`, keys `0..=i` visible). A context fixes the
//! values of `indices` and `length`, so s-ops computed from them are single
//! values, and a selector over them selects a known set of keys. Each rule
//! over-approximates the values the interpreter can produce in that context
//! (the argument is in docs/EXACTNESS.md); a refined node's set is the union
//! over contexts, a subset of what the plain rule gives.
//!
//! Sets are interned (`SetId`), so an s-op that does not depend on the
//! position (tokens, a Map of tokens) costs one set, not one per context, and
//! every rule is memoised on the ids it reads.

use super::{check_size, combine, means, raised, sorted};
use crate::diagnostic::{Error, Result};
use crate::rasp::interp::select_holds;
use crate::rasp::program::{Encoding, NodeId, Op, Predicate, Program};
use crate::value::{binop, BinOp, Value};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;

/// Above this max_seq_len the refinement is skipped (the plain sets are
/// sound, only larger): it visits every (context, key) pair, about
/// max_seq_len³ / 6 of them.
pub const MAX_REFINED_SEQ_LEN: usize = 512;

/// Above this many (key value, query value) pairs a selector's entry is not
/// evaluated and counts as "maybe selected" (sound, less precise).
const MAX_PREDICATE_PAIRS: usize = 4096;

type SetId = u32;

/// Whether a key is selected by a query in a context, over every value
/// pair the two s-ops can hold there.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Status {
    Always,
    Never,
    Maybe,
}

/// One position of one input: non-causal (length n, position i) or causal
/// (position i; length i + 1; keys 0..=i visible).
#[derive(Clone, Copy, Debug)]
struct Context {
    n: usize,
    i: usize,
    causal: bool,
}

/// Sets of values (sorted, deduplicated, None included when it can occur),
/// stored once each. Two sets are the same only with the same types too:
/// values compare as in Python (1 == 1.0 == True), but a function may tell
/// them apart (`str(x)`), so {0, 1} of one s-op must not stand for
/// {False, True} of another.
#[derive(Default)]
struct Interner {
    sets: Vec<Rc<[Value]>>,
    ids: HashMap<(Rc<[Value]>, Vec<&'static str>), SetId>,
}

impl Interner {
    fn intern(&mut self, set: BTreeSet<Value>) -> SetId {
        let v: Rc<[Value]> = set.into_iter().collect::<Vec<_>>().into();
        let key = (v.clone(), v.iter().map(Value::type_name).collect::<Vec<_>>());
        if let Some(id) = self.ids.get(&key) {
            return *id;
        }
        let id = self.sets.len() as SetId;
        self.sets.push(v);
        self.ids.insert(key, id);
        id
    }
    fn get(&self, id: SetId) -> Rc<[Value]> {
        self.sets[id as usize].clone()
    }
}

/// The per-context analysis of one program, fed node by node in
/// topological order by `super::infer`.
pub(super) struct Contexts<'a> {
    p: &'a Program,
    vocab: Vec<Value>,
    contexts: Vec<Context>,
    max_seq_len: usize,
    /// Nodes whose per-context sets some refined node needs (itself included).
    demanded: Vec<bool>,
    /// Per s-op node: its set id in each context (empty when not demanded).
    per: Vec<Vec<SetId>>,
    sets: Interner,
    map_memo: HashMap<(NodeId, SetId), SetId>,
    pair_memo: HashMap<(NodeId, SetId, SetId), SetId>,
    status_memo: HashMap<(NodeId, SetId, SetId), Status>,
    sum_memo: HashMap<(NodeId, Vec<(SetId, usize)>), SetId>,
    /// A numerical Aggregate's plain set (every mean of its input's values,
    /// and the default), for contexts where its selector's keys are not all known.
    fallback: HashMap<NodeId, SetId>,
}

/// The nodes the refinement computes a set for itself: numerical
/// SequenceMaps, LinearSequenceMaps and Aggregates, whose plain sets come from
/// products or means of independent sets.
fn refinable(p: &Program, id: NodeId) -> bool {
    p.nodes[id].encoding == Encoding::Numerical
        && matches!(p.nodes[id].op, Op::SequenceMap { .. } | Op::LinearSequenceMap { .. } | Op::Aggregate { .. })
}

/// Up to this max_seq_len every numerical Aggregate is refined; above it,
/// only those on the way to a numerical product (see `root`).
pub const MAX_REFINED_MEAN_SEQ_LEN: usize = 128;

/// Where the refinement starts. Numerical products always: their plain sets
/// are what blows up. Numerical Aggregates up to max_seq_len
/// `MAX_REFINED_MEAN_SEQ_LEN`: the plain set of a mean of means grows
/// quickly (every mean of up to max_seq_len values of a set of means), and a
/// select-last mean of {0, 1} holds only 0 and 1, not every k/m. Beyond that
/// length refining one costs about max_seq_len³/6 selector lookups (seconds
/// at 256, where frac_prevs would spend them for the same set), so there
/// an Aggregate is refined only on the way to a product.
fn root(p: &Program, id: NodeId, max_seq_len: usize) -> bool {
    p.nodes[id].encoding == Encoding::Numerical
        && match p.nodes[id].op {
            Op::SequenceMap { .. } | Op::LinearSequenceMap { .. } => true,
            Op::Aggregate { .. } => max_seq_len <= MAX_REFINED_MEAN_SEQ_LEN,
            _ => false,
        }
}

impl<'a> Contexts<'a> {
    /// The analysis for `p`, or None when it has nothing to refine (or
    /// max_seq_len is above `MAX_REFINED_SEQ_LEN`).
    pub(super) fn new(p: &'a Program, vocab: &[Value], max_seq_len: usize) -> Option<Contexts<'a>> {
        if max_seq_len > MAX_REFINED_SEQ_LEN || !(0..p.nodes.len()).any(|id| root(p, id, max_seq_len)) {
            return None;
        }
        let mut demanded = vec![false; p.nodes.len()];
        for id in (0..p.nodes.len()).rev() {
            if root(p, id, max_seq_len) {
                demanded[id] = true;
            }
            if demanded[id] {
                for i in p.nodes[id].op.inputs() {
                    demanded[i] = true;
                }
            }
        }
        let mut contexts = Vec::new();
        for n in 1..=max_seq_len {
            contexts.extend((0..n).map(|i| Context { n, i, causal: false }));
        }
        contexts.extend((0..max_seq_len).map(|i| Context { n: i + 1, i, causal: true }));
        Some(Contexts {
            p,
            vocab: vocab.to_vec(),
            contexts,
            max_seq_len,
            demanded,
            per: vec![Vec::new(); p.nodes.len()],
            sets: Interner::default(),
            map_memo: HashMap::new(),
            pair_memo: HashMap::new(),
            status_memo: HashMap::new(),
            sum_memo: HashMap::new(),
            fallback: HashMap::new(),
        })
    }

    /// Whether `id`'s set comes from `visit` (the union over contexts) rather than the plain rule.
    pub(super) fn refines(&self, id: NodeId) -> bool {
        self.demanded[id] && refinable(self.p, id)
    }

    /// The context index of key position `j` seen from context `c`.
    fn key_context(&self, c: Context, j: usize) -> usize {
        if c.causal {
            self.max_seq_len * (self.max_seq_len + 1) / 2 + j
        } else {
            c.n * (c.n - 1) / 2 + j
        }
    }

    /// The keys visible from context `c`: every position, or (causal) those up to the query.
    fn keys(c: Context) -> std::ops::Range<usize> {
        if c.causal {
            0..c.i + 1
        } else {
            0..c.n
        }
    }

    /// Computes `id`'s per-context sets (when some refined node needs them).
    /// `plain` holds the plain sets of the nodes before `id` (and of `id`
    /// itself unless it is refined). Returns the union over contexts for a
    /// refined node, without None.
    pub(super) fn visit(&mut self, id: NodeId, plain: &[Vec<Value>]) -> Result<Option<Vec<Value>>> {
        if !self.demanded[id] {
            return Ok(None);
        }
        let p = self.p;
        let node = &p.nodes[id];
        let ids: Vec<SetId> = match &node.op {
            // selectors hold no values; their statuses are computed where read
            Op::Select { .. } | Op::SelectAnd(..) | Op::SelectOr(..) | Op::SelectNot(..) => return Ok(None),
            Op::Tokens => vec![self.sets.intern(self.vocab.iter().cloned().collect()); self.contexts.len()],
            Op::Full(v) => vec![self.sets.intern([v.clone()].into_iter().collect()); self.contexts.len()],
            Op::Indices | Op::Length => {
                let sets = &mut self.sets;
                let indices = matches!(node.op, Op::Indices);
                self.contexts
                    .iter()
                    .map(|c| sets.intern([Value::Int(if indices { c.i } else { c.n } as i64)].into_iter().collect()))
                    .collect()
            }
            Op::Map { f, input } => {
                let mut out = Vec::with_capacity(self.contexts.len());
                for c in 0..self.contexts.len() {
                    let x = self.per[*input][c];
                    let y = match self.map_memo.get(&(id, x)) {
                        Some(y) => *y,
                        None => {
                            let mut ys = BTreeSet::new();
                            for v in self.sets.get(x).iter() {
                                ys.insert(match v {
                                    Value::None => Value::None,
                                    v => f.call(std::slice::from_ref(v)).map_err(|e| raised(p, id, f, &e.0, &[v]))?,
                                });
                            }
                            let y = self.sets.intern(ys);
                            self.map_memo.insert((id, x), y);
                            y
                        }
                    };
                    out.push(y);
                }
                out
            }
            Op::SequenceMap { inputs, .. } | Op::LinearSequenceMap { inputs, .. } => {
                let mut out = Vec::with_capacity(self.contexts.len());
                for c in 0..self.contexts.len() {
                    let (x, y) = (self.per[inputs[0]][c], self.per[inputs[1]][c]);
                    let z = match self.pair_memo.get(&(id, x, y)) {
                        Some(z) => *z,
                        None => {
                            let z = self.pairs(id, x, y)?;
                            self.pair_memo.insert((id, x, y), z);
                            z
                        }
                    };
                    out.push(z);
                }
                out
            }
            Op::SelectorWidth { selector } => {
                let mut out = Vec::with_capacity(self.contexts.len());
                for c in 0..self.contexts.len() {
                    let ctx = self.contexts[c];
                    let (mut always, mut maybe) = (0usize, 0usize);
                    for j in Self::keys(ctx) {
                        match self.status(*selector, ctx, j)? {
                            Status::Always => always += 1,
                            Status::Maybe => maybe += 1,
                            Status::Never => {}
                        }
                    }
                    out.push(self.sets.intern((always..=always + maybe).map(|w| Value::Int(w as i64)).collect()));
                }
                out
            }
            Op::Aggregate { selector, sop, default } => match node.encoding {
                // the plain set (the selected values, the default) in every
                // context, and None: a categorical Aggregate is never refined
                Encoding::Categorical => {
                    let mut set: BTreeSet<Value> = plain[id].iter().cloned().collect();
                    set.insert(Value::None);
                    vec![self.sets.intern(set); self.contexts.len()]
                }
                Encoding::Numerical => {
                    let mut out = Vec::with_capacity(self.contexts.len());
                    for c in 0..self.contexts.len() {
                        out.push(self.mean_in_context(id, *selector, *sop, default, c, plain)?);
                    }
                    out
                }
            },
        };
        // each distinct set once, in the order of the contexts: the union
        // keeps the first of values that are equal across types (False, 0,
        // 0.0), so the order must not depend on hashing
        let mut seen = HashSet::new();
        let distinct: Vec<SetId> = ids.iter().copied().filter(|s| seen.insert(*s)).collect();
        for s in &distinct {
            check_size(p, id, self.sets.sets[*s as usize].len())?;
        }
        let union = if refinable(p, id) {
            let mut all: HashSet<Value> = HashSet::new();
            for s in &distinct {
                for v in self.sets.get(*s).iter() {
                    all.insert(v.clone());
                }
            }
            check_size(p, id, all.len())?;
            Some(sorted(all))
        } else {
            None
        };
        self.per[id] = ids;
        Ok(union)
    }

    /// f (or the linear map) on every pair of the two sets; None where either is None.
    fn pairs(&mut self, id: NodeId, x: SetId, y: SetId) -> Result<SetId> {
        let p = self.p;
        let (xs, ys) = (self.sets.get(x), self.sets.get(y));
        check_size(p, id, xs.len().saturating_mul(ys.len()))?;
        let mut out = BTreeSet::new();
        for a in xs.iter() {
            for b in ys.iter() {
                if matches!(a, Value::None) || matches!(b, Value::None) {
                    out.insert(Value::None);
                    continue;
                }
                out.insert(combine(p, id, a, b)?);
            }
        }
        Ok(self.sets.intern(out))
    }

    /// Whether selector `sel` selects key `j` for the query in context `c`.
    fn status(&mut self, sel: NodeId, c: Context, j: usize) -> Result<Status> {
        let p = self.p;
        Ok(match &p.nodes[sel].op {
            Op::Select { predicate: Predicate::Cmp(crate::rasp::program::Comparison::TRUE), .. } => Status::Always,
            Op::Select { keys, queries, predicate } => {
                let query_context = self.key_context(c, c.i);
                let (k, q) = (self.per[*keys][self.key_context(c, j)], self.per[*queries][query_context]);
                if let Some(s) = self.status_memo.get(&(sel, k, q)) {
                    return Ok(*s);
                }
                let (ks, qs) = (self.sets.get(k), self.sets.get(q));
                let s = if ks.len().saturating_mul(qs.len()) > MAX_PREDICATE_PAIRS {
                    Status::Maybe
                } else {
                    let (mut yes, mut no) = (false, false);
                    for kv in ks.iter() {
                        for qv in qs.iter() {
                            // a raising predicate fails the whole evaluation: either answer covers it
                            match select_holds(predicate, kv, qv) {
                                Ok(true) => yes = true,
                                Ok(false) => no = true,
                                Err(_) => (yes, no) = (true, true),
                            }
                        }
                    }
                    match (yes, no) {
                        (true, false) => Status::Always,
                        (false, true) => Status::Never,
                        _ => Status::Maybe,
                    }
                };
                self.status_memo.insert((sel, k, q), s);
                s
            }
            Op::SelectAnd(a, b) => match (self.status(*a, c, j)?, self.status(*b, c, j)?) {
                (Status::Never, _) | (_, Status::Never) => Status::Never,
                (Status::Always, Status::Always) => Status::Always,
                _ => Status::Maybe,
            },
            Op::SelectOr(a, b) => match (self.status(*a, c, j)?, self.status(*b, c, j)?) {
                (Status::Always, _) | (_, Status::Always) => Status::Always,
                (Status::Never, Status::Never) => Status::Never,
                _ => Status::Maybe,
            },
            Op::SelectNot(a) => match self.status(*a, c, j)? {
                Status::Always => Status::Never,
                Status::Never => Status::Always,
                Status::Maybe => Status::Maybe,
            },
            _ => unreachable!("a selector node"),
        })
    }

    /// A numerical Aggregate in context `c`: when every key's status is
    /// known, every sum of one value per selected key, added in key order
    /// from 0 as the interpreter adds, divided by their count (the default
    /// when none is selected); otherwise the plain set.
    fn mean_in_context(
        &mut self,
        id: NodeId,
        selector: NodeId,
        sop: NodeId,
        default: &Value,
        c: usize,
        plain: &[Vec<Value>],
    ) -> Result<SetId> {
        let ctx = self.contexts[c];
        let mut selected: Vec<(SetId, usize)> = Vec::new();
        for j in Self::keys(ctx) {
            match self.status(selector, ctx, j)? {
                Status::Never => {}
                Status::Always => {
                    let s = self.per[sop][self.key_context(ctx, j)];
                    match selected.last_mut() {
                        Some((last, count)) if *last == s => *count += 1,
                        _ => selected.push((s, 1)),
                    }
                }
                Status::Maybe => return self.fallback(id, sop, default, plain),
            }
        }
        if selected.is_empty() {
            return Ok(self.sets.intern([default.clone()].into_iter().collect()));
        }
        if let Some(s) = self.sum_memo.get(&(id, selected.clone())) {
            return Ok(*s);
        }
        let p = self.p;
        let width: usize = selected.iter().map(|(_, n)| n).sum();
        let mut sums: BTreeSet<Value> = [Value::Int(0)].into_iter().collect();
        for (s, count) in &selected {
            let values = self.sets.get(*s);
            for _ in 0..*count {
                let mut next = BTreeSet::new();
                for a in &sums {
                    // None among the averaged values is an evaluation error: no value
                    for v in values.iter().filter(|v| v.is_number()) {
                        next.insert(
                            binop(BinOp::Add, a, v).map_err(|e| Error::program(format!("{}: {e}", p.describe(id))))?,
                        );
                    }
                }
                check_size(p, id, next.len())?;
                sums = next;
            }
        }
        let means: BTreeSet<Value> = if width == 1 {
            // one selected value is the value itself, as the interpreter returns it
            self.sets.get(selected[0].0).iter().filter(|v| v.is_number()).cloned().collect()
        } else {
            sums.iter()
                .map(|s| binop(BinOp::Div, s, &Value::Int(width as i64)).map_err(|e| Error::program(e.0)))
                .collect::<Result<_>>()?
        };
        let out = self.sets.intern(means);
        self.sum_memo.insert((id, selected), out);
        Ok(out)
    }

    /// The plain set of a numerical Aggregate: every mean of 1..=max_seq_len
    /// of its input's values, and the default.
    fn fallback(&mut self, id: NodeId, sop: NodeId, default: &Value, plain: &[Vec<Value>]) -> Result<SetId> {
        if let Some(s) = self.fallback.get(&id) {
            return Ok(*s);
        }
        let mut set: BTreeSet<Value> = means(self.p, id, &plain[sop], self.max_seq_len)?.into_iter().collect();
        set.insert(default.clone());
        let s = self.sets.intern(set);
        self.fallback.insert(id, s);
        Ok(s)
    }
}
