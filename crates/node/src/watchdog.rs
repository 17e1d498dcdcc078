//! The two bounds on a peer that holds a connection without using it: a
//! frame begun must be finished within `--frame-timeout`, and a connection
//! that owes nothing and sends nothing is closed after `--idle-timeout`.
//!
//! Without them, 10,000 connections that each sent half a frame header held
//! every connection slot forever and a well-behaved client could not be
//! served (issue 11, item 5: slowloris). The watchdog is a plain state
//! machine fed the time and what the session sees; the session polls
//! [`Watchdog::tick`] alongside its reads, so nothing here needs a socket
//! and the rules are tested with made-up instants.
//!
//! A partial frame is noticed at a tick, so the frame bound is enforced
//! within a quarter of it (ticks come every quarter of the shorter bound):
//! a frame is given between `frame` and `1.25 × frame`. The clock stops
//! while the session does not read (it owes too many replies: the delay is
//! then its own, not the peer's) and idleness counts only while no reply is
//! owed.

use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

/// The bounds of one connection; `None` is no bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// How long a frame may take from its first byte seen to its last.
    pub frame: Option<Duration>,
    /// How long a connection that owes no reply may go without a frame.
    pub idle: Option<Duration>,
}

impl Timeouts {
    /// The bounds given by `--frame-timeout` and `--idle-timeout`, where
    /// `0s` is no bound.
    pub fn from_flags(frame: Duration, idle: Duration) -> Timeouts {
        let bound = |value: Duration| (!value.is_zero()).then_some(value);
        Timeouts {
            frame: bound(frame),
            idle: bound(idle),
        }
    }
}

/// The default `--frame-timeout`: far longer than any frame takes on a
/// working network (64 KiB at 7 KB/s), short enough that held connections
/// are soon given back.
pub const DEFAULT_FRAME_TIMEOUT: &str = "10s";

/// The default `--idle-timeout` of a client connection.
pub const DEFAULT_IDLE_TIMEOUT: &str = "5m";

/// Which bound a peer passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// A frame was begun and not finished within [`Timeouts::frame`].
    Frame(Duration),
    /// Nothing arrived and nothing was owed for [`Timeouts::idle`].
    Idle(Duration),
}

impl std::fmt::Display for Expired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expired::Frame(bound) => {
                write!(f, "a frame left unfinished for {bound:?} (--frame-timeout)")
            }
            Expired::Idle(bound) => write!(f, "idle for {bound:?} (--idle-timeout)"),
        }
    }
}

/// What the session sees at a tick.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    /// Part of a frame is buffered (or being skipped).
    pub partial: bool,
    /// The session is reading (it does not owe too many replies).
    pub reading: bool,
    /// Replies are owed.
    pub owing: bool,
}

/// Watches one connection against its [`Timeouts`].
#[derive(Debug)]
pub struct Watchdog {
    limits: Timeouts,
    /// When the partial frame now buffered was first seen.
    partial_since: Option<Instant>,
    /// The last sign of life: a frame finished, a reply written.
    active_at: Instant,
    ticks: Option<Interval>,
}

impl Watchdog {
    /// A watchdog whose connection starts now.
    pub fn new(limits: Timeouts) -> Watchdog {
        let shortest = limits.frame.into_iter().chain(limits.idle).min();
        let ticks = shortest.map(|bound| {
            let period = (bound / 4).max(Duration::from_millis(10));
            let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            ticks
        });
        Watchdog {
            limits,
            partial_since: None,
            active_at: Instant::now(),
            ticks,
        }
    }

    /// A frame finished or a reply was written at `now`.
    pub fn active(&mut self, now: Instant) {
        self.partial_since = None;
        self.active_at = now;
    }

    /// The next tick: when to call [`Watchdog::check`]. Never, without
    /// bounds. Cancel-safe, for `select!`.
    pub async fn tick(&mut self) -> Instant {
        match &mut self.ticks {
            Some(ticks) => ticks.tick().await,
            None => std::future::pending().await,
        }
    }

    /// Whether a bound has passed at `now`, given what the session sees.
    pub fn check(&mut self, now: Instant, seen: Seen) -> Option<Expired> {
        if !seen.partial || !seen.reading {
            self.partial_since = None;
        } else {
            let since = *self.partial_since.get_or_insert(now);
            if let Some(bound) = self.limits.frame {
                if now.duration_since(since) >= bound {
                    return Some(Expired::Frame(bound));
                }
            }
            return None;
        }
        if seen.owing {
            self.active_at = now;
            return None;
        }
        match self.limits.idle {
            Some(bound) if now.duration_since(self.active_at) >= bound => {
                Some(Expired::Idle(bound))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Timeouts = Timeouts {
        frame: Some(Duration::from_secs(10)),
        idle: Some(Duration::from_secs(60)),
    };

    fn seen(partial: bool, reading: bool, owing: bool) -> Seen {
        Seen {
            partial,
            reading,
            owing,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_partial_frame_must_finish_within_its_bound() {
        let start = Instant::now();
        let mut dog = Watchdog::new(LIMITS);
        let at = |secs| start + Duration::from_secs(secs);
        assert_eq!(
            dog.check(at(1), seen(true, true, false)),
            None,
            "first seen"
        );
        assert_eq!(dog.check(at(10), seen(true, true, false)), None);
        assert_eq!(
            dog.check(at(11), seen(true, true, false)),
            Some(Expired::Frame(Duration::from_secs(10)))
        );
        // A frame that finishes starts the count again.
        dog.active(at(11));
        assert_eq!(dog.check(at(12), seen(true, true, false)), None);
        assert_eq!(dog.check(at(21), seen(true, true, false)), None);
    }

    #[tokio::test(start_paused = true)]
    async fn not_reading_stops_the_frame_clock_and_owing_the_idle_one() {
        let start = Instant::now();
        let mut dog = Watchdog::new(LIMITS);
        let at = |secs| start + Duration::from_secs(secs);
        assert_eq!(dog.check(at(1), seen(true, true, true)), None);
        // Back-pressure: the delay is ours, not the peer's.
        assert_eq!(dog.check(at(50), seen(true, false, true)), None);
        assert_eq!(dog.check(at(55), seen(true, true, true)), None);
        // Owing replies is not idle, however long.
        assert_eq!(dog.check(at(200), seen(false, true, true)), None);
        assert_eq!(dog.check(at(259), seen(false, true, false)), None);
        assert_eq!(
            dog.check(at(260), seen(false, true, false)),
            Some(Expired::Idle(Duration::from_secs(60)))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_bounds_nothing_expires_and_nothing_ticks() {
        let start = Instant::now();
        let mut dog = Watchdog::new(Timeouts::default());
        let later = start + Duration::from_secs(1 << 20);
        assert_eq!(dog.check(later, seen(true, true, false)), None);
        assert_eq!(dog.check(later, seen(false, true, false)), None);
        let tick = tokio::time::timeout(Duration::from_secs(3600), dog.tick()).await;
        assert!(tick.is_err(), "no ticks without bounds");
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_come_every_quarter_of_the_shorter_bound() {
        let start = Instant::now();
        let mut dog = Watchdog::new(LIMITS);
        assert_eq!(dog.tick().await, start + Duration::from_millis(2500));
        assert_eq!(dog.tick().await, start + Duration::from_secs(5));
    }
}
