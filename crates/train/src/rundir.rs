//! Run directories: one run per directory, one process per run.
//!
//! A run directory holds a run once it has checkpoints or a `metrics.csv`. A new run is
//! refused in such a directory unless the caller asks to overwrite it (then the old run's
//! files, and only those, are removed first); `ember train` without `--out` picks the
//! next free `runs/NAME-2`, `runs/NAME-3`, ... instead.
//!
//! While a process trains into a directory it holds an advisory lock on `DIR/.ember.lock`
//! (`flock`), with its process id written inside. A second process is refused, naming the
//! holder. The operating system releases the lock when the holder exits however it exits
//! (SIGKILL included), so a stale lock is simply taken over; the lock file stays, and a
//! process id left inside it names the process that ended without cleaning up.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use ember_core::{Error, IoContext, Result};

use crate::checkpoint;

/// The lock file's name inside a run directory.
pub const LOCK_FILE: &str = ".ember.lock";

/// The files a run writes at the top of its directory (besides `checkpoints/`).
const RUN_FILES: [&str; 6] = ["metrics.csv", "summary.json", "loss.png", "loss.svg", "accuracy.png", "accuracy.svg"];

/// What to do with a directory that already holds a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Existing {
    /// Refuse to start (the default).
    #[default]
    Refuse,
    /// Remove the old run's files, then start.
    Overwrite,
}

/// The exclusive right to write into a run directory; released when dropped (or when
/// the process dies).
#[derive(Debug)]
pub struct RunLock {
    file: File,
    dir: PathBuf,
    /// The process id found in the lock file: a holder that died without releasing it.
    pub taken_over_from: Option<u32>,
}

impl RunLock {
    /// The run directory this lock holds.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Clear the process id (so the next holder knows this one ended cleanly), then let
        // the lock go. The file stays: removing it would let two processes lock two files.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

/// Creates `dir` if needed and locks it for this process.
pub fn lock(dir: &Path) -> Result<RunLock> {
    fs::create_dir_all(dir).at(dir, "create the run directory")?;
    let path = dir.join(LOCK_FILE);
    let fail = |e: std::io::Error| Error::io(&path, "lock the run directory", e);
    let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(fail)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let holder = holder(&mut file).map_or_else(|| "another process".to_string(), |p| format!("process {p}"));
            return Err(Error::input(format!(
                "{}: in use by {holder}, which is training into it (lock file {}); wait for it to finish or stop it, or choose another --out",
                dir.display(),
                path.display()
            )));
        }
        // A file system without locks (some network mounts): go on unlocked rather than
        // refuse every run there.
        Err(fs::TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {}
        Err(fs::TryLockError::Error(e)) => return Err(fail(e)),
    }
    let taken_over_from = holder(&mut file).filter(|&p| p != std::process::id());
    let write = |file: &mut File| -> std::io::Result<()> {
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        file.sync_all()
    };
    write(&mut file).map_err(fail)?;
    Ok(RunLock { file, dir: dir.to_path_buf(), taken_over_from })
}

/// The process id written in a lock file, if any.
fn holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// Whether another process holds `dir`'s lock right now.
pub fn is_locked(dir: &Path) -> bool {
    let Ok(file) = File::open(dir.join(LOCK_FILE)) else { return false };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(fs::TryLockError::WouldBlock) => true,
        Err(_) => false,
    }
}

/// What run `dir` holds, in words (`checkpoints up to epoch 6`), or `None` when it holds
/// none (it does not exist, is empty, or holds only other files).
pub fn existing_run(dir: &Path) -> Option<String> {
    let ckpts = dir.join("checkpoints");
    let epochs = checkpoint::epoch_files(&ckpts).unwrap_or_default();
    if let Some((e, _)) = epochs.last() {
        return Some(format!("checkpoints up to epoch {e}"));
    }
    if ckpts.join("best.safetensors").exists() {
        return Some("a best.safetensors checkpoint".into());
    }
    dir.join("metrics.csv").exists().then(|| "a metrics.csv".into())
}

/// Checks that a new run may start in the locked directory: refuses one that holds a
/// run, or (with [`Existing::Overwrite`]) removes the old run's files.
pub fn prepare_new(lock: &RunLock, existing: Existing) -> Result<()> {
    let dir = lock.dir();
    let Some(what) = existing_run(dir) else { return Ok(()) };
    match existing {
        Existing::Refuse => Err(Error::input(format!(
            "{}: already holds a run ({what}); a new run would overwrite it. To continue that run: ember train --resume {}; to start this one elsewhere: --out NEW_DIR; to replace the old run: --overwrite",
            dir.display(),
            dir.display()
        ))),
        Existing::Overwrite => clear(dir),
    }
}

/// Removes a run's files from `dir`: the checkpoints (and their temporaries), the metrics,
/// the summary and the plots. Other files are left alone.
fn clear(dir: &Path) -> Result<()> {
    let remove = |p: &Path| match fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(p, "remove the old run's file", e)),
        _ => Ok(()),
    };
    let ckpts = dir.join("checkpoints");
    for (_, p) in checkpoint::epoch_files(&ckpts)? {
        remove(&p)?;
    }
    remove(&ckpts.join("best.safetensors"))?;
    checkpoint::remove_stale_temporaries(&ckpts);
    let _ = fs::remove_dir(&ckpts); // only if nothing else is left in it
    for f in RUN_FILES {
        remove(&dir.join(f))?;
    }
    // One figure per metric: metric-LABEL.png and .svg.
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with("metric-") && (name.ends_with(".png") || name.ends_with(".svg")) {
                remove(&e.path())?;
            }
        }
    }
    Ok(())
}

/// The first of `base`, `base-2`, `base-3`, ... that holds no run and is not locked.
pub fn next_free(base: &Path) -> PathBuf {
    let name = base.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "run".into());
    (1..)
        .map(|i| if i == 1 { base.to_path_buf() } else { base.with_file_name(format!("{name}-{i}")) })
        .find(|d| existing_run(d).is_none() && !is_locked(d))
        .expect("some suffix is free")
}
