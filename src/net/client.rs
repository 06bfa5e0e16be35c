//! The client connection: connect (TCP, TLS, handshake) within a bound, then a reader that
//! publishes to the hub and a writer that drains the command channel.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{ProtocolError, SubProtocolError};
use tokio_tungstenite::tungstenite::http::header::{
    AUTHORIZATION, SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_PROTOCOL,
};
use tokio_tungstenite::tungstenite::http::{HeaderMap, HeaderName, HeaderValue, Uri};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::{
    AddressError, ClientError, ConnectError, ConnectStage, Error, HandshakeError, ResponseFault,
    Result, SocketFailure,
};
use crate::event::{Event, EventKind};
use crate::hub::Hub;
use crate::lang::Lang;
use crate::log::{Level, Log};
use crate::net::conn::{ConnectionTasks, End, close_queue, log_unsent};
use crate::net::options::{ClientOptions, Reconnect};
use crate::net::proxy;
use crate::net::stream::{self, MaybeTls};
use crate::net::{ByteBudget, Command, Finished, SendQueue};
use crate::tls;

/// `Статус`: -1 error, 0 not connected, 1 connected.
pub const STATUS_ERROR: i32 = -1;
/// Not connected.
pub const STATUS_IDLE: i32 = 0;
/// Connected.
pub const STATUS_OPEN: i32 = 1;
/// Connection lost, reconnecting (`reconnect.enabled`).
pub const STATUS_RECONNECTING: i32 = 2;
/// `НачатьПодключение` (or `Подключиться`) is connecting: the first connect is under way.
pub const STATUS_CONNECTING: i32 = 3;

/// The rule of the Client and SocketIO objects: `Подключиться` on a connection that is open,
/// or still connecting, raises; 1C code calls `Отключиться` first.
pub fn refuse_second_connect(status: i32) -> Result<()> {
    match status {
        STATUS_OPEN => Err(Error::Client(ClientError::AlreadyConnected)),
        STATUS_CONNECTING => Err(Error::Client(ClientError::Connecting)),
        _ => Ok(()),
    }
}

/// A parsed `ws://` / `wss://` address.
///
/// Parsed by the `url` crate (WHATWG rules, as a browser's `new WebSocket(url)`): the scheme
/// is case-insensitive, an international host name becomes punycode (IDNA), non-ASCII and
/// unsafe characters of path and query are percent-encoded (what is already encoded stays),
/// `user:password@` becomes HTTP Basic authorization, IPv6 literals go in brackets.
#[derive(Clone)]
pub struct Target {
    /// The address exactly as 1C code passed it (`Сервер` reads it back).
    pub url: String,
    /// The address sent in the request: ASCII, without user and password.
    pub request: String,
    /// `wss://`.
    pub tls: bool,
    /// Host name (punycode) or IP (IPv6 without brackets).
    pub host: String,
    /// Port (80 / 443 by default).
    pub port: u16,
    /// Path and query, percent-encoded.
    pub path: String,
    /// `Authorization` header value from `user:password@`, if any.
    basic_auth: Option<String>,
}

impl std::fmt::Debug for Target {
    // Never prints the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.request)
    }
}

impl Target {
    /// Parses and checks an address; the error names the part that is wrong.
    pub fn parse(url: &str) -> Result<Target> {
        use url::ParseError as P;
        let given = || url.to_owned();
        let parsed = url::Url::parse(url).map_err(|e| {
            Error::Address(match e {
                P::EmptyHost => AddressError::NoHost { url: given() },
                P::InvalidPort => AddressError::Port { url: given() },
                P::IdnaError
                | P::InvalidDomainCharacter
                | P::InvalidIpv4Address
                | P::InvalidIpv6Address => AddressError::Host { url: given() },
                _ => AddressError::NotUrl { url: given() },
            })
        })?;
        let tls = match parsed.scheme() {
            "ws" => false,
            "wss" => true,
            other => {
                return Err(Error::Address(AddressError::Scheme {
                    url: given(),
                    scheme: other.to_owned(),
                }));
            }
        };
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(Error::Address(AddressError::NoHost { url: given() })),
        };
        let port = match parsed.port_or_known_default() {
            Some(0) | None => return Err(Error::Address(AddressError::Port { url: given() })),
            Some(p) => p,
        };
        if parsed.fragment().is_some() {
            return Err(Error::Address(AddressError::Fragment { url: given() }));
        }
        let basic_auth =
            (!parsed.username().is_empty() || parsed.password().is_some()).then(|| {
                let decode = |s: &str| percent_encoding::percent_decode_str(s).collect::<Vec<u8>>();
                let mut pair = decode(parsed.username());
                pair.push(b':');
                pair.extend(decode(parsed.password().unwrap_or("")));
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )
            });
        let mut request = parsed.clone();
        // Both only fail on URLs that cannot have credentials, which ws/wss ones can.
        let _ = request.set_username("");
        let _ = request.set_password(None);
        let path = match request.query() {
            Some(q) => format!("{}?{q}", request.path()),
            None => request.path().to_owned(),
        };
        let request = String::from(request);
        // tungstenite builds its request from an `http::Uri`: refuse here what it would.
        if request.parse::<Uri>().is_err() {
            return Err(Error::Address(AddressError::Path { url: given() }));
        }
        Ok(Target {
            url: given(),
            request,
            tls,
            host,
            port,
            path,
            basic_auth,
        })
    }
}

