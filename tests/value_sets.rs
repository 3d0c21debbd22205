//! Value-set inference is sound: every value the interpreter produces, at
//! every node and position, on every input (causal and not), lies in the
//! node's inferred set. Checked for every bundled program at max_seq_len 6
//! and for random programs built to exercise the per-position refinement
//! (numerical fractions, balances, means over positional and data-dependent
//! selectors, selector logic, thresholds). Also: the refinement makes the
//! Dyck programs' sets small where the plain product was huge.

use tracr_opt::rasp::inputs;
use tracr_opt::rasp::interp::evaluate;
use tracr_opt::rasp::valueset::{infer, ValueSets};
use tracr_opt::value::Value;
use tracr_opt::Program;

/// Checks every node's value on `input`; returns how many values were checked.
fn check_input(p: &Program, vs: &ValueSets, input: &[Value], causal: bool, what: &str) -> usize {
    let Ok(trace) = evaluate(p, input, causal) else {
        return 0; // an input the program fails on (e.g. a categorical Aggregate of disagreeing values)
    };
    let mut checked = 0;
    for (id, values) in trace.sops.iter().enumerate() {
        let Some(values) = values else { continue };
        for (pos, v) in values.iter().enumerate() {
            if matches!(v, Value::None) {
                continue; // carried as the zero vector, never a member
            }
            assert!(
                vs.of(id).binary_search(v).is_ok(),
                "{what}: {} = {} at position {pos} of {input:?} (causal {causal}) is not in its inferred set of {} values",
                p.nodes[id].label,
                v.repr(),
                vs.of(id).len()
            );
            checked += 1;
        }
    }
    checked
}

/// Every input up to `max_len` if there are at most `limit`, else `limit` sampled ones.
fn inputs_for(vocab: &[Value], max_len: usize, limit: usize) -> Vec<Vec<Value>> {
    if inputs::count_all(vocab.len(), max_len) <= limit as u128 {
        inputs::all(vocab, max_len).collect()
    } else {
        inputs::sample(vocab, max_len, limit, 7)
    }
}

#[test]
fn every_bundled_program_at_max_seq_len_6_stays_in_its_sets() {
    let mut total = 0;
    for b in tracr_opt::library::PROGRAMS {
        let p = Program::load(b.name).unwrap();
        let s = p.settings_with(None, Some(6), None).unwrap();
        let vs = infer(&p, &s.vocab, 6).unwrap();
        let inputs = inputs_for(&s.vocab, 6, 20_000);
        for causal in [false, true] {
            for input in &inputs {
                total += check_input(&p, &vs, input, causal, b.name);
            }
        }
    }
    eprintln!("{total} values checked");
    assert!(total > 1_000_000, "only {total} values checked");
}

/// A small deterministic generator (SplitMix64).
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &'a [String]) -> &'a str {
        &xs[self.below(xs.len())]
    }
}

/// `.rasp` text of a random program over vocab {a, b, c} mixing numerical
/// s-ops (the refined kinds) with the categorical ones they depend on.
fn random_numerical_program(seed: u64) -> String {
    let mut rng = Rng(seed);
    let mut text = String::from("length = SelectorWidth(Select(tokens, tokens, TRUE))\n");
    // numerical s-ops, categorical s-ops, selectors
    let mut num: Vec<String> = Vec::new();
    let mut cat: Vec<String> = vec!["tokens".into(), "indices".into(), "length".into()];
    let mut sel: Vec<String> = Vec::new();
    let positional = [
        "Select(indices, indices, LEQ)",
        "Select(indices, indices, TRUE)",
        "Select(indices, length - 1, EQ)",
        "Select(indices, indices, LT)",
    ];
    for k in 0..3 {
        let t = ["a", "b", "c"][rng.below(3)];
        text.push_str(&format!("n{k} = numerical(Map(lambda x: 1 if x == \"{t}\" else 0, tokens))\n"));
        num.push(format!("n{k}"));
    }
    for k in 0..14 {
        let name = format!("v{k}");
        let line = match rng.below(9) {
            0 | 1 => {
                let s = if rng.below(3) == 0 && !sel.is_empty() {
                    rng.pick(&sel).to_string()
                } else {
                    positional[rng.below(positional.len())].to_string()
                };
                let x = rng.pick(&num).to_string();
                num.push(name.clone());
                format!("numerical(Aggregate({s}, {x}, default=0))")
            }
            2 => {
                let (a, b) = (rng.pick(&num).to_string(), rng.pick(&num).to_string());
                let (ca, cb) = [(1, -1), (1, 1), (2, -1), (1, 2)][rng.below(4)];
                num.push(name.clone());
                format!("numerical(LinearSequenceMap({a}, {b}, {ca}, {cb}))")
            }
            3 => {
                let (a, b) = (rng.pick(&num).to_string(), rng.pick(&num).to_string());
                num.push(name.clone());
                format!("numerical(SequenceMap(lambda x, y: x * y, {a}, {b}))")
            }
            4 => {
                let a = rng.pick(&num).to_string();
                cat.push(name.clone());
                ["Map(lambda x: x < 0, {a})", "Map(lambda x: x == 0, {a})", "Map(lambda x: x > 0.5, {a})"][rng.below(3)]
                    .replace("{a}", &a)
            }
            5 => {
                let a = rng.pick(&cat).to_string();
                num.push(name.clone());
                format!("numerical(Map(lambda x: 1 if x else 0, {a}))")
            }
            6 => {
                let (a, b) = (rng.pick(&cat).to_string(), rng.pick(&cat).to_string());
                let pred = ["EQ", "LT", "LEQ", "NEQ", "TRUE"][rng.below(5)];
                sel.push(format!("Select({a}, {b}, {pred})"));
                continue;
            }
            7 if sel.len() >= 2 => {
                let (a, b) = (rng.pick(&sel).to_string(), rng.pick(&sel).to_string());
                sel.push(["({a} & {b})", "({a} | {b})", "(~{a})"][rng.below(3)].replace("{a}", &a).replace("{b}", &b));
                continue;
            }
            _ => {
                let s = if sel.is_empty() { positional[rng.below(4)].to_string() } else { rng.pick(&sel).to_string() };
                cat.push(name.clone());
                format!("SelectorWidth({s})")
            }
        };
        text.push_str(&format!("{name} = {line}\n"));
    }
    let last = num.last().unwrap();
    text.push_str(&format!("compile({last}, vocab={{\"a\", \"b\", \"c\"}}, max_seq_len=5)\n"));
    text
}

