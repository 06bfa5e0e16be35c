//! Member tables: every method and property of both objects, with English and Russian
//! names, parameters (type, default) and the return flag.
//!
//! The platform finds members by the identifier written in 1C code, so lookup is
//! case-insensitive in both alphabets and also knows extra aliases (`Принять` and
//! `Получить` are one method). Indexes are positions in the tables and never change
//! between calls; the test-only members (feature `test-hooks`) are appended at the end.

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::error::Names;
use crate::value::{ParamType, Value};

/// A parameter's default, served to the platform by `GetParamDefValue`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DefaultValue {
    /// A string.
    Str(&'static str),
    /// A number.
    Int(i64),
    /// A Boolean.
    Bool(bool),
    /// `Неопределено`.
    Undefined,
}

impl DefaultValue {
    /// As a value.
    pub fn value(self) -> Value {
        match self {
            DefaultValue::Str(s) => Value::Str(s.to_owned()),
            DefaultValue::Int(i) => Value::Int(i),
            DefaultValue::Bool(b) => Value::Bool(b),
            DefaultValue::Undefined => Value::Empty,
        }
    }
}

/// One parameter of a method.
#[derive(Clone, Copy, Debug)]
pub struct ParamDef {
    /// Its names, for error texts and documentation.
    pub names: Names,
    /// What it accepts.
    pub ty: ParamType,
    /// `None`: mandatory.
    pub default: Option<DefaultValue>,
}

/// Methods of both objects. One id may appear in both tables (`Send` on the client and on
/// the server) with different parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum MethodId {
    Connect,
    BeginConnect,
    Disconnect,
    Send,
    SendBinary,
    Receive,
    ReceiveEvent,
    Ping,
    ErrorDescription,
    Run,
    Stop,
    Broadcast,
    BroadcastBinary,
    DisconnectClient,
    ConnectionInfo,
    ReceiveFrom,
    ConnectionList,
    Configure,
    On,
    Off,
    OffAll,
    SendWithAck,
    SendAndWait,
    AckReply,
    SioReceiveEvent,
    Attachment,
    TestEcho,
    TestOut,
    TestNumber,
    TestDefaults,
    TestPanic,
}

/// Properties of both objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum PropId {
    Status,
    Server,
    Version,
    DeliveryMode,
    EventSource,
    QueueCapacity,
    Pending,
    Undelivered,
    Subprotocol,
    ShutdownTimeout,
    ShutdownTimeouts,
    Port,
    Connections,
    ConnectionCount,
    SessionId,
    Connected,
    ConnectTimeout,
    LastError,
    DisconnectReason,
    TestValue,
    TestPanicProp,
}

/// One method.
#[derive(Clone, Copy, Debug)]
pub struct MethodDef {
    /// What the object does when it is called.
    pub id: MethodId,
    /// English and Russian names (what `GetMethodName` answers).
    pub names: Names,
    /// More names `FindMethod` accepts.
    pub aliases: &'static [&'static str],
    /// Parameters, in order.
    pub params: &'static [ParamDef],
    /// Whether it returns a value (`HasRetVal`).
    pub returns: bool,
}

/// One property.
#[derive(Clone, Copy, Debug)]
pub struct PropDef {
    /// What the object reads or writes.
    pub id: PropId,
    /// English and Russian names.
    pub names: Names,
    /// Readable from 1C code.
    pub readable: bool,
    /// `Some(type)`: writable, accepting that type.
    pub writable: Option<ParamType>,
}

/// The member tables of one object, with a case-insensitive index of every name.
pub struct Members {
    /// The name `RegisterExtensionAs` answers: `Client` or `Server`.
    pub class: &'static str,
    /// Methods; the index is the platform's method number.
    pub methods: Vec<MethodDef>,
    /// Properties; the index is the platform's property number.
    pub props: Vec<PropDef>,
    method_index: HashMap<String, usize>,
    prop_index: HashMap<String, usize>,
}

/// Folds a name for case-insensitive lookup in both alphabets (`Ё` and `ё` included).
fn fold(name: &str) -> String {
    name.chars().flat_map(char::to_lowercase).collect()
}

