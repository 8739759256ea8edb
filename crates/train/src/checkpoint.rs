//! Checkpoints: one safetensors file holding the model weights (PyTorch names, under
//! `model/`), the optimizer and scheduler state, and in its metadata the run's config
//! (JSON), the epoch and step counters and the metric history. Written atomically: a
//! temporary file in the same directory, fsync, rename, fsync of the directory; a crash
//! at any moment leaves the previous checkpoint intact. A crash mid-write leaves a
//! `.NAME.tmp-PID` file beside the checkpoints; [`remove_stale_temporaries`] clears them
//! when a run resumes.
//!
//! Each checkpoint stores a CRC-32 of its tensor data in its metadata (`checksum`); a
//! file whose data no longer matches is rejected as corrupted.
//!
//! Test hook: with `EMBER_FAILPOINT_CHECKPOINT_WRITE=NAME` set, writing the checkpoint
//! file NAME stops halfway through the temporary file, creates `NAME.paused` in the
//! directory and waits forever, so a test can kill the process in the middle of a write;
//! with `NAME:enospc` the write fails there as on a full disk.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use ember_core::{Context, Error, IoContext, Result};

/// The `format` metadata value of Ember checkpoints.
pub const FORMAT: &str = "ember-checkpoint/1";

/// A checkpoint read back: tensors by name and the metadata strings.
#[derive(Debug)]
pub struct Checkpoint {
    pub path: PathBuf,
    pub tensors: HashMap<String, Tensor>,
    pub metadata: HashMap<String, String>,
}

impl Checkpoint {
    /// A metadata entry, or an error naming the file.
    pub fn meta(&self, key: &str) -> Result<&str> {
        self.metadata
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| Error::corrupt(&self.path, format!("not an Ember checkpoint (no '{key}' in its metadata)")))
    }

    /// The tensors whose names start with `prefix`, with the prefix removed.
    pub fn section(&self, prefix: &str) -> HashMap<String, Tensor> {
        self.tensors.iter().filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone()))).collect()
    }
}

/// The failpoint action for the checkpoint file `name`, if the test hook names it.
/// Only in builds with the `failpoints` feature (the test suite's); release builds have
/// no hook.
#[cfg(feature = "failpoints")]
fn failpoint(name: &str) -> Option<String> {
    let v = std::env::var("EMBER_FAILPOINT_CHECKPOINT_WRITE").ok()?;
    match v.split_once(':') {
        Some((n, action)) if n == name => Some(action.to_string()),
        None if v == name => Some("pause".into()),
        _ => None,
    }
}

#[cfg(not(feature = "failpoints"))]
fn failpoint(_name: &str) -> Option<String> {
    None
}

/// The metadata key holding the CRC-32 of a checkpoint's tensor data.
pub const CHECKSUM: &str = "checksum";

/// CRC-32 (hex) of the data section of serialized safetensors `bytes` (after the header).
fn data_checksum(bytes: &[u8]) -> Option<String> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let start = 8usize.checked_add(usize::try_from(n).ok()?)?;
    Some(format!("{:08x}", crc32fast::hash(bytes.get(start..)?)))
}

/// Writes `tensors` and `metadata` to `path` atomically.
pub fn write_atomic(path: &Path, tensors: &HashMap<String, Tensor>, metadata: HashMap<String, String>) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        Error::input(format!("{}: cannot {what}: {e}; the previous checkpoint is unchanged", path.display()))
    };
    fs::create_dir_all(dir).map_err(|e| fail("create the directory", &e))?;
    let mut data: Vec<(String, Tensor)> = Vec::with_capacity(tensors.len());
    for (k, t) in tensors {
        data.push((k.clone(), t.to_device(&Device::Cpu)?.contiguous()?));
    }
    data.sort_by(|a, b| a.0.cmp(&b.0));
    let serialize = |metadata: HashMap<String, String>| {
        safetensors::serialize(data.iter().map(|(k, t)| (k.as_str(), t)), Some(metadata))
            .map_err(|e| fail("serialize", &e))
    };
    // The data section does not depend on the metadata: serialize, checksum the data,
    // then serialize again with the checksum in the header.
    let mut metadata = metadata;
    let first = serialize(metadata.clone())?;
    metadata.insert(CHECKSUM.into(), data_checksum(&first).expect("a serialized file has a header"));
    let bytes = serialize(metadata)?;
    write_file_atomic(path, &bytes).map_err(|e| fail("write", &e))
}

/// Writes `bytes` to `path` atomically: a temporary `.NAME.tmp-PID` beside it, fsync,
/// rename, fsync of the directory. On any error the temporary is removed and `path` is
/// as it was. The test hook (see the module docs) applies to every file written here.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        match failpoint(&name).as_deref() {
            Some("pause") => {
                f.write_all(&bytes[..bytes.len() / 2])?;
                f.sync_all()?;
                File::create(dir.join(format!("{name}.paused")))?;
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
            }
            Some("enospc") => {
                f.write_all(&bytes[..bytes.len() / 2])?;
                return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
            }
            _ => {}
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads a checkpoint (or any safetensors file) with its metadata. A truncated or
/// corrupted file is an error naming the file, never a panic.
pub fn read(path: &Path) -> Result<Checkpoint> {
    let bytes = ember_core::memory::read_file(path, "a safetensors file")?;
    read_bytes(&bytes, path)
}

