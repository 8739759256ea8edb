//! The committed PyTorch fixtures pass, and `ember parity` behaves as PARITY.md says:
//! output lines, exit statuses, --filter, --json, and a FAIL line (never a crash) for
//! every problem inside a case.

use std::process::Command;

use crate::common;

use ember_parity::{load, run_case, Outcome};
use serde_json::{json, Value};

#[test]
fn every_committed_fixture_passes() {
    let files = common::parity_fixtures();
    assert!(!files.is_empty(), "no fixtures found");
    let mut failures = Vec::new();
    let mut total = 0;
    for path in &files {
        let file = load(path).unwrap();
        assert!(file.source.starts_with("torch "), "{}: source should name the torch version", path.display());
        for (i, case) in file.cases.iter().enumerate() {
            total += 1;
            let r = run_case(case, i);
            if let Outcome::Fail { reason } = r.outcome {
                failures.push(format!("{}: {} {reason}", path.display(), r.id));
            }
        }
    }
    assert!(total > 200, "only {total} cases");
    assert!(failures.is_empty(), "{} of {total} cases failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn fixtures_cover_every_builtin_activation_in_both_dtypes() {
    let mut covered = std::collections::BTreeSet::new();
    for path in common::parity_fixtures() {
        for case in load(&path).unwrap().cases {
            if case["kind"] == "activation" {
                covered
                    .insert((case["name"].as_str().unwrap().to_string(), case["dtype"].as_str().unwrap().to_string()));
            }
        }
    }
    for p in ember::core::registry::plugins(ember::core::Kind::Activation) {
        for dtype in ["f32", "f64"] {
            assert!(covered.contains(&(p.name.to_string(), dtype.to_string())), "no {dtype} fixture for {}", p.name);
        }
    }
}

fn ember(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ember")).args(args).output().unwrap();
    (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn parity_file(cases: Value) -> String {
    json!({ "format": "ember-parity/1", "source": "hand-written test", "cases": cases }).to_string()
}

fn leaky(id: &str, name: &str, expected_output: Value) -> Value {
    json!({
        "id": id, "kind": "activation", "name": name, "config": { "negative_slope": 0.2 }, "dtype": "f64",
        "inputs": { "input": [-1.0, 0.0, 2.0] },
        "expected": { "output": expected_output, "grad_input": [0.2, 0.2, 1.0] }
    })
}

#[test]
fn the_binary_checks_the_committed_fixtures_and_exits_0() {
    let files = common::parity_fixtures();
    let args: Vec<&str> = std::iter::once("parity").chain(files.iter().map(|p| p.to_str().unwrap())).collect();
    let (code, out, err) = ember(&args);
    assert_eq!(code, 0, "{out}{err}");
    let last = out.lines().last().unwrap();
    let n: usize = files.iter().map(|p| load(p).unwrap().cases.len()).sum();
    assert_eq!(last, format!("{n} passed, 0 failed"));
    assert!(out.lines().next().unwrap().starts_with("ok    "), "{out}");
}

#[test]
fn an_unknown_plugin_is_a_fail_line_with_a_hint_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let cases =
        json!([leaky("good", "leaky_relu", json!([-0.2, 0.0, 2.0])), leaky("typo", "leaky_rellu", json!([0.0]))]);
    let f = write(&dir, "cases.json", &parity_file(cases));
    let (code, out, err) = ember(&["parity", &f]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("ok    good  "), "{out}");
    assert!(lines[1].starts_with("FAIL  typo  unknown activation 'leaky_rellu'; did you mean 'leaky_relu'?"), "{out}");
    assert_eq!(lines[2], "1 passed, 1 failed");
}

#[test]
fn a_wrong_number_names_the_element_got_expected_and_tolerance() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(&dir, "c.json", &parity_file(json!([leaky("off", "leaky_relu", json!([-0.2, 0.0, 2.001]))])));
    let (code, out, _) = ember(&["parity", &f]);
    assert_eq!(code, 1);
    assert!(out.contains("FAIL  off  output, element 2: got 2 expected 2.001 (abs 1.0e-3 > atol 1e-12"), "{out}");
}

#[test]
fn problems_inside_a_case_are_fail_lines_not_crashes() {
    let base = leaky("x", "leaky_relu", json!([-0.2, 0.0, 2.0]));
    let with = |id: &str, f: &dyn Fn(&mut Value)| {
        let mut c = base.clone();
        c["id"] = json!(id);
        f(&mut c);
        c
    };
    let cases = json!([
        with("badkey", &|c| c["config"] = json!({ "slope": 0.2 })),
        with("badvalue", &|c| {
            c["name"] = json!("softplus");
            c["config"] = json!({ "beta": -1 })
        }),
        with("noinput", &|c| c["inputs"] = json!({})),
        with("ragged", &|c| c["inputs"]["input"] = json!([[1.0, 2.0], [3.0]])),
        with("shape", &|c| c["expected"]["output"] = json!([[-0.2, 0.0, 2.0]])),
        with("dtype", &|c| c["dtype"] = json!("f16")),
        with("kind", &|c| c["kind"] = json!("metrik")),
        with("extra", &|c| c["expected"]["grad_bias"] = json!([1.0])),
        with("optim", &|c| {
            c["kind"] = json!("optimizer");
            c["name"] = json!("adamm");
            c["expected"] = json!({"trajectory": []})
        }),
        with("loss", &|c| {
            c["kind"] = json!("loss");
            c["name"] = json!("mse");
            c["config"] = json!({})
        }),
        json!("not an object"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let f = write(&dir, "c.json", &parity_file(cases));
    let (code, out, err) = ember(&["parity", &f]);
    assert_eq!(code, 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let expect = [
        "FAIL  badkey  unknown key 'slope' for activation 'leaky_relu'; did you mean 'negative_slope'?",
        "FAIL  badvalue  softplus.beta = -1.0 is invalid: must be > 0",
        "FAIL  noinput  missing input 'input'",
        "FAIL  ragged  inputs.input: ragged nested array",
        "FAIL  shape  output: shape [3], expected [1, 3]",
        "FAIL  dtype  dtype \"f16\" is not supported; use \"f32\" or \"f64\"",
        "FAIL  kind  unknown kind 'metrik'",
        "FAIL  extra  expected.grad_bias is not something a activation case produces",
        "FAIL  optim  unknown optimizer 'adamm'; did you mean 'adam'?",
        "FAIL  loss  missing input 'target'",
        "FAIL  <case 10>  a case must be a JSON object",
    ];
    let lines: Vec<String> = out.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    for (line, want) in lines.iter().zip(expect) {
        let want = want.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(line.starts_with(&want), "got  {line}\nwant {want}");
    }
    assert_eq!(out.lines().last().unwrap(), "0 passed, 11 failed");
}

#[test]
fn unreadable_or_malformed_files_exit_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(&dir, "bad.json", "{\n  \"format\": \"ember-parity/1\",\n  \"cases\": [,]\n}\n");
    let (code, out, err) = ember(&["parity", &bad]);
    assert_eq!(code, 2, "{out}");
    assert!(err.contains("bad.json: malformed JSON at line 3, column"), "{err}");

    let other = write(&dir, "other.json", r#"{"format": "something/2", "cases": []}"#);
    let (code, _, err) = ember(&["parity", &other]);
    assert_eq!(code, 2);
    assert!(err.contains("other.json: not a parity file: format is \"something/2\""), "{err}");

    let (code, _, err) = ember(&["parity", "/nonexistent/x.json"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/x.json: cannot read"), "{err}");
}

#[test]
fn filter_and_json_output() {
    let dir = tempfile::tempdir().unwrap();
    let cases = json!([leaky("keep/a", "leaky_relu", json!([-0.2, 0.0, 2.0])), leaky("drop/b", "nope", json!([0.0]))]);
    let f = write(&dir, "c.json", &parity_file(cases));
    let (code, out, _) = ember(&["parity", &f, "--filter", "keep"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.lines().count(), 2);

    let (code, out, _) = ember(&["parity", &f, "--json"]);
    assert_eq!(code, 1);
    let objs: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(objs.len(), 3);
    assert_eq!(objs[0]["id"], "keep/a");
    assert_eq!(objs[0]["status"], "ok");
    assert!(objs[0]["max_abs"].is_number());
    assert_eq!(objs[1]["status"], "fail");
    assert!(objs[1]["reason"].as_str().unwrap().starts_with("unknown activation 'nope'"));
    assert_eq!(objs[2], json!({ "summary": true, "passed": 1, "failed": 1 }));
}

#[test]
fn parity_runs_that_would_check_nothing_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(&dir, "empty.json", r#"{"format": "ember-parity/1", "cases": []}"#);
    let (code, out, err) = ember(&["parity", &empty]);
    assert_eq!(code, 2, "{out}");
    assert!(err.contains("empty.json: holds no cases"), "{err}");

    let cases =
        json!([leaky("same", "leaky_relu", json!([-0.2, 0.0, 2.0])), leaky("same", "leaky_relu", json!([0.0]))]);
    let dup = write(&dir, "dup.json", &parity_file(cases));
    let (code, _, err) = ember(&["parity", &dup]);
    assert_eq!(code, 2);
    assert!(err.contains("dup.json: duplicate case id \"same\" (cases 0 and 1)"), "{err}");

    let one = write(&dir, "one.json", &parity_file(json!([leaky("keep/a", "leaky_relu", json!([-0.2, 0.0, 2.0]))])));
    let (code, out, err) = ember(&["parity", &one, "--filter", "nomatch"]);
    assert_eq!(code, 2, "{out}");
    assert!(err.contains("--filter \"nomatch\" matches none of the 1 case ids"), "{err}");

    // A device that never ends is read only up to the cap.
    let (code, _, err) = ember(&["parity", "/dev/zero"]);
    assert_eq!(code, 2);
    assert!(err.contains("/dev/zero: larger than 256.0 MiB, the limit for a parity file"), "{err}");
}
