//! `AddIn.WebSocket.Client`.
//!
//! Ownership: the object owns its hub (shared with its tasks through `Arc`), its runtime
//! lease (taken at the first `Подключиться`, dropped with the object), its cancellation token
//! and task tracker. Tasks own only their channel ends, the hub and token clones, so they
//! can never outlive `Done()` holding anything of the object's.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::hub::{DeliveryMode, Hub, HubSettings};
use crate::lang::Lang;
use crate::net::client::{
    self, STATUS_IDLE, STATUS_OPEN, STATUS_RECONNECTING, Shared, Target, Task,
};
use crate::net::options::ClientOptions;
use crate::net::{Command, Queued, queue_command};
use crate::objects::{Args, Object, receive_event, receive_message};
use crate::platform::{AppType, PlatformContext};
use crate::registry::{CLIENT, Members, MethodDef, MethodId, PropDef, PropId};
use crate::runtime::Engine;
use crate::value::Value;

/// The current (or last) connection.
struct Connection {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
    token: CancellationToken,
    options: ClientOptions,
}

/// A WebSocket client object.
pub struct Client {
    settings: HubSettings,
    app: AppType,
    hub: Arc<Hub>,
    engine: Option<Engine>,
    conn: Option<Connection>,
    url: String,
    done: bool,
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

fn not_connected() -> Error {
    Error::net("Нет подключения к серверу", "Not connected")
}

fn object_done() -> Error {
    Error::Platform {
        ru: "Объект уже завершён (Done)",
        en: "The object is done (Done was called)",
    }
}

impl Client {
    /// A client that is not connected.
    pub fn new() -> Client {
        let settings = HubSettings::default();
        let hub = Hub::new(&settings, settings.mode.effective(AppType::Unknown));
        Client {
            settings,
            app: AppType::Unknown,
            hub,
            engine: None,
            conn: None,
            url: String::new(),
            done: false,
        }
    }

    fn engine(&mut self) -> Result<&Engine> {
        if self.engine.is_none() {
            let engine = Engine::start()?;
            engine.spawn(self.hub.clone().run_pusher(engine.token.clone()));
            self.engine = Some(engine);
        }
        self.engine
            .as_ref()
            .ok_or_else(|| Error::Runtime("no runtime".into()))
    }

    fn status(&self) -> i32 {
        self.conn
            .as_ref()
            .map_or(STATUS_IDLE, |c| c.shared.status.load(Ordering::SeqCst))
    }

    fn apply_settings(&self) {
        // Re-applying Auto after the hub switched to pull keeps it pulling.
        let mode = match (self.settings.mode, self.hub.mode()) {
            (DeliveryMode::Auto, DeliveryMode::Pull) => DeliveryMode::Pull,
            (m, _) => m.effective(self.app),
        };
        self.hub.configure(&self.settings, mode);
    }

    fn connect(&mut self, url: &str, options: &str) -> Result<Value> {
        if self.status() == STATUS_OPEN {
            return Err(Error::net("Подключение уже выполнено", "Already connected"));
        }
        let options = ClientOptions::parse(options)?;
        let target = Target::parse(url)?;
        self.drop_connection();
        let hub = self.hub.clone();
        let engine = self.engine()?;
        let shared = Shared::new();
        let (tx, rx) = mpsc::channel(options.limits.send_queue);
        let (ready_tx, ready_rx) = sync_channel(1);
        let token = engine.token.child_token();
        let wait = options.timeout + Duration::from_secs(2);
        let task = Task {
            target: target.clone(),
            options: options.clone(),
            hub,
            shared: shared.clone(),
            commands: rx,
            ready: ready_tx,
            token: token.clone(),
            done: engine.token.clone(),
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
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => Err(Error::net(
                format!("Превышено время ожидания подключения к {url}"),
                format!("Timed out connecting to {url}"),
            )),
        }
    }

    /// Forgets an ended connection (its tasks are gone or going).
    fn drop_connection(&mut self) {
        if let Some(c) = self.conn.take() {
            c.token.cancel();
        }
    }

