//! Engine.IO (v4, and v3 for Socket.IO 2.x servers) and Socket.IO (v5 / v4) packets over a
//! WebSocket, without I/O: decoding what a server sends, encoding what the client sends,
//! and the ROM-SocketIO style event strings 1C code sees.
//!
//! Only the WebSocket transport is spoken: the client opens `…/socket.io/?EIO=4&transport=websocket`
//! directly, without the long-polling handshake first. One WebSocket frame is one Engine.IO
//! packet: a text frame starts with the packet type digit; a binary frame is a message
//! (v4: the raw bytes; v3: a leading type byte `4`, then the bytes).
//!
//! A Socket.IO packet is `<type>[<attachments>-][<namespace>,][<ack id>][<JSON>]`; the
//! namespace is written only when it is not `/`. An event with binary arguments has them
//! replaced by `{"_placeholder":true,"num":N}` and is followed by N binary frames.

use std::borrow::Cow;

use base64::Engine as _;
use serde::de::{Deserializer as _, IgnoredAny, SeqAccess, Visitor};
use serde_json::{Map, Value as Json, json};

/// The Engine.IO protocol revision spoken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Eio {
    /// Engine.IO v3 / Socket.IO v4 (Socket.IO 2.x servers, or 3.x/4.x with `allowEIO3`):
    /// the client pings, the default namespace is joined by the server itself.
    V3,
    /// Engine.IO v4 / Socket.IO v5 (Socket.IO 3.x and 4.x servers): the server pings.
    #[default]
    V4,
}

impl Eio {
    /// The `EIO` query value.
    pub fn query(self) -> &'static str {
        match self {
            Eio::V3 => "3",
            Eio::V4 => "4",
        }
    }
}

/// A malformed packet, with a short quote of it for the Fail event.
#[derive(Debug, PartialEq, Eq)]
pub struct BadPacket(pub String);

fn bad(s: &str) -> BadPacket {
    BadPacket(s.chars().take(80).collect())
}

/// One Engine.IO packet of a text frame.
#[derive(Debug, PartialEq, Eq)]
pub enum EnginePacket<'a> {
    /// `0{…}`: the handshake.
    Open(&'a str),
    /// `1`: the server closes the session.
    Close,
    /// `2…`: a ping (the server's in v4; an answer to ours never comes as `2`).
    Ping(&'a str),
    /// `3…`: a pong.
    Pong(&'a str),
    /// `4…`: a Socket.IO packet.
    Message(&'a str),
    /// `5` / `6`: upgrade and noop, not used over a WebSocket.
    Noop,
}

/// Splits a text frame into its Engine.IO packet.
pub fn engine_decode(text: &str) -> Result<EnginePacket<'_>, BadPacket> {
    let rest = text.get(1..).unwrap_or("");
    Ok(match text.as_bytes().first() {
        Some(b'0') => EnginePacket::Open(rest),
        Some(b'1') => EnginePacket::Close,
        Some(b'2') => EnginePacket::Ping(rest),
        Some(b'3') => EnginePacket::Pong(rest),
        Some(b'4') => EnginePacket::Message(rest),
        Some(b'5' | b'6') => EnginePacket::Noop,
        _ => return Err(bad(text)),
    })
}

/// What the server's open packet says.
#[derive(Debug, PartialEq, Eq)]
pub struct Handshake {
    /// The Engine.IO session id.
    pub sid: String,
    /// Milliseconds between pings.
    pub ping_interval: u64,
    /// Milliseconds a ping (v4) or a pong (v3) may be late.
    pub ping_timeout: u64,
}

/// Parses the open packet's JSON.
pub fn parse_open(json: &str) -> Result<Handshake, BadPacket> {
    let v: Json = serde_json::from_str(json).map_err(|_| bad(json))?;
    let sid = v
        .get("sid")
        .and_then(Json::as_str)
        .ok_or_else(|| bad(json))?;
    let ms = |k: &str, d: u64| v.get(k).and_then(Json::as_u64).unwrap_or(d);
    Ok(Handshake {
        sid: sid.to_owned(),
        ping_interval: ms("pingInterval", 25_000),
        ping_timeout: ms("pingTimeout", 20_000),
    })
}

/// Socket.IO packet types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// 0: joins (client) or confirms (server) a namespace.
    Connect,
    /// 1: leaves a namespace.
    Disconnect,
    /// 2: an event.
    Event,
    /// 3: an acknowledgement.
    Ack,
    /// 4: the namespace refused the connection.
    ConnectError,
    /// 5: an event with binary attachments.
    BinaryEvent,
    /// 6: an acknowledgement with binary attachments.
    BinaryAck,
}

impl Kind {
    fn from_digit(b: u8) -> Option<Kind> {
        Some(match b {
            b'0' => Kind::Connect,
            b'1' => Kind::Disconnect,
            b'2' => Kind::Event,
            b'3' => Kind::Ack,
            b'4' => Kind::ConnectError,
            b'5' => Kind::BinaryEvent,
            b'6' => Kind::BinaryAck,
            _ => return None,
        })
    }

    fn digit(self) -> char {
        match self {
            Kind::Connect => '0',
            Kind::Disconnect => '1',
            Kind::Event => '2',
            Kind::Ack => '3',
            Kind::ConnectError => '4',
            Kind::BinaryEvent => '5',
            Kind::BinaryAck => '6',
        }
    }
}

/// One decoded Socket.IO packet, borrowing the frame's text.
#[derive(Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Its type.
    pub kind: Kind,
    /// How many binary frames follow (binary types only).
    pub attachments: usize,
    /// The namespace, `/` when none is written (a v4 query after `?` is dropped).
    pub nsp: &'a str,
    /// The ack id.
    pub id: Option<u64>,
    /// The JSON payload, `""` when there is none.
    pub data: &'a str,
}

