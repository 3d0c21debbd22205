//! Pictures of a compiled model (`tracr-opt show`): the layer diagram, the
//! residual-stream chart (what residual sharing did), W_QK and W_OV of every
//! head on residual labels, and one input's residual stream at every layer.
//! Everything is drawn from the model directory alone: the weights,
//! `tracr_opt.json` and `circuit.json`.

use crate::diagnostic::{Error, Result};
use crate::figures::{escape, num, stack, svg_open, Heatmap, FONT};
use crate::model::circuit::Circuit;
use crate::model::{Decoder, Model};
use crate::value::Value;
use ndarray::Array2;
use std::collections::BTreeMap;
use std::fmt::Write;

/// One figure: its path in the output directory (without extension) and its SVG.
#[derive(Clone, Debug)]
pub struct Figure {
    /// E.g. `layers`, `heads/L0H1_qk`.
    pub name: String,
    /// What it shows, for the listing `show` prints.
    pub caption: String,
    /// The SVG document.
    pub svg: String,
}

/// Pastel fills, one per s-op in program order.
const FILLS: [&str; 12] = [
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5", "#e7cb94",
    "#cedb9c", "#bcbddc",
];

/// A stable colour per s-op: program order in the circuit map, else first seen.
struct Palette(BTreeMap<String, &'static str>);

impl Palette {
    fn new(model: &Model) -> Palette {
        let mut names: Vec<String> = Vec::new();
        if let Some(c) = &model.circuit {
            names.extend(c.nodes.iter().map(|n| n.label.clone()));
        }
        for l in &model.meta.layers {
            names.extend(l.heads.iter().flat_map(|h| h.node.split('+').map(str::to_string)));
            names.extend(l.mlps.iter().map(|m| m.node.clone()));
        }
        let mut map = BTreeMap::new();
        for n in names {
            let k = map.len();
            map.entry(n).or_insert(FILLS[k % FILLS.len()]);
        }
        Palette(map)
    }

    /// The colour of the s-op a direction or label belongs to (`reverse:a` → `reverse`).
    fn of(&self, name: &str) -> &'static str {
        if name == "one" || name == "tokens:BOS" || name.starts_with("erase(") {
            return "#e0e0e0";
        }
        let base = self.0.get(name).copied().or_else(|| {
            // the longest known s-op the direction's name starts with
            self.0
                .iter()
                .filter(|(k, _)| name.starts_with(k.as_str()) && name[k.len()..].starts_with([':', '_']))
                .max_by_key(|(k, _)| k.len())
                .map(|(_, c)| *c)
        });
        base.unwrap_or("#eeeeee")
    }
}

/// Position p of the residual stream (entering sublayer p; 2L is the final stream).
fn position_name(p: usize, n_layers: usize) -> String {
    if p >= 2 * n_layers {
        "final".into()
    } else {
        format!("L{} {}", p / 2, if p % 2 == 0 { "pre" } else { "mid" })
    }
}

/// The first position a direction is in the stream, from its `written` name.
fn first_position(written: &str) -> Option<usize> {
    if written == "embed" {
        return Some(0);
    }
    sublayer(written).map(|s| s + 1)
}

/// The position a direction is last needed at, from its `last_read` name.
fn last_position(read: &str, n_layers: usize) -> Option<usize> {
    if read == "unembed" {
        return Some(2 * n_layers);
    }
    sublayer(read)
}

/// `L3.attn` → 6, `L3.mlp` → 7.
fn sublayer(name: &str) -> Option<usize> {
    let (l, kind) = name.strip_prefix('L')?.split_once('.')?;
    let l: usize = l.parse().ok()?;
    match kind {
        "attn" => Some(2 * l),
        "mlp" => Some(2 * l + 1),
        _ => None,
    }
}

/// One residual dimension's occupants as (direction, first, last needed) positions.
type Spans = Vec<Vec<(String, usize, usize)>>;

fn spans(model: &Model) -> Option<Spans> {
    let info = model.meta.residual.as_ref()?;
    let n = model.config.n_layers;
    Some(
        info.dims
            .iter()
            .map(|occ| {
                occ.iter()
                    .map(|o| {
                        let first = o.written.as_deref().and_then(first_position).unwrap_or(0);
                        let last = o.last_read.as_deref().and_then(|r| last_position(r, n)).unwrap_or(2 * n);
                        (o.dir.clone(), first, last)
                    })
                    .collect()
            })
            .collect(),
    )
}

