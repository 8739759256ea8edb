//! Checkpoints: one safetensors file holding the model weights (PyTorch names, under
//! `model/`), the optimizer and scheduler state, and in its metadata the run's config
//! (JSON), the epoch and step counters and the metric history. Written atomically: a
//! temporary file in the same directory, fsync, rename, fsync of the directory; a crash
//! at any moment leaves the previous checkpoint intact.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use ember_core::{Error, Result};

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
        self.metadata.get(key).map(String::as_str).ok_or_else(|| {
            Error::input(format!("{}: not an Ember checkpoint (no '{key}' in its metadata)", self.path.display()))
        })
    }

    /// The tensors whose names start with `prefix`, with the prefix removed.
    pub fn section(&self, prefix: &str) -> HashMap<String, Tensor> {
        self.tensors.iter().filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone()))).collect()
    }
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
    let bytes = safetensors::serialize(data.iter().map(|(k, t)| (k.as_str(), t)), Some(metadata))
        .map_err(|e| fail("serialize", &e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "checkpoint".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        File::open(dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(fail("write", &e));
    }
    Ok(())
}

/// Reads a checkpoint (or any safetensors file) with its metadata. A truncated or
/// corrupted file is an error naming the file, never a panic.
pub fn read(path: &Path) -> Result<Checkpoint> {
    let bytes = fs::read(path).map_err(|e| Error::input(format!("{}: cannot read: {e}", path.display())))?;
    read_bytes(&bytes, path)
}

/// [`read`] on the bytes of a file; `path` names it in errors.
pub fn read_bytes(bytes: &[u8], path: &Path) -> Result<Checkpoint> {
    let fail =
        |e: &dyn std::fmt::Display| Error::input(format!("{}: not a readable safetensors file: {e}", path.display()));
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| fail(&e))?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu).map_err(|e| fail(&Error::from(e)))?;
    Ok(Checkpoint { path: path.to_path_buf(), tensors, metadata })
}

/// Only the metadata of a safetensors file (its header), without reading the tensors.
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>> {
    use std::io::Read;
    let fail =
        |e: &dyn std::fmt::Display| Error::input(format!("{}: not a readable safetensors file: {e}", path.display()));
    let mut f = File::open(path).map_err(|e| Error::input(format!("{}: cannot read: {e}", path.display())))?;
    let size = f.metadata().map_err(|e| fail(&e))?.len();
    let mut n = [0u8; 8];
    f.read_exact(&mut n).map_err(|e| fail(&e))?;
    let n = u64::from_le_bytes(n);
    if n > size.saturating_sub(8) || n > 100 << 20 {
        return Err(fail(&format!("the header claims {n} bytes but the file has {size}")));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(|e| fail(&e))?;
    let json: serde_json::Value = serde_json::from_slice(&header).map_err(|e| fail(&e))?;
    Ok(json
        .get("__metadata__")
        .and_then(|m| m.as_object())
        .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect())
        .unwrap_or_default())
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
