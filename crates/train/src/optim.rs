//! The optimizer driver: runs one registered optimizer over a model's named parameters,
//! with PyTorch-style parameter groups, and saves and restores its state.
//!
//! Parameter groups select parameters by glob on their names (`*.bias`,
//! `layers.0.weight`) and override any hyperparameter; every parameter belongs to
//! exactly one group (unmatched ones to the default group, group 0), and one optimizer
//! is built per group. A parameter without a gradient is skipped, and its state is
//! created lazily at its first step, as in PyTorch.
//!
//! An optimizer that updates all parameters together and re-evaluates the loss within
//! its step (`lbfgs`: [`ember_core::ClosureOptimizer`], PyTorch's `step(closure)`) takes
//! [`OptimizerDriver::step_closure`] instead of [`OptimizerDriver::step`], keeps one
//! state for the whole parameter set, and admits no parameter groups, as in PyTorch.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use ember_core::{
    registry, AnyState, BuildContext, ClosureOptimizer, Config, Context, DynOptimizer, Error, Result, Scheduler, State,
    StepContext, Value,
};

use crate::glob;

/// One parameter group: the name patterns it selects and the hyperparameters it
/// overrides (PyTorch's `param_groups` entries).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamGroupSpec {
    /// Glob patterns on parameter names.
    pub params: Vec<String>,
    /// Hyperparameters that differ from the optimizer's config.
    pub overrides: Config,
}

impl ParamGroupSpec {
    /// Reads a group from a config table: `params = ["*.bias"]` plus overrides.
    pub fn from_table(index: usize, table: &Config) -> Result<Self> {
        let params = match table.get("params") {
            Some(Value::List(items)) if !items.is_empty() => items
                .iter()
                .map(|v| match v {
                    Value::Str(s) => Ok(s.clone()),
                    other => Err(Error::config(
                        format!("optimizer.groups[{index}].params"),
                        format!("expected name patterns (strings), got {other}"),
                    )),
                })
                .collect::<Result<Vec<_>>>()?,
            _ => {
                return Err(Error::input(format!(
                    "optimizer.groups[{index}] needs `params`, a non-empty list of name patterns such as [\"*.bias\"]"
                )))
            }
        };
        let overrides = table.iter().filter(|(k, _)| *k != "params").map(|(k, v)| (k.clone(), v.clone())).collect();
        Ok(ParamGroupSpec { params, overrides })
    }
}

struct Group {
    /// The optimizer's registry name (a group may name its own).
    name: String,
    optimizer: Box<dyn DynOptimizer>,
    /// Whether the optimizer takes `momentum` or `betas` (what momentum cycling moves).
    has_momentum: bool,
    /// The patterns that select it (empty for the default group).
    patterns: Vec<String>,
}

/// Runs an optimizer over named parameters. See the module docs.
pub struct OptimizerDriver {
    name: String,
    groups: Vec<Group>,
    /// The learning rate of each group: the configured `lr`, then whatever the
    /// scheduler sets. The one place it lives: each step is handed its group's rate.
    lrs: Vec<f64>,
    /// The momentum a scheduler sets for each group (`None`: as configured).
    momenta: Vec<Option<f64>>,
    params: Vec<(String, Var)>,
    group_of: Vec<usize>,
    states: Vec<Option<AnyState>>,
    /// The state of a closure optimizer (`lbfgs`), one for all parameters; created at
    /// its first step.
    closure_state: Option<State>,
}

impl std::fmt::Debug for OptimizerDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OptimizerDriver").field("name", &self.name).field("lrs", &self.lrs).finish_non_exhaustive()
    }
}

