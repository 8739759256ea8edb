//! The Hugging Face cache and hub as data sources: parquet files of PNG images read from a
//! cache laid out as `huggingface_hub` lays it out, a download from a local server that
//! answers like the hub, and the failures (unreachable, silent, trickling, offline, corrupt,
//! a download cut short, bad environment values) that must come back within seconds naming
//! every place tried. Nothing here reaches the network.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ember::data::hub::{self, Hub};
use ember::data::mnist::{self, Sources, Which};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// `sha256sum` of the fixture files: the hub's etag (`x-linked-etag`) of an LFS file, which
/// names its blob in the cache.
fn sha256(split: &str) -> &'static str {
    match split {
        "train" => "34b000c523d74a358302fda076e1febab8754544a5ba96c66d1ade81dd6040bb",
        _ => "54c780887081426f13ec90d28e16bd175a70a79c6b916082739f7aef29a52f61",
    }
}

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

/// The same cache as hf-hub writes it: the files in `blobs/`, named by their SHA-256, and
/// the snapshot entries symlinks to them.
fn fake_blob_cache(root: &Path) {
    let repo = root.join("datasets--zalando-datasets--fashion_mnist");
    std::fs::create_dir_all(repo.join("refs/refs/convert")).unwrap();
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::write(repo.join("refs/refs/convert/parquet"), COMMIT).unwrap();
    for split in ["train", "test"] {
        let dir = repo.join(format!("snapshots/{COMMIT}/fashion_mnist/{split}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(fixture(split), repo.join("blobs").join(sha256(split))).unwrap();
        std::os::unix::fs::symlink(format!("../../../../blobs/{}", sha256(split)), dir.join("0000.parquet")).unwrap();
    }
}

/// The train file's entry in a fake cache's snapshot.
fn cached_train(root: &Path) -> PathBuf {
    root.join(format!("datasets--zalando-datasets--fashion_mnist/snapshots/{COMMIT}/fashion_mnist/train/0000.parquet"))
}

/// Every file under `dir` (symlinks included), recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() && !path.is_symlink() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn hub(cache: &Path, endpoint: &str, offline: bool, timeout: f64) -> Hub {
    Hub {
        cache_dir: Some(cache.to_path_buf()),
        endpoint: endpoint.into(),
        offline,
        timeout: Duration::from_secs_f64(timeout),
        progress: false,
    }
}

fn sources(hub: Hub) -> Sources {
    Sources { dir: None, debian: PathBuf::from("/nonexistent/ember-test-debian"), hub: Some(hub), embedded: false }
}

/// [`sources`] with the embedded subset as the last resort, as `ember train` has it.
fn with_embedded(hub: Hub) -> Sources {
    Sources { embedded: true, ..sources(hub) }
}

const EMBEDDED: &str = "embedded Fashion-MNIST subset";

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

/// How the fake hub answers a GET; HEAD always gives the commit, etag, SHA-256 and size.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Get {
    /// The file.
    Full,
    /// Half the file, then the connection closes.
    DieMidBody,
    /// `500 Internal Server Error` with an empty body.
    ServerError,
    /// As many bytes as the file, some of them wrong.
    WrongBytes,
    /// The file's first bytes, one every 100 ms (for 15 s at most).
    Trickle,
}

/// Answers like the hub's `resolve` endpoint: HEAD gives the commit, etag and size; GET
/// the bytes. Returns the endpoint and a log of request lines.
fn fake_hub() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    fake_hub_answering(Get::Full)
}

/// [`fake_hub`], answering GET as `get` says.
fn fake_hub_answering(get: Get) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
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
                let mut body = std::fs::read(fixture(split)).unwrap();
                if method == "GET" && get == Get::ServerError {
                    let _ = stream.write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n");
                    continue;
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {n}\r\netag: \"{split}-etag\"\r\nx-linked-etag: \"{sha}\"\r\nx-linked-size: {n}\r\nx-repo-commit: {COMMIT}\r\ncontent-type: application/octet-stream\r\n\r\n",
                    n = body.len(),
                    sha = sha256(split),
                );
                stream.write_all(head.as_bytes()).unwrap();
                if method == "GET" {
                    match get {
                        Get::Full | Get::ServerError => stream.write_all(&body).unwrap(),
                        Get::WrongBytes => {
                            let mid = body.len() / 2;
                            body[mid..mid + 64].fill(0x55);
                            stream.write_all(&body).unwrap();
                        }
                        Get::DieMidBody => {
                            let _ = stream.write_all(&body[..body.len() / 2]);
                            return;
                        }
                        Get::Trickle => {
                            for byte in &body[..150] {
                                std::thread::sleep(Duration::from_millis(100));
                                if stream.write_all(&[*byte]).is_err() {
                                    return;
                                }
                            }
                            return;
                        }
                    }
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
    // Second time: offline, from the cache the download filled (blobs named by the
    // hub's SHA-256, checked against it).
    let s = mnist::load_from(Which::FashionMnist, &sources(hub(tmp.path(), "http://127.0.0.1:9", true, 2.0))).unwrap();
    assert!(s.source.starts_with("Hugging Face cache"), "{}", s.source);
    assert_eq!(s.train.1.dims(), [48]);
    let blob = std::fs::canonicalize(cached_train(tmp.path())).unwrap();
    assert_eq!(blob.file_name().unwrap().to_str().unwrap(), sha256("train"));
}

