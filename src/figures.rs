//! Figures as plain SVG text: heatmaps and line charts with every label
//! written out, so a figure names what it shows and diffs as text. No fonts,
//! no rendering library, and the same input gives the same bytes.

use std::fmt::Write;

/// The font attribute every text element uses.
pub const FONT: &str = "font-family=\"Helvetica, Arial, sans-serif\"";

/// Escapes text for SVG.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A number written short and stable (no `-0`, at most 4 significant digits).
pub fn num(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let s = format!("{x:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// The opening of an SVG document of this size, on a white background.
pub fn svg_open(width: f64, height: f64) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
        w = num(width),
        h = num(height)
    )
}

/// Figures one under another in one SVG document, under a title line.
pub fn stack(title: &str, parts: &[String]) -> String {
    let size = |svg: &str| -> (f64, f64) {
        let first = svg.lines().next().unwrap_or_default();
        let attr = |name: &str| -> f64 {
            first
                .split(&format!(" {name}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0)
        };
        (attr("width"), attr("height"))
    };
    let sizes: Vec<(f64, f64)> = parts.iter().map(|p| size(p)).collect();
    let width = sizes.iter().map(|s| s.0).fold(20.0 + 7.5 * title.chars().count() as f64, f64::max);
    let height = 32.0 + sizes.iter().map(|s| s.1).sum::<f64>();
    let mut s = svg_open(width, height);
    let _ = writeln!(s, "<text x=\"10\" y=\"20\" {FONT} font-size=\"15\">{}</text>", escape(title));
    let mut y = 32.0;
    for (part, (w, h)) in parts.iter().zip(&sizes) {
        let _ = writeln!(
            s,
            "<svg x=\"0\" y=\"{}\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">",
            num(y),
            w = num(*w),
            h = num(*h)
        );
        for line in part.lines().skip(1) {
            s.push_str(line);
            s.push('\n');
        }
        y += h;
    }
    s.push_str("</svg>\n");
    s
}

/// Red (positive) – white (0) – blue (negative), scaled by `max_abs`.
fn diverging(v: f64, max_abs: f64) -> String {
    let t = if max_abs > 0.0 { (v / max_abs).clamp(-1.0, 1.0) } else { 0.0 };
    let (r, g, b) = if t >= 0.0 {
        (255.0, 255.0 * (1.0 - t) + 60.0 * t, 255.0 * (1.0 - t) + 50.0 * t)
    } else {
        let t = -t;
        (255.0 * (1.0 - t) + 40.0 * t, 255.0 * (1.0 - t) + 90.0 * t, 255.0)
    };
    format!("rgb({},{},{})", r.round() as u8, g.round() as u8, b.round() as u8)
}

/// A matrix drawn as coloured cells, rows top to bottom, with its row and
/// column labels; colours diverge around 0 (red positive, blue negative).
pub struct Heatmap<'a> {
    /// The title above the figure.
    pub title: &'a str,
    /// One label per row.
    pub rows: &'a [String],
    /// One label per column.
    pub cols: &'a [String],
    /// `values[r][c]`: row r, column c.
    pub values: &'a [Vec<f64>],
}

impl Heatmap<'_> {
    /// The SVG document.
    pub fn svg(&self) -> String {
        let cell = 18.0;
        let longest = |ls: &[String]| ls.iter().map(|l| l.chars().count()).max().unwrap_or(0) as f64;
        let left = 12.0 + 6.5 * longest(self.rows);
        let top = 40.0 + 6.5 * longest(self.cols);
        let (nr, nc) = (self.rows.len() as f64, self.cols.len() as f64);
        let legend = 60.0;
        let width = (left + nc * cell + legend + 20.0).max(20.0 + 7.5 * self.title.chars().count() as f64);
        let height = (top + nr * cell + 20.0).max(top + 120.0);
        let max_abs = self.values.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
        let mut s = svg_open(width, height);
        let _ = writeln!(s, "<text x=\"10\" y=\"20\" {FONT} font-size=\"14\">{}</text>", escape(self.title));
        for (r, label) in self.rows.iter().enumerate() {
            let y = top + (r as f64 + 0.5) * cell + 4.0;
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" {FONT} font-size=\"11\" text-anchor=\"end\">{}</text>",
                num(left - 4.0),
                num(y),
                escape(label)
            );
        }
        for (c, label) in self.cols.iter().enumerate() {
            let x = left + (c as f64 + 0.5) * cell + 4.0;
            let _ = writeln!(
                s,
                "<text x=\"{x}\" y=\"{y}\" {FONT} font-size=\"11\" transform=\"rotate(-90 {x} {y})\">{}</text>",
                escape(label),
                x = num(x),
                y = num(top - 4.0)
            );
        }
        for (r, row) in self.values.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "<rect x=\"{}\" y=\"{}\" width=\"{cell}\" height=\"{cell}\" fill=\"{}\" stroke=\"#ddd\" stroke-width=\"0.5\"><title>{} × {}: {}</title></rect>",
                    num(left + c as f64 * cell),
                    num(top + r as f64 * cell),
                    diverging(*v, max_abs),
                    escape(&self.rows[r]),
                    escape(&self.cols[c]),
                    num(*v)
                );
            }
        }
        // the colour scale
        let lx = left + nc * cell + 20.0;
        for i in 0..=10 {
            let v = max_abs * (1.0 - i as f64 / 5.0);
            let _ = writeln!(
                s,
                "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"8\" fill=\"{}\"/>",
                num(lx),
                num(top + i as f64 * 8.0),
                diverging(v, max_abs)
            );
        }
        for (i, v) in [(0, max_abs), (5, 0.0), (10, -max_abs)] {
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" {FONT} font-size=\"10\">{}</text>",
                num(lx + 15.0),
                num(top + i as f64 * 8.0 + 7.0),
                num(v)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

/// Lines (with markers) over a shared x axis.
pub struct LineChart<'a> {
    /// The title above the figure.
    pub title: &'a str,
    /// The x axis's label.
    pub x_label: &'a str,
    /// The y axis's label.
    pub y_label: &'a str,
    /// Named series of (x, y) points; a None y leaves a gap.
    pub series: &'a [(String, Vec<(f64, Option<f64>)>)],
    /// Tick labels for x = 0, 1, 2, … instead of numbers (e.g. layer names).
    pub x_ticks: Option<&'a [String]>,
    /// The y range drawn (None: the data's range, including 0).
    pub y_range: Option<(f64, f64)>,
}

