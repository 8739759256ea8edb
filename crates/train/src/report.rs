//! `report.html`: one self-contained page per run with the run's config, its data
//! source, the final and best metrics, the metric curves (inline SVG), for classifiers
//! the confusion matrix and per-class precision, recall and F1, the time per phase and
//! the checkpoints.
//!
//! The page has no scripts, fonts, images or style sheets of its own: CSS and SVG are
//! inline, so it opens offline and can be mailed or attached as one file. Its
//! Content-Security-Policy (`default-src 'none'`) also keeps the browser from loading
//! anything else. All text from the run (names, config, data source) is HTML-escaped.
//! [`render`] takes plain data ([`ReportData`]), so it needs no `Learner`.

use std::fmt::Write as _;

/// Everything the report shows, as plain data.
pub struct ReportData<'a> {
    /// The run directory's name: the page title.
    pub title: &'a str,
    /// When the report was written (any date/time string).
    pub generated: &'a str,
    /// The run config as pretty JSON, if known.
    pub config_json: Option<&'a str>,
    /// Where the data came from (`Summary::data`).
    pub data_source: &'a str,
    /// Column names of the history ("epoch","train_loss",...,"lr","seconds") and rows (NaN = missing).
    pub columns: &'a [String],
    pub rows: &'a [Vec<f64>],
    /// (metric column, its best value, epoch) for the best metric.
    pub best: Option<(&'a str, f64, usize)>,
    /// Confusion matrix counts `[true][pred]` and class names (may be empty -> "0", "1", ...).
    pub confusion: Option<(&'a [Vec<u64>], &'a [String])>,
    /// (phase name, mean seconds per epoch).
    pub phases: &'a [(String, f64)],
    /// (file name, epoch if known, bytes).
    pub checkpoints: &'a [(String, Option<usize>, u64)],
}

/// Writing into a `String` cannot fail.
macro_rules! w {
    ($dst:expr, $($arg:tt)*) => {
        let _ = write!($dst, $($arg)*);
    };
}

/// The history columns that are not metric curves of their own.
const KNOWN: [&str; 7] = ["epoch", "train_loss", "train_acc", "eval_loss", "eval_acc", "lr", "seconds"];

/// The report's HTML.
pub fn render(data: &ReportData) -> String {
    let mut h = String::with_capacity(32 * 1024);
    let title = esc(data.title);
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n",
    );
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    w!(h, "<title>{} \u{b7} Ember report</title>\n<style>\n{}</style>\n</head>\n<body>\n<main>\n", title, css());
    w!(
        h,
        "<header><h1>{}</h1><p class=\"sub\">Ember training report \u{b7} generated {}</p></header>\n",
        title,
        esc(data.generated)
    );
    let hist = History { columns: data.columns, rows: data.rows };

    // In-page navigation (no network: fragment links only).
    h.push_str("<nav><a href=\"#summary\">Summary</a><a href=\"#curves\">Curves</a>");
    if data.confusion.is_some() {
        h.push_str("<a href=\"#confusion\">Confusion matrix</a>");
    }
    if !data.phases.is_empty() {
        h.push_str("<a href=\"#timing\">Timing</a>");
    }
    h.push_str("<a href=\"#checkpoints\">Checkpoints</a><a href=\"#config\">Config</a></nav>\n");

    summary(&mut h, data, &hist);
    curves(&mut h, &hist, data.best);
    if let Some((matrix, names)) = data.confusion {
        confusion(&mut h, matrix, names);
    }
    if !data.phases.is_empty() {
        timing(&mut h, data.phases);
    }
    checkpoints(&mut h, data.checkpoints);

    h.push_str("<section id=\"config\"><h2>Run config</h2>\n");
    match data.config_json {
        Some(json) => {
            w!(h, "<pre>{}</pre>\n", esc(json));
        }
        None => h.push_str("<p class=\"muted\">The run's config was not recorded.</p>\n"),
    }
    h.push_str("</section>\n");
    h.push_str("<footer>Written by Ember. Self-contained: no scripts, fonts or network requests.</footer>\n");
    h.push_str("</main>\n</body>\n</html>\n");
    h
}

/// Per-class (precision, recall, f1, support) from a confusion matrix, with zero_division = 0 (scikit-learn's default warn-and-0).
///
/// Rows are true classes, columns predicted ones; a ragged matrix reads missing cells
/// as 0 and has as many classes as its longest side. As in scikit-learn,
/// `f1 = 2·tp / (support + predicted)`, which equals `2PR / (P + R)` whenever that is
/// defined and is 0 when the class was neither present nor predicted.
pub fn per_class(confusion: &[Vec<u64>]) -> Vec<(f64, f64, f64, u64)> {
    let n = classes(confusion);
    let cell = |i: usize, j: usize| confusion.get(i).and_then(|r| r.get(j)).copied().unwrap_or(0);
    let div = |a: f64, b: u64| if b == 0 { 0.0 } else { a / b as f64 };
    (0..n)
        .map(|k| {
            let tp = cell(k, k);
            let support = total((0..n).map(|j| cell(k, j)));
            let predicted = total((0..n).map(|i| cell(i, k)));
            let f1 = div(2.0 * tp as f64, support.saturating_add(predicted));
            (div(tp as f64, predicted), div(tp as f64, support), f1, support)
        })
        .collect()
}

