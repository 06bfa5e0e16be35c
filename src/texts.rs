//! Every text 1C code can read from the add-in: the Russian and English rendering of each
//! [`Error`]. Errors carry data; this module alone turns them into words, so that a
//! translator or a reviewer reads every message in one file.
//!
//! Rules for the texts: written for a 1C developer (what went wrong and what to do), in the
//! language of the interface only (no Russian words in an English text and the reverse), no
//! internal type names or `Debug` output, and input quoted at most [`QUOTE_LIMIT`] characters.

use crate::error::{
    AddressError, AlertKind, ArgProblem, ArgRole, Attempt, CertProblem, ClientError, ConnectError,
    ConnectStage, Error, Expected, FileError, FileKind, HandshakeError, HandshakeProblem,
    OptionsError, OptionsObject, OptionsProblem, PemProblem, ProxyError, ProxyFault, ProxyUrlFault,
    ResponseFault, ServerError, SioError, SocketFailure, SocksReply, TlsError,
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
            Error::SocketIo(e) => socketio(e, lang),
            Error::Server(e) => server(e, lang),
            Error::Tls(e) => tls(e, lang),
            Error::File(e) => file(e, lang),
            Error::Options(e) => options(e, lang),
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

fn socketio(e: &SioError, lang: Lang) -> String {
    let ru = lang == Lang::Ru;
    match e {
        SioError::Refused { nsp, message } => {
            let (nsp, message) = (quote(nsp), quote(message));
            if ru {
                format!("Сервер Socket.IO отказал в подключении к пространству {nsp}: {message}")
            } else {
                format!("The Socket.IO server refused the connection to namespace {nsp}: {message}")
            }
        }
        SioError::BadPacket { packet } => {
            let packet = quote(packet);
            if ru {
                format!("Сервер прислал пакет не по протоколу Socket.IO: {packet}")
            } else {
                format!("The server sent a packet that is not Socket.IO: {packet}")
            }
        }
        SioError::Lost { why } => {
            let why = quote(why);
            if ru {
                format!("Соединение разорвано до подключения к пространству Socket.IO ({why})")
            } else {
                format!("The connection ended before the Socket.IO namespace was joined ({why})")
            }
        }
        SioError::BadOption { key, expected } => {
            if ru {
                format!("Неверное значение параметра {key}: ожидается {expected}")
            } else {
                format!("Wrong value of option {key}: expected {expected}")
            }
        }
        SioError::NotJson { text } => {
            let text = quote(text);
            if ru {
                format!("Сообщение не является JSON (ЭтоJSON = Истина): {text}")
            } else {
                format!("The message is not JSON (AsJson = True): {text}")
            }
        }
        SioError::EmptyName => lang
            .pick(
                "Имя события не может быть пустым",
                "The event name cannot be empty",
            )
            .to_owned(),
        SioError::AckTimeout { ms } => {
            if ru {
                format!("Сервер не подтвердил событие за {ms} мс")
            } else {
                format!("The server did not acknowledge the event within {ms} ms")
            }
        }
        SioError::AckLost => lang
            .pick(
                "Соединение разорвано до подтверждения события сервером",
                "The connection ended before the server acknowledged the event",
            )
            .to_owned(),
        SioError::NoAttachment { index, count } => {
            if ru {
                format!(
                    "Нет вложения с номером {index}: у последнего полученного события их {count} (нумерация с 0)"
                )
            } else {
                format!(
                    "No attachment number {index}: the last event received has {count} (numbered from 0)"
                )
            }
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
        ClientError::Connecting => lang
            .pick(
                "Подключение ещё выполняется: дождитесь события Open (или Fail)",
                "Still connecting: wait for the Open (or Fail) event",
            )
            .to_owned(),
        ClientError::PersistentElsewhere { name, url } => {
            let (name, url) = (quote(name), quote(url));
            if ru {
                format!(
                    "Постоянное подключение «{name}» уже установлено с другим адресом: {url} (отключите его методом Отключиться или выберите другое имя)"
                )
            } else {
                format!(
                    "The persistent connection \"{name}\" is already made to another address: {url} (end it with Disconnect or choose another name)"
                )
            }
        }
        ClientError::PersistentInUse { name } => {
            let name = quote(name);
            if ru {
                format!(
                    "Постоянное подключение «{name}» уже используется другим объектом: к нему подключается один объект за раз (уничтожьте тот объект или вызовите у него Отключиться)"
                )
            } else {
                format!(
                    "The persistent connection \"{name}\" is in use by another object: one object attaches at a time (destroy that object or call its Disconnect)"
                )
            }
        }
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
        ServerError::PersistentInUse { name } => {
            let name = quote(name);
            if ru {
                format!(
                    "Постоянный сервер «{name}» уже используется другим объектом: к нему подключается один объект за раз (уничтожьте тот объект или вызовите у него Остановить)"
                )
            } else {
                format!(
                    "The persistent server \"{name}\" is in use by another object: one object attaches at a time (destroy that object or call its Stop)"
                )
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
        ServerError::BlankInterface => lang
            .pick(
                "Не указан интерфейс: задайте адрес (например 127.0.0.1), а для всех интерфейсов — явно 0.0.0.0, :: или *",
                "No interface given: pass an address (for example 127.0.0.1), or for every interface explicitly 0.0.0.0, :: or *",
            )
            .to_owned(),
        ServerError::ConfigureWhileRunning => lang
            .pick(
                "Настроить вызывается до Запустить (сервер уже запущен)",
                "Configure must be called before Run (the server is running)",
            )
            .to_owned(),
    }
}

/// What a file is for, as a noun phrase: "файл ключа" / "key file".
fn file_kind(kind: FileKind, lang: Lang) -> &'static str {
    match kind {
        FileKind::Certificate => lang.pick("файл сертификата", "certificate file"),
        FileKind::Key => lang.pick("файл ключа", "key file"),
        FileKind::Pfx => lang.pick("файл PFX", "PFX file"),
        FileKind::CaBundle => lang.pick(
            "файл сертификатов центров сертификации",
            "CA certificate file",
        ),
        FileKind::Log => lang.pick("файл журнала", "log file"),
    }
}

/// The OS's reason, without its own (English-only) text.
fn io_reason(e: &std::io::Error, lang: Lang) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => lang.pick("файл или папка не найдены", "no such file or folder"),
        K::PermissionDenied => lang.pick("нет прав доступа", "permission denied"),
        K::IsADirectory => lang.pick("это папка", "it is a folder"),
        K::ReadOnlyFilesystem => lang.pick("диск только для чтения", "read-only file system"),
        K::StorageFull => lang.pick("диск заполнен", "the disk is full"),
        _ => {
            return match e.raw_os_error() {
                Some(code) => {
                    lang.pick("ошибка ввода-вывода, код ", "input/output error, code ")
                        .to_owned()
                        + &code.to_string()
                }
                None => lang
                    .pick("ошибка ввода-вывода", "input/output error")
                    .to_owned(),
            };
        }
    }
    .to_owned()
}

/// A byte count as a 1C developer reads it.
fn size_text(bytes: u64, lang: Lang) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} {}", bytes >> 20, lang.pick("МиБ", "MiB"))
    } else {
        format!("{bytes} {}", lang.pick("байт", "bytes"))
    }
}

