//! Where the messages come from: a random draw from the original exercise's
//! list, or the lines of standard input.
//!
//! The draw follows the original client: each message is picked uniformly
//! from the list, which holds "exit" (and "Mensaje de prueba" twice, so it
//! comes up twice as often), until "exit" is picked; "exit" is sent like any
//! other message and ends the run. `--count N` makes the length
//! fixed: N picks from the list without "exit", then "exit". `--seed` makes
//! the sequence reproducible.

use std::{
    io::{self, BufRead, IsTerminal},
    time::Duration,
};

use futures::FutureExt;
use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
use tokio::{sync::mpsc, time::Instant};

/// The message that ends a run.
pub const EXIT: &str = "exit";

/// The original client's messages, in its order; "exit" is last.
pub const MESSAGES: [&str; 17] = [
    "Hola",
    "Sistemas",
    "Mensaje de prueba",
    "Funciona!",
    "Saludos",
    "Distribuidos",
    "Bienvenido",
    "Mensaje hacia el servidor",
    "Mensaje de prueba",
    "Enviado",
    "Adiós",
    "INF343",
    "Sockets",
    "Enviando mensaje al headnode",
    "Funciona?",
    "Ayuda",
    EXIT,
];

/// A random sequence of messages from [`MESSAGES`] that ends with "exit".
#[derive(Debug, Clone)]
pub struct Draw {
    rng: StdRng,
    /// Picks without "exit" still to make; `None` draws until "exit".
    remaining: Option<u64>,
    finished: bool,
}

impl Draw {
    /// A draw seeded with `seed` (from the OS when `None`); with `count`,
    /// `count` messages other than "exit" and then "exit".
    pub fn new(seed: Option<u64>, count: Option<u64>) -> Draw {
        Draw {
            rng: match seed {
                Some(seed) => StdRng::seed_from_u64(seed),
                None => StdRng::from_entropy(),
            },
            remaining: count,
            finished: false,
        }
    }
}

impl Iterator for Draw {
    type Item = &'static str;

    fn next(&mut self) -> Option<&'static str> {
        if self.finished {
            return None;
        }
        let all = &MESSAGES[..];
        let without_exit = &MESSAGES[..MESSAGES.len() - 1];
        let message = match &mut self.remaining {
            None => all.choose(&mut self.rng),
            Some(0) => Some(&EXIT),
            Some(remaining) => {
                *remaining -= 1;
                without_exit.choose(&mut self.rng)
            }
        };
        let message = *message.expect("the lists are not empty");
        self.finished = message == EXIT;
        Some(message)
    }
}

/// The messages in lines of text: blank lines skipped, everything up to and
/// including a line "exit" (surrounding spaces ignored), which is sent as
/// "exit". Other lines are sent verbatim.
pub fn message_lines(input: impl BufRead) -> impl Iterator<Item = io::Result<String>> {
    let mut finished = false;
    input.lines().filter_map(move |line| {
        if finished {
            return None;
        }
        match line {
            Ok(line) if line.trim().is_empty() => None,
            Ok(line) if line.trim() == EXIT => {
                finished = true;
                Some(Ok(EXIT.to_owned()))
            }
            Ok(line) => Some(Ok(line)),
            Err(err) => {
                finished = true;
                Some(Err(err))
            }
        }
    })
}

/// The messages of one run, and how fast they may go out.
#[derive(Debug)]
pub struct Source {
    messages: Messages,
    /// `--interval`: the time between two messages, and when the next may
    /// go.
    pace: Option<(Duration, Option<Instant>)>,
}

/// Where the messages come from.
#[derive(Debug)]
enum Messages {
    /// Drawn at random.
    Drawn(Box<Draw>),
    /// Read from standard input by a thread of its own.
    Lines(mpsc::Receiver<io::Result<String>>),
}

impl Source {
    /// Messages drawn at random.
    pub fn drawn(draw: Draw) -> Source {
        Source::new(Messages::Drawn(Box::new(draw)))
    }

    /// Messages received on `lines` (a thread reading input sends them).
    pub fn lines(lines: mpsc::Receiver<io::Result<String>>) -> Source {
        Source::new(Messages::Lines(lines))
    }

    fn new(messages: Messages) -> Source {
        Source {
            messages,
            pace: None,
        }
    }

    /// The same messages, `interval` apart (`--interval`): the first at
    /// once, each next one `interval` after the one before.
    pub fn paced(mut self, interval: Duration) -> Source {
        self.pace = (!interval.is_zero()).then_some((interval, None));
        self
    }

