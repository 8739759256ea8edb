//! The `ember` command line: `ember plugins`, `ember parity`.

fn main() {
    let code = ember::cli::run(std::env::args_os(), &mut std::io::stdout(), &mut std::io::stderr());
    std::process::exit(code);
}
