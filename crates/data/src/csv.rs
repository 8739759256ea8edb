//! Numeric tables in CSV or TSV files: [`read_table`] reads a header line of column names,
//! then one row per example, into an `f32` feature matrix and targets (numbers for
//! regression, or class labels mapped to indices), ready for a
//! [`TensorDataset`] ([`Table::into_dataset`]).
//!
//! The dialect: the first non-empty line is the header; fields are separated by
//! [`TableSpec::delimiter`] and trimmed of surrounding whitespace; a field may be
//! double-quoted, to hold the delimiter, a line break, or a quote written `""`; lines end
//! with LF, CRLF or CR; blank lines are skipped; the last line needs no line ending; a
//! UTF-8 byte-order mark is ignored; a `.gz` file is decompressed. Values parse with
//! Rust's `f64` parser (optional sign, decimal or exponent notation) and are stored as
//! `f32`. The values `""`, `NA`, `N/A`, `n/a`, `#N/A`, `<NA>`, `NaN`, `nan`, `NULL` and
//! `null` (and anything else that parses as NaN) are missing: a missing value in a column
//! the spec uses is an error, since Ember does not impute. Columns the spec does not use
//! are not checked, beyond every row having one field per column.

use std::borrow::Cow;

use rayon::prelude::*;
use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::Path;

use candle_core::{Device, Tensor};
use ember_core::{Error, Result};

use crate::TensorDataset;

/// The most bytes a table may hold, as stored and, for a `.gz` file, decompressed.
const MAX_BYTES: u64 = 1 << 30;

/// Values that stand for a missing value (a subset of pandas' defaults); so does any value
/// that parses as NaN.
const MISSING: [&str; 12] = ["", "NA", "N/A", "n/a", "#N/A", "<NA>", "NaN", "nan", "-NaN", "-nan", "NULL", "null"];

/// How many header columns an error lists before `and N more`.
pub(crate) const LISTED_COLUMNS: usize = 30;

/// What to read from a table.
#[derive(Clone, Debug, PartialEq)]
pub struct TableSpec {
    /// Field separator (default ','; '\t' for TSV).
    pub delimiter: char,
    /// Target column names (one or more), required.
    pub target: Vec<String>,
    /// Feature column names; empty = every column that is not a target, in file order.
    pub features: Vec<String>,
    /// Whether targets are class labels (any strings or integers), mapped to indices
    /// 0..K in sorted order like scikit-learn's LabelEncoder (numbers sort numerically
    /// when every label parses as a number, otherwise as strings). Only with exactly one
    /// target column. Labels that are equal numbers (`1`, `1.0`, `+1`) are one class,
    /// named as first written in the file.
    pub classes: bool,
    /// What a missing value in a used column does (default: an error naming it).
    pub missing: Missing,
    /// Columns left out of the default features and not required to exist: the
    /// training targets when new inputs are read for prediction (with `target` empty).
    pub exclude: Vec<String>,
}

/// The policy for missing values (`""`, `NA`, `NaN`, ...) in the columns a table uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Missing {
    /// An error naming the line and the column.
    #[default]
    Error,
    /// Rows with a missing value in any used column are left out ([`Table::dropped`]).
    Drop,
    /// A missing feature value becomes its column's mean over the rows that have one
    /// (scikit-learn's `SimpleImputer(strategy="mean")` fitted on this file); a missing
    /// target is still an error.
    Mean,
}

impl Default for TableSpec {
    /// Comma-separated, no columns named, numeric targets, missing values refused.
    fn default() -> Self {
        TableSpec {
            delimiter: ',',
            target: Vec::new(),
            features: Vec::new(),
            classes: false,
            missing: Missing::Error,
            exclude: Vec::new(),
        }
    }
}

/// A table read by [`read_table`] or [`parse_table`]: row i of `inputs` and of
/// `target_values` is example i.
#[derive(Clone, Debug)]
pub struct Table {
    /// The feature columns' names, in the order of `inputs`' columns.
    pub features: Vec<String>,
    /// The target columns' names, in the order of `target_values`' columns.
    pub targets: Vec<String>,
    /// `f32 [rows, features]` on the CPU.
    pub inputs: Tensor,
    /// With classes: `i64 [rows]`, indices into `class_names`. Otherwise `f32 [rows,
    /// targets]` (`[rows, 1]` for one target).
    pub target_values: Tensor,
    /// With classes: the labels, sorted; index k names class k. Otherwise empty.
    pub class_names: Vec<String>,
    /// Rows left out for missing values ([`Missing::Drop`]).
    pub dropped: usize,
    /// Feature values filled with their column's mean ([`Missing::Mean`]).
    pub imputed: usize,
}

impl Table {
    /// The number of rows (examples).
    pub fn len(&self) -> usize {
        self.inputs.dim(0).unwrap_or(0)
    }

    /// Whether the table has no rows (never, for a table that was read).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The inputs and target values as a dataset.
    pub fn into_dataset(self) -> Result<TensorDataset> {
        TensorDataset::new(self.inputs, self.target_values)
    }
}

/// Reads the table at `path` (up to 1 GiB; gzip-compressed when the name ends with `.gz`
/// or the content starts with gzip's magic number). See [`parse_table`].
pub fn read_table(path: &Path, spec: &TableSpec) -> Result<Table> {
    let raw = ember_core::memory::read_capped(path, MAX_BYTES, "a CSV table")?;
    let named_gz = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    let bytes = if named_gz || raw.starts_with(&[0x1f, 0x8b]) { gunzip(&raw, path)? } else { raw };
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
        Error::corrupt(path, format!("line {line}: not UTF-8 text; save the table as UTF-8"))
    })?;
    parse_table(text, &path.display().to_string(), spec)
}

/// Decompresses a gzip file (of one or more members), refusing more than [`MAX_BYTES`].
fn gunzip(raw: &[u8], path: &Path) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(raw).take(MAX_BYTES + 1).read_to_end(&mut out).map_err(|e| {
        Error::corrupt(path, format!("cannot decompress (not gzip, or a damaged or truncated gzip file): {e}"))
    })?;
    if out.len() as u64 > MAX_BYTES {
        return Err(Error::input(format!(
            "{}: decompresses to more than {}, the limit for a CSV table; is it the right file?",
            path.display(),
            ember_core::memory::human(MAX_BYTES)
        )));
    }
    Ok(out)
}

