//! `ember new-plugin KIND NAME`: a new plugin crate that compiles, passes its tests and
//! runs Ember's CLI with the plugin linked, as generated. The plugin is declared the way
//! Ember's own are (`#[derive(Hyperparams)]`); an optimizer also gets a typed state, a
//! fused CPU kernel, their tests and a PyTorch reference script.
//!
//! The templates are plain text with placeholders (`@name@`, `@Camel@`, ...) that
//! [`Names::fill`] replaces.

use std::path::{Path, PathBuf};

use ember_core::registry::Kind;

/// Where this Ember's sources are (path dependencies of the generated crate): the
/// workspace root, two levels above this crate.
pub const EMBER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// Generates the plugin `name` of `kind` as the crate `crate_name` (default `name`) in
/// `dir` (default `./CRATE`); returns its path.
pub fn new_plugin(
    kind: Kind,
    name: &str,
    crate_name: Option<&str>,
    dir: Option<&Path>,
    ember_dir: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    if kind == Kind::Metric {
        anyhow::bail!(
            "`ember new-plugin` does not generate metric crates yet: implement `ember_core::Metric` on a struct with \
             #[derive(Hyperparams)] and #[plugin(metric = \"{name}\", summary = \"...\")], as plugins/metrics does"
        );
    }
    check_name(kind, name)?;
    let krate = crate_name.unwrap_or(name);
    check_crate(krate)?;
    let root = dir.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(krate));
    if root.exists() && std::fs::read_dir(&root)?.next().is_some() {
        anyhow::bail!("{}: the directory exists and is not empty; choose another --dir", root.display());
    }
    let ember = ember_dir.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(EMBER_DIR));
    let ember =
        ember.canonicalize().map_err(|e| anyhow::anyhow!("{}: cannot find Ember's sources: {e}", ember.display()))?;
    if !ember.join("crates/core/Cargo.toml").is_file() {
        anyhow::bail!(
            "{}: not Ember's sources (there is no crates/core/Cargo.toml); pass --ember-path",
            ember.display()
        );
    }
    let names = Names::new(kind, name, krate);
    for (rel, text) in files(&names, &ember) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("a parent"))?;
        std::fs::write(&path, text)?;
    }
    // The same dependency versions as this Ember (and no network needed to resolve them).
    let lock = ember.join("Cargo.lock");
    if lock.is_file() {
        std::fs::copy(lock, root.join("Cargo.lock"))?;
    }
    Ok(root)
}

/// Every name the templates use.
struct Names<'a> {
    kind: Kind,
    /// The registry name, also the module's (`my_opt`).
    name: &'a str,
    /// The plugin's struct (`MyOpt`).
    camel: String,
    /// The package (`ember-my_opt`).
    krate: &'a str,
    /// The library, as code names it (`ember_my_opt`).
    lib: String,
}

impl<'a> Names<'a> {
    fn new(kind: Kind, name: &'a str, krate: &'a str) -> Self {
        Names { kind, name, camel: camel_case(name), krate, lib: krate.replace('-', "_") }
    }

    /// `template` with its placeholders replaced.
    fn fill(&self, template: &str) -> String {
        let kind_camel = camel_case(self.kind.as_str());
        [
            ("@name@", self.name),
            ("@Camel@", self.camel.as_str()),
            ("@crate@", self.krate),
            ("@lib@", self.lib.as_str()),
            ("@kind@", self.kind.as_str()),
            ("@Kind@", kind_camel.as_str()),
        ]
        .iter()
        .fold(template.to_string(), |text, (key, value)| text.replace(key, value))
    }
}

/// (path in the crate, contents) of every generated file but Cargo.lock.
fn files(n: &Names, ember: &Path) -> Vec<(String, String)> {
    let (module, fixture) = template(n);
    let name = n.name;
    let mut files = vec![
        ("Cargo.toml".to_string(), cargo_toml(n, ember)),
        ("README.md".to_string(), readme(n)),
        ("rustfmt.toml".to_string(), RUSTFMT_TOML.to_string()),
        ("src/lib.rs".to_string(), n.fill(LIB_RS)),
        (format!("src/{name}.rs"), module),
        ("src/main.rs".to_string(), n.fill(MAIN_RS)),
        (format!("tests/{name}.json"), fixture),
        ("tests/parity.rs".to_string(), n.fill(&PARITY_RS.replace("@checks@", registration_checks(n.kind)))),
    ];
    if n.kind == Kind::Optimizer {
        files.push(("tests/state.rs".to_string(), n.fill(STATE_RS)));
        files.push((format!("tests/gen_{name}.py"), n.fill(GEN_PY)));
    }
    files
}

