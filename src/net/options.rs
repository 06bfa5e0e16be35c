//! `Параметры` of `Подключиться` / `Connect`: a JSON object. Unknown keys and wrong types are
//! errors, never silently ignored.

use std::time::Duration;

use serde_json::{Map, Value as Json};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::error::{Error, Result};

/// Client connection options with their defaults.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Connect + TLS + handshake bound (`timeout_ms`, default 10 000).
    pub timeout: Duration,
    /// Extra handshake headers (`headers`).
    pub headers: Vec<(String, String)>,
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
    /// How long `Отключиться` waits for the close handshake (`close_timeout_ms`, 5000).
    pub close_timeout: Duration,
    /// `tls.ca_file`: PEM certificates added to the trusted roots.
    pub ca_file: Option<String>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(10),
            headers: Vec::new(),
            max_message_size: 64 << 20,
            max_frame_size: 16 << 20,
            read_buffer_size: 4096,
            write_buffer_size: 64 << 10,
            send_queue: 1024,
            send_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            ca_file: None,
        }
    }
}

fn bad(ru: String, en: String) -> Error {
    Error::net(
        format!("Параметры подключения: {ru}"),
        format!("Connection options: {en}"),
    )
}

fn number(key: &str, v: &Json, min: u64, max: u64) -> Result<u64> {
    match v.as_u64() {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(bad(
            format!("«{key}» должен быть целым числом от {min} до {max}"),
            format!("\"{key}\" must be a whole number from {min} to {max}"),
        )),
    }
}

fn string(key: &str, v: &Json) -> Result<String> {
    v.as_str().map(str::to_owned).ok_or_else(|| {
        bad(
            format!("«{key}» должен быть строкой"),
            format!("\"{key}\" must be a string"),
        )
    })
}

fn object<'a>(key: &str, v: &'a Json) -> Result<&'a Map<String, Json>> {
    v.as_object().ok_or_else(|| {
        bad(
            format!("«{key}» должен быть объектом JSON"),
            format!("\"{key}\" must be a JSON object"),
        )
    })
}

fn unknown(key: &str) -> Error {
    bad(
        format!("неизвестный параметр «{key}»"),
        format!("unknown option \"{key}\""),
    )
}

impl ClientOptions {
    /// Parses `Параметры`; an empty string means all defaults.
    pub fn parse(text: &str) -> Result<ClientOptions> {
        let mut o = ClientOptions::default();
        if text.trim().is_empty() {
            return Ok(o);
        }
        let json: Json = serde_json::from_str(text)
            .map_err(|e| bad(format!("это не JSON: {e}"), format!("not valid JSON: {e}")))?;
        for (key, v) in object("Параметры", &json)? {
            match key.as_str() {
                "timeout_ms" => o.timeout = Duration::from_millis(number(key, v, 1, 3_600_000)?),
                "headers" => {
                    for (name, value) in object(key, v)? {
                        o.headers.push((name.clone(), string(name, value)?));
                    }
                }
                "max_message_size" => o.max_message_size = number(key, v, 16, 1 << 31)? as usize,
                "max_frame_size" => o.max_frame_size = number(key, v, 16, 1 << 31)? as usize,
                "read_buffer_size" => o.read_buffer_size = number(key, v, 256, 16 << 20)? as usize,
                "write_buffer_size" => o.write_buffer_size = number(key, v, 0, 16 << 20)? as usize,
                "send_queue" => o.send_queue = number(key, v, 1, 1_000_000)? as usize,
                "send_timeout_ms" => {
                    o.send_timeout = Duration::from_millis(number(key, v, 0, 3_600_000)?)
                }
                "close_timeout_ms" => {
                    o.close_timeout = Duration::from_millis(number(key, v, 0, 600_000)?)
                }
                "tls" => {
                    for (k, tv) in object(key, v)? {
                        match k.as_str() {
                            "ca_file" => o.ca_file = Some(string(k, tv)?),
                            other => return Err(unknown(&format!("tls.{other}"))),
                        }
                    }
                }
                other => return Err(unknown(other)),
            }
        }
        Ok(o)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::Lang;

    #[test]
    fn defaults_and_values() {
        let o = ClientOptions::parse("").unwrap();
        assert_eq!(o.timeout, Duration::from_secs(10));
        let o = ClientOptions::parse(r#"{"timeout_ms": 500, "headers": {"Authorization": "Bearer x"}, "tls": {"ca_file": "/ca.pem"}}"#).unwrap();
        assert_eq!(o.timeout, Duration::from_millis(500));
        assert_eq!(
            o.headers,
            vec![("Authorization".to_owned(), "Bearer x".to_owned())]
        );
        assert_eq!(o.ca_file.as_deref(), Some("/ca.pem"));
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
