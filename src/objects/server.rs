//! `AddIn.WebSocket.Server`.
//!
//! Ownership as for the client: the object owns its hub, its engine (runtime lease, token,
//! tracker) and the current run; the accept loop and the connection tasks own only clones of
//! the shared run context, so `Done()` can cancel and join them all.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::task::TaskTracker;

use crate::error::{Error, Names, Result};
use crate::hub::{DeliveryMode, Hub, HubSettings, whole_number};
use crate::lang::Lang;
use crate::log::{Level, Log};
use crate::net::server::{Connections, Ctx, PersistentOptions, ServerOptions, accept_loop};
use crate::net::{Command, Queued, queue_command};
use crate::objects::{Args, Object, receive_event, receive_message};
use crate::persistent::{self, Persistent};
use crate::platform::{AppType, EventSink, PlatformContext};
use crate::registry::{Members, MethodDef, MethodId, PropDef, PropId, SERVER};
use crate::runtime::Engine;
use crate::tls;
use crate::value::Value;

/// `Статус`: -1 the last `Запустить` failed, 0 stopped, 1 listening.
const STATUS_ERROR: i64 = -1;
const STATUS_RUNNING: i64 = 1;

/// A running listener: the object's own, or a persistent one it is attached to.
struct Run {
    interface: String,
    port: u16,
    ctx: Arc<Ctx>,
    persistent: Option<Arc<Persistent>>,
}

/// A WebSocket server object.
pub struct Server {
    settings: HubSettings,
    app: AppType,
    /// The hub in use: the object's own, or an attached persistent server's.
    hub: Arc<Hub>,
    /// The object's own hub (closed at `Done()`).
    own_hub: Arc<Hub>,
    /// The platform's event sink, handed to a persistent server's hub on attach.
    sink: Option<Arc<dyn EventSink>>,
    engine: Option<Engine>,
    options: ServerOptions,
    run: Option<Run>,
    failed: bool,
    done: bool,
}

impl Default for Server {
    fn default() -> Self {
        Server::new()
    }
}

const CLIENT_ID: Names = Names {
    ru: "ИДКлиента",
    en: "ClientId",
};
const PORT: Names = Names {
    ru: "Порт",
    en: "Port",
};

fn client_id(v: &Value) -> Result<u64> {
    whole_number(v, CLIENT_ID, 0, u64::from(u32::MAX))
}