/// The texts of [`FileError`].
fn file(e: &FileError, lang: Lang) -> String {
    let ru = lang == Lang::Ru;
    match e {
        FileError::Io { kind, path, error } => {
            let path = quote(path);
            let why = io_reason(error, lang);
            let what = file_kind(*kind, lang);
            match (kind, ru) {
                (FileKind::Log, true) => format!("Не удалось открыть {what} «{path}»: {why}"),
                (FileKind::Log, false) => format!("Cannot open the {what} \"{path}\": {why}"),
                (_, true) => format!("Не удалось прочитать {what} «{path}»: {why}"),
                (_, false) => format!("Cannot read the {what} \"{path}\": {why}"),
            }
        }
        FileError::NotRegular { kind, path } => {
            let (path, what) = (quote(path), file_kind(*kind, lang));
            if ru {
                format!(
                    "«{path}» ({what}) — не обычный файл (папка, устройство, канал или сокет): укажите путь к файлу"
                )
            } else {
                format!(
                    "\"{path}\" ({what}) is not a regular file (a folder, device, pipe or socket): give the path of a file"
                )
            }
        }
        FileError::TooLarge { kind, path, limit } => {
            let (path, what, limit) =
                (quote(path), file_kind(*kind, lang), size_text(*limit, lang));
            if ru {
                format!("«{path}» ({what}) больше допустимых {limit}: это не тот файл?")
            } else {
                format!(
                    "\"{path}\" ({what}) is larger than the allowed {limit}: is it the right file?"
                )
            }
        }
        FileError::NoAnswer {
            kind,
            path,
            waited_ms,
        } => {
            let (path, what) = (quote(path), file_kind(*kind, lang));
            if ru {
                format!(
                    "«{path}» ({what}) не открылся и не прочитался за {waited_ms} мс: путь не отвечает (сетевой ресурс недоступен?)"
                )
            } else {
                format!(
                    "\"{path}\" ({what}) did not open and read within {waited_ms} ms: the path does not answer (a network share that is unavailable?)"
                )
            }
        }
        FileError::NoThread(e) => {
            let why = io_reason(e, lang);
            if ru {
                format!("Не удалось запустить поток чтения файлов: {why}")
            } else {
                format!("Could not start the file reading thread: {why}")
            }
        }
    }
}

