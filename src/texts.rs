//! Every text 1C code can read from the add-in: the Russian and English rendering of each
//! [`Error`]. Errors carry data; this module alone turns them into words, so that a
//! translator or a reviewer reads every message in one file.
//!
//! Rules for the texts: written for a 1C developer (what went wrong and what to do), in the
//! language of the interface only (no Russian words in an English text and the reverse), no
//! internal type names or `Debug` output, and input quoted at most [`QUOTE_LIMIT`] characters.

use crate::error::{
    AddressError, Attempt, ClientError, ConnectError, ConnectStage, Error, HandshakeError,
    ProxyError, ProxyFault, ResponseFault, ServerError, SocketFailure, SocksReply,
};
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
            Error::Address(e) => address_text(e, lang),
            Error::Connect(e) => connect_text(e, lang),
            Error::Proxy(e) => proxy_text(e, lang),
            Error::Handshake(e) => handshake_text(e, lang),
            Error::Insecure(inner) => {
                let note = lang.pick(
                    " (внимание: проверка сертификата сервера отключена, tls.insecure)",
                    " (warning: server certificate verification is off, tls.insecure)",
                );
                inner.text(lang) + note
            }
        }
    }
}

fn address_text(e: &AddressError, lang: Lang) -> String {
    let ru = lang == Lang::Ru;
    let (url, why_ru, why_en) = match e {
        AddressError::NotUrl { url } => (
            url,
            "это не адрес вида ws://узел:порт/путь".to_owned(),
            "not an address of the form ws://host:port/path".to_owned(),
        ),
        AddressError::Scheme { url, scheme } => (
            url,
            format!(
                "схема «{}» не поддерживается, ожидается ws:// или wss://",
                quote(scheme)
            ),
            format!(
                "scheme \"{}\" is not supported, expected a ws:// or wss:// scheme",
                quote(scheme)
            ),
        ),
        AddressError::NoHost { url } => (
            url,
            "не указано имя узла (хост)".to_owned(),
            "the host name is missing".to_owned(),
        ),
        AddressError::Host { url } => (
            url,
            "недопустимое имя узла (хост): ни доменное имя, ни IP-адрес (IPv6 пишется в скобках: ws://[::1]:8080/)".to_owned(),
            "invalid host: neither a domain name nor an IP address (write IPv6 in brackets: ws://[::1]:8080/)".to_owned(),
        ),
        AddressError::Port { url } => (
            url,
            "недопустимый порт: ожидается целое число от 1 до 65535".to_owned(),
            "invalid port: expected a whole number from 1 to 65535".to_owned(),
        ),
        AddressError::Fragment { url } => (
            url,
            "у адреса WebSocket не бывает фрагмента «#…» (символ # в пути или параметрах запишите как %23)".to_owned(),
            "a WebSocket address has no fragment \"#…\" (write a # in the path or query as %23)".to_owned(),
        ),
        AddressError::Path { url } => (
            url,
            "путь или параметры запроса содержат недопустимые символы".to_owned(),
            "the path or query contains characters a request cannot carry".to_owned(),
        ),
    };
    if ru {
        format!("Неверный адрес сервера «{}»: {why_ru}", quote(url))
    } else {
        format!("Invalid server address \"{}\": {why_en}", quote(url))
    }
}

fn socket_failure_text(f: SocketFailure, lang: Lang) -> String {
    let ru = lang == Lang::Ru;
    match f {
        SocketFailure::Refused => lang
            .pick("отказ (порт закрыт)", "refused (nothing listens there)")
            .to_owned(),
        SocketFailure::TimedOut => lang.pick("нет ответа", "no answer").to_owned(),
        SocketFailure::Unreachable => lang.pick("узел недоступен", "unreachable").to_owned(),
        SocketFailure::AddressUnavailable => lang
            .pick(
                "адрес недоступен с этого компьютера",
                "address not available from this machine",
            )
            .to_owned(),
        SocketFailure::Reset => lang
            .pick("соединение разорвано", "connection reset")
            .to_owned(),
        SocketFailure::Other { os_code: Some(n) } => {
            if ru {
                format!("ошибка ОС {n}")
            } else {
                format!("OS error {n}")
            }
        }
        SocketFailure::Other { os_code: None } => lang.pick("ошибка", "failed").to_owned(),
    }
}