impl OptimizerDriver {
    /// The optimizer `name` with `config`, over `params`, with extra parameter `groups`
    /// (group 0 is the default group; `groups[i]` becomes group i + 1). A group's
    /// overrides change the default group's config; a group that names an optimizer of
    /// its own (`name = "adamw"`) is built from its own keys alone, with that optimizer's
    /// defaults for the rest (Muon on the matrices, AdamW on the rest, in one run).
    pub fn new(name: &str, config: &Config, groups: &[ParamGroupSpec], params: Vec<(String, Var)>) -> Result<Self> {
        let ctx = BuildContext::default();
        let momentum_keys = |name: &str| -> Result<bool> {
            let keys = registry::find::<dyn DynOptimizer>(name)?.params;
            Ok(keys.iter().any(|k| k.name == "momentum" || k.name == "betas"))
        };
        let (optimizer, lr) = registry::optimizer_with_lr(name, config, &ctx)?;
        let mut lrs = vec![lr];
        let mut built =
            vec![Group { name: name.to_string(), optimizer, has_momentum: momentum_keys(name)?, patterns: Vec::new() }];
        for (i, spec) in groups.iter().enumerate() {
            let at = || format!("optimizer.groups[{i}]");
            let (group_name, merged) = match spec.overrides.get("name") {
                None => {
                    let mut merged = config.clone();
                    merged.extend(spec.overrides.clone());
                    (name.to_string(), merged)
                }
                Some(Value::Str(own)) => {
                    let own_keys = spec.overrides.iter().filter(|(k, _)| *k != "name");
                    (own.clone(), own_keys.map(|(k, v)| (k.clone(), v.clone())).collect())
                }
                Some(other) => {
                    return Err(Error::config(
                        format!("{}.name", at()),
                        format!("expected an optimizer name (a string such as \"adamw\"), got {other}"),
                    ))
                }
            };
            let (optimizer, lr) = registry::optimizer_with_lr(&group_name, &merged, &ctx).with_context(at)?;
            lrs.push(lr);
            let has_momentum = momentum_keys(&group_name)?;
            built.push(Group { name: group_name, optimizer, has_momentum, patterns: spec.params.clone() });
        }
        if built.len() > 1 {
            if let Some(g) = built.iter().find(|g| g.optimizer.closure_optimizer().is_some()) {
                return Err(Error::input(format!(
                    "optimizer '{}' updates all parameters together, so it takes no parameter groups (PyTorch: \"LBFGS doesn't support per-parameter options (parameter groups)\"); remove the [[optimizer.groups]] entries, or give every group another optimizer",
                    g.name
                )));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (pname, _) in &params {
            if !seen.insert(pname.as_str()) {
                return Err(Error::input(format!(
                    "two parameters are named '{pname}'; parameter names must be unique"
                )));
            }
        }
        let mut group_of = Vec::with_capacity(params.len());
        for (pname, _) in &params {
            let hits: Vec<usize> =
                (1..built.len()).filter(|&g| built[g].patterns.iter().any(|p| glob::matches(p, pname))).collect();
            match hits.as_slice() {
                [] => group_of.push(0),
                [g] => group_of.push(*g),
                [a, b, ..] => {
                    return Err(Error::input(format!(
                        "parameter '{pname}' matches optimizer.groups[{}] ({}) and optimizer.groups[{}] ({}); every parameter must belong to exactly one group",
                        a - 1,
                        built[*a].patterns.join(", "),
                        b - 1,
                        built[*b].patterns.join(", ")
                    )))
                }
            }
        }
        for (g, group) in built.iter().enumerate().skip(1) {
            if !group_of.contains(&g) {
                let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
                return Err(Error::input(format!(
                    "optimizer.groups[{}] ({}) matches no parameter; the parameters are: {}",
                    g - 1,
                    group.patterns.join(", "),
                    names.join(", ")
                )));
            }
        }
        let states = vec![None; params.len()];
        let momenta = vec![None; built.len()];
        Ok(OptimizerDriver {
            name: name.to_string(),
            groups: built,
            lrs,
            momenta,
            params,
            group_of,
            states,
            closure_state: None,
        })
    }

    /// The optimizer's registry name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The learning rate of each group (default group first).
    pub fn lrs(&self) -> &[f64] {
        &self.lrs
    }

    /// The learning rates, for a scheduler to update.
    pub fn lrs_mut(&mut self) -> &mut [f64] {
        &mut self.lrs
    }

    /// Starts `scheduler` on this optimizer's groups: its `init` sets the starting rates
    /// (as PyTorch's constructors do), then [`OptimizerDriver::follow`].
    pub fn start_schedule(&mut self, scheduler: &mut dyn Scheduler) -> Result<()> {
        scheduler.init(&mut self.lrs)?;
        self.follow(scheduler)
    }

    /// One step of `scheduler` (`metric` for metric-driven ones), then
    /// [`OptimizerDriver::follow`].
    pub fn step_schedule(&mut self, scheduler: &mut dyn Scheduler, metric: Option<f64>) -> Result<()> {
        scheduler.step(&mut self.lrs, metric)?;
        self.follow(scheduler)
    }

    /// Takes the momentum each group's steps use from `scheduler`, when it sets one
    /// (`one_cycle` with `cycle_momentum`); [`OptimizerDriver::start_schedule`] and
    /// [`OptimizerDriver::step_schedule`] call it, and a caller that restores the
    /// scheduler's state calls it after `load_state`. An optimizer without `momentum` or
    /// `betas` is refused, as PyTorch refuses it.
    pub fn follow(&mut self, scheduler: &dyn Scheduler) -> Result<()> {
        if !scheduler.cycles_momentum() {
            self.momenta.iter_mut().for_each(|m| *m = None);
            return Ok(());
        }
        if let Some(g) = self.groups.iter().find(|g| !g.has_momentum) {
            return Err(Error::input(format!(
                "the scheduler cycles momentum (cycle_momentum = true, PyTorch's default), but optimizer '{}' has no `momentum` or `betas`; set cycle_momentum = false in [scheduler]",
                g.name
            )));
        }
        for (g, m) in self.momenta.iter_mut().enumerate() {
            *m = scheduler.momentum(g);
        }
        Ok(())
    }

    /// The momentum a scheduler sets for each group (`None`: as configured).
    pub fn momenta(&self) -> &[Option<f64>] {
        &self.momenta
    }

    /// The parameters and their names.
    pub fn params(&self) -> &[(String, Var)] {
        &self.params
    }

    /// The group index of each parameter, in parameter order.
    pub fn group_of(&self, name: &str) -> Option<usize> {
        self.params.iter().position(|(n, _)| n == name).map(|i| self.group_of[i])
    }

    /// Whether the optimizer re-evaluates the loss within its step (`lbfgs`): then step
    /// with [`OptimizerDriver::step_closure`], not [`OptimizerDriver::step`].
    pub fn needs_closure(&self) -> bool {
        self.closure_optimizer().is_some()
    }

    /// The closure optimizer, when the optimizer is one (it is then the only group's).
    fn closure_optimizer(&self) -> Option<&dyn ClosureOptimizer> {
        self.groups[0].optimizer.closure_optimizer()
    }

    /// One optimizer step over every parameter that has a gradient in `grads`.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        if self.needs_closure() {
            return Err(Error::input(format!(
                "optimizer '{}' re-evaluates the loss within its step: call OptimizerDriver::step_closure with a closure that recomputes the loss and the gradients on the same batch (the Learner does), not step",
                self.name
            )));
        }
        for (i, (name, var)) in self.params.iter().enumerate() {
            let Some(grad) = grads.get(var.as_tensor()) else {
                continue;
            };
            let group = self.group_of[i];
            let optimizer = &self.groups[group].optimizer;
            let state = match &mut self.states[i] {
                Some(s) => s,
                slot => slot.insert(
                    optimizer
                        .init_state(var.as_tensor())
                        .with_context(|| format!("{} on parameter '{name}'", self.groups[group].name))?,
                ),
            };
            let grad = if grad.dtype() == var.dtype() { grad.clone() } else { grad.to_dtype(var.dtype())? };
            let ctx = StepContext::new(self.lrs[group]).with_momentum(self.momenta[group]);
            optimizer
                .step(var, &grad, state, &ctx)
                .with_context(|| format!("{} step on parameter '{name}'", self.groups[group].name))?;
        }
        Ok(())
    }