fn pem_problem(p: &PemProblem, lang: Lang) -> String {
    match p {
        PemProblem::Unterminated => lang.pick(
            "нет строки END (файл обрезан или повреждён)",
            "no END line (the file is truncated or damaged)",
        ),
        PemProblem::BadBase64 => lang.pick(
            "содержимое не в кодировке base64 (файл повреждён)",
            "the content is not valid base64 (the file is damaged)",
        ),
        PemProblem::BadHeaders => lang.pick(
            "повреждены заголовки шифрования (Proc-Type, DEK-Info)",
            "the encryption headers (Proc-Type, DEK-Info) are damaged",
        ),
        PemProblem::UnsupportedCipher(c) => {
            let c = quote(c);
            return if lang == Lang::Ru {
                format!(
                    "шифр «{c}» не поддерживается (поддерживаются AES-128-CBC, AES-192-CBC, AES-256-CBC, DES-EDE3-CBC); перешифруйте ключ: openssl pkcs8 -topk8 -in старый.pem -out ключ.pem"
                )
            } else {
                format!(
                    "the cipher \"{c}\" is not supported (AES-128-CBC, AES-192-CBC, AES-256-CBC and DES-EDE3-CBC are); re-encrypt the key: openssl pkcs8 -topk8 -in old.pem -out key.pem"
                )
            };
        }
        PemProblem::NeedsPassword => lang.pick(
            "ключ зашифрован: укажите пароль",
            "the key is encrypted: give its password",
        ),
        PemProblem::WrongPasswordOrDamaged => lang.pick(
            "неверный пароль или повреждённый ключ",
            "wrong password or damaged key",
        ),
        PemProblem::Damaged => lang.pick(
            "содержимое повреждено или не соответствует заголовку",
            "the content is damaged or is not what its label says",
        ),
    }
    .to_owned()
}

fn arg_role(r: ArgRole, lang: Lang) -> &'static str {
    match r {
        ArgRole::Empty => lang.pick("не указан", "not given"),
        ArgRole::CertificatePem => lang.pick(
            "файл PEM с сертификатами, без ключа",
            "a PEM file with certificates, without a key",
        ),
        ArgRole::CombinedPem => lang.pick(
            "файл PEM с сертификатами и ключом",
            "a PEM file with certificates and their key",
        ),
        ArgRole::Pfx => lang.pick("файл PFX (PKCS#12)", "a PFX (PKCS#12) file"),
        ArgRole::KeyFile => lang.pick("файл ключа", "the key file"),
        ArgRole::Password => lang.pick("пароль", "a password"),
    }
}

fn arg_problem(p: ArgProblem, lang: Lang) -> &'static str {
    match p {
        ArgProblem::KeyWithoutCertificate => lang.pick(
            "ключ или пароль указан без сертификата, и сервер запустился бы без TLS (ws://); укажите сертификат или уберите ключ и пароль",
            "a key or password is given without a certificate, so the server would start without TLS (ws://); give the certificate or leave the key and password out",
        ),
        ArgProblem::NoKey => lang.pick(
            "в файле сертификата нет закрытого ключа, а файл ключа не указан",
            "the certificate file holds no private key and no key file is given",
        ),
        ArgProblem::KeyFileMissing => lang.pick(
            "файл ключа не найден (в файле сертификата нет ключа, поэтому второй параметр — путь к файлу ключа, а не пароль)",
            "the key file does not exist (the certificate file holds no key, so the second argument is the key file's path, not a password)",
        ),
        ArgProblem::KeyTwice => lang.pick(
            "ключ уже есть в файле сертификата, а второй параметр называет ещё и файл",
            "the certificate file already holds the key, and the second argument names a file as well",
        ),
        ArgProblem::PasswordTwice => lang.pick(
            "пароль указан дважды, а используется один",
            "a password is given twice where one is used",
        ),
        ArgProblem::PasswordUnused => lang.pick(
            "указан пароль, но ключ не зашифрован (не опечатка ли это в пути к файлу ключа?)",
            "a password is given but the key is not encrypted (is it a mistyped key file path?)",
        ),
    }
}