/// Each dimension's label at position p: the direction it holds then, or
/// `(free)`; the model's own labels when the basis is rotated or compressed.
fn labels_at(model: &Model, spans: &Option<Spans>, p: usize) -> Vec<String> {
    match spans {
        None => model.meta.residual_labels.clone(),
        Some(s) => s
            .iter()
            .map(|occ| match occ.as_slice() {
                [(d, _, _)] => d.clone(),
                many => many
                    .iter()
                    .filter(|(_, a, b)| *a <= p && p <= *b)
                    .map(|(d, _, _)| d.clone())
                    .next()
                    .unwrap_or_else(|| "(free)".into()),
            })
            .collect(),
    }
}

/// Every figure for `model`; with `input`, also its residual stream for that input.
pub fn figures(model: &Model, input: Option<&[Value]>) -> Result<Vec<Figure>> {
    let palette = Palette::new(model);
    let mut out = vec![Figure {
        name: "layers".into(),
        caption: "layers × (heads, MLP), each with the s-ops it computes and its size".into(),
        svg: layer_diagram(model, &palette),
    }];
    let spans = spans(model);
    if let Some(s) = &spans {
        out.push(Figure {
            name: "residual".into(),
            caption: "residual dimensions × stream positions, each cell by its occupant; ✕ marks an erasure".into(),
            svg: residual_chart(model, s, &palette),
        });
    }
    out.extend(head_maps(model, &spans));
    if let Some(input) = input {
        out.push(Figure {
            name: "input".into(),
            caption: format!(
                "the residual stream at every layer for the input {}",
                input.iter().map(Value::repr).collect::<Vec<_>>().join(" ")
            ),
            svg: input_streams(model, &spans, input)?,
        });
    }
    Ok(out)
}

/// The s-ops each head's pattern computes, from the circuit map (selectors).
fn pattern_owners(circuit: Option<&Circuit>, layer: usize, head: usize) -> Vec<String> {
    let Some(c) = circuit else { return vec![] };
    c.nodes
        .iter()
        .filter(|n| n.fate.kind == "compiled" || n.fate.kind == "added")
        .filter(|n| n.heads.iter().any(|h| h.part == "pattern" && h.layer == layer && h.head == head))
        .map(|n| n.label.clone())
        .collect()
}

