//! Tables in Parquet files: [`read_parquet_table`] reads the columns a [`TableSpec`] names
//! into the same [`Table`] as the CSV reader ([`crate::csv`]), with its semantics: the
//! `target` column or columns, the `features` (by default every other top-level column, in
//! the file's order), `classes` and the `missing` policy (`delimiter` is ignored). Only the
//! columns used are read.
//!
//! Values by Parquet type (as the `parquet` crate's record API reads them): booleans are 0
//! and 1; signed and unsigned integers of any width, half, single and double floats are
//! stored as `f32` (a value beyond its range, or infinite, is an error); a null, or a NaN
//! float, is missing, which [`TableSpec::missing`] handles as for a CSV file (an error
//! naming the 1-based row and the column, the row left out, or a feature filled with its
//! column's mean). Text (`UTF8` strings) may only be a class label; decimals, dates, times,
//! lists, maps and other structs are errors naming the column. With `classes`, the labels
//! (text, integers, floats or booleans, named `false` and `true`) are encoded as the CSV
//! reader encodes them: sorted numerically when all are numbers, so the integer class
//! labels of a Hugging Face `ClassLabel` column, 0..K, keep their values when all occur.
//! Only a null is missing: a string such as `"NA"` is a label like any other.
//!
//! Image columns: a feature column that holds Hugging Face datasets' `Image` feature (a
//! struct with a binary `bytes` field, and usually a `path`) or plain binary values holds
//! PNG or JPEG images. Such a column must be the only feature; its images are decoded
//! (grey or RGB, any alpha dropped), must all have one size and channel count, and become
//! `inputs` of `f32 [rows, C, H, W]` scaled to [0, 1] (`pixel / 255`, torchvision's
//! `ToTensor`). A null image is missing (an error, or the row dropped; there is no mean of
//! images); an image whose struct has no bytes (stored by path, outside the file) is an
//! error.

use std::path::Path;

use candle_core::{Device, Tensor};
use ember_core::{Error, IoContext, Result};
use parquet::basic::{ConvertedType, Type as PhysicalType};
use parquet::data_type::ByteArray;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use parquet::schema::types::{Type, TypePtr};
use rayon::prelude::*;

use crate::csv::{check_spec, encode_labels, quoted_list, Missing, Table, TableSpec, LISTED_COLUMNS};
use crate::image_folder::decode_image;

/// How many characters of a text value an error shows.
const SHOWN_CHARS: usize = 40;

/// Reads the columns a spec names from a Parquet file, with the CSV reader's semantics:
/// `target` column(s), `features` (default: every other column), `classes`, `missing`.
/// `delimiter` is ignored. See the [module documentation](crate::parquet_table) for how
/// each Parquet type is read, and for image columns.
///
/// Every error names the file: one that cannot be read or is not a Parquet file, a target
/// or feature that is not a top-level column of its schema (the error lists them), no
/// rows, no feature columns, an image column among other features, images of different
/// sizes, and, naming the 1-based row and the column, a value that is missing or of a type
/// the column's role cannot take.
pub fn read_parquet_table(path: &Path, spec: &TableSpec) -> Result<Table> {
    read_one(path, spec, true)
}

/// Reads the same columns of several Parquet files (the shards of one data set, as a
/// Hugging Face parquet conversion splits it) as one table, rows in the order of `paths`,
/// with [`read_parquet_table`]'s semantics over all of them: class labels are encoded over
/// every file's labels, and `missing = "mean"` fills a feature with its mean over all
/// files. The files must give the same feature columns and, for images, one size.
pub fn read_parquet_tables(paths: &[std::path::PathBuf], spec: &TableSpec) -> Result<Table> {
    match paths {
        [] => return Err(Error::input("no Parquet files to read (a data set needs at least one)")),
        [one] => return read_parquet_table(one, spec),
        _ => {}
    }
    let parts = paths.iter().map(|p| read_one(p, spec, false)).collect::<Result<Vec<Table>>>()?;
    let first = &parts[0];
    for (part, path) in parts.iter().zip(paths).skip(1) {
        if part.features != first.features {
            return Err(Error::input(format!(
                "{}: its feature columns {} are not those of {} ({}); the files of one data set need the same columns",
                path.display(),
                quoted_list(&part.features),
                paths[0].display(),
                quoted_list(&first.features)
            )));
        }
        if part.inputs.dims()[1..] != first.inputs.dims()[1..] {
            return Err(Error::input(format!(
                "{}: its examples have shape {:?} but those of {} have {:?}; the files of one data set need one shape",
                path.display(),
                &part.inputs.dims()[1..],
                paths[0].display(),
                &first.inputs.dims()[1..]
            )));
        }
    }
    let inputs: Vec<&Tensor> = parts.iter().map(|t| &t.inputs).collect();
    let mut inputs = Tensor::cat(&inputs, 0)?;
    let imputed: usize = parts.iter().map(|t| t.imputed).sum();
    if imputed > 0 {
        let dims = inputs.dims().to_vec();
        let mut values = inputs.flatten_all()?.to_vec1::<f32>()?;
        let used: Vec<&str> = first.features.iter().map(String::as_str).collect();
        let origin = format!("{} and {} more files", paths[0].display(), paths.len() - 1);
        crate::csv::impute_means(&mut values, &used, &origin)?;
        inputs = Tensor::from_vec(values, dims, &Device::Cpu)?;
    }
    let (target_values, class_names) = if spec.classes {
        let mut labels: Vec<&str> = Vec::with_capacity(inputs.dim(0)?);
        for part in &parts {
            for i in part.target_values.to_vec1::<i64>()? {
                labels.push(&part.class_names[i as usize]);
            }
        }
        let n = labels.len();
        let (indices, names) = encode_labels(&labels);
        (Tensor::from_vec(indices, n, &Device::Cpu)?, names)
    } else {
        let values: Vec<&Tensor> = parts.iter().map(|t| &t.target_values).collect();
        (Tensor::cat(&values, 0)?, Vec::new())
    };
    Ok(Table {
        features: first.features.clone(),
        targets: first.targets.clone(),
        inputs,
        target_values,
        class_names,
        dropped: parts.iter().map(|t| t.dropped).sum(),
        imputed,
    })
}