impl Server {
    /// A server that is not listening.
    pub fn new() -> Server {
        let settings = HubSettings::default();
        let hub = Hub::new(&settings, settings.mode.effective(AppType::Unknown));
        Server {
            settings,
            app: AppType::Unknown,
            own_hub: hub.clone(),
            sink: None,
            hub,
            engine: None,
            options: ServerOptions::default(),
            run: None,
            failed: false,
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

    fn apply_settings(&self) {
        let mode = match (self.settings.mode, self.hub.mode()) {
            (DeliveryMode::Auto, DeliveryMode::Pull) => DeliveryMode::Pull,
            (m, _) => m.effective(self.app),
        };
        self.hub.configure(&self.settings, mode);
    }

    fn bind_address(interface: &str, port: u16) -> Result<SocketAddr> {
        let interface = interface.trim();
        let host = if interface.is_empty() {
            "0.0.0.0"
        } else {
            interface
        };
        if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return Ok(SocketAddr::new(ip, port));
        }
        (host, port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| {
                Error::net(
                    format!("Нет такого сетевого интерфейса: «{interface}»"),
                    format!("No such network interface: \"{interface}\""),
                )
            })
    }

    fn start(&mut self, args: &Args) -> Result<Value> {
        if self.run.is_some() {
            return Err(Error::net(
                "Сервер уже запущен",
                "The server is already running",
            ));
        }
        let interface = args.str(0).to_owned();
        let port = whole_number(args.get(1), PORT, 0, 65535)? as u16;
        if let Some(po) = &self.options.persistent
            && let Some(p) = persistent::find(&po.name)
        {
            if p.interface != interface || (port != 0 && port != p.port) {
                return Err(Error::net(
                    format!(
                        "Постоянный сервер «{}» уже запущен на {}:{}",
                        p.name, p.interface, p.port
                    ),
                    format!(
                        "The persistent server \"{}\" already runs on {}:{}",
                        p.name, p.interface, p.port
                    ),
                ));
            }
            self.engine()?;
            return Ok(self.attach_persistent(p));
        }
        let (cert, key_or_password, password) = (args.str(2), args.str(3), args.str(4));
        let log = Arc::new(match &self.options.log {
            Some(l) => l.open()?,
            None => Log::default(),
        });
        let tls = tls::server_config(cert, key_or_password, password)?.map(TlsAcceptor::from);
        let addr = Self::bind_address(&interface, port)?;
        let listener = std::net::TcpListener::bind(addr).map_err(|e| {
            use std::io::ErrorKind::{AddrInUse, AddrNotAvailable, PermissionDenied};
            match e.kind() {
                AddrInUse => Error::net(
                    format!("Порт {port} на {interface} уже занят другой программой"),
                    format!("Port {port} on {interface} is already in use"),
                ),
                AddrNotAvailable => Error::net(
                    format!("Нет такого сетевого интерфейса на этом компьютере: «{interface}»"),
                    format!("No such network interface on this computer: \"{interface}\""),
                ),
                PermissionDenied => Error::net(
                    format!(
                        "Нет прав слушать порт {port} (порты ниже 1024 требуют прав администратора)"
                    ),
                    format!(
                        "No permission to listen on port {port} (ports below 1024 need privileges)"
                    ),
                ),
                _ => Error::net(
                    format!("Не удалось занять {interface}:{port}: {e}"),
                    format!("Cannot listen on {interface}:{port}: {e}"),
                ),
            }
        })?;
        let bound = listener.local_addr().map(|a| a.port()).unwrap_or(port);
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::net(e.to_string(), e.to_string()))?;
        if let Some(po) = self.options.persistent.clone() {
            log.write(Level::Info, || {
                format!("listening on {interface}:{bound} (persistent)")
            });
            return self.start_persistent(po, interface, bound, tls, listener, log);
        }
        let hub = self.hub.clone();
        let options = self.options.clone();
        let engine = self.engine()?;
        let listener = {
            let _enter = engine.lease.handle().enter();
            tokio::net::TcpListener::from_std(listener)
                .map_err(|e| Error::net(e.to_string(), e.to_string()))?
        };
        let ctx = Arc::new(Ctx {
            options,
            tls,
            hub: hub.clone(),
            conns: Arc::new(Connections::default()),
            tracker: engine.tracker.clone(),
            run_tracker: TaskTracker::new(),
            token: engine.token.child_token(),
            log: log.clone(),
        });
        // The listener counts as a live source for `Принять(0, …)`.
        hub.connection_started();
        log.write(Level::Info, || format!("listening on {interface}:{bound}"));
        engine.spawn(
            ctx.run_tracker
                .track_future(accept_loop(listener, ctx.clone())),
        );
        self.run = Some(Run {
            interface,
            port: bound,
            ctx,
            persistent: None,
        });
        self.failed = false;
        Ok(Value::Bool(true))
    }

    /// Starts a server that outlives this object, in its own engine with its own hub.
    fn start_persistent(
        &mut self,
        po: PersistentOptions,
        interface: String,
        port: u16,
        tls: Option<TlsAcceptor>,
        listener: std::net::TcpListener,
        log: Arc<Log>,
    ) -> Result<Value> {
        self.engine()?;
        let engine = Engine::start()?;
        let hub = Hub::new(&self.settings, self.settings.mode.effective(self.app));
        engine.spawn(hub.clone().run_pusher(engine.token.clone()));
        let listener = {
            let _enter = engine.lease.handle().enter();
            tokio::net::TcpListener::from_std(listener)
                .map_err(|e| Error::net(e.to_string(), e.to_string()))?
        };
        let ctx = Arc::new(Ctx {
            options: self.options.clone(),
            tls,
            hub: hub.clone(),
            conns: Arc::new(Connections::default()),
            tracker: engine.tracker.clone(),
            run_tracker: TaskTracker::new(),
            token: engine.token.child_token(),
            log: log.clone(),
        });
        hub.connection_started();
        engine.spawn(
            ctx.run_tracker
                .track_future(accept_loop(listener, ctx.clone())),
        );
        let alone_since = Arc::new(std::sync::Mutex::new(None));
        if let Some(expiry) = po.idle_expiry {
            engine.spawn(persistent::expire_when_idle(
                ctx.clone(),
                alone_since.clone(),
                expiry,
            ));
        }
        let p = Arc::new(Persistent {
            name: po.name,
            interface,
            port,
            engine,
            hub,
            ctx,
            alone_since,
        });
        persistent::insert(p.clone());
        Ok(self.attach_persistent(p))
    }

