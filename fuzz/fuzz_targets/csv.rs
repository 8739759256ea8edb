#![no_main]
// Body in src/fuzzing.rs, shared with the corpus replay in tests/fuzz_corpus.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| ember_cli::fuzzing::csv(data));
