//! Connection tasks: thin adapters over tokio-tungstenite that publish events to the hub
//! and read commands from bounded channels. They never hold the object or a platform
//! pointer.

pub mod client;
pub mod conn;
pub mod options;
pub mod proxy;
pub mod server;
pub mod stream;

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

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

/// Queues `cmd` for a connection's writer: at once if there is room, else waiting at most
/// `wait`. Called on the 1C thread only (the wait blocks the caller, never a worker).
pub fn queue_command(
    engine: &Engine,
    tx: &mpsc::Sender<Command>,
    cmd: Command,
    wait: Duration,
) -> Queued {
    let cmd = match offer(tx, cmd) {
        Ok(queued) => return queued,
        Err(cmd) => cmd,
    };
    // Wait for half the queue, not for one slot. Waiting for one slot makes the 1C thread and
    // the writer take turns a message at a time once the queue is full: every message would
    // cost a wake-up and two context switches (on a shared core, the woken caller preempts the
    // writer as soon as it frees a slot). Half the queue is one wake-up per `capacity / 2`
    // messages. A peer that drains slowly but steadily is not called stuck: at the deadline
    // one free slot is enough.
    let want = (tx.max_capacity() / 2).max(1);
    let room = engine.block_on_timeout(wait, async { tx.reserve_many(want).await.map(drop) });
    if let Some(Err(_)) = room {
        return Queued::Closed;
    }
    offer(tx, cmd).unwrap_or(Queued::Full)
}

/// `try_send`: how it fared, or the command back when the queue is full.
fn offer(tx: &mpsc::Sender<Command>, cmd: Command) -> Result<Queued, Command> {
    match tx.try_send(cmd) {
        Ok(()) => Ok(Queued::Yes),
        Err(TrySendError::Closed(_)) => Ok(Queued::Closed),
        Err(TrySendError::Full(cmd)) => Err(cmd),
    }
}
