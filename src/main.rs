//! The `ember` command line: `ember train`, `ember plugins`, `ember parity`, ...

fn main() {
    ember::cli::main()
}
