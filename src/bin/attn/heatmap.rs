//! Attention heatmaps: a picture (PNG or SVG) and a text rendering for the terminal.
//!
//! Pictures are drawn with `plotters` on plain drawing areas (rectangles and text, no chart
//! machinery), so the PNG and the SVG come from one code path ([`crate::picture`]).
//!
//! The colour scale is viridis (perceptually uniform, readable with colour-blindness and in grey).
//! NaN weights are drawn as grey cells marked `?`.

use crate::picture::{Drawing, Format, ensure_font, render, write_atomically};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontTransform;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// Largest picture side in pixels; bigger maps are refused rather than allocating gigabytes.
const MAX_SIDE: u32 = 8192;
/// Picture labels longer than this many characters are cut with an ellipsis.
const MAX_PICTURE_LABEL: usize = 16;
/// Width of one terminal cell in characters; column labels get one less, so they stay apart.
const TERM_CELL: usize = 4;
/// Terminal row labels longer than this are cut.
const MAX_TERM_ROW_LABEL: usize = 12;
/// Terminal shading, from weight 0 to weight 1 in steps of 0.25.
const SHADES: [char; 5] = [' ', '░', '▒', '▓', '█'];

/// Draws `weights` (rows × cols, row-major, values in \[0, 1\]) as a picture at `path`:
/// PNG for `.png`, SVG for `.svg` (case-insensitive); any other extension is an Err naming it.
/// Rows are labelled with `row_labels` (output tokens, down the left), columns with `col_labels`
/// (source tokens, across the top), and there is a colour scale (legend bar with tick values 0, 0.5, 1).
/// Writes to a temp file next to `path` then renames it, so a failure leaves no file behind.
pub fn write_heatmap(
    path: &Path,
    weights: &[f32],
    row_labels: &[String],
    col_labels: &[String],
    title: &str,
) -> Result<(), String> {
    let format = Format::of(path, "heatmap")?;
    let fail = |e: String| format!("cannot write heatmap {}: {e}", path.display());
    let (rows, cols) = check_shape(weights, row_labels, col_labels).map_err(fail)?;
    if rows == 0 || cols == 0 {
        return Err(fail("the attention map is empty".into()));
    }
    ensure_font().map_err(fail)?;
    let map = Map { weights, rows, cols, row_labels, col_labels, title };
    let layout = Layout::new(&map).map_err(fail)?;
    let bytes = render(format, (layout.width, layout.height), &Heatmap { map: &map, layout: &layout }).map_err(fail)?;
    write_atomically(path, &bytes).map_err(fail)
}

/// The same matrix as text for a terminal: one line per row, the row label, then one cell per column drawn
/// with Unicode shading characters (' ', '░', '▒', '▓', '█' by weight), with a header line of column labels
/// and a one-line legend. Cells are 4 characters wide; column labels longer than 3 are shortened (`<eos>`
/// becomes `<e>`, `hello` becomes `he…`). NaN cells show `?`. Mismatched lengths give a one-line
/// explanation instead of a map.
pub fn terminal_heatmap(weights: &[f32], row_labels: &[String], col_labels: &[String]) -> String {
    let (rows, cols) = match check_shape(weights, row_labels, col_labels) {
        Ok(shape) => shape,
        Err(e) => return format!("(cannot draw heatmap: {e})\n"),
    };
    if rows == 0 || cols == 0 {
        return "(empty attention map)\n".to_string();
    }
    let row_names: Vec<String> = row_labels.iter().map(|l| fit_label(l, MAX_TERM_ROW_LABEL)).collect();
    let row_width = row_names.iter().map(|l| l.chars().count()).max().unwrap_or(0);

    let mut out = String::new();
    let mut header = " ".repeat(row_width + 2);
    for label in col_labels {
        header.push_str(&center(&fit_label(label, TERM_CELL - 1), TERM_CELL));
    }
    out.push_str(header.trim_end());
    out.push('\n');

    let mut any_nan = false;
    for (name, row) in row_names.iter().zip(weights.chunks_exact(cols)) {
        out.push_str(&format!("{name:>row_width$} │"));
        for &w in row {
            if w.is_nan() {
                any_nan = true;
                out.push_str(&center("?", TERM_CELL));
            } else {
                let shade = SHADES[(w.clamp(0.0, 1.0) * 4.0).round() as usize];
                out.extend(std::iter::repeat_n(shade, TERM_CELL));
            }
        }
        out.push_str("│\n");
    }

    out.push_str(&" ".repeat(row_width + 2));
    out.push_str("scale: ' '=0 ░=0.25 ▒=0.5 ▓=0.75 █=1");
    if any_nan {
        out.push_str(" ?=NaN");
    }
    out.push('\n');
    out
}

