//! Lowering of the s-ops that attend: selectors become bilinear terms and a
//! head's W_QK (with the BOS fallback), Aggregates a head's W_OV, and
//! SelectorWidth a head plus the MLP that reads its BOS share.

use super::*;

impl<'a> Ctx<'a> {
    /// The relation a selector computes, over (key value, query value), if it
    /// is one Select or And/Or/Not of Selects over the same keys and queries.
    /// A selector as a conjunction of relations, one per (keys, queries)
    /// pair: `&` of selects over different s-ops is computed by one head as a
    /// sum of bilinear terms (see `selector_head`).
    pub(super) fn terms(&self, sel: NodeId, owner: NodeId) -> Result<Vec<Relation>> {
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
    pub(super) fn relation(&self, sel: NodeId, owner: NodeId) -> Result<Relation> {
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
    pub(super) fn selector_head(&self, terms: &[Relation], bos_target: f64) -> Head {
        let s = self.scale;
        let bos_target = bos_target + (terms.len() as f64 - 1.0) * s;
        let mut head = Head::default();
        for rel in terms {
            let (kl, ql) = (self.label(rel.keys), self.label(rel.queries));
            if rel.all_true {
                head.add_qk(&Dir::one(), &Dir::one(), s);
            }
            // each direction made once: a long selector has millions of pairs
            let kdirs: Vec<Dir> = rel.kvals.iter().map(|v| Dir::valued(kl, v)).collect();
            let qdirs: Vec<Dir> = rel.qvals.iter().map(|v| Dir::valued(ql, v)).collect();
            let mut by_query: Vec<Vec<usize>> = vec![Vec::new(); qdirs.len()];
            for (ki, qi) in &rel.pairs {
                by_query[*qi].push(*ki);
            }
            for (qd, kis) in qdirs.iter().zip(by_query).filter(|(_, kis)| !kis.is_empty()) {
                let row = head.qk.entry(*qd).or_default();
                if row.is_empty() {
                    // built whole: a sort of keys already in order, not a search per entry
                    *row = kis.iter().map(|ki| (kdirs[*ki], s)).collect();
                } else {
                    for ki in kis {
                        *row.entry(kdirs[ki]).or_insert(0.0) += s;
                    }
                }
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
    pub(super) fn lower_aggregate(&mut self, id: NodeId, selector: NodeId, sop: NodeId, default: &Value) -> Result<()> {
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
        if out_enc == Encoding::Numerical && !(default.is_number() && default.as_f64().is_some_and(f64::is_finite)) {
            return Err(
                self.err(id, format!("a numerical Aggregate needs a finite number as default, not {}", default.repr()))
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
    pub(super) fn check_single_value(&self, id: NodeId, rel: &Relation, sop: NodeId) -> Result<()> {
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
    pub(super) fn lower_width(&mut self, id: NodeId, selector: Option<NodeId>) -> Result<()> {
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
pub(super) struct Relation {
    pub(super) keys: NodeId,
    pub(super) queries: NodeId,
    /// Value sets of keys and queries (empty for `length`, which reads none).
    pub(super) kvals: Vec<Value>,
    pub(super) qvals: Vec<Value>,
    /// Selects every key, including keys with no value.
    pub(super) all_true: bool,
    pub(super) pairs: BTreeSet<(usize, usize)>,
}
