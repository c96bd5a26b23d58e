//! The roofline chart of an `attn bench` run (Williams, Waterman and
//! Patterson, 2009): arithmetic intensity (FLOP per byte read) across,
//! GFLOP/s up, both on log axes. The roof is `min(peak, bandwidth ·
//! intensity)`: a slanted line where memory bounds a kernel, a flat one
//! where the FMA units do, meeting at the ridge point `peak / bandwidth`.
//! Each workload is one labelled point; its height under the roof above it
//! is the share of the machine it leaves unused.

use crate::picture::{Drawing, Format, ensure_font, render, write_atomically};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// One workload's place on the chart.
pub struct Point {
    pub name: String,
    /// FLOP per byte that must be read.
    pub intensity: f64,
    pub gflops: f64,
}

/// The measured roofs.
#[derive(Clone, Copy)]
pub struct Roofs {
    pub fma_gflops: f64,
    pub read_gbs: f64,
}

const SIZE: (u32, u32) = (900, 600);

/// Checks that `path` names a picture format, before any time is spent.
pub fn check_path(path: &Path) -> Result<(), String> {
    Format::of(path, "roofline chart").map(|_| ())
}

/// Draws the chart to `path` (`.png` or `.svg`), whole or not at all.
pub fn write_chart(path: &Path, roofs: Roofs, points: &[Point], title: &str) -> Result<(), String> {
    let format = Format::of(path, "roofline chart")?;
    let fail = |e: String| format!("cannot write roofline chart {}: {e}", path.display());
    let finite = |x: f64| x.is_finite() && x > 0.0;
    if !finite(roofs.fma_gflops) || !finite(roofs.read_gbs) {
        return Err(fail("the measured roofs are not positive".into()));
    }
    ensure_font().map_err(fail)?;
    let points: Vec<&Point> = points.iter().filter(|p| finite(p.intensity) && finite(p.gflops)).collect();
    let bytes = render(format, SIZE, &Chart { roofs, points: &points, title }).map_err(fail)?;
    write_atomically(path, &bytes).map_err(fail)
}

struct Chart<'a> {
    roofs: Roofs,
    points: &'a [&'a Point],
    title: &'a str,
}

/// The decade at or below `x`, and the one at or above.
fn decades(lo: f64, hi: f64) -> (f64, f64) {
    (10f64.powf(lo.log10().floor()), 10f64.powf(hi.log10().ceil()))
}

impl Drawing for Chart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        let Roofs { fma_gflops: peak, read_gbs: bw } = self.roofs;
        let ridge = peak / bw;
        let xs = self.points.iter().map(|p| p.intensity).chain([ridge]);
        let (x_lo, x_hi) = xs.fold((f64::INFINITY, 0.0f64), |(lo, hi), x| (lo.min(x / 3.0), hi.max(x * 3.0)));
        let (x_lo, x_hi) = decades(x_lo, x_hi);
        let y_lo = self.points.iter().map(|p| p.gflops).fold(bw * x_lo, f64::min) / 2.0;
        let (y_lo, y_hi) = decades(y_lo, peak * 2.0);

        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(root)
            .caption(self.title, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(46)
            .y_label_area_size(64)
            .build_cartesian_2d((x_lo..x_hi).log_scale(), (y_lo..y_hi).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("arithmetic intensity (FLOP per byte read)")
            .y_desc("GFLOP/s")
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .x_label_formatter(&|x| format!("{x}"))
            .y_label_formatter(&|y| format!("{y}"))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(err)?;

        let roof_colour = RGBColor(180, 40, 40);
        let roof = vec![(x_lo, bw * x_lo), (ridge, peak), (x_hi, peak)];
        chart.draw_series(std::iter::once(PathElement::new(roof, roof_colour.stroke_width(3)))).map_err(err)?;
        let label = |text: &str, at: (f64, f64), pos: Pos| {
            Text::new(text.to_string(), at, ("sans-serif", 15).into_font().color(&roof_colour).pos(pos))
        };
        let peak_label = (format!("FMA peak {peak:.0} GFLOP/s"), (x_hi / 1.15, peak * 1.08), HPos::Right);
        let read_label = (format!("read {bw:.1} GB/s"), (x_lo * 1.2, bw * x_lo * 3.0), HPos::Left);
        chart
            .draw_series([&peak_label, &read_label].map(|(text, at, hp)| label(text, *at, Pos::new(*hp, VPos::Bottom))))
            .map_err(err)?;

        let dot = RGBColor(30, 90, 170);
        // Each label takes the first of eight places beside its point (right,
        // then left; above, below, then a line further out) that overlaps
        // nothing drawn (the roofs' labels, every point, earlier labels), or
        // else the one that overlaps least. Text width is estimated at 8 px
        // a character.
        let mut taken: Vec<[i32; 4]> = [&peak_label, &read_label]
            .map(|(text, at, hp)| {
                let ((x, y), w) = (chart.backend_coord(at), 8 * text.chars().count() as i32);
                let x0 = if matches!(hp, HPos::Left) { x } else { x - w };
                [x0, y - 17, x0 + w, y]
            })
            .into_iter()
            .chain(self.points.iter().map(|p| {
                let (x, y) = chart.backend_coord(&(p.intensity, p.gflops));
                [x - 6, y - 6, x + 6, y + 6]
            }))
            .collect();
        for p in self.points {
            let (px, py) = chart.backend_coord(&(p.intensity, p.gflops));
            let (w, h) = (8 * p.name.chars().count() as i32, 16);
            let places: Vec<(i32, i32, HPos)> = [(6, HPos::Left), (-6, HPos::Right)]
                .into_iter()
                .flat_map(|(dx, hp)| [-5 - h, 5, -5 - 2 * h, 5 + h].map(|top| (dx, top, hp)))
                .collect();
            let boxed = |&(dx, top, hp): &(i32, i32, HPos)| {
                let x0 = if matches!(hp, HPos::Left) { px + dx } else { px + dx - w };
                [x0, py + top, x0 + w, py + top + h]
            };
            let overlap = |a: [i32; 4], b: &[i32; 4]| {
                (a[2].min(b[2]) - a[0].max(b[0])).max(0) * (a[3].min(b[3]) - a[1].max(b[1])).max(0)
            };
            let cost = |place: &(i32, i32, HPos)| taken.iter().map(|t| overlap(boxed(place), t)).sum::<i32>();
            let best = places.iter().min_by_key(|place| cost(place)).copied().unwrap_or((6, -5 - h, HPos::Left));
            taken.push(boxed(&best));
            let (dx, top, hp) = best;
            let style = ("sans-serif", 14).into_font().color(&BLACK).pos(Pos::new(hp, VPos::Top));
            let point = EmptyElement::at((p.intensity, p.gflops))
                + Circle::new((0, 0), 5, dot.filled())
                + Text::new(p.name.clone(), (dx, top), style);
            chart.draw_series(std::iter::once(point)).map_err(err)?;
        }
        Ok(())
    }
}
