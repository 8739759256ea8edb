//! Typed, validated hyperparameters: each plugin declares its keys with [`ParamSpec`]s,
//! and a user's [`Config`] is checked against them into [`Params`].

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{closest, plausible, Error, Result};
use crate::value::{Config, Value};

/// The type of one hyperparameter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamType {
    /// A number (integers are accepted and widened).
    Float,
    /// A whole number.
    Int,
    Bool,
    /// One of a fixed set of strings.
    Choice(&'static [&'static str]),
    /// A list of numbers, such as `betas`.
    FloatList,
    /// A tensor of numbers, such as a class `weight` or `pos_weight`: a number (0-d), a
    /// list (1-d) or nested lists of equal lengths (`[[1.0, 2.0], [3.0, 4.0]]`, 2-d), read
    /// as a [`FloatTensor`].
    FloatTensor,
    /// A list of whole numbers, such as `milestones`.
    IntList,
    /// A whole number or a list of them, such as a convolution's `kernel_size` (`3` or
    /// `[3, 2]`), as PyTorch takes an int or a tuple.
    IntOrList,
    /// A list of tables, such as a `sequential` layer's `layers`.
    TableList,
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamType::Float => f.write_str("float"),
            ParamType::Int => f.write_str("int"),
            ParamType::Bool => f.write_str("bool"),
            ParamType::Choice(c) => write!(f, "{}", c.join("|")),
            ParamType::FloatList => f.write_str("list of float"),
            ParamType::FloatTensor => f.write_str("tensor of float"),
            ParamType::IntList => f.write_str("list of int"),
            ParamType::IntOrList => f.write_str("int or list of int"),
            ParamType::TableList => f.write_str("list of table"),
        }
    }
}

impl ParamType {
    fn expected(&self) -> String {
        match self {
            ParamType::Float => "a number".into(),
            ParamType::Int => "an integer".into(),
            ParamType::Bool => "true or false".into(),
            ParamType::Choice(c) => format!("one of {}", quoted(c)),
            ParamType::FloatList => "a list of numbers".into(),
            ParamType::FloatTensor => "a number or a (nested) list of numbers".into(),
            ParamType::IntList => "a list of integers".into(),
            ParamType::IntOrList => "an integer or a list of integers".into(),
            ParamType::TableList => "a list of tables".into(),
        }
    }
}

/// The default of one hyperparameter (PyTorch's).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DefaultValue {
    Float(f64),
    Int(i64),
    Bool(bool),
    Str(&'static str),
    FloatList(&'static [f64]),
    IntList(&'static [i64]),
    /// A float default that a config may also set to `None` (JSON `null`), which then
    /// means something else (batch norm's `momentum = None`: a cumulative average).
    NullableFloat(f64),
    /// Optional: absent unless given (PyTorch's `None`).
    None,
    /// No default: the key must be given.
    Required,
}

impl DefaultValue {
    /// A numeric default for a key of type `ty`: `Int` for integer keys, `Float`
    /// otherwise (what `#[param(default = 3)]` expands to).
    pub const fn number(ty: ParamType, x: f64) -> Self {
        match ty {
            ParamType::Int | ParamType::IntOrList => DefaultValue::Int(x as i64),
            _ => DefaultValue::Float(x),
        }
    }

    /// The numeric default of an `Option` key: for a float, one that `null` can still
    /// turn into `None` ([`DefaultValue::NullableFloat`]).
    pub const fn nullable(ty: ParamType, x: f64) -> Self {
        match ty {
            ParamType::Float => DefaultValue::NullableFloat(x),
            _ => Self::number(ty, x),
        }
    }

    /// A list default for a key of type `ty` (`#[param(default = [0.9, 0.999])]`).
    pub const fn list(ty: ParamType, floats: &'static [f64], ints: &'static [i64]) -> Self {
        match ty {
            ParamType::IntList | ParamType::IntOrList => DefaultValue::IntList(ints),
            _ => DefaultValue::FloatList(floats),
        }
    }

    fn to_value(self) -> Option<Value> {
        Some(match self {
            DefaultValue::Float(x) | DefaultValue::NullableFloat(x) => Value::Float(x),
            DefaultValue::Int(i) => Value::Int(i),
            DefaultValue::Bool(b) => Value::Bool(b),
            DefaultValue::Str(s) => Value::Str(s.into()),
            DefaultValue::FloatList(l) => Value::List(l.iter().map(|&x| Value::Float(x)).collect()),
            DefaultValue::IntList(l) => Value::List(l.iter().map(|&i| Value::Int(i)).collect()),
            DefaultValue::None | DefaultValue::Required => return None,
        })
    }
}

/// Shown in `ember plugins`: `0.01`, `"none"`, `[0.9, 0.999]`, `None`, `required`.
impl fmt::Display for DefaultValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DefaultValue::None => f.write_str("None"),
            DefaultValue::Required => f.write_str("required"),
            other => write!(f, "{}", other.to_value().expect("has a value")),
        }
    }
}

