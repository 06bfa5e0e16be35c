//! JSON options: `Параметры` of `Подключиться` / `Connect` and of the server's `Настроить` /
//! `Configure`. Unknown keys and wrong types are errors, never silently ignored.

use std::time::Duration;

use serde_json::{Map, Value as Json};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::error::{Error, Result};
use crate::log::{Level, Log};

/// Reads values of one options object, naming it in every error.
pub(crate) struct Reader {
    ru: &'static str,
    en: &'static str,
}

impl Reader {
    pub(crate) const CLIENT: Reader = Reader {
        ru: "Параметры подключения",
        en: "Connection options",
    };
    pub(crate) const SERVER: Reader = Reader {
        ru: "Параметры сервера",
        en: "Server options",
    };

    pub(crate) fn bad(&self, ru: String, en: String) -> Error {
        Error::net(format!("{}: {ru}", self.ru), format!("{}: {en}", self.en))
    }

    /// The top-level object of `text` (`None` for an empty string).
    pub(crate) fn parse(&self, text: &str) -> Result<Option<Map<String, Json>>> {
        if text.trim().is_empty() {
            return Ok(None);
        }
        let json: Json = serde_json::from_str(text)
            .map_err(|e| self.bad(format!("это не JSON: {e}"), format!("not valid JSON: {e}")))?;
        self.object("Параметры", &json).map(|m| Some(m.clone()))
    }

    pub(crate) fn number(&self, key: &str, v: &Json, min: u64, max: u64) -> Result<u64> {
        match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(self.bad(
                format!("«{key}» должен быть целым числом от {min} до {max}"),
                format!("\"{key}\" must be a whole number from {min} to {max}"),
            )),
        }
    }

    pub(crate) fn millis(&self, key: &str, v: &Json, max: u64) -> Result<Duration> {
        self.number(key, v, 0, max).map(Duration::from_millis)
    }

    /// A period in ms where 0 means "never" (`None`).
    pub(crate) fn optional_millis(
        &self,
        key: &str,
        v: &Json,
        max: u64,
    ) -> Result<Option<Duration>> {
        Ok(Some(self.millis(key, v, max)?).filter(|d| !d.is_zero()))
    }

    pub(crate) fn boolean(&self, key: &str, v: &Json) -> Result<bool> {
        v.as_bool().ok_or_else(|| {
            self.bad(
                format!("«{key}» должен быть Истина или Ложь (true/false)"),
                format!("\"{key}\" must be true or false"),
            )
        })
    }

    pub(crate) fn string(&self, key: &str, v: &Json) -> Result<String> {
        v.as_str().map(str::to_owned).ok_or_else(|| {
            self.bad(
                format!("«{key}» должен быть строкой"),
                format!("\"{key}\" must be a string"),
            )
        })
    }

    pub(crate) fn strings(&self, key: &str, v: &Json) -> Result<Vec<String>> {
        let list = v.as_array().ok_or_else(|| {
            self.bad(
                format!("«{key}» должен быть массивом строк"),
                format!("\"{key}\" must be an array of strings"),
            )
        })?;
        list.iter().map(|s| self.string(key, s)).collect()
    }

    pub(crate) fn object<'a>(&self, key: &str, v: &'a Json) -> Result<&'a Map<String, Json>> {
        v.as_object().ok_or_else(|| {
            self.bad(
                format!("«{key}» должен быть объектом JSON"),
                format!("\"{key}\" must be a JSON object"),
            )
        })
    }

    pub(crate) fn unknown(&self, key: &str) -> Error {
        self.bad(
            format!("неизвестный параметр «{key}»"),
            format!("unknown option \"{key}\""),
        )
    }
}

