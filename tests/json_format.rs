//! The JSON interchange format: every bundled program survives a round trip
//! with the same labels and the same outputs on every input.

mod common;

use common::bundled;
use tracr_opt::library::PROGRAMS;
use tracr_opt::rasp::inputs::all;
use tracr_opt::rasp::interp::evaluate;
use tracr_opt::rasp::json::{from_json, to_json};

#[test]
fn round_trip_keeps_labels_and_behaviour() {
    for b in PROGRAMS {
        let p = bundled(b.name);
        let text = to_json(&p, None).unwrap();
        let q = from_json(&text, "roundtrip.json").unwrap_or_else(|e| panic!("{}: {e}", b.name));
        let labels = |p: &tracr_opt::rasp::Program| p.nodes.iter().map(|n| n.label.clone()).collect::<Vec<_>>();
        assert_eq!(labels(&p), labels(&q), "{}", b.name);
        assert_eq!(p.settings, q.settings, "{}", b.name);
        // writing the loaded program again gives the same bytes
        assert_eq!(text, to_json(&q, None).unwrap(), "{}", b.name);
        let s = p.settings.clone().unwrap();
        let max_len = s.max_seq_len.min(4);
        for causal in [false, true] {
            for input in all(&s.vocab, max_len) {
                let a = evaluate(&p, &input, causal).map(|t| t.output().to_vec());
                let c = evaluate(&q, &input, causal).map(|t| t.output().to_vec());
                match (a, c) {
                    (Ok(x), Ok(y)) => assert_eq!(x, y, "{} on {input:?}", b.name),
                    (Err(_), Err(_)) => {}
                    (x, y) => panic!("{} on {input:?}: {x:?} vs {y:?}", b.name),
                }
            }
        }
    }
}

#[test]
fn bad_json_names_the_problem() {
    let e = from_json("{\"format\": \"tracr-opt-program\", \"version\": 1", "bad.json").unwrap_err().to_string();
    assert!(e.contains("bad.json:1:"), "{e}");
    let doc = r#"{"format": "tracr-opt-program", "version": 1, "name": "p", "output": "m",
        "nodes": [{"label": "m", "op": "map", "input": "tokens", "table": []}]}"#;
    let e = from_json(doc, "p.json").unwrap_err().to_string();
    assert!(e.contains("reads 'tokens', which is not defined before it"), "{e}");
    let doc = r#"{"format": "tracr-opt-program", "version": 2, "name": "p", "output": "t", "nodes": []}"#;
    assert!(from_json(doc, "p.json").unwrap_err().to_string().contains("unsupported format version 2"));
    let doc = r#"{"format": "tracr-opt-program", "version": 1, "name": "p", "output": "s",
        "nodes": [{"label": "t", "op": "tokens"}, {"label": "s", "op": "selector_width", "selector": "t"}]}"#;
    assert!(from_json(doc, "p.json").unwrap_err().to_string().contains("input 't' must be a selector"));
}

#[test]
fn a_table_with_two_results_for_one_input_is_refused() {
    let doc = |rows: &str| {
        format!(
            r#"{{"format": "tracr-opt-program", "version": 1, "name": "p", "output": "m",
            "nodes": [{{"label": "tokens", "op": "tokens"}},
                      {{"label": "m", "op": "map", "input": "tokens", "table": [{rows}]}}]}}"#
        )
    };
    let e = from_json(&doc(r#"["a", 1], ["b", 2], ["a", 3]"#), "p.json").unwrap_err().to_string();
    assert!(
        e.contains("p.json: node 1 ('m'): the table has two rows for ('a') with different results, 1 and 3"),
        "{e}"
    );
    // the same row twice says nothing new: accepted
    assert!(from_json(&doc(r#"["a", 1], ["b", 2], ["a", 1]"#), "p.json").is_ok());
}
