//! The residual layout: which dimension each direction takes. Without
//! sharing (Tracr's layout) every direction keeps its own dimension for the
//! whole network. With sharing, a direction whose last reader has run gives
//! its dimension to a direction written later (solver-models/residual_sharing.md).
//!
//! Times are *positions*: position p is the residual stream entering
//! sublayer p (layer l's attention is sublayer 2l, its MLP 2l + 1), and
//! position 2L is the stream the unembedding reads. A direction written by
//! sublayer w is present from position w + 1 (an embedded one from 0). It is
//! *live* up to its last reader's sublayer. Sublayers only add to the stream,
//! so an MLP must erase it before another direction can use its dimension:
//! at the earliest the MLP of its last reader's layer, so it *holds* its
//! dimension up to position 2·layer + 1.

use super::alloc::Allocation;
use super::craft::{Body, Dir};
use super::lower::{Lowered, OutputDecoder};
use std::collections::{BTreeMap, HashMap};

/// Where one residual direction is written and read.
#[derive(Clone, Debug, PartialEq)]
pub struct DirUse {
    /// The direction.
    pub dir: Dir,
    /// Written by the embeddings.
    pub embedded: bool,
    /// Blocks that write it.
    pub writers: Vec<usize>,
    /// Blocks that read it.
    pub readers: Vec<usize>,
    /// Read by the unembedding.
    pub output: bool,
    /// Never negative at any position, so one ReLU neuron erases it exactly.
    pub nonneg: bool,
}

impl DirUse {
    /// Written and then needed: only such a direction takes a dimension when
    /// sharing (one never written is zero everywhere; one never read is
    /// never looked at).
    pub fn needed(&self) -> bool {
        (self.embedded || !self.writers.is_empty()) && (self.output || !self.readers.is_empty())
    }
}

fn get<'a>(map: &'a mut HashMap<Dir, DirUse>, d: &Dir) -> &'a mut DirUse {
    map.entry(*d).or_insert_with(|| unused(d))
}

/// Adds block `i` once: a block's entries come together, so a repeat is the last one.
fn add(list: &mut Vec<usize>, i: usize) {
    if list.last() != Some(&i) {
        list.push(i);
    }
}

fn unused(d: &Dir) -> DirUse {
    DirUse { dir: d.clone(), embedded: false, writers: vec![], readers: vec![], output: false, nonneg: true }
}