/// One hyperparameter a plugin takes: its PyTorch name, type, default and a one-line doc.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ParamSpec {
    pub name: &'static str,
    pub ty: ParamType,
    pub default: DefaultValue,
    pub doc: &'static str,
}

impl ParamSpec {
    pub const fn float(name: &'static str, default: f64, doc: &'static str) -> Self {
        Self { name, ty: ParamType::Float, default: DefaultValue::Float(default), doc }
    }
    pub const fn int(name: &'static str, default: i64, doc: &'static str) -> Self {
        Self { name, ty: ParamType::Int, default: DefaultValue::Int(default), doc }
    }
    pub const fn bool(name: &'static str, default: bool, doc: &'static str) -> Self {
        Self { name, ty: ParamType::Bool, default: DefaultValue::Bool(default), doc }
    }
    pub const fn choice(
        name: &'static str,
        choices: &'static [&'static str],
        default: &'static str,
        doc: &'static str,
    ) -> Self {
        Self { name, ty: ParamType::Choice(choices), default: DefaultValue::Str(default), doc }
    }
    pub const fn float_list(name: &'static str, default: &'static [f64], doc: &'static str) -> Self {
        Self { name, ty: ParamType::FloatList, default: DefaultValue::FloatList(default), doc }
    }
    pub const fn int_list(name: &'static str, default: &'static [i64], doc: &'static str) -> Self {
        Self { name, ty: ParamType::IntList, default: DefaultValue::IntList(default), doc }
    }
    /// An optional key of type `ty` (PyTorch's `None` default).
    pub const fn optional(name: &'static str, ty: ParamType, doc: &'static str) -> Self {
        Self { name, ty, default: DefaultValue::None, doc }
    }
    /// A key without a default.
    pub const fn required(name: &'static str, ty: ParamType, doc: &'static str) -> Self {
        Self { name, ty, default: DefaultValue::Required, doc }
    }
}

/// A plugin's hyperparameters after checking: every key known, every value of its
/// declared type, every absent key filled with its default.
#[derive(Clone, Debug)]
pub struct Params {
    plugin: String,
    values: BTreeMap<&'static str, Value>,
}

impl Params {
    /// Checks `config` against `specs` for the plugin called `name` (`label` is how
    /// messages name it, e.g. `activation 'elu'`).
    pub fn resolve(label: &str, name: &str, specs: &'static [ParamSpec], config: &Config) -> Result<Self> {
        for key in config.keys() {
            if !specs.iter().any(|s| s.name == key) {
                return Err(Error::UnknownKey {
                    plugin: label.to_string(),
                    key: key.clone(),
                    valid: specs.iter().map(|s| s.name.to_string()).collect(),
                    suggestion: closest(key, specs.iter().map(|s| s.name)).filter(|s| plausible(key, s)),
                });
            }
        }
        let mut values = BTreeMap::new();
        for spec in specs {
            if let (Some(Value::Null), DefaultValue::NullableFloat(_)) = (config.get(spec.name), spec.default) {
                values.insert(spec.name, Value::Null);
                continue;
            }
            let given = config.get(spec.name).filter(|v| **v != Value::Null);
            let value = match (given, spec.default) {
                (Some(v), _) => check_type(name, spec, v)?,
                (None, DefaultValue::Required) => {
                    return Err(Error::MissingKey {
                        plugin: label.to_string(),
                        key: spec.name.to_string(),
                        doc: spec.doc.to_string(),
                    })
                }
                (None, default) => match default.to_value() {
                    Some(v) => v,
                    None => continue,
                },
            };
            values.insert(spec.name, value);
        }
        Ok(Params { plugin: name.to_string(), values })
    }

