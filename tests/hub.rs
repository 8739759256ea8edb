//! The Hugging Face cache and hub as data sources: parquet files of PNG images read from a
//! cache laid out as `huggingface_hub` lays it out, a download from a local server that
//! answers like the hub, and the failures (unreachable, silent, offline, corrupt) that must
//! come back within seconds naming every place tried. Nothing here reaches the network.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ember::data::hub::{self, Hub};
use ember::data::mnist::{self, Sources, Which};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn fixture(split: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/hub/fashion_mnist/{split}/0000.parquet"))
}

/// A hub cache holding the fixture parquet files under Fashion-MNIST's repository and
/// revision, as `huggingface_hub` and hf-hub write it (refs file, snapshot folder).
fn fake_cache(root: &Path) {
    let repo = root.join("datasets--zalando-datasets--fashion_mnist");
    std::fs::create_dir_all(repo.join("refs/refs/convert")).unwrap();
    std::fs::write(repo.join("refs/refs/convert/parquet"), COMMIT).unwrap();
    for split in ["train", "test"] {
        let dir = repo.join(format!("snapshots/{COMMIT}/fashion_mnist/{split}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(fixture(split), dir.join("0000.parquet")).unwrap();
    }
}

fn hub(cache: &Path, endpoint: &str, offline: bool, timeout: f64) -> Hub {
    Hub {
        cache_dir: cache.to_path_buf(),
        endpoint: endpoint.into(),
        offline,
        timeout: Duration::from_secs_f64(timeout),
        progress: false,
    }
}

fn sources(hub: Hub) -> Sources {
    Sources { dir: None, debian: PathBuf::from("/nonexistent/ember-test-debian"), hub: Some(hub), embedded: false }
}

/// The first `n` images and labels of the embedded subset's split (0 train, 1 test).
fn embedded_prefix(split: usize, n: usize) -> (Vec<u8>, Vec<u8>) {
    let ((x, y), (xt, yt)) = mnist::embedded_fashion_mnist().unwrap();
    let (x, y) = if split == 0 { (x, y) } else { (xt, yt) };
    (
        x.narrow(0, 0, n).unwrap().flatten_all().unwrap().to_vec1::<u8>().unwrap(),
        y.narrow(0, 0, n).unwrap().to_vec1::<u8>().unwrap(),
    )
}

#[test]
fn parquet_png_images_decode_to_the_same_pixels_as_the_idx_files() {
    for (split, name, n) in [(0, "train", 48), (1, "test", 24)] {
        let (x, y) = hub::read_parquet(&fixture(name)).unwrap();
        assert_eq!(x.dims(), [n, 28, 28]);
        let (px, labels) = embedded_prefix(split, n);
        assert_eq!(x.flatten_all().unwrap().to_vec1::<u8>().unwrap(), px, "{name} pixels");
        assert_eq!(y.to_vec1::<u8>().unwrap(), labels, "{name} labels");
    }
}

#[test]
fn a_cached_dataset_is_read_from_the_cache_without_the_network() {
    let tmp = tempfile::tempdir().unwrap();
    fake_cache(tmp.path());
    // Offline, and an endpoint nobody answers: only the cache can supply the data.
    let s = mnist::load_from(Which::FashionMnist, &sources(hub(tmp.path(), "http://127.0.0.1:9", true, 2.0))).unwrap();
    assert!(s.source.starts_with("Hugging Face cache (zalando-datasets/fashion_mnist"), "{}", s.source);
    assert!(s.notice.is_none());
    assert_eq!(s.train.0.dims(), [48, 28, 28]);
    assert_eq!(s.test.1.dims(), [24]);
    assert_eq!(s.train.0.flatten_all().unwrap().to_vec1::<u8>().unwrap(), embedded_prefix(0, 48).0);
}

#[test]
fn nothing_found_lists_every_place_tried_within_seconds() {
    let tmp = tempfile::tempdir().unwrap();
    let start = Instant::now();
    // Port 9 on loopback refuses connections: the hub is unreachable.
    let e = mnist::load_from(Which::Mnist, &sources(hub(tmp.path(), "http://127.0.0.1:9", false, 5.0)))
        .unwrap_err()
        .to_string();
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
    assert!(e.starts_with("MNIST not found. Tried: no --data-dir or data.dir was given;"), "{e}");
    assert!(e.contains(&format!("Hugging Face cache {}: ylecun/mnist not cached", tmp.path().display())), "{e}");
    assert!(e.contains("Hugging Face hub http://127.0.0.1:9/datasets/ylecun/mnist: "), "{e}");
    assert!(e.contains("Pass --data-dir DIR"), "{e}");
    assert!(!e.contains("stack backtrace"), "{e}");

    let e = mnist::load_from(Which::Mnist, &sources(hub(tmp.path(), "http://127.0.0.1:9", true, 5.0)))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Hugging Face hub http://127.0.0.1:9/datasets/ylecun/mnist: skipped, HF_HUB_OFFLINE is set"),
        "{e}"
    );
}

#[test]
fn a_hub_that_never_answers_is_given_up_on_after_the_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    // Accept connections and hold them open without a word.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let e = mnist::load_from(Which::FashionMnist, &sources(hub(tmp.path(), &endpoint, false, 1.5)))
        .unwrap_err()
        .to_string();
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(1400) && took < Duration::from_secs(5), "took {took:?}");
    assert!(e.contains("no answer within 1.5 s (set EMBER_HUB_TIMEOUT to wait longer)"), "{e}");
}

