//! The `headnode` binary: parses its configuration, binds the port, and
//! runs [`headnode::run`] until SIGTERM or SIGINT.

use std::process::ExitCode;

fn main() -> ExitCode {
    let config: headnode::Config = node::runtime::parse_config("HEADNODE_");
    let owner = node::owner::adopt(config.run_as_owner, &config.dir);
    node::runtime::init_tracing();
    owner.log();
    if let Some(path) = &config.create_cluster_secret {
        return create_secret(path);
    }
    // One thread: the router is one task anyway, and a work-stealing pool
    // cost about 2.2 us of CPU per message instead of 1.2.
    node::runtime::block_on_current_thread(serve(config))
}

async fn serve(config: headnode::Config) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(&config.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!("cannot listen on --listen {}: {err}", config.listen);
            return ExitCode::FAILURE;
        }
    };
    let shutdown = node::runtime::shutdown_on_signals();
    match headnode::run(config, listener, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            node::runtime::exit_code(err.fault())
        }
    }
}

/// `--create-cluster-secret PATH`: a new secret unless one is there.
fn create_secret(path: &std::path::Path) -> ExitCode {
    match node::secret::create(path) {
        Ok(true) => tracing::info!(path = %path.display(), "created a new cluster secret"),
        Ok(false) => tracing::info!(path = %path.display(), "a cluster secret is there; kept"),
        Err(err) => {
            tracing::error!(
                "--create-cluster-secret {}: {err}; give a path in a folder this user can write",
                path.display()
            );
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