const COLOURS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf"];

impl LineChart<'_> {
    /// The SVG document.
    pub fn svg(&self) -> String {
        let longest = self.series.iter().map(|(n, _)| n.chars().count()).max().unwrap_or(0) as f64;
        let right = 50.0 + 6.5 * longest;
        let w = (420.0 + right).max(20.0 + 7.5 * self.title.chars().count() as f64);
        let h = 340.0;
        let (left, top, bottom) = (60.0, 36.0, 50.0);
        let points = || self.series.iter().flat_map(|(_, p)| p.iter());
        let (mut x0, mut x1) =
            points().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (x, _)| (a.min(*x), b.max(*x)));
        if !x0.is_finite() {
            (x0, x1) = (0.0, 1.0);
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        let (y0, y1) = self.y_range.unwrap_or_else(|| {
            let (a, b) = points().filter_map(|(_, y)| *y).fold((0.0f64, 0.0f64), |(a, b), y| (a.min(y), b.max(y)));
            (a, if b > a { b } else { a + 1.0 })
        });
        let px = |x: f64| left + (x - x0) / (x1 - x0) * (w - left - right);
        let py = |y: f64| top + (1.0 - (y - y0) / (y1 - y0)) * (h - top - bottom);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">"
        );
        let _ = writeln!(s, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
        let _ = writeln!(s, "<text x=\"10\" y=\"20\" {FONT} font-size=\"14\">{}</text>", escape(self.title));
        // axes, y ticks at 5 even steps, x ticks at each distinct x
        let _ = writeln!(
            s,
            "<path d=\"M{l} {t} V{b} H{r}\" stroke=\"black\" fill=\"none\"/>",
            l = num(left),
            t = num(top),
            b = num(h - bottom),
            r = num(w - right)
        );
        for i in 0..=5 {
            let y = y0 + (y1 - y0) * i as f64 / 5.0;
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" {FONT} font-size=\"10\" text-anchor=\"end\">{}</text><path d=\"M{} {y} H{}\" stroke=\"#eee\"/>",
                num(left - 4.0),
                num(py(y) + 3.0),
                num(y),
                num(left),
                num(w - right),
                y = num(py(y))
            );
        }
        let mut xs: Vec<f64> = points().map(|(x, _)| *x).collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        for x in xs {
            let label = match self.x_ticks {
                Some(t) => t.get(x as usize).cloned().unwrap_or_default(),
                None => num(x),
            };
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" {FONT} font-size=\"10\" text-anchor=\"middle\">{}</text>",
                num(px(x)),
                num(h - bottom + 14.0),
                escape(&label)
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" {FONT} font-size=\"12\" text-anchor=\"middle\">{}</text>",
            num((left + w - right) / 2.0),
            num(h - 12.0),
            escape(self.x_label)
        );
        let _ = writeln!(
            s,
            "<text x=\"14\" y=\"{y}\" {FONT} font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 14 {y})\">{}</text>",
            escape(self.y_label),
            y = num((top + h - bottom) / 2.0)
        );
        for (i, (name, pts)) in self.series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let mut d = String::new();
            let mut pen_up = true;
            for (x, y) in pts {
                match y {
                    Some(y) => {
                        let _ = write!(d, "{}{} {} ", if pen_up { "M" } else { "L" }, num(px(*x)), num(py(*y)));
                        pen_up = false;
                        let _ = writeln!(
                            s,
                            "<circle cx=\"{}\" cy=\"{}\" r=\"3\" fill=\"{colour}\"><title>{}: {} → {}</title></circle>",
                            num(px(*x)),
                            num(py(*y)),
                            escape(name),
                            num(*x),
                            num(*y)
                        );
                    }
                    None => pen_up = true,
                }
            }
            let _ = writeln!(s, "<path d=\"{}\" stroke=\"{colour}\" stroke-width=\"2\" fill=\"none\"/>", d.trim_end());
            let ly = top + 10.0 + 18.0 * i as f64;
            let _ = writeln!(
                s,
                "<path d=\"M{} {ly} h18\" stroke=\"{colour}\" stroke-width=\"2\"/><text x=\"{}\" y=\"{}\" {FONT} font-size=\"11\">{}</text>",
                num(w - right + 10.0),
                num(w - right + 32.0),
                num(ly + 4.0),
                escape(name),
                ly = num(ly)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heatmap_names_its_labels_and_escapes_them() {
        let rows = vec!["a<b".to_string(), "c".to_string()];
        let cols = vec!["x".to_string()];
        let svg = Heatmap { title: "t & u", rows: &rows, cols: &cols, values: &[vec![1.0], vec![-0.5]] }.svg();
        assert!(svg.contains("a&lt;b") && svg.contains("t &amp; u"));
        assert_eq!(svg.matches("<rect x=").count(), 2 + 11, "two cells and the colour scale");
        assert!(svg.contains("rgb(255,60,50)"), "1.0 is full red");
    }

    #[test]
    fn line_chart_leaves_gaps_for_missing_points() {
        let series = vec![("acc".to_string(), vec![(1.0, Some(0.5)), (2.0, None), (3.0, Some(1.0))])];
        let svg = LineChart {
            title: "t",
            x_label: "K",
            y_label: "y",
            series: &series,
            x_ticks: None,
            y_range: Some((0.0, 1.0)),
        }
        .svg();
        assert_eq!(svg.matches("<circle").count(), 2);
        // two pen-downs: the gap splits the line
        let path = svg.lines().find(|l| l.starts_with("<path d=\"M") && l.contains("stroke-width=\"2\" fill")).unwrap();
        assert_eq!(path.matches('M').count(), 2, "{path}");
    }
}
