//! Every text 1C code can read from the add-in: the Russian and English rendering of each
//! [`Error`]. Errors carry data; this module alone turns them into words, so that a
//! translator or a reviewer reads every message in one file.
//!
//! Rules for the texts: written for a 1C developer (what went wrong and what to do), in the
//! language of the interface only (no Russian words in an English text and the reverse), no
//! internal type names or `Debug` output, and input quoted at most [`QUOTE_LIMIT`] characters.

use crate::error::Error;
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
        }
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
