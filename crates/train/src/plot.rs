//! The run's figures, redrawn after each epoch: `loss.{png,svg}` (train and eval loss),
//! `accuracy.{png,svg}` (train and eval accuracy, for class targets) and one
//! `metric-LABEL.{png,svg}` per metric of the run (`metric-f1-average-macro.svg`), per
//! epoch, like the seed's plots.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ember_core::{Error, IoContext, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::learner::EpochRecord;

/// The printable-ASCII subset of DejaVu Sans (license in assets/), for labels in PNGs.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans-ascii.ttf");

fn register_font() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::input("plot: the embedded font could not be loaded"))
    }
}

type Series<'a> = (&'a str, Vec<(f64, f64)>, RGBColor);

fn series(history: &[EpochRecord], f: fn(&EpochRecord) -> f64) -> Vec<(f64, f64)> {
    history.iter().map(|r| (r.epoch as f64, f(r))).filter(|(_, y)| y.is_finite()).collect()
}

/// Draws both figures, as PNG and SVG, into `dir`.
pub fn draw(dir: &Path, history: &[EpochRecord]) -> Result<()> {
    if history.is_empty() {
        return Ok(());
    }
    register_font()?;
    let loss =
        [("train loss", series(history, |r| r.train_loss), BLUE), ("eval loss", series(history, |r| r.eval_loss), RED)];
    let acc = [
        ("train acc", series(history, |r| r.train_acc), MAGENTA),
        ("eval acc", series(history, |r| r.eval_acc), GREEN),
    ];
    let epochs = history.last().map_or(1, |r| r.epoch);
    // One figure per metric of the run: `metric-f1-average-macro.png` for f1[average=macro].
    let labels: Vec<String> =
        history.last().map(|r| r.metrics.iter().map(|(l, _)| l.clone()).collect()).unwrap_or_default();
    let metric_figures: Vec<(String, [Series; 1], String)> = labels
        .iter()
        .map(|label| {
            let points = history
                .iter()
                .filter_map(|r| r.metrics.iter().find(|(l, _)| l == label).map(|(_, v)| (r.epoch as f64, *v)))
                .filter(|(_, y)| y.is_finite())
                .collect();
            (format!("metric-{}", file_stem(label)), [("eval", points, GREEN)], label.clone())
        })
        .collect();
    let mut figures: Vec<(String, &[Series], &str)> =
        vec![("loss".into(), &loss[..], "loss"), ("accuracy".into(), &acc[..], "accuracy")];
    figures.extend(metric_figures.iter().map(|(f, s, l)| (f.clone(), &s[..], l.as_str())));
    for (name, data, label) in figures {
        if data.iter().all(|(_, s, _)| s.is_empty()) {
            continue;
        }
        let svg = dir.join(format!("{name}.svg"));
        let png = dir.join(format!("{name}.png"));
        // Drawn in memory, then each file written atomically: a failed write (a full
        // disk) is a plain error naming the file and leaves no temporary behind.
        let (w, h) = (640u32, 420u32);
        let mut text = String::new();
        {
            let root = SVGBackend::with_string(&mut text, (w, h)).into_drawing_area();
            chart(&root, data, label, epochs).map_err(|e| Error::input(format!("{}: {e}", svg.display())))?;
            root.present().map_err(|e| Error::input(format!("{}: {e}", svg.display())))?;
        }
        let mut rgb = vec![0u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
            chart(&root, data, label, epochs).map_err(|e| Error::input(format!("{}: {e}", png.display())))?;
            root.present().map_err(|e| Error::input(format!("{}: {e}", png.display())))?;
        }
        let encoded =
            encode_png(&rgb, w, h).map_err(|e| Error::input(format!("{}: cannot encode: {e}", png.display())))?;
        for (dest, bytes) in [(&svg, text.as_bytes()), (&png, &encoded[..])] {
            crate::checkpoint::write_file_atomic(dest, bytes).at(dest, "write")?;
        }
    }
    Ok(())
}

/// A metric label as a file name: `f1[average=macro]` → `f1-average-macro`.
fn file_stem(label: &str) -> String {
    let mut out = String::new();
    for c in label.chars() {
        match c {
            c if c.is_ascii_alphanumeric() || c == '_' => out.push(c),
            ']' => {}
            _ if out.ends_with('-') => {}
            _ => out.push('-'),
        }
    }
    out.trim_end_matches('-').to_string()
}

/// An 8-bit RGB image as PNG bytes.
fn encode_png(rgb: &[u8], w: u32, h: u32) -> std::result::Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header()?;
        writer.write_image_data(rgb)?;
    }
    Ok(out)
}