    /// Builds params directly from a list of `(key, value)` pairs against `specs`.
    pub fn from_pairs(
        name: &str,
        specs: &'static [ParamSpec],
        pairs: impl IntoIterator<Item = (&'static str, Value)>,
    ) -> Result<Self> {
        let config = pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        Self::resolve(name, name, specs, &config)
    }

    /// The plugin's name, as used in error messages (`softplus`).
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// The value of `key`; `None` when absent or set to `null`.
    fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key).filter(|v| **v != Value::Null)
    }

    /// Whether `key` has a value (given, or a default other than `None`).
    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    fn undeclared(&self, key: &str) -> Error {
        Error::Input(format!(
            "plugin '{}' reads the key '{key}' but does not declare it in its params (a bug in the plugin)",
            self.plugin
        ))
    }

    /// A float key (declared [`ParamType::Float`]).
    pub fn float(&self, key: &str) -> Result<f64> {
        self.opt_float(key)?.ok_or_else(|| self.undeclared(key))
    }

    /// An optional float key: `None` when absent.
    pub fn opt_float(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| self.undeclared(key)),
        }
    }

    /// An integer key.
    pub fn int(&self, key: &str) -> Result<i64> {
        self.opt_int(key)?.ok_or_else(|| self.undeclared(key))
    }

    /// An optional integer key: `None` when absent.
    pub fn opt_int(&self, key: &str) -> Result<Option<i64>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Int(i)) => Ok(Some(*i)),
            Some(_) => Err(self.undeclared(key)),
        }
    }

    /// A boolean key.
    pub fn bool(&self, key: &str) -> Result<bool> {
        match self.get(key) {
            Some(Value::Bool(b)) => Ok(*b),
            _ => Err(self.undeclared(key)),
        }
    }

    /// A string (choice) key.
    pub fn str(&self, key: &str) -> Result<&str> {
        match self.get(key) {
            Some(Value::Str(s)) => Ok(s),
            _ => Err(self.undeclared(key)),
        }
    }

    /// A list-of-floats key; `None` when it is optional and absent.
    pub fn opt_float_list(&self, key: &str) -> Result<Option<Vec<f64>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::List(items)) => items
                .iter()
                .map(|v| v.as_f64().ok_or_else(|| self.undeclared(key)))
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(_) => Err(self.undeclared(key)),
        }
    }

    /// A list-of-floats key.
    pub fn float_list(&self, key: &str) -> Result<Vec<f64>> {
        self.opt_float_list(key)?.ok_or_else(|| self.undeclared(key))
    }

    /// A list-of-integers key.
    pub fn int_list(&self, key: &str) -> Result<Vec<i64>> {
        match self.get(key) {
            Some(Value::List(items)) => items
                .iter()
                .map(|v| match v {
                    Value::Int(i) => Ok(*i),
                    _ => Err(self.undeclared(key)),
                })
                .collect(),
            _ => Err(self.undeclared(key)),
        }
    }

    /// An [`Error::InvalidValue`] for `key` of this plugin: `softplus.beta = -1.0 is invalid: must be > 0`.
    pub fn invalid(&self, key: &str, rule: impl fmt::Display) -> Error {
        Error::InvalidValue {
            path: format!("{}.{key}", self.plugin),
            value: self.get(key).map_or_else(|| "None".to_string(), |v| v.to_string()),
            rule: rule.to_string(),
        }
    }

    /// The float `key`, or an [`Error::InvalidValue`] with `rule` when `ok` rejects it.
    pub fn float_where(&self, key: &str, ok: impl Fn(f64) -> bool, rule: &str) -> Result<f64> {
        let v = self.float(key)?;
        if ok(v) {
            Ok(v)
        } else {
            Err(self.invalid(key, rule))
        }
    }

    /// The integer `key`, or an [`Error::InvalidValue`] with `rule` when `ok` rejects it.
    pub fn int_where(&self, key: &str, ok: impl Fn(i64) -> bool, rule: &str) -> Result<i64> {
        let v = self.int(key)?;
        if ok(v) {
            Ok(v)
        } else {
            Err(self.invalid(key, rule))
        }
    }
}