/// [`read_parquet_table`], with `impute = false` leaving missing features as NaN (for
/// [`read_parquet_tables`], which fills them over all files).
fn read_one(path: &Path, spec: &TableSpec, impute: bool) -> Result<Table> {
    let origin = path.display().to_string();
    let origin = origin.as_str();
    // The delimiter means nothing here: checked as the default, it never fails.
    check_spec(&TableSpec { delimiter: ',', ..spec.clone() }, origin)?;
    let corrupt = |msg: String| Error::corrupt(path, msg);
    let file = std::fs::File::open(path).at(path, "read")?;
    let reader =
        SerializedFileReader::new(file).map_err(|e| corrupt(format!("not a Parquet file, or a damaged one: {e}")))?;
    let root = reader.metadata().file_metadata().schema();
    let columns: &[TypePtr] = root.get_fields();
    let names: Vec<String> = columns.iter().map(|c| c.name().to_string()).collect();

    let find = |name: &String, role: &str| -> Result<usize> {
        let Some(i) = names.iter().position(|n| n == name) else {
            return Err(unknown_column(origin, name, role, &names));
        };
        if let Some(j) = names[i + 1..].iter().position(|n| n == name) {
            return Err(corrupt(format!(
                "column {name:?} appears twice in the schema (top-level columns {} and {}); rename one so that every column has its own name",
                i + 1,
                i + j + 2
            )));
        }
        Ok(i)
    };
    let target_cols: Vec<usize> = spec.target.iter().map(|t| find(t, "target")).collect::<Result<_>>()?;
    let feature_cols: Vec<usize> = if spec.features.is_empty() {
        (0..names.len()).filter(|&i| !target_cols.contains(&i) && !spec.exclude.contains(&names[i])).collect()
    } else {
        spec.features.iter().map(|f| find(f, "feature")).collect::<Result<_>>()?
    };
    if feature_cols.is_empty() {
        return Err(Error::input(format!(
            "{origin}: no feature columns: the file has only the target column{} {}; a table needs at least one feature column besides its targets",
            if target_cols.len() == 1 { "" } else { "s" },
            quoted_list(&spec.target)
        )));
    }
    for &c in &target_cols {
        if holds_images(&columns[c]) {
            return Err(Error::input(format!(
                "{origin}: column {:?} holds images (binary data); a target must be numeric or, with classes = true, class labels",
                names[c]
            )));
        }
    }
    let image_cols: Vec<String> =
        feature_cols.iter().filter(|&&c| holds_images(&columns[c])).map(|&c| names[c].clone()).collect();
    let images = !image_cols.is_empty();
    if images && feature_cols.len() > 1 {
        let features: Vec<String> = feature_cols.iter().map(|&c| names[c].clone()).collect();
        return Err(Error::input(format!(
            "{origin}: an image column must be the only feature; got {} ({} {} images); name the image column alone in the features",
            quoted_list(&features),
            quoted_list(&image_cols),
            if image_cols.len() == 1 { "holds" } else { "hold" }
        )));
    }

    // Only the used columns are read, targets first: row field k is column used[k].
    let used: Vec<usize> = target_cols.iter().chain(&feature_cols).copied().collect();
    let mut projection = Type::group_type_builder(root.name());
    if root.get_basic_info().has_repetition() {
        projection = projection.with_repetition(root.get_basic_info().repetition());
    }
    let projection = projection
        .with_fields(used.iter().map(|&c| columns[c].clone()).collect())
        .build()
        .map_err(|e| corrupt(format!("cannot select its columns: {e}")))?;
    let rows = reader.get_row_iter(Some(projection)).map_err(|e| corrupt(format!("cannot read its rows: {e}")))?;

    let capacity = reader.metadata().file_metadata().num_rows().max(0) as usize;
    let (nt, nf) = (target_cols.len(), feature_cols.len());
    let mut inputs: Vec<f32> = Vec::with_capacity(if images { 0 } else { capacity * nf });
    let mut pictures: Vec<(usize, ByteArray)> = Vec::with_capacity(if images { capacity } else { 0 });
    let mut values: Vec<f32> = Vec::with_capacity(if spec.classes { 0 } else { capacity * nt });
    let mut labels: Vec<String> = Vec::with_capacity(if spec.classes { capacity } else { 0 });
    let (mut total, mut kept, mut dropped, mut imputed) = (0usize, 0usize, 0usize, 0usize);
    for (i, row) in rows.enumerate() {
        let r = i + 1;
        let row = row.map_err(|e| corrupt(format!("row {r}: cannot read it: {e}")))?;
        total += 1;
        let fields = row.into_columns();
        if fields.len() != used.len() || fields.iter().zip(&used).any(|(f, &c)| f.0 != names[c]) {
            let got: Vec<String> = fields.iter().map(|f| f.0.clone()).collect();
            let want: Vec<String> = used.iter().map(|&c| names[c].clone()).collect();
            return Err(corrupt(format!(
                "row {r}: the Parquet reader returned the columns {} where {} were asked for",
                quoted_list(&got),
                quoted_list(&want)
            )));
        }
        if spec.missing == Missing::Drop && fields.iter().any(|(_, f)| gap(f).is_some()) {
            dropped += 1;
            continue;
        }
        let (targets, features) = fields.split_at(nt);
        for (name, field) in features {
            if images {
                match image_bytes(field) {
                    Ok(Some(bytes)) => pictures.push((r, bytes.clone())),
                    Ok(None) if spec.missing == Missing::Mean => {
                        return Err(Error::input(format!(
                            "{origin}: row {r}, column {name:?}: the image is missing (null), and an image cannot be filled with a mean; fill it, or set missing = \"drop\" (leave such rows out)"
                        )));
                    }
                    Ok(None) => return Err(missing(origin, r, name, "null")),
                    Err(why) => return Err(corrupt(format!("row {r}, column {name:?}: {why}"))),
                }
            } else if let Some(what) = gap(field) {
                if spec.missing == Missing::Mean {
                    inputs.push(f32::NAN);
                    imputed += 1;
                } else {
                    return Err(missing(origin, r, name, what));
                }
            } else {
                inputs.push(number(origin, r, name, field, false)?);
            }
        }
        for (name, field) in targets {
            if let Some(what) = gap(field) {
                return Err(missing(origin, r, name, what));
            }
            if spec.classes {
                labels.push(label(origin, r, name, field)?);
            } else {
                values.push(number(origin, r, name, field, true)?);
            }
        }
        kept += 1;
    }
    if total == 0 {
        return Err(corrupt("holds no rows; a table has one row per example".into()));
    }
    if kept == 0 {
        return Err(Error::input(format!(
            "{origin}: every one of its {total} rows has a missing value (missing = \"drop\" left none); fill the gaps{}",
            if images { "" } else { ", or use missing = \"mean\"" }
        )));
    }
    if imputed > 0 && impute {
        let used: Vec<&str> = feature_cols.iter().map(|&c| names[c].as_ref()).collect();
        crate::csv::impute_means(&mut inputs, &used, origin)?;
    }

    let n = kept;
    let inputs = if images {
        let name = &names[feature_cols[0]];
        image_tensor(origin, path, name, &pictures)?
    } else {
        Tensor::from_vec(inputs, (n, nf), &Device::Cpu)?
    };
    let (target_values, class_names) = if spec.classes {
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        let (indices, class_names) = encode_labels(&labels);
        (Tensor::from_vec(indices, n, &Device::Cpu)?, class_names)
    } else {
        (Tensor::from_vec(values, (n, nt), &Device::Cpu)?, Vec::new())
    };
    Ok(Table {
        features: feature_cols.iter().map(|&c| names[c].clone()).collect(),
        targets: spec.target.clone(),
        inputs,
        target_values,
        class_names,
        dropped,
        imputed,
    })
}