/// Rust's keywords (strict and reserved, every edition): none can name a module.
const KEYWORDS: [&str; 51] = [
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for", "if", "impl", "in",
    "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self", "static", "struct", "super", "trait",
    "true", "type", "unsafe", "use", "where", "while", "async", "await", "dyn", "abstract", "become", "box", "do",
    "final", "macro", "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

/// Library names the generated crate and its module cannot take: Rust's own crates,
/// Ember's crates (its dependencies, direct or not) and candle.
const TAKEN: [&str; 21] = [
    "std",
    "core",
    "alloc",
    "test",
    "proc_macro",
    "candle_core",
    "ember",
    "ember_core",
    "ember_macros",
    "ember_parity",
    "ember_cli",
    "ember_nn",
    "ember_train",
    "ember_data",
    "ember_activations",
    "ember_losses",
    "ember_optimizers",
    "ember_schedulers",
    "ember_regularizers",
    "ember_layers",
    "ember_metrics",
];

/// Names from Rust's prelude that the templates use: a struct of that name would hide them.
const PRELUDE: [&str; 5] = ["Option", "Result", "Vec", "String", "Box"];

/// A plugin name is usable when it is a snake_case identifier, not a keyword, not a crate
/// the generated one depends on, and none of the types the template declares for it
/// (`MyOpt`, `MyOptState`, ...) clashes with a name the template imports or declares
/// (`tensor` would make a struct `Tensor`).
fn check_name(kind: Kind, name: &str) -> anyhow::Result<()> {
    let snake = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.contains("__")
        && !name.ends_with('_');
    if !snake {
        anyhow::bail!(
            "plugin name {name:?} is invalid: use snake_case (lowercase letters, digits, single underscores between words) starting with a letter, e.g. my_opt"
        );
    }
    if KEYWORDS.contains(&name) {
        anyhow::bail!(
            "plugin name {name:?} is a Rust keyword and cannot name a crate's module; choose another, e.g. my_{name}"
        );
    }
    if TAKEN.contains(&name) {
        anyhow::bail!(
            "plugin name {name:?} is taken by a crate the generated one uses or by Rust itself; choose another, e.g. my_{name}"
        );
    }
    let (module, _) = template(&Names::new(kind, name, name));
    // `use` statements (one may span lines), read from the code without its comments.
    let code: Vec<&str> = module.lines().filter(|line| !line.trim_start().starts_with("//")).collect();
    let code = code.join("\n");
    let imported: Vec<&str> = code
        .split(';')
        .map(str::trim_start)
        .filter(|statement| statement.starts_with("use "))
        .flat_map(|statement| statement.split(|c: char| !(c.is_alphanumeric() || c == '_')))
        .collect();
    let declared: Vec<&str> = module
        .lines()
        .filter_map(|line| {
            let line = line.trim_start().strip_prefix("pub ").unwrap_or(line.trim_start());
            line.strip_prefix("struct ").or_else(|| line.strip_prefix("enum "))
        })
        .filter_map(|rest| rest.split(|c: char| !(c.is_alphanumeric() || c == '_')).next())
        .collect();
    let camel = camel_case(name);
    // The plugin's own types: its struct and those named after it.
    for ty in declared.iter().filter(|ty| ty.starts_with(camel.as_str())) {
        let clash = if imported.contains(ty) {
            Some("that the plugin imports")
        } else if declared.iter().filter(|d| *d == ty).count() > 1 {
            Some("that the plugin declares")
        } else if PRELUDE.contains(ty) {
            Some("from Rust's prelude")
        } else {
            None
        };
        if let Some(source) = clash {
            anyhow::bail!(
                "plugin name {name:?} would make a struct `{ty}`, which clashes with `{ty}` {source}; choose another, e.g. my_{name}"
            );
        }
    }
    Ok(())
}

/// A crate name is usable when it is lowercase letters, digits, '-' or '_' starting with
/// a letter, and its library name ('-' read as '_') is not a keyword nor a crate the
/// generated one uses.
fn check_crate(krate: &str) -> anyhow::Result<()> {
    let valid = krate.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && krate.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        anyhow::bail!(
            "crate name {krate:?} is invalid: use lowercase letters, digits, '-' or '_', starting with a letter, e.g. ember-my_opt"
        );
    }
    let lib = krate.replace('-', "_");
    if KEYWORDS.contains(&lib.as_str()) {
        anyhow::bail!(
            "crate name {krate:?} is a Rust keyword and cannot name a library; choose another, e.g. my-{krate}"
        );
    }
    if TAKEN.contains(&lib.as_str()) {
        anyhow::bail!(
            "crate name {krate:?} is taken by a crate the generated one uses or by Rust itself; choose another, e.g. my-{krate}"
        );
    }
    Ok(())
}

/// `my_opt` -> `MyOpt`.
fn camel_case(name: &str) -> String {
    name.split('_').filter(|w| !w.is_empty()).map(|w| w[..1].to_uppercase() + &w[1..]).collect()
}

fn cargo_toml(n: &Names, ember: &Path) -> String {
    n.fill(CARGO_TOML).replace("@ember@", &ember.display().to_string())
}

const CARGO_TOML: &str = r##"[package]
name = "@crate@"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
# The plugin itself needs only the core (traits, registry, derives) and candle.
ember-core = { path = "@ember@/crates/core" }
candle-core = "0.11"
# Only for the `ember-@name@` binary (`cargo run --features cli -- ...`).
ember-cli = { path = "@ember@/crates/cli", optional = true, default-features = false }

[features]
# Ember's CLI as this crate's binary: datasets from disk, synthetic or embedded.
cli = ["dep:ember-cli"]
# The same, plus Fashion-MNIST and MNIST from the Hugging Face hub (an HTTP and parquet
# stack that takes longer to build): `cargo run --features hub -- train ...`.
hub = ["cli", "ember-cli/hub"]

[[bin]]
name = "ember-@name@"
path = "src/main.rs"
required-features = ["cli"]

[dev-dependencies]
# The parity checker `ember parity` uses, as a library.
ember-parity = { path = "@ember@/crates/parity" }

# A crate of its own, even when generated inside another workspace.
[workspace]

# Line tables only for this crate: backtraces keep file and line, test binaries stay small.
[profile.dev]
debug = "line-tables-only"

# Dependencies (Ember, candle) optimized and without debug info: tests run fast, and
# the first build takes minutes rather than a quarter of an hour.
[profile.dev.package."*"]
opt-level = 3
debug = false
"##;

/// Ember's code style, which the templates follow (`cargo fmt`).
const RUSTFMT_TOML: &str = "max_width = 120\nuse_small_heuristics = \"Max\"\n";