    /// One step of an optimizer that re-evaluates the loss within its step (`lbfgs`,
    /// PyTorch's `optimizer.step(closure)`): `loss` and `grads` are the loss and the
    /// gradients at the current parameters (PyTorch's first `closure()` call, which the
    /// caller has made); `closure` recomputes both, at wherever the optimizer has moved
    /// the parameters (forward, loss and backward on the same batch). A parameter
    /// without a gradient counts as a zero gradient, as in PyTorch. The optimizer's state,
    /// one for all parameters, is created at the first step.
    pub fn step_closure(
        &mut self,
        loss: f64,
        grads: &GradStore,
        closure: &mut dyn FnMut() -> Result<(f64, GradStore)>,
    ) -> Result<()> {
        let group = &self.groups[0];
        let Some(optimizer) = group.optimizer.closure_optimizer() else {
            return Err(Error::input(format!(
                "optimizer '{}' updates each parameter from its gradient: call OptimizerDriver::step, not step_closure",
                self.name
            )));
        };
        let vars: Vec<&Var> = self.params.iter().map(|(_, v)| v).collect();
        // Every parameter's gradient, in parameter order, in its dtype; zeros where none.
        let gather = |grads: &GradStore| -> Result<Vec<Tensor>> {
            let mut out = Vec::with_capacity(vars.len());
            for v in &vars {
                out.push(match grads.get(v.as_tensor()) {
                    Some(g) if g.dtype() == v.dtype() => g.clone(),
                    Some(g) => g.to_dtype(v.dtype())?,
                    None => v.as_tensor().zeros_like()?,
                });
            }
            Ok(out)
        };
        let first = gather(grads)?;
        let mut adapted = || -> Result<(f64, Vec<Tensor>)> {
            let (loss, grads) = closure()?;
            Ok((loss, gather(&grads)?))
        };
        let state = match &mut self.closure_state {
            Some(s) => s,
            slot => slot.insert(optimizer.init_state(&vars).with_context(|| group.name.clone())?),
        };
        let ctx = StepContext::new(self.lrs[0]).with_momentum(self.momenta[0]);
        optimizer.step(&vars, loss, first, &mut adapted, state, &ctx).with_context(|| format!("{} step", group.name))
    }

