//! Events and their public JSON shapes (`Событие` header and `Данные` payload), the same for
//! push (`ExternalEvent`) and pull (`ПолучитьСобытие`). The keys are a public contract.
//!
//! | event | `Событие` | `Данные` |
//! |---|---|---|
//! | open | `{"Event":"Connection","State":"Open","Connection":7,"Address":"127.0.0.1:50312","Path":"/first"}` | `{"Connection":"Open", "Address", "Path", "Subprotocol", "Headers":{…}}` |
//! | open behind a trusted proxy | … `"Address":"203.0.113.7","ProxyAddress":"10.0.0.2:40312","Path":…` | … `"Address", "ProxyAddress", "Path", …` |
//! | text | `{"Event":"Message","Type":"Text","Connection":7}` | the text |
//! | binary | `{"Event":"Message","Type":"Binary","Connection":7,"Encoding":"base64"}` | base64 of the bytes |
//! | close | `{"Event":"Connection","State":"Close","Connection":7,"Code":1000,"Reason":"Normal"}` | `{"Connection":"Close","Code":1000,"Reason":"Normal"}` |
//! | fail | `{"Event":"Connection","State":"Fail","Connection":7,"Error":"…"}` | `{"Connection":"Fail","Error":"…"}` |
//! | close / fail with messages left unsent | … `"Unsent":3` after the other keys | … `"Unsent":3` |
//! | reconnecting | `{"Event":"Connection","State":"Reconnecting","Attempt":3,"DelayMs":2000}` | `{}` |
//! | pong | `{"Event":"Pong"}` (`"Connection"` on the server) | the pong payload as text |
//! | text with U+0000 | `{"Event":"Message","Type":"Text","Connection":7,"Encoding":"base64"}` | base64 of its UTF-8 |
//! | pong, not UTF-8 or with a NUL byte | `{"Event":"Pong","Connection":7,"Encoding":"base64"}` | base64 of the payload |
//! | notify | `{"Event":"Notify","Kind":"Message","Connection":7}` | empty: the event waits for pull |
//!
//! `Connection` is the server's connection id; the client omits it.
//!
//! `ExternalEvent` takes NUL-terminated strings, so a payload holding U+0000 would arrive cut
//! at the NUL: such a payload (and a pong that is not UTF-8) goes as base64, flagged by
//! `"Encoding":"base64"`, in push and pull alike. `Получить` / `Принять` return the text as is.

use std::borrow::Cow;

use base64::Engine;
use serde_json::{Map, Value as Json, json};

/// What happened.
#[derive(Clone, Debug, PartialEq)]
pub enum EventKind {
    /// The connection is open.
    Open {
        /// Peer address, `ip:port`; behind a trusted proxy the client's address it forwarded.
        address: String,
        /// The trusted proxy's own `ip:port`, when `address` came from its headers.
        proxy: Option<String>,
        /// Request path (server) or the URL's path (client).
        path: String,
        /// Negotiated subprotocol, empty if none.
        subprotocol: String,
        /// Handshake headers (request headers on the server, response headers on the client).
        headers: Vec<(String, String)>,
    },
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// The connection closed (close frame or end of stream).
    Close {
        /// Close code (1005 when the peer sent none, 1006 when the stream just ended).
        code: u16,
        /// Close reason.
        reason: String,
        /// Messages `Отправить` accepted that never reached the socket (`"Unsent"`).
        unsent: u64,
    },
    /// The connection failed.
    Fail {
        /// Why.
        error: String,
        /// Messages `Отправить` accepted that never reached the socket (`"Unsent"`).
        unsent: u64,
    },
    /// The client is about to reconnect.
    Reconnecting {
        /// Attempt number, from 1.
        attempt: u32,
        /// Delay before it, in ms.
        delay_ms: u64,
    },
    /// A pong arrived.
    Pong(Vec<u8>),
    /// A Socket.IO event, already in its public strings (ROM-SocketIO's shapes, see
    /// [`crate::net::socketio`]).
    SocketIo(Box<SioEvent>),
}

