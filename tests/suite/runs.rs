//! `ember runs`: the table of runs (epochs, best metric, config differences), its JSON, the
//! chart of one metric across runs, and the errors for what is not a run or a column.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// A small classifier on synthetic data; the optimizer table is filled in per run.
const BASE: &str = r#"
seed = 7
[model]
sizes = [8, 16, 3]
[loss]
name = "cross_entropy"
[data]
kind = "synthetic"
n_train = 200
n_eval = 60
features = 8
classes = 3
[train]
epochs = 2
batch_size = 32
"#;

/// The three runs: directory name and optimizer table. rmsprop's lr equals adam's, so only
/// its name differs from the first run's config.
const RUNS: [(&str, &str); 3] = [
    ("adam", "name = \"adam\"\nlr = 0.01"),
    ("sgd", "name = \"sgd\"\nlr = 0.1\nmomentum = 0.9"),
    ("rmsprop", "name = \"rmsprop\"\nlr = 0.01"),
];

/// Runs the `ember` binary in `cwd`: (exit status, stdout, stderr).
fn ember_in(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ember")).args(args).current_dir(cwd).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

/// `head` followed by `dirs`.
fn cmd<'a>(head: &[&'a str], dirs: &[&'a str]) -> Vec<&'a str> {
    head.iter().chain(dirs).copied().collect()
}

/// Trains the three runs into `root/runs/NAME` (2 epochs each); returns their directories
/// in the order of [`RUNS`].
fn train_runs(root: &Path) -> Vec<PathBuf> {
    RUNS.iter()
        .map(|(name, optimizer)| {
            let cfg = root.join(format!("{name}.toml"));
            std::fs::write(&cfg, format!("{BASE}\n[optimizer]\n{optimizer}\n")).unwrap();
            let dir = root.join("runs").join(name);
            let (code, _, err) =
                ember_in(root, &["train", cfg.to_str().unwrap(), "--out", dir.to_str().unwrap(), "--quiet"]);
            assert_eq!(code, 0, "training {name}: {err}");
            dir
        })
        .collect()
}

/// The values of a metrics.csv column (empty fields as NaN).
fn column(dir: &Path, name: &str) -> Vec<f64> {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let mut lines = text.lines();
    let i = lines.next().unwrap().split(',').position(|c| c == name).unwrap();
    lines.map(|l| l.split(',').nth(i).unwrap().parse().unwrap_or(f64::NAN)).collect()
}

/// The stroke colours of an SVG's polylines.
fn polyline_strokes(svg: &str) -> Vec<String> {
    svg.split("<polyline")
        .skip(1)
        .filter_map(|p| {
            let tag = &p[..p.find("/>")?];
            let s = &tag[tag.find("stroke=\"")? + 8..];
            Some(s[..s.find('"')?].to_string())
        })
        .collect()
}

#[test]
fn runs_are_listed_compared_and_plotted() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let dirs = train_runs(root);
    let args: Vec<&str> = dirs.iter().map(|d| d.to_str().unwrap()).collect();

    // The table: a header and one row per run, in the order given, columns aligned.
    let (code, out, err) = ember_in(root, &cmd(&["runs"], &args));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "a header and three rows:\n{out}");
    assert!(lines[0].starts_with("RUN"), "{out}");
    let date_col = lines[0].find("DATE").unwrap();
    let epochs_col = lines[0].find("EPOCHS").unwrap();
    for (line, (name, _)) in lines[1..].iter().zip(RUNS) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[0], name, "{out}");
        // YYYY-MM-DD HH:MM UTC, where the DATE header starts.
        let date = &line[date_col..date_col + 20];
        let b = date.as_bytes();
        assert!(b[4] == b'-' && b[7] == b'-' && b[10] == b' ' && b[13] == b':', "{date:?} in {line}");
        assert!(date.ends_with(" UTC") && date[..4].parse::<u32>().unwrap() >= 2024, "{date:?}");
        assert_eq!(line[epochs_col..].split_whitespace().next(), Some("2"), "2 epochs: {line}");
        assert!(line.contains("eval_acc=") && line.contains(" at epoch "), "the best metric: {line}");
    }
    assert!(lines[1].ends_with(" -"), "the first run has no differences: {}", lines[1]);
    let sgd = lines[2];
    for diff in ["optimizer.name=sgd", "optimizer.lr=0.1", "optimizer.momentum=0.9"] {
        assert!(sgd.contains(diff), "{diff} in {sgd}");
    }
    let rmsprop = lines[3];
    assert!(rmsprop.contains("optimizer.name=rmsprop"), "{rmsprop}");
    assert!(!rmsprop.contains("optimizer.lr"), "rmsprop's lr equals adam's: {rmsprop}");
    assert!(!rmsprop.contains("train.") && !rmsprop.contains("model."), "only the optimizer differs: {rmsprop}");

    // JSON: the same fields, the config differences as an object.
    let (code, out, err) = ember_in(root, &cmd(&["runs", "--json"], &args));
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.len(), 3);
    for (row, ((name, _), dir)) in rows.iter().zip(RUNS.iter().zip(&dirs)) {
        assert_eq!(row["name"], *name);
        assert_eq!(row["epochs"], 2);
        assert!(row["date"].as_str().is_some_and(|d| d.len() == 20 && d.ends_with(" UTC")), "{row}");
        assert!(row["seconds_per_epoch"].as_f64().is_some_and(|s| s >= 0.0), "{row}");
        assert!(row["config_diff"].is_object(), "{row}");
        // The best: the highest eval_acc of metrics.csv, at the first epoch that reached it.
        let acc = column(dir, "eval_acc");
        let top = acc.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let epoch = acc.iter().position(|&a| a == top).unwrap() + 1;
        assert_eq!(row["best"]["metric"], "eval_acc", "{row}");
        assert_eq!(row["best"]["value"].as_f64(), Some(top), "{row}");
        assert_eq!(row["best"]["epoch"], epoch, "{row}");
    }
    assert_eq!(rows[0]["config_diff"], serde_json::json!({}));
    assert_eq!(rows[1]["config_diff"]["optimizer.name"], "sgd");
    assert_eq!(rows[1]["config_diff"]["optimizer.lr"], 0.1);
    assert_eq!(rows[1]["config_diff"]["optimizer.momentum"], 0.9);
    assert_eq!(rows[2]["config_diff"], serde_json::json!({"optimizer.name": "rmsprop"}));

    // A directory of runs, and the default `runs/`: every run in it, sorted by name.
    for line in [&["runs", "runs"][..], &["runs"][..]] {
        let (code, out, err) = ember_in(root, line);
        assert_eq!(code, 0, "{line:?}: {err}");
        let names: Vec<&str> = out.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
        assert_eq!(names, ["adam", "rmsprop", "sgd"], "{line:?}:\n{out}");
    }

    // One chart: a line per run, in its own colour, with the run names in the legend.
    let svg = root.join("x.svg");
    let head = ["runs", "--plot", "eval_loss", "--out", svg.to_str().unwrap()];
    let (code, out, err) = ember_in(root, &cmd(&head, &args));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(svg.to_str().unwrap()), "says where it wrote: {out}");
    let text = std::fs::read_to_string(&svg).unwrap();
    let strokes = polyline_strokes(&text);
    for colour in ["#0000FF", "#FF0000", "#00FF00"] {
        assert!(strokes.iter().any(|s| s == colour), "a {colour} line in {strokes:?}");
    }
    for (name, _) in RUNS {
        // plotters writes a text's content on a line of its own.
        assert!(text.replace('\n', "").contains(&format!("{name}</text>")), "{name} in the legend");
    }
    assert!(!root.join("x.png").exists(), "only the file asked for is written");

    // The default file: runs-METRIC.png in the current directory, a real PNG.
    let (code, out, err) = ember_in(root, &["runs", "--plot", "train_loss"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("runs-train_loss.png"), "{out}");
    let png = std::fs::read(root.join("runs-train_loss.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let left: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(".ember-runs-plot"))
        .collect();
    assert!(left.is_empty(), "no scratch directory left: {left:?}");

    // An unknown column names the run and lists the columns it has.
    let (code, _, err) = ember_in(root, &cmd(&["runs", "--plot", "eval_f2"], &args));
    assert_eq!(code, 1);
    assert!(err.contains("eval_f2") && err.contains("adam"), "{err}");
    assert!(err.contains("train_loss, train_acc, eval_loss, eval_acc, lr, seconds"), "{err}");

    // A run with only a metrics.csv (no checkpoints, no evaluation): listed from the CSV,
    // its best the lowest train_loss; plotting a column it lacks names it.
    let odd = root.join("odd");
    std::fs::create_dir(&odd).unwrap();
    let csv = "epoch,train_loss,eval_loss,lr,seconds\n1,0.75,,0.01,0.5\n2,0.5,,0.01,0.25\n";
    std::fs::write(odd.join("metrics.csv"), csv).unwrap();
    let (code, out, err) = ember_in(root, &["runs", odd.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("train_loss=0.5000 at epoch 2"), "{out}");
    let (code, _, err) = ember_in(root, &["runs", args[0], odd.to_str().unwrap(), "--plot", "eval_acc"]);
    assert_eq!(code, 1);
    assert!(err.contains("odd") && err.contains("its columns: train_loss, eval_loss, lr, seconds"), "{err}");
}

#[test]
fn what_is_not_a_run_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let empty = root.join("notes");
    std::fs::create_dir_all(empty.join("drafts")).unwrap();
    std::fs::write(empty.join("todo.txt"), "x").unwrap();
    let (code, out, err) = ember_in(root, &["runs", empty.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains(empty.to_str().unwrap()) && err.contains("not a run directory"), "{err}");

    // No runs/ here and no argument.
    let (code, _, err) = ember_in(root, &["runs"]);
    assert_eq!(code, 1);
    assert!(err.contains("runs: no such directory"), "{err}");

    // A missing directory, and a file.
    let (code, _, err) = ember_in(root, &["runs", "nowhere"]);
    assert_eq!(code, 1);
    assert!(err.contains("nowhere: no such directory"), "{err}");
    let (code, _, err) = ember_in(root, &["runs", empty.join("todo.txt").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("todo.txt: is a file"), "{err}");

    // --out without --plot, and a chart format that is neither PNG nor SVG.
    let run = root.join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::write(run.join("metrics.csv"), "epoch,train_loss,lr,seconds\n1,0.5,0.01,0.1\n").unwrap();
    let (code, _, err) = ember_in(root, &["runs", "run", "--out", "x.png"]);
    assert_eq!(code, 1);
    assert!(err.contains("--plot"), "{err}");
    let (code, _, err) = ember_in(root, &["runs", "run", "--plot", "train_loss", "--out", "x.jpg"]);
    assert_eq!(code, 1);
    assert!(err.contains("x.jpg") && err.contains(".png or .svg"), "{err}");
    assert!(!root.join("x.jpg").exists());
}
