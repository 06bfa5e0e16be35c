//! The Socket.IO client connection: the same connect as the WebSocket client
//! ([`client::establish_bounded`]: TCP, proxy, TLS, handshake, every client option), then
//! the Engine.IO handshake and the namespace join, then one loop that reads packets,
//! answers heartbeats and writes what 1C code queued; with `reconnect`, the same again into
//! the same hub, joining the namespace again (subscriptions live in the object and stay).
//!
//! Events reach the hub already rendered in ROM-SocketIO's strings ([`SioEvent`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::{Value as Json, json};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result, SioError};
use crate::event::{Event, EventKind, SioEvent};
use crate::hub::Hub;
use crate::lang::Lang;
use crate::log::{Level, Log};
use crate::net::client::{self, Target, Ws};
use crate::net::conn::close_queue;
use crate::net::options::ClientOptions;
use crate::net::socketio::{self as sio, Eio, EnginePacket, Kind};
use crate::net::{ByteBudget, Command, Finished, close_frame};

pub use crate::net::client::{
    STATUS_CONNECTING, STATUS_ERROR, STATUS_IDLE, STATUS_OPEN, STATUS_RECONNECTING,
};

/// Event names 1C code subscribed to; shared by the object and its connection tasks, so
/// it is the same before, during and after any connection.
#[derive(Default)]
pub struct Subscriptions {
    names: RwLock<HashSet<String>>,
    /// Bumped at every change: the connection task's [`NameCache`] is then stale.
    generation: std::sync::atomic::AtomicU64,
}

impl Subscriptions {
    /// `Подписаться`.
    pub fn on(&self, name: &str) {
        self.write().insert(name.to_owned());
    }

    /// `Отписаться`.
    pub fn off(&self, name: &str) {
        self.write().remove(name);
    }

    /// `ОтписатьсяВсе`.
    pub fn clear(&self) {
        self.write().clear();
    }

    /// Whether an event called `name` is delivered: subscribed by name, or `*` is.
    pub fn wants(&self, name: &str) -> bool {
        let g = self.names.read().unwrap_or_else(|e| e.into_inner());
        g.contains(name) || g.contains("*")
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashSet<String>> {
        let g = self.names.write().unwrap_or_else(|e| e.into_inner());
        // Under the lock: a reader that saw the new generation sees the new set.
        self.generation.fetch_add(1, Ordering::SeqCst);
        g
    }
}

/// The connection task's memo of the event names it has seen: delivered or not (for the
/// subscriptions of `generation`), with the header of a plain event of that name. A server
/// sends few names many times: one lookup per event instead of a lock, two hashes and a
/// header built from parts.
#[derive(Default)]
struct NameCache {
    generation: u64,
    names: HashMap<String, Option<Arc<str>>>,
}

impl NameCache {
    /// `Some(header)` if `name` is delivered.
    fn get(&mut self, subs: &Subscriptions, nsp: &str, name: &str) -> Option<Arc<str>> {
        let generation = subs.generation.load(Ordering::SeqCst);
        if generation != self.generation {
            self.names.clear();
            self.generation = generation;
        }
        if let Some(e) = self.names.get(name) {
            return e.clone();
        }
        let e = subs
            .wants(name)
            .then(|| message_header(nsp, name, None, false));
        // Bounded: a server that invents names cannot grow it without end.
        if self.names.len() >= 256 {
            self.names.clear();
        }
        self.names.insert(name.to_owned(), e.clone());
        e
    }
}

/// An acknowledgement's arguments (JSON array, placeholders with base64) and attachments.
pub type AckReply = (String, Vec<Vec<u8>>);

/// State the connection task shares with the object.
pub struct SioState {
    /// `Статус`-like: 0 idle, 1 joined, 2 reconnecting, 3 connecting, -1 failed.
    pub status: AtomicI32,
    /// `ИДСессии`: the socket id of the namespace join.
    pub sid: Mutex<String>,
    /// `ПоследняяОшибка`: the last Fail's text.
    pub last_error: Mutex<String>,
    /// `ПричинаОтключения`: why the last connection ended (Socket.IO client's words).
    pub reason: Mutex<String>,
    /// 1C asked to disconnect: no reconnect after this.
    pub stopping: AtomicBool,
    /// Blocking `ОтправитьИЖдать` calls by ack id: the reply goes there, not to the hub.
    pub waiting: Mutex<HashMap<u64, SyncSender<AckReply>>>,
    finished: Finished,
}

impl SioState {
    /// A connection being connected.
    pub fn new() -> Arc<SioState> {
        Arc::new(SioState {
            status: AtomicI32::new(STATUS_CONNECTING),
            sid: Mutex::default(),
            last_error: Mutex::default(),
            reason: Mutex::default(),
            stopping: AtomicBool::new(false),
            waiting: Mutex::default(),
            finished: Finished::default(),
        })
    }

