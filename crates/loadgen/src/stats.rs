//! What a run measures, and how it is reported.
//!
//! Latencies go into an HDR histogram (3 significant digits: a percentile is
//! within 0.1 % of the true value) in nanoseconds, one per connection,
//! merged at the end, so recording costs no lock and no allocation.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use hdrhistogram::Histogram;

/// Longest latency the histogram holds exactly; longer ones are clamped.
const MAX_TRACKED_NS: u64 = 60_000_000_000;

/// A latency histogram.
#[derive(Debug, Clone)]
pub struct Latencies {
    histogram: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies::new()
    }
}

impl Latencies {
    /// An empty histogram covering 1 ns to 60 s.
    pub fn new() -> Self {
        Latencies {
            histogram: Histogram::new_with_bounds(1, MAX_TRACKED_NS, 3)
                .expect("valid histogram bounds"),
        }
    }

    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        self.record_n(latency, 1);
    }

    /// Records `count` requests that took the same time (answered by the
    /// same read).
    pub fn record_n(&mut self, latency: Duration, count: u64) {
        let ns = u64::try_from(latency.as_nanos())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_TRACKED_NS);
        self.histogram.saturating_record_n(ns, count);
    }

    /// Adds every latency of `other`.
    pub fn merge(&mut self, other: &Latencies) {
        self.histogram
            .add(&other.histogram)
            .expect("histograms with the same bounds");
    }

    /// How many latencies were recorded.
    pub fn len(&self) -> u64 {
        self.histogram.len()
    }

    /// Whether no latency was recorded.
    pub fn is_empty(&self) -> bool {
        self.histogram.is_empty()
    }

    /// The latency that `percentile` percent of requests did not exceed
    /// (`percentile` in 0..=100). Zero when nothing was recorded.
    pub fn percentile(&self, percentile: f64) -> Duration {
        if self.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.histogram.value_at_quantile(percentile / 100.0))
    }

    /// The longest latency recorded.
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.histogram.max())
    }
}

/// What went wrong during a run. Every error is a message not confirmed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Errors {
    /// `ERR` replies, by code.
    pub err_replies: BTreeMap<String, u64>,
    /// Replies that were neither `OK` nor `ERR` (or too large to read).
    pub bad_replies: u64,
    /// Connections that could not be opened, or closed or failed while
    /// requests were owed a reply.
    pub lost_connections: u64,
    /// Requests sent on a lost connection and never answered.
    pub unanswered: u64,
    /// Messages never sent because their connection was lost or refused.
    pub unsent: u64,
}

impl Errors {
    /// Total number of `ERR` replies.
    pub fn err_reply_count(&self) -> u64 {
        self.err_replies.values().sum()
    }

    /// Every error event: `ERR` replies, bad replies and lost connections.
    pub fn total(&self) -> u64 {
        self.err_reply_count() + self.bad_replies + self.lost_connections
    }

    /// Adds the errors of `other`.
    pub fn merge(&mut self, other: &Errors) {
        for (code, count) in &other.err_replies {
            *self.err_replies.entry(code.clone()).or_default() += count;
        }
        self.bad_replies += other.bad_replies;
        self.lost_connections += other.lost_connections;
        self.unanswered += other.unanswered;
        self.unsent += other.unsent;
    }

    /// Counts an `ERR` reply whose payload is `payload`.
    pub fn count_err_reply(&mut self, payload: &[u8]) {
        let code = payload
            .strip_prefix(b"ERR ")
            .and_then(|rest| rest.split(|&b| b == b' ').next())
            .unwrap_or_default();
        self.count_refused(code);
    }

    /// Counts a refusal whose error code is `code` (`STORAGE`, or Redis's
    /// `ERR`, `WRONGTYPE`, ...).
    pub fn count_refused(&mut self, code: &[u8]) {
        let code = String::from_utf8_lossy(code).into_owned();
        *self.err_replies.entry(code).or_default() += 1;
    }
}