impl Members {
    /// Builds the tables; panics on a duplicate name, which the unit tests rule out.
    pub fn new(
        class: &'static str,
        methods: &[MethodDef],
        props: &[PropDef],
        test_methods: &[MethodDef],
        test_props: &[PropDef],
    ) -> Members {
        let mut methods = methods.to_vec();
        let mut props = props.to_vec();
        if cfg!(feature = "test-hooks") {
            methods.extend_from_slice(test_methods);
            props.extend_from_slice(test_props);
        }
        let mut method_index = HashMap::new();
        for (i, m) in methods.iter().enumerate() {
            for name in [m.names.en, m.names.ru].iter().chain(m.aliases) {
                let prev = method_index.insert(fold(name), i);
                assert!(
                    prev.is_none() || prev == Some(i),
                    "duplicate method name {name}"
                );
            }
        }
        let mut prop_index = HashMap::new();
        for (i, p) in props.iter().enumerate() {
            for name in [p.names.en, p.names.ru] {
                let prev = prop_index.insert(fold(name), i);
                assert!(prev.is_none(), "duplicate property name {name}");
            }
        }
        Members {
            class,
            methods,
            props,
            method_index,
            prop_index,
        }
    }

    /// The method called `name` in any letter case and either language.
    pub fn find_method(&self, name: &str) -> Option<usize> {
        self.method_index.get(&fold(name)).copied()
    }

    /// The property called `name` in any letter case and either language.
    pub fn find_prop(&self, name: &str) -> Option<usize> {
        self.prop_index.get(&fold(name)).copied()
    }
}

const fn n(ru: &'static str, en: &'static str) -> Names {
    Names { ru, en }
}

const fn req(ru: &'static str, en: &'static str, ty: ParamType) -> ParamDef {
    ParamDef {
        names: n(ru, en),
        ty,
        default: None,
    }
}

const fn opt(ru: &'static str, en: &'static str, ty: ParamType, d: DefaultValue) -> ParamDef {
    ParamDef {
        names: n(ru, en),
        ty,
        default: Some(d),
    }
}

const fn method(
    id: MethodId,
    names: Names,
    params: &'static [ParamDef],
    returns: bool,
) -> MethodDef {
    MethodDef {
        id,
        names,
        aliases: &[],
        params,
        returns,
    }
}

const fn ro(id: PropId, names: Names) -> PropDef {
    PropDef {
        id,
        names,
        readable: true,
        writable: None,
    }
}

const fn rw(id: PropId, names: Names, ty: ParamType) -> PropDef {
    PropDef {
        id,
        names,
        readable: true,
        writable: Some(ty),
    }
}

use DefaultValue::{Int, Str as S};
use ParamType::{Any, Binary, Number, Out, Str};

const TIMEOUT: ParamDef = req("Таймаут", "Timeout", Number);
const DATA_OUT: ParamDef = req("Данные", "Data", Out);
const EVENT_OUT: ParamDef = req("Событие", "Event", Out);
const CLIENT_ID: ParamDef = req("ИДКлиента", "ClientId", Number);
const CLOSE_CODE: ParamDef = opt("Код", "Code", Number, Int(1000));
const CLOSE_REASON: ParamDef = opt("Причина", "Reason", Str, S(""));

const ERROR_DESCRIPTION: MethodDef = method(
    MethodId::ErrorDescription,
    n("ОписаниеОшибки", "ErrorDescription"),
    &[],
    true,
);
const RECEIVE_EVENT: MethodDef = method(
    MethodId::ReceiveEvent,
    n("ПолучитьСобытие", "ReceiveEvent"),
    &[TIMEOUT, EVENT_OUT, DATA_OUT],
    true,
);

/// Properties of the dispatch hub, the same on both objects.
const HUB_PROPS: [PropDef; 7] = [
    rw(
        PropId::DeliveryMode,
        n("РежимДоставки", "DeliveryMode"),
        Str,
    ),
    rw(
        PropId::EventSource,
        n("ИсточникСобытий", "EventSource"),
        Str,
    ),
    rw(
        PropId::QueueCapacity,
        n("РазмерОчереди", "QueueCapacity"),
        Number,
    ),
    ro(PropId::Pending, n("ВОчереди", "Pending")),
    ro(PropId::Undelivered, n("НеДоставлено", "Undelivered")),
    rw(
        PropId::ShutdownTimeout,
        n("ТаймаутЗавершения", "ShutdownTimeout"),
        Number,
    ),
    ro(
        PropId::ShutdownTimeouts,
        n("ЗавершенийПоТаймауту", "ShutdownTimeouts"),
    ),
];

