//! Writing pictures: one drawing code path for PNG and SVG, text from the
//! embedded font, and files that appear whole or not at all. Shared by the
//! attention heatmaps and the roofline chart.
//!
//! plotters' bitmap backend renders into a buffer that the `png` crate
//! encodes, which avoids the older `image` crate (with JPEG and BMP codecs)
//! that plotters' own encoder would bring. Text in the PNG is rasterised by
//! plotters' `ab_glyph` backend from DejaVu Sans, which the `dejavu` crate
//! ships as bytes; the SVG names `sans-serif` and leaves the font to the viewer.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::register_font;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A picture's file format, from its extension.
#[derive(Clone, Copy)]
pub enum Format {
    Png,
    Svg,
}

impl Format {
    /// `.png` or `.svg` (case-insensitive); anything else is an Err naming
    /// `what` is being written and the extension.
    pub fn of(path: &Path, what: &str) -> Result<Self, String> {
        let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
        match ext.as_deref() {
            Some("png") => Ok(Format::Png),
            Some("svg") => Ok(Format::Svg),
            Some(other) => Err(format!(
                "cannot write {what} {}: unsupported extension `.{other}` (use .png or .svg)",
                path.display()
            )),
            None => Err(format!("cannot write {what} {}: no file extension (use .png or .svg)", path.display())),
        }
    }
}

/// Something that draws itself on any plotters backend.
pub trait Drawing {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

/// Renders `picture` at `(width, height)` pixels as the bytes of a file in `format`.
pub fn render(format: Format, (w, h): (u32, u32), picture: &impl Drawing) -> Result<Vec<u8>, String> {
    match format {
        Format::Png => {
            let mut pixels = vec![0u8; w as usize * h as usize * 3];
            {
                let root = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
                picture.draw(&root)?;
                root.present().map_err(|e| e.to_string())?;
            }
            let mut out = Vec::new();
            let mut encoder = png::Encoder::new(&mut out, w, h);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().map_err(|e| format!("PNG encoding failed: {e}"))?;
            writer.write_image_data(&pixels).map_err(|e| format!("PNG encoding failed: {e}"))?;
            writer.finish().map_err(|e| format!("PNG encoding failed: {e}"))?;
            Ok(out)
        }
        Format::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
                picture.draw(&root)?;
                root.present().map_err(|e| e.to_string())?;
            }
            Ok(svg.into_bytes())
        }
    }
}

/// Registers the embedded DejaVu Sans as plotters' `sans-serif` (once per process).
pub fn ensure_font() -> Result<(), String> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .map_err(|_| "the embedded DejaVu Sans font cannot be loaded".to_string())
    })
    .clone()
}

/// Writes `bytes` to a fresh temporary file beside `path`, then renames it over `path`; on any
/// failure the temporary file is removed, so nothing is left behind.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let name = path.file_name().ok_or("the path does not name a file")?.to_string_lossy().into_owned();
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut attempts = 0;
    let (tmp, mut file) = loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        attempts += 1;
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(file) => break (tmp, file),
            Err(e) if e.kind() == ErrorKind::AlreadyExists && attempts < 100 => continue,
            Err(e) => return Err(format!("cannot create a temporary file in {}: {e}", dir.display())),
        }
    };
    let result = file.write_all(bytes).and_then(|()| file.sync_all());
    drop(file);
    match result.and_then(|()| fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e.to_string())
        }
    }
}