/// Whether a top-level column holds images: a struct with a binary `bytes` field (Hugging
/// Face datasets' `Image` feature) or plain binary values (no string annotation).
fn holds_images(column: &Type) -> bool {
    let binary = |t: &Type| {
        t.is_primitive()
            && t.get_physical_type() == PhysicalType::BYTE_ARRAY
            && t.get_basic_info().converted_type() == ConvertedType::NONE
    };
    if column.is_group() {
        column.get_basic_info().converted_type() == ConvertedType::NONE
            && column.get_fields().iter().any(|f| f.name() == "bytes" && binary(f))
    } else {
        binary(column)
    }
}

/// A target or feature name that is not a top-level column: the file's columns, and a name
/// that differs only in case.
fn unknown_column(origin: &str, name: &str, role: &str, names: &[String]) -> Error {
    let mut msg = if names.is_empty() {
        format!("{origin}: no column {name:?} ({role}) in the file; its schema has no columns")
    } else {
        format!(
            "{origin}: no column {name:?} ({role}) in the file; its columns are {}",
            quoted_list(&names[..names.len().min(LISTED_COLUMNS)])
        )
    };
    if names.len() > LISTED_COLUMNS {
        msg += &format!(" and {} more", names.len() - LISTED_COLUMNS);
    }
    let wanted = name.trim().to_lowercase();
    if let Some(close) = names.iter().find(|n| n.to_lowercase() == wanted) {
        msg += &format!("; did you mean {close:?}? (column names are case-sensitive)");
    } else if let Some(close) = ember_core::suggest(name, names.iter().map(String::as_str)) {
        msg += &format!("; did you mean {close:?}?");
    }
    Error::input(msg)
}

