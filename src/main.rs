//! The `ember` command line: `ember train`, `ember plugins`, `ember parity`, ...
//! (the `ember-cli` crate; this binary links the built-in plugins through it).

fn main() {
    ember_cli::main()
}