fn cert_problem_text(p: &CertProblem, host: &str, lang: Lang) -> String {
    let ru = lang == Lang::Ru;
    match p {
        CertProblem::UnknownIssuer => lang.pick(
            "сертификат сервера не доверен: его издатель неизвестен (сертификат самоподписанный или выдан центром, которого нет среди доверенных); добавьте сертификат центра в tls.ca_file",
            "the server certificate is not trusted: its issuer is unknown (a self-signed certificate, or one issued by a CA that is not among the trusted roots); add the CA's certificate with tls.ca_file",
        ),
        CertProblem::Expired => lang.pick(
            "срок действия сертификата сервера истёк (проверьте и часы этого компьютера)",
            "the server certificate has expired (check this computer's clock too)",
        ),
        CertProblem::NotValidYet => lang.pick(
            "сертификат сервера ещё не действует (проверьте часы этого компьютера)",
            "the server certificate is not valid yet (check this computer's clock)",
        ),
        CertProblem::NotValidForName { presented } => {
            let host = quote(host);
            let names: Vec<String> = presented.iter().take(10).map(|n| quote(n)).collect();
            let names = names.join(", ");
            return match (ru, names.is_empty()) {
                (true, true) => format!("сертификат сервера выдан не для «{host}»"),
                (true, false) => {
                    format!("сертификат сервера выдан не для «{host}», а для: {names}")
                }
                (false, true) => format!("the server certificate is not valid for \"{host}\""),
                (false, false) => format!(
                    "the server certificate is not valid for \"{host}\", only for: {names}"
                ),
            };
        }
        CertProblem::CaUsedAsEndEntity => lang.pick(
            "сервер предъявил сертификат центра сертификации вместо собственного; на сервере нужен сертификат, выданный этим центром",
            "the server presented a CA certificate instead of its own; the server needs a certificate issued by that CA",
        ),
        CertProblem::Revoked => lang.pick(
            "сертификат сервера отозван его издателем",
            "the server certificate has been revoked by its issuer",
        ),
        CertProblem::UnknownRevocationStatus => lang.pick(
            "не удалось проверить, не отозван ли сертификат сервера",
            "whether the server certificate was revoked could not be checked",
        ),
        CertProblem::BadSignature => lang.pick(
            "подпись сертификата сервера неверна",
            "the signature of the server certificate is invalid",
        ),
        CertProblem::UnsupportedSignature => lang.pick(
            "сертификат сервера подписан неподдерживаемым алгоритмом",
            "the server certificate is signed with an unsupported algorithm",
        ),
        CertProblem::InvalidPurpose => lang.pick(
            "сертификат сервера выдан не для аутентификации сервера",
            "the server certificate is not issued for server authentication",
        ),
        CertProblem::BadEncoding => lang.pick(
            "сертификат сервера повреждён",
            "the server certificate is malformed",
        ),
        CertProblem::UnhandledCriticalExtension => lang.pick(
            "сертификат сервера содержит неизвестное критическое расширение",
            "the server certificate has an unknown critical extension",
        ),
        CertProblem::Other => lang.pick(
            "сертификат сервера отклонён",
            "the server certificate was rejected",
        ),
    }
    .to_owned()
}

