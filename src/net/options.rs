//! JSON options: `Параметры` of `Подключиться` / `Connect` and of the server's `Настроить` /
//! `Configure`. Unknown keys and wrong types are errors, never silently ignored.

use std::time::Duration;

use serde_json::{Map, Value as Json};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::error::{Error, Result};

/// Reads values of one options object, naming it in every error.
pub(crate) struct Reader {
    ru: &'static str,
    en: &'static str,
}

impl Reader {
    pub(crate) const CLIENT: Reader = Reader {
        ru: "Параметры подключения",
        en: "Connection options",
    };
    pub(crate) const SERVER: Reader = Reader {
        ru: "Параметры сервера",
        en: "Server options",
    };

    pub(crate) fn bad(&self, ru: String, en: String) -> Error {
        Error::net(format!("{}: {ru}", self.ru), format!("{}: {en}", self.en))
    }

    /// The top-level object of `text` (`None` for an empty string).
    pub(crate) fn parse(&self, text: &str) -> Result<Option<Map<String, Json>>> {
        if text.trim().is_empty() {
            return Ok(None);
        }
        let json: Json = serde_json::from_str(text)
            .map_err(|e| self.bad(format!("это не JSON: {e}"), format!("not valid JSON: {e}")))?;
        self.object("Параметры", &json).map(|m| Some(m.clone()))
    }

    pub(crate) fn number(&self, key: &str, v: &Json, min: u64, max: u64) -> Result<u64> {
        match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(self.bad(
                format!("«{key}» должен быть целым числом от {min} до {max}"),
                format!("\"{key}\" must be a whole number from {min} to {max}"),
            )),
        }
    }

    pub(crate) fn millis(&self, key: &str, v: &Json, max: u64) -> Result<Duration> {
        self.number(key, v, 0, max).map(Duration::from_millis)
    }

    pub(crate) fn string(&self, key: &str, v: &Json) -> Result<String> {
        v.as_str().map(str::to_owned).ok_or_else(|| {
            self.bad(
                format!("«{key}» должен быть строкой"),
                format!("\"{key}\" must be a string"),
            )
        })
    }

    pub(crate) fn strings(&self, key: &str, v: &Json) -> Result<Vec<String>> {
        let list = v.as_array().ok_or_else(|| {
            self.bad(
                format!("«{key}» должен быть массивом строк"),
                format!("\"{key}\" must be an array of strings"),
            )
        })?;
        list.iter().map(|s| self.string(key, s)).collect()
    }

    pub(crate) fn object<'a>(&self, key: &str, v: &'a Json) -> Result<&'a Map<String, Json>> {
        v.as_object().ok_or_else(|| {
            self.bad(
                format!("«{key}» должен быть объектом JSON"),
                format!("\"{key}\" must be a JSON object"),
            )
        })
    }

    pub(crate) fn unknown(&self, key: &str) -> Error {
        self.bad(
            format!("неизвестный параметр «{key}»"),
            format!("unknown option \"{key}\""),
        )
    }
}

/// Limits of one connection, the same keys for the client and the server.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest incoming message (`max_message_size`, default 64 MiB).
    pub max_message_size: usize,
    /// Largest incoming frame (`max_frame_size`, default 16 MiB).
    pub max_frame_size: usize,
    /// Socket read chunk (`read_buffer_size`, default 4 KiB: little memory per connection).
    pub read_buffer_size: usize,
    /// Outgoing bytes buffered before a write (`write_buffer_size`, default 64 KiB).
    pub write_buffer_size: usize,
    /// Messages queued for the writer (`send_queue`, default 1024).
    pub send_queue: usize,
    /// How long `Отправить` waits for room in a full send queue (`send_timeout_ms`, 10 000).
    pub send_timeout: Duration,
    /// How long a close handshake may take (`close_timeout_ms`, 5000).
    pub close_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 64 << 20,
            max_frame_size: 16 << 20,
            read_buffer_size: 4096,
            write_buffer_size: 64 << 10,
            send_queue: 1024,
            send_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
        }
    }
}

