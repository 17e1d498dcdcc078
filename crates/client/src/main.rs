//! The `client` binary: parses the configuration and runs [`client::run`]
//! (or [`client::ping`]); the exit status is 0 only when every message was
//! sent and confirmed (a run stopped by SIGTERM or Ctrl-C exits 1, after
//! recording the answers to what it had sent).

use std::process::ExitCode;

fn main() -> ExitCode {
    let config = client::Config::from_env_and_args();
    node::runtime::init_tracing();
    // One thread: the client is one connection, and leaves the cores to the
    // nodes it talks to when they share the machine.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("client: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let code = if config.ping {
        match runtime.block_on(client::ping(&config)) {
            Ok(()) => {
                println!("PONG from {}", config.connect);
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("client: ping failed: {err}");
                ExitCode::FAILURE
            }
        }
    } else {
        // SIGTERM (`docker stop`) or Ctrl-C: stop sending, wait for the
        // answers owed, record them, and exit.
        let run = async { client::run(&config, node::runtime::shutdown_on_signals()).await };
        match runtime.block_on(run) {
            Ok(summary) => {
                println!("{summary}");
                if let Some(failure) = &summary.failure {
                    eprintln!("client: {failure}");
                } else if summary.interrupted {
                    eprintln!(
                        "client: interrupted: stopped sending after {} message(s), \
                         every one of them answered",
                        summary.sent
                    );
                }
                if summary.unanswered() > 0 {
                    eprintln!(
                        "client: {} message(s) sent but not answered; they may or may not \
                         have been stored, and were not resent",
                        summary.unanswered()
                    );
                }
                if summary.all_confirmed() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(err) => {
                eprintln!("client: {err}");
                ExitCode::FAILURE
            }
        }
    };
    // Do not wait for anything left (a read of standard input).
    runtime.shutdown_background();
    code
}
