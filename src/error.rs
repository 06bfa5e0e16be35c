//! The core's one error type. `abi/` turns it into `AddError` + `false`, which 1C code sees
//! as an exception, and the object keeps its text for `ОписаниеОшибки()`.
//!
//! Errors carry data, never text: every Russian and English message is rendered in
//! [`crate::texts`], so a translator or a reviewer reads them all in one file. An area with
//! several failures (TLS, addresses, options, the server…) gets its own typed enum, wrapped
//! by one variant here, and its own rendering function there.

use crate::lang::Lang;
use crate::value::TypeName;

/// A member or parameter name in both languages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Names {
    /// The Russian name.
    pub ru: &'static str,
    /// The English name.
    pub en: &'static str,
}

impl Names {
    /// The name in `lang`.
    pub fn get(self, lang: Lang) -> &'static str {
        lang.pick(self.ru, self.en)
    }
}

/// Every failure the core reports to 1C code.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.text(Lang::En))]
#[non_exhaustive]
pub enum Error {
    /// An argument of a type the parameter does not accept.
    ArgType {
        /// The method.
        method: Names,
        /// The parameter.
        param: Names,
        /// 1-based position of the parameter.
        index: usize,
        /// What the parameter accepts.
        expected: TypeName,
        /// What arrived.
        got: TypeName,
    },
    /// A call with another number of arguments than the method declares.
    ArgCount {
        /// The method.
        method: Names,
        /// Declared parameter count.
        expected: usize,
        /// Arguments passed.
        got: usize,
    },
    /// A property assigned a value of a type it does not accept.
    PropType {
        /// The property.
        prop: Names,
        /// What the property accepts.
        expected: TypeName,
        /// What arrived.
        got: TypeName,
    },
    /// An assignment to a read-only property.
    ReadOnly {
        /// The property.
        prop: Names,
    },
    /// A read of a write-only property.
    NotReadable {
        /// The property.
        prop: Names,
    },
    /// A member index outside the object's tables.
    NoSuchMember {
        /// The index the platform passed.
        index: usize,
    },
    /// A member whose behaviour a later version builds.
    NotImplemented {
        /// The member.
        member: Names,
    },
    /// A value of the right type that the member cannot use.
    InvalidValue {
        /// The parameter or property.
        what: Names,
        /// Why, in Russian.
        ru: String,
        /// Why, in English.
        en: String,
    },
    /// A number that is not a whole number in the range the member accepts.
    NotWhole {
        /// The parameter or property.
        what: Names,
        /// Smallest accepted value.
        min: u64,
        /// Largest accepted value.
        max: u64,
        /// What arrived (NaN when it was not a number at all).
        got: f64,
    },
    /// A `РежимДоставки` that is none of the four modes.
    UnknownMode {
        /// What 1C code wrote.
        got: String,
    },
    /// A call on an object whose `Done()` already ran.
    ObjectDone,
    /// A call the client object cannot do in its state.
    Client(ClientError),
    /// A call the server object cannot do, or a listener that cannot start.
    Server(ServerError),
    /// Certificates, keys, TLS setup and handshakes.
    Tls(TlsError),
    /// A file the add-in reads or writes (certificates, keys, PFX, CA bundles, the log).
    File(FileError),
    /// A mistake in the JSON options of `Подключиться` or `Настроить`.
    Options(OptionsError),
    /// A panic caught at the FFI boundary; the process lives on.
    Panic(String),
    /// The async runtime could not start (threads refused by the OS).
    Runtime(String),
    /// A connection-level failure with its text in both languages (bad URL, refused,
    /// DNS, TLS, handshake rejected, send queue full, not connected...).
    Net {
        /// In Russian.
        ru: String,
        /// In English.
        en: String,
    },
    /// A `ws://` / `wss://` address that cannot be used.
    Address(AddressError),
    /// No TCP connection to the server (DNS, refused, unreachable, timeout).
    Connect(ConnectError),
    /// The proxy could not open a tunnel to the server.
    Proxy(ProxyError),
    /// The server's answer to the WebSocket handshake cannot be accepted.
    Handshake(HandshakeError),
    /// A failure of the Socket.IO object or protocol.
    SocketIo(SioError),
    /// A connect failure of a connection made with `tls.insecure`: the text of the inner
    /// error followed by a warning that certificate checks were off.
    Insecure(Box<Error>),
    /// The platform broke the Native API contract (no memory manager, a null array...).
    Platform {
        /// In Russian.
        ru: &'static str,
        /// In English.
        en: &'static str,
    },
}

