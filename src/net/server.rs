//! The server: an accept loop and one task pair per connection, publishing to the object's
//! hub. Connections are registered in [`Connections`] so that 1C code can address them by id.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, StatusCode, header};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::{Expected, OptionsObject, Result};
use crate::event::{Event, EventKind};
use crate::hub::Hub;
use crate::log::{Level, Log};
use crate::net::conn::{ConnectionTasks, End, Stats, log_unsent};
use crate::net::forwarded::{self, Cidr};
use crate::net::options::{
    Fault, Limits, LogOptions, PersistentKeys, PersistentOptions, SharedKeys, millis,
    parse_options, period, persistent, shown_text, size, tokens,
};
use crate::net::stream::{MaybeTls, Replayed};
use crate::net::{SendQueue, send_queue};

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
    /// Handshakes in progress at most (`max_pending_handshakes`, default 128); a new socket
    /// beyond it pushes out the oldest one still in its handshake (see [`Handshakes`]).
    pub max_pending_handshakes: usize,
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
    /// `trusted_proxies`: reverse proxies whose forwarding headers name the client
    /// (see [`crate::net::forwarded`]); empty: the headers are never read.
    pub trusted_proxies: Vec<Cidr>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_connections: 1000,
            handshake_timeout: Duration::from_secs(10),
            max_pending_handshakes: 128,
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
            trusted_proxies: Vec::new(),
        }
    }
}

impl ServerOptions {
    /// Parses `Параметры` of `Настроить`.
    pub fn parse(text: &str) -> Result<ServerOptions> {
        parse_options(OptionsObject::Server, text, ServerKeys::check)
    }
}

/// The server's own keys (`Параметры` of `Настроить`), as they arrive; the limits and log
/// keys are the client's ([`SharedKeys`]).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct ServerKeys {
    max_connections: Option<u64>,
    handshake_timeout_ms: Option<u64>,
    max_pending_handshakes: Option<u64>,
    allowed_origins: Vec<String>,
    allowed_paths: Vec<String>,
    subprotocols: Vec<String>,
    auth: Option<AuthKeys>,
    ping_interval_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    persistent: Option<PersistentKeys>,
    trusted_proxies: Vec<String>,
}

/// `auth`: exactly one of the two.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct AuthKeys {
    bearer: Option<String>,
    basic: Option<BasicKeys>,
}

/// `auth.basic`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BasicKeys {
    user: String,
    password: String,
}

impl ServerKeys {
    // One key per line, as in the documentation's table.
    #[rustfmt::skip]
    fn check(self, shared: SharedKeys) -> Result<ServerOptions, Fault> {
        let d = ServerOptions::default();
        let auth = match self.auth {
            None => None,
            Some(AuthKeys { bearer: Some(token), basic: None }) => Some(Auth::Bearer(token)),
            Some(AuthKeys { bearer: None, basic: Some(b) }) => {
                let pair = format!("{}:{}", b.user, b.password);
                Some(Auth::Basic(base64::engine::general_purpose::STANDARD.encode(pair)))
            }
            Some(_) => return Err(Fault::wrong("auth", Expected::Auth, "{…}".to_owned())),
        };
        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .enumerate()
            .map(|(i, t)| {
                Cidr::parse(t).ok_or_else(|| {
                    Fault::wrong(&format!("trusted_proxies[{i}]"), Expected::AddressBlock, shown_text(t))
                })
            })
            .collect::<Result<Vec<_>, Fault>>()?;
        Ok(ServerOptions {
            max_connections: size("max_connections", self.max_connections, 1, 100_000, d.max_connections)?,
            handshake_timeout: millis("handshake_timeout_ms", self.handshake_timeout_ms, 1, 600_000, d.handshake_timeout)?,
            max_pending_handshakes: size("max_pending_handshakes", self.max_pending_handshakes, 1, 100_000, d.max_pending_handshakes)?,
            limits: shared.limits(d.limits)?,
            origins: self.allowed_origins,
            paths: self.allowed_paths,
            subprotocols: tokens("subprotocols", self.subprotocols)?,
            auth,
            ping_interval: period("ping_interval_ms", self.ping_interval_ms, 86_400_000, d.ping_interval)?,
            idle_timeout: period("idle_timeout_ms", self.idle_timeout_ms, 86_400_000, d.idle_timeout)?,
            log: shared.log()?,
            persistent: persistent(self.persistent)?,
            trusted_proxies,
        })
    }
}

