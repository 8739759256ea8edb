//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`, seeds and every input the
//! fuzzers kept or crashed on) through the fuzz targets' bodies: none may panic. Each
//! input runs in a catch_unwind so a failure names the file.

use std::path::Path;

#[test]
fn the_fuzz_corpus_replays_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut replayed = 0;
    let mut panics = Vec::new();
    for (target, body) in ember_cli::fuzzing::TARGETS {
        let dir = root.join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{}: no corpus", dir.display());
        for file in files {
            let data = std::fs::read(&file).unwrap();
            if std::panic::catch_unwind(|| body(&data)).is_err() {
                panics.push(file.display().to_string());
            }
            replayed += 1;
        }
    }
    assert!(panics.is_empty(), "panicked on: {panics:#?}");
    assert!(replayed >= 4, "{replayed} inputs");
}

#[test]
fn the_fuzz_targets_reject_garbage_without_a_panic() {
    for (_, body) in ember_cli::fuzzing::TARGETS {
        for data in [&b""[..], b"\x00", b"\xff\xff\xff\xff\xff\xff\xff\xff", b"{", b"[model]\nsizes = [", b"\x1f\x8b"] {
            body(data);
        }
    }
}