/// `addr: why; addr: why`, every attempt in order.
fn attempts_text(tried: &[Attempt], lang: Lang) -> String {
    let list: Vec<String> = tried
        .iter()
        .map(|a| format!("{} — {}", a.addr, socket_failure_text(a.failure, lang)))
        .collect();
    list.join("; ")
}

fn connect_text(e: &ConnectError, lang: Lang) -> String {
    let ru = lang == Lang::Ru;
    match e {
        ConnectError::Resolve { host } => {
            if ru {
                format!(
                    "Не удалось найти адрес узла «{}» (DNS): проверьте имя сервера и доступ к DNS",
                    quote(host)
                )
            } else {
                format!(
                    "Cannot resolve host \"{}\" (DNS): check the server name and DNS access",
                    quote(host)
                )
            }
        }
        ConnectError::NoAddress { host } => {
            if ru {
                format!("Для узла «{}» DNS не вернул ни одного адреса", quote(host))
            } else {
                format!("DNS returned no address for host \"{}\"", quote(host))
            }
        }
        ConnectError::Tcp { host, port, tried } => {
            let all_refused = tried.iter().all(|a| a.failure == SocketFailure::Refused);
            let list = attempts_text(tried, lang);
            match (ru, all_refused) {
                (true, true) => format!(
                    "Сервер {}:{port} отклонил подключение (порт закрыт); проверены адреса: {list}",
                    quote(host)
                ),
                (false, true) => format!(
                    "{}:{port} refused the connection (nothing listens there); addresses tried: {list}",
                    quote(host)
                ),
                (true, false) => format!(
                    "Не удалось подключиться к {}:{port}; проверены адреса: {list}",
                    quote(host)
                ),
                (false, false) => format!(
                    "Cannot connect to {}:{port}; addresses tried: {list}",
                    quote(host)
                ),
            }
        }
        ConnectError::Timeout { url, ms, stage } => {
            let (st_ru, st_en) = match stage {
                ConnectStage::Resolve => ("поиск адреса узла (DNS)", "resolving the host name"),
                ConnectStage::Tcp => ("подключение TCP", "the TCP connect"),
                ConnectStage::Proxy => ("туннель через прокси", "the proxy tunnel"),
                ConnectStage::Tls => ("рукопожатие TLS", "the TLS handshake"),
                ConnectStage::Handshake => ("рукопожатие WebSocket", "the WebSocket handshake"),
            };
            if ru {
                format!(
                    "Превышено время ожидания подключения к {} ({ms} мс, timeout_ms), этап: {st_ru}",
                    quote(url)
                )
            } else {
                format!(
                    "Timed out connecting to {} ({ms} ms, timeout_ms), during {st_en}",
                    quote(url)
                )
            }
        }
        ConnectError::TlsName { host } => {
            if ru {
                format!(
                    "Имя узла «{}» нельзя использовать для проверки сертификата TLS",
                    quote(host)
                )
            } else {
                format!(
                    "Host name \"{}\" cannot be used to check a TLS certificate",
                    quote(host)
                )
            }
        }
    }
}