const LIB_RS: &str = r##"//! The `@name@` @kind@ plugin for Ember, registered as `@name@`.
//!
//! A program gets the registration by linking the crate: `use @lib@ as _;`.

mod @name@;

pub use @name@::*;
"##;

const MAIN_RS: &str = r##"//! `ember-@name@`: Ember's full command line with the `@name@` plugin linked, so
//! `ember-@name@ plugins --kind @kind@` lists it, `ember-@name@ train run.toml` can name it
//! and `ember-@name@ parity tests/@name@.json` checks it. Built with `--features cli`
//! (`cargo run --features cli -- ...`), so the plugin library itself depends on
//! `ember-core` alone.

use @lib@ as _;

fn main() {
    ember_cli::main()
}
"##;

fn readme(n: &Names) -> String {
    let optimizer = n.kind == Kind::Optimizer;
    let extra_files = if optimizer {
        "| `tests/state.rs` | the state round trip (save, load, then the next step bit-identical to an uninterrupted run) and the fused CPU kernel against the composed ops, bit for bit |\n\
         | `tests/gen_@name@.py` | the PyTorch reference script that writes `tests/@name@.json`: your reference implementation goes here |\n"
    } else {
        ""
    };
    let config = match n.kind {
        Kind::Activation => "[model]\nactivation = \"@name@\"\nactivation_config = { scale = 2.0 }",
        Kind::Loss => "[loss]\nname = \"@name@\"\nreduction = \"sum\"",
        Kind::Optimizer => "[optimizer]\nname = \"@name@\"\nlr = 0.01\nbeta = 0.9",
        Kind::Scheduler => "[scheduler]\nname = \"@name@\"\nfactor = 0.9",
        Kind::Regularizer => "[[regularizers]]\nname = \"@name@\"\nlambda = 0.001",
        Kind::Layer => "[[model.layers]]\nname = \"flatten\"\n\n[[model.layers]]\nname = \"@name@\"\ninit = 0.5\n\n[[model.layers]]\nname = \"linear\"\nout_features = 10",
        // Refused by `new_plugin` before any template is filled.
        Kind::Metric => "",
    };
    let math = if optimizer {
        "`step` in `src/@name@.rs` has two paths that must agree: the composed one (candle\n\
ops, every device) and the fused CPU kernel (`@Camel@Kernel`, one pass over memory\n\
for contiguous f32/f64 CPU tensors). Change both, keeping the kernel's arithmetic in the\n\
composed ops' order; `tests/state.rs` checks that they give the same bits\n\
(`EMBER_KERNELS=composed` runs the composed path everywhere). The state struct\n\
`@Camel@State` is what checkpoints store: add a field per buffer you keep, named as\n\
PyTorch names it (`exp_avg_sq`, `momentum_buffer`, ...).\n\
\n\
Then the reference: put your reference implementation (the paper's pseudo-code, or the\n\
authors' PyTorch optimizer) in `tests/gen_@name@.py` and regenerate the fixture:\n\
\n\
```sh\n\
python3 tests/gen_@name@.py      # needs torch; writes tests/@name@.json\n\
cargo test\n\
```\n"
    } else {
        "Replace the math in `src/@name@.rs`, then regenerate `tests/@name@.json` from your\n\
reference implementation (usually PyTorch): Ember's `PARITY.md` describes the format of\n\
a @kind@ case.\n"
    };
    let command = if n.krate == n.name {
        "ember new-plugin @kind@ @name@".to_string()
    } else {
        "ember new-plugin @kind@ @name@ --crate @crate@".to_string()
    };
    n.fill(&format!(
        r##"# @crate@: an Ember @kind@ plugin

Generated by `{command}`:
the @kind@ `@name@` in the crate `@crate@`, declared the way Ember's own plugins are.
As generated it builds, passes its tests and runs Ember's CLI with the plugin linked;
its math is a placeholder to replace with yours.

## The files

| file | what it holds |
|---|---|
| `Cargo.toml` | the library depends on `ember-core` and `candle-core` only; `ember-cli` for the binary (feature `cli`), `ember-parity` for the tests |
| `rustfmt.toml` | Ember's code style, for `cargo fmt` |
| `src/lib.rs` | crate docs and `mod @name@;` |
| `src/@name@.rs` | `@Camel@`: its hyperparameters (fields with their defaults, checks and the doc lines `ember plugins` shows), its registration (`#[plugin(...)]`) and the math |
| `src/main.rs` | the `ember-@name@` binary: Ember's full CLI with this plugin linked |
| `tests/@name@.json` | reference numbers in Ember's parity format (`PARITY.md`) |
| `tests/parity.rs` | runs them through the same code as `ember parity`, and checks the registration (defaults, config checks) |
{extra_files}
## Build, test, run

```sh
# the tests above
cargo test
# `@name@` listed with its hyperparameters
cargo run --features cli -- plugins --kind @kind@
# the parity check, as a report
cargo run --features cli -- parity tests/@name@.json
# a training run whose config names `@name@` (below)
cargo run --features cli -- train run.toml
```

`cargo build --features cli` builds the binary `ember-@name@` (in `target/debug/`). It
trains on data from disk (`--data-dir`), synthetic data or the embedded Fashion-MNIST
subset; `--features hub` adds downloads from the Hugging Face hub.
A run config selects the plugin by name, with its keys:

```toml
{config}
```

## Change the math

{math}
## Use it from another program

A program that wants the plugin depends on this crate and names it once in code:
`use @lib@ as _;` (a crate nothing names is not linked, and its registration vanishes).
"##
    ))
}

