//! `ember parity`: checks registered plugins against reference numbers stored in parity
//! files (format `ember-parity/1`, described in PARITY.md).
//!
//! Every problem inside a case (unknown plugin, bad config, missing input, wrong
//! numbers) is a failed case with a reason; only a file that cannot be read or is not a
//! parity file stops the run.

mod average;

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use ember_core::module::Context as Forward;
use ember_core::{BuildContext, Config, LayerContext, RegularizerRole, StepContext, Value};
use serde_json::{json, Map, Value as Json};

/// The `format` value this runner reads.
pub const FORMAT: &str = "ember-parity/1";

/// A parity file that could not be used.
#[derive(Debug)]
pub struct FileError {
    pub path: PathBuf,
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for FileError {}

/// A loaded parity file.
#[derive(Debug)]
pub struct ParityFile {
    pub path: PathBuf,
    pub source: String,
    pub cases: Vec<Json>,
}

/// The largest parity file read (a device such as `/dev/zero` is read only this far).
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// Reads and checks the outer structure of a parity file.
pub fn load(path: &Path) -> Result<ParityFile, FileError> {
    let bytes = ember_core::memory::read_capped(path, MAX_FILE_BYTES, "a parity file").map_err(|e| FileError {
        path: path.to_path_buf(),
        message: e.to_string().strip_prefix(&format!("{}: ", path.display())).unwrap_or(&e.to_string()).to_string(),
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|e| FileError { path: path.to_path_buf(), message: format!("not UTF-8 text: {e}") })?;
    parse(&text, path)
}

/// Checks the outer structure of a parity file's text; `path` names it in errors.
pub fn parse(text: &str, path: &Path) -> Result<ParityFile, FileError> {
    let fail = |message: String| FileError { path: path.to_path_buf(), message };
    let doc: Json = serde_json::from_str(text)
        .map_err(|e| fail(format!("malformed JSON at line {}, column {}: {e}", e.line(), e.column())))?;
    let obj = doc.as_object().ok_or_else(|| fail("not a parity file: the top level must be a JSON object".into()))?;
    match obj.get("format").and_then(Json::as_str) {
        Some(FORMAT) => {}
        Some(other) => {
            return Err(fail(format!("not a parity file: format is {other:?}, this ember reads {FORMAT:?}")))
        }
        None => return Err(fail(format!("not a parity file: no \"format\": \"{FORMAT}\" key"))),
    }
    let cases = obj
        .get("cases")
        .and_then(Json::as_array)
        .ok_or_else(|| fail("not a parity file: \"cases\" must be an array".into()))?
        .clone();
    if cases.is_empty() {
        return Err(fail("holds no cases: \"cases\" is an empty array, so nothing would be checked".into()));
    }
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, c) in cases.iter().enumerate() {
        if let Some(id) = c.get("id").and_then(Json::as_str) {
            if let Some(first) = seen.insert(id, i) {
                return Err(fail(format!(
                    "duplicate case id {id:?} (cases {first} and {i}); every case needs its own id"
                )));
            }
        }
    }
    let source = obj.get("source").and_then(Json::as_str).unwrap_or_default().to_string();
    Ok(ParityFile { path: path.to_path_buf(), source, cases })
}

/// The result of one case.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseResult {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub dtype: String,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Every value within tolerance; the largest absolute and relative differences.
    Pass { max_abs: f64, max_rel: f64 },
    /// Why the case failed, on one line.
    Fail { reason: String },
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        matches!(self.outcome, Outcome::Pass { .. })
    }
}

/// Runs one case on the CPU.
pub fn run_case(case: &Json, index: usize) -> CaseResult {
    run_case_on(case, index, &Device::Cpu)
}

/// Runs one case with its tensors on `device`.
pub fn run_case_on(case: &Json, index: usize, device: &Device) -> CaseResult {
    let field = |k: &str| case.get(k).and_then(Json::as_str).map(str::to_string);
    let mut result = CaseResult {
        id: field("id").unwrap_or_else(|| format!("<case {index}>")),
        kind: field("kind").unwrap_or_default(),
        name: field("name").unwrap_or_default(),
        dtype: field("dtype").unwrap_or_else(|| "f32".into()),
        outcome: Outcome::Pass { max_abs: 0.0, max_rel: 0.0 },
    };
    result.outcome = match check_case(case, device) {
        Ok(diff) => Outcome::Pass { max_abs: diff.max_abs, max_rel: diff.max_rel },
        Err(reason) => Outcome::Fail { reason: reason.replace('\n', " ") },
    };
    result
}

