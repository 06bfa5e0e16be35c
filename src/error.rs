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
    /// The platform broke the Native API contract (no memory manager, a null array...).
    Platform {
        /// In Russian.
        ru: &'static str,
        /// In English.
        en: &'static str,
    },
    /// Certificates, keys, TLS setup and handshakes.
    Tls(TlsError),
    /// A file the add-in reads or writes (certificates, keys, PFX, CA bundles, the log).
    File(FileError),
}

impl Error {
    /// A network or connection error with both texts.
    pub fn net(ru: impl Into<String>, en: impl Into<String>) -> Error {
        Error::Net {
            ru: ru.into(),
            en: en.into(),
        }
    }
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
