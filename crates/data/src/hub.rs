//! Fashion-MNIST and MNIST from the Hugging Face cache and hub: the parquet files of the
//! datasets' `refs/convert/parquet` revision, the files candle-datasets reads (one row per
//! example: an `image` struct holding PNG bytes and an integer `label`).
//!
//! The cache is read without touching the network (`local_files_only`). The hub is asked
//! only when the cache has no good copy and `HF_HUB_OFFLINE` is not set, through a client
//! with connect and read timeouts and one retry. All its deadlines come from
//! `EMBER_HUB_TIMEOUT` (t, default 5 s): the hub must start a download within t, then
//! deliver at least [`MIN_BYTES`] (64 KiB, or the rest of the file) in every 2·t (10 s by
//! default, about 6 KiB/s), so a silent or trickling hub is given up on within seconds
//! instead of hanging; a request is cut after 1440·t (2 hours by default) whatever its rate.
//!
//! hf-hub writes a download to `blobs/ETAG.incomplete` and renames it into place without
//! checking it, so a failed GET (an error page, a body cut short) can land in the cache.
//! Every file is therefore checked ([`check`]): a download against the size the hub
//! announced, and any file whose blob is named by a SHA-256 (the hub's etag of an LFS file)
//! against that hash. A bad download is deleted ([`discard`]); a bad cached file is passed
//! over, named, and downloaded again when the hub is reachable.

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use ember_core::{Error, IoContext, Result};
use hf_hub::progress::{DownloadEvent, ProgressEvent, ProgressHandler};
use hf_hub::{HFClient, HFError, HFRepositorySync, RepoTypeDataset};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;

use crate::mnist::Which;

/// `EMBER_HUB_TIMEOUT` when unset, in seconds.
pub const DEFAULT_TIMEOUT_S: f64 = 5.0;
/// The most `EMBER_HUB_TIMEOUT` accepts, in seconds (a day); it must be more than 0.
pub const MAX_TIMEOUT_S: f64 = 86_400.0;
/// What a download must deliver in every 2·t (or the rest of the file, if less).
pub const MIN_BYTES: u64 = 64 << 10;

/// Why the cache and hub are skipped when the environment names no cache folder.
pub const NO_CACHE: &str = "no cache folder: none of HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME, HOME is set (or absolute) and the system names no home folder; set HF_HUB_CACHE";

/// Where a dataset lives on the hub: the repository, the revision holding its parquet
/// conversion, and the train and test files in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HubFiles {
    pub repo: &'static str,
    pub revision: &'static str,
    pub train: &'static str,
    pub test: &'static str,
}

/// The hub files of `which`.
pub fn files(which: Which) -> HubFiles {
    match which {
        Which::FashionMnist => HubFiles {
            repo: "zalando-datasets/fashion_mnist",
            revision: "refs/convert/parquet",
            train: "fashion_mnist/train/0000.parquet",
            test: "fashion_mnist/test/0000.parquet",
        },
        Which::Mnist => HubFiles {
            repo: "ylecun/mnist",
            revision: "refs/convert/parquet",
            train: "mnist/train/0000.parquet",
            test: "mnist/test/0000.parquet",
        },
    }
}

/// How to reach the cache and the hub. [`Hub::from_env`] reads what `huggingface_hub`
/// reads: `HF_HUB_CACHE` / `HF_HOME` for the cache, `HF_ENDPOINT` for the hub, and
/// `HF_HUB_OFFLINE` to keep off the network; and `EMBER_HUB_TIMEOUT`.
#[derive(Clone, Debug)]
pub struct Hub {
    /// The hub cache directory (`.../huggingface/hub`); `None` when the environment names
    /// none ([`NO_CACHE`]), and then neither the cache nor the hub is consulted.
    pub cache_dir: Option<PathBuf>,
    /// The hub's address.
    pub endpoint: String,
    /// Never download; look in the cache only.
    pub offline: bool,
    /// t: how long the hub may take to start a download; the stall and total deadlines
    /// are multiples of it (see the module docs).
    pub timeout: Duration,
    /// Draw a progress bar while downloading (only when stderr is a terminal).
    pub progress: bool,
}

