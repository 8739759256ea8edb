//! Data: the IDX reader's errors, Fashion-MNIST / MNIST lookup, the embedded subset, the
//! data loader's seeded shuffling, and the main job on a fresh machine.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use common::{gz, idx_bytes, write_mnist_dir};
use ember::data::mnist::{self, Which};
use ember::data::{idx, DataLoader, Dataset, TensorDataset};

#[test]
fn idx_files_raw_and_gzipped_read_and_bad_ones_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("x.idx");
    std::fs::write(&p, idx_bytes(&[2, 3], &[1, 2, 3, 4, 5, 6])).unwrap();
    assert_eq!(idx::read_u8(&p).unwrap().to_vec2::<u8>().unwrap(), [[1, 2, 3], [4, 5, 6]]);
    let pz = tmp.path().join("x.idx.gz");
    std::fs::write(&pz, gz(&idx_bytes(&[2, 3], &[1, 2, 3, 4, 5, 6]))).unwrap();
    assert_eq!(idx::read_u8(&pz).unwrap().dims(), [2, 3]);

    std::fs::write(&p, idx_bytes(&[2, 3], &[1, 2, 3])).unwrap();
    let e = idx::read_u8(&p).unwrap_err().to_string();
    assert!(e.ends_with("x.idx: 3 data bytes where the header [2, 3] promises 6 (truncated file)"), "{e}");
    std::fs::write(&p, b"PK\x03\x04 not idx").unwrap();
    let e = idx::read_u8(&p).unwrap_err().to_string();
    assert!(e.contains("x.idx: not an IDX file: bad magic number 50 4b 03 04"), "{e}");
    let full = gz(&idx_bytes(&[2, 3], &[1, 2, 3, 4, 5, 6]));
    std::fs::write(&pz, &full[..full.len() - 6]).unwrap();
    assert!(idx::read_u8(&pz).unwrap_err().to_string().contains("cannot decompress"));

    let (imgs, labels) = (tmp.path().join("i"), tmp.path().join("l"));
    std::fs::write(&imgs, idx_bytes(&[3, 2, 2], &[0; 12])).unwrap();
    std::fs::write(&labels, idx_bytes(&[2], &[0, 1])).unwrap();
    let e = idx::read_pair(&imgs, &labels).unwrap_err().to_string();
    assert!(e.contains("has 3 images but") && e.contains("has 2 labels"), "{e}");
}

#[test]
fn a_gzip_idx_file_of_two_members_reads_like_the_raw_file() {
    // `cat a.gz b.gz`, bgzip and pigz write several gzip members; gunzip reads them as one.
    let tmp = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..3 * 28 * 28).map(|i| (i % 253) as u8).collect();
    let raw = idx_bytes(&[3, 28, 28], &data);
    let (a, b) = raw.split_at(16 + data.len() / 2);
    let (p, pz) = (tmp.path().join("x-idx3-ubyte"), tmp.path().join("x-idx3-ubyte.gz"));
    std::fs::write(&p, &raw).unwrap();
    std::fs::write(&pz, [gz(a), gz(b)].concat()).unwrap();
    let (t, tz) = (idx::read_u8(&p).unwrap(), idx::read_u8(&pz).unwrap());
    assert_eq!(tz.dims(), [3, 28, 28]);
    assert_eq!(tz.flatten_all().unwrap().to_vec1::<u8>().unwrap(), t.flatten_all().unwrap().to_vec1::<u8>().unwrap());
}

#[test]
fn a_bad_file_of_the_test_split_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_mnist_dir(dir, 4, false);
    let images = dir.join("t10k-images-idx3-ubyte");
    let full = std::fs::read(&images).unwrap();
    std::fs::write(&images, &full[..full.len() - 10]).unwrap();
    let e = mnist::load(Which::Mnist, Some(dir)).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}: 3126 data bytes where the header [4, 28, 28] promises 3136", images.display())),
        "{e}"
    );
    std::fs::write(&images, &full).unwrap();
    let labels = dir.join("t10k-labels-idx1-ubyte");
    std::fs::write(&labels, idx_bytes(&[3], &[0, 1, 2])).unwrap();
    let e = mnist::load(Which::Mnist, Some(dir)).unwrap_err().to_string();
    assert!(e.contains(&format!("{} has 4 images but {} has 3 labels", images.display(), labels.display())), "{e}");
    std::fs::remove_file(&labels).unwrap();
    let labels = dir.join("t10k-labels-idx1-ubyte.gz");
    let bytes = gz(&idx_bytes(&[4], &[0, 1, 2, 3]));
    std::fs::write(&labels, &bytes[..bytes.len() - 6]).unwrap();
    let e = mnist::load(Which::Mnist, Some(dir)).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}: cannot decompress", labels.display())), "{e}");
}

#[test]
fn a_data_dir_with_the_four_files_is_used_and_a_missing_file_is_named() {
    for compress in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        write_mnist_dir(tmp.path(), 12, compress);
        let s = mnist::load(Which::Mnist, Some(tmp.path())).unwrap();
        assert_eq!(s.train.0.dims(), [12, 28, 28]);
        assert_eq!(s.test.1.dims(), [12]);
        assert!(s.notice.is_none());
    }
    let tmp = tempfile::tempdir().unwrap();
    write_mnist_dir(tmp.path(), 4, false);
    std::fs::remove_file(tmp.path().join("t10k-labels-idx1-ubyte")).unwrap();
    let e = mnist::load(Which::FashionMnist, Some(tmp.path())).unwrap_err().to_string();
    assert!(e.contains("missing t10k-labels-idx1-ubyte (raw or .gz)"), "{e}");
}

