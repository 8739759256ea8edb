//! Fashion-MNIST and MNIST: the four IDX files, found in a given directory or where
//! Debian's `dataset-fashion-mnist` package installs them, with an embedded subset of
//! real Fashion-MNIST as the last resort so a fresh machine can train offline.

use std::path::{Path, PathBuf};

use candle_core::Tensor;
use ember_core::{Error, Result};

use crate::idx;

/// Which dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    FashionMnist,
    Mnist,
}

impl Which {
    pub fn name(self) -> &'static str {
        match self {
            Which::FashionMnist => "Fashion-MNIST",
            Which::Mnist => "MNIST",
        }
    }
}

/// The four files of the MNIST layout, without the optional `.gz`.
pub const FILES: [&str; 4] =
    ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

/// Where Debian's `dataset-fashion-mnist` installs Fashion-MNIST.
pub const DEBIAN_FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

/// The train and test splits as (images `[N, 28, 28]` u8, labels `[N]` u8), and where they
/// came from.
#[derive(Debug)]
pub struct Splits {
    pub train: (Tensor, Tensor),
    pub test: (Tensor, Tensor),
    /// A directory, or the embedded subset.
    pub source: String,
    /// Set when the data is not the full dataset: what was used and how to get the rest.
    pub notice: Option<String>,
}

/// The path of `name` (raw or .gz) in `dir`, if present.
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))].into_iter().find(|p| p.is_file())
}

/// The four files in `dir`, or the names of the missing ones.
fn files_in(dir: &Path) -> std::result::Result<[PathBuf; 4], Vec<&'static str>> {
    let found: Vec<Option<PathBuf>> = FILES.iter().map(|f| find_file(dir, f)).collect();
    if found.iter().all(Option::is_some) {
        let v: Vec<PathBuf> = found.into_iter().map(Option::unwrap).collect();
        Ok(v.try_into().expect("four files"))
    } else {
        Err(FILES.iter().zip(&found).filter(|(_, f)| f.is_none()).map(|(n, _)| *n).collect())
    }
}

/// Reads the four files of a directory.
pub fn read_dir(dir: &Path) -> Result<(Tensor, Tensor, Tensor, Tensor)> {
    let [ti, tl, vi, vl] = files_in(dir).map_err(|missing| {
        Error::input(format!(
            "{}: missing {} (raw or .gz); a dataset directory holds {}",
            dir.display(),
            missing.join(", "),
            FILES.join(", ")
        ))
    })?;
    let (x, y) = idx::read_pair(ti, tl)?;
    let (xt, yt) = idx::read_pair(vi, vl)?;
    Ok((x, y, xt, yt))
}

/// Loads `which`: from `dir` if given (it must hold the files), else from Debian's
/// folder, else (Fashion-MNIST only) from the embedded subset, with a notice.
pub fn load(which: Which, dir: Option<&Path>) -> Result<Splits> {
    if let Some(dir) = dir {
        let (x, y, xt, yt) = read_dir(dir)?;
        return Ok(Splits { train: (x, y), test: (xt, yt), source: dir.display().to_string(), notice: None });
    }
    let mut tried = Vec::new();
    if which == Which::FashionMnist {
        let debian = Path::new(DEBIAN_FASHION_MNIST);
        match files_in(debian) {
            Ok(_) => {
                let (x, y, xt, yt) = read_dir(debian)?;
                return Ok(Splits { train: (x, y), test: (xt, yt), source: DEBIAN_FASHION_MNIST.into(), notice: None });
            }
            Err(_) => tried.push(format!("{DEBIAN_FASHION_MNIST} (Debian's dataset-fashion-mnist): not installed")),
        }
        let (train, test) = embedded_fashion_mnist()?;
        return Ok(Splits {
            train,
            test,
            source: "embedded Fashion-MNIST subset".into(),
            notice: Some(format!(
                "note: the full Fashion-MNIST was not found ({}); training on the embedded Fashion-MNIST subset (2,000 training and 1,000 test images). For the full set: `apt install dataset-fashion-mnist`, or pass --data-dir DIR with {}",
                tried.join("; "),
                FILES.join(", ")
            )),
        });
    }
    tried.push("no --data-dir or data.dir was given".into());
    Err(Error::input(format!(
        "{} not found: {}. Pass --data-dir DIR (or data.dir in the config) naming a folder with {} (raw or .gz)",
        which.name(),
        tried.join("; "),
        FILES.join(", ")
    )))
}

const SUBSET: [&[u8]; 4] = [
    include_bytes!("../assets/fashion-mnist-subset/train-images-idx3-ubyte.gz"),
    include_bytes!("../assets/fashion-mnist-subset/train-labels-idx1-ubyte.gz"),
    include_bytes!("../assets/fashion-mnist-subset/t10k-images-idx3-ubyte.gz"),
    include_bytes!("../assets/fashion-mnist-subset/t10k-labels-idx1-ubyte.gz"),
];

/// The embedded subset: the first 2,000 training and 1,000 test images of the official
/// Fashion-MNIST files (MIT, Zalando SE).
pub fn embedded_fashion_mnist() -> Result<((Tensor, Tensor), (Tensor, Tensor))> {
    let read = |i: usize| idx::read_u8_bytes(SUBSET[i], &format!("embedded {}", FILES[i]));
    Ok(((read(0)?, read(1)?), (read(2)?, read(3)?)))
}