/// A Socket.IO object's event: header and payload rendered by the connection task, binary
/// attachments kept for `ПолучитьВложение` in pull mode.
#[derive(Clone, Debug, PartialEq)]
pub struct SioEvent {
    /// `Событие` (shared: events of one name have the same header).
    pub header: std::sync::Arc<str>,
    /// `Данные`.
    pub data: String,
    /// The binary attachments of a binary event or ack, in order.
    pub attachments: Vec<Vec<u8>>,
    /// An event or ack from the server (held back by a full queue, as messages are), not a
    /// connection event.
    pub message: bool,
}

/// The `Close` / `Fail` header fields, with `"Unsent"` when messages were left unsent. Why
/// only then: handlers written for the documented component compare these strings, and
/// the usual close loses nothing; an absent key reads as 0.
fn with_unsent(mut fields: Vec<(&'static str, Json)>, unsent: u64) -> Vec<(&'static str, Json)> {
    if unsent > 0 {
        fields.push(("Unsent", json!(unsent)));
    }
    fields
}

/// One event of one object; `conn` is the server connection id (`None` on the client).
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Server connection id.
    pub conn: Option<u64>,
    /// What happened.
    pub kind: EventKind,
}

impl Event {
    /// Whether `Получить` / `Принять` returns it (messages only).
    pub fn is_message(&self) -> bool {
        match &self.kind {
            EventKind::Text(_) | EventKind::Binary(_) => true,
            EventKind::SocketIo(e) => e.message,
            _ => false,
        }
    }

    /// Whether the payload travels as base64 although it is text (see the module docs).
    fn base64_text(&self) -> bool {
        match &self.kind {
            EventKind::Text(t) => t.contains('\0'),
            EventKind::Pong(p) => p.contains(&0) || std::str::from_utf8(p).is_err(),
            _ => false,
        }
    }

    /// Header fields in order, with `Connection` third when the event has one.
    fn header_map(&self, fields: &[(&str, Json)]) -> Map<String, Json> {
        let mut m = Map::new();
        for (i, (k, v)) in fields.iter().enumerate() {
            if i == 2 {
                self.put_conn(&mut m);
            }
            m.insert((*k).to_owned(), v.clone());
        }
        if fields.len() <= 2 {
            self.put_conn(&mut m);
        }
        m
    }

    fn put_conn(&self, m: &mut Map<String, Json>) {
        if let Some(c) = self.conn {
            m.insert("Connection".into(), json!(c));
        }
    }

