//! The journal's tests: appending, recovery, group commit, failures, and
//! the write-then-durable contract.
use std::io::Write;

use super::*;
use crate::file::sync_dir;

fn read(journal: &Journal) -> String {
    std::fs::read_to_string(journal.path()).unwrap()
}

#[tokio::test]
async fn appends_whole_lines_and_creates_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path().join("a/b/log.txt"), Durability::Never).unwrap();
    journal.append(b"one\n").await.unwrap();
    journal.append(b"two\nthree\n").await.unwrap();
    assert_eq!(read(&journal), "one\ntwo\nthree\n");
}

#[tokio::test]
async fn reopening_appends_after_existing_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.txt");
    Journal::open(&path, Durability::Never)
        .unwrap()
        .append(b"first\n")
        .await
        .unwrap();
    Journal::open(&path, Durability::Never)
        .unwrap()
        .append(b"second\n")
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "first\nsecond\n");
}

#[tokio::test]
async fn a_torn_last_line_is_cut_at_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.txt");
    let whole = "2019-10-05 02:50:15 -> Hola\n2019-10-05 02:50:15 -> Adiós\n";
    for cut in 0..=whole.len() {
        std::fs::write(&path, &whole.as_bytes()[..cut]).unwrap();
        let journal = Journal::open(&path, Durability::Never).unwrap();
        journal.append(b"next\n").await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let kept = whole.as_bytes()[..cut]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |at| at + 1);
        assert_eq!(text, format!("{}next\n", &whole[..kept]), "cut at {cut}");
    }
}

#[tokio::test]
async fn a_partly_written_batch_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path().join("log.txt"), Durability::Never).unwrap();
    journal.append(b"kept\n").await.unwrap();
    {
        // What a write that failed halfway leaves behind.
        let mut appender = journal.inner.file.lock().unwrap();
        appender.file.write_all(b"half of a ba").unwrap();
        assert!(appender.take_back(b"half of a ba"));
    }
    journal.append(b"next\n").await.unwrap();
    assert_eq!(read(&journal), "kept\nnext\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_never_interleave_and_always_mode_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path().join("log.txt"), Durability::Always).unwrap();
    let mut tasks = Vec::new();
    for writer in 0..16 {
        let journal = journal.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..50 {
                let line = format!("{writer}:{n}:{}\n", "x".repeat(writer * 10));
                journal.append(line.as_bytes()).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let text = read(&journal);
    assert_eq!(text.lines().count(), 16 * 50);
    for line in text.lines() {
        let mut parts = line.split(':');
        let writer: usize = parts.next().unwrap().parse().unwrap();
        parts.next().unwrap();
        assert_eq!(parts.next().unwrap(), "x".repeat(writer * 10));
    }
    let sync = journal.inner.lock_sync();
    assert_eq!(
        sync.synced, sync.written,
        "every append was covered by a sync"
    );
    assert!(!sync.syncing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failed_sync_nothing_more_is_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path().join("log.txt"), Durability::Always).unwrap();
    journal.append(b"synced\n").await.unwrap();
    journal
        .inner
        .fail_next_sync
        .store(true, std::sync::atomic::Ordering::SeqCst);
    // A group of appends waiting on the failing sync: none succeeds,
    // neither the leader nor those that would lead the next sync.
    let tasks: Vec<_> = (0..8)
        .map(|n| {
            let journal = journal.clone();
            tokio::spawn(async move { journal.append(format!("{n}\n").as_bytes()).await })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().is_err());
    }
    let err = journal.append(b"later\n").await.unwrap_err();
    assert!(err.to_string().contains("earlier failure"), "{err}");
    assert!(
        err.to_string().contains("restart the node"),
        "says how to recover: {err}"
    );
    assert!(journal.sync().await.is_err());
    // Nothing was written after the failure was known.
    assert!(!read(&journal).contains("later"));
}

#[tokio::test]
async fn durable_modes_sync_the_new_file_and_its_new_folders() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new/folders/log.txt");
    let journal = Journal::open(&path, Durability::Always).unwrap();
    journal.append(b"x\n").await.unwrap();
    assert_eq!(read(&journal), "x\n");
    // A relative path without a folder syncs the current one.
    assert!(sync_dir(Path::new(".")).is_ok());
}

#[tokio::test]
async fn interval_mode_syncs_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(
        dir.path().join("log.txt"),
        Durability::Interval(Duration::from_millis(10)),
    )
    .unwrap();
    journal.append(b"x\n").await.unwrap();
    for _ in 0..500 {
        if journal.inner.lock_sync().synced == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the flusher never synced");
}

#[tokio::test]
async fn a_batch_is_in_the_file_when_write_returns_in_call_order() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path().join("log.txt"), Durability::Always).unwrap();
    let first = journal.write(b"first\n").unwrap();
    let second = journal.write(b"second\nthird\n").unwrap();
    // Nothing awaited yet: the order is the order of the calls.
    assert_eq!(read(&journal), "first\nsecond\nthird\n");
    assert!(first.seq() < second.seq());
    assert_eq!((first.seq().get(), second.seq().get()), (1, 2));
    assert_eq!(journal.inner.lock_sync().synced, 0);
    // Awaited in reverse: one sync covers both.
    second.durable().await.unwrap();
    assert_eq!(journal.inner.lock_sync().synced, 2);
    first.durable().await.unwrap();
}