    fn set(m: &Mutex<String>, v: &str) {
        let mut g = m.lock().unwrap_or_else(|e| e.into_inner());
        g.clear();
        g.push_str(v);
    }

    /// Reads one of the string fields.
    pub fn get(m: &Mutex<String>) -> String {
        m.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn finish(&self) {
        // Blocking ack waits end with the connection (their senders drop).
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.finished.set();
    }

    /// Whether the task has ended.
    pub fn is_finished(&self) -> bool {
        self.finished.is_set()
    }

    /// Waits (on the 1C thread) until the task has ended; false on timeout.
    pub fn wait_finished(&self, timeout: Duration) -> bool {
        self.finished.wait(timeout)
    }
}

/// Socket.IO's own connect options (the rest are the WebSocket client's).
#[derive(Clone, Debug, Default)]
pub struct SioOptions {
    /// Engine.IO revision (`"eio": 3` for Socket.IO 2.x servers).
    pub eio: Eio,
    /// The v5 `auth` payload of the namespace connect.
    pub auth: Option<Json>,
}

/// A ROM-style connection event.
fn connection_event(state: &str, extra: &[(&str, Json)]) -> Event {
    let mut h = vec![("Event", json!("Connection")), ("State", json!(state))];
    h.extend(extra.iter().cloned());
    Event {
        conn: None,
        kind: EventKind::SocketIo(Box::new(SioEvent {
            header: sio::rom(&h).into(),
            data: sio::rom(&[("Connection", json!(state))]),
            attachments: Vec::new(),
            message: false,
        })),
    }
}

/// `{"Event": "Connection","State": "Open"}` / `{"Connection": "Open"}`.
pub fn open_event() -> Event {
    connection_event("Open", &[])
}

/// `{"Event": "Connection","State": "Close","Reason": "Normal"}` / `{"Connection": "Close"}`.
pub fn close_event() -> Event {
    connection_event("Close", &[("Reason", json!("Normal"))])
}

/// `{"Event": "Connection","State": "Fail"}` / `{"Connection": "Fail"}`.
pub fn fail_event() -> Event {
    connection_event("Fail", &[])
}

fn reconnecting_event(attempt: u32, delay_ms: u64) -> Event {
    connection_event(
        "Reconnecting",
        &[("Attempt", json!(attempt)), ("DelayMs", json!(delay_ms))],
    )
}

/// A message event's header: ROM's four fields, then `"Ack": id` when the server asks for
/// one.
fn message_header(nsp: &str, name: &str, id: Option<u64>, binary: bool) -> Arc<str> {
    let ty = if binary { "Binary" } else { "String" };
    let mut h = vec![
        ("Event", json!("Message")),
        ("Namespace", json!(nsp)),
        ("Name", json!(name)),
        ("Type", json!(ty)),
    ];
    if let Some(id) = id {
        h.push(("Ack", json!(id)));
    }
    sio::rom(&h).into()
}

#[cfg(test)]
fn message_event(
    nsp: &str,
    name: &str,
    id: Option<u64>,
    data: String,
    bins: Vec<Vec<u8>>,
) -> Event {
    let header = message_header(nsp, name, id, !bins.is_empty());
    sio_event(header, data, bins)
}

/// The server's answer to `ОтправитьСПодтверждением`.
fn ack_event(nsp: &str, id: u64, data: String, bins: Vec<Vec<u8>>) -> Event {
    let ty = if bins.is_empty() { "String" } else { "Binary" };
    let h = [
        ("Event", json!("Ack")),
        ("Namespace", json!(nsp)),
        ("Id", json!(id)),
        ("Type", json!(ty)),
    ];
    sio_event(sio::rom(&h).into(), data, bins)
}

fn sio_event(header: Arc<str>, data: String, attachments: Vec<Vec<u8>>) -> Event {
    Event {
        conn: None,
        kind: EventKind::SocketIo(Box::new(SioEvent {
            header,
            data,
            attachments,
            message: true,
        })),
    }
}

/// Everything a Socket.IO connection task needs; moved into it.
pub struct SioTask {
    /// The Engine.IO endpoint (`…/socket.io/?EIO=4&transport=websocket…`).
    pub target: Target,
    /// The namespace.
    pub nsp: String,
    /// The query, for a v4 namespace connect.
    pub query: String,
    /// The WebSocket client's options.
    pub options: ClientOptions,
    /// Socket.IO's own.
    pub sio: SioOptions,
    /// Where events go.
    pub hub: Arc<Hub>,
    /// Shared with the object.
    pub shared: Arc<SioState>,
    /// Which events are delivered.
    pub subs: Arc<Subscriptions>,
    /// Frames from the object, in order.
    pub commands: mpsc::Receiver<Command>,
    /// The byte bound of that queue.
    pub budget: ByteBudget,
    /// The first connect's outcome, for the waiting `Подключиться`.
    pub ready: Option<SyncSender<bool>>,
    /// The language of error texts in `ПоследняяОшибка`.
    pub lang: Lang,
    /// This connection.
    pub token: CancellationToken,
    /// The object's drain token (`Done()`).
    pub drain: CancellationToken,
}

/// How one session ended.
enum SessionEnd {
    /// 1C code disconnected (`io client disconnect`) or the server did (`io server
    /// disconnect`): no reconnect.
    Closed(&'static str),
    /// The transport failed: reconnect if allowed. The reason word and the error.
    Failed(&'static str, Error),
    /// `Done()` or the token.
    Cancelled,
}

/// The connection task (counted by the caller as a live source of `hub`).
pub async fn sio_task(task: SioTask) {
    let SioTask {
        target,
        nsp,
        query,
        options,
        sio: so,
        hub,
        shared,
        subs,
        mut commands,
        budget,
        mut ready,
        lang,
        token,
        drain,
    } = task;
    let log = match &options.log {
        Some(l) => l.open().unwrap_or_default(),
        None => Log::default(),
    };
    let s = Session {
        nsp: &nsp,
        query: &query,
        options: &options,
        so: &so,
        hub: &hub,
        shared: &shared,
        subs: &subs,
        budget: &budget,
        token: &token,
        drain: &drain,
        log: &log,
        joined: AtomicBool::new(false),
    };
    // Reconnect attempts since the last joined session; a failed attempt publishes no Fail
    // of its own (Reconnecting says what happens), only the loss of a joined session and
    // the last attempt do, as the WebSocket client does.
    let mut attempt = 0u32;
    let mut ever_joined = false;
    loop {
        let end = s.connect_and_run(&target, &mut commands, &mut ready).await;
        if s.joined.swap(false, Ordering::SeqCst) {
            attempt = 0;
            ever_joined = true;
        }
        // The status is settled before a waiting `Подключиться` returns.
        let settle = |status: i32, ready: &mut Option<SyncSender<bool>>| {
            shared.status.store(status, Ordering::SeqCst);
            if let Some(r) = ready.take() {
                let _ = r.send(false);
            }
        };
        match end {
            SessionEnd::Cancelled => {
                settle(shared.status.load(Ordering::SeqCst), &mut ready);
                break;
            }
            SessionEnd::Closed(why) => {
                SioState::set(&shared.reason, why);
                settle(STATUS_IDLE, &mut ready);
                hub.publish(close_event(), &token).await;
                break;
            }
            SessionEnd::Failed(why, e) => {
                log.write(Level::Error, || format!("failed: {}", e.text(Lang::En)));
                SioState::set(&shared.reason, why);
                SioState::set(&shared.last_error, &e.text(lang));
                let stopped = token.is_cancelled()
                    || drain.is_cancelled()
                    || shared.stopping.load(Ordering::SeqCst);
                let limit = options.reconnect.max_attempts;
                let again = options.reconnect.enabled
                    && ever_joined
                    && !stopped
                    && (limit == 0 || attempt < limit);
                if attempt == 0 || !again {
                    settle(STATUS_ERROR, &mut ready);
                    hub.publish(fail_event(), &token).await;
                }
                if !again {
                    break;
                }
            }
        }
        attempt += 1;
        shared.status.store(STATUS_RECONNECTING, Ordering::SeqCst);
        let delay = client::backoff(&options.reconnect, attempt);
        hub.publish(
            reconnecting_event(attempt, delay.as_millis() as u64),
            &token,
        )
        .await;
        tokio::select! {
            _ = token.cancelled() => break,
            _ = drain.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    close_queue(&mut commands);
    let stopped_reconnecting = shared
        .status
        .compare_exchange(
            STATUS_RECONNECTING,
            STATUS_IDLE,
            Ordering::SeqCst,
            Ordering::SeqCst,
        )
        .is_ok();
    // `Отключиться` during a back-off ends the link as it ends an open one: with a Close
    // (not at `Done()`, after which nothing reaches 1C). Connection events always fit in the
    // hub, so the cancelled token does not drop it.
    if stopped_reconnecting && shared.stopping.load(Ordering::SeqCst) && !drain.is_cancelled() {
        SioState::set(&shared.reason, "io client disconnect");
        hub.publish(close_event(), &token).await;
    }
    hub.connection_ended();
    shared.finish();
}

/// What one session reads of the task.
struct Session<'a> {
    nsp: &'a str,
    query: &'a str,
    options: &'a ClientOptions,
    so: &'a SioOptions,
    hub: &'a Hub,
    shared: &'a SioState,
    subs: &'a Subscriptions,
    budget: &'a ByteBudget,
    token: &'a CancellationToken,
    drain: &'a CancellationToken,
    log: &'a Log,
    /// The last session joined its namespace (a reconnect then starts counting anew).
    joined: AtomicBool,
}

/// A binary event or ack waiting for its attachments.
struct Partial {
    kind: Kind,
    id: Option<u64>,
    data: String,
    needed: usize,
    bins: Vec<Vec<u8>>,
}

/// Heartbeat bookkeeping.
struct Beat {
    eio: Eio,
    interval: Duration,
    timeout: Duration,
    /// v4: the server's next ping is late after this. v3: our next ping is due.
    next: Instant,
    /// v3: a ping of ours awaits its pong since.
    awaiting: Option<Instant>,
}

impl Beat {
    fn deadline(&self) -> Instant {
        match (self.eio, self.awaiting) {
            (Eio::V3, Some(t)) => (t + self.timeout).min(self.next),
            _ => self.next,
        }
    }
}

/// A received binary frame's payload (v3 frames start with the message type byte).
fn binary_payload(eio: Eio, b: &[u8]) -> Vec<u8> {
    match eio {
        Eio::V3 => b.get(1..).unwrap_or_default().to_vec(),
        Eio::V4 => b.to_vec(),
    }
}

/// A binary frame to send.
pub fn binary_frame(eio: Eio, b: Vec<u8>) -> Message {
    match eio {
        Eio::V3 => {
            let mut v = Vec::with_capacity(b.len() + 1);
            v.push(4);
            v.extend(b);
            Message::binary(v)
        }
        Eio::V4 => Message::binary(b),
    }
}

fn packet_error(p: sio::BadPacket) -> Error {
    Error::SocketIo(SioError::BadPacket { packet: p.0 })
}

fn lost(why: &str) -> Error {
    Error::SocketIo(SioError::Lost {
        why: why.to_owned(),
    })
}

/// Whether a read error is the server going away (a reset or an end without a close frame:
/// a dead process), which Socket.IO clients call "transport close", rather than a fault.
fn peer_went_away(e: &tokio_tungstenite::tungstenite::Error) -> bool {
    use std::io::ErrorKind as K;
    use tokio_tungstenite::tungstenite::Error as W;
    use tokio_tungstenite::tungstenite::error::ProtocolError as P;
    match e {
        W::ConnectionClosed | W::AlreadyClosed | W::Protocol(P::ResetWithoutClosingHandshake) => {
            true
        }
        W::Io(io) => matches!(
            io.kind(),
            K::ConnectionReset | K::BrokenPipe | K::UnexpectedEof | K::ConnectionAborted
        ),
        _ => false,
    }
}

/// The most binary frames one packet may announce (a bound against a hostile count).
const MAX_ATTACHMENTS: usize = 1024;

impl Session<'_> {
    /// One connect (bounded by `timeout_ms` up to the namespace join), then the session
    /// until it ends. Sends the first outcome to `ready`.
    async fn connect_and_run(
        &self,
        target: &Target,
        commands: &mut mpsc::Receiver<Command>,
        ready: &mut Option<SyncSender<bool>>,
    ) -> SessionEnd {
        let deadline = Instant::now() + self.options.timeout;
        let joined = tokio::select! {
            _ = self.token.cancelled() => return SessionEnd::Cancelled,
            _ = self.drain.cancelled() => return SessionEnd::Cancelled,
            r = tokio::time::timeout_at(deadline, self.join(target)) => r,
        };
        let (mut ws, beat) = match joined {
            Ok(Ok(j)) => j,
            Ok(Err(e)) => return SessionEnd::Failed("connect error", e),
            Err(_) => {
                let e = Error::Client(crate::error::ClientError::ConnectTimedOut {
                    url: target.url.clone(),
                });
                return SessionEnd::Failed("connect error", e);
            }
        };
        self.shared.status.store(STATUS_OPEN, Ordering::SeqCst);
        self.joined.store(true, Ordering::SeqCst);
        self.log.write(Level::Info, || {
            format!("joined {} as {}", self.nsp, SioState::get(&self.shared.sid))
        });
        if let Some(r) = ready.take() {
            let _ = r.send(true);
        }
        self.hub.publish(open_event(), self.token).await;
        self.session(&mut ws, beat, commands).await
    }

    /// TCP/TLS/WebSocket, the Engine.IO open packet, the namespace join.
    async fn join(&self, target: &Target) -> Result<(Ws, Beat)> {
        let est = client::establish_bounded(target, self.options, self.log).await?;
        let mut ws = est.ws;
        let eio = self.so.eio;
        // The Engine.IO open packet.
        let hs = loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    match sio::engine_decode(t.as_str()).map_err(packet_error)? {
                        EnginePacket::Open(j) => break sio::parse_open(j).map_err(packet_error)?,
                        _ => continue,
                    }
                }
                Some(Ok(Message::Close(_))) | None => return Err(lost("closed")),
                Some(Err(e)) => return Err(lost(&e.to_string())),
                Some(Ok(_)) => continue,
            }
        };
        self.log.write(Level::Info, || {
            format!(
                "engine.io open: sid {}, ping {} ms + {} ms",
                hs.sid, hs.ping_interval, hs.ping_timeout
            )
        });
        if let Some(p) = sio::connect_packet(eio, self.nsp, self.so.auth.as_ref(), self.query) {
            ws.send(Message::text(p))
                .await
                .map_err(|e| lost(&e.to_string()))?;
        }
        loop {
            let t = match ws.next().await {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(Message::Close(_))) | None => return Err(lost("closed")),
                Some(Err(e)) => return Err(lost(&e.to_string())),
                Some(Ok(_)) => continue,
            };
            match sio::engine_decode(t.as_str()).map_err(packet_error)? {
                EnginePacket::Ping(p) if eio == Eio::V4 => {
                    ws.send(Message::text(format!("3{p}")))
                        .await
                        .map_err(|e| lost(&e.to_string()))?;
                }
                EnginePacket::Message(m) => {
                    let p = sio::decode(m).map_err(packet_error)?;
                    if p.nsp != self.nsp {
                        continue;
                    }
                    match p.kind {
                        Kind::Connect => {
                            let sid = match eio {
                                Eio::V4 => sio::connect_sid(p.data).unwrap_or_default(),
                                Eio::V3 if self.nsp == "/" => hs.sid.clone(),
                                Eio::V3 => format!("{}#{}", self.nsp, hs.sid),
                            };
                            SioState::set(&self.shared.sid, &sid);
                            break;
                        }
                        Kind::ConnectError => {
                            return Err(Error::SocketIo(SioError::Refused {
                                nsp: self.nsp.to_owned(),
                                message: sio::connect_error_message(p.data),
                            }));
                        }
                        _ => continue,
                    }
                }
                EnginePacket::Close => return Err(lost("engine.io close")),
                _ => continue,
            }
        }
        let interval = Duration::from_millis(hs.ping_interval);
        let timeout = Duration::from_millis(hs.ping_timeout);
        let now = Instant::now();
        let beat = Beat {
            eio,
            interval,
            timeout,
            next: match eio {
                Eio::V4 => now + interval + timeout,
                Eio::V3 => now + interval,
            },
            awaiting: None,
        };
        Ok((ws, beat))
    }