const PARITY_RS: &str = r##"//! The `@name@` plugin against its reference numbers in `@name@.json`, through the same
//! code as `ember parity`, and as users meet it: listed with its defaults, its config
//! checked when it is built by name.

use ember_core::{registry, Config, DefaultValue, Kind, Value};

// Links the plugin crate, so that its registration exists.
use @lib@ as _;

#[test]
fn matches_the_reference_numbers() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/@name@.json");
    let file = ember_parity::load(&path).unwrap();
    assert!(!file.cases.is_empty());
    for (i, case) in file.cases.iter().enumerate() {
        let r = ember_parity::run_case(case, i);
        assert!(r.passed(), "{}: {:?}", r.id, r.outcome);
    }
}

/// The error building `@name@` with `key = value` gives.
fn refused(key: &str, value: Value) -> String {
    let config: Config = [(key.to_string(), value)].into_iter().collect();
    ember_core::@kind@("@name@", &config, &Default::default()).unwrap_err().to_string()
}

#[test]
fn is_registered_with_its_defaults_and_checks_its_config() {
    let listed = registry::plugins(Kind::@Kind@);
    let plugin = listed.iter().find(|p| p.name == "@name@").expect("registered");
    assert_eq!(plugin.module, "@lib@::@name@");
    let defaults: Vec<_> = plugin.params.iter().map(|s| (s.name, s.default)).collect();
@checks@}
"##;

/// The kind's lines of the registration test: the defaults, and a value its checks refuse.
fn registration_checks(kind: Kind) -> &'static str {
    match kind {
        Kind::Optimizer => {
            r#"    assert_eq!(defaults, [("lr", DefaultValue::Float(1e-3)), ("beta", DefaultValue::Float(0.9))]);
    assert_eq!(refused("beta", Value::Float(1.0)), "@name@.beta = 1.0 is invalid: must be in [0, 1)");
    assert_eq!(refused("lr", Value::Float(-1.0)), "@name@.lr = -1.0 is invalid: must be >= 0");
"#
        }
        Kind::Activation => {
            r#"    assert_eq!(defaults, [("scale", DefaultValue::Float(1.0))]);
    let e = refused("scale", Value::Float(f64::INFINITY));
    assert!(e.starts_with("@name@.scale = ") && e.ends_with("is invalid: must be finite"), "{e}");
"#
        }
        Kind::Loss => {
            r#"    assert_eq!(defaults, [("reduction", DefaultValue::Str("mean"))]);
    let e = refused("reduction", Value::Str("median".into()));
    assert!(e.starts_with("@name@.reduction = \"median\" is invalid: must be one of"), "{e}");
"#
        }
        Kind::Scheduler => {
            r#"    assert_eq!(defaults, [("factor", DefaultValue::Float(0.5))]);
    assert_eq!(refused("factor", Value::Float(2.0)), "@name@.factor = 2.0 is invalid: must be in (0, 1]");
"#
        }
        Kind::Layer => {
            r#"    assert_eq!(defaults, [("init", DefaultValue::Float(1.0))]);
    let e = refused("init", Value::Float(f64::INFINITY));
    assert!(e.starts_with("@name@.init = ") && e.ends_with("is invalid: must be finite"), "{e}");
"#
        }
        Kind::Regularizer => {
            r#"    assert_eq!(defaults, [("lambda", DefaultValue::Float(0.01))]);
    assert_eq!(refused("lambda", Value::Float(-1.0)), "@name@.lambda = -1.0 is invalid: must be >= 0");
"#
        }
        Kind::Metric => "",
    }
}

/// The parity problem every generated optimizer fixture uses.
const X0: [f64; 2] = [1.0, -2.0];
const A: [f64; 2] = [1.0, 2.0];
const B: [f64; 2] = [0.5, -1.0];

/// The placeholder optimizer's trajectory on the parity problem (g = 2·a·x + b before
/// each step), in f64 and in the order of the generated plugin's composed ops, so that
/// the generated crate matches it to the last bit.
fn optimizer_trajectory(lr: f64, beta: f64, steps: usize) -> String {
    let (mut x, mut m) = (X0, [0.0f64; 2]);
    let w = 1.0 - beta;
    let points: Vec<String> = (1..=steps)
        .map(|t| {
            let step_size = lr / (1.0 - beta.powf(t as f64));
            for i in 0..2 {
                let g = (A[i] * 2.0 + 0.0) * x[i] + B[i];
                let diff = g - m[i];
                m[i] = if w < 0.5 { m[i] + (diff * w + 0.0) } else { g - (diff * (1.0 - w) + 0.0) };
                x[i] += m[i] * -step_size + 0.0;
            }
            format!("[{:?},{:?}]", x[0], x[1])
        })
        .collect();
    points.join(",")
}