    /// Uses persistent server `p`: its hub (with what arrived meanwhile) becomes this
    /// object's, and this object's platform receives its pushed events.
    fn attach_persistent(&mut self, p: Arc<Persistent>) -> Value {
        *p.alone_since.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.hub = p.hub.clone();
        self.hub.set_sink(self.sink.clone());
        self.apply_settings();
        self.run = Some(Run {
            interface: p.interface.clone(),
            port: p.port,
            ctx: p.ctx.clone(),
            persistent: Some(p),
        });
        self.failed = false;
        Value::Bool(true)
    }

    /// Leaves an attached persistent server running, alone from now on.
    fn detach(&mut self) {
        if let Some(p) = self.run.take().and_then(|r| r.persistent) {
            p.hub.set_sink(None);
            *p.alone_since.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(std::time::Instant::now());
        }
        self.hub = self.own_hub.clone();
    }

    /// `Остановить`: every connection closes with 1001 and the port is free on return.
    fn stop(&mut self) {
        self.failed = false;
        if let Some(p) = self.run.as_ref().and_then(|r| r.persistent.clone()) {
            // Really stops it: connections close with 1001, the port is free on return.
            self.detach();
            persistent::remove(&p.name, p.ctx.options.limits.close_timeout);
            return;
        }
        let Some(run) = self.run.take() else { return };
        run.ctx.log.write(Level::Info, || {
            format!("stopping {}:{}", run.interface, run.port)
        });
        run.ctx.token.cancel();
        run.ctx.run_tracker.close();
        if let Some(e) = &self.engine {
            let tracker = run.ctx.run_tracker.clone();
            let wait = run.ctx.options.limits.close_timeout;
            let _ = e.block_on_timeout(wait, async move { tracker.wait().await });
        }
    }

    fn conns(&self) -> Option<&Arc<Connections>> {
        self.run.as_ref().map(|r| &r.ctx.conns)
    }

    /// Queues `msg` to connection `id`; 1 if queued, 0 if there is no such connection.
    fn send_to(&self, id: u64, msg: Message) -> Result<Value> {
        let (Some(entry), Some(engine)) = (self.conns().and_then(|c| c.get(id)), &self.engine)
        else {
            return Ok(Value::Int(0));
        };
        let wait = self.options.limits.send_timeout;
        match queue_command(engine, &entry.commands, Command::Send(msg), wait) {
            Queued::Yes => Ok(Value::Int(1)),
            Queued::Closed => Ok(Value::Int(0)),
            Queued::Full => Err(Error::net(
                format!(
                    "Клиент {id} не принимает данные {} мс: очередь отправки переполнена",
                    wait.as_millis()
                ),
                format!(
                    "Client {id} has not taken data for {} ms: the send queue is full",
                    wait.as_millis()
                ),
            )),
        }
    }

    /// Queues `msg` to every connection that has room now; a slow reader is skipped rather
    /// than holding everyone up, and the count says how many got it.
    fn broadcast(&self, msg: &Message) -> Value {
        let n = self
            .conns()
            .map(|c| c.list())
            .unwrap_or_default()
            .iter()
            .filter(|e| e.commands.try_send(Command::Send(msg.clone())).is_ok())
            .count();
        Value::from_count(n as u64)
    }

