//! The library error: every fallible operation in Ember's core returns [`Result`].

use std::fmt;

use crate::registry::Kind;

/// Result with Ember's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when finding, configuring or running a plugin.
///
/// Each message names the thing, the value and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No plugin of this kind has this name.
    #[error("{}", unknown_plugin(*.kind, .name, .known, .suggestion.as_deref()))]
    UnknownPlugin {
        kind: Kind,
        name: String,
        /// Every registered name of this kind, sorted.
        known: Vec<String>,
        /// The known name closest to `name`.
        suggestion: Option<String>,
    },

    /// Two or more linked crates register the same name in one kind.
    #[error(
        "{kind} '{name}' is registered {} times, by {}; depend on only one of these crates, or rename one of the plugins",
        .modules.len(),
        .modules.join(" and ")
    )]
    DuplicatePlugin {
        kind: Kind,
        name: String,
        /// The defining modules (`module_path!()`) of every registration.
        modules: Vec<String>,
    },

    /// A config key that the plugin does not take.
    #[error("{}", unknown_key(.plugin, .key, .valid, .suggestion.as_deref()))]
    UnknownKey {
        /// `kind 'name'`, e.g. `activation 'leaky_relu'`.
        plugin: String,
        key: String,
        valid: Vec<String>,
        suggestion: Option<String>,
    },

    /// A required config key is absent.
    #[error("{plugin} needs the key '{key}' ({doc})")]
    MissingKey { plugin: String, key: String, doc: String },

    /// A config value of the wrong type.
    #[error("{path}: expected {expected}, got {got}")]
    WrongType {
        /// `name.key`, e.g. `softplus.beta`.
        path: String,
        expected: String,
        got: String,
    },

    /// A config value of the right type outside its allowed range.
    #[error("{path} = {value} is invalid: {rule}")]
    InvalidValue {
        /// `name.key`, e.g. `softplus.beta`.
        path: String,
        value: String,
        /// What is allowed, e.g. `must be > 0`.
        rule: String,
    },

    /// Bad input to a plugin at run time (wrong dtype, wrong shape, bad dim).
    #[error("{0}")]
    Input(String),

    /// An error from candle, the tensor library.
    #[error("{}", clean_candle(.0))]
    Tensor(#[from] candle_core::Error),
}

impl Error {
    /// An [`Error::Input`] with the given message.
    pub fn input(msg: impl fmt::Display) -> Self {
        Error::Input(msg.to_string())
    }
}

fn unknown_plugin(kind: Kind, name: &str, known: &[String], suggestion: Option<&str>) -> String {
    let mut msg = format!("unknown {kind} '{name}'");
    if let Some(s) = suggestion {
        msg += &format!("; did you mean '{s}'?");
    }
    if known.is_empty() {
        msg += &format!(
            "; no {} are registered (a plugin crate is linked only if the program names it: add `use the_plugin_crate as _;`)",
            kind.plural()
        );
    } else {
        msg += &format!(" Known {}: {}", kind.plural(), known.join(", "));
    }
    msg
}

fn unknown_key(plugin: &str, key: &str, valid: &[String], suggestion: Option<&str>) -> String {
    if valid.is_empty() {
        return format!("unknown key '{key}' for {plugin}, which takes no hyperparameters");
    }
    let mut msg = format!("unknown key '{key}' for {plugin}");
    match suggestion {
        Some(s) => msg += &format!("; did you mean '{s}'? Valid keys: "),
        None => msg += "; valid keys: ",
    }
    msg + &valid.join(", ")
}

/// candle's message without the backtrace it appends when `RUST_BACKTRACE` is set.
fn clean_candle(e: &candle_core::Error) -> String {
    use candle_core::Error as E;
    match e {
        E::WithBacktrace { inner, .. } => clean_candle(inner),
        E::Context { inner, context } => format!("{context}: {}", clean_candle(inner)),
        E::WithPath { inner, path } => format!("{}: {}", path.display(), clean_candle(inner)),
        other => other.to_string(),
    }
}

/// The candidate closest to `name` by edit distance (ties: the alphabetically first).
pub(crate) fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates.into_iter().map(|c| (strsim::damerau_levenshtein(name, c), c)).min().map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_prefers_smallest_edit_distance() {
        let names = ["relu", "leaky_relu", "elu"];
        assert_eq!(closest("leaky_rellu", names).as_deref(), Some("leaky_relu"));
        assert_eq!(closest("rleu", names).as_deref(), Some("relu"));
        assert_eq!(closest("x", Vec::<&str>::new()), None);
    }

    #[test]
    fn candle_errors_lose_their_backtrace() {
        let inner = candle_core::Error::Msg("shape mismatch".into());
        let e = candle_core::Error::WithBacktrace {
            inner: Box::new(inner),
            backtrace: Box::new(std::backtrace::Backtrace::force_capture()),
        };
        assert_eq!(Error::from(e).to_string(), "shape mismatch");
    }
}
