//! The client connection: connect (TCP, TLS, handshake) within a bound, then a reader that
//! publishes to the hub and a writer that drains the command channel.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, Ordering};
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
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, Uri};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::{Error, Result};
use crate::event::{Event, EventKind};
use crate::hub::Hub;
use crate::net::Command;
use crate::net::conn::{End, Pump};
use crate::net::options::ClientOptions;
use crate::net::stream::MaybeTls;
use crate::tls;

/// `Статус`: -1 error, 0 not connected, 1 connected.
pub const STATUS_ERROR: i32 = -1;
/// Not connected.
pub const STATUS_IDLE: i32 = 0;
/// Connected.
pub const STATUS_OPEN: i32 = 1;

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

fn tls_error(t: &Target, e: &std::io::Error) -> Error {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    let (ru, en) = match inner {
        Some(rustls::Error::InvalidCertificate(c)) => {
            let why = format!("{c:?}");
            if why.contains("UnknownIssuer")
                || why.contains("untrusted")
                || why.contains("Untrusted")
            {
                (
                    "сертификат сервера не доверен (издатель неизвестен)".to_owned(),
                    "the server certificate is not trusted (unknown issuer)".to_owned(),
                )
            } else if why.contains("NotValidForName") {
                (
                    format!("сертификат сервера выдан не для «{}»", t.host),
                    format!("the server certificate is not valid for \"{}\"", t.host),
                )
            } else if why.contains("Expired") {
                (
                    "срок действия сертификата сервера истёк".to_owned(),
                    "the server certificate has expired".to_owned(),
                )
            } else {
                (
                    format!("сертификат сервера отклонён: {why}"),
                    format!("the server certificate was rejected: {why}"),
                )
            }
        }
        _ => (e.to_string(), e.to_string()),
    };
    Error::net(
        format!("Ошибка TLS при подключении к {}:{}: {ru}", t.host, t.port),
        format!("TLS error connecting to {}:{}: {en}", t.host, t.port),
    )
}

fn handshake_error(e: WsError) -> Error {
    match e {
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
        other => Error::net(
            format!("Ошибка рукопожатия WebSocket: {other}"),
            format!("WebSocket handshake failed: {other}"),
        ),
    }
}

async fn establish(t: &Target, o: &ClientOptions) -> Result<(Ws, SocketAddr, String)> {
    let tcp = TcpStream::connect((t.host.as_str(), t.port))
        .await
        .map_err(|e| connect_error(t, &e))?;
    let _ = tcp.set_nodelay(true);
    let peer = tcp.peer_addr().map_err(|e| connect_error(t, &e))?;
    let stream = if t.tls {
        let config = tls::client_config(o.ca_file.as_deref())?;
        let name = ServerName::try_from(t.host.clone()).map_err(|_| {
            Error::net(
                format!("Неверное имя узла «{}»", t.host),
                format!("Invalid host name \"{}\"", t.host),
            )
        })?;
        let tls = TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| tls_error(t, &e))?;
        MaybeTls::Tls(Box::new(tls))
    } else {
        MaybeTls::Plain(tcp)
    };
    let mut req = t
        .url
        .as_str()
        .into_client_request()
        .map_err(handshake_error)?;
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
    let (ws, resp) =
        tokio_tungstenite::client_async_with_config(req, stream, Some(o.limits.ws_config()))
            .await
            .map_err(handshake_error)?;
    let sub = resp
        .headers()
        .get(tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok((ws, peer, sub))
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

/// The connection task.
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
    let established = tokio::select! {
        _ = token.cancelled() => return shared.finish(),
        r = tokio::time::timeout(options.timeout, establish(&target, &options)) => r,
    };
    let (ws, peer, sub) = match established {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            shared.status.store(STATUS_ERROR, Ordering::SeqCst);
            let _ = ready.send(Err(e));
            return shared.finish();
        }
        Err(_) => {
            shared.status.store(STATUS_ERROR, Ordering::SeqCst);
            let ms = options.timeout.as_millis();
            let _ = ready.send(Err(Error::net(
                format!(
                    "Превышено время ожидания подключения к {} ({ms} мс)",
                    target.url
                ),
                format!("Timed out connecting to {} ({ms} ms)", target.url),
            )));
            return shared.finish();
        }
    };
    *shared.subprotocol.lock().unwrap_or_else(|e| e.into_inner()) = sub.clone();
    shared.status.store(STATUS_OPEN, Ordering::SeqCst);
    hub.connection_started();
    let _ = ready.send(Ok(()));
    let open = EventKind::Open {
        address: peer.to_string(),
        path: target.path.clone(),
        subprotocol: sub,
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

    let pump = Pump {
        conn: None,
        hub: hub.clone(),
        commands,
        token,
        going_away: done.clone(),
        tracker,
        stats: Arc::default(),
        ping_interval: None,
        idle_timeout: None,
        log: Arc::default(),
    };
    let kind = match pump.run(ws).await {
        End::Closed(code, reason) => {
            shared.status.store(STATUS_IDLE, Ordering::SeqCst);
            Some(EventKind::Close { code, reason })
        }
        End::Failed(error) => {
            shared.status.store(STATUS_ERROR, Ordering::SeqCst);
            Some(EventKind::Fail { error })
        }
        End::Cancelled if done.is_cancelled() => None,
        End::Cancelled => {
            shared.status.store(STATUS_IDLE, Ordering::SeqCst);
            Some(EventKind::Close {
                code: 1006,
                reason: "close handshake timed out".into(),
            })
        }
    };
    if let Some(kind) = kind {
        hub.publish(Event { conn: None, kind }, &done).await;
    }
    hub.connection_ended();
    shared.finish();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::Lang;

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