    /// Where the model is evaluated, for the parameters whose optimizer evaluates
    /// elsewhere than at the parameter (schedule-free's average, see
    /// `Optimizer::eval_point`): `(index into params(), value)`. Empty for every
    /// other optimizer, and before the first step.
    pub fn eval_points(&self) -> Result<Vec<(usize, Tensor)>> {
        let mut out = Vec::new();
        for (i, ((name, var), state)) in self.params.iter().zip(&self.states).enumerate() {
            let Some(state) = state else { continue };
            let group = &self.groups[self.group_of[i]];
            if let Some(t) = group
                .optimizer
                .eval_point(var.as_tensor(), state)
                .with_context(|| format!("{} evaluation point of parameter '{name}'", group.name))?
            {
                out.push((i, t));
            }
        }
        Ok(out)
    }

    /// The state as named tensors: `optimizer/lr/{group}` and, per parameter,
    /// `optimizer/state/{param}/{buffer}` and `optimizer/scalar/{param}/{key}`
    /// (scalars as 0-d f64 tensors, so a round trip is exact); for a closure optimizer
    /// (`lbfgs`), its one state as `optimizer/closure/{key}` and
    /// `optimizer/closure_scalar/{key}`.
    pub fn state_dict(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for (g, lr) in self.lrs.iter().enumerate() {
            out.insert(format!("optimizer/lr/{g}"), Tensor::new(*lr, &Device::Cpu)?);
        }
        for ((name, _), state) in self.params.iter().zip(&self.states) {
            let Some(state) = state else { continue };
            let state = state.save();
            for (k, t) in &state.tensors {
                out.insert(format!("optimizer/state/{name}/{k}"), t.clone());
            }
            for (k, v) in &state.scalars {
                out.insert(format!("optimizer/scalar/{name}/{k}"), Tensor::new(*v, &Device::Cpu)?);
            }
        }
        if let Some(state) = &self.closure_state {
            for (k, t) in &state.tensors {
                out.insert(format!("optimizer/closure/{k}"), t.clone());
            }
            for (k, v) in &state.scalars {
                out.insert(format!("optimizer/closure_scalar/{k}"), Tensor::new(*v, &Device::Cpu)?);
            }
        }
        Ok(out)
    }