#[test]
fn a_download_that_fails_leaves_nothing_that_a_later_offline_run_trusts() {
    let sha = format!("where the hub's is {} (corrupt or cut short)", sha256("train"));
    for (get, why) in [
        (Get::DieMidBody, ": request failed: "),
        (Get::ServerError, ": the download was bad and is deleted: "),
        (Get::WrongBytes, ": the download was bad and is deleted: "),
    ] {
        let (endpoint, _) = fake_hub_answering(get);
        let tmp = tempfile::tempdir().unwrap();
        let s = mnist::load_from(Which::FashionMnist, &with_embedded(hub(tmp.path(), &endpoint, false, 5.0))).unwrap();
        assert_eq!(s.source, EMBEDDED, "{get:?}");
        let notice = s.notice.unwrap();
        let at = format!("Hugging Face hub {endpoint}/datasets/zalando-datasets/fashion_mnist{why}");
        assert!(notice.contains(&at), "{get:?}: {notice}");
        match get {
            Get::ServerError => assert!(notice.contains("0000.parquet: empty (0 bytes)"), "{notice}"),
            Get::WrongBytes => assert!(notice.contains(&sha), "{notice}"),
            _ => {}
        }
        // Nothing in the snapshot for a later run to trust: offline, the cache misses.
        let snapshots = tmp.path().join("datasets--zalando-datasets--fashion_mnist/snapshots");
        assert_eq!(files_under(&snapshots), Vec::<PathBuf>::new(), "{get:?}");
        let s = mnist::load_from(Which::FashionMnist, &with_embedded(hub(tmp.path(), "http://127.0.0.1:9", true, 2.0)))
            .unwrap();
        assert_eq!(s.source, EMBEDDED, "{get:?}");
        let notice = s.notice.unwrap();
        assert!(notice.contains("zalando-datasets/fashion_mnist not cached"), "{get:?}: {notice}");
    }
}

#[test]
fn a_corrupt_file_in_the_cache_is_named_and_passed_over_then_downloaded_again() {
    for (case, why) in
        [("empty", "empty (0 bytes)"), ("garbage", "not a readable parquet file"), ("cut short", "its SHA-256 is ")]
    {
        let tmp = tempfile::tempdir().unwrap();
        let bad = cached_train(tmp.path());
        match case {
            "empty" => {
                fake_cache(tmp.path());
                std::fs::write(&bad, b"").unwrap();
            }
            "garbage" => {
                fake_cache(tmp.path());
                std::fs::write(&bad, b"PAR1 not parquet at all PAR1").unwrap();
            }
            _ => {
                // A blob named by its SHA-256 but cut short: readable as far as it goes.
                fake_blob_cache(tmp.path());
                let bytes = std::fs::read(&bad).unwrap();
                std::fs::write(&bad, &bytes[..bytes.len() - 100]).unwrap();
            }
        }
        // Offline: the embedded subset, with the file named and what to do about it.
        let s = mnist::load_from(Which::FashionMnist, &with_embedded(hub(tmp.path(), "http://127.0.0.1:9", true, 2.0)))
            .unwrap();
        assert_eq!(s.source, EMBEDDED, "{case}");
        let notice = s.notice.unwrap();
        let named = format!("Hugging Face cache {}: {}: {why}", tmp.path().display(), bad.display());
        assert!(notice.contains(&named), "{case}: {notice}");
        assert!(notice.contains("delete that file, or let Ember download it again"), "{case}: {notice}");
        assert!(bad.exists(), "{case}: the user's cached file is left to them");
        // Online: downloaded again over the bad copy, and read from the cache after that.
        let (endpoint, _) = fake_hub();
        let s = mnist::load_from(Which::FashionMnist, &sources(hub(tmp.path(), &endpoint, false, 5.0))).unwrap();
        assert!(s.source.starts_with("Hugging Face hub"), "{case}: {}", s.source);
        assert!(s.notice.unwrap().starts_with("note: the cached copy was bad ("), "{case}");
        let s =
            mnist::load_from(Which::FashionMnist, &sources(hub(tmp.path(), "http://127.0.0.1:9", true, 2.0))).unwrap();
        assert!(s.source.starts_with("Hugging Face cache"), "{case}: {}", s.source);
        assert_eq!(s.train.0.flatten_all().unwrap().to_vec1::<u8>().unwrap(), embedded_prefix(0, 48).0);
    }
}

