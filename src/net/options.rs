//! JSON options: `Параметры` of `Подключиться` / `Connect` and of the server's `Настроить` /
//! `Configure`. Unknown keys and wrong types are errors, never silently ignored.
//!
//! The keys of each object are a serde-derived struct (`deny_unknown_fields`, absent keys
//! `None` or empty); [`parse_options`] reads them and hands them to the object's `check`,
//! the one place that validates ranges and combinations and fills in the defaults of the
//! public options structs. A mistake becomes an [`OptionsError`]: the key path, what the key
//! expects and what arrived, rendered in Russian and English by `crate::texts`.
//!
//! Why a deserializer of our own ([`Node`], over `serde_json::Value`) instead of serde_json's:
//! serde_json reports a mistake as an English sentence only ("invalid type: string \"5\",
//! expected u64 at line 1 column 17"). `Node` knows the key path of every value and checks
//! its JSON type before serde's visitor sees it, so the error carries data, not English.
//! serde's `flatten` is not used for the keys both objects share ([`SharedKeys`]): it cannot
//! be combined with `deny_unknown_fields` and loses the key path; the shared keys are split
//! off by name instead ([`SHARED`]).

use std::fmt;
use std::time::Duration;

use indexmap::IndexMap;
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, Deserializer, IntoDeserializer, Visitor};
use serde_json::{Map, Value as Json};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use url::{Host, ParseError, Url};

use crate::error::{
    Error, Expected, OptionsError, OptionsObject, OptionsProblem, ProxyUrlFault, Result,
};
use crate::log::{Level, Log};
use crate::texts::quote;

// ---- Reading keys ---------------------------------------------------------------------------

/// A mistake found while reading keys, before it is known whose options they are.
#[derive(Debug)]
pub(crate) struct Fault {
    /// The key path of the value that holds the mistake (`None` until a [`Node`] says).
    path: Option<String>,
    /// An unknown or missing key inside `path`.
    field: Option<String>,
    problem: OptionsProblem,
}

impl Fault {
    /// `problem` at the key path `path`.
    pub(crate) fn at(path: &str, problem: OptionsProblem) -> Fault {
        Fault {
            path: Some(path.to_owned()),
            field: None,
            problem,
        }
    }

    /// `path` holds `got` (see [`shown`]) where `expected` was expected.
    pub(crate) fn wrong(path: &str, expected: Expected, got: String) -> Fault {
        Fault::at(path, OptionsProblem::Wrong { expected, got })
    }

    /// The error of `object`'s options.
    pub(crate) fn of(self, object: OptionsObject) -> Error {
        let path = self.path.unwrap_or_default();
        let key = match self.field {
            Some(field) => join(&path, &field),
            None => path,
        };
        Error::Options(OptionsError {
            object,
            key,
            problem: self.problem,
        })
    }

    /// Names the value a fault raised by serde (without a path) arose in.
    fn within(mut self, path: &str, v: &Json) -> Fault {
        if self.path.is_none() {
            self.path = Some(path.to_owned());
            if let OptionsProblem::Wrong { got, .. } = &mut self.problem
                && got.is_empty()
            {
                *got = shown(v);
            }
        }
        self
    }
}

// Never shown to 1C code: texts come from `crate::texts`.
impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} at {:?}", self.problem, self.path)
    }
}

impl std::error::Error for Fault {}

impl de::Error for Fault {
    /// serde's own checks with no kind here (a duplicate key, a wrong length): the node it
    /// arose in adds where and what arrived.
    fn custom<T: fmt::Display>(_: T) -> Fault {
        Fault {
            path: None,
            field: None,
            problem: OptionsProblem::Wrong {
                expected: Expected::Valid,
                got: String::new(),
            },
        }
    }

    fn unknown_field(field: &str, accepted: &'static [&'static str]) -> Fault {
        Fault {
            path: None,
            field: Some(field.to_owned()),
            problem: OptionsProblem::Unknown {
                accepted: accepted.to_vec(),
            },
        }
    }

    fn missing_field(field: &'static str) -> Fault {
        Fault {
            path: None,
            field: Some(field.to_owned()),
            problem: OptionsProblem::Missing,
        }
    }
}

/// `key` inside `path`.
fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// What arrived, for an error: the JSON text of a scalar (a long string cut first), `[…]`
/// for an array, `{…}` for an object.
pub(crate) fn shown(v: &Json) -> String {
    match v {
        Json::Array(_) => "[…]".to_owned(),
        Json::Object(_) => "{…}".to_owned(),
        Json::String(s) => shown_text(s),
        other => other.to_string(),
    }
}

/// A string that arrived, as JSON text, cut to the quote bound.
pub(crate) fn shown_text(s: &str) -> String {
    Json::String(quote(s)).to_string()
}

/// A JSON value being deserialized, with its key path (`tls.roots`, `subprotocols[1]`).
/// Each typed request checks the JSON type first and names what was expected, so a
/// mistake never reaches serde's English-only visitor errors.
struct Node<'a> {
    v: &'a Json,
    path: String,
}