fn layer_diagram(model: &Model, palette: &Palette) -> String {
    let c = &model.config;
    let meta = &model.meta;
    let line_h = 15.0;
    // the text of every head and MLP cell, to size the columns
    let fused_into = |node: &str| -> String {
        let inner: Vec<&str> = model
            .circuit
            .as_ref()
            .map(|c| {
                c.nodes
                    .iter()
                    .filter(|n| n.fate.kind == "fused" && n.computed_by.as_deref() == Some(node))
                    .map(|n| n.label.as_str())
                    .collect()
            })
            .unwrap_or_default();
        if inner.is_empty() {
            node.to_string()
        } else {
            format!("{node} (+ fused {})", inner.join(", "))
        }
    };
    let svd = |b| if b == crate::model::Basis::Svd { " svd" } else { "" };
    let head_lines = |l: usize, head: usize| -> Vec<String> {
        match meta.layers[l].heads.get(head) {
            None => vec![format!("H{head}: unused (padding)")],
            Some(info) => {
                let mut v = vec![format!("H{head}: {}", info.node.split('+').collect::<Vec<_>>().join(", "))];
                let pattern = pattern_owners(model.circuit.as_ref(), l, head);
                if !pattern.is_empty() {
                    v.push(format!("pattern: {}", pattern.join(", ")));
                }
                v.push(format!(
                    "{} · QK rank {}{} · OV rank {}{}",
                    info.role,
                    info.qk_rank,
                    svd(info.qk_basis),
                    info.ov_rank,
                    svd(info.ov_basis)
                ));
                v
            }
        }
    };
    let mlp_lines: Vec<Vec<String>> = (0..c.n_layers)
        .map(|l| {
            let mut v: Vec<String> = meta.layers[l]
                .mlps
                .iter()
                .map(|m| format!("{} · {} · {} neurons", fused_into(&m.node), m.role, m.hidden))
                .collect();
            let used = meta.layers[l].mlp_width();
            if v.is_empty() {
                v.push("MLP: unused (padding)".into());
            } else if used < c.d_mlp {
                v.push(format!("{} of {} neurons padding", c.d_mlp - used, c.d_mlp));
            }
            v
        })
        .collect();
    let chars = |v: &[String]| v.iter().map(|t| t.chars().count()).max().unwrap_or(0) as f64;
    let head_w = (0..c.n_layers)
        .flat_map(|l| (0..c.n_heads).map(move |h| (l, h)))
        .map(|(l, h)| 6.0 * chars(&head_lines(l, h)) + 24.0)
        .fold(180.0, f64::max);
    let mlp_w = mlp_lines.iter().map(|v| 6.0 * chars(v) + 36.0).fold(220.0, f64::max);
    let label_w = 70.0;
    let row_h = |l: usize| 10.0 + line_h * mlp_lines[l].len().max(3) as f64;
    let title_w = 20.0 + 7.5 * (meta.program.len() + 90) as f64;
    let width = (label_w + head_w * c.n_heads as f64 + mlp_w + 20.0).max(title_w);
    let (top, band) = (56.0, 44.0);
    // the nodes no component computes on its own, so that the diagram
    // names every node of the program as written
    let elsewhere: Vec<String> = model
        .circuit
        .as_ref()
        .map(|circ| {
            circ.nodes
                .iter()
                .filter_map(|n| match (n.fate.kind.as_str(), n.fate.into.as_deref()) {
                    ("merged", Some(i)) => Some(format!("{} = {i} (cse)", n.label)),
                    ("fused", Some(i)) => Some(format!("{} inside {i} (fused)", n.label)),
                    ("joint", Some(i)) => Some(format!("{} in joint select {i}", n.label)),
                    ("dropped", _) => Some(format!("{} (dropped: not needed)", n.label)),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let per_line = ((width - label_w - 40.0) / 6.0) as usize;
    let mut wrapped: Vec<String> = Vec::new();
    for e in &elsewhere {
        match wrapped.last_mut() {
            Some(last) if last.chars().count() + e.chars().count() + 2 <= per_line => {
                last.push_str("; ");
                last.push_str(e);
            }
            _ => wrapped.push(e.clone()),
        }
    }
    let notes_h = if wrapped.is_empty() { 0.0 } else { 22.0 + line_h * wrapped.len() as f64 };
    let height = top + band + (0..c.n_layers).map(row_h).sum::<f64>() + band + 16.0 + notes_h;
    let mut s = svg_open(width, height);
    let shared = meta.residual.as_ref().is_some_and(|r| r.shared);
    let title = format!(
        "{}: {} layers, {} heads × d_head {}, d_mlp {}, d_model {}{}, {} params",
        meta.program,
        c.n_layers,
        c.n_heads,
        c.d_head,
        c.d_mlp,
        c.d_model,
        if shared { " (shared)" } else { "" },
        model.params()
    );
    let _ = writeln!(s, "<text x=\"10\" y=\"20\" {FONT} font-size=\"14\">{}</text>", escape(&title));
    let note = match (&meta.rotation, &meta.compression) {
        (_, Some(k)) => format!("compressed to d_model {} (lossy, accuracy {:.3})", k.d_model, k.accuracy),
        (Some(r), _) => format!("residual basis rotated (seed {})", r.seed),
        _ => format!("allocator {}", meta.allocator),
    };
    let _ = writeln!(s, "<text x=\"10\" y=\"38\" {FONT} font-size=\"11\" fill=\"#555\">{}</text>", escape(&note));
    let text = |s: &mut String, x: f64, y: f64, size: f64, t: &str| {
        let _ = writeln!(s, "<text x=\"{}\" y=\"{}\" {FONT} font-size=\"{size}\">{}</text>", num(x), num(y), escape(t));
    };
    let boxed = |s: &mut String, x: f64, y: f64, w: f64, h: f64, fill: &str, dashed: bool| {
        let _ = writeln!(
            s,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"4\" fill=\"{fill}\" stroke=\"#666\"{}/>",
            num(x),
            num(y),
            num(w),
            num(h),
            if dashed { " stroke-dasharray=\"4 3\"" } else { "" }
        );
    };
    // the embedding band: what the embeddings write
    let mut y = top;
    let embedded: Vec<String> = match &model.circuit {
        Some(circ) => circ
            .nodes
            .iter()
            .filter(|n| matches!(n.fate.kind.as_str(), "embedded" | "folded" | "constant"))
            .map(|n| format!("{} ({})", n.label, n.fate.kind))
            .collect(),
        None => vec!["tokens".into(), "indices".into()],
    };
    boxed(&mut s, label_w, y, width - label_w - 20.0, band - 8.0, "#f4f4f4", false);
    text(&mut s, 10.0, y + 22.0, 12.0, "embed");
    text(&mut s, label_w + 8.0, y + 15.0, 11.0, "W_E, W_pos write:");
    text(&mut s, label_w + 8.0, y + 29.0, 11.0, &embedded.join(", "));
    y += band;
    for l in 0..c.n_layers {
        let h = row_h(l);
        text(&mut s, 10.0, y + h / 2.0, 12.0, &format!("layer {l}"));
        for head in 0..c.n_heads {
            let x = label_w + head_w * head as f64;
            let info = meta.layers[l].heads.get(head);
            let fill = info.map_or("white", |i| palette.of(i.node.split('+').next().unwrap_or_default()));
            boxed(&mut s, x + 2.0, y, head_w - 6.0, h - 6.0, fill, info.is_none());
            for (i, t) in head_lines(l, head).iter().enumerate() {
                text(&mut s, x + 8.0, y + 15.0 + line_h * i as f64, if i == 0 { 11.0 } else { 10.0 }, t);
            }
        }
        let x = label_w + head_w * c.n_heads as f64;
        boxed(&mut s, x + 2.0, y, mlp_w - 6.0, h - 6.0, "white", meta.layers[l].mlps.is_empty());
        for (i, t) in mlp_lines[l].iter().enumerate() {
            let ty = y + 14.0 + line_h * i as f64;
            if let Some(m) = meta.layers[l].mlps.get(i) {
                let _ = writeln!(
                    s,
                    "<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\" stroke=\"#666\"/>",
                    num(x + 8.0),
                    num(ty - 9.0),
                    palette.of(&m.node)
                );
                text(&mut s, x + 22.0, ty, 10.5, t);
            } else {
                text(&mut s, x + 8.0, ty, 10.0, t);
            }
        }
        y += h;
    }
    let out = match &meta.output {
        Decoder::Categorical { values } => format!(
            "{} (categorical: {})",
            meta.output_label,
            values.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
        ),
        Decoder::Numerical => format!("{} (numerical)", meta.output_label),
    };
    boxed(&mut s, label_w, y, width - label_w - 20.0, band - 8.0, "#f4f4f4", false);
    text(&mut s, 10.0, y + 22.0, 12.0, "unembed");
    text(&mut s, label_w + 8.0, y + 22.0, 11.0, &format!("W_U reads {out}"));
    if !wrapped.is_empty() {
        y += band + 4.0;
        text(&mut s, 10.0, y, 11.0, "Computed elsewhere (rewrites):");
        for (i, line) in wrapped.iter().enumerate() {
            text(&mut s, label_w + 8.0, y + 16.0 + line_h * i as f64, 10.5, line);
        }
    }
    s.push_str("</svg>\n");
    s
}

fn residual_chart(model: &Model, spans: &Spans, palette: &Palette) -> String {
    let n = model.config.n_layers;
    let positions = 2 * n + 1;
    let longest = spans.iter().flatten().map(|(d, _, _)| d.chars().count()).max().unwrap_or(4) as f64;
    let cell_w = (6.2 * longest + 10.0).clamp(56.0, 150.0);
    let (left, top, cell_h) = (52.0, 70.0, 20.0);
    let legend_w = 40.0
        + 6.5
            * spans
                .iter()
                .flatten()
                .map(|(d, _, _)| d.split(':').next().unwrap_or(d).chars().count())
                .max()
                .unwrap_or(8) as f64;
    let width = (left + cell_w * positions as f64 + legend_w).max(20.0 + 7.5 * (model.meta.program.len() + 70) as f64);
    let d = spans.len();
    let names: Vec<String> = {
        let mut v: Vec<String> = Vec::new();
        for (dir, _, _) in spans.iter().flatten() {
            let base = dir.split(':').next().unwrap_or(dir).to_string();
            if !v.contains(&base) {
                v.push(base);
            }
        }
        v
    };
    let height = (top + cell_h * d as f64 + 30.0).max(top + 16.0 * names.len() as f64 + 40.0);
    let mut s = svg_open(width, height);
    let info = model.meta.residual.as_ref();
    let title = format!(
        "{}: residual stream, {} dimensions ({} {}; {} with one per direction)",
        model.meta.program,
        d,
        if info.is_some_and(|r| r.shared) { "the least for this allocation:" } else { "residual sharing would reach" },
        info.map_or(d, |r| r.d_model_lower_bound),
        info.map_or(d, |r| r.d_model_unshared)
    );
    let _ = writeln!(s, "<text x=\"10\" y=\"20\" {FONT} font-size=\"14\">{}</text>", escape(&title));
    let _ = writeln!(
        s,
        "<text x=\"10\" y=\"38\" {FONT} font-size=\"11\" fill=\"#555\">columns: the stream entering each sublayer \
         (TransformerLens hook_resid_pre / hook_resid_mid; final = the last hook_resid_post); ✕: erased by that \
         layer's MLP</text>"
    );
    for p in 0..positions {
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" {FONT} font-size=\"11\" text-anchor=\"middle\">{}</text>",
            num(left + cell_w * (p as f64 + 0.5)),
            num(top - 8.0),
            escape(&position_name(p, n))
        );
    }
    let erased: BTreeMap<(usize, String), usize> = model
        .circuit
        .as_ref()
        .map(|c| c.erase.iter().filter_map(|e| Some(((e.dim?, e.dir.clone()), e.layer))).collect())
        .unwrap_or_default();
    for (dim, occ) in spans.iter().enumerate() {
        let y = top + cell_h * dim as f64;
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" {FONT} font-size=\"11\" text-anchor=\"end\">d{dim}</text>",
            num(left - 6.0),
            num(y + 14.0)
        );
        let _ = writeln!(
            s,
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#ddd\"/>",
            num(left),
            num(y),
            num(cell_w * positions as f64),
            num(cell_h)
        );
        for (dir, first, last) in occ {
            let base = dir.split(':').next().unwrap_or(dir);
            let x = left + cell_w * *first as f64;
            let w = cell_w * (last.saturating_sub(*first) + 1) as f64;
            let _ = writeln!(
                s,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" stroke=\"#555\"><title>{}: {} to {}</title></rect>",
                num(x + 1.0),
                num(y + 1.0),
                num(w - 2.0),
                num(cell_h - 2.0),
                palette.of(base),
                escape(dir),
                escape(&position_name(*first, n)),
                escape(&position_name(*last, n))
            );
            let max_chars = ((w - 8.0) / 6.2).max(1.0) as usize;
            let shown: String = if dir.chars().count() > max_chars {
                dir.chars().take(max_chars.saturating_sub(1)).chain(['…']).collect()
            } else {
                dir.clone()
            };
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" {FONT} font-size=\"10.5\">{}</text>",
                num(x + 5.0),
                num(y + 14.0),
                escape(&shown)
            );
            if let Some(layer) = erased.get(&(dim, dir.clone())) {
                // erased by layer's MLP: gone from the stream entering layer + 1
                let ex = left + cell_w * (2 * layer + 2) as f64;
                let _ = writeln!(
                    s,
                    "<text x=\"{}\" y=\"{}\" {FONT} font-size=\"13\" fill=\"#c00000\" text-anchor=\"middle\">✕<title>{} erased by L{layer}.mlp</title></text>",
                    num(ex),
                    num(y + 15.0),
                    escape(dir)
                );
            }
        }
    }
    // legend: one swatch per s-op
    let lx = left + cell_w * positions as f64 + 16.0;
    for (i, name) in names.iter().enumerate() {
        let ly = top + 16.0 * i as f64;
        let _ = writeln!(
            s,
            "<rect x=\"{}\" y=\"{}\" width=\"11\" height=\"11\" fill=\"{}\" stroke=\"#555\"/><text x=\"{}\" y=\"{}\" {FONT} font-size=\"11\">{}</text>",
            num(lx),
            num(ly),
            palette.of(name),
            num(lx + 16.0),
            num(ly + 10.0),
            escape(name)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// The nonzero rows and columns of a matrix (|x| > 1e-9), never empty.
fn support(m: &Array2<f64>) -> (Vec<usize>, Vec<usize>) {
    let rows: Vec<usize> = (0..m.nrows()).filter(|r| m.row(*r).iter().any(|x| x.abs() > 1e-9)).collect();
    let cols: Vec<usize> = (0..m.ncols()).filter(|c| m.column(*c).iter().any(|x| x.abs() > 1e-9)).collect();
    (rows, cols)
}

fn head_maps(model: &Model, spans: &Option<Spans>) -> Vec<Figure> {
    let c = &model.config;
    let mut out = Vec::new();
    let scale = 1.0 / (c.d_head as f64).sqrt();
    for (l, layer) in model.layers.iter().enumerate() {
        let reads = labels_at(model, spans, 2 * l);
        let writes = labels_at(model, spans, 2 * l + 1);
        for (h, info) in model.meta.layers[l].heads.iter().enumerate() {
            let wq = layer.w_q.index_axis(ndarray::Axis(0), h);
            let wk = layer.w_k.index_axis(ndarray::Axis(0), h);
            let wv = layer.w_v.index_axis(ndarray::Axis(0), h);
            let wo = layer.w_o.index_axis(ndarray::Axis(0), h);
            let qk = wq.dot(&wk.t()) * scale;
            let ov = wv.dot(&wo);
            let pattern = pattern_owners(model.circuit.as_ref(), l, h);
            let selector =
                if pattern.is_empty() { String::new() } else { format!(" of selector {}", pattern.join(", ")) };
            let nodes = info.node.replace('+', ", ");
            let mut draw =
                |m: &Array2<f64>, kind: &str, title: String, row_labels: &[String], col_labels: &[String]| {
                    let (rows, cols) = support(m);
                    let values: Vec<Vec<f64>> =
                        rows.iter().map(|r| cols.iter().map(|c| m[[*r, *c]]).collect()).collect();
                    let rl: Vec<String> = rows.iter().map(|r| format!("d{r} {}", row_labels[*r])).collect();
                    let cl: Vec<String> = cols.iter().map(|c| format!("d{c} {}", col_labels[*c])).collect();
                    out.push(Figure {
                        name: format!("heads/L{l}H{h}_{kind}"),
                        caption: format!("layer {l} head {h} ({nodes}): W_{}", kind.to_uppercase()),
                        svg: Heatmap { title: &title, rows: &rl, cols: &cl, values: &values }.svg(),
                    });
                };
            draw(
                &qk,
                "qk",
                format!("L{l} H{h} W_QK{selector} (for {nodes}): query rows × key columns"),
                &reads,
                &reads,
            );
            draw(&ov, "ov", format!("L{l} H{h} W_OV writing {nodes}: input rows × output columns"), &reads, &writes);
        }
    }
    out
}

fn input_streams(model: &Model, spans: &Option<Spans>, input: &[Value]) -> Result<String> {
    let runner = model.runner()?;
    let ids = runner.encode(input)?;
    let streams = runner.residual_streams(&ids);
    let rows: Vec<String> = std::iter::once("BOS".to_string())
        .chain(input.iter().enumerate().map(|(i, v)| format!("{i}: {}", v.repr())))
        .collect();
    let n = model.config.n_layers;
    let output: Vec<String> = runner.run(&ids).into_iter().map(|(v, _)| v.repr()).collect();
    let mut parts = Vec::new();
    for (p, x) in streams.iter().enumerate() {
        let labels = labels_at(model, spans, p);
        let cols: Vec<String> = labels.iter().enumerate().map(|(i, l)| format!("d{i} {l}")).collect();
        let values: Vec<Vec<f64>> = x.rows().into_iter().map(|r| r.to_vec()).collect();
        let hook = crate::model::circuit::resid_hook(p, n).unwrap_or_else(|| "embed".into());
        let title = format!("{} · stream {} ({hook})", model.meta.program, position_name(p, n));
        parts.push(Heatmap { title: &title, rows: &rows, cols: &cols, values: &values }.svg());
    }
    let header = format!(
        "{}: input {} → output {}",
        model.meta.program,
        input.iter().map(Value::repr).collect::<Vec<_>>().join(" "),
        output.join(" ")
    );
    if streams.is_empty() {
        return Err(Error::internal("a forward pass gave no residual stream"));
    }
    Ok(stack(&header, &parts))
}
