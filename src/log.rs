//! The diagnostic log (`log_file`, `log_level`): one line per thing that happened, never
//! message bodies unless `log_messages` asks for them. A log that cannot be written is
//! dropped silently: it never breaks a connection.

use std::io::Write;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::value::Date;

/// How much to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Failures only.
    Error,
    /// Also opens, closes, refusals and limits (default).
    Info,
    /// Also every message (its size; its body with `log_messages`).
    Debug,
}

impl Level {
    /// From `error` / `info` / `debug`.
    pub fn parse(s: &str) -> Option<Level> {
        match s.to_ascii_lowercase().as_str() {
            "error" => Some(Level::Error),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            _ => None,
        }
    }
}

/// A log file, or nothing.
#[derive(Default)]
pub struct Log {
    file: Option<Mutex<std::fs::File>>,
    level: Option<Level>,
    /// Include message bodies at debug level.
    pub bodies: bool,
}

impl Log {
    /// Opens (appends to) `path`.
    pub fn open(path: &str, level: Level, bodies: bool) -> Result<Log> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                Error::net(
                    format!("Не удалось открыть файл журнала «{path}»: {e}"),
                    format!("Cannot open the log file \"{path}\": {e}"),
                )
            })?;
        Ok(Log {
            file: Some(Mutex::new(file)),
            level: Some(level),
            bodies,
        })
    }

    /// Whether lines of `level` are written.
    pub fn enabled(&self, level: Level) -> bool {
        self.level.is_some_and(|l| level <= l)
    }

    /// Writes a line of `level`; the text is built only if it will be written.
    pub fn write(&self, level: Level, text: impl FnOnce() -> String) {
        if !self.enabled(level) {
            return;
        }
        let Some(file) = &self.file else { return };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let stamp = Date::from_unix(now.as_secs() as i64);
        let line = format!("{stamp}.{:03}Z {level:?} {}\n", now.subsec_millis(), text());
        if let Ok(mut f) = file.lock() {
            let _ = f.write_all(line.as_bytes());
        }
    }
}