    fn disconnect(&self, id: u64, code: f64, reason: &str) -> Value {
        let (Some(entry), Some(engine)) = (self.conns().and_then(|c| c.get(id)), &self.engine)
        else {
            return Value::Bool(false);
        };
        let code = if code == 1000.0 || (3000.0..=4999.0).contains(&code) {
            code as u16
        } else {
            1000
        };
        let wait = self.options.limits.close_timeout;
        if queue_command(
            engine,
            &entry.commands,
            Command::Close(code, reason.to_owned()),
            wait,
        ) != Queued::Yes
        {
            entry.token.cancel();
        } else {
            // A peer that never answers the close is cut off after the bound.
            let token = entry.token.clone();
            engine.spawn(async move {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => token.cancel(),
                    _ = token.cancelled() => {}
                }
            });
        }
        Value::Bool(true)
    }

    fn connection_info(&self, id: u64) -> Result<Value> {
        self.conns()
            .and_then(|c| c.get(id))
            .map(|e| Value::Str(e.info_json()))
            .ok_or_else(|| {
                Error::net(
                    format!("Нет соединения с ИДКлиента {id}"),
                    format!("No connection with ClientId {id}"),
                )
            })
    }

    fn configure(&mut self, text: &str) -> Result<Value> {
        if self.run.is_some() {
            return Err(Error::net(
                "Настроить вызывается до Запустить (сервер уже запущен)",
                "Configure must be called before Run (the server is running)",
            ));
        }
        self.options = ServerOptions::parse(text)?;
        Ok(Value::Empty)
    }
}

fn binary(v: &Value) -> Vec<u8> {
    match v {
        Value::Binary(b) => b.clone(),
        _ => Vec::new(),
    }
}

impl Object for Server {
    fn members(&self) -> &'static Members {
        &SERVER
    }

    fn attach(&mut self, ctx: PlatformContext) {
        self.app = ctx.app;
        self.sink = Some(ctx.sink.clone());
        self.hub.set_sink(Some(ctx.sink));
        self.apply_settings();
    }

    fn get(&mut self, prop: &PropDef, lang: Lang) -> Result<Value> {
        if let Some(v) = self.settings.get(prop.id, lang) {
            return Ok(v);
        }
        let run = self.run.as_ref();
        Ok(match prop.id {
            PropId::Status => Value::Int(match (run, self.failed) {
                (Some(_), _) => STATUS_RUNNING,
                (None, true) => STATUS_ERROR,
                (None, false) => 0,
            }),
            PropId::Server => Value::Str(run.map(|r| r.interface.clone()).unwrap_or_default()),
            PropId::Port => Value::Int(run.map_or(0, |r| i64::from(r.port))),
            PropId::Connections => Value::Str(
                run.map(|r| r.ctx.conns.list())
                    .unwrap_or_default()
                    .iter()
                    .map(|e| format!("{}: {}", e.id, e.addr))
                    .collect::<Vec<_>>()
                    .join(" | "),
            ),
            PropId::ConnectionCount => {
                Value::from_count(run.map_or(0, |r| r.ctx.conns.len() as u64))
            }
            PropId::Pending => Value::from_count(self.hub.pending() as u64),
            PropId::Undelivered => Value::from_count(self.hub.undelivered()),
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
            return Err(Error::Platform {
                ru: "Объект уже завершён (Done)",
                en: "The object is done (Done was called)",
            });
        }
        match m.id {
            MethodId::Run => {
                let r = self.start(args);
                self.failed = self.run.is_none();
                r
            }
            MethodId::Stop => {
                self.stop();
                Ok(Value::Empty)
            }
            MethodId::Send => {
                let id = client_id(args.get(0))?;
                self.send_to(id, Message::text(args.take_str(1)))
            }
            MethodId::SendBinary => self.send_to(
                client_id(args.get(0))?,
                Message::binary(binary(args.get(1))),
            ),
            MethodId::Broadcast => Ok(self.broadcast(&Message::text(args.take_str(0)))),
            MethodId::BroadcastBinary => Ok(self.broadcast(&Message::binary(binary(args.get(0))))),
            MethodId::Receive => receive_message(&self.hub, args, Some(1), 2),
            MethodId::ReceiveEvent => receive_event(&self.hub, args),
            MethodId::DisconnectClient => {
                Ok(self.disconnect(client_id(args.get(0))?, args.number(1), args.str(2)))
            }
            MethodId::ConnectionInfo => self.connection_info(client_id(args.get(0))?),
            MethodId::Configure => self.configure(args.str(0)),
            _ => Err(Error::NotImplemented { member: m.names }),
        }
    }

    /// As the client's: the platform handle is already disarmed; close the hub, cancel every
    /// task (connections say 1001), join them within the bound. The port is free after it.
    fn done(&mut self) {
        self.done = true;
        self.detach();
        self.hub.close();
        if let Some(e) = &self.engine {
            e.shutdown(self.settings.shutdown_timeout);
        }
        self.run = None;
    }
}
