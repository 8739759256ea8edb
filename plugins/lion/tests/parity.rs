//! The `lion` plugin against the reference trajectories in lion.json, through the same
//! code as `ember parity`, and the plugin as users meet it: listed and buildable by name.

use ember_lion as _;

#[test]
fn lion_matches_the_reference() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lion.json");
    let file = ember::parity::load(&path).unwrap();
    assert!(!file.cases.is_empty());
    for (i, case) in file.cases.iter().enumerate() {
        let r = ember::parity::run_case(case, i);
        assert!(r.passed(), "{}: {:?}", r.id, r.outcome);
    }
}

#[test]
fn lion_is_registered_with_its_defaults_and_checks_its_config() {
    let info = ember::core::registry::plugins(ember::core::Kind::Optimizer);
    let lion = info.iter().find(|p| p.name == "lion").expect("lion is registered");
    assert_eq!(lion.module, "ember_lion::lion");
    let opt = ember::core::optimizer("lion", &Default::default(), &Default::default()).unwrap();
    assert_eq!(opt.lr(), 1e-4);
    let bad: ember::core::Config = toml::from_str("betas = [0.9, 1.0]").unwrap();
    let e = ember::core::optimizer("lion", &bad, &Default::default()).unwrap_err().to_string();
    assert_eq!(e, "lion.betas = [0.9, 1.0] is invalid: expected two numbers in [0, 1)");
}
