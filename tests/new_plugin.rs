//! `ember new-plugin`: the generated crate builds outside the workspace, passes its tests,
//! shows up in `plugins` and trains a config that names it, through its own binary,
//! with no edit to Ember.

use std::path::Path;
use std::process::Command;

fn ember(args: &[&str]) -> (i32, String, String) {
    ember_in(Path::new("."), args)
}

/// `ember ARGS` run in `dir`.
fn ember_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ember")).args(args).current_dir(dir).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn manifest(dir: &Path) -> toml::Table {
    toml::from_str(&std::fs::read_to_string(dir.join("Cargo.toml")).unwrap()).unwrap()
}

#[test]
fn every_kind_generates_a_crate_and_bad_names_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for kind in ["activation", "loss", "optimizer", "scheduler", "regularizer", "layer"] {
        let name = format!("my_{kind}");
        let dir = tmp.path().join(kind);
        let (code, out, err) = ember(&["new-plugin", kind, &name, "--dir", dir.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(&format!("{kind} plugin `{name}`")), "{out}");
        let mut files = vec![
            "Cargo.toml".to_string(),
            "Cargo.lock".into(),
            "README.md".into(),
            "rustfmt.toml".into(),
            "src/lib.rs".into(),
            "src/main.rs".into(),
            format!("src/{name}.rs"),
            format!("tests/{name}.json"),
            "tests/parity.rs".into(),
        ];
        if kind == "optimizer" {
            files.extend(["tests/state.rs".to_string(), format!("tests/gen_{name}.py")]);
        }
        for f in &files {
            assert!(dir.join(f).is_file(), "{kind}: {f}");
        }
        let count = walk(&dir).len();
        assert_eq!(count, files.len(), "{kind}: only the files listed");
        let fixture = std::fs::read_to_string(dir.join(format!("tests/{name}.json"))).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&fixture).unwrap();
        assert_eq!(doc["cases"][0]["kind"], kind);
        // The derive form: no hand-written registration or spec list.
        let module = std::fs::read_to_string(dir.join(format!("src/{name}.rs"))).unwrap();
        assert!(module.contains("#[derive(") && module.contains(&format!("#[plugin({kind} = \"{name}\"")), "{module}");
        assert!(!module.contains("inventory::submit") && !module.contains("ParamSpec"), "{module}");
        let cargo = manifest(&dir);
        assert_eq!(cargo["package"]["name"].as_str(), Some(name.as_str()));
        assert_eq!(cargo["bin"][0]["name"].as_str(), Some(format!("ember-{name}").as_str()));
        let mut deps: Vec<&String> = cargo["dependencies"].as_table().unwrap().keys().collect();
        deps.sort();
        assert_eq!(deps, ["candle-core", "ember-cli", "ember-core"], "{kind}: the library needs ember-core alone");
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
        ("optimizer", "chunk", "would make a struct `ChunkKernel`, which clashes"),
        ("scheduler", "state", "would make a struct `State`, which clashes"),
        ("loss", "reduction", "would make a struct `Reduction`, which clashes"),
    ] {
        let dir = tmp.path().join(format!("bad-{name}"));
        let (code, _, err) = ember(&["new-plugin", kind, name, "--dir", dir.to_str().unwrap()]);
        assert_eq!(code, 1, "{name}: {err}");
        assert!(err.contains(&format!("plugin name {name:?} ")) && err.contains(says), "{name}: {err}");
        assert!(!dir.exists(), "{name}: nothing generated");
    }
    for (krate, says) in [
        ("Ember-Opt", "is invalid: use lowercase letters, digits, '-' or '_'"),
        ("1opt", "is invalid"),
        ("my opt", "is invalid"),
        ("ember-core", "is taken by a crate"),
        ("ember_parity", "is taken by a crate"),
        ("fn", "is a Rust keyword"),
    ] {
        let dir = tmp.path().join("bad-crate");
        let (code, _, err) =
            ember(&["new-plugin", "optimizer", "my_opt", "--crate", krate, "--dir", dir.to_str().unwrap()]);
        assert_eq!(code, 1, "{krate}: {err}");
        assert!(err.contains(&format!("crate name {krate:?} ")) && err.contains(says), "{krate}: {err}");
        assert!(!dir.exists(), "{krate}: nothing generated");
    }
    let (code, _, err) =
        ember(&["new-plugin", "optimizer", "again", "--dir", tmp.path().join("loss").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("the directory exists and is not empty"), "{err}");
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flat_map(|e| {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

#[test]
fn a_crate_name_of_its_own_names_the_package_and_the_library() {
    let tmp = tempfile::tempdir().unwrap();
    // No --dir: the crate goes to ./CRATE.
    let (code, out, err) =
        ember_in(tmp.path(), &["new-plugin", "optimizer", "adabelief", "--crate", "ember-adabelief"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("optimizer plugin `adabelief`, crate `ember-adabelief`"), "{out}");
    let dir = tmp.path().join("ember-adabelief");
    for f in [
        "Cargo.toml",
        "Cargo.lock",
        "README.md",
        "rustfmt.toml",
        "src/lib.rs",
        "src/main.rs",
        "src/adabelief.rs",
        "tests/adabelief.json",
        "tests/parity.rs",
        "tests/state.rs",
        "tests/gen_adabelief.py",
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let cargo = manifest(&dir);
    assert_eq!(cargo["package"]["name"].as_str(), Some("ember-adabelief"));
    let bin = &cargo["bin"][0];
    assert_eq!(bin["name"].as_str(), Some("ember-adabelief"));
    assert_eq!(bin["required-features"].as_array().unwrap(), &[toml::Value::from("cli")]);
    assert_eq!(cargo["dependencies"]["ember-cli"]["optional"].as_bool(), Some(true));
    assert_eq!(cargo["features"]["cli"].as_array().unwrap(), &[toml::Value::from("dep:ember-cli")]);
    // The binary leaves out the hub's HTTP and parquet stack unless asked (`hub`).
    assert_eq!(cargo["dependencies"]["ember-cli"]["default-features"].as_bool(), Some(false));
    assert!(cargo["features"]["hub"].as_array().unwrap().contains(&toml::Value::from("ember-cli/hub")));
    assert!(cargo["dev-dependencies"].as_table().unwrap().contains_key("ember-parity"));
    assert!(cargo.contains_key("workspace"), "a workspace of its own");
    assert_eq!(cargo["profile"]["dev"]["debug"].as_str(), Some("line-tables-only"));
    let deps = &cargo["profile"]["dev"]["package"]["*"];
    assert_eq!((deps["opt-level"].as_integer(), deps["debug"].as_bool()), (Some(3), Some(false)));
    // Code names the library `ember_adabelief`, and the registry the plugin `adabelief`.
    let main = std::fs::read_to_string(dir.join("src/main.rs")).unwrap();
    assert!(main.contains("use ember_adabelief as _;"), "{main}");
    let parity = std::fs::read_to_string(dir.join("tests/parity.rs")).unwrap();
    assert!(parity.contains("\"ember_adabelief::adabelief\""), "{parity}");
    let module = std::fs::read_to_string(dir.join("src/adabelief.rs")).unwrap();
    assert!(module.contains("#[plugin(optimizer = \"adabelief\"") && module.contains("pub struct Adabelief {"));
    let gen = std::fs::read_to_string(dir.join("tests/gen_adabelief.py")).unwrap();
    assert!(gen.contains("\"name\": \"adabelief\"") && gen.contains("adabelief.json"), "{gen}");
}

/// The total of "N passed" over every test binary in a `cargo test` log.
fn passed(log: &str) -> usize {
    log.lines()
        .filter_map(|l| l.split_once("test result: ok. ")?.1.split_once(" passed")?.0.parse::<usize>().ok())
        .sum()
}

#[test]
fn a_generated_optimizer_builds_passes_its_tests_and_trains_through_its_own_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("my_opt");
    let (code, _, err) = ember(&["new-plugin", "optimizer", "my_opt", "--dir", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    // Its own target directory (the outer `cargo test` holds the workspace's), kept
    // between runs so only the first build pays for the dependencies; CI points
    // EMBER_NEW_PLUGIN_TARGET at a cache outside its fresh clone.
    let target = match std::env::var_os("EMBER_NEW_PLUGIN_TARGET") {
        Some(t) if !t.is_empty() => std::path::PathBuf::from(t),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/new-plugin"),
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let cargo_in_crate = |args: &[&str]| {
        let out = Command::new(&cargo)
            .args(args)
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTFLAGS")
            .output()
            .unwrap();
        let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), log)
    };
    let run_cargo = |args: &[&str]| {
        let (mut ok, mut log) = cargo_in_crate(args);
        // The generated crate depends on crates.io's candle-core, which the workspace
        // patches with vendor/candle-core: on a machine whose cargo cache has never seen
        // it, fetch it once (the package registry) and build offline again.
        if !ok && args.contains(&"--offline") && log.contains("no matching package named `candle-core`") {
            let (fetched, fetch_log) = cargo_in_crate(&["fetch"]);
            assert!(fetched, "cargo fetch in the generated crate failed:\n{fetch_log}");
            (ok, log) = cargo_in_crate(args);
        }
        assert!(ok, "cargo {args:?} in the generated crate failed:\n{log}");
        log
    };
    // One build with the `cli` feature: the tests and the `ember-my_opt` binary share
    // every dependency (a plain `cargo test` first would build the shared ones twice
    // wherever the features differ).
    let log = run_cargo(&["test", "--offline", "--quiet", "--features", "cli"]);
    // tests/parity.rs: parity, registration; tests/state.rs: state round trip, fused = composed.
    assert_eq!(passed(&log), 4, "the generated tests ran:\n{log}");

    let bin = target.join("debug").join(format!("ember-my_opt{}", std::env::consts::EXE_SUFFIX));
    let run = |args: &[&str]| Command::new(&bin).args(args).output().unwrap();
    let plugins = run(&["plugins", "--kind", "optimizer"]);
    let listing = String::from_utf8_lossy(&plugins.stdout);
    assert!(listing.contains("my_opt  "), "listed:\n{listing}");
    assert!(listing.contains("beta: float = 0.9  (decay of the gradient average; in [0, 1))"), "{listing}");
    let parity = run(&["parity", dir.join("tests/my_opt.json").to_str().unwrap()]);
    assert!(parity.status.success(), "{}", String::from_utf8_lossy(&parity.stdout));
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
