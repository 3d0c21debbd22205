//! Lowering of the element-wise s-ops to MLPs: categorical and numerical
//! Maps (lookup tables and discretisers), SequenceMaps (pair tables or rule
//! tables over reachable pairs) and LinearSequenceMaps.

use super::*;

impl<'a> Ctx<'a> {
    pub(super) fn lower_map(&mut self, id: NodeId, input: NodeId) -> Result<()> {
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
    pub(super) fn discretiser(
        &self,
        mlp: &mut Mlp,
        input: &Dir,
        mut points: Vec<(f64, DirVec)>,
        id: NodeId,
    ) -> Result<()> {
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
            let mut step: DirVec = points[i].1.clone();
            for (d, w) in &points[i - 1].1 {
                *step.entry(d.clone()).or_insert(0.0) -= w;
            }
            if self.opts.live_steps_only && step.values().all(|w| *w == 0.0) {
                continue;
            }
            // ramp from 0 at lo + gap/4 to 1 at hi - gap/4
            let (a, width) = (lo + gap / 4.0, gap / 2.0);
            let up = mlp.neuron();
            let down = mlp.neuron();
            mlp.w_in.push((input.clone(), up, 1.0 / width));
            mlp.w_in.push((Dir::one(), up, -a / width));
            mlp.w_in.push((input.clone(), down, 1.0 / width));
            mlp.w_in.push((Dir::one(), down, -a / width - 1.0));
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
    pub(super) fn lower_sequence_map(&mut self, id: NodeId, inputs: [NodeId; 2]) -> Result<()> {
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
        if inputs[0] == inputs[1] {
            // SequenceMap(f, x, x) is the Map x ↦ f(x, x), as Tracr compiles
            // it (one neuron per output value for a categorical output, as
            // Tracr's layout has), not a |X|² pair table
            let x = inputs[0];
            let call = |v: &Value| {
                f.call(&[v.clone(), v.clone()])
                    .map_err(|e| self.err(id, format!("the function raised {e} on ({}, {})", v.repr(), v.repr())))
            };
            let mut mlp = Mlp::default();
            if self.enc(id) == Encoding::Categorical {
                let mut neuron: HashMap<Value, usize> = HashMap::new();
                for y in self.vs.of(id) {
                    let h = mlp.neuron();
                    neuron.insert(y.clone(), h);
                    mlp.w_out.push((h, Dir::valued(self.label(id), y), 1.0));
                }
                for v in self.vs.of(x) {
                    if let Some(h) = neuron.get(&call(v)?) {
                        mlp.w_in.push((Dir::valued(self.label(x), v), *h, 1.0));
                    }
                }
            } else {
                for v in self.vs.of(x) {
                    let z = call(v)?;
                    let h = mlp.neuron();
                    mlp.w_in.push((Dir::valued(self.label(x), v), h, 1.0));
                    for (d, w) in self.out_vec(id, &z)? {
                        mlp.w_out.push((h, d, w));
                    }
                }
            }
            self.finish_mlp(id, "sequence_map", mlp, &inputs[..1]);
            return Ok(());
        }
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
    pub(super) fn rule_table(&self, id: NodeId, inputs: [NodeId; 2], f: &crate::rasp::func::Func) -> Result<Mlp> {
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
    pub(super) fn reachable_pairs(&self, inputs: [NodeId; 2]) -> Option<std::collections::HashSet<(Value, Value)>> {
        let support = crate::compiler::rewrite::supports(self.p);
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
                    let x = crate::compiler::rewrite::eval_local(self.p, inputs[0], &env).ok()?;
                    let y = crate::compiler::rewrite::eval_local(self.p, inputs[1], &env).ok()?;
                    pairs.insert((x, y));
                }
            }
        }
        Some(pairs)
    }
    pub(super) fn lower_linear(&mut self, id: NodeId, inputs: [NodeId; 2], coeffs: &[Value; 2]) -> Result<()> {
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
}
