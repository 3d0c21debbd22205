//! A `compile --json` object without its timings, so that two runs of the
//! same program compare equal (used by tests/batch.rs and benches/batch.rs).

/// `j` without `compile_ms`, `stage_ms`, `solve_ms` and `verified.verify_ms`.
pub fn untimed(mut j: serde_json::Value) -> serde_json::Value {
    let o = j.as_object_mut().unwrap();
    for k in ["compile_ms", "stage_ms", "solve_ms"] {
        o.remove(k);
    }
    if let Some(v) = o.get_mut("verified").and_then(|v| v.as_object_mut()) {
        v.remove("verify_ms");
    }
    j
}