#[tokio::test]
async fn durable_waits_for_the_disk_only_in_always_mode() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path().join("log.txt"), Durability::Never).unwrap();
    let written = journal.write(b"x\n").unwrap();
    let seq = written.seq();
    written.durable().await.unwrap();
    assert_eq!(
        journal.inner.lock_sync().synced,
        0,
        "never mode does not sync"
    );
    // sync_through forces it in any mode.
    journal.sync_through(seq).await.unwrap();
    assert_eq!(journal.inner.lock_sync().synced, 1);
}

#[tokio::test]
async fn an_empty_batch_writes_nothing_and_is_durable_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path().join("log.txt"), Durability::Always).unwrap();
    let written = journal.write(b"").unwrap();
    assert_eq!(written.seq().get(), 0);
    written.durable().await.unwrap();
    assert_eq!(read(&journal), "");
    assert_eq!(journal.inner.lock_sync().synced, 0);
}

#[tokio::test]
async fn another_journals_seq_is_the_callers_fault() {
    let dir = tempfile::tempdir().unwrap();
    let busy = Journal::open(dir.path().join("a.txt"), Durability::Never).unwrap();
    let idle = Journal::open(dir.path().join("b.txt"), Durability::Never).unwrap();
    let seq = busy.write(b"x\n").unwrap().seq();
    let err = idle.sync_through(seq).await.unwrap_err();
    assert!(
        matches!(err, Error::UnknownSeq { written: 0, .. }),
        "{err:?}"
    );
    assert_eq!(err.fault(), Fault::Caller);
    assert!(err.to_string().contains("b.txt"), "{err}");
}

#[tokio::test]
async fn errors_name_the_file_and_keep_the_system_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-folder");
    std::fs::write(&file, "").unwrap();
    let path = file.join("log.txt");
    let err = Journal::open(&path, Durability::Never).unwrap_err();
    assert!(matches!(err, Error::Open { .. }), "{err:?}");
    // A file where a folder must be: the flag is wrong, not the disk.
    assert_eq!(err.fault(), Fault::Caller);
    assert_eq!(err.path(), path);
    let text = err.to_string();
    let source = std::error::Error::source(&err).expect("the system error");
    assert_eq!(source.to_string(), text, "the text is the system's own");
    let kind = match &err {
        Error::Open { source, .. } => source.kind(),
        _ => unreachable!(),
    };
    let io = io::Error::from(err);
    assert_eq!((io.kind(), io.to_string()), (kind, text));
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_failed_write_is_an_io_error_of_that_file() {
    let journal = Journal::open("/dev/full", Durability::Never).unwrap();
    let err = journal.write(b"x\n").unwrap_err();
    assert!(matches!(err, Error::Write { .. }), "{err:?}");
    assert_eq!(err.fault(), Fault::Io);
    assert_eq!(err.path(), Path::new("/dev/full"));
}