/// One open connection, as 1C code sees it.
pub struct LiveConnection {
    /// Connection id: 1, 2, 3 … in order of arrival, never reused while the server runs.
    pub id: u64,
    /// The client's address as 1C code sees it: the peer's `ip:port`, or behind a trusted
    /// proxy the address it forwarded (see [`crate::net::forwarded`]).
    pub address: String,
    /// The trusted proxy's own address, when `address` came from its headers.
    pub proxy: Option<SocketAddr>,
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
    pub commands: SendQueue,
    /// Cancels this connection.
    pub token: CancellationToken,
    /// Set by the first `Отключить` that accepted it: from then on the id is gone for 1C
    /// code while the close handshake completes in the background.
    pub closing: AtomicBool,
    /// Traffic counters.
    pub stats: Arc<Stats>,
}

impl LiveConnection {
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
        let mut m = serde_json::Map::new();
        m.insert("Connection".into(), json!(self.id));
        self.put_address(&mut m);
        m.insert("Path".into(), json!(self.path));
        m.insert("Query".into(), json!(self.query));
        m.insert("Headers".into(), json!(h));
        m.insert("Subprotocol".into(), json!(self.subprotocol));
        m.insert("ConnectedSince".into(), json!(since));
        m.insert("ConnectedAt".into(), json!(self.connected_at()));
        self.put_counters(&mut m);
        serde_json::Value::Object(m).to_string()
    }

    /// One element of `СписокСоединений`.
    pub fn list_entry(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("Connection".into(), json!(self.id));
        self.put_address(&mut m);
        m.insert("Path".into(), json!(self.path));
        m.insert("Subprotocol".into(), json!(self.subprotocol));
        m.insert("ConnectedAt".into(), json!(self.connected_at()));
        self.put_counters(&mut m);
        serde_json::Value::Object(m)
    }

    /// `Address`, and `ProxyAddress` behind a trusted proxy.
    fn put_address(&self, m: &mut serde_json::Map<String, serde_json::Value>) {
        m.insert("Address".into(), json!(self.address));
        if let Some(p) = self.proxy {
            m.insert("ProxyAddress".into(), json!(p.to_string()));
        }
    }

    fn put_counters(&self, m: &mut serde_json::Map<String, serde_json::Value>) {
        let s = &self.stats;
        for (k, v) in [
            ("MessagesIn", &s.messages_in),
            ("BytesIn", &s.bytes_in),
            ("MessagesOut", &s.messages_out),
            ("BytesOut", &s.bytes_out),
        ] {
            m.insert(k.into(), json!(v.load(Ordering::Relaxed)));
        }
    }

    /// When the handshake completed: ISO 8601, UTC, whole seconds (`2025-01-31T09:05:00Z`).
    fn connected_at(&self) -> String {
        let secs = self
            .since
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        format!("{}Z", crate::value::Date::from_unix(secs as i64))
    }
}

/// The open connections of one running server.
#[derive(Default)]
pub struct Connections {
    map: Mutex<BTreeMap<u64, Arc<LiveConnection>>>,
    next: AtomicU64,
}

impl Connections {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<LiveConnection>>> {
        locked(&self.map)
    }

    /// A connection whose token is cancelled is ending: its reader has stopped and its
    /// socket is about to close (the token is cancelled before the writer drops the socket),
    /// so it is no longer open, although its task has not removed the entry yet. Without
    /// this, 1C code that saw the peer go could still find the connection for a moment.
    /// One that `Отключить` accepted is gone for 1C code at once, the same way.
    fn is_open(e: &&Arc<LiveConnection>) -> bool {
        !e.token.is_cancelled() && !e.closing.load(Ordering::SeqCst)
    }

