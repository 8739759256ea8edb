//! TensorBoard event files: scalars, histograms and the HParams tab's record of a run,
//! written in TensorFlow's record format without TensorFlow or a protobuf library.
//!
//! An [`EventWriter`] appends to `DIR/events.out.tfevents.{secs}.{host}.{pid}.ember`, a new
//! file per process; TensorBoard reads every event file of a directory, in name order. A
//! resumed run writes a second file beside the first and, asking [`last_step`] first, only
//! the steps after those already written, so no step appears twice.
//!
//! A file is a sequence of records, `u64 length (LE) | u32 masked CRC-32C of the length |
//! data | u32 masked CRC-32C of the data`, each data one serialized `tensorboard.Event`.
//! The protobuf messages are encoded by hand below: fields in field-number order, fields at
//! their proto3 default left out, oneof members always written, which is byte for byte what
//! protobuf's own deterministic serializer writes (the tests hold bytes that it wrote). The
//! field numbers are those of tensorboard 2.21's `event.proto`, `summary.proto`,
//! `tensor.proto`, `plugins/hparams/{api,plugin_data}.proto` and protobuf's
//! `struct.proto`.
//!
//! The HParams tab reads [`EventWriter::hparams`]'s two summaries (tags
//! `_hparams_/experiment` and `_hparams_/session_start_info`) and
//! [`EventWriter::session_end`]'s one (`_hparams_/session_end_info`), each a
//! `Summary.Value` with the hparams plugin's metadata and an empty float tensor, as
//! tensorboard's `hparams.summary` writes them. Its metric columns are the last values of
//! the run's scalars with the given tags.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ember_core::{Error, IoContext, Result};

/// The number of equal-width buckets between the smallest and the largest value of a
/// [`EventWriter::histogram`].
pub const HISTOGRAM_BUCKETS: usize = 30;

/// `Event.file_version` of the first event of every file.
const FILE_VERSION: &str = "brain.Event:2";
/// `SummaryMetadata.PluginData.plugin_name` of the HParams tab.
const HPARAMS_PLUGIN: &str = "hparams";
const EXPERIMENT_TAG: &str = "_hparams_/experiment";
const SESSION_START_TAG: &str = "_hparams_/session_start_info";
const SESSION_END_TAG: &str = "_hparams_/session_end_info";
/// `tensorboard.hparams.Status`.
const STATUS_SUCCESS: u64 = 1;
const STATUS_FAILURE: u64 = 2;

/// One hyperparameter's value in the HParams tab.
#[derive(Clone, Debug, PartialEq)]
pub enum HParam {
    Number(f64),
    Text(String),
    Bool(bool),
}