/// Runs `ember parity` over `files` with tensors on `device`; writes the report to `out`
/// and returns the exit status (0 all passed, 1 some failed, 2 a file could not be used).
pub fn run_files(
    files: &[PathBuf],
    filter: Option<&str>,
    json: bool,
    device: &Device,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let mut loaded = Vec::new();
    for path in files {
        match load(path) {
            Ok(f) => loaded.push(f),
            Err(e) => {
                let _ = writeln!(err, "error: {e}");
                return 2;
            }
        }
    }
    let results: Vec<CaseResult> = loaded
        .iter()
        .flat_map(|f| f.cases.iter().enumerate())
        .filter(|(_, c)| filter.is_none_or(|s| c.get("id").and_then(Json::as_str).unwrap_or("").contains(s)))
        .map(|(i, c)| run_case_on(c, i, device))
        .collect();
    if results.is_empty() {
        let total: usize = loaded.iter().map(|f| f.cases.len()).sum();
        let _ = writeln!(
            err,
            "error: --filter {:?} matches none of the {total} case ids; nothing was checked (list them with --json, or drop --filter)",
            filter.unwrap_or_default()
        );
        return 2;
    }
    let passed = results.iter().filter(|r| r.passed()).count();
    let failed = results.len() - passed;
    let _ = write_report(&results, json, out);
    let _ = if json {
        writeln!(out, "{}", json!({ "summary": true, "passed": passed, "failed": failed }))
    } else {
        writeln!(out, "{passed} passed, {failed} failed")
    };
    if failed > 0 {
        1
    } else {
        0
    }
}

fn write_report(results: &[CaseResult], json: bool, out: &mut dyn Write) -> std::io::Result<()> {
    let width = results.iter().map(|r| r.id.len()).max().unwrap_or(0);
    for r in results {
        if json {
            let mut o = json!({ "id": r.id, "kind": r.kind, "name": r.name, "dtype": r.dtype });
            match &r.outcome {
                Outcome::Pass { max_abs, max_rel } => {
                    o["status"] = json!("ok");
                    o["max_abs"] = json!(max_abs);
                    o["max_rel"] = json!(max_rel);
                }
                Outcome::Fail { reason } => {
                    o["status"] = json!("fail");
                    o["reason"] = json!(reason);
                }
            }
            writeln!(out, "{o}")?;
        } else {
            match &r.outcome {
                Outcome::Pass { max_abs, max_rel } => {
                    writeln!(out, "ok    {:<width$}  max_abs {max_abs:.1e}  max_rel {max_rel:.1e}", r.id)?
                }
                Outcome::Fail { reason } => writeln!(out, "FAIL  {:<width$}  {reason}", r.id)?,
            }
        }
    }
    Ok(())
}

type CaseResultInner<T> = Result<T, String>;

/// The largest differences seen so far in a case.
#[derive(Clone, Copy, Debug, Default)]
struct Diff {
    max_abs: f64,
    max_rel: f64,
}

/// A tensor read from a parity file.
#[derive(Clone, Debug)]
struct Data {
    shape: Vec<usize>,
    values: Vec<f64>,
    /// `{"dtype": "i64", ...}` tensors.
    int: Option<Vec<i64>>,
}

struct Case<'a> {
    kind: &'a str,
    name: &'a str,
    config: Config,
    dtype: DType,
    inputs: &'a Map<String, Json>,
    expected: &'a Map<String, Json>,
    rtol: f64,
    atol: f64,
    device: &'a Device,
    /// `train` (default) or `eval`: the mode of a layer case.
    mode: Option<&'a Json>,
}