    /// The joined session: packets in, heartbeats, frames out.
    async fn session(
        &self,
        ws: &mut Ws,
        mut beat: Beat,
        commands: &mut mpsc::Receiver<Command>,
    ) -> SessionEnd {
        let eio = beat.eio;
        let mut partial: Option<Partial> = None;
        let mut names = NameCache::default();
        let mut batch = VecDeque::new();
        // One registration each for the session's life, not one per loop: the tokens'
        // waiter lists and the timer wheel are locked only when something changes.
        let cancelled = self.token.cancelled();
        let draining = self.drain.cancelled();
        let mut armed = beat.deadline();
        let timer = tokio::time::sleep_until(armed);
        tokio::pin!(cancelled, draining, timer);
        loop {
            if beat.deadline() != armed {
                armed = beat.deadline();
                timer.as_mut().reset(armed);
            }
            tokio::select! {
                biased;
                _ = &mut cancelled => return SessionEnd::Cancelled,
                _ = &mut draining => {
                    // `Done()`: what is queued goes out, then the namespace is left.
                    while let Ok(cmd) = commands.try_recv() {
                        if let Command::Send(m) = cmd {
                            let _ = ws.feed(m).await;
                        }
                    }
                    let bye = sio::encode(Kind::Disconnect, 0, self.nsp, None, "");
                    let _ = ws.feed(Message::text(bye)).await;
                    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(Some(close_frame(1001, "")))).await;
                    return SessionEnd::Cancelled;
                }
                cmd = commands.recv() => {
                    let Some(cmd) = cmd else { return SessionEnd::Cancelled };
                    if let Some(end) = self.write(ws, cmd, commands).await {
                        return end;
                    }
                }
                _ = &mut timer => {
                    let now = Instant::now();
                    match (eio, beat.awaiting) {
                        (Eio::V4, _) => return SessionEnd::Failed("ping timeout", lost("ping timeout")),
                        (Eio::V3, Some(t)) if now >= t + beat.timeout => {
                            return SessionEnd::Failed("ping timeout", lost("ping timeout"));
                        }
                        _ => {
                            if ws.send(Message::text("2")).await.is_err() {
                                return SessionEnd::Failed("transport error", lost("transport error"));
                            }
                            beat.awaiting.get_or_insert(now);
                            beat.next = now + beat.interval;
                        }
                    }
                }
                msg = ws.next() => {
                    // Everything already buffered is handled as one batch (one hub lock).
                    let mut next = Some(msg);
                    while let Some(msg) = next.take() {
                        match self.read(ws, msg, &mut beat, &mut partial, &mut names, &mut batch).await {
                            Ok(()) => {}
                            Err(end) => {
                                self.hub.publish_all(&mut batch, self.token).await;
                                return end;
                            }
                        }
                        if batch.len() < 256 {
                            next = ws.next().now_or_never();
                        }
                    }
                    if !batch.is_empty() {
                        self.hub.publish_all(&mut batch, self.token).await;
                    }
                }
            }
        }
    }

    /// Writes `cmd` and whatever else is queued, then flushes once.
    async fn write(
        &self,
        ws: &mut Ws,
        cmd: Command,
        commands: &mut mpsc::Receiver<Command>,
    ) -> Option<SessionEnd> {
        let mut next = Some(cmd);
        while let Some(cmd) = next.take() {
            self.budget.give(self.budget.charge(&cmd));
            match cmd {
                Command::Send(m) => {
                    if let Err(e) = ws.feed(m).await {
                        return Some(SessionEnd::Failed("transport error", lost(&e.to_string())));
                    }
                }
                Command::Close(..) => {
                    // `Отключиться`: leave the namespace, then close the WebSocket.
                    let bye = sio::encode(Kind::Disconnect, 0, self.nsp, None, "");
                    let _ = ws.feed(Message::text(bye)).await;
                    let limit = self.options.limits.close_timeout;
                    let _ = tokio::time::timeout(limit, async {
                        let _ = ws.close(Some(close_frame(1000, ""))).await;
                        while let Some(Ok(_)) = ws.next().await {}
                    })
                    .await;
                    return Some(SessionEnd::Closed("io client disconnect"));
                }
            }
            next = commands.try_recv().ok();
        }
        if let Err(e) = ws.flush().await {
            return Some(SessionEnd::Failed("transport error", lost(&e.to_string())));
        }
        None
    }

    /// Handles one frame; `Err` ends the session.
    async fn read(
        &self,
        ws: &mut Ws,
        msg: Option<std::result::Result<Message, tokio_tungstenite::tungstenite::Error>>,
        beat: &mut Beat,
        partial: &mut Option<Partial>,
        cache: &mut NameCache,
        out: &mut VecDeque<Event>,
    ) -> std::result::Result<(), SessionEnd> {
        let eio = beat.eio;
        let text = match msg {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Binary(b))) => {
                let Some(p) = partial.as_mut() else {
                    return Ok(());
                };
                p.bins.push(binary_payload(eio, &b));
                if p.bins.len() >= p.needed
                    && let Some(p) = partial.take()
                {
                    self.deliver(p.kind, p.id, &p.data, p.bins, cache, out);
                }
                return Ok(());
            }
            Some(Ok(Message::Close(_))) | None => {
                return Err(SessionEnd::Failed(
                    "transport close",
                    lost("transport close"),
                ));
            }
            Some(Ok(_)) => return Ok(()),
            Some(Err(e)) => {
                let why = if peer_went_away(&e) {
                    "transport close"
                } else {
                    "transport error"
                };
                return Err(SessionEnd::Failed(why, lost(&e.to_string())));
            }
        };
        let failed = |e| SessionEnd::Failed("parse error", e);
        match sio::engine_decode(text.as_str()).map_err(|e| failed(packet_error(e)))? {
            EnginePacket::Ping(p) => {
                if eio == Eio::V4 {
                    beat.next = Instant::now() + beat.interval + beat.timeout;
                    let pong = Message::text(format!("3{p}"));
                    if let Err(e) = ws.send(pong).await {
                        return Err(SessionEnd::Failed("transport error", lost(&e.to_string())));
                    }
                }
            }
            EnginePacket::Pong(_) => beat.awaiting = None,
            EnginePacket::Close => {
                return Err(SessionEnd::Failed(
                    "transport close",
                    lost("engine.io close"),
                ));
            }
            EnginePacket::Open(_) | EnginePacket::Noop => {}
            EnginePacket::Message(m) => {
                let p = sio::decode(m).map_err(|e| failed(packet_error(e)))?;
                if p.nsp != self.nsp {
                    return Ok(());
                }
                match p.kind {
                    Kind::Disconnect => {
                        let _ = tokio::time::timeout(
                            Duration::from_secs(1),
                            ws.close(Some(close_frame(1000, ""))),
                        )
                        .await;
                        return Err(SessionEnd::Closed("io server disconnect"));
                    }
                    Kind::Event | Kind::Ack => {
                        self.deliver(p.kind, p.id, p.data, Vec::new(), cache, out)
                    }
                    Kind::BinaryEvent | Kind::BinaryAck => {
                        if p.attachments > MAX_ATTACHMENTS {
                            return Err(failed(packet_error(sio::BadPacket(
                                m.chars().take(80).collect(),
                            ))));
                        }
                        let part = Partial {
                            kind: p.kind,
                            id: p.id,
                            data: p.data.to_owned(),
                            needed: p.attachments,
                            bins: Vec::with_capacity(p.attachments),
                        };
                        if part.needed == 0 {
                            self.deliver(part.kind, part.id, &part.data, part.bins, cache, out);
                        } else {
                            *partial = Some(part);
                        }
                    }
                    Kind::Connect | Kind::ConnectError => {}
                }
            }
        }
        Ok(())
    }

    /// A complete event or ack: to a blocked `ОтправитьИЖдать`, or into the batch if
    /// subscribed (acks always are). The payload is copied only when it is delivered.
    fn deliver(
        &self,
        kind: Kind,
        id: Option<u64>,
        raw: &str,
        bins: Vec<Vec<u8>>,
        cache: &mut NameCache,
        out: &mut VecDeque<Event>,
    ) {
        let data = |d: &str, bins: &[Vec<u8>]| {
            if bins.is_empty() {
                sio::unescaped(d.to_owned())
            } else {
                sio::with_base64(d, bins).unwrap_or_else(|_| d.to_owned())
            }
        };
        match kind {
            Kind::Event | Kind::BinaryEvent => {
                let Some(name) = sio::event_name(raw) else {
                    self.log
                        .write(Level::Error, || format!("event without a name: {raw}"));
                    return;
                };
                let Some(plain) = cache.get(self.subs, self.nsp, &name) else {
                    return;
                };
                let header = if id.is_none() && bins.is_empty() {
                    plain
                } else {
                    message_header(self.nsp, &name, id, !bins.is_empty())
                };
                let d = data(raw, &bins);
                out.push_back(sio_event(header, d, bins));
            }
            _ => {
                let Some(id) = id else { return };
                let waiter = self
                    .shared
                    .waiting
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
                let d = data(raw, &bins);
                match waiter {
                    Some(w) => {
                        let _ = w.send((d, bins));
                    }
                    None => out.push_back(ack_event(self.nsp, id, d, bins)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rom_connection_strings_are_exact() {
        let s = |e: Event| (e.header(), e.data());
        assert_eq!(
            s(open_event()),
            (
                r#"{"Event": "Connection","State": "Open"}"#.into(),
                r#"{"Connection": "Open"}"#.into()
            )
        );
        assert_eq!(
            s(close_event()),
            (
                r#"{"Event": "Connection","State": "Close","Reason": "Normal"}"#.into(),
                r#"{"Connection": "Close"}"#.into()
            )
        );
        assert_eq!(
            s(fail_event()),
            (
                r#"{"Event": "Connection","State": "Fail"}"#.into(),
                r#"{"Connection": "Fail"}"#.into()
            )
        );
        let m = message_event(
            "/",
            "new message",
            None,
            r#"["new message","Привет мир!"]"#.into(),
            Vec::new(),
        );
        assert_eq!(
            m.header(),
            r#"{"Event": "Message","Namespace": "/","Name": "new message","Type": "String"}"#
        );
        assert_eq!(m.data(), r#"["new message","Привет мир!"]"#);
        assert!(m.is_message());
        let m = message_event("/a", "x", Some(4), "[\"x\"]".into(), vec![vec![1]]);
        assert_eq!(
            m.header(),
            r#"{"Event": "Message","Namespace": "/a","Name": "x","Type": "Binary","Ack": 4}"#
        );
        assert_eq!(
            ack_event("/", 2, "[1]".into(), Vec::new()).header(),
            r#"{"Event": "Ack","Namespace": "/","Id": 2,"Type": "String"}"#
        );
    }

    #[test]
    fn subscriptions() {
        let s = Subscriptions::default();
        assert!(!s.wants("a"));
        s.on("a");
        assert!(s.wants("a") && !s.wants("b"));
        s.on("*");
        assert!(s.wants("b"));
        s.off("*");
        s.off("a");
        assert!(!s.wants("a"));
        s.on("b");
        s.clear();
        assert!(!s.wants("b"));
    }
}