    /// The lines of standard input, read on a plain thread: a blocking read
    /// of a terminal cannot be cancelled, and a thread does not keep the
    /// process alive once the run is over, as a Tokio blocking task would.
    pub fn stdin() -> Source {
        let (tx, rx) = mpsc::channel(64);
        std::thread::spawn(move || {
            let stdin = io::stdin();
            if stdin.is_terminal() {
                eprintln!("Type one message per line; a line 'exit' or Ctrl-D ends.");
            }
            for line in message_lines(stdin.lock()) {
                if tx.blocking_send(line).is_err() {
                    return;
                }
            }
        });
        Source::lines(rx)
    }

    /// The next message, once its time has come; `None` once the run's
    /// messages are over.
    pub async fn next(&mut self) -> io::Result<Option<String>> {
        if let Some((interval, due)) = &mut self.pace {
            if let Some(due) = *due {
                tokio::time::sleep_until(due).await;
            }
            *due = Some(Instant::now() + *interval);
        }
        self.take().await
    }

    /// Like [`Source::next`], but `None` if no message is ready yet. A paced
    /// source never has one ready: each message waits its turn in
    /// [`Source::next`].
    pub fn next_now(&mut self) -> Option<io::Result<Option<String>>> {
        if self.pace.is_some() {
            return None;
        }
        // Both arms are cancellation safe: a drawn message is ready at
        // once, and an mpsc receive loses nothing when dropped unfinished.
        self.take().now_or_never()
    }

    async fn take(&mut self) -> io::Result<Option<String>> {
        match &mut self.messages {
            Messages::Drawn(draw) => Ok(draw.next().map(str::to_owned)),
            Messages::Lines(lines) => lines.recv().await.transpose(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Under Tokio's paused clock: the first message at once, each next one
    /// an interval after the one before, none ready early.
    #[tokio::test(start_paused = true)]
    async fn a_paced_source_sends_one_message_per_interval() {
        let interval = Duration::from_millis(250);
        let mut source = Source::drawn(Draw::new(Some(1), Some(2))).paced(interval);
        let start = Instant::now();
        let mut at = Vec::new();
        while let Some(message) = source.next().await.unwrap() {
            at.push(start.elapsed());
            assert!(source.next_now().is_none(), "{message}: none ready early");
        }
        assert_eq!(at, [Duration::ZERO, interval, interval * 2]);
        let mut unpaced = Source::drawn(Draw::new(Some(1), Some(2))).paced(Duration::ZERO);
        assert!(unpaced.next_now().is_some(), "0s: no pacing");
    }

    #[test]
    fn exit_is_the_last_message_and_only_there() {
        assert_eq!(MESSAGES.iter().position(|&m| m == EXIT), Some(16));
    }

    #[test]
    fn count_gives_n_messages_then_exit() {
        for count in [0, 1, 5, 500] {
            let drawn: Vec<&str> = Draw::new(Some(1), Some(count)).collect();
            assert_eq!(drawn.len() as u64, count + 1);
            assert_eq!(drawn.last(), Some(&EXIT));
            assert!(!drawn[..drawn.len() - 1].contains(&EXIT));
        }
    }

    #[test]
    fn without_count_the_draw_ends_at_the_first_exit() {
        for seed in 0..50 {
            let drawn: Vec<&str> = Draw::new(Some(seed), None).collect();
            assert_eq!(drawn.last(), Some(&EXIT), "seed {seed}");
            assert_eq!(drawn.iter().filter(|&&m| m == EXIT).count(), 1);
        }
    }

    #[test]
    fn a_seed_gives_the_same_sequence_and_covers_the_list() {
        let a: Vec<&str> = Draw::new(Some(7), Some(500)).collect();
        let b: Vec<&str> = Draw::new(Some(7), Some(500)).collect();
        let c: Vec<&str> = Draw::new(Some(8), Some(500)).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        for message in &MESSAGES[..16] {
            assert!(a.contains(message), "{message} never drawn");
        }
    }

    #[test]
    fn lines_skip_blanks_and_stop_after_exit() {
        let input = "Hola\n\n   \n two  spaces \r\nAdiós\n  exit \nnot sent\n";
        let lines: Vec<String> = message_lines(input.as_bytes())
            .map(Result::unwrap)
            .collect();
        assert_eq!(lines, ["Hola", " two  spaces ", "Adiós", "exit"]);
        let lines: Vec<String> = message_lines("a\nb".as_bytes())
            .map(Result::unwrap)
            .collect();
        assert_eq!(lines, ["a", "b"], "end of input ends the run too");
    }

    #[test]
    fn invalid_utf8_input_is_an_error_that_ends_the_lines() {
        let mut lines = message_lines(&b"ok\n\xff\xfe\nafter\n"[..]);
        assert_eq!(lines.next().unwrap().unwrap(), "ok");
        assert!(lines.next().unwrap().is_err());
        assert!(lines.next().is_none());
    }
}
