//! The server: an accept loop and one task pair per connection, publishing to the object's
//! hub. Connections are registered in [`Connections`] so that 1C code can address them by id.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, StatusCode, header};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::Result;
use crate::event::{Event, EventKind};
use crate::hub::Hub;
use crate::log::{Level, Log};
use crate::net::Command;
use crate::net::conn::{End, Pump, Stats};
use crate::net::options::{Limits, LogKeys, LogOptions, Reader};
use crate::net::stream::MaybeTls;

/// What the handshake must carry.
#[derive(Clone, Debug, PartialEq)]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `Authorization: Basic <base64(user:password)>`.
    Basic(String),
}

/// `Настроить` / `Configure` options, with safe defaults.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Open connections at most (`max_connections`, default 1000); more get HTTP 503.
    pub max_connections: usize,
    /// TLS + WebSocket handshake bound (`handshake_timeout_ms`, default 10 000).
    pub handshake_timeout: Duration,
    /// Per-connection limits (same keys as the client).
    pub limits: Limits,
    /// Allowed `Origin` values (`allowed_origins`; empty: any).
    pub origins: Vec<String>,
    /// Allowed request paths (`allowed_paths`; empty: any).
    pub paths: Vec<String>,
    /// Subprotocols the server accepts, in its order of preference (`subprotocols`).
    pub subprotocols: Vec<String>,
    /// Required credentials (`auth`: `{"bearer": "…"}` or `{"basic": {"user": …, "password": …}}`).
    pub auth: Option<Auth>,
    /// Ping every connection this often (`ping_interval_ms`; 0 or absent: never).
    pub ping_interval: Option<Duration>,
    /// Close a connection that sent nothing (not even a pong) for this long
    /// (`idle_timeout_ms`; 0 or absent: never).
    pub idle_timeout: Option<Duration>,
    /// `log_file`, `log_level` (`error`, `info` by default, `debug`), `log_messages`: the
    /// diagnostic log (`None`: no log).
    pub log: Option<LogOptions>,
    /// `persistent`: `{"name": "…", "idle_expiry_ms": N}` keeps the server after the object.
    pub persistent: Option<PersistentOptions>,
}

/// A server that outlives its object (see `crate::persistent`).
#[derive(Clone, Debug, PartialEq)]
pub struct PersistentOptions {
    /// The name the next object attaches by.
    pub name: String,
    /// Stop it after this long with no object attached (`idle_expiry_ms`; 0 or absent: never).
    pub idle_expiry: Option<Duration>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_connections: 1000,
            handshake_timeout: Duration::from_secs(10),
            limits: Limits {
                send_timeout: Duration::from_secs(5),
                ..Limits::default()
            },
            origins: Vec::new(),
            paths: Vec::new(),
            subprotocols: Vec::new(),
            auth: None,
            ping_interval: None,
            idle_timeout: None,
            log: None,
            persistent: None,
        }
    }
}

impl ServerOptions {
    /// Parses `Параметры` of `Настроить`.
    pub fn parse(text: &str) -> Result<ServerOptions> {
        let r = Reader::SERVER;
        let mut o = ServerOptions::default();
        let mut log = LogKeys::default();
        for (key, v) in r.parse(text)?.unwrap_or_default() {
            let key = key.as_str();
            if o.limits.take(&r, key, &v)? || log.take(&r, key, &v)? {
                continue;
            }
            match key {
                "max_connections" => o.max_connections = r.number(key, &v, 1, 100_000)? as usize,
                "handshake_timeout_ms" => o.handshake_timeout = r.millis(key, &v, 600_000)?,
                "allowed_origins" => o.origins = r.strings(key, &v)?,
                "ping_interval_ms" => o.ping_interval = r.optional_millis(key, &v, 86_400_000)?,
                "idle_timeout_ms" => o.idle_timeout = r.optional_millis(key, &v, 86_400_000)?,
                "allowed_paths" => o.paths = r.strings(key, &v)?,
                "subprotocols" => o.subprotocols = r.strings(key, &v)?,
                "auth" => {
                    let a = r.object(key, &v)?;
                    o.auth = match (a.get("bearer"), a.get("basic")) {
                        (Some(t), None) if a.len() == 1 => {
                            Some(Auth::Bearer(r.string("auth.bearer", t)?))
                        }
                        (None, Some(b)) if a.len() == 1 => {
                            let b = r.object("auth.basic", b)?;
                            let user =
                                r.string("auth.basic.user", b.get("user").unwrap_or(&json!(null)))?;
                            let pass = r.string(
                                "auth.basic.password",
                                b.get("password").unwrap_or(&json!(null)),
                            )?;
                            let token = base64::engine::general_purpose::STANDARD
                                .encode(format!("{user}:{pass}"));
                            Some(Auth::Basic(token))
                        }
                        _ => {
                            return Err(r.bad(
                                "«auth» — это {\"bearer\": \"…\"} или {\"basic\": {\"user\": …, \"password\": …}}".into(),
                                "\"auth\" is {\"bearer\": \"…\"} or {\"basic\": {\"user\": …, \"password\": …}}".into(),
                            ));
                        }
                    };
                }
                "persistent" => {
                    let p = r.object(key, &v)?;
                    let mut name = None;
                    let mut idle_expiry = None;
                    for (k, pv) in p {
                        match k.as_str() {
                            "name" => name = Some(r.string("persistent.name", pv)?),
                            "idle_expiry_ms" => {
                                let d =
                                    r.millis("persistent.idle_expiry_ms", pv, 365 * 86_400_000)?;
                                idle_expiry = (!d.is_zero()).then_some(d);
                            }
                            other => return Err(r.unknown(&format!("persistent.{other}"))),
                        }
                    }
                    let name = name.filter(|n| !n.trim().is_empty()).ok_or_else(|| {
                        r.bad(
                            "«persistent.name» обязателен".into(),
                            "\"persistent.name\" is required".into(),
                        )
                    })?;
                    o.persistent = Some(PersistentOptions { name, idle_expiry });
                }
                other => return Err(r.unknown(other)),
            }
        }
        o.log = log.finish();
        Ok(o)
    }
}

