//! `ember-lion`: Ember's full command line with the Lion optimizer linked in, so
//! `ember-lion plugins --kind optimizer` lists `lion` and `ember-lion train run.toml`
//! can train with `[optimizer] name = "lion"`. Built with `--features cli`, so the
//! plugin library itself depends on `ember-core` alone.

use ember_lion as _;

fn main() {
    ember_cli::main()
}