fn handshake_problem_text(p: &HandshakeProblem, host: &str, lang: Lang) -> String {
    let ru = lang == Lang::Ru;
    match p {
        HandshakeProblem::ServerCertificate(c) => return cert_problem_text(c, host, lang),
        HandshakeProblem::ClientCertificateRefused => lang.pick(
            "сервер не принял клиентский сертификат или требует его (tls.cert_file / tls.pfx_file)",
            "the server refused the client certificate or requires one (tls.cert_file / tls.pfx_file)",
        ),
        HandshakeProblem::Alert(AlertKind::NoCommonParameters) | HandshakeProblem::Incompatible => {
            lang.pick(
                "у сервера и компоненты нет общих версий протокола TLS или шифров",
                "the server and the add-in have no TLS version or cipher in common",
            )
        }
        HandshakeProblem::Alert(AlertKind::CertificateRefused) => lang.pick(
            "сервер отклонил сертификат",
            "the server refused a certificate",
        ),
        HandshakeProblem::Alert(AlertKind::AccessDenied) => {
            lang.pick("сервер отказал в доступе", "the server denied access")
        }
        HandshakeProblem::Alert(AlertKind::UnknownName) => {
            let host = quote(host);
            return if ru {
                format!("сервер не обслуживает имя «{host}» (SNI)")
            } else {
                format!("the server does not serve the name \"{host}\" (SNI)")
            };
        }
        HandshakeProblem::Alert(AlertKind::Other(n)) => {
            return if ru {
                format!("сервер прервал рукопожатие (сигнал TLS номер {n})")
            } else {
                format!("the server aborted the handshake (TLS alert number {n})")
            };
        }
        HandshakeProblem::Misbehaved => lang.pick(
            "сервер нарушил протокол TLS (возможно, по этому адресу нет TLS: попробуйте ws:// вместо wss://)",
            "the server broke the TLS protocol (perhaps there is no TLS at this address: try ws:// instead of wss://)",
        ),
        HandshakeProblem::Closed => lang.pick(
            "сервер закрыл соединение во время рукопожатия TLS",
            "the server closed the connection during the TLS handshake",
        ),
        HandshakeProblem::Other => {
            lang.pick("рукопожатие TLS не удалось", "the TLS handshake failed")
        }
    }
    .to_owned()
}

/// The texts of [`TlsError`].
fn tls(e: &TlsError, lang: Lang) -> String {
    let ru = lang == Lang::Ru;
    match e {
        TlsError::Pem {
            path,
            section,
            label,
            problem,
        } => {
            let (path, label, why) = (quote(path), quote(label), pem_problem(problem, lang));
            if ru {
                format!("Раздел {section} ({label}) файла «{path}»: {why}")
            } else {
                format!("Section {section} ({label}) of \"{path}\": {why}")
            }
        }
        TlsError::NoCertificates { path } => {
            let path = quote(path);
            if ru {
                format!("В файле «{path}» нет сертификатов (BEGIN CERTIFICATE)")
            } else {
                format!("No certificates (BEGIN CERTIFICATE) in \"{path}\"")
            }
        }
        TlsError::NoKey { path } => {
            let path = quote(path);
            if ru {
                format!(
                    "В файле «{path}» нет закрытого ключа (BEGIN PRIVATE KEY, RSA PRIVATE KEY или EC PRIVATE KEY)"
                )
            } else {
                format!(
                    "No private key (BEGIN PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY) in \"{path}\""
                )
            }
        }
        TlsError::BadRoot { path } => {
            let path = quote(path);
            if ru {
                format!(
                    "Сертификат из «{path}» не подходит как корневой: нужен сертификат центра сертификации"
                )
            } else {
                format!("A certificate of \"{path}\" cannot be a root: give a CA certificate")
            }
        }
        TlsError::Pfx { path, no_key } => {
            let path = quote(path);
            match (no_key, ru) {
                (true, true) => format!("В файле «{path}» нет закрытого ключа с сертификатом"),
                (true, false) => format!("No private key with a certificate in \"{path}\""),
                (false, true) => format!(
                    "Не удалось открыть «{path}»: неверный пароль или повреждённый файл PFX"
                ),
                (false, false) => {
                    format!("Cannot open \"{path}\": wrong password or damaged PFX file")
                }
            }
        }
        TlsError::KeyMismatch {
            cert,
            key,
            checked,
            client,
        } => {
            let (cert, key) = (quote(cert), quote(key));
            let whose = match (client, ru) {
                (true, true) => "Клиентский сертификат",
                (false, true) => "Сертификат",
                (true, false) => "The client certificate",
                (false, false) => "The certificate",
            };
            match (checked, ru) {
                (true, true) => format!(
                    "{whose} «{cert}» и ключ «{key}» не подходят друг другу: укажите ключ этого сертификата"
                ),
                (true, false) => format!(
                    "{whose} \"{cert}\" and the key \"{key}\" do not match: give this certificate's key"
                ),
                (false, true) => format!(
                    "Тип ключа «{key}» не поддерживается (поддерживаются RSA, ECDSA P-256 и P-384, Ed25519)"
                ),
                (false, false) => format!(
                    "The key type of \"{key}\" is not supported (RSA, ECDSA P-256 and P-384, Ed25519 are)"
                ),
            }
        }
        TlsError::ServerArgs { problem, args } => {
            let names = if ru {
                ["Сертификат", "КлючИлиПароль", "Пароль"]
            } else {
                ["Certificate", "KeyOrPassword", "Password"]
            };
            let parts: Vec<String> = args
                .iter()
                .zip(names)
                .map(|(a, name)| {
                    let role = arg_role(a.role, lang);
                    match a.role {
                        ArgRole::Empty => format!("{name}: {role}"),
                        // A password is never echoed.
                        ArgRole::Password => format!("{name}: {role}"),
                        _ if ru => format!("{name} «{}»: {role}", quote(&a.value)),
                        _ => format!("{name} \"{}\": {role}", quote(&a.value)),
                    }
                })
                .collect();
            let why = arg_problem(*problem, lang);
            if ru {
                format!(
                    "Запустить: {why}. Как поняты параметры: {}",
                    parts.join("; ")
                )
            } else {
                format!("Run: {why}. The arguments were understood as: {}", parts.join("; "))
            }
        }
        TlsError::Setup => lang
            .pick(
                "Не удалось настроить TLS: нет пригодных версий протокола или корневых сертификатов",
                "Cannot set up TLS: no usable protocol versions or root certificates",
            )
            .to_owned(),
        TlsError::BadServerName { host } => {
            let host = quote(host);
            if ru {
                format!("Имя узла «{host}» нельзя использовать для TLS")
            } else {
                format!("The host name \"{host}\" cannot be used for TLS")
            }
        }
        TlsError::Handshake {
            host,
            port,
            problem,
        } => {
            let why = handshake_problem_text(problem, host, lang);
            let host = quote(host);
            if ru {
                format!("Ошибка TLS при подключении к {host}:{port}: {why}")
            } else {
                format!("TLS error connecting to {host}:{port}: {why}")
            }
        }
    }
}

