//! The plugin registry as users meet it: building plugins by name from TOML or JSON
//! tables, every error message, third-party plugin crates, and `ember plugins`.

// Link the two test-fixture plugin crates: `cube` (a third-party activation) and `twin`
// (registered by both, so a duplicate).
use ember_fixture_plugin_a as _;
use ember_fixture_plugin_b as _;

use candle_core::{DType, Device, Tensor};
use ember::core::registry::{plugins, Kind};
use ember::core::{activation, BuildContext, Config, Error};

const BUILTIN_ACTIVATIONS: [&str; 14] = [
    "elu",
    "gelu",
    "hardtanh",
    "leaky_relu",
    "log_softmax",
    "mish",
    "prelu",
    "relu",
    "selu",
    "sigmoid",
    "silu",
    "softmax",
    "softplus",
    "tanh",
];

fn toml(text: &str) -> Config {
    toml::from_str(text).expect("valid TOML")
}

fn json(text: &str) -> Config {
    serde_json::from_str(text).expect("valid JSON")
}

fn ctx() -> BuildContext {
    BuildContext::default()
}

fn build_err(name: &str, config: &Config) -> String {
    activation(name, config, &ctx()).expect_err("should fail").to_string()
}

fn apply(name: &str, config: &Config, x: &[f64]) -> Vec<f64> {
    let act = activation(name, config, &BuildContext::new(Device::Cpu, DType::F64)).unwrap();
    let x = Tensor::new(x, &Device::Cpu).unwrap();
    act.forward(&x).unwrap().to_vec1().unwrap()
}

#[test]
fn every_builtin_activation_is_registered_once_and_builds_with_defaults() {
    let builtin: Vec<&str> = plugins(Kind::Activation)
        .iter()
        .filter(|p| p.module.starts_with("ember_activations::"))
        .map(|p| p.name)
        .collect();
    assert_eq!(builtin, BUILTIN_ACTIVATIONS);
    for name in BUILTIN_ACTIVATIONS {
        let y = apply(name, &Config::new(), &[-1.0, 0.5, 2.0]);
        assert_eq!(y.len(), 3, "{name}");
    }
}