const TEST_METHODS: [MethodDef; 5] = [
    method(
        MethodId::TestEcho,
        n("ТестЭхо", "TestEcho"),
        &[req("Значение", "Value", Any)],
        true,
    ),
    method(
        MethodId::TestOut,
        n("ТестВыход", "TestOut"),
        &[req("Значение", "Value", Any), req("Выход", "Result", Out)],
        false,
    ),
    method(
        MethodId::TestNumber,
        n("ТестЧисло", "TestNumber"),
        &[req("Число", "Number", Number)],
        true,
    ),
    method(
        MethodId::TestDefaults,
        n("ТестПоУмолчанию", "TestDefaults"),
        &[
            opt("Строка", "Text", Str, S("по умолчанию")),
            opt("Число", "Number", Number, Int(7)),
            opt("Флаг", "Flag", ParamType::Bool, DefaultValue::Bool(true)),
            opt("Любое", "Anything", Any, DefaultValue::Undefined),
        ],
        true,
    ),
    method(
        MethodId::TestPanic,
        n("ТестПаника", "TestPanic"),
        &[],
        false,
    ),
];

const TEST_PROPS: [PropDef; 2] = [
    rw(PropId::TestValue, n("ТестЗначение", "TestValue"), Any),
    ro(
        PropId::TestPanicProp,
        n("ТестПаникаСвойство", "TestPanicProp"),
    ),
];

/// Methods of `AddIn.WebSocket.Client`.
/// `Подключиться` and `НачатьПодключение` take the same.
const CONNECT_PARAMS: &[ParamDef] = &[
    req("Адрес", "Url", Str),
    opt("Параметры", "Options", Str, S("")),
];

const CLIENT_METHODS: [MethodDef; 9] = [
    method(
        MethodId::Connect,
        n("Подключиться", "Connect"),
        CONNECT_PARAMS,
        true,
    ),
    method(
        MethodId::BeginConnect,
        n("НачатьПодключение", "BeginConnect"),
        CONNECT_PARAMS,
        false,
    ),
    method(
        MethodId::Disconnect,
        n("Отключиться", "Disconnect"),
        &[
            CLOSE_CODE,
            CLOSE_REASON,
            opt("Ждать", "Wait", ParamType::Bool, DefaultValue::Bool(true)),
        ],
        false,
    ),
    method(
        MethodId::Send,
        n("Отправить", "Send"),
        &[req("Текст", "Text", Str)],
        false,
    ),
    method(
        MethodId::SendBinary,
        n("ОтправитьДвоичныеДанные", "SendBinary"),
        &[req("Данные", "Data", Binary)],
        false,
    ),
    MethodDef {
        aliases: &["Принять"],
        ..method(
            MethodId::Receive,
            n("Получить", "Receive"),
            &[TIMEOUT, DATA_OUT],
            true,
        )
    },
    RECEIVE_EVENT,
    method(
        MethodId::Ping,
        n("ОтправитьПинг", "Ping"),
        &[opt("Данные", "Data", Str, S(""))],
        false,
    ),
    ERROR_DESCRIPTION,
];

/// `AddIn.WebSocket.Client`.
pub static CLIENT: LazyLock<Members> = LazyLock::new(|| {
    let mut props = vec![
        ro(PropId::Status, n("Статус", "Status")),
        ro(PropId::Server, n("Сервер", "Server")),
        ro(PropId::Version, n("Версия", "Version")),
        ro(PropId::Subprotocol, n("Подпротокол", "Subprotocol")),
    ];
    props.extend_from_slice(&HUB_PROPS);
    Members::new(
        "Client",
        &CLIENT_METHODS,
        &props,
        &TEST_METHODS,
        &TEST_PROPS,
    )
});