impl Limits {
    /// Takes `key` if it is a limit (`Ok(false)` otherwise).
    pub(crate) fn take(&mut self, r: &Reader, key: &str, v: &Json) -> Result<bool> {
        match key {
            "max_message_size" => self.max_message_size = r.number(key, v, 16, 1 << 31)? as usize,
            "max_frame_size" => self.max_frame_size = r.number(key, v, 16, 1 << 31)? as usize,
            "read_buffer_size" => self.read_buffer_size = r.number(key, v, 256, 16 << 20)? as usize,
            "write_buffer_size" => self.write_buffer_size = r.number(key, v, 0, 16 << 20)? as usize,
            "send_queue" => self.send_queue = r.number(key, v, 1, 1_000_000)? as usize,
            "send_timeout_ms" => self.send_timeout = r.millis(key, v, 3_600_000)?,
            "close_timeout_ms" => self.close_timeout = r.millis(key, v, 600_000)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// tungstenite's limits, set explicitly: message and frame size, a small read buffer and
    /// a write buffer bounded to one largest message beyond the usual batch.
    pub fn ws_config(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(self.read_buffer_size)
            .write_buffer_size(self.write_buffer_size)
            .max_write_buffer_size(self.write_buffer_size + self.max_message_size + (1 << 16))
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_frame_size))
    }
}

/// Client connection options with their defaults.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Connect + TLS + handshake bound (`timeout_ms`, default 10 000).
    pub timeout: Duration,
    /// Extra handshake headers (`headers`).
    pub headers: Vec<(String, String)>,
    /// Connection limits.
    pub limits: Limits,
    /// `tls.ca_file`: PEM certificates added to the trusted roots.
    pub ca_file: Option<String>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(10),
            headers: Vec::new(),
            limits: Limits::default(),
            ca_file: None,
        }
    }
}

impl ClientOptions {
    /// Parses `Параметры`; an empty string means all defaults.
    pub fn parse(text: &str) -> Result<ClientOptions> {
        let r = Reader::CLIENT;
        let mut o = ClientOptions::default();
        for (key, v) in r.parse(text)?.unwrap_or_default() {
            let key = key.as_str();
            if o.limits.take(&r, key, &v)? {
                continue;
            }
            match key {
                "timeout_ms" => o.timeout = Duration::from_millis(r.number(key, &v, 1, 3_600_000)?),
                "headers" => {
                    for (name, value) in r.object(key, &v)? {
                        o.headers.push((name.clone(), r.string(name, value)?));
                    }
                }
                "tls" => {
                    for (k, tv) in r.object(key, &v)? {
                        match k.as_str() {
                            "ca_file" => o.ca_file = Some(r.string(k, tv)?),
                            other => return Err(r.unknown(&format!("tls.{other}"))),
                        }
                    }
                }
                other => return Err(r.unknown(other)),
            }
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::Lang;

    #[test]
    fn defaults_and_values() {
        let o = ClientOptions::parse("").unwrap();
        assert_eq!(o.timeout, Duration::from_secs(10));
        let o = ClientOptions::parse(
            r#"{"timeout_ms": 500, "headers": {"Authorization": "Bearer x"}, "tls": {"ca_file": "/ca.pem"}, "send_queue": 3}"#,
        )
        .unwrap();
        assert_eq!(o.timeout, Duration::from_millis(500));
        assert_eq!(
            o.headers,
            vec![("Authorization".to_owned(), "Bearer x".to_owned())]
        );
        assert_eq!(o.ca_file.as_deref(), Some("/ca.pem"));
        assert_eq!(o.limits.send_queue, 3);
    }

    #[test]
    fn mistakes_are_errors() {
        let e = ClientOptions::parse(r#"{"timeout": 5}"#).unwrap_err();
        assert_eq!(
            e.text(Lang::Ru),
            "Параметры подключения: неизвестный параметр «timeout»"
        );
        let e = ClientOptions::parse(r#"{"timeout_ms": "5"}"#).unwrap_err();
        assert!(
            e.text(Lang::En)
                .contains("\"timeout_ms\" must be a whole number")
        );
        assert!(ClientOptions::parse("{").is_err());
        assert!(ClientOptions::parse("[]").is_err());
        assert!(ClientOptions::parse(r#"{"headers": {"X": 1}}"#).is_err());
        assert!(ClientOptions::parse(r#"{"tls": {"insecure_mode": true}}"#).is_err());
    }
}
