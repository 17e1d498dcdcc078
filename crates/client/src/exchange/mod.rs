//! One run over one connection: send the messages, read the answers.
//!
//! Two tasks share the connection. The sender takes messages from the
//! [`Feed`] (the run's [`crate::messages::Source`], shared by its
//! connections) and writes `SENDID` frames (`SEND` with `--plain`), the
//! unanswered ones of an earlier connection first, while fewer than `--pipeline` are
//! unanswered (a semaphore holds the free places in that window); whatever
//! messages are ready at once go out in one write. The receiver, on the
//! current task, reads the replies, which come in the order of the requests,
//! records each (a batch of replies that arrived together is one append to
//! the log file and one write to stdout) and frees a place per reply.
//! Reading never waits for writing, so large pipelined messages cannot
//! deadlock the two directions.
//! The sending half is `exchange/send.rs`; the receiving half is here, its
//! state one `Receiver` whose methods take a batch of replies and one reply.
//!
//! A run is one connection: if it is lost, the messages not answered yet
//! stay in [`Tagging`] for the next connection to send again with their
//! ids ([`crate::run`] reconnects); plain messages are reported as
//! unconfirmed instead, since resending one that the peer did store would
//! duplicate it. A peer that keeps the connection open
//! but sends no reply for `--reply-timeout` while requests are owed counts
//! as a lost connection (a peer that accepts and never answers would
//! otherwise keep the client waiting forever).
//!
//! A stop request (SIGTERM from `docker stop`, or Ctrl-C) ends the sending
//! only: the messages already sent are still answered and recorded, so the
//! log file ends with an answer for every message sent.

use std::{io::Write, sync::Arc, time::Duration};

use futures::{FutureExt, StreamExt};
use journal::{Journal, Record};
use protocol::{ErrorCode, ErrorReply, Frame, FrameCodec, FrameError, Reply};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::{mpsc, Semaphore},
    time::Instant,
};
use tokio_util::{codec::FramedRead, sync::CancellationToken};

use crate::{answer_text, Error, Summary};

mod send;
pub mod tagging;

use send::{send_all, SendEnd};
use tagging::{Feed, Tagging};

/// One run's context: where the messages come from, the window, and where
/// the answers go. The fields are named at the call; [`Exchange::run`]
/// takes the connection.
pub struct Exchange<'a, O: ?Sized> {
    /// The peer's address (`--connect`), to name it in failures.
    pub peer: &'a str,
    /// The messages to send (shared with the run's later connections).
    pub source: Feed,
    /// The ids of the messages, when they are tagged (`SENDID`); the
    /// unanswered ones are sent again first.
    pub tagging: Option<Arc<Tagging>>,
    /// Requests unanswered at most (`--pipeline`).
    pub pipeline: usize,
    /// The largest reply frame read ([`crate::Config::max_reply`]).
    pub max_reply: usize,
    /// The log file every answer is appended to.
    pub log: &'a Journal,
    /// Where every answer is printed too (stdout).
    pub out: &'a mut O,
    /// Once cancelled, no further message is sent; the run ends when those
    /// sent are answered.
    pub stop: CancellationToken,
    /// How long requests may wait with no reply at all before the
    /// connection is taken as lost (`--reply-timeout`); `None` waits
    /// forever.
    pub reply_timeout: Option<Duration>,
}

