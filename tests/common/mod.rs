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
        .map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect();
    w.sort_by(|a, b| a.0.cmp(&b.0));
    w
}
