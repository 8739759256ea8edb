//! What `sequential` and `chained` share: their schedules, built from tables through the
//! registry as the Learner builds its own, and their states saved under one prefix each.

use ember_core::{BuildContext, Config, Context, Error, Result, Scheduler, State, Value};

/// Builds the schedules of `owner` (`sequential`, `chained`) from their tables: `name`
/// plus the schedule's own arguments. PyTorch's `SequentialLR` and `ChainedScheduler`
/// refuse `ReduceLROnPlateau`; so are schedules here that are stepped with a metric.
pub fn build(owner: &str, tables: &[Config], ctx: &BuildContext) -> Result<Vec<Box<dyn Scheduler>>> {
    if tables.is_empty() {
        return Err(Error::input(format!(
            "{owner}.schedulers is empty; give at least one schedule, e.g. [{{ name = \"cosine\", T_max = 10 }}]"
        )));
    }
    tables
        .iter()
        .enumerate()
        .map(|(i, table)| {
            let at = format!("{owner}.schedulers[{i}]");
            let name = match table.get("name") {
                Some(Value::Str(n)) => n.clone(),
                Some(other) => {
                    return Err(Error::input(format!(
                        "{at}.name = {other} is not a scheduler name; write name = \"cosine\" (a string)"
                    )))
                }
                None => {
                    return Err(Error::input(format!(
                        "{at}: no `name`; each schedule table names its scheduler, e.g. {{ name = \"linear\", total_iters = 5 }} (`ember plugins --kind scheduler` lists them)"
                    )))
                }
            };
            let config: Config =
                table.iter().filter(|(k, _)| *k != "name").map(|(k, v)| (k.clone(), v.clone())).collect();
            let child = ember_core::scheduler(&name, &config, ctx).context(&at)?;
            if child.needs_metric() {
                return Err(Error::input(format!(
                    "{at}: '{name}' is stepped with a metric, which {owner} does not pass on (PyTorch's SequentialLR and ChainedScheduler refuse ReduceLROnPlateau too); use it as the only scheduler"
                )));
            }
            Ok(child)
        })
        .collect()
}

/// The states of `children`, each key under `schedulers.{k}.` (PyTorch's `_schedulers`
/// list in the state_dict), added to `state`.
pub fn save(state: &mut State, children: &[Box<dyn Scheduler>]) {
    for (k, child) in children.iter().enumerate() {
        let saved = child.state();
        for (key, v) in saved.scalars {
            state.scalars.insert(format!("schedulers.{k}.{key}"), v);
        }
        for (key, t) in saved.tensors {
            state.tensors.insert(format!("schedulers.{k}.{key}"), t);
        }
    }
}

/// Restores what [`save`] wrote into `children`.
pub fn load(owner: &str, state: &State, children: &mut [Box<dyn Scheduler>]) -> Result<()> {
    for (k, child) in children.iter_mut().enumerate() {
        let prefix = format!("schedulers.{k}.");
        let mut own = State::new();
        for (key, v) in &state.scalars {
            if let Some(rest) = key.strip_prefix(prefix.as_str()) {
                own.scalars.insert(rest.to_string(), *v);
            }
        }
        for (key, t) in &state.tensors {
            if let Some(rest) = key.strip_prefix(prefix.as_str()) {
                own.tensors.insert(rest.to_string(), t.clone());
            }
        }
        child.load_state(&own).with_context(|| format!("{owner}.schedulers[{k}]"))?;
    }
    Ok(())
}