/// Appends TensorBoard events to `DIR/events.out.tfevents.{secs}.{host}.{pid}.ember` (a
/// new file per process; TensorBoard reads all files of a directory).
///
/// Writes are buffered: call [`EventWriter::flush`] to hand them to the operating system
/// (dropping the writer flushes too, ignoring errors).
#[derive(Debug)]
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Creates the file (and `dir`, if it does not exist) and writes the file_version event
    /// (`brain.Event:2`).
    ///
    /// The file is named after the current second; a name already taken (a second writer
    /// of this process within one second) takes the next second instead, so a later file
    /// always sorts after an earlier one, the order TensorBoard reads them in.
    pub fn create(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir).at(dir, "create the TensorBoard directory")?;
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let host = hostname();
        let pid = std::process::id();
        for later in 0..1000u64 {
            let path = dir.join(format!("events.out.tfevents.{:010}.{host}.{pid}.ember", secs + later));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    let mut writer = EventWriter { path, out: BufWriter::new(file) };
                    writer.write_event(&event(wall_time(), 0, What::FileVersion(FILE_VERSION)))?;
                    writer.flush()?;
                    return Ok(writer);
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(path, "create the TensorBoard event file", e)),
            }
        }
        Err(Error::input(format!(
            "{}: the TensorBoard event file names of process {pid} for the next 1000 seconds are all taken; \
             remove the stale events.out.tfevents.*.{host}.{pid}.ember files",
            dir.display()
        )))
    }

    /// The event file this writer appends to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A scalar; TensorBoard stores it as a 32-bit float (`Summary.Value.simple_value`).
    pub fn scalar(&mut self, tag: &str, step: u64, value: f64) -> Result<()> {
        check_tag(tag)?;
        check_step(tag, step)?;
        self.write_summary(step, &scalar_value(tag, value as f32))
    }

    /// A histogram of `values`: [`HISTOGRAM_BUCKETS`] (30) equal-width buckets between
    /// their smallest and largest value (one bucket when all are equal), with their count,
    /// sum and sum of squares. The values must be finite and there must be at least one.
    pub fn histogram(&mut self, tag: &str, step: u64, values: &[f64]) -> Result<()> {
        check_tag(tag)?;
        check_step(tag, step)?;
        if values.is_empty() {
            return Err(Error::input(format!(
                "TensorBoard histogram '{tag}' at step {step} has no values; a histogram needs at least one"
            )));
        }
        if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(Error::input(format!(
                "TensorBoard histogram '{tag}' at step {step}: value {i} of {} is {v}; a histogram takes finite values only",
                values.len()
            )));
        }
        self.write_summary(step, &histo_value(tag, &histogram_proto(values)))
    }

    /// The run's hyperparameters for the HParams tab: flat key -> value (numbers, strings,
    /// bools), and the metric tags the run records (scalars of this run, whose last values
    /// the tab shows beside the hyperparameters). Written at step 0, sorted by key, then
    /// flushed. Keys must be non-empty and distinct, numbers finite.
    ///
    /// With `metrics` empty no `_hparams_/experiment` summary is written: TensorBoard then
    /// builds the HParams table from every run's session_start_info (the union of their
    /// keys, every scalar tag a metric), which compares runs whose configs have different
    /// keys (sgd's momentum, adam's betas). With `metrics`, the experiment summary fixes
    /// the columns: pointed at a directory of several runs, TensorBoard takes them from
    /// one run's (the first it finds).
    pub fn hparams(&mut self, hparams: &[(String, HParam)], metrics: &[String]) -> Result<()> {
        let mut sorted: Vec<&(String, HParam)> = hparams.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for pair in sorted.windows(2) {
            if pair[0].0 == pair[1].0 {
                return Err(Error::input(format!(
                    "TensorBoard hparams: the key '{}' is given twice ({:?} and {:?}); give each key once",
                    pair[0].0, pair[0].1, pair[1].1
                )));
            }
        }
        for (name, value) in &sorted {
            if name.is_empty() {
                return Err(Error::input(format!(
                    "TensorBoard hparams: a key is empty (its value is {value:?}); name every hyperparameter"
                )));
            }
            match value {
                HParam::Number(x) if !x.is_finite() => {
                    return Err(Error::input(format!(
                        "TensorBoard hparams: '{name}' = {x}; the HParams tab takes finite numbers only \
                         (give it as HParam::Text to record it)"
                    )));
                }
                _ => {}
            }
        }
        for tag in metrics {
            check_tag(tag)?;
        }
        if !metrics.is_empty() {
            let experiment = experiment(&sorted, metrics);
            self.write_summary(0, &plugin_value(EXPERIMENT_TAG, HPARAMS_PLUGIN, &hparams_plugin_data(2, &experiment)))?;
        }
        let start = session_start_info(&sorted, wall_time());
        self.write_summary(0, &plugin_value(SESSION_START_TAG, HPARAMS_PLUGIN, &hparams_plugin_data(3, &start)))?;
        self.flush()
    }

    /// The end of the run for the HParams tab's status column (`STATUS_SUCCESS`, or
    /// `STATUS_FAILURE` when `success` is false), then a flush. A run without one shows
    /// status unknown.
    pub fn session_end(&mut self, success: bool) -> Result<()> {
        let status = if success { STATUS_SUCCESS } else { STATUS_FAILURE };
        let end = session_end_info(status, wall_time());
        self.write_summary(0, &plugin_value(SESSION_END_TAG, HPARAMS_PLUGIN, &hparams_plugin_data(4, &end)))?;
        self.flush()
    }

    /// Flushes buffered records to the operating system (no fsync), where TensorBoard
    /// reads them.
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().at(&self.path, "write")
    }

    /// One event at `step` holding a summary of one value.
    fn write_summary(&mut self, step: u64, value: &[u8]) -> Result<()> {
        let summary = summary(value);
        self.write_event(&event(wall_time(), step, What::Summary(&summary)))
    }

    fn write_event(&mut self, data: &[u8]) -> Result<()> {
        write_record(&mut self.out, data).at(&self.path, "write")
    }
}

/// Every (tag, step, simple_value) scalar in the event files of `dir` (the files whose
/// names contain `tfevents`, in name order, each in its order), decoded.
///
/// Every record's checksums are checked: a bad one is an error naming the file and the
/// record's byte offset. A last record cut short (a writer that died mid-write) is
/// skipped, as TensorBoard skips it. Scalars stored as tensors (TensorFlow 2's
/// `tf.summary.scalar`) are not read, only `simple_value`s.
pub fn read_scalars(dir: &Path) -> Result<Vec<(String, u64, f64)>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).at(dir, "read the TensorBoard directory")? {
        let entry = entry.at(dir, "read the TensorBoard directory")?;
        let is_events = entry.file_name().to_str().is_some_and(|name| name.contains("tfevents"));
        let path = entry.path();
        if is_events && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    let mut out = Vec::new();
    for path in &files {
        let bytes = fs::read(path).at(path, "read")?;
        read_records(path, &bytes, &mut out)?;
    }
    Ok(out)
}