#[tokio::test]
async fn a_second_writer_of_one_file_is_refused_while_the_first_lives() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.txt");
    let first = Journal::open(&path, Durability::Never).unwrap();
    let err = Journal::open(&path, Durability::Never).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err:?}");
    assert_eq!(err.fault(), Fault::Caller, "a configuration to fix: exit 2");
    let text = err.to_string();
    let pid = format!("pid {}", std::process::id());
    assert!(text.contains(&pid), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    // Another file of the same folder is another writer's to have.
    Journal::open(dir.path().join("other.txt"), Durability::Never).unwrap();
    drop(first);
    Journal::open(&path, Durability::Never).expect("free once the first is gone");
}

/// Makes `journal` look at its path `every` from now on.
fn follow_every(journal: &Journal, every: Duration) {
    journal.inner.file.lock().unwrap().follow_every(every);
}

/// A journal whose next write looks at its path at once.
fn following(path: &Path, durability: Durability) -> Journal {
    let journal = Journal::open(path, durability).unwrap();
    follow_every(&journal, Duration::ZERO);
    journal
}

#[tokio::test]
async fn a_failed_write_after_a_truncation_never_pads_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.txt");
    let journal = Journal::open(&path, Durability::Never).unwrap();
    for n in 0..100 {
        journal
            .append(format!("line {n}\n").as_bytes())
            .await
            .unwrap();
    }
    // copytruncate, then a write that fails halfway.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    {
        let mut appender = journal.inner.file.lock().unwrap();
        appender.file.write_all(b"half of").unwrap();
        assert!(appender.take_back(b"half of"));
    }
    journal.append(b"next\n").await.unwrap();
    assert_eq!(read(&journal), "next\n", "no NUL bytes, nothing else");
}

#[tokio::test]
async fn bytes_it_did_not_write_are_never_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.txt");
    let journal = Journal::open(&path, Durability::Never).unwrap();
    journal.append(b"kept\n").await.unwrap();
    let mut appender = journal.inner.file.lock().unwrap();
    appender.file.write_all(b"half").unwrap();
    // Someone else's bytes after ours: the end is no longer ours to cut.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"theirs\n")
        .unwrap();
    assert!(!appender.take_back(b"half"));
    // Nor is a file shorter than what we wrote.
    std::fs::write(&path, "ab").unwrap();
    assert!(!appender.take_back(b"half"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "ab");
}

#[tokio::test]
async fn a_file_renamed_away_is_followed_by_a_new_one() {
    for durability in [Durability::Never, Durability::Always] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.txt");
        let rotated = dir.path().join("log.txt.1");
        let journal = following(&path, durability);
        journal.append(b"before\n").await.unwrap();
        std::fs::rename(&path, &rotated).unwrap();
        journal.append(b"after\n").await.unwrap();
        assert_eq!(std::fs::read_to_string(&rotated).unwrap(), "before\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "after\n");
        // logrotate's `create`: the new file is made before the next write.
        std::fs::rename(&path, &rotated).unwrap();
        std::fs::write(&path, "").unwrap();
        journal.append(b"third\n").await.unwrap();
        journal.sync().await.unwrap();
        assert_eq!(std::fs::read_to_string(&rotated).unwrap(), "after\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "third\n");
    }
}

#[tokio::test]
async fn a_removed_file_is_created_again_and_a_truncated_one_appended_to() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.txt");
    let journal = following(&path, Durability::Never);
    journal.append(b"one\n").await.unwrap();
    std::fs::remove_file(&path).unwrap();
    journal.append(b"two\n").await.unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    journal.append(b"three\n").await.unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
}

#[tokio::test]
async fn the_path_is_looked_at_only_once_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.txt");
    let journal = Journal::open(&path, Durability::Never).unwrap();
    // An hour, so that a loaded machine cannot make it pass.
    follow_every(&journal, Duration::from_secs(3600));
    std::fs::rename(&path, dir.path().join("log.txt.1")).unwrap();
    journal.append(b"still the old file\n").await.unwrap();
    assert!(!path.exists(), "followed before its interval");
    follow_every(&journal, Duration::ZERO);
    journal.append(b"new\n").await.unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
}
