//! Connection tasks: thin adapters over tokio-tungstenite that publish events to the hub
//! and read commands from bounded channels. They never hold the object or a platform
//! pointer.

pub mod client;
pub mod conn;
pub mod forwarded;
pub mod options;
pub mod proxy;
pub mod server;
pub mod sio_client;
pub mod socketio;
pub mod stream;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::net::options::Limits;
use crate::runtime::Engine;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// What 1C code asks a connection to do, in order.
#[derive(Debug)]
pub enum Command {
    /// Send a message.
    Send(tokio_tungstenite::tungstenite::Message),
    /// Start the close handshake.
    Close(u16, String),
}

impl Command {
    /// Whether it carries a message of 1C code's (not a ping, not a close).
    pub fn is_message(&self) -> bool {
        matches!(self, Command::Send(m) if m.is_text() || m.is_binary())
    }
}

/// A close frame with `code` and `reason` (the reason cut to the 123 bytes a frame allows).
pub fn close_frame(code: u16, reason: &str) -> CloseFrame {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    CloseFrame {
        code: CloseCode::from(code),
        reason: reason[..end].to_owned().into(),
    }
}

/// The end of a connection task, waitable from the 1C thread.
#[derive(Default)]
pub struct Finished {
    done: std::sync::Mutex<bool>,
    cv: std::sync::Condvar,
}

impl Finished {
    /// The task has ended.
    pub fn set(&self) {
        *self.done.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
    }

    /// Whether the task has ended.
    pub fn is_set(&self) -> bool {
        *self.done.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the task has ended; false on timeout.
    pub fn wait(&self, timeout: Duration) -> bool {
        let g = self.done.lock().unwrap_or_else(|e| e.into_inner());
        let (g, _) = self
            .cv
            .wait_timeout_while(g, timeout, |d| !*d)
            .unwrap_or_else(|e| e.into_inner());
        *g
    }
}

/// How a command fared in a connection's bounded command queue.
#[derive(Debug, PartialEq, Eq)]
pub enum Queued {
    /// Queued for the writer.
    Yes,
    /// Still full after the wait: the peer is not taking data.
    Full,
    /// The connection is gone.
    Closed,
}

/// A connection's send queue as the object holds it: bounded in messages (the channel,
/// `send_queue`) and in bytes (`send_queue_bytes`: a byte count that `Отправить` charges and
/// the writer gives back once the message is written).
///
/// Why bytes too: a count alone lets one peer that stops reading hold `send_queue` messages
/// of any size (1,024 × 1 MiB = 1 GiB) in the 1C process.
#[derive(Clone)]
pub struct SendQueue {
    tx: mpsc::Sender<Command>,
    budget: ByteBudget,
}

/// The byte bound of a [`SendQueue`], shared with its writer.
///
/// Two monotonic counters, each written by one side only: `sent` by the 1C thread (bytes
/// queued), `freed` by the writer (bytes written); what is queued is their difference.
///
/// Why not a semaphore, nor one count both sides modify: the usual message finds room, yet
/// tokio's `Semaphore::add_permits` takes its waiter lock on every release, and a shared
/// count costs a compare-and-swap per message against the writer's updates. Here
/// `Отправить` reads `freed` (written only by the writer) and stores `sent`, which only it
/// writes; the [`Notify`] is touched only while someone waits. The producer side is 1C's: the platform calls an object from one
/// thread at a time, and one object at a time holds a connection (persistent ones
/// included); should two threads ever race here, the bound would be loose, never unsafe.
#[derive(Clone)]
pub struct ByteBudget {
    bytes: Arc<Bytes>,
    max: usize,
}

/// The shared state of a [`ByteBudget`].
#[derive(Default)]
struct Bytes {
    /// Bytes ever queued (the 1C thread's).
    sent: Line,
    /// Bytes ever written (the writer's).
    freed: Line,
    /// Callers waiting for room (the writer wakes them only when this is not 0).
    waiters: AtomicUsize,
    freed_note: Notify,
    /// Set once more than [`HEAVY`] bytes were queued at a time: the connection's end then
    /// gives the freed memory back to the system ([`crate::runtime::trim_memory`]).
    heavy: AtomicBool,
}

/// A counter written by one side. (Not padded to a cache line of its own: measured, the
/// padding bought no speed and cost 0.6 KiB per idle connection.)
#[derive(Default)]
struct Line(AtomicUsize);

/// Queued bytes above which a connection's end trims the heap.
const HEAVY: usize = 4 << 20;

impl ByteBudget {
    /// What `cmd` takes of the budget: its payload, at most the whole budget (a message
    /// larger than the bound waits for an empty queue instead of never fitting).
    pub fn charge(&self, cmd: &Command) -> usize {
        match cmd {
            Command::Send(m) if cmd.is_message() => m.len().min(self.max),
            _ => 0,
        }
    }