/// A mistake in JSON options: `<object>: key <path>: expected …, got …` and the like.
fn options(e: &OptionsError, lang: Lang) -> String {
    let ru = lang == Lang::Ru;
    let object = match e.object {
        OptionsObject::Client => lang.pick("Параметры подключения", "Connection options"),
        OptionsObject::Server => lang.pick("Параметры сервера", "Server options"),
    };
    let key = quote(&e.key);
    let what = match &e.problem {
        OptionsProblem::NotJson { line, column } => {
            if ru {
                format!("это не JSON (строка {line}, позиция {column})")
            } else {
                format!("not valid JSON (line {line}, column {column})")
            }
        }
        OptionsProblem::Wrong { expected, got } => {
            let expected = expected_value(expected, lang);
            let got = quote(got);
            if ru {
                format!("ожидается {expected}, получено {got}")
            } else {
                format!("expected {expected}, got {got}")
            }
        }
        OptionsProblem::Unknown { accepted } => {
            let accepted = accepted.join(", ");
            return if ru {
                format!("{object}: неизвестный параметр «{key}»; допустимы: {accepted}")
            } else {
                format!("{object}: unknown key \"{key}\"; accepted: {accepted}")
            };
        }
        OptionsProblem::Missing => {
            return if ru {
                format!("{object}: нет обязательного ключа {key}")
            } else {
                format!("{object}: the required key {key} is missing")
            };
        }
        OptionsProblem::TwoClientCertificates => lang
            .pick(
                "укажите клиентский сертификат либо в tls.pfx_file, либо в tls.cert_file (+ tls.key_file), но не в обоих",
                "give the client certificate either as tls.pfx_file or as tls.cert_file (+ tls.key_file), not both",
            )
            .to_owned(),
        OptionsProblem::KeyWithoutCertificate => lang
            .pick(
                "tls.key_file указан без tls.cert_file: укажите и файл сертификата",
                "tls.key_file is given without tls.cert_file: give the certificate file too",
            )
            .to_owned(),
        OptionsProblem::DelayOrder => lang
            .pick(
                "reconnect.max_delay_ms меньше reconnect.min_delay_ms",
                "reconnect.max_delay_ms is less than reconnect.min_delay_ms",
            )
            .to_owned(),
        OptionsProblem::Proxy { got, fault } => proxy_address(&quote(got), *fault, lang),
    };
    let keyed = matches!(
        e.problem,
        OptionsProblem::Wrong { .. } | OptionsProblem::Proxy { .. }
    );
    match (keyed && !key.is_empty(), ru) {
        (true, true) => format!("{object}: ключ {key}: {what}"),
        (true, false) => format!("{object}: key {key}: {what}"),
        (false, _) => format!("{object}: {what}"),
    }
}