    /// Claims open connection `id` for `Отключить`: `Some` for the first caller only.
    pub fn claim(&self, id: u64) -> Option<Arc<LiveConnection>> {
        self.get(id)
            .filter(|e| !e.closing.swap(true, Ordering::SeqCst))
    }

    /// The connection `id`, if open.
    pub fn get(&self, id: u64) -> Option<Arc<LiveConnection>> {
        self.lock().get(&id).filter(Self::is_open).cloned()
    }

    /// Every open connection, by id.
    pub fn list(&self) -> Vec<Arc<LiveConnection>> {
        self.lock()
            .values()
            .filter(Self::is_open)
            .cloned()
            .collect()
    }

    /// Whether connection `id` may still deliver a message: it is in the table, open or
    /// closing (its entry leaves only once its reader has stopped).
    pub fn present(&self, id: u64) -> bool {
        self.lock().contains_key(&id)
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
pub struct ServerRun {
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
    /// This run: cancelled by `Остановить` or `Done()` at their bound.
    pub token: CancellationToken,
    /// This run, gracefully: cancelled first by `Остановить` or `Done()`. Accepting stops,
    /// handshakes in progress are dropped, connections send what is queued and close 1001.
    pub drain: CancellationToken,
    /// The diagnostic log.
    pub log: Arc<Log>,
}

impl ServerRun {
    fn spawn<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(self.run_tracker.track_future(fut));
    }
}

/// The handshakes in progress, oldest first, each with the token that pushes it out.
///
/// Why push out the oldest rather than refuse the newest: a flood of sockets that connect
/// and then say nothing would otherwise hold every place until `handshake_timeout_ms`, and
/// every legitimate client would be turned away meanwhile (anyone who can reach the port
/// could do that at will). A real handshake completes in one round trip, so under a flood
/// it is almost never the oldest; the silent sockets push each other out. Established
/// connections have their own bound (`max_connections`) and are never pushed out.
struct Handshakes {
    max: usize,
    next: u64,
    queue: VecDeque<(u64, CancellationToken)>,
}

impl Handshakes {
    /// Registers a new handshake; pushes out the oldest when over the bound.
    fn start(&mut self) -> (u64, CancellationToken) {
        self.next += 1;
        let token = CancellationToken::new();
        self.queue.push_back((self.next, token.clone()));
        if self.queue.len() > self.max
            && let Some((_, oldest)) = self.queue.pop_front()
        {
            oldest.cancel();
        }
        (self.next, token)
    }

