//! `AddIn.WebSocket.Client`.
//!
//! The object is its members plus an [`ObjectCore`] (hub, settings, engine, pusher, pull
//! calls, `Done()`). It owns the current connection's handles; the connection task owns only
//! its channel ends, the hub and token clones, so it can never outlive `Done()` holding
//! anything of the object's.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_tungstenite::tungstenite::Message;
use tokio_util::task::TaskTracker;

use crate::error::{ClientError, Error, Result};
use crate::hub::{Hub, Pusher};
use crate::lang::Lang;
use crate::net::client::{
    self, ClientState, Link, STATUS_CONNECTING, STATUS_ERROR, STATUS_IDLE, STATUS_OPEN,
    STATUS_RECONNECTING, Target, Task,
};
use crate::net::options::{ClientOptions, PersistentOptions};
use crate::net::{Command, Queued, send_queue};
use crate::objects::{Args, Object, ObjectCore, close_code};
use crate::persistent::{
    self, Attachment, CLIENTS, Claim, ClientPart, Ending, Lasting, PersistentClient,
};
use crate::registry::{CLIENT, Members, MethodDef, MethodId, PropDef, PropId};
use crate::runtime::Engine;
use crate::value::Value;

/// The most a ping may carry: a control frame's payload (RFC 6455 §5.5).
const MAX_PING: usize = 125;

/// A WebSocket client object.
#[derive(Default)]
pub struct Client {
    /// The current (or last) connection.
    conn: Option<Link>,
    /// The persistent client this object is attached to: registered, or ended by this
    /// object's `Отключиться` and kept until the object lets go, so that its last events
    /// can still be read.
    owner: Option<Arc<PersistentClient>>,
    /// The address as 1C code passed it (`Сервер`).
    url: String,
}

/// How `Подключиться` / `НачатьПодключение` wait.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Until the first connect succeeds or fails (`Подключиться`).
    Blocking,
    /// Not at all: the outcome is the Open or Fail event (`НачатьПодключение`).
    Event,
}

