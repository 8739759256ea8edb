//! `ember new-plugin KIND NAME`: a new plugin crate that compiles, passes its tests and
//! runs Ember's CLI with the plugin linked, as generated.

use std::path::{Path, PathBuf};

use ember_core::registry::Kind;

/// Where this Ember's sources are (path dependencies of the generated crate).
pub const EMBER_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// Generates the crate `name` of `kind` in `dir` (default `./NAME`); returns its path.
pub fn new_plugin(kind: Kind, name: &str, dir: Option<&Path>, ember_dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    check_name(kind, name)?;
    let root = dir.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(name));
    if root.exists() && std::fs::read_dir(&root)?.next().is_some() {
        anyhow::bail!("{}: the directory exists and is not empty; choose another --dir", root.display());
    }
    let ember = ember_dir.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(EMBER_DIR));
    let ember =
        ember.canonicalize().map_err(|e| anyhow::anyhow!("{}: cannot find Ember's sources: {e}", ember.display()))?;
    let (module, fixture) = template(kind, name);
    let files = [
        ("Cargo.toml", cargo_toml(name, &ember)),
        ("README.md", readme(kind, name)),
        ("src/lib.rs", format!("//! The `{name}` {kind} plugin for Ember.\n//!\n//! Link it with `use {name} as _;`.\n\nmod {name};\n\npub use {name}::*;\n")),
        (&format!("src/{name}.rs") as &str, module),
        ("src/main.rs", format!(
            "//! Ember's full command line with the `{name}` plugin linked: `cargo run -- plugins`,\n//! `cargo run -- train run.toml`, `cargo run -- parity tests/{name}.json`.\n\nuse {name} as _;\n\nfn main() {{\n    ember::cli::main()\n}}\n"
        )),
        (&format!("tests/{name}.json") as &str, fixture),
        ("tests/parity.rs", parity_test(name)),
    ];
    for (rel, text) in files {
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

/// Rust's keywords (strict and reserved, every edition): none can name a module.
const KEYWORDS: [&str; 50] = [
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for", "if", "impl", "in",
    "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self", "static", "struct", "super", "trait",
    "true", "type", "unsafe", "use", "where", "while", "async", "await", "dyn", "abstract", "become", "box", "do",
    "final", "macro", "override", "priv", "typeof", "unsized", "virtual", "yield", "try",
];

/// Crate names the generated crate cannot take: the built-in crates and its dependencies.
const TAKEN: [&str; 8] = ["std", "core", "alloc", "test", "proc_macro", "ember", "ember_core", "candle_core"];

/// A name is usable when it is a snake_case identifier, not a keyword, not a crate the
/// generated one depends on, and its CamelCase struct name does not shadow a name the
/// template imports (`tensor` would make a struct `Tensor`).
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
    if KEYWORDS.contains(&name) || name == "gen" {
        anyhow::bail!(
            "plugin name {name:?} is a Rust keyword and cannot name a crate's module; choose another, e.g. my_{name}"
        );
    }
    if TAKEN.contains(&name) || name.starts_with("ember_") {
        anyhow::bail!(
            "plugin name {name:?} is taken by a crate the generated one uses or by Rust itself; choose another, e.g. my_{name}"
        );
    }
    let camel = camel_case(name);
    let (module, _) = template(kind, name);
    let imported = module
        .lines()
        .filter(|l| l.starts_with("use "))
        .any(|l| l.split(|c: char| !(c.is_alphanumeric() || c == '_')).any(|word| word == camel));
    if imported {
        anyhow::bail!(
            "plugin name {name:?} would make a struct `{camel}`, which clashes with `{camel}` that the plugin imports; choose another, e.g. my_{name}"
        );
    }
    Ok(())
}

/// `my_opt` -> `MyOpt`.
fn camel_case(name: &str) -> String {
    name.split('_').filter(|w| !w.is_empty()).map(|w| w[..1].to_uppercase() + &w[1..]).collect()
}