/// Reads a table from text; `origin` (usually the file's path) names it in errors.
///
/// Every error names `origin` and, for a problem in the file, the 1-based line number
/// (where the row starts), the column and the value: a target or feature that is not in
/// the header, a header column without a name or named twice, a row whose number of
/// fields differs from the header's, a value that is missing or not a number in a used
/// column (any target value, with `classes`, may be any non-missing string), no data
/// rows, no feature columns, and a spec that asks for `classes` with several targets.
pub fn parse_table(text: &str, origin: &str, spec: &TableSpec) -> Result<Table> {
    check_spec(spec, origin)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Some((header, body)) = split_table(text, spec.delimiter, origin)? else {
        return Err(Error::corrupt(
            origin,
            "no header line (the file is empty); a table starts with a line of column names, then has one row per example",
        ));
    };
    let names: Vec<String> = header.fields.iter().map(|f| f.to_string()).collect();
    let names = &names;
    for (i, name) in names.iter().enumerate() {
        if name.is_empty() {
            return Err(Error::corrupt(
                origin,
                format!(
                    "line {}: column {} of the header has no name; name every column (or remove a trailing {})",
                    header.line,
                    i + 1,
                    show_delimiter(spec.delimiter)
                ),
            ));
        }
        if let Some(j) = names[..i].iter().position(|n| n == name) {
            return Err(Error::corrupt(
                origin,
                format!(
                    "line {}: column {name:?} appears twice in the header (columns {} and {}); rename one so that every column has its own name",
                    header.line,
                    j + 1,
                    i + 1
                ),
            ));
        }
    }
    let find = |name: &String, role: &str| -> Result<usize> {
        names.iter().position(|n| n == name).ok_or_else(|| unknown_column(origin, name, role, names, header.line))
    };
    let target_cols: Vec<usize> = spec.target.iter().map(|t| find(t, "target")).collect::<Result<_>>()?;
    let feature_cols: Vec<usize> = if spec.features.is_empty() {
        (0..names.len()).filter(|&i| !target_cols.contains(&i) && !spec.exclude.contains(&names[i])).collect()
    } else {
        spec.features.iter().map(|f| find(f, "feature")).collect::<Result<_>>()?
    };
    if feature_cols.is_empty() {
        return Err(Error::input(format!(
            "{origin}: no feature columns: the header (line {}) has only the target column{} {}; a table needs at least one feature column besides its targets",
            header.line,
            if target_cols.len() == 1 { "" } else { "s" },
            quoted_list(&spec.target)
        )));
    }
    let width = names.len();
    // Rows convert in parallel pieces; the pieces' results join in file order, so the
    // first error reported is the earliest in the file.
    let convert = |line: usize, fields: &[&str], c: &mut Converted| -> Result<()> {
        if fields.len() != width {
            return Err(Error::corrupt(
                origin,
                format!(
                    "line {line} has {} field{} but the header (line {}) has {width}; every row needs one value per column (quote a value that contains {})",
                    fields.len(),
                    if fields.len() == 1 { "" } else { "s" },
                    header.line,
                    show_delimiter(spec.delimiter)
                ),
            ));
        }
        let gap = |col: usize| is_missing(fields[col]);
        if spec.missing == Missing::Drop && feature_cols.iter().chain(&target_cols).any(|&col| gap(col)) {
            c.dropped += 1;
            return Ok(());
        }
        for &col in &feature_cols {
            if spec.missing == Missing::Mean && gap(col) {
                c.inputs.push(f32::NAN);
                c.imputed += 1;
            } else {
                c.inputs.push(number(origin, line, &names[col], fields[col], false)?);
            }
        }
        for &col in &target_cols {
            let raw = fields[col];
            if spec.classes {
                if is_missing(raw) {
                    return Err(missing(origin, line, &names[col], raw));
                }
                c.labels.push(raw.to_string());
            } else {
                c.values.push(number(origin, line, &names[col], raw, true)?);
            }
        }
        c.kept += 1;
        Ok(())
    };
    // Rows of plain numbers in every used column read straight from the bytes; any other
    // row (and any row in error) goes through `convert`, which reads it exactly alike.
    let fast = (spec.delimiter.is_ascii() && !spec.classes && spec.missing != Missing::Drop)
        .then(|| FastRows::new(width, &feature_cols, &target_cols, spec.delimiter as u8));
    let parts: Vec<Result<Converted>> = match &body {
        Body::Plain(pieces) => pieces
            .par_iter()
            .map(|(first, piece)| {
                let mut c = Converted::default();
                let mut fields: Vec<&str> = Vec::with_capacity(width);
                for (i, raw) in piece.split('\n').enumerate() {
                    let line = raw.strip_suffix('\r').unwrap_or(raw);
                    if let Some(fast) = &fast {
                        if fast.row(line.as_bytes(), &mut c) {
                            continue;
                        }
                    }
                    if blank(line, spec.delimiter) {
                        continue;
                    }
                    fields.clear();
                    split_fields(line, spec.delimiter, &mut fields);
                    convert(first + i, &fields, &mut c)?;
                }
                Ok(c)
            })
            .collect::<Vec<Result<Converted>>>(),
        Body::Records(records) => {
            let chunk = records.len().div_ceil(rayon::current_num_threads() * 4).max(1024);
            records
                .par_chunks(chunk)
                .map(|rows| {
                    let mut c = Converted::default();
                    for r in rows {
                        let fields: Vec<&str> = r.fields.iter().map(|f| &**f).collect();
                        convert(r.line, &fields, &mut c)?;
                    }
                    Ok(c)
                })
                .collect::<Vec<Result<Converted>>>()
        }
    };
    // In file order: the first error is the earliest line's, whatever thread found it.
    let parts: Vec<Converted> = parts.into_iter().collect::<Result<_>>()?;
    let rows: usize = parts.iter().map(|p| p.kept + p.dropped).sum();
    if rows == 0 {
        return Err(Error::corrupt(
            origin,
            format!("no data rows after the header (line {}); a table has one row per example", header.line),
        ));
    }
    let mut inputs = Vec::with_capacity(rows * feature_cols.len());
    let mut values = Vec::new();
    let mut labels: Vec<String> = Vec::new();
    let (mut kept, mut dropped, mut imputed) = (0usize, 0usize, 0usize);
    for p in parts {
        inputs.extend(p.inputs);
        values.extend(p.values);
        labels.extend(p.labels);
        kept += p.kept;
        dropped += p.dropped;
        imputed += p.imputed;
    }
    if kept == 0 {
        return Err(Error::input(format!(
            "{origin}: every one of its {rows} rows has a missing value (missing = \"drop\" left none); fill the gaps, or use missing = \"mean\""
        )));
    }
    if imputed > 0 {
        let used: Vec<&str> = feature_cols.iter().map(|&c| names[c].as_str()).collect();
        impute_means(&mut inputs, &used, origin)?;
    }

    let n = kept;
    let (target_values, class_names) = if spec.classes {
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        let (indices, class_names) = encode_labels(&labels);
        (Tensor::from_vec(indices, n, &Device::Cpu)?, class_names)
    } else {
        (Tensor::from_vec(values, (n, target_cols.len()), &Device::Cpu)?, Vec::new())
    };
    Ok(Table {
        features: feature_cols.iter().map(|&c| names[c].clone()).collect(),
        targets: spec.target.clone(),
        inputs: Tensor::from_vec(inputs, (n, feature_cols.len()), &Device::Cpu)?,
        target_values,
        class_names,
        dropped,
        imputed,
    })
}