/// State the connection tasks share with the client object.
pub struct ClientState {
    /// `Статус`.
    pub status: AtomicI32,
    /// Negotiated subprotocol.
    pub subprotocol: Mutex<String>,
    /// 1C asked to disconnect: no reconnect after this close.
    pub stopping: AtomicBool,
    /// Both tasks have ended.
    finished: Finished,
}

/// What an object holds of one connection (a persistent client's registry entry holds the
/// same, to hand it to the next object).
#[derive(Clone)]
pub struct Link {
    /// Status and subprotocol, shared with the task.
    pub shared: Arc<ClientState>,
    /// The send queue.
    pub commands: SendQueue,
    /// This connection's token.
    pub token: CancellationToken,
    /// Its options.
    pub options: ClientOptions,
}

impl ClientState {
    /// A connection being connected (`Статус` 3).
    pub fn new() -> Arc<ClientState> {
        Arc::new(ClientState {
            status: AtomicI32::new(STATUS_CONNECTING),
            subprotocol: Mutex::new(String::new()),
            stopping: AtomicBool::new(false),
            finished: Finished::default(),
        })
    }

    fn finish(&self) {
        self.finished.set();
    }

    /// Whether the connection has ended.
    pub fn is_finished(&self) -> bool {
        self.finished.is_set()
    }

    /// Waits (on the 1C thread) until the connection has ended; false on timeout.
    pub fn wait_finished(&self, timeout: Duration) -> bool {
        self.finished.wait(timeout)
    }
}

pub(crate) type Ws = WebSocketStream<MaybeTls>;

fn client_cert_error(t: &Target, _e: &std::io::Error) -> Error {
    Error::Tls(crate::error::TlsError::Handshake {
        host: t.host.clone(),
        port: t.port,
        problem: crate::error::HandshakeProblem::ClientCertificateRefused,
    })
}

/// A failed TLS handshake, classified from rustls's typed error.
fn tls_error(t: &Target, e: &std::io::Error, auth: &tls::ClientAuth) -> Error {
    tls::handshake_error(&t.host, t.port, e, Some(auth))
}

fn ws_handshake_error(t: &Target, e: WsError, auth: Option<&tls::ClientAuth>) -> Error {
    let fault = |fault| HandshakeError::BadResponse { fault };
    let h = match e {
        // TLS 1.3: the server checks the client certificate after the handshake, so its
        // refusal arrives while we read the HTTP answer.
        WsError::Io(io) if tls::client_cert_refused(&io, auth) => return client_cert_error(t, &io),
        WsError::Io(io) => HandshakeError::Lost {
            failure: SocketFailure::of(&io),
        },
        WsError::ConnectionClosed | WsError::AlreadyClosed => HandshakeError::Lost {
            failure: SocketFailure::Reset,
        },
        WsError::Http(resp) => HandshakeError::Status {
            code: resp.status().as_u16(),
        },
        WsError::Protocol(ProtocolError::SecWebSocketSubProtocolError(sub)) => match sub {
            SubProtocolError::NoSubProtocol => HandshakeError::NoSubprotocol,
            _ => HandshakeError::UnofferedSubprotocol,
        },
        WsError::Protocol(p) => fault(match p {
            ProtocolError::MissingConnectionUpgradeHeader => ResponseFault::NoConnectionUpgrade,
            ProtocolError::MissingUpgradeWebSocketHeader => ResponseFault::NoUpgrade,
            ProtocolError::SecWebSocketAcceptKeyMismatch => ResponseFault::AcceptMismatch,
            ProtocolError::HandshakeIncomplete => ResponseFault::Incomplete,
            ProtocolError::HttparseError(_) | ProtocolError::WrongHttpVersion => {
                ResponseFault::NotHttp
            }
            _ => ResponseFault::Other,
        }),
        WsError::HttpFormat(_) => fault(ResponseFault::NotHttp),
        WsError::Capacity(_) => fault(ResponseFault::TooLarge),
        // The request URL was checked by `Target::parse`; should tungstenite still refuse
        // it, the path is what it refused.
        WsError::Url(_) => {
            return Error::Address(AddressError::Path { url: t.url.clone() });
        }
        _ => fault(ResponseFault::Other),
    };
    Error::Handshake(h)
}