/// A hyperparameter's Rust type: its [`ParamType`] and how to read it from checked
/// [`Params`]. Implemented for `f64`, `i64`, `usize`, `u64`, `bool`, `String`,
/// `Vec<f64>`, `Vec<i64>`, `Vec<usize>`, `(f64, f64)` (PyTorch's `betas`), [`FloatTensor`]
/// (a `weight` tensor), `Option<T>` (PyTorch's `None` default) and every [`ParamEnum`].
pub trait ParamValue: Sized {
    /// The type configs must give.
    const TYPE: ParamType;

    /// The value of `key` (already type-checked by [`Params::resolve`]).
    fn read(params: &Params, key: &str) -> Result<Self>;
}

impl ParamValue for f64 {
    const TYPE: ParamType = ParamType::Float;
    fn read(params: &Params, key: &str) -> Result<Self> {
        params.float(key)
    }
}

impl ParamValue for i64 {
    const TYPE: ParamType = ParamType::Int;
    fn read(params: &Params, key: &str) -> Result<Self> {
        params.int(key)
    }
}

impl ParamValue for usize {
    const TYPE: ParamType = ParamType::Int;
    fn read(params: &Params, key: &str) -> Result<Self> {
        usize::try_from(params.int(key)?).map_err(|_| params.invalid(key, "must be >= 0"))
    }
}

impl ParamValue for u64 {
    const TYPE: ParamType = ParamType::Int;
    fn read(params: &Params, key: &str) -> Result<Self> {
        u64::try_from(params.int(key)?).map_err(|_| params.invalid(key, "must be >= 0"))
    }
}

impl ParamValue for bool {
    const TYPE: ParamType = ParamType::Bool;
    fn read(params: &Params, key: &str) -> Result<Self> {
        params.bool(key)
    }
}

impl ParamValue for Vec<f64> {
    const TYPE: ParamType = ParamType::FloatList;
    fn read(params: &Params, key: &str) -> Result<Self> {
        params.float_list(key)
    }
}

impl ParamValue for Vec<i64> {
    const TYPE: ParamType = ParamType::IntList;
    fn read(params: &Params, key: &str) -> Result<Self> {
        params.int_list(key)
    }
}

impl ParamValue for Vec<usize> {
    const TYPE: ParamType = ParamType::IntList;
    fn read(params: &Params, key: &str) -> Result<Self> {
        params
            .int_list(key)?
            .into_iter()
            .map(|i| usize::try_from(i).map_err(|_| params.invalid(key, "every entry must be >= 0")))
            .collect()
    }
}

/// Two numbers, as PyTorch's `betas`.
impl ParamValue for (f64, f64) {
    const TYPE: ParamType = ParamType::FloatList;
    fn read(params: &Params, key: &str) -> Result<Self> {
        match params.float_list(key)?.as_slice() {
            [a, b] => Ok((*a, *b)),
            _ => Err(params.invalid(key, "expected two numbers")),
        }
    }
}

/// A whole number or a list of `N` (PyTorch's int-or-tuple arguments: `kernel_size = 3`
/// is `[3, 3]` for a 2-d layer).
impl<const N: usize> ParamValue for [usize; N] {
    const TYPE: ParamType = ParamType::IntOrList;
    fn read(params: &Params, key: &str) -> Result<Self> {
        let items = match params.get(key) {
            Some(Value::Int(i)) => vec![*i; N],
            Some(Value::List(_)) => params.int_list(key)?,
            _ => return Err(params.undeclared(key)),
        };
        if items.len() != N {
            return Err(params.invalid(key, format!("expected a number or a list of {N}")));
        }
        let mut out = [0; N];
        for (o, i) in out.iter_mut().zip(&items) {
            *o = usize::try_from(*i).map_err(|_| params.invalid(key, "every entry must be >= 0"))?;
        }
        Ok(out)
    }
}

/// A shape given as a whole number or a list of them (`normalized_shape = 10` or
/// `[4, 4]`), any length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dims(pub Vec<usize>);

impl ParamValue for Dims {
    const TYPE: ParamType = ParamType::IntOrList;
    fn read(params: &Params, key: &str) -> Result<Self> {
        let items = match params.get(key) {
            Some(Value::Int(i)) => vec![*i],
            Some(Value::List(_)) => params.int_list(key)?,
            _ => return Err(params.undeclared(key)),
        };
        items
            .into_iter()
            .map(|i| usize::try_from(i).map_err(|_| params.invalid(key, "every entry must be >= 0")))
            .collect::<Result<Vec<_>>>()
            .map(Dims)
    }
}