fn chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    data: &[Series],
    label: &str,
    epochs: usize,
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let ys: Vec<f64> = data.iter().flat_map(|(_, s, _)| s.iter().map(|p| p.1)).collect();
    let (mut lo, mut hi) = ys.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &y| (a.min(y), b.max(y)));
    if lo == hi {
        lo -= 0.5;
        hi += 0.5;
    }
    let pad = (hi - lo) * 0.05;
    let mut c = ChartBuilder::on(root)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(1f64..(epochs.max(2) as f64), (lo - pad)..(hi + pad))
        .map_err(|e| e.to_string())?;
    c.configure_mesh()
        .x_labels(epochs.clamp(2, 12))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .x_desc("epoch")
        .y_desc(label)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())?;
    for (name, points, color) in data {
        if points.is_empty() {
            continue;
        }
        let color = *color;
        c.draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        c.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(|e| e.to_string())?;
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// One line of a [`figure`].
#[derive(Clone, Debug)]
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Draw a dot at every point (paths of iterates).
    pub markers: bool,
    /// A thin grey background line without a legend entry (contours, the function).
    pub background: bool,
}

impl Line {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Line { name: name.into(), points, markers: false, background: false }
    }

    pub fn with_markers(mut self) -> Self {
        self.markers = true;
        self
    }

    pub fn background(mut self) -> Self {
        self.background = true;
        self
    }
}

const PALETTE: [RGBColor; 6] = [BLUE, RED, GREEN, MAGENTA, RGBColor(230, 140, 0), CYAN];

/// Draws `lines` into `{stem}.png` and `{stem}.svg`, with the given axis labels.
pub fn figure(stem: &Path, x_desc: &str, y_desc: &str, lines: &[Line]) -> Result<()> {
    register_font()?;
    if let Some(dir) = stem.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).at(dir, "create")?;
    }
    let pts: Vec<(f64, f64)> =
        lines.iter().flat_map(|l| l.points.iter().copied()).filter(|p| p.0.is_finite() && p.1.is_finite()).collect();
    if pts.is_empty() {
        return Err(Error::input(format!("{}: nothing to plot", stem.display())));
    }
    let range = |f: fn(&(f64, f64)) -> f64| {
        let (lo, hi) = pts.iter().map(f).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
        let pad = if hi > lo { (hi - lo) * 0.05 } else { 0.5 };
        (lo - pad)..(hi + pad)
    };
    let (xr, yr) = (range(|p| p.0), range(|p| p.1));
    let draw = |root: DrawingArea<_, Shift>| -> std::result::Result<(), String> {
        general(&root, xr.clone(), yr.clone(), x_desc, y_desc, lines)
    };
    // Appended, not `with_extension`: a stem such as `eta0.2` has no extension.
    let svg = PathBuf::from(format!("{}.svg", stem.display()));
    let png = PathBuf::from(format!("{}.png", stem.display()));
    draw(SVGBackend::new(&svg, (640, 480)).into_drawing_area())
        .map_err(|e| Error::input(format!("{}: {e}", svg.display())))?;
    let bitmap = BitMapBackend::new(&png, (640, 480)).into_drawing_area();
    general(&bitmap, xr, yr, x_desc, y_desc, lines).map_err(|e| Error::input(format!("{}: {e}", png.display())))?;
    bitmap.present().map_err(|e| Error::input(format!("{}: {e}", png.display())))?;
    Ok(())
}

fn general<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    xr: std::ops::Range<f64>,
    yr: std::ops::Range<f64>,
    x_desc: &str,
    y_desc: &str,
    lines: &[Line],
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut c = ChartBuilder::on(root)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(xr, yr)
        .map_err(|e| e.to_string())?;
    c.configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())?;
    let mut color = 0;
    for line in lines {
        let finite: Vec<(f64, f64)> =
            line.points.iter().copied().filter(|p| p.0.is_finite() && p.1.is_finite()).collect();
        if line.background {
            c.draw_series(LineSeries::new(finite, RGBColor(170, 170, 170).stroke_width(1)))
                .map_err(|e| e.to_string())?;
            continue;
        }
        let col = PALETTE[color % PALETTE.len()];
        color += 1;
        c.draw_series(LineSeries::new(finite.clone(), col.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(line.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(2)));
        if line.markers {
            c.draw_series(finite.iter().map(|&p| Circle::new(p, 3, col.filled()))).map_err(|e| e.to_string())?;
        }
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}