/// Errors in the spec itself, found before reading the table.
pub(crate) fn check_spec(spec: &TableSpec, origin: &str) -> Result<()> {
    let fail = |msg: String| -> Result<()> { Err(Error::input(format!("{origin}: {msg}"))) };
    if matches!(spec.delimiter, '"' | '\n' | '\r') {
        return fail(format!("the delimiter cannot be {:?}; use ',' or, for TSV, '\\t'", spec.delimiter));
    }
    if spec.target.is_empty() && spec.exclude.is_empty() {
        return fail("no target column: name the column (or columns) to predict in the target".into());
    }
    if spec.classes && spec.target.len() > 1 {
        return fail(format!(
            "classes = true takes exactly one target column, got {} ({}); name one target, or set classes = false for several numeric targets",
            spec.target.len(),
            quoted_list(&spec.target)
        ));
    }
    for (i, t) in spec.target.iter().enumerate() {
        if spec.target[..i].contains(t) {
            return fail(format!("target column {t:?} is named twice; name each target once"));
        }
    }
    for (i, f) in spec.features.iter().enumerate() {
        if spec.features[..i].contains(f) {
            return fail(format!("feature column {f:?} is named twice; name each feature once"));
        }
        if spec.target.contains(f) {
            return fail(format!("column {f:?} is both a feature and a target; a target cannot also be an input"));
        }
    }
    Ok(())
}

/// A target or feature name that the header lacks: the header's columns, a name that
/// differs only in case, and a hint when the first line looks like data.
fn unknown_column(origin: &str, name: &str, role: &str, names: &[String], line: usize) -> Error {
    let mut msg = format!(
        "{origin}: no column {name:?} ({role}) in the header (line {line}); its columns are {}",
        quoted_list(&names[..names.len().min(LISTED_COLUMNS)])
    );
    if names.len() > LISTED_COLUMNS {
        msg += &format!(" and {} more", names.len() - LISTED_COLUMNS);
    }
    let wanted = name.trim().to_lowercase();
    if let Some(close) = names.iter().find(|n| n.to_lowercase() == wanted) {
        msg += &format!("; did you mean {close:?}? (column names are case-sensitive)");
    } else if let Some(close) = ember_core::suggest(name, names.iter().map(String::as_str)) {
        msg += &format!("; did you mean {close:?}?");
    }
    if names.iter().all(|n| parse_number(n).is_some()) {
        msg += "; the first line looks like data: a table needs a header line of column names";
    }
    Error::input(msg)
}

/// `"a", "b", "c"`.
pub(crate) fn quoted_list(names: &[String]) -> String {
    names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
}

fn show_delimiter(delimiter: char) -> String {
    match delimiter {
        '\t' => "a tab".to_string(),
        ' ' => "a space".to_string(),
        c => format!("\"{c}\""),
    }
}

/// A value of a numeric column (`target`: a regression target, else a feature).
fn number(origin: &str, line: usize, column: &str, raw: &str, target: bool) -> Result<f32> {
    // The common case first: a finite number within f32's range.
    if let Some(x) = plain_decimal(raw.as_bytes()).or_else(|| parse_number(raw)) {
        let y = x as f32;
        if y.is_finite() {
            return Ok(y);
        }
    }
    if is_missing(raw) {
        return Err(missing(origin, line, column, raw));
    }
    let at = format!("{origin}: line {line}, column {column:?}");
    let Some(x) = parse_number(raw) else {
        let mut msg = if target {
            format!(
                "{at}: {raw:?} is not a number; a regression target must be numeric (if {column:?} holds class labels, set classes = true)"
            )
        } else {
            format!(
                "{at}: {raw:?} is not a number; features must be numeric (encode a categorical column as numbers, or leave it out of the features)"
            )
        };
        if raw.contains(',') && parse_number(&raw.replace(',', ".")).is_some() {
            msg += "; write decimals with a point, not a comma";
        }
        return Err(Error::input(msg));
    };
    if x.is_infinite() {
        return Err(Error::input(format!("{at}: {raw:?} is infinite; values must be finite numbers")));
    }
    let y = x as f32;
    if y.is_infinite() {
        return Err(Error::input(format!(
            "{at}: {raw:?} is beyond the range of f32 (about ±3.4e38); rescale the column"
        )));
    }
    Ok(y)
}

fn missing(origin: &str, line: usize, column: &str, raw: &str) -> Error {
    Error::input(format!(
        "{origin}: line {line}, column {column:?} is missing ({raw:?}); fill it, or set missing = \"drop\" (leave such rows out) or \"mean\" (fill features with their column's mean)"
    ))
}

fn is_missing(raw: &str) -> bool {
    MISSING.contains(&raw) || parse_number(raw).is_some_and(f64::is_nan)
}

/// Splits a line at `delimiter` into trimmed fields, as `line.split(delimiter).map(str::
/// trim)` does, byte by byte for an ASCII delimiter (fields are short: a search per field
/// costs more than it saves).
#[inline]
fn split_fields<'a>(line: &'a str, delimiter: char, fields: &mut Vec<&'a str>) {
    if !delimiter.is_ascii() {
        fields.extend(line.split(delimiter).map(trim));
        return;
    }
    let d = delimiter as u8;
    let mut start = 0;
    for (i, &b) in line.as_bytes().iter().enumerate() {
        if b == d {
            fields.push(trim(&line[start..i]));
            start = i + 1;
        }
    }
    fields.push(trim(&line[start..]));
}