/// Every direction of the lowered program with its writers and readers, in
/// the residual stream's order.
pub fn uses(lowered: &Lowered) -> Vec<DirUse> {
    // hashed while counting (a head at max_seq_len 256 has millions of entries), sorted once at the end
    let mut map: HashMap<Dir, DirUse> = lowered.dirs.iter().map(|d| (*d, unused(d))).collect();
    // a head copies signs: a value that may be negative makes its output so
    let mut copies: Vec<(Dir, Dir)> = Vec::new();
    for (i, b) in lowered.blocks.iter().enumerate() {
        match &b.body {
            Body::Head(h) => {
                // what assembly writes: the layout's factors
                let l = h.layout();
                for v in l.qk.left.iter().chain(&l.qk.right).chain(&l.ov.left) {
                    v.iter().filter(|(_, w)| **w != 0.0).for_each(|(d, _)| add(&mut get(&mut map, d).readers, i));
                }
                for v in &l.ov.right {
                    v.iter().filter(|(_, w)| **w != 0.0).for_each(|(d, _)| add(&mut get(&mut map, d).writers, i));
                }
                for (a, d, w) in &h.ov {
                    if *w < 0.0 {
                        get(&mut map, d).nonneg = false;
                    } else if *w > 0.0 {
                        copies.push((a.clone(), d.clone()));
                    }
                }
            }
            Body::Mlp(m) => {
                m.w_in.iter().filter(|(_, _, w)| *w != 0.0).for_each(|(d, _, _)| add(&mut get(&mut map, d).readers, i));
                for (_, d, w) in m.w_out.iter().filter(|(_, _, w)| *w != 0.0) {
                    let u = get(&mut map, d);
                    add(&mut u.writers, i);
                    // hidden units are never negative
                    u.nonneg &= *w > 0.0;
                }
            }
        }
    }
    for row in lowered.embedding.tokens.iter().chain(&lowered.embedding.positions) {
        for (d, w) in row {
            let u = get(&mut map, d);
            u.embedded = true;
            u.nonneg &= *w >= 0.0;
        }
    }
    match &lowered.output {
        OutputDecoder::Categorical(dirs) => dirs.iter().for_each(|(d, _)| get(&mut map, d).output = true),
        OutputDecoder::Numerical(d) => get(&mut map, d).output = true,
    }
    // A categorical direction holds a one-hot value or, after attention, a
    // convex combination of them: never negative (beyond rounding, around
    // the exact 0 or 1 that rule 2 of lowering guarantees for MLP outputs),
    // whatever signs the weights that write it have.
    for u in map.values_mut().filter(|u| u.dir.value.is_some()) {
        u.nonneg = true;
    }
    loop {
        let spread: Vec<Dir> = copies
            .iter()
            .filter(|(a, d)| d.value.is_none() && map.get(a).is_some_and(|u| !u.nonneg) && map[d].nonneg)
            .map(|(_, d)| d.clone())
            .collect();
        if spread.is_empty() {
            break;
        }
        spread.iter().for_each(|d| map.get_mut(d).unwrap().nonneg = false);
    }
    let mut uses: Vec<DirUse> = map.into_values().collect();
    uses.sort_by(|a, b| a.dir.cmp(&b.dir));
    uses
}

/// When a direction is in the residual stream, in positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// The sublayer that first writes it (None: the embeddings).
    pub written: Option<usize>,
    /// The sublayer of its last reader (None: only the unembedding reads it).
    pub last_read: Option<usize>,
    /// First position holding it.
    pub first: usize,
    /// Last position where something still needs it.
    pub live_last: usize,
    /// Last position before an MLP can have erased it.
    pub held_last: usize,
}

/// The span of a needed direction under an allocation of `layers` layers.
pub fn span(u: &DirUse, sublayer: &[usize], layers: usize) -> Option<Span> {
    if !u.needed() {
        return None;
    }
    let end = 2 * layers;
    let written = if u.embedded { None } else { u.writers.iter().map(|w| sublayer[*w]).min() };
    let last_read = u.readers.iter().map(|r| sublayer[*r]).max();
    let first = written.map_or(0, |w| w + 1);
    let (live_last, held_last) = match (u.output, last_read) {
        (true, _) | (false, None) => (end, end),
        // the MLP of the last reader's layer can erase it
        (false, Some(r)) => (r, (2 * (r / 2) + 1).min(end)),
    };
    Some(Span { written, last_read, first, live_last, held_last })
}

/// The most directions live at once (the lower bound on any layout for
/// this allocation) and the most held at once (what sharing reaches).
pub fn peaks(uses: &[DirUse], sublayer: &[usize], layers: usize) -> (usize, usize) {
    let mut live = vec![0usize; 2 * layers + 1];
    let mut held = vec![0usize; 2 * layers + 1];
    for s in uses.iter().filter_map(|u| span(u, sublayer, layers)) {
        (s.first..=s.live_last).for_each(|p| live[p] += 1);
        (s.first..=s.held_last).for_each(|p| held[p] += 1);
    }
    (live.into_iter().max().unwrap_or(0), held.into_iter().max().unwrap_or(0))
}

/// How a dying direction is erased.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EraseWith {
    /// A new neuron relu(x) writing -x (the direction is never negative).
    Relu,
    /// Two new neurons, relu(x) writing -x and relu(-x) writing x.
    ReluPair,
    /// A neuron the layer's MLP block already has computes relu(x) away from
    /// BOS (and 0 at BOS, where x is 0): it also writes -x.
    Existing {
        /// The MLP block, by index in the lowered blocks.
        block: usize,
        /// The neuron within it.
        neuron: usize,
    },
}