#[test]
fn random_numerical_programs_stay_in_their_sets() {
    let mut total = 0;
    let mut programs = 0;
    for seed in 0..150u64 {
        let text = random_numerical_program(seed);
        let p = Program::from_rasp(&format!("random{seed}.rasp"), &text)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{text}"));
        // a value set over the limit is a refusal, not unsoundness
        let Ok(vs) = infer(&p, &["a", "b", "c"].map(|t| Value::Str(t.into())), 5) else { continue };
        programs += 1;
        let vocab = ["a", "b", "c"].map(|t| Value::Str(t.into()));
        for input in inputs::all(&vocab, 5) {
            for causal in [false, true] {
                total += check_input(&p, &vs, &input, causal, &text);
            }
        }
    }
    eprintln!("{programs} programs, {total} values checked");
    assert!(programs >= 140, "only {programs} of 150 random programs inferred");
}

/// The refinement at work: at max_seq_len 40 the plain product of two
/// running fractions had about 240 000 values (refused over 100 000); per
/// position, `balance` has only the differences with a shared denominator.
#[test]
fn dyck_balances_are_enumerated_per_position() {
    let p = Program::load("pair_balance").unwrap();
    let s = p.settings_with(None, Some(40), None).unwrap();
    let vs = infer(&p, &s.vocab, 40).unwrap();
    let balance = vs.of(p.output);
    // every (o - c)/n with 0 <= o, c <= n <= 40: the fractions in [-1, 1] with denominator <= 40
    let mut expected = std::collections::BTreeSet::new();
    for n in 1..=40i64 {
        for k in -n..=n {
            let g = gcd(k.abs(), n);
            expected.insert((k / g, n / g));
        }
    }
    // as floats: a/n - b/n can round differently for one rational, so count them within 1e-12
    let mut distinct: Vec<f64> = Vec::new();
    for v in balance {
        let x = v.as_f64().unwrap();
        if distinct.last().is_none_or(|last| x - last > 1e-12) {
            distinct.push(x);
        }
    }
    assert_eq!(distinct.len(), expected.len(), "balance has {} values, {} as rationals", balance.len(), distinct.len());
    assert!(balance.len() < 3_000, "balance has {} values", balance.len());
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Sets equal under Python's equality but of other types stay apart: {0, 1}
/// of one s-op must not stand for {False, True} of another, since `str`
/// tells them apart (a sum read "True" here, and the refined set of `c`
/// would miss 2 and 3).
#[test]
fn equal_sets_of_different_types_stay_apart() {
    let text = r#"
a = numerical(Map(lambda x: 1 if x == "a" else 0, tokens))
b = SequenceMap(lambda x, i: x == "b", tokens, indices)
s = Map(lambda x: str(x), b)
c = numerical(SequenceMap(lambda x, y: x + (2 if y == "True" else 0), a, s))
compile(c, vocab={"a", "b"}, max_seq_len=3)
"#;
    let p = Program::from_rasp("types.rasp", text).unwrap();
    let vocab = ["a", "b"].map(|t| Value::Str(t.into()));
    let vs = infer(&p, &vocab, 3).unwrap();
    let mut checked = 0;
    for input in inputs::all(&vocab, 3) {
        for causal in [false, true] {
            checked += check_input(&p, &vs, &input, causal, text);
        }
    }
    assert!(checked > 0);
    assert!(vs.of(p.output).contains(&Value::Int(2)), "{:?}", vs.of(p.output));
}

/// Found by the fuzzing campaign: an int near 2⁶³ and the float 2⁶³ were
/// taken for one value, so a value set kept the int and lost the float the
/// interpreter then produced, and the exported table computed something
/// else. Both are kept now.
#[test]
fn an_int_and_a_float_that_round_alike_stay_apart() {
    let text = r#"
x = Map(lambda t: 9223372036854775806 - 0.5 if t == "a" else 9223372036854775807, tokens)
y = SequenceMap(lambda v, i: v == 9223372036854775807, x, indices)
compile(y, vocab={"a", "b"}, max_seq_len=2)
"#;
    let p = Program::from_rasp("bigint.rasp", text).unwrap();
    let vocab = ["a", "b"].map(|t| Value::Str(t.into()));
    let vs = infer(&p, &vocab, 2).unwrap();
    let x = p.find("x").unwrap();
    assert_eq!(vs.of(x).len(), 2, "{:?}", vs.of(x));
    assert_eq!(vs.of(p.output).len(), 2, "{:?}", vs.of(p.output));
    for input in inputs::all(&vocab, 2) {
        check_input(&p, &vs, &input, false, text);
    }
}