/// One open connection, as 1C code sees it.
pub struct Entry {
    /// Connection id: 1, 2, 3 … in order of arrival, never reused while the server runs.
    pub id: u64,
    /// Peer address.
    pub addr: SocketAddr,
    /// Request path.
    pub path: String,
    /// Request query (without `?`).
    pub query: String,
    /// Request headers.
    pub headers: Vec<(String, String)>,
    /// Negotiated subprotocol.
    pub subprotocol: String,
    /// When the handshake completed.
    pub since: SystemTime,
    /// Commands to its writer.
    pub commands: mpsc::Sender<Command>,
    /// Cancels this connection.
    pub token: CancellationToken,
    /// Traffic counters.
    pub stats: Arc<Stats>,
}

impl Entry {
    /// `ИнформацияОСоединении`: the connection as JSON.
    pub fn info_json(&self) -> String {
        let h: serde_json::Map<String, serde_json::Value> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let since = self
            .since
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let s = &self.stats;
        json!({
            "Connection": self.id,
            "Address": self.addr.to_string(),
            "Path": self.path,
            "Query": self.query,
            "Headers": h,
            "Subprotocol": self.subprotocol,
            "ConnectedSince": since,
            "MessagesIn": s.messages_in.load(Ordering::Relaxed),
            "BytesIn": s.bytes_in.load(Ordering::Relaxed),
            "MessagesOut": s.messages_out.load(Ordering::Relaxed),
            "BytesOut": s.bytes_out.load(Ordering::Relaxed),
        })
        .to_string()
    }
}

/// The open connections of one running server.
#[derive(Default)]
pub struct Connections {
    map: Mutex<BTreeMap<u64, Arc<Entry>>>,
    next: AtomicU64,
}

impl Connections {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<Entry>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection whose token is cancelled is ending: its reader has stopped and its
    /// socket is about to close (the token is cancelled before the writer drops the socket),
    /// so it is no longer open, although its task has not removed the entry yet. Without
    /// this, 1C code that saw the peer go could still find the connection for a moment.
    fn is_open(e: &&Arc<Entry>) -> bool {
        !e.token.is_cancelled()
    }

    /// The connection `id`, if open.
    pub fn get(&self, id: u64) -> Option<Arc<Entry>> {
        self.lock().get(&id).filter(Self::is_open).cloned()
    }

    /// Every open connection, by id.
    pub fn list(&self) -> Vec<Arc<Entry>> {
        self.lock()
            .values()
            .filter(Self::is_open)
            .cloned()
            .collect()
    }