/// The macro and weighted averages of [`per_class`]'s (precision, recall, f1), as
/// scikit-learn's `average="macro"` and `average="weighted"` with every class of the
/// matrix as a label (`labels=range(n)`): the plain mean over classes, and the mean
/// weighted by support (0 when there is no support at all).
pub fn averages(per_class: &[(f64, f64, f64, u64)]) -> [(f64, f64, f64); 2] {
    let mut mean = (0.0, 0.0, 0.0);
    let mut weighted = (0.0, 0.0, 0.0);
    for &(p, r, f, s) in per_class {
        mean = (mean.0 + p, mean.1 + r, mean.2 + f);
        let s = s as f64;
        weighted = (weighted.0 + p * s, weighted.1 + r * s, weighted.2 + f * s);
    }
    let n = per_class.len() as f64;
    let support = total(per_class.iter().map(|c| c.3)) as f64;
    let scale = |t: (f64, f64, f64), by: f64| if by > 0.0 { (t.0 / by, t.1 / by, t.2 / by) } else { (0.0, 0.0, 0.0) };
    [scale(mean, n), scale(weighted, support)]
}

fn classes(confusion: &[Vec<u64>]) -> usize {
    confusion.iter().map(Vec::len).max().unwrap_or(0).max(confusion.len())
}

fn total(counts: impl Iterator<Item = u64>) -> u64 {
    counts.fold(0u64, u64::saturating_add)
}

/// `s` with `& < > " '` escaped, for text and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A metric value: 4 decimals, scientific when very small or large, a dash for NaN.
fn num(v: f64) -> String {
    if v.is_nan() {
        "\u{2014}".into()
    } else if v.is_infinite() {
        String::from(if v > 0.0 { "inf" } else { "-inf" })
    } else if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1e5 || v.abs() < 1e-3 {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

/// A duration in seconds as `42.3 s`, `3 min 12 s` or `2 h 05 min`.
fn duration(s: f64) -> String {
    if !s.is_finite() {
        num(s)
    } else if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        let s = s.round() as u64;
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        let m = (s / 60.0).round() as u64;
        format!("{} h {:02} min", m / 60, m % 60)
    }
}

/// A byte count as `812 B`, `120.6 KiB`, `45.2 MiB`.
fn bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let (mut v, mut u) = (b as f64, 0);
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The history as columns of a table.
struct History<'a> {
    columns: &'a [String],
    rows: &'a [Vec<f64>],
}

impl History<'_> {
    fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// Each row's epoch: the `epoch` column, else its 1-based position.
    fn epochs(&self) -> Vec<f64> {
        let e = self.column("epoch");
        self.rows
            .iter()
            .enumerate()
            .map(|(k, r)| e.and_then(|i| r.get(i).copied()).filter(|x| x.is_finite()).unwrap_or((k + 1) as f64))
            .collect()
    }

    /// (epoch, value) of column `i` where the value is finite.
    fn series(&self, i: usize) -> Vec<(f64, f64)> {
        self.epochs()
            .into_iter()
            .zip(self.rows)
            .filter_map(|(e, r)| r.get(i).copied().filter(|v| v.is_finite()).map(|v| (e, v)))
            .collect()
    }

    fn named(&self, name: &str) -> Vec<(f64, f64)> {
        self.column(name).map(|i| self.series(i)).unwrap_or_default()
    }
}

fn summary(h: &mut String, data: &ReportData, hist: &History) {
    h.push_str("<section id=\"summary\"><h2>Summary</h2>\n<dl class=\"facts\">\n");
    w!(h, "<dt>Data</dt><dd>{}</dd>\n", esc(data.data_source));
    let epochs = hist.epochs();
    match epochs.last() {
        Some(last) => {
            w!(h, "<dt>Epochs</dt><dd>{} (last: epoch {})</dd>\n", epochs.len(), last);
        }
        None => h.push_str("<dt>Epochs</dt><dd>none recorded</dd>\n"),
    }
    if let Some((column, value, epoch)) = data.best {
        w!(h, "<dt>Best</dt><dd>{} = {} at epoch {}</dd>\n", esc(column), num(value), epoch);
    }
    let seconds: f64 = hist.named("seconds").iter().map(|p| p.1).sum();
    if seconds > 0.0 {
        w!(h, "<dt>Training time</dt><dd>{}</dd>\n", duration(seconds));
    }
    h.push_str("</dl>\n");

    // Final, lowest and highest value of every recorded column.
    let last = hist.rows.last();
    let mut table = String::new();
    for (i, column) in hist.columns.iter().enumerate() {
        if column == "epoch" {
            continue;
        }
        let points = hist.series(i);
        let (Some(lo), Some(hi)) = (
            points.iter().copied().reduce(|a, b| if b.1 < a.1 { b } else { a }),
            points.iter().copied().reduce(|a, b| if b.1 > a.1 { b } else { a }),
        ) else {
            continue; // never recorded: accuracy of a regression
        };
        let last = last.and_then(|r| r.get(i).copied()).unwrap_or(f64::NAN);
        let best = data.best.is_some_and(|b| b.0 == column.as_str());
        w!(
            table,
            "<tr{}><th scope=\"row\">{}</th><td>{}</td><td>{} <span class=\"ep\">@{}</span></td><td>{} <span class=\"ep\">@{}</span></td></tr>\n",
            if best { " class=\"best\"" } else { "" },
            esc(column),
            num(last),
            num(lo.1),
            lo.0,
            num(hi.1),
            hi.0
        );
    }
    if !table.is_empty() {
        h.push_str("<table class=\"metrics\"><thead><tr><th>column</th><th>final</th><th>lowest (epoch)</th><th>highest (epoch)</th></tr></thead>\n<tbody>\n");
        h.push_str(&table);
        h.push_str("</tbody></table>\n");
    }
    h.push_str("</section>\n");
}

