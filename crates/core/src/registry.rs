//! The plugin registry: every crate linked into a program can add plugins with
//! `ember_core::inventory::submit!`, and any code can find them by kind and name.

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device};

use crate::error::{closest, plausible, Error, Result};
use crate::layer::Layer;
use crate::metric::Metric;
use crate::optim::DynOptimizer;
use crate::params::{ParamSpec, Params};
use crate::plugins::{Activation, Loss, Regularizer, Scheduler};
use crate::value::Config;

/// The seven plugin kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Activation,
    Loss,
    Optimizer,
    Scheduler,
    Regularizer,
    Layer,
    Metric,
}

impl Kind {
    /// Every kind, in the order listings use.
    pub const ALL: [Kind; 7] =
        [Kind::Activation, Kind::Loss, Kind::Optimizer, Kind::Scheduler, Kind::Regularizer, Kind::Layer, Kind::Metric];

    /// `activation`, `loss`, ...: the name used in configs, parity files and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Activation => "activation",
            Kind::Loss => "loss",
            Kind::Optimizer => "optimizer",
            Kind::Scheduler => "scheduler",
            Kind::Regularizer => "regularizer",
            Kind::Layer => "layer",
            Kind::Metric => "metric",
        }
    }

    /// `activations`, `losses`, ...
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Loss => "losses",
            Kind::Activation => "activations",
            Kind::Optimizer => "optimizers",
            Kind::Scheduler => "schedulers",
            Kind::Regularizer => "regularizers",
            Kind::Layer => "layers",
            Kind::Metric => "metrics",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = Error;

    /// Accepts the singular or plural name (`loss`, `losses`).
    fn from_str(s: &str) -> Result<Self> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s || k.plural() == s).ok_or_else(|| {
            Error::Input(format!(
                "unknown plugin kind '{s}'; expected one of {}",
                Kind::ALL.map(Kind::as_str).join(", ")
            ))
        })
    }
}

/// Where and in what dtype a plugin creates any tensors of its own (PReLU's weight,
/// a loss's class weights).
#[derive(Clone, Debug)]
pub struct BuildContext {
    pub device: Device,
    pub dtype: DType,
}

impl BuildContext {
    pub fn new(device: Device, dtype: DType) -> Self {
        Self { device, dtype }
    }
}

/// CPU, f32.
impl Default for BuildContext {
    fn default() -> Self {
        Self { device: Device::Cpu, dtype: DType::F32 }
    }
}

/// One registered plugin of the kind `P` (`dyn Activation`, `dyn Loss`, ...).
///
/// Registered with `ember_core::inventory::submit!`; `module` is `module_path!()` at
/// the registration, so that duplicate names can be traced to their crates.
pub struct Entry<P: ?Sized + 'static> {
    /// The registry name, snake_case (`leaky_relu`).
    pub name: &'static str,
    /// One line saying what the plugin computes.
    pub summary: &'static str,
    /// The hyperparameters it takes, with PyTorch's names and defaults.
    pub params: &'static [ParamSpec],
    /// `module_path!()` of the registration.
    pub module: &'static str,
    /// Builds the plugin from checked hyperparameters.
    pub build: fn(&Params, &BuildContext) -> Result<Box<P>>,
}

pub type ActivationEntry = Entry<dyn Activation>;
pub type LossEntry = Entry<dyn Loss>;
pub type OptimizerEntry = Entry<dyn DynOptimizer>;
pub type SchedulerEntry = Entry<dyn Scheduler>;
pub type RegularizerEntry = Entry<dyn Regularizer>;
pub type LayerEntry = Entry<dyn Layer>;
pub type MetricEntry = Entry<dyn Metric>;

inventory::collect!(ActivationEntry);
inventory::collect!(LossEntry);
inventory::collect!(OptimizerEntry);
inventory::collect!(SchedulerEntry);
inventory::collect!(RegularizerEntry);
inventory::collect!(LayerEntry);
inventory::collect!(MetricEntry);

/// Ties a plugin trait object type to its [`Kind`]. Implemented for the seven kinds.
pub trait PluginKind: 'static {
    const KIND: Kind;
}