#[test]
fn a_hub_that_trickles_a_download_is_given_up_on_for_the_embedded_subset() {
    let (endpoint, _) = fake_hub_answering(Get::Trickle);
    let tmp = tempfile::tempdir().unwrap();
    let start = Instant::now();
    // t = 1 s: the hub must send 64 KiB (or the rest of the file) every 2 s.
    let s = mnist::load_from(Which::FashionMnist, &with_embedded(hub(tmp.path(), &endpoint, false, 1.0))).unwrap();
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(1900) && took < Duration::from_secs(8), "took {took:?}");
    assert_eq!(s.source, EMBEDDED);
    let notice = s.notice.unwrap();
    let at = format!("Hugging Face hub {endpoint}/datasets/zalando-datasets/fashion_mnist: the download stalled: ");
    assert!(notice.contains(&at), "{notice}");
    assert!(notice.contains("under the 64 KiB the hub must send every 2 s"), "{notice}");
    assert!(notice.contains("set EMBER_HUB_TIMEOUT higher to allow a slower transfer"), "{notice}");
    assert_eq!(
        files_under(&tmp.path().join("datasets--zalando-datasets--fashion_mnist/snapshots")),
        Vec::<PathBuf>::new()
    );
}

/// An environment lookup holding `pairs`.
fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