/// Limits of one connection, the same keys for the client and the server.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest incoming message (`max_message_size`, default 64 MiB).
    pub max_message_size: usize,
    /// Largest incoming frame (`max_frame_size`, default 16 MiB).
    pub max_frame_size: usize,
    /// Socket read chunk (`read_buffer_size`, default 4 KiB: little memory per connection).
    pub read_buffer_size: usize,
    /// Outgoing bytes buffered before a write (`write_buffer_size`, default 64 KiB).
    pub write_buffer_size: usize,
    /// Messages queued for the writer (`send_queue`, default 1024).
    pub send_queue: usize,
    /// How long `Отправить` waits for room in a full send queue (`send_timeout_ms`, 10 000).
    pub send_timeout: Duration,
    /// How long a close handshake may take (`close_timeout_ms`, 5000).
    pub close_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 64 << 20,
            max_frame_size: 16 << 20,
            read_buffer_size: 4096,
            write_buffer_size: 64 << 10,
            send_queue: 1024,
            send_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
        }
    }
}

impl Limits {
    /// Takes `key` if it is a limit (`Ok(false)` otherwise).
    pub(crate) fn take(&mut self, r: &Reader, key: &str, v: &Json) -> Result<bool> {
        match key {
            "max_message_size" => self.max_message_size = r.number(key, v, 16, 1 << 31)? as usize,
            "max_frame_size" => self.max_frame_size = r.number(key, v, 16, 1 << 31)? as usize,
            "read_buffer_size" => self.read_buffer_size = r.number(key, v, 256, 16 << 20)? as usize,
            "write_buffer_size" => self.write_buffer_size = r.number(key, v, 0, 16 << 20)? as usize,
            "send_queue" => self.send_queue = r.number(key, v, 1, 1_000_000)? as usize,
            "send_timeout_ms" => self.send_timeout = r.millis(key, v, 3_600_000)?,
            "close_timeout_ms" => self.close_timeout = r.millis(key, v, 600_000)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// tungstenite's limits, set explicitly: message and frame size, a small read buffer and
    /// a write buffer bounded to one largest message beyond the usual batch.
    pub fn ws_config(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(self.read_buffer_size)
            .write_buffer_size(self.write_buffer_size)
            .max_write_buffer_size(self.write_buffer_size + self.max_message_size + (1 << 16))
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_frame_size))
    }
}

/// Where the client's trusted roots come from (`tls.roots`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Roots {
    /// The platform verifier and the system store (default).
    System,
    /// The Mozilla roots compiled into the add-in: works offline and the same everywhere.
    Webpki,
    /// Only the CA certificates of this PEM file.
    File(String),
}

/// Client TLS options (`tls`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsOptions {
    /// `roots`.
    pub roots: Roots,
    /// `ca_file`: PEM certificates added to the roots.
    pub ca_file: Option<String>,
    /// `insecure`: no certificate verification at all.
    pub insecure: bool,
    /// `cert_file`: client certificate chain (PEM; may also hold the key).
    pub cert_file: Option<String>,
    /// `key_file`: the client key (PEM: PKCS#8 plain or encrypted, PKCS#1, SEC1).
    pub key_file: Option<String>,
    /// `pfx_file`: client certificate and key as PKCS#12.
    pub pfx_file: Option<String>,
    /// `password` of an encrypted key or of the PFX.
    pub password: String,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            roots: Roots::System,
            ca_file: None,
            insecure: false,
            cert_file: None,
            key_file: None,
            pfx_file: None,
            password: String::new(),
        }
    }
}

/// Proxy protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyKind {
    /// HTTP CONNECT.
    Http,
    /// SOCKS5, the proxy resolves the host name.
    Socks5,
    /// SOCKS4, the host name resolved here (SOCKS4 carries IPv4 addresses only).
    Socks4,
}

/// `proxy`: `http://[user:pass@]host:port`, `socks5://…`, `socks4://host:port`.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    /// Protocol.
    pub kind: ProxyKind,
    /// Proxy host.
    pub host: String,
    /// Proxy port.
    pub port: u16,
    /// User name and password, if any.
    pub auth: Option<(String, String)>,
}

impl std::fmt::Debug for Proxy {
    // Never prints the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.display())
    }
}