/// What one successful connect gives.
pub(crate) struct Established {
    pub(crate) ws: Ws,
    pub(crate) peer: SocketAddr,
    subprotocol: String,
    /// Response headers for the Open event.
    headers: Vec<(String, String)>,
}

/// TCP to the target (directly, trying each resolved address, or through the proxy),
/// before `deadline`; `stage` follows the progress for the timeout's text.
async fn open_tcp(
    t: &Target,
    o: &ClientOptions,
    log: &Log,
    deadline: Instant,
    stage: &mut ConnectStage,
) -> Result<(TcpStream, SocketAddr)> {
    let (tcp, peer) = match &o.proxy {
        Some(p) => {
            *stage = ConnectStage::Proxy;
            log.write(Level::Info, || {
                format!("proxy {}: tunnel to {}:{}", p.display(), t.host, t.port)
            });
            let (tcp, peer) = proxy::connect(p, &t.host, t.port, deadline).await?;
            log.write(Level::Info, || {
                format!("proxy {}: tunnel open", p.display())
            });
            (tcp, peer)
        }
        None => {
            *stage = ConnectStage::Resolve;
            let addrs = stream::resolve(&t.host, t.port).await.map_err(|e| {
                log.write(Level::Error, || format!("resolve {} failed: {e}", t.host));
                Error::Connect(ConnectError::Resolve {
                    host: t.host.clone(),
                })
            })?;
            if addrs.is_empty() {
                return Err(Error::Connect(ConnectError::NoAddress {
                    host: t.host.clone(),
                }));
            }
            log.write(Level::Info, || {
                let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                format!("resolved {} to {}", t.host, list.join(", "))
            });
            *stage = ConnectStage::Tcp;
            stream::connect_any(&addrs, deadline)
                .await
                .map_err(|tried| {
                    Error::Connect(ConnectError::Tcp {
                        host: t.host.clone(),
                        port: t.port,
                        tried,
                    })
                })?
        }
    };
    let _ = tcp.set_nodelay(true);
    log.write(Level::Info, || format!("tcp connected to {peer}"));
    Ok((tcp, peer))
}

async fn establish(
    t: &Target,
    o: &ClientOptions,
    log: &Log,
    deadline: Instant,
    stage: &mut ConnectStage,
) -> Result<Established> {
    let (tcp, peer) = open_tcp(t, o, log, deadline, stage).await?;
    let mut auth = None;
    let stream = if t.tls {
        *stage = ConnectStage::Tls;
        let (config, a) = tls::client_config(&o.tls).await?;
        auth = Some(a.clone());
        let name = ServerName::try_from(t.host.clone()).map_err(|_| {
            Error::Connect(ConnectError::TlsName {
                host: t.host.clone(),
            })
        })?;
        let tls = TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| {
                log.write(Level::Error, || format!("tls failed: {e}"));
                tls_error(t, &e, &a)
            })?;
        log.write(Level::Info, || {
            let (_, c) = tls.get_ref();
            let cert = c
                .peer_certificates()
                .and_then(|l| l.first())
                .map_or("no certificate".to_owned(), |d| tls::describe_cert(d));
            let verified = if o.tls.insecure {
                "NOT verified (tls.insecure)"
            } else {
                "verified"
            };
            format!(
                "tls {:?} {:?}: server certificate {cert}: {verified}",
                c.protocol_version(),
                c.negotiated_cipher_suite().map(|s| s.suite())
            )
        });
        MaybeTls::Tls(Box::new(tls))
    } else {
        MaybeTls::Plain(tcp)
    };
    *stage = ConnectStage::Handshake;
    let mut req = t
        .request
        .as_str()
        .into_client_request()
        .map_err(|e| ws_handshake_error(t, e, None))?;
    for (k, v) in &o.headers {
        let name = HeaderName::from_bytes(k.as_bytes());
        let value = HeaderValue::from_str(v);
        let (Ok(name), Ok(value)) = (name, value) else {
            return Err(Error::Handshake(HandshakeError::RequestHeader {
                name: k.clone(),
            }));
        };
        req.headers_mut().append(name, value);
    }
    // user:password@ in the address, unless the headers option sets its own.
    if let Some(basic) = &t.basic_auth
        && !req.headers().contains_key(AUTHORIZATION)
        && let Ok(v) = HeaderValue::from_str(basic)
    {
        req.headers_mut().insert(AUTHORIZATION, v);
    }
    if !o.subprotocols.is_empty() {
        let list = o.subprotocols.join(", ");
        let value = HeaderValue::from_str(&list)
            .map_err(|_| Error::Handshake(HandshakeError::Subprotocols { list: list.clone() }))?;
        req.headers_mut().insert(SEC_WEBSOCKET_PROTOCOL, value);
    }
    let (ws, resp) =
        tokio_tungstenite::client_async_with_config(req, stream, Some(o.limits.ws_config()))
            .await
            .map_err(|e| {
                log.write(Level::Error, || format!("handshake failed: {e}"));
                ws_handshake_error(t, e, auth.as_deref())
            })?;
    log.write(Level::Info, || {
        let headers: Vec<String> = resp
            .headers()
            .iter()
            .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v.as_bytes())))
            .collect();
        format!(
            "handshake: HTTP {}; {}",
            resp.status().as_u16(),
            headers.join("; ")
        )
    });
    // RFC 6455 §4.1: an extension the client did not offer fails the connection. We offer
    // none (tungstenite has no permessage-deflate), so any is one we did not offer.
    let extensions = header_values(resp.headers(), &SEC_WEBSOCKET_EXTENSIONS);
    if !extensions.trim().is_empty() {
        return Err(Error::Handshake(HandshakeError::UnofferedExtension {
            extensions,
        }));
    }
    let subprotocol = resp
        .headers()
        .get(SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    // tungstenite itself refuses a subprotocol that was not offered.
    Ok(Established {
        ws,
        peer,
        subprotocol,
        headers: response_headers(resp.headers()),
    })
}

