//! A progress bar for a long run at a terminal.
//!
//! The client prints one line per answer, which is right for a pipe or a
//! short run but scrolls away a run of `--count 100000` at a terminal. So
//! when stdout is a terminal and the run's length is known (`--count`), the
//! answers go through [`Progress`], an `io::Write` that counts the lines it
//! is given and moves an indicatif bar instead of printing them, printing
//! only the error answers above the bar. Piped output keeps every line.

use std::io::{self, IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};

/// Where the answers are printed: stdout as it is, or a progress bar.
pub enum Output {
    /// Every answer on its own line.
    Lines(io::Stdout),
    /// A bar, and the error answers.
    Bar(Progress),
}

impl Output {
    /// A bar for `messages` answers if stdout is a terminal, else lines.
    pub fn for_run(messages: Option<u64>) -> Output {
        match messages {
            Some(total) if io::stdout().is_terminal() => Output::Bar(Progress::new(total)),
            _ => Output::Lines(io::stdout()),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::Lines(stdout) => stdout.write(buf),
            Output::Bar(progress) => progress.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Lines(stdout) => stdout.flush(),
            Output::Bar(progress) => progress.flush(),
        }
    }
}

/// Counts answer lines on a bar; error answers are printed above it.
pub struct Progress {
    bar: ProgressBar,
    /// The start of a line not yet ended.
    partial: Vec<u8>,
}

impl Progress {
    /// A bar that is full after `total` answers.
    pub fn new(total: u64) -> Progress {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:40} {pos}/{len} answers, {elapsed} so far, {eta} left",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Progress {
            bar,
            partial: Vec::new(),
        }
    }
}

impl Drop for Progress {
    /// The bar goes once the run is over, before the summary is printed.
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

impl Write for Progress {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.partial.extend_from_slice(buf);
        let mut answered = 0;
        while let Some(end) = self.partial.iter().position(|&byte| byte == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            if line.starts_with(b"ERR ") {
                self.bar
                    .println(String::from_utf8_lossy(&line[..line.len() - 1]));
            }
            answered += 1;
        }
        self.bar.inc(answered);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_one_answer_per_line_even_across_writes() {
        let mut progress = Progress::new(10);
        progress.write_all(b"Su mensaje 'a'\nSu mens").unwrap();
        assert_eq!(progress.bar.position(), 1);
        progress.write_all(b"aje 'b'\nERR TOO_LARGE x\n").unwrap();
        assert_eq!(progress.bar.position(), 3);
    }
}