    /// Takes `n` bytes if they fit now (the 1C thread).
    fn try_take(&self, n: usize) -> bool {
        if n == 0 {
            return true;
        }
        let b = &self.bytes;
        let sent = b.sent.0.load(Ordering::Relaxed);
        let queued = sent.wrapping_sub(b.freed.0.load(Ordering::SeqCst));
        if queued + n > self.max {
            return false;
        }
        b.sent.0.store(sent.wrapping_add(n), Ordering::SeqCst);
        if queued + n > HEAVY && !b.heavy.load(Ordering::Relaxed) {
            b.heavy.store(true, Ordering::Relaxed);
        }
        true
    }

    /// Undoes a [`ByteBudget::try_take`] whose message was not queued after all (the 1C
    /// thread).
    fn untake(&self, n: usize) {
        if n > 0 {
            let sent = &self.bytes.sent.0;
            sent.store(
                sent.load(Ordering::Relaxed).wrapping_sub(n),
                Ordering::SeqCst,
            );
        }
    }

    /// Takes `n` bytes, waiting for the writer to free them.
    ///
    /// Why no wake-up is lost: the waiter registers (`waiters`, then an enabled
    /// `Notified`) before it looks again, and the writer adds to `freed` before it looks at
    /// `waiters`, all sequentially consistent: either the writer sees the waiter and
    /// notifies it, or the waiter's second look sees the freed bytes.
    async fn take(&self, n: usize) {
        if self.try_take(n) {
            return;
        }
        let b = &self.bytes;
        b.waiters.fetch_add(1, Ordering::SeqCst);
        let _done = WaiterGuard(&b.waiters);
        loop {
            let freed = b.freed_note.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.try_take(n) {
                return;
            }
            freed.await;
        }
    }

    /// Gives back `n` bytes the writer has taken to write.
    pub fn give(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.bytes.freed.0.fetch_add(n, Ordering::SeqCst);
        if self.bytes.waiters.load(Ordering::SeqCst) > 0 {
            self.bytes.freed_note.notify_waiters();
        }
    }

    /// Whether more than [`HEAVY`] bytes were ever queued at a time.
    pub fn was_heavy(&self) -> bool {
        self.bytes.heavy.load(Ordering::Relaxed)
    }

    /// Bytes queued and not yet written.
    #[cfg(test)]
    fn queued(&self) -> usize {
        let b = &self.bytes;
        b.sent
            .0
            .load(Ordering::SeqCst)
            .wrapping_sub(b.freed.0.load(Ordering::SeqCst))
    }
}

/// Counts a waiter out however its wait ends (taken, or dropped at the timeout).
struct WaiterGuard<'a>(&'a AtomicUsize);

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A send queue of `limits` and the receiving end for the connection's writer.
pub fn send_queue(limits: &Limits) -> (SendQueue, mpsc::Receiver<Command>) {
    let (tx, rx) = mpsc::channel(limits.send_queue);
    let budget = ByteBudget {
        bytes: Arc::default(),
        max: limits.send_queue_bytes,
    };
    (SendQueue { tx, budget }, rx)
}

impl SendQueue {
    /// The byte bound, for the writer.
    pub fn budget(&self) -> ByteBudget {
        self.budget.clone()
    }

    /// Queues `cmd` at once if there is room (in messages and bytes), else not at all.
    pub fn try_queue(&self, cmd: Command) -> Queued {
        let n = self.budget.charge(&cmd);
        if !self.budget.try_take(n) {
            return Queued::Full;
        }
        let queued = offer(&self.tx, cmd).unwrap_or(Queued::Full);
        if queued != Queued::Yes {
            self.budget.untake(n);
        }
        queued
    }

