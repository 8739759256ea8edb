//! Fashion-MNIST and MNIST from the Hugging Face cache and hub: the parquet files of the
//! datasets' `refs/convert/parquet` revision, the files candle-datasets reads (one row per
//! example: an `image` struct holding PNG bytes and an integer `label`).
//!
//! The cache is read without touching the network (`local_files_only`). The hub is asked
//! only when the cache misses and `HF_HUB_OFFLINE` is not set, through a client with
//! connect and read timeouts, one retry, and a deadline on the metadata request, so an
//! unreachable or silent hub fails within seconds instead of hanging.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use ember_core::{Error, Result};
use hf_hub::progress::{DownloadEvent, ProgressEvent, ProgressHandler};
use hf_hub::{HFClient, HFError, HFRepositorySync, RepoTypeDataset};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;

use crate::mnist::Which;

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
/// `HF_HUB_OFFLINE` to keep off the network.
#[derive(Clone, Debug)]
pub struct Hub {
    /// The hub cache directory (`.../huggingface/hub`).
    pub cache_dir: PathBuf,
    /// The hub's address.
    pub endpoint: String,
    /// Never download; look in the cache only.
    pub offline: bool,
    /// How long to wait for the hub to answer before a download starts (connect and
    /// metadata); the transfer itself has a read timeout of its own.
    pub timeout: Duration,
    /// Draw a progress bar while downloading (only when stderr is a terminal).
    pub progress: bool,
}

impl Hub {
    pub fn from_env() -> Hub {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let cache_dir = var("HF_HUB_CACHE").map(PathBuf::from).unwrap_or_else(|| {
            let home = var("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
                let base = var("XDG_CACHE_HOME")
                    .map(PathBuf::from)
                    .or_else(|| var("HOME").map(|h| Path::new(&h).join(".cache")))
                    .unwrap_or_else(|| PathBuf::from(".cache"));
                base.join("huggingface")
            });
            home.join("hub")
        });
        let offline = var("HF_HUB_OFFLINE")
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"));
        let timeout = var("EMBER_HUB_TIMEOUT").and_then(|v| v.parse::<f64>().ok()).filter(|s| *s > 0.0).unwrap_or(5.0);
        Hub {
            cache_dir,
            endpoint: var("HF_ENDPOINT").unwrap_or_else(|| "https://huggingface.co".into()),
            offline,
            timeout: Duration::from_secs_f64(timeout),
            progress: true,
        }
    }

    fn repo(&self, repo: &str) -> std::result::Result<HFRepositorySync<RepoTypeDataset>, String> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("ember/", env!("CARGO_PKG_VERSION"), "; hf-hub/1"))
            .connect_timeout(self.timeout.min(Duration::from_secs(5)))
            .read_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("cannot set up an HTTP client: {e}"))?;
        let client = HFClient::builder()
            .client(http)
            .endpoint(self.endpoint.clone())
            .cache_dir(self.cache_dir.clone())
            .retry_max_attempts(1)
            .retry_base_delay(Duration::from_millis(100))
            .build_sync()
            .map_err(|e| format!("cannot set up the hub client: {e}"))?;
        let (owner, name) = hf_hub::split_id(repo);
        Ok(client.dataset(owner, name))
    }

    /// The train and test parquet files of `which` if both are in the cache.
    pub fn cached(&self, which: Which) -> std::result::Result<(PathBuf, PathBuf), String> {
        let f = files(which);
        let repo = self.repo(f.repo)?;
        let get =
            |file: &str| match repo.download_file().filename(file).revision(f.revision).local_files_only(true).send() {
                Ok(path) => Ok(path),
                Err(HFError::LocalEntryNotFound { .. }) => Err("not cached".to_string()),
                Err(e) => Err(describe(&e)),
            };
        Ok((get(f.train)?, get(f.test)?))
    }

    /// Downloads the train and test parquet files of `which` into the cache.
    pub fn download(&self, which: Which) -> std::result::Result<(PathBuf, PathBuf), String> {
        let f = files(which);
        let train = self.download_one(f, f.train)?;
        let test = self.download_one(f, f.test)?;
        Ok((train, test))
    }

    /// Downloads one file on a worker thread; gives up when the hub has not started
    /// sending it within the timeout (a silent server would otherwise hang the caller).
    fn download_one(&self, f: HubFiles, file: &'static str) -> std::result::Result<PathBuf, String> {
        enum Msg {
            Started,
            Done(std::result::Result<PathBuf, String>),
        }
        let repo = self.repo(f.repo)?;
        let (tx, rx) = mpsc::channel();
        let progress = Bar {
            tx: std::sync::Mutex::new(tx.clone()),
            bar: std::sync::Mutex::new(None),
            name: file,
            draw: self.progress,
        };
        std::thread::spawn(move || {
            let result = repo.download_file().filename(file).revision(f.revision).progress(progress).send();
            let _ = tx.send(Msg::Done(result.map_err(|e| describe(&e))));
        });
        struct Bar {
            tx: std::sync::Mutex<mpsc::Sender<Msg>>,
            bar: std::sync::Mutex<Option<indicatif::ProgressBar>>,
            name: &'static str,
            draw: bool,
        }
        impl ProgressHandler for Bar {
            fn on_progress(&self, event: &ProgressEvent) {
                let ProgressEvent::Download(event) = event else { return };
                let mut bar = self.bar.lock().unwrap_or_else(|e| e.into_inner());
                match event {
                    DownloadEvent::Start { total_bytes, .. } => {
                        let _ = self.tx.lock().unwrap_or_else(|e| e.into_inner()).send(Msg::Started);
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
                        if let Some(b) = bar.as_ref() {
                            let done: u64 = files.iter().map(|f| f.bytes_completed).sum();
                            b.set_position(done.max(b.position()));
                        }
                    }
                    DownloadEvent::AggregateProgress { bytes_completed, .. } => {
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
        let deadline = Instant::now() + self.timeout;
        let mut started = false;
        loop {
            let msg = if started {
                rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected)
            } else {
                rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            };
            match msg {
                Ok(Msg::Started) => started = true,
                Ok(Msg::Done(result)) => return result,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "no answer within {} s (set EMBER_HUB_TIMEOUT to wait longer)",
                        self.timeout.as_secs_f64()
                    ));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err("the download stopped without a result".into()),
            }
        }
    }
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
    let fail = |msg: String| Error::input(format!("{}: {msg}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot read: {e}")))?;
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
        other => return Err(format!("image is {other:?}, expected grayscale")),
    }
    Ok(())
}
