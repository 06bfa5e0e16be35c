//! The diagnostic log (`log_file`, `log_level`): one line per thing that happened, never
//! message bodies unless `log_messages` asks for them. A log that cannot be written never
//! breaks or slows a connection.
//!
//! Why a thread: opening or writing a file can block without bound (a network share that
//! stopped answering, a FIFO nobody reads), and the lines come from runtime workers that
//! serve every socket of the process. So each log has its own writer thread, fed through a
//! bounded channel of [`QUEUE`] lines; a line that does not fit (the thread is behind or
//! stuck) is dropped and counted, never waited for, and the count is written into the log
//! as soon as it moves again. The thread opens the file itself: the 1C thread waits for that
//! at most [`crate::tls::FILE_TIMEOUT`] (so that `Запустить` can report a bad `log_file`),
//! a runtime worker never waits. Dropping the [`Log`] closes the channel; the thread writes
//! what is queued and ends (a thread stuck in the kernel ends when the kernel returns).

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, FileError, FileKind, Result};
use crate::value::Date;

/// Lines queued for the writer thread at most; more are dropped and counted.
pub const QUEUE: usize = 4096;

/// How long dropping the last handle off the runtime (the 1C thread in `Остановить` or
/// `Done()`) waits for the queued lines to reach the file.
pub const FLUSH_BOUND: std::time::Duration = std::time::Duration::from_millis(500);

/// How much to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Failures only.
    Error,
    /// Also opens, closes, refusals and limits (default).
    Info,
    /// Also every message (its size; its body with `log_messages`).
    Debug,
}

impl Level {
    /// From `error` / `info` / `debug`.
    pub fn parse(s: &str) -> Option<Level> {
        match s.to_ascii_lowercase().as_str() {
            "error" => Some(Level::Error),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            _ => None,
        }
    }
}

/// A log file, or nothing.
#[derive(Default)]
pub struct Log {
    /// The writer thread's end of the channel (`None`: no log).
    sink: Option<SyncSender<String>>,
    /// Lines dropped because the queue was full or the file could not be opened; shared
    /// with the writer thread, which reports and resets it.
    dropped: Arc<AtomicU64>,
    level: Option<Level>,
    /// Include message bodies at debug level.
    pub bodies: bool,
    /// Disconnected by the writer thread when it has written everything and ended.
    finished: Option<Mutex<Receiver<()>>>,
}