impl EraseWith {
    /// Neurons this erasure adds.
    pub fn new_neurons(self) -> usize {
        match self {
            EraseWith::Relu => 1,
            EraseWith::ReluPair => 2,
            EraseWith::Existing { .. } => 0,
        }
    }
}

/// The directions of Tracr's layout: every lowered direction, except `one`
/// when no block and not the unembedding reads it (Tracr adds `one` only for
/// a reader; a program of categorical Maps has none).
pub(crate) fn unshared_dirs<'a>(lowered: &'a Lowered, uses: &[DirUse]) -> Vec<&'a Dir> {
    let one = Dir::one();
    let one_read = uses.iter().any(|u| u.dir == one && (!u.readers.is_empty() || u.output));
    lowered.dirs.iter().filter(|d| **d != one || one_read).collect()
}

/// One direction erased by one layer's MLP, so that its dimension can be reused.
#[derive(Clone, Debug, PartialEq)]
pub struct Erasure {
    /// The layer whose MLP erases.
    pub layer: usize,
    /// The direction erased.
    pub dir: Dir,
    /// How.
    pub with: EraseWith,
}

/// One direction in one residual dimension.
#[derive(Clone, Debug, PartialEq)]
pub struct Occupant {
    /// The direction.
    pub dir: Dir,
    /// None for a direction the model carries but never needs (layout without sharing).
    pub span: Option<Span>,
}

/// Which dimension every direction takes.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// Direction → residual dimension; directions not listed are left out
    /// (never written: zero; or never read). Hashed: assembly looks up every
    /// weight's direction; `occupants` gives the order.
    pub column: HashMap<Dir, usize>,
    /// Per dimension, its directions in time order.
    pub occupants: Vec<Vec<Occupant>>,
    /// The erasures, one per direction that hands on its dimension.
    pub erasures: Vec<Erasure>,
    /// The most directions held at once (live, or dead but not yet erasable
    /// because only an MLP can erase and the last reader was an attention
    /// sublayer): no layout of this allocation that erases in MLPs is
    /// narrower, and the shared layout reaches it.
    pub lower_bound: usize,
    /// The most directions live at once: no layout of this allocation is
    /// narrower, whatever could erase.
    pub live_peak: usize,
    /// Dimensions without sharing: one per direction of the lowered program.
    pub unshared_width: usize,
    /// Whether dimensions are reused (false: Tracr's layout).
    pub shared: bool,
}

impl Layout {
    /// Residual width.
    pub fn d_model(&self) -> usize {
        self.occupants.len()
    }

    /// One dimension per direction of the lowered program, for the whole network.
    pub fn unshared(lowered: &Lowered, uses: &[DirUse], allocation: &Allocation) -> Layout {
        let layers = allocation.n_layers();
        let spans: BTreeMap<&Dir, Option<Span>> =
            uses.iter().map(|u| (&u.dir, span(u, &allocation.sublayer, layers))).collect();
        let dirs = unshared_dirs(lowered, uses);
        let occupants: Vec<Vec<Occupant>> =
            dirs.iter().map(|d| vec![Occupant { dir: (*d).clone(), span: spans.get(d).copied().flatten() }]).collect();
        Layout {
            column: dirs.iter().enumerate().map(|(i, d)| ((*d).clone(), i)).collect(),
            occupants,
            erasures: vec![],
            lower_bound: peaks(uses, &allocation.sublayer, layers).1,
            live_peak: peaks(uses, &allocation.sublayer, layers).0,
            unshared_width: dirs.len(),
            shared: false,
        }
    }