/// Decodes a Socket.IO packet (the part after the Engine.IO `4`).
pub fn decode(s: &str) -> Result<Packet<'_>, BadPacket> {
    let b = s.as_bytes();
    let kind = b
        .first()
        .and_then(|&d| Kind::from_digit(d))
        .ok_or_else(|| bad(s))?;
    let mut i = 1;
    let mut attachments = 0;
    if matches!(kind, Kind::BinaryEvent | Kind::BinaryAck) {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start || b.get(i) != Some(&b'-') {
            return Err(bad(s));
        }
        attachments = s[start..i].parse().map_err(|_| bad(s))?;
        i += 1;
    }
    let mut nsp = "/";
    if b.get(i) == Some(&b'/') {
        let end = s[i..].find(',').map_or(s.len(), |k| i + k);
        let full = &s[i..end];
        nsp = full.split('?').next().unwrap_or(full);
        i = (end + 1).min(s.len());
    }
    let start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let id = if i > start {
        Some(s[start..i].parse().map_err(|_| bad(s))?)
    } else {
        None
    };
    Ok(Packet {
        kind,
        attachments,
        nsp,
        id,
        data: &s[i..],
    })
}

/// Encodes a packet as the text of a WebSocket frame (with the Engine.IO `4`).
pub fn encode(kind: Kind, attachments: usize, nsp: &str, id: Option<u64>, data: &str) -> String {
    let mut out = String::with_capacity(data.len() + nsp.len() + 24);
    out.push('4');
    out.push(kind.digit());
    if matches!(kind, Kind::BinaryEvent | Kind::BinaryAck) {
        out.push_str(&attachments.to_string());
        out.push('-');
    }
    if nsp != "/" {
        out.push_str(nsp);
        out.push(',');
    }
    if let Some(id) = id {
        out.push_str(&id.to_string());
    }
    out.push_str(data);
    out
}

/// The event name: the first element of an event's JSON array, if it is a string. Reads
/// the rest without building it (a large payload is only scanned); a name without escapes
/// is borrowed.
pub fn event_name(data: &str) -> Option<Cow<'_, str>> {
    if let Some(rest) = data.strip_prefix("[\"")
        && let Some(end) = rest.find(['"', '\\'])
        && rest.as_bytes()[end] == b'"'
    {
        serde_json::from_str::<IgnoredAny>(data).ok()?;
        return Some(Cow::Borrowed(&rest[..end]));
    }
    struct First;
    impl<'de> Visitor<'de> for First {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let first = seq.next_element::<Json>()?;
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(match first {
                Some(Json::String(s)) => Some(s),
                _ => None,
            })
        }
    }
    let mut de = serde_json::Deserializer::from_str(data);
    let name = de.deserialize_seq(First).ok()??;
    de.end().ok()?;
    Some(Cow::Owned(name))
}

