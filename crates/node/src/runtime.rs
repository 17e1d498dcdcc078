//! Process set-up shared by the binaries: logging, shutdown signals, and
//! exit statuses.
//!
//! # Exit statuses
//!
//! Every binary exits 0 on success and otherwise with [`exit_code`] of its
//! error's [`Fault`]: 2 for the caller's fault (a usage error: a flag or
//! setting that cannot work), as clap does for a flag it cannot parse, and
//! 1 for anything else (the data, the disk, the network). A usage error
//! found after parsing, such as a datanode name that is not valid, thus
//! exits as a malformed flag does.

use std::{io::IsTerminal, process::ExitCode};

use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

pub use journal::Fault;

/// The exit status for a usage error, as clap uses for a bad flag.
pub const USAGE_ERROR: u8 = 2;

/// The exit status for a failure whose fault is `fault`: [`USAGE_ERROR`]
/// (2) for [`Fault::Caller`], 1 otherwise. The one mapping every binary
/// uses (see the module docs).
pub fn exit_status(fault: Fault) -> u8 {
    match fault {
        Fault::Caller => USAGE_ERROR,
        Fault::Data | Fault::Io => 1,
    }
}

/// [`exit_status`] as what `main` returns.
pub fn exit_code(fault: Fault) -> ExitCode {
    ExitCode::from(exit_status(fault))
}

/// Logs to stderr with `tracing`, at the level `RUST_LOG` gives (default
/// `info`). Colours only when stderr is a terminal, so that log files and
/// `docker logs` stay plain text.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A second call (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Parses a binary's configuration from its flags and the environment,
/// where an empty variable whose name starts with `env_prefix` counts as
/// unset.
///
/// Compose files write `CLIENT_COUNT: ${CLIENT_COUNT:-}` to pass a variable
/// only when the person running them set it; clap alone would reject the
/// empty value (or take it for a value). An empty `TZ` counts as unset too,
/// so that the time stamps follow `/etc/localtime` (the host's zone, which
/// the compose files mount) unless someone sets `TZ`. Call this first thing
/// in `main`, before any thread exists: it edits the process environment.
pub fn parse_config<C: clap::Parser>(env_prefix: &str) -> C {
    let empty: Vec<_> = std::env::vars_os()
        .filter(|(name, value)| {
            value.is_empty()
                && name
                    .to_str()
                    .is_some_and(|name| name.starts_with(env_prefix) || name == "TZ")
        })
        .map(|(name, _)| name)
        .collect();
    for name in empty {
        std::env::remove_var(name);
    }
    C::parse()
}

/// Runs `main` on a multi-threaded Tokio runtime; for binaries whose
/// configuration must be parsed before any thread starts.
pub fn block_on<F: std::future::Future>(main: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("start the Tokio runtime")
        .block_on(main)
}

/// Runs `main` on a current-thread Tokio runtime: every task on the
/// calling thread, blocking work (the journal's fsync) on Tokio's blocking
/// pool.
///
/// For the headnode and the datanodes, whose work is one task (the router)
/// or one session (the link): a work-stealing pool made them pay for
/// cross-thread wake-ups, futex sleeps and allocator contention on every
/// batch, much of their CPU per message (figures in docs/PERFORMANCE.md).
///
/// Once `main` returns, blocking work still running gets
/// [`BLOCKING_GRACE`] to finish (an fsync in flight), not more: a DNS
/// lookup of a peer that is gone can hang for many seconds, and `docker
/// stop` must not wait for it.
pub fn block_on_current_thread<F: std::future::Future>(main: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("start the Tokio runtime");
    let output = runtime.block_on(main);
    runtime.shutdown_timeout(BLOCKING_GRACE);
    output
}

/// How long a node waits, once done, for its blocking work to finish.
pub const BLOCKING_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// Like [`block_on_current_thread`], but returns as soon as `main` does,
/// without waiting for blocking work still running (a DNS lookup of a peer
/// that never answers); and hands back the runtime's failure to start
/// instead of panicking, for binaries that report it themselves.
///
/// For the client: one connection, one thread, which leaves the cores to
/// the nodes it talks to when they share the machine.
pub fn block_on_current_thread_detached<F: std::future::Future>(
    main: F,
) -> std::io::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let output = runtime.block_on(main);
    runtime.shutdown_background();
    Ok(output)
}

/// A token cancelled on the first SIGINT or SIGTERM.
///
/// A node is PID 1 in its container, where the kernel installs no default
/// handler: without this, `docker stop` would wait 10 s and then kill it. A
/// second signal exits at once, for the impatient person at a terminal.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing requests in flight");
        cancel.cancel();
        wait_for_signal().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
    token
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install the SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install the SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_exit_2_and_every_other_failure_1() {
        assert_eq!(exit_status(Fault::Caller), 2);
        assert_eq!(exit_status(Fault::Data), 1);
        assert_eq!(exit_status(Fault::Io), 1);
        assert_eq!(exit_code(Fault::Caller), ExitCode::from(2));
        assert_eq!(exit_code(Fault::Io), ExitCode::FAILURE);
    }
}