fn cargo_toml(name: &str, ember: &Path) -> String {
    let e = ember.display();
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
ember-core = {{ path = "{e}/crates/core" }}
candle-core = "0.11"
# For the binary (Ember's CLI) and the parity test.
ember = {{ path = "{e}" }}

[[bin]]
name = "{name}-ember"
path = "src/main.rs"

# A crate of its own, even when generated inside another workspace.
[workspace]

[profile.dev.package."*"]
opt-level = 3
"#
    )
}

fn readme(kind: Kind, name: &str) -> String {
    format!(
        r#"# {name}: an Ember {kind} plugin

Generated by `ember new-plugin {kind} {name}`.

- `src/{name}.rs`: the implementation (a placeholder: replace the math) and its registry
  entry, with the hyperparameters, their defaults and checks.
- `src/main.rs`: Ember's CLI with this plugin linked (`use {name} as _;`).
- `tests/{name}.json`: reference numbers in Ember's parity format; regenerate them from
  your reference implementation when you change the math. `tests/parity.rs` checks them.

```sh
cargo test                                   # builds and checks the plugin
cargo run -- plugins --kind {kind}           # lists `{name}` with its defaults
cargo run -- parity tests/{name}.json        # the parity check, as a report
cargo run -- train run.toml                  # a run config can name `{name}`
```

A program that wants the plugin depends on this crate and names it once in code:
`use {name} as _;` (a crate nothing names is not linked, and its registration vanishes).
"#
    )
}

fn parity_test(name: &str) -> String {
    format!(
        r#"//! The plugin against its reference numbers, through the same code as `ember parity`.

use {name} as _;

#[test]
fn matches_the_reference_numbers() {{
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/{name}.json");
    let file = ember::parity::load(&path).unwrap();
    assert!(!file.cases.is_empty());
    for (i, case) in file.cases.iter().enumerate() {{
        let r = ember::parity::run_case(case, i);
        assert!(r.passed(), "{{}}: {{:?}}", r.id, r.outcome);
    }}
}}

#[test]
fn is_registered_by_name() {{
    let all = ember::core::registry::all_plugins();
    assert!(all.iter().any(|p| p.name == "{name}"), "{name} is not registered");
}}
"#
    )
}