/// (module source, parity fixture) for the placeholder of each kind.
fn template(n: &Names) -> (String, String) {
    let name = n.name;
    match n.kind {
        Kind::Optimizer => {
            let case = |tag: &str, config: &str, lr: f64, beta: f64| {
                format!(
                    r#"{{"id":"{name}/{tag}/f64","kind":"optimizer","name":"{name}","config":{config},"dtype":"f64","inputs":{{"x0":{X0:?},"a":{A:?},"b":{B:?},"steps":5}},"expected":{{"trajectory":[{}]}}}}"#,
                    optimizer_trajectory(lr, beta, 5)
                )
            };
            let fixture = format!(
                r#"{{"format":"ember-parity/1","source":"ember new-plugin: the placeholder math, computed by the generator; tests/gen_{name}.py rewrites this file","cases":[{},{}]}}
"#,
                case("lr0.1", r#"{"lr":0.1}"#, 0.1, 0.9),
                case("lr0.1-beta0.3", r#"{"lr":0.1,"beta":0.3}"#, 0.1, 0.3),
            );
            (n.fill(OPTIMIZER), fixture)
        }
        Kind::Activation => (
            n.fill(ACTIVATION),
            format!(
                r#"{{"format":"ember-parity/1","source":"ember new-plugin: scale * x","cases":[{{"id":"{name}/scale2/f64","kind":"activation","name":"{name}","config":{{"scale":2.0}},"dtype":"f64","inputs":{{"input":[-1.5,0.0,2.0]}},"expected":{{"output":[-3.0,0.0,4.0],"grad_input":[2.0,2.0,2.0]}}}}]}}
"#
            ),
        ),
        Kind::Loss => (
            n.fill(LOSS),
            format!(
                r#"{{"format":"ember-parity/1","source":"ember new-plugin: mean squared error","cases":[{{"id":"{name}/mean/f64","kind":"loss","name":"{name}","config":{{"reduction":"mean"}},"dtype":"f64","inputs":{{"input":[1.0,2.0],"target":[0.0,4.0]}},"expected":{{"output":2.5,"grad_input":[1.0,-2.0]}}}}]}}
"#
            ),
        ),
        Kind::Scheduler => (
            n.fill(SCHEDULER),
            format!(
                r#"{{"format":"ember-parity/1","source":"ember new-plugin: lr * factor","cases":[{{"id":"{name}/half/f64","kind":"scheduler","name":"{name}","config":{{"factor":0.5}},"dtype":"f64","inputs":{{"lr":1.0,"steps":4}},"expected":{{"lr":[1.0,0.5,0.25,0.125]}}}}]}}
"#
            ),
        ),
        Kind::Layer => (
            n.fill(LAYER),
            format!(
                r#"{{"format":"ember-parity/1","source":"ember new-plugin: x * weight","cases":[{{"id":"{name}/f64","kind":"layer","name":"{name}","config":{{"init":1.0}},"dtype":"f64","mode":"train","inputs":{{"input":[[1.0,-2.0],[3.0,0.5]],"state":{{"weight":[2.0,-1.0]}}}},"expected":{{"output":[[2.0,2.0],[6.0,-0.5]],"grad_input":[[2.0,-1.0],[2.0,-1.0]],"grad_weight":[4.0,-1.5],"state_after":{{"weight":[2.0,-1.0]}}}}}}]}}
"#
            ),
        ),
        Kind::Regularizer => (
            n.fill(REGULARIZER),
            format!(
                r#"{{"format":"ember-parity/1","source":"ember new-plugin: lambda * sum(w^2)","cases":[{{"id":"{name}/f64","kind":"regularizer","name":"{name}","config":{{"lambda":0.5}},"dtype":"f64","inputs":{{"input":[1.0,-2.0]}},"expected":{{"penalty":2.5,"grad_input":[1.0,-2.0]}}}}]}}
"#
            ),
        ),
        Kind::Metric => (String::new(), String::new()),
    }
}

const OPTIMIZER: &str = r##"//! `@name@`: an optimizer. A placeholder to replace with yours: a momentum (an
//! exponential moving average of the gradient) with bias correction, written the way
//! Ember's own optimizers are: the hyperparameters declared once, a typed state, candle
//! ops for every device and a fused kernel for the CPU.

use candle_core::{Tensor, Var};
use ember_core::ops::fused::{par_chunks, with_cpu_data, ChunkKernel, CpuFloat};
use ember_core::ops::pointwise::Real;
use ember_core::optim::{add_scaled, fused_kind, lerp, zeros, Fused};
use ember_core::{check, Hyperparams, Optimizer, OptimizerState, Result, StepContext};

/// The `@name@` optimizer, step t:
///
/// ```text
/// m ← β·m + (1 - β)·g          (lerp(m, g, 1 - β), as PyTorch's exp_avg.lerp_(g, 1 - β))
/// p ← p - (lr / (1 - βᵗ))·m    (the average's bias towards its zero start corrected)
/// ```
///
/// `lr` is declared in `#[plugin]` and reaches each step as `ctx.lr` (a scheduler may
/// change it); β is the scheduled momentum when a scheduler cycles it (`one_cycle`).
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(optimizer = "@name@", summary = "momentum with bias correction (placeholder)", lr = 1e-3)]
pub struct @Camel@ {
    /// decay of the gradient average; in [0, 1)
    #[param(default = 0.9, check = check::unit_interval)]
    pub beta: f64,
}

/// `@name@`'s state for one parameter. Checkpoints store each field under its name; a
/// saved state with a missing or an unknown entry is refused when it is loaded.
#[derive(Clone, Debug, OptimizerState)]
pub struct @Camel@State {
    /// Steps taken.
    pub step: f64,
    /// The gradient average m.
    pub exp_avg: Tensor,
}

impl Optimizer for @Camel@ {
    type State = @Camel@State;

    fn init_state(&self, param: &Tensor) -> Result<@Camel@State> {
        Ok(@Camel@State { step: 0.0, exp_avg: zeros(param)? })
    }

    fn step(&self, param: &Var, grad: &Tensor, state: &mut Self::State, ctx: &StepContext) -> Result<()> {
        state.step += 1.0;
        let beta = ctx.momentum_or(self.beta);
        // Scalars in f64, as PyTorch computes them in Python.
        let step_size = ctx.lr / (1.0 - beta.powf(state.step));
        let p = param.as_tensor();
        // The fused kernel for contiguous f32/f64 CPU tensors (unless the kernels are
        // `composed`: EMBER_KERNELS=composed), candle ops everywhere else.
        match fused_kind(p, grad, &[&state.exp_avg]) {
            Some(Fused::F32) => fused::<f32>(p, grad, &state.exp_avg, beta, step_size),
            Some(Fused::F64) => fused::<f64>(p, grad, &state.exp_avg, beta, step_size),
            None => {
                state.exp_avg = composed(param, grad, &state.exp_avg, beta, step_size)?;
                Ok(())
            }
        }
    }
}

/// The update as candle ops (every device and dtype, and the reference for the kernel);
/// returns the new average.
fn composed(param: &Var, grad: &Tensor, exp_avg: &Tensor, beta: f64, step_size: f64) -> Result<Tensor> {
    let m = lerp(exp_avg, grad, 1.0 - beta)?;
    param.set(&add_scaled(param.as_tensor(), &m, -step_size)?)?;
    Ok(m)
}

/// The same update in one pass over CPU memory, in place, on every core.
fn fused<T: CpuFloat + Real>(param: &Tensor, grad: &Tensor, exp_avg: &Tensor, beta: f64, step_size: f64) -> Result<()> {
    let w = 1.0 - beta;
    // Each constant computed in f64 and rounded to T, as candle's `affine` rounds its factor.
    let (one_minus_w, neg_step) = (T::of(1.0 - w), T::of(-step_size));
    let kernel = @Camel@Kernel { w: T::of(w), one_minus_w, w_lt_half: w < 0.5, neg_step };
    with_cpu_data::<T>(param, grad, &[exp_avg], &mut |p, g, s| par_chunks(p, g, s, &kernel))
}

/// The update of one chunk, element by element: the composed path's arithmetic in its
/// order (`affine(a, 0.0)` computes `v·a + 0.0`, so the kernel adds the `0.0` too, which
/// keeps even the sign of a zero), so that both paths give the same bits. Rust does not
/// contract `a * b + c` into a fused multiply-add, so every vector unit gives them too.
struct @Camel@Kernel<T> {
    w: T,
    one_minus_w: T,
    w_lt_half: bool,
    neg_step: T,
}

impl<T: Real> ChunkKernel<T> for @Camel@Kernel<T> {
    #[inline(always)]
    fn run(&self, p: &mut [T], g: &[T], s: &mut [&mut [T]]) {
        let [m] = s else { unreachable!("one state buffer") };
        let zero = T::zero();
        for ((p, &g), m) in p.iter_mut().zip(g).zip(m.iter_mut()) {
            // m ← lerp(m, g, w): m + w·(g - m) for w < 0.5, else g - (1 - w)·(g - m).
            let diff = g - *m;
            *m = if self.w_lt_half { *m + (diff * self.w + zero) } else { g - (diff * self.one_minus_w + zero) };
            // p ← p - step_size·m
            *p = *p + (*m * self.neg_step + zero);
        }
    }
}
"##;

const STATE_RS: &str = r##"//! `@name@`'s state as a checkpoint keeps it, and its two code paths: the fused CPU kernel
//! must give the composed candle ops' results to the bit.

use candle_core::{DType, Device, Tensor, Var};
use ember_core::ops::{with_kernels, Kernels};
use ember_core::{DynOptimizer, StepContext};

// Links the plugin crate, so that its registration exists.
use @lib@ as _;

fn optimizer() -> Box<dyn DynOptimizer> {
    ember_core::optimizer("@name@", &Default::default(), &Default::default()).unwrap()
}

fn bits(t: &Tensor) -> Vec<u64> {
    let values = t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    values.into_iter().map(f64::to_bits).collect()
}

#[test]
fn the_state_round_trips_to_a_bit_identical_next_step() {
    for kernels in [Kernels::Auto, Kernels::Composed] {
        with_kernels(kernels, || {
            let dev = Device::Cpu;
            let opt = optimizer();
            let ctx = StepContext::new(0.01);
            let p = Var::new(&[1.0f32, -2.0, 0.5], &dev).unwrap();
            let g = Tensor::new(&[0.3f32, -0.1, 0.2], &dev).unwrap();
            let mut state = opt.init_state(p.as_tensor()).unwrap();
            opt.step(&p, &g, &mut state, &ctx).unwrap();
            // What a checkpoint keeps: the named buffers, copied out (the fused kernel
            // updates the live ones in place), and the scalars.
            let mut saved = state.save();
            for t in saved.tensors.values_mut() {
                *t = t.copy().unwrap();
            }
            assert_eq!(saved.tensors.keys().collect::<Vec<_>>(), ["exp_avg"]);
            assert_eq!(saved.scalars.get("step"), Some(&1.0));
            let mut extra = saved.clone();
            let mut loaded = opt.load_state(&saved).unwrap();
            let q = Var::from_tensor(&p.as_tensor().copy().unwrap()).unwrap();
            for _ in 0..3 {
                opt.step(&p, &g, &mut state, &ctx).unwrap();
                opt.step(&q, &g, &mut loaded, &ctx).unwrap();
            }
            assert_eq!(bits(p.as_tensor()), bits(q.as_tensor()), "{kernels:?}");
            // A state with a buffer this optimizer does not keep is refused.
            extra.tensors.insert("exp_avg_sq".into(), g.clone());
            let e = opt.load_state(&extra).unwrap_err().to_string();
            assert!(e.contains("unexpected buffer 'exp_avg_sq'"), "{e}");
        });
    }
}

/// The parameter and the state after five steps, as bits, with `kernels`.
fn five_steps(kernels: Kernels, dtype: DType, momentum: Option<f64>) -> (Vec<u64>, Vec<u64>) {
    with_kernels(kernels, || {
        let opt = optimizer();
        // More elements than one chunk, so the fused kernel runs in parallel chunks.
        let n = 100_003u64;
        let x0: Vec<f64> = (0..n).map(|i| ((i * 7919) % 1000) as f64 / 250.0 - 2.0).collect();
        let x = Var::from_tensor(&Tensor::new(x0, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()).unwrap();
        let mut state = opt.init_state(x.as_tensor()).unwrap();
        for k in 0..5 {
            let g: Vec<f64> = (0..n).map(|i| (((i + 31 * k) * 104729) % 2000) as f64 / 1000.0 - 1.0).collect();
            let g = Tensor::new(g, &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
            opt.step(&x, &g, &mut state, &StepContext::new(0.01).with_momentum(momentum)).unwrap();
        }
        (bits(x.as_tensor()), bits(&state.save().tensors["exp_avg"]))
    })
}

#[test]
fn the_fused_kernel_gives_the_composed_ops_bits() {
    for dtype in [DType::F32, DType::F64] {
        // β = 0.9 as configured, and a scheduled β = 0.3 (lerp's other branch).
        for momentum in [None, Some(0.3)] {
            let before = ember_core::ops::fused::fused_updates();
            let fused = five_steps(Kernels::Auto, dtype, momentum);
            assert!(ember_core::ops::fused::fused_updates() >= before + 5, "the fused kernel ran");
            let composed = five_steps(Kernels::Composed, dtype, momentum);
            assert!(fused == composed, "{dtype:?}, momentum {momentum:?}: the paths differ");
        }
    }
}
"##;

const GEN_PY: &str = r##"#!/usr/bin/env python3
"""Writes @name@.json: the reference trajectories `cargo test` checks the `@name@`
optimizer against, in Ember's parity format (`ember-parity/1`, Ember's PARITY.md):
f(x) = sum(a x^2) + sum(b x) is minimised from x0, the gradient before each step is
g = 2 a x + b, and a trajectory is x after each step.

The committed @name@.json was computed by `ember new-plugin` from the placeholder math,
which `Reference` below repeats. When you change the Rust implementation, put your
reference implementation in `Reference.step` (the paper's pseudo-code, or the authors'
code; or import their torch optimizer and build it in `trajectory`), then:

    python3 tests/gen_@name@.py
    cargo test
"""
import json
import os

import torch

torch.manual_seed(0)
HERE = os.path.dirname(os.path.abspath(__file__))


class Reference(torch.optim.Optimizer):
    """The reference implementation: REPLACE the update in `step` with yours. Name its
    keyword arguments as the Rust plugin names its config keys."""

    def __init__(self, params, lr=1e-3, beta=0.9):
        super().__init__(params, dict(lr=lr, beta=beta))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            lr, beta = group["lr"], group["beta"]
            for p in group["params"]:
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                state["step"] += 1
                m = state["exp_avg"]
                m.lerp_(p.grad, 1 - beta)                            # m <- beta m + (1 - beta) g
                p.add_(m, alpha=-lr / (1 - beta ** state["step"]))   # p <- p - lr / (1 - beta^t) m


def trajectory(x0, a, b, steps, dtype, config):
    """x after each of `steps` steps of Reference(**config), in `dtype`."""
    x = torch.tensor(x0, dtype=dtype, requires_grad=True)
    a, b = torch.tensor(a, dtype=dtype), torch.tensor(b, dtype=dtype)
    opt = Reference([x], **config)
    out = []
    for _ in range(steps):
        with torch.no_grad():
            x.grad = 2 * a * x + b
        opt.step()
        out.append(x.detach().tolist())
    return out


X0 = (torch.randn(5, dtype=torch.float64) * 2).tolist()
A = (torch.rand(5, dtype=torch.float64) + 0.1).tolist()
B = torch.randn(5, dtype=torch.float64).tolist()
STEPS = 15
cases = []
# Configs use the plugin's config keys; absent keys take its defaults. Add the cases
# that exercise your optimizer's options.
for config in [{}, {"lr": 0.05}, {"lr": 0.05, "beta": 0.3}]:
    for dname, dtype in {"f32": torch.float32, "f64": torch.float64}.items():
        x0, a, b = (torch.tensor(v, dtype=dtype).tolist() for v in (X0, A, B))
        tag = "-".join(f"{k}{v}" for k, v in config.items()) or "default"
        cases.append({"id": f"@name@/{tag}/{dname}", "kind": "optimizer", "name": "@name@", "config": config,
                      "dtype": dname, "inputs": {"x0": x0, "a": a, "b": b, "steps": STEPS},
                      "expected": {"trajectory": trajectory(x0, a, b, STEPS, dtype, config)}})
doc = {"format": "ember-parity/1", "source": f"torch {torch.__version__}, tests/gen_@name@.py", "cases": cases}
with open(os.path.join(HERE, "@name@.json"), "w") as f:
    json.dump(doc, f, separators=(",", ":"))
    f.write("\n")
print(f"wrote {len(cases)} cases to tests/@name@.json")
"##;

const ACTIVATION: &str = r##"//! `@name@`: an activation. A placeholder to replace with yours: scale·x.

use candle_core::Tensor;
use ember_core::{check, Activation, Hyperparams, Result};

/// The `@name@` activation: y = scale·x (candle's autograd gives the gradient).
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(activation = "@name@", summary = "scale * x (placeholder)")]
pub struct @Camel@ {
    /// output scale; finite
    #[param(default = 1.0, check = check::finite)]
    pub scale: f64,
}

impl Activation for @Camel@ {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.affine(self.scale, 0.0)?)
    }
}
"##;