impl Proxy {
    /// The proxy as a URL without its password, for logs and errors.
    pub fn display(&self) -> String {
        let scheme = match self.kind {
            ProxyKind::Http => "http",
            ProxyKind::Socks5 => "socks5",
            ProxyKind::Socks4 => "socks4",
        };
        let user = self
            .auth
            .as_ref()
            .map_or(String::new(), |(u, _)| format!("{u}:***@"));
        format!("{scheme}://{user}{}:{}", self.host, self.port)
    }

    fn parse(r: &Reader, text: &str) -> Result<Proxy> {
        let bad = || {
            r.bad(
                format!(
                    "«proxy» должен иметь вид http://[пользователь:пароль@]узел:порт, socks5://… или socks4://узел:порт, получено «{text}»"
                ),
                format!(
                    "\"proxy\" must look like http://[user:password@]host:port, socks5://… or socks4://host:port, got \"{text}\""
                ),
            )
        };
        let (scheme, rest) = text.trim().split_once("://").ok_or_else(bad)?;
        let kind = match scheme.to_ascii_lowercase().as_str() {
            "http" => ProxyKind::Http,
            "socks5" | "socks5h" => ProxyKind::Socks5,
            "socks4" | "socks4a" => ProxyKind::Socks4,
            _ => return Err(bad()),
        };
        let rest = rest.trim_end_matches('/');
        let (auth, hostport) = match rest.rsplit_once('@') {
            Some((a, h)) => {
                let (u, p) = a.split_once(':').unwrap_or((a, ""));
                (Some((percent_decode(u), percent_decode(p))), h)
            }
            None => (None, rest),
        };
        let (host, port) = hostport.rsplit_once(':').ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().map_err(|_| bad())?;
        if host.is_empty() || port == 0 || host.contains('/') {
            return Err(bad());
        }
        if kind == ProxyKind::Socks4 && auth.is_some() {
            return Err(r.bad(
                "SOCKS4 не поддерживает пароль: используйте socks5://".into(),
                "SOCKS4 has no passwords: use socks5://".into(),
            ));
        }
        Ok(Proxy {
            kind,
            host: host.to_owned(),
            port,
            auth,
        })
    }
}

/// `%XX` escapes of a user name or password in a proxy URL.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `reconnect`: automatic reconnection after the connection is lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reconnect {
    /// `enabled` (default false).
    pub enabled: bool,
    /// `min_delay_ms`: the first delay (default 1000).
    pub min_delay: Duration,
    /// `max_delay_ms`: the delay stops doubling here (default 30 000).
    pub max_delay: Duration,
    /// `max_attempts` in a row before giving up; 0 = forever (default).
    pub max_attempts: u32,
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect {
            enabled: false,
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            max_attempts: 0,
        }
    }
}

/// The diagnostic log of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogOptions {
    /// `log_file`.
    pub file: String,
    /// `log_level`.
    pub level: Level,
    /// `log_messages`: message bodies too (debug level).
    pub bodies: bool,
}

impl LogOptions {
    /// Opens the log it names.
    pub fn open(&self) -> Result<Log> {
        Log::open(&self.file, self.level, self.bodies)
    }
}

/// `log_file`, `log_level`, `log_messages`: the same keys for the client and the server.
#[derive(Default)]
pub(crate) struct LogKeys {
    file: Option<String>,
    level: Option<Level>,
    bodies: bool,
}

