//! Fashion-MNIST and MNIST: the four IDX files, found in a given directory or where
//! Debian's `dataset-fashion-mnist` package installs them, or in the Hugging Face cache or
//! hub ([`crate::hub`]), with an embedded subset of
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

/// Where [`load_from`] looks, in order: `dir` (when given, the only place), Debian's
/// folder (Fashion-MNIST), the Hugging Face cache, the Hugging Face hub, then the embedded
/// subset (Fashion-MNIST).
#[derive(Clone, Debug)]
pub struct Sources {
    pub dir: Option<PathBuf>,
    pub debian: PathBuf,
    #[cfg(feature = "hub")]
    pub hub: Option<crate::hub::Hub>,
    pub embedded: bool,
}

impl Sources {
    /// The standard places: `dir`, Debian's folder, the Hugging Face cache and hub as the
    /// environment configures them ([`crate::hub::Hub::from_env`]: `HF_HUB_CACHE`,
    /// `HF_HOME`, `HF_ENDPOINT`, `HF_HUB_OFFLINE`, `EMBER_HUB_TIMEOUT`), and the embedded
    /// subset. A bad value in one of those variables is an error here, before any place is
    /// searched, even when `dir` is given.
    pub fn standard(dir: Option<&Path>) -> Result<Sources> {
        Ok(Sources {
            dir: dir.map(Path::to_path_buf),
            debian: PathBuf::from(DEBIAN_FASHION_MNIST),
            #[cfg(feature = "hub")]
            hub: Some(crate::hub::Hub::from_env()?),
            embedded: true,
        })
    }
}

/// Loads `which` from the standard places ([`Sources::standard`]).
pub fn load(which: Which, dir: Option<&Path>) -> Result<Splits> {
    load_from(which, &Sources::standard(dir)?)
}

/// Loads `which` from the first of `sources` that has it. A directory that was named
/// must hold the files. When nothing has the full data, Fashion-MNIST falls back to the
/// embedded subset with a notice listing the places tried; MNIST is an error listing them.
pub fn load_from(which: Which, sources: &Sources) -> Result<Splits> {
    if let Some(dir) = &sources.dir {
        let (x, y, xt, yt) = read_dir(dir)?;
        return Ok(Splits { train: (x, y), test: (xt, yt), source: dir.display().to_string(), notice: None });
    }
    let mut tried = vec!["no --data-dir or data.dir was given".to_string()];
    if which == Which::FashionMnist {
        let debian = &sources.debian;
        match files_in(debian) {
            Ok(_) => {
                let (x, y, xt, yt) = read_dir(debian)?;
                let source = debian.display().to_string();
                return Ok(Splits { train: (x, y), test: (xt, yt), source, notice: None });
            }
            Err(_) => tried.push(format!("{} (Debian's dataset-fashion-mnist): not installed", debian.display())),
        }
    }
    #[cfg(feature = "hub")]
    if let Some(hub) = &sources.hub {
        if let Some(splits) = from_hub(which, hub, &mut tried) {
            return Ok(splits);
        }
    }
    #[cfg(not(feature = "hub"))]
    tried.push("Hugging Face cache and hub: not in this build (it lacks the `hub` feature)".to_string());
    if which == Which::FashionMnist && sources.embedded {
        let (train, test) = embedded_fashion_mnist()?;
        return Ok(Splits {
            train,
            test,
            source: "embedded Fashion-MNIST subset".into(),
            notice: Some(format!(
                "note: the full Fashion-MNIST was not found (tried: {}); training on the embedded Fashion-MNIST subset (2,000 training and 1,000 test images). For the full set: `apt install dataset-fashion-mnist`, connect to the Hugging Face hub, or pass --data-dir DIR with {}",
                tried.join("; "),
                FILES.join(", ")
            )),
        });
    }
    Err(Error::input(format!(
        "{} not found. Tried: {}. Pass --data-dir DIR (or data.dir in the config) naming a folder with {} (raw or .gz), or connect to the Hugging Face hub",
        which.name(),
        tried.join("; "),
        FILES.join(", ")
    )))
}

#[cfg(feature = "hub")]
type Pair = (Tensor, Tensor);

/// The train and test splits of the parquet files at `paths`, each checked first when
/// `check` ([`crate::hub::check`]); an error gives the bad file and its problem.
#[cfg(feature = "hub")]
fn read_parquet_pair(paths: &(PathBuf, PathBuf), check: bool) -> std::result::Result<(Pair, Pair), (PathBuf, String)> {
    let read = |path: &PathBuf| {
        if check {
            crate::hub::check(path, None).map_err(|why| (path.clone(), format!("{}: {why}", path.display())))?;
        }
        crate::hub::read_parquet(path).map_err(|e| (path.clone(), e.to_string()))
    };
    Ok((read(&paths.0)?, read(&paths.1)?))
}

/// `which` from the Hugging Face cache, else the hub; `None` with the reasons added to
/// `tried`. A bad cached file (empty, the wrong hash, unreadable parquet) is named and
/// passed over, left for the user to delete, and replaced by the download when the hub is
/// reachable; a bad download is deleted.
#[cfg(feature = "hub")]
fn from_hub(which: Which, hub: &crate::hub::Hub, tried: &mut Vec<String>) -> Option<Splits> {
    let f = crate::hub::files(which);
    let at = format!("{}/datasets/{}", hub.endpoint.trim_end_matches('/'), f.repo);
    let Some(cache) = &hub.cache_dir else {
        tried.push(format!("Hugging Face cache: skipped, {}", crate::hub::NO_CACHE));
        tried.push(format!("Hugging Face hub {at}: skipped, no cache folder to download into"));
        return None;
    };
    let splits =
        |(train, test): (Pair, Pair), source: String, notice: Option<String>| Splits { train, test, source, notice };
    let mut corrupt = None;
    match hub.cached(which) {
        Ok(paths) => match read_parquet_pair(&paths, true) {
            Ok(data) => {
                return Some(splits(data, format!("Hugging Face cache ({}, {})", f.repo, cache.display()), None))
            }
            Err((_, why)) => {
                tried.push(format!(
                    "Hugging Face cache {}: {why}; delete that file, or let Ember download it again (it does when the hub is reachable)",
                    cache.display()
                ));
                corrupt = Some(why);
            }
        },
        Err(why) => tried.push(format!("Hugging Face cache {}: {} {why}", cache.display(), f.repo)),
    }
    if hub.offline {
        tried.push(format!("Hugging Face hub {at}: skipped, HF_HUB_OFFLINE is set"));
        return None;
    }
    match hub.download(which).map(|paths| read_parquet_pair(&paths, false)) {
        Ok(Ok(data)) => {
            let notice = corrupt.map(|why| format!("note: the cached copy was bad ({why}); downloaded it again"));
            Some(splits(data, format!("Hugging Face hub ({at}), cached in {}", cache.display()), notice))
        }
        Ok(Err((bad, why))) => {
            crate::hub::discard(&bad);
            tried.push(format!("Hugging Face hub {at}: the download was bad and is deleted: {why}"));
            None
        }
        Err(why) => {
            tried.push(format!("Hugging Face hub {at}: {why}"));
            None
        }
    }
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
