//! Safe core of the WebSocket add-in for 1C:Enterprise.
//!
//! Data flows one way (see `DESIGN.md` of the project):
//!
//! ```text
//! 1C code ─► abi/ (unsafe: vtables, tVariant, UTF-16, memory manager, panic guard)
//!              │ safe calls by member index: objects::AddIn
//!              ▼
//!           objects::{Client, Server} ─► connection tasks ─► Hub ─► pull / PushSink
//! ```
//!
//! This crate holds no `unsafe` code: it sees [`value::Value`]s, member indexes and the
//! [`platform::EventSink`] trait, never pointers. `abi/` is the only crate that touches the
//! Native API.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod error;
pub mod event;
pub mod hub;
pub mod lang;
pub mod log;
pub mod net;
pub mod objects;
pub mod persistent;
pub mod platform;
pub mod registry;
pub mod runtime;
pub mod texts;
pub mod tls;
pub mod value;

pub use error::{Error, Result};
pub use lang::Lang;
pub use objects::{AddIn, Args};
pub use value::{Date, Value};
