//! The bodies of Ember's fuzz targets (`fuzz/fuzz_targets/*.rs`): each takes arbitrary
//! bytes, runs them through a parser of files users hand to Ember, and must return
//! without panicking whatever the bytes are (an error is a fine answer). The test suite
//! replays the committed corpus (`fuzz/corpus/<target>/`) through the same functions, so
//! a regression fails CI without a fuzzer.

use std::path::Path;

use ember_train::config::RunConfig;

/// A fuzz target's body.
pub type Body = fn(&[u8]);

/// The targets by name, as `cargo fuzz` and the corpus folders know them.
pub const TARGETS: [(&str, Body); 4] =
    [("config", config), ("parity", parity), ("idx", idx), ("checkpoint", checkpoint)];

/// A run config, as TOML (`ember train CONFIG`) and as the JSON a checkpoint stores; a
/// config that parses also gets its pairing warnings.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(c) = RunConfig::from_toml(text, "fuzz.toml") {
        let _ = c.pairing_warnings();
        let _ = RunConfig::from_json(&c.to_json());
    }
    if let Ok(c) = RunConfig::from_json(text) {
        let _ = c.validate();
    }
}

/// A parity file (`ember parity FILE`): the outer structure, then every case run.
pub fn parity(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(file) = ember_parity::parse(text, Path::new("fuzz.json")) {
        for (i, case) in file.cases.iter().enumerate() {
            let _ = ember_parity::run_case(case, i);
        }
    }
}

/// An IDX file (raw or gzip), as `--data-dir` reads them.
pub fn idx(data: &[u8]) {
    let _ = ember_data::idx::read_u8_bytes(data, "fuzz-idx");
}

/// A checkpoint (`--resume`, `ember export`, `ember inspect`): the safetensors container,
/// the metadata a resume reads, and the stored run config.
pub fn checkpoint(data: &[u8]) {
    let Ok(ckpt) = ember_train::checkpoint::read_bytes(data, Path::new("fuzz.safetensors")) else { return };
    let _ = ckpt.meta(ember_train::checkpoint::FORMAT);
    let _ = ckpt.section("model/");
    if let Ok(config) = ckpt.meta("config") {
        if let Ok(c) = RunConfig::from_json(config) {
            let _ = c.validate();
        }
    }
    if let Ok(progress) = ckpt.meta("progress") {
        let _ = serde_json::from_str::<serde_json::Value>(progress);
    }
}