#[test]
fn hub_environment_values_out_of_range_are_errors_naming_them() {
    for bad in ["inf", "1e300", "abc", "0", "-5", "nan", "86401"] {
        let e = Hub::from_vars(env(&[("EMBER_HUB_TIMEOUT", bad)]), None).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("EMBER_HUB_TIMEOUT=\"{bad}\" is invalid: must be a number of seconds > 0 and <= 86400 (unset: 5); set a valid value or unset it")
        );
    }
    assert_eq!(
        Hub::from_vars(env(&[("EMBER_HUB_TIMEOUT", "2.5")]), None).unwrap().timeout,
        Duration::from_millis(2500)
    );
    assert_eq!(Hub::from_vars(env(&[]), None).unwrap().timeout, Duration::from_secs(5));
    let e = Hub::from_vars(env(&[("HF_HUB_OFFLINE", "maybe")]), None).unwrap_err().to_string();
    assert!(e.starts_with("HF_HUB_OFFLINE=\"maybe\" is invalid: must be 1, true, yes or on"), "{e}");
    assert!(Hub::from_vars(env(&[("HF_HUB_OFFLINE", "TRUE")]), None).unwrap().offline);
    assert!(!Hub::from_vars(env(&[("HF_HUB_OFFLINE", "0")]), None).unwrap().offline);

    // `ember train` says so and stops, even when the data is elsewhere; no panic.
    let tmp = tempfile::tempdir().unwrap();
    for bad in ["inf", "abc"] {
        let run = Command::new(env!("CARGO_BIN_EXE_ember"))
            .args(["train", "--epochs", "1", "--quiet", "--out", tmp.path().join("run").to_str().unwrap()])
            .env("EMBER_HUB_TIMEOUT", bad)
            .env("HF_ENDPOINT", "http://127.0.0.1:9")
            .env("HF_HUB_OFFLINE", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("EMBER_HUB_TIMEOUT=\"{bad}\" is invalid: must be a number of seconds")),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn without_a_home_the_cache_is_never_a_folder_relative_to_where_ember_runs() {
    let cache = |pairs: &[(&str, &str)], home: Option<&str>| {
        Hub::from_vars(env(pairs), home.map(PathBuf::from)).unwrap().cache_dir
    };
    assert_eq!(cache(&[("HF_HUB_CACHE", "/c")], None), Some(PathBuf::from("/c")));
    assert_eq!(cache(&[("HF_HOME", "/h")], None), Some(PathBuf::from("/h/hub")));
    assert_eq!(cache(&[("XDG_CACHE_HOME", "/x")], None), Some(PathBuf::from("/x/huggingface/hub")));
    assert_eq!(cache(&[("HOME", "/u")], Some("/os")), Some(PathBuf::from("/u/.cache/huggingface/hub")));
    assert_eq!(cache(&[], Some("/os")), Some(PathBuf::from("/os/.cache/huggingface/hub")));
    assert_eq!(cache(&[("XDG_CACHE_HOME", "rel"), ("HOME", ".")], None), None);
    assert_eq!(cache(&[], None), None);

    // No cache folder: the cache and the hub are skipped, saying why.
    let mut none = Hub::from_vars(env(&[("HF_ENDPOINT", "http://127.0.0.1:9")]), None).unwrap();
    none.progress = false;
    let e = mnist::load_from(Which::Mnist, &sources(none)).unwrap_err().to_string();
    assert!(
        e.contains(
            "Hugging Face cache: skipped, no cache folder: none of HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME, HOME is set"
        ),
        "{e}"
    );
    assert!(
        e.contains(
            "Hugging Face hub http://127.0.0.1:9/datasets/ylecun/mnist: skipped, no cache folder to download into"
        ),
        "{e}"
    );

    // `ember train` without HOME, in a folder holding `.cache/huggingface/hub`: that folder
    // is not taken for the cache (the system's home folder is).
    if Path::new(mnist::DEBIAN_FASHION_MNIST).is_dir() {
        return; // Debian's copy comes first on this machine.
    }
    let tmp = tempfile::tempdir().unwrap();
    fake_cache(&tmp.path().join(".cache/huggingface/hub"));
    let run = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["train", "--epochs", "1", "--quiet", "--out", "run"])
        .current_dir(tmp.path())
        .env_remove("HOME")
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_HOME")
        .env_remove("XDG_CACHE_HOME")
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let stdout = String::from_utf8(run.stdout).unwrap();
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let data = summary["data"].as_str().unwrap();
    assert!(!data.contains(", .cache/huggingface/hub"), "{data}");
    assert!(!stderr.contains("Hugging Face cache .cache"), "{stderr}");
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

/// The dataset of `tests/fixtures/hub/tables` (two train shards, one test shard), in a
/// cache as the hub's parquet conversion of `ember-tests/blobs`.
fn fake_table_cache(root: &Path) {
    let repo = root.join("datasets--ember-tests--blobs");
    std::fs::create_dir_all(repo.join("refs/refs/convert")).unwrap();
    std::fs::write(repo.join("refs/refs/convert/parquet"), COMMIT).unwrap();
    for file in ["default/train/0000.parquet", "default/train/0001.parquet", "default/test/0000.parquet"] {
        let to = repo.join(format!("snapshots/{COMMIT}/{file}"));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hub/tables").join(file), to).unwrap();
    }
}

const HUB_RUN: &str = r#"seed = 1
[model]
sizes = [3, 16, 3]
[loss]
name = "cross_entropy"
[optimizer]
name = "adam"
lr = 0.05
[data]
kind = "hub"
repo = "ember-tests/blobs"
test_split = "test"
target = "label"
classes = true
missing = "mean"
standardize = true
[train]
epochs = 6
batch_size = 8
"#;

/// Runs the ember binary with the cache at `cache`, the hub unreachable, and `offline`.
fn ember_with_cache(cache: &Path, offline: bool, dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(args)
        .current_dir(dir)
        .env("HF_HUB_CACHE", cache)
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env("HF_HUB_OFFLINE", if offline { "1" } else { "0" })
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

/// `kind = "hub"`: a dataset's train split in two parquet shards and its test split, read
/// from a cache laid out as the hub's parquet conversion; trained, resumed, and predicted
/// on with the class names of all shards.
#[test]
fn a_hub_dataset_trains_resumes_and_predicts_from_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    fake_table_cache(&cache);
    std::fs::write(tmp.path().join("run.toml"), HUB_RUN.replace("epochs = 6", "epochs = 3")).unwrap();
    let started = Instant::now();
    let (ok, _, err) = ember_with_cache(&cache, true, tmp.path(), &["train", "run.toml", "--out", "run", "--quiet"]);
    assert!(ok, "{err}");
    assert!(started.elapsed() < Duration::from_secs(60));
    let (ok, _, err) =
        ember_with_cache(&cache, true, tmp.path(), &["train", "--resume", "run", "--epochs", "6", "--quiet"]);
    assert!(ok, "{err}");
    let metrics = std::fs::read_to_string(tmp.path().join("run/metrics.csv")).unwrap();
    let last = metrics.lines().last().unwrap().to_string();
    let header: Vec<&str> = metrics.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let fields: Vec<&str> = last.split(',').collect();
    assert_eq!(fields[col("epoch")], "6", "{metrics}");
    // Three well separated classes: the held-out split is learned.
    let acc: f64 = fields[col("eval_acc")].parse().unwrap();
    assert!(acc > 0.9, "{metrics}");

    // Predict on new rows: class names from every shard ("c" occurs only in the second).
    std::fs::write(tmp.path().join("new.csv"), "n,x2,x1\n0,2.1,-2.0\n1,0.1,0.1\n2,-1.9,2.1\n").unwrap();
    let (ok, _, err) =
        ember_with_cache(&cache, true, tmp.path(), &["predict", "run", "--input", "new.csv", "--out", "p.csv"]);
    assert!(ok, "{err}");
    let p = std::fs::read_to_string(tmp.path().join("p.csv")).unwrap();
    let lines: Vec<&str> = p.lines().collect();
    assert_eq!(lines[0], "id,prediction,p_a,p_b,p_c", "{p}");
    let predicted: Vec<&str> = lines[1..].iter().map(|l| l.split(',').nth(1).unwrap()).collect();
    assert_eq!(predicted, ["a", "b", "c"], "{p}");
}

/// Without `HF_HUB_OFFLINE` and with the hub unreachable, the cache's files are used with
/// a notice saying the hub was not asked; a split the cache lacks is an error naming the
/// dataset, the cache folder and the hub.
#[test]
fn a_hub_dataset_falls_back_to_the_cache_and_names_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    fake_table_cache(&cache);
    let cfg = HUB_RUN.replace("epochs = 6", "epochs = 1");
    std::fs::write(tmp.path().join("run.toml"), &cfg).unwrap();
    let (ok, _, err) = ember_with_cache(&cache, false, tmp.path(), &["train", "run.toml", "--out", "run"]);
    assert!(ok, "{err}");
    assert!(err.contains("the hub could not be asked") && err.contains("127.0.0.1:9"), "{err}");

    std::fs::write(tmp.path().join("bad.toml"), cfg.replace("test_split = \"test\"", "test_split = \"validation\""))
        .unwrap();
    let (ok, _, err) = ember_with_cache(&cache, true, tmp.path(), &["train", "bad.toml", "--out", "bad"]);
    assert!(!ok);
    assert!(err.contains("ember-tests/blobs") && err.contains("\"validation\""), "{err}");
    assert!(err.contains("HF_HUB_OFFLINE") && err.contains(&cache.display().to_string()), "{err}");
}