fn check_case(case: &Json, device: &Device) -> CaseResultInner<Diff> {
    let obj = case.as_object().ok_or("a case must be a JSON object")?;
    let text = |k: &str| -> CaseResultInner<&str> {
        obj.get(k).and_then(Json::as_str).ok_or_else(|| format!("the case has no \"{k}\" string"))
    };
    text("id")?;
    let (dtype, default_rtol, default_atol) = match obj.get("dtype").map(|d| d.as_str()) {
        None | Some(Some("f32")) => (DType::F32, 1e-5, 1e-6),
        Some(Some("f64")) => (DType::F64, 1e-10, 1e-12),
        Some(other) => return Err(format!("dtype {} is not supported; use \"f32\" or \"f64\"", show(other))),
    };
    let config: Config = match obj.get("config") {
        None | Some(Json::Null) => Config::new(),
        Some(c) => serde_json::from_value(c.clone()).map_err(|e| format!("bad \"config\": {e}"))?,
    };
    let empty = Map::new();
    let table = |k: &str| -> CaseResultInner<&Map<String, Json>> {
        match obj.get(k) {
            None => Ok(&empty),
            Some(Json::Object(m)) => Ok(m),
            Some(_) => Err(format!("\"{k}\" must be an object of named values")),
        }
    };
    let tol = |k: &str, default: f64| -> CaseResultInner<f64> {
        match obj.get(k) {
            None => Ok(default),
            Some(v) => v.as_f64().filter(|t| *t >= 0.0).ok_or_else(|| format!("\"{k}\" must be a number >= 0")),
        }
    };
    let c = Case {
        kind: text("kind")?,
        name: text("name")?,
        config,
        dtype,
        inputs: table("inputs")?,
        expected: table("expected")?,
        rtol: tol("rtol", default_rtol)?,
        atol: tol("atol", default_atol)?,
        device,
        mode: obj.get("mode"),
    };
    if c.expected.is_empty() {
        return Err("the case has no \"expected\" values".into());
    }
    let mut diff = Diff::default();
    match c.kind {
        "activation" => activation_case(&c, &mut diff)?,
        "loss" => loss_case(&c, &mut diff)?,
        "optimizer" => optimizer_case(&c, &mut diff)?,
        "scheduler" => scheduler_case(&c, &mut diff)?,
        "regularizer" => regularizer_case(&c, &mut diff)?,
        "layer" => layer_case(&c, &mut diff)?,
        "metric" => metric_case(&c, &mut diff)?,
        "average" => average::average_case(&c, &mut diff)?,
        other => {
            return Err(format!(
                "unknown kind '{other}'; use one of activation, loss, optimizer, scheduler, regularizer, layer, metric, average"
            ))
        }
    }
    Ok(diff)
}

fn show(v: Option<&str>) -> String {
    v.map_or_else(|| "(not a string)".into(), |s| format!("{s:?}"))
}

fn err_str(e: impl fmt::Display) -> String {
    e.to_string()
}

impl Case<'_> {
    fn ctx(&self) -> BuildContext {
        BuildContext::new(self.device.clone(), self.dtype)
    }

    fn check_expected_keys(&self, allowed: &[&str]) -> CaseResultInner<()> {
        for k in self.expected.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err(format!(
                    "expected.{k} is not something a {} case produces; use {}",
                    self.kind,
                    allowed.join(", ")
                ));
            }
        }
        Ok(())
    }

    fn input(&self, key: &str) -> CaseResultInner<Data> {
        let v = self.inputs.get(key).ok_or_else(|| format!("missing input '{key}'"))?;
        parse_data(v).map_err(|e| format!("inputs.{key}: {e}"))
    }

    fn opt_input(&self, key: &str) -> CaseResultInner<Option<Data>> {
        match self.inputs.get(key) {
            None => Ok(None),
            Some(_) => self.input(key).map(Some),
        }
    }

    fn tensor(&self, key: &str) -> CaseResultInner<Tensor> {
        let d = self.input(key)?;
        to_tensor(&d, self.dtype, self.device)
    }

    fn number(&self, key: &str) -> CaseResultInner<f64> {
        self.inputs.get(key).and_then(Json::as_f64).ok_or_else(|| format!("missing input '{key}' (a number)"))
    }

    fn count(&self, key: &str) -> CaseResultInner<usize> {
        let n = self.number(key)?;
        if n >= 0.0 && n.fract() == 0.0 {
            Ok(n as usize)
        } else {
            Err(format!("inputs.{key} must be a whole number >= 0, got {n}"))
        }
    }

    /// Compares `got` with `expected.<key>` if the file gives it.
    fn compare(&self, key: &str, got: &Tensor, diff: &mut Diff) -> CaseResultInner<()> {
        match self.expected.get(key) {
            None => Ok(()),
            Some(v) => {
                let exp = parse_data(v).map_err(|e| format!("expected.{key}: {e}"))?;
                compare(key, got, &exp, self.rtol, self.atol, diff)
            }
        }
    }

    fn require(&self, key: &str) -> CaseResultInner<()> {
        if self.expected.contains_key(key) {
            Ok(())
        } else {
            Err(format!("the case has no expected.{key}"))
        }
    }
}