impl<'a> Node<'a> {
    fn root(v: &'a Json) -> Node<'a> {
        Node {
            v,
            path: String::new(),
        }
    }

    fn wrong(&self, expected: Expected) -> Fault {
        Fault::wrong(&self.path, expected, shown(self.v))
    }

    fn object<V: Visitor<'a>>(
        &self,
        m: &'a Map<String, Json>,
        visitor: V,
    ) -> Result<V::Value, Fault> {
        let entries = m.iter().map(|(k, v)| {
            let path = join(&self.path, k);
            (k.as_str(), Node { v, path })
        });
        let mut map = MapDeserializer::new(entries);
        let value = visitor.visit_map(&mut map)?;
        map.end()?;
        Ok(value)
    }

    fn array<V: Visitor<'a>>(&self, a: &'a [Json], visitor: V) -> Result<V::Value, Fault> {
        let items = a.iter().enumerate().map(|(i, v)| {
            let path = format!("{}[{i}]", self.path);
            Node { v, path }
        });
        let mut seq = SeqDeserializer::new(items);
        let value = visitor.visit_seq(&mut seq)?;
        seq.end()?;
        Ok(value)
    }
}

impl<'de> IntoDeserializer<'de, Fault> for Node<'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> Deserializer<'de> for Node<'de> {
    type Error = Fault;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fault> {
        let r = match self.v {
            Json::Null => visitor.visit_unit(),
            Json::Bool(b) => visitor.visit_bool(*b),
            Json::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => visitor.visit_u64(u),
                (None, Some(i), _) => visitor.visit_i64(i),
                (None, None, f) => visitor.visit_f64(f.unwrap_or(f64::NAN)),
            },
            Json::String(s) => visitor.visit_borrowed_str(s),
            Json::Array(a) => self.array(a, visitor),
            Json::Object(m) => self.object(m, visitor),
        };
        r.map_err(|e| e.within(&self.path, self.v))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fault> {
        match self.v {
            Json::Bool(b) => visitor.visit_bool(*b),
            _ => Err(self.wrong(Expected::Bool)),
        }
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fault> {
        match self.v.as_u64() {
            Some(n) => visitor.visit_u64(n),
            None => Err(self.wrong(Expected::Whole)),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fault> {
        match self.v {
            Json::String(s) => visitor.visit_borrowed_str(s),
            _ => Err(self.wrong(Expected::String)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fault> {
        self.deserialize_str(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fault> {
        match self.v {
            Json::Array(a) => self.array(a, visitor),
            _ => Err(self.wrong(Expected::Array)),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fault> {
        match self.v {
            Json::Object(m) => self
                .object(m, visitor)
                .map_err(|e| e.within(&self.path, self.v)),
            _ => Err(self.wrong(Expected::Object)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Fault> {
        self.deserialize_map(visitor)
    }

    /// `Option` means "may be absent" (serde gives `None` then); a `null` is no value.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Fault> {
        visitor.visit_some(self)
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u128 f32 f64 char bytes byte_buf unit unit_struct
        newtype_struct tuple tuple_struct enum identifier ignored_any
    }
}

/// The keys both objects accept: what [`SharedKeys`] reads.
pub(crate) const SHARED: &[&str] = &[
    "max_message_size",
    "max_frame_size",
    "read_buffer_size",
    "write_buffer_size",
    "send_queue",
    "send_queue_bytes",
    "send_timeout_ms",
    "close_timeout_ms",
    "log_file",
    "log_level",
    "log_messages",
];

/// Parses `text`, the options of `object`: an empty text means all defaults. The object's
/// own keys go into `K`, the [`SHARED`] ones into [`SharedKeys`]; `check` validates both and
/// builds the options.
pub(crate) fn parse_options<K, T>(
    object: OptionsObject,
    text: &str,
    check: impl FnOnce(K, SharedKeys) -> Result<T, Fault>,
) -> Result<T>
where
    K: for<'de> Deserialize<'de> + Default,
{
    read_keys(text)
        .and_then(|(own, shared)| check(own, shared))
        .map_err(|f| f.of(object))
}

fn read_keys<K>(text: &str) -> Result<(K, SharedKeys), Fault>
where
    K: for<'de> Deserialize<'de> + Default,
{
    if text.trim().is_empty() {
        return Ok((K::default(), SharedKeys::default()));
    }
    let json: Json = serde_json::from_str(text).map_err(|e| {
        let (line, column) = (e.line(), e.column());
        Fault::at("", OptionsProblem::NotJson { line, column })
    })?;
    let Json::Object(map) = json else {
        return Err(Fault::wrong("", Expected::Object, shown(&json)));
    };
    let (shared, own): (Map<String, Json>, Map<String, Json>) = map
        .into_iter()
        .partition(|(k, _)| SHARED.contains(&k.as_str()));
    let own = K::deserialize(Node::root(&Json::Object(own))).map_err(|mut f| {
        // The top level also accepts the shared keys.
        if let (Some(""), OptionsProblem::Unknown { accepted }) =
            (f.path.as_deref(), &mut f.problem)
        {
            accepted.extend_from_slice(SHARED);
        }
        f
    })?;
    let shared = SharedKeys::deserialize(Node::root(&Json::Object(shared)))?;
    Ok((own, shared))
}

// ---- Checks (one place per object: ranges, combinations, defaults) --------------------------

/// `n` of `key` if within `min..=max`.
fn in_range(key: &str, n: u64, min: u64, max: u64) -> Result<u64, Fault> {
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(Fault::wrong(
            key,
            Expected::Range { min, max },
            n.to_string(),
        ))
    }
}

/// A count or size: `default` when absent.
pub(crate) fn size(
    key: &str,
    v: Option<u64>,
    min: u64,
    max: u64,
    default: usize,
) -> Result<usize, Fault> {
    match v {
        None => Ok(default),
        Some(n) => Ok(usize::try_from(in_range(key, n, min, max)?).unwrap_or(usize::MAX)),
    }
}

/// A duration in ms: `default` when absent.
pub(crate) fn millis(
    key: &str,
    v: Option<u64>,
    min: u64,
    max: u64,
    default: Duration,
) -> Result<Duration, Fault> {
    match v {
        None => Ok(default),
        Some(n) => in_range(key, n, min, max).map(Duration::from_millis),
    }
}

/// A period in ms where 0 means "never" (`None`): `default` when absent.
pub(crate) fn period(
    key: &str,
    v: Option<u64>,
    max: u64,
    default: Option<Duration>,
) -> Result<Option<Duration>, Fault> {
    match v {
        None => Ok(default),
        Some(n) => Ok(Some(in_range(key, n, 0, max)?)
            .filter(|&n| n > 0)
            .map(Duration::from_millis)),
    }
}

/// Subprotocol names: HTTP tokens (RFC 7230 `tchar`s), each checked.
pub(crate) fn tokens(key: &str, names: Vec<String>) -> Result<Vec<String>, Fault> {
    match names.iter().position(|p| !valid_token(p)) {
        Some(i) => Err(Fault::wrong(
            &format!("{key}[{i}]"),
            Expected::Token,
            shown_text(&names[i]),
        )),
        None => Ok(names),
    }
}

/// An HTTP token (RFC 7230 §3.2.6 `tchar`): what a subprotocol name may be.
fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The [`SHARED`] keys: the limits of each connection and the diagnostic log.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SharedKeys {
    max_message_size: Option<u64>,
    max_frame_size: Option<u64>,
    read_buffer_size: Option<u64>,
    write_buffer_size: Option<u64>,
    send_queue: Option<u64>,
    send_queue_bytes: Option<u64>,
    send_timeout_ms: Option<u64>,
    close_timeout_ms: Option<u64>,
    log_file: String,
    log_level: Option<String>,
    log_messages: bool,
}

impl SharedKeys {
    /// The limits, `d`'s where a key is absent.
    // One key per line, as in the documentation's table.
    #[rustfmt::skip]
    pub(crate) fn limits(&self, d: Limits) -> Result<Limits, Fault> {
        Ok(Limits {
            max_message_size: size("max_message_size", self.max_message_size, 16, 1 << 31, d.max_message_size)?,
            max_frame_size: size("max_frame_size", self.max_frame_size, 16, 1 << 31, d.max_frame_size)?,
            read_buffer_size: size("read_buffer_size", self.read_buffer_size, 256, 16 << 20, d.read_buffer_size)?,
            write_buffer_size: size("write_buffer_size", self.write_buffer_size, 0, 16 << 20, d.write_buffer_size)?,
            send_queue: size("send_queue", self.send_queue, 1, 1_000_000, d.send_queue)?,
            send_queue_bytes: size("send_queue_bytes", self.send_queue_bytes, 1024, 1 << 30, d.send_queue_bytes)?,
            send_timeout: millis("send_timeout_ms", self.send_timeout_ms, 0, 3_600_000, d.send_timeout)?,
            close_timeout: millis("close_timeout_ms", self.close_timeout_ms, 0, 600_000, d.close_timeout)?,
        })
    }

    /// The log asked for: none without a file name.
    pub(crate) fn log(&self) -> Result<Option<LogOptions>, Fault> {
        const LEVELS: &[&str] = &["error", "info", "debug"];
        let level = match &self.log_level {
            None => Level::Info,
            Some(s) => Level::parse(s)
                .ok_or_else(|| Fault::wrong("log_level", Expected::OneOf(LEVELS), shown_text(s)))?,
        };
        Ok((!self.log_file.trim().is_empty()).then(|| LogOptions {
            file: self.log_file.clone(),
            level,
            bodies: self.log_messages,
        }))
    }
}

// ---- The options ----------------------------------------------------------------------------

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
    /// Payload bytes queued for the writer (`send_queue_bytes`, default 16 MiB).
    pub send_queue_bytes: usize,
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
            send_queue_bytes: 16 << 20,
            send_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
        }
    }
}

impl Limits {
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
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{scheme}://{user}{host}:{}", self.port)
    }

    /// `proxy`: none for an empty string.
    fn from_option(text: &str) -> Result<Option<Proxy>, Fault> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        Proxy::parse(text).map(Some).map_err(|fault| {
            let got = quote(&masked(text));
            Fault::at("proxy", OptionsProblem::Proxy { got, fault })
        })
    }

    /// `scheme://[user:password@]host:port[/]`; the scheme in any letter case.
    fn parse(text: &str) -> Result<Proxy, ProxyUrlFault> {
        let (scheme, rest) = text.split_once("://").ok_or(ProxyUrlFault::Form)?;
        let kind = match scheme.to_ascii_lowercase().as_str() {
            "http" => ProxyKind::Http,
            "socks5" | "socks5h" => ProxyKind::Socks5,
            "socks4" | "socks4a" => ProxyKind::Socks4,
            _ => return Err(ProxyUrlFault::Scheme),
        };
        // Parsed as an http URL whatever the protocol: `url` checks host names (IDNA, IPv4
        // forms, brackets) and ports only for the schemes it knows.
        let url = Url::parse(&format!("http://{rest}")).map_err(|e| match e {
            ParseError::InvalidPort => ProxyUrlFault::Port,
            _ => ProxyUrlFault::Host,
        })?;
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(ProxyUrlFault::Form);
        }
        let host = match url.host() {
            // 253: the longest name DNS carries (RFC 1035); it also bounds every text that
            // names the proxy.
            Some(Host::Domain(d)) if !d.is_empty() && d.len() <= 253 => d.to_owned(),
            Some(Host::Ipv4(a)) => a.to_string(),
            Some(Host::Ipv6(a)) => a.to_string(),
            _ => return Err(ProxyUrlFault::Host),
        };
        // `url` drops a port equal to http's default: ":80" is told from no port by the text.
        let port = match url.port() {
            Some(p) => p,
            None if explicit_port(rest) => 80,
            None => return Err(ProxyUrlFault::Port),
        };
        if port == 0 {
            return Err(ProxyUrlFault::Port);
        }
        let decoded = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
        let auth = (!url.username().is_empty() || url.password().is_some()).then(|| {
            (
                decoded(url.username()),
                decoded(url.password().unwrap_or("")),
            )
        });
        if kind == ProxyKind::Socks4 && auth.is_some() {
            return Err(ProxyUrlFault::Socks4Password);
        }
        Ok(Proxy {
            kind,
            host,
            port,
            auth,
        })
    }
}

/// Whether the authority of `rest` (what follows `scheme://`) ends in `:digits`.
fn explicit_port(rest: &str) -> bool {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    host_port
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// A proxy address with what stands before its last `@` masked: it is quoted in errors, its
/// password never.
fn masked(text: &str) -> String {
    match text.rsplit_once('@') {
        None => text.to_owned(),
        Some((before, after)) => match before.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://***@{after}"),
            None => format!("***@{after}"),
        },
    }
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
    /// `persistent`: the connection outlives the object (see `crate::persistent`).
    pub persistent: Option<PersistentOptions>,
}

/// A server or client connection that outlives its object (see `crate::persistent`).
#[derive(Clone, Debug, PartialEq)]
pub struct PersistentOptions {
    /// The name the next object attaches by.
    pub name: String,
    /// End it after this long with no object attached (`idle_expiry_ms`; 0 or absent: never).
    pub idle_expiry: Option<Duration>,
}

/// `persistent`, as it arrives.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PersistentKeys {
    name: String,
    #[serde(default)]
    idle_expiry_ms: Option<u64>,
}

/// Checks `persistent`: a non-blank name, an expiry of at most a year.
pub(crate) fn persistent(p: Option<PersistentKeys>) -> Result<Option<PersistentOptions>, Fault> {
    match p {
        None => Ok(None),
        Some(p) if p.name.trim().is_empty() => Err(Fault::wrong(
            "persistent.name",
            Expected::NonBlank,
            shown_text(&p.name),
        )),
        Some(p) => Ok(Some(PersistentOptions {
            idle_expiry: period(
                "persistent.idle_expiry_ms",
                p.idle_expiry_ms,
                365 * 86_400_000,
                None,
            )?,
            name: p.name,
        })),
    }
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
            persistent: None,
        }
    }
}

/// The client's own keys (`Параметры` of `Подключиться`), as they arrive.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct ClientKeys {
    timeout_ms: Option<u64>,
    headers: IndexMap<String, String>,
    subprotocols: Vec<String>,
    tls: TlsKeys,
    proxy: String,
    ping_interval_ms: Option<u64>,
    pong_timeout_ms: Option<u64>,
    /// `true`/`false` or an object: read by [`reconnect`].
    reconnect: Option<Json>,
    persistent: Option<PersistentKeys>,
}