fn socks_reply_text(r: SocksReply, lang: Lang) -> &'static str {
    match r {
        SocksReply::Refused => lang.pick("отказ в подключении", "connection refused"),
        SocksReply::HostUnreachable => lang.pick("узел недоступен", "host unreachable"),
        SocksReply::NetworkUnreachable => lang.pick("сеть недоступна", "network unreachable"),
        SocksReply::ServerFailure => lang.pick("сбой прокси-сервера", "proxy server failure"),
        SocksReply::NotAllowed => lang.pick(
            "запрещено правилами прокси",
            "not allowed by the proxy's rules",
        ),
        SocksReply::TtlExpired => lang.pick("истёк TTL", "TTL expired"),
        SocksReply::NotSupported => lang.pick(
            "команда или тип адреса не поддерживается прокси",
            "command or address type not supported by the proxy",
        ),
        SocksReply::NotSocks => lang.pick(
            "ответ не похож на SOCKS этой версии (проверьте схему адреса прокси)",
            "the answer is not SOCKS of this version (check the proxy URL's scheme)",
        ),
        SocksReply::BadTarget => lang.pick(
            "адрес назначения недопустим для SOCKS",
            "the target address is not valid for SOCKS",
        ),
        SocksReply::Other => lang.pick("ошибка протокола SOCKS", "SOCKS protocol error"),
    }
}

fn proxy_text(e: &ProxyError, lang: Lang) -> String {
    let ru = lang == Lang::Ru;
    let why = match &e.fault {
        ProxyFault::Resolve => lang
            .pick(
                "не удалось найти адрес прокси-сервера (DNS)",
                "cannot resolve the proxy's host name (DNS)",
            )
            .to_owned(),
        ProxyFault::Tcp { tried } => {
            let list = attempts_text(tried, lang);
            if ru {
                format!("не удалось подключиться к прокси; проверены адреса: {list}")
            } else {
                format!("cannot connect to the proxy; addresses tried: {list}")
            }
        }
        ProxyFault::WrongCredentials => lang
            .pick(
                "неверный логин или пароль прокси",
                "wrong proxy user name or password",
            )
            .to_owned(),
        ProxyFault::CredentialsRequired => lang
            .pick(
                "прокси требует авторизацию: укажите логин и пароль в адресе (http://логин:пароль@узел:порт)",
                "the proxy requires authentication: give user and password in its URL (http://user:pass@host:port)",
            )
            .to_owned(),
        ProxyFault::HungUpOnLogin => lang
            .pick(
                "прокси закрыл соединение при проверке логина: вероятно, неверный логин или пароль прокси",
                "the proxy hung up while checking the login: probably a wrong proxy user name or password",
            )
            .to_owned(),
        ProxyFault::TargetUnreachable { target, why } => {
            let why = socks_reply_text(*why, lang);
            if ru {
                format!("не удалось подключиться к {}: {why}", quote(target))
            } else {
                format!("cannot reach {}: {why}", quote(target))
            }
        }
        ProxyFault::Socks { why } => socks_reply_text(*why, lang).to_owned(),
        ProxyFault::NoIpv4 { host } => {
            if ru {
                format!(
                    "SOCKS4 требует IPv4-адрес, а узел «{}» его не имеет (используйте socks5://)",
                    quote(host)
                )
            } else {
                format!(
                    "SOCKS4 needs an IPv4 address and \"{}\" has none (use socks5://)",
                    quote(host)
                )
            }
        }
        ProxyFault::Lost { failure } => {
            let f = socket_failure_text(*failure, lang);
            if ru {
                format!("обрыв связи при установке туннеля: {f}")
            } else {
                format!("connection lost while opening the tunnel: {f}")
            }
        }
        ProxyFault::HeadTooLong => lang
            .pick(
                "слишком длинный ответ на CONNECT",
                "the answer to CONNECT is too long",
            )
            .to_owned(),
        ProxyFault::NotHttp { status_line } => {
            if ru {
                format!("это не HTTP-прокси (ответ «{}»)", quote(status_line))
            } else {
                format!("not an HTTP proxy (answer \"{}\")", quote(status_line))
            }
        }
        ProxyFault::Refused {
            target,
            status_line,
        } => {
            if ru {
                format!(
                    "отказ в туннеле к {}: «{}»",
                    quote(target),
                    quote(status_line)
                )
            } else {
                format!(
                    "refused the tunnel to {}: \"{}\"",
                    quote(target),
                    quote(status_line)
                )
            }
        }
    };
    if ru {
        format!("Прокси-сервер {}: {why}", quote(&e.proxy))
    } else {
        format!("Proxy {}: {why}", quote(&e.proxy))
    }
}