impl Error {
    /// «Нет соединения»: a send or close on a client or Socket.IO object that is not
    /// connected.
    pub fn not_connected() -> Error {
        Error::Client(ClientError::NotConnected)
    }

    /// A network or connection error with both texts.
    pub fn net(ru: impl Into<String>, en: impl Into<String>) -> Error {
        Error::Net {
            ru: ru.into(),
            en: en.into(),
        }
    }
}

/// Why an address passed to `Подключиться` was refused; each variant names the part that is
/// wrong. `url` is the address as 1C code passed it (texts quote it bounded).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddressError {
    /// Not a URL at all (nothing that reads as `scheme://host`).
    NotUrl {
        /// The address.
        url: String,
    },
    /// A scheme other than `ws` or `wss`.
    Scheme {
        /// The address.
        url: String,
        /// The scheme found, lower-cased.
        scheme: String,
    },
    /// No host name.
    NoHost {
        /// The address.
        url: String,
    },
    /// A host that is neither a valid (international) domain name nor an IP literal.
    Host {
        /// The address.
        url: String,
    },
    /// A port that is not a whole number from 1 to 65535.
    Port {
        /// The address.
        url: String,
    },
    /// A fragment (`#…`): WebSocket addresses have none (RFC 6455 §3).
    Fragment {
        /// The address.
        url: String,
    },
    /// Path or query that no HTTP request line can carry.
    Path {
        /// The address.
        url: String,
    },
}

/// How one TCP connect attempt (or an established socket) failed, from `io::ErrorKind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SocketFailure {
    /// Nothing listens there (RST on connect).
    Refused,
    /// No answer within the time allowed.
    TimedOut,
    /// No route to the host or its network.
    Unreachable,
    /// The local address cannot be used (for example no IPv6 on this machine).
    AddressUnavailable,
    /// The peer reset or closed the connection.
    Reset,
    /// Anything else, with the OS error number where there is one.
    Other {
        /// `errno` / `GetLastError`.
        os_code: Option<i32>,
    },
}

impl SocketFailure {
    /// The failure an I/O error stands for (by its kind, never its text).
    pub fn of(e: &std::io::Error) -> SocketFailure {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::ConnectionRefused => SocketFailure::Refused,
            K::TimedOut => SocketFailure::TimedOut,
            K::HostUnreachable | K::NetworkUnreachable => SocketFailure::Unreachable,
            K::AddrNotAvailable => SocketFailure::AddressUnavailable,
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
                SocketFailure::Reset
            }
            _ => SocketFailure::Other {
                os_code: e.raw_os_error(),
            },
        }
    }
}

/// One TCP connect attempt that did not give a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The address tried.
    pub addr: std::net::SocketAddr,
    /// How it failed (`TimedOut` when the time ran out while it was pending).
    pub failure: SocketFailure,
}

/// The stage a connect had reached when `timeout_ms` ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectStage {
    /// Resolving the host name.
    Resolve,
    /// Opening TCP connections.
    Tcp,
    /// Opening the proxy tunnel.
    Proxy,
    /// The TLS handshake.
    Tls,
    /// The WebSocket (HTTP) handshake.
    Handshake,
}