/// `str::trim`, answered at once for a field that starts and ends with a visible ASCII
/// character (nearly every field).
#[inline]
fn trim(field: &str) -> &str {
    let solid = |b: &u8| b.is_ascii_graphic();
    match field.as_bytes() {
        [first, .., last] if solid(first) && solid(last) => field,
        [only] if solid(only) => field,
        _ => field.trim(),
    }
}

/// Powers of ten exactly representable as `f64`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// A plain decimal (an optional sign, digits with at most one point, no exponent) whose
/// digits make an integer m < 2^53 with k <= 22 digits after the point: m / 10^k, one
/// correctly rounded division of two exact values (Clinger's fast path), so the same
/// `f64` as Rust's parser gives, several times faster. `None` for anything else, which
/// the general parser ([`parse_number`]) reads.
#[inline]
fn plain_decimal(s: &[u8]) -> Option<f64> {
    let (negative, digits) = match s.first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (mut m, mut count, mut i) = (0u64, 0usize, 0usize);
    while i < digits.len() && digits[i].is_ascii_digit() {
        if count == 19 {
            return None;
        }
        m = m * 10 + u64::from(digits[i] - b'0');
        count += 1;
        i += 1;
    }
    let mut after_point = 0;
    if i < digits.len() {
        if digits[i] != b'.' {
            return None;
        }
        i += 1;
        let from = i;
        // Eight digits at a time, then one by one.
        while let Some(chunk) = digits.get(i..i + 8) {
            let v = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
            if !eight_digits(v) || count + 8 > 19 {
                break;
            }
            m = m * 100_000_000 + parse_eight(v);
            count += 8;
            i += 8;
        }
        while i < digits.len() {
            let b = digits[i];
            if !b.is_ascii_digit() || count == 19 {
                return None;
            }
            m = m * 10 + u64::from(b - b'0');
            count += 1;
            i += 1;
        }
        after_point = i - from;
    }
    if count == 0 || m >= 1 << 53 || after_point >= POW10.len() {
        return None;
    }
    let x = m as f64 / POW10[after_point];
    Some(if negative { -x } else { x })
}

/// Whether eight bytes (little-endian in `v`) are all ASCII digits.
#[inline]
fn eight_digits(v: u64) -> bool {
    let a = v.wrapping_add(0x4646_4646_4646_4646);
    let b = v.wrapping_sub(0x3030_3030_3030_3030);
    (a | b) & 0x8080_8080_8080_8080 == 0
}

/// The value of eight ASCII digits (little-endian in `v`, the first digit lowest).
#[inline]
fn parse_eight(v: u64) -> u64 {
    const MASK: u64 = 0x0000_00FF_0000_00FF;
    const MUL1: u64 = 100 + (1_000_000 << 32);
    const MUL2: u64 = 1 + (10_000 << 32);
    let v = v - 0x3030_3030_3030_3030;
    let v = (v * 10) + (v >> 8);
    ((v & MASK).wrapping_mul(MUL1).wrapping_add(((v >> 16) & MASK).wrapping_mul(MUL2))) >> 32
}

/// Rust's `f64` parser, with one leading `+` allowed whatever the Rust version.
fn parse_number(s: &str) -> Option<f64> {
    let unsigned = s.strip_prefix('+').filter(|rest| !rest.starts_with(['+', '-'])).unwrap_or(s);
    unsigned.parse::<f64>().ok()
}

/// Class indices and sorted class names, as scikit-learn's LabelEncoder: numerically when
/// every label is a number (equal numbers being one class, named as first written),
/// otherwise as strings (by code point).
pub(crate) fn encode_labels(labels: &[&str]) -> (Vec<i64>, Vec<String>) {
    let numbers: Option<Vec<f64>> = labels.iter().map(|l| parse_number(l)).collect();
    match numbers {
        Some(values) => {
            // 0.0 and -0.0 are one class.
            let key = |x: f64| if x == 0.0 { 0u64 } else { x.to_bits() };
            let mut first: HashMap<u64, (f64, &str)> = HashMap::new();
            for (&x, &label) in values.iter().zip(labels) {
                first.entry(key(x)).or_insert((x, label));
            }
            let mut classes: Vec<(f64, &str)> = first.into_values().collect();
            classes.sort_by(|a, b| a.0.total_cmp(&b.0));
            let index: HashMap<u64, i64> = classes.iter().enumerate().map(|(i, c)| (key(c.0), i as i64)).collect();
            let indices = values.iter().map(|&x| index[&key(x)]).collect();
            (indices, classes.into_iter().map(|c| c.1.to_string()).collect())
        }
        None => {
            let classes: Vec<&str> = labels.iter().copied().collect::<BTreeSet<&str>>().into_iter().collect();
            let index: HashMap<&str, i64> = classes.iter().enumerate().map(|(i, &c)| (c, i as i64)).collect();
            let indices = labels.iter().map(|l| index[l]).collect();
            (indices, classes.into_iter().map(String::from).collect())
        }
    }
}

/// Fills the NaN placeholders of missing features (row-major `inputs`, one column per
/// name in `columns`) with their column's mean over the rows that have a value.
pub(crate) fn impute_means(inputs: &mut [f32], columns: &[&str], origin: &str) -> Result<()> {
    let f = columns.len();
    let rows = inputs.len() / f.max(1);
    for (j, name) in columns.iter().enumerate() {
        let present: Vec<f64> = (0..rows).map(|i| inputs[i * f + j]).filter(|v| !v.is_nan()).map(f64::from).collect();
        if present.is_empty() {
            return Err(Error::input(format!(
                "{origin}: column {name:?} has no values at all, so it has no mean to fill with; leave it out of the features"
            )));
        }
        let mean = (present.iter().sum::<f64>() / present.len() as f64) as f32;
        for i in 0..rows {
            if inputs[i * f + j].is_nan() {
                inputs[i * f + j] = mean;
            }
        }
    }
    Ok(())
}

/// A chunk of rows converted: features, numeric targets or labels, and counts.
#[derive(Default)]
struct Converted {
    inputs: Vec<f32>,
    values: Vec<f32>,
    labels: Vec<String>,
    kept: usize,
    dropped: usize,
    imputed: usize,
}

/// The fast reading of a row whose used fields are all plain decimals ([`plain_decimal`]):
/// where each column's value goes, and the delimiter.
struct FastRows {
    /// Per column: `Some((true, k))` feature k, `Some((false, k))` target k, `None` unused.
    slots: Vec<Option<(bool, usize)>>,
    features: usize,
    targets: usize,
    delimiter: u8,
}