/// The metadata of a safetensors file, reading only its header.
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>> {
    use std::io::Read;
    let fail = |e: &dyn std::fmt::Display| Error::corrupt(path, format!("not a readable safetensors file: {e}"));
    let mut f = File::open(path).at(path, "read")?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|e| fail(&e))?;
    let n = u64::from_le_bytes(len);
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    if n > size.saturating_sub(8) || n > 100 << 20 {
        return Err(fail(&format!("the header claims {n} bytes (truncated or corrupted)")));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(|e| fail(&e))?;
    let json: serde_json::Value = serde_json::from_slice(&header).map_err(|e| fail(&e))?;
    let meta = json.get("__metadata__").and_then(|m| m.as_object()).cloned().unwrap_or_default();
    Ok(meta.into_iter().filter_map(|(k, v)| Some((k, v.as_str()?.to_string()))).collect())
}

/// Copies a checkpoint file atomically (temporary, fsync, rename, fsync of the
/// directory), after checking that it reads whole.
pub fn copy_atomic(src: &Path, dest: &Path) -> Result<()> {
    let bytes = fs::read(src).at(src, "read")?;
    read_bytes(&bytes, src)?;
    if let Some(dir) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(dir).at(dir, "create")?;
    }
    write_file_atomic(dest, &bytes).at(dest, "write")
}

/// Whether `ckpt` is an Ember checkpoint a run can continue from: the format, the
/// settings (the run config, or for a run built in code its training spec) and the
/// progress are all there.
fn resumable(ckpt: &Checkpoint) -> Result<()> {
    let format = ckpt.meta("format")?;
    if format != FORMAT {
        return Err(Error::corrupt(&ckpt.path, format!("format {format:?} is not {FORMAT:?}")));
    }
    if !ckpt.metadata.contains_key("spec") {
        ckpt.meta("config")?;
    }
    ckpt.meta("progress")?;
    Ok(())
}

/// The checkpoint a run continues from: `path` itself when it is a file; in a run
/// directory the newest epoch checkpoint that reads whole and is an Ember checkpoint,
/// with a note for each newer one skipped and why (a crash, a disk error, or weights
/// exported over it).
pub fn open_for_resume(path: &Path) -> Result<(Checkpoint, Vec<String>)> {
    if path.is_file() {
        let ckpt = read(path)?;
        resumable(&ckpt)?;
        return Ok((ckpt, Vec::new()));
    }
    resolve(path)?; // the error for a directory without checkpoints
    let dir = if path.join("checkpoints").is_dir() { path.join("checkpoints") } else { path.to_path_buf() };
    let mut problems = Vec::new();
    for (_, file) in epoch_files(&dir)?.into_iter().rev() {
        match read(&file).and_then(|c| resumable(&c).map(|()| c)) {
            Ok(ckpt) => {
                let notes =
                    problems.iter().map(|p| format!("warning: skipped {p}; resuming from {}", ckpt.path.display()));
                let notes = notes.collect();
                return Ok((ckpt, notes));
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    Err(Error::input(format!("{}: no checkpoint there can be resumed:\n  {}", path.display(), problems.join("\n  "))))
}

/// [`read`] on the bytes of a file; `path` names it in errors.
pub fn read_bytes(bytes: &[u8], path: &Path) -> Result<Checkpoint> {
    let fail = |e: &dyn std::fmt::Display| Error::corrupt(path, format!("not a readable safetensors file: {e}"));
    if bytes.len() < 8 {
        return Err(fail(&format!("{} bytes, shorter than the 8-byte header length (truncated?)", bytes.len())));
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    if n > bytes.len() as u64 - 8 {
        return Err(fail(&format!(
            "the header claims {n} bytes but the file has {} after the length (truncated or corrupted)",
            bytes.len() - 8
        )));
    }
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| fail(&e))?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    if let Some(stored) = metadata.get(CHECKSUM) {
        let computed = data_checksum(bytes).unwrap_or_default();
        if *stored != computed {
            return Err(Error::corrupt(
                path,
                format!(
                    "corrupted: the tensor data's CRC-32 is {computed}, the checkpoint recorded {stored}; use an earlier checkpoint"
                ),
            ));
        }
    }
    let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
        .with_context(|| format!("{}: not a readable safetensors file", path.display()))?;
    Ok(Checkpoint { path: path.to_path_buf(), tensors, metadata })
}

/// The checkpoint to resume from: `path` itself, or in a run directory the newest
/// `checkpoints/epoch-*.safetensors`.
pub fn resolve(path: &Path) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    let dir = if path.join("checkpoints").is_dir() { path.join("checkpoints") } else { path.to_path_buf() };
    let latest = epoch_files(&dir)?.into_iter().max_by_key(|(e, _)| *e).map(|(_, p)| p);
    latest.ok_or_else(|| {
        Error::input(format!(
            "{}: no checkpoint found (expected a checkpoint file, or a run directory with checkpoints/epoch-NNNN.safetensors)",
            path.display()
        ))
    })
}

/// Removes the temporaries (`.NAME.tmp-PID`) that writes cut short by a crash left in
/// `dir`; returns how many. Call it only when no other process writes to `dir`.
pub fn remove_stale_temporaries(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.starts_with('.') && name.contains(".tmp-")
        })
        .filter(|e| fs::remove_file(e.path()).is_ok())
        .count()
}

/// `(epoch, path)` of every `epoch-NNNN.safetensors` in `dir`.
pub fn epoch_files(dir: &Path) -> Result<Vec<(usize, PathBuf)>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(_) => return Ok(Vec::new()),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(n) = name.strip_prefix("epoch-").and_then(|n| n.strip_suffix(".safetensors")) {
            if let Ok(n) = n.parse::<usize>() {
                out.push((n, entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}
