//! The client connection: connect (TCP, TLS, handshake) within a bound, then a reader that
//! publishes to the hub and a writer that drains the command channel.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{ProtocolError, SubProtocolError};
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, Uri};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::{Error, Result};
use crate::event::{Event, EventKind};
use crate::hub::Hub;
use crate::lang::Lang;
use crate::log::{Level, Log};
use crate::net::Command;
use crate::net::conn::{End, Pump};
use crate::net::options::{ClientOptions, Reconnect};
use crate::net::proxy;
use crate::net::stream::MaybeTls;
use crate::tls;

/// `Статус`: -1 error, 0 not connected, 1 connected.
pub const STATUS_ERROR: i32 = -1;
/// Not connected.
pub const STATUS_IDLE: i32 = 0;
/// Connected.
pub const STATUS_OPEN: i32 = 1;
/// Connection lost, reconnecting (`reconnect.enabled`).
pub const STATUS_RECONNECTING: i32 = 2;

/// A parsed `ws://` / `wss://` address.
#[derive(Clone, Debug)]
pub struct Target {
    /// The address as given.
    pub url: String,
    /// `wss://`.
    pub tls: bool,
    /// Host name or IP (IPv6 without brackets).
    pub host: String,
    /// Port (80 / 443 by default).
    pub port: u16,
    /// Path and query.
    pub path: String,
}

impl Target {
    /// Parses and checks an address.
    pub fn parse(url: &str) -> Result<Target> {
        let bad = |why_ru: &str, why_en: &str| {
            Error::net(
                format!("Неверный адрес сервера «{url}»: {why_ru}"),
                format!("Invalid server address \"{url}\": {why_en}"),
            )
        };
        if !url.is_ascii() {
            return Err(bad(
                "адрес содержит символы не ASCII (домен в кириллице укажите в punycode: xn--…)",
                "the address has non-ASCII characters (give an internationalised domain in punycode: xn--…)",
            ));
        }
        let uri: Uri = url
            .trim()
            .parse()
            .map_err(|_| bad("это не URL", "not a URL"))?;
        let tls = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("ws") => false,
            Some("wss") => true,
            _ => {
                return Err(bad(
                    "ожидается схема ws:// или wss://",
                    "expected a ws:// or wss:// scheme",
                ));
            }
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("нет имени хоста", "no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let path = uri
            .path_and_query()
            .map_or("/".to_owned(), |p| p.as_str().to_owned());
        Ok(Target {
            url: url.trim().to_owned(),
            tls,
            host,
            port,
            path,
        })
    }
}

/// State the connection tasks share with the client object.
pub struct Shared {
    /// `Статус`.
    pub status: AtomicI32,
    /// Negotiated subprotocol.
    pub subprotocol: Mutex<String>,
    /// 1C asked to disconnect: no reconnect after this close.
    pub stopping: AtomicBool,
    /// Both tasks have ended.
    finished: Mutex<bool>,
    finished_cv: Condvar,
}

impl Shared {
    /// A connection not yet open.
    pub fn new() -> Arc<Shared> {
        Arc::new(Shared {
            status: AtomicI32::new(STATUS_IDLE),
            subprotocol: Mutex::new(String::new()),
            stopping: AtomicBool::new(false),
            finished: Mutex::new(false),
            finished_cv: Condvar::new(),
        })
    }

    fn finish(&self) {
        *self.finished.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.finished_cv.notify_all();
    }