fn curves(h: &mut String, hist: &History, best: Option<(&str, f64, usize)>) {
    h.push_str("<section id=\"curves\"><h2>Curves</h2>\n<div class=\"charts\">\n");
    let start = h.len();
    let s = |column: &'static str, color: &'static str| Series { column, color, points: hist.named(column) };
    chart(h, "Loss", "loss", &[s("train_loss", "#1f77b4"), s("eval_loss", "#d62728")], best);
    chart(h, "Accuracy", "accuracy", &[s("train_acc", "#9467bd"), s("eval_acc", "#2ca02c")], best);
    for (i, column) in hist.columns.iter().enumerate() {
        if KNOWN.contains(&column.as_str()) {
            continue;
        }
        let series = [Series { column: column.as_str(), color: "#2ca02c", points: hist.series(i) }];
        chart(h, column, column, &series, best);
    }
    if h.len() == start {
        h.push_str("<p class=\"muted\">No epochs recorded.</p>\n");
    }
    h.push_str("</div>\n</section>\n");
}

/// One line of a chart: a history column.
struct Series<'a> {
    column: &'a str,
    color: &'static str,
    points: Vec<(f64, f64)>,
}

// Chart geometry (SVG user units): the plot area sits inside these margins.
const W: f64 = 480.0;
const H: f64 = 260.0;
/// Left: tick labels and the axis title.
const ML: f64 = 58.0;
const MR: f64 = 14.0;
/// Top: the legend row.
const MT: f64 = 28.0;
/// Bottom: tick labels and "epoch".
const MB: f64 = 38.0;

/// A line chart against epochs, one `<polyline>` per series with a point per finite
/// value; nothing when no series has a value. The best metric, when it is one of the
/// series, is marked at its epoch.
fn chart(h: &mut String, caption: &str, y_label: &str, series: &[Series], best: Option<(&str, f64, usize)>) {
    let series: Vec<&Series> = series.iter().filter(|s| !s.points.is_empty()).collect();
    if series.is_empty() {
        return;
    }
    let (pw, ph) = (W - ML - MR, H - MT - MB);
    let bounds = |f: fn(&(f64, f64)) -> f64| {
        series
            .iter()
            .flat_map(|s| s.points.iter().map(f))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)))
    };
    let (x0, x1) = bounds(|p| p.0);
    let (x0, x1) = if x1 > x0 { (x0, x1) } else { (x0 - 1.0, x0 + 1.0) };
    let (y0, y1) = bounds(|p| p.1);
    let y = y_axis(y0, y1);
    let px = |x: f64| ML + (x - x0) / (x1 - x0) * pw;
    let py = |v: f64| MT + ph - (v - y.lo) / (y.hi - y.lo) * ph;
    let caption = esc(caption);
    w!(
        h,
        "<figure><figcaption>{caption}</figcaption>\n<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{caption}\">\n"
    );
    // Horizontal grid lines with the y tick labels.
    for &t in &y.ticks {
        let yy = py(t);
        w!(
            h,
            "<line class=\"g\" x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/><text class=\"yt\" x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
            ML,
            yy,
            ML + pw,
            yy,
            ML - 6.0,
            yy + 4.0,
            y.label(t)
        );
    }
    // Epoch ticks below the x axis.
    for t in x_ticks(x0, x1) {
        let xx = px(t);
        w!(
            h,
            "<line class=\"a\" x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/><text class=\"xt\" x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
            xx,
            MT + ph,
            xx,
            MT + ph + 4.0,
            xx,
            MT + ph + 16.0,
            t
        );
    }
    w!(h, "<path class=\"a\" d=\"M{:.1} {:.1}V{:.1}H{:.1}\"/>\n", ML, MT, MT + ph, ML + pw);
    w!(h, "<text class=\"xl\" x=\"{:.1}\" y=\"{:.1}\">epoch</text>\n", ML + pw / 2.0, H - 4.0);
    w!(h, "<text class=\"yl\" transform=\"translate(14 {:.1}) rotate(-90)\">{}</text>\n", MT + ph / 2.0, esc(y_label));
    for s in &series {
        let points: Vec<String> = s.points.iter().map(|&(x, v)| format!("{:.1},{:.1}", px(x), py(v))).collect();
        w!(h, "<polyline stroke=\"{}\" points=\"{}\"/>\n", s.color, points.join(" "));
        if s.points.len() == 1 {
            // A single point draws no line.
            let (x, v) = s.points[0];
            w!(h, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\"/>\n", px(x), py(v), s.color);
        }
    }
    if let Some((column, value, epoch)) = best {
        if let Some(s) = series.iter().find(|s| s.column == column) {
            let e = epoch as f64;
            if value.is_finite() && (x0..=x1).contains(&e) && (y.lo..=y.hi).contains(&value) {
                let (xx, yy) = (px(e), py(value));
                // The label goes on the side of the line with more room.
                let right_half = xx > ML + pw / 2.0;
                w!(
                    h,
                    "<line class=\"best\" stroke=\"{}\" x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/><circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{}\"/><text class=\"bt{}\" x=\"{:.1}\" y=\"{:.1}\">best</text>\n",
                    s.color,
                    xx,
                    MT,
                    xx,
                    MT + ph,
                    xx,
                    yy,
                    s.color,
                    if right_half { " yt" } else { "" },
                    if right_half { xx - 4.0 } else { xx + 4.0 },
                    MT + 10.0
                );
            }
        }
    }
    // The legend: one row above the plot area.
    let mut lx = ML;
    for s in &series {
        w!(
            h,
            "<line class=\"lg\" stroke=\"{}\" x1=\"{:.1}\" y1=\"12\" x2=\"{:.1}\" y2=\"12\"/><text x=\"{:.1}\" y=\"16\">{}</text>\n",
            s.color,
            lx,
            lx + 18.0,
            lx + 23.0,
            esc(s.column)
        );
        lx += 23.0 + 6.5 * s.column.chars().count() as f64 + 16.0;
    }
    h.push_str("</svg></figure>\n");
}