/// Checks that the weights fill the labelled matrix; returns (rows, cols).
fn check_shape(weights: &[f32], row_labels: &[String], col_labels: &[String]) -> Result<(usize, usize), String> {
    let (rows, cols) = (row_labels.len(), col_labels.len());
    match rows.checked_mul(cols) {
        Some(n) if n == weights.len() => Ok((rows, cols)),
        _ => Err(format!(
            "{} weights do not fill {rows} row labels × {cols} column labels (expected {})",
            weights.len(),
            rows.saturating_mul(cols)
        )),
    }
}

/// Shortens `label` to at most `width` characters: `<eos>` keeps its brackets (`<e>`), other
/// labels end with `…`.
fn fit_label(label: &str, width: usize) -> String {
    let n = label.chars().count();
    if n <= width {
        return label.to_string();
    }
    if width >= 3 && label.starts_with('<') && label.ends_with('>') {
        let inner: String = label.chars().skip(1).take(width - 2).collect();
        return format!("<{inner}>");
    }
    let mut cut: String = label.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Centres `s` in a field of `width` characters (extra space goes to the right).
fn center(s: &str, width: usize) -> String {
    let pad = width.saturating_sub(s.chars().count());
    format!("{}{s}{}", " ".repeat(pad / 2), " ".repeat(pad - pad / 2))
}

struct Map<'a> {
    weights: &'a [f32],
    rows: usize,
    cols: usize,
    row_labels: &'a [String],
    col_labels: &'a [String],
    title: &'a str,
}

/// Pixel positions of everything in the picture, measured with the embedded font.
struct Layout {
    width: u32,
    height: u32,
    cell: i32,
    /// Top-left corner of the grid.
    grid: (i32, i32),
    label_size: f64,
    title_size: f64,
    title_y: i32,
    /// Column labels read bottom-to-top when they are wider than a cell.
    rotate_cols: bool,
    /// Draw every n-th row / column label when cells are smaller than the text.
    row_step: usize,
    col_step: usize,
    /// Centre lines of the axis captions: x of the rotated row caption, y of the column caption.
    row_caption_x: i32,
    col_caption_y: i32,
    /// Legend bar: left x, top y, width, height.
    bar: (i32, i32, i32, i32),
}

/// Axis captions are a little smaller than the labels, but not below 11 px.
fn caption_size(label_size: f64) -> f64 {
    (label_size * 0.85).max(11.0)
}

const ROW_CAPTION: &str = "output tokens";
const COL_CAPTION: &str = "source tokens";

