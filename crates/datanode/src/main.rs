//! The `datanode` binary: parses its configuration and runs
//! [`datanode::run`] until SIGTERM or SIGINT. Exit status: 0 after a clean
//! shutdown, otherwise [`node::runtime::exit_code`] of the error's fault (2
//! for a bad `--name`, as for any usage error).

use std::process::ExitCode;

fn main() -> ExitCode {
    let config: datanode::Config = node::runtime::parse_config("DATANODE_");
    let owner = node::owner::adopt(config.run_as_owner, &config.dir);
    node::runtime::init_tracing();
    owner.log();
    // One link, one session: one thread serves it.
    node::runtime::block_on_current_thread(serve(config))
}

async fn serve(config: datanode::Config) -> ExitCode {
    let shutdown = node::runtime::shutdown_on_signals();
    match datanode::run(config, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            node::runtime::exit_code(err.fault())
        }
    }
}