/// What an option key accepts, as the object of "expected".
fn expected_value(e: &Expected, lang: Lang) -> String {
    let ru = lang == Lang::Ru;
    match e {
        Expected::Object => lang.pick("объект JSON", "a JSON object").to_owned(),
        Expected::Array => lang.pick("массив", "an array").to_owned(),
        Expected::String => lang.pick("строка", "a string").to_owned(),
        Expected::Bool => lang.pick("Булево (true или false)", "true or false").to_owned(),
        Expected::Whole => lang
            .pick("целое неотрицательное число", "a whole number")
            .to_owned(),
        Expected::Range { min, max } => {
            if ru {
                format!("целое число от {min} до {max}")
            } else {
                format!("a whole number from {min} to {max}")
            }
        }
        Expected::BoolOrObject => lang
            .pick(
                "Булево (true или false) или объект JSON",
                "true, false or a JSON object",
            )
            .to_owned(),
        Expected::OneOf(words) => match words.split_last() {
            Some((last, [])) => (*last).to_owned(),
            Some((last, rest)) => {
                let or = lang.pick("или", "or");
                format!("{} {or} {last}", rest.join(", "))
            }
            None => String::new(),
        },
        Expected::NonBlank => lang.pick("непустая строка", "a non-blank string").to_owned(),
        Expected::Token => lang
            .pick(
                "имя подпротокола: непустое слово из латинских букв, цифр и знаков !#$%&'*+-.^_`|~ (без пробелов, запятых и скобок)",
                "a subprotocol name: a non-empty word of Latin letters, digits and !#$%&'*+-.^_`|~ (no spaces, commas or brackets)",
            )
            .to_owned(),
        Expected::Auth => lang
            .pick(
                r#"{"bearer": "…"} или {"basic": {"user": "…", "password": "…"}}"#,
                r#"{"bearer": "…"} or {"basic": {"user": "…", "password": "…"}}"#,
            )
            .to_owned(),
        Expected::AddressBlock => lang
            .pick(
                "IP-адрес или блок адресов (IPv4 или IPv6, например 10.0.0.5, 10.0.0.0/8, fd00::/8)",
                "an IP address or address block (IPv4 or IPv6, e.g. 10.0.0.5, 10.0.0.0/8, fd00::/8)",
            )
            .to_owned(),
        Expected::Valid => lang.pick("допустимое значение", "a valid value").to_owned(),
    }
}

/// `invalid proxy address "…": why; expected <the forms>`.
fn proxy_address(got: &str, fault: ProxyUrlFault, lang: Lang) -> String {
    let why = match fault {
        ProxyUrlFault::Form => "",
        ProxyUrlFault::Scheme => lang.pick(
            ": поддерживаются схемы http, socks5 и socks4",
            ": the scheme must be http, socks5 or socks4",
        ),
        ProxyUrlFault::Host => lang.pick(
            ": неверное имя или адрес узла",
            ": invalid host name or address",
        ),
        ProxyUrlFault::Port => lang.pick(
            ": нужен порт от 1 до 65535",
            ": a port from 1 to 65535 is required",
        ),
        ProxyUrlFault::Socks4Password => {
            return lang
                .pick(
                    "SOCKS4 не поддерживает пароль: используйте socks5://",
                    "SOCKS4 has no passwords: use socks5://",
                )
                .to_owned();
        }
    };
    if lang == Lang::Ru {
        format!(
            "неверный адрес прокси «{got}»{why}; ожидается http://[пользователь:пароль@]узел:порт, socks5://[пользователь:пароль@]узел:порт или socks4://узел:порт"
        )
    } else {
        format!(
            "invalid proxy address \"{got}\"{why}; expected http://[user:password@]host:port, socks5://[user:password@]host:port or socks4://host:port"
        )
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
