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

    /// A file or directory could not be read, written or created.
    #[error("{}: cannot {action}: {source}", .path.display())]
    Io {
        path: std::path::PathBuf,
        /// What was being done: `read`, `write`, `create the run directory`, ...
        action: String,
        #[source]
        source: std::io::Error,
    },

    /// A run config (or a config inside a checkpoint) that cannot be used.
    #[error("{key}: {message}")]
    Config {
        /// Where in the config: `optimizer.groups[0].params`, `data.kind`.
        key: String,
        message: String,
    },

    /// A file that exists but whose content is damaged or not what it claims.
    #[error("{}: {message}", .path.display())]
    Corrupt { path: std::path::PathBuf, message: String },

    /// Training produced a non-finite loss or weights.
    #[error("{0}")]
    Diverged(String),

    /// An error with what was being done when it happened; [`std::error::Error::source`]
    /// is the cause (see [`Context`]).
    #[error("{context}: {source}")]
    Context {
        context: String,
        #[source]
        source: Box<Error>,
    },

    /// An error from candle, the tensor library.
    #[error("{}", clean_candle(.0))]
    Tensor(#[from] candle_core::Error),
}

impl Error {
    /// An [`Error::Input`] with the given message.
    pub fn input(msg: impl fmt::Display) -> Self {
        Error::Input(msg.to_string())
    }

    /// An [`Error::Io`]: `PATH: cannot ACTION: CAUSE`.
    pub fn io(path: impl Into<std::path::PathBuf>, action: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), action: action.to_string(), source }
    }

    /// An [`Error::Config`]: `KEY: MESSAGE`.
    pub fn config(key: impl fmt::Display, message: impl fmt::Display) -> Self {
        Error::Config { key: key.to_string(), message: message.to_string() }
    }

    /// An [`Error::Corrupt`]: `PATH: MESSAGE`.
    pub fn corrupt(path: impl Into<std::path::PathBuf>, message: impl fmt::Display) -> Self {
        Error::Corrupt { path: path.into(), message: message.to_string() }
    }

    /// This error with `context` before it (`context: error`), keeping it as the cause.
    pub fn context(self, context: impl fmt::Display) -> Self {
        Error::Context { context: context.to_string(), source: Box::new(self) }
    }

    /// The innermost error, below every [`Error::Context`].
    pub fn root(&self) -> &Error {
        match self {
            Error::Context { source, .. } => source.root(),
            other => other,
        }
    }
}

/// Adds what was being done to an error without flattening it into a string:
/// `load(path).context(path.display())?`, `build(..).context("optimizer")?`. The message
/// reads `context: cause`; the typed cause stays reachable ([`Error::root`],
/// [`std::error::Error::source`]).
pub trait Context<T> {
    /// The error, if any, with `context` before it.
    fn context(self, context: impl fmt::Display) -> Result<T>;

    /// The same, with the context computed only on error.
    fn with_context<C: fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.into().context(context))
    }

    fn with_context<C: fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| e.into().context(context()))
    }
}

/// Turns an I/O error into an [`Error::Io`] naming the path: `fs::read(p).at(p, "read")?`.
pub trait IoContext<T> {
    /// `PATH: cannot ACTION: CAUSE`.
    fn at(self, path: &std::path::Path, action: &str) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path, action: &str) -> Result<T> {
        self.map_err(|e| Error::io(path, action, e))
    }
}

fn unknown_plugin(kind: Kind, name: &str, known: &[String], suggestion: Option<&str>) -> String {
    let mut msg = format!("unknown {kind} '{name}'");
    if let Some(s) = suggestion {
        msg += &format!("; did you mean '{s}'?");
    }
    if known.is_empty() {
        msg += &format!("; no {} are registered", kind.plural());
    } else {
        msg += &format!(" Known {}: {}", kind.plural(), known.join(", "));
    }
    // The usual cause of a plugin that exists but is not found: its crate is a
    // dependency that no code names, so the linker dropped it with its registration.
    let article = if kind.as_str().starts_with(['a', 'e', 'i', 'o', 'u']) { "An" } else { "A" };
    msg + &format!(
        ". {article} {kind} from a crate of its own is registered only in a program that names that crate: add `use the_plugin_crate as _;`"
    )
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

/// The candidate closest to `name` when it is a plausible typo of it (for "did you
/// mean" hints).
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    closest(name, candidates).filter(|s| plausible(name, s))
}

/// Whether `candidate` is a plausible intended spelling of `name`: a few edits away, or
/// one contains the other (`slope` for `negative_slope`, `steplr` for `step`).
pub(crate) fn plausible(name: &str, candidate: &str) -> bool {
    candidate.contains(name)
        || name.contains(candidate)
        || strsim::damerau_levenshtein(name, candidate) <= (name.len() / 3).max(2)
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
    fn context_keeps_the_cause() {
        use std::error::Error as _;
        let inner: Result<()> = Err(Error::config("optimizer.groups[0].params", "matches no parameter"));
        let e = inner.context("run.toml").context("resume").unwrap_err();
        assert_eq!(e.to_string(), "resume: run.toml: optimizer.groups[0].params: matches no parameter");
        assert!(matches!(e.root(), Error::Config { key, .. } if key == "optimizer.groups[0].params"));
        assert!(e.source().is_some());
        let io: std::io::Result<()> = Err(std::io::Error::new(std::io::ErrorKind::NotFound, "gone"));
        let e = io.at(std::path::Path::new("/x/y"), "read").unwrap_err();
        assert_eq!(e.to_string(), "/x/y: cannot read: gone");
        assert!(matches!(e, Error::Io { .. }));
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