    /// Restores what [`OptimizerDriver::state_dict`] produced. Every key must name a
    /// known group or parameter, and buffers must have the shape the optimizer keeps
    /// them in (their parameter's, for elementwise optimizers). A closure optimizer's
    /// state is checked by the optimizer itself (its entries and their sizes).
    pub fn load_state_dict(&mut self, dict: &HashMap<String, Tensor>) -> Result<()> {
        let mut states: Vec<Option<State>> = vec![None; self.params.len()];
        let mut lrs = self.lrs.clone();
        let mut problems = Vec::new();
        let closure_optimizer = self.closure_optimizer();
        let mut closure_state: Option<State> = None;
        // What each parameter's state holds, and each buffer's shape: the parameter's for
        // elementwise optimizers, reduced for factored ones (Adafactor's row and column
        // statistics). A closure optimizer keeps none per parameter.
        let expected: Vec<_> = match closure_optimizer {
            Some(_) => vec![None; self.params.len()],
            None => (0..self.params.len()).map(|i| self.expected_state(i)).collect(),
        };
        let device = self.params.first().map_or(Device::Cpu, |(_, v)| v.device().clone());
        for (key, t) in dict {
            let Some(rest) = key.strip_prefix("optimizer/") else {
                continue;
            };
            if let Some(g) = rest.strip_prefix("lr/") {
                match g.parse::<usize>().ok().filter(|g| *g < lrs.len()) {
                    Some(g) => lrs[g] = scalar(key, t)?,
                    None => problems.push(format!("{key}: no such parameter group (there are {})", lrs.len())),
                }
                continue;
            }
            if let Some((kind @ ("closure" | "closure_scalar"), k)) = rest.split_once('/') {
                if closure_optimizer.is_none() {
                    problems.push(format!(
                        "{key}: optimizer '{}' keeps its state per parameter (optimizer/state/...), not one for all parameters",
                        self.name
                    ));
                } else if k.is_empty() {
                    problems.push(format!("{key}: not an optimizer state entry"));
                } else if !t.dtype().is_float() {
                    problems.push(format!("{key}: dtype {:?}; optimizer state must be floating point", t.dtype()));
                } else {
                    let state = closure_state.get_or_insert_with(State::new);
                    if kind == "closure_scalar" {
                        state.scalars.insert(k.to_string(), scalar(key, t)?);
                    } else {
                        state.tensors.insert(k.to_string(), t.to_device(&device)?);
                    }
                }
                continue;
            }
            let (kind, rest) = match rest.split_once('/') {
                _ if closure_optimizer.is_some() => {
                    problems.push(format!(
                        "{key}: optimizer '{}' keeps one state for all parameters (optimizer/closure/...), none per parameter",
                        self.name
                    ));
                    continue;
                }
                Some(("state", r)) => ("state", r),
                Some(("scalar", r)) => ("scalar", r),
                _ => {
                    problems.push(format!("{key}: not an optimizer state entry"));
                    continue;
                }
            };
            let Some((pname, field)) = rest.rsplit_once('/') else {
                problems.push(format!("{key}: not an optimizer state entry"));
                continue;
            };
            let Some(i) = self.params.iter().position(|(n, _)| n == pname) else {
                problems.push(format!("{key}: the model has no parameter '{pname}'"));
                continue;
            };
            let var = &self.params[i].1;
            let state = states[i].get_or_insert_with(State::new);
            let want = expected[i].as_ref().and_then(|(t, _)| t.get(field)).map_or(var.dims(), Vec::as_slice);
            if !t.dtype().is_float() {
                problems.push(format!("{key}: dtype {:?}; optimizer state must be floating point", t.dtype()));
            } else if kind == "scalar" {
                state.scalars.insert(field.to_string(), scalar(key, t)?);
            } else if t.dims() != want {
                problems.push(if want == var.dims() {
                    format!("{key}: shape {:?}, but parameter '{pname}' has shape {:?}", t.dims(), var.dims())
                } else {
                    format!(
                        "{key}: shape {:?}, but {} keeps it with shape {want:?} for parameter '{pname}' (shape {:?})",
                        t.dims(),
                        self.groups[self.group_of[i]].name,
                        var.dims()
                    )
                });
            } else {
                let t = t.to_device(var.device())?.to_dtype(var.dtype())?;
                state.tensors.insert(field.to_string(), t.contiguous()?.copy()?);
            }
        }
        for (i, state) in states.iter().enumerate() {
            let (Some(state), Some((tensors, scalars))) = (state, &expected[i]) else { continue };
            let tensors: BTreeSet<String> = tensors.keys().cloned().collect();
            let pname = &self.params[i].0;
            let name = &self.groups[self.group_of[i]].name;
            for (kind, want, have) in [
                ("state", &tensors, state.tensors.keys().cloned().collect::<BTreeSet<_>>()),
                ("scalar", scalars, state.scalars.keys().cloned().collect()),
            ] {
                for k in want.difference(&have) {
                    problems
                        .push(format!("optimizer/{kind}/{pname}/{k}: missing; {name} keeps it for every parameter"));
                }
                for k in have.difference(want) {
                    problems.push(format!(
                        "optimizer/{kind}/{pname}/{k}: unexpected; {name} with this config keeps no such entry"
                    ));
                }
            }
        }
        if !problems.is_empty() {
            problems.sort();
            return Err(Error::input(format!(
                "optimizer state does not fit this model and optimizer:\n  {}",
                problems.join("\n  ")
            )));
        }
        if let (Some(optimizer), Some(state)) = (closure_optimizer, &closure_state) {
            self.check_closure_state(optimizer, state).with_context(|| {
                format!("optimizer state (optimizer/closure/...) does not fit this model and optimizer '{}'", self.name)
            })?;
        }
        let mut loaded = Vec::with_capacity(states.len());
        for (i, state) in states.into_iter().enumerate() {
            loaded.push(match state {
                None => None,
                Some(state) => Some(
                    self.groups[self.group_of[i]]
                        .optimizer
                        .load_state(&state)
                        .with_context(|| format!("optimizer state of parameter '{}'", self.params[i].0))?,
                ),
            });
        }
        self.states = loaded;
        self.closure_state = closure_state;
        self.lrs = lrs;
        Ok(())
    }

