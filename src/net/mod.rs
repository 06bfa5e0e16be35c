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
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Semaphore, mpsc};
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
/// `send_queue`) and in bytes (`send_queue_bytes`: permits of a semaphore, one per byte,
/// taken by `Отправить` and given back by the writer once the message is written).
///
/// Why bytes too: a count alone lets one peer that stops reading hold `send_queue` messages
/// of any size (1,024 × 1 MiB = 1 GiB) in the 1C process.
#[derive(Clone)]
pub struct SendQueue {
    tx: mpsc::Sender<Command>,
    budget: ByteBudget,
}

/// The byte bound of a [`SendQueue`], shared with its writer.
#[derive(Clone)]
pub struct ByteBudget {
    permits: Arc<Semaphore>,
    max: usize,
    /// Set once more than [`HEAVY`] bytes were queued at a time: the connection's end then
    /// gives the freed memory back to the system ([`crate::runtime::trim_memory`]).
    heavy: Arc<AtomicBool>,
}

/// Queued bytes above which a connection's end trims the heap.
const HEAVY: usize = 4 << 20;

impl ByteBudget {
    /// What `cmd` takes of the budget: its payload, at most the whole budget (a message
    /// larger than the bound waits for an empty queue instead of never fitting).
    fn charge(&self, cmd: &Command) -> u32 {
        match cmd {
            Command::Send(m) if cmd.is_message() => m.len().min(self.max) as u32,
            _ => 0,
        }
    }

    /// Whether more than [`HEAVY`] bytes were ever queued at a time.
    pub fn was_heavy(&self) -> bool {
        self.heavy.load(Ordering::Relaxed)
    }

    /// Notes a queue that holds more than [`HEAVY`] bytes (one load while it does not).
    fn note_depth(&self) {
        if self.max - self.permits.available_permits().min(self.max) > HEAVY
            && !self.heavy.load(Ordering::Relaxed)
        {
            self.heavy.store(true, Ordering::Relaxed);
        }
    }

    /// Gives back what `cmd` took (the writer, once it is written).
    pub fn release(&self, cmd: &Command) {
        let n = self.charge(cmd);
        if n > 0 {
            self.permits.add_permits(n as usize);
        }
    }
}

/// A send queue of `limits` and the receiving end for the connection's writer.
pub fn send_queue(limits: &Limits) -> (SendQueue, mpsc::Receiver<Command>) {
    let (tx, rx) = mpsc::channel(limits.send_queue);
    let max = limits.send_queue_bytes;
    let budget = ByteBudget {
        permits: Arc::new(Semaphore::new(max)),
        max,
        heavy: Arc::default(),
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
        let Ok(permit) = self.budget.permits.try_acquire_many(n) else {
            return Queued::Full;
        };
        permit.forget();
        let queued = offer(&self.tx, cmd).unwrap_or(Queued::Full);
        if queued != Queued::Yes {
            self.budget.permits.add_permits(n as usize);
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
        match self.budget.permits.try_acquire_many(n) {
            Ok(p) => p.forget(),
            Err(_) => {
                let permits = &self.budget.permits;
                match engine.block_on_timeout(left(), permits.acquire_many(n)) {
                    Some(Ok(p)) => p.forget(),
                    Some(Err(_)) => return Queued::Closed,
                    None => return Queued::Full,
                }
            }
        }
        let queued = match offer(&self.tx, cmd) {
            Ok(queued) => queued,
            Err(cmd) => self.wait_for_slot(engine, cmd, left()),
        };
        if queued != Queued::Yes {
            self.budget.permits.add_permits(n as usize);
        } else {
            self.budget.note_depth();
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