/// Why no connection to the server was made.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectError {
    /// The host name did not resolve (DNS). `host` is the name asked for (punycode).
    Resolve {
        /// Host name.
        host: String,
    },
    /// The name resolved to no address.
    NoAddress {
        /// Host name.
        host: String,
    },
    /// Every address of the host failed; the attempts in the order they were made.
    Tcp {
        /// Host name or IP.
        host: String,
        /// Port.
        port: u16,
        /// Each address tried and how it failed.
        tried: Vec<Attempt>,
    },
    /// `timeout_ms` ran out at `stage`.
    Timeout {
        /// The address as passed.
        url: String,
        /// The bound, ms.
        ms: u64,
        /// Where the connect was.
        stage: ConnectStage,
    },
    /// The host cannot be used as a TLS server name.
    TlsName {
        /// Host name.
        host: String,
    },
}

/// What a proxy did wrong, or said.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyFault {
    /// The proxy's own host name did not resolve.
    Resolve,
    /// No address of the proxy accepted a TCP connection.
    Tcp {
        /// Each address tried and how it failed.
        tried: Vec<Attempt>,
    },
    /// User name or password refused.
    WrongCredentials,
    /// The proxy wants a user name and password and none were given.
    CredentialsRequired,
    /// The proxy hung up while checking the login (pproxy does on a wrong password).
    HungUpOnLogin,
    /// The proxy could not reach the target.
    TargetUnreachable {
        /// `host:port` asked for.
        target: String,
        /// Why, from the proxy's reply.
        why: SocksReply,
    },
    /// An answer that is not SOCKS, or a SOCKS feature the proxy lacks.
    Socks {
        /// What was wrong.
        why: SocksReply,
    },
    /// SOCKS4 needs an IPv4 address and the target has none.
    NoIpv4 {
        /// Target host.
        host: String,
    },
    /// The connection to the proxy broke while opening the tunnel.
    Lost {
        /// How.
        failure: SocketFailure,
    },
    /// The answer to CONNECT is longer than we read.
    HeadTooLong,
    /// The answer to CONNECT is not HTTP.
    NotHttp {
        /// Its first line.
        status_line: String,
    },
    /// The proxy refused the tunnel with this HTTP status.
    Refused {
        /// `host:port` asked for.
        target: String,
        /// The status line.
        status_line: String,
    },
}

/// A SOCKS reply or protocol failure, from `tokio_socks::Error`'s variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SocksReply {
    /// Connection refused by the target.
    Refused,
    /// Host unreachable.
    HostUnreachable,
    /// Network unreachable.
    NetworkUnreachable,
    /// General SOCKS server failure.
    ServerFailure,
    /// Not allowed by the proxy's rules.
    NotAllowed,
    /// TTL expired.
    TtlExpired,
    /// Command or address type not supported.
    NotSupported,
    /// The answer is not SOCKS of the expected version.
    NotSocks,
    /// The target address is not valid for SOCKS.
    BadTarget,
    /// Any other failure.
    Other,
}

/// A proxy failure: which proxy (its URL without the password) and what happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyError {
    /// The proxy, as `scheme://user:***@host:port`.
    pub proxy: String,
    /// What happened.
    pub fault: ProxyFault,
}

/// What is wrong with the server's answer to the handshake (RFC 6455 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseFault {
    /// Not an HTTP response.
    NotHttp,
    /// No `Upgrade: websocket`.
    NoUpgrade,
    /// No `Connection: Upgrade`.
    NoConnectionUpgrade,
    /// `Sec-WebSocket-Accept` does not match our key.
    AcceptMismatch,
    /// The response head is too large.
    TooLarge,
    /// The server hung up before the response was complete.
    Incomplete,
    /// Any other protocol violation.
    Other,
}

/// Why the WebSocket handshake failed after TCP (and TLS) were up.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The server answered with an HTTP status other than 101.
    Status {
        /// The status code.
        code: u16,
    },
    /// None of the offered subprotocols was accepted.
    NoSubprotocol,
    /// The server chose a subprotocol that was not offered.
    UnofferedSubprotocol,
    /// The server accepted an extension that was not offered (`Sec-WebSocket-Extensions`).
    UnofferedExtension {
        /// The header's value.
        extensions: String,
    },
    /// The answer violates the protocol.
    BadResponse {
        /// How.
        fault: ResponseFault,
    },
    /// The connection broke during the handshake.
    Lost {
        /// How.
        failure: SocketFailure,
    },
    /// A header of the `headers` option that HTTP cannot carry.
    RequestHeader {
        /// The header name.
        name: String,
    },
    /// The `subprotocols` option cannot be sent as a header.
    Subprotocols {
        /// The list.
        list: String,
    },
}