    /// Runs the closure optimizer's step from `state` on copies of the parameters, with
    /// zero gradients and a closure that returns them again (a flat loss): the optimizer
    /// checks its state's entries and sizes first, so a saved state that does not fit is
    /// refused when it is loaded rather than at the next step.
    fn check_closure_state(&self, optimizer: &dyn ClosureOptimizer, state: &State) -> Result<()> {
        let copies = self
            .params
            .iter()
            .map(|(_, v)| Var::from_tensor(&v.as_tensor().copy()?))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let vars: Vec<&Var> = copies.iter().collect();
        let zeros = vars.iter().map(|v| v.as_tensor().zeros_like()).collect::<candle_core::Result<Vec<_>>>()?;
        let mut flat = || -> Result<(f64, Vec<Tensor>)> { Ok((0.0, zeros.clone())) };
        let mut probe = state.clone();
        optimizer.step(&vars, 0.0, zeros.clone(), &mut flat, &mut probe, &StepContext::new(self.lrs[0]))
    }

    /// The names of the buffers and scalars that parameter `i`'s state holds after a
    /// step, found by stepping a copy of the parameter with a zero gradient (optimizers
    /// may create entries lazily, as SGD's momentum buffer). `None` if the probe fails.
    fn expected_state(&self, i: usize) -> Option<ExpectedState> {
        let var = &self.params[i].1;
        let g = self.group_of[i];
        let optimizer = &self.groups[g].optimizer;
        let probe = Var::from_tensor(&var.as_tensor().copy().ok()?).ok()?;
        let mut state = optimizer.init_state(probe.as_tensor()).ok()?;
        let grad = probe.as_tensor().zeros_like().ok()?;
        let ctx = StepContext::new(self.lrs[g]).with_momentum(self.momenta[g]);
        optimizer.step(&probe, &grad, &mut state, &ctx).ok()?;
        let state = state.save();
        Some((
            state.tensors.into_iter().map(|(k, t)| (k, t.dims().to_vec())).collect(),
            state.scalars.into_keys().collect(),
        ))
    }

    /// Saves [`OptimizerDriver::state_dict`] as a safetensors file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        candle_core::safetensors::save(&self.state_dict()?, path.as_ref())?;
        Ok(())
    }

    /// Loads a state saved by [`OptimizerDriver::save`].
    pub fn load(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let dict = candle_core::safetensors::load(path.as_ref(), &Device::Cpu)
            .with_context(|| format!("{}: cannot read optimizer state", path.as_ref().display()))?;
        self.load_state_dict(&dict)
    }
}

/// A parameter's optimizer state as a step leaves it: each buffer's shape by name, and
/// the names of its scalars.
type ExpectedState = (BTreeMap<String, Vec<usize>>, BTreeSet<String>);