impl Layout {
    fn new(map: &Map) -> Result<Self, String> {
        let longest = map.rows.max(map.cols) as i32;
        let cell = (640 / longest).clamp(4, 44);
        let label_size = (f64::from(cell) * 0.45).clamp(10.0, 17.0);
        let title_size = 20.0;
        let caption_size = caption_size(label_size);
        let pad = 12;

        let measure = |text: &str, size: f64| -> Result<(i32, i32), String> {
            let (w, h) = FontDesc::new(FontFamily::SansSerif, size, FontStyle::Normal)
                .box_size(text)
                .map_err(|e| format!("cannot measure text: {e}"))?;
            Ok((w as i32, h as i32))
        };
        let widest = |labels: &[String]| -> Result<i32, String> {
            labels.iter().try_fold(0, |m, l| Ok(m.max(measure(&fit_label(l, MAX_PICTURE_LABEL), label_size)?.0)))
        };
        let (_, text_h) = measure("0", label_size)?;
        let line = text_h + 4;
        let row_label_w = widest(map.row_labels)?;
        let col_label_w = widest(map.col_labels)?;
        let rotate_cols = col_label_w > cell - 4;
        let col_band = if rotate_cols { col_label_w + 8 } else { line + 4 };
        let row_step = (line as usize).div_ceil(cell as usize).max(1);
        let col_step = if rotate_cols { row_step } else { ((col_label_w + 6) as usize).div_ceil(cell as usize).max(1) };

        let (title_w, title_h) = if map.title.is_empty() { (0, 0) } else { measure(map.title, title_size)? };
        let caption_h = measure(COL_CAPTION, caption_size)?.1 + 6;
        let (tick_w, _) = measure("0.5", label_size)?;

        let title_y = pad;
        let col_caption_y = pad + title_h + if title_h > 0 { 10 } else { 0 } + caption_h / 2;
        let grid_y = col_caption_y + caption_h / 2 + col_band;
        let row_caption_x = pad + caption_h / 2;
        let grid_x = pad + caption_h + row_label_w + 8;
        let grid_w = cell * map.cols as i32;
        let grid_h = cell * map.rows as i32;
        let bar_h = grid_h.max(120);
        let bar = (grid_x + grid_w + 24, grid_y, 16, bar_h);
        let width = (bar.0 + bar.2 + 6 + tick_w + pad).max(title_w + 2 * pad);
        let height = grid_y + grid_h.max(bar_h) + pad + text_h / 2;

        let (width, height) = (width as u32, height as u32);
        if width > MAX_SIDE || height > MAX_SIDE {
            return Err(format!(
                "a {}×{} map would need a {width}×{height} picture (limit {MAX_SIDE} pixels a side)",
                map.rows, map.cols
            ));
        }
        Ok(Layout {
            width,
            height,
            cell,
            grid: (grid_x, grid_y),
            label_size,
            title_size,
            title_y,
            rotate_cols,
            row_step,
            col_step,
            row_caption_x,
            col_caption_y,
            bar,
        })
    }
}

/// Matplotlib's viridis at 0, 1/8, …, 1 (plotters' `colormaps` feature does not build alone in 0.3.7).
const VIRIDIS: [(u8, u8, u8); 9] = [
    (68, 1, 84),
    (72, 40, 120),
    (62, 73, 137),
    (49, 104, 142),
    (38, 130, 142),
    (31, 158, 137),
    (53, 183, 121),
    (110, 206, 88),
    (253, 231, 37),
];

/// Viridis colour for a weight, interpolated between the stops; values outside \[0, 1\] are clamped.
fn colour(w: f32) -> RGBColor {
    let x = w.clamp(0.0, 1.0) * (VIRIDIS.len() - 1) as f32;
    let i = (x.floor() as usize).min(VIRIDIS.len() - 2);
    let t = x - i as f32;
    let mix = |a: u8, b: u8| (f32::from(a) + (f32::from(b) - f32::from(a)) * t).round() as u8;
    let ((r0, g0, b0), (r1, g1, b1)) = (VIRIDIS[i], VIRIDIS[i + 1]);
    RGBColor(mix(r0, r1), mix(g0, g1), mix(b0, b1))
}

/// One map at its layout, drawn on any plotters backend.
struct Heatmap<'a> {
    map: &'a Map<'a>,
    layout: &'a Layout,
}

