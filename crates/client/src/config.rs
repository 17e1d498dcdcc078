//! Command-line and environment configuration of the client.
//!
//! The flag names are a contract: compose files, health checks and scripts
//! use them. Every flag can also be set through its `CLIENT_*` variable.
//! Where flags overlap, one wins instead of clap rejecting the mix: a
//! container's environment also applies to a health check run inside it, so
//! `client --ping` must work even where `CLIENT_COUNT` is set.

use std::{num::NonZeroUsize, path::PathBuf, time::Duration};

use clap::{builder::BoolishValueParser, Parser};
use protocol::{parse_max_frame, ClientId, DEFAULT_MAX_FRAME, ENVELOPE_ALLOWANCE};

fn parse_client_id(text: &str) -> Result<ClientId, String> {
    ClientId::new(text).ok_or_else(|| {
        format!("'{text}': a client id is 1 to 64 characters from A-Z a-z 0-9 . _ -")
    })
}

/// Sends messages to a server or headnode, one frame each, records every
/// answer in a log file as `YYYY-mm-dd HH:MM:SS -> <answer>`, and ends with a
/// summary. Exits 0 only when every message sent was confirmed.
#[derive(Debug, Clone, Parser)]
#[command(name = "client", version, about, long_about = None)]
pub struct Config {
    /// Address of the server or headnode, as HOST:PORT. The name is
    /// resolved again on every connection attempt.
    #[arg(long, env = "CLIENT_CONNECT", default_value = "127.0.0.1:5000",
          value_parser = node::parse_host_port)]
    pub connect: String,

    /// File the answers are appended to (created, with its folder, if
    /// missing).
    #[arg(long, env = "CLIENT_LOG", default_value = "respuestas.txt")]
    pub log: PathBuf,

    /// When started as root, become the user and group that own the folder of
    /// --log
    /// before opening any file, so that the files belong to the folder's
    /// owner: under Docker, the host user who owns the log folder.
    #[arg(long, env = "CLIENT_RUN_AS_OWNER", value_parser = clap::builder::BoolishValueParser::new())]
    pub run_as_owner: bool,

    /// Send N messages drawn at random from the list without "exit", then
    /// "exit" (N+1 in all; 0 sends "exit" alone). Without it, messages are
    /// drawn from the whole list until "exit" comes up, as in the original
    /// exercise.
    #[arg(long, env = "CLIENT_COUNT", allow_hyphen_values = true,
          value_parser = node::args::whole_number)]
    pub count: Option<u64>,

    /// Seed of the random draw, for a reproducible sequence of messages.
    /// Without it the sequence differs on every run.
    #[arg(long, env = "CLIENT_SEED", allow_hyphen_values = true, value_parser = node::args::seed)]
    pub seed: Option<u64>,

    /// Send the lines of standard input instead of drawn messages: one
    /// message per line, blank lines skipped; the line "exit" is sent and
    /// ends the run, as does the end of input. Overrides --count and --seed.
    #[arg(long, env = "CLIENT_STDIN", value_parser = BoolishValueParser::new())]
    pub stdin: bool,

    /// How long to keep retrying the connection (e.g. 500ms, 30s, 2m): the
    /// peer may start after the client. 0s tries once.
    #[arg(long, env = "CLIENT_CONNECT_TIMEOUT", allow_hyphen_values = true, default_value = "30s",
          value_parser = node::parse_duration)]
    pub connect_timeout: Duration,

    /// Time to wait between two messages (such as 500ms or 1s), so that a
    /// person can follow the log files with `tail -f`, or stop a node by
    /// hand, in the middle of a run. 0s (the default): no wait.
    #[arg(long, env = "CLIENT_INTERVAL", default_value = "0s", allow_hyphen_values = true,
          value_parser = node::parse_duration)]
    pub interval: Duration,

    /// Requests in flight at most. 1 sends each message once the previous
    /// one is answered; more pipelines them. Answers always come back, and
    /// are recorded, in the order of the messages.
    #[arg(long, env = "CLIENT_PIPELINE", default_value = "1", allow_hyphen_values = true,
          value_parser = node::args::at_least_one)]
    pub pipeline: NonZeroUsize,

    /// Largest message, in bytes, the peer is expected to accept. Answers
    /// quote the message, so answers up to this plus 1 KiB are read.
    #[arg(long, env = "CLIENT_MAX_FRAME", default_value_t = DEFAULT_MAX_FRAME,
          value_parser = parse_max_frame)]
    pub max_frame: usize,

    /// How long the client waits with requests unanswered and no reply at
    /// all before it takes the connection as lost (e.g. 30s, 2m): it then
    /// stops, reports the unanswered messages as unconfirmed and exits 1.
    /// Longer than the headnode's --unavailable-timeout, within which it
    /// answers every message. 0s waits forever.
    #[arg(long, env = "CLIENT_REPLY_TIMEOUT", allow_hyphen_values = true, default_value = "30s",
          value_parser = node::parse_duration)]
    pub reply_timeout: Duration,

    /// The client id of the messages' ids (1 to 64 characters from A-Z a-z
    /// 0-9 . _ -): each message goes out as `SENDID <client-id> <seq>
    /// <acked> <message>`, which the server and the headnode store once
    /// however often it is sent. Default: 16 random hex digits, new on
    /// every run.
    #[arg(long, env = "CLIENT_CLIENT_ID", value_parser = parse_client_id)]
    pub client_id: Option<ClientId>,

    /// Send plain `SEND <message>` frames, without ids: no resending after a
    /// lost connection (a resent plain message may be stored twice), as a
    /// client of the original exercise would.
    #[arg(long, env = "CLIENT_PLAIN", value_parser = BoolishValueParser::new())]
    pub plain: bool,

    /// How long the client keeps trying to reconnect after a lost
    /// connection (e.g. 30s, 5m), with back-off, before it gives up and
    /// exits 1; each new connection first sends again every unanswered
    /// message, with its id. The time counts from the loss, and starts
    /// again after each connection that got an answer. 0s never
    /// reconnects. Ignored with --plain.
    #[arg(long, env = "CLIENT_RETRY_TIMEOUT", allow_hyphen_values = true, default_value = "5m",
          value_parser = node::parse_duration)]
    pub retry_timeout: Duration,

    /// Probe only, for health checks: connect (within --connect-timeout),
    /// send PING, exit 0 on PONG and non-zero otherwise. Sends no message
    /// and writes no log file; every other message option is ignored.
    #[arg(long, env = "CLIENT_PING", value_parser = BoolishValueParser::new())]
    pub ping: bool,
}