/// A y axis: its range (a whole number of steps), tick values and their format.
struct Ticks {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
    decimals: usize,
    sci: bool,
}

impl Ticks {
    fn label(&self, v: f64) -> String {
        if self.sci {
            format!("{:.*e}", self.decimals, v)
        } else {
            format!("{:.*}", self.decimals, v)
        }
    }
}

/// 1, 2 or 5 times a power of ten, near `x`.
fn nice(x: f64) -> f64 {
    let p = 10f64.powf(x.log10().floor());
    let f = x / p;
    let n = if f < 1.5 {
        1.0
    } else if f < 3.0 {
        2.0
    } else if f < 7.0 {
        5.0
    } else {
        10.0
    };
    n * p
}

/// About five round steps covering `[lo, hi]`.
fn y_axis(lo: f64, hi: f64) -> Ticks {
    let (mut lo, mut hi) = (lo, hi);
    if hi <= lo {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        lo -= d;
        hi += d;
    }
    let step = nice((hi - lo) / 5.0);
    if !(step.is_finite() && step > 0.0) {
        return Ticks { lo, hi, ticks: vec![lo, hi], decimals: 2, sci: true };
    }
    let a = (lo / step).floor();
    let n = (((hi / step).ceil() - a).round() as usize).clamp(1, 20);
    let ticks = (0..=n)
        .map(|k| {
            let v = (a + k as f64) * step;
            if v.abs() < step * 1e-9 {
                0.0
            } else {
                v
            }
        })
        .collect();
    let mag = lo.abs().max(hi.abs());
    let sci = !(1e-3..1e6).contains(&mag);
    let decimals = if sci {
        (mag.log10().floor() - step.log10().floor()).clamp(0.0, 6.0) as usize
    } else {
        (-step.log10() - 1e-9).ceil().clamp(0.0, 12.0) as usize
    };
    Ticks { lo: a * step, hi: (a + n as f64) * step, ticks, decimals, sci }
}

/// Whole-number epoch ticks, at most about ten.
fn x_ticks(x0: f64, x1: f64) -> Vec<f64> {
    let step = nice((x1 - x0) / 8.0).max(1.0).round();
    let mut out = Vec::new();
    let mut t = (x0 / step).ceil() * step;
    while t <= x1 + 1e-9 && out.len() < 40 {
        out.push(t);
        t += step;
    }
    out
}

fn confusion(h: &mut String, matrix: &[Vec<u64>], names: &[String]) {
    let n = classes(matrix);
    let cell = |i: usize, j: usize| matrix.get(i).and_then(|r| r.get(j)).copied().unwrap_or(0);
    let name = |i: usize| names.get(i).filter(|s| !s.is_empty()).map_or_else(|| i.to_string(), |s| esc(s));
    let vertical = n > 8 || (0..n).any(|i| names.get(i).is_some_and(|s| s.chars().count() > 6));
    h.push_str("<section id=\"confusion\"><h2>Confusion matrix</h2>\n");
    h.push_str("<p class=\"muted\">Rows: true class; columns: predicted class. Shading: the share of the true class's examples.</p>\n");
    w!(
        h,
        "<div class=\"scroll\"><table class=\"cm{}\"><thead><tr><th class=\"corner\">true \\ predicted</th>",
        if vertical { " vertical" } else { "" }
    );
    for j in 0..n {
        w!(h, "<th scope=\"col\"><span>{}</span></th>", name(j));
    }
    h.push_str("<th scope=\"col\"><span>total</span></th></tr></thead>\n<tbody>\n");
    for i in 0..n {
        let support = total((0..n).map(|j| cell(i, j)));
        w!(h, "<tr><th scope=\"row\">{}</th>", name(i));
        for j in 0..n {
            let c = cell(i, j);
            let share = if support > 0 { c as f64 / support as f64 } else { 0.0 };
            w!(h, "<td class=\"h{}\">{}</td>", (share * 9.0).round().clamp(0.0, 9.0) as usize, c);
        }
        w!(h, "<td class=\"tot\">{support}</td></tr>\n");
    }
    h.push_str("<tr class=\"tot\"><th scope=\"row\">total</th>");
    for j in 0..n {
        w!(h, "<td>{}</td>", total((0..n).map(|i| cell(i, j))));
    }
    let all = total((0..n).flat_map(|i| (0..n).map(move |j| (i, j))).map(|(i, j)| cell(i, j)));
    w!(h, "<td>{all}</td></tr>\n</tbody></table></div>\n");

    let per = per_class(matrix);
    let correct = total((0..n).map(|k| cell(k, k)));
    let accuracy = if all > 0 { correct as f64 / all as f64 } else { 0.0 };
    h.push_str("<h3>Per class</h3>\n<table class=\"pc\"><thead><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr></thead>\n<tbody>\n");
    for (k, &(p, r, f, s)) in per.iter().enumerate() {
        w!(
            h,
            "<tr><th scope=\"row\">{}</th><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td><td>{}</td></tr>\n",
            name(k),
            p,
            r,
            f,
            s
        );
    }
    let [mean, weighted] = averages(&per);
    w!(h, "<tr class=\"avg\"><th scope=\"row\">accuracy</th><td></td><td></td><td>{accuracy:.4}</td><td>{all}</td></tr>\n");
    for (label, (p, r, f)) in [("macro avg", mean), ("weighted avg", weighted)] {
        w!(h, "<tr class=\"avg\"><th scope=\"row\">{label}</th><td>{p:.4}</td><td>{r:.4}</td><td>{f:.4}</td><td>{all}</td></tr>\n");
    }
    h.push_str("</tbody></table>\n<p class=\"muted\">Precision or recall of a class never predicted or never present is 0 (scikit-learn's zero_division=0).</p>\n</section>\n");
}