/// What a file is for, which decides its size cap and how its errors are worded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A PEM file of certificates (a chain, possibly with its key).
    Certificate,
    /// A PEM file with a private key.
    Key,
    /// A PKCS#12 file (`.pfx`, `.p12`).
    Pfx,
    /// A PEM bundle of trusted CA certificates (`tls.ca_file`, `tls.roots`).
    CaBundle,
    /// The diagnostic log (`log_file`).
    Log,
}

/// Why a file could not be used.
#[derive(Debug)]
pub enum FileError {
    /// The OS refused to open or read it (missing, no permission...).
    Io {
        /// What it is for.
        kind: FileKind,
        /// The path as given.
        path: String,
        /// The OS's reason.
        error: std::io::Error,
    },
    /// Not a regular file (a folder, a device, a FIFO, a socket).
    NotRegular {
        /// What it is for.
        kind: FileKind,
        /// The path as given.
        path: String,
    },
    /// Larger than the cap for its kind.
    TooLarge {
        /// What it is for.
        kind: FileKind,
        /// The path as given.
        path: String,
        /// The cap in bytes.
        limit: u64,
    },
    /// Opening or reading did not finish within the bound (a network share that stopped
    /// answering).
    NoAnswer {
        /// What it is for.
        kind: FileKind,
        /// The path as given.
        path: String,
        /// The bound in milliseconds.
        waited_ms: u64,
    },
    /// The helper thread that reads files could not start.
    NoThread(std::io::Error),
}

/// What is wrong with one PEM section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PemProblem {
    /// `BEGIN` without its `END` line (a truncated or cut file).
    Unterminated,
    /// The body is not valid base64.
    BadBase64,
    /// The encryption headers (`Proc-Type`, `DEK-Info`) are malformed.
    BadHeaders,
    /// A legacy `DEK-Info` cipher other than AES-128/192/256-CBC and DES-EDE3-CBC.
    UnsupportedCipher(String),
    /// The key is encrypted and no password was given.
    NeedsPassword,
    /// Decryption failed or gave no valid key.
    WrongPasswordOrDamaged,
    /// The content is not what the label says (not a certificate, not a key).
    Damaged,
}

/// How the arguments of `Запустить` / `Run` were understood, one per argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgRole {
    /// Empty, not used.
    Empty,
    /// A PEM file of certificates without a key.
    CertificatePem,
    /// A PEM file holding certificates and their key.
    CombinedPem,
    /// A PKCS#12 file.
    Pfx,
    /// The private key file.
    KeyFile,
    /// A password (its value is never shown).
    Password,
}

/// Why the certificate arguments of `Запустить` / `Run` cannot start a wss:// server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgProblem {
    /// A key or password without a certificate: the server would be ws://.
    KeyWithoutCertificate,
    /// The certificate's PEM holds no key and no key file was given.
    NoKey,
    /// The key file named by `КлючИлиПароль` does not exist (and is not taken as a password,
    /// since the certificate holds no key).
    KeyFileMissing,
    /// The certificate file already holds a key, and another file is named as the key.
    KeyTwice,
    /// Two passwords given where one is used.
    PasswordTwice,
    /// A password given for a key that is not encrypted (often a mistyped key path).
    PasswordUnused,
}

/// A certificate-related argument, with what it was understood as.
#[derive(Debug, Clone)]
pub struct ArgUse {
    /// The value as given (never shown for passwords).
    pub value: String,
    /// What it was taken for.
    pub role: ArgRole,
}