/// (module source, parity fixture) for the placeholder of each kind.
fn template(kind: Kind, name: &str) -> (String, String) {
    let camel = camel_case(name);
    match kind {
        Kind::Optimizer => {
            // Plain gradient descent: p <- p - lr * g. Fixture computed with the same rule.
            let (lr, a, b) = (0.1f64, [1.0f64, 2.0], [0.5f64, -1.0]);
            let mut x = [1.0f64, -2.0];
            let mut traj = Vec::new();
            for _ in 0..5 {
                for i in 0..2 {
                    let g = 2.0 * a[i] * x[i] + b[i];
                    x[i] += -lr * g;
                }
                traj.push(format!("[{:?}, {:?}]", x[0], x[1]));
            }
            let module = format!(
                r#"//! `{name}`: an optimizer. Placeholder: plain gradient descent, p <- p - lr * g.

use candle_core::{{Tensor, Var}};
use ember_core::{{Optimizer, OptimizerEntry, ParamSpec, Result, State, StepContext}};

/// The `{name}` optimizer.
#[derive(Clone, Debug, PartialEq)]
pub struct {camel} {{
    pub lr: f64,
}}

impl Optimizer for {camel} {{
    fn lr(&self) -> f64 {{
        self.lr
    }}

    /// The per-parameter buffers this optimizer keeps (none yet).
    fn init_state(&self, _param: &Tensor) -> Result<State> {{
        Ok(State::new())
    }}

    fn step(&self, param: &Var, grad: &Tensor, _state: &mut State, ctx: &StepContext) -> Result<()> {{
        let updated = param.as_tensor().add(&grad.affine(-ctx.lr, 0.0)?)?;
        param.set(&updated)?;
        Ok(())
    }}
}}

ember_core::inventory::submit! {{
    OptimizerEntry {{
        name: "{name}",
        summary: "{name}: gradient descent (placeholder)",
        params: &[ParamSpec::float("lr", 1e-3, "learning rate; >= 0")],
        module: module_path!(),
        build: |p, _| Ok(Box::new({camel} {{ lr: p.float_where("lr", |v| v >= 0.0, "must be >= 0")? }})),
    }}
}}
"#
            );
            let fixture = format!(
                r#"{{"format":"ember-parity/1","source":"ember new-plugin: gradient descent, computed by the generator","cases":[{{"id":"{name}/lr0.1/f64","kind":"optimizer","name":"{name}","config":{{"lr":0.1}},"dtype":"f64","inputs":{{"x0":[1.0,-2.0],"a":[1.0,2.0],"b":[0.5,-1.0],"steps":5}},"expected":{{"trajectory":[{}]}}}}]}}
"#,
                traj.join(",")
            );
            (module, fixture)
        }
        Kind::Activation => {
            let module = format!(
                r#"//! `{name}`: an activation. Placeholder: scale * x.

use candle_core::Tensor;
use ember_core::{{Activation, ActivationEntry, ParamSpec, Result}};

/// The `{name}` activation.
#[derive(Clone, Debug, PartialEq)]
pub struct {camel} {{
    pub scale: f64,
}}

impl Activation for {camel} {{
    fn forward(&self, x: &Tensor) -> Result<Tensor> {{
        Ok(x.affine(self.scale, 0.0)?)
    }}
}}

ember_core::inventory::submit! {{
    ActivationEntry {{
        name: "{name}",
        summary: "{name}: scale * x (placeholder)",
        params: &[ParamSpec::float("scale", 1.0, "output scale")],
        module: module_path!(),
        build: |p, _| Ok(Box::new({camel} {{ scale: p.float("scale")? }})),
    }}
}}
"#
            );
            let fixture = format!(
                r#"{{"format":"ember-parity/1","source":"ember new-plugin: scale * x","cases":[{{"id":"{name}/scale2/f64","kind":"activation","name":"{name}","config":{{"scale":2.0}},"dtype":"f64","inputs":{{"input":[-1.5,0.0,2.0]}},"expected":{{"output":[-3.0,0.0,4.0],"grad_input":[2.0,2.0,2.0]}}}}]}}
"#
            );
            (module, fixture)
        }
        Kind::Loss => {
            let module = format!(
                r#"//! `{name}`: a loss. Placeholder: mean squared error.

use candle_core::Tensor;
use ember_core::{{Error, Loss, LossEntry, ParamSpec, Result}};

/// The `{name}` loss.
#[derive(Clone, Debug, PartialEq)]
pub struct {camel} {{
    pub reduction: String,
}}

impl Loss for {camel} {{
    fn forward(&self, input: &Tensor, target: &Tensor) -> Result<Tensor> {{
        if input.dims() != target.dims() {{
            return Err(Error::input(format!("{name}: input shape {{:?}} and target shape {{:?}} differ", input.dims(), target.dims())));
        }}
        let sq = input.sub(&target.to_dtype(input.dtype())?)?.sqr()?;
        Ok(match self.reduction.as_str() {{
            "none" => sq,
            "sum" => sq.sum_all()?,
            _ => sq.mean_all()?,
        }})
    }}
}}

ember_core::inventory::submit! {{
    LossEntry {{
        name: "{name}",
        summary: "{name}: mean squared error (placeholder)",
        params: &[ParamSpec::choice("reduction", &["none", "mean", "sum"], "mean", "how per-element losses combine")],
        module: module_path!(),
        build: |p, _| Ok(Box::new({camel} {{ reduction: p.str("reduction")?.to_string() }})),
    }}
}}
"#
            );
            let fixture = format!(
                r#"{{"format":"ember-parity/1","source":"ember new-plugin: mean squared error","cases":[{{"id":"{name}/mean/f64","kind":"loss","name":"{name}","config":{{"reduction":"mean"}},"dtype":"f64","inputs":{{"input":[1.0,2.0],"target":[0.0,4.0]}},"expected":{{"output":2.5,"grad_input":[1.0,-2.0]}}}}]}}
"#
            );
            (module, fixture)
        }
        Kind::Scheduler => {
            let module = format!(
                r#"//! `{name}`: a learning-rate scheduler. Placeholder: lr <- lr * factor every step.

use ember_core::{{ParamSpec, Result, Scheduler, SchedulerEntry, State}};

/// The `{name}` scheduler.
#[derive(Clone, Debug, PartialEq)]
pub struct {camel} {{
    pub factor: f64,
    steps: u64,
}}

impl Scheduler for {camel} {{
    fn init(&mut self, _lrs: &mut [f64]) -> Result<()> {{
        self.steps = 0;
        Ok(())
    }}

    fn step(&mut self, lrs: &mut [f64], _metric: Option<f64>) -> Result<()> {{
        self.steps += 1;
        lrs.iter_mut().for_each(|lr| *lr *= self.factor);
        Ok(())
    }}

    fn state(&self) -> State {{
        let mut s = State::new();
        s.scalars.insert("steps".into(), self.steps as f64);
        s
    }}

    fn load_state(&mut self, state: &State) -> Result<()> {{
        self.steps = state.scalar("steps").unwrap_or(0.0) as u64;
        Ok(())
    }}
}}

ember_core::inventory::submit! {{
    SchedulerEntry {{
        name: "{name}",
        summary: "{name}: lr * factor each step (placeholder)",
        params: &[ParamSpec::float("factor", 0.5, "multiplier per step; in (0, 1]")],
        module: module_path!(),
        build: |p, _| Ok(Box::new({camel} {{ factor: p.float_where("factor", |f| f > 0.0 && f <= 1.0, "must be in (0, 1]")?, steps: 0 }})),
    }}
}}
"#
            );
            let fixture = format!(
                r#"{{"format":"ember-parity/1","source":"ember new-plugin: lr * factor","cases":[{{"id":"{name}/half/f64","kind":"scheduler","name":"{name}","config":{{"factor":0.5}},"dtype":"f64","inputs":{{"lr":1.0,"steps":4}},"expected":{{"lr":[1.0,0.5,0.25,0.125]}}}}]}}
"#
            );
            (module, fixture)
        }
        Kind::Regularizer => {
            let module = format!(
                r#"//! `{name}`: a regularizer. Placeholder: the penalty lambda * sum(w^2).

use candle_core::Tensor;
use ember_core::{{ParamSpec, Regularizer, RegularizerEntry, RegularizerRole, Result}};

/// The `{name}` regularizer.
#[derive(Clone, Debug, PartialEq)]
pub struct {camel} {{
    pub lambda: f64,
}}

impl Regularizer for {camel} {{
    fn role(&self) -> RegularizerRole {{
        RegularizerRole::Penalty
    }}

    fn penalty(&self, weight: &Tensor) -> Result<Tensor> {{
        Ok(weight.sqr()?.sum_all()?.affine(self.lambda, 0.0)?)
    }}
}}

ember_core::inventory::submit! {{
    RegularizerEntry {{
        name: "{name}",
        summary: "{name}: lambda * sum(w^2) (placeholder)",
        params: &[ParamSpec::float("lambda", 0.01, "penalty strength; >= 0")],
        module: module_path!(),
        build: |p, _| Ok(Box::new({camel} {{ lambda: p.float_where("lambda", |l| l >= 0.0, "must be >= 0")? }})),
    }}
}}
"#
            );
            let fixture = format!(
                r#"{{"format":"ember-parity/1","source":"ember new-plugin: lambda * sum(w^2)","cases":[{{"id":"{name}/f64","kind":"regularizer","name":"{name}","config":{{"lambda":0.5}},"dtype":"f64","inputs":{{"input":[1.0,-2.0]}},"expected":{{"penalty":2.5,"grad_input":[1.0,-2.0]}}}}]}}
"#
            );
            (module, fixture)
        }
    }
}