impl Config {
    /// Parses the command line and the environment, where an empty
    /// `CLIENT_*` variable counts as unset: compose files write
    /// `CLIENT_COUNT: ${CLIENT_COUNT:-}` to pass a variable only when the
    /// person running them set it.
    pub fn from_env_and_args() -> Config {
        node::runtime::parse_config("CLIENT_")
    }

    /// The folder the log file goes in (`.` for a bare file name).
    pub fn log_dir(&self) -> &std::path::Path {
        match self.log.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => std::path::Path::new("."),
        }
    }

    /// `--reply-timeout`, `None` for `0s` (no limit).
    pub fn reply_timeout(&self) -> Option<Duration> {
        (!self.reply_timeout.is_zero()).then_some(self.reply_timeout)
    }

    /// The largest reply frame accepted: replies wrap the message.
    pub fn max_reply(&self) -> usize {
        self.max_frame + ENVELOPE_ALLOWANCE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("client").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_match_the_exercise() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.connect, "127.0.0.1:5000");
        assert_eq!(config.log, PathBuf::from("respuestas.txt"));
        assert_eq!(config.count, None);
        assert_eq!(config.seed, None);
        assert!(!config.stdin && !config.ping);
        assert_eq!(config.connect_timeout, Duration::from_secs(30));
        assert_eq!(config.pipeline.get(), 1);
        assert_eq!(config.reply_timeout(), Some(Duration::from_secs(30)));
        assert_eq!(
            parse(&["--reply-timeout", "0s"]).unwrap().reply_timeout(),
            None
        );
        assert_eq!(config.max_frame, DEFAULT_MAX_FRAME);
        assert_eq!(config.max_reply(), DEFAULT_MAX_FRAME + ENVELOPE_ALLOWANCE);
    }

    #[test]
    fn parses_every_flag() {
        let config = parse(&[
            "--connect",
            "headnode:10000",
            "--log",
            "registro_cliente.txt",
            "--count",
            "500",
            "--seed",
            "7",
            "--connect-timeout",
            "500ms",
            "--pipeline",
            "64",
            "--max-frame",
            "1024",
        ])
        .unwrap();
        assert_eq!(config.connect, "headnode:10000");
        assert_eq!(config.log, PathBuf::from("registro_cliente.txt"));
        assert_eq!(config.count, Some(500));
        assert_eq!(config.seed, Some(7));
        assert_eq!(config.connect_timeout, Duration::from_millis(500));
        assert_eq!(config.pipeline.get(), 64);
        assert_eq!(config.max_frame, 1024);
        assert_eq!(config.count, Some(500));
        assert_eq!(parse(&["--count", "0"]).unwrap().count, Some(0));
        assert!(parse(&["--stdin", "--count", "3"]).unwrap().stdin);
        assert!(parse(&["--ping", "--count", "3"]).unwrap().ping);
    }

    #[test]
    fn rejects_bad_values() {
        for args in [
            &["--count", "-1"][..],
            &["--seed", "x"],
            &["--connect-timeout", "5"],
            &["--pipeline", "0"],
            &["--max-frame", "0"],
            &["--max-frame", "99999999999"],
            &["--frobnicate"],
        ] {
            assert!(parse(args).is_err(), "{args:?} was accepted");
        }
    }
}
