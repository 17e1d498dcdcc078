//! Command-line and environment configuration of the load generator.

use std::num::NonZeroUsize;

use clap::{builder::BoolishValueParser, Parser};
use protocol::{DEFAULT_MAX_FRAME, ENVELOPE_ALLOWANCE};

use crate::wire::{Protocol, Tagged};

/// Default size of a message, in bytes.
pub const DEFAULT_SIZE: usize = 32;

/// Drives a server or headnode with `SEND` requests and reports confirmed
/// messages per second, latency percentiles and errors; or holds idle
/// connections open and reports a node's memory.
#[derive(Debug, Clone, Parser)]
#[command(name = "loadgen", version, about, long_about = None)]
pub struct Config {
    /// Address of the node to load (a server or a headnode).
    #[arg(long, env = "LOADGEN_CONNECT", default_value = "127.0.0.1:5000")]
    pub connect: String,

    /// Connections opened at once; the messages are shared among them.
    #[arg(long, env = "LOADGEN_CONNECTIONS", default_value = "1")]
    pub connections: NonZeroUsize,

    /// Requests in flight per connection: the next is sent as soon as a
    /// reply frees a place, so the window stays full.
    #[arg(long, env = "LOADGEN_PIPELINE", default_value = "1")]
    pub pipeline: NonZeroUsize,

    /// Messages to send, in total across all connections.
    #[arg(long, env = "LOADGEN_MESSAGES", default_value = "100000")]
    pub messages: u64,

    /// The protocol spoken: `frames`, ours (`SEND <message>`, to a server
    /// or headnode), or `resp`, Redis's (`RPUSH mylist <message>`, to a
    /// redis-server), so that both sides of a comparison are measured by
    /// the same generator.
    #[arg(long, env = "LOADGEN_PROTOCOL", value_enum, default_value_t = Protocol::Frames)]
    pub protocol: Protocol,

    /// Size of each message in bytes.
    #[arg(long, env = "LOADGEN_SIZE", default_value_t = DEFAULT_SIZE,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub size: usize,

    /// Largest reply frame (or, with `--protocol resp`, reply line)
    /// accepted, in bytes. Replies quote the message, so this allows for
    /// the sentence around it.
    #[arg(long, env = "LOADGEN_MAX_FRAME", default_value_t = DEFAULT_MAX_FRAME + ENVELOPE_ALLOWANCE)]
    pub max_frame: usize,

    /// Instead of sending messages, open this many connections, wait until
    /// each answered a `PING` (so the node has accepted and is serving it),
    /// report the memory of `--rss-pid`, then close them.
    #[arg(long, env = "LOADGEN_IDLE_CONNECTIONS")]
    pub idle_connections: Option<usize>,

    /// Process whose resident memory (VmRSS in /proc/PID/status) is
    /// reported: after the load, or once the idle connections are open.
    #[arg(long, env = "LOADGEN_RSS_PID")]
    pub rss_pid: Option<u32>,

    /// Processes whose CPU time during the load is reported, per confirmed
    /// message (comma-separated PIDs, e.g. the headnode and its datanodes).
    /// CPU per message is steadier than throughput on a shared machine.
    #[arg(long, env = "LOADGEN_CPU_PIDS", value_delimiter = ',')]
    pub cpu_pids: Vec<u32>,

    /// Threads of the generator's runtime. One, like redis-benchmark, leaves
    /// the other cores to the node being measured.
    #[arg(long, env = "LOADGEN_THREADS", default_value = "1")]
    pub threads: NonZeroUsize,

    /// Print one JSON object instead of the text report.
    #[arg(long, env = "LOADGEN_JSON", value_parser = BoolishValueParser::new())]
    pub json: bool,