impl LogKeys {
    /// Takes `key` if it is one of the log keys (`Ok(false)` otherwise).
    pub(crate) fn take(&mut self, r: &Reader, key: &str, v: &Json) -> Result<bool> {
        match key {
            "log_file" => self.file = Some(r.string(key, v)?),
            "log_level" => {
                let s = r.string(key, v)?;
                self.level = Some(Level::parse(&s).ok_or_else(|| {
                    r.bad(
                        format!("«log_level» должен быть error, info или debug, получено «{s}»"),
                        format!("\"log_level\" must be error, info or debug, got \"{s}\""),
                    )
                })?);
            }
            "log_messages" => self.bodies = r.boolean(key, v)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The log asked for: none without a file name.
    pub(crate) fn finish(self) -> Option<LogOptions> {
        let bodies = self.bodies;
        let level = self.level.unwrap_or(Level::Info);
        self.file
            .filter(|f| !f.trim().is_empty())
            .map(|file| LogOptions {
                file,
                level,
                bodies,
            })
    }
}

/// Client connection options with their defaults.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Connect + proxy + TLS + handshake bound (`timeout_ms`, default 10 000).
    pub timeout: Duration,
    /// Extra handshake headers (`headers`).
    pub headers: Vec<(String, String)>,
    /// Offered subprotocols (`subprotocols`), in order of preference.
    pub subprotocols: Vec<String>,
    /// Connection limits.
    pub limits: Limits,
    /// `tls`.
    pub tls: TlsOptions,
    /// `proxy`.
    pub proxy: Option<Proxy>,
    /// `ping_interval_ms` (default: no pings).
    pub ping_interval: Option<Duration>,
    /// `pong_timeout_ms` (default 10 000): with pings, silence for interval + this = failure.
    pub pong_timeout: Duration,
    /// `reconnect`.
    pub reconnect: Reconnect,
    /// `log_file`, `log_level`, `log_messages`.
    pub log: Option<LogOptions>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(10),
            headers: Vec::new(),
            subprotocols: Vec::new(),
            limits: Limits::default(),
            tls: TlsOptions::default(),
            proxy: None,
            ping_interval: None,
            pong_timeout: Duration::from_secs(10),
            reconnect: Reconnect::default(),
            log: None,
        }
    }
}

impl ClientOptions {
    /// Parses `Параметры`; an empty string means all defaults.
    pub fn parse(text: &str) -> Result<ClientOptions> {
        let r = Reader::CLIENT;
        let mut o = ClientOptions::default();
        let mut log = LogKeys::default();
        for (key, v) in r.parse(text)?.unwrap_or_default() {
            let key = key.as_str();
            if o.limits.take(&r, key, &v)? || log.take(&r, key, &v)? {
                continue;
            }
            match key {
                "timeout_ms" => o.timeout = Duration::from_millis(r.number(key, &v, 1, 3_600_000)?),
                "headers" => {
                    for (name, value) in r.object(key, &v)? {
                        o.headers.push((name.clone(), r.string(name, value)?));
                    }
                }
                "subprotocols" => {
                    o.subprotocols = r.strings(key, &v)?;
                    if o.subprotocols.iter().any(|p| !valid_token(p)) {
                        return Err(r.bad(
                            "«subprotocols»: имя подпротокола — непустое слово без пробелов и запятых".into(),
                            "\"subprotocols\": a subprotocol name is a non-empty word without spaces or commas".into(),
                        ));
                    }
                }
                "tls" => o.tls = parse_tls(&r, &v)?,
                "proxy" => {
                    let text = r.string(key, &v)?;
                    o.proxy = if text.trim().is_empty() {
                        None
                    } else {
                        Some(Proxy::parse(&r, &text)?)
                    };
                }
                "ping_interval_ms" => o.ping_interval = r.optional_millis(key, &v, 86_400_000)?,
                "pong_timeout_ms" => {
                    o.pong_timeout = Duration::from_millis(r.number(key, &v, 1, 3_600_000)?)
                }
                "reconnect" => o.reconnect = parse_reconnect(&r, &v)?,
                other => return Err(r.unknown(other)),
            }
        }
        o.log = log.finish();
        Ok(o)
    }
}

