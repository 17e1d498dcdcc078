//! `loadgen`: see the library docs. Exit status: 0 when every message was
//! confirmed (or every idle connection accepted), 2 when the run had errors,
//! and when it could not run at all [`node::runtime::exit_code`] of the
//! error's fault (1: every [`loadgen::Error`] is I/O; clap's usage errors
//! are 2).

use std::process::ExitCode;

use loadgen::Config;

fn main() -> ExitCode {
    let config: Config = node::runtime::parse_config("LOADGEN_");
    node::runtime::init_tracing();
    match loadgen::run(&config) {
        Ok(outcome) => {
            print!("{}", outcome.render(config.json));
            if outcome.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        Err(err) => {
            eprintln!("loadgen: {err}");
            node::runtime::exit_code(err.fault())
        }
    }
}