/// Whether a value is missing, and how to name it: a null, or a NaN float.
fn gap(field: &Field) -> Option<&'static str> {
    match field {
        Field::Null => Some("null"),
        Field::Float(x) if x.is_nan() => Some("NaN"),
        Field::Double(x) if x.is_nan() => Some("NaN"),
        Field::Float16(x) if x.to_f32().is_nan() => Some("NaN"),
        _ => None,
    }
}

fn missing(origin: &str, row: usize, column: &str, what: &str) -> Error {
    Error::input(format!(
        "{origin}: row {row}, column {column:?} is missing ({what}); fill it, or set missing = \"drop\" (leave such rows out) or \"mean\" (fill features with their column's mean)"
    ))
}

/// What a value is, for an error about a value of the wrong type.
fn kind(field: &Field) -> &'static str {
    match field {
        Field::Decimal(_) => "decimals, which Ember does not read (cast the column to a float type)",
        Field::Str(_) => "text",
        Field::Bytes(_) => "binary data",
        Field::Date(_) => "dates",
        Field::TimeMillis(_) | Field::TimeMicros(_) => "times of day",
        Field::TimestampMillis(_) | Field::TimestampMicros(_) => "timestamps",
        Field::Group(_) => "structs",
        Field::ListInternal(_) => "lists",
        Field::MapInternal(_) => "maps",
        _ => "numbers",
    }
}

/// Up to [`SHOWN_CHARS`] characters of a text value, quoted.
fn shown(text: &str) -> String {
    if text.chars().count() <= SHOWN_CHARS {
        format!("{text:?}")
    } else {
        format!("{:?}...", text.chars().take(SHOWN_CHARS).collect::<String>())
    }
}

/// A value of a numeric column (`target`: a regression target, else a feature), not missing.
fn number(origin: &str, row: usize, column: &str, field: &Field, target: bool) -> Result<f32> {
    let x: f64 = match *field {
        Field::Bool(b) => f64::from(u8::from(b)),
        Field::Byte(v) => v as f64,
        Field::Short(v) => v as f64,
        Field::Int(v) => v as f64,
        Field::Long(v) => v as f64,
        Field::UByte(v) => v as f64,
        Field::UShort(v) => v as f64,
        Field::UInt(v) => v as f64,
        Field::ULong(v) => v as f64,
        Field::Float16(v) => v.to_f32() as f64,
        Field::Float(v) => v as f64,
        Field::Double(v) => v,
        ref other => {
            let at = format!("{origin}: row {row}, column {column:?}");
            let value = match other {
                Field::Str(s) => format!(" ({})", shown(s)),
                _ => String::new(),
            };
            return Err(Error::input(if target {
                format!(
                    "{at} holds {}{value}; a regression target must be numeric (if {column:?} holds class labels, set classes = true)",
                    kind(other)
                )
            } else {
                format!(
                    "{at} holds {}{value}; features must be numeric (encode a categorical column as numbers, or leave it out of the features)",
                    kind(other)
                )
            }));
        }
    };
    let at = format!("{origin}: row {row}, column {column:?}");
    if x.is_infinite() {
        return Err(Error::input(format!("{at}: {x} is infinite; values must be finite numbers")));
    }
    let y = x as f32;
    if y.is_infinite() {
        return Err(Error::input(format!(
            "{at}: {x:e} is beyond the range of f32 (about ±3.4e38); rescale the column"
        )));
    }
    Ok(y)
}

/// A class label, not missing: text as it is, numbers as they print, booleans as `false`
/// and `true`.
fn label(origin: &str, row: usize, column: &str, field: &Field) -> Result<String> {
    Ok(match field {
        Field::Str(s) => s.clone(),
        Field::Bool(b) => b.to_string(),
        Field::Byte(v) => v.to_string(),
        Field::Short(v) => v.to_string(),
        Field::Int(v) => v.to_string(),
        Field::Long(v) => v.to_string(),
        Field::UByte(v) => v.to_string(),
        Field::UShort(v) => v.to_string(),
        Field::UInt(v) => v.to_string(),
        Field::ULong(v) => v.to_string(),
        Field::Float16(v) => v.to_f32().to_string(),
        Field::Float(v) => v.to_string(),
        Field::Double(v) => v.to_string(),
        other => {
            return Err(Error::input(format!(
                "{origin}: row {row}, column {column:?} holds {}; class labels must be text, integers or other numbers",
                kind(other)
            )));
        }
    })
}