/// A tensor-valued hyperparameter (a class `weight`, `pos_weight`), as PyTorch takes a
/// tensor: a number is a 0-d tensor, a list of numbers a 1-d one, and nested lists of
/// equal lengths a tensor of more dimensions (`[[1.0, 2.0], [3.0, 4.0]]` has shape
/// [2, 2]). A plugin checks the shape against its input when it runs.
#[derive(Clone, Debug, PartialEq)]
pub struct FloatTensor {
    /// The shape: `[]` for a number, `[n]` for a list of n numbers, `[m, n]` for m lists of n.
    pub shape: Vec<usize>,
    /// The entries in row-major order (`shape.iter().product()` of them).
    pub data: Vec<f64>,
}

impl FloatTensor {
    /// A 1-d tensor of `data`.
    pub fn vector(data: Vec<f64>) -> Self {
        Self { shape: vec![data.len()], data }
    }

    /// The number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Reads a number or rectangular nested lists of numbers; the shape comes from the
    /// first entry at each level of nesting, and every other entry must agree with it.
    fn parse(v: &Value) -> std::result::Result<Self, TensorProblem> {
        let mut shape = Vec::new();
        let mut first = v;
        while let Value::List(items) = first {
            shape.push(items.len());
            match items.first() {
                Some(item) => first = item,
                None => break,
            }
        }
        // No capacity from the shape: it is unchecked yet, and its product may overflow.
        let mut data = Vec::new();
        collect_entries(v, &shape, &mut Vec::new(), &mut data)?;
        Ok(Self { shape, data })
    }
}

/// What is wrong with a value given for a [`FloatTensor`].
enum TensorProblem {
    /// An entry is neither a number nor a list.
    NotNumber,
    /// An entry is NaN.
    Nan,
    /// Lists of one level differ in length, or a number stands where a list does (or
    /// the reverse): the reason.
    Ragged(String),
}

/// Appends the entries of `v` (at index `at` of the whole value) to `data`, checking
/// that it has the part of `shape` from its depth on.
fn collect_entries(
    v: &Value,
    shape: &[usize],
    at: &mut Vec<usize>,
    data: &mut Vec<f64>,
) -> std::result::Result<(), TensorProblem> {
    let depth = at.len();
    match (v, shape.get(depth)) {
        (Value::List(items), Some(&n)) if items.len() == n => {
            for (i, item) in items.iter().enumerate() {
                at.push(i);
                collect_entries(item, shape, at, data)?;
                at.pop();
            }
            Ok(())
        }
        (Value::List(items), Some(&n)) => Err(TensorProblem::Ragged(format!(
            "entry {} has {} items but entry {} has {n}",
            index(at),
            items.len(),
            "[0]".repeat(depth)
        ))),
        (Value::List(_), None) => Err(TensorProblem::Ragged(format!(
            "entry {} is a list but entry {} is a number",
            index(at),
            "[0]".repeat(depth)
        ))),
        (Value::Float(x), _) if x.is_nan() => Err(TensorProblem::Nan),
        (v, Some(&n)) if v.as_f64().is_some() => Err(TensorProblem::Ragged(format!(
            "entry {} is a number but entry {} is a list of {n}",
            index(at),
            "[0]".repeat(depth)
        ))),
        (v, _) => {
            data.push(v.as_f64().ok_or(TensorProblem::NotNumber)?);
            Ok(())
        }
    }
}

/// An entry's place in nested lists, as `[1][0]`.
fn index(at: &[usize]) -> String {
    at.iter().map(|i| format!("[{i}]")).collect()
}

impl ParamValue for FloatTensor {
    const TYPE: ParamType = ParamType::FloatTensor;
    fn read(params: &Params, key: &str) -> Result<Self> {
        params.get(key).and_then(|v| FloatTensor::parse(v).ok()).ok_or_else(|| params.undeclared(key))
    }
}