#[test]
fn mnist_not_found_fails_fast_listing_the_places_tried() {
    let start = Instant::now();
    // The standard places, with the hub pointed at a port that refuses connections and
    // an empty cache (a test never reaches the network).
    let tmp = tempfile::tempdir().unwrap();
    let mut sources = mnist::Sources::standard(None).unwrap();
    let hub = sources.hub.as_mut().unwrap();
    hub.endpoint = "http://127.0.0.1:9".into();
    hub.cache_dir = Some(tmp.path().to_path_buf());
    let e = mnist::load_from(Which::Mnist, &sources).unwrap_err().to_string();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(e.starts_with("MNIST not found. Tried:") && e.contains("--data-dir DIR"), "{e}");
}

#[test]
fn the_embedded_subset_is_real_fashion_mnist() {
    let ((x, y), (xt, yt)) = mnist::embedded_fashion_mnist().unwrap();
    assert_eq!(x.dims(), [2000, 28, 28]);
    assert_eq!(xt.dims(), [1000, 28, 28]);
    let labels = y.to_vec1::<u8>().unwrap();
    for class in 0..10u8 {
        let n = labels.iter().filter(|l| **l == class).count();
        assert!((150..=250).contains(&n), "class {class}: {n} examples");
    }
    assert_eq!(yt.dims(), [1000]);
    // Real images: mostly dark background, some bright pixels.
    let px = x.flatten_all().unwrap().to_dtype(DType::F32).unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap();
    assert!((40.0..120.0).contains(&px), "mean pixel {px}");
}

#[test]
fn the_loader_shuffles_reproducibly_and_covers_every_example() {
    let x = Tensor::arange(0f32, 10.0, &Device::Cpu).unwrap().reshape((10, 1)).unwrap();
    let y = Tensor::arange(0i64, 10, &Device::Cpu).unwrap();
    let data = TensorDataset::new(x, y).unwrap();
    let loader = DataLoader::new(4, true, false, 3, Device::Cpu, DType::F32).unwrap();
    let (o1, o2, o3) = (loader.order(10, 0), loader.order(10, 0), loader.order(10, 1));
    assert_eq!(o1, o2);
    assert_ne!(o1, o3);
    let mut sorted = o1.clone();
    sorted.sort();
    assert_eq!(sorted, (0..10).collect::<Vec<u32>>());
    assert_eq!(loader.batches(10), 3);
    let (bx, by) = loader.batch(&data, &o1, 2).unwrap();
    assert_eq!(bx.dims(), [2, 1]);
    assert_eq!(by.to_vec1::<i64>().unwrap(), o1[8..].iter().map(|&i| i as i64).collect::<Vec<_>>());
    let dropping = DataLoader::new(4, false, true, 0, Device::Cpu, DType::F32).unwrap();
    assert_eq!(dropping.batches(10), 2);
    assert_eq!(data.len(), 10);
    let e = DataLoader::new(0, true, false, 0, Device::Cpu, DType::F32).unwrap_err().to_string();
    assert_eq!(e, "train.batch_size = 0 is invalid: must be >= 1");
    let e = TensorDataset::new(
        Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
        Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("must have the same number of examples"), "{e}");
}

fn ember(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(args)
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env("HF_HUB_CACHE", "/nonexistent/ember-test-hf-cache")
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn the_main_job_runs_offline_on_the_embedded_subset_and_says_so() {
    if Path::new(mnist::DEBIAN_FASHION_MNIST).is_dir() {
        return; // This machine has the full set; the fallback is not taken here.
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let (code, stdout, stderr) = ember(&["train", "--epochs", "2", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("training on the embedded Fashion-MNIST subset (2,000 training and 1,000 test images)"),
        "{stderr}"
    );
    assert!(stderr.contains("apt install dataset-fashion-mnist"), "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["data"], "embedded Fashion-MNIST subset");
    assert!(summary["eval_acc"].as_f64().unwrap() > 0.2, "better than chance (0.1): {summary}");
}

#[test]
fn data_dir_and_dataset_flags_select_other_data() {
    let tmp = tempfile::tempdir().unwrap();
    write_mnist_dir(tmp.path(), 64, true);
    let out = tmp.path().join("run");
    let (code, stdout, stderr) = ember(&[
        "train",
        "--dataset",
        "mnist",
        "--data-dir",
        tmp.path().to_str().unwrap(),
        "--epochs",
        "1",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["data"], tmp.path().to_str().unwrap());
    let (code, _, stderr) = ember(&["train", "--dataset", "cifar", "--quiet"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("--dataset cifar: unknown dataset; use fashion_mnist or mnist"), "{stderr}");
    let out = tmp.path().join("run-2");
    let (code, _, stderr) = ember(&["train", "--dataset", "mnist", "--quiet", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("MNIST not found"), "{stderr}");
}

#[test]
fn an_empty_dataset_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    write_mnist_dir(tmp.path(), 0, false);
    let (code, _, stderr) = ember(&[
        "train",
        "--dataset",
        "mnist",
        "--data-dir",
        tmp.path().to_str().unwrap(),
        "--quiet",
        "--out",
        tmp.path().join("r").to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("data: the training set is empty"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