impl Hub {
    /// The hub as the process's environment and home folder configure it
    /// ([`Hub::from_vars`]).
    pub fn from_env() -> Result<Hub> {
        // Deprecated before Rust 1.86 for a Windows quirk; on Unix it asks the password
        // database when HOME is unset, which is what is wanted here.
        #[allow(deprecated)]
        let home = std::env::home_dir();
        Hub::from_vars(|name| std::env::var(name).ok(), home)
    }

    /// The hub as `var` (an environment lookup; empty counts as unset) configures it, with
    /// `home` (the system's home folder) standing in for an unset `HOME`. The cache is
    /// `HF_HUB_CACHE`, else `HF_HOME/hub`, else `XDG_CACHE_HOME/huggingface/hub`, else
    /// `HOME/.cache/huggingface/hub`; a relative `XDG_CACHE_HOME` or home is ignored, so
    /// the cache is never a folder relative to where Ember runs, and with none of them
    /// there is no cache. A bad `EMBER_HUB_TIMEOUT` or `HF_HUB_OFFLINE` is an error
    /// naming the variable, its value and what it accepts.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>, home: Option<PathBuf>) -> Result<Hub> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let absolute = |p: PathBuf| Some(p).filter(|p| p.is_absolute());
        let cache_dir = var("HF_HUB_CACHE").map(PathBuf::from).or_else(|| {
            let home = var("HOME").map(PathBuf::from).and_then(absolute).or_else(|| home.and_then(absolute));
            let hf_home = var("HF_HOME").map(PathBuf::from).or_else(|| {
                let base = var("XDG_CACHE_HOME").map(PathBuf::from).and_then(absolute);
                Some(base.or_else(|| Some(home?.join(".cache")))?.join("huggingface"))
            });
            Some(hf_home?.join("hub"))
        });
        // Worded as ember_core::env words the variables it checks.
        let invalid = |name: &str, value: &str, rule: &str| {
            Error::input(format!("{name}={value:?} is invalid: must be {rule}; set a valid value or unset it"))
        };
        let offline = match var("HF_HUB_OFFLINE") {
            None => false,
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => {
                    let rule = "1, true, yes or on (stay off the network) or 0, false, no or off (use the hub)";
                    return Err(invalid("HF_HUB_OFFLINE", &v, rule));
                }
            },
        };
        let timeout = match var("EMBER_HUB_TIMEOUT") {
            None => DEFAULT_TIMEOUT_S,
            Some(v) => match v.trim().parse::<f64>() {
                Ok(s) if s > 0.0 && s <= MAX_TIMEOUT_S => s,
                _ => {
                    let rule = format!("a number of seconds > 0 and <= {MAX_TIMEOUT_S} (unset: {DEFAULT_TIMEOUT_S})");
                    return Err(invalid("EMBER_HUB_TIMEOUT", &v, &rule));
                }
            },
        };
        Ok(Hub {
            cache_dir,
            endpoint: var("HF_ENDPOINT").unwrap_or_else(|| "https://huggingface.co".into()),
            offline,
            timeout: Duration::from_secs_f64(timeout),
            progress: true,
        })
    }

    /// The cache folder, or why there is none.
    fn cache(&self) -> std::result::Result<&Path, String> {
        self.cache_dir.as_deref().ok_or_else(|| NO_CACHE.to_string())
    }

    fn repo(&self, repo: &str) -> std::result::Result<HFRepositorySync<RepoTypeDataset>, String> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("ember/", env!("CARGO_PKG_VERSION"), "; hf-hub/1"))
            .connect_timeout(self.timeout.min(Duration::from_secs(5)))
            // Longer than the stall window, so that a stall is reported by the watch in
            // `download_one`; these two also end a transfer it gave up on.
            .read_timeout(self.timeout * 4)
            .timeout(self.timeout * 1440)
            .build()
            .map_err(|e| format!("cannot set up an HTTP client: {e}"))?;
        let client = HFClient::builder()
            .client(http)
            .endpoint(self.endpoint.clone())
            .cache_dir(self.cache()?.to_path_buf())
            .retry_max_attempts(1)
            .retry_base_delay(Duration::from_millis(100))
            .build_sync()
            .map_err(|e| format!("cannot set up the hub client: {e}"))?;
        let (owner, name) = hf_hub::split_id(repo);
        Ok(client.dataset(owner, name))
    }

    /// The train and test parquet files of `which` if both are in the cache, unchecked
    /// (the caller checks them: [`check`], [`read_parquet`]).
    pub fn cached(&self, which: Which) -> std::result::Result<(PathBuf, PathBuf), String> {
        let f = files(which);
        Ok((self.cached_file(f.repo, f.revision, f.train)?, self.cached_file(f.repo, f.revision, f.test)?))
    }

    /// Downloads the train and test parquet files of `which` into the cache, afresh even
    /// where the cache holds a copy (it is asked only when that copy is missing or bad),
    /// and checks each ([`check`]); a bad one is deleted and is an error naming it.
    pub fn download(&self, which: Which) -> std::result::Result<(PathBuf, PathBuf), String> {
        let f = files(which);
        let train = self.download_one(f.repo, f.revision, f.train, None)?;
        let test = self.download_one(f.repo, f.revision, f.test, None)?;
        Ok((train, test))
    }

    /// The parquet files of one split of a dataset's parquet conversion ([`Split`]), in
    /// shard order, each checked ([`check`]). Unless offline, the hub lists the split's
    /// files (`{config}/{split}/` or, for a dataset converted only in part,
    /// `{config}/partial-{split}/`); each is read from the cache when a good copy is there
    /// and downloaded otherwise. Offline, or when the hub cannot be asked, the cache's
    /// snapshot of the revision is listed instead, with a notice when the hub was not
    /// reached (the cache may hold only some of the shards). The error lists every place
    /// tried and why it failed.
    pub fn split(&self, s: &Split) -> std::result::Result<Found, String> {
        let mut tried = Vec::new();
        if !self.offline {
            match self.list_split(s) {
                Ok((dir, listed)) => {
                    let mut files = Vec::with_capacity(listed.len());
                    for (name, size) in listed {
                        let cached = self.cached_file(&s.repo, &s.revision, &name).ok();
                        let file = match cached.filter(|p| check(p, Some(size)).is_ok()) {
                            Some(p) => p,
                            None => self
                                .download_one(&s.repo, &s.revision, &name, Some(size))
                                .map_err(|e| format!("{} ({name}): {e}", s.describe()))?,
                        };
                        files.push(file);
                    }
                    let notice = dir.contains("/partial-").then(|| {
                        format!(
                            "note: {}: the hub converted only the first part of this split to parquet ({dir}); training uses that part",
                            s.describe()
                        )
                    });
                    return Ok(Found { files, notice });
                }
                Err(e) => tried.push(format!("the hub at {}: {e}", self.endpoint)),
            }
        }
        match self.cached_split(s) {
            Ok(files) => {
                let notice = (!tried.is_empty()).then(|| {
                    format!(
                        "note: {}: the hub could not be asked for its file list ({}); using the {} parquet file{} of the cache, which may be only part of the split",
                        s.describe(),
                        tried.join("; "),
                        files.len(),
                        if files.len() == 1 { "" } else { "s" }
                    )
                });
                Ok(Found { files, notice })
            }
            Err(e) => {
                tried.push(format!("the cache: {e}"));
                if self.offline {
                    tried.push("the hub: not asked (HF_HUB_OFFLINE is set)".into());
                }
                Err(format!("{}: not found: {}", s.describe(), tried.join("; ")))
            }
        }
    }

    /// The split's folder in the repository and its parquet files with their sizes, as
    /// the hub lists them: `{config}/{split}`, else `{config}/partial-{split}`.
    fn list_split(&self, s: &Split) -> std::result::Result<(String, Vec<(String, u64)>), String> {
        let repo = self.repo(&s.repo)?;
        let mut first_error = None;
        for dir in [format!("{}/{}", s.config, s.split), format!("{}/partial-{}", s.config, s.split)] {
            let entries = repo.list_tree().revision(s.revision.clone()).path_in_repo(dir.clone()).send();
            match entries {
                Ok(entries) => {
                    let mut files: Vec<(String, u64)> = entries
                        .into_iter()
                        .filter_map(|e| match e {
                            hf_hub::repository::RepoTreeEntry::File { path, size, .. }
                                if path.ends_with(".parquet") =>
                            {
                                Some((path, size))
                            }
                            _ => None,
                        })
                        .collect();
                    files.sort();
                    if files.is_empty() {
                        return Err(format!("{dir} holds no parquet files"));
                    }
                    return Ok((dir, files));
                }
                Err(e) => {
                    first_error.get_or_insert_with(|| describe(&e));
                }
            }
        }
        Err(first_error.unwrap_or_default())
    }

    /// A file of a repository's revision from the cache, if it is there (unchecked).
    fn cached_file(&self, repo: &str, revision: &str, file: &str) -> std::result::Result<PathBuf, String> {
        let repo = self.repo(repo)?;
        match repo.download_file().filename(file).revision(revision).local_files_only(true).send() {
            Ok(path) => Ok(path),
            Err(HFError::LocalEntryNotFound { .. }) => Err("not cached".to_string()),
            Err(e) => Err(describe(&e)),
        }
    }

    /// The split's parquet files in the cache's snapshot of the revision, sorted; a
    /// file that fails [`check`] is an error naming it.
    fn cached_split(&self, s: &Split) -> std::result::Result<Vec<PathBuf>, String> {
        let root = self.cache()?.join(format!("datasets--{}", s.repo.replace('/', "--")));
        let commit = if s.revision.len() == 40 && s.revision.bytes().all(|b| b.is_ascii_hexdigit()) {
            s.revision.clone()
        } else {
            let refs = root.join("refs").join(&s.revision);
            match std::fs::read_to_string(&refs) {
                Ok(c) => c.trim().to_string(),
                Err(_) => return Err(format!("no revision {:?} of {} in {}", s.revision, s.repo, root.display())),
            }
        };
        let snapshot = root.join("snapshots").join(&commit);
        for dir in [format!("{}/{}", s.config, s.split), format!("{}/partial-{}", s.config, s.split)] {
            let Ok(entries) = std::fs::read_dir(snapshot.join(&dir)) else { continue };
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
                .collect();
            files.sort();
            if files.is_empty() {
                continue;
            }
            for f in &files {
                check(f, None).map_err(|why| format!("{}: {why}", f.display()))?;
            }
            return Ok(files);
        }
        Err(format!("no parquet files for config {:?}, split {:?} in {}", s.config, s.split, snapshot.display()))
    }

    /// Downloads one file on a worker thread, watched from this one: the hub must start
    /// sending it within t and then keep up [`MIN_BYTES`] per 2·t. A transfer given up on
    /// is left to the client's read and total timeouts to end; hf-hub renames nothing
    /// into place from a transfer that did not finish.
    /// `listed`, the size the hub's listing gave, is checked when the download announces
    /// none.
    fn download_one(
        &self,
        repo: &str,
        revision: &str,
        file: &str,
        listed: Option<u64>,
    ) -> std::result::Result<PathBuf, String> {
        enum Msg {
            /// The hub answered the metadata request; the file's size (0: not given).
            Started(u64),
            /// Bytes received so far.
            Bytes(u64),
            Done(std::result::Result<PathBuf, String>),
        }
        let repo = self.repo(repo)?;
        let (file, revision) = (file.to_string(), revision.to_string());
        let (tx, rx) = mpsc::channel();
        let bar = Arc::new(Mutex::new(None));
        let abandoned = Arc::new(AtomicBool::new(false));
        let progress = Bar {
            tx: Mutex::new(tx.clone()),
            bar: bar.clone(),
            abandoned: abandoned.clone(),
            name: file.clone(),
            draw: self.progress,
        };
        std::thread::spawn(move || {
            let send = repo.download_file().filename(file).revision(revision).force_download(true);
            let result = send.progress(progress).send();
            let _ = tx.send(Msg::Done(result.map_err(|e| describe(&e))));
        });
        struct Bar {
            tx: Mutex<mpsc::Sender<Msg>>,
            bar: Arc<Mutex<Option<indicatif::ProgressBar>>>,
            abandoned: Arc<AtomicBool>,
            name: String,
            draw: bool,
        }
        impl ProgressHandler for Bar {
            fn on_progress(&self, event: &ProgressEvent) {
                let ProgressEvent::Download(event) = event else { return };
                if self.abandoned.load(Ordering::Relaxed) {
                    return;
                }
                let send = |msg| {
                    let _ = self.tx.lock().unwrap_or_else(|e| e.into_inner()).send(msg);
                };
                let mut bar = self.bar.lock().unwrap_or_else(|e| e.into_inner());
                match event {
                    DownloadEvent::Start { total_bytes, .. } => {
                        send(Msg::Started(*total_bytes));
                        if self.draw {
                            let b = indicatif::ProgressBar::new(*total_bytes);
                            b.set_style(
                                indicatif::ProgressStyle::with_template(
                                    "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                                )
                                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                            );
                            b.set_message(format!("downloading {}", self.name));
                            *bar = Some(b);
                        }
                    }
                    DownloadEvent::Progress { files } => {
                        let done: u64 = files.iter().map(|f| f.bytes_completed).sum();
                        send(Msg::Bytes(done));
                        if let Some(b) = bar.as_ref() {
                            b.set_position(done.max(b.position()));
                        }
                    }
                    DownloadEvent::AggregateProgress { bytes_completed, .. } => {
                        send(Msg::Bytes(*bytes_completed));
                        if let Some(b) = bar.as_ref() {
                            b.set_position(*bytes_completed);
                        }
                    }
                    DownloadEvent::Complete => {
                        if let Some(b) = bar.take() {
                            b.finish_and_clear();
                        }
                    }
                }
            }
        }
        let give_up = |why: String| {
            abandoned.store(true, Ordering::Relaxed);
            if let Some(b) = bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
                b.finish_and_clear();
            }
            Err(why)
        };
        let (t, window) = (self.timeout.as_secs_f64(), self.timeout * 2);
        let answer_by = Instant::now() + self.timeout;
        // Once started: the size announced, the bytes so far, and the start of the
        // current stall window with the bytes at that point.
        let mut size = None;
        let mut bytes = 0u64;
        let mut mark = (Instant::now(), 0u64);
        loop {
            let until = if size.is_some() { mark.0 + window } else { answer_by };
            match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(Msg::Started(n)) => (size, mark) = (Some(n), (Instant::now(), 0)),
                Ok(Msg::Bytes(n)) => bytes = bytes.max(n),
                Ok(Msg::Done(result)) => {
                    let path = result?;
                    return match check(&path, size.filter(|n| *n > 0).or(listed)) {
                        Ok(()) => Ok(path),
                        Err(why) => {
                            discard(&path);
                            Err(format!("the download was bad and is deleted: {}: {why}", path.display()))
                        }
                    };
                }
                Err(mpsc::RecvTimeoutError::Timeout) if size.is_none() => {
                    return give_up(format!("no answer within {t} s (set EMBER_HUB_TIMEOUT to wait longer)"));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err("the download stopped without a result".into()),
            }
            let Some(size) = size else { continue };
            if Instant::now() >= mark.0 + window {
                // The rest of the file is enough when less than MIN_BYTES remain.
                let need = match size {
                    0 => MIN_BYTES,
                    n => MIN_BYTES.min(n.saturating_sub(mark.1)),
                };
                let got = bytes.saturating_sub(mark.1);
                if got < need {
                    return give_up(format!(
                        "the download stalled: {got} bytes in {} s, under the {} KiB the hub must send every {} s ({bytes} of {size} bytes received; set EMBER_HUB_TIMEOUT higher to allow a slower transfer)",
                        2.0 * t,
                        MIN_BYTES >> 10,
                        2.0 * t,
                    ));
                }
                mark = (Instant::now(), bytes);
            }
        }
    }
}