fn activation_case(c: &Case, diff: &mut Diff) -> CaseResultInner<()> {
    c.check_expected_keys(&["output", "grad_input", "grad_weight"])?;
    c.require("output")?;
    let act = ember_core::activation(c.name, &c.config, &c.ctx()).map_err(err_str)?;
    let x = Var::from_tensor(&c.tensor("input")?).map_err(err_str)?;
    let y = act.forward(x.as_tensor()).map_err(err_str)?;
    c.compare("output", &y, diff)?;
    let params = act.parameters();
    if c.expected.contains_key("grad_input") || c.expected.contains_key("grad_weight") {
        let grads = backward(&y, c.opt_input("grad_output")?, c.dtype)?;
        c.compare("grad_input", &grad_of(&grads, &x)?, diff)?;
        if c.expected.contains_key("grad_weight") {
            let (_, w) = params.iter().find(|(n, _)| n == "weight").ok_or_else(|| {
                format!("activation '{}' has no learnable weight, but the case expects grad_weight", c.name)
            })?;
            c.compare("grad_weight", &grad_of(&grads, w)?, diff)?;
        }
    }
    Ok(())
}

/// A loss over its arguments (`input` and `target`, or the loss's own: `input1`,
/// `input2`, `target`; `anchor`, `positive`, `negative`; ...), each read from
/// `inputs.<name>`; expected `output` and `grad_<name>` for the differentiable ones.
fn loss_case(c: &Case, diff: &mut Diff) -> CaseResultInner<()> {
    if let Some(k) = c.expected.keys().find(|k| *k != "output" && !k.starts_with("grad_")) {
        return Err(format!(
            "expected.{k} is not something a loss case produces; use output, grad_input (or grad_NAME for each differentiable argument)"
        ));
    }
    c.require("output")?;
    let loss = ember_core::loss(c.name, &c.config, &c.ctx()).map_err(err_str)?;
    let args = loss.arguments();
    let grads_of: Vec<&str> = args.iter().filter(|a| a.grad).map(|a| a.name).collect();
    for k in c.expected.keys().filter(|k| k.starts_with("grad_")) {
        if !grads_of.contains(&&k["grad_".len()..]) {
            let allowed: Vec<String> = grads_of.iter().map(|n| format!("grad_{n}")).collect();
            return Err(format!(
                "expected.{k} is not something loss '{}' produces; use output, {}",
                c.name,
                allowed.join(", ")
            ));
        }
    }
    // One tensor per argument, in the loss's order; a Var for each differentiable one.
    let mut tensors = Vec::with_capacity(args.len());
    let mut vars = Vec::new();
    for a in args {
        if a.grad {
            let v = Var::from_tensor(&c.tensor(a.name)?).map_err(err_str)?;
            tensors.push(v.as_tensor().clone());
            vars.push((a.name, v));
        } else {
            tensors.push(to_tensor(&c.input(a.name)?, c.dtype, c.device)?);
        }
    }
    let refs: Vec<&Tensor> = tensors.iter().collect();
    let y = loss.forward_args(&refs).map_err(err_str)?;
    c.compare("output", &y, diff)?;
    if c.expected.keys().any(|k| k.starts_with("grad_")) {
        let grads = backward(&y, c.opt_input("grad_output")?, c.dtype)?;
        for (name, v) in &vars {
            c.compare(&format!("grad_{name}"), &grad_of(&grads, v)?, diff)?;
        }
    }
    Ok(())
}

fn optimizer_case(c: &Case, diff: &mut Diff) -> CaseResultInner<()> {
    c.check_expected_keys(&["trajectory", "eval_trajectory"])?;
    let expected = c
        .expected
        .get("trajectory")
        .and_then(Json::as_array)
        .ok_or("expected.trajectory must be a list of tensors (x after each step)")?;
    // Optional: where the model is evaluated after each step, for optimizers that
    // evaluate elsewhere than at the parameter (schedule-free's average).
    let eval_expected = match c.expected.get("eval_trajectory") {
        None => None,
        Some(e) => Some(e.as_array().ok_or("expected.eval_trajectory must be a list of tensors (one per step)")?),
    };
    let (opt, lr) = ember_core::registry::optimizer_with_lr(c.name, &c.config, &c.ctx()).map_err(err_str)?;
    let (x0, a, b) = (c.tensor("x0")?, c.tensor("a")?, c.tensor("b")?);
    if x0.dims() != a.dims() || x0.dims() != b.dims() {
        return Err(format!("inputs x0 {:?}, a {:?} and b {:?} must have one shape", x0.dims(), a.dims(), b.dims()));
    }
    let steps = c.count("steps")?;
    if expected.len() != steps {
        return Err(format!("expected.trajectory has {} entries but inputs.steps is {steps}", expected.len()));
    }
    if let Some(evals) = eval_expected.filter(|e| e.len() != steps) {
        return Err(format!("expected.eval_trajectory has {} entries but inputs.steps is {steps}", evals.len()));
    }
    let x = Var::from_tensor(&x0).map_err(err_str)?;
    if let Some(closure_opt) = opt.closure_optimizer() {
        if eval_expected.is_some() {
            return Err(format!(
                "optimizer '{}' has no separate evaluation point; remove expected.eval_trajectory",
                c.name
            ));
        }
        return closure_trajectory(closure_opt, lr, &x, &a, &b, expected, c, diff);
    }
    let mut state = opt.init_state(x.as_tensor()).map_err(err_str)?;
    let two_a = a.affine(2.0, 0.0).map_err(err_str)?;
    for (k, exp) in expected.iter().enumerate() {
        let g = two_a.mul(x.as_tensor()).and_then(|t| t.add(&b)).map_err(err_str)?;
        opt.step(&x, &g, &mut state, &StepContext::new(lr)).map_err(|e| format!("step {}: {e}", k + 1))?;
        let exp = parse_data(exp).map_err(|e| format!("expected.trajectory[{k}]: {e}"))?;
        compare(&format!("step {}", k + 1), x.as_tensor(), &exp, c.rtol, c.atol, diff)?;
        if let Some(evals) = eval_expected {
            let point = opt
                .eval_point(x.as_tensor(), &state)
                .map_err(|e| format!("evaluation point after step {}: {e}", k + 1))?
                .ok_or_else(|| {
                    format!(
                        "optimizer '{}' evaluates the model at its parameter (it has no separate evaluation point), but the case gives expected.eval_trajectory; remove that key",
                        c.name
                    )
                })?;
            let exp = parse_data(&evals[k]).map_err(|e| format!("expected.eval_trajectory[{k}]: {e}"))?;
            compare(&format!("evaluation point after step {}", k + 1), &point, &exp, c.rtol, c.atol, diff)?;
        }
    }
    Ok(())
}