/// Starts a connection task on `engine` (also tracked by `tracker`, for a persistent
/// client's expiry) publishing to `hub`; with [`Wait::Blocking`], the receiver of its first
/// result.
fn dial(
    engine: &Engine,
    tracker: Option<&TaskTracker>,
    hub: Arc<Hub>,
    target: &Target,
    options: ClientOptions,
    lang: Lang,
    wait: Wait,
) -> (Link, Option<Receiver<Result<()>>>) {
    let shared = ClientState::new();
    let (tx, rx) = send_queue(&options.limits);
    let (ready, result) = match wait {
        Wait::Blocking => {
            let (tx, rx) = sync_channel(1);
            (Some(tx), Some(rx))
        }
        Wait::Event => (None, None),
    };
    let token = engine.token.child_token();
    // A live source before `НачатьПодключение` returns: `Получить(0)` or
    // `ПолучитьСобытие` right after it wait for the outcome instead of returning at once.
    hub.connection_started();
    let task = Task {
        target: target.clone(),
        options: options.clone(),
        hub,
        shared: shared.clone(),
        commands: rx,
        budget: tx.budget(),
        ready,
        lang,
        token: token.clone(),
        done: engine.token.clone(),
        drain: engine.drain.clone(),
        tracker: engine.tracker.clone(),
    };
    match tracker {
        Some(t) => engine.spawn(t.track_future(client::client_task(task))),
        None => engine.spawn(client::client_task(task)),
    };
    let link = Link {
        shared,
        commands: tx,
        token,
        options,
    };
    (link, result)
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

    /// `Подключиться` / `НачатьПодключение`.
    fn connect(
        &mut self,
        core: &mut ObjectCore,
        url: &str,
        options: &str,
        wait: Wait,
    ) -> Result<Value> {
        client::refuse_second_connect(self.status())?;
        let options = ClientOptions::parse(options)?;
        let target = Target::parse(url)?;
        if let Some(po) = options.persistent.clone() {
            return self.connect_persistent(core, &po, &target, options, wait);
        }
        self.leave(core);
        let (hub, lang) = (core.hub().clone(), core.lang());
        let engine = core.engine()?;
        let (link, ready) = dial(engine, None, hub, &target, options, lang, wait);
        self.url = target.url;
        self.conn = Some(link);
        self.await_ready(ready)
    }

    /// The first connect's result for `Подключиться`; nothing for `НачатьПодключение`.
    fn await_ready(&mut self, ready: Option<Receiver<Result<()>>>) -> Result<Value> {
        let (Some(ready), Some(c)) = (ready, &self.conn) else {
            return Ok(Value::Empty);
        };
        match ready.recv_timeout(c.options.timeout + Duration::from_secs(2)) {
            Ok(Ok(())) => Ok(Value::Bool(true)),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                c.token.cancel();
                c.shared.status.store(STATUS_ERROR, Ordering::SeqCst);
                Err(Error::Client(ClientError::ConnectTimedOut {
                    url: self.url.clone(),
                }))
            }
        }
    }

    /// `Подключиться` with `persistent`: attaches to the live connection of that name (what
    /// arrived meanwhile is waiting in its hub), or dials a new one that outlives this
    /// object. A connection of that name that has ended is dialled again, into the same
    /// hub.
    ///
    /// Attaching returns at once: `Истина` if the connection is open, `Ложь` if it is
    /// (re)connecting (`Статус` says which; the Open event follows).
    fn connect_persistent(
        &mut self,
        core: &mut ObjectCore,
        po: &PersistentOptions,
        target: &Target,
        options: ClientOptions,
        wait: Wait,
    ) -> Result<Value> {
        // The object's own engine serves its blocking calls (`Отправить` waits on it).
        core.engine()?;
        let elsewhere = |p: &PersistentClient| {
            Error::Client(ClientError::PersistentElsewhere {
                name: p.name.clone(),
                url: p.url.clone(),
            })
        };
        let held = self
            .owner
            .clone()
            .filter(|p| p.name == po.name && CLIENTS.holds(p));
        let entry = match held {
            Some(p) if p.url != target.url => return Err(elsewhere(&p)),
            Some(p) => p,
            None => {
                self.leave(core);
                let found = CLIENTS.find(&po.name);
                let claimed = match found {
                    Some(p) if p.url != target.url => return Err(elsewhere(&p)),
                    Some(p) => match p.attachment.claim() {
                        Claim::Taken => Some(p),
                        Claim::InUse => {
                            return Err(Error::Client(ClientError::PersistentInUse {
                                name: p.name.clone(),
                            }));
                        }
                        Claim::Expired => None,
                    },
                    None => None,
                };
                match claimed {
                    Some(p) => p,
                    None => new_entry(core, po, target, &options)?,
                }
            }
        };
        core.use_hub(entry.hub.clone());
        self.owner = Some(entry.clone());
        self.url = target.url.clone();
        if let Some(link) = entry.link().filter(|l| !l.shared.is_finished()) {
            let open = link.shared.status.load(Ordering::SeqCst) == STATUS_OPEN;
            self.conn = Some(link);
            return Ok(match wait {
                Wait::Blocking => Value::Bool(open),
                Wait::Event => Value::Empty,
            });
        }
        let fresh = entry.link().is_none();
        let (link, ready) = dial(
            &entry.engine,
            Some(&entry.tracker),
            entry.hub.clone(),
            target,
            options,
            core.lang(),
            wait,
        );
        *entry.link.lock().unwrap_or_else(|e| e.into_inner()) = Some(link.clone());
        self.conn = Some(link);
        let r = self.await_ready(ready);
        if r.is_err() && fresh {
            // Nothing to keep: a first connect that failed leaves no persistent client.
            CLIENTS.remove(&entry);
            self.leave(core);
        }
        r
    }

    /// Lets go of the current connection: the object's own is cancelled; a persistent one
    /// is left running for the next object, or shut if this object ended it.
    fn leave(&mut self, core: &mut ObjectCore) {
        if let Some(p) = self.owner.take() {
            core.release_hub();
            self.conn = None;
            if CLIENTS.holds(&p) {
                p.attachment.release();
            } else {
                p.shut(Duration::from_secs(1));
            }
        } else if let Some(c) = self.conn.take() {
            c.token.cancel();
        }
    }

    /// `Отключиться(Код, Причина, Ждать)`. With `Ждать` = Ложь it returns at once: the close
    /// goes out in the background and the Close event says when it is done; a peer that
    /// never answers is cut off after `close_timeout_ms`. A persistent client ends for
    /// good (the next `Подключиться` with its name dials a new one).
    fn disconnect(&mut self, core: &ObjectCore, code: f64, reason: &str, wait: bool) {
        let Some(c) = self.conn.clone() else { return };
        c.shared.stopping.store(true, Ordering::SeqCst);
        if let Some(p) = &self.owner {
            CLIENTS.remove(p);
        }
        let limit = c.options.limits.close_timeout;
        let open = c.shared.status.load(Ordering::SeqCst) == STATUS_OPEN;
        let engine = core.started_engine();
        if !c.shared.is_finished() && open {
            let cmd = Command::Close(close_code(code), reason.to_owned());
            if !wait {
                match engine {
                    Some(e) if c.commands.try_queue(cmd) == Queued::Yes => {
                        cut_off_after(e, &c, limit)
                    }
                    _ => c.token.cancel(),
                }
                return;
            }
            let sent = engine.is_some_and(|e| c.commands.queue(e, cmd, limit) == Queued::Yes);
            if !sent || !c.shared.wait_finished(limit) {
                c.token.cancel();
                c.shared.wait_finished(Duration::from_secs(1));
            }
        }
        // Connecting or reconnecting: the connect or the back-off ends at the token.
        c.token.cancel();
        if wait {
            c.shared.wait_finished(Duration::from_secs(1));
        }
        let _ = c.shared.status.compare_exchange(
            STATUS_CONNECTING,
            STATUS_IDLE,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }

    fn send(&mut self, core: &ObjectCore, msg: Message) -> Result<()> {
        let c = self.conn.as_ref().filter(|c| {
            c.shared.status.load(Ordering::SeqCst) == STATUS_OPEN
                && !c.shared.stopping.load(Ordering::SeqCst)
        });
        let Some(c) = c else {
            return Err(match self.status() {
                STATUS_RECONNECTING => Error::Client(ClientError::Reconnecting),
                STATUS_CONNECTING => Error::Client(ClientError::Connecting),
                _ => Error::not_connected(),
            });
        };
        let engine = core.started_engine().ok_or_else(Error::not_connected)?;
        let wait = c.options.limits.send_timeout;
        match c.commands.queue(engine, Command::Send(msg), wait) {
            Queued::Yes => Ok(()),
            Queued::Closed => Err(Error::not_connected()),
            Queued::Full => Err(Error::Client(ClientError::QueueFull {
                waited_ms: wait.as_millis(),
            })),
        }
    }
}