/// An HTTP token (RFC 9110): what a subprotocol name may be.
fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn parse_tls(r: &Reader, v: &Json) -> Result<TlsOptions> {
    let mut t = TlsOptions::default();
    for (k, tv) in r.object("tls", v)? {
        let name = format!("tls.{k}");
        let path = |tv: &Json| -> Result<Option<String>> {
            let s = r.string(&name, tv)?;
            Ok((!s.trim().is_empty()).then_some(s))
        };
        match k.as_str() {
            "roots" => {
                let s = r.string(&name, tv)?;
                t.roots = match s.as_str() {
                    "system" | "" => Roots::System,
                    "webpki" => Roots::Webpki,
                    _ => Roots::File(s),
                };
            }
            "ca_file" => t.ca_file = path(tv)?,
            "insecure" => t.insecure = r.boolean(&name, tv)?,
            "cert_file" => t.cert_file = path(tv)?,
            "key_file" => t.key_file = path(tv)?,
            "pfx_file" => t.pfx_file = path(tv)?,
            "password" => t.password = r.string(&name, tv)?,
            _ => return Err(r.unknown(&name)),
        }
    }
    if t.pfx_file.is_some() && (t.cert_file.is_some() || t.key_file.is_some()) {
        return Err(r.bad(
            "укажите клиентский сертификат либо в tls.pfx_file, либо в tls.cert_file (+ tls.key_file), но не оба".into(),
            "give the client certificate either as tls.pfx_file or as tls.cert_file (+ tls.key_file), not both".into(),
        ));
    }
    if t.key_file.is_some() && t.cert_file.is_none() {
        return Err(r.bad(
            "tls.key_file указан без tls.cert_file".into(),
            "tls.key_file is given without tls.cert_file".into(),
        ));
    }
    Ok(t)
}