/// The result of a load run.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Address loaded.
    pub target: String,
    /// Connections used.
    pub connections: usize,
    /// Requests in flight per connection.
    pub pipeline: usize,
    /// Message size in bytes.
    pub size: usize,
    /// Messages the run meant to send.
    pub messages: u64,
    /// Requests written to a socket.
    pub sent: u64,
    /// Messages answered with `OK`.
    pub confirmed: u64,
    /// From the first request to the last reply.
    pub elapsed: Duration,
    /// Send-to-reply time of every answered request.
    pub latencies: Latencies,
    /// What went wrong.
    pub errors: Errors,
    /// Resident memory of `--rss-pid` after the load, in KiB.
    pub rss_kib: Option<u64>,
    /// CPU time the generator itself used during the load.
    pub own_cpu: Duration,
    /// CPU time each of `--cpu-pids` used during the load.
    pub cpu: Vec<(u32, Duration)>,
}

impl LoadReport {
    /// CPU time per confirmed message, in nanoseconds.
    pub fn per_message(&self, cpu: Duration) -> f64 {
        if self.confirmed == 0 {
            0.0
        } else {
            cpu.as_nanos() as f64 / self.confirmed as f64
        }
    }

    /// Confirmed messages per second.
    pub fn throughput(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.confirmed as f64 / seconds
        } else {
            0.0
        }
    }

    /// Whether every message was confirmed and nothing went wrong.
    pub fn is_clean(&self) -> bool {
        self.confirmed == self.messages && self.errors.total() == 0
    }

    /// The report for people.
    pub fn to_text(&self) -> String {
        let l = &self.latencies;
        let e = &self.errors;
        let mut text = format!(
            "target: {} ({} connections, pipeline {}, {}-byte messages)\n\
             confirmed: {} of {} in {:.3} s\n\
             throughput: {:.0} msg/s\n\
             latency: p50 {} p99 {} p99.9 {} max {}\n\
             errors: {} (ERR replies {}, bad replies {}, lost connections {}, \
             unanswered {}, unsent {})\n",
            self.target,
            self.connections,
            self.pipeline,
            self.size,
            self.confirmed,
            self.messages,
            self.elapsed.as_secs_f64(),
            self.throughput(),
            human(l.percentile(50.0)),
            human(l.percentile(99.0)),
            human(l.percentile(99.9)),
            human(l.max()),
            e.total(),
            e.err_reply_count(),
            e.bad_replies,
            e.lost_connections,
            e.unanswered,
            e.unsent,
        );
        for (code, count) in &e.err_replies {
            let _ = writeln!(text, "  ERR {code}: {count}");
        }
        if let Some(kib) = self.rss_kib {
            let _ = writeln!(text, "rss: {}", mib(kib));
        }
        let _ = write!(
            text,
            "cpu per message: loadgen {:.0}ns",
            self.per_message(self.own_cpu)
        );
        for (pid, cpu) in &self.cpu {
            let _ = write!(text, ", pid {pid} {:.0}ns", self.per_message(*cpu));
        }
        text.push('\n');
        text
    }

    /// The report as one line of JSON; latencies in microseconds.
    pub fn to_json(&self) -> String {
        let l = &self.latencies;
        let e = &self.errors;
        let codes: Vec<String> = e
            .err_replies
            .iter()
            .map(|(code, count)| format!("\"{}\":{count}", json_escape(code)))
            .collect();
        let cpu: Vec<String> =
            std::iter::once(format!("\"loadgen\":{:.0}", self.per_message(self.own_cpu)))
                .chain(
                    self.cpu
                        .iter()
                        .map(|(pid, cpu)| format!("\"{pid}\":{:.0}", self.per_message(*cpu))),
                )
                .collect();
        format!(
            "{{\"mode\":\"load\",\"target\":\"{}\",\"connections\":{},\"pipeline\":{},\
             \"size\":{},\"messages\":{},\"sent\":{},\"confirmed\":{},\"elapsed_s\":{:.6},\
             \"msgs_per_sec\":{:.1},\"p50_us\":{:.1},\"p99_us\":{:.1},\"p999_us\":{:.1},\
             \"max_us\":{:.1},\"errors\":{},\"err_replies\":{{{}}},\"bad_replies\":{},\
             \"lost_connections\":{},\"unanswered\":{},\"unsent\":{},\"rss_kib\":{},\
             \"cpu_ns_per_msg\":{{{}}}}}",
            json_escape(&self.target),
            self.connections,
            self.pipeline,
            self.size,
            self.messages,
            self.sent,
            self.confirmed,
            self.elapsed.as_secs_f64(),
            self.throughput(),
            micros(l.percentile(50.0)),
            micros(l.percentile(99.0)),
            micros(l.percentile(99.9)),
            micros(l.max()),
            e.total(),
            codes.join(","),
            e.bad_replies,
            e.lost_connections,
            e.unanswered,
            e.unsent,
            self.rss_kib
                .map_or_else(|| "null".to_owned(), |k| k.to_string()),
            cpu.join(","),
        )
    }
}

