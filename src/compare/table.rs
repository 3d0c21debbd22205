//! The compare rows as text: a Markdown table with a legend (docs/RESULTS.md),
//! CSV and JSON, and the in-place update of a Markdown file's table section.

use super::{Row, Shape};
use crate::diagnostic::{Error, Result};

/// Opens the section of a Markdown file that [`update_section`] replaces.
pub const BEGIN: &str = "<!-- compare:begin -->";
/// Closes that section.
pub const END: &str = "<!-- compare:end -->";

fn cell<T: std::fmt::Display>(t: Option<T>, b: T, o: T) -> String {
    format!("{} / {b} / {o}", t.map_or("–".to_string(), |t| t.to_string()))
}

fn verified_cell(r: &Row) -> String {
    match &r.verified {
        None => "not checked".into(),
        Some(v) if v.ok() => format!("✓ {} {}", v.inputs, if v.exhaustive { "(all)" } else { "(sampled)" }),
        Some(v) => format!("✗ {}+{} of {}", v.baseline_mismatches, v.optimised_mismatches, v.inputs),
    }
}

/// "905 (14%) / 356 (5%)": structural params and padding, baseline / optimised.
fn structural_cell(b: &Shape, o: &Shape) -> String {
    let one = |x: &Shape| format!("{} ({:.0}%)", x.structural_params.unwrap_or(0), 100.0 * x.padding());
    format!("{} / {}", one(b), one(o))
}

/// An empty shape, for totals.
fn r_zero() -> Shape {
    Shape {
        layers: 0,
        d_model: 0,
        n_heads: 0,
        d_head: 0,
        d_mlp: 0,
        params: 0,
        nonzero_params: 0,
        structural_params: None,
        compile_ms: 0.0,
        d_model_lower_bound: None,
        d_model_bound_any_allocation: None,
    }
}

/// The Markdown table (with a legend and a totals row).
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from(
        "Each cell: Tracr / baseline / optimised. Tracr: its own compiler's figures \
         (src/library/tracr_reference.json, – where it was not measured at these settings); \
         baseline: Tracr's heuristic allocation without optimisation; optimised: every pass on. \
         d_model bounds of the optimised model: the least of any layout of its allocation (the most \
         directions held at once; with MLP erasure, none is narrower) / the least of any allocation \
         with as many layers (the width ILP's proven bound). Then the optimised model with the \
         graph rewrites off (`--no-rewrites`: no cse, folding, fusion, rule tables or head \
         sharing), and with residual sharing off (`--no-share-residual`). Structural params \
         (baseline / optimised): each block's own weights, before the dense layout pads every \
         head to d_head and to the most heads in a layer and every MLP to d_mlp; padding: the \
         share of params that is padding.\n\n",
    );
    s.push_str("| program | layers | d_model | heads | d_head | d_mlp | params | nonzero params | params ratio | structural params (padding) | compile ms | verified | d_model bound | no rewrites: layers, params | no sharing: d_model, d_mlp, params |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        let t = r.tracr.as_ref();
        let (b, o) = (&r.baseline, &r.optimised);
        let f = |get: fn(&Shape) -> usize| cell(t.map(get), get(b), get(o));
        s.push_str(&format!(
            "| {}{} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {} | {} | {} | {} | {}, {} | {}, {}, {} |\n",
            r.program,
            if r.settings.causal { " (causal)" } else { "" },
            f(|x| x.layers),
            f(|x| x.d_model),
            f(|x| x.n_heads),
            f(|x| x.d_head),
            f(|x| x.d_mlp),
            f(|x| x.params),
            f(|x| x.nonzero_params),
            r.params_ratio(),
            structural_cell(b, o),
            cell(
                t.map(|x| format!("{:.1}", x.compile_ms)),
                format!("{:.1}", b.compile_ms),
                format!("{:.1}", o.compile_ms)
            ),
            verified_cell(r),
            format!(
                "{} / {}",
                o.d_model_lower_bound.map_or("–".into(), |b| b.to_string()),
                o.d_model_bound_any_allocation.map_or("–".into(), |b| b.to_string())
            ),
            r.without_rewrites.layers,
            r.without_rewrites.params,
            r.unshared.d_model,
            r.unshared.d_mlp,
            r.unshared.params,
        ));
    }
    let sum = |get: fn(&Shape) -> usize, which: fn(&Row) -> Option<&Shape>| -> Option<usize> {
        rows.iter().map(|r| which(r).map(get)).sum()
    };
    let total = |get: fn(&Shape) -> usize| {
        cell(
            sum(get, |r| r.tracr.as_ref()),
            sum(get, |r| Some(&r.baseline)).unwrap_or(0),
            sum(get, |r| Some(&r.optimised)).unwrap_or(0),
        )
    };
    let (base_total, opt_total) =
        (rows.iter().map(|r| r.baseline.params).sum::<usize>(), rows.iter().map(|r| r.optimised.params).sum::<usize>());
    let structural_total = |which: fn(&Row) -> &Shape| Shape {
        params: rows.iter().map(|r| which(r).params).sum(),
        structural_params: Some(rows.iter().map(|r| which(r).structural_params.unwrap_or(0)).sum()),
        ..r_zero()
    };
    s.push_str(&format!(
        "| **total** | | | | | | {} | {} | {:.2} | {} | | | | {} | {} |\n",
        total(|x| x.params),
        total(|x| x.nonzero_params),
        opt_total as f64 / base_total.max(1) as f64,
        structural_cell(&structural_total(|r| &r.baseline), &structural_total(|r| &r.optimised)),
        rows.iter().map(|r| r.without_rewrites.params).sum::<usize>(),
        rows.iter().map(|r| r.unshared.params).sum::<usize>()
    ));
    s
}