#[test]
fn builds_from_toml_and_json_tables_and_fills_pytorch_defaults() {
    assert_eq!(apply("leaky_relu", &toml("negative_slope = 0.2"), &[-1.0]), [-0.2]);
    assert_eq!(apply("leaky_relu", &json(r#"{"negative_slope": 0.2}"#), &[-1.0]), [-0.2]);
    // Absent keys take PyTorch's defaults: negative_slope = 0.01.
    assert_eq!(apply("leaky_relu", &Config::new(), &[-1.0]), [-0.01]);
    // An integer where a float is expected is widened: softplus(beta = 2) at 0 is ln(2) / 2.
    let y = apply("softplus", &toml("beta = 2"), &[0.0]);
    assert!((y[0] - std::f64::consts::LN_2 / 2.0).abs() < 1e-15);
    // JSON null is the same as leaving an optional key out: softmax's implicit dim.
    assert_eq!(apply("softmax", &json(r#"{"dim": null}"#), &[0.0, 0.0]), [0.5, 0.5]);
    assert_eq!(apply("hardtanh", &toml("min_val = -2\nmax_val = 3"), &[-5.0, 5.0]), [-2.0, 3.0]);
}

#[test]
fn unknown_name_lists_the_known_names_sorted_and_the_closest() {
    let e = build_err("leaky_rellu", &Config::new());
    assert!(e.starts_with("unknown activation 'leaky_rellu'; did you mean 'leaky_relu'?"), "{e}");
    let known = e.split("Known activations: ").nth(1).expect("lists the known names");
    let known = known.split(". ").next().unwrap();
    let names: Vec<&str> = known.split(", ").collect();
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(names, sorted, "sorted, each name once");
    for name in BUILTIN_ACTIVATIONS.iter().chain(&["cube", "twin"]) {
        assert!(names.contains(name), "{name} missing from {e}");
    }
    match activation("rleu", &Config::new(), &ctx()) {
        Err(Error::UnknownPlugin { kind, suggestion, .. }) => {
            assert_eq!(kind, Kind::Activation);
            assert_eq!(suggestion.as_deref(), Some("relu"));
        }
        other => panic!("expected UnknownPlugin, got {other:?}"),
    }
}

#[test]
fn unknown_config_key_names_the_key_and_the_valid_keys() {
    let e = build_err("leaky_relu", &toml("negative_slop = 0.1"));
    assert_eq!(
        e,
        "unknown key 'negative_slop' for activation 'leaky_relu'; did you mean 'negative_slope'? Valid keys: negative_slope"
    );
    let e = build_err("softplus", &toml("beta = 1\nthreshhold = 3"));
    assert!(e.contains("did you mean 'threshold'? Valid keys: beta, threshold"), "{e}");
    // A key far from every valid one gets no misleading suggestion.
    let e = build_err("softplus", &toml("negative_slope = 0.1"));
    assert_eq!(e, "unknown key 'negative_slope' for activation 'softplus'; valid keys: beta, threshold");
    let e = build_err("relu", &toml("inplace = true"));
    assert_eq!(e, "unknown key 'inplace' for activation 'relu', which takes no hyperparameters");
}

#[test]
fn wrong_type_names_the_key_the_value_and_what_was_expected() {
    let e = build_err("leaky_relu", &toml("negative_slope = \"big\""));
    assert_eq!(e, "leaky_relu.negative_slope: expected a number, got \"big\" (a string)");
    let e = build_err("prelu", &toml("num_parameters = 1.5"));
    assert_eq!(e, "prelu.num_parameters: expected an integer, got 1.5 (a float)");
    let e = build_err("softmax", &json(r#"{"dim": [1]}"#));
    assert_eq!(e, "softmax.dim: expected an integer, got [1] (a list)");
    let e = build_err("gelu", &json(r#"{"approximate": true}"#));
    assert_eq!(e, "gelu.approximate: expected one of \"none\", \"tanh\", got true (a boolean)");
}

#[test]
fn out_of_range_values_name_the_key_the_value_and_the_allowed_range() {
    assert_eq!(build_err("softplus", &toml("beta = -1.0")), "softplus.beta = -1.0 is invalid: must be > 0");
    assert_eq!(build_err("softplus", &toml("beta = 0")), "softplus.beta = 0.0 is invalid: must be > 0");
    assert_eq!(
        build_err("hardtanh", &toml("min_val = 1.0\nmax_val = -1.0")),
        "hardtanh.max_val = -1.0 is invalid: must be greater than min_val (1.0)"
    );
    assert!(
        build_err("hardtanh", &toml("min_val = 0.5\nmax_val = 0.5")).starts_with("hardtanh.max_val = 0.5 is invalid")
    );
    assert_eq!(
        build_err("gelu", &toml("approximate = \"erf\"")),
        "gelu.approximate = \"erf\" is invalid: must be one of \"none\", \"tanh\""
    );
    assert_eq!(build_err("prelu", &toml("num_parameters = 0")), "prelu.num_parameters = 0 is invalid: must be >= 1");
    assert!(build_err("elu", &toml("alpha = nan")).starts_with("elu.alpha = nan is invalid"));
}

#[test]
fn a_name_registered_by_two_crates_fails_naming_both_modules() {
    match activation("twin", &Config::new(), &ctx()) {
        Err(e @ Error::DuplicatePlugin { .. }) => {
            let msg = e.to_string();
            assert!(msg.starts_with("activation 'twin' is registered 2 times, by "), "{msg}");
            assert!(msg.contains("ember_fixture_plugin_a::twin"), "{msg}");
            assert!(msg.contains("ember_fixture_plugin_b"), "{msg}");
        }
        other => panic!("expected DuplicatePlugin, got {other:?}"),
    }
}

#[test]
fn a_third_party_plugin_is_found_by_name_and_listed() {
    assert_eq!(apply("cube", &toml("scale = 2.0"), &[2.0, -1.0]), [16.0, -2.0]);
    assert_eq!(build_err("cube", &toml("scale = inf")), "cube.scale = inf is invalid: must be finite");

    let (code, text, _) = run_cli(&["plugins", "--kind", "activation"]);
    assert_eq!(code, 0);
    assert!(text.contains("  cube "), "{text}");
    assert!(text.contains("scale: float = 1.0"), "{text}");

    let (code, text, _) = run_cli(&["plugins", "--json"]);
    assert_eq!(code, 0);
    let list: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cube = list.as_array().unwrap().iter().find(|p| p["name"] == "cube").expect("cube listed");
    assert_eq!(cube["kind"], "activation");
    assert_eq!(cube["module"], "ember_fixture_plugin_a");
    assert_eq!(cube["params"][0]["name"], "scale");
    assert_eq!(cube["params"][0]["type"], "float");
    assert_eq!(cube["params"][0]["default"], 1.0);
}

#[test]
fn plugins_lists_every_activation_with_its_defaults() {
    let (code, text, _) = run_cli(&["plugins", "--kind", "activation"]);
    assert_eq!(code, 0);
    assert!(text.starts_with("activations (17)\n"), "{text}");
    for name in BUILTIN_ACTIVATIONS {
        assert!(text.contains(&format!("\n  {name} ")), "{name} missing:\n{text}");
    }
    for line in [
        "negative_slope: float = 0.01",
        "num_parameters: int = 1",
        "init: float = 0.25",
        "alpha: float = 1.0",
        "approximate: none|tanh = \"none\"",
        "beta: float = 1.0",
        "threshold: float = 20.0",
        "min_val: float = -1.0",
        "max_val: float = 1.0",
        "dim: int = None",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
}

#[test]
fn plugins_json_gives_kind_name_summary_module_and_params() {
    let (code, text, _) = run_cli(&["plugins", "--json"]);
    assert_eq!(code, 0);
    let list: serde_json::Value = serde_json::from_str(&text).unwrap();
    let list = list.as_array().unwrap();
    let registered: usize = Kind::ALL.iter().map(|k| plugins(*k).len()).sum();
    assert_eq!(list.len(), registered);
    for p in list {
        for key in ["kind", "name", "summary", "module"] {
            assert!(p[key].is_string(), "{key} in {p}");
        }
        for param in p["params"].as_array().unwrap() {
            for key in ["name", "type", "doc"] {
                assert!(param[key].is_string(), "{key} in {param}");
            }
            assert!(param.get("default").is_some(), "default in {param}");
        }
    }
    let gelu = list.iter().find(|p| p["name"] == "gelu").unwrap();
    assert_eq!(gelu["params"][0]["default"], "none");
    assert_eq!(gelu["params"][0]["choices"], serde_json::json!(["none", "tanh"]));
}

#[test]
fn plugins_accepts_plural_kinds_and_rejects_unknown_ones() {
    let (code, text, _) = run_cli(&["plugins", "--kind", "regularizers"]);
    assert_eq!(code, 0);
    assert!(text.starts_with("regularizers (5)\n"), "{text}");
    let (code, text, _) = run_cli(&["plugins", "--kind", "losses"]);
    assert_eq!(code, 0);
    assert!(text.starts_with("losses (20)\n"), "{text}");
    let (code, _, err) = run_cli(&["plugins", "--kind", "activatoin"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown plugin kind 'activatoin'; expected one of activation, loss"), "{err}");
}

fn run_cli(args: &[&str]) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = ember_cli::run(std::iter::once("ember").chain(args.iter().copied()), &mut out, &mut err);
    (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

#[test]
fn an_unknown_name_gets_no_far_fetched_suggestion_and_always_the_linking_hint() {
    let ctx = ember::core::BuildContext::default();
    let e = ember::core::optimizer("adabelief", &Default::default(), &ctx).unwrap_err().to_string();
    assert!(!e.contains("did you mean"), "{e}");
    assert!(e.contains("Known optimizers: adadelta, "), "{e}");
    assert!(e.ends_with("An optimizer from a crate of its own is registered only in a program that names that crate: add `use the_plugin_crate as _;`"), "{e}");
    let e = ember::core::loss("cross_entropi", &Default::default(), &ctx).unwrap_err().to_string();
    assert!(e.contains("did you mean 'cross_entropy'?") && e.contains("A loss from a crate of its own"), "{e}");
}
