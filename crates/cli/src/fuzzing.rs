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
pub const TARGETS: [(&str, Body); 5] =
    [("config", config), ("parity", parity), ("idx", idx), ("checkpoint", checkpoint), ("csv", csv)];

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

/// A CSV table (`kind = "csv"`, `ember predict` on a table): the first byte picks the
/// delimiter (`,` `;` tab `|`), the target column (the header's first or last name),
/// `classes` and the missing-value policy; the rest is the file's text, parsed as is and
/// gzipped (the reader takes both). A table that parses must be whole: one input row and
/// one target per kept row, every feature finite (missing values filled or refused),
/// class indices inside the class names, the dropped rows counted.
pub fn csv(data: &[u8]) {
    use ember_data::csv::{parse_table, Missing, TableSpec};
    let Some((&options, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let delimiter = [',', ';', '\t', '|'][(options & 3) as usize];
    let header: Vec<&str> = text.lines().next().unwrap_or("").split(delimiter).map(str::trim).collect();
    let target = if options & 4 == 0 { header[0] } else { header[header.len() - 1] };
    let spec = TableSpec {
        delimiter,
        target: vec![target.trim_matches('"').to_string()],
        classes: options & 8 != 0,
        missing: [Missing::Error, Missing::Drop, Missing::Mean, Missing::Error][((options >> 4) & 3) as usize],
        ..Default::default()
    };
    let parsed = parse_table(text, "fuzz.csv", &spec);
    // A text without quotes or carriage returns is read line by line (with a fast path
    // for plain numbers); quoting its first header field sends it through the general
    // record reader instead: both must read it alike.
    if !text.contains(['"', '\r']) && !text.starts_with('\u{feff}') {
        let quoted = match text.find(|c: char| !c.is_whitespace()) {
            Some(at) => {
                let end = text[at..].find([delimiter, '\n']).map_or(text.len(), |e| at + e);
                let name = text[at..end].trim_end();
                format!("{}\"{name}\"{}", &text[..at], &text[at + name.len()..])
            }
            None => text.to_string(),
        };
        let other = parse_table(&quoted, "fuzz.csv", &spec);
        match (&parsed, &other) {
            (Ok(a), Ok(b)) => {
                let same = |x: &candle_core::Tensor, y: &candle_core::Tensor| {
                    x.dims() == y.dims()
                        && x.flatten_all()
                            .and_then(|t| t.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>())
                            .ok()
                            .map(|v| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>())
                            == y.flatten_all()
                                .and_then(|t| t.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>())
                                .ok()
                                .map(|v| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>())
                };
                assert!(same(&a.inputs, &b.inputs), "inputs differ between the line and record readers");
                assert!(same(&a.target_values, &b.target_values), "targets differ between the readers");
                assert_eq!((&a.class_names, a.dropped, a.imputed), (&b.class_names, b.dropped, b.imputed));
            }
            (Err(_), Err(_)) => {}
            (a, b) => panic!("the line reader gives {:?}, the record reader {:?}", a.is_ok(), b.is_ok()),
        }
    }
    let Ok(t) = parsed else { return };
    let rows = t.inputs.dims()[0];
    assert_eq!(t.inputs.dims(), [rows, t.features.len()], "inputs are [rows, features]");
    assert_eq!(t.target_values.dims()[0], rows, "one target per row");
    assert!(rows > 0, "a table that parses has rows");
    let x = t.inputs.flatten_all().and_then(|x| x.to_vec1::<f32>()).expect("f32 inputs");
    assert!(x.iter().all(|v| v.is_finite()), "a kept feature value is finite");
    if spec.classes {
        let y = t.target_values.to_vec1::<i64>().expect("i64 class indices");
        assert!(y.iter().all(|&i| i >= 0 && (i as usize) < t.class_names.len()), "class indices name classes");
    }
    // Both line ends count: a lone carriage return ends a record too.
    // A blank line is white space without a delimiter (a line of tabs is a TSV row).
    let lines = text.split(['\n', '\r']).filter(|l| !l.trim().is_empty() || l.contains(delimiter)).count();
    assert!(rows + t.dropped <= lines, "no more rows than lines");
}