/// Shards are one table: labels encoded over all of them, missing features filled with
/// the mean over all of them, rows in shard order.
#[test]
fn parquet_shards_read_as_one_table() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hub/tables/default/train");
    let files = [dir.join("0000.parquet"), dir.join("0001.parquet")];
    let spec = ember::data::csv::TableSpec {
        target: vec!["label".into()],
        classes: true,
        missing: ember::data::csv::Missing::Mean,
        ..Default::default()
    };
    let t = ember::data::parquet_table::read_parquet_tables(&files, &spec).unwrap();
    assert_eq!(t.class_names, ["a", "b", "c"]);
    assert_eq!(t.len(), 48);
    assert_eq!(t.imputed, 1);
    let x = t.inputs.to_vec2::<f32>().unwrap();
    // x1 of row 3 (0-based) is null: the mean of the other 47 x1 values of both shards.
    let others: Vec<f64> = (0..48).filter(|&i| i != 3).map(|i| x[i][0] as f64).collect();
    let mean = others.iter().sum::<f64>() / 47.0;
    assert!((x[3][0] as f64 - mean).abs() < 1e-5, "{} vs {mean}", x[3][0]);
    let y = t.target_values.to_vec1::<i64>().unwrap();
    assert_eq!(&y[..4], &[0, 1, 0, 1]);
    assert_eq!(&y[24..27], &[0, 1, 2]);
    // One shard alone would name only its own classes.
    let one = ember::data::parquet_table::read_parquet_tables(&files[..1], &spec).unwrap();
    assert_eq!(one.class_names, ["a", "b"]);
}