/// The rustls certificate check that failed, as a 1C developer can meet it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertProblem {
    /// No trusted root issued it (an own CA, a corporate CA, a self-signed certificate).
    UnknownIssuer,
    /// Past its end date.
    Expired,
    /// Before its start date.
    NotValidYet,
    /// Issued for other names; `presented` lists those it holds.
    NotValidForName {
        /// The names in the certificate (empty when unknown).
        presented: Vec<String>,
    },
    /// A CA certificate used as a server or client certificate.
    CaUsedAsEndEntity,
    /// Revoked by its issuer.
    Revoked,
    /// Revocation status could not be determined.
    UnknownRevocationStatus,
    /// Its signature does not verify.
    BadSignature,
    /// Signed with an algorithm that is not supported.
    UnsupportedSignature,
    /// Not issued for this purpose (server or client authentication).
    InvalidPurpose,
    /// Malformed certificate.
    BadEncoding,
    /// An extension marked critical that is not understood.
    UnhandledCriticalExtension,
    /// Any other rejection.
    Other,
}

/// A TLS alert the peer sent, grouped by what a 1C developer does about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    /// The peer found no protocol version or cipher in common.
    NoCommonParameters,
    /// The peer did not accept our certificate.
    CertificateRefused,
    /// The peer refused access.
    AccessDenied,
    /// The peer does not know the server name we asked for (SNI).
    UnknownName,
    /// Another alert, by its number.
    Other(u8),
}

/// Why a TLS handshake failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeProblem {
    /// The server's certificate was rejected.
    ServerCertificate(CertProblem),
    /// The server refused our client certificate or requires one.
    ClientCertificateRefused,
    /// The peer sent an alert.
    Alert(AlertKind),
    /// No protocol version or cipher suite in common.
    Incompatible,
    /// The peer broke the TLS protocol (or is not TLS at all).
    Misbehaved,
    /// The peer closed the connection during the handshake.
    Closed,
    /// Another failure.
    Other,
}

/// Certificates, keys, TLS configuration and handshakes.
#[derive(Debug)]
pub enum TlsError {
    /// One section of a PEM file is wrong.
    Pem {
        /// The file.
        path: String,
        /// 1-based number of the section among the file's `BEGIN` lines.
        section: usize,
        /// Its label (`CERTIFICATE`, `RSA PRIVATE KEY`...).
        label: String,
        /// What is wrong.
        problem: PemProblem,
    },
    /// A file without any `BEGIN CERTIFICATE` section.
    NoCertificates {
        /// The file.
        path: String,
    },
    /// A file without any private key section.
    NoKey {
        /// The file.
        path: String,
    },
    /// A certificate of a CA file cannot serve as a trusted root.
    BadRoot {
        /// The file.
        path: String,
    },
    /// A PKCS#12 file that does not open.
    Pfx {
        /// The file.
        path: String,
        /// No key inside (`true`) or wrong password / damaged (`false`).
        no_key: bool,
    },
    /// The key does not belong to the certificate (or its type is not supported).
    KeyMismatch {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
        /// `false`: the key type is not supported at all.
        checked: bool,
        /// The client's certificate (`tls.*` options) rather than the server's.
        client: bool,
    },
    /// The certificate arguments of `Запустить` cannot start a wss:// server.
    ServerArgs {
        /// What is wrong.
        problem: ArgProblem,
        /// Certificate, key-or-password and password, as understood.
        args: [ArgUse; 3],
    },
    /// The TLS configuration could not be built (no usable roots, no usable versions).
    Setup,
    /// The host name cannot be used for TLS (SNI and verification).
    BadServerName {
        /// The host.
        host: String,
    },
    /// The handshake with `host:port` failed.
    Handshake {
        /// The host.
        host: String,
        /// The port.
        port: u16,
        /// Why.
        problem: HandshakeProblem,
    },
}

impl From<FileError> for Error {
    fn from(e: FileError) -> Error {
        Error::File(e)
    }
}

impl From<TlsError> for Error {
    fn from(e: TlsError) -> Error {
        Error::Tls(e)
    }
}

