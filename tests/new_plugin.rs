//! `ember new-plugin`: the generated crate builds outside the workspace, passes its tests,
//! shows up in `plugins` and trains a config that names it, through its own binary,
//! with no edit to Ember.

use std::path::Path;
use std::process::Command;

fn ember(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ember")).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn every_kind_generates_a_crate_and_bad_names_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for kind in ["activation", "loss", "optimizer", "scheduler", "regularizer"] {
        let dir = tmp.path().join(kind);
        let (code, out, err) = ember(&["new-plugin", kind, &format!("my_{kind}"), "--dir", dir.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(&format!("{kind} plugin `my_{kind}`")), "{out}");
        for f in ["Cargo.toml", "Cargo.lock", "README.md", "src/lib.rs", "src/main.rs", "tests/parity.rs"] {
            assert!(dir.join(f).is_file(), "{kind}: {f}");
        }
        let fixture = std::fs::read_to_string(dir.join(format!("tests/my_{kind}.json"))).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&fixture).unwrap();
        assert_eq!(doc["cases"][0]["kind"], kind);
    }
    let (code, _, err) = ember(&["new-plugin", "optimizer", "My-Opt", "--dir", tmp.path().join("x").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("plugin name \"My-Opt\" is invalid: use snake_case"), "{err}");
    for (kind, name, says) in [
        ("optimizer", "fn", "is a Rust keyword"),
        ("loss", "self", "is a Rust keyword"),
        ("optimizer", "my__opt", "is invalid: use snake_case"),
        ("optimizer", "opt_", "is invalid: use snake_case"),
        ("activation", "std", "is taken by a crate"),
        ("optimizer", "ember_core", "is taken by a crate"),
        ("optimizer", "tensor", "would make a struct `Tensor`, which clashes"),
        ("scheduler", "state", "would make a struct `State`, which clashes"),
    ] {
        let dir = tmp.path().join(format!("bad-{name}"));
        let (code, _, err) = ember(&["new-plugin", kind, name, "--dir", dir.to_str().unwrap()]);
        assert_eq!(code, 1, "{name}: {err}");
        assert!(err.contains(&format!("plugin name {name:?} ")) && err.contains(says), "{name}: {err}");
        assert!(!dir.exists(), "{name}: nothing generated");
    }
    let (code, _, err) =
        ember(&["new-plugin", "optimizer", "again", "--dir", tmp.path().join("loss").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("the directory exists and is not empty"), "{err}");
}

#[test]
fn a_generated_optimizer_builds_passes_its_tests_and_trains_through_its_own_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("my_opt");
    let (code, _, err) = ember(&["new-plugin", "optimizer", "my_opt", "--dir", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    // Its own target directory (the outer `cargo test` holds the workspace's), kept
    // between runs so only the first build pays for the dependencies.
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/new-plugin");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .args(["test", "--offline", "--quiet"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "cargo test in the generated crate failed:\n{log}");
    assert!(log.contains("2 passed"), "the generated tests ran:\n{log}");

    let bin = target.join("debug").join(format!("my_opt-ember{}", std::env::consts::EXE_SUFFIX));
    let run = |args: &[&str]| Command::new(&bin).args(args).output().unwrap();
    let plugins = run(&["plugins", "--kind", "optimizer"]);
    assert!(String::from_utf8_lossy(&plugins.stdout).contains("my_opt  "), "listed");
    let config = tmp.path().join("run.toml");
    std::fs::write(
        &config,
        r#"
[model]
sizes = [4, 8, 2]
[loss]
name = "cross_entropy"
[optimizer]
name = "my_opt"
lr = 0.05
[data]
kind = "synthetic"
n_train = 64
n_eval = 32
features = 4
classes = 2
[train]
epochs = 2
batch_size = 16
"#,
    )
    .unwrap();
    let trained = run(&["train", config.to_str().unwrap(), "--out", tmp.path().join("r").to_str().unwrap(), "--quiet"]);
    assert!(trained.status.success(), "{}", String::from_utf8_lossy(&trained.stderr));
    assert!(String::from_utf8_lossy(&trained.stdout).contains("\"epochs\":2"));
}