/// The trajectory of an optimizer that re-evaluates the loss within its step (`lbfgs`,
/// PyTorch's `step(closure)`): each step gets the loss and gradient at x and a closure
/// that recomputes both, f = (a*x^2).sum() + (b*x).sum() and g = 2*a*x + b in the working
/// dtype, wherever the optimizer has moved x.
#[allow(clippy::too_many_arguments)]
fn closure_trajectory(
    opt: &dyn ember_core::ClosureOptimizer,
    lr: f64,
    x: &Var,
    a: &Tensor,
    b: &Tensor,
    expected: &[Json],
    c: &Case,
    diff: &mut Diff,
) -> CaseResultInner<()> {
    let two_a = a.affine(2.0, 0.0).map_err(err_str)?;
    let eval = || -> ember_core::Result<(f64, Vec<Tensor>)> {
        let x = x.as_tensor();
        let f = a.mul(&x.sqr()?)?.sum_all()?.add(&b.mul(x)?.sum_all()?)?;
        let g = two_a.mul(x)?.add(b)?;
        Ok((f.to_dtype(DType::F64)?.to_scalar::<f64>()?, vec![g]))
    };
    let mut state = opt.init_state(&[x]).map_err(err_str)?;
    for (k, exp) in expected.iter().enumerate() {
        let (loss, grads) = eval().map_err(err_str)?;
        let mut closure = eval;
        opt.step(&[x], loss, grads, &mut closure, &mut state, &StepContext::new(lr))
            .map_err(|e| format!("step {}: {e}", k + 1))?;
        let exp = parse_data(exp).map_err(|e| format!("expected.trajectory[{k}]: {e}"))?;
        compare(&format!("step {}", k + 1), x.as_tensor(), &exp, c.rtol, c.atol, diff)?;
    }
    Ok(())
}

fn scheduler_case(c: &Case, diff: &mut Diff) -> CaseResultInner<()> {
    c.check_expected_keys(&["lr", "momentum"])?;
    let expected = c.expected.get("lr").and_then(Json::as_array).ok_or("expected.lr must be a list of numbers")?;
    let momenta = match c.expected.get("momentum") {
        None => None,
        Some(m) => Some(m.as_array().ok_or("expected.momentum must be a list of numbers")?),
    };
    let mut sched = ember_core::scheduler(c.name, &c.config, &c.ctx()).map_err(err_str)?;
    let steps = c.count("steps")?;
    if expected.len() != steps {
        return Err(format!("expected.lr has {} entries but inputs.steps is {steps}", expected.len()));
    }
    if momenta.is_some_and(|m| m.len() != steps) {
        return Err(format!("expected.momentum must have one entry per step ({steps}), like expected.lr"));
    }
    let metrics = match c.inputs.get("metrics") {
        None => None,
        Some(m) => Some(parse_data(m).map_err(|e| format!("inputs.metrics: {e}"))?.values),
    };
    if sched.needs_metric() && metrics.as_ref().is_none_or(|m| m.len() < steps) {
        return Err(format!("scheduler '{}' needs inputs.metrics with one number per step ({steps})", c.name));
    }
    let mut lrs = vec![c.number("lr")?];
    sched.init(&mut lrs).map_err(err_str)?;
    for (k, exp) in expected.iter().enumerate() {
        let exp = parse_number(exp).map_err(|e| format!("expected.lr[{k}]: {e}"))?;
        check_value(&format!("lr at step {}", k + 1), lrs[0], exp, c.rtol, c.atol, diff)?;
        if let Some(momenta) = momenta {
            let exp = parse_number(&momenta[k]).map_err(|e| format!("expected.momentum[{k}]: {e}"))?;
            let got = sched.momentum(0).ok_or_else(|| {
                format!("scheduler '{}' sets no momentum, but the case expects one (cycle_momentum?)", c.name)
            })?;
            check_value(&format!("momentum at step {}", k + 1), got, exp, c.rtol, c.atol, diff)?;
        }
        let metric = metrics.as_ref().map(|m| m[k]);
        sched.step(&mut lrs, metric).map_err(|e| format!("step {}: {e}", k + 1))?;
    }
    Ok(())
}