const LOSS: &str = r##"//! `@name@`: a loss. A placeholder to replace with yours: the squared error.

use candle_core::Tensor;
use ember_core::{Error, Hyperparams, Loss, ParamEnum, Result};

/// How per-element losses combine (PyTorch's `reduction`); configs name the variants in
/// snake_case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ParamEnum)]
pub enum Reduction {
    /// The per-element losses, the input's shape.
    None,
    /// Their mean.
    Mean,
    /// Their sum.
    Sum,
}

/// The `@name@` loss: (input - target)², reduced.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(loss = "@name@", summary = "mean squared error (placeholder)")]
pub struct @Camel@ {
    /// how per-element losses combine: none, mean or sum
    #[param(default = "mean")]
    pub reduction: Reduction,
}

impl Loss for @Camel@ {
    fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {
        if input.dims() != target.dims() {
            return Err(Error::input(format!(
                "@name@: input shape {:?} and target shape {:?} differ",
                input.dims(),
                target.dims()
            )));
        }
        let sq = input.sub(&target.to_dtype(input.dtype())?)?.sqr()?;
        Ok(match self.reduction {
            Reduction::None => sq,
            Reduction::Mean => sq.mean_all()?,
            Reduction::Sum => sq.sum_all()?,
        })
    }
}
"##;