impl PluginKind for dyn Activation {
    const KIND: Kind = Kind::Activation;
}
impl PluginKind for dyn Loss {
    const KIND: Kind = Kind::Loss;
}
impl PluginKind for dyn DynOptimizer {
    const KIND: Kind = Kind::Optimizer;
}
impl PluginKind for dyn Scheduler {
    const KIND: Kind = Kind::Scheduler;
}
impl PluginKind for dyn Regularizer {
    const KIND: Kind = Kind::Regularizer;
}
impl PluginKind for dyn Layer {
    const KIND: Kind = Kind::Layer;
}
impl PluginKind for dyn Metric {
    const KIND: Kind = Kind::Metric;
}

/// Every registration of kind `P`, sorted by name, then module.
pub fn entries<P>() -> Vec<&'static Entry<P>>
where
    P: ?Sized + PluginKind,
    Entry<P>: inventory::Collect,
{
    let mut all: Vec<_> = inventory::iter::<Entry<P>>.into_iter().collect();
    all.sort_by_key(|e| (e.name, e.module));
    all
}

/// The one registration of kind `P` called `name`.
///
/// Fails with [`Error::UnknownPlugin`] (listing the known names and the closest one) or
/// [`Error::DuplicatePlugin`] (naming every defining module).
pub fn find<P>(name: &str) -> Result<&'static Entry<P>>
where
    P: ?Sized + PluginKind,
    Entry<P>: inventory::Collect,
{
    let all = entries::<P>();
    let found: Vec<_> = all.iter().filter(|e| e.name == name).collect();
    match found.as_slice() {
        [one] => Ok(one),
        [] => {
            let mut known: Vec<String> = all.iter().map(|e| e.name.to_string()).collect();
            known.dedup();
            Err(Error::UnknownPlugin {
                kind: P::KIND,
                name: name.to_string(),
                suggestion: closest(name, known.iter().map(String::as_str)).filter(|s| plausible(name, s)),
                known,
            })
        }
        many => Err(Error::DuplicatePlugin {
            kind: P::KIND,
            name: name.to_string(),
            modules: many.iter().map(|e| e.module.to_string()).collect(),
        }),
    }
}

/// Builds the plugin of kind `P` called `name` from `config`; absent keys take the
/// plugin's defaults, unknown keys and bad values are errors.
pub fn build<P>(name: &str, config: &Config, ctx: &BuildContext) -> Result<Box<P>>
where
    P: ?Sized + PluginKind,
    Entry<P>: inventory::Collect,
{
    build_with_params(name, config, ctx).map(|(plugin, _)| plugin)
}

/// [`build`], also returning the checked hyperparameters (a driver reads `lr` there).
pub fn build_with_params<P>(name: &str, config: &Config, ctx: &BuildContext) -> Result<(Box<P>, Params)>
where
    P: ?Sized + PluginKind,
    Entry<P>: inventory::Collect,
{
    let params = resolve::<P>(name, config)?;
    let plugin = (find::<P>(name)?.build)(&params, ctx)?;
    Ok((plugin, params))
}

/// Checks `config` against the keys of the plugin of kind `P` called `name`, filling
/// defaults, without building it.
pub fn resolve<P>(name: &str, config: &Config) -> Result<Params>
where
    P: ?Sized + PluginKind,
    Entry<P>: inventory::Collect,
{
    let entry = find::<P>(name)?;
    Params::resolve(&format!("{} '{}'", P::KIND, entry.name), entry.name, entry.params, config)
}

/// Builds a registered activation by name.
pub fn activation(name: &str, config: &Config, ctx: &BuildContext) -> Result<Box<dyn Activation>> {
    build::<dyn Activation>(name, config, ctx)
}

/// Builds a registered loss by name.
pub fn loss(name: &str, config: &Config, ctx: &BuildContext) -> Result<Box<dyn Loss>> {
    build::<dyn Loss>(name, config, ctx)
}

/// Builds a registered optimizer by name.
pub fn optimizer(name: &str, config: &Config, ctx: &BuildContext) -> Result<Box<dyn DynOptimizer>> {
    build::<dyn DynOptimizer>(name, config, ctx)
}