fn scalar(key: &str, t: &Tensor) -> Result<f64> {
    if t.rank() != 0 {
        return Err(Error::input(format!("{key}: expected a 0-d tensor, got shape {:?}", t.dims())));
    }
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// A scheduler's state as named 0-d f64 tensors `scheduler/{key}`.
pub fn scheduler_state_dict(scheduler: &dyn Scheduler) -> Result<HashMap<String, Tensor>> {
    let state = scheduler.state();
    let mut out = HashMap::new();
    for (k, v) in &state.scalars {
        out.insert(format!("scheduler/{k}"), Tensor::new(*v, &Device::Cpu)?);
    }
    for (k, t) in &state.tensors {
        out.insert(format!("scheduler/{k}"), t.clone());
    }
    Ok(out)
}

/// Restores a scheduler from [`scheduler_state_dict`]'s entries.
pub fn load_scheduler_state(scheduler: &mut dyn Scheduler, dict: &HashMap<String, Tensor>) -> Result<()> {
    let mut state = State::new();
    for (key, t) in dict {
        if let Some(k) = key.strip_prefix("scheduler/") {
            if t.rank() == 0 {
                state.scalars.insert(k.to_string(), scalar(key, t)?);
            } else {
                state.tensors.insert(k.to_string(), t.clone());
            }
        }
    }
    scheduler.load_state(&state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_core::{Hyperparams, Optimizer, OptimizerState};

    /// A closure optimizer for these tests: x ← x - lr·scale·g for every parameter, then
    /// one closure call; its state counts the steps and keeps the last loss and the
    /// gradients the closure returned (flattened, concatenated), and refuses any other
    /// entry.
    #[derive(Clone, Debug, PartialEq, Hyperparams)]
    #[plugin(
        optimizer = "test_closure_descent",
        summary = "gradient descent that re-evaluates the loss (a test)",
        lr = 0.1
    )]
    struct ClosureDescent {
        /// a factor on the step
        #[param(default = 1.0)]
        scale: f64,
    }

    #[derive(Clone, Debug, OptimizerState)]
    struct NoState {}

    impl Optimizer for ClosureDescent {
        type State = NoState;
        fn init_state(&self, _param: &Tensor) -> Result<NoState> {
            Ok(NoState {})
        }
        fn step(&self, _: &Var, _: &Tensor, _: &mut NoState, _: &StepContext) -> Result<()> {
            Err(Error::input("a closure optimizer"))
        }
        fn closure_optimizer(&self) -> Option<&dyn ClosureOptimizer> {
            Some(self)
        }
    }

    impl ClosureOptimizer for ClosureDescent {
        fn init_state(&self, _params: &[&Var]) -> Result<State> {
            let mut state = State::new();
            state.scalars.insert("steps".into(), 0.0);
            Ok(state)
        }

        fn step(
            &self,
            params: &[&Var],
            _loss: f64,
            grads: Vec<Tensor>,
            closure: &mut ember_core::Closure<'_>,
            state: &mut State,
            ctx: &StepContext,
        ) -> Result<()> {
            let unknown: Vec<&String> = state
                .tensors
                .keys()
                .filter(|k| *k != "last")
                .chain(state.scalars.keys().filter(|k| *k != "steps" && *k != "loss"))
                .collect();
            if !unknown.is_empty() {
                return Err(Error::input(format!("unexpected entries {unknown:?}")));
            }
            for (p, g) in params.iter().zip(&grads) {
                p.set(&p.as_tensor().sub(&g.affine(ctx.lr * self.scale, 0.0)?)?)?;
            }
            let (loss, grads) = closure()?;
            let flat = grads.iter().map(|g| g.flatten_all()).collect::<candle_core::Result<Vec<_>>>()?;
            state.tensors.insert("last".into(), Tensor::cat(&flat, 0)?);
            state.scalars.insert("loss".into(), loss);
            *state.scalars.get_mut("steps").ok_or_else(|| Error::input("no 'steps'"))? += 1.0;
            Ok(())
        }
    }

    /// Two parameters in the loss, sum(w²) + sum((b - 1)²), and one outside it.
    fn model(dtype: DType) -> Vec<(String, Var)> {
        let t = |v: &[f64], dims: &[usize]| {
            Var::from_tensor(&Tensor::new(v, &Device::Cpu).unwrap().to_dtype(dtype).unwrap().reshape(dims).unwrap())
                .unwrap()
        };
        vec![
            ("w".to_string(), t(&[0.5, -1.0, 2.0, 0.25], &[2, 2])),
            ("b".to_string(), t(&[3.0, -2.0, 0.0], &[3])),
            ("unused".to_string(), t(&[7.0], &[1])),
        ]
    }

    fn loss_and_grads(params: &[(String, Var)]) -> Result<(f64, GradStore)> {
        let w = params[0].1.as_tensor().sqr()?.sum_all()?;
        let b = params[1].1.as_tensor().affine(1.0, -1.0)?.sqr()?.sum_all()?;
        let loss = w.add(&b)?;
        let grads = loss.backward()?;
        Ok((loss.to_dtype(DType::F64)?.to_scalar::<f64>()?, grads))
    }

    fn steps(driver: &mut OptimizerDriver, params: &[(String, Var)], n: usize) {
        for _ in 0..n {
            let (loss, grads) = loss_and_grads(params).unwrap();
            let mut closure = || loss_and_grads(params);
            driver.step_closure(loss, &grads, &mut closure).unwrap();
        }
    }

    fn values(params: &[(String, Var)]) -> Vec<u64> {
        params
            .iter()
            .flat_map(|(_, v)| {
                v.as_tensor().to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()
            })
            .map(f64::to_bits)
            .collect()
    }

    fn copy(params: &[(String, Var)]) -> Vec<(String, Var)> {
        params.iter().map(|(n, v)| (n.clone(), Var::from_tensor(&v.as_tensor().copy().unwrap()).unwrap())).collect()
    }

    #[test]
    fn a_closure_optimizer_steps_with_its_closure_and_resumes_exactly() {
        for dtype in [DType::F32, DType::F64] {
            let params = model(dtype);
            let mut driver = OptimizerDriver::new("test_closure_descent", &Config::new(), &[], params.clone()).unwrap();
            assert!(driver.needs_closure());
            steps(&mut driver, &params, 2);
            // The state, saved; a copy of the model carries on from it.
            let dict = driver.state_dict().unwrap();
            assert_eq!(dict["optimizer/closure_scalar/steps"].to_scalar::<f64>().unwrap(), 2.0);
            // The last gradients, in parameter order, zero for the parameter outside the loss.
            let last = dict["optimizer/closure/last"].to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
            assert_eq!(last.len(), 8);
            assert_eq!(last[7], 0.0);
            let resumed = copy(&params);
            let mut other = OptimizerDriver::new("test_closure_descent", &Config::new(), &[], resumed.clone()).unwrap();
            other.load_state_dict(&dict).unwrap();
            steps(&mut driver, &params, 2);
            steps(&mut other, &resumed, 2);
            assert_eq!(values(&params), values(&resumed), "{dtype:?}");
            let (a, b) = (driver.state_dict().unwrap(), other.state_dict().unwrap());
            assert_eq!(a["optimizer/closure_scalar/steps"].to_scalar::<f64>().unwrap(), 4.0);
            for key in ["optimizer/closure/last", "optimizer/closure_scalar/loss"] {
                let bits = |d: &HashMap<String, Tensor>| {
                    d[key].to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()
                };
                assert_eq!(bits(&a), bits(&b), "{key} {dtype:?}");
            }
        }
    }

    #[test]
    fn a_closure_optimizer_refuses_groups_and_the_plain_step() {
        let params = model(DType::F32);
        let groups = [ParamGroupSpec { params: vec!["b".into()], overrides: Config::new() }];
        let err = OptimizerDriver::new("test_closure_descent", &Config::new(), &groups, params.clone())
            .unwrap_err()
            .to_string();
        assert!(err.contains("parameter groups") && err.contains("[[optimizer.groups]]"), "{err}");
        let mut driver = OptimizerDriver::new("test_closure_descent", &Config::new(), &[], params.clone()).unwrap();
        let (_, grads) = loss_and_grads(&params).unwrap();
        let err = driver.step(&grads).unwrap_err().to_string();
        assert!(err.contains("step_closure"), "{err}");
    }

    #[test]
    fn a_closure_state_that_does_not_fit_is_refused_when_loaded() {
        let params = model(DType::F64);
        let mut driver = OptimizerDriver::new("test_closure_descent", &Config::new(), &[], params.clone()).unwrap();
        steps(&mut driver, &params, 1);
        let dict = driver.state_dict().unwrap();
        let zero = Tensor::new(0.0f64, &Device::Cpu).unwrap();
        for (key, want) in [
            // Unknown to the optimizer: refused by its own check, at load time.
            ("optimizer/closure/bogus", "bogus"),
            // A per-parameter entry for an optimizer that keeps none.
            ("optimizer/state/w/exp_avg", "none per parameter"),
        ] {
            let mut bad = dict.clone();
            bad.insert(key.to_string(), zero.clone());
            let mut fresh = OptimizerDriver::new("test_closure_descent", &Config::new(), &[], copy(&params)).unwrap();
            let err = fresh.load_state_dict(&bad).unwrap_err().to_string();
            assert!(err.contains(want), "{key}: {err}");
        }
    }
}