/// `data` with `\uXXXX` escapes written as the characters themselves (python-socketio
/// escapes every non-ASCII character; Node does not): 1C code reads and compares the same
/// text from every server. Data without escapes is returned as it came, without a parse.
pub fn unescaped(data: String) -> String {
    if !data.contains("\\u") {
        return data;
    }
    match serde_json::from_str::<Json>(&data) {
        Ok(v) => v.to_string(),
        Err(_) => data,
    }
}

/// Whether `data` is a JSON array (an ack's arguments).
pub fn is_array(data: &str) -> bool {
    matches!(serde_json::from_str::<Json>(data), Ok(Json::Array(_)))
}

/// The message of a connect error's payload: v5 `{"message": "…"}`, v4 a bare string.
pub fn connect_error_message(data: &str) -> String {
    match serde_json::from_str::<Json>(data) {
        Ok(Json::String(s)) => s,
        Ok(Json::Object(m)) => match m.get("message") {
            Some(Json::String(s)) => s.clone(),
            _ => Json::Object(m).to_string(),
        },
        Ok(v) => v.to_string(),
        Err(_) => data.to_owned(),
    }
}

/// The socket id of a v5 namespace connect (`{"sid": "…"}`).
pub fn connect_sid(data: &str) -> Option<String> {
    let v: Json = serde_json::from_str(data).ok()?;
    v.get("sid")?.as_str().map(str::to_owned)
}

/// Replaces each `{"_placeholder":true,"num":N}` in `args` by the attachment in
/// `value(N)`, recursively.
fn fill(v: &mut Json, value: &dyn Fn(usize) -> Option<Json>) {
    match v {
        Json::Array(a) => a.iter_mut().for_each(|x| fill(x, value)),
        Json::Object(m) => {
            let num = (m.get("_placeholder") == Some(&Json::Bool(true)))
                .then(|| m.get("num").and_then(Json::as_u64))
                .flatten();
            match num.and_then(|n| value(n as usize)) {
                Some(x) => *v = x,
                None => m.values_mut().for_each(|x| fill(x, value)),
            }
        }
        _ => {}
    }
}

/// A binary event's arguments as 1C code reads them: each placeholder gains `"base64"`
/// with its attachment (`{"_placeholder":true,"num":0,"base64":"AAEC"}`).
pub fn with_base64(data: &str, bins: &[Vec<u8>]) -> Result<String, BadPacket> {
    let mut v: Json = serde_json::from_str(data).map_err(|_| bad(data))?;
    let b64 = |n: usize| {
        bins.get(n).map(|b| {
            json!({
                "_placeholder": true,
                "num": n,
                "base64": base64::engine::general_purpose::STANDARD.encode(b),
            })
        })
    };
    fill(&mut v, &b64);
    Ok(v.to_string())
}

/// One argument 1C code sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// A JSON value (a string message is a JSON string).
    Json(Json),
    /// Binary data: a placeholder plus an attachment.
    Binary(Vec<u8>),
}

/// An event (`name` and `args`) or ack (`name` = `None`) ready for the wire: the text
/// frame and the binary frames after it.
pub fn encode_event(
    nsp: &str,
    id: Option<u64>,
    name: Option<&str>,
    args: Vec<Arg>,
) -> (String, Vec<Vec<u8>>) {
    let mut arr = Vec::with_capacity(args.len() + 1);
    if let Some(n) = name {
        arr.push(Json::String(n.to_owned()));
    }
    let mut bins = Vec::new();
    for a in args {
        match a {
            Arg::Json(v) => arr.push(v),
            Arg::Binary(b) => {
                let mut m = Map::new();
                m.insert("_placeholder".into(), Json::Bool(true));
                m.insert("num".into(), json!(bins.len()));
                arr.push(Json::Object(m));
                bins.push(b);
            }
        }
    }
    let kind = match (name.is_some(), bins.is_empty()) {
        (true, true) => Kind::Event,
        (true, false) => Kind::BinaryEvent,
        (false, true) => Kind::Ack,
        (false, false) => Kind::BinaryAck,
    };
    let data = Json::Array(arr).to_string();
    (encode(kind, bins.len(), nsp, id, &data), bins)
}

/// The namespace connect a client sends: v5 always (with `auth` as its payload); v4 only
/// for a namespace other than `/` (with the query), since the server joins `/` by itself.
pub fn connect_packet(eio: Eio, nsp: &str, auth: Option<&Json>, query: &str) -> Option<String> {
    match eio {
        Eio::V4 => {
            let data = auth.map(Json::to_string).unwrap_or_default();
            Some(encode(Kind::Connect, 0, nsp, None, &data))
        }
        Eio::V3 if nsp == "/" => None,
        Eio::V3 if query.is_empty() => Some(encode(Kind::Connect, 0, nsp, None, "")),
        Eio::V3 => Some(encode(
            Kind::Connect,
            0,
            &format!("{nsp}?{query}"),
            None,
            "",
        )),
    }
}

