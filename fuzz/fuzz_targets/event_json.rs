//! The event encoder (`Событие` / `Данные`): events of every kind built from any strings and
//! bytes. The header (and the notification) of every event is one line of valid JSON; so is
//! the payload of open / close / fail / reconnecting; a message or pong payload gives back
//! exactly what arrived (as is, or base64 when the header says so).
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use serde_json::Value as Json;
use ws1c::event::{Event, EventKind};

fn json(what: &str, text: &str) -> Json {
    assert!(
        !text.contains('\n') && !text.contains('\0'),
        "{what}: {text:?}"
    );
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{what} is no JSON ({e}): {text:?}"))
}

/// The input: the kind (byte 0), the connection (byte 1: 0 none, 255 `u64::MAX`, else
/// itself), 8 bytes of numbers (code, unsent, attempt, delay), then the payload: the bytes as
/// they are for binary and pong, else text fields split at 0xFF (never in UTF-8).
fn event(data: &[u8]) -> Option<Event> {
    let (&kind, rest) = data.split_first()?;
    let (&conn, rest) = rest.split_first()?;
    let mut number = [0u8; 8];
    let n = rest.len().min(8);
    number[..n].copy_from_slice(&rest[..n]);
    let number = u64::from_le_bytes(number);
    let payload = &rest[n..];
    let mut texts = payload
        .split(|&b| b == 0xff)
        .map(|t| String::from_utf8_lossy(t).into_owned());
    let mut text = || texts.next().unwrap_or_default();
    let kind = match kind % 7 {
        0 => EventKind::Open {
            address: text(),
            proxy: None,
            path: text(),
            subprotocol: text(),
            headers: std::iter::from_fn(|| Some((text(), text())))
                .take_while(|(k, _)| !k.is_empty())
                .collect(),
        },
        1 => EventKind::Text(text()),
        2 => EventKind::Binary(payload.to_vec()),
        3 => EventKind::Close {
            code: number as u16,
            reason: text(),
            unsent: number >> 16,
        },
        4 => EventKind::Fail {
            error: text(),
            unsent: number,
        },
        5 => EventKind::Reconnecting {
            attempt: number as u32,
            delay_ms: number >> 8,
        },
        _ => EventKind::Pong(payload.to_vec()),
    };
    let conn = match conn {
        0 => None,
        255 => Some(u64::MAX),
        c => Some(u64::from(c)),
    };
    Some(Event { conn, kind })
}

fuzz_target!(|data: &[u8]| {
    let Some(ev) = event(data) else {
        return;
    };
    let header = json("header", &ev.header());
    json("notification", &ev.notification());
    assert_eq!(
        header.get("Connection").and_then(Json::as_u64),
        ev.conn,
        "{header}"
    );
    let data = ev.data();
    assert_eq!(ev.payload(), data);
    let base64 = header.get("Encoding").and_then(Json::as_str) == Some("base64");
    let decoded = || {
        base64::engine::general_purpose::STANDARD
            .decode(&data)
            .unwrap_or_else(|e| panic!("payload is no base64 ({e}): {data:?}"))
    };
    match &ev.kind {
        EventKind::Text(t) => {
            assert!(ev.is_message());
            if base64 {
                assert_eq!(decoded(), t.as_bytes());
            } else {
                assert!(!t.contains('\0'));
                assert_eq!(&data, t);
            }
        }
        EventKind::Binary(b) => {
            assert!(ev.is_message() && base64);
            assert_eq!(&decoded(), b);
        }
        EventKind::Pong(p) => {
            assert!(!ev.is_message());
            if base64 {
                assert_eq!(&decoded(), p);
            } else {
                assert!(!p.contains(&0));
                assert_eq!(data.as_bytes(), p.as_slice());
            }
        }
        _ => {
            assert!(!ev.is_message() && !base64);
            let payload = json("payload", &data);
            assert!(payload.is_object(), "{data}");
        }
    }
});