impl<O: Write + ?Sized> Exchange<'_, O> {
    /// Sends every message over `writer`, reads the answers from `reader`
    /// and records them, until the messages run out (or the stop request)
    /// and every message sent is answered, or the run fails.
    pub async fn run<R, W>(self, reader: R, writer: W) -> Summary
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let started = Instant::now();
        let window = Arc::new(Semaphore::new(self.pipeline));
        let (sent_tx, sent_rx) = mpsc::unbounded_channel();
        let sender = tokio::spawn(send_all(
            writer,
            self.source,
            self.tagging.clone(),
            Arc::clone(&window),
            sent_tx,
            self.stop,
        ));
        let mut replies = FramedRead::new(reader, FrameCodec::new(self.max_reply));
        let mut receiver = Receiver {
            peer: self.peer,
            max_reply: self.max_reply,
            log: self.log,
            out: self.out,
            tagging: self.tagging,
            window,
            sent_rx,
            sender_done: false,
            summary: Summary::empty(),
            record: Record::new(),
            printed: String::new(),
        };

        // The reply timeout runs while requests are owed, from when the
        // first of them was announced or the last reply came.
        let mut silent_since: Option<Instant> = None;
        while !receiver.finished() {
            let deadline = silent_since
                .zip(self.reply_timeout)
                .map(|(at, wait)| at + wait);
            tokio::select! {
                biased;
                sent = receiver.sent_rx.recv(), if !receiver.sender_done => match sent {
                    Some(n) => {
                        if receiver.answered() == receiver.summary.sent {
                            silent_since = Some(Instant::now());
                        }
                        receiver.summary.sent += n;
                    }
                    None => receiver.sender_done = true,
                },
                first = replies.next() => {
                    if let Err(failure) = receiver.take_batch(first, &mut replies).await {
                        receiver.summary.failure = Some(failure);
                        break;
                    }
                    silent_since = (receiver.answered() < receiver.summary.sent)
                        .then(Instant::now);
                }
                () = sleep_until_some(deadline), if deadline.is_some() => {
                    receiver.count_sent();
                    receiver.summary.failure = Some(Error::ReplyTimeout {
                        peer: self.peer.to_owned(),
                        wait: self.reply_timeout.unwrap_or_default(),
                        owed: receiver.summary.sent - receiver.answered(),
                    });
                    break;
                }
            }
        }
        receiver.summary.elapsed = started.elapsed();
        if receiver.summary.failure.is_none() {
            // The sender has finished (its channel closed); it may have
            // failed on input before ending, or been stopped.
            match sender.await {
                Ok(Ok(SendEnd::Interrupted)) => receiver.summary.interrupted = true,
                Ok(Err(failure)) => receiver.summary.failure = Some(failure),
                Ok(Ok(SendEnd::SourceDone)) | Err(_) => {}
            }
        } else {
            // Lost connection: the sender may be waiting for a place in the
            // window or for a line of input that will never be sent.
            sender.abort();
            receiver.count_sent();
        }
        receiver.summary
    }
}

/// Sleeps until `deadline`; never returns for `None` (the branch that polls
/// it is disabled then anyway).
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The receiving half of a run: counts the requests the sender announces,
/// and records the replies, which answer them in order.
struct Receiver<'a, O: ?Sized> {
    peer: &'a str,
    max_reply: usize,
    log: &'a Journal,
    out: &'a mut O,
    tagging: Option<Arc<Tagging>>,
    /// A place freed per reply.
    window: Arc<Semaphore>,
    /// How many requests each write of the sender carries, announced before
    /// the write.
    sent_rx: mpsc::UnboundedReceiver<u64>,
    /// Whether the sender closed `sent_rx`: every count is in.
    sender_done: bool,
    summary: Summary,
    /// The batch of answers being taken, as log lines and as printed.
    record: Record,
    printed: String,
}