impl Drawing for Heatmap<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        draw(root, self.map, self.layout)
    }
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, map: &Map, layout: &Layout) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let font = |size: f64| FontDesc::new(FontFamily::SansSerif, size, FontStyle::Normal);
    let grey = RGBColor(90, 90, 90);
    let label = font(layout.label_size).color(&BLACK);
    let caption = font(caption_size(layout.label_size)).color(&grey);
    let (gx, gy) = layout.grid;
    let cell = layout.cell;

    root.fill(&WHITE).map_err(err)?;
    if !map.title.is_empty() {
        let style = font(layout.title_size).color(&BLACK).pos(Pos::new(HPos::Center, VPos::Top));
        root.draw(&Text::new(map.title, (layout.width as i32 / 2, layout.title_y), style)).map_err(err)?;
    }

    // Cells.
    for (r, row) in map.weights.chunks_exact(map.cols).enumerate() {
        for (c, &w) in row.iter().enumerate() {
            let (x, y) = (gx + c as i32 * cell, gy + r as i32 * cell);
            let fill = if w.is_nan() { RGBColor(200, 200, 200) } else { colour(w) };
            root.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], fill.filled())).map_err(err)?;
            if w.is_nan() {
                let mark = label.pos(Pos::new(HPos::Center, VPos::Center));
                root.draw(&Text::new("?", (x + cell / 2, y + cell / 2), mark)).map_err(err)?;
            }
        }
    }
    let grid_end = (gx + cell * map.cols as i32, gy + cell * map.rows as i32);
    root.draw(&Rectangle::new([(gx, gy), grid_end], grey.stroke_width(1))).map_err(err)?;

    // Row labels (output tokens) down the left, right-aligned against the grid.
    let row_style = label.pos(Pos::new(HPos::Right, VPos::Center));
    for (r, text) in map.row_labels.iter().enumerate().step_by(layout.row_step) {
        let y = gy + r as i32 * cell + cell / 2;
        root.draw(&Text::new(fit_label(text, MAX_PICTURE_LABEL), (gx - 6, y), row_style.clone())).map_err(err)?;
    }
    // Column labels (source tokens) across the top.
    let col_style = if layout.rotate_cols {
        label.pos(Pos::new(HPos::Left, VPos::Center)).transform(FontTransform::Rotate270)
    } else {
        label.pos(Pos::new(HPos::Center, VPos::Bottom))
    };
    for (c, text) in map.col_labels.iter().enumerate().step_by(layout.col_step) {
        let x = gx + c as i32 * cell + cell / 2;
        root.draw(&Text::new(fit_label(text, MAX_PICTURE_LABEL), (x, gy - 5), col_style.clone())).map_err(err)?;
    }
    // Axis captions.
    let col_caption = caption.pos(Pos::new(HPos::Center, VPos::Center));
    root.draw(&Text::new(COL_CAPTION, ((gx + grid_end.0) / 2, layout.col_caption_y), col_caption)).map_err(err)?;
    let row_caption = caption.pos(Pos::new(HPos::Center, VPos::Center)).transform(FontTransform::Rotate270);
    root.draw(&Text::new(ROW_CAPTION, (layout.row_caption_x, (gy + grid_end.1) / 2), row_caption)).map_err(err)?;

    // Colour scale: 1 at the top, 0 at the bottom, one band per pixel row.
    let (bx, by, bw, bh) = layout.bar;
    for i in 0..bh {
        let w = 1.0 - (i as f32 + 0.5) / bh as f32;
        root.draw(&Rectangle::new([(bx, by + i), (bx + bw, by + i + 1)], colour(w).filled())).map_err(err)?;
    }
    root.draw(&Rectangle::new([(bx, by), (bx + bw, by + bh)], grey.stroke_width(1))).map_err(err)?;
    let tick_style = label.pos(Pos::new(HPos::Left, VPos::Center));
    for (value, text) in [(0.0, "0"), (0.5, "0.5"), (1.0, "1")] {
        let y = by + ((1.0 - value) * f64::from(bh)).round() as i32;
        root.draw(&PathElement::new(vec![(bx + bw, y), (bx + bw + 4, y)], grey.stroke_width(1))).map_err(err)?;
        root.draw(&Text::new(text, (bx + bw + 6, y), tick_style.clone())).map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::PathBuf;

    fn labels(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// The 7×10 reversal example: rows are output tokens, columns source tokens with padding.
    fn example() -> (Vec<f32>, Vec<String>, Vec<String>) {
        let rows = labels(&["9", "5", "1", "4", "1", "3", "<eos>"]);
        let cols = labels(&["3", "1", "4", "1", "5", "9", "<eos>", "<pad>", "<pad>", "<pad>"]);
        let mut w = vec![0.0f32; 70];
        for r in 0..7 {
            let target = if r < 6 { 5 - r } else { 6 };
            w[r * 10 + target] = 0.8;
            w[r * 10 + (target + 1) % 7] = 0.2;
        }
        w[15] = f32::NAN;
        (w, rows, cols)
    }

    /// A fresh, empty directory under the system temp dir for one test.
    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("attn-heatmap-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn terminal_map_has_header_rows_and_legend() {
        let (w, rows, cols) = example();
        let text = terminal_heatmap(&w, &rows, &cols);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + 7 + 1, "{text}");
        assert!(lines[0].contains("<e>") && lines[0].contains("<p>"), "{text}");
        assert!(lines[1].trim_start().starts_with("9 │"), "{text}");
        assert!(lines[7].starts_with("<eos> │"), "{text}");
        assert!(lines[2].contains('?'), "NaN cell is marked: {text}");
        assert!(lines[1].contains('▓') || lines[1].contains('█'), "{text}");
        assert!(lines[8].contains("scale") && lines[8].contains("?=NaN"), "{text}");
        // Every grid line has the same width, so the columns line up.
        let widths: Vec<usize> = lines[1..8].iter().map(|l| l.chars().count()).collect();
        assert!(widths.iter().all(|&n| n == widths[0]), "{text}");
        assert_eq!(widths[0], "<eos> │".chars().count() + 10 * TERM_CELL + 1);
    }

    #[test]
    fn terminal_map_explains_mismatches_and_empty_maps() {
        let (w, rows, cols) = example();
        let text = terminal_heatmap(&w[1..], &rows, &cols);
        assert!(text.contains("69 weights") && text.contains("expected 70"), "{text}");
        assert!(terminal_heatmap(&w, &rows[1..], &cols).contains("cannot draw"));
        assert_eq!(terminal_heatmap(&[], &[], &[]), "(empty attention map)\n");
    }

    #[test]
    fn labels_are_shortened_sensibly() {
        assert_eq!(fit_label("<eos>", 3), "<e>");
        assert_eq!(fit_label("hello", 3), "he…");
        assert_eq!(fit_label("9", 3), "9");
        assert_eq!(fit_label("<pad>", 5), "<pad>");
        assert_eq!(center("9", 4), " 9  ");
    }

    #[test]
    fn colour_scale_ends_at_viridis_ends() {
        assert_eq!(colour(0.0), RGBColor(68, 1, 84));
        assert_eq!(colour(1.0), RGBColor(253, 231, 37));
        assert_eq!(colour(2.0), colour(1.0));
        assert_eq!(colour(-1.0), colour(0.0));
    }

    #[test]
    fn writes_png_and_svg_without_leftovers() {
        let dir = scratch_dir("write");
        let (w, rows, cols) = example();
        let png = dir.join("heat.PNG");
        let svg = dir.join("heat.svg");
        write_heatmap(&png, &w, &rows, &cols, "attention: 3 1 4 1 5 9").unwrap();
        write_heatmap(&svg, &w, &rows, &cols, "attention: 3 1 4 1 5 9").unwrap();
        let png_bytes = fs::read(&png).unwrap();
        assert!(png_bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
        let svg_text = fs::read_to_string(&svg).unwrap();
        assert!(svg_text.starts_with("<svg") && svg_text.trim_end().ends_with("</svg>"));
        for needle in ["&lt;eos&gt;", "&lt;pad&gt;", "0.5", "source tokens", "output tokens"] {
            assert!(svg_text.contains(needle), "SVG lacks {needle}");
        }
        assert_eq!(entries(&dir), ["heat.PNG", "heat.svg"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failures_leave_no_file() {
        let dir = scratch_dir("fail");
        let (w, rows, cols) = example();
        let err = write_heatmap(&dir.join("heat.jpg"), &w, &rows, &cols, "").unwrap_err();
        assert!(err.contains(".jpg"), "{err}");
        let err = write_heatmap(&dir.join("heat"), &w, &rows, &cols, "").unwrap_err();
        assert!(err.contains("extension"), "{err}");
        let err = write_heatmap(&dir.join("heat.png"), &w[..69], &rows, &cols, "").unwrap_err();
        assert!(err.contains("69 weights"), "{err}");
        let err = write_heatmap(&dir.join("heat.svg"), &[], &[], &[], "").unwrap_err();
        assert!(err.contains("empty"), "{err}");
        // Renaming onto a directory fails after the temporary file was written.
        fs::create_dir(dir.join("taken.png")).unwrap();
        assert!(write_heatmap(&dir.join("taken.png"), &w, &rows, &cols, "").is_err());
        assert_eq!(entries(&dir), ["taken.png"]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
