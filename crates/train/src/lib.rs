//! Ember's training loop (the Learner): epochs, metrics, checkpoints and resume, driven
//! by one TOML file. Not written yet: this crate reserves the name and its place in the
//! workspace; it arrives with the Learner issue.