/// One split of a Hugging Face dataset's parquet conversion (the dataset viewer's copy of
/// any dataset as parquet files, at the revision `refs/convert/parquet`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    /// The dataset repository, `owner/name`.
    pub repo: String,
    /// The revision holding the parquet files (`refs/convert/parquet`).
    pub revision: String,
    /// The dataset's configuration (subset), `default` for most datasets.
    pub config: String,
    /// The split: `train`, `test`, `validation`, ...
    pub split: String,
}

impl Split {
    /// `owner/name (config c, split s)`, for messages.
    pub fn describe(&self) -> String {
        format!("{} (config {:?}, split {:?})", self.repo, self.config, self.split)
    }
}

/// The files [`Hub::split`] found, and a notice about them.
#[derive(Clone, Debug)]
pub struct Found {
    pub files: Vec<PathBuf>,
    pub notice: Option<String>,
}

/// Checks a parquet file from the cache before it is trusted: it is not empty, it is
/// `size` bytes when the hub announced a size, and when its blob is named by a SHA-256
/// (the hub's etag of an LFS file, which hf-hub names the blob after) its content has that
/// hash. The error says what is wrong; the caller names the file. Hashing costs a read of
/// the file (a fraction of a second for Fashion-MNIST's 30 MB).
pub fn check(path: &Path, size: Option<u64>) -> std::result::Result<(), String> {
    let len = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?.len();
    if len == 0 {
        return Err("empty (0 bytes)".into());
    }
    if let Some(size) = size.filter(|&n| n != len) {
        return Err(format!("{len} bytes where the hub announced {size}"));
    }
    let Ok(blob) = std::fs::canonicalize(path) else { return Ok(()) };
    let Some(want) = blob.file_name().and_then(|n| n.to_str()).filter(|n| n.len() == 64) else { return Ok(()) };
    if !want.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(());
    }
    let got = sha256(&blob).map_err(|e| format!("cannot read: {e}"))?;
    if !got.eq_ignore_ascii_case(want) {
        return Err(format!("its SHA-256 is {got} where the hub's is {want} (corrupt or cut short)"));
    }
    Ok(())
}

