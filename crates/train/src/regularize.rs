//! Applying regularizers to a model's parameters: penalties added to the loss and
//! constraints applied after each optimizer step, each over the parameters its name
//! patterns select (default: the weights, not the biases).

use candle_core::{Tensor, Var};
use ember_core::{registry, BuildContext, Config, Context, Error, Regularizer, RegularizerRole, Result, Value};

use crate::glob;

/// Which parameters a regularizer applies to when its config gives no `params`.
pub const DEFAULT_PARAMS: &str = "*weight";

/// One configured regularizer: `{ name = "l2", lambda = 0.01, params = ["*.weight"] }`.
#[derive(Clone, Debug, PartialEq)]
pub struct RegularizerSpec {
    pub name: String,
    /// The plugin's own hyperparameters.
    pub config: Config,
    /// Glob patterns on parameter names.
    pub params: Vec<String>,
}

impl RegularizerSpec {
    /// A spec from a config table: `name`, optional `params`, and the plugin's keys.
    pub fn from_table(index: usize, table: &Config) -> Result<Self> {
        let name = match table.get("name") {
            Some(Value::Str(s)) => s.clone(),
            _ => return Err(Error::input(format!("regularizers[{index}] needs `name`, e.g. name = \"l2\""))),
        };
        let params = match table.get("params") {
            None => vec![DEFAULT_PARAMS.to_string()],
            Some(Value::List(items)) if !items.is_empty() => items
                .iter()
                .map(|v| match v {
                    Value::Str(s) => Ok(s.clone()),
                    other => Err(Error::config(
                        format!("regularizers[{index}].params"),
                        format!("expected name patterns, got {other}"),
                    )),
                })
                .collect::<Result<_>>()?,
            Some(other) => {
                return Err(Error::config(
                    format!("regularizers[{index}].params"),
                    format!("expected a non-empty list of name patterns, got {other}"),
                ))
            }
        };
        let config =
            table.iter().filter(|(k, _)| *k != "name" && *k != "params").map(|(k, v)| (k.clone(), v.clone())).collect();
        Ok(RegularizerSpec { name, config, params })
    }
}

struct Item {
    regularizer: Box<dyn Regularizer>,
    /// Indices into the parameter list.
    targets: Vec<usize>,
}

/// The penalties and constraints of a run, bound to the model's parameters.
pub struct Regularization {
    params: Vec<(String, Var)>,
    penalties: Vec<Item>,
    constraints: Vec<Item>,
}

impl Regularization {
    /// Builds every regularizer and resolves its parameter patterns. Noise regularizers
    /// (dropout) belong in the model, not here.
    pub fn new(specs: &[RegularizerSpec], params: Vec<(String, Var)>) -> Result<Self> {
        let mut penalties = Vec::new();
        let mut constraints = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let regularizer = registry::regularizer(&spec.name, &spec.config, &BuildContext::default())
                .with_context(|| format!("regularizers[{i}]"))?;
            let targets: Vec<usize> =
                (0..params.len()).filter(|&p| spec.params.iter().any(|g| glob::matches(g, &params[p].0))).collect();
            if targets.is_empty() {
                let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
                return Err(Error::input(format!(
                    "regularizers[{i}] ({}) selects no parameter with {}; the parameters are: {}",
                    spec.name,
                    spec.params.join(", "),
                    names.join(", ")
                )));
            }
            let item = Item { regularizer, targets };
            match item.regularizer.role() {
                RegularizerRole::Penalty => penalties.push(item),
                RegularizerRole::Constraint => constraints.push(item),
                RegularizerRole::Noise => {
                    return Err(Error::input(format!(
                        "regularizers[{i}] ({}) is a noise layer; put it in the model (e.g. model.dropout), not among the regularizers",
                        spec.name
                    )))
                }
            }
        }
        Ok(Regularization { params, penalties, constraints })
    }

    /// The total penalty (0-d, differentiable), or None when there are no penalties.
    pub fn penalty(&self) -> Result<Option<Tensor>> {
        let mut total: Option<Tensor> = None;
        for item in &self.penalties {
            for &i in &item.targets {
                let p = item.regularizer.penalty(self.params[i].1.as_tensor())?;
                total = Some(match total {
                    None => p,
                    Some(t) => t.add(&p.to_dtype(t.dtype())?)?,
                });
            }
        }
        Ok(total)
    }

    /// Applies every constraint to its parameters (call after each optimizer step).
    pub fn constrain(&self) -> Result<()> {
        for item in &self.constraints {
            for &i in &item.targets {
                let var = &self.params[i].1;
                let constrained = item.regularizer.constrain(var.as_tensor())?;
                var.set(&constrained)?;
            }
        }
        Ok(())
    }

    /// The names of the parameters each penalty and constraint applies to.
    pub fn targets(&self) -> Vec<(String, Vec<String>)> {
        self.penalties
            .iter()
            .chain(&self.constraints)
            .map(|it| (format!("{:?}", it.regularizer), it.targets.iter().map(|&i| self.params[i].0.clone()).collect()))
            .collect()
    }
}