    /// Send tagged messages, `SENDID <client> <seq> <acked> <message>`,
    /// as the project's client does (its exactly-once form), instead of
    /// plain `SEND`: each connection is its own client id, numbers its
    /// messages from 1 and acknowledges every answer it has read. Only
    /// with `--protocol frames`.
    #[arg(long, env = "LOADGEN_TAGGED", value_parser = BoolishValueParser::new())]
    pub tagged: bool,
}

impl Config {
    /// The request every connection sends, encoded once in `--protocol`.
    pub fn request(&self) -> bytes::Bytes {
        self.protocol.request(self.size)
    }

    /// The tagging of connection `index`'s messages, with `--tagged`.
    pub fn tagged(&self, index: usize) -> Option<Tagged> {
        (self.tagged && self.protocol == Protocol::Frames).then(|| {
            Tagged::new(
                &format!("loadgen{}-{index}", std::process::id()),
                vec![b'x'; self.size],
            )
        })
    }

    /// How many of the messages connection `index` sends: an even share,
    /// the remainder going to the first connections.
    pub fn share(&self, index: usize) -> u64 {
        let connections = self.connections.get() as u64;
        let base = self.messages / connections;
        let extra = u64::from((index as u64) < self.messages % connections);
        base + extra
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("loadgen").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_are_one_connection_without_pipelining() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.connect, "127.0.0.1:5000");
        assert_eq!(config.connections.get(), 1);
        assert_eq!(config.pipeline.get(), 1);
        assert_eq!(config.size, DEFAULT_SIZE);
        assert_eq!(config.max_frame, DEFAULT_MAX_FRAME + ENVELOPE_ALLOWANCE);
        assert_eq!(config.threads.get(), 1);
        assert!(config.idle_connections.is_none());
        assert!(config.cpu_pids.is_empty());
        assert!(!config.json);
        assert_eq!(config.protocol, Protocol::Frames);
    }

    #[test]
    fn parses_every_flag() {
        let config = parse(&[
            "--connect",
            "127.0.0.1:10000",
            "--connections",
            "50",
            "--pipeline",
            "16",
            "--messages",
            "1000",
            "--size",
            "100",
            "--max-frame",
            "4096",
            "--idle-connections",
            "10",
            "--rss-pid",
            "42",
            "--cpu-pids",
            "7,8",
            "--threads",
            "2",
            "--json",
            "--protocol",
            "resp",
        ])
        .unwrap();
        assert_eq!(config.connect, "127.0.0.1:10000");
        assert_eq!(config.connections.get(), 50);
        assert_eq!(config.pipeline.get(), 16);
        assert_eq!(config.messages, 1000);
        assert_eq!(config.size, 100);
        assert_eq!(config.max_frame, 4096);
        assert_eq!(config.idle_connections, Some(10));
        assert_eq!(config.rss_pid, Some(42));
        assert_eq!(config.cpu_pids, [7, 8]);
        assert_eq!(config.threads.get(), 2);
        assert!(config.json);
        assert_eq!(config.protocol, Protocol::Resp);
    }

    #[test]
    fn rejects_zero_connections_pipeline_and_size() {
        assert!(parse(&["--connections", "0"]).is_err());
        assert!(parse(&["--pipeline", "0"]).is_err());
        assert!(parse(&["--size", "0"]).is_err());
        assert!(parse(&["--messages", "-1"]).is_err());
    }

    #[test]
    fn shares_add_up_to_the_total() {
        let config = parse(&["--connections", "3", "--messages", "10"]).unwrap();
        let shares: Vec<u64> = (0..3).map(|i| config.share(i)).collect();
        assert_eq!(shares, [4, 3, 3]);
        let config = parse(&["--connections", "8", "--messages", "5"]).unwrap();
        assert_eq!((0..8).map(|i| config.share(i)).sum::<u64>(), 5);
    }

    #[test]
    fn the_request_is_send_and_a_message_of_the_given_size() {
        let config = parse(&["--size", "3"]).unwrap();
        assert_eq!(&config.request()[..], b"\x00\x00\x00\x08SEND xxx");
    }
}
