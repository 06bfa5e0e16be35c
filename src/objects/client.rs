//! `AddIn.WebSocket.Client`.
//!
//! The object is its members plus an [`ObjectCore`] (hub, settings, engine, pusher, pull
//! calls, `Done()`). It owns the current connection's handles; the connection task owns only
//! its channel ends, the hub and token clones, so it can never outlive `Done()` holding
//! anything of the object's.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::time::Duration;

use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::error::{ClientError, Error, Result};
use crate::net::client::{
    self, ClientState, STATUS_IDLE, STATUS_OPEN, STATUS_RECONNECTING, Target, Task,
};
use crate::net::options::ClientOptions;
use crate::net::{Command, Queued, SendQueue, send_queue};
use crate::objects::{Args, Object, ObjectCore, close_code};
use crate::registry::{CLIENT, Members, MethodDef, MethodId, PropDef, PropId};
use crate::value::Value;

/// The most a ping may carry: a control frame's payload (RFC 6455 §5.5).
const MAX_PING: usize = 125;

/// The current (or last) connection.
struct Connection {
    shared: Arc<ClientState>,
    commands: SendQueue,
    token: CancellationToken,
    options: ClientOptions,
}

/// A WebSocket client object.
#[derive(Default)]
pub struct Client {
    conn: Option<Connection>,
    /// The address as 1C code passed it (`Сервер`).
    url: String,
}

fn not_connected() -> Error {
    Error::Client(ClientError::NotConnected)
}

impl Client {
    /// A client that is not connected.
    pub fn new() -> Client {
        Client::default()
    }

    fn status(&self) -> i32 {
        self.conn
            .as_ref()
            .map_or(STATUS_IDLE, |c| c.shared.status.load(Ordering::SeqCst))
    }

    fn connect(&mut self, core: &mut ObjectCore, url: &str, options: &str) -> Result<Value> {
        if self.status() == STATUS_OPEN {
            return Err(Error::Client(ClientError::AlreadyConnected));
        }
        let options = ClientOptions::parse(options)?;
        let target = Target::parse(url)?;
        self.drop_connection();
        let hub = core.hub().clone();
        let engine = core.engine()?;
        let shared = ClientState::new();
        let (tx, rx) = send_queue(&options.limits);
        let (ready_tx, ready_rx) = sync_channel(1);
        let token = engine.token.child_token();
        let wait = options.timeout + Duration::from_secs(2);
        let task = Task {
            target: target.clone(),
            options: options.clone(),
            hub,
            shared: shared.clone(),
            commands: rx,
            budget: tx.budget(),
            ready: ready_tx,
            token: token.clone(),
            done: engine.token.clone(),
            drain: engine.drain.clone(),
            tracker: engine.tracker.clone(),
        };
        engine.spawn(client::run(task));
        self.url = target.url.clone();
        let conn = Connection {
            shared,
            commands: tx,
            token,
            options,
        };
        let result = ready_rx.recv_timeout(wait);
        if result.is_err() {
            conn.token.cancel();
        }
        self.conn = Some(conn);
        match result {
            Ok(Ok(())) => Ok(Value::Bool(true)),
            Ok(Err(e)) => Err(e),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                Err(Error::Client(ClientError::ConnectTimedOut {
                    url: url.to_owned(),
                }))
            }
        }
    }

    /// Forgets an ended connection (its tasks are gone or going).
    fn drop_connection(&mut self) {
        if let Some(c) = self.conn.take() {
            c.token.cancel();
        }
    }

    fn disconnect(&mut self, core: &ObjectCore, code: f64, reason: &str) {
        let Some(c) = &self.conn else { return };
        c.shared.stopping.store(true, Ordering::SeqCst);
        if !c.shared.is_finished() && c.shared.status.load(Ordering::SeqCst) == STATUS_OPEN {
            let cmd = Command::Close(close_code(code), reason.to_owned());
            let sent = core.started_engine().is_some_and(|e| {
                c.commands.queue(e, cmd, c.options.limits.close_timeout) == Queued::Yes
            });
            if !sent || !c.shared.wait_finished(c.options.limits.close_timeout) {
                c.token.cancel();
                c.shared.wait_finished(Duration::from_secs(1));
            }
        }
        c.token.cancel();
        // Reconnecting: the back-off ends at the token; the status is settled on return.
        c.shared.wait_finished(Duration::from_secs(1));
    }

    fn send(&mut self, core: &ObjectCore, msg: Message) -> Result<()> {
        let c = self
            .conn
            .as_ref()
            .filter(|c| c.shared.status.load(Ordering::SeqCst) == STATUS_OPEN);
        let Some(c) = c else {
            if self.status() == STATUS_RECONNECTING {
                return Err(Error::Client(ClientError::Reconnecting));
            }
            return Err(not_connected());
        };
        let engine = core.started_engine().ok_or_else(not_connected)?;
        let wait = c.options.limits.send_timeout;
        match c.commands.queue(engine, Command::Send(msg), wait) {
            Queued::Yes => Ok(()),
            Queued::Closed => Err(not_connected()),
            Queued::Full => Err(Error::Client(ClientError::QueueFull {
                waited_ms: wait.as_millis(),
            })),
        }
    }
}

impl Object for Client {
    fn members(&self) -> &'static Members {
        &CLIENT
    }

    fn get(&mut self, _core: &ObjectCore, prop: &PropDef) -> Result<Value> {
        Ok(match prop.id {
            PropId::Status => Value::Int(i64::from(self.status())),
            PropId::Server => Value::Str(self.url.clone()),
            PropId::Subprotocol => Value::Str(
                self.conn
                    .as_ref()
                    .map(|c| {
                        c.shared
                            .subprotocol
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .clone()
                    })
                    .unwrap_or_default(),
            ),
            _ => return Err(Error::NotImplemented { member: prop.names }),
        })
    }

    fn call(&mut self, core: &mut ObjectCore, m: &MethodDef, args: &mut Args) -> Result<Value> {
        match m.id {
            MethodId::Connect => {
                let (url, options) = (args.str(0).to_owned(), args.str(1).to_owned());
                self.connect(core, &url, &options)
            }
            MethodId::Disconnect => {
                self.disconnect(core, args.number(0), args.str(1));
                Ok(Value::Empty)
            }
            MethodId::Send => self
                .send(core, Message::text(args.take_str(0)))
                .map(|()| Value::Empty),
            MethodId::SendBinary => {
                let data = match args.get(0) {
                    Value::Binary(b) => b.clone(),
                    _ => Vec::new(),
                };
                self.send(core, Message::binary(data))
                    .map(|()| Value::Empty)
            }
            MethodId::Ping => {
                let data = args.str(0).as_bytes().to_vec();
                if data.len() > MAX_PING {
                    return Err(Error::Client(ClientError::PingTooLong { len: data.len() }));
                }
                self.send(core, Message::Ping(data.into()))
                    .map(|()| Value::Empty)
            }
            _ => Err(Error::NotImplemented { member: m.names }),
        }
    }
}