/// `tls`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct TlsKeys {
    roots: String,
    ca_file: String,
    insecure: bool,
    cert_file: String,
    key_file: String,
    pfx_file: String,
    password: String,
}

/// `reconnect` as an object.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct ReconnectKeys {
    enabled: bool,
    min_delay_ms: Option<u64>,
    max_delay_ms: Option<u64>,
    max_attempts: Option<u64>,
}

impl ClientOptions {
    /// Parses `Параметры`; an empty string means all defaults.
    pub fn parse(text: &str) -> Result<ClientOptions> {
        parse_options(OptionsObject::Client, text, ClientKeys::check)
    }
}

impl ClientKeys {
    // One key per line, as in the documentation's table.
    #[rustfmt::skip]
    fn check(self, shared: SharedKeys) -> Result<ClientOptions, Fault> {
        let d = ClientOptions::default();
        Ok(ClientOptions {
            timeout: millis("timeout_ms", self.timeout_ms, 1, 3_600_000, d.timeout)?,
            headers: self.headers.into_iter().collect(),
            subprotocols: tokens("subprotocols", self.subprotocols)?,
            limits: shared.limits(d.limits)?,
            tls: self.tls.check()?,
            proxy: Proxy::from_option(&self.proxy)?,
            ping_interval: period("ping_interval_ms", self.ping_interval_ms, 86_400_000, d.ping_interval)?,
            pong_timeout: millis("pong_timeout_ms", self.pong_timeout_ms, 1, 3_600_000, d.pong_timeout)?,
            reconnect: parse_reconnect(self.reconnect)?,
            log: shared.log()?,
            persistent: persistent(self.persistent)?,
        })
    }
}