/// A hub serving the `tests/fixtures/hub/tables` dataset as `ember-tests/blobs`: the tree
/// API lists a split's files, `resolve` serves them. Returns the endpoint and a log of
/// request lines.
fn fake_table_hub() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = log.clone();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hub/tables");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (seen, root) = (seen.clone(), root.clone());
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
                let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let path = target.split('?').next().unwrap_or("");
                let tree = "/api/datasets/ember-tests/blobs/tree/refs%2Fconvert%2Fparquet/";
                let resolve = "/datasets/ember-tests/blobs/resolve/refs%2Fconvert%2Fparquet/";
                let answer = if let Some(dir) = path.strip_prefix(tree) {
                    let listed: Vec<String> = std::fs::read_dir(root.join(dir))
                        .map(|entries| {
                            let mut names: Vec<String> =
                                entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
                            names.sort();
                            names
                                .iter()
                                .map(|n| {
                                    let size = std::fs::metadata(root.join(dir).join(n)).unwrap().len();
                                    format!(r#"{{"type":"file","oid":"{n}","size":{size},"path":"{dir}/{n}"}}"#)
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    if listed.is_empty() {
                        None
                    } else {
                        Some(("application/json", format!("[{}]", listed.join(",")).into_bytes(), String::new()))
                    }
                } else if let Some(file) = path.strip_prefix(resolve) {
                    std::fs::read(root.join(file)).ok().map(|body| {
                        let extra = format!(
                            "etag: \"{0}\"\r\nx-linked-etag: \"{0}\"\r\nx-linked-size: {1}\r\nx-repo-commit: {COMMIT}\r\n",
                            file.replace('/', "-"),
                            body.len()
                        );
                        ("application/octet-stream", body, extra)
                    })
                } else {
                    None
                };
                let Some((kind, body, extra)) = answer else {
                    let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
                    continue;
                };
                let head =
                    format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: {kind}\r\n{extra}\r\n", body.len());
                stream.write_all(head.as_bytes()).unwrap();
                if method == "GET" {
                    stream.write_all(&body).unwrap();
                }
            });
        }
    });
    (endpoint, log)
}

/// Online, a hub dataset's shards are listed by the hub and downloaded into the cache;
/// the next run finds them there (the hub is asked for the list, not the files), and an
/// offline run reads the cache alone.
#[test]
fn a_hub_dataset_is_listed_downloaded_and_then_read_from_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let (endpoint, log) = fake_table_hub();
    std::fs::write(tmp.path().join("run.toml"), HUB_RUN.replace("epochs = 6", "epochs = 1")).unwrap();
    let train = |out: &str, offline: bool| {
        let run = Command::new(env!("CARGO_BIN_EXE_ember"))
            .args(["train", "run.toml", "--out", out, "--quiet"])
            .current_dir(tmp.path())
            .env("HF_HUB_CACHE", &cache)
            .env("HF_ENDPOINT", &endpoint)
            .env("HF_HUB_OFFLINE", if offline { "1" } else { "0" })
            .output()
            .unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    };
    train("a", false);
    let first: Vec<String> = std::mem::take(&mut *log.lock().unwrap());
    let gets = |log: &[String]| log.iter().filter(|l| l.starts_with("GET") && l.contains("/resolve/")).count();
    assert_eq!(gets(&first), 3, "{first:#?}");
    let snapshot = cache.join(format!("datasets--ember-tests--blobs/snapshots/{COMMIT}/default"));
    for file in ["train/0000.parquet", "train/0001.parquet", "test/0000.parquet"] {
        assert!(snapshot.join(file).is_file(), "{file} not cached: {:?}", files_under(&cache));
    }
    train("b", false);
    let second: Vec<String> = std::mem::take(&mut *log.lock().unwrap());
    assert_eq!(gets(&second), 0, "{second:#?}");
    assert!(second.iter().any(|l| l.contains("/tree/")), "{second:#?}");
    train("c", true);
    assert!(log.lock().unwrap().is_empty(), "offline, yet: {:?}", log.lock().unwrap());
    // The same data, whichever way it came: the same metrics.
    let metrics = |run: &str| {
        let text = std::fs::read_to_string(tmp.path().join(run).join("metrics.csv")).unwrap();
        text.lines().nth(1).unwrap().split(',').take(5).collect::<Vec<_>>().join(",")
    };
    assert_eq!(metrics("a"), metrics("b"));
    assert_eq!(metrics("a"), metrics("c"));
}