impl FastRows {
    fn new(width: usize, feature_cols: &[usize], target_cols: &[usize], delimiter: u8) -> FastRows {
        let mut slots = vec![None; width];
        for (k, &c) in feature_cols.iter().enumerate() {
            slots[c] = Some((true, k));
        }
        for (k, &c) in target_cols.iter().enumerate() {
            slots[c] = Some((false, k));
        }
        FastRows { slots, features: feature_cols.len(), targets: target_cols.len(), delimiter }
    }

    /// Reads a row of exactly one field per column, every used field a plain decimal
    /// with no surrounding space that is finite as `f32`, into `c`; false (and `c`
    /// unchanged) for any other line, which the general path then reads.
    #[inline]
    fn row(&self, line: &[u8], c: &mut Converted) -> bool {
        let (inputs, values) = (c.inputs.len(), c.values.len());
        c.inputs.resize(inputs + self.features, 0.0);
        c.values.resize(values + self.targets, 0.0);
        let mut at = 0;
        let mut ok = true;
        for (col, slot) in self.slots.iter().enumerate() {
            let rest = &line[at.min(line.len())..];
            let end = match slot {
                None => memchr::memchr(self.delimiter, rest).unwrap_or(rest.len()),
                Some((feature, k)) => {
                    let end = memchr::memchr(self.delimiter, rest).unwrap_or(rest.len());
                    let x = match plain_decimal(&rest[..end]) {
                        Some(x) if (x as f32).is_finite() => x as f32,
                        _ => {
                            ok = false;
                            break;
                        }
                    };
                    if *feature {
                        c.inputs[inputs + k] = x;
                    } else {
                        c.values[values + k] = x;
                    }
                    end
                }
            };
            at += end + 1;
            // One field per column: the last ends the line, the others a delimiter.
            let last = col + 1 == self.slots.len();
            if last != (end == rest.len()) {
                ok = false;
                break;
            }
        }
        if !ok || self.slots.is_empty() {
            c.inputs.truncate(inputs);
            c.values.truncate(values);
            return false;
        }
        c.kept += 1;
        true
    }
}

/// One row of the file: the line it starts on (1-based) and its fields, trimmed
/// (borrowed from the text unless unquoting changed them).
struct Record<'a> {
    line: usize,
    fields: Vec<Cow<'a, str>>,
}

/// A table's rows after the header: whole lines of plain text (no quotes, LF or CRLF
/// line ends), split and converted in parallel pieces that know their first line; or
/// records split with the full dialect.
enum Body<'a> {
    Plain(Vec<(usize, &'a str)>),
    Records(Vec<Record<'a>>),
}

/// The header record and the rows after it; `None` for a text without a header.
fn split_table<'a>(text: &'a str, delimiter: char, origin: &str) -> Result<Option<(Record<'a>, Body<'a>)>> {
    let bytes = text.as_bytes();
    let lone_cr = memchr::memchr_iter(b'\r', bytes).any(|i| bytes.get(i + 1) != Some(&b'\n'));
    if memchr::memchr(b'"', bytes).is_some() || lone_cr {
        let mut records = split_records(text, delimiter, origin)?.into_iter();
        let Some(header) = records.next() else { return Ok(None) };
        return Ok(Some((header, Body::Records(records.collect()))));
    }
    // The header: the first line that is not blank.
    let (mut at, mut line) = (0, 1);
    let header = loop {
        if at >= text.len() {
            return Ok(None);
        }
        let end = memchr::memchr(b'\n', &bytes[at..]).map_or(text.len(), |i| at + i);
        let raw = &text[at..end];
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let this = line;
        at = (end + 1).min(text.len());
        line += 1;
        if !blank(raw, delimiter) {
            let fields = raw.split(delimiter).map(|f| Cow::Borrowed(f.trim())).collect();
            break Record { line: this, fields };
        }
    };
    // Pieces of whole lines, each with the number of its first line.
    let rest = &text[at..];
    let n = rayon::current_num_threads() * 4;
    let mut bounds = vec![0];
    for k in 1..n {
        let from = (rest.len() * k / n).max(*bounds.last().unwrap_or(&0));
        let end = memchr::memchr(b'\n', &rest.as_bytes()[from..]).map_or(rest.len(), |i| from + i + 1);
        if end > *bounds.last().unwrap_or(&0) && end < rest.len() {
            bounds.push(end);
        }
    }
    bounds.push(rest.len());
    // Each piece's lines counted in parallel, then summed into first line numbers.
    let slices: Vec<&str> = bounds.windows(2).map(|w| &rest[w[0]..w[1]]).collect();
    let counts: Vec<usize> = slices.par_iter().map(|p| memchr::memchr_iter(b'\n', p.as_bytes()).count()).collect();
    let mut pieces = Vec::with_capacity(slices.len());
    let mut first = line;
    for (piece, count) in slices.into_iter().zip(counts) {
        pieces.push((first, piece.strip_suffix('\n').unwrap_or(piece)));
        first += count;
    }
    Ok(Some((header, Body::Plain(pieces))))
}

fn split_records<'a>(text: &'a str, delimiter: char, origin: &str) -> Result<Vec<Record<'a>>> {
    let mut records = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut line = 1; // the current line
    let mut start = 1; // the line the current record started on
    let mut quoted = false; // the current record has a quoted field
    let mut in_quotes = false; // inside a quoted field
    let mut closed = false; // after the closing quote of the current field
    let mut opened_at = 0; // the line of the last opening quote
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    in_quotes = false;
                    closed = true;
                }
            } else {
                if c == '\n' || (c == '\r' && chars.peek() != Some(&'\n')) {
                    line += 1;
                }
                field.push(c);
            }
        } else if c == delimiter {
            fields.push(take(&mut field));
            closed = false;
        } else if c == '\n' || c == '\r' {
            if c == '\r' && chars.peek() == Some(&'\n') {
                chars.next();
            }
            fields.push(take(&mut field));
            closed = false;
            end_record(&mut records, std::mem::take(&mut fields), start, quoted);
            line += 1;
            start = line;
            quoted = false;
        } else if closed {
            if !c.is_whitespace() {
                return Err(Error::corrupt(
                    origin,
                    format!(
                        "line {line}: {c:?} after the closing quote of a field; a quoted field ends at its closing quote (write a quote inside it as \"\")"
                    ),
                ));
            }
        } else if c == '"' && field.trim().is_empty() {
            field.clear();
            in_quotes = true;
            quoted = true;
            opened_at = line;
        } else {
            field.push(c);
        }
    }
    if in_quotes {
        return Err(Error::corrupt(
            origin,
            format!(
                "line {opened_at}: a quoted field is never closed; end it with a quote (and write a quote inside it as \"\")"
            ),
        ));
    }
    if !fields.is_empty() || !field.trim().is_empty() || quoted {
        fields.push(take(&mut field));
        end_record(&mut records, fields, start, quoted);
    }
    Ok(records)
}