fn parse_reconnect(r: &Reader, v: &Json) -> Result<Reconnect> {
    let mut c = Reconnect::default();
    if let Some(b) = v.as_bool() {
        c.enabled = b;
        return Ok(c);
    }
    for (k, rv) in r.object("reconnect", v)? {
        let name = format!("reconnect.{k}");
        match k.as_str() {
            "enabled" => c.enabled = r.boolean(&name, rv)?,
            "min_delay_ms" => c.min_delay = r.millis(&name, rv, 3_600_000)?,
            "max_delay_ms" => c.max_delay = r.millis(&name, rv, 86_400_000)?,
            "max_attempts" => c.max_attempts = r.number(&name, rv, 0, u64::from(u32::MAX))? as u32,
            _ => return Err(r.unknown(&name)),
        }
    }
    if c.max_delay < c.min_delay {
        return Err(r.bad(
            "reconnect.max_delay_ms меньше reconnect.min_delay_ms".into(),
            "reconnect.max_delay_ms is less than reconnect.min_delay_ms".into(),
        ));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::Lang;

    #[test]
    fn defaults_and_values() {
        let o = ClientOptions::parse("").unwrap();
        assert_eq!(o.timeout, Duration::from_secs(10));
        let o = ClientOptions::parse(
            r#"{"timeout_ms": 500, "headers": {"Authorization": "Bearer x"}, "tls": {"ca_file": "/ca.pem"}, "send_queue": 3}"#,
        )
        .unwrap();
        assert_eq!(o.timeout, Duration::from_millis(500));
        assert_eq!(
            o.headers,
            vec![("Authorization".to_owned(), "Bearer x".to_owned())]
        );
        assert_eq!(o.tls.ca_file.as_deref(), Some("/ca.pem"));
        assert_eq!(o.limits.send_queue, 3);
    }

    #[test]
    fn mistakes_are_errors() {
        let e = ClientOptions::parse(r#"{"timeout": 5}"#).unwrap_err();
        assert_eq!(
            e.text(Lang::Ru),
            "Параметры подключения: неизвестный параметр «timeout»"
        );
        let e = ClientOptions::parse(r#"{"timeout_ms": "5"}"#).unwrap_err();
        assert!(
            e.text(Lang::En)
                .contains("\"timeout_ms\" must be a whole number")
        );
        assert!(ClientOptions::parse("{").is_err());
        assert!(ClientOptions::parse("[]").is_err());
        assert!(ClientOptions::parse(r#"{"headers": {"X": 1}}"#).is_err());
        assert!(ClientOptions::parse(r#"{"tls": {"insecure_mode": true}}"#).is_err());
        assert!(ClientOptions::parse(r#"{"tls": {"insecure": "yes"}}"#).is_err());
        assert!(ClientOptions::parse(r#"{"subprotocols": ["a b"]}"#).is_err());
        assert!(ClientOptions::parse(r#"{"subprotocols": "chat"}"#).is_err());
        assert!(
            ClientOptions::parse(r#"{"reconnect": {"min_delay_ms": 5000, "max_delay_ms": 10}}"#)
                .is_err()
        );
        assert!(ClientOptions::parse(r#"{"reconnect": {"enable": true}}"#).is_err());
        assert!(ClientOptions::parse(r#"{"log_level": "loud"}"#).is_err());
        assert!(ClientOptions::parse(r#"{"tls": {"key_file": "k.pem"}}"#).is_err());
        assert!(
            ClientOptions::parse(r#"{"tls": {"pfx_file": "a.pfx", "cert_file": "c.pem"}}"#)
                .is_err()
        );
        for bad in [
            "127.0.0.1:8080",
            "ftp://h:1",
            "http://h",
            "http://h:0",
            "socks4://u:p@h:1",
        ] {
            let text = format!(r#"{{"proxy": "{bad}"}}"#);
            let e = ClientOptions::parse(&text).unwrap_err();
            assert!(
                e.text(Lang::Ru).contains("«proxy»") || e.text(Lang::Ru).contains("SOCKS4"),
                "{bad}"
            );
        }
    }

    #[test]
    fn client_options_issue_5() {
        let o = ClientOptions::parse(
            r#"{"subprotocols": ["v2.chat", "chat"],
                "tls": {"roots": "webpki", "insecure": false, "cert_file": "c.pem", "key_file": "k.pem", "password": "p"},
                "proxy": "socks5://us%40er:p%3Ass@proxy.local:1080",
                "ping_interval_ms": 1000, "pong_timeout_ms": 500,
                "reconnect": {"enabled": true, "min_delay_ms": 100, "max_delay_ms": 800, "max_attempts": 3},
                "log_file": "/tmp/x.log", "log_level": "debug", "log_messages": true}"#,
        )
        .unwrap();
        assert_eq!(o.subprotocols, ["v2.chat", "chat"]);
        assert_eq!(o.tls.roots, Roots::Webpki);
        assert_eq!(o.tls.key_file.as_deref(), Some("k.pem"));
        let p = o.proxy.clone().unwrap();
        assert_eq!(p.kind, ProxyKind::Socks5);
        assert_eq!((p.host.as_str(), p.port), ("proxy.local", 1080));
        assert_eq!(p.auth, Some(("us@er".to_owned(), "p:ss".to_owned())));
        assert_eq!(p.display(), "socks5://us@er:***@proxy.local:1080");
        assert!(!format!("{o:?}").contains("p:ss"));
        assert_eq!(o.ping_interval, Some(Duration::from_millis(1000)));
        assert_eq!(o.pong_timeout, Duration::from_millis(500));
        assert_eq!(
            o.reconnect,
            Reconnect {
                enabled: true,
                min_delay: Duration::from_millis(100),
                max_delay: Duration::from_millis(800),
                max_attempts: 3
            }
        );
        let log = o.log.unwrap();
        assert_eq!((log.level, log.bodies), (Level::Debug, true));
        let o = ClientOptions::parse(
            r#"{"tls": {"roots": "/etc/ca.pem"}, "proxy": "http://[::1]:3128", "reconnect": true}"#,
        )
        .unwrap();
        assert_eq!(o.tls.roots, Roots::File("/etc/ca.pem".into()));
        assert_eq!(o.proxy.unwrap().host, "::1");
        assert!(o.reconnect.enabled);
        assert!(o.log.is_none());
    }
}
