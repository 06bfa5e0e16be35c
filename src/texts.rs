//! Every text 1C code can read from the add-in: the Russian and English rendering of each
//! [`Error`]. Errors carry data; this module alone turns them into words, so that a
//! translator or a reviewer reads every message in one file.
//!
//! Rules for the texts: written for a 1C developer (what went wrong and what to do), in the
//! language of the interface only (no Russian words in an English text and the reverse), no
//! internal type names or `Debug` output, and input quoted at most [`QUOTE_LIMIT`] characters.

use crate::error::{Error, Expected, OptionsError, OptionsObject, OptionsProblem, ProxyFault};
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
            Error::Options(e) => options(e, lang),
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
        Expected::Valid => lang.pick("допустимое значение", "a valid value").to_owned(),
    }
}

/// `invalid proxy address "…": why; expected <the forms>`.
fn proxy_address(got: &str, fault: ProxyFault, lang: Lang) -> String {
    let why = match fault {
        ProxyFault::Form => "",
        ProxyFault::Scheme => lang.pick(
            ": поддерживаются схемы http, socks5 и socks4",
            ": the scheme must be http, socks5 or socks4",
        ),
        ProxyFault::Host => lang.pick(
            ": неверное имя или адрес узла",
            ": invalid host name or address",
        ),
        ProxyFault::Port => lang.pick(
            ": нужен порт от 1 до 65535",
            ": a port from 1 to 65535 is required",
        ),
        ProxyFault::Socks4Password => {
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
