//! Every text 1C code can read from the add-in: the Russian and English rendering of each
//! [`Error`]. Errors carry data; this module alone turns them into words, so that a
//! translator or a reviewer reads every message in one file.
//!
//! Rules for the texts: written for a 1C developer (what went wrong and what to do), in the
//! language of the interface only (no Russian words in an English text and the reverse), no
//! internal type names or `Debug` output, and input quoted at most [`QUOTE_LIMIT`] characters.

use crate::error::{ClientError, Error, ServerError};
use crate::lang::Lang;

/// How many characters of user input an error text quotes at most.
pub const QUOTE_LIMIT: usize = 200;

/// `s` cut to [`QUOTE_LIMIT`] characters, with "…" when it was longer.
pub fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_LIMIT) {
        None => s.to_owned(),
        Some((at, _)) => format!("{}…", &s[..at]),
    }
}

impl Error {
    /// The text 1C code gets in `ОписаниеОшибки()`, in `lang`.
    pub fn text(&self, lang: Lang) -> String {
        let ru = lang == Lang::Ru;
        match self {
            Error::ArgType {
                method,
                param,
                index,
                expected,
                got,
            } => {
                if ru {
                    format!(
                        "Неверный тип параметра {index} ({}) метода {}: ожидается {}, передано {}",
                        param.ru,
                        method.ru,
                        expected.name(lang),
                        got.name(lang)
                    )
                } else {
                    format!(
                        "Wrong type of argument {index} ({}) of method {}: expected {}, got {}",
                        param.en,
                        method.en,
                        expected.name(lang),
                        got.name(lang)
                    )
                }
            }
            Error::ArgCount {
                method,
                expected,
                got,
            } => {
                if ru {
                    format!(
                        "Неверное количество параметров метода {}: ожидается {expected}, передано {got}",
                        method.ru
                    )
                } else {
                    format!(
                        "Wrong number of arguments of method {}: expected {expected}, got {got}",
                        method.en
                    )
                }
            }
            Error::PropType {
                prop,
                expected,
                got,
            } => {
                if ru {
                    format!(
                        "Неверный тип значения свойства {}: ожидается {}, передано {}",
                        prop.ru,
                        expected.name(lang),
                        got.name(lang)
                    )
                } else {
                    format!(
                        "Wrong type of value for property {}: expected {}, got {}",
                        prop.en,
                        expected.name(lang),
                        got.name(lang)
                    )
                }
            }
            Error::ReadOnly { prop } => {
                if ru {
                    format!("Свойство {} доступно только для чтения", prop.ru)
                } else {
                    format!("Property {} is read-only", prop.en)
                }
            }
            Error::NotReadable { prop } => {
                if ru {
                    format!("Свойство {} недоступно для чтения", prop.ru)
                } else {
                    format!("Property {} is not readable", prop.en)
                }
            }
            Error::NoSuchMember { index } => {
                if ru {
                    format!("Нет члена объекта с номером {index}")
                } else {
                    format!("No member with index {index}")
                }
            }
            Error::NotImplemented { member } => {
                if ru {
                    format!("{} ещё не реализовано в этой версии компоненты", member.ru)
                } else {
                    format!(
                        "{} is not implemented in this version of the add-in yet",
                        member.en
                    )
                }
            }
            Error::InvalidValue {
                what,
                ru: why_ru,
                en: why_en,
            } => {
                if ru {
                    format!("Недопустимое значение {}: {why_ru}", what.ru)
                } else {
                    format!("Invalid value of {}: {why_en}", what.en)
                }
            }
            Error::NotWhole {
                what,
                min,
                max,
                got,
            } => {
                let got = if got.is_nan() {
                    String::new()
                } else if ru {
                    format!(", передано {got}")
                } else {
                    format!(", got {got}")
                };
                if ru {
                    format!(
                        "Недопустимое значение {}: ожидается целое число от {min} до {max}{got}",
                        what.ru
                    )
                } else {
                    format!(
                        "Invalid value of {}: expected a whole number from {min} to {max}{got}",
                        what.en
                    )
                }
            }
            Error::UnknownMode { got } => {
                let got = quote(got);
                if ru {
                    format!(
                        "Недопустимое значение РежимДоставки: «{got}»; допустимы Авто, Опрос, События, Уведомления"
                    )
                } else {
                    format!(
                        "Invalid value of DeliveryMode: \"{got}\"; expected auto, pull, push or notify"
                    )
                }
            }
            Error::ObjectDone => lang
                .pick(
                    "Объект уже завершён (Done)",
                    "The object is done (Done was called)",
                )
                .to_owned(),
            Error::Client(e) => client(e, lang),
            Error::Server(e) => server(e, lang),
            Error::Panic(msg) => {
                if ru {
                    format!("Внутренняя ошибка компоненты (паника перехвачена): {msg}")
                } else {
                    format!("Internal add-in error (panic caught): {msg}")
                }
            }
            Error::Runtime(e) => {
                if ru {
                    format!("Не удалось запустить фоновые потоки компоненты: {e}")
                } else {
                    format!("Could not start the add-in's background threads: {e}")
                }
            }
            Error::Net {
                ru: text_ru,
                en: text_en,
            } => lang.pick(text_ru, text_en).to_owned(),
            Error::Platform {
                ru: text_ru,
                en: text_en,
            } => lang.pick(text_ru, text_en).to_owned(),
        }
    }
}