/// The result of an idle-connections run.
#[derive(Debug, Clone)]
pub struct IdleReport {
    /// Address connected to.
    pub target: String,
    /// Connections asked for.
    pub requested: usize,
    /// Connections that answered `PING` with `PONG`.
    pub accepted: usize,
    /// Connections refused, lost, or answered with something else.
    pub failed: usize,
    /// Resident memory of `--rss-pid` before connecting, in KiB.
    pub rss_before_kib: Option<u64>,
    /// Resident memory of `--rss-pid` with every connection open, in KiB.
    pub rss_kib: Option<u64>,
}

impl IdleReport {
    /// Whether every connection was accepted.
    pub fn is_clean(&self) -> bool {
        self.failed == 0 && self.accepted == self.requested
    }

    /// The report for people.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "target: {}\nidle connections: {} of {} accepted\nerrors: {}\n",
            self.target, self.accepted, self.requested, self.failed
        );
        if let Some(kib) = self.rss_before_kib {
            let _ = writeln!(text, "rss before: {}", mib(kib));
        }
        if let Some(kib) = self.rss_kib {
            let _ = writeln!(text, "rss: {}", mib(kib));
        }
        text
    }

    /// The report as one line of JSON.
    pub fn to_json(&self) -> String {
        let opt = |v: Option<u64>| v.map_or_else(|| "null".to_owned(), |k| k.to_string());
        format!(
            "{{\"mode\":\"idle\",\"target\":\"{}\",\"requested\":{},\"accepted\":{},\
             \"errors\":{},\"rss_before_kib\":{},\"rss_kib\":{}}}",
            json_escape(&self.target),
            self.requested,
            self.accepted,
            self.failed,
            opt(self.rss_before_kib),
            opt(self.rss_kib),
        )
    }
}

/// A duration in the unit that reads best.
fn human(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0}us")
    } else {
        format!("{:.2}ms", us / 1000.0)
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB ({kib} KiB)", kib as f64 / 1024.0)
}

fn json_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// CPU time (user and system, every thread) process `pid` has used, from
/// `/proc/<pid>/stat`. Linux counts it in ticks of 1/100 s (`USER_HZ` is
/// 100 on every architecture Linux exports to user space this way), so
/// loads should last a second or more.
pub fn cpu_time(pid: u32) -> std::io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_cpu_ticks(&stat)
        .map(|ticks| Duration::from_millis(ticks * 10))
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("cannot read /proc/{pid}/stat"),
            )
        })
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The
/// command name (field 2) may hold spaces and parentheses, so fields are
/// counted from after its last `)`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Resident memory of process `pid` in KiB, from `/proc/<pid>/status`.
pub fn rss_kib(pid: u32) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_vm_rss(&status).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("no VmRSS line in /proc/{pid}/status"),
        )
    })
}