/// Every value of header `name`, joined by ", " (RFC 9110 §5.3), as text.
fn header_values(h: &HeaderMap, name: &HeaderName) -> String {
    let values: Vec<String> = h
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    values.join(", ")
}

/// The response headers for the Open event: each name once, in the order first received,
/// repeated headers joined by ", ".
///
/// Names are lower-case: the `http` crate keeps no other case, and HTTP names are
/// case-insensitive (the server's Open event has them the same way).
fn response_headers(h: &HeaderMap) -> Vec<(String, String)> {
    h.keys()
        .map(|k| (k.as_str().to_owned(), header_values(h, k)))
        .collect()
}

/// One connect within `timeout_ms`; the error says it was insecure when it was.
pub(crate) async fn establish_bounded(
    t: &Target,
    o: &ClientOptions,
    log: &Log,
) -> Result<Established> {
    let deadline = Instant::now() + o.timeout;
    let mut stage = ConnectStage::Resolve;
    // The inner steps that wait on the network (the TCP attempts) stop at the same
    // deadline with their own, more precise error; this bound catches the rest.
    let r = tokio::time::timeout_at(deadline, establish(t, o, log, deadline, &mut stage)).await;
    let r = r.unwrap_or_else(|_| {
        Err(Error::Connect(ConnectError::Timeout {
            url: t.url.clone(),
            ms: o.timeout.as_millis().try_into().unwrap_or(u64::MAX),
            stage,
        }))
    });
    r.map_err(|e| insecure_note(e, o))
}

/// `tls.insecure` is loud: every failure of such a connection, an exception or a Fail
/// event, ends with a warning.
const INSECURE_EN: &str = " (warning: server certificate verification is off, tls.insecure)";

fn insecure_note(e: Error, o: &ClientOptions) -> Error {
    if o.tls.insecure {
        Error::Insecure(Box::new(e))
    } else {
        e
    }
}

/// The delay before reconnect attempt `n` (1-based): `min_delay * 2^(n-1)` capped at
/// `max_delay`, less up to a fifth at random (never under `min_delay`) so that many clients
/// dropped together do not come back in step.
pub fn backoff(r: &Reconnect, n: u32) -> Duration {
    let base = r.min_delay.as_millis() as u64;
    let cap = r.max_delay.as_millis() as u64;
    let d = base
        .saturating_mul(1u64 << (n.saturating_sub(1)).min(32))
        .min(cap);
    let jitter = if d / 5 > 0 { random() % (d / 5 + 1) } else { 0 };
    Duration::from_millis(d.saturating_sub(jitter).max(base.min(cap)))
}

/// A random number from the process's hash keys and the clock (no RNG dependency needed).
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

/// Everything a client connection task needs; moved into it.
pub struct Task {
    /// Where to.
    pub target: Target,
    /// How.
    pub options: ClientOptions,
    /// Where events go.
    pub hub: Arc<Hub>,
    /// Status shared with the object.
    pub shared: Arc<ClientState>,
    /// Commands from the object, in order.
    pub commands: mpsc::Receiver<Command>,
    /// The byte bound of the object's send queue.
    pub budget: ByteBudget,
    /// The connect result for the waiting `Подключиться`; `None` for `НачатьПодключение`,
    /// whose failure becomes a Fail event in `lang`.
    pub ready: Option<SyncSender<Result<()>>>,
    /// The language of that Fail event's text (the object's, as for the exception).
    pub lang: Lang,
    /// This connection (a child of the object's token).
    pub token: CancellationToken,
    /// The object's token: cancelled only by `Done()`, at its bound.
    pub done: CancellationToken,
    /// The object's drain token: cancelled first by `Done()` (see [`ConnectionTasks::drain`]).
    pub drain: CancellationToken,
    /// The object's tracker, for the writer.
    pub tracker: TaskTracker,
}

