//! The `server` binary: parses the configuration, binds, and runs
//! [`server::run`] until SIGINT or SIGTERM.

use std::process::ExitCode;

fn main() -> ExitCode {
    let config: server::Config = node::runtime::parse_config("SERVER_");
    node::runtime::init_tracing();
    node::runtime::block_on(serve(config))
}

async fn serve(config: server::Config) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(&config.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(addr = %config.listen, %err, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = node::runtime::shutdown_on_signals();
    match server::run(config, listener, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(%err, "server failed");
            ExitCode::FAILURE
        }
    }
}
