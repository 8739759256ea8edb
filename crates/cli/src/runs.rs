//! `ember runs`: a table of training runs (date, epochs, best metric, time per epoch, and
//! how each run's config differs from the first one's), as text or JSON, and one chart of
//! a `metrics.csv` column across the runs.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{anyhow, bail, Context as _};
use ember_train::checkpoint;
use ember_train::plot::{figure, Line};
use ember_train::report::utc_minute;
use ember_train::rundir;
use ember_train::Progress;
use serde_json::{json, Value};

/// Where `ember runs` looks without arguments (`ember train`'s default parent).
const DEFAULT_DIR: &str = "runs";

/// Lists the runs in `dirs` (each a run directory, or a directory of runs; default
/// `runs/`) as an aligned table or a JSON array, or with `plot` draws that `metrics.csv`
/// column of every run into one chart (`out_file`: `.png` or `.svg`, default
/// `runs-METRIC.png`).
pub fn runs(
    dirs: &[PathBuf],
    json: bool,
    plot: Option<&str>,
    out_file: Option<&Path>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if out_file.is_some() && plot.is_none() {
        bail!("--out names the chart that --plot draws; add --plot METRIC (a metrics.csv column such as eval_loss)");
    }
    if plot == Some("") {
        bail!("--plot needs a metrics.csv column, such as eval_loss or train_loss");
    }
    let defaulted = dirs.is_empty();
    let default = [PathBuf::from(DEFAULT_DIR)];
    let dirs = if defaulted { &default[..] } else { dirs };
    let mut found = Vec::new();
    for dir in dirs {
        found.extend(run_dirs(dir, defaulted)?);
    }
    let runs = found.into_iter().map(|d| Run::read(&d)).collect::<anyhow::Result<Vec<_>>>()?;
    match plot {
        Some(metric) => draw(&runs, metric, out_file, json, out),
        None => list(&runs, json, out),
    }
}

/// Whether `dir` holds a run: a `metrics.csv` or checkpoints.
fn is_run(dir: &Path) -> bool {
    dir.is_dir() && rundir::existing_run(dir).is_some()
}

/// `dir` itself when it holds a run, else its sub-directories that do (sorted by name).
fn run_dirs(dir: &Path, defaulted: bool) -> anyhow::Result<Vec<PathBuf>> {
    if is_run(dir) {
        return Ok(vec![dir.to_path_buf()]);
    }
    if !dir.exists() {
        if defaulted {
            bail!(
                "{}: no such directory; name run directories (ember runs DIR...), or train a run first (ember train writes runs/NAME)",
                dir.display()
            );
        }
        bail!(
            "{}: no such directory; name a run directory (what ember train --out wrote) or a directory of runs",
            dir.display()
        );
    }
    if !dir.is_dir() {
        bail!(
            "{}: is a file, not a run directory; name the directory that holds metrics.csv and checkpoints/",
            dir.display()
        );
    }
    let entries = fs::read_dir(dir).with_context(|| format!("{}: cannot list the directory", dir.display()))?;
    let mut subs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| is_run(p)).collect();
    subs.sort();
    if subs.is_empty() {
        bail!(
            "{}: not a run directory: it has no metrics.csv or checkpoints/epoch-NNNN.safetensors, and none of its sub-directories has; name a directory that ember train --out wrote, or one that holds such directories",
            dir.display()
        );
    }
    Ok(subs)
}

/// A run's `metrics.csv`: the header and the rows (an empty field is NaN).
struct Table {
    columns: Vec<String>,
    rows: Vec<Vec<f64>>,
}

impl Table {
    fn read(path: &Path) -> anyhow::Result<Table> {
        let text = fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header = lines.next().ok_or_else(|| anyhow!("{}: empty file (no header line)", path.display()))?;
        let columns: Vec<String> = header.split(',').map(|c| c.trim().to_string()).collect();
        let mut rows = Vec::new();
        for (i, line) in lines.enumerate() {
            let fields: Vec<&str> = line.split(',').collect();
            if fields.len() != columns.len() {
                bail!(
                    "{}: line {} has {} fields, the header {} (a corrupted metrics.csv)",
                    path.display(),
                    i + 2,
                    fields.len(),
                    columns.len()
                );
            }
            let row = fields
                .iter()
                .zip(&columns)
                .map(|(f, c)| match f.trim() {
                    "" => Ok(f64::NAN),
                    v => v.parse::<f64>().map_err(|_| {
                        anyhow!("{}: line {}: column {c} holds {v:?}, not a number", path.display(), i + 2)
                    }),
                })
                .collect::<anyhow::Result<Vec<f64>>>()?;
            rows.push(row);
        }
        Ok(Table { columns, rows })
    }