/// The connection task (the caller has counted it as a live source of `hub`, see
/// [`Hub::connection_started`]): the first connect (its result goes to `Подключиться`), then the
/// connection, then, with `reconnect`, new connections until Disconnect, Done or the last
/// allowed attempt.
///
/// Why one task for all of it: the command queue (and what 1C put in it) survives a
/// reconnect, the events of one client stay in one order (Close/Fail, Reconnecting…, Open),
/// and Disconnect or Done stop everything by one token, even in the middle of a back-off.
pub async fn client_task(task: Task) {
    let Task {
        target,
        options,
        hub,
        shared,
        commands,
        budget,
        mut ready,
        lang,
        token,
        done,
        drain,
        tracker,
    } = task;
    let log = Arc::new(match &options.log {
        // A log that cannot be opened is no log: it never breaks the connection.
        Some(l) => l.open().unwrap_or_default(),
        None => Log::default(),
    });
    log.write(Level::Info, || format!("connect {}", target.url));
    let first = tokio::select! {
        _ = token.cancelled() => None,
        _ = drain.cancelled() => None,
        r = establish_bounded(&target, &options, &log) => Some(r),
    };
    let mut est = match first {
        Some(Ok(e)) => e,
        Some(Err(e)) => {
            log.write(Level::Error, || {
                format!("connect failed: {}", e.text(Lang::En))
            });
            shared.status.store(STATUS_ERROR, Ordering::SeqCst);
            match ready {
                Some(r) => {
                    let _ = r.send(Err(e));
                }
                None => {
                    let kind = EventKind::Fail {
                        error: e.text(lang),
                        unsent: commands_unsent(commands),
                    };
                    hub.publish(Event { conn: None, kind }, &token).await;
                }
            }
            hub.connection_ended();
            return shared.finish();
        }
        // Disconnect, Done or the blocking call's own bound: the object settles the status.
        None => {
            log_unsent(&log, None, commands_unsent(commands));
            hub.connection_ended();
            return shared.finish();
        }
    };
    let mut commands = Some(commands);
    loop {
        *shared.subprotocol.lock().unwrap_or_else(|e| e.into_inner()) = est.subprotocol.clone();
        shared.status.store(STATUS_OPEN, Ordering::SeqCst);
        if let Some(r) = ready.take() {
            let _ = r.send(Ok(()));
        }
        log.write(Level::Info, || format!("open: {}", est.peer));
        let open = EventKind::Open {
            address: est.peer.to_string(),
            proxy: None,
            path: target.path.clone(),
            subprotocol: est.subprotocol.clone(),
            headers: std::mem::take(&mut est.headers),
        };
        hub.publish(
            Event {
                conn: None,
                kind: open,
            },
            &token,
        )
        .await;
        let Some(rx) = commands.take() else { break };
        let pump = ConnectionTasks {
            conn: None,
            hub: hub.clone(),
            commands: rx,
            budget: budget.clone(),
            token: token.child_token(),
            going_away: done.clone(),
            drain: drain.clone(),
            tracker: tracker.clone(),
            stats: Arc::default(),
            ping_interval: options.ping_interval,
            idle_timeout: None,
            pong_timeout: options.ping_interval.map(|_| options.pong_timeout),
            log: log.clone(),
        };
        let mut ended = pump.run(Box::new(est.ws)).await;
        let stopped =
            token.is_cancelled() || drain.is_cancelled() || shared.stopping.load(Ordering::SeqCst);
        let again = options.reconnect.enabled && !stopped && ended.commands.is_some();
        // With reconnect the queue carries over to the next connection (what it holds goes
        // out there); only the writer's lost batch is unsent. Without, all of it is.
        let unsent = if again { ended.lost } else { ended.unsent() };
        log_unsent(&log, None, unsent);
        commands = ended.commands.take();
        let kind = match ended.end {
            End::Closed(code, reason) => {
                log.write(Level::Info, || format!("closed: {code} {reason}"));
                shared.status.store(STATUS_IDLE, Ordering::SeqCst);
                Some(EventKind::Close {
                    code,
                    reason,
                    unsent,
                })
            }
            End::Failed(error) => {
                log.write(Level::Error, || format!("failed: {error}"));
                shared.status.store(STATUS_ERROR, Ordering::SeqCst);
                let error = if options.tls.insecure {
                    error + INSECURE_EN
                } else {
                    error
                };
                Some(EventKind::Fail { error, unsent })
            }
            End::Cancelled if done.is_cancelled() || drain.is_cancelled() => None,
            End::Cancelled => {
                log.write(Level::Info, || "closed by this side".to_owned());
                shared.status.store(STATUS_IDLE, Ordering::SeqCst);
                Some(EventKind::Close {
                    code: 1006,
                    reason: "close handshake timed out".into(),
                    unsent,
                })
            }
        };
        if again {
            shared.status.store(STATUS_RECONNECTING, Ordering::SeqCst);
        }
        if let Some(kind) = kind {
            hub.publish(Event { conn: None, kind }, &done).await;
        }
        if !again {
            break;
        }
        let link = Redial {
            target: &target,
            options: &options,
            hub: &hub,
            shared: &shared,
            token: &token,
            drain: &drain,
            log: &log,
        };
        match redial(link, &mut commands).await {
            Some(e) => est = e,
            None => break,
        }
    }
    // Ended during a back-off (Done, Disconnect) or gave up: what 1C queued meanwhile.
    log_unsent(&log, None, commands.as_mut().map_or(0, close_queue));
    // Stopped in the middle of a back-off: not connected, not reconnecting.
    let _ = shared.status.compare_exchange(
        STATUS_RECONNECTING,
        STATUS_IDLE,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    hub.connection_ended();
    shared.finish();
}

/// What 1C queued before the first connect failed (Отправить refuses while connecting, so
/// normally nothing).
fn commands_unsent(mut rx: mpsc::Receiver<Command>) -> u64 {
    close_queue(&mut rx)
}

/// Attempts until one succeeds (`Some`), the token is cancelled or the attempts run out
/// (`None`; a Fail event then says why).
/// What a reconnect needs of its connection task.
struct Redial<'a> {
    target: &'a Target,
    options: &'a ClientOptions,
    hub: &'a Hub,
    shared: &'a ClientState,
    token: &'a CancellationToken,
    /// `Done()`: nothing is left to send, so a back-off ends at once.
    drain: &'a CancellationToken,
    log: &'a Log,
}

