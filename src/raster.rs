//! SVG figures rendered to PNG (resvg), with text set in the bundled DejaVu
//! Sans so that the result does not depend on the machine's fonts.

use crate::diagnostic::{Error, Result};
use std::sync::Arc;

/// DejaVu Sans (Bitstream Vera licence, assets/fonts/DejaVu-LICENSE.txt).
const FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

/// Pixels per SVG unit: PNGs are drawn at twice the SVG's size, sharp on
/// high-density screens and in papers.
pub const SCALE: f32 = 2.0;

/// The PNG of an SVG document.
pub fn png(svg: &str) -> Result<Vec<u8>> {
    let mut fonts = resvg::usvg::fontdb::Database::new();
    fonts.load_font_data(FONT.to_vec());
    // every family the figures name (Helvetica, Arial, sans-serif) falls back to it
    fonts.set_sans_serif_family("DejaVu Sans");
    let options =
        resvg::usvg::Options { font_family: "DejaVu Sans".into(), fontdb: Arc::new(fonts), ..Default::default() };
    let tree = resvg::usvg::Tree::from_str(svg, &options)
        .map_err(|e| Error::internal(format!("a figure is not valid SVG: {e}")))?;
    let size = tree.size();
    let (w, h) = ((size.width() * SCALE).ceil() as u32, (size.height() * SCALE).ceil() as u32);
    let mut pixmap = resvg::tiny_skia::Pixmap::new(w.max(1), h.max(1)).ok_or_else(|| {
        Error::usage(format!("a figure of {w}×{h} pixels is too large to render as PNG; use --format svg"))
    })?;
    resvg::render(&tree, resvg::tiny_skia::Transform::from_scale(SCALE, SCALE), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| Error::internal(format!("PNG encoding: {e}")))
}
