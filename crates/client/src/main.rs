//! The `client` binary: parses the configuration and runs [`client::run`]
//! (or [`client::ping`]). The exit status is 0 only when every message was
//! sent and confirmed; 2 when a flag's value cannot work (clap's own
//! status for a bad command line, and [`client::Fault::Caller`]); 1 for
//! every other failure, including a run stopped by SIGTERM or Ctrl-C (after
//! recording the answers to what it had sent).

use std::process::ExitCode;

use client::{Config, Error, Summary};

fn main() -> ExitCode {
    let config = Config::from_env_and_args();
    let owner = node::owner::adopt(config.run_as_owner, config.log_dir());
    node::runtime::init_tracing();
    owner.log();
    match node::runtime::block_on_current_thread_detached(serve(config)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("client: cannot start the runtime: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> ExitCode {
    if config.ping {
        return match client::ping(&config).await {
            Ok(()) => {
                println!("PONG from {}", config.connect);
                ExitCode::SUCCESS
            }
            Err(err) => failed("ping failed: ", &err),
        };
    }
    // SIGTERM (`docker stop`) or Ctrl-C: stop sending, wait for the answers
    // owed, record them, and exit.
    match client::run(&config, node::runtime::shutdown_on_signals()).await {
        Ok(summary) => report(&summary),
        Err(err) => failed("", &err),
    }
}

/// Prints the summary and what went wrong; the exit status of the run.
fn report(summary: &Summary) -> ExitCode {
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
        summary
            .failure
            .as_ref()
            .map_or(ExitCode::FAILURE, exit_code)
    }
}

fn failed(context: &str, err: &Error) -> ExitCode {
    eprintln!("client: {context}{err}");
    exit_code(err)
}

/// 2 for the caller's mistakes, as clap exits for a bad command line.
fn exit_code(err: &Error) -> ExitCode {
    node::runtime::exit_code(err.fault())
}