/// Methods of `AddIn.WebSocket.Server`.
const SERVER_METHODS: [MethodDef; 14] = [
    method(
        MethodId::Run,
        n("Запустить", "Run"),
        &[
            req("Интерфейс", "Interface", Str),
            req("Порт", "Port", Number),
            opt("Сертификат", "Certificate", Str, S("")),
            opt("КлючИлиПароль", "KeyOrPassword", Str, S("")),
            opt("Пароль", "Password", Str, S("")),
        ],
        true,
    ),
    method(MethodId::Stop, n("Остановить", "Stop"), &[], false),
    method(
        MethodId::Send,
        n("Отправить", "Send"),
        &[CLIENT_ID, req("Текст", "Text", Str)],
        true,
    ),
    method(
        MethodId::SendBinary,
        n("ОтправитьДвоичныеДанные", "SendBinary"),
        &[CLIENT_ID, req("Данные", "Data", Binary)],
        true,
    ),
    method(
        MethodId::Broadcast,
        n("ОтправитьВсем", "Broadcast"),
        &[req("Текст", "Text", Str)],
        true,
    ),
    method(
        MethodId::BroadcastBinary,
        n("ОтправитьВсемДвоичныеДанные", "BroadcastBinary"),
        &[req("Данные", "Data", Binary)],
        true,
    ),
    MethodDef {
        aliases: &["Получить"],
        ..method(
            MethodId::Receive,
            n("Принять", "Receive"),
            &[TIMEOUT, req("ИДКлиента", "ClientId", Out), DATA_OUT],
            true,
        )
    },
    RECEIVE_EVENT,
    method(
        MethodId::DisconnectClient,
        n("Отключить", "Disconnect"),
        &[CLIENT_ID, CLOSE_CODE, CLOSE_REASON],
        true,
    ),
    method(
        MethodId::ConnectionInfo,
        n("ИнформацияОСоединении", "ConnectionInfo"),
        &[CLIENT_ID],
        true,
    ),
    method(
        MethodId::ReceiveFrom,
        n("ПринятьОт", "ReceiveFrom"),
        &[CLIENT_ID, TIMEOUT, DATA_OUT],
        true,
    ),
    method(
        MethodId::ConnectionList,
        n("СписокСоединений", "ConnectionList"),
        &[],
        true,
    ),
    method(
        MethodId::Configure,
        n("Настроить", "Configure"),
        &[req("Параметры", "Options", Str)],
        false,
    ),
    ERROR_DESCRIPTION,
];

/// `AddIn.WebSocket.Server`.
pub static SERVER: LazyLock<Members> = LazyLock::new(|| {
    let mut props = vec![
        ro(PropId::Server, n("Сервер", "Server")),
        ro(PropId::Port, n("Порт", "Port")),
        ro(PropId::Connections, n("Соединения", "Connections")),
        ro(
            PropId::ConnectionCount,
            n("КоличествоСоединений", "ConnectionCount"),
        ),
        ro(PropId::Status, n("Статус", "Status")),
        ro(PropId::Version, n("Версия", "Version")),
    ];
    props.extend_from_slice(&HUB_PROPS);
    Members::new(
        "Server",
        &SERVER_METHODS,
        &props,
        &TEST_METHODS,
        &TEST_PROPS,
    )
});

const EVENT_NAME: ParamDef = req("ИмяСобытия", "EventName", Str);
const MESSAGE: ParamDef = opt("СтрокаСообщения", "Message", Any, DefaultValue::Undefined);
const AS_JSON: ParamDef = opt(
    "ЭтоJSON",
    "AsJson",
    ParamType::Bool,
    DefaultValue::Bool(false),
);

/// Methods of `AddIn.WebSocket.SocketIO`: ROM-SocketIO's, then ours.
const SOCKETIO_METHODS: [MethodDef; 13] = [
    method(
        MethodId::Connect,
        n("Подключиться", "Connect"),
        &[
            req("URI", "URI", Str),
            opt("Параметры", "Options", Str, S("")),
        ],
        true,
    ),
    method(
        MethodId::BeginConnect,
        n("НачатьПодключение", "BeginConnect"),
        &[
            req("URI", "URI", Str),
            opt("Параметры", "Options", Str, S("")),
        ],
        false,
    ),
    method(
        MethodId::Disconnect,
        n("Отключиться", "Disconnect"),
        &[],
        false,
    ),
    method(
        MethodId::Send,
        n("Отправить", "Send"),
        &[EVENT_NAME, MESSAGE, AS_JSON],
        false,
    ),
    method(MethodId::On, n("Подписаться", "On"), &[EVENT_NAME], false),
    method(MethodId::Off, n("Отписаться", "Off"), &[EVENT_NAME], false),
    method(MethodId::OffAll, n("ОтписатьсяВсе", "OffAll"), &[], false),
    method(
        MethodId::SendWithAck,
        n("ОтправитьСПодтверждением", "SendWithAck"),
        &[EVENT_NAME, MESSAGE, AS_JSON],
        true,
    ),
    method(
        MethodId::SendAndWait,
        n("ОтправитьИЖдать", "SendAndWait"),
        &[
            EVENT_NAME,
            MESSAGE,
            opt("Таймаут", "Timeout", Number, Int(5000)),
            AS_JSON,
        ],
        true,
    ),
    method(
        MethodId::AckReply,
        n("Подтвердить", "Ack"),
        &[req("ИДПодтверждения", "AckId", Number), MESSAGE, AS_JSON],
        false,
    ),
    method(
        MethodId::SioReceiveEvent,
        n("ПолучитьСобытие", "ReceiveEvent"),
        &[TIMEOUT, EVENT_OUT, DATA_OUT],
        true,
    ),
    method(
        MethodId::Attachment,
        n("ПолучитьВложение", "GetAttachment"),
        &[opt("Номер", "Index", Number, Int(0))],
        true,
    ),
    ERROR_DESCRIPTION,
];

