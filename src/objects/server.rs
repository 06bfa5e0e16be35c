//! `AddIn.WebSocket.Server`.
//!
//! The object is its members plus an [`ObjectCore`]. It owns the current run; the accept
//! loop and the connection tasks own only clones of the shared run context, so `Done()` can
//! drain, cancel and join them all. A persistent server's run is owned by the persistent
//! registry; the object only attaches to it.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Instant;

use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::task::TaskTracker;

use crate::error::{Error, Names, Result, ServerError};
use crate::hub::Pusher;
use crate::log::{Level, Log};
use crate::net::server::{Connections, ServerOptions, ServerRun, accept_loop};
use crate::net::{Command, Queued};
use crate::objects::{Args, Object, ObjectCore, close_code};
use crate::persistent::{
    self, Attachment, Claim, Ending, Lasting, Persistent, SERVERS, ServerPart,
};
use crate::registry::{Members, MethodDef, MethodId, PropDef, PropId, SERVER};
use crate::runtime::Engine;
use crate::tls;
use crate::value::Value;

/// `Статус`: -1 the last `Запустить` failed, 0 stopped, 1 listening.
const STATUS_ERROR: i64 = -1;
const STATUS_RUNNING: i64 = 1;

/// A running listener: the object's own, or a persistent one it is attached to.
struct Listening {
    interface: String,
    port: u16,
    ctx: Arc<ServerRun>,
    persistent: Option<Arc<Persistent>>,
}

/// A WebSocket server object.
#[derive(Default)]
pub struct Server {
    options: ServerOptions,
    run: Option<Listening>,
    /// The last `Запустить` failed (`Статус` -1).
    failed: bool,
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
    v.whole(CLIENT_ID, 0, u64::from(u32::MAX))
}

/// What the OS said, for an error text.
fn os_text(e: &std::io::Error) -> String {
    e.to_string()
}

impl Server {
    /// A server that is not listening.
    pub fn new() -> Server {
        Server::default()
    }