/// The largest step any scalar in `dir` has for `tag`, if any (a resumed run writes only
/// steps after it, so nothing is duplicated).
pub fn last_step(dir: &Path, tag: &str) -> Result<Option<u64>> {
    Ok(read_scalars(dir)?.into_iter().filter(|(t, _, _)| t == tag).map(|(_, step, _)| step).max())
}

/// Flattens a JSON config into hparams: nested keys joined with '.', lists as their JSON
/// text, `null` as the text `null`; an empty object gives nothing. A config that is not an
/// object gives the one key `config`.
pub fn flatten_config(json: &serde_json::Value) -> Vec<(String, HParam)> {
    let mut out = Vec::new();
    match json {
        serde_json::Value::Object(map) => flatten_into(map, "", &mut out),
        other => out.push(("config".to_string(), leaf(other))),
    }
    out
}

fn flatten_into(map: &serde_json::Map<String, serde_json::Value>, prefix: &str, out: &mut Vec<(String, HParam)>) {
    for (key, value) in map {
        let key = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match value {
            serde_json::Value::Object(inner) => flatten_into(inner, &key, out),
            other => out.push((key, leaf(other))),
        }
    }
}

fn leaf(value: &serde_json::Value) -> HParam {
    use serde_json::Value as J;
    match value {
        J::Bool(b) => HParam::Bool(*b),
        J::Number(n) => n.as_f64().map(HParam::Number).unwrap_or_else(|| HParam::Text(n.to_string())),
        J::String(s) => HParam::Text(s.clone()),
        J::Null => HParam::Text("null".to_string()),
        J::Array(_) | J::Object(_) => HParam::Text(value.to_string()),
    }
}

fn check_tag(tag: &str) -> Result<()> {
    if tag.is_empty() {
        return Err(Error::input("a TensorBoard tag is empty; name every scalar, histogram and metric"));
    }
    Ok(())
}

fn check_step(tag: &str, step: u64) -> Result<()> {
    if step > i64::MAX as u64 {
        return Err(Error::input(format!(
            "TensorBoard '{tag}': step {step} is beyond the largest step an event file holds ({})",
            i64::MAX
        )));
    }
    Ok(())
}

/// Seconds since the Unix epoch, for `Event.wall_time` and the HParams times.
fn wall_time() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// The host name for the file name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`, else
/// `localhost`), reduced to letters, digits, `.`, `-` and `_`.
fn hostname() -> String {
    let raw = fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    let clean: String = raw
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '-' })
        .collect();
    if clean.is_empty() {
        "localhost".to_string()
    } else {
        clean
    }
}

// ---- records ----

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), one entry per byte value.
const CRC32C_TABLE: [u32; 256] = crc32c_table();

