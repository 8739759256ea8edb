//! The seed's experiments (examples/) print the seed's numbers and write their figures.

use std::path::PathBuf;
use std::process::Command;

/// An example binary built by `cargo test` beside this test binary.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is not built: `cargo test --workspace` builds the examples (or run `cargo build --examples`)",
        path.display()
    );
    path
}

fn run(name: &str, args: &[&str]) -> (String, tempfile::TempDir) {
    let out = tempfile::tempdir().unwrap();
    let o = Command::new(example(name)).args(args).args(["--out", out.path().to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{name}: {}", String::from_utf8_lossy(&o.stderr));
    (String::from_utf8(o.stdout).unwrap(), out)
}

fn figure_ok(dir: &std::path::Path, stem: &str) {
    let png = std::fs::read(dir.join(format!("{stem}.png"))).unwrap();
    assert!(png.len() > 1000 && png.starts_with(b"\x89PNG"), "{stem}.png");
    let svg = std::fs::read_to_string(dir.join(format!("{stem}.svg"))).unwrap();
    assert!(svg.starts_with("<svg") && svg.len() > 1000, "{stem}.svg");
}

#[test]
fn gradient_descent_reproduces_the_seed() {
    let (out, dir) = run("gradient_descent", &[]);
    for line in [
        "eta 0.2: epoch 10, x: 0.060466",
        "eta 0.05: epoch 10, x: 3.486784",
        "eta 1.1: epoch 10, x: 61.917364",
        "eta 2: epoch 10, x: -1.528166",
    ] {
        assert!(out.contains(line), "{line} missing from:\n{out}");
    }
    for stem in ["gd_square_eta0.2", "gd_square_eta0.05", "gd_square_eta1.1", "gd_xcos_eta2"] {
        figure_ok(dir.path(), stem);
    }
}

#[test]
fn optimizer_trajectories_reproduce_the_seed() {
    let (out, dir) = run("optimizer_trajectories", &[]);
    assert!(out.contains(r#"sgd {"lr": 0.4}: epoch 20, x1: -0.943467, x2: -0.000073"#), "{out}");
    assert!(out.contains(r#"sgd {"lr": 0.6, "momentum": 0.5}: epoch 20, x1: 0.007188, x2: 0.002553"#), "{out}");
    assert_eq!(out.lines().filter(|l| l.contains("epoch 20")).count(), 5);
    figure_ok(dir.path(), "optimizer_trajectories");
    // Any registered optimizer, by name.
    let (out, _) = run("optimizer_trajectories", &[r#"nadam:{"lr": 0.3}"#, "--steps", "5"]);
    assert!(out.contains(r#"nadam {"lr": 0.3}: epoch 5, x1: "#), "{out}");
}

#[test]
fn weight_decay_shrinks_the_weights_as_in_the_seed() {
    let (out, dir) = run("weight_decay", &[]);
    let norm = |lambda: &str| -> f64 {
        let line = out.lines().find(|l| l.starts_with(&format!("lambda {lambda}: L2 norm of w: "))).unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let (free, decayed) = (norm("0"), norm("3"));
    assert!((10.0..16.0).contains(&free), "about 13 without decay, got {free}");
    assert!((0.2..0.5).contains(&decayed), "about 0.34 with lambda 3, got {decayed}");
    figure_ok(dir.path(), "weight_decay_lambda0");
    figure_ok(dir.path(), "weight_decay_lambda3");
}

/// The custom-model example (a two-branch model written in Rust with an auxiliary loss,
/// trained by the Learner builder) killed with SIGKILL in the middle of a run resumes to
/// exactly the weights of a run that was never interrupted.
#[cfg(unix)]
#[test]
fn custom_model_killed_and_resumed_matches_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let common = ["--embedded", "--limit", "384", "--epochs", "3"];
    let run = |extra: &[&str]| {
        let o = Command::new(example("custom_model"))
            .args(common)
            .args(extra)
            .env("HF_ENDPOINT", "http://127.0.0.1:9")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (wa, wb) = (tmp.path().join("a.safetensors"), tmp.path().join("b.safetensors"));
    let out = run(&["--out", a.to_str().unwrap(), "--export", wa.to_str().unwrap()]);
    assert!(out.contains("epochs 3 ") && out.contains("eval_f1[average=macro]"), "{out}");
    // Killed while training epoch 2: epoch 1's checkpoint is on disk.
    let mut child = Command::new(example("custom_model"))
        .args(common)
        .args(["--out", b.to_str().unwrap(), "--stall-at-epoch", "2"])
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let first = b.join("checkpoints/epoch-0001.safetensors");
    let start = std::time::Instant::now();
    while !first.is_file() {
        assert!(start.elapsed().as_secs() < 60, "no checkpoint after a minute");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let _ = Command::new("kill").args(["-9", &child.id().to_string()]).status();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the run was meant to be killed, not to finish");
    assert!(!b.join("checkpoints/epoch-0002.safetensors").exists());
    let out = run(&["--out", b.to_str().unwrap(), "--resume", "--export", wb.to_str().unwrap()]);
    assert!(out.contains("epochs 3 "), "{out}");
    let load = |p: &std::path::Path| candle_core::safetensors::load(p, &candle_core::Device::Cpu).unwrap();
    let (ta, tb) = (load(&wa), load(&wb));
    assert_eq!(ta.len(), 8);
    for (name, x) in &ta {
        let (x, y) = (
            x.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            tb[name].flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert!(x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()), "{name} differs after the resume");
    }
    // The metrics of the two runs agree row for row (the seconds aside).
    let rows = |d: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(d.join("metrics.csv"))
            .unwrap()
            .lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_string())
            .collect()
    };
    assert_eq!(rows(&a), rows(&b));
}