    /// Queues `cmd` for the writer: at once if there is room, else waiting at most `wait`
    /// (for the bytes, then for a slot). Called on the 1C thread only (the wait blocks the
    /// caller, never a worker).
    pub fn queue(&self, engine: &Engine, cmd: Command, wait: Duration) -> Queued {
        // The clock is read only when a wait is needed: the usual `Отправить` finds room.
        let mut deadline = None;
        let mut left = || {
            let d = *deadline.get_or_insert_with(|| Instant::now() + wait);
            d.saturating_duration_since(Instant::now())
        };
        let n = self.budget.charge(&cmd);
        if !self.budget.try_take(n) {
            let budget = &self.budget;
            if engine.block_on_timeout(left(), budget.take(n)).is_none() {
                return if self.tx.is_closed() {
                    Queued::Closed
                } else {
                    Queued::Full
                };
            }
        }
        let queued = match offer(&self.tx, cmd) {
            Ok(queued) => queued,
            Err(cmd) => self.wait_for_slot(engine, cmd, left()),
        };
        if queued != Queued::Yes {
            self.budget.untake(n);
        }
        queued
    }

    /// The message-count half of [`SendQueue::queue`], once the queue was found full.
    fn wait_for_slot(&self, engine: &Engine, cmd: Command, wait: Duration) -> Queued {
        let tx = &self.tx;
        // Wait for half the queue, not for one slot. Waiting for one slot makes the 1C thread
        // and the writer take turns a message at a time once the queue is full: every message
        // would cost a wake-up and two context switches (on a shared core, the woken caller
        // preempts the writer as soon as it frees a slot). Half the queue is one wake-up per
        // `capacity / 2` messages. A peer that drains slowly but steadily is not called stuck:
        // at the deadline one free slot is enough.
        let want = (tx.max_capacity() / 2).max(1);
        let room = engine.block_on_timeout(wait, async { tx.reserve_many(want).await.map(drop) });
        if let Some(Err(_)) = room {
            return Queued::Closed;
        }
        offer(tx, cmd).unwrap_or(Queued::Full)
    }
}

/// `try_send`: how it fared, or the command back when the queue is full.
fn offer(tx: &mpsc::Sender<Command>, cmd: Command) -> Result<Queued, Command> {
    match tx.try_send(cmd) {
        Ok(()) => Ok(Queued::Yes),
        Err(TrySendError::Closed(_)) => Ok(Queued::Closed),
        Err(TrySendError::Full(cmd)) => Err(cmd),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::Message;

    fn budget(max: usize) -> ByteBudget {
        ByteBudget {
            bytes: Arc::default(),
            max,
        }
    }

    fn text(n: usize) -> Command {
        Command::Send(Message::text("x".repeat(n)))
    }

    #[test]
    fn the_byte_count_bounds_and_an_oversized_message_takes_the_whole_budget() {
        let b = budget(100);
        assert!(b.try_take(60));
        assert!(!b.try_take(41), "60 + 41 > 100");
        assert!(b.try_take(40));
        b.untake(40);
        assert_eq!(b.queued(), 60);
        b.give(60);
        assert_eq!(
            b.charge(&text(1000)),
            100,
            "charged at most the whole budget"
        );
        assert_eq!(b.charge(&Command::Close(1000, String::new())), 0);
        assert!(b.try_take(b.charge(&text(1000))));
        assert!(!b.try_take(1), "an oversized message fills the budget");
        b.give(b.charge(&text(1000)));
        assert!(b.try_take(1));
        assert!(!b.was_heavy());
        let big = budget(16 << 20);
        assert!(big.try_take(HEAVY + 1));
        assert!(big.was_heavy());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiter_is_woken_by_the_bytes_the_writer_gives_back() {
        let b = budget(10);
        assert!(b.try_take(10));
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move { b.take(4).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "no room yet");
        assert_eq!(b.bytes.waiters.load(Ordering::SeqCst), 1);
        // Freed in steps smaller than what the waiter needs: it takes them once enough.
        b.give(2);
        b.give(2);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
        assert_eq!(b.queued(), 10);
        assert_eq!(b.bytes.waiters.load(Ordering::SeqCst), 0);
        // A wait that times out counts itself out.
        assert!(
            tokio::time::timeout(Duration::from_millis(20), b.take(1))
                .await
                .is_err()
        );
        assert_eq!(b.bytes.waiters.load(Ordering::SeqCst), 0);
    }
}