fn handshake_text(e: &HandshakeError, lang: Lang) -> String {
    let ru = lang == Lang::Ru;
    let why = match e {
        HandshakeError::Status { code } => {
            return if ru {
                format!("Сервер отклонил рукопожатие WebSocket: HTTP {code}")
            } else {
                format!("The server refused the WebSocket handshake: HTTP {code}")
            };
        }
        HandshakeError::NoSubprotocol => lang
            .pick(
                "сервер не выбрал ни один из предложенных подпротоколов (subprotocols)",
                "the server accepted none of the offered subprotocols (subprotocols)",
            )
            .to_owned(),
        HandshakeError::UnofferedSubprotocol => lang
            .pick(
                "сервер выбрал подпротокол, который не предлагался",
                "the server chose a subprotocol that was not offered",
            )
            .to_owned(),
        HandshakeError::UnofferedExtension { extensions } => {
            if ru {
                format!(
                    "сервер включил расширение «{}», которое не предлагалось (RFC 6455 §4.1): соединение разорвано",
                    quote(extensions)
                )
            } else {
                format!(
                    "the server enabled extension \"{}\", which was not offered (RFC 6455 §4.1): connection dropped",
                    quote(extensions)
                )
            }
        }
        HandshakeError::BadResponse { fault } => {
            let (f_ru, f_en) = match fault {
                ResponseFault::NotHttp => ("ответ не HTTP", "the answer is not HTTP"),
                ResponseFault::NoUpgrade => (
                    "нет заголовка Upgrade: websocket",
                    "no Upgrade: websocket header",
                ),
                ResponseFault::NoConnectionUpgrade => (
                    "нет заголовка Connection: Upgrade",
                    "no Connection: Upgrade header",
                ),
                ResponseFault::AcceptMismatch => (
                    "неверный Sec-WebSocket-Accept",
                    "wrong Sec-WebSocket-Accept",
                ),
                ResponseFault::TooLarge => (
                    "слишком большой заголовок ответа",
                    "the response head is too large",
                ),
                ResponseFault::Incomplete => (
                    "сервер закрыл соединение, не ответив полностью",
                    "the server hung up before answering completely",
                ),
                ResponseFault::Other => (
                    "ответ нарушает протокол",
                    "the answer violates the protocol",
                ),
            };
            if ru {
                format!("неверный ответ сервера: {f_ru} (это сервер WebSocket?)")
            } else {
                format!("invalid answer from the server: {f_en} (is it a WebSocket server?)")
            }
        }
        HandshakeError::Lost { failure } => {
            let f = socket_failure_text(*failure, lang);
            if ru {
                format!("обрыв связи: {f}")
            } else {
                format!("connection lost: {f}")
            }
        }
        HandshakeError::RequestHeader { name } => {
            return if ru {
                format!(
                    "Недопустимый заголовок «{}» (headers): имя и значение — только символы ASCII",
                    quote(name)
                )
            } else {
                format!(
                    "Invalid header \"{}\" (headers): name and value must be ASCII",
                    quote(name)
                )
            };
        }
        HandshakeError::Subprotocols { list } => {
            return if ru {
                format!("Недопустимый список подпротоколов «{}»", quote(list))
            } else {
                format!("Invalid subprotocol list \"{}\"", quote(list))
            };
        }
    };
    if ru {
        format!("Ошибка рукопожатия WebSocket: {why}")
    } else {
        format!("WebSocket handshake failed: {why}")
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
