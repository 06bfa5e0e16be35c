//! The language of error texts and of values the add-in returns by name.

/// Russian or English. Russian is the default until the platform says otherwise, because
/// the people reading our texts are 1C developers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Lang {
    /// Russian.
    #[default]
    Ru,
    /// English (every non-Russian locale).
    En,
}

impl Lang {
    /// From a locale (`ru_RU`, `rus_RUS`, `Russian_Russia.1251`) or an interface language
    /// code (`ru`, `en`). Anything that does not start with `ru` is English.
    pub fn from_code(code: &str) -> Lang {
        let lower = code.trim().to_ascii_lowercase();
        if lower.starts_with("ru") {
            Lang::Ru
        } else {
            Lang::En
        }
    }

    /// Picks the Russian or the English text.
    pub fn pick<'a>(self, ru: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Ru => ru,
            Lang::En => en,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        for ru in ["ru", "ru_RU", "rus_RUS", "Russian_Russia.1251", "RU"] {
            assert_eq!(Lang::from_code(ru), Lang::Ru, "{ru}");
        }
        for en in ["en", "en_US", "", "de_DE", "uk"] {
            assert_eq!(Lang::from_code(en), Lang::En, "{en}");
        }
    }
}