    /// How many are open.
    pub fn len(&self) -> usize {
        self.lock().values().filter(Self::is_open).count()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Everything the accept loop and its connections share.
pub struct Ctx {
    /// Options from `Настроить`.
    pub options: ServerOptions,
    /// TLS, for wss.
    pub tls: Option<TlsAcceptor>,
    /// The object's hub.
    pub hub: Arc<Hub>,
    /// The open connections.
    pub conns: Arc<Connections>,
    /// The object's tracker.
    pub tracker: TaskTracker,
    /// This run's tracker (for `Остановить`).
    pub run_tracker: TaskTracker,
    /// This run: cancelled by `Остановить` or `Done()`.
    pub token: CancellationToken,
    /// The diagnostic log.
    pub log: Arc<Log>,
}

impl Ctx {
    fn spawn<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(self.run_tracker.track_future(fut));
    }
}

/// The accept loop. Connection slots are a semaphore taken before the handshake: a client
/// beyond `max_connections` gets HTTP 503 and open connections are never evicted. The
/// listener is dropped (the port freed) when the loop ends.
pub async fn accept_loop(listener: TcpListener, ctx: Arc<Ctx>) {
    let slots = Arc::new(Semaphore::new(ctx.options.max_connections));
    loop {
        let accepted = tokio::select! {
            _ = ctx.token.cancelled() => break,
            a = listener.accept() => a,
        };
        let Ok((tcp, addr)) = accepted else {
            // Out of descriptors and the like: wait a little instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let permit = slots.clone().try_acquire_owned().ok();
        let c = ctx.clone();
        ctx.spawn(async move { connection(tcp, addr, permit, c).await });
    }
    drop(listener);
    ctx.hub.connection_ended();
}

fn reject(status: StatusCode, text: &str) -> ErrorResponse {
    let mut r = ErrorResponse::new(Some(text.to_owned()));
    *r.status_mut() = status;
    r
}

/// What the handshake callback learned.
struct Seen {
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    subprotocol: String,
}

/// Checks a handshake request against the options and picks the subprotocol.
// The error type is tungstenite's handshake callback contract, large or not.
#[allow(clippy::result_large_err)]
fn check(
    o: &ServerOptions,
    full: bool,
    req: &Request,
    mut resp: Response,
) -> std::result::Result<(Response, Seen), ErrorResponse> {
    if full {
        return Err(reject(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many connections",
        ));
    }
    // Typed names: a &str lookup parses the name through an uninitialised scratch buffer,
    // which memcheck reports; the constants skip that parse.
    let header = |name: HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let path = req.uri().path().to_owned();
    if !o.paths.is_empty() && !o.paths.contains(&path) {
        return Err(reject(StatusCode::NOT_FOUND, "path not served"));
    }
    if !o.origins.is_empty() && !o.origins.iter().any(|a| a == header(header::ORIGIN)) {
        return Err(reject(StatusCode::FORBIDDEN, "origin not allowed"));
    }
    let authorized = match &o.auth {
        None => true,
        Some(Auth::Bearer(t)) => header(header::AUTHORIZATION) == format!("Bearer {t}"),
        Some(Auth::Basic(b)) => header(header::AUTHORIZATION) == format!("Basic {b}"),
    };
    if !authorized {
        let mut r = reject(StatusCode::UNAUTHORIZED, "authorization required");
        if matches!(o.auth, Some(Auth::Basic(_))) {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"1C\""),
            );
        }
        return Err(r);
    }
    let offered: Vec<&str> = header(header::SEC_WEBSOCKET_PROTOCOL)
        .split(',')
        .map(str::trim)
        .collect();
    let subprotocol = o
        .subprotocols
        .iter()
        .find(|p| offered.contains(&p.as_str()))
        .cloned()
        .unwrap_or_default();
    if !subprotocol.is_empty()
        && let Ok(v) = HeaderValue::from_str(&subprotocol)
    {
        resp.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, v);
    }
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let seen = Seen {
        path,
        query: req.uri().query().unwrap_or("").to_owned(),
        headers,
        subprotocol,
    };
    Ok((resp, seen))
}

async fn handshake(
    tcp: TcpStream,
    ctx: &Ctx,
    full: bool,
) -> std::result::Result<(tokio_tungstenite::WebSocketStream<MaybeTls>, Seen), String> {
    let stream = match &ctx.tls {
        Some(acceptor) => MaybeTls::ServerTls(Box::new(
            acceptor
                .accept(tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?,
        )),
        None => MaybeTls::Plain(tcp),
    };
    let mut seen = None;
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| {
        check(&ctx.options, full, req, resp).map(|(resp, s)| {
            seen = Some(s);
            resp
        })
    };
    let config = ctx.options.limits.ws_config();
    let ws = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config))
        .await
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(r) => format!(
                "HTTP {} {}",
                r.status().as_u16(),
                String::from_utf8_lossy(r.body().as_deref().unwrap_or_default())
            ),
            other => other.to_string(),
        })?;
    seen.map(|s| (ws, s)).ok_or_else(|| "no request".to_owned())
}