    /// The handshake `id` ended (either way).
    fn end(&mut self, id: u64) {
        if let Some(i) = self.queue.iter().position(|(k, _)| *k == id) {
            self.queue.remove(i);
        }
    }
}

/// The accept loop. Connection slots are a semaphore taken when a handshake is answered: a
/// client beyond `max_connections` gets HTTP 503 and open connections are never evicted.
/// Handshakes in progress are bounded apart ([`Handshakes`]). The listener is dropped (the
/// port freed) when the loop ends.
pub async fn accept_loop(listener: TcpListener, ctx: Arc<ServerRun>) {
    let slots = Arc::new(Semaphore::new(ctx.options.max_connections));
    let handshakes = Arc::new(Mutex::new(Handshakes {
        max: ctx.options.max_pending_handshakes,
        next: 0,
        queue: VecDeque::new(),
    }));
    loop {
        let accepted = tokio::select! {
            _ = ctx.drain.cancelled() => break,
            a = listener.accept() => a,
        };
        let Ok((tcp, addr)) = accepted else {
            // Out of descriptors and the like: wait a little instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let c = ctx.clone();
        let slots = slots.clone();
        let (id, pushed_out) = locked(&handshakes).start();
        let handshakes = handshakes.clone();
        ctx.spawn(async move {
            // Boxed: a task's memory is sized for its largest state, which is the TLS and
            // WebSocket handshake; in its own allocation, freed when the handshake ends, it
            // no longer sizes what an open (mostly idle) connection holds for hours.
            let shaken = Box::pin(shake(tcp, addr, &slots, &pushed_out, &c)).await;
            locked(&handshakes).end(id);
            if let Some((ws, seen, permit)) = shaken {
                connection(ws, seen, addr, permit, c).await;
            }
        });
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
    /// The client's address from a trusted proxy's headers.
    client: Option<String>,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    subprotocol: String,
}

/// Checks a handshake request against the options and picks the subprotocol.
// The error type is tungstenite's handshake callback contract, large or not.
#[allow(clippy::result_large_err)]
fn screen_request(
    o: &ServerOptions,
    peer: SocketAddr,
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
    let headers: Vec<(String, String)> = req
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
        client: forwarded::client_address(peer.ip(), &headers, &o.trusted_proxies),
        path,
        query: req.uri().query().unwrap_or("").to_owned(),
        headers,
        subprotocol,
    };
    Ok((resp, seen))
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The WebSocket of an accepted connection.
type ServerWs = tokio_tungstenite::WebSocketStream<Replayed<MaybeTls>>;

/// The most a handshake request (request line and headers) may take.
const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// Reads the handshake request and checks what tungstenite would refuse without an answer,
/// answering as RFC 6455 §4.2.1–4.2.2 asks: 426 with `Sec-WebSocket-Version: 13` (and
/// `Upgrade: websocket`) to a request that is not a WebSocket upgrade or asks for another
/// version, 400 to a malformed one (not GET, no key, two keys, a key that is not 16 bytes in
/// base64, a head too large). A good request is handed on, its bytes read again first.
async fn checked_request(mut stream: MaybeTls) -> std::result::Result<Replayed<MaybeTls>, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    let refusal = loop {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("reading the request: {e}"))?;
        if n == 0 {
            return Err("the peer closed before its request".to_owned());
        }
        head.extend_from_slice(&buf[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&head) {
            Ok(httparse::Status::Complete(_)) => break refusal_of(&req),
            Ok(httparse::Status::Partial) if head.len() <= MAX_REQUEST_HEAD => continue,
            Ok(httparse::Status::Partial) => {
                break Some((StatusCode::BAD_REQUEST, "request head too large"));
            }
            Err(_) => break Some((StatusCode::BAD_REQUEST, "malformed HTTP request")),
        }
    };
    let Some((status, why)) = refusal else {
        return Ok(Replayed::new(head, stream));
    };
    let upgrade = if status == StatusCode::UPGRADE_REQUIRED {
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    } else {
        "Connection: close\r\n"
    };
    let answer = format!(
        "HTTP/1.1 {} {}\r\n{upgrade}Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{why}",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default(),
        why.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
    Err(format!("HTTP {} {why}", status.as_u16()))
}

/// Why a complete handshake request is refused, if it is.
fn refusal_of(req: &httparse::Request<'_, '_>) -> Option<(StatusCode, &'static str)> {
    let values = |name: &str| {
        req.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_owned())
            .collect::<Vec<_>>()
    };
    let has_token = |name: &str, token: &str| {
        values(name)
            .iter()
            .flat_map(|v| {
                v.split(',')
                    .map(|t| t.trim().to_ascii_lowercase())
                    .collect::<Vec<_>>()
            })
            .any(|t| t == token)
    };
    if req.method != Some("GET") {
        return Some((
            StatusCode::BAD_REQUEST,
            "a WebSocket handshake is a GET request",
        ));
    }
    if !has_token("upgrade", "websocket") || !has_token("connection", "upgrade") {
        return Some((StatusCode::UPGRADE_REQUIRED, "this is a WebSocket endpoint"));
    }
    if values("sec-websocket-version") != ["13"] {
        return Some((StatusCode::UPGRADE_REQUIRED, "WebSocket version 13 only"));
    }
    let keys = values("sec-websocket-key");
    let valid = |k: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(k)
            .is_ok_and(|b| b.len() == 16)
    };
    match keys.as_slice() {
        [k] if valid(k) => None,
        [_] => Some((
            StatusCode::BAD_REQUEST,
            "Sec-WebSocket-Key is not 16 bytes in base64",
        )),
        [] => Some((StatusCode::BAD_REQUEST, "no Sec-WebSocket-Key")),
        _ => Some((StatusCode::BAD_REQUEST, "more than one Sec-WebSocket-Key")),
    }
}

async fn handshake(
    tcp: TcpStream,
    peer: SocketAddr,
    ctx: &ServerRun,
    slots: &Arc<Semaphore>,
) -> std::result::Result<(ServerWs, Seen, OwnedSemaphorePermit), String> {
    let stream = match &ctx.tls {
        Some(acceptor) => MaybeTls::ServerTls(Box::new(
            acceptor
                .accept(tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?,
        )),
        None => MaybeTls::Plain(tcp),
    };
    let stream = checked_request(stream).await?;
    let mut seen = None;
    let mut permit = None;
    // The connection slot is taken when the request is answered, not at accept: a socket
    // still in its handshake holds no slot of an established connection.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| {
        permit = slots.clone().try_acquire_owned().ok();
        screen_request(&ctx.options, peer, permit.is_none(), req, resp).map(|(resp, s)| {
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
    match (seen, permit) {
        (Some(s), Some(p)) => Ok((ws, s, p)),
        _ => Err("no request".to_owned()),
    }
}

/// A handshake within its bounds: `handshake_timeout_ms`, the server's drain, and being
/// pushed out by newer sockets ([`Handshakes`]). Logs why it was refused.
async fn shake(
    tcp: TcpStream,
    addr: SocketAddr,
    slots: &Arc<Semaphore>,
    pushed_out: &CancellationToken,
    ctx: &ServerRun,
) -> Option<(Box<ServerWs>, Seen, OwnedSemaphorePermit)> {
    let bound = ctx.options.handshake_timeout;
    let reason = tokio::select! {
        _ = ctx.drain.cancelled() => return None,
        _ = pushed_out.cancelled() => format!(
            "still in its handshake when {} newer connections were waiting (max_pending_handshakes)",
            ctx.options.max_pending_handshakes
        ),
        r = tokio::time::timeout(bound, handshake(tcp, addr, ctx, slots)) => match r {
            Ok(Ok((ws, seen, permit))) => return Some((Box::new(ws), seen, permit)),
            Ok(Err(reason)) => reason,
            Err(_) => format!("no handshake within {} ms", bound.as_millis()),
        },
    };
    ctx.log
        .write(Level::Info, || format!("refused {addr}: {reason}"));
    None
}

async fn connection(
    ws: Box<ServerWs>,
    seen: Seen,
    addr: SocketAddr,
    permit: OwnedSemaphorePermit,
    ctx: Arc<ServerRun>,
) {
    let id = ctx.conns.next.fetch_add(1, Ordering::SeqCst) + 1;
    let (tx, rx) = send_queue(&ctx.options.limits);
    let budget = tx.budget();
    let token = ctx.token.child_token();
    let stats = Arc::new(Stats::default());
    let (address, proxy) = match seen.client {
        Some(client) => (client, Some(addr)),
        None => (addr.to_string(), None),
    };
    let entry = Arc::new(LiveConnection {
        id,
        address: address.clone(),
        proxy,
        path: seen.path.clone(),
        query: seen.query,
        headers: seen.headers.clone(),
        subprotocol: seen.subprotocol.clone(),
        since: SystemTime::now(),
        commands: tx,
        token: token.clone(),
        closing: AtomicBool::new(false),
        stats: stats.clone(),
    });
    ctx.conns.lock().insert(id, entry);
    ctx.log.write(Level::Info, || {
        format!(
            "accepted {id} from {address}{} path {} subprotocol \"{}\"",
            proxy.map(|p| format!(" via {p}")).unwrap_or_default(),
            seen.path,
            seen.subprotocol
        )
    });
    ctx.hub.connection_started();
    let open = EventKind::Open {
        address,
        proxy: proxy.map(|p| p.to_string()),
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
    let pump = ConnectionTasks {
        conn: Some(id),
        hub: ctx.hub.clone(),
        commands: rx,
        budget,
        token: token.clone(),
        going_away: ctx.token.clone(),
        drain: ctx.drain.clone(),
        tracker: ctx.tracker.clone(),
        stats,
        ping_interval: ctx.options.ping_interval,
        idle_timeout: ctx.options.idle_timeout,
        pong_timeout: None,
        log: ctx.log.clone(),
    };
    let mut ended = pump.run(ws).await;
    // Out of the table first, then the queue closed and counted: an `Отправить` racing
    // this either queued in time (and is counted) or finds the queue closed (returns 0).
    ctx.conns.lock().remove(&id);
    let unsent = ended.unsent();
    let stopping = ctx.token.is_cancelled() || ctx.drain.is_cancelled();
    let kind = match ended.end {
        End::Closed(code, reason) => EventKind::Close {
            code,
            reason,
            unsent,
        },
        End::Failed(error) => EventKind::Fail { error, unsent },
        End::Cancelled if stopping => EventKind::Close {
            code: 1001,
            reason: "server stopped".into(),
            unsent,
        },
        End::Cancelled => EventKind::Close {
            code: 1006,
            reason: "close handshake timed out".into(),
            unsent,
        },
    };
    match &kind {
        EventKind::Fail { error, .. } => ctx
            .log
            .write(Level::Error, || format!("failed {id}: {error}")),
        EventKind::Close { code, reason, .. } => ctx
            .log
            .write(Level::Info, || format!("closed {id}: {code} \"{reason}\"")),
        _ => {}
    }
    log_unsent(&ctx.log, Some(id), unsent);
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
        let o = ServerOptions::parse(
            r#"{"auth": {"bearer": "t"}, "subprotocols": ["v1", "chat.v2"], "handshake_timeout_ms": 1,
                "persistent": {"name": "касса", "idle_expiry_ms": 0}, "idle_timeout_ms": 0}"#,
        )
        .unwrap();
        assert_eq!(o.auth, Some(Auth::Bearer("t".into())));
        assert_eq!(o.subprotocols, ["v1", "chat.v2"]);
        assert_eq!(o.handshake_timeout, Duration::from_millis(1));
        assert_eq!(
            o.persistent,
            Some(PersistentOptions {
                name: "касса".into(),
                idle_expiry: None
            })
        );
        assert_eq!(o.idle_timeout, None);
        let o = ServerOptions::parse(r#"{"trusted_proxies": ["127.0.0.1", "10.0.0.0/8", "::1"]}"#)
            .unwrap();
        assert_eq!(o.trusted_proxies.len(), 3);
        assert!(o.trusted_proxies[1].contains("10.9.8.7".parse().unwrap()));
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

    #[test]
    fn option_errors_in_both_languages() {
        let s = "Параметры сервера";
        for (options, ru, en) in [
            (
                r#"{"auth": {}}"#,
                format!(
                    r#"{s}: ключ auth: ожидается {{"bearer": "…"}} или {{"basic": {{"user": "…", "password": "…"}}}}, получено {{…}}"#
                ),
                r#"Server options: key auth: expected {"bearer": "…"} or {"basic": {"user": "…", "password": "…"}}, got {…}"#.to_owned(),
            ),
            (
                r#"{"auth": {"bearer": "a", "basic": {"user": "u", "password": "p"}}}"#,
                format!(
                    r#"{s}: ключ auth: ожидается {{"bearer": "…"}} или {{"basic": {{"user": "…", "password": "…"}}}}, получено {{…}}"#
                ),
                r#"Server options: key auth: expected {"bearer": "…"} or {"basic": {"user": "…", "password": "…"}}, got {…}"#.to_owned(),
            ),
            (
                r#"{"auth": {"bearer": 1}}"#,
                format!("{s}: ключ auth.bearer: ожидается строка, получено 1"),
                "Server options: key auth.bearer: expected a string, got 1".to_owned(),
            ),
            (
                r#"{"auth": {"basic": {"user": "u"}}}"#,
                format!("{s}: нет обязательного ключа auth.basic.password"),
                "Server options: the required key auth.basic.password is missing".to_owned(),
            ),
            (
                r#"{"auth": {"basic": {"user": "u", "password": "p", "realm": "x"}}}"#,
                format!("{s}: неизвестный параметр «auth.basic.realm»; допустимы: user, password"),
                "Server options: unknown key \"auth.basic.realm\"; accepted: user, password".to_owned(),
            ),
            (
                r#"{"persistent": {}}"#,
                format!("{s}: нет обязательного ключа persistent.name"),
                "Server options: the required key persistent.name is missing".to_owned(),
            ),
            (
                r#"{"persistent": {"name": " "}}"#,
                format!("{s}: ключ persistent.name: ожидается непустая строка, получено \" \""),
                "Server options: key persistent.name: expected a non-blank string, got \" \"".to_owned(),
            ),
            (
                r#"{"persistent": true}"#,
                format!("{s}: ключ persistent: ожидается объект JSON, получено true"),
                "Server options: key persistent: expected a JSON object, got true".to_owned(),
            ),
            (
                r#"{"handshake_timeout_ms": 0}"#,
                format!("{s}: ключ handshake_timeout_ms: ожидается целое число от 1 до 600000, получено 0"),
                "Server options: key handshake_timeout_ms: expected a whole number from 1 to 600000, got 0".to_owned(),
            ),
            (
                r#"{"allowed_paths": ["/a", 1]}"#,
                format!("{s}: ключ allowed_paths[1]: ожидается строка, получено 1"),
                "Server options: key allowed_paths[1]: expected a string, got 1".to_owned(),
            ),
            (
                r#"{"trusted_proxies": ["10.0.0.0/8", "nginx"]}"#,
                format!("{s}: ключ trusted_proxies[1]: ожидается IP-адрес или блок адресов (IPv4 или IPv6, например 10.0.0.5, 10.0.0.0/8, fd00::/8), получено \"nginx\""),
                "Server options: key trusted_proxies[1]: expected an IP address or address block (IPv4 or IPv6, e.g. 10.0.0.5, 10.0.0.0/8, fd00::/8), got \"nginx\"".to_owned(),
            ),
            (
                r#"{"trusted_proxies": "10.0.0.1"}"#,
                format!("{s}: ключ trusted_proxies: ожидается массив, получено \"10.0.0.1\""),
                "Server options: key trusted_proxies: expected an array, got \"10.0.0.1\"".to_owned(),
            ),
            (
                r#"{"log_level": "всё"}"#,
                format!("{s}: ключ log_level: ожидается error, info или debug, получено \"всё\""),
                "Server options: key log_level: expected error, info or debug, got \"всё\"".to_owned(),
            ),
        ] {
            let e = ServerOptions::parse(options).unwrap_err();
            assert_eq!(e.text(Lang::Ru), ru, "{options}");
            assert_eq!(e.text(Lang::En), en, "{options}");
        }
        let e = ServerOptions::parse(r#"{"ping": 1}"#).unwrap_err();
        assert!(
            e.text(Lang::Ru).starts_with(
                "Параметры сервера: неизвестный параметр «ping»; допустимы: max_connections, handshake_timeout_ms,"
            ),
            "{}",
            e.text(Lang::Ru)
        );
        assert!(
            e.text(Lang::En)
                .ends_with("log_file, log_level, log_messages")
        );
    }

    #[test]
    fn subprotocols_are_http_tokens() {
        for bad in ["", "a b", "a,b", "v(2)", "ч", "a/b", "a\"b", "a;b", "{x}"] {
            let options = serde_json::json!({ "subprotocols": ["ok", bad] }).to_string();
            let e = ServerOptions::parse(&options).unwrap_err();
            let en = e.text(Lang::En);
            assert!(
                en.starts_with("Server options: key subprotocols[1]: expected a subprotocol name"),
                "{bad}: {en}"
            );
        }
        let tchars = "!#$%&'*+-.^_`|~09azAZ";
        let options = serde_json::json!({ "subprotocols": [tchars] }).to_string();
        assert_eq!(
            ServerOptions::parse(&options).unwrap().subprotocols,
            [tchars]
        );
    }
}