/// Answers like the hub's `resolve` endpoint: HEAD gives the commit, etag and size; GET
/// the bytes. Returns the endpoint and a log of request lines.
fn fake_hub() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let seen = seen.clone();
            std::thread::spawn(move || loop {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let mut header = String::new();
                while reader.read_line(&mut header).unwrap_or(0) > 2 {
                    header.clear();
                }
                seen.lock().unwrap().push(line.trim().to_string());
                let mut parts = line.split_whitespace();
                let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let split = if path.ends_with("/fashion_mnist/train/0000.parquet") {
                    "train"
                } else if path.ends_with("/fashion_mnist/test/0000.parquet") {
                    "test"
                } else {
                    let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
                    continue;
                };
                let body = std::fs::read(fixture(split)).unwrap();
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\netag: \"{split}-etag\"\r\nx-repo-commit: {COMMIT}\r\ncontent-type: application/octet-stream\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).unwrap();
                if method == "GET" {
                    stream.write_all(&body).unwrap();
                }
                let _ = reader.read(&mut []);
            });
        }
    });
    (endpoint, log)
}

#[test]
fn a_download_from_the_hub_lands_in_the_cache_and_is_read_from_there_next_time() {
    let (endpoint, log) = fake_hub();
    let tmp = tempfile::tempdir().unwrap();
    let s = mnist::load_from(Which::FashionMnist, &sources(hub(tmp.path(), &endpoint, false, 5.0))).unwrap();
    assert!(s.source.starts_with(&format!("Hugging Face hub ({endpoint}/datasets/zalando-datasets/fashion_mnist)")));
    assert_eq!(s.test.0.flatten_all().unwrap().to_vec1::<u8>().unwrap(), embedded_prefix(1, 24).0);
    let requests = log.lock().unwrap().clone();
    assert!(
        requests.iter().any(|r| r.starts_with("GET /datasets/zalando-datasets/fashion_mnist/resolve/")
            && r.contains("fashion_mnist/train/0000.parquet")),
        "{requests:?}"
    );
    // Second time: offline, from the cache the download filled.
    let s = mnist::load_from(Which::FashionMnist, &sources(hub(tmp.path(), "http://127.0.0.1:9", true, 2.0))).unwrap();
    assert!(s.source.starts_with("Hugging Face cache"), "{}", s.source);
    assert_eq!(s.train.1.dims(), [48]);
}

#[test]
fn a_corrupt_parquet_file_is_a_clear_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("0000.parquet");
    std::fs::write(&bad, b"PAR1 this is not parquet").unwrap();
    let e = hub::read_parquet(&bad).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}: not a readable parquet file", bad.display())), "{e}");
    let mut bytes = std::fs::read(fixture("test")).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&bad, &bytes).unwrap();
    let e = hub::read_parquet(&bad).unwrap_err().to_string();
    assert!(e.contains(&bad.display().to_string()), "{e}");
}

#[test]
fn ember_train_reads_the_hugging_face_cache_named_by_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    fake_cache(tmp.path());
    let out = tmp.path().join("run");
    let run = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["train", "--epochs", "1", "--quiet", "--out", out.to_str().unwrap()])
        .env("HF_HUB_CACHE", tmp.path())
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    if Path::new(mnist::DEBIAN_FASHION_MNIST).is_dir() {
        return; // Debian's copy comes first on this machine.
    }
    assert!(run.status.success(), "{stderr}");
    let stdout = String::from_utf8(run.stdout).unwrap();
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(summary["data"].as_str().unwrap().starts_with("Hugging Face cache"), "{summary}");
    assert!(!stderr.contains("embedded"), "{stderr}");
}