fn regularizer_case(c: &Case, diff: &mut Diff) -> CaseResultInner<()> {
    let reg = ember_core::regularizer(c.name, &c.config, &c.ctx()).map_err(err_str)?;
    let w = Var::from_tensor(&c.tensor("input")?).map_err(err_str)?;
    match reg.role() {
        RegularizerRole::Penalty => {
            c.check_expected_keys(&["penalty", "grad_input"])?;
            c.require("penalty")?;
            let p = reg.penalty(w.as_tensor()).map_err(err_str)?;
            c.compare("penalty", &p, diff)?;
            let grads = p.backward().map_err(err_str)?;
            c.compare("grad_input", &grad_of(&grads, &w)?, diff)
        }
        RegularizerRole::Constraint => {
            c.check_expected_keys(&["output"])?;
            c.require("output")?;
            let out = reg.constrain(w.as_tensor()).map_err(err_str)?;
            c.compare("output", &out, diff)
        }
        RegularizerRole::Noise => {
            Err(format!("regularizer '{}' is random; parity files check only deterministic regularizers", c.name))
        }
    }
}

/// A metric over `inputs.output` and `inputs.target`, fed in batches of
/// `inputs.batch_size` rows (default: one batch), against `expected.value`.
fn metric_case(c: &Case, diff: &mut Diff) -> CaseResultInner<()> {
    c.check_expected_keys(&["value"])?;
    c.require("value")?;
    let metric = ember_core::metric(c.name, &c.config, &c.ctx()).map_err(err_str)?;
    let output = c.tensor("output")?;
    let target = to_tensor(&c.input("target")?, c.dtype, c.device)?;
    let n = output.dims().first().copied().ok_or("inputs.output must have a batch dimension")?;
    let batch = if c.inputs.contains_key("batch_size") { c.count("batch_size")?.max(1) } else { n.max(1) };
    let mut state = metric.start();
    for start in (0..n).step_by(batch) {
        let len = batch.min(n - start);
        let (o, t) = (output.narrow(0, start, len).map_err(err_str)?, target.narrow(0, start, len).map_err(err_str)?);
        state.update(&o, &t).map_err(err_str)?;
    }
    let value = state.value().map_err(err_str)?;
    c.compare("value", &Tensor::new(value, &Device::Cpu).map_err(err_str)?, diff)
}

