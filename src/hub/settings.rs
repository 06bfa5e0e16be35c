//! The hub's settings as 1C code reads and writes them through properties (`РежимДоставки`,
//! `ИсточникСобытий`, `РазмерОчереди`, `ТаймаутЗавершения`), with their parsing and checks.
//! The hub itself ([`super::Hub`]) only queues and delivers.

use std::time::Duration;

use crate::error::{Error, Names, Result};
use crate::lang::Lang;
use crate::registry::PropId;
use crate::value::Value;

/// How events reach 1C code (property `РежимДоставки` / `DeliveryMode`), as 1C code set it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeliveryMode {
    /// Push where the platform delivers events and nothing is lost for code that pulls
    /// instead (see [`super::Delivery`]); pull on the 1C server and in external connections.
    #[default]
    Auto,
    /// Queued for `Получить` / `ПолучитьСобытие`.
    Pull,
    /// Sent through `ExternalEvent` with the payload.
    Push,
    /// A short `ExternalEvent`; the payload waits in the pull queue.
    Notify,
}

const MODES: [(DeliveryMode, &str, &str); 4] = [
    (DeliveryMode::Auto, "Авто", "auto"),
    (DeliveryMode::Pull, "Опрос", "pull"),
    (DeliveryMode::Push, "События", "push"),
    (DeliveryMode::Notify, "Уведомления", "notify"),
];

impl DeliveryMode {
    /// Parses the Russian or English name, in any case.
    pub fn parse(s: &str) -> Option<DeliveryMode> {
        let folded = s.trim().to_lowercase();
        MODES
            .iter()
            .find(|(_, ru, en)| ru.to_lowercase() == folded || *en == folded)
            .map(|(m, _, _)| *m)
    }

    /// The name in `lang`.
    pub fn name(self, lang: Lang) -> &'static str {
        let (_, ru, en) = MODES
            .iter()
            .find(|(m, _, _)| *m == self)
            .copied()
            .unwrap_or(MODES[0]);
        lang.pick(ru, en)
    }
}

/// Default `Источник` of external events.
pub const DEFAULT_EVENT_SOURCE: &str = "WebSocket";
/// Default pull-queue capacity, in events.
pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;
/// Largest pull-queue capacity 1C code may set.
pub const MAX_QUEUE_CAPACITY: usize = 10_000_000;
/// Default bound on how long `Done()` waits for the object's tasks.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest `ТаймаутЗавершения`, in ms.
pub const MAX_SHUTDOWN_TIMEOUT_MS: u64 = 600_000;

/// The hub settings 1C code reads and writes through properties.
#[derive(Clone, Debug)]
pub struct HubSettings {
    /// Delivery mode as set (may be `Auto`).
    pub mode: DeliveryMode,
    /// `Источник` of external events.
    pub source: String,
    /// Pull-queue capacity, in events; also the depth of the platform's event buffer that
    /// the object requests.
    pub capacity: usize,
    /// Bound on `Done()`.
    pub shutdown_timeout: Duration,
}

impl Default for HubSettings {
    fn default() -> Self {
        HubSettings {
            mode: DeliveryMode::Auto,
            source: DEFAULT_EVENT_SOURCE.to_owned(),
            capacity: DEFAULT_QUEUE_CAPACITY,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }
}

impl HubSettings {
    /// Reads a hub property (`None` if `prop` is not one of them).
    pub fn get(&self, prop: PropId, lang: Lang) -> Option<Value> {
        Some(match prop {
            PropId::DeliveryMode => Value::Str(self.mode.name(lang).to_owned()),
            PropId::EventSource => Value::Str(self.source.clone()),
            PropId::QueueCapacity => Value::from_count(self.capacity as u64),
            PropId::ShutdownTimeout => Value::from_count(
                u64::try_from(self.shutdown_timeout.as_millis()).unwrap_or(u64::MAX),
            ),
            _ => return None,
        })
    }

    /// Writes a hub property (`Ok(false)` if `prop` is not one of them). The value's type
    /// was checked against the table already.
    pub fn set(&mut self, prop: PropId, names: Names, v: &Value) -> Result<bool> {
        match prop {
            PropId::DeliveryMode => {
                let s = v.as_str().unwrap_or_default();
                self.mode = DeliveryMode::parse(s)
                    .ok_or_else(|| Error::UnknownMode { got: s.to_owned() })?;
            }
            PropId::EventSource => self.source = v.as_str().unwrap_or_default().to_owned(),
            PropId::QueueCapacity => {
                self.capacity = v.whole(names, 1, MAX_QUEUE_CAPACITY as u64)? as usize
            }
            PropId::ShutdownTimeout => {
                self.shutdown_timeout =
                    Duration::from_millis(v.whole(names, 0, MAX_SHUTDOWN_TIMEOUT_MS)?);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODE: Names = Names {
        ru: "РежимДоставки",
        en: "DeliveryMode",
    };
    const CAP: Names = Names {
        ru: "РазмерОчереди",
        en: "QueueCapacity",
    };

    #[test]
    fn modes_parse_in_both_languages() {
        assert_eq!(DeliveryMode::parse("ОПРОС"), Some(DeliveryMode::Pull));
        assert_eq!(DeliveryMode::parse("Push"), Some(DeliveryMode::Push));
        assert_eq!(
            DeliveryMode::parse("уведомления"),
            Some(DeliveryMode::Notify)
        );
        assert_eq!(DeliveryMode::parse("сразу"), None);
        assert_eq!(DeliveryMode::Notify.name(Lang::Ru), "Уведомления");
    }

    #[test]
    fn settings_validate() {
        let mut s = HubSettings::default();
        assert!(s.set(PropId::DeliveryMode, MODE, &"Опрос".into()).unwrap());
        assert_eq!(s.get(PropId::DeliveryMode, Lang::En), Some("pull".into()));
        let e = s.set(PropId::DeliveryMode, MODE, &"x".into()).unwrap_err();
        assert!(
            e.text(Lang::Ru).contains("Авто, Опрос"),
            "{}",
            e.text(Lang::Ru)
        );
        assert!(!e.text(Lang::En).contains("Авто"), "{}", e.text(Lang::En));
        assert!(
            s.set(PropId::QueueCapacity, CAP, &Value::Double(1.5))
                .is_err()
        );
        assert!(s.set(PropId::QueueCapacity, CAP, &Value::Int(0)).is_err());
        assert!(
            s.set(PropId::QueueCapacity, CAP, &Value::Double(50.0))
                .unwrap()
        );
        assert_eq!(s.capacity, 50);
        assert!(!s.set(PropId::Status, CAP, &Value::Int(1)).unwrap());
    }
}