/// The field's value, trimmed; the buffer is left empty.
fn take(field: &mut String) -> String {
    let value = field.trim().to_string();
    field.clear();
    value
}

/// Whether a line is blank: white space and no delimiter (a line of tabs in a TSV file is
/// a row of empty fields, as the record reader reads it).
fn blank(line: &str, delimiter: char) -> bool {
    line.trim().is_empty() && !line.contains(delimiter)
}

/// Keeps a record unless it is a blank line.
fn end_record(records: &mut Vec<Record<'_>>, fields: Vec<String>, line: usize, quoted: bool) {
    let blank = !quoted && fields.len() == 1 && fields[0].is_empty();
    if !blank {
        records.push(Record { line, fields: fields.into_iter().map(Cow::Owned).collect() });
    }
}

#[cfg(test)]
mod fast_path_tests {
    use super::{parse_number, plain_decimal};

    /// The fast path gives Rust's parse, bit for bit, wherever it answers.
    #[test]
    fn plain_decimals_read_as_rusts_parser_reads_them() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut answered = 0;
        for _ in 0..200_000 {
            let digits = 1 + next() % 20;
            let mut text: String = (0..digits).map(|_| char::from(b'0' + (next() % 10) as u8)).collect();
            if next() % 4 != 0 {
                let at = (next() % (digits + 1)) as usize;
                text.insert(at, '.');
            }
            match next() % 3 {
                0 => text.insert(0, '-'),
                1 => text.insert(0, '+'),
                _ => {}
            }
            let want = parse_number(&text);
            if let Some(x) = plain_decimal(text.as_bytes()) {
                answered += 1;
                assert_eq!(Some(x.to_bits()), want.map(f64::to_bits), "{text}");
            }
        }
        assert!(answered > 100_000, "{answered}");
        for text in ["", "-", "+", ".", "1e5", "1.2.3", "--1", "+-1", "0x10", "inf", "1_0", " 1"] {
            assert_eq!(plain_decimal(text.as_bytes()), None, "{text:?}");
        }
        assert_eq!(plain_decimal(b"-0").map(f64::to_bits), Some((-0.0f64).to_bits()));
        assert_eq!(plain_decimal(b"9007199254740993"), None);
        assert_eq!(plain_decimal(b"1."), Some(1.0));
        assert_eq!(plain_decimal(b".5"), Some(0.5));
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use candle_core::DType;

    use super::*;
    use crate::Dataset;

    fn spec(target: &[&str]) -> TableSpec {
        TableSpec { target: target.iter().map(|s| s.to_string()).collect(), ..TableSpec::default() }
    }

    fn classes(target: &str) -> TableSpec {
        TableSpec { classes: true, ..spec(&[target]) }
    }

    fn parse(text: &str, spec: &TableSpec) -> Table {
        parse_table(text, "table.csv", spec).unwrap()
    }

    fn error(text: &str, spec: &TableSpec) -> String {
        parse_table(text, "table.csv", spec).unwrap_err().to_string()
    }

    fn matrix(t: &Tensor) -> Vec<Vec<f32>> {
        t.to_vec2::<f32>().unwrap()
    }

    fn indices(t: &Tensor) -> Vec<i64> {
        assert_eq!(t.dtype(), DType::I64);
        t.to_vec1::<i64>().unwrap()
    }

    #[test]
    fn features_default_to_every_column_but_the_targets_in_file_order() {
        let t = parse("a,y,b\n1,10,2\n3,20,4\n", &spec(&["y"]));
        assert_eq!(t.features, ["a", "b"]);
        assert_eq!(t.targets, ["y"]);
        assert_eq!(t.inputs.dtype(), DType::F32);
        assert_eq!(matrix(&t.inputs), [[1.0, 2.0], [3.0, 4.0]]);
        assert_eq!(t.target_values.dims(), [2, 1]);
        assert_eq!(matrix(&t.target_values), [[10.0], [20.0]]);
        assert!(t.class_names.is_empty());
        assert_eq!(t.len(), 2);
        let data = t.into_dataset().unwrap();
        assert_eq!(data.len(), 2);
    }

    #[test]
    fn explicit_features_keep_their_order_and_unused_columns_are_not_checked() {
        let s = TableSpec { features: vec!["c".into(), "a".into()], ..spec(&["y"]) };
        let t = parse("a,b,c,y\n1,x,3,0.5\n4,,6,1.5\n", &s);
        assert_eq!(t.features, ["c", "a"]);
        assert_eq!(matrix(&t.inputs), [[3.0, 1.0], [6.0, 4.0]]);
        assert_eq!(matrix(&t.target_values), [[0.5], [1.5]]);
    }

    #[test]
    fn several_targets_are_float_columns_in_the_spec_order() {
        let t = parse("x,y1,y2\n1,2,3\n4,5,6\n", &spec(&["y2", "y1"]));
        assert_eq!(t.features, ["x"]);
        assert_eq!(t.targets, ["y2", "y1"]);
        assert_eq!(t.target_values.dtype(), DType::F32);
        assert_eq!(matrix(&t.target_values), [[3.0, 2.0], [6.0, 5.0]]);
    }

    #[test]
    fn class_labels_map_to_sorted_indices() {
        let t = parse("x,species\n1,cat\n2,dog\n3,ant\n4,cat\n", &classes("species"));
        assert_eq!(t.class_names, ["ant", "cat", "dog"]);
        assert_eq!(t.target_values.dims(), [4]);
        assert_eq!(indices(&t.target_values), [1, 2, 0, 1]);
        assert_eq!(t.features, ["x"]);

        // Numbers sort numerically, not as strings.
        let t = parse("x,y\n1,10\n2,9\n3,2\n4,9\n", &classes("y"));
        assert_eq!(t.class_names, ["2", "9", "10"]);
        assert_eq!(indices(&t.target_values), [2, 1, 0, 1]);

        // One label that is not a number: all sort as strings.
        let t = parse("x,y\n1,9\n2,10\n3,b\n", &classes("y"));
        assert_eq!(t.class_names, ["10", "9", "b"]);
        assert_eq!(indices(&t.target_values), [1, 0, 2]);

        // Equal numbers are one class, named as first written.
        let t = parse("x,y\n1,1.0\n2,1\n3,-0.5\n4,+1\n", &classes("y"));
        assert_eq!(t.class_names, ["-0.5", "1.0"]);
        assert_eq!(indices(&t.target_values), [1, 1, 0, 1]);
    }

