//! `ember-signum`: Ember's full command line with the Signum optimizer linked in, so
//! `ember-signum plugins --kind optimizer` lists `signum` and `ember-signum train run.toml`
//! can train with `[optimizer] name = "signum"`. Built with `--features cli`, so the
//! plugin library itself depends on `ember-core` alone.

use ember_signum as _;

fn main() {
    ember_cli::main()
}