/// A new persistent client entry called `po.name`, held by the calling object.
fn new_entry(
    core: &ObjectCore,
    po: &PersistentOptions,
    target: &Target,
    options: &ClientOptions,
) -> Result<Arc<PersistentClient>> {
    let engine = Engine::start()?;
    let hub = core.new_hub();
    let pusher = Pusher::start(&hub)?;
    let tracker = TaskTracker::new();
    let attachment = Attachment::held();
    if let Some(expiry) = po.idle_expiry {
        let end = Ending {
            drain: engine.drain.clone(),
            token: engine.token.clone(),
            tracker: tracker.clone(),
            bound: options.limits.close_timeout,
            hub: hub.clone(),
        };
        engine.spawn(persistent::expire_when_idle(
            attachment.clone(),
            expiry,
            end,
        ));
    }
    let p = Arc::new(PersistentClient {
        name: po.name.clone(),
        engine,
        hub,
        pusher,
        attachment,
        kind: ClientPart {
            url: target.url.clone(),
            tracker,
            link: Mutex::new(None),
        },
    });
    CLIENTS.insert(p.clone());
    Ok(p)
}

/// Cancels `c` if its close handshake has not ended within `limit` (a peer that never
/// answers the close). Leaves it to `Done()` if the object ends first.
fn cut_off_after(engine: &Engine, c: &Link, limit: Duration) {
    let (token, drain) = (c.token.clone(), engine.drain.clone());
    engine.spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(limit) => token.cancel(),
            _ = token.cancelled() => {}
            _ = drain.cancelled() => {}
        }
    });
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
            MethodId::Connect | MethodId::BeginConnect => {
                let (url, options) = (args.str(0).to_owned(), args.str(1).to_owned());
                let wait = match m.id {
                    MethodId::Connect => Wait::Blocking,
                    _ => Wait::Event,
                };
                self.connect(core, &url, &options, wait)
            }
            MethodId::Disconnect => {
                let wait = !matches!(args.get(2), Value::Bool(false));
                self.disconnect(core, args.number(0), args.str(1), wait);
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

    /// A persistent client stays for the next object (or is shut, if this object ended
    /// it); then the core drains and cancels this object's own connection.
    fn done(&mut self, core: &mut ObjectCore, deadline: std::time::Instant) {
        if self.owner.is_some() {
            self.leave(core);
        }
        core.done(deadline);
    }
}