fn timing(h: &mut String, phases: &[(String, f64)]) {
    let sum: f64 = phases.iter().map(|p| p.1).filter(|s| s.is_finite() && *s > 0.0).sum();
    // Bars are scaled to the longest phase; the share column is of the total.
    let longest = phases.iter().map(|p| p.1).filter(|s| s.is_finite()).fold(0.0, f64::max);
    h.push_str("<section id=\"timing\"><h2>Time per epoch</h2>\n<table class=\"timing\"><thead><tr><th>phase</th><th>mean seconds</th><th>share</th><th class=\"barcell\"></th></tr></thead>\n<tbody>\n");
    for (name, s) in phases {
        let pct = if sum > 0.0 && s.is_finite() { (s / sum * 100.0).clamp(0.0, 100.0) } else { 0.0 };
        let bar = if longest > 0.0 && s.is_finite() { (s / longest * 100.0).clamp(0.0, 100.0) } else { 0.0 };
        w!(
            h,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{:.1}%</td><td class=\"barcell\"><div class=\"bar\" style=\"width:{:.1}%\"></div></td></tr>\n",
            esc(name),
            num(*s),
            pct,
            bar
        );
    }
    w!(h, "<tr class=\"tot\"><th scope=\"row\">total</th><td>{}</td><td></td><td></td></tr>\n</tbody></table>\n</section>\n", num(sum));
}

fn checkpoints(h: &mut String, list: &[(String, Option<usize>, u64)]) {
    h.push_str("<section id=\"checkpoints\"><h2>Checkpoints</h2>\n");
    if list.is_empty() {
        h.push_str("<p class=\"muted\">No checkpoints.</p>\n</section>\n");
        return;
    }
    h.push_str("<table class=\"ckpt\"><thead><tr><th>file</th><th>epoch</th><th>size</th></tr></thead>\n<tbody>\n");
    for (file, epoch, size) in list {
        let epoch = epoch.map_or_else(|| "\u{2014}".to_string(), |e| e.to_string());
        w!(h, "<tr><td>{}</td><td>{}</td><td title=\"{} bytes\">{}</td></tr>\n", esc(file), epoch, size, bytes(*size));
    }
    let sum = total(list.iter().map(|c| c.2));
    w!(
        h,
        "<tr class=\"tot\"><td>total</td><td></td><td title=\"{} bytes\">{}</td></tr>\n</tbody></table>\n</section>\n",
        sum,
        bytes(sum)
    );
}