/// A list of tables (a container layer's `layers`).
impl ParamValue for Vec<Config> {
    const TYPE: ParamType = ParamType::TableList;
    fn read(params: &Params, key: &str) -> Result<Self> {
        match params.get(key) {
            Some(Value::List(items)) => items
                .iter()
                .map(|v| match v {
                    Value::Table(t) => Ok(t.clone()),
                    _ => Err(params.undeclared(key)),
                })
                .collect(),
            _ => Err(params.undeclared(key)),
        }
    }
}

/// Absent (PyTorch's `None`) unless given.
impl<T: ParamValue> ParamValue for Option<T> {
    const TYPE: ParamType = T::TYPE;
    fn read(params: &Params, key: &str) -> Result<Self> {
        if params.contains(key) {
            T::read(params, key).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// A closed set of string values as a Rust enum: `#[derive(ParamEnum)]` on an enum of
/// unit variants, each named in snake_case (`#[param(name = "...")]` to rename).
pub trait ParamEnum: Sized + 'static {
    /// Every value, in declaration order.
    const CHOICES: &'static [&'static str];
    /// The value as configs write it.
    fn as_str(&self) -> &'static str;
    /// The variant called `s`, if any.
    fn from_choice(s: &str) -> Option<Self>;
}

/// Reads the choice `key` of `params` as the enum `E` (what `#[derive(ParamEnum)]` uses).
pub fn read_choice<E: ParamEnum>(params: &Params, key: &str) -> Result<E> {
    let s = params.str(key)?;
    E::from_choice(s).ok_or_else(|| params.invalid(key, format!("must be one of {}", quoted(E::CHOICES))))
}

/// Parses `s` as the enum `E`, or an error naming `what` and every valid value.
pub fn parse_choice<E: ParamEnum>(what: &str, s: &str) -> Result<E> {
    E::from_choice(s).ok_or_else(|| {
        let suggestion = closest(s, E::CHOICES.iter().copied())
            .filter(|c| plausible(s, c))
            .map(|c| format!(" (did you mean \"{c}\"?)"))
            .unwrap_or_default();
        Error::Input(format!("{s:?} is not a valid {what}; expected one of {}{suggestion}", quoted(E::CHOICES)))
    })
}

/// A plugin's hyperparameters as a struct: `#[derive(Hyperparams)]` states each one once,
/// as a field, and generates the [`ParamSpec`] list and the typed constructor.
///
/// Field attributes, `#[param(...)]`:
/// - `default = 0.01` (a number, a string, `true`/`false`, a list of numbers); without
///   it the key is required, or absent by default when the field is an `Option`;
/// - `doc = "..."`, or the field's `///` comment: the line `ember plugins` shows;
/// - `check = ember_core::check::non_negative` (any `Fn(&T) -> Result<(), String>`,
///   applied to the inner value of an `Option`): the error names the key, the value and
///   the rule;
/// - `name = "T_max"`: the config key when it is not the field's name;
/// - `skip` or `skip = expr`: not a hyperparameter (its `Default`, or `expr`).
///
/// Struct attributes, `#[plugin(...)]`, one per registry entry:
/// - `optimizer = "adam"` (or `activation`, `loss`, `scheduler`, `regularizer`): the
///   kind and the registry name;
/// - `summary = "..."`: one line for `ember plugins`;
/// - `lr = 1e-3` (optimizers, required): the default learning rate, a key the driver
///   reads and hands to every step, so the optimizer keeps no copy; `lr_doc` rewords it;
/// - `default(weight_decay = 0.01)`: another default for this entry;
/// - `set(decoupled = true)`: the value of a skipped field for this entry;
/// - `build = Self::with_context`: a `fn(Self, &BuildContext) -> Result<Self>` run after
///   the fields are read, by the registry (for plugins that create tensors, or check
///   rules across keys); [`Hyperparams::from_params`] alone does not run it.
pub trait Hyperparams: Sized {
    /// The hyperparameters, with PyTorch's names, types, defaults and a one-line doc.
    const PARAMS: &'static [ParamSpec];

    /// The plugin from checked params.
    fn from_params(params: &Params) -> Result<Self>;