const fn crc32c_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc = CRC32C_TABLE[((crc ^ u32::from(byte)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

/// TensorFlow's masked CRC-32C of a record's length and of its data.
fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c(data);
    crc.rotate_right(15).wrapping_add(0xA282_EAD8)
}

fn write_record(out: &mut impl Write, data: &[u8]) -> std::io::Result<()> {
    let len = (data.len() as u64).to_le_bytes();
    out.write_all(&len)?;
    out.write_all(&masked_crc32c(&len).to_le_bytes())?;
    out.write_all(data)?;
    out.write_all(&masked_crc32c(data).to_le_bytes())
}

/// The scalars of one event file's bytes, appended to `out`.
fn read_records(path: &Path, bytes: &[u8], out: &mut Vec<(String, u64, f64)>) -> Result<()> {
    let mut offset = 0usize;
    while bytes.len() - offset >= 12 {
        let header = &bytes[offset..offset + 8];
        if masked_crc32c(header) != u32::from_le_bytes(le4(&bytes[offset + 8..offset + 12])) {
            return Err(Error::corrupt(
                path,
                format!(
                    "the record at byte {offset} has a bad length checksum: the file is damaged \
                     (move it out of the directory to read the others)"
                ),
            ));
        }
        let len = u64::from_le_bytes(le8(header));
        let start = offset + 12;
        if ((bytes.len() - start) as u64) < len.saturating_add(4) {
            // The last record, cut short: its writer died while writing it.
            break;
        }
        let end = start + len as usize;
        let data = &bytes[start..end];
        if masked_crc32c(data) != u32::from_le_bytes(le4(&bytes[end..end + 4])) {
            return Err(Error::corrupt(
                path,
                format!(
                    "the record at byte {offset} has a bad data checksum: the file is damaged \
                     (move it out of the directory to read the others)"
                ),
            ));
        }
        decode_event(data, out).map_err(|msg| Error::corrupt(path, format!("the record at byte {offset}: {msg}")))?;
        offset = end + 4;
    }
    Ok(())
}

fn le4(bytes: &[u8]) -> [u8; 4] {
    let mut a = [0u8; 4];
    a.copy_from_slice(bytes);
    a
}

fn le8(bytes: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(bytes);
    a
}

// ---- protobuf encoding ----

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;
const FIXED32: u64 = 5;

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(((v & 0x7F) as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_key(buf: &mut Vec<u8>, field: u64, wire: u64) {
    put_varint(buf, (field << 3) | wire);
}

fn put_uint(buf: &mut Vec<u8>, field: u64, v: u64) {
    put_key(buf, field, VARINT);
    put_varint(buf, v);
}

fn put_double(buf: &mut Vec<u8>, field: u64, v: f64) {
    put_key(buf, field, FIXED64);
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_float(buf: &mut Vec<u8>, field: u64, v: f32) {
    put_key(buf, field, FIXED32);
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(buf: &mut Vec<u8>, field: u64, data: &[u8]) {
    put_key(buf, field, LEN);
    put_varint(buf, data.len() as u64);
    buf.extend_from_slice(data);
}

fn put_str(buf: &mut Vec<u8>, field: u64, s: &str) {
    put_bytes(buf, field, s.as_bytes());
}

fn put_packed_doubles(buf: &mut Vec<u8>, field: u64, vs: &[f64]) {
    if !vs.is_empty() {
        put_key(buf, field, LEN);
        put_varint(buf, 8 * vs.len() as u64);
        for v in vs {
            buf.extend_from_slice(&v.to_le_bytes());
        }
    }
}

// proto3 implicit presence: a field at its default is not written (a double is at its
// default only when its bits are zero: -0.0 is written).

fn opt_double(buf: &mut Vec<u8>, field: u64, v: f64) {
    if v.to_bits() != 0 {
        put_double(buf, field, v);
    }
}

fn opt_uint(buf: &mut Vec<u8>, field: u64, v: u64) {
    if v != 0 {
        put_uint(buf, field, v);
    }
}

fn opt_str(buf: &mut Vec<u8>, field: u64, s: &str) {
    if !s.is_empty() {
        put_str(buf, field, s);
    }
}

/// The oneof `Event.what` this encoder writes.
enum What<'a> {
    FileVersion(&'a str),
    /// A serialized `Summary`.
    Summary(&'a [u8]),
}

/// `Event { wall_time 1 double, step 2 int64, file_version 3 string | summary 5 Summary }`.
fn event(wall_time: f64, step: u64, what: What<'_>) -> Vec<u8> {
    let mut b = Vec::new();
    opt_double(&mut b, 1, wall_time);
    opt_uint(&mut b, 2, step);
    match what {
        What::FileVersion(v) => put_str(&mut b, 3, v),
        What::Summary(s) => put_bytes(&mut b, 5, s),
    }
    b
}

/// `Summary { repeated Value value = 1 }` with one value.
fn summary(value: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    put_bytes(&mut b, 1, value);
    b
}

/// `Summary.Value { tag 1, simple_value 2 float }`.
fn scalar_value(tag: &str, value: f32) -> Vec<u8> {
    let mut b = Vec::new();
    opt_str(&mut b, 1, tag);
    put_float(&mut b, 2, value);
    b
}

/// The right edges and counts of the buckets of `values` (non-empty, finite), whose
/// smallest and largest are `lo` and `hi`: [`HISTOGRAM_BUCKETS`] of equal width, the last
/// edge `hi` exactly; one bucket when the width is zero (or not finite).
fn histogram_buckets(values: &[f64], lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    let width = (hi - lo) / HISTOGRAM_BUCKETS as f64;
    if !(width > 0.0 && width.is_finite()) {
        return (vec![hi], vec![values.len() as f64]);
    }
    let mut limits: Vec<f64> = (1..HISTOGRAM_BUCKETS).map(|i| lo + i as f64 * width).collect();
    limits.push(hi);
    let mut counts = vec![0.0; HISTOGRAM_BUCKETS];
    for &v in values {
        let i = (((v - lo) / width) as usize).min(HISTOGRAM_BUCKETS - 1);
        counts[i] += 1.0;
    }
    (limits, counts)
}

/// `HistogramProto { min 1, max 2, num 3, sum 4, sum_squares 5 (doubles), bucket_limit 6,
/// bucket 7 (packed doubles) }` of `values` (non-empty, finite). TensorBoard takes each
/// bucket as (previous limit, limit], the first from `min`.
fn histogram_proto(values: &[f64]) -> Vec<u8> {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (mut sum, mut sum_squares) = (0.0, 0.0);
    for &v in values {
        sum += v;
        sum_squares += v * v;
    }
    let (limits, counts) = histogram_buckets(values, lo, hi);
    let mut b = Vec::new();
    opt_double(&mut b, 1, lo);
    opt_double(&mut b, 2, hi);
    opt_double(&mut b, 3, values.len() as f64);
    opt_double(&mut b, 4, sum);
    opt_double(&mut b, 5, sum_squares);
    put_packed_doubles(&mut b, 6, &limits);
    put_packed_doubles(&mut b, 7, &counts);
    b
}

/// `Summary.Value { tag 1, histo 5 HistogramProto }`.
fn histo_value(tag: &str, histo: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    opt_str(&mut b, 1, tag);
    put_bytes(&mut b, 5, histo);
    b
}

/// `TensorProto { dtype: DT_FLOAT, tensor_shape { dim { size: 0 } } }`: the hparams
/// plugin's `NULL_TENSOR`, the data of its summaries.
const NULL_TENSOR: [u8; 6] = [0x08, 0x01, 0x12, 0x02, 0x12, 0x00];

/// `Summary.Value { tag 1, tensor 8 TensorProto, metadata 9 SummaryMetadata { plugin_data
/// 1 PluginData { plugin_name 1 string, content 2 bytes } } }`.
fn plugin_value(tag: &str, plugin_name: &str, content: &[u8]) -> Vec<u8> {
    let mut plugin_data = Vec::new();
    put_str(&mut plugin_data, 1, plugin_name);
    put_bytes(&mut plugin_data, 2, content);
    let mut metadata = Vec::new();
    put_bytes(&mut metadata, 1, &plugin_data);
    let mut b = Vec::new();
    opt_str(&mut b, 1, tag);
    put_bytes(&mut b, 8, &NULL_TENSOR);
    put_bytes(&mut b, 9, &metadata);
    b
}

/// `HParamsPluginData { version 1 int32 = 0 (the default, not written), experiment 2 |
/// session_start_info 3 | session_end_info 4 }`, the oneof member `field` holding
/// `message`.
fn hparams_plugin_data(field: u64, message: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    put_bytes(&mut b, field, message);
    b
}

/// `tensorboard.hparams.DataType`.
fn data_type(value: &HParam) -> u64 {
    match value {
        HParam::Text(_) => 1,
        HParam::Bool(_) => 2,
        HParam::Number(_) => 3,
    }
}

/// `Experiment { hparam_infos 4 repeated HParamInfo { name 1, type 4 DataType },
/// metric_infos 5 repeated MetricInfo { name 1 MetricName { group 1 = "", tag 2 } } }`.
fn experiment(hparams: &[&(String, HParam)], metrics: &[String]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, value) in hparams.iter().copied() {
        let mut info = Vec::new();
        opt_str(&mut info, 1, name);
        opt_uint(&mut info, 4, data_type(value));
        put_bytes(&mut b, 4, &info);
    }
    for tag in metrics {
        let mut name = Vec::new();
        opt_str(&mut name, 2, tag);
        let mut info = Vec::new();
        put_bytes(&mut info, 1, &name);
        put_bytes(&mut b, 5, &info);
    }
    b
}

/// `google.protobuf.Value { number_value 2 double | string_value 3 string | bool_value 4
/// bool }`.
fn struct_value(value: &HParam) -> Vec<u8> {
    let mut b = Vec::new();
    match value {
        HParam::Number(x) => put_double(&mut b, 2, *x),
        HParam::Text(s) => put_str(&mut b, 3, s),
        HParam::Bool(v) => put_uint(&mut b, 4, u64::from(*v)),
    }
    b
}

/// `SessionStartInfo { hparams 1 map<string, Value> (entries { key 1, value 2 }),
/// start_time_secs 5 double }`.
fn session_start_info(hparams: &[&(String, HParam)], start_time: f64) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, value) in hparams.iter().copied() {
        let mut entry = Vec::new();
        put_str(&mut entry, 1, name);
        put_bytes(&mut entry, 2, &struct_value(value));
        put_bytes(&mut b, 1, &entry);
    }
    opt_double(&mut b, 5, start_time);
    b
}

/// `SessionEndInfo { status 1 Status, end_time_secs 2 double }`.
fn session_end_info(status: u64, end_time: f64) -> Vec<u8> {
    let mut b = Vec::new();
    opt_uint(&mut b, 1, status);
    opt_double(&mut b, 2, end_time);
    b
}

// ---- protobuf decoding (what read_scalars needs) ----

/// A decoding failure's message, made an [`Error::Corrupt`] by the caller.
type Decoded<T> = std::result::Result<T, String>;

enum Wire<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// The fields of one message, in order.
struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Fields { buf, pos: 0 }
    }

    fn varint(&mut self) -> Decoded<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err("a varint runs past the end of its message".to_string());
            };
            self.pos += 1;
            v |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("a varint is longer than 10 bytes".to_string())
    }

    fn take(&mut self, n: usize) -> Decoded<&'a [u8]> {
        if self.buf.len() - self.pos < n {
            return Err(format!(
                "a field of {n} bytes runs past the end of its message ({} bytes left)",
                self.buf.len() - self.pos
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// The next (field number, value), or `None` at the end of the message.
    fn field(&mut self) -> Decoded<Option<(u64, Wire<'a>)>> {
        if self.pos == self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = key >> 3;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Wire::Fixed64
            }
            2 => {
                let n = self.varint()?;
                let n = usize::try_from(n).map_err(|_| format!("field {field} claims {n} bytes"))?;
                Wire::Bytes(self.take(n)?)
            }
            5 => Wire::Fixed32(u32::from_le_bytes(le4(self.take(4)?))),
            w => return Err(format!("field {field} has wire type {w}, which event files do not use")),
        };
        Ok(Some((field, wire)))
    }
}

/// The scalars of one serialized `Event`, appended to `out`.
fn decode_event(data: &[u8], out: &mut Vec<(String, u64, f64)>) -> Decoded<()> {
    let mut step = 0u64;
    let mut summary = None;
    let mut fields = Fields::new(data);
    while let Some((field, wire)) = fields.field()? {
        match (field, wire) {
            (2, Wire::Varint(v)) => step = v,
            (2, _) => return Err("Event.step is not a varint".to_string()),
            (5, Wire::Bytes(b)) => summary = Some(b),
            (5, _) => return Err("Event.summary is not a message".to_string()),
            _ => {}
        }
    }
    let Some(summary) = summary else { return Ok(()) };
    if (step as i64) < 0 {
        return Err(format!("the event has the negative step {}", step as i64));
    }
    let mut values = Fields::new(summary);
    while let Some((field, wire)) = values.field()? {
        match (field, wire) {
            (1, Wire::Bytes(value)) => {
                if let Some((tag, v)) = decode_scalar(value)? {
                    out.push((tag, step, f64::from(v)));
                }
            }
            (1, _) => return Err("Summary.value is not a message".to_string()),
            _ => {}
        }
    }
    Ok(())
}

/// The tag and `simple_value` of a serialized `Summary.Value`, if it has one.
fn decode_scalar(value: &[u8]) -> Decoded<Option<(String, f32)>> {
    let mut tag = String::new();
    let mut simple = None;
    let mut fields = Fields::new(value);
    while let Some((field, wire)) = fields.field()? {
        match (field, wire) {
            (1, Wire::Bytes(b)) => {
                tag = String::from_utf8(b.to_vec()).map_err(|_| "a Summary.Value tag is not UTF-8".to_string())?;
            }
            (1, _) => return Err("Summary.Value.tag is not a string".to_string()),
            (2, Wire::Fixed32(bits)) => simple = Some(f32::from_bits(bits)),
            (2, _) => return Err(format!("Summary.Value.simple_value of '{tag}' is not a float")),
            _ => {}
        }
    }
    Ok(simple.map(|v| (tag, v)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A fresh directory for one test.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ember-tensorboard-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// The byte offset of each record of an event file.
    fn record_offsets(bytes: &[u8]) -> Vec<usize> {
        let mut offsets = Vec::new();
        let mut offset = 0;
        while offset < bytes.len() {
            offsets.push(offset);
            offset += 16 + u64::from_le_bytes(le8(&bytes[offset..offset + 8])) as usize;
        }
        assert_eq!(offset, bytes.len());
        offsets
    }

    #[test]
    fn crc32c_known_vectors() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        // Masked values from tensorboard's own `pywrap_tensorflow.masked_crc32c`.
        assert_eq!(masked_crc32c(b""), 0xA282_EAD8);
        assert_eq!(masked_crc32c(b"123456789"), 0xC78A_B0E5);
    }

    /// Each message is byte for byte what tensorboard 2.21's protobuf classes serialize
    /// (`SerializeToString(deterministic=True)`), e.g. `Event(wall_time=1.5, step=300,
    /// summary=Summary(value=[Summary.Value(tag="loss/train", simple_value=0.25)]))`.
    #[test]
    fn messages_match_protobuf_bytes() {
        assert_eq!(
            event(1.5, 0, What::FileVersion(FILE_VERSION)),
            hex("09000000000000f83f1a0d627261696e2e4576656e743a32")
        );
        assert_eq!(
            event(1.5, 300, What::Summary(&summary(&scalar_value("loss/train", 0.25)))),
            hex("09000000000000f83f10ac022a130a110a0a6c6f73732f747261696e150000803e")
        );
        // HistogramProto(min=2, max=2, num=2, sum=4, sum_squares=8, bucket_limit=[2], bucket=[2])
        assert_eq!(
            histo_value("w", &histogram_proto(&[2.0, 2.0])),
            hex("0a01772a41090000000000000040110000000000000040190000000000000040210000000000001040\
                 290000000000002040320800000000000000403a080000000000000040")
        );
        let hp = [
            ("lr".to_string(), HParam::Number(0.01)),
            ("opt".to_string(), HParam::Text("adam".to_string())),
            ("shuffle".to_string(), HParam::Bool(false)),
        ];
        let refs: Vec<&(String, HParam)> = hp.iter().collect();
        // The hparams plugin's Summary.Value: tag, metadata.NULL_TENSOR and the metadata
        // of `metadata.create_summary_metadata(HParamsPluginData(...))`.
        assert_eq!(
            plugin_value(
                EXPERIMENT_TAG,
                HPARAMS_PLUGIN,
                &hparams_plugin_data(2, &experiment(&refs, &["loss/eval".to_string()]))
            ),
            hex("0a145f68706172616d735f2f6578706572696d656e7442060801120212004a3c0a3a0a0768706172616d73\
                 122f122d22060a026c72200322070a036f70742001220b0a0773687566666c6520022a0d0a0b12096c6f73\
                 732f6576616c")
        );
        assert_eq!(
            plugin_value(SESSION_START_TAG, HPARAMS_PLUGIN, &hparams_plugin_data(3, &session_start_info(&refs, 12.5))),
            hex("0a1c5f68706172616d735f2f73657373696f6e5f73746172745f696e666f42060801120212004a470a450a\
                 0768706172616d73123a1a380a0f0a026c721209117b14ae47e17a843f0a0d0a036f707412061a04616461\
                 6d0a0d0a0773687566666c6512022000290000000000002940")
        );
        assert_eq!(
            plugin_value(
                SESSION_END_TAG,
                HPARAMS_PLUGIN,
                &hparams_plugin_data(4, &session_end_info(STATUS_SUCCESS, 13.5))
            ),
            hex("0a1a5f68706172616d735f2f73657373696f6e5f656e645f696e666f42060801120212004a1a0a180a0768\
                 706172616d73120d220b0801110000000000002b40")
        );
    }

    #[test]
    fn histogram_has_thirty_equal_buckets() {
        let (limits, counts) = histogram_buckets(&[1.0, 2.0, 4.0], 1.0, 4.0);
        assert_eq!(limits.len(), HISTOGRAM_BUCKETS);
        assert_eq!(counts.len(), HISTOGRAM_BUCKETS);
        assert!((limits[0] - 1.1).abs() < 1e-12, "{}", limits[0]);
        assert!((limits[14] - 2.5).abs() < 1e-12, "{}", limits[14]);
        assert_eq!(limits[29], 4.0);
        let nonzero: Vec<(usize, f64)> = counts.iter().copied().enumerate().filter(|(_, c)| *c > 0.0).collect();
        assert_eq!(nonzero, vec![(0, 1.0), (10, 1.0), (29, 1.0)]);
        assert_eq!(histogram_buckets(&[3.0; 4], 3.0, 3.0), (vec![3.0], vec![4.0]));
    }

    #[test]
    fn written_files_read_back() {
        let dir = scratch("roundtrip");
        let mut w = EventWriter::create(&dir).unwrap();
        let name = w.path().file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            name.starts_with("events.out.tfevents.") && name.ends_with(&format!(".{}.ember", std::process::id())),
            "{name}"
        );
        let config = json!({"optimizer": {"kind": "adam", "lr": 0.001}, "epochs": 3});
        w.hparams(&flatten_config(&config), &["loss/train".to_string()]).unwrap();
        for step in 1..=5u64 {
            w.scalar("loss/train", step, 1.0 / step as f64).unwrap();
        }
        w.scalar("lr", 3, 0.5).unwrap();
        w.histogram("weights", 5, &[0.5, -1.0, 3.0]).unwrap();
        w.session_end(true).unwrap();
        w.flush().unwrap();
        let first = w.path().to_path_buf();
        drop(w);

        let mut expected: Vec<(String, u64, f64)> =
            (1..=5u64).map(|s| ("loss/train".to_string(), s, f64::from((1.0 / s as f64) as f32))).collect();
        expected.push(("lr".to_string(), 3, 0.5));
        assert_eq!(read_scalars(&dir).unwrap(), expected);
        assert_eq!(last_step(&dir, "loss/train").unwrap(), Some(5));
        assert_eq!(last_step(&dir, "lr").unwrap(), Some(3));
        assert_eq!(last_step(&dir, "loss/eval").unwrap(), None);

        // A resumed run: a second file, sorting after the first, read after it.
        let mut w = EventWriter::create(&dir).unwrap();
        assert!(w.path() > first.as_path(), "{} <= {}", w.path().display(), first.display());
        w.scalar("loss/train", 6, 0.125).unwrap();
        w.flush().unwrap();
        drop(w);
        let scalars = read_scalars(&dir).unwrap();
        assert_eq!(scalars.len(), 7);
        assert_eq!(scalars[6], ("loss/train".to_string(), 6u64, 0.125f64));
        assert_eq!(last_step(&dir, "loss/train").unwrap(), Some(6));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn damaged_records_are_reported() {
        let dir = scratch("corrupt");
        let mut w = EventWriter::create(&dir).unwrap();
        for step in 1..=3u64 {
            w.scalar("loss", step, step as f64).unwrap();
        }
        w.flush().unwrap();
        let path = w.path().to_path_buf();
        drop(w);
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let good = fs::read(&path).unwrap();
        let offsets = record_offsets(&good);
        assert_eq!(offsets.len(), 4);

        // A byte of the third scalar's data.
        let mut bytes = good.clone();
        let last = offsets[3];
        bytes[last + 14] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        let err = read_scalars(&dir).unwrap_err().to_string();
        assert!(
            err.contains(&name) && err.contains(&format!("record at byte {last} has a bad data checksum")),
            "{err}"
        );

        // A byte of the second scalar's length.
        let mut bytes = good.clone();
        bytes[offsets[2]] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        let err = read_scalars(&dir).unwrap_err().to_string();
        assert!(
            err.contains(&name) && err.contains(&format!("record at byte {} has a bad length checksum", offsets[2])),
            "{err}"
        );

        // A last record cut short (a writer killed mid-write) is skipped.
        fs::write(&path, &good[..good.len() - 3]).unwrap();
        let scalars = read_scalars(&dir).unwrap();
        assert_eq!(scalars, vec![("loss".to_string(), 1u64, 1.0f64), ("loss".to_string(), 2u64, 2.0f64)]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_input_is_refused() {
        let dir = scratch("refused");
        let mut w = EventWriter::create(&dir).unwrap();
        let err = w.histogram("grads", 1, &[]).unwrap_err().to_string();
        assert!(err.contains("'grads'") && err.contains("no values"), "{err}");
        let err = w.histogram("grads", 1, &[1.0, f64::NAN]).unwrap_err().to_string();
        assert!(err.contains("value 1 of 2 is NaN"), "{err}");
        let err = w.scalar("loss", u64::MAX, 1.0).unwrap_err().to_string();
        assert!(err.contains(&u64::MAX.to_string()), "{err}");
        assert!(w.scalar("", 1, 1.0).is_err());
        let twice = vec![("lr".to_string(), HParam::Number(0.1)), ("lr".to_string(), HParam::Number(0.2))];
        let err = w.hparams(&twice, &[]).unwrap_err().to_string();
        assert!(err.contains("'lr' is given twice"), "{err}");
        let inf = vec![("lr".to_string(), HParam::Number(f64::INFINITY))];
        let err = w.hparams(&inf, &[]).unwrap_err().to_string();
        assert!(err.contains("'lr' = inf"), "{err}");
        drop(w);
        // Nothing but the file_version event was written.
        assert!(read_scalars(&dir).unwrap().is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn flattens_config() {
        let config = json!({
            "optimizer": {"kind": "adam", "lr": 0.001, "betas": [0.9, 0.999], "extra": {}},
            "epochs": 3,
            "shuffle": true,
            "clip": null
        });
        let mut got = flatten_config(&config);
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let want = vec![
            ("clip".to_string(), HParam::Text("null".to_string())),
            ("epochs".to_string(), HParam::Number(3.0)),
            ("optimizer.betas".to_string(), HParam::Text("[0.9,0.999]".to_string())),
            ("optimizer.kind".to_string(), HParam::Text("adam".to_string())),
            ("optimizer.lr".to_string(), HParam::Number(0.001)),
            ("shuffle".to_string(), HParam::Bool(true)),
        ];
        assert_eq!(got, want);
        assert_eq!(flatten_config(&json!(2)), vec![("config".to_string(), HParam::Number(2.0))]);
    }
}