/// The `VmRSS:   1234 kB` value of a `/proc/<pid>/status` text.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    fn close(actual: Duration, expected: Duration) -> bool {
        let (a, e) = (actual.as_nanos() as f64, expected.as_nanos() as f64);
        (a - e).abs() <= e * 0.001 + 1.0
    }

    #[test]
    fn percentiles_of_one_to_a_thousand() {
        let mut l = Latencies::new();
        for n in 1..=1000 {
            l.record(us(n));
        }
        assert_eq!(l.len(), 1000);
        assert!(
            close(l.percentile(50.0), us(500)),
            "{:?}",
            l.percentile(50.0)
        );
        assert!(
            close(l.percentile(99.0), us(990)),
            "{:?}",
            l.percentile(99.0)
        );
        // 99.9 / 100 is a hair above 0.999 in binary: the 999th or the
        // 1000th value are both fair answers.
        let p999 = l.percentile(99.9);
        assert!(close(p999, us(999)) || close(p999, us(1000)), "{p999:?}");
        assert!(close(l.max(), us(1000)));
    }

    #[test]
    fn a_rare_outlier_shows_only_in_the_tail() {
        let mut l = Latencies::new();
        l.record_n(us(100), 9_990);
        l.record_n(us(50_000), 10);
        assert!(close(l.percentile(50.0), us(100)));
        assert!(close(l.percentile(99.0), us(100)));
        assert!(close(l.percentile(99.95), us(50_000)));
        assert!(close(l.max(), us(50_000)));
    }

    #[test]
    fn merged_histograms_count_everything() {
        let mut a = Latencies::new();
        let mut b = Latencies::new();
        a.record_n(us(10), 3);
        b.record_n(us(20), 1);
        a.merge(&b);
        assert_eq!(a.len(), 4);
        assert!(close(a.percentile(75.0), us(10)));
        assert!(close(a.max(), us(20)));
    }

    #[test]
    fn extreme_latencies_are_clamped_not_lost() {
        let mut l = Latencies::new();
        l.record(Duration::ZERO);
        l.record(Duration::from_secs(3600));
        assert_eq!(l.len(), 2);
        assert!(Latencies::new().percentile(99.0).is_zero());
    }

    #[test]
    fn err_replies_are_counted_by_code() {
        let mut e = Errors::default();
        e.count_err_reply(b"ERR STORAGE disk full");
        e.count_err_reply(b"ERR STORAGE again");
        e.count_err_reply(b"ERR UNAVAILABLE");
        assert_eq!(e.err_replies["STORAGE"], 2);
        assert_eq!(e.err_replies["UNAVAILABLE"], 1);
        assert_eq!(e.total(), 3);
    }

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\tserver\nVmPeak:\t  9000 kB\nVmRSS:\t    5120 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(5120));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn reads_cpu_ticks() {
        let stat = "42 (tokio (rt) x) S 1 42 42 0 -1 4194560 500 0 0 0 123 45 0 0 20 0 3 0";
        assert_eq!(parse_cpu_ticks(stat), Some(168));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        cpu_time(std::process::id()).unwrap();
    }

    #[test]
    fn reports_render() {
        let mut latencies = Latencies::new();
        latencies.record_n(us(250), 10);
        let report = LoadReport {
            target: "127.0.0.1:5000".into(),
            connections: 2,
            pipeline: 4,
            size: 32,
            messages: 10,
            sent: 10,
            confirmed: 10,
            elapsed: Duration::from_millis(10),
            latencies,
            errors: Errors::default(),
            rss_kib: Some(2048),
            own_cpu: Duration::from_millis(10),
            cpu: vec![(7, Duration::from_millis(20))],
        };
        assert!(report.is_clean());
        assert!((report.throughput() - 1000.0).abs() < 1e-6);
        let text = report.to_text();
        assert!(text.contains("confirmed: 10 of 10"), "{text}");
        assert!(text.contains("errors: 0 "), "{text}");
        assert!(text.contains("rss: 2.0 MiB"), "{text}");
        let json = report.to_json();
        assert!(json.contains("\"confirmed\":10,"), "{json}");
        assert!(json.contains("\"errors\":0,"), "{json}");
        assert!(json.contains("\"err_replies\":{}"), "{json}");
        assert!(json.contains("\"rss_kib\":2048,"), "{json}");
        assert!(
            json.contains("\"cpu_ns_per_msg\":{\"loadgen\":1000000,\"7\":2000000}}"),
            "{json}"
        );
        assert!(
            text.contains("cpu per message: loadgen 1000000ns, pid 7 2000000ns"),
            "{text}"
        );
        assert!(json.contains("\"p50_us\":250."), "{json}");
    }
}