    /// Writes the header of a message event (most events) into `buf`, directly in its fixed
    /// shape; false, with `buf` untouched, for every other event. The same text as the
    /// general path of [`Event::header`], which the tests compare against.
    fn write_message_header(&self, buf: &mut String) -> bool {
        use std::fmt::Write;
        let _ = match (&self.kind, self.conn) {
            // Text that goes as base64 takes the general path (it gains "Encoding").
            (EventKind::Text(_), _) if self.base64_text() => return false,
            (EventKind::Text(_), None) => buf.write_str(r#"{"Event":"Message","Type":"Text"}"#),
            (EventKind::Text(_), Some(c)) => {
                write!(
                    buf,
                    r#"{{"Event":"Message","Type":"Text","Connection":{c}}}"#
                )
            }
            (EventKind::Binary(_), None) => {
                buf.write_str(r#"{"Event":"Message","Type":"Binary","Encoding":"base64"}"#)
            }
            (EventKind::Binary(_), Some(c)) => write!(
                buf,
                r#"{{"Event":"Message","Type":"Binary","Connection":{c},"Encoding":"base64"}}"#
            ),
            _ => return false,
        };
        true
    }

    /// The header, borrowed where the event holds it rendered (Socket.IO events) and
    /// otherwise written into `buf`: the pusher reuses one buffer for every event.
    pub fn header_in<'a>(&'a self, buf: &'a mut String) -> &'a str {
        if let EventKind::SocketIo(e) = &self.kind {
            return &e.header;
        }
        buf.clear();
        if !self.write_message_header(buf) {
            *buf = self.header();
        }
        buf
    }

    /// The one-line JSON header (`Событие`).
    pub fn header(&self) -> String {
        let mut fast = String::with_capacity(80);
        if self.write_message_header(&mut fast) {
            return fast;
        }
        let fields: Vec<(&str, Json)> = match &self.kind {
            EventKind::Open {
                address,
                proxy,
                path,
                ..
            } => {
                let mut f = vec![
                    ("Event", json!("Connection")),
                    ("State", json!("Open")),
                    ("Address", json!(address)),
                ];
                if let Some(p) = proxy {
                    f.push(("ProxyAddress", json!(p)));
                }
                f.push(("Path", json!(path)));
                f
            }
            EventKind::Text(_) => vec![("Event", json!("Message")), ("Type", json!("Text"))],
            EventKind::Binary(_) => vec![
                ("Event", json!("Message")),
                ("Type", json!("Binary")),
                ("Encoding", json!("base64")),
            ],
            EventKind::Close {
                code,
                reason,
                unsent,
            } => with_unsent(
                vec![
                    ("Event", json!("Connection")),
                    ("State", json!("Close")),
                    ("Code", json!(code)),
                    ("Reason", json!(reason)),
                ],
                *unsent,
            ),
            EventKind::Fail { error, unsent } => with_unsent(
                vec![
                    ("Event", json!("Connection")),
                    ("State", json!("Fail")),
                    ("Error", json!(error)),
                ],
                *unsent,
            ),
            EventKind::Reconnecting { attempt, delay_ms } => vec![
                ("Event", json!("Connection")),
                ("State", json!("Reconnecting")),
                ("Attempt", json!(attempt)),
                ("DelayMs", json!(delay_ms)),
            ],
            EventKind::Pong(_) => vec![("Event", json!("Pong"))],
            EventKind::SocketIo(e) => return e.header.to_string(),
        };
        let mut m = self.header_map(&fields);
        if self.base64_text() {
            m.insert("Encoding".into(), json!("base64"));
        }
        Json::Object(m).to_string()
    }

    /// The payload (`Данные`).
    pub fn data(&self) -> String {
        self.payload().into_owned()
    }

    /// The payload (`Данные`), borrowed where it is the message text itself: the pusher
    /// hands it to the platform without a copy.
    pub fn payload(&self) -> Cow<'_, str> {
        let b64 = |b: &[u8]| Cow::Owned(base64::engine::general_purpose::STANDARD.encode(b));
        Cow::Owned(match &self.kind {
            EventKind::Open {
                address,
                proxy,
                path,
                subprotocol,
                headers,
            } => {
                let h: Map<String, Json> =
                    headers.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
                let mut m = Map::new();
                m.insert("Connection".into(), json!("Open"));
                m.insert("Address".into(), json!(address));
                if let Some(p) = proxy {
                    m.insert("ProxyAddress".into(), json!(p));
                }
                m.insert("Path".into(), json!(path));
                m.insert("Subprotocol".into(), json!(subprotocol));
                m.insert("Headers".into(), Json::Object(h));
                Json::Object(m).to_string()
            }
            EventKind::Text(t) if self.base64_text() => return b64(t.as_bytes()),
            EventKind::Text(t) => return Cow::Borrowed(t),
            EventKind::Binary(b) => return b64(b),
            EventKind::Close {
                code,
                reason,
                unsent,
            } => {
                let mut m = json!({"Connection": "Close", "Code": code, "Reason": reason});
                if *unsent > 0 {
                    m["Unsent"] = json!(unsent);
                }
                m.to_string()
            }
            EventKind::Fail { error, unsent } => {
                let mut m = json!({"Connection": "Fail", "Error": error});
                if *unsent > 0 {
                    m["Unsent"] = json!(unsent);
                }
                m.to_string()
            }
            EventKind::Reconnecting { .. } => "{}".to_owned(),
            EventKind::Pong(p) if self.base64_text() => return b64(p),
            EventKind::Pong(p) => return String::from_utf8_lossy(p),
            EventKind::SocketIo(e) => return Cow::Borrowed(&e.data),
        })
    }

    /// The short header notify mode pushes instead of the event.
    pub fn notification(&self) -> String {
        let kind = match &self.kind {
            EventKind::Text(_) | EventKind::Binary(_) => "Message",
            EventKind::SocketIo(e) if e.message => "Message",
            EventKind::Pong(_) => "Pong",
            _ => "Connection",
        };
        let fields = [("Event", json!("Notify")), ("Kind", json!(kind))];
        Json::Object(self.header_map(&fields)).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(conn: Option<u64>, kind: EventKind) -> Event {
        Event { conn, kind }
    }

    #[test]
    fn the_pushers_header_is_the_same_text_as_the_pull_header() {
        let sio = EventKind::SocketIo(Box::new(SioEvent {
            header: r#"{"Event": "Message","Name": "tick"}"#.into(),
            data: "[]".into(),
            attachments: Vec::new(),
            message: true,
        }));
        let kinds = || {
            vec![
                EventKind::Text("x".into()),
                EventKind::Text("a\0b".into()),
                EventKind::Binary(vec![1, 2]),
                EventKind::Pong(vec![0]),
                EventKind::Close {
                    code: 1000,
                    reason: "bye".into(),
                    unsent: 2,
                },
                EventKind::Fail {
                    error: "e".into(),
                    unsent: 0,
                },
            ]
        };
        // One buffer for all of them, as the pusher does: nothing of a longer header is left.
        let mut buf = String::new();
        for conn in [None, Some(12_345)] {
            for kind in kinds() {
                let e = ev(conn, kind);
                assert_eq!(e.header_in(&mut buf), e.header());
            }
        }
        let e = ev(None, sio);
        assert_eq!(e.header_in(&mut buf), e.header());
        assert!(std::ptr::eq(
            e.header_in(&mut buf),
            match &e.kind {
                EventKind::SocketIo(s) => &*s.header,
                _ => unreachable!(),
            }
        ));
    }

    #[test]
    fn shapes_are_exactly_the_documented_ones() {
        let open = ev(
            Some(7),
            EventKind::Open {
                address: "127.0.0.1:50312".into(),
                proxy: None,
                path: "/first".into(),
                subprotocol: String::new(),
                headers: vec![("host".into(), "localhost".into())],
            },
        );
        assert_eq!(
            open.header(),
            r#"{"Event":"Connection","State":"Open","Connection":7,"Address":"127.0.0.1:50312","Path":"/first"}"#
        );
        assert_eq!(
            open.data(),
            r#"{"Connection":"Open","Address":"127.0.0.1:50312","Path":"/first","Subprotocol":"","Headers":{"host":"localhost"}}"#
        );
        let proxied = ev(
            Some(8),
            EventKind::Open {
                address: "203.0.113.7".into(),
                proxy: Some("127.0.0.2:40000".into()),
                path: "/".into(),
                subprotocol: String::new(),
                headers: Vec::new(),
            },
        );
        assert_eq!(
            proxied.header(),
            r#"{"Event":"Connection","State":"Open","Connection":8,"Address":"203.0.113.7","ProxyAddress":"127.0.0.2:40000","Path":"/"}"#
        );
        assert_eq!(
            proxied.data(),
            r#"{"Connection":"Open","Address":"203.0.113.7","ProxyAddress":"127.0.0.2:40000","Path":"/","Subprotocol":"","Headers":{}}"#
        );
        let text = ev(Some(7), EventKind::Text("привет".into()));
        assert_eq!(
            text.header(),
            r#"{"Event":"Message","Type":"Text","Connection":7}"#
        );
        assert_eq!(text.data(), "привет");
        let bin = ev(Some(7), EventKind::Binary(vec![0, 1, 2, 255]));
        assert_eq!(
            bin.header(),
            r#"{"Event":"Message","Type":"Binary","Connection":7,"Encoding":"base64"}"#
        );
        assert_eq!(bin.data(), "AAEC/w==");
        let close = ev(
            Some(7),
            EventKind::Close {
                code: 1000,
                reason: "Normal".into(),
                unsent: 0,
            },
        );
        assert_eq!(
            close.header(),
            r#"{"Event":"Connection","State":"Close","Connection":7,"Code":1000,"Reason":"Normal"}"#
        );
        assert_eq!(
            close.data(),
            r#"{"Connection":"Close","Code":1000,"Reason":"Normal"}"#
        );
        let fail = ev(
            Some(7),
            EventKind::Fail {
                error: "сброс \"x\"".into(),
                unsent: 0,
            },
        );
        assert_eq!(
            fail.header(),
            r#"{"Event":"Connection","State":"Fail","Connection":7,"Error":"сброс \"x\""}"#
        );
        assert_eq!(
            fail.data(),
            r#"{"Connection":"Fail","Error":"сброс \"x\""}"#
        );
        let rec = ev(
            None,
            EventKind::Reconnecting {
                attempt: 3,
                delay_ms: 2000,
            },
        );
        assert_eq!(
            rec.header(),
            r#"{"Event":"Connection","State":"Reconnecting","Attempt":3,"DelayMs":2000}"#
        );
        assert_eq!(rec.data(), "{}");
        assert_eq!(
            ev(None, EventKind::Pong(b"p".to_vec())).header(),
            r#"{"Event":"Pong"}"#
        );
    }

    #[test]
    fn unsent_messages_are_named_only_when_there_are_some() {
        let close = ev(
            Some(7),
            EventKind::Close {
                code: 1006,
                reason: String::new(),
                unsent: 3,
            },
        );
        assert_eq!(
            close.header(),
            r#"{"Event":"Connection","State":"Close","Connection":7,"Code":1006,"Reason":"","Unsent":3}"#
        );
        assert_eq!(
            close.data(),
            r#"{"Connection":"Close","Code":1006,"Reason":"","Unsent":3}"#
        );
        let fail = ev(
            None,
            EventKind::Fail {
                error: "e".into(),
                unsent: 12,
            },
        );
        assert_eq!(
            fail.header(),
            r#"{"Event":"Connection","State":"Fail","Error":"e","Unsent":12}"#
        );
        assert_eq!(
            fail.data(),
            r#"{"Connection":"Fail","Error":"e","Unsent":12}"#
        );
    }

    #[test]
    fn payloads_a_nul_terminated_string_would_cut_go_as_base64() {
        let text = ev(Some(7), EventKind::Text("a\0б".into()));
        assert_eq!(
            text.header(),
            r#"{"Event":"Message","Type":"Text","Connection":7,"Encoding":"base64"}"#
        );
        assert_eq!(text.data(), "YQDQsQ==");
        let pong = ev(Some(7), EventKind::Pong(vec![0xff, 1]));
        assert_eq!(
            pong.header(),
            r#"{"Event":"Pong","Connection":7,"Encoding":"base64"}"#
        );
        assert_eq!(pong.data(), "/wE=");
        assert_eq!(
            ev(None, EventKind::Pong(vec![0])).header(),
            r#"{"Event":"Pong","Encoding":"base64"}"#
        );
        let pong = ev(Some(7), EventKind::Pong(b"ok".to_vec()));
        assert_eq!(pong.header(), r#"{"Event":"Pong","Connection":7}"#);
        assert_eq!(pong.data(), "ok");
    }

    #[test]
    fn the_client_omits_connection() {
        assert_eq!(
            ev(None, EventKind::Text("x".into())).header(),
            r#"{"Event":"Message","Type":"Text"}"#
        );
        assert_eq!(
            ev(
                None,
                EventKind::Close {
                    code: 1006,
                    reason: String::new(),
                    unsent: 0,
                }
            )
            .header(),
            r#"{"Event":"Connection","State":"Close","Code":1006,"Reason":""}"#
        );
        assert_eq!(
            ev(None, EventKind::Text("x".into())).notification(),
            r#"{"Event":"Notify","Kind":"Message"}"#
        );
        assert!(ev(None, EventKind::Text("x".into())).is_message());
        assert!(!ev(None, EventKind::Pong(vec![])).is_message());
    }
}