fn layer_case(c: &Case, diff: &mut Diff) -> CaseResultInner<()> {
    for k in c.expected.keys() {
        if !matches!(k.as_str(), "output" | "grad_input" | "state_after") && !k.starts_with("grad_") {
            return Err(format!(
                "expected.{k} is not something a layer case produces; use output, grad_input, grad_NAME (a parameter) or state_after"
            ));
        }
    }
    c.require("output")?;
    let train = match c.mode.map(|m| m.as_str()) {
        None | Some(Some("train")) => true,
        Some(Some("eval")) => false,
        Some(other) => return Err(format!("mode {} is not supported; use \"train\" or \"eval\"", show(other))),
    };
    let input = c.input("input")?;
    let x = to_tensor(&input, c.dtype, c.device)?;
    let per_example = x.dims().get(1..).ok_or("inputs.input must have a batch dimension")?.to_vec();
    let mut table = c.config.clone();
    table.insert("name".into(), Value::Str(c.name.to_string()));
    let mut lctx = LayerContext::new(c.device.clone(), c.dtype, 0);
    lctx.path = format!("layer '{}'", c.name);
    let built = ember_nn::build_layer(&table, &per_example, &mut lctx).map_err(err_str)?;
    let module = built.module;
    let state = match c.inputs.get("state") {
        None => std::collections::HashMap::new(),
        Some(Json::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                let d = parse_data(v).map_err(|e| format!("inputs.state.{k}: {e}"))?;
                Ok((k.clone(), to_tensor(&d, c.dtype, c.device)?))
            })
            .collect::<CaseResultInner<_>>()?,
        Some(_) => return Err("inputs.state must be an object of named tensors".into()),
    };
    ember_nn::load_state_dict(module.as_ref(), &state).map_err(|e| format!("inputs.state: {e}"))?;
    let xv = if x.dtype().is_float() { Some(Var::from_tensor(&x).map_err(err_str)?) } else { None };
    let mut fwd = if train { Forward::train(0) } else { Forward::eval() };
    let y = module.forward(xv.as_ref().map_or(&x, |v| v.as_tensor()), &mut fwd).map_err(err_str)?;
    if y.dims().get(1..) != Some(built.output.as_slice()) {
        return Err(format!(
            "the layer declared an output of shape {:?} per example but produced {:?}",
            built.output,
            y.dims()
        ));
    }
    c.compare("output", &y, diff)?;
    if let Some(after) = c.expected.get("state_after") {
        let after = after.as_object().ok_or("expected.state_after must be an object of named tensors")?;
        let now = ember_nn::state_dict(module.as_ref());
        let mut names: Vec<&String> = now.keys().collect();
        names.sort();
        for name in &names {
            let exp = after
                .get(*name)
                .ok_or_else(|| format!("expected.state_after has no '{name}', which the layer holds"))?;
            let exp = parse_data(exp).map_err(|e| format!("expected.state_after.{name}: {e}"))?;
            compare(&format!("state_after.{name}"), &now[*name], &exp, c.rtol, c.atol, diff)?;
        }
        if let Some(extra) = after.keys().find(|k| !now.contains_key(*k)) {
            return Err(format!("expected.state_after.{extra}: the layer has no such tensor (it holds {names:?})"));
        }
    }
    let grads_wanted = c.expected.keys().any(|k| k.starts_with("grad_"));
    if grads_wanted {
        let grads = backward(&y, c.opt_input("grad_output")?, c.dtype)?;
        if c.expected.contains_key("grad_input") {
            let xv = xv.as_ref().ok_or("expected.grad_input, but the input is integer (no gradient)")?;
            c.compare("grad_input", &grad_of(&grads, xv)?, diff)?;
        }
        let params = module.named_parameters();
        for key in c.expected.keys().filter(|k| k.starts_with("grad_") && *k != "grad_input") {
            let name = &key["grad_".len()..];
            let (_, var) = params.iter().find(|(n, _)| n == name).ok_or_else(|| {
                format!(
                    "expected.{key}, but layer '{}' has no parameter '{name}' (it has: {})",
                    c.name,
                    params.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
                )
            })?;
            c.compare(key, &grad_of(&grads, var)?, diff)?;
        }
    }
    Ok(())
}

/// Gradients of sum(y * grad_output) (grad_output defaults to ones).
fn backward(y: &Tensor, grad_output: Option<Data>, dtype: DType) -> CaseResultInner<candle_core::backprop::GradStore> {
    let device = y.device();
    let weighted = match grad_output {
        None => y.clone(),
        Some(g) => {
            let g = to_tensor(&g, dtype, device)?;
            if g.dims() != y.dims() {
                return Err(format!(
                    "inputs.grad_output has shape {:?} but the output has shape {:?}",
                    g.dims(),
                    y.dims()
                ));
            }
            y.mul(&g).map_err(err_str)?
        }
    };
    weighted.sum_all().and_then(|s| s.backward()).map_err(err_str)
}

fn grad_of(grads: &candle_core::backprop::GradStore, v: &Var) -> CaseResultInner<Tensor> {
    match grads.get(v.as_tensor()) {
        Some(g) => Ok(g.clone()),
        None => v.as_tensor().zeros_like().map_err(err_str),
    }
}

fn parse_number(v: &Json) -> Result<f64, String> {
    match v {
        Json::Number(n) => n.as_f64().ok_or_else(|| format!("{n} is not a number")),
        Json::String(s) => match s.as_str() {
            "nan" => Ok(f64::NAN),
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            _ => Err(format!("{s:?} is not a number (non-finite values are \"nan\", \"inf\", \"-inf\")")),
        },
        other => Err(format!("{other} is not a number")),
    }
}