impl<O: Write + ?Sized> Receiver<'_, O> {
    fn answered(&self) -> u64 {
        self.summary.confirmed + self.summary.errors
    }

    /// Whether the sender is done and every request it sent is answered.
    fn finished(&self) -> bool {
        self.sender_done && self.answered() == self.summary.sent
    }

    /// Takes the counts announced so far, without waiting.
    fn count_sent(&mut self) {
        loop {
            match self.sent_rx.try_recv() {
                Ok(n) => self.summary.sent += n,
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.sender_done = true;
                    break;
                }
            }
        }
    }

    /// Takes `first` and every reply that has already arrived after it as
    /// one batch: one append to the log file, one write to `out`.
    async fn take_batch<R: AsyncRead + Unpin>(
        &mut self,
        first: Option<Result<Frame, FrameError>>,
        replies: &mut FramedRead<R, FrameCodec>,
    ) -> Result<(), Error> {
        let stamp = journal::timestamp();
        let mut next = first;
        let mut taken = loop {
            if let Err(failure) = self.take(next, &stamp) {
                break Err(failure);
            }
            if self.answered() == self.summary.sent {
                break Ok(());
            }
            match replies.next().now_or_never() {
                Some(item) => next = item,
                None => break Ok(()),
            }
        };
        if let Err(source) = self.log.append(self.record.as_bytes()).await {
            let path = self.log.path().to_owned();
            tracing::error!(path = %path.display(), err = %source, "cannot write the log file");
            // The failure that stopped the batch, if any, is the one to tell.
            taken = taken.and(Err(Error::WriteLog { path, source }));
        }
        self.record.clear();
        // stdout may be a closed pipe (`client | head`): not a reason to stop.
        let _ = self
            .out
            .write_all(self.printed.as_bytes())
            .and_then(|()| self.out.flush());
        self.printed.clear();
        taken
    }

    /// Takes one item of the reply stream: an answer to record, or the end.
    fn take(&mut self, item: Option<Result<Frame, FrameError>>, stamp: &str) -> Result<(), Error> {
        let frame = match item {
            None => {
                // The sender closes its channel before it ends its side of
                // the connection, so if it is done, this sees it.
                self.count_sent();
                return if self.finished() {
                    Ok(())
                } else {
                    Err(Error::PeerClosed {
                        peer: self.peer.to_owned(),
                    })
                };
            }
            Some(Err(err)) => return Err(Error::reading(self.peer, err)),
            Some(Ok(frame)) => frame,
        };
        // The count of a write is announced before the write, so every
        // request a reply can answer is counted here.
        self.count_sent();
        if self.answered() >= self.summary.sent {
            return Err(self.bad_reply("sent a reply to no request".into()));
        }
        let (text, confirmed) = match frame {
            Frame::Data(payload) => Reply::parse(&payload)
                .as_ref()
                .and_then(answer_text)
                .ok_or_else(|| {
                    self.bad_reply(format!(
                        "sent something that is not an answer: {:?}",
                        String::from_utf8_lossy(&payload[..payload.len().min(80)])
                    ))
                })?,
            Frame::Oversized { len } => (
                ErrorReply::new(
                    ErrorCode::TooLarge,
                    format!(
                        "the answer ({len} bytes) exceeds what this client reads ({} bytes); \
                         raise --max-frame",
                        self.max_reply
                    ),
                )
                .to_string(),
                false,
            ),
        };
        if let Some(tagging) = &self.tagging {
            if let Some(code) = text
                .strip_prefix("ERR ")
                .and_then(|rest| ErrorCode::from_wire(rest.split(' ').next().unwrap_or("")))
                .filter(|&code| tagging::is_transient(code))
            {
                return Err(Error::NotNow {
                    peer: self.peer.to_owned(),
                    reply: code.to_string(),
                });
            }
            tagging.answered();
        }
        if confirmed {
            self.summary.confirmed += 1;
        } else {
            self.summary.errors += 1;
        }
        self.record.push(stamp, &text);
        self.printed.push_str(&text);
        self.printed.push('\n');
        self.window.add_permits(1);
        Ok(())
    }

    fn bad_reply(&self, problem: String) -> Error {
        Error::BadReply {
            peer: self.peer.to_owned(),
            problem,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use journal::Durability;
    use node::{
        session::{Session, SessionConfig},
        MessageStore, MessageVerb, StoreFuture,
    };
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::messages::{Draw, Source};

    /// Confirms every message except "Ayuda", which it refuses.
    struct Peer;

    impl MessageStore for Peer {
        fn store(&self, _peer: SocketAddr, messages: Vec<String>) -> StoreFuture {
            let results = messages
                .into_iter()
                .map(|m| {
                    if m == "Ayuda" {
                        Err(ErrorReply::new(ErrorCode::Storage, "no help here"))
                    } else {
                        Ok(format!("got '{m}'"))
                    }
                })
                .collect();
            futures::future::ready(results).boxed()
        }
    }

    /// Runs a session of [`Peer`] on one end of a pipe, which closes after
    /// `limit` bytes of requests were read, if given.
    fn start_peer(limit: Option<usize>) -> tokio::io::DuplexStream {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            let (read, write) = tokio::io::split(theirs);
            let shutdown = CancellationToken::new();
            let config = SessionConfig::new(MessageVerb::Send);
            let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
            match limit {
                None => {
                    let reader = FramedRead::new(read, FrameCodec::default());
                    Session::new(reader, write, peer, config)
                        .run(&Peer, &shutdown)
                        .await;
                }
                Some(limit) => {
                    use tokio::io::AsyncReadExt;
                    let reader = FramedRead::new(read.take(limit as u64), FrameCodec::default());
                    Session::new(reader, write, peer, config)
                        .run(&Peer, &shutdown)
                        .await;
                }
            }
        });
        ours
    }

    /// A run against the pipe of [`start_peer`], reading answers of up to
    /// 4 KiB.
    fn exchange<'a>(
        source: Source,
        pipeline: usize,
        log: &'a Journal,
        out: &'a mut Vec<u8>,
        stop: CancellationToken,
    ) -> Exchange<'a, Vec<u8>> {
        Exchange {
            peer: "127.0.0.1:9",
            source: source.into(),
            tagging: None,
            pipeline,
            max_reply: 4096,
            log,
            out,
            stop,
            reply_timeout: Some(Duration::from_secs(5)),
        }
    }

    async fn run_against(
        peer: tokio::io::DuplexStream,
        source: Source,
        pipeline: usize,
    ) -> (Summary, Vec<String>, String) {
        let dir = tempfile::tempdir().unwrap();
        let log = Journal::open(dir.path().join("answers.txt"), Durability::Never).unwrap();
        let (read, write) = tokio::io::split(peer);
        let mut out = Vec::new();
        let stop = CancellationToken::new();
        let summary = exchange(source, pipeline, &log, &mut out, stop)
            .run(read, write)
            .await;
        let lines = std::fs::read_to_string(log.path())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        (summary, lines, String::from_utf8(out).unwrap())
    }

    #[tokio::test]
    async fn a_stop_request_ends_the_sending_and_every_message_sent_is_answered() {
        let (lines_tx, lines_rx) = mpsc::channel(64);
        for i in 0..40 {
            lines_tx.send(Ok(format!("message {i}"))).await.unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let log = Journal::open(dir.path().join("answers.txt"), Durability::Never).unwrap();
        let (read, write) = tokio::io::split(start_peer(None));
        let stop = CancellationToken::new();
        let run = {
            let (log, stop) = (log.clone(), stop.clone());
            tokio::spawn(async move {
                let mut out = Vec::new();
                let source = Source::lines(lines_rx);
                exchange(source, 8, &log, &mut out, stop)
                    .run(read, write)
                    .await
            })
        };
        // The 40 lines are sent and answered; the sender then waits for
        // input that never comes, until the stop request.
        while std::fs::read_to_string(log.path()).unwrap().lines().count() < 40 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.cancel();
        let summary = run.await.unwrap();
        assert!(summary.interrupted);
        assert!(summary.failure.is_none(), "{:?}", summary.failure);
        assert_eq!((summary.sent, summary.confirmed), (40, 40));
        assert!(
            !summary.all_confirmed(),
            "an interrupted run is not a success"
        );
        assert!(summary.to_string().contains("interrupted"), "{summary}");
        // Nothing more is read once sending stopped.
        assert!(lines_tx.send(Ok("late".into())).await.is_err());
        let logged = std::fs::read_to_string(log.path()).unwrap();
        assert_eq!(logged.lines().count(), 40);
        assert!(logged.lines().all(|line| line.contains("got 'message ")));
    }

    #[tokio::test]
    async fn records_every_answer_in_order_whatever_the_pipeline() {
        let expected: Vec<&str> = Draw::new(Some(3), Some(300)).collect();
        for pipeline in [1, 2, 16, 1000] {
            let source = Source::drawn(Draw::new(Some(3), Some(300)));
            let (summary, lines, out) = run_against(start_peer(None), source, pipeline).await;
            assert_eq!(summary.sent, 301);
            assert!(summary.failure.is_none(), "{:?}", summary.failure);
            let refused = expected.iter().filter(|&&m| m == "Ayuda").count() as u64;
            assert_eq!(summary.errors, refused);
            assert_eq!(summary.confirmed, 301 - refused);
            assert_eq!(summary.all_confirmed(), refused == 0);
            assert_eq!(lines.len(), 301);
            for ((line, printed), message) in lines.iter().zip(out.lines()).zip(&expected) {
                let (stamp, text) = journal::parse_record(line).unwrap();
                assert_eq!(stamp.len(), 19, "{line}");
                assert_eq!(text, printed);
                if *message == "Ayuda" {
                    assert_eq!(text, "ERR STORAGE no help here");
                } else {
                    assert_eq!(text, format!("got '{message}'"));
                }
            }
        }
    }

    #[tokio::test]
    async fn a_lost_connection_leaves_messages_unconfirmed() {
        // "SEND exit" is 9 bytes + 4 of header: the peer reads 3 requests.
        let (tx, rx) = mpsc::channel(16);
        for _ in 0..5 {
            tx.send(Ok("exit".to_string())).await.unwrap();
        }
        drop(tx);
        let (summary, lines, _) = run_against(start_peer(Some(39)), Source::lines(rx), 8).await;
        assert_eq!(summary.confirmed, 3);
        assert_eq!(summary.sent, 5);
        assert_eq!(summary.unanswered(), 2);
        assert!(!summary.all_confirmed());
        assert!(summary.failure.is_some());
        assert_eq!(lines.len(), 3);
        let text = summary.to_string();
        assert!(
            text.starts_with("sent 5, confirmed 3, errors 0, unanswered 2, "),
            "{text}"
        );
    }

    /// A peer that accepts and never answers: the run ends after the
    /// reply timeout, the messages unconfirmed, the failure naming the flag.
    #[tokio::test(start_paused = true)]
    async fn a_peer_that_never_answers_is_a_lost_connection_after_the_reply_timeout() {
        let (ours, _silent) = tokio::io::duplex(1 << 16);
        let source = Source::drawn(Draw::new(Some(1), Some(3)));
        let (summary, lines, _) = run_against(ours, source, 8).await;
        assert_eq!((summary.sent, summary.confirmed), (4, 0));
        assert!(lines.is_empty());
        let failure = summary.failure.expect("a failure");
        assert!(
            matches!(failure, Error::ReplyTimeout { owed: 4, .. }),
            "{failure:?}"
        );
        let text = failure.to_string();
        assert!(
            text.contains("--reply-timeout") && text.contains("5s"),
            "{text}"
        );
    }
}