    /// The plugin from a config (absent keys take their defaults), for programs and
    /// tests that build one directly; `name` is how messages call it.
    fn from_config(name: &str, config: &Config) -> Result<Self> {
        Self::from_params(&Params::resolve(name, name, Self::PARAMS, config)?)
    }
}

fn check_type(plugin: &str, spec: &ParamSpec, v: &Value) -> Result<Value> {
    let path = format!("{plugin}.{}", spec.name);
    let wrong = || Error::WrongType { path: path.clone(), expected: spec.ty.expected(), got: describe(v) };
    let number = |v: &Value| match *v {
        Value::Float(x) if x.is_nan() => Err(Error::InvalidValue {
            path: path.clone(),
            value: "nan".into(),
            rule: "must be a number, not NaN".into(),
        }),
        ref v => v.as_f64().map(Value::Float).ok_or_else(wrong),
    };
    match (spec.ty, v) {
        (ParamType::Float, v) => number(v),
        (ParamType::Int, Value::Int(_)) | (ParamType::Bool, Value::Bool(_)) => Ok(v.clone()),
        (ParamType::Choice(choices), Value::Str(s)) => {
            if choices.contains(&s.as_str()) {
                Ok(v.clone())
            } else {
                Err(Error::InvalidValue {
                    path: path.clone(),
                    value: v.to_string(),
                    rule: format!("must be one of {}", quoted(choices)),
                })
            }
        }
        (ParamType::FloatList, Value::List(items)) => {
            items.iter().map(number).collect::<Result<Vec<_>>>().map(Value::List)
        }
        (ParamType::IntList | ParamType::IntOrList, Value::List(items))
            if items.iter().all(|i| matches!(i, Value::Int(_))) =>
        {
            Ok(v.clone())
        }
        (ParamType::IntOrList, Value::Int(_)) => Ok(v.clone()),
        (ParamType::FloatTensor, v) => match FloatTensor::parse(v) {
            Ok(_) => Ok(v.clone()),
            Err(TensorProblem::NotNumber) => Err(wrong()),
            Err(TensorProblem::Nan) => Err(Error::InvalidValue {
                path: path.clone(),
                value: v.to_string(),
                rule: "every entry must be a number, not NaN".into(),
            }),
            Err(TensorProblem::Ragged(why)) => Err(Error::InvalidValue {
                path: path.clone(),
                value: v.to_string(),
                rule: format!(
                    "nested lists must be rectangular, the nesting giving the tensor's shape: {why}; give every list of one level the same length"
                ),
            }),
        },
        (ParamType::TableList, Value::List(items)) if items.iter().all(|i| matches!(i, Value::Table(_))) => {
            Ok(v.clone())
        }
        _ => Err(wrong()),
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Table(_) | Value::List(_) if v.to_string().len() > 60 => v.type_name().to_string(),
        _ => format!("{v} ({})", v.type_name()),
    }
}

fn quoted(items: &[&str]) -> String {
    items.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    static SPECS: &[ParamSpec] = &[
        ParamSpec::float("beta", 1.0, "sharpness"),
        ParamSpec::int("dim", 0, "axis"),
        ParamSpec::choice("approximate", &["none", "tanh"], "none", "which formula"),
        ParamSpec::optional("weight", ParamType::FloatList, "class weights"),
    ];

    fn cfg(pairs: &[(&str, Value)]) -> Config {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn defaults_fill_missing_keys_and_ints_widen_to_floats() {
        let p = Params::resolve("x 'p'", "p", SPECS, &cfg(&[("beta", Value::Int(2))])).unwrap();
        assert_eq!(p.float("beta").unwrap(), 2.0);
        assert_eq!(p.int("dim").unwrap(), 0);
        assert_eq!(p.str("approximate").unwrap(), "none");
        assert_eq!(p.opt_float_list("weight").unwrap(), None);
    }

    #[test]
    fn null_is_the_same_as_absent() {
        let p = Params::resolve("x 'p'", "p", SPECS, &cfg(&[("weight", Value::Null)])).unwrap();
        assert_eq!(p.opt_float_list("weight").unwrap(), None);
    }

    #[test]
    fn wrong_types_name_key_value_and_expectation() {
        let e = Params::resolve("x 'p'", "p", SPECS, &cfg(&[("dim", Value::Float(1.5))])).unwrap_err();
        assert_eq!(e.to_string(), "p.dim: expected an integer, got 1.5 (a float)");
        let e = Params::resolve("x 'p'", "p", SPECS, &cfg(&[("approximate", "erf".into())])).unwrap_err();
        assert_eq!(e.to_string(), "p.approximate = \"erf\" is invalid: must be one of \"none\", \"tanh\"");
        let e = Params::resolve("x 'p'", "p", SPECS, &cfg(&[("beta", Value::Float(f64::NAN))])).unwrap_err();
        assert!(e.to_string().contains("p.beta = nan is invalid"), "{e}");
    }

    static TENSOR: &[ParamSpec] = &[ParamSpec::optional("pos_weight", ParamType::FloatTensor, "per-class weight")];

    fn tensor(v: Value) -> Result<Option<FloatTensor>> {
        let p = Params::resolve("loss 'p'", "p", TENSOR, &cfg(&[("pos_weight", v)]))?;
        Option::<FloatTensor>::read(&p, "pos_weight")
    }

    fn list(items: &[Value]) -> Value {
        Value::List(items.to_vec())
    }

    fn floats(xs: &[f64]) -> Value {
        Value::List(xs.iter().map(|&x| Value::Float(x)).collect())
    }

    #[test]
    fn tensors_are_numbers_or_rectangular_nested_lists() {
        let t = tensor(list(&[floats(&[1.0, 2.0, 3.0]), list(&[4.0.into(), 5.0.into(), Value::Int(6)])])).unwrap();
        assert_eq!(t, Some(FloatTensor { shape: vec![2, 3], data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0] }));
        assert_eq!(tensor(Value::Int(2)).unwrap(), Some(FloatTensor { shape: vec![], data: vec![2.0] }));
        assert_eq!(tensor(floats(&[0.5, 2.0])).unwrap(), Some(FloatTensor::vector(vec![0.5, 2.0])));
        let t = tensor(list(&[list(&[floats(&[1.0]), floats(&[2.0])])])).unwrap();
        assert_eq!(t, Some(FloatTensor { shape: vec![1, 2, 1], data: vec![1.0, 2.0] }));
        assert_eq!(
            tensor(list(&[list(&[]), list(&[])])).unwrap(),
            Some(FloatTensor { shape: vec![2, 0], data: vec![] })
        );
        assert_eq!(tensor(Value::Null).unwrap(), None);
    }

    #[test]
    fn ragged_or_non_numeric_tensors_are_errors_naming_the_entry() {
        let e = tensor(list(&[floats(&[1.0, 2.0]), floats(&[3.0])])).unwrap_err().to_string();
        assert_eq!(
            e,
            "p.pos_weight = [[1.0, 2.0], [3.0]] is invalid: nested lists must be rectangular, the nesting giving the tensor's shape: entry [1] has 1 items but entry [0] has 2; give every list of one level the same length"
        );
        let e = tensor(list(&[floats(&[1.0]), 2.0.into()])).unwrap_err().to_string();
        assert!(e.contains("entry [1] is a number but entry [0] is a list of 1"), "{e}");
        let e = tensor(list(&[1.0.into(), floats(&[2.0])])).unwrap_err().to_string();
        assert!(e.contains("entry [1] is a list but entry [0] is a number"), "{e}");
        let deep =
            list(&[list(&[floats(&[1.0, 2.0]), floats(&[3.0, 4.0])]), list(&[floats(&[5.0, 6.0]), floats(&[7.0])])]);
        let e = tensor(deep).unwrap_err().to_string();
        assert!(e.contains("entry [1][1] has 1 items but entry [0][0] has 2"), "{e}");
        let e = tensor(list(&[Value::Float(1.0), Value::from("a")])).unwrap_err().to_string();
        assert_eq!(e, "p.pos_weight: expected a number or a (nested) list of numbers, got [1.0, \"a\"] (a list)");
        let e = tensor(list(&[floats(&[1.0, f64::NAN])])).unwrap_err().to_string();
        assert!(e.contains("is invalid: every entry must be a number, not NaN"), "{e}");
    }

    #[test]
    fn float_where_reports_the_rule() {
        let p = Params::resolve("x 'p'", "p", SPECS, &cfg(&[("beta", Value::Float(-1.0))])).unwrap();
        let e = p.float_where("beta", |b| b > 0.0, "must be > 0").unwrap_err();
        assert_eq!(e.to_string(), "p.beta = -1.0 is invalid: must be > 0");
    }
}