/// Reads a nested-array tensor, or `{"dtype": "i64", "data": ...}`.
fn parse_data(v: &Json) -> Result<Data, String> {
    if let Json::Object(o) = v {
        let dtype = o.get("dtype").and_then(Json::as_str).ok_or("a tensor object needs a \"dtype\" string")?;
        let data = o.get("data").ok_or("a tensor object needs \"data\"")?;
        let d = parse_data(data)?;
        return match dtype {
            "i64" | "i32" | "u8" | "u32" => {
                let ints = d
                    .values
                    .iter()
                    .map(|&x| if x.fract() == 0.0 { Ok(x as i64) } else { Err(format!("{x} is not an integer")) })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Data { int: Some(ints), ..d })
            }
            "f32" | "f64" => Ok(d),
            other => Err(format!("unsupported tensor dtype {other:?}; use i64 (or f32/f64)")),
        };
    }
    let mut shape = Vec::new();
    let mut cur = v;
    while let Json::Array(items) = cur {
        shape.push(items.len());
        match items.first() {
            Some(first) => cur = first,
            None => break,
        }
    }
    let mut values = Vec::with_capacity(shape.iter().product());
    flatten(v, &shape, &mut values)?;
    Ok(Data { shape, values, int: None })
}

fn flatten(v: &Json, shape: &[usize], out: &mut Vec<f64>) -> Result<(), String> {
    match (v, shape) {
        (Json::Array(items), [n, rest @ ..]) if items.len() == *n => {
            items.iter().try_for_each(|item| flatten(item, rest, out))
        }
        (Json::Array(items), [n, ..]) => {
            Err(format!("ragged nested array: a row has {} entries, expected {n}", items.len()))
        }
        (Json::Array(_), []) => Err("ragged nested array: more nesting than the first element has".into()),
        (scalar, []) => {
            out.push(parse_number(scalar)?);
            Ok(())
        }
        (other, _) => Err(format!("ragged nested array: found {other} where a list was expected")),
    }
}

fn to_tensor(d: &Data, dtype: DType, device: &Device) -> CaseResultInner<Tensor> {
    let t = match &d.int {
        Some(ints) => Tensor::from_vec(ints.clone(), d.shape.clone(), &Device::Cpu),
        None => Tensor::from_vec(d.values.clone(), d.shape.clone(), &Device::Cpu).and_then(|t| t.to_dtype(dtype)),
    }
    .and_then(|t| t.to_device(device));
    t.map_err(err_str)
}

fn compare(what: &str, got: &Tensor, exp: &Data, rtol: f64, atol: f64, diff: &mut Diff) -> CaseResultInner<()> {
    if got.dims() != exp.shape.as_slice() {
        return Err(format!("{what}: shape {:?}, expected {:?}", got.dims(), exp.shape));
    }
    let got: Vec<f64> =
        got.to_dtype(DType::F64).and_then(|t| t.flatten_all()).and_then(|t| t.to_vec1()).map_err(err_str)?;
    for (i, (&g, &e)) in got.iter().zip(&exp.values).enumerate() {
        let at = if exp.shape.len() > 1 {
            format!("{what}, element {:?}", unravel(i, &exp.shape))
        } else if exp.shape.len() == 1 {
            format!("{what}, element {i}")
        } else {
            what.to_string()
        };
        check_value(&at, g, e, rtol, atol, diff)?;
    }
    Ok(())
}

fn check_value(at: &str, got: f64, exp: f64, rtol: f64, atol: f64, diff: &mut Diff) -> CaseResultInner<()> {
    if exp.is_nan() || !exp.is_finite() || !got.is_finite() {
        let same = (exp.is_nan() && got.is_nan()) || got == exp;
        return if same { Ok(()) } else { Err(format!("{at}: got {got} expected {exp}")) };
    }
    let abs = (got - exp).abs();
    let rel = if exp != 0.0 {
        abs / exp.abs()
    } else if abs == 0.0 {
        0.0
    } else {
        f64::INFINITY
    };
    if abs > atol + rtol * exp.abs() {
        return Err(format!(
            "{at}: got {} expected {} (abs {abs:.1e} > atol {atol:.0e} + rtol {rtol:.0e} * |expected|; rel {rel:.1e})",
            fmt_num(got),
            fmt_num(exp)
        ));
    }
    diff.max_abs = diff.max_abs.max(abs);
    if rel.is_finite() {
        diff.max_rel = diff.max_rel.max(rel);
    }
    Ok(())
}

fn fmt_num(x: f64) -> String {
    if x != 0.0 && (x.abs() < 1e-4 || x.abs() >= 1e6) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for (d, &n) in shape.iter().enumerate().rev() {
        idx[d] = i % n.max(1);
        i /= n.max(1);
    }
    idx
}
