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
    /// A mistake in the JSON options of `Подключиться` or `Настроить`.
    Options(OptionsError),
    /// The platform broke the Native API contract (no memory manager, a null array...).
    Platform {
        /// In Russian.
        ru: &'static str,
        /// In English.
        en: &'static str,
    },
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
        fault: ProxyFault,
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
    /// Anything the key accepts (a check with no kind of its own).
    Valid,
}

/// What is wrong with a proxy address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyFault {
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
