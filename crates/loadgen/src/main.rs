//! `loadgen`: see the library docs. Exit status: 0 when every message was
//! confirmed (or every idle connection accepted), 2 when the run had errors,
//! 1 when it could not run at all.

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
            ExitCode::FAILURE
        }
    }
}
