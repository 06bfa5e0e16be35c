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