    fn disconnect(&mut self, code: f64, reason: &str) {
        let Some(c) = &self.conn else { return };
        c.shared.stopping.store(true, Ordering::SeqCst);
        if !c.shared.is_finished() && c.shared.status.load(Ordering::SeqCst) == STATUS_OPEN {
            // Any close code a peer accepts; others become 1000 (Disconnect never raises).
            let code = if code == 1000.0 || (3000.0..=4999.0).contains(&code) {
                code as u16
            } else {
                1000
            };
            let cmd = Command::Close(code, reason.to_owned());
            let sent = self.engine.as_ref().is_some_and(|e| {
                queue_command(e, &c.commands, cmd, c.options.limits.close_timeout) == Queued::Yes
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

    fn send(&mut self, msg: Message) -> Result<()> {
        let c = self
            .conn
            .as_ref()
            .filter(|c| c.shared.status.load(Ordering::SeqCst) == STATUS_OPEN);
        let Some(c) = c else {
            if self.status() == STATUS_RECONNECTING {
                return Err(Error::net(
                    "Нет подключения к серверу: связь потеряна, идёт переподключение",
                    "Not connected: the connection was lost, reconnecting",
                ));
            }
            return Err(not_connected());
        };
        let engine = self.engine.as_ref().ok_or_else(not_connected)?;
        let wait = c.options.limits.send_timeout;
        match queue_command(engine, &c.commands, Command::Send(msg), wait) {
            Queued::Yes => Ok(()),
            Queued::Closed => Err(not_connected()),
            Queued::Full => Err(Error::net(
                format!(
                    "Очередь отправки переполнена: сервер не принимает данные {} мс",
                    wait.as_millis()
                ),
                format!(
                    "The send queue is full: the server has not taken data for {} ms",
                    wait.as_millis()
                ),
            )),
        }
    }
}

impl Object for Client {
    fn members(&self) -> &'static Members {
        &CLIENT
    }

    fn attach(&mut self, ctx: PlatformContext) {
        self.app = ctx.app;
        self.hub.set_sink(Some(ctx.sink));
        self.apply_settings();
    }

    fn get(&mut self, prop: &PropDef, lang: Lang) -> Result<Value> {
        if let Some(v) = self.settings.get(prop.id, lang) {
            return Ok(v);
        }
        Ok(match prop.id {
            PropId::Status => Value::Int(i64::from(self.status())),
            PropId::Server => Value::Str(self.url.clone()),
            PropId::Pending => Value::from_count(self.hub.pending() as u64),
            PropId::Undelivered => Value::from_count(self.hub.undelivered()),
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

    fn set(&mut self, prop: &PropDef, v: Value) -> Result<()> {
        if self.settings.set(prop.id, prop.names, &v)? {
            self.apply_settings();
            return Ok(());
        }
        Err(Error::ReadOnly { prop: prop.names })
    }

    fn call(&mut self, m: &MethodDef, args: &mut Args, _lang: Lang) -> Result<Value> {
        if self.done {
            return Err(object_done());
        }
        match m.id {
            MethodId::Connect => {
                let (url, options) = (args.str(0).to_owned(), args.str(1).to_owned());
                self.connect(&url, &options)
            }
            MethodId::Disconnect => {
                self.disconnect(args.number(0), args.str(1));
                Ok(Value::Empty)
            }
            MethodId::Send => self
                .send(Message::text(args.take_str(0)))
                .map(|()| Value::Empty),
            MethodId::SendBinary => {
                let data = match args.get(0) {
                    Value::Binary(b) => b.clone(),
                    _ => Vec::new(),
                };
                self.send(Message::binary(data)).map(|()| Value::Empty)
            }
            MethodId::Ping => self
                .send(Message::Ping(args.str(0).as_bytes().to_vec().into()))
                .map(|()| Value::Empty),
            MethodId::Receive => receive_message(&self.hub, args, None, 1),
            MethodId::ReceiveEvent => receive_event(&self.hub, args),
            _ => Err(Error::NotImplemented { member: m.names }),
        }
    }

    /// Why this order: the platform handle is already disarmed by `abi/` before we get here,
    /// so no event can reach 1C. Closing the hub wakes anything waiting on it; cancelling
    /// the token makes every task leave its `select!`; the bounded wait then joins them on
    /// this (1C) thread. The runtime itself is released when the object is dropped.
    fn done(&mut self) {
        self.done = true;
        self.hub.close();
        if let Some(e) = &self.engine {
            e.shutdown(self.settings.shutdown_timeout);
        }
    }
}
