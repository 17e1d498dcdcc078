//! The `server` binary: parses the configuration, binds, and runs
//! [`server::run`] until SIGINT or SIGTERM. Exit status: 0 after a clean
//! shutdown, otherwise [`node::runtime::exit_code`] of the error's fault.

use std::process::ExitCode;

use node::{runtime::exit_code, Fault};

fn main() -> ExitCode {
    let config: server::Config = node::runtime::parse_config("SERVER_");
    let owner = node::owner::adopt(config.run_as_owner, &config.dir);
    node::runtime::init_tracing();
    owner.log();
    node::runtime::block_on(serve(config))
}

async fn serve(config: server::Config) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(&config.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(addr = %config.listen, %err, "cannot listen");
            return exit_code(Fault::Io);
        }
    };
    let shutdown = node::runtime::shutdown_on_signals();
    match server::run(config, listener, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(%err, "server failed");
            exit_code(err.fault())
        }
    }
}