fn client(e: &ClientError, lang: Lang) -> String {
    let ru = lang == Lang::Ru;
    match e {
        ClientError::NotConnected => lang
            .pick("Нет подключения к серверу", "Not connected")
            .to_owned(),
        ClientError::Reconnecting => lang
            .pick(
                "Нет подключения к серверу: связь потеряна, идёт переподключение",
                "Not connected: the connection was lost, reconnecting",
            )
            .to_owned(),
        ClientError::AlreadyConnected => lang
            .pick("Подключение уже выполнено", "Already connected")
            .to_owned(),
        ClientError::ConnectTimedOut { url } => {
            let url = quote(url);
            if ru {
                format!("Превышено время ожидания подключения к {url}")
            } else {
                format!("Timed out connecting to {url}")
            }
        }
        ClientError::QueueFull { waited_ms } => {
            if ru {
                format!("Очередь отправки переполнена: сервер не принимает данные {waited_ms} мс")
            } else {
                format!("The send queue is full: the server has not taken data for {waited_ms} ms")
            }
        }
        ClientError::PingTooLong { len } => {
            if ru {
                format!(
                    "Данные пинга длиннее 125 байт ({len} байт в UTF-8): управляющий кадр WebSocket больше не вмещает"
                )
            } else {
                format!(
                    "Ping data is longer than 125 bytes ({len} bytes in UTF-8): a WebSocket control frame holds no more"
                )
            }
        }
    }
}

fn server(e: &ServerError, lang: Lang) -> String {
    let ru = lang == Lang::Ru;
    match e {
        ServerError::AlreadyRunning => lang
            .pick("Сервер уже запущен", "The server is already running")
            .to_owned(),
        ServerError::PersistentElsewhere {
            name,
            interface,
            port,
        } => {
            let (name, interface) = (quote(name), quote(interface));
            if ru {
                format!("Постоянный сервер «{name}» уже запущен на {interface}:{port}")
            } else {
                format!("The persistent server \"{name}\" already runs on {interface}:{port}")
            }
        }
        ServerError::NoSuchInterface { interface } => {
            let interface = quote(interface);
            if ru {
                format!("Нет такого сетевого интерфейса на этом компьютере: «{interface}»")
            } else {
                format!("No such network interface on this computer: \"{interface}\"")
            }
        }
        ServerError::PortInUse { interface, port } => {
            let interface = quote(interface);
            if ru {
                format!("Порт {port} на {interface} уже занят другой программой")
            } else {
                format!("Port {port} on {interface} is already in use")
            }
        }
        ServerError::PortNotPermitted { port } => {
            if ru {
                format!(
                    "Нет прав слушать порт {port} (порты ниже 1024 требуют прав администратора)"
                )
            } else {
                format!("No permission to listen on port {port} (ports below 1024 need privileges)")
            }
        }
        ServerError::Listen {
            interface,
            port,
            os,
        } => {
            let interface = quote(interface);
            if ru {
                format!("Не удалось занять {interface}:{port} (ответ системы: {os})")
            } else {
                format!("Cannot listen on {interface}:{port} (the system says: {os})")
            }
        }
        ServerError::QueueFull { id, waited_ms } => {
            if ru {
                format!(
                    "Клиент {id} не принимает данные {waited_ms} мс: очередь отправки переполнена"
                )
            } else {
                format!("Client {id} has not taken data for {waited_ms} ms: the send queue is full")
            }
        }
        ServerError::NoConnection { id } => {
            if ru {
                format!("Нет соединения с ИДКлиента {id}")
            } else {
                format!("No connection with ClientId {id}")
            }
        }
        ServerError::ConfigureWhileRunning => lang
            .pick(
                "Настроить вызывается до Запустить (сервер уже запущен)",
                "Configure must be called before Run (the server is running)",
            )
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_bounded() {
        assert_eq!(quote("abc"), "abc");
        let long = "я".repeat(QUOTE_LIMIT * 10);
        let q = quote(&long);
        assert_eq!(q.chars().count(), QUOTE_LIMIT + 1);
        assert!(q.ends_with('…'));
    }
}