const SCHEDULER: &str = r##"//! `@name@`: a learning-rate scheduler. A placeholder to replace with yours:
//! lr ← lr·factor at every step.

use ember_core::{check, Hyperparams, Result, Scheduler, State};

/// `factor`'s rule: a check of its own (any `Fn(&T) -> Result<(), String>` is one).
fn up_to_one(factor: &f64) -> check::Check {
    if *factor > 0.0 && *factor <= 1.0 {
        Ok(())
    } else {
        Err("must be in (0, 1]".into())
    }
}

/// The `@name@` scheduler: each step multiplies every group's learning rate by `factor`.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(scheduler = "@name@", summary = "lr * factor each step (placeholder)")]
pub struct @Camel@ {
    /// multiplier per step; in (0, 1]
    #[param(default = 0.5, check = up_to_one)]
    pub factor: f64,
    /// Steps taken: state, not a hyperparameter.
    #[param(skip)]
    steps: u64,
}

impl Scheduler for @Camel@ {
    fn init(&mut self, _lrs: &mut [f64]) -> Result<()> {
        self.steps = 0;
        Ok(())
    }

    fn step(&mut self, lrs: &mut [f64], _metric: Option<f64>) -> Result<()> {
        self.steps += 1;
        lrs.iter_mut().for_each(|lr| *lr *= self.factor);
        Ok(())
    }