/// The encoded bytes of an image value; `None` for a null.
fn image_bytes(field: &Field) -> std::result::Result<Option<&ByteArray>, String> {
    match field {
        Field::Null => Ok(None),
        Field::Bytes(bytes) => Ok(Some(bytes)),
        Field::Group(group) => match group.get_column_iter().find(|(name, _)| name.as_str() == "bytes") {
            Some((_, Field::Bytes(bytes))) => Ok(Some(bytes)),
            Some((_, Field::Null)) => Err("the image's bytes are null (an image stored by path, outside the file?); \
                 Ember reads only images held in the file"
                .into()),
            _ => Err("the image struct has no binary `bytes` field".into()),
        },
        other => Err(format!("holds {}, not images", kind(other))),
    }
}

/// `WxH grey` or `WxH RGB`.
fn describe(channels: usize, height: usize, width: usize) -> String {
    format!("{width}x{height} {}", if channels == 1 { "grey" } else { "RGB" })
}

/// Decodes the images (in parallel) into `f32 [N, C, H, W]` scaled to [0, 1]; every image
/// must have the first one's size and channel count.
fn image_tensor(origin: &str, path: &Path, column: &str, pictures: &[(usize, ByteArray)]) -> Result<Tensor> {
    let decoded: Vec<_> = pictures.par_iter().map(|(_, bytes)| decode_image(bytes.data())).collect();
    let mut shape: Option<(usize, usize, usize, usize)> = None; // (row, channels, height, width)
    let mut out: Vec<f32> = Vec::new();
    for ((row, _), image) in pictures.iter().zip(decoded) {
        let (c, h, w, pixels) =
            image.map_err(|why| Error::corrupt(path, format!("row {row}, column {column:?}: {why}")))?;
        match shape {
            None => {
                shape = Some((*row, c, h, w));
                out.reserve_exact(pictures.len() * c * h * w);
            }
            Some((first, c0, h0, w0)) if (c, h, w) != (c0, h0, w0) => {
                return Err(Error::input(format!(
                    "{origin}: row {row}, column {column:?}: the image is {} but row {first}'s is {} (width x height); every image of the column must have the same size and channels (resize or convert them first)",
                    describe(c, h, w),
                    describe(c0, h0, w0)
                )));
            }
            Some(_) => {}
        }
        let plane = h * w;
        let base = out.len();
        out.resize(base + c * plane, 0.0);
        for (p, px) in pixels.chunks_exact(c).enumerate() {
            for (ch, &v) in px.iter().enumerate() {
                out[base + ch * plane + p] = v as f32 / 255.0;
            }
        }
    }
    let (_, c, h, w) = shape.ok_or_else(|| Error::input(format!("{origin}: no images")))?;
    Ok(Tensor::from_vec(out, (pictures.len(), c, h, w), &Device::Cpu)?)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use candle_core::DType;
    use parquet::data_type::{ByteArrayType, DoubleType, Int64Type};
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    use super::*;

    static COUNTER: AtomicUsize = AtomicUsize::new(0);

    /// A fresh directory under the system's temporary directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            let n = COUNTER.fetch_add(1, Ordering::SeqCst);
            let dir = std::env::temp_dir().join(format!("ember-parquet-table-test-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn file(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// One leaf column's values and, for an optional column, its definition levels (one
    /// per row; a value for each level that is the column's maximum).
    enum Col {
        I64(Vec<i64>, Option<Vec<i16>>),
        F64(Vec<f64>, Option<Vec<i16>>),
        Bytes(Vec<Vec<u8>>, Option<Vec<i16>>),
    }

    /// Writes one row group of `columns` (in the schema's leaf order) to `path`; no
    /// columns: a file without row groups.
    fn write_parquet(path: &Path, schema: &str, columns: Vec<Col>) {
        let schema = Arc::new(parse_message_type(schema).unwrap());
        let file = std::fs::File::create(path).unwrap();
        let mut writer = SerializedFileWriter::new(file, schema, Default::default()).unwrap();
        if !columns.is_empty() {
            let mut group = writer.next_row_group().unwrap();
            let mut columns = columns.into_iter();
            while let Some(mut column) = group.next_column().unwrap() {
                match columns.next().expect("one Col per leaf column") {
                    Col::I64(values, defs) => {
                        column.typed::<Int64Type>().write_batch(&values[..], defs.as_deref(), None).unwrap();
                    }
                    Col::F64(values, defs) => {
                        column.typed::<DoubleType>().write_batch(&values[..], defs.as_deref(), None).unwrap();
                    }
                    Col::Bytes(values, defs) => {
                        let values: Vec<ByteArray> = values.into_iter().map(ByteArray::from).collect();
                        column.typed::<ByteArrayType>().write_batch(&values[..], defs.as_deref(), None).unwrap();
                    }
                }
                column.close().unwrap();
            }
            assert!(columns.next().is_none(), "more Cols than leaf columns");
            group.close().unwrap();
        }
        writer.close().unwrap();
    }

    const NUMBERS: &str = "
        message schema {
            REQUIRED INT64 a;
            REQUIRED DOUBLE b;
            OPTIONAL DOUBLE c;
            REQUIRED BINARY species (UTF8);
            REQUIRED INT64 y;
        }";

    /// Four rows: a = 1..4, b = 0.5..3.5, c = 10, null, 30, 50, species = cat, dog, ant,
    /// cat, y = 10, 9, 2, 9.
    fn numbers(dir: &TempDir) -> PathBuf {
        let path = dir.file("numbers.parquet");
        write_parquet(
            &path,
            NUMBERS,
            vec![
                Col::I64(vec![1, 2, 3, 4], None),
                Col::F64(vec![0.5, 1.5, 2.5, 3.5], None),
                Col::F64(vec![10.0, 30.0, 50.0], Some(vec![1, 0, 1, 1])),
                Col::Bytes(["cat", "dog", "ant", "cat"].iter().map(|s| s.as_bytes().to_vec()).collect(), None),
                Col::I64(vec![10, 9, 2, 9], None),
            ],
        );
        path
    }

    const IMAGES: &str = "
        message schema {
            OPTIONAL GROUP image {
                OPTIONAL BINARY bytes;
                OPTIONAL BINARY path (UTF8);
            }
            REQUIRED BINARY png;
            REQUIRED BINARY mixed;
            REQUIRED INT64 label;
            REQUIRED DOUBLE x;
        }";

    /// An 8-bit PNG of `width x height` pixels of `color`.
    fn encode_png(width: u32, height: u32, color: png::ColorType, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, width, height);
            enc.set_color(color);
            enc.set_depth(png::BitDepth::Eight);
            let mut writer = enc.write_header().unwrap();
            writer.write_image_data(data).unwrap();
            writer.finish().unwrap();
        }
        out
    }

    const GREY: [[u8; 4]; 2] = [[0, 51, 102, 255], [255, 0, 0, 51]];

    /// Sample `c` of pixel `p` of the RGB image of row `k` of `png`.
    fn rgb(k: usize, p: usize, c: usize) -> u8 {
        (40 * k + 10 * p + c) as u8
    }

    /// Three rows: `image`, Hugging Face's struct, holds 2x2 grey PNGs (GREY) in rows 1 and
    /// 3 and is null in row 2; `png` holds 2x2 RGB PNGs (row 2's RGBA); `mixed` holds 2x2
    /// grey PNGs but a 3x1 one in row 2; label = 0, 2, 1; x = 0.5, 1.5, 2.5.
    fn images(dir: &TempDir) -> PathBuf {
        let path = dir.file("images.parquet");
        let grey = |g: &[u8; 4]| encode_png(2, 2, png::ColorType::Grayscale, g);
        let rgb_png = |k: usize, alpha: bool| {
            let mut data = Vec::new();
            for p in 0..4 {
                data.extend((0..3).map(|c| rgb(k, p, c)));
                if alpha {
                    data.push(255);
                }
            }
            let color = if alpha { png::ColorType::Rgba } else { png::ColorType::Rgb };
            encode_png(2, 2, color, &data)
        };
        write_parquet(
            &path,
            IMAGES,
            vec![
                Col::Bytes(vec![grey(&GREY[0]), grey(&GREY[1])], Some(vec![2, 0, 2])),
                Col::Bytes(Vec::new(), Some(vec![1, 0, 1])),
                Col::Bytes(vec![rgb_png(0, false), rgb_png(1, true), rgb_png(2, false)], None),
                Col::Bytes(
                    vec![grey(&GREY[0]), encode_png(3, 1, png::ColorType::Grayscale, &[1, 2, 3]), grey(&GREY[1])],
                    None,
                ),
                Col::I64(vec![0, 2, 1], None),
                Col::F64(vec![0.5, 1.5, 2.5], None),
            ],
        );
        path
    }

    fn spec(target: &[&str], features: &[&str]) -> TableSpec {
        TableSpec {
            target: target.iter().map(|s| s.to_string()).collect(),
            features: features.iter().map(|s| s.to_string()).collect(),
            ..TableSpec::default()
        }
    }

    fn classes(target: &str, features: &[&str]) -> TableSpec {
        TableSpec { classes: true, ..spec(&[target], features) }
    }

    fn error(path: &Path, spec: &TableSpec) -> String {
        match read_parquet_table(path, spec) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    fn matrix(t: &Tensor) -> Vec<Vec<f32>> {
        t.to_vec2::<f32>().unwrap()
    }

    fn indices(t: &Tensor) -> Vec<i64> {
        assert_eq!(t.dtype(), DType::I64);
        t.to_vec1::<i64>().unwrap()
    }

    #[test]
    fn numeric_columns_become_features_and_float_targets() {
        let dir = TempDir::new();
        let path = numbers(&dir);
        let t = read_parquet_table(&path, &spec(&["y"], &["b", "a"])).unwrap();
        assert_eq!(t.features, ["b", "a"]);
        assert_eq!(t.targets, ["y"]);
        assert_eq!(t.inputs.dtype(), DType::F32);
        assert_eq!(matrix(&t.inputs), [[0.5, 1.0], [1.5, 2.0], [2.5, 3.0], [3.5, 4.0]]);
        assert_eq!(t.target_values.dtype(), DType::F32);
        assert_eq!(t.target_values.dims(), [4, 1]);
        assert_eq!(matrix(&t.target_values), [[10.0], [9.0], [2.0], [9.0]]);
        assert!(t.class_names.is_empty());
        assert_eq!((t.len(), t.dropped, t.imputed), (4, 0, 0));
        assert_eq!(crate::Dataset::len(&t.into_dataset().unwrap()), 4);

        // Several targets, in the spec's order; the delimiter means nothing here.
        let s = TableSpec { delimiter: '"', ..spec(&["y", "a"], &["b"]) };
        let t = read_parquet_table(&path, &s).unwrap();
        assert_eq!(matrix(&t.target_values), [[10.0, 1.0], [9.0, 2.0], [2.0, 3.0], [9.0, 4.0]]);
    }

    #[test]
    fn features_default_to_every_other_column_and_text_labels_are_classes() {
        let dir = TempDir::new();
        let path = numbers(&dir);
        let s = TableSpec { missing: Missing::Drop, ..classes("species", &[]) };
        let t = read_parquet_table(&path, &s).unwrap();
        assert_eq!(t.features, ["a", "b", "c", "y"]);
        assert_eq!((t.len(), t.dropped, t.imputed), (3, 1, 0));
        assert_eq!(matrix(&t.inputs), [[1.0, 0.5, 10.0, 10.0], [3.0, 2.5, 30.0, 2.0], [4.0, 3.5, 50.0, 9.0]]);
        assert_eq!(t.class_names, ["ant", "cat"]);
        assert_eq!(t.target_values.dims(), [3]);
        assert_eq!(indices(&t.target_values), [1, 0, 1]);
    }

    #[test]
    fn integer_class_labels_sort_numerically() {
        let dir = TempDir::new();
        let path = numbers(&dir);
        let t = read_parquet_table(&path, &classes("y", &["a"])).unwrap();
        assert_eq!(t.class_names, ["2", "9", "10"]);
        assert_eq!(indices(&t.target_values), [2, 1, 0, 1]);
    }

    #[test]
    fn missing_values_follow_the_policy() {
        let dir = TempDir::new();
        let path = numbers(&dir);
        let e = error(&path, &classes("species", &[]));
        let want =
            format!("{}: row 2, column \"c\" is missing (null); fill it, or set missing = \"drop\"", path.display());
        assert!(e.contains(&want), "{e}");
        let s = TableSpec { missing: Missing::Mean, ..classes("species", &[]) };
        let t = read_parquet_table(&path, &s).unwrap();
        assert_eq!((t.len(), t.dropped, t.imputed), (4, 0, 1));
        assert_eq!(matrix(&t.inputs)[1], [2.0, 1.5, 30.0, 9.0]);
        assert_eq!(t.class_names, ["ant", "cat", "dog"]);
        assert_eq!(indices(&t.target_values), [1, 2, 0, 1]);
        // A missing target is an error even with mean.
        let s = TableSpec { missing: Missing::Mean, ..spec(&["c"], &["a"]) };
        let e = error(&path, &s);
        assert!(e.contains("row 2, column \"c\" is missing (null)"), "{e}");
        // Drop leaves the row out whichever used column has the gap.
        let s = TableSpec { missing: Missing::Drop, ..spec(&["c"], &["a"]) };
        let t = read_parquet_table(&path, &s).unwrap();
        assert_eq!(matrix(&t.inputs), [[1.0], [3.0], [4.0]]);
        assert_eq!(matrix(&t.target_values), [[10.0], [30.0], [50.0]]);
    }

    #[test]
    fn text_is_not_a_feature_nor_a_regression_target() {
        let dir = TempDir::new();
        let path = numbers(&dir);
        let e = error(&path, &spec(&["y"], &[]));
        let want =
            format!("{}: row 1, column \"species\" holds text (\"cat\"); features must be numeric", path.display());
        assert!(e.contains(&want), "{e}");
        let e = error(&path, &spec(&["species"], &["a"]));
        assert!(
            e.contains("row 1, column \"species\" holds text (\"cat\"); a regression target must be numeric"),
            "{e}"
        );
        assert!(e.contains("set classes = true"), "{e}");
    }

    #[test]
    fn unknown_columns_unreadable_files_and_empty_files_are_errors() {
        let dir = TempDir::new();
        let path = numbers(&dir);
        let e = error(&path, &spec(&["z"], &[]));
        let want = format!(
            "{}: no column \"z\" (target) in the file; its columns are \"a\", \"b\", \"c\", \"species\", \"y\"",
            path.display()
        );
        assert!(e.contains(&want), "{e}");
        let e = error(&path, &spec(&["y"], &["A"]));
        assert!(e.contains("no column \"A\" (feature)"), "{e}");
        assert!(e.contains("did you mean \"a\"?"), "{e}");
        let e = error(&path, &spec(&[], &[]));
        assert!(e.contains("no target column"), "{e}");

        let fake = dir.file("fake.parquet");
        std::fs::write(&fake, "a,y\n1,2\n").unwrap();
        let e = error(&fake, &spec(&["y"], &[]));
        assert!(e.contains(&format!("{}: not a Parquet file", fake.display())), "{e}");
        let e = error(&dir.file("absent.parquet"), &spec(&["y"], &[]));
        assert!(e.contains("absent.parquet: cannot read"), "{e}");

        let empty = dir.file("empty.parquet");
        write_parquet(&empty, NUMBERS, Vec::new());
        let e = error(&empty, &spec(&["y"], &["a"]));
        assert!(e.contains(&format!("{}: holds no rows", empty.display())), "{e}");
    }

    #[test]
    fn an_image_struct_column_becomes_an_nchw_tensor() {
        let dir = TempDir::new();
        let path = images(&dir);
        let s = TableSpec { missing: Missing::Drop, ..classes("label", &["image"]) };
        let t = read_parquet_table(&path, &s).unwrap();
        assert_eq!(t.features, ["image"]);
        assert_eq!(t.inputs.dtype(), DType::F32);
        assert_eq!(t.inputs.dims(), [2, 1, 2, 2]);
        assert_eq!((t.len(), t.dropped), (2, 1));
        let want: Vec<f32> = GREY.iter().flatten().map(|&v| v as f32 / 255.0).collect();
        assert_eq!(t.inputs.flatten_all().unwrap().to_vec1::<f32>().unwrap(), want);
        assert_eq!(t.class_names, ["0", "1"]);
        assert_eq!(indices(&t.target_values), [0, 1]);

        // A null image is missing: an error, and no mean fills it.
        let e = error(&path, &classes("label", &["image"]));
        assert!(e.contains(&format!("{}: row 2, column \"image\" is missing (null)", path.display())), "{e}");
        let e = error(&path, &TableSpec { missing: Missing::Mean, ..classes("label", &["image"]) });
        assert!(e.contains("an image cannot be filled with a mean"), "{e}");
    }

    #[test]
    fn a_binary_png_column_becomes_an_nchw_tensor_with_class_label_integers() {
        let dir = TempDir::new();
        let path = images(&dir);
        let t = read_parquet_table(&path, &classes("label", &["png"])).unwrap();
        assert_eq!(t.features, ["png"]);
        assert_eq!(t.inputs.dims(), [3, 3, 2, 2]);
        // Channels first; row 2's alpha is dropped.
        let mut want = Vec::new();
        for k in 0..3 {
            for c in 0..3 {
                want.extend((0..4).map(|p| rgb(k, p, c) as f32 / 255.0));
            }
        }
        assert_eq!(t.inputs.flatten_all().unwrap().to_vec1::<f32>().unwrap(), want);
        // ClassLabel integers: 0..K map to themselves.
        assert_eq!(t.class_names, ["0", "1", "2"]);
        assert_eq!(indices(&t.target_values), [0, 2, 1]);
        // Without classes the integers are float targets.
        let t = read_parquet_table(&path, &spec(&["label"], &["png"])).unwrap();
        assert_eq!(matrix(&t.target_values), [[0.0], [2.0], [1.0]]);
    }

    #[test]
    fn image_columns_must_be_alone_of_one_size_and_not_targets() {
        let dir = TempDir::new();
        let path = images(&dir);
        let e = error(&path, &spec(&["label"], &[]));
        assert!(
            e.contains(&format!(
                "{}: an image column must be the only feature; got \"image\", \"png\", \"mixed\", \"x\"",
                path.display()
            )),
            "{e}"
        );
        let e = error(&path, &spec(&["label"], &["x", "png"]));
        assert!(e.contains("an image column must be the only feature; got \"x\", \"png\""), "{e}");
        let e = error(&path, &spec(&["label"], &["mixed"]));
        assert!(
            e.contains("row 2, column \"mixed\": the image is 3x1 grey but row 1's is 2x2 grey (width x height)"),
            "{e}"
        );
        let e = error(&path, &spec(&["png"], &["x"]));
        assert!(e.contains("column \"png\" holds images"), "{e}");
    }
}