async fn redial(
    link: Redial<'_>,
    commands: &mut Option<mpsc::Receiver<Command>>,
) -> Option<Established> {
    let Redial {
        target,
        options: o,
        hub,
        shared,
        token,
        drain,
        log,
    } = link;
    let mut last_error = String::new();
    for attempt in 1u32.. {
        if o.reconnect.max_attempts > 0 && attempt > o.reconnect.max_attempts {
            let n = o.reconnect.max_attempts;
            log.write(Level::Error, || {
                format!("reconnect: gave up after {n} attempts")
            });
            shared.status.store(STATUS_ERROR, Ordering::SeqCst);
            let error = format!("reconnect failed after {n} attempts: {last_error}");
            // What 1C queued while the link was down will never go: say how much.
            let unsent = commands.as_mut().map_or(0, close_queue);
            hub.publish(
                Event {
                    conn: None,
                    kind: EventKind::Fail { error, unsent },
                },
                token,
            )
            .await;
            return None;
        }
        let delay = backoff(&o.reconnect, attempt);
        log.write(Level::Info, || {
            format!("reconnect attempt {attempt} in {} ms", delay.as_millis())
        });
        let kind = EventKind::Reconnecting {
            attempt,
            delay_ms: delay.as_millis() as u64,
        };
        hub.publish(Event { conn: None, kind }, token).await;
        tokio::select! {
            _ = token.cancelled() => return None,
            _ = drain.cancelled() => return None,
            _ = tokio::time::sleep(delay) => {}
        }
        let r = tokio::select! {
            _ = token.cancelled() => return None,
            _ = drain.cancelled() => return None,
            r = establish_bounded(target, o, log) => r,
        };
        match r {
            Ok(e) => return Some(e),
            Err(e) => {
                last_error = e.text(Lang::En);
                log.write(Level::Error, || {
                    format!("reconnect attempt {attempt} failed: {last_error}")
                });
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::Lang;

    #[test]
    fn backoff_doubles_with_jitter_within_bounds() {
        let r = Reconnect {
            enabled: true,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            max_attempts: 0,
        };
        for _ in 0..200 {
            let d: Vec<u64> = (1..=8).map(|n| backoff(&r, n).as_millis() as u64).collect();
            assert_eq!(d[0], 100);
            assert!((160..=200).contains(&d[1]), "{d:?}");
            assert!((320..=400).contains(&d[2]), "{d:?}");
            assert!((800..=1000).contains(&d[7]), "{d:?}");
        }
        assert!(backoff(&r, u32::MAX) <= Duration::from_millis(1000));
    }

    #[test]
    fn addresses() {
        let t = Target::parse("wss://example.org/path?q=1").unwrap();
        assert!(t.tls);
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("example.org", 443, "/path?q=1")
        );
        let t = Target::parse("ws://[::1]:8080").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 8080, "/")
        );
        assert_eq!(t.request, "ws://[::1]:8080/");
        let e = Target::parse("http://x").unwrap_err();
        assert!(
            e.text(Lang::Ru).contains("ожидается ws:// или wss://"),
            "{}",
            e.text(Lang::Ru)
        );
        assert!(matches!(
            Target::parse("не адрес"),
            Err(Error::Address(AddressError::NotUrl { .. }))
        ));
        assert!(matches!(
            Target::parse("ws://"),
            Err(Error::Address(AddressError::NoHost { .. }))
        ));
    }

    #[test]
    fn international_addresses_become_ascii_and_keep_what_was_given() {
        let given = "wss://сервер.рф/чат?имя=Иван";
        let t = Target::parse(given).unwrap();
        assert_eq!(t.url, given, "Сервер reads back what 1C code passed");
        assert_eq!(t.host, "xn--b1afb6bcb.xn--p1ai");
        assert_eq!(
            t.path,
            "/%D1%87%D0%B0%D1%82?%D0%B8%D0%BC%D1%8F=%D0%98%D0%B2%D0%B0%D0%BD"
        );
        assert_eq!(
            t.request,
            "wss://xn--b1afb6bcb.xn--p1ai/%D1%87%D0%B0%D1%82?%D0%B8%D0%BC%D1%8F=%D0%98%D0%B2%D0%B0%D0%BD"
        );
        // Spaces and quotes are encoded, what is already encoded stays as it is.
        let t = Target::parse(" WS://Host.Example:8080/a b/\"x\"/%41?q=a b ").unwrap();
        assert_eq!(t.host, "host.example");
        assert_eq!(t.path, "/a%20b/%22x%22/%41?q=a%20b");
        assert!(!t.tls);
        assert_eq!(t.port, 8080);
        assert_eq!(t.url, " WS://Host.Example:8080/a b/\"x\"/%41?q=a b ");
        // What JSON or a filter expression puts in a query still makes a request.
        for u in [
            r#"ws://h/p?filter={"a":[1,2]}&x=a|b^c`d"#,
            r#"ws://h/{a}/[b]/a|b^c`d\e"#,
        ] {
            let t = Target::parse(u).unwrap_or_else(|e| panic!("{u}: {e}"));
            assert!(t.request.parse::<Uri>().is_ok(), "{}", t.request);
        }
    }

    #[test]
    fn credentials_become_basic_auth_and_leave_the_request() {
        let t = Target::parse("ws://ivan:p%40ss@h:1/x").unwrap();
        // base64("ivan:p@ss")
        assert_eq!(t.basic_auth.as_deref(), Some("Basic aXZhbjpwQHNz"));
        assert_eq!(t.request, "ws://h:1/x");
        assert!(!format!("{t:?}").contains("ivan"));
        let t = Target::parse("ws://иван:пароль@h/").unwrap();
        let expected = base64::engine::general_purpose::STANDARD.encode("иван:пароль");
        assert_eq!(t.basic_auth, Some(format!("Basic {expected}")));
        assert_eq!(Target::parse("ws://h/").unwrap().basic_auth, None);
    }

    #[test]
    fn each_bad_part_is_named() {
        let port = |u: &str| {
            matches!(
                Target::parse(u),
                Err(Error::Address(AddressError::Port { .. }))
            )
        };
        for u in [
            "ws://h:65536/",
            "ws://h:-1/",
            "ws://h:12345678901234567890/",
            "ws://h:0/",
            "ws://h:8o/",
        ] {
            assert!(port(u), "{u}: {:?}", Target::parse(u).err());
        }
        let host = |u: &str| {
            matches!(
                Target::parse(u),
                Err(Error::Address(AddressError::Host { .. }))
            )
        };
        for u in [
            "ws://[::1/",
            "ws://[zz::1]/",
            "ws://a b/",
            "ws://h<x>/",
            "ws://1.2.3.4.5/",
        ] {
            assert!(host(u), "{u}: {:?}", Target::parse(u).err());
        }
        assert!(matches!(
            Target::parse("ws://h/#frag"),
            Err(Error::Address(AddressError::Fragment { .. }))
        ));
        assert!(matches!(
            Target::parse("ftp://h/"),
            Err(Error::Address(AddressError::Scheme { ref scheme, .. })) if scheme == "ftp"
        ));
        assert!(matches!(
            Target::parse("localhost:8080"),
            Err(Error::Address(AddressError::Scheme { .. }))
        ));
        let e = Target::parse("ws://h:65536/").unwrap_err();
        assert!(
            e.text(Lang::En).contains("invalid port"),
            "{}",
            e.text(Lang::En)
        );
        assert!(
            e.text(Lang::Ru).contains("недопустимый порт"),
            "{}",
            e.text(Lang::Ru)
        );
    }

    #[test]
    fn a_huge_address_gives_a_short_text() {
        let url = format!("ws://h:99999/{}", "я".repeat(1 << 20));
        let e = Target::parse(&url).unwrap_err();
        for lang in [Lang::Ru, Lang::En] {
            assert!(e.text(lang).chars().count() < 600, "{}", e.text(lang).len());
        }
        let url = format!("http://{}", "x".repeat(50 << 20));
        let e = Target::parse(&url).unwrap_err();
        assert!(e.text(Lang::En).len() < 1200);
    }

    #[test]
    fn texts_have_no_word_of_the_other_language() {
        use crate::error::{Attempt, ProxyError, ProxyFault, SocksReply};
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "[::1]:1".parse().unwrap();
        let tried = vec![
            Attempt {
                addr: a,
                failure: SocketFailure::Refused,
            },
            Attempt {
                addr: b,
                failure: SocketFailure::TimedOut,
            },
        ];
        let errors = vec![
            Error::Address(AddressError::Port {
                url: "ws://h:0".into(),
            }),
            Error::Address(AddressError::Host {
                url: "ws://h".into(),
            }),
            Error::Address(AddressError::Fragment {
                url: "ws://h".into(),
            }),
            Error::Connect(ConnectError::Tcp {
                host: "localhost".into(),
                port: 1,
                tried: tried.clone(),
            }),
            Error::Connect(ConnectError::Resolve { host: "h".into() }),
            Error::Connect(ConnectError::Timeout {
                url: "ws://h".into(),
                ms: 5,
                stage: ConnectStage::Tls,
            }),
            Error::Proxy(ProxyError {
                proxy: "http://p:1".into(),
                fault: ProxyFault::Tcp { tried },
            }),
            Error::Proxy(ProxyError {
                proxy: "socks5://p:1".into(),
                fault: ProxyFault::TargetUnreachable {
                    target: "h:1".into(),
                    why: SocksReply::HostUnreachable,
                },
            }),
            Error::Handshake(HandshakeError::UnofferedExtension {
                extensions: "permessage-deflate".into(),
            }),
            Error::Handshake(HandshakeError::BadResponse {
                fault: ResponseFault::AcceptMismatch,
            }),
            Error::Insecure(Box::new(Error::Handshake(HandshakeError::Lost {
                failure: SocketFailure::Reset,
            }))),
        ];
        for e in errors {
            let en = e.text(Lang::En);
            assert!(
                !en.chars()
                    .any(|c| ('а'..='я').contains(&c.to_lowercase().next().unwrap_or(c))),
                "{en}"
            );
            let ru = e.text(Lang::Ru);
            assert!(ru.chars().any(|c| ('а'..='я').contains(&c)), "{ru}");
            assert!(!ru.contains("refused") && !ru.contains("failed"), "{ru}");
        }
        let e = Error::Connect(ConnectError::Tcp {
            host: "localhost".into(),
            port: 1,
            tried: vec![Attempt {
                addr: a,
                failure: SocketFailure::Refused,
            }],
        });
        assert!(
            e.text(Lang::En).contains("127.0.0.1:1"),
            "{}",
            e.text(Lang::En)
        );
    }

    #[tokio::test]
    async fn connect_any_tries_each_address_and_names_them() {
        // Two ports nobody listens on, then one that accepts.
        let closed = || {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let (c1, c2) = (closed(), closed());
        let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let good = open.local_addr().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let (_, peer) = stream::connect_any(&[c1, c2, good], deadline)
            .await
            .unwrap();
        assert_eq!(peer, good);
        let tried = stream::connect_any(&[c1, c2], deadline).await.unwrap_err();
        let addrs: Vec<SocketAddr> = tried.iter().map(|a| a.addr).collect();
        assert_eq!(addrs, vec![c1, c2]);
        assert!(tried.iter().all(|a| a.failure == SocketFailure::Refused));
        // Across families, as for `localhost` = ::1 + 127.0.0.1 with a server on one only.
        if let Ok(v6) = tokio::net::TcpListener::bind("[::1]:0").await {
            let v6 = v6.local_addr().unwrap();
            let refused_v4: SocketAddr = format!("127.0.0.1:{}", c1.port()).parse().unwrap();
            let (_, peer) = stream::connect_any(&[refused_v4, v6], deadline)
                .await
                .unwrap();
            assert_eq!(peer, v6);
        }
        // Nothing pending at the deadline is forgotten: it is listed as timed out.
        let tried = stream::connect_any(&[c1], Instant::now())
            .await
            .unwrap_err();
        assert_eq!(tried.len(), 1);
    }
}