    /// Dimensions reused once their direction is dead: interval colouring by
    /// first position (optimal: the dimensions used equal the most directions
    /// held at once), then an erasure for every direction that hands its
    /// dimension on, in the layer where it costs least.
    ///
    /// When the allocator priced the erasures (`Allocation::erase`), each
    /// direction holds its dimension until the layer it scheduled (to the
    /// end when none), and a direction that hands its dimension on is erased
    /// there; the MLP widths are then at most what the allocator priced. A
    /// schedule that would widen the stream past the held peak, or erase
    /// before the last read, is not followed (an allocator bug; the layout
    /// stays exact either way). Nor is one whose widest MLP is wider than
    /// the layout's own choice gives (a schedule the allocator found under
    /// a time limit, or restricted: search.rs, `schedule_erasures`).
    pub fn shared(lowered: &Lowered, uses: &[DirUse], allocation: &Allocation) -> Layout {
        let free = Layout::coloured(lowered, uses, allocation, None);
        let Some(erase) = &allocation.erase else { return free };
        let scheduled = Layout::coloured(lowered, uses, allocation, Some(erase));
        let widest = |l: &Layout| {
            let mut width = vec![0usize; allocation.n_layers()];
            for (b, s) in lowered.blocks.iter().zip(&allocation.sublayer) {
                width[s / 2] += b.width();
            }
            for e in &l.erasures {
                width[e.layer] += e.with.new_neurons();
            }
            width.into_iter().max().unwrap_or(0)
        };
        if scheduled.d_model() <= free.d_model() && widest(&scheduled) <= widest(&free) {
            scheduled
        } else {
            free
        }
    }

    /// [`Layout::shared`] with the given erasure schedule (when valid), or
    /// with the layout's own choice of erasures.
    fn coloured(
        lowered: &Lowered,
        uses: &[DirUse],
        allocation: &Allocation,
        schedule: Option<&BTreeMap<Dir, usize>>,
    ) -> Layout {
        let layers = allocation.n_layers();
        let sub = &allocation.sublayer;
        let mut items: Vec<(Span, &DirUse)> = uses.iter().filter_map(|u| Some((span(u, sub, layers)?, u))).collect();
        let schedule = schedule.filter(|erase| {
            let mut held = vec![0usize; 2 * layers + 1];
            let valid = items.iter().all(|(s, u)| match (u.output, erase.get(&u.dir)) {
                (false, Some(l)) => s.last_read.is_some_and(|r| r <= 2 * l + 1) && 2 * l + 1 <= 2 * layers,
                _ => true,
            });
            for (s, u) in &items {
                (s.first..=scheduled_last(s, u, erase, layers)).for_each(|p| held[p] += 1);
            }
            valid && held.into_iter().max().unwrap_or(0) <= peaks(uses, sub, layers).1
        });
        if let Some(erase) = schedule {
            for (s, u) in items.iter_mut() {
                s.held_last = scheduled_last(s, u, erase, layers);
            }
        }
        items.sort_by(|(a, u), (b, v)| a.first.cmp(&b.first).then_with(|| u.dir.cmp(&v.dir)));
        let by_dir: BTreeMap<&Dir, &DirUse> = uses.iter().map(|u| (&u.dir, u)).collect();
        let mut width = vec![0usize; layers];
        for (b, s) in lowered.blocks.iter().zip(sub) {
            width[s / 2] += b.width();
        }
        let existing = erasing_neurons(lowered, allocation);
        let mut occupants: Vec<Vec<Occupant>> = Vec::new();
        let mut held_until: Vec<usize> = Vec::new();
        let mut column = HashMap::new();
        let mut erasures = Vec::new();
        for (s, u) in &items {
            // of the free dimensions, the one whose direction is erased at the
            // least cost: no growth of the widest MLP, then fewest new neurons
            let widest = width.iter().copied().max().unwrap_or(0);
            let best = (0..held_until.len())
                .filter(|c| held_until[*c] < s.first)
                .map(|c| {
                    let prev = occupants[c].last().expect("a dimension has a direction");
                    let d = by_dir[&prev.dir];
                    let e = match schedule.and_then(|erase| erase.get(&d.dir)) {
                        Some(l) => scheduled_erasure(&existing, d, *l),
                        None => erasure(&existing, d, &prev.span.expect("shared: needed"), s, &width),
                    };
                    let n = e.with.new_neurons();
                    ((width[e.layer] + n).saturating_sub(widest), n, c, e)
                })
                .min_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
            let c = match best {
                Some((_, n, c, e)) => {
                    width[e.layer] += n;
                    erasures.push(e);
                    c
                }
                None => {
                    occupants.push(vec![]);
                    held_until.push(0);
                    occupants.len() - 1
                }
            };
            occupants[c].push(Occupant { dir: u.dir.clone(), span: Some(*s) });
            held_until[c] = s.held_last;
            column.insert(u.dir.clone(), c);
        }
        erasures.sort_by(|a, b| a.layer.cmp(&b.layer).then_with(|| a.dir.cmp(&b.dir)));
        Layout {
            column,
            occupants,
            erasures,
            lower_bound: peaks(uses, sub, layers).1,
            live_peak: peaks(uses, sub, layers).0,
            unshared_width: unshared_dirs(lowered, uses).len(),
            shared: true,
        }
    }

