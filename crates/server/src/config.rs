//! Command-line and environment configuration of the server.

use std::{path::PathBuf, time::Duration};

use clap::Parser;
use journal::Durability;
use node::{
    listener::DEFAULT_MAX_CONNECTIONS,
    watchdog::{Timeouts, DEFAULT_FRAME_TIMEOUT, DEFAULT_IDLE_TIMEOUT},
};
use protocol::{parse_max_frame, DEFAULT_MAX_FRAME};

/// Name of the log file inside `--dir`, as in the original exercise.
pub const LOG_FILE: &str = "log.txt";

/// Receives messages from clients, appends each to `log.txt` as
/// `IP:PORT -> message`, and confirms it once written.
#[derive(Debug, Clone, Parser)]
#[command(name = "server", version, about, long_about = None)]
pub struct Config {
    /// Address and port to listen on: `HOST:PORT`, where HOST is an address
    /// or a name (`0.0.0.0` for every interface).
    #[arg(long, env = "SERVER_LISTEN", default_value = "0.0.0.0:5000",
          value_parser = node::parse_host_port)]
    pub listen: String,

    /// Folder of the log file `log.txt` (created if missing).
    #[arg(long, env = "SERVER_DIR", default_value = ".")]
    pub dir: PathBuf,

    /// When started as root, become the user and group that own --dir
    /// before opening any file, so that the files belong to the folder's
    /// owner: under Docker, the host user who owns the log folder.
    #[arg(long, env = "SERVER_RUN_AS_OWNER", value_parser = clap::builder::BoolishValueParser::new())]
    pub run_as_owner: bool,

    /// Largest request accepted, in bytes; a larger one is answered with
    /// `ERR TOO_LARGE` and skipped, and the connection goes on.
    #[arg(long, env = "SERVER_MAX_FRAME", default_value_t = DEFAULT_MAX_FRAME,
          value_parser = parse_max_frame)]
    pub max_frame: usize,

    /// When log.txt is forced to disk: `never` (the kernel decides; survives
    /// a crash of the server, not of the machine), `always` (fdatasync before
    /// every confirmation, shared by concurrent writers) or an interval such
    /// as `1s` (at most that much confirmed work lost on power failure).
    #[arg(long, env = "SERVER_FSYNC", default_value = "never")]
    pub fsync: Durability,

    /// Connections served at once; more wait in the kernel's backlog, or
    /// take the place of the oldest connection that has sent no whole frame.
    #[arg(long, env = "SERVER_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS,
          allow_hyphen_values = true, value_parser = node::args::count_of_at_least_one)]
    pub max_connections: usize,

    /// Serve a status page (`/`, `/status.json`, `/metrics`) over HTTP at
    /// this HOST:PORT, such as 127.0.0.1:5080. Unset (the default outside
    /// the compose files): no HTTP at all.
    #[arg(long, env = "SERVER_HTTP", value_parser = node::parse_host_port)]
    pub http: Option<String>,

    /// How long a request may take to arrive once its first bytes have
    /// (`10s`, `500ms`): a connection that leaves a frame unfinished longer
    /// is closed, so that peers holding connections with half a frame
    /// (slowloris) cannot keep the connection places. Checked every quarter
    /// of the shorter timeout, so a frame gets up to 1.25 times this. `0s`:
    /// no bound.
    #[arg(long, env = "SERVER_FRAME_TIMEOUT", allow_hyphen_values = true, default_value = DEFAULT_FRAME_TIMEOUT,
          value_parser = node::parse_duration)]
    pub frame_timeout: Duration,

    /// How long a client connection may stay open sending nothing while
    /// it is owed nothing (`5m`); it is then closed. `0s`: no bound.
    #[arg(long, env = "SERVER_IDLE_TIMEOUT", allow_hyphen_values = true, default_value = DEFAULT_IDLE_TIMEOUT,
          value_parser = node::parse_duration)]
    pub idle_timeout: Duration,
}

impl Config {
    /// The bounds on a client connection's frames and idleness.
    pub fn timeouts(&self) -> Timeouts {
        Timeouts::from_flags(self.frame_timeout, self.idle_timeout)
    }

    /// The path of the log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("server").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_match_the_exercise() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.listen, "0.0.0.0:5000");
        assert_eq!(config.log_path(), PathBuf::from("./log.txt"));
        assert_eq!(config.max_frame, DEFAULT_MAX_FRAME);
        assert_eq!(config.fsync, Durability::Never);
        assert_eq!(config.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(
            config.timeouts(),
            Timeouts {
                frame: Some(Duration::from_secs(10)),
                idle: Some(Duration::from_secs(300)),
            }
        );
        let unbounded = parse(&["--frame-timeout", "0s", "--idle-timeout", "0s"]).unwrap();
        assert_eq!(unbounded.timeouts(), Timeouts::default());
    }

    #[test]
    fn parses_every_flag() {
        let config = parse(&[
            "--listen",
            "127.0.0.1:0",
            "--dir",
            "/tmp/x",
            "--max-frame",
            "16",
            "--fsync",
            "200ms",
            "--max-connections",
            "3",
        ])
        .unwrap();
        assert_eq!(config.listen, "127.0.0.1:0");
        assert_eq!(config.log_path(), PathBuf::from("/tmp/x/log.txt"));
        assert_eq!(config.max_frame, 16);
        assert_eq!(
            config.fsync,
            Durability::Interval(Duration::from_millis(200))
        );
        assert_eq!(config.max_connections, 3);
        assert_eq!(
            parse(&["--fsync", "always"]).unwrap().fsync,
            Durability::Always
        );
    }

    #[test]
    fn rejects_bad_values() {
        for args in [
            &["--listen", "nowhere"][..],
            &["--max-frame", "0"],
            &["--max-frame", "99999999999"],
            &["--fsync", "sometimes"],
            &["--max-connections", "0"],
        ] {
            assert!(parse(args).is_err(), "{args:?} was accepted");
        }
    }
}