impl From<OptionsError> for Error {
    fn from(e: OptionsError) -> Error {
        Error::Options(e)
    }
}

/// Whose JSON options an [`OptionsError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionsObject {
    /// `Параметры` of the client's `Подключиться`.
    Client,
    /// `Параметры` of the server's `Настроить`.
    Server,
}

/// A mistake in JSON options: which object, which key, what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionsError {
    /// Whose options.
    pub object: OptionsObject,
    /// The key path (`tls.roots`, `subprotocols[1]`); empty for the options as a whole.
    pub key: String,
    /// What is wrong with it.
    pub problem: OptionsProblem,
}

/// What is wrong with one key of JSON options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptionsProblem {
    /// The text is not JSON; the position of the first fault.
    NotJson {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A value of the wrong type, out of range or not one of the accepted ones.
    Wrong {
        /// What the key accepts.
        expected: Expected,
        /// What arrived: JSON text of a scalar (bounded), `[…]` or `{…}`.
        got: String,
    },
    /// A key the object does not have.
    Unknown {
        /// The keys it has, at that level.
        accepted: Vec<&'static str>,
    },
    /// A required key is absent.
    Missing,
    /// `tls.pfx_file` together with `tls.cert_file` or `tls.key_file`.
    TwoClientCertificates,
    /// `tls.key_file` without `tls.cert_file`.
    KeyWithoutCertificate,
    /// `reconnect.max_delay_ms` below `reconnect.min_delay_ms`.
    DelayOrder,
    /// A proxy address that cannot be used.
    Proxy {
        /// The address as given, its user and password masked (bounded).
        got: String,
        /// What is wrong with it.
        fault: ProxyUrlFault,
    },
}

/// What an option key accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expected {
    /// A JSON object.
    Object,
    /// An array.
    Array,
    /// A string.
    String,
    /// `true` or `false`.
    Bool,
    /// A whole number (no sign, no fraction).
    Whole,
    /// A whole number within bounds.
    Range {
        /// The least accepted.
        min: u64,
        /// The greatest accepted.
        max: u64,
    },
    /// `true`, `false` or an object (`reconnect`).
    BoolOrObject,
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// A string that is not blank.
    NonBlank,
    /// A subprotocol name: an HTTP token (RFC 7230 `tchar`s).
    Token,
    /// `{"bearer": …}` or `{"basic": {…}}` (`auth`).
    Auth,
    /// An IPv4 or IPv6 address or address block (`trusted_proxies`).
    AddressBlock,
    /// Anything the key accepts (a check with no kind of its own).
    Valid,
}

/// What is wrong with a proxy address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyUrlFault {
    /// Not of the form `scheme://[user:password@]host:port`.
    Form,
    /// A scheme other than `http`, `socks5`, `socks4`.
    Scheme,
    /// A host that is empty or not a valid name or address (an unclosed `[` too).
    Host,
    /// No port, or one outside 1…65535.
    Port,
    /// A user or password for SOCKS4, which has none.
    Socks4Password,
}

/// Failures of the client object's own calls (the connection's are in other areas).
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// No open connection.
    NotConnected,
    /// The connection was lost and a reconnection is under way.
    Reconnecting,
    /// `Подключиться` while connected.
    AlreadyConnected,
    /// `Подключиться` or `Отправить` while `НачатьПодключение` is still connecting.
    Connecting,
    /// A persistent client of that name is connected (or connecting) to another address.
    PersistentElsewhere {
        /// Its name.
        name: String,
        /// The address it was connected with.
        url: String,
    },
    /// A persistent client of that name is attached to another object.
    PersistentInUse {
        /// Its name.
        name: String,
    },
    /// The connection task did not answer within `timeout_ms` plus a margin.
    ConnectTimedOut {
        /// The address as 1C code passed it.
        url: String,
    },
    /// The send queue stayed full for `send_timeout_ms`.
    QueueFull {
        /// The bound, in ms.
        waited_ms: u128,
    },
    /// A ping payload longer than a control frame may carry (125 bytes, RFC 6455 §5.5).
    PingTooLong {
        /// Its length in bytes (UTF-8).
        len: usize,
    },
}

