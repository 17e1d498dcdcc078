//! Command-line and environment configuration of `audit`.
//!
//! Every flag can also be set through its `AUDIT_*` variable, as for the
//! other binaries; the paths to audit are arguments only.

use std::path::PathBuf;

use clap::{builder::BoolishValueParser, Parser};

/// Reads the log files of a run and checks them against each other: every
/// confirmation where its answer says, the registries in agreement, errors
/// by code, placement fairness and the heartbeat timeline (Activity 2);
/// log.txt against respuestas.txt (Activity 1). Never writes a file.
/// Exits 0 when every guarantee holds, 1 when one is broken (the report
/// says which, with file and line numbers), 2 for a usage error.
#[derive(Debug, Clone, Parser)]
#[command(name = "audit", version, long_about = None)]
pub struct Config {
    /// Folders or files of one run: a folder is searched (three levels
    /// deep) for log files by name, a file is taken by its name; a
    /// data.txt belongs to the datanode its folder is named after. Without
    /// any, the folders activity1 and activity2 under --logs are audited,
    /// as compose writes them.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// The folder compose writes the log files under, audited when no PATH
    /// is given.
    #[arg(long, env = "AUDIT_LOGS", default_value = "logs")]
    pub logs: PathBuf,

    /// Print the report as one JSON object, for scripts, instead of the
    /// table.
    #[arg(long, env = "AUDIT_JSON", value_parser = BoolishValueParser::new())]
    pub json: bool,

    /// Line numbers quoted per finding at most; the others are counted.
    #[arg(long, env = "AUDIT_MAX_LINES", default_value = "10")]
    pub max_lines: usize,
}

impl Config {
    /// Parses the command line and the environment, where an empty
    /// `AUDIT_*` variable counts as unset (see `node::runtime::parse_config`).
    pub fn from_env_and_args() -> Config {
        node::runtime::parse_config("AUDIT_")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("audit").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_to_the_compose_layout_and_a_table() {
        let config = parse(&[]).unwrap();
        assert!(config.paths.is_empty());
        assert_eq!(config.logs, PathBuf::from("logs"));
        assert!(!config.json);
        assert_eq!(config.max_lines, 10);
    }

    #[test]
    fn parses_every_flag_and_paths() {
        let config = parse(&[
            "--json",
            "--max-lines",
            "3",
            "--logs",
            "x",
            "a",
            "b/data.txt",
        ])
        .unwrap();
        assert!(config.json);
        assert_eq!(config.max_lines, 3);
        assert_eq!(config.logs, PathBuf::from("x"));
        assert_eq!(
            config.paths,
            [PathBuf::from("a"), PathBuf::from("b/data.txt")]
        );
        assert!(parse(&["--max-lines", "-1"]).is_err());
        assert!(parse(&["--frobnicate"]).is_err());
    }
}