    fn column(&self, name: &str) -> Option<Vec<f64>> {
        let i = self.columns.iter().position(|c| c == name)?;
        Some(self.rows.iter().map(|r| r[i]).collect())
    }

    /// The value of `column` in the row of `epoch`.
    fn at(&self, column: &str, epoch: usize) -> Option<f64> {
        let e = self.columns.iter().position(|c| c == "epoch")?;
        let i = self.columns.iter().position(|c| c == column)?;
        self.rows.iter().find(|r| r[e] == epoch as f64).map(|r| r[i])
    }

    /// Whether `column` exists and holds a number in some row.
    fn has_values(&self, column: &str) -> bool {
        self.column(column).is_some_and(|v| v.iter().any(|x| !x.is_nan()))
    }
}

/// What `ember runs` reports of one run directory.
struct Run {
    name: String,
    dir: PathBuf,
    metrics: Option<Table>,
    progress: Option<Progress>,
    config: Option<Value>,
    summary: Option<Value>,
    modified: Option<SystemTime>,
}

impl Run {
    fn read(dir: &Path) -> anyhow::Result<Run> {
        // `.` and `..` have no name of their own: the directory's real one.
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .or_else(|| dir.canonicalize().ok()?.file_name().map(|n| n.to_string_lossy().to_string()))
            .unwrap_or_else(|| dir.display().to_string());
        let csv = dir.join("metrics.csv");
        let metrics = if csv.is_file() { Some(Table::read(&csv)?) } else { None };
        let summary_path = dir.join("summary.json");
        let summary = fs::read_to_string(&summary_path).ok().and_then(|t| serde_json::from_str(&t).ok());
        let ckpts = dir.join("checkpoints");
        let mut files: Vec<PathBuf> =
            checkpoint::epoch_files(&ckpts).unwrap_or_default().into_iter().rev().map(|(_, p)| p).collect();
        let best = ckpts.join("best.safetensors");
        if best.is_file() {
            files.push(best);
        }
        let modified = files
            .iter()
            .filter_map(|f| fs::metadata(f).and_then(|m| m.modified()).ok())
            .max()
            .or_else(|| fs::metadata(&csv).and_then(|m| m.modified()).ok());
        // The newest checkpoint whose header reads: its config and progress.
        let meta = files.iter().find_map(|f| checkpoint::read_metadata(f).ok());
        let (mut progress, mut config) = (None, None);
        if let Some(meta) = meta {
            progress = meta.get("progress").and_then(|p| serde_json::from_str::<Progress>(p).ok());
            config = meta.get("config").or(meta.get("spec")).and_then(|c| serde_json::from_str::<Value>(c).ok());
        }
        Ok(Run { name, dir: dir.to_path_buf(), metrics, progress, config, summary, modified })
    }

    /// Completed epochs: the last row of metrics.csv, else the checkpoint's counter, else
    /// summary.json's.
    fn epochs(&self) -> Option<usize> {
        let from_csv = self.metrics.as_ref().and_then(|t| t.column("epoch")?.last().copied());
        from_csv
            .filter(|e| e.is_finite() && *e >= 0.0)
            .map(|e| e as usize)
            .or(self.progress.as_ref().map(|p| p.epoch))
            .or_else(|| self.summary.as_ref()?.get("epochs")?.as_u64().map(|e| e as usize))
    }

    /// The median of the `seconds` column (the same median as summary.json's
    /// `seconds_per_epoch`), else the checkpoint's history, else summary.json.
    fn seconds_per_epoch(&self) -> Option<f64> {
        let secs: Vec<f64> = match (&self.metrics, &self.progress) {
            (Some(t), _) if t.column("seconds").is_some() => t.column("seconds").unwrap_or_default(),
            (_, Some(p)) => p.history.iter().map(|r| r.seconds).collect(),
            _ => Vec::new(),
        };
        median(&secs).or_else(|| self.summary.as_ref()?.get("seconds_per_epoch")?.as_f64())
    }

