//! The `datanode` binary: parses its configuration and runs
//! [`datanode::run`] until SIGTERM or SIGINT.

use std::process::ExitCode;

fn main() -> ExitCode {
    let config: datanode::Config = node::runtime::parse_config("DATANODE_");
    node::runtime::init_tracing();
    // One link, one session: a single thread serves it without the
    // cross-thread wake-ups and futex sleeps of a work-stealing pool, which
    // cost about a quarter of the datanode's CPU (docs/PERFORMANCE.md).
    // Blocking work (the journal's fsync) still goes to Tokio's blocking
    // pool.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("start the Tokio runtime")
        .block_on(serve(config))
}

async fn serve(config: datanode::Config) -> ExitCode {
    let shutdown = node::runtime::shutdown_on_signals();
    match datanode::run(config, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            ExitCode::FAILURE
        }
    }
}
