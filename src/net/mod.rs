//! Connection tasks: thin adapters over tokio-tungstenite that publish events to the hub
//! and read commands from bounded channels. They never hold the object or a platform
//! pointer.

pub mod client;
pub mod options;
pub mod stream;

use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// What 1C code asks a connection to do, in order.
#[derive(Debug)]
pub enum Command {
    /// Send a message.
    Send(tokio_tungstenite::tungstenite::Message),
    /// Start the close handshake.
    Close(u16, String),
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