    /// The column that picks the run's best checkpoint: `train.best_metric`, else what
    /// the Learner watches by default (eval_acc for class targets, the first metric of
    /// `train.metrics`, eval_loss; train_loss without evaluation data).
    fn best_column(&self) -> String {
        let columns: Vec<String> = self.metrics.as_ref().map(|t| t.columns.clone()).unwrap_or_default();
        let has = |c: &str| self.metrics.as_ref().is_some_and(|t| t.has_values(c));
        if let Some(m) = self.config.as_ref().and_then(|c| c.pointer("/train/best_metric")?.as_str()) {
            // `eval_f1` names `eval_f1[average=macro]` when only one f1 is listed.
            let prefixed: Vec<&String> = columns.iter().filter(|c| c.starts_with(&format!("{m}["))).collect();
            return match prefixed.as_slice() {
                [one] if !columns.iter().any(|c| c == m) => one.to_string(),
                _ => m.to_string(),
            };
        }
        let extra = columns
            .iter()
            .find(|c| c.starts_with("eval_") && !matches!(c.as_str(), "eval_loss" | "eval_acc") && has(c.as_str()));
        if has("eval_acc") {
            "eval_acc".into()
        } else if let Some(c) = extra {
            c.clone()
        } else if self.metrics.is_some() && !has("eval_loss") && has("train_loss") {
            "train_loss".into()
        } else {
            "eval_loss".into()
        }
    }

    /// The best metric: its column, value and epoch. From the checkpoint's progress (what
    /// picked best.safetensors), else the best row of metrics.csv.
    fn best(&self) -> Option<(String, f64, usize)> {
        let column = self.best_column();
        if let Some((best, epoch)) = self.progress.as_ref().and_then(|p| Some((p.best?, p.best_epoch?))) {
            let Some(table) = &self.metrics else { return Some((column, best, epoch)) };
            if table.at(&column, epoch).is_none_or(|v| v == best) {
                return Some((column, best, epoch));
            }
            // The Learner watched another column: the one that holds this value there.
            let other = table
                .columns
                .iter()
                .filter(|c| !matches!(c.as_str(), "epoch" | "lr" | "seconds"))
                .find(|c| table.at(c, epoch) == Some(best));
            return Some((other.cloned().unwrap_or(column), best, epoch));
        }
        let table = self.metrics.as_ref()?;
        let values = table.column(&column)?;
        let epochs = table.column("epoch")?;
        let lower = ["loss", "mae", "mse", "rmse", "error"].iter().any(|w| column.contains(w));
        let mut best: Option<(f64, f64)> = None;
        for (&v, &e) in values.iter().zip(&epochs) {
            if v.is_nan() {
                continue;
            }
            let better = best.is_none_or(|(b, _)| if lower { v < b } else { v > b });
            if better {
                best = Some((v, e));
            }
        }
        best.map(|(v, e)| (column, v, e as usize))
    }
}

/// The median of the finite values (the upper one of an even count, as the Learner
/// computes `seconds_per_epoch`).
fn median(v: &[f64]) -> Option<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(|a, b| a.total_cmp(b));
    Some(s[s.len() / 2])
}

/// A config as dotted keys and leaf values, in order, `name` first within each table
/// (`optimizer.name`, `optimizer.lr`). Arrays of tables are indexed
/// (`optimizer.groups[0].weight_decay`); other arrays are values.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    let join = |k: &str| if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
    match v {
        Value::Object(m) if !m.is_empty() => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by(|a, b| (a.as_str() != "name", a).cmp(&(b.as_str() != "name", b)));
            for k in keys {
                flatten(&join(k), &m[k.as_str()], out);
            }
        }
        Value::Array(a) if a.iter().any(Value::is_object) => {
            for (i, x) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), x, out);
            }
        }
        _ => out.push((if prefix.is_empty() { "config".into() } else { prefix.to_string() }, v.clone())),
    }
}

/// The keys whose values differ between `first` and `this`: this run's value, or `None`
/// where this run does not set a key the first one sets.
fn config_diff(first: &Value, this: &Value) -> Vec<(String, Option<Value>)> {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    flatten("", first, &mut a);
    flatten("", this, &mut b);
    let a_map: HashMap<&str, &Value> = a.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let b_map: HashMap<&str, &Value> = b.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut out: Vec<(String, Option<Value>)> = b
        .iter()
        .filter(|(k, v)| a_map.get(k.as_str()) != Some(&v))
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    out.extend(a.iter().filter(|(k, _)| !b_map.contains_key(k.as_str())).map(|(k, _)| (k.clone(), None)));
    out
}