/// Failures of the Socket.IO object and of the Socket.IO protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SioError {
    /// The server refused the namespace (a `44` packet).
    Refused {
        /// The namespace.
        nsp: String,
        /// The server's message.
        message: String,
    },
    /// The server sent something that is not an Engine.IO / Socket.IO packet.
    BadPacket {
        /// A short quote of it.
        packet: String,
    },
    /// The connection ended before the namespace was joined.
    Lost {
        /// Why (a close or a socket error, in English).
        why: String,
    },
    /// A key of the options that is Socket.IO's own has a wrong value.
    BadOption {
        /// The key.
        key: &'static str,
        /// What it takes.
        expected: &'static str,
    },
    /// `ЭтоJSON` was set and the message is not JSON.
    NotJson {
        /// A short quote of it.
        text: String,
    },
    /// An empty event name.
    EmptyName,
    /// No acknowledgement within the timeout.
    AckTimeout {
        /// The bound, in ms.
        ms: u64,
    },
    /// The connection ended while an acknowledgement was awaited.
    AckLost,
    /// No attachment of that number in the last event `ПолучитьСобытие` returned.
    NoAttachment {
        /// The number asked for (from 0).
        index: i64,
        /// How many there are.
        count: usize,
    },
}

/// Failures of the server object's own calls.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerError {
    /// `Запустить` while running.
    AlreadyRunning,
    /// A persistent server of that name runs on another interface or port.
    PersistentElsewhere {
        /// Its name.
        name: String,
        /// Where it runs.
        interface: String,
        /// Its port.
        port: u16,
    },
    /// A persistent server of that name is attached to another object.
    PersistentInUse {
        /// Its name.
        name: String,
    },
    /// The interface name resolves to nothing, or is not an address of this computer.
    NoSuchInterface {
        /// As 1C code passed it.
        interface: String,
    },
    /// The port is taken.
    PortInUse {
        /// The interface.
        interface: String,
        /// The port.
        port: u16,
    },
    /// The OS refuses the port (below 1024 without privileges).
    PortNotPermitted {
        /// The port.
        port: u16,
    },
    /// Another OS failure while binding or registering the listener.
    Listen {
        /// The interface.
        interface: String,
        /// The port.
        port: u16,
        /// The OS's own text (kept for support; rendered after ours).
        os: String,
    },
    /// One connection's send queue stayed full for `send_timeout_ms`.
    QueueFull {
        /// The connection.
        id: u64,
        /// The bound, in ms.
        waited_ms: u128,
    },
    /// No live connection with that id.
    NoConnection {
        /// The id.
        id: u64,
    },
    /// `Настроить` while running.
    ConfigureWhileRunning,
    /// `Запустить` with a blank interface (all interfaces must be asked for by name).
    BlankInterface,
}

/// `Result` with the core's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    const RECEIVE: Names = Names {
        ru: "Получить",
        en: "Receive",
    };
    const TIMEOUT: Names = Names {
        ru: "Таймаут",
        en: "Timeout",
    };

    #[test]
    fn arg_type_names_argument_and_type_in_both_languages() {
        let e = Error::ArgType {
            method: RECEIVE,
            param: TIMEOUT,
            index: 1,
            expected: TypeName::Number,
            got: TypeName::String,
        };
        assert_eq!(
            e.text(Lang::Ru),
            "Неверный тип параметра 1 (Таймаут) метода Получить: ожидается Число, передано Строка"
        );
        assert_eq!(
            e.to_string(),
            "Wrong type of argument 1 (Timeout) of method Receive: expected Number, got String"
        );
    }

    #[test]
    fn panic_text() {
        assert!(Error::Panic("boom".into()).text(Lang::Ru).contains("boom"));
        assert!(
            Error::Panic("boom".into())
                .text(Lang::En)
                .starts_with("Internal add-in error")
        );
    }
}