    /// Whether the connection has ended.
    pub fn is_finished(&self) -> bool {
        *self.finished.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits (on the 1C thread) until the connection has ended; false on timeout.
    pub fn wait_finished(&self, timeout: Duration) -> bool {
        let g = self.finished.lock().unwrap_or_else(|e| e.into_inner());
        let (g, _) = self
            .finished_cv
            .wait_timeout_while(g, timeout, |f| !*f)
            .unwrap_or_else(|e| e.into_inner());
        *g
    }
}

type Ws = WebSocketStream<MaybeTls>;

fn connect_error(t: &Target, e: &std::io::Error) -> Error {
    let text = e.to_string();
    if e.kind() == std::io::ErrorKind::ConnectionRefused {
        Error::net(
            format!(
                "Сервер {}:{} отклонил подключение (порт закрыт): {text}",
                t.host, t.port
            ),
            format!(
                "{}:{} refused the connection (nothing listens there): {text}",
                t.host, t.port
            ),
        )
    } else if text.contains("lookup")
        || text.contains("resolve")
        || text.contains("Name or service")
    {
        Error::net(
            format!("Не удалось найти адрес узла «{}» (DNS): {text}", t.host),
            format!("Cannot resolve host \"{}\" (DNS): {text}", t.host),
        )
    } else {
        Error::net(
            format!("Не удалось подключиться к {}:{}: {text}", t.host, t.port),
            format!("Cannot connect to {}:{}: {text}", t.host, t.port),
        )
    }
}

/// Whether `e` means the server wants (another) client certificate (see
/// [`tls::client_cert_refused`]).
fn client_cert_refused(e: &std::io::Error, auth: Option<&tls::ClientAuth>) -> bool {
    tls::client_cert_refused(e, auth)
}

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

fn handshake_error(t: &Target, e: WsError, auth: Option<&tls::ClientAuth>) -> Error {
    match e {
        // TLS 1.3: the server checks the client certificate after the handshake, so its
        // refusal arrives while we read the HTTP answer.
        WsError::Io(io) if client_cert_refused(&io, auth) => client_cert_error(t, &io),
        WsError::Http(resp) => {
            let s = resp.status();
            let reason = s.canonical_reason().unwrap_or("");
            Error::net(
                format!(
                    "Сервер отклонил рукопожатие WebSocket: HTTP {} {reason}",
                    s.as_u16()
                ),
                format!(
                    "The server refused the WebSocket handshake: HTTP {} {reason}",
                    s.as_u16()
                ),
            )
        }
        WsError::Protocol(ProtocolError::SecWebSocketSubProtocolError(sub)) => {
            let (ru, en) = match sub {
                SubProtocolError::NoSubProtocol => (
                    "сервер не выбрал ни один из предложенных подпротоколов (subprotocols)",
                    "the server accepted none of the offered subprotocols (subprotocols)",
                ),
                _ => (
                    "сервер выбрал подпротокол, который не предлагался",
                    "the server chose a subprotocol that was not offered",
                ),
            };
            Error::net(
                format!("Ошибка рукопожатия WebSocket: {ru}"),
                format!("WebSocket handshake failed: {en}"),
            )
        }
        other => Error::net(
            format!("Ошибка рукопожатия WebSocket: {other}"),
            format!("WebSocket handshake failed: {other}"),
        ),
    }
}

/// What one successful connect gives.
struct Established {
    ws: Ws,
    peer: SocketAddr,
    subprotocol: String,
}

/// TCP to the target (directly, trying each resolved address, or through the proxy).
async fn open_tcp(t: &Target, o: &ClientOptions, log: &Log) -> Result<(TcpStream, SocketAddr)> {
    let tcp = match &o.proxy {
        Some(p) => {
            log.write(Level::Info, || {
                format!("proxy {}: tunnel to {}:{}", p.display(), t.host, t.port)
            });
            let tcp = proxy::connect(p, &t.host, t.port).await?;
            log.write(Level::Info, || {
                format!("proxy {}: tunnel open", p.display())
            });
            tcp
        }
        None => {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((t.host.as_str(), t.port))
                .await
                .map_err(|e| connect_error(t, &e))?
                .collect();
            log.write(Level::Info, || {
                let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                format!("resolved {} to {}", t.host, list.join(", "))
            });
            let mut last = None;
            let mut found = None;
            for a in &addrs {
                match TcpStream::connect(a).await {
                    Ok(s) => {
                        found = Some(s);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            match (found, last) {
                (Some(s), _) => s,
                (None, Some(e)) => return Err(connect_error(t, &e)),
                (None, None) => {
                    let e = std::io::Error::new(std::io::ErrorKind::NotFound, "no addresses");
                    return Err(connect_error(t, &e));
                }
            }
        }
    };
    let _ = tcp.set_nodelay(true);
    let peer = tcp.peer_addr().map_err(|e| connect_error(t, &e))?;
    log.write(Level::Info, || format!("tcp connected to {peer}"));
    Ok((tcp, peer))
}

async fn establish(t: &Target, o: &ClientOptions, log: &Log) -> Result<Established> {
    let (tcp, peer) = open_tcp(t, o, log).await?;
    let mut auth = None;
    let stream = if t.tls {
        let (config, a) = tls::client_config(&o.tls).await?;
        auth = Some(a.clone());
        let name =
            ServerName::try_from(t.host.clone()).map_err(|_| tls::bad_server_name(&t.host))?;
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
    let mut req = t
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| handshake_error(t, e, None))?;
    for (k, v) in &o.headers {
        let name = HeaderName::from_bytes(k.as_bytes());
        let value = HeaderValue::from_str(v);
        let (Ok(name), Ok(value)) = (name, value) else {
            return Err(Error::net(
                format!("Недопустимый заголовок «{k}»"),
                format!("Invalid header \"{k}\""),
            ));
        };
        req.headers_mut().append(name, value);
    }
    if !o.subprotocols.is_empty() {
        let list = o.subprotocols.join(", ");
        let value = HeaderValue::from_str(&list).map_err(|_| {
            Error::net(
                format!("Недопустимый список подпротоколов «{list}»"),
                format!("Invalid subprotocol list \"{list}\""),
            )
        })?;
        req.headers_mut().insert(SEC_WEBSOCKET_PROTOCOL, value);
    }
    let (ws, resp) =
        tokio_tungstenite::client_async_with_config(req, stream, Some(o.limits.ws_config()))
            .await
            .map_err(|e| {
                log.write(Level::Error, || format!("handshake failed: {e}"));
                handshake_error(t, e, auth.as_deref())
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
    })
}

/// One connect within `timeout_ms`; the error says it was insecure when it was.
async fn establish_bounded(t: &Target, o: &ClientOptions, log: &Log) -> Result<Established> {
    let r = match tokio::time::timeout(o.timeout, establish(t, o, log)).await {
        Ok(r) => r,
        Err(_) => {
            let ms = o.timeout.as_millis();
            Err(Error::net(
                format!("Превышено время ожидания подключения к {} ({ms} мс)", t.url),
                format!("Timed out connecting to {} ({ms} ms)", t.url),
            ))
        }
    };
    r.map_err(|e| insecure_note(e, o))
}

/// `tls.insecure` is loud: every failure of such a connection, an exception or a Fail
/// event, ends with this.
const INSECURE_RU: &str = " (внимание: проверка сертификата сервера отключена, tls.insecure)";
const INSECURE_EN: &str = " (warning: server certificate verification is off, tls.insecure)";

fn insecure_note(e: Error, o: &ClientOptions) -> Error {
    match e {
        Error::Net { ru, en } if o.tls.insecure => Error::Net {
            ru: ru + INSECURE_RU,
            en: en + INSECURE_EN,
        },
        other => other,
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
    pub shared: Arc<Shared>,
    /// Commands from the object, in order.
    pub commands: mpsc::Receiver<Command>,
    /// The connect result for the waiting `Подключиться`.
    pub ready: SyncSender<Result<()>>,
    /// This connection (a child of the object's token).
    pub token: CancellationToken,
    /// The object's token: cancelled only by `Done()`.
    pub done: CancellationToken,
    /// The object's tracker, for the writer.
    pub tracker: TaskTracker,
}

/// The connection task: the first connect (its result goes to `Подключиться`), then the
/// connection, then, with `reconnect`, new connections until Disconnect, Done or the last
/// allowed attempt.
///
/// Why one task for all of it: the command queue (and what 1C put in it) survives a
/// reconnect, the events of one client stay in one order (Close/Fail, Reconnecting…, Open),
/// and Disconnect or Done stop everything by one token, even in the middle of a back-off.
pub async fn run(task: Task) {
    let Task {
        target,
        options,
        hub,
        shared,
        commands,
        ready,
        token,
        done,
        tracker,
    } = task;
    let log = Arc::new(match &options.log {
        // A log that cannot be opened is no log: it never breaks the connection.
        Some(l) => l.open().unwrap_or_default(),
        None => Log::default(),
    });
    log.write(Level::Info, || format!("connect {}", target.url));
    let first = tokio::select! {
        _ = token.cancelled() => return shared.finish(),
        r = establish_bounded(&target, &options, &log) => r,
    };
    let mut est = match first {
        Ok(e) => e,
        Err(e) => {
            log.write(Level::Error, || {
                format!("connect failed: {}", e.text(Lang::En))
            });
            shared.status.store(STATUS_ERROR, Ordering::SeqCst);
            let _ = ready.send(Err(e));
            return shared.finish();
        }
    };
    hub.connection_started();
    let mut ready = Some(ready);
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
            path: target.path.clone(),
            subprotocol: est.subprotocol.clone(),
            headers: Vec::new(),
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
        let pump = Pump {
            conn: None,
            hub: hub.clone(),
            commands: rx,
            token: token.child_token(),
            going_away: done.clone(),
            tracker: tracker.clone(),
            stats: Arc::default(),
            ping_interval: options.ping_interval,
            idle_timeout: None,
            pong_timeout: options.ping_interval.map(|_| options.pong_timeout),
            log: log.clone(),
        };
        let (end, rx) = pump.run(est.ws).await;
        commands = rx;
        let stopped = token.is_cancelled() || shared.stopping.load(Ordering::SeqCst);
        let again = options.reconnect.enabled && !stopped && commands.is_some();
        let kind = match end {
            End::Closed(code, reason) => {
                log.write(Level::Info, || format!("closed: {code} {reason}"));
                shared.status.store(STATUS_IDLE, Ordering::SeqCst);
                Some(EventKind::Close { code, reason })
            }
            End::Failed(error) => {
                log.write(Level::Error, || format!("failed: {error}"));
                shared.status.store(STATUS_ERROR, Ordering::SeqCst);
                let error = if options.tls.insecure {
                    error + INSECURE_EN
                } else {
                    error
                };
                Some(EventKind::Fail { error })
            }
            End::Cancelled if done.is_cancelled() => None,
            End::Cancelled => {
                log.write(Level::Info, || "closed by this side".to_owned());
                shared.status.store(STATUS_IDLE, Ordering::SeqCst);
                Some(EventKind::Close {
                    code: 1006,
                    reason: "close handshake timed out".into(),
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
        match reconnect(&target, &options, &hub, &shared, &token, &log).await {
            Some(e) => est = e,
            None => break,
        }
    }
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

/// Attempts until one succeeds (`Some`), the token is cancelled or the attempts run out
/// (`None`; a Fail event then says why).
async fn reconnect(
    target: &Target,
    o: &ClientOptions,
    hub: &Hub,
    shared: &Shared,
    token: &CancellationToken,
    log: &Log,
) -> Option<Established> {
    let mut last_error = String::new();
    for attempt in 1u32.. {
        if o.reconnect.max_attempts > 0 && attempt > o.reconnect.max_attempts {
            let n = o.reconnect.max_attempts;
            log.write(Level::Error, || {
                format!("reconnect: gave up after {n} attempts")
            });
            shared.status.store(STATUS_ERROR, Ordering::SeqCst);
            let error = format!("reconnect failed after {n} attempts: {last_error}");
            hub.publish(
                Event {
                    conn: None,
                    kind: EventKind::Fail { error },
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
            _ = tokio::time::sleep(delay) => {}
        }
        let r = tokio::select! {
            _ = token.cancelled() => return None,
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
        let e = Target::parse("http://x").unwrap_err();
        assert!(
            e.text(Lang::Ru)
                .contains("ожидается схема ws:// или wss://")
        );
        assert!(Target::parse("не адрес").is_err());
        assert!(Target::parse("ws://").is_err());
    }
}
