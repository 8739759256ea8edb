//! Helpers shared by the integration tests (each test file that needs them says
//! `mod common;`; not every file uses every helper).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The committed PyTorch parity fixtures, sorted.
pub fn parity_fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parity");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// The model weights of a run's latest checkpoint (or of a checkpoint file), by name.
pub fn checkpoint_weights(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let file = ember::train::checkpoint::resolve(dir).unwrap();
    let ckpt = ember::train::checkpoint::read(&file).unwrap();
    let mut w: Vec<(String, Vec<f32>)> = ckpt
        .section("model/")
        .into_iter()
        .map(|(k, t)| {
            (k, t.to_dtype(candle_core::DType::F32).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap())
        })
        .collect();
    w.sort_by(|a, b| a.0.cmp(&b.0));
    w
}

/// An IDX file of unsigned bytes.
pub fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

/// `bytes` gzip-compressed.
pub fn gz(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A tiny dataset in the MNIST layout: `n` 28x28 images per split, labels i % 10, in
/// `dir` (created if missing).
pub fn write_mnist_dir(dir: &Path, n: u32, compress: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let images: Vec<u8> = (0..n * 784).map(|i| (i % 251) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    for (name, bytes) in [
        ("train-images-idx3-ubyte", idx_bytes(&[n, 28, 28], &images)),
        ("train-labels-idx1-ubyte", idx_bytes(&[n], &labels)),
        ("t10k-images-idx3-ubyte", idx_bytes(&[n, 28, 28], &images)),
        ("t10k-labels-idx1-ubyte", idx_bytes(&[n], &labels)),
    ] {
        if compress {
            std::fs::write(dir.join(format!("{name}.gz")), gz(&bytes)).unwrap();
        } else {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

/// A run's metrics.csv lines without the seconds column (which differs between runs).
pub fn metrics_without_seconds(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string())
        .collect()
}

/// Waits (up to two minutes) until `checkpoints` holds `n` epoch checkpoints.
pub fn wait_for_checkpoints(checkpoints: &Path, n: usize) {
    let start = std::time::Instant::now();
    while ember::train::checkpoint::epoch_files(checkpoints).unwrap().len() < n
        && start.elapsed() < std::time::Duration::from_secs(120)
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