/// A JSON object in ROM-SocketIO's spacing: a space after each colon, none after commas
/// (`{"Event": "Connection","State": "Open"}`).
pub fn rom(fields: &[(&str, Json)]) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&Json::String((*k).to_owned()).to_string());
        s.push_str(": ");
        s.push_str(&v.to_string());
    }
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_packets() {
        assert_eq!(engine_decode("2").unwrap(), EnginePacket::Ping(""));
        assert_eq!(
            engine_decode("3probe").unwrap(),
            EnginePacket::Pong("probe")
        );
        assert_eq!(engine_decode("1").unwrap(), EnginePacket::Close);
        assert_eq!(engine_decode("6").unwrap(), EnginePacket::Noop);
        assert_eq!(
            engine_decode("42[\"a\"]").unwrap(),
            EnginePacket::Message("2[\"a\"]")
        );
        assert!(engine_decode("").is_err());
        assert!(engine_decode("x").is_err());
        let h = parse_open(
            r#"{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":[],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000}"#,
        )
        .unwrap();
        assert_eq!(
            h,
            Handshake {
                sid: "lv_VI97HAXpY6yYWAAAC".into(),
                ping_interval: 300,
                ping_timeout: 200
            }
        );
        assert!(parse_open("{}").is_err());
        assert!(parse_open("not json").is_err());
    }

    #[test]
    fn socketio_packets_decode() {
        let p = decode(r#"2["hello",1]"#).unwrap();
        assert_eq!(
            (p.kind, p.nsp, p.id, p.data),
            (Kind::Event, "/", None, r#"["hello",1]"#)
        );
        let p = decode(r#"2/admin,456["project:delete",123]"#).unwrap();
        assert_eq!(
            (p.kind, p.nsp, p.id, p.data),
            (
                Kind::Event,
                "/admin",
                Some(456),
                r#"["project:delete",123]"#
            )
        );
        let p = decode(r#"3/admin,456[]"#).unwrap();
        assert_eq!((p.kind, p.id, p.data), (Kind::Ack, Some(456), "[]"));
        let p = decode(r#"51-["hello",{"_placeholder":true,"num":0}]"#).unwrap();
        assert_eq!((p.kind, p.attachments, p.nsp), (Kind::BinaryEvent, 1, "/"));
        let p = decode(r#"61-/admin,456[{"_placeholder":true,"num":0}]"#).unwrap();
        assert_eq!(
            (p.kind, p.attachments, p.nsp, p.id),
            (Kind::BinaryAck, 1, "/admin", Some(456))
        );
        let p = decode(r#"0{"sid":"oSO0OpakMV_3jnilAAAA"}"#).unwrap();
        assert_eq!(p.kind, Kind::Connect);
        assert_eq!(connect_sid(p.data).as_deref(), Some("oSO0OpakMV_3jnilAAAA"));
        let p = decode("0/admin,").unwrap();
        assert_eq!((p.nsp, p.data), ("/admin", ""));
        let p = decode("0/admin?token=1,").unwrap();
        assert_eq!(p.nsp, "/admin");
        let p = decode("1/admin,").unwrap();
        assert_eq!((p.kind, p.nsp), (Kind::Disconnect, "/admin"));
        let p = decode(r#"4{"message":"Not authorized"}"#).unwrap();
        assert_eq!(connect_error_message(p.data), "Not authorized");
        assert_eq!(
            connect_error_message(r#""Invalid namespace""#),
            "Invalid namespace"
        );
        assert!(decode("").is_err());
        assert!(decode("9").is_err());
        assert!(decode("5[]").is_err(), "binary without a count");
    }

    #[test]
    fn socketio_packets_encode() {
        assert_eq!(encode(Kind::Connect, 0, "/", None, ""), "40");
        assert_eq!(encode(Kind::Disconnect, 0, "/chat", None, ""), "41/chat,");
        let (t, b) = encode_event(
            "/",
            None,
            Some("new message"),
            vec![Arg::Json(json!("Привет мир!"))],
        );
        assert_eq!(t, r#"42["new message","Привет мир!"]"#);
        assert!(b.is_empty());
        let (t, b) = encode_event("/admin", Some(12), Some("e"), vec![Arg::Binary(vec![1, 2])]);
        assert_eq!(t, r#"451-/admin,12["e",{"_placeholder":true,"num":0}]"#);
        assert_eq!(b, vec![vec![1, 2]]);
        let (t, _) = encode_event("/", Some(3), None, vec![Arg::Json(json!({"a": [1]}))]);
        assert_eq!(t, r#"433[{"a":[1]}]"#);
        let (t, b) = encode_event("/", Some(3), None, vec![Arg::Binary(vec![9])]);
        assert_eq!(t, r#"461-3[{"_placeholder":true,"num":0}]"#);
        assert_eq!(b.len(), 1);
        // What is encoded decodes back.
        let p = decode(&t[1..]).unwrap();
        assert_eq!((p.kind, p.attachments, p.id), (Kind::BinaryAck, 1, Some(3)));
    }

    #[test]
    fn namespace_connect_by_revision() {
        let auth = json!({"token": "abc"});
        assert_eq!(
            connect_packet(Eio::V4, "/", None, "").as_deref(),
            Some("40")
        );
        assert_eq!(
            connect_packet(Eio::V4, "/admin", Some(&auth), "x=1").as_deref(),
            Some(r#"40/admin,{"token":"abc"}"#)
        );
        assert_eq!(connect_packet(Eio::V3, "/", None, ""), None);
        assert_eq!(
            connect_packet(Eio::V3, "/admin", None, "x=1").as_deref(),
            Some("40/admin?x=1,")
        );
        assert_eq!(
            connect_packet(Eio::V3, "/admin", None, "").as_deref(),
            Some("40/admin,")
        );
    }

    #[test]
    fn names_and_placeholders() {
        assert_eq!(
            event_name(r#"["чат",{"a":[1,{"b":2}]},3]"#).as_deref(),
            Some("чат")
        );
        assert_eq!(event_name("[1]"), None);
        assert_eq!(event_name("[]"), None);
        assert_eq!(event_name(r#"["a""#), None);
        assert_eq!(event_name(r#"["a"] x"#), None);
        assert_eq!(
            event_name(r#"["a",}"#),
            None,
            "the rest is checked on the fast path"
        );
        assert!(matches!(event_name(r#"["a",1]"#), Some(Cow::Borrowed("a"))));
        assert_eq!(event_name(r#"["a\"b",1]"#).as_deref(), Some("a\"b"));
        assert_eq!(event_name(r#"[ "a" ]"#).as_deref(), Some("a"));
        assert!(is_array("[]") && !is_array("{}"));
        let d = with_base64(
            r#"["f",{"x":{"_placeholder":true,"num":1}},{"_placeholder":true,"num":0}]"#,
            &[vec![0, 1, 2], b"hi".to_vec()],
        )
        .unwrap();
        assert_eq!(
            d,
            r#"["f",{"x":{"_placeholder":true,"num":1,"base64":"aGk="}},{"_placeholder":true,"num":0,"base64":"AAEC"}]"#
        );
        // A placeholder with no attachment stays as it came.
        let d = with_base64(r#"[{"_placeholder":true,"num":5}]"#, &[]).unwrap();
        assert_eq!(d, r#"[{"_placeholder":true,"num":5}]"#);
    }

    #[test]
    fn escaped_text_is_normalised() {
        assert_eq!(
            unescaped(r#"["echo","\u041f\u0440\u0438\u0432\u0435\u0442 \ud83d\ude00"]"#.into()),
            r#"["echo","Привет 😀"]"#
        );
        let raw = r#"["a", {"b": "в"}]"#.to_owned();
        assert_eq!(unescaped(raw.clone()), raw, "untouched without escapes");
        // A NUL stays escaped: the strings go to the platform NUL-terminated.
        assert_eq!(unescaped(r#"["\u0000я"]"#.into()), r#"["\u0000я"]"#);
    }

    #[test]
    fn rom_spacing() {
        assert_eq!(
            rom(&[("Event", json!("Connection")), ("State", json!("Open"))]),
            r#"{"Event": "Connection","State": "Open"}"#
        );
        assert_eq!(
            rom(&[("Connection", json!("Close"))]),
            r#"{"Connection": "Close"}"#
        );
        assert_eq!(
            rom(&[("Ack", json!(5)), ("N", json!("\"q\""))]),
            r#"{"Ack": 5,"N": "\"q\""}"#
        );
    }
}