/// `AddIn.WebSocket.SocketIO`.
pub static SOCKETIO: LazyLock<Members> = LazyLock::new(|| {
    let mut props = vec![
        ro(PropId::SessionId, n("ИДСессии", "SessionID")),
        ro(PropId::Connected, n("Подключено", "Connected")),
        rw(PropId::ConnectTimeout, n("Таймаут", "Timeout"), Any),
        ro(PropId::Version, n("Версия", "Version")),
        ro(PropId::Status, n("Статус", "Status")),
        ro(PropId::Server, n("Сервер", "Server")),
        ro(PropId::LastError, n("ПоследняяОшибка", "LastError")),
        ro(
            PropId::DisconnectReason,
            n("ПричинаОтключения", "DisconnectReason"),
        ),
    ];
    props.extend_from_slice(&HUB_PROPS);
    Members::new(
        "SocketIO",
        &SOCKETIO_METHODS,
        &props,
        &TEST_METHODS,
        &TEST_PROPS,
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    fn both() -> [&'static Members; 3] {
        [&CLIENT, &SERVER, &SOCKETIO]
    }

    #[test]
    fn both_names_resolve_to_the_same_index_in_any_case() {
        for m in both() {
            for (i, d) in m.methods.iter().enumerate() {
                for name in [d.names.en, d.names.ru].iter().chain(d.aliases) {
                    assert_eq!(m.find_method(name), Some(i), "{name}");
                    assert_eq!(m.find_method(&name.to_uppercase()), Some(i), "{name}");
                    assert_eq!(m.find_method(&name.to_lowercase()), Some(i), "{name}");
                }
            }
            for (i, d) in m.props.iter().enumerate() {
                for name in [d.names.en, d.names.ru] {
                    assert_eq!(m.find_prop(&name.to_uppercase()), Some(i), "{name}");
                    assert_eq!(m.find_prop(&name.to_lowercase()), Some(i), "{name}");
                }
            }
            assert_eq!(m.find_method("НетТакого"), None);
            assert_eq!(m.find_prop(""), None);
        }
    }

    #[test]
    fn receive_has_both_russian_names() {
        assert_eq!(
            CLIENT.find_method("ПРИНЯТЬ"),
            CLIENT.find_method("получить")
        );
        assert_eq!(
            SERVER.find_method("Получить"),
            SERVER.find_method("Receive")
        );
        assert_eq!(
            SERVER.methods[SERVER.find_method("Получить").unwrap()]
                .params
                .len(),
            3
        );
    }

    #[test]
    fn defaults_only_trail() {
        for m in both() {
            for d in &m.methods {
                let first_opt = d.params.iter().position(|p| p.default.is_some());
                if let Some(f) = first_opt {
                    assert!(
                        d.params[f..].iter().all(|p| p.default.is_some()),
                        "{}",
                        d.names.en
                    );
                }
                for p in d.params {
                    if let Some(def) = p.default {
                        assert!(p.ty.accepts(&def.value()), "{}.{}", d.names.en, p.names.en);
                    }
                }
            }
        }
    }

    #[test]
    fn documented_arity() {
        let arity = |m: &Members, name: &str| m.methods[m.find_method(name).unwrap()].params.len();
        assert_eq!(arity(&CLIENT, "Подключиться"), 2);
        assert_eq!(arity(&CLIENT, "Получить"), 2);
        assert_eq!(arity(&CLIENT, "ОписаниеОшибки"), 0);
        assert_eq!(arity(&SERVER, "Запустить"), 5);
        assert_eq!(arity(&SERVER, "Отключить"), 3);
        assert_eq!(arity(&SERVER, "Отправить"), 2);
        assert_eq!(arity(&SERVER, "ПринятьОт"), 3);
        assert_eq!(arity(&SERVER, "ConnectionList"), 0);
        assert!(CLIENT.find_prop("Статус").is_some() && SERVER.find_prop("Соединения").is_some());
    }

    #[test]
    fn test_members_only_with_the_feature() {
        assert_eq!(
            CLIENT.find_method("ТестЭхо").is_some(),
            cfg!(feature = "test-hooks")
        );
        assert_eq!(
            SERVER.find_prop("TestValue").is_some(),
            cfg!(feature = "test-hooks")
        );
    }
}