    /// The address to listen on. A blank interface is refused: listening on every interface
    /// exposes the 1C process to the network, so it happens only when asked for by name —
    /// `0.0.0.0` (every IPv4 interface), `::` (every IPv6 one, and IPv4 where the system
    /// maps it) or `*` (the same as `0.0.0.0`).
    fn bind_address(interface: &str, port: u16) -> Result<SocketAddr> {
        let interface = interface.trim();
        let host = match interface {
            "" => return Err(Error::Server(ServerError::BlankInterface)),
            "*" => "0.0.0.0",
            other => other,
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
                Error::Server(ServerError::NoSuchInterface {
                    interface: interface.to_owned(),
                })
            })
    }

    fn start(&mut self, core: &mut ObjectCore, args: &Args) -> Result<Value> {
        if self.run.is_some() {
            return Err(Error::Server(ServerError::AlreadyRunning));
        }
        let interface = args.str(0).to_owned();
        let port = args.get(1).whole(PORT, 0, 65535)? as u16;
        if let Some(po) = &self.options.persistent
            && let Some(p) = SERVERS.find(&po.name)
        {
            if p.interface != interface || (port != 0 && port != p.port) {
                return Err(Error::Server(ServerError::PersistentElsewhere {
                    name: p.name.clone(),
                    interface: p.interface.clone(),
                    port: p.port,
                }));
            }
            core.engine()?;
            match p.attachment.claim() {
                Claim::Taken => {
                    self.use_persistent(core, p);
                    return Ok(Value::Bool(true));
                }
                Claim::InUse => {
                    return Err(Error::Server(ServerError::PersistentInUse {
                        name: p.name.clone(),
                    }));
                }
                // It expired since the lookup: gone once swept (its port freed on this
                // thread), and a new one starts below.
                Claim::Expired => SERVERS.sweep(),
            }
        }
        let (cert, key_or_password, password) = (args.str(2), args.str(3), args.str(4));
        let log = Arc::new(match &self.options.log {
            Some(l) => l.open()?,
            None => Log::default(),
        });
        let tls = tls::server_config(cert, key_or_password, password)?.map(TlsAcceptor::from);
        let addr = Self::bind_address(&interface, port)?;
        let listen_error = |e: std::io::Error| {
            use std::io::ErrorKind::{AddrInUse, AddrNotAvailable, PermissionDenied};
            Error::Server(match e.kind() {
                AddrInUse => ServerError::PortInUse {
                    interface: interface.clone(),
                    port,
                },
                AddrNotAvailable => ServerError::NoSuchInterface {
                    interface: interface.clone(),
                },
                PermissionDenied => ServerError::PortNotPermitted { port },
                _ => ServerError::Listen {
                    interface: interface.clone(),
                    port,
                    os: os_text(&e),
                },
            })
        };
        let listener = std::net::TcpListener::bind(addr).map_err(listen_error)?;
        let bound = listener.local_addr().map(|a| a.port()).unwrap_or(port);
        listener.set_nonblocking(true).map_err(listen_error)?;
        let Some(po) = self.options.persistent.clone() else {
            let hub = core.hub().clone();
            let engine = core.engine()?;
            let ctx = launch(engine, hub, &self.options, tls, listener, &log)?;
            log.write(Level::Info, || format!("listening on {interface}:{bound}"));
            self.run = Some(Listening {
                interface,
                port: bound,
                ctx,
                persistent: None,
            });
            self.failed = false;
            return Ok(Value::Bool(true));
        };
        // A persistent server has its own engine, hub and pusher, owned by the registry;
        // this object's engine still serves its blocking calls (`Отправить` waits).
        core.engine()?;
        let engine = Engine::start()?;
        let hub = core.new_hub();
        let pusher = Pusher::start(&hub)?;
        let ctx = launch(&engine, hub.clone(), &self.options, tls, listener, &log)?;
        log.write(Level::Info, || {
            format!("listening on {interface}:{bound} (persistent)")
        });
        let attachment = Attachment::held();
        if let Some(expiry) = po.idle_expiry {
            let end = Ending {
                drain: ctx.drain.clone(),
                token: ctx.token.clone(),
                tracker: ctx.run_tracker.clone(),
                bound: ctx.options.limits.close_timeout,
                hub: hub.clone(),
            };
            engine.spawn(persistent::expire_when_idle(
                attachment.clone(),
                expiry,
                end,
            ));
        }
        let p = Arc::new(Persistent {
            name: po.name,
            engine,
            pusher,
            hub,
            attachment,
            kind: ServerPart {
                interface,
                port: bound,
                ctx,
            },
        });
        SERVERS.insert(p.clone());
        self.use_persistent(core, p);
        Ok(Value::Bool(true))
    }

    /// Uses persistent server `p`, held by this object (one object at a time, so no two
    /// objects ever split its events or disagree on its state): its hub (with what arrived
    /// meanwhile) becomes this object's, and this object's platform receives its pushed
    /// events.
    fn use_persistent(&mut self, core: &mut ObjectCore, p: Arc<Persistent>) {
        core.use_hub(p.hub.clone());
        self.run = Some(Listening {
            interface: p.interface.clone(),
            port: p.port,
            ctx: p.ctx.clone(),
            persistent: Some(p),
        });
        self.failed = false;
    }

    /// Leaves an attached persistent server running, alone from now on.
    fn detach(&mut self, core: &mut ObjectCore) {
        if let Some(p) = self.run.take().and_then(|r| r.persistent) {
            p.attachment.release();
        }
        core.release_hub();
    }

    /// `Остановить`: every connection closes with 1001 and the port is free on return.
    fn stop(&mut self, core: &mut ObjectCore) {
        self.failed = false;
        if let Some(p) = self.run.as_ref().and_then(|r| r.persistent.clone()) {
            // Really stops it: connections close with 1001, the port is free on return.
            self.detach(core);
            if SERVERS.remove(&p) {
                p.shut(p.ctx.options.limits.close_timeout);
            }
            return;
        }
        let Some(run) = self.run.take() else { return };
        run.ctx.log.write(Level::Info, || {
            format!("stopping {}:{}", run.interface, run.port)
        });
        // What `Отправить` accepted goes out, then 1001; the run's tasks are cut off at
        // `close_timeout`.
        let ctx = &run.ctx;
        match core.started_engine() {
            Some(e) => {
                e.end_tasks(
                    &ctx.drain,
                    &ctx.token,
                    &ctx.run_tracker,
                    ctx.options.limits.close_timeout,
                );
            }
            None => ctx.token.cancel(),
        }
    }

    fn conns(&self) -> Option<&Arc<Connections>> {
        self.run.as_ref().map(|r| &r.ctx.conns)
    }

    /// Queues `msg` to connection `id`; 1 if queued, 0 if there is no such connection.
    fn send_to(&self, core: &ObjectCore, id: u64, msg: Message) -> Result<Value> {
        let (Some(entry), Some(engine)) =
            (self.conns().and_then(|c| c.get(id)), core.started_engine())
        else {
            return Ok(Value::Int(0));
        };
        let wait = self.options.limits.send_timeout;
        match entry.commands.queue(engine, Command::Send(msg), wait) {
            Queued::Yes => Ok(Value::Int(1)),
            Queued::Closed => Ok(Value::Int(0)),
            Queued::Full => Err(Error::Server(ServerError::QueueFull {
                id,
                waited_ms: wait.as_millis(),
            })),
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
            .filter(|e| e.commands.try_queue(Command::Send(msg.clone())) == Queued::Yes)
            .count();
        Value::from_count(n as u64)
    }

    /// `Отключить`: true for the first call on an open connection; from then on the id is
    /// gone for 1C code (see [`Connections::claim`]) while the close completes.
    fn disconnect(&self, core: &ObjectCore, id: u64, code: f64, reason: &str) -> Value {
        let (Some(engine), Some(entry)) = (
            core.started_engine(),
            self.conns().and_then(|c| c.claim(id)),
        ) else {
            return Value::Bool(false);
        };
        let code = close_code(code);
        let wait = self.options.limits.close_timeout;
        if entry
            .commands
            .queue(engine, Command::Close(code, reason.to_owned()), wait)
            != Queued::Yes
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
            .ok_or(Error::Server(ServerError::NoConnection { id }))
    }

    /// `СписокСоединений`: the open connections (as `Соединения`: not those `Отключить`
    /// claimed) as a JSON array, by id.
    fn connection_list(&self) -> String {
        let list: Vec<serde_json::Value> = self
            .conns()
            .map(|c| c.list())
            .unwrap_or_default()
            .iter()
            .map(|e| e.list_entry())
            .collect();
        serde_json::Value::Array(list).to_string()
    }

    fn configure(&mut self, text: &str) -> Result<Value> {
        if self.run.is_some() {
            return Err(Error::Server(ServerError::ConfigureWhileRunning));
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

/// Registers `listener` with the runtime of `engine`, builds the run context and starts the
/// accept loop: the one launch path of both kinds of server (the object's own and a
/// persistent one).
fn launch(
    engine: &Engine,
    hub: Arc<crate::hub::Hub>,
    options: &ServerOptions,
    tls: Option<TlsAcceptor>,
    listener: std::net::TcpListener,
    log: &Arc<Log>,
) -> Result<Arc<ServerRun>> {
    let listener = {
        let _enter = engine.lease.handle().enter();
        tokio::net::TcpListener::from_std(listener).map_err(|e| {
            Error::Server(ServerError::Listen {
                interface: String::new(),
                port: 0,
                os: os_text(&e),
            })
        })?
    };
    let ctx = Arc::new(ServerRun {
        options: options.clone(),
        tls,
        hub: hub.clone(),
        conns: Arc::new(Connections::default()),
        tracker: engine.tracker.clone(),
        run_tracker: TaskTracker::new(),
        token: engine.token.child_token(),
        drain: engine.drain.child_token(),
        log: log.clone(),
    });
    // The listener counts as a live source for `Принять(0, …)`.
    hub.connection_started();
    engine.spawn(
        ctx.run_tracker
            .track_future(accept_loop(listener, ctx.clone())),
    );
    Ok(ctx)
}

impl Object for Server {
    fn members(&self) -> &'static Members {
        &SERVER
    }

    fn get(&mut self, _core: &ObjectCore, prop: &PropDef) -> Result<Value> {
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
                    .map(|e| format!("{}: {}", e.id, e.address))
                    .collect::<Vec<_>>()
                    .join(" | "),
            ),
            PropId::ConnectionCount => {
                Value::from_count(run.map_or(0, |r| r.ctx.conns.len() as u64))
            }
            _ => return Err(Error::NotImplemented { member: prop.names }),
        })
    }

    fn call(&mut self, core: &mut ObjectCore, m: &MethodDef, args: &mut Args) -> Result<Value> {
        match m.id {
            MethodId::Run => {
                let r = self.start(core, args);
                self.failed = self.run.is_none();
                r
            }
            MethodId::Stop => {
                self.stop(core);
                Ok(Value::Empty)
            }
            MethodId::Send => {
                let id = client_id(args.get(0))?;
                self.send_to(core, id, Message::text(args.take_str(1)))
            }
            MethodId::SendBinary => self.send_to(
                core,
                client_id(args.get(0))?,
                Message::binary(binary(args.get(1))),
            ),
            MethodId::Broadcast => Ok(self.broadcast(&Message::text(args.take_str(0)))),
            MethodId::BroadcastBinary => Ok(self.broadcast(&Message::binary(binary(args.get(0))))),
            MethodId::DisconnectClient => {
                Ok(self.disconnect(core, client_id(args.get(0))?, args.number(1), args.str(2)))
            }
            MethodId::ConnectionInfo => self.connection_info(client_id(args.get(0))?),
            MethodId::ReceiveFrom => {
                let id = client_id(args.get(0))?;
                let conns = self.conns().cloned();
                core.receive_from(id, args, || conns.as_ref().is_some_and(|c| c.present(id)))
            }
            MethodId::ConnectionList => Ok(Value::Str(self.connection_list())),
            MethodId::Configure => self.configure(args.str(0)),
            _ => Err(Error::NotImplemented { member: m.names }),
        }
    }

    /// Leaves an attached persistent server running; the core then drains and cancels this
    /// object's own listener and connections (they close with 1001), so the port is free
    /// after it.
    fn done(&mut self, core: &mut ObjectCore, deadline: Instant) {
        self.detach(core);
        core.done(deadline);
        self.run = None;
    }
}
