//! The `audit` binary: parses the configuration, runs [`audit::run`] and
//! prints the report as a table or, with `--json`, as JSON. Exits 0 when
//! every guarantee holds, 1 when one is broken (or a file cannot be read),
//! 2 for a usage error (clap's own status for a bad command line, and
//! [`journal::Fault::Caller`] through `node::runtime::exit_code`).

use std::{
    io::{self, Write},
    process::ExitCode,
};

fn main() -> ExitCode {
    let config = audit::Config::from_env_and_args();
    let report = match audit::run(&config) {
        Ok(report) => report,
        Err(err) => {
            eprintln!("audit: {err}");
            return node::runtime::exit_code(err.fault());
        }
    };
    let text = if config.json {
        serde_json::to_string_pretty(&report).expect("a report serializes") + "\n"
    } else {
        audit::render::table(&report)
    };
    // stdout may be a closed pipe (`audit | head`): the status still tells.
    let _ = io::stdout().lock().write_all(text.as_bytes());
    if report.holds {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
