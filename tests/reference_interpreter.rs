//! The interpreter reproduces every input/output pair that Tracr's own
//! interpreter produced for its library (20 per program, causal and not).

mod common;

use common::*;
use tracr_opt::rasp::interp::evaluate;
use tracr_opt::value::Value;

fn same(expected: &Value, got: &Value, numerical: bool) -> bool {
    if numerical {
        if let (Some(a), Some(b)) = (expected.as_f64(), got.as_f64()) {
            return (a - b).abs() <= 1e-12;
        }
    }
    expected == got
}

#[test]
fn interpreter_matches_every_tracr_reference_pair() {
    let reference = reference();
    let entries = reference["programs"].as_array().unwrap();
    assert_eq!(entries.len(), 32, "16 programs, causal and non-causal");
    let mut checked = 0;
    for entry in entries {
        let tracr_name = entry["name"].as_str().unwrap();
        let causal = entry["causal"].as_bool().unwrap();
        let b = bundled_for_tracr(tracr_name);
        let p = bundled(b.name);
        let settings = p.settings.as_ref().unwrap();
        assert_eq!(
            settings.vocab,
            {
                let mut v = values(&entry["vocab"]);
                v.sort();
                v
            },
            "{}: default vocab differs from Tracr's",
            b.name
        );
        assert_eq!(settings.max_seq_len as u64, entry["max_seq_len"].as_u64().unwrap(), "{}: max_seq_len", b.name);
        let numerical = entry["numerical_output"].as_bool().unwrap();
        for pair in entry["pairs"].as_array().unwrap() {
            let input = values(&pair["input"]);
            let expected = values(&pair["expected"]);
            let trace = evaluate(&p, &input, causal).unwrap_or_else(|e| panic!("{} on {input:?}: {e}", b.name));
            let got = trace.output();
            assert_eq!(got.len(), expected.len());
            for (pos, (e, g)) in expected.iter().zip(got).enumerate() {
                assert!(
                    same(e, g, numerical),
                    "{} (causal={causal}) on {:?}: position {pos} expected {} got {}",
                    b.name,
                    input.iter().map(Value::repr).collect::<Vec<_>>(),
                    e.repr(),
                    g.repr()
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 32 * 20);
}