impl Log {
    /// Opens (appends to) `path`, a regular file or a new one, on the log's own thread.
    /// Called from a runtime worker it never waits (a failure is then counted as dropped
    /// lines); called elsewhere it waits at most [`crate::tls::FILE_TIMEOUT`] and reports
    /// a file that cannot be opened or does not answer.
    pub fn open(path: &str, level: Level, bodies: bool) -> Result<Log> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<String>(QUEUE);
        let (opened_tx, opened_rx) = std::sync::mpsc::sync_channel(1);
        let dropped = Arc::new(AtomicU64::new(0));
        let (finished_tx, finished_rx) = std::sync::mpsc::sync_channel::<()>(0);
        let owned = path.to_owned();
        let counter = dropped.clone();
        std::thread::Builder::new()
            .name("ws1c-log".into())
            .spawn(move || {
                // Dropped when the thread ends: tells a waiting drop that all is written.
                let _finished = finished_tx;
                match open_file(&owned) {
                    Ok(file) => {
                        let _ = opened_tx.send(Ok(()));
                        writer(file, &rx, &counter);
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| Error::File(FileError::NoThread(e)))?;
        if tokio::runtime::Handle::try_current().is_err() {
            match opened_rx.recv_timeout(crate::tls::FILE_TIMEOUT) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(Error::File(e)),
                Err(_) => {
                    return Err(Error::File(FileError::NoAnswer {
                        kind: FileKind::Log,
                        path: path.to_owned(),
                        waited_ms: crate::tls::FILE_TIMEOUT.as_millis() as u64,
                    }));
                }
            }
        }
        Ok(Log {
            sink: Some(tx),
            dropped,
            level: Some(level),
            bodies,
            finished: Some(Mutex::new(finished_rx)),
        })
    }

    /// Whether lines of `level` are written.
    pub fn enabled(&self, level: Level) -> bool {
        self.level.is_some_and(|l| level <= l)
    }

    /// Lines dropped so far and not yet reported in the file.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queues a line of `level`; the text is built only if it will be written. Never waits.
    pub fn write(&self, level: Level, text: impl FnOnce() -> String) {
        if !self.enabled(level) {
            return;
        }
        let Some(sink) = &self.sink else { return };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let stamp = Date::from_unix(now.as_secs() as i64);
        let line = format!("{stamp}.{:03}Z {level:?} {}\n", now.subsec_millis(), text());
        match sink.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Log {
    /// Closes the channel; off the runtime, waits at most [`FLUSH_BOUND`] for the writer to
    /// finish, so that a log read after `Остановить` or `Done()` is complete. A runtime
    /// worker never waits.
    fn drop(&mut self) {
        self.sink = None;
        if tokio::runtime::Handle::try_current().is_ok() {
            return;
        }
        if let Some(f) = self.finished.take()
            && let Ok(rx) = f.into_inner()
        {
            let _ = rx.recv_timeout(FLUSH_BOUND);
        }
    }
}

/// Opens `path` for appending: a regular file, or a new one. Anything else (a FIFO, a
/// device) is refused before it is opened, since opening a FIFO for writing blocks until
/// someone reads it.
fn open_file(path: &str) -> Result<std::fs::File, FileError> {
    let io = |error| FileError::Io {
        kind: FileKind::Log,
        path: path.to_owned(),
        error,
    };
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => {
            return Err(FileError::NotRegular {
                kind: FileKind::Log,
                path: path.to_owned(),
            });
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)
}

/// The writer thread's loop: takes what is queued, writes it in one call, reports lines
/// dropped since the last write; ends when every [`Log`] handle is gone.
fn writer(mut file: std::fs::File, rx: &Receiver<String>, dropped: &AtomicU64) {
    let mut buf = String::new();
    while let Ok(first) = rx.recv() {
        buf.clear();
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            buf.push_str(&format!(
                "-- {lost} log lines dropped (the log could not keep up) --\n"
            ));
        }
        buf.push_str(&first);
        let mut lines = 1;
        while buf.len() < 1 << 20
            && let Ok(more) = rx.try_recv()
        {
            buf.push_str(&more);
            lines += 1;
        }
        if file.write_all(buf.as_bytes()).is_err() {
            // Counted like a full queue; the next write tries again.
            dropped.fetch_add(lines, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_reach_the_file_and_a_full_queue_drops_instead_of_waiting() {
        let path = std::env::temp_dir().join(format!("ws1c-log-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let p = path.to_str().unwrap_or_default();
        let log = Log::open(p, Level::Info, false).expect("open");
        log.write(Level::Info, || "first line".to_owned());
        log.write(Level::Debug, || unreachable!("not built at info level"));
        // Far more than the queue holds, without ever blocking.
        let t = std::time::Instant::now();
        for i in 0..QUEUE * 20 {
            log.write(Level::Error, || format!("line {i}"));
        }
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
        drop(log);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut text = String::new();
        while std::time::Instant::now() < deadline {
            text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.contains(&format!("line {}", QUEUE * 20 - 1)) || text.lines().count() > QUEUE {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(text.contains("first line"), "{text:.200}");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_fifo_is_refused_without_opening_it() {
        let dir = std::env::temp_dir().join(format!("ws1c-logfifo-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let fifo = dir.join("f");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.map(|s| s.success()).unwrap_or(false) {
            let e = open_file(fifo.to_str().unwrap_or_default()).err();
            assert!(matches!(e, Some(FileError::NotRegular { .. })), "{e:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