    fn state(&self) -> State {
        let mut s = State::new();
        s.scalars.insert("steps".into(), self.steps as f64);
        s
    }

    fn load_state(&mut self, state: &State) -> Result<()> {
        self.steps = state.scalar("steps").unwrap_or(0.0) as u64;
        Ok(())
    }
}
"##;

const LAYER: &str = r##"//! `@name@`: a layer. A placeholder to replace with yours: a learned scale per
//! feature, y = x · weight over the last dimension.

use candle_core::{Tensor, Var};
use ember_core::module::{Context, Module};
use ember_core::{check, Built, Hyperparams, Layer, LayerContext, Result};

/// The `@name@` layer's arguments (PyTorch's constructor arguments for a layer that
/// mirrors one). `build` gets the shape of one input example and returns the module
/// with the shape of one output example.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(layer = "@name@", summary = "x * weight, a learned scale per feature (placeholder)")]
pub struct @Camel@ {
    /// the weight's initial value; finite
    #[param(default = 1.0, check = check::finite)]
    pub init: f64,
}

impl Layer for @Camel@ {
    fn build(&self, input: &[usize], ctx: &mut LayerContext) -> Result<Built> {
        let Some(&features) = input.last() else {
            return Err(ctx.error("expects examples with at least one dimension"));
        };
        let weight = ctx.full(&[features], self.init)?;
        Ok(Built::new(@Camel@Module { weight }, input.to_vec()))
    }
}

/// The module: `weight` `[features]`, named as PyTorch's state_dict would name it.
#[derive(Debug)]
pub struct @Camel@Module {
    weight: Var,
}

impl Module for @Camel@Module {
    fn forward(&self, x: &Tensor, _ctx: &mut Context) -> Result<Tensor> {
        Ok(x.broadcast_mul(self.weight.as_tensor())?)
    }

    fn named_parameters(&self) -> Vec<(String, Var)> {
        vec![("weight".to_string(), self.weight.clone())]
    }
}
"##;

const REGULARIZER: &str = r##"//! `@name@`: a regularizer. A placeholder to replace with yours: the penalty
//! lambda·sum(w²).

use candle_core::Tensor;
use ember_core::{check, Hyperparams, Regularizer, RegularizerRole, Result};

/// The `@name@` regularizer: lambda·Σw², added to the loss.
#[derive(Clone, Debug, PartialEq, Hyperparams)]
#[plugin(regularizer = "@name@", summary = "lambda * sum(w^2) (placeholder)")]
pub struct @Camel@ {
    /// penalty strength; >= 0
    #[param(default = 0.01, check = check::non_negative)]
    pub lambda: f64,
}

impl Regularizer for @Camel@ {
    fn role(&self) -> RegularizerRole {
        RegularizerRole::Penalty
    }

    fn penalty(&self, weight: &Tensor) -> Result<Tensor> {
        Ok(weight.sqr()?.sum_all()?.affine(self.lambda, 0.0)?)
    }
}
"##;