async fn connection(
    tcp: TcpStream,
    addr: SocketAddr,
    permit: Option<OwnedSemaphorePermit>,
    ctx: Arc<Ctx>,
) {
    let bound = ctx.options.handshake_timeout;
    let shaken = tokio::select! {
        _ = ctx.token.cancelled() => return,
        r = tokio::time::timeout(bound, handshake(tcp, &ctx, permit.is_none())) => r,
    };
    let (ws, seen) = match shaken {
        Ok(Ok(x)) => x,
        Ok(Err(reason)) => {
            return ctx
                .log
                .write(Level::Info, || format!("refused {addr}: {reason}"));
        }
        Err(_) => {
            let ms = bound.as_millis();
            return ctx.log.write(Level::Info, || {
                format!("refused {addr}: no handshake within {ms} ms")
            });
        }
    };
    let id = ctx.conns.next.fetch_add(1, Ordering::SeqCst) + 1;
    let (tx, rx) = mpsc::channel(ctx.options.limits.send_queue);
    let token = ctx.token.child_token();
    let stats = Arc::new(Stats::default());
    let entry = Arc::new(Entry {
        id,
        addr,
        path: seen.path.clone(),
        query: seen.query,
        headers: seen.headers.clone(),
        subprotocol: seen.subprotocol.clone(),
        since: SystemTime::now(),
        commands: tx,
        token: token.clone(),
        stats: stats.clone(),
    });
    ctx.conns.lock().insert(id, entry);
    ctx.log.write(Level::Info, || {
        format!(
            "accepted {id} from {addr} path {} subprotocol \"{}\"",
            seen.path, seen.subprotocol
        )
    });
    ctx.hub.connection_started();
    let open = EventKind::Open {
        address: addr.to_string(),
        path: seen.path,
        subprotocol: seen.subprotocol,
        headers: seen.headers,
    };
    ctx.hub
        .publish(
            Event {
                conn: Some(id),
                kind: open,
            },
            &token,
        )
        .await;
    let pump = Pump {
        conn: Some(id),
        hub: ctx.hub.clone(),
        commands: rx,
        token: token.clone(),
        going_away: ctx.token.clone(),
        tracker: ctx.tracker.clone(),
        stats,
        ping_interval: ctx.options.ping_interval,
        idle_timeout: ctx.options.idle_timeout,
        pong_timeout: None,
        log: ctx.log.clone(),
    };
    let kind = match pump.run(ws).await.0 {
        End::Closed(code, reason) => EventKind::Close { code, reason },
        End::Failed(error) => EventKind::Fail { error },
        End::Cancelled if ctx.token.is_cancelled() => EventKind::Close {
            code: 1001,
            reason: "server stopped".into(),
        },
        End::Cancelled => EventKind::Close {
            code: 1006,
            reason: "close handshake timed out".into(),
        },
    };
    ctx.conns.lock().remove(&id);
    match &kind {
        EventKind::Fail { error } => ctx
            .log
            .write(Level::Error, || format!("failed {id}: {error}")),
        EventKind::Close { code, reason } => ctx
            .log
            .write(Level::Info, || format!("closed {id}: {code} \"{reason}\"")),
        _ => {}
    }
    // Connection events never wait for room, so this cannot block a stopping server.
    ctx.hub
        .publish(
            Event {
                conn: Some(id),
                kind,
            },
            &token,
        )
        .await;
    ctx.hub.connection_ended();
    drop(permit);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::Lang;

    #[test]
    fn options() {
        let o = ServerOptions::parse("").unwrap();
        assert_eq!(o.max_connections, 1000);
        let o = ServerOptions::parse(
            r#"{"max_connections": 5, "allowed_paths": ["/a"], "auth": {"basic": {"user": "u", "password": "p"}}}"#,
        )
        .unwrap();
        assert_eq!(o.max_connections, 5);
        assert_eq!(o.paths, vec!["/a".to_owned()]);
        assert_eq!(o.auth, Some(Auth::Basic("dTpw".into())));
        let e = ServerOptions::parse(r#"{"ping": 1}"#).unwrap_err();
        assert_eq!(
            e.text(Lang::Ru),
            "Параметры сервера: неизвестный параметр «ping»"
        );
        assert!(ServerOptions::parse(r#"{"auth": {"bearer": 1}}"#).is_err());
        assert!(ServerOptions::parse(r#"{"auth": {}}"#).is_err());
        let o = ServerOptions::parse(r#"{"log_file": "s.log", "log_level": "debug"}"#).unwrap();
        let log = o.log.expect("a log");
        assert_eq!(
            (log.file.as_str(), log.level, log.bodies),
            ("s.log", Level::Debug, false)
        );
        assert!(
            ServerOptions::parse(r#"{"log_level": "debug"}"#)
                .unwrap()
                .log
                .is_none()
        );
    }
}