/// Deletes a file Ember downloaded into the cache and found bad: the snapshot's entry and
/// the blob it points to, so that no later run trusts it.
pub fn discard(path: &Path) {
    if let Ok(blob) = std::fs::canonicalize(path) {
        let _ = std::fs::remove_file(blob);
    }
    let _ = std::fs::remove_file(path);
}

/// The SHA-256 of a file's content, in lowercase hex.
fn sha256(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    let mut file = std::fs::File::open(path)?;
    let mut hash = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hash.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// An error and its root cause in one line: a failed request says why it failed (the
/// name did not resolve, the connection was refused) instead of repeating its URL.
fn describe(e: &HFError) -> String {
    let mut causes = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        causes.push(s.to_string());
        source = s.source();
    }
    match causes.len() {
        1 => causes.remove(0),
        _ => format!("request failed: {}", causes.last().expect("a cause")),
    }
}

/// Reads one split of an MNIST-like parquet file: images as a `[N, 28, 28]` u8 tensor
/// (PNG-decoded, 8-bit grayscale) and labels as `[N]` u8. Any deviation (a missing
/// column, an image that is not a 28x28 grayscale PNG, a label outside 0..=255) is an
/// error naming the file and the row.
pub fn read_parquet(path: &Path) -> Result<(Tensor, Tensor)> {
    let fail = |msg: String| Error::corrupt(path, msg);
    let file = std::fs::File::open(path).at(path, "read")?;
    let reader = SerializedFileReader::new(file).map_err(|e| fail(format!("not a readable parquet file: {e}")))?;
    let rows = reader.metadata().file_metadata().num_rows().max(0) as usize;
    let mut images: Vec<u8> = Vec::with_capacity(rows * 784);
    let mut labels: Vec<u8> = Vec::with_capacity(rows);
    let iter = reader.get_row_iter(None).map_err(|e| fail(format!("cannot read rows: {e}")))?;
    for (i, row) in iter.enumerate() {
        let row = row.map_err(|e| fail(format!("row {i}: {e}")))?;
        let (mut image, mut label) = (None, None);
        for (name, field) in row.get_column_iter() {
            match (name.as_str(), field) {
                ("image", Field::Group(group)) => {
                    for (inner, value) in group.get_column_iter() {
                        if let (true, Field::Bytes(bytes)) = (inner == "bytes", value) {
                            image = Some(bytes.data().to_vec());
                        }
                    }
                }
                ("image", Field::Bytes(bytes)) => image = Some(bytes.data().to_vec()),
                ("label", Field::Long(v)) => label = Some(*v),
                ("label", Field::Int(v)) => label = Some(*v as i64),
                ("label", Field::Short(v)) => label = Some(*v as i64),
                ("label", Field::Byte(v)) => label = Some(*v as i64),
                ("label", Field::UByte(v)) => label = Some(*v as i64),
                _ => {}
            }
        }
        let image = image.ok_or_else(|| fail(format!("row {i}: no `image` column with PNG bytes")))?;
        let label = label.ok_or_else(|| fail(format!("row {i}: no integer `label` column")))?;
        let label = u8::try_from(label).map_err(|_| fail(format!("row {i}: label {label} is outside 0..=255")))?;
        decode_png(&image, &mut images).map_err(|e| fail(format!("row {i}: {e}")))?;
        labels.push(label);
    }
    if labels.is_empty() {
        return Err(fail("holds no rows".into()));
    }
    let n = labels.len();
    let x = Tensor::from_vec(images, (n, 28, 28), &Device::Cpu)?;
    let y = Tensor::from_vec(labels, n, &Device::Cpu)?;
    Ok((x, y))
}

/// Decodes a 28x28 grayscale PNG (any bit depth; gray+alpha keeps the gray) onto `out`.
fn decode_png(bytes: &[u8], out: &mut Vec<u8>) -> std::result::Result<(), String> {
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| format!("not a PNG image: {e}"))?;
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).map_err(|e| format!("corrupt PNG image: {e}"))?;
    if (info.width, info.height) != (28, 28) {
        return Err(format!("image is {}x{}, expected 28x28", info.width, info.height));
    }
    let pixels = &buf[..info.buffer_size()];
    match info.color_type {
        png::ColorType::Grayscale => out.extend_from_slice(pixels),
        png::ColorType::GrayscaleAlpha => out.extend(pixels.chunks_exact(2).map(|p| p[0])),
        png::ColorType::Rgb => return Err("image is RGB, expected grayscale".into()),
        png::ColorType::Rgba => return Err("image is RGBA, expected grayscale".into()),
        png::ColorType::Indexed => return Err("image is a palette image, expected grayscale".into()),
    }
    Ok(())
}