/// A leaf value as `key=value` shows it: strings bare, the rest as JSON.
fn value_text(v: &Option<Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "(unset)".into(),
    }
}

/// A metric value for the table: 4 decimals, or 4 significant digits when tiny or huge.
fn number(x: f64) -> String {
    if !x.is_finite() {
        format!("{x}")
    } else if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e5) {
        format!("{x:.3e}")
    } else {
        format!("{x:.4}")
    }
}

/// A JSON number, or null for NaN and infinities.
fn finite(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

/// One row of the listing, as text cells and as JSON.
struct Row {
    cells: [String; 6],
    json: Value,
}

fn row(run: &Run, first: Option<&Run>) -> Row {
    let date = run.modified.map(utc_minute);
    let epochs = run.epochs();
    let best = run.best();
    let secs = run.seconds_per_epoch();
    // Against the first run listed; None where either has no stored config.
    let diff = match first {
        None => Some(Vec::new()),
        Some(f) => match (&f.config, &run.config) {
            (Some(a), Some(b)) => Some(config_diff(a, b)),
            _ => None,
        },
    };
    let diff_text = match (&diff, first) {
        (_, None) => "-".to_string(),
        (None, _) => "(no config: no readable checkpoint)".to_string(),
        (Some(d), _) if d.is_empty() => "(same config)".to_string(),
        (Some(d), _) => d.iter().map(|(k, v)| format!("{k}={}", value_text(v))).collect::<Vec<_>>().join(" "),
    };
    let cells = [
        run.name.clone(),
        date.clone().unwrap_or_else(|| "-".into()),
        epochs.map_or_else(|| "-".into(), |e| e.to_string()),
        best.as_ref().map_or_else(|| "-".into(), |(c, v, e)| format!("{c}={} at epoch {e}", number(*v))),
        secs.map_or_else(|| "-".into(), |s| format!("{s:.3}")),
        diff_text,
    ];
    let diff_json = diff.map(|d| {
        let map: serde_json::Map<String, Value> = d.into_iter().map(|(k, v)| (k, v.unwrap_or(Value::Null))).collect();
        Value::Object(map)
    });
    let json = json!({
        "name": run.name,
        "path": run.dir.display().to_string(),
        "date": date,
        "epochs": epochs,
        "best": best.map(|(c, v, e)| json!({ "metric": c, "value": finite(v), "epoch": e })),
        "seconds_per_epoch": secs.map(finite),
        "config_diff": diff_json,
    });
    Row { cells, json }
}

fn list(runs: &[Run], json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let rows: Vec<Row> = runs.iter().enumerate().map(|(i, r)| row(r, runs.first().filter(|_| i > 0))).collect();
    if json {
        let items: Vec<&Value> = rows.iter().map(|r| &r.json).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&items)?)?;
        return Ok(());
    }
    let header = ["RUN", "DATE", "EPOCHS", "BEST", "S/EPOCH", "CONFIG"].map(String::from);
    let lines: Vec<&[String; 6]> = std::iter::once(&header).chain(rows.iter().map(|r| &r.cells)).collect();
    let mut widths = [0usize; 6];
    for cells in &lines {
        for (w, c) in widths.iter_mut().zip(cells.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    for cells in lines {
        let mut line = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                line += c;
            } else {
                line += &format!("{c:<w$}  ");
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// A metrics.csv column as a file name: `eval_f1[average=macro]` → `eval_f1-average-macro`.
fn file_stem(label: &str) -> String {
    let mut out = String::new();
    for c in label.chars() {
        match c {
            c if c.is_ascii_alphanumeric() || c == '_' => out.push(c),
            _ if out.ends_with('-') => {}
            _ => out.push('-'),
        }
    }
    out.trim_matches('-').to_string()
}

/// Removes a directory when dropped (the chart's scratch directory).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn draw(runs: &[Run], metric: &str, dest: Option<&Path>, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let default = PathBuf::from(format!("runs-{}.png", file_stem(metric)));
    let dest = dest.unwrap_or(&default);
    let ext = dest.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let ext = match ext.as_deref() {
        Some(e @ ("png" | "svg")) => e.to_string(),
        _ => bail!("--out {}: the chart is written as PNG or SVG; name a .png or .svg file", dest.display()),
    };
    let mut lines = Vec::new();
    for run in runs {
        let Some(table) = &run.metrics else {
            bail!("{}: run {} has no metrics.csv to plot {metric} from", run.dir.display(), run.name);
        };
        let (Some(values), Some(epochs)) = (table.column(metric), table.column("epoch")) else {
            let columns: Vec<&str> =
                table.columns.iter().map(String::as_str).filter(|c| !matches!(*c, "epoch")).collect();
            bail!(
                "--plot {metric}: run {} ({}) has no column {metric:?} in metrics.csv; its columns: {}",
                run.name,
                run.dir.display(),
                columns.join(", ")
            );
        };
        let points: Vec<(f64, f64)> = epochs.into_iter().zip(values).filter(|(_, y)| y.is_finite()).collect();
        lines.push(Line::new(run.name.clone(), points).with_markers());
    }
    if lines.iter().all(|l| l.points.is_empty()) {
        bail!(
            "--plot {metric}: the column is empty in every run's metrics.csv (eval_acc and train_acc need class targets, eval_* columns an evaluation set); choose another column"
        );
    }
    // `figure` writes STEM.png and STEM.svg: draw both in a scratch directory beside the
    // destination, then move the one asked for into place.
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let scratch = Scratch(parent.join(format!(".ember-runs-plot-{}", std::process::id())));
    fs::create_dir_all(&scratch.0).with_context(|| format!("{}: cannot create the directory", parent.display()))?;
    let stem = scratch.0.join("chart");
    figure(&stem, "epoch", metric, &lines)?;
    let drawn = scratch.0.join(format!("chart.{ext}"));
    fs::rename(&drawn, dest).with_context(|| format!("{}: cannot write the chart", dest.display()))?;
    drop(scratch);
    let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
    if json {
        let o = json!({ "plot": dest.display().to_string(), "metric": metric, "runs": names });
        writeln!(out, "{}", serde_json::to_string_pretty(&o)?)?;
    } else {
        writeln!(out, "wrote {} ({metric} of {} runs: {})", dest.display(), runs.len(), names.join(", "))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_train::report::civil_from_days;
    use std::time::UNIX_EPOCH;

    #[test]
    fn civil_from_days_matches_the_calendar() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_000), (2024, 10, 4));
        assert_eq!(civil_from_days(2_932_896), (9999, 12, 31));
        assert_eq!(civil_from_days(-719_468), (0, 3, 1));
    }

    #[test]
    fn time_stamps_print_to_the_minute_in_utc() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_709_251_199);
        assert_eq!(utc_minute(t), "2024-02-29 23:59 UTC");
        assert_eq!(utc_minute(UNIX_EPOCH), "1970-01-01 00:00 UTC");
        let before = UNIX_EPOCH - std::time::Duration::from_secs(30);
        assert_eq!(utc_minute(before), "1969-12-31 23:59 UTC");
    }

    #[test]
    fn config_differences_are_dotted_keys_name_first() {
        let a = json!({"optimizer": {"name": "adam", "lr": 0.01, "groups": [{"weight_decay": 0.0}]}, "seed": 7});
        let b = json!({
            "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "groups": [{"weight_decay": 0.1}]},
            "seed": 7
        });
        let d = config_diff(&a, &b);
        let text: Vec<String> = d.iter().map(|(k, v)| format!("{k}={}", value_text(v))).collect();
        assert_eq!(
            text,
            [
                "optimizer.name=sgd",
                "optimizer.groups[0].weight_decay=0.1",
                "optimizer.lr=0.1",
                "optimizer.momentum=0.9"
            ]
        );
        let back: Vec<String> = config_diff(&b, &a).iter().map(|(k, v)| format!("{k}={}", value_text(v))).collect();
        assert!(back.contains(&"optimizer.momentum=(unset)".to_string()), "{back:?}");
        assert!(config_diff(&a, &a).is_empty());
    }

    #[test]
    fn metric_files_get_plain_names() {
        assert_eq!(file_stem("eval_f1[average=macro]"), "eval_f1-average-macro");
        assert_eq!(file_stem("eval_loss"), "eval_loss");
    }

    #[test]
    fn the_median_skips_missing_values() {
        assert_eq!(median(&[3.0, f64::NAN, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[f64::NAN]), None);
    }
}