/// Builds a registered optimizer by name, with the learning rate its config sets (or its
/// default): what a loop that drives the optimizer itself hands to each step.
pub fn optimizer_with_lr(name: &str, config: &Config, ctx: &BuildContext) -> Result<(Box<dyn DynOptimizer>, f64)> {
    let (optimizer, params) = build_with_params::<dyn DynOptimizer>(name, config, ctx)?;
    let lr = params.opt_float("lr")?.ok_or_else(|| {
        Error::Input(format!("optimizer '{name}' declares no `lr` key (its #[plugin(..)] needs `lr = DEFAULT`)"))
    })?;
    Ok((optimizer, lr))
}

/// Builds a registered learning-rate scheduler by name.
pub fn scheduler(name: &str, config: &Config, ctx: &BuildContext) -> Result<Box<dyn Scheduler>> {
    build::<dyn Scheduler>(name, config, ctx)
}

/// Builds a registered regularizer by name.
pub fn regularizer(name: &str, config: &Config, ctx: &BuildContext) -> Result<Box<dyn Regularizer>> {
    build::<dyn Regularizer>(name, config, ctx)
}

/// Builds a registered layer's builder by name (its arguments checked); see
/// [`Layer::build`] for the module.
pub fn layer(name: &str, config: &Config, ctx: &BuildContext) -> Result<Box<dyn Layer>> {
    build::<dyn Layer>(name, config, ctx)
}

/// Builds a registered metric by name; see [`crate::metric::parse_spec`] for the
/// `name:key=value` form configs use.
pub fn metric(name: &str, config: &Config, ctx: &BuildContext) -> Result<Box<dyn Metric>> {
    build::<dyn Metric>(name, config, ctx)
}

/// What a listing shows of one registration, whatever its kind.
#[derive(Clone, Copy, Debug)]
pub struct PluginInfo {
    pub kind: Kind,
    pub name: &'static str,
    pub summary: &'static str,
    pub module: &'static str,
    pub params: &'static [ParamSpec],
}

fn infos<P>() -> impl Iterator<Item = PluginInfo>
where
    P: ?Sized + PluginKind,
    Entry<P>: inventory::Collect,
{
    entries::<P>().into_iter().map(|e| PluginInfo {
        kind: P::KIND,
        name: e.name,
        summary: e.summary,
        module: e.module,
        params: e.params,
    })
}

/// Every registration of the given kind, sorted by name (duplicates included).
pub fn plugins(kind: Kind) -> Vec<PluginInfo> {
    match kind {
        Kind::Activation => infos::<dyn Activation>().collect(),
        Kind::Loss => infos::<dyn Loss>().collect(),
        Kind::Optimizer => infos::<dyn DynOptimizer>().collect(),
        Kind::Scheduler => infos::<dyn Scheduler>().collect(),
        Kind::Regularizer => infos::<dyn Regularizer>().collect(),
        Kind::Layer => infos::<dyn Layer>().collect(),
        Kind::Metric => infos::<dyn Metric>().collect(),
    }
}

/// Every registration of every kind, by kind then name.
pub fn all_plugins() -> Vec<PluginInfo> {
    Kind::ALL.into_iter().flat_map(plugins).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Unit tests link no plugin crate: every kind's registry is empty here.
    #[test]
    fn an_empty_kind_says_how_plugins_get_linked() {
        let e = optimizer("adam", &Config::new(), &BuildContext::default()).unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown optimizer 'adam'; no optimizers are registered. An optimizer from a crate of its own is registered only in a program that names that crate: add `use the_plugin_crate as _;`"
        );
        assert!(plugins(Kind::Loss).is_empty());
    }

    #[test]
    fn kinds_parse_singular_and_plural() {
        assert_eq!("losses".parse::<Kind>().unwrap(), Kind::Loss);
        assert_eq!("scheduler".parse::<Kind>().unwrap(), Kind::Scheduler);
        assert_eq!("metrics".parse::<Kind>().unwrap(), Kind::Metric);
        assert!("metrik".parse::<Kind>().unwrap_err().to_string().starts_with("unknown plugin kind 'metrik'"));
    }
}
