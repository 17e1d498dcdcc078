//! The `datanode` binary: parses its configuration and runs
//! [`datanode::run`] until SIGTERM or SIGINT.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let config = datanode::Config::parse();
    node::runtime::init_tracing();
    let shutdown = node::runtime::shutdown_on_signals();
    match datanode::run(config, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            ExitCode::FAILURE
        }
    }
}