    /// "tokens:a" for a dimension with one direction; with several, each
    /// with the sublayers between which it is there:
    /// "indices:0 [embed..L0.attn] | reverse:a [L1.mlp..unembed]".
    pub fn labels(&self) -> Vec<String> {
        self.occupants
            .iter()
            .map(|occ| match occ.as_slice() {
                [one] => one.dir.to_string(),
                many => many
                    .iter()
                    .map(|o| match &o.span {
                        Some(s) => format!("{} [{}..{}]", o.dir, written_name(s), read_name(s)),
                        None => o.dir.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(" | "),
            })
            .collect()
    }
}

impl Layout {
    /// The layout as exported in the model's metadata.
    pub fn info(&self) -> crate::model::ResidualInfo {
        let occupant = |o: &Occupant| crate::model::ResidualOccupant {
            dir: o.dir.to_string(),
            written: o.span.as_ref().map(written_name),
            last_read: o.span.as_ref().map(read_name),
        };
        crate::model::ResidualInfo {
            shared: self.shared,
            d_model_lower_bound: self.lower_bound,
            d_model_live_peak: self.live_peak,
            d_model_bound_any_allocation: None,
            d_model_unshared: self.unshared_width,
            dims: self.occupants.iter().map(|c| c.iter().map(occupant).collect()).collect(),
            erase_neurons: self.erasures.iter().map(|e| e.with.new_neurons()).sum(),
            free_erasures: self.erasures.iter().filter(|e| e.with.new_neurons() == 0).count(),
        }
    }
}

/// A sublayer's name: `L2.attn`, `L2.mlp`.
pub fn sublayer_name(s: usize) -> String {
    format!("L{}.{}", s / 2, if s % 2 == 0 { "attn" } else { "mlp" })
}

/// Where a span starts: `embed` or the writing sublayer.
pub fn written_name(s: &Span) -> String {
    s.written.map_or("embed".into(), sublayer_name)
}

/// Where a span's last reader is: a sublayer, or `unembed` for the output.
pub fn read_name(s: &Span) -> String {
    match s.last_read {
        Some(r) if r == s.live_last => sublayer_name(r),
        _ => "unembed".into(),
    }
}

/// The last position `u` holds its dimension under an erasure schedule:
/// the MLP of its scheduled layer, else the end (the output's span is kept).
fn scheduled_last(s: &Span, u: &DirUse, erase: &BTreeMap<Dir, usize>, layers: usize) -> usize {
    if u.output {
        return s.held_last;
    }
    erase.get(&u.dir).map_or(2 * layers, |l| (2 * l + 1).min(2 * layers))
}

/// `d` erased in the MLP of `layer`, as the allocator scheduled it.
fn scheduled_erasure(existing: &BTreeMap<(usize, Dir), EraseWith>, d: &DirUse, layer: usize) -> Erasure {
    let with = match existing.get(&(layer, d.dir.clone())) {
        Some(w) if d.nonneg => *w,
        _ if d.nonneg => EraseWith::Relu,
        _ => EraseWith::ReluPair,
    };
    Erasure { layer, dir: d.dir.clone(), with }
}

/// Where and how `d` is erased before `next` takes its dimension: in an MLP
/// from its last reader's layer to the last one before `next` is written. A
/// neuron that already computes it if there is one, else new neurons in the
/// narrowest MLP of the window (erase neurons in a layer narrower than the
/// widest cost nothing).
fn erasure(
    existing: &BTreeMap<(usize, Dir), EraseWith>,
    d: &DirUse,
    ds: &Span,
    next: &Span,
    width: &[usize],
) -> Erasure {
    let lo = (ds.held_last - 1) / 2;
    let hi = (next.first - 2) / 2;
    let existing = (lo..=hi).filter(|_| d.nonneg).find_map(|l| existing.get(&(l, d.dir.clone())).map(|w| (l, *w)));
    let (layer, with) = existing.unwrap_or_else(|| {
        let with = if d.nonneg { EraseWith::Relu } else { EraseWith::ReluPair };
        ((lo..=hi).min_by_key(|l| (width[*l], *l)).expect("a window holds an MLP"), with)
    });
    Erasure { layer, dir: d.dir.clone(), with }
}

/// Per (layer, direction): a neuron of that layer's MLP that erases the
/// direction for free ([`eraser_neurons`]), the first in block order.
fn erasing_neurons(lowered: &Lowered, allocation: &Allocation) -> BTreeMap<(usize, Dir), EraseWith> {
    let mut out = BTreeMap::new();
    for (d, found) in eraser_neurons(lowered) {
        for (block, neuron) in found {
            out.entry((allocation.sublayer[block] / 2, d)).or_insert(EraseWith::Existing { block, neuron });
        }
    }
    out
}

/// Per direction: the MLP neurons (block, neuron) that equal `relu(x[d]) =
/// x[d]` (`d` never negative) away from BOS and 0 at BOS, where `d` is 0
/// (the BOS gate): input `d` with weight 1 and non-positive weights on
/// tokens:BOS, nothing else. Such a neuron also writing `-x[d]` erases `d`
/// in its block's layer at no cost, whatever the allocation; the
/// allocation ILP prices erasures with them (ilp.rs, `Group::free`).
pub fn eraser_neurons(lowered: &Lowered) -> BTreeMap<Dir, Vec<(usize, usize)>> {
    let mut out: BTreeMap<Dir, Vec<(usize, usize)>> = BTreeMap::new();
    for (bi, b) in lowered.blocks.iter().enumerate() {
        let Body::Mlp(m) = &b.body else { continue };
        let mut inputs: BTreeMap<usize, Vec<(&Dir, f64)>> = BTreeMap::new();
        for (dir, h, w) in &m.w_in {
            inputs.entry(*h).or_default().push((dir, *w));
        }
        for (h, ins) in inputs {
            let mut read: Vec<&Dir> = ins.iter().map(|(x, _)| *x).filter(|x| **x != Dir::bos()).collect();
            read.dedup();
            let [d] = read.as_slice() else { continue };
            let weight: f64 = ins.iter().filter(|(x, _)| x == d).map(|(_, w)| w).sum();
            let gate_only = ins.iter().all(|(x, w)| x == d || *w <= 0.0);
            let zero_at_bos = lowered.bos.get(*d).is_none_or(|v| *v == 0.0);
            if weight == 1.0 && gate_only && zero_at_bos {
                out.entry((*d).clone()).or_default().push((bi, h));
            }
        }
    }
    out
}