/// The page's style sheet, with the ten heat-map shades `.h0`..`.h9` (white to dark blue).
fn css() -> String {
    let mut css = String::from(
        "body{margin:0;background:#f5f6f8;color:#222;font:14px/1.45 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif}
main{max-width:1040px;margin:0 auto;padding:12px 24px 32px}
h1{font-size:22px;margin:8px 0 0;word-break:break-all}
h2{font-size:17px;margin:0 0 10px}
h3{font-size:15px;margin:16px 0 6px}
.sub,.muted,footer{color:#666}
.sub{margin:2px 0 10px}
nav a{margin-right:14px;color:#1f5fa8;text-decoration:none}
section{background:#fff;border:1px solid #e2e4e8;border-radius:6px;padding:14px 18px;margin:14px 0}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0 0 12px}
dt{color:#666}
dd{margin:0;word-break:break-all}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:3px 10px;text-align:right;border-bottom:1px solid #eee;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
thead th{border-bottom:2px solid #ccc;font-weight:600}
tbody th{font-weight:500}
tr.best{background:#fff4cc}
tr.tot,tr.avg{color:#444}
tr.tot td,tr.tot th{border-top:2px solid #ccc}
.ep{color:#888;font-size:12px}
.charts{display:flex;flex-wrap:wrap;gap:6px 24px}
figure{margin:0}
figcaption{font-weight:600;margin:2px 0}
svg.chart{max-width:100%;height:auto;display:block}
svg text{font-size:11px;fill:#333}
.g{stroke:#e6e6e6}
.a{stroke:#555;fill:none}
.yt{text-anchor:end}
.xt,.xl,.yl{text-anchor:middle}
.xl,.yl{fill:#555}
polyline{fill:none;stroke-width:2;stroke-linejoin:round;stroke-linecap:round}
.lg{stroke-width:3}
.best{stroke-dasharray:4 3;stroke-width:1}
.bt{font-size:10px}
.scroll{overflow-x:auto}
.cm td{text-align:center;min-width:2.4em;border:1px solid #fff}
.cm th.corner{color:#666;font-weight:400;font-size:12px}
.cm.vertical thead th:not(.corner) span{writing-mode:vertical-rl;transform:rotate(180deg);display:inline-block}
.cm thead th{text-align:center;vertical-align:bottom}
.cm td.tot,.cm tr.tot td{background:#fff;color:#444}
table.timing{width:100%;max-width:720px}
.barcell{width:45%}
.bar{height:10px;background:#4c78a8;border-radius:2px}
pre{margin:0;background:#f6f6f6;border:1px solid #eee;padding:10px;overflow:auto;max-height:520px;font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
footer{font-size:12px;margin-top:8px}
",
    );
    for k in 0..10u32 {
        let t = k as f64 / 9.0;
        let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
        let text = if k >= 5 { ";color:#fff" } else { "" };
        w!(
            css,
            ".h{}{{background:#{:02x}{:02x}{:02x}{}}}\n",
            k,
            mix(247.0, 8.0),
            mix(251.0, 48.0),
            mix(255.0, 107.0),
            text
        );
    }
    css
}

/// `YYYY-MM-DD HH:MM UTC` of a time stamp.
pub fn utc_minute(t: std::time::SystemTime) -> String {
    let secs: i64 = match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => {
            let d = e.duration();
            -(d.as_secs() as i64) - i64::from(d.subsec_nanos() > 0)
        }
    };
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

/// The proleptic Gregorian date (year, month, day) of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of the era, [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of the era, [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the year from March 1, [0, 365]
    let mp = (5 * doy + 2) / 153; // month from March, [0, 11]
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m as u32, d as u32)
}

/// The current time as `YYYY-MM-DD HH:MM UTC`.
pub fn now_utc() -> String {
    utc_minute(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-15 * b.abs().max(1.0)
    }

    fn assert_prf(got: &[(f64, f64, f64, u64)], want: &[(f64, f64, f64, u64)]) {
        assert_eq!(got.len(), want.len(), "{got:?}");
        for (k, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(close(g.0, w.0) && close(g.1, w.1) && close(g.2, w.2) && g.3 == w.3, "class {k}: {g:?} != {w:?}");
        }
    }

    #[test]
    fn per_class_by_hand() {
        // Class 0: tp 3, predicted 3 + 2, support 3 + 1; class 1: tp 4, predicted 1 + 4, support 2 + 4.
        assert_prf(
            &per_class(&[vec![3, 1], vec![2, 4]]),
            &[(0.6, 0.75, 6.0 / 9.0, 4), (0.8, 4.0 / 6.0, 8.0 / 11.0, 6)],
        );
        // Class 0 is never predicted: precision 0 by zero_division, recall 0, F1 0.
        assert_prf(&per_class(&[vec![0, 2], vec![0, 3]]), &[(0.0, 0.0, 0.0, 2), (0.6, 1.0, 0.75, 3)]);
        // Nothing at all: zeros, and averages of zeros.
        let empty = per_class(&[vec![0, 0], vec![0, 0]]);
        assert_prf(&empty, &[(0.0, 0.0, 0.0, 0), (0.0, 0.0, 0.0, 0)]);
        assert_eq!(averages(&empty), [(0.0, 0.0, 0.0); 2]);
        assert!(per_class(&[]).is_empty());
        // A ragged matrix reads missing cells as 0 (three classes here) instead of panicking.
        let ragged = per_class(&[vec![1], vec![0, 2, 1]]);
        assert_eq!(ragged.iter().map(|c| c.3).collect::<Vec<_>>(), vec![1, 3, 0]);
        assert_prf(&ragged, &[(1.0, 1.0, 1.0, 1), (1.0, 2.0 / 3.0, 0.8, 3), (0.0, 0.0, 0.0, 0)]);
        // Macro: plain means; weighted: by support (4 and 6).
        let [m, w] = averages(&per_class(&[vec![3, 1], vec![2, 4]]));
        assert!(close(m.0, 0.7) && close(m.1, (0.75 + 4.0 / 6.0) / 2.0), "{m:?}");
        assert!(close(w.0, (0.6 * 4.0 + 0.8 * 6.0) / 10.0) && close(w.1, 0.7), "{w:?}");
    }

    #[test]
    fn per_class_matches_sklearn() {
        // /tmp/torchenv/bin/python, scikit-learn 1.9.1: y_true, y_pred expanded from this
        // matrix, then sklearn.metrics.precision_recall_fscore_support(y_true, y_pred,
        // labels=range(5), zero_division=0, average=None / "macro" / "weighted").
        // Class 3 has no support but one prediction, class 4 support but no prediction.
        let m: [Vec<u64>; 5] =
            [vec![5, 2, 0, 1, 0], vec![1, 7, 1, 0, 0], vec![0, 3, 4, 0, 0], vec![0, 0, 0, 0, 0], vec![2, 0, 1, 0, 0]];
        let per = per_class(&m);
        assert_prf(
            &per,
            &[
                (0.625, 0.625, 0.625, 8),
                (0.5833333333333334, 0.7777777777777778, 0.6666666666666666, 9),
                (0.6666666666666666, 0.5714285714285714, 0.6153846153846154, 7),
                (0.0, 0.0, 0.0, 0),
                (0.0, 0.0, 0.0, 3),
            ],
        );
        let [m, w] = averages(&per);
        assert!(close(m.0, 0.375) && close(m.1, 0.3948412698412698) && close(m.2, 0.3814102564102564), "{m:?}");
        assert!(
            close(w.0, 0.5524691358024691) && close(w.1, 0.5925925925925926) && close(w.2, 0.566951566951567),
            "{w:?}"
        );
    }

    fn columns() -> Vec<String> {
        ["epoch", "train_loss", "train_acc", "eval_loss", "eval_acc", "eval_f1[average=macro]", "lr", "seconds"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn rows(epochs: usize) -> Vec<Vec<f64>> {
        (1..=epochs)
            .map(|e| {
                let t = e as f64;
                vec![
                    t,
                    2.0 / t,
                    1.0 - 1.0 / (t + 1.0),
                    2.2 / t,
                    0.9 - 1.0 / (t + 1.0),
                    0.8 - 0.5 / t,
                    1e-3 * 0.95f64.powi(e as i32),
                    1.5,
                ]
            })
            .collect()
    }

    fn phases() -> Vec<(String, f64)> {
        ["data", "forward", "loss", "backward", "optimizer", "eval", "output"]
            .iter()
            .zip([0.1, 0.4, 0.05, 0.6, 0.2, 0.3, 0.02])
            .map(|(n, s)| (n.to_string(), s))
            .collect()
    }

    /// The number of points of each `<polyline>`, in order.
    fn polylines(html: &str) -> Vec<usize> {
        html.split("<polyline")
            .skip(1)
            .map(|rest| {
                let start = rest.find("points=\"").expect("a polyline without points") + "points=\"".len();
                let end = rest[start..].find('"').expect("unterminated points");
                rest[start..start + end].split_whitespace().count()
            })
            .collect()
    }

    #[test]
    fn fifty_epochs_are_small_offline_and_one_point_per_epoch() {
        let (columns, rows) = (columns(), rows(50));
        let matrix: Vec<Vec<u64>> =
            (0..10).map(|i| (0..10).map(|j| if i == j { 90 } else { (i + j) as u64 % 3 }).collect()).collect();
        let names: Vec<String> = (0..10).map(|i| format!("class-{i}")).collect();
        let phases = phases();
        let checkpoints: Vec<(String, Option<usize>, u64)> = (48..=50)
            .map(|e| (format!("epoch-{e:04}.safetensors"), Some(e), 1_234_567))
            .chain([("best.safetensors".to_string(), None, 1_234_567)])
            .collect();
        let config = "{\n  \"model\": {\n    \"hidden\": [64, 64]\n  },\n  \"train\": {\n    \"epochs\": 50\n  }\n}";
        let html = render(&ReportData {
            title: "mnist-mlp-2",
            generated: "2025-01-02 03:04:05 UTC",
            config_json: Some(config),
            data_source: "csv examples/data/digits.csv (1437 train, 360 eval)",
            columns: &columns,
            rows: &rows,
            best: Some(("eval_acc", 0.9 - 1.0 / 51.0, 50)),
            confusion: Some((&matrix[..], &names[..])),
            phases: &phases,
            checkpoints: &checkpoints,
        });
        assert!(html.len() < 100_000, "a 50-epoch report takes {} bytes", html.len());
        for external in ["http://", "https://", "<script", "<link", "<img", " src=", "url(", "@import"] {
            assert!(!html.contains(external), "the report contains {external:?}");
        }
        // Loss (train, eval), accuracy (train, eval) and the F1 metric: 5 lines of 50 points.
        assert_eq!(polylines(&html), vec![50; 5]);
        assert_eq!(html.matches("<svg").count(), 3);
        assert!(html.contains("<figcaption>eval_f1[average=macro]</figcaption>"));
        // The best epoch is marked, and its column highlighted in the table.
        assert_eq!(html.matches("class=\"best\"").count(), 2);
        for section in [
            "id=\"summary\"",
            "id=\"curves\"",
            "id=\"confusion\"",
            "id=\"timing\"",
            "id=\"checkpoints\"",
            "id=\"config\"",
        ] {
            assert!(html.contains(section), "no {section}");
        }
        assert!(html.contains("<td title=\"1234567 bytes\">1.2 MiB</td>"));
        assert!(html.contains("<th scope=\"row\">backward</th><td>0.6000</td>"));
        assert!(html.contains("&quot;hidden&quot;: [64, 64]"));
    }

    #[test]
    fn missing_values_are_left_out_and_empty_series_draw_nothing() {
        // A regression run: no accuracy at all, and eval loss missing at epoch 3.
        let columns: Vec<String> = ["epoch", "train_loss", "train_acc", "eval_loss", "eval_acc", "lr", "seconds"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let rows: Vec<Vec<f64>> = (1..=5)
            .map(|e| {
                let t = e as f64;
                vec![t, 1.0 / t, f64::NAN, if e == 3 { f64::NAN } else { 1.1 / t }, f64::NAN, 0.01, 2.0]
            })
            .collect();
        let html = render(&ReportData {
            title: "diabetes",
            generated: "now",
            config_json: None,
            data_source: "csv",
            columns: &columns,
            rows: &rows,
            best: Some(("eval_loss", 1.1 / 5.0, 5)),
            confusion: None,
            phases: &[],
            checkpoints: &[],
        });
        assert_eq!(polylines(&html), vec![5, 4]);
        assert_eq!(html.matches("<svg").count(), 1, "no accuracy chart for a regression");
        assert!(!html.contains("train_acc"), "a column never recorded has no table row");
        assert!(!html.contains("id=\"confusion\"") && !html.contains("id=\"timing\""));
        assert!(html.contains("No checkpoints.") && html.contains("config was not recorded"));
        assert!(html.contains("<dt>Training time</dt><dd>10.0 s</dd>"));

        // One epoch: a polyline of one point, drawn as a dot.
        let one = render(&ReportData { rows: &rows[..1], best: None, ..ReportData::clone_of(&columns) });
        assert_eq!(polylines(&one), vec![1, 1]);
        assert_eq!(one.matches("<circle").count(), 2);
        // No epochs: no charts, and a note.
        let none = render(&ReportData { rows: &[], best: None, ..ReportData::clone_of(&columns) });
        assert!(polylines(&none).is_empty() && none.contains("No epochs recorded."));
    }

    impl<'a> ReportData<'a> {
        fn clone_of(columns: &'a [String]) -> Self {
            ReportData {
                title: "t",
                generated: "g",
                config_json: None,
                data_source: "d",
                columns,
                rows: &[],
                best: None,
                confusion: None,
                phases: &[],
                checkpoints: &[],
            }
        }
    }

    #[test]
    fn text_is_escaped() {
        let columns: Vec<String> = vec!["epoch".into(), "train_loss".into(), "eval_<b>x</b>".into()];
        let rows = vec![vec![1.0, 0.5, 0.25], vec![2.0, 0.4, 0.5]];
        let matrix = [vec![1, 0, 0], vec![0, 2, 0], vec![0, 1, 3]];
        let names: Vec<String> = vec!["cat".into(), "<script>alert(1)</script>".into(), "a&b".into()];
        let phases = vec![("<i>data</i>".to_string(), 0.5)];
        let checkpoints = vec![("<x>.safetensors".to_string(), Some(2), 10)];
        let html = render(&ReportData {
            title: "run<script>",
            generated: "\"today\"",
            config_json: Some("{\n  \"name\": \"</pre><script>alert(2)</script>\"\n}"),
            data_source: "<img src=x onerror=alert(3)>",
            columns: &columns,
            rows: &rows,
            best: Some(("eval_<b>x</b>", 0.5, 2)),
            confusion: Some((&matrix[..], &names[..])),
            phases: &phases,
            checkpoints: &checkpoints,
        });
        for raw in ["<script", "<img", "<b>", "<i>", "<x>", "\"today\""] {
            assert!(!html.contains(raw), "unescaped {raw:?}");
        }
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&lt;/pre&gt;&lt;script&gt;alert(2)&lt;/script&gt;"));
        assert!(html.contains("&lt;img src=x onerror=alert(3)&gt;"));
        assert!(html.contains("<th scope=\"row\">a&amp;b</th>"));
        assert!(html.contains("<figcaption>eval_&lt;b&gt;x&lt;/b&gt;</figcaption>"));
        assert!(html.contains("aria-label=\"eval_&lt;b&gt;x&lt;/b&gt;\""));
        assert_eq!(html.matches("</pre>").count(), 1);
    }

    #[test]
    fn confusion_matrix_layout() {
        // Unnamed classes are numbered; rows are true classes, columns predictions.
        let matrix = [vec![4, 0], vec![1, 3]];
        let no_names: &[String] = &[];
        let html = render(&ReportData { confusion: Some((&matrix[..], no_names)), ..ReportData::clone_of(&[]) });
        assert!(html.contains(
            "<tr><th scope=\"row\">0</th><td class=\"h9\">4</td><td class=\"h0\">0</td><td class=\"tot\">4</td></tr>"
        ));
        assert!(html.contains(
            "<tr><th scope=\"row\">1</th><td class=\"h2\">1</td><td class=\"h7\">3</td><td class=\"tot\">4</td></tr>"
        ));
        assert!(html.contains("<tr class=\"tot\"><th scope=\"row\">total</th><td>5</td><td>3</td><td>8</td></tr>"));
        // Class 0: precision 4/5, recall 1, F1 8/9; accuracy 7/8.
        assert!(
            html.contains("<tr><th scope=\"row\">0</th><td>0.8000</td><td>1.0000</td><td>0.8889</td><td>4</td></tr>")
        );
        assert!(html.contains("<th scope=\"row\">accuracy</th><td></td><td></td><td>0.8750</td><td>8</td>"));
    }

    #[test]
    fn axis_ticks_are_round() {
        // (1.87 - 0.23) / 5 = 0.328 rounds to steps of 0.5.
        let y = y_axis(0.23, 1.87);
        assert_eq!((y.lo, y.hi), (0.0, 2.0));
        assert_eq!(y.ticks.iter().map(|&t| y.label(t)).collect::<Vec<_>>(), ["0.0", "0.5", "1.0", "1.5", "2.0"]);
        let y = y_axis(0.031, 0.118);
        assert_eq!(
            y.ticks.iter().map(|&t| y.label(t)).collect::<Vec<_>>(),
            ["0.02", "0.04", "0.06", "0.08", "0.10", "0.12"]
        );
        let flat = y_axis(3.0, 3.0);
        assert!(flat.lo < 3.0 && flat.hi > 3.0);
        let tiny = y_axis(1.0e-5, 1.1e-5);
        assert!(tiny.sci && tiny.label(1.02e-5) == "1.02e-5", "{}", tiny.label(1.02e-5));
        assert_eq!(x_ticks(1.0, 50.0), [5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0, 50.0]);
        assert_eq!(x_ticks(1.0, 3.0), [1.0, 2.0, 3.0]);
        assert_eq!(x_ticks(0.0, 2.0), [0.0, 1.0, 2.0]);
    }
}