/// One CSV line per row, every figure of every model.
pub fn csv(rows: &[Row]) -> String {
    let metrics = [
        "layers",
        "d_model",
        "n_heads",
        "d_head",
        "d_mlp",
        "params",
        "nonzero_params",
        "structural_params",
        "compile_ms",
    ];
    let mut head = vec!["program".to_string(), "causal".into(), "max_seq_len".into(), "vocab_size".into()];
    for who in ["tracr", "baseline", "optimised", "no_rewrites", "no_sharing"] {
        head.extend(metrics.iter().map(|m| format!("{who}_{m}")));
    }
    head.extend(
        [
            "d_model_lower_bound",
            "d_model_bound_any_allocation",
            "params_ratio",
            "inputs",
            "exhaustive",
            "baseline_mismatches",
            "optimised_mismatches",
        ]
        .map(String::from),
    );
    let mut s = head.join(",") + "\n";
    let values = |x: Option<&Shape>| -> Vec<String> {
        match x {
            None => vec![String::new(); metrics.len()],
            Some(x) => vec![
                x.layers.to_string(),
                x.d_model.to_string(),
                x.n_heads.to_string(),
                x.d_head.to_string(),
                x.d_mlp.to_string(),
                x.params.to_string(),
                x.nonzero_params.to_string(),
                x.structural_params.map_or(String::new(), |p| p.to_string()),
                format!("{:.3}", x.compile_ms),
            ],
        }
    };
    for r in rows {
        let mut line = vec![
            r.program.clone(),
            r.settings.causal.to_string(),
            r.settings.max_seq_len.to_string(),
            r.settings.vocab.len().to_string(),
        ];
        line.extend(values(r.tracr.as_ref()));
        line.extend(values(Some(&r.baseline)));
        line.extend(values(Some(&r.optimised)));
        line.extend(values(Some(&r.without_rewrites)));
        line.extend(values(Some(&r.unshared)));
        line.push(r.optimised.d_model_lower_bound.map_or(String::new(), |b| b.to_string()));
        line.push(r.optimised.d_model_bound_any_allocation.map_or(String::new(), |b| b.to_string()));
        line.push(format!("{:.4}", r.params_ratio()));
        match &r.verified {
            Some(v) => line.extend([
                v.inputs.to_string(),
                v.exhaustive.to_string(),
                v.baseline_mismatches.to_string(),
                v.optimised_mismatches.to_string(),
            ]),
            None => line.extend([String::new(), String::new(), String::new(), String::new()]),
        }
        s.push_str(&(line.join(",") + "\n"));
    }
    s
}

/// The rows as a JSON array.
pub fn json(rows: &[Row]) -> serde_json::Value {
    let shape = |x: &Shape| {
        serde_json::json!({
            "layers": x.layers, "d_model": x.d_model, "n_heads": x.n_heads, "d_head": x.d_head, "d_mlp": x.d_mlp,
            "params": x.params, "nonzero_params": x.nonzero_params, "compile_ms": x.compile_ms,
            "structural_params": x.structural_params, "padding": x.structural_params.map(|_| x.padding()),
            "d_model_lower_bound": x.d_model_lower_bound,
            "d_model_bound_any_allocation": x.d_model_bound_any_allocation,
        })
    };
    serde_json::Value::Array(
        rows.iter()
            .map(|r| {
                serde_json::json!({
                    "program": r.program,
                    "causal": r.settings.causal,
                    "max_seq_len": r.settings.max_seq_len,
                    "tracr": r.tracr.as_ref().map(shape),
                    "baseline": shape(&r.baseline),
                    "optimised": shape(&r.optimised),
                    "no_rewrites": shape(&r.without_rewrites),
                    "no_sharing": shape(&r.unshared),
                    "params_ratio": r.params_ratio(),
                    "verified": r.verified.as_ref().map(|v| serde_json::json!({
                        "inputs": v.inputs, "exhaustive": v.exhaustive,
                        "baseline_mismatches": v.baseline_mismatches, "optimised_mismatches": v.optimised_mismatches,
                    })),
                })
            })
            .collect(),
    )
}

/// Replaces the text between the markers in a Markdown file, atomically.
pub fn update_section(path: &std::path::Path, table: &str) -> Result<()> {
    let text =
        crate::files::read_text(path).map_err(|e| Error::usage(format!("cannot read {}: {e}", path.display())))?;
    let (Some(a), Some(b)) = (text.find(BEGIN), text.find(END)) else {
        return Err(Error::usage(format!("{} has no '{BEGIN}' ... '{END}' section to replace", path.display())));
    };
    if b < a {
        return Err(Error::usage(format!("{}: '{END}' comes before '{BEGIN}'", path.display())));
    }
    let new = format!("{}{BEGIN}\n{table}{}", &text[..a], &text[b..]);
    crate::files::write_atomic(path, new.as_bytes())
}