impl TlsKeys {
    fn check(self) -> Result<TlsOptions, Fault> {
        let path = |s: String| (!s.trim().is_empty()).then_some(s);
        let roots = match self.roots.as_str() {
            "system" | "" => Roots::System,
            "webpki" => Roots::Webpki,
            _ => Roots::File(self.roots.clone()),
        };
        let t = TlsOptions {
            roots,
            ca_file: path(self.ca_file),
            insecure: self.insecure,
            cert_file: path(self.cert_file),
            key_file: path(self.key_file),
            pfx_file: path(self.pfx_file),
            password: self.password,
        };
        if t.pfx_file.is_some() && (t.cert_file.is_some() || t.key_file.is_some()) {
            return Err(Fault::at(
                "tls.pfx_file",
                OptionsProblem::TwoClientCertificates,
            ));
        }
        if t.key_file.is_some() && t.cert_file.is_none() {
            return Err(Fault::at(
                "tls.key_file",
                OptionsProblem::KeyWithoutCertificate,
            ));
        }
        Ok(t)
    }
}

/// `reconnect`: `true`/`false`, or the object with the delays.
fn parse_reconnect(v: Option<Json>) -> Result<Reconnect, Fault> {
    let d = Reconnect::default();
    let k = match v {
        None => return Ok(d),
        Some(Json::Bool(enabled)) => return Ok(Reconnect { enabled, ..d }),
        Some(v @ Json::Object(_)) => ReconnectKeys::deserialize(Node {
            v: &v,
            path: "reconnect".to_owned(),
        })?,
        Some(v) => return Err(Fault::wrong("reconnect", Expected::BoolOrObject, shown(&v))),
    };
    #[rustfmt::skip]
    let c = Reconnect {
        enabled: k.enabled,
        min_delay: millis("reconnect.min_delay_ms", k.min_delay_ms, 0, 3_600_000, d.min_delay)?,
        max_delay: millis("reconnect.max_delay_ms", k.max_delay_ms, 0, 86_400_000, d.max_delay)?,
        max_attempts: size("reconnect.max_attempts", k.max_attempts, 0, u32::MAX.into(), d.max_attempts as usize)?
            .try_into()
            .unwrap_or(u32::MAX),
    };
    if c.max_delay < c.min_delay {
        return Err(Fault::at(
            "reconnect.max_delay_ms",
            OptionsProblem::DelayOrder,
        ));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::Lang;
    use crate::net::server::ServerOptions;

    #[test]
    fn a_client_takes_the_same_persistent_key_as_a_server() {
        let o = ClientOptions::parse(r#"{"persistent": {"name": "атс", "idle_expiry_ms": 500}}"#)
            .unwrap();
        assert_eq!(
            o.persistent,
            Some(PersistentOptions {
                name: "атс".into(),
                idle_expiry: Some(Duration::from_millis(500)),
            })
        );
        assert_eq!(ClientOptions::parse("").unwrap().persistent, None);
        let e = ClientOptions::parse(r#"{"persistent": {"name": ""}}"#).unwrap_err();
        assert!(
            e.text(Lang::En).contains("persistent.name"),
            "{}",
            e.text(Lang::En)
        );
        assert!(ClientOptions::parse(r#"{"persistent": {"name": "x", "ttl": 1}}"#).is_err());
    }

    /// The Russian and English texts of the error that `options` of a client make.
    fn texts(options: &str) -> (String, String) {
        let e = ClientOptions::parse(options).unwrap_err();
        (e.text(Lang::Ru), e.text(Lang::En))
    }

    const FORMS_RU: &str = "ожидается http://[пользователь:пароль@]узел:порт, socks5://[пользователь:пароль@]узел:порт или socks4://узел:порт";
    const FORMS_EN: &str = "expected http://[user:password@]host:port, socks5://[user:password@]host:port or socks4://host:port";

    #[test]
    fn defaults_and_values() {
        let o = ClientOptions::parse("").unwrap();
        assert_eq!(o.timeout, Duration::from_secs(10));
        let o = ClientOptions::parse(
            r#"{"timeout_ms": 500, "headers": {"Authorization": "Bearer x", "A": "1"}, "tls": {"ca_file": "/ca.pem"}, "send_queue": 3}"#,
        )
        .unwrap();
        assert_eq!(o.timeout, Duration::from_millis(500));
        assert_eq!(
            o.headers,
            vec![
                ("Authorization".to_owned(), "Bearer x".to_owned()),
                ("A".to_owned(), "1".to_owned())
            ]
        );
        assert_eq!(o.tls.ca_file.as_deref(), Some("/ca.pem"));
        assert_eq!(o.limits.send_queue, 3);
        assert_eq!(o.limits.send_timeout, Duration::from_secs(10));
        assert_eq!(ClientOptions::parse("  ").unwrap().limits.send_queue, 1024);
    }

    #[test]
    fn every_error_form_in_both_languages() {
        let c = "Параметры подключения";
        for (options, ru, en) in [
            (
                "{",
                format!("{c}: это не JSON (строка 1, позиция 1)"),
                "Connection options: not valid JSON (line 1, column 1)".to_owned(),
            ),
            (
                "[]",
                format!("{c}: ожидается объект JSON, получено […]"),
                "Connection options: expected a JSON object, got […]".to_owned(),
            ),
            (
                r#"{"tls": {"roots": 5}}"#,
                format!("{c}: ключ tls.roots: ожидается строка, получено 5"),
                "Connection options: key tls.roots: expected a string, got 5".to_owned(),
            ),
            (
                r#"{"timeout_ms": "5"}"#,
                format!("{c}: ключ timeout_ms: ожидается целое неотрицательное число, получено \"5\""),
                "Connection options: key timeout_ms: expected a whole number, got \"5\"".to_owned(),
            ),
            (
                r#"{"ping_interval_ms": -1}"#,
                format!("{c}: ключ ping_interval_ms: ожидается целое неотрицательное число, получено -1"),
                "Connection options: key ping_interval_ms: expected a whole number, got -1".to_owned(),
            ),
            (
                r#"{"timeout_ms": 0}"#,
                format!("{c}: ключ timeout_ms: ожидается целое число от 1 до 3600000, получено 0"),
                "Connection options: key timeout_ms: expected a whole number from 1 to 3600000, got 0".to_owned(),
            ),
            (
                r#"{"reconnect": {"enabled": "да"}}"#,
                format!("{c}: ключ reconnect.enabled: ожидается Булево (true или false), получено \"да\""),
                "Connection options: key reconnect.enabled: expected true or false, got \"да\"".to_owned(),
            ),
            (
                r#"{"subprotocols": "chat"}"#,
                format!("{c}: ключ subprotocols: ожидается массив, получено \"chat\""),
                "Connection options: key subprotocols: expected an array, got \"chat\"".to_owned(),
            ),
            (
                r#"{"headers": {"X-A": 1}}"#,
                format!("{c}: ключ headers.X-A: ожидается строка, получено 1"),
                "Connection options: key headers.X-A: expected a string, got 1".to_owned(),
            ),
            (
                r#"{"headers": []}"#,
                format!("{c}: ключ headers: ожидается объект JSON, получено […]"),
                "Connection options: key headers: expected a JSON object, got […]".to_owned(),
            ),
            (
                r#"{"reconnect": null}"#,
                format!("{c}: ключ reconnect: ожидается Булево (true или false) или объект JSON, получено null"),
                "Connection options: key reconnect: expected true, false or a JSON object, got null".to_owned(),
            ),
            (
                r#"{"log_level": "loud"}"#,
                format!("{c}: ключ log_level: ожидается error, info или debug, получено \"loud\""),
                "Connection options: key log_level: expected error, info or debug, got \"loud\"".to_owned(),
            ),
            (
                r#"{"subprotocols": ["ok", "a,b"]}"#,
                format!("{c}: ключ subprotocols[1]: ожидается имя подпротокола: непустое слово из латинских букв, цифр и знаков !#$%&'*+-.^_`|~ (без пробелов, запятых и скобок), получено \"a,b\""),
                "Connection options: key subprotocols[1]: expected a subprotocol name: a non-empty word of Latin letters, digits and !#$%&'*+-.^_`|~ (no spaces, commas or brackets), got \"a,b\"".to_owned(),
            ),
            (
                r#"{"tls": {"verify": false}}"#,
                format!("{c}: неизвестный параметр «tls.verify»; допустимы: roots, ca_file, insecure, cert_file, key_file, pfx_file, password"),
                "Connection options: unknown key \"tls.verify\"; accepted: roots, ca_file, insecure, cert_file, key_file, pfx_file, password".to_owned(),
            ),
            (
                r#"{"reconnect": {"min_delay_ms": 5000, "max_delay_ms": 10}}"#,
                format!("{c}: reconnect.max_delay_ms меньше reconnect.min_delay_ms"),
                "Connection options: reconnect.max_delay_ms is less than reconnect.min_delay_ms".to_owned(),
            ),
            (
                r#"{"tls": {"key_file": "k.pem"}}"#,
                format!("{c}: tls.key_file указан без tls.cert_file: укажите и файл сертификата"),
                "Connection options: tls.key_file is given without tls.cert_file: give the certificate file too".to_owned(),
            ),
            (
                r#"{"tls": {"pfx_file": "a.pfx", "key_file": "k.pem"}}"#,
                format!("{c}: укажите клиентский сертификат либо в tls.pfx_file, либо в tls.cert_file (+ tls.key_file), но не в обоих"),
                "Connection options: give the client certificate either as tls.pfx_file or as tls.cert_file (+ tls.key_file), not both".to_owned(),
            ),
            (
                r#"{"proxy": "127.0.0.1:8080"}"#,
                format!("{c}: ключ proxy: неверный адрес прокси «127.0.0.1:8080»; {FORMS_RU}"),
                format!("Connection options: key proxy: invalid proxy address \"127.0.0.1:8080\"; {FORMS_EN}"),
            ),
            (
                r#"{"proxy": "ftp://h:1"}"#,
                format!("{c}: ключ proxy: неверный адрес прокси «ftp://h:1»: поддерживаются схемы http, socks5 и socks4; {FORMS_RU}"),
                format!("Connection options: key proxy: invalid proxy address \"ftp://h:1\": the scheme must be http, socks5 or socks4; {FORMS_EN}"),
            ),
            (
                r#"{"proxy": "http://[::1:3128"}"#,
                format!("{c}: ключ proxy: неверный адрес прокси «http://[::1:3128»: неверное имя или адрес узла; {FORMS_RU}"),
                format!("Connection options: key proxy: invalid proxy address \"http://[::1:3128\": invalid host name or address; {FORMS_EN}"),
            ),
            (
                r#"{"proxy": "http://h:65536"}"#,
                format!("{c}: ключ proxy: неверный адрес прокси «http://h:65536»: нужен порт от 1 до 65535; {FORMS_RU}"),
                format!("Connection options: key proxy: invalid proxy address \"http://h:65536\": a port from 1 to 65535 is required; {FORMS_EN}"),
            ),
            (
                r#"{"proxy": "socks4://u:p@h:1"}"#,
                format!("{c}: ключ proxy: SOCKS4 не поддерживает пароль: используйте socks5://"),
                "Connection options: key proxy: SOCKS4 has no passwords: use socks5://".to_owned(),
            ),
        ] {
            let (r, e) = texts(options);
            assert_eq!(r, ru, "{options}");
            assert_eq!(e, en, "{options}");
        }
    }

    #[test]
    fn unknown_keys_name_the_key_and_list_the_accepted_ones() {
        let (ru, en) = texts(r#"{"timeout": 5}"#);
        let accepted = "timeout_ms, headers, subprotocols, tls, proxy, ping_interval_ms, pong_timeout_ms, reconnect, persistent, max_message_size, max_frame_size, read_buffer_size, write_buffer_size, send_queue, send_queue_bytes, send_timeout_ms, close_timeout_ms, log_file, log_level, log_messages";
        assert_eq!(
            ru,
            format!("Параметры подключения: неизвестный параметр «timeout»; допустимы: {accepted}")
        );
        assert_eq!(
            en,
            format!("Connection options: unknown key \"timeout\"; accepted: {accepted}")
        );
        let (ru, _) = texts(r#"{"reconnect": {"enable": true}}"#);
        assert!(
            ru.ends_with(
                "«reconnect.enable»; допустимы: enabled, min_delay_ms, max_delay_ms, max_attempts"
            ),
            "{ru}"
        );
    }

    #[test]
    fn a_fault_serde_raises_without_a_kind_names_the_value() {
        let f = <Fault as de::Error>::custom("duplicate field").within("tls.roots", &Json::from(5));
        let e = f.of(OptionsObject::Client);
        assert_eq!(
            e.text(Lang::Ru),
            "Параметры подключения: ключ tls.roots: ожидается допустимое значение, получено 5"
        );
        assert_eq!(
            e.text(Lang::En),
            "Connection options: key tls.roots: expected a valid value, got 5"
        );
    }

    #[test]
    fn english_texts_have_no_russian_words_and_input_is_quoted_bounded() {
        let long = "x".repeat(100_000);
        for options in [
            "{".to_owned(),
            r#"{"tls": 1}"#.to_owned(),
            r#"{"proxy": "http://[::1"}"#.to_owned(),
            format!(r#"{{"{long}": 1}}"#),
            format!(r#"{{"log_level": "{long}"}}"#),
            format!(r#"{{"proxy": "http://{long}"}}"#),
            format!(r#"{{"subprotocols": ["{long} "]}}"#),
            format!(r#"{{"headers": {{"{long}": 1}}}}"#),
        ] {
            let (ru, en) = texts(&options);
            let cyrillic = |s: &str| s.chars().any(|c| ('\u{400}'..='\u{4ff}').contains(&c));
            assert!(!cyrillic(&en), "{en}");
            assert!(cyrillic(&ru), "{ru}");
            // The key list of an unknown key is ours, the input at most QUOTE_LIMIT twice.
            assert!(
                en.len() < 1000 && ru.len() < 1500,
                "{} / {}",
                en.len(),
                ru.len()
            );
        }
    }

    #[test]
    fn proxy_addresses() {
        let proxy = |p: &str| {
            ClientOptions::parse(&format!(r#"{{"proxy": "{p}"}}"#))
                .map(|o| o.proxy.map(|p| p.display()))
        };
        for (given, parsed) in [
            ("", None),
            ("HTTP://h:3128", Some("http://h:3128")),
            ("Socks5://U:p@H:1080/", Some("socks5://U:***@h:1080")),
            ("socks5h://h:1", Some("socks5://h:1")),
            ("socks4a://h:1", Some("socks4://h:1")),
            ("http://h:80", Some("http://h:80")),
            ("http://u@h:1", Some("http://u:***@h:1")),
            ("http://[::1]:3128", Some("http://[::1]:3128")),
            (
                "socks5://прокси.рф:1",
                Some("socks5://xn--h1adldfi.xn--p1ai:1"),
            ),
        ] {
            assert_eq!(proxy(given).unwrap().as_deref(), parsed, "{given}");
        }
        let o = ClientOptions::parse(r#"{"proxy": "http://u%3A1:p%40ss:w@[::1]:8080"}"#).unwrap();
        let p = o.proxy.unwrap();
        assert_eq!((p.host.as_str(), p.port), ("::1", 8080));
        assert_eq!(p.auth, Some(("u:1".to_owned(), "p@ss:w".to_owned())));
        for (given, fault) in [
            ("h:1", ProxyUrlFault::Form),
            ("http:/h:1", ProxyUrlFault::Form),
            ("http://h:1/path", ProxyUrlFault::Form),
            ("http://h:1?q", ProxyUrlFault::Form),
            ("https://h:1", ProxyUrlFault::Scheme),
            ("http://:1", ProxyUrlFault::Host),
            ("http://[::1:1", ProxyUrlFault::Host),
            (
                &*format!("http://{}:1", "h".repeat(254)),
                ProxyUrlFault::Host,
            ),
            ("socks5://[::1", ProxyUrlFault::Host),
            ("http://h", ProxyUrlFault::Port),
            ("http://h:", ProxyUrlFault::Port),
            ("http://h:0", ProxyUrlFault::Port),
            ("http://h:65536", ProxyUrlFault::Port),
            ("socks5://h:-1", ProxyUrlFault::Port),
            ("http://h:12345678901234567890", ProxyUrlFault::Port),
            ("socks4://u@h:1", ProxyUrlFault::Socks4Password),
        ] {
            match proxy(given) {
                Err(Error::Options(OptionsError {
                    key,
                    problem: OptionsProblem::Proxy { fault: f, .. },
                    ..
                })) => assert_eq!((key.as_str(), f), ("proxy", fault), "{given}"),
                other => panic!("{given}: {other:?}"),
            }
        }
        // A malformed address is quoted without its user and password.
        let (ru, en) = texts(r#"{"proxy": "http://user:secret@h:1/x"}"#);
        assert!(
            ru.contains("«http://***@h:1/x»") && !ru.contains("secret"),
            "{ru}"
        );
        assert!(
            en.contains("\"http://***@h:1/x\"") && !en.contains("secret"),
            "{en}"
        );
    }

    #[test]
    fn both_objects_read_the_shared_keys() {
        let all = r#"{"max_message_size": 100, "max_frame_size": 50, "read_buffer_size": 300,
            "write_buffer_size": 0, "send_queue": 7, "send_queue_bytes": 2048, "send_timeout_ms": 8, "close_timeout_ms": 9,
            "log_file": "a.log", "log_level": "DEBUG", "log_messages": true}"#;
        let c = ClientOptions::parse(all).unwrap();
        let s = ServerOptions::parse(all).unwrap();
        for (l, log) in [(&c.limits, &c.log), (&s.limits, &s.log)] {
            assert_eq!(
                (
                    l.max_message_size,
                    l.max_frame_size,
                    l.read_buffer_size,
                    l.write_buffer_size
                ),
                (100, 50, 300, 0)
            );
            assert_eq!(l.send_queue, 7);
            assert_eq!(l.send_queue_bytes, 2048);
            assert_eq!(l.send_timeout, Duration::from_millis(8));
            assert_eq!(l.close_timeout, Duration::from_millis(9));
            let log = log.clone().unwrap();
            assert_eq!(
                (log.file.as_str(), log.level, log.bodies),
                ("a.log", Level::Debug, true)
            );
        }
        assert_eq!(json_keys(all), SHARED);
        // The defaults of the server differ in one place.
        assert_eq!(
            ServerOptions::parse("").unwrap().limits.send_timeout,
            Duration::from_secs(5)
        );
        assert!(
            ClientOptions::parse(r#"{"log_file": " "}"#)
                .unwrap()
                .log
                .is_none()
        );
    }

    fn json_keys(text: &str) -> Vec<String> {
        match serde_json::from_str::<Json>(text).unwrap() {
            Json::Object(m) => m.keys().cloned().collect(),
            _ => Vec::new(),
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
        let o = ClientOptions::parse(
            r#"{"ping_interval_ms": 0, "reconnect": {"max_attempts": 4294967295}}"#,
        )
        .unwrap();
        assert_eq!(o.ping_interval, None);
        assert_eq!(o.reconnect.max_attempts, u32::MAX);
        assert!(!o.reconnect.enabled);
        assert!(ClientOptions::parse(r#"{"reconnect": {"max_attempts": 4294967296}}"#).is_err());
    }
}