    #[test]
    fn quoted_fields_hold_delimiters_quotes_and_line_breaks() {
        let text = "\"name, full\",\"x\",label\n\"Smith, J\",\" 1.5 \",\"say \"\"hi\"\"\"\n  \"Doe, A\" , 2 ,\"a,b\"\n";
        let s = TableSpec { features: vec!["x".into()], ..classes("label") };
        let t = parse(text, &s);
        assert_eq!(t.features, ["x"]);
        assert_eq!(matrix(&t.inputs), [[1.5], [2.0]]);
        assert_eq!(t.class_names, ["a,b", "say \"hi\""]);
        assert_eq!(indices(&t.target_values), [1, 0]);
        // The quoted header name is a column like any other.
        let e = error(text, &classes("label"));
        assert!(e.contains(r#"table.csv: line 2, column "name, full": "Smith, J" is not a number"#), "{e}");

        // A line break inside quotes: later rows keep their line numbers.
        let t = parse("x,label\n1,\"two\nlines\"\n2,abc\n", &classes("label"));
        assert_eq!(t.class_names, ["abc", "two\nlines"]);
        let e = error("x,label\n1,\"two\nlines\"\n2,abc\nz,q\n", &classes("label"));
        assert!(e.contains(r#"table.csv: line 5, column "x": "z" is not a number"#), "{e}");
    }

    #[test]
    fn whitespace_crlf_blank_lines_signs_and_a_last_line_without_newline() {
        let t = parse("\n  a , y \r\n\r\n +1.5 , -2e1 \r\n\n 3 ,.5", &spec(&["y"]));
        assert_eq!(t.features, ["a"]);
        assert_eq!(matrix(&t.inputs), [[1.5], [3.0]]);
        assert_eq!(matrix(&t.target_values), [[-20.0], [0.5]]);
        let t = parse("\u{feff}a,y\r1,2\r3,4", &spec(&["y"]));
        assert_eq!(t.features, ["a"]);
        assert_eq!(matrix(&t.inputs), [[1.0], [3.0]]);
    }

    #[test]
    fn tab_separated_values() {
        let s = TableSpec { delimiter: '\t', ..spec(&["y"]) };
        let t = parse("a b\tc\ty\n1\t2\t3\n 4 \t5\t6", &s);
        assert_eq!(t.features, ["a b", "c"]);
        assert_eq!(matrix(&t.inputs), [[1.0, 2.0], [4.0, 5.0]]);
        assert_eq!(matrix(&t.target_values), [[3.0], [6.0]]);
        let e = error("a\ty\n1,5\t2\n", &s);
        assert!(e.contains(r#"line 2, column "a": "1,5" is not a number"#), "{e}");
        assert!(e.contains("write decimals with a point"), "{e}");
        let e = error("a\ty\n1\n", &s);
        assert!(e.contains("line 2 has 1 field but the header (line 1) has 2"), "{e}");
        assert!(e.contains("quote a value that contains a tab"), "{e}");
    }

    #[test]
    fn a_column_not_in_the_header_is_an_error_listing_the_columns() {
        let e = error("a,b,y\n1,2,3\n", &spec(&["z"]));
        assert!(
            e.contains(r#"table.csv: no column "z" (target) in the header (line 1); its columns are "a", "b", "y""#),
            "{e}"
        );
        let s = TableSpec { features: vec!["A".into()], ..spec(&["y"]) };
        let e = error("a,b,y\n1,2,3\n", &s);
        assert!(e.contains(r#"table.csv: no column "A" (feature)"#), "{e}");
        assert!(e.contains(r#"did you mean "a"?"#), "{e}");
        let e = error("1,2,3\n4,5,6\n", &spec(&["y"]));
        assert!(e.contains("the first line looks like data"), "{e}");
        let e = error("sepal_length,species\n1,a\n", &TableSpec { classes: true, ..spec(&["speceis"]) });
        assert!(e.ends_with(r#"its columns are "sepal_length", "species"; did you mean "species"?"#), "{e}");
        let e = error("sepal_length,species\n1,a\n", &TableSpec { classes: true, ..spec(&["petal"]) });
        assert!(!e.contains("did you mean"), "{e}");
    }

    #[test]
    fn duplicate_or_unnamed_header_columns_are_errors() {
        let e = error("a,b,a,y\n1,2,3,4\n", &spec(&["y"]));
        assert!(e.contains(r#"table.csv: line 1: column "a" appears twice in the header (columns 1 and 3)"#), "{e}");
        let e = error("\na,y,\n1,2,\n", &spec(&["y"]));
        assert!(e.contains("table.csv: line 2: column 3 of the header has no name"), "{e}");
    }

    #[test]
    fn a_row_with_another_number_of_fields_is_an_error() {
        let e = error("a,b,y\n1,2,3\n\n1,2\n", &spec(&["y"]));
        assert!(e.contains("table.csv: line 4 has 2 fields but the header (line 1) has 3"), "{e}");
        let e = error("a,b,y\n1,2,3,4\n", &spec(&["y"]));
        assert!(e.contains("table.csv: line 2 has 4 fields but the header (line 1) has 3"), "{e}");
        assert!(e.contains(r#"quote a value that contains ",""#), "{e}");
    }

    #[test]
    fn a_feature_that_is_not_a_number_is_an_error() {
        let text = "id,age,y\n1,30,0\n2,31,1\n\n3,32,0\n4,33,1\n5,abc,0\n";
        let e = error(text, &spec(&["y"]));
        assert!(
            e.contains(r#"table.csv: line 7, column "age": "abc" is not a number; features must be numeric"#),
            "{e}"
        );
        let e = error("a,y\ninf,1\n", &spec(&["y"]));
        assert!(e.contains(r#"line 2, column "a": "inf" is infinite"#), "{e}");
        let e = error("a,y\n1e39,1\n", &spec(&["y"]));
        assert!(e.contains(r#"line 2, column "a": "1e39" is beyond the range of f32"#), "{e}");
    }

    #[test]
    fn a_missing_value_in_a_used_column_is_an_error() {
        for value in ["", "NA", "NaN", "nan", "N/A", "null", "\"\""] {
            let text = format!("id,age,y\n1,30,0\n2,31,1\n\n3,32,0\n4,33,1\n5,{value},0\n");
            let shown = if value == "\"\"" { "" } else { value };
            let e = error(&text, &spec(&["y"]));
            let want =
                format!("table.csv: line 7, column \"age\" is missing ({shown:?}); fill it, or set missing = \"drop\"");
            assert!(e.contains(&want), "{e}");
        }
        let e = error("a,y\n1,\n", &spec(&["y"]));
        assert!(e.contains(r#"table.csv: line 2, column "y" is missing ("")"#), "{e}");
        let e = error("a,y\n1,cat\n2,NA\n", &classes("y"));
        assert!(e.contains(r#"table.csv: line 3, column "y" is missing ("NA")"#), "{e}");
    }

    #[test]
    fn missing_values_can_be_dropped_or_filled_with_the_column_mean() {
        let text = "a,b,y\n1,10,0\nNA,20,1\n3,,0\n5,40,\n";
        let t = parse(text, &TableSpec { missing: Missing::Drop, ..spec(&["y"]) });
        assert_eq!((t.len(), t.dropped, t.imputed), (1, 3, 0));
        assert_eq!(t.inputs.to_vec2::<f32>().unwrap(), [[1.0, 10.0]]);
        // Mean: features filled with the mean of their present values; a missing target
        // is still an error.
        let e = error(text, &TableSpec { missing: Missing::Mean, ..spec(&["y"]) });
        assert!(e.contains(r#"line 5, column "y" is missing"#), "{e}");
        let t = parse("a,b,y\n1,10,0\nNA,20,1\n3,,0\n5,40,1\n", &TableSpec { missing: Missing::Mean, ..spec(&["y"]) });
        assert_eq!((t.len(), t.dropped, t.imputed), (4, 0, 2));
        assert_eq!(t.inputs.to_vec2::<f32>().unwrap(), [[1.0, 10.0], [3.0, 20.0], [3.0, 70.0 / 3.0], [5.0, 40.0]]);
        let e = error("a,y\nNA,0\n,1\n", &TableSpec { missing: Missing::Drop, ..spec(&["y"]) });
        assert!(e.contains("every one of its 2 rows has a missing value"), "{e}");
        let e = error("a,b,y\nNA,1,0\n,2,1\n", &TableSpec { missing: Missing::Mean, ..spec(&["y"]) });
        assert!(e.contains(r#"column "a" has no values at all"#), "{e}");
    }

    #[test]
    fn a_target_that_is_not_a_number_without_classes_is_an_error() {
        let e = error("a,y\n1,2\n1,cat\n", &spec(&["y"]));
        assert!(e.contains(r#"table.csv: line 3, column "y": "cat" is not a number"#), "{e}");
        assert!(e.contains("set classes = true"), "{e}");
    }

    #[test]
    fn bad_specs_are_errors() {
        let e = error("a,y1,y2\n1,2,3\n", &TableSpec { classes: true, ..spec(&["y1", "y2"]) });
        assert!(e.contains(r#"table.csv: classes = true takes exactly one target column, got 2 ("y1", "y2")"#), "{e}");
        let e = error("a,y\n1,2\n", &spec(&[]));
        assert!(e.contains("table.csv: no target column"), "{e}");
        let e = error("a,y\n1,2\n", &TableSpec { features: vec!["y".into()], ..spec(&["y"]) });
        assert!(e.contains(r#"column "y" is both a feature and a target"#), "{e}");
        let e = error("a,y\n1,2\n", &spec(&["y", "y"]));
        assert!(e.contains(r#"target column "y" is named twice"#), "{e}");
    }

    #[test]
    fn an_empty_table_or_one_without_features_is_an_error() {
        for text in ["", "\n \r\n"] {
            let e = error(text, &spec(&["y"]));
            assert!(e.contains("table.csv: no header line"), "{e}");
        }
        let e = error("a,y\n\n", &spec(&["y"]));
        assert!(e.contains("table.csv: no data rows after the header (line 1)"), "{e}");
        let e = error("y\n1\n", &spec(&["y"]));
        assert!(
            e.contains(r#"table.csv: no feature columns: the header (line 1) has only the target column "y""#),
            "{e}"
        );
    }

    #[test]
    fn malformed_quotes_are_errors() {
        let e = error("a,y\n\"1,2\n3,4\n", &spec(&["y"]));
        assert!(e.contains("table.csv: line 2: a quoted field is never closed"), "{e}");
        let e = error("a,y\n\"1\"x,2\n", &spec(&["y"]));
        assert!(e.contains("table.csv: line 2: 'x' after the closing quote"), "{e}");
    }

    #[test]
    fn reads_plain_and_gzip_files() {
        let dir = std::env::temp_dir().join(format!("ember-csv-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = "a,y\n1,2\n3,4\n";
        let plain = dir.join("t.csv");
        std::fs::write(&plain, text).unwrap();
        let gz = dir.join("t.csv.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(text.as_bytes()).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        for path in [&plain, &gz] {
            let t = read_table(path, &spec(&["y"])).unwrap();
            assert_eq!(matrix(&t.inputs), [[1.0], [3.0]]);
            assert_eq!(matrix(&t.target_values), [[2.0], [4.0]]);
        }
        let fake = dir.join("fake.csv.gz");
        std::fs::write(&fake, text).unwrap();
        let e = read_table(&fake, &spec(&["y"])).unwrap_err().to_string();
        assert!(e.contains("fake.csv.gz: cannot decompress"), "{e}");
        let latin1 = dir.join("latin1.csv");
        std::fs::write(&latin1, b"a,y\n1,2\n\xe9,3\n").unwrap();
        let e = read_table(&latin1, &spec(&["y"])).unwrap_err().to_string();
        assert!(e.contains("latin1.csv: line 3: not UTF-8 text"), "{e}");
        let e = read_table(&dir.join("bad.csv"), &spec(&["y"])).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("bad.csv: cannot read"), "{e}");
        std::fs::write(dir.join("bad.csv"), "a,y\n1,x\n").unwrap();
        let e = read_table(&dir.join("bad.csv"), &spec(&["y"])).unwrap_err().to_string();
        assert!(e.contains("bad.csv: line 2, column \"y\": \"x\" is not a number"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
