//! `AddIn.WebSocket.SocketIO`: ROM-SocketIO's members, name for name, on the WebSocket
//! client's connection layer, hub and delivery modes.
//!
//! The object owns its subscriptions (they outlive every connection) and the current
//! connection's handles; the connection task ([`crate::net::sio_client::sio_task`]) owns only its
//! channel ends and clones of the hub, the state and the subscriptions.

use std::sync::atomic::Ordering;
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value as Json;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::error::{ClientError, Error, Names, Result, SioError};
use crate::net::client::Target;
use crate::net::options::ClientOptions;
use crate::net::sio_client::{
    self, STATUS_CONNECTING, STATUS_IDLE, STATUS_OPEN, STATUS_RECONNECTING, SioOptions, SioState,
    SioTask, Subscriptions,
};
use crate::net::socketio::{self as sio, Arg, Eio};
use crate::net::{Command, Queued, SendQueue, send_queue};
use crate::objects::{Args, Object, ObjectCore};
use crate::registry::{Members, MethodDef, MethodId, PropDef, PropId, SOCKETIO};
use crate::value::Value;

/// ROM-SocketIO's default `Таймаут`, in seconds.
const DEFAULT_TIMEOUT_S: u64 = 5;

/// One connection's handles.
struct Link {
    shared: Arc<SioState>,
    commands: SendQueue,
    token: CancellationToken,
    options: ClientOptions,
    nsp: String,
    eio: Eio,
}

/// A Socket.IO client object.
pub struct SocketIo {
    conn: Option<Link>,
    subs: Arc<Subscriptions>,
    /// `Таймаут`, seconds.
    timeout_s: u64,
    /// The address as 1C code passed it.
    url: String,
    /// The next ack id of this object.
    next_ack: u64,
    /// Attachments of the last event `ПолучитьСобытие` (or `ОтправитьИЖдать`) returned.
    last_attachments: Vec<Vec<u8>>,
}

impl Default for SocketIo {
    fn default() -> Self {
        SocketIo::new()
    }
}

const TIMEOUT: Names = Names {
    ru: "Таймаут",
    en: "Timeout",
};

/// Where to connect: the Engine.IO endpoint, the namespace and the query.
struct Endpoint {
    target: Target,
    nsp: String,
    query: String,
}

/// Splits the options into Socket.IO's own keys (`path`, `query`, `auth`, `eio`) and the
/// WebSocket client's (everything else, checked by [`ClientOptions::parse`]).
fn split_options(
    text: &str,
    timeout_s: u64,
) -> Result<(ClientOptions, SioOptions, String, String)> {
    let bad = |key: &'static str, expected: &'static str| {
        Error::SocketIo(SioError::BadOption { key, expected })
    };
    let mut map = if text.trim().is_empty() {
        serde_json::Map::new()
    } else {
        match serde_json::from_str::<Json>(text) {
            Ok(Json::Object(m)) => m,
            // Not an object: the client's parser says what is wrong, in its words.
            _ => {
                ClientOptions::parse(text)?;
                serde_json::Map::new()
            }
        }
    };
    let path = match map.remove("path") {
        None => "/socket.io/".to_owned(),
        Some(Json::String(p)) if p.starts_with('/') => p,
        Some(_) => return Err(bad("path", "\"/socket.io/\"")),
    };
    let query = match map.remove("query") {
        None => String::new(),
        Some(Json::String(q)) => q.trim_start_matches('?').to_owned(),
        Some(Json::Object(m)) => {
            let mut ser = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in m {
                match v {
                    Json::String(s) => ser.append_pair(&k, &s),
                    other => ser.append_pair(&k, &other.to_string()),
                };
            }
            ser.finish()
        }
        Some(_) => return Err(bad("query", "{\"key\": \"value\"}")),
    };
    let auth = match map.remove("auth") {
        None | Some(Json::Null) => None,
        Some(v @ Json::Object(_)) => Some(v),
        Some(_) => return Err(bad("auth", "{…}")),
    };
    let eio = match map.remove("eio") {
        None => Eio::V4,
        Some(v) if v == 4 => Eio::V4,
        Some(v) if v == 3 => Eio::V3,
        Some(_) => return Err(bad("eio", "3 | 4")),
    };
    let has_timeout = map.contains_key("timeout_ms");
    let mut options = ClientOptions::parse(&Json::Object(map).to_string())?;
    if !has_timeout {
        options.timeout = Duration::from_secs(timeout_s.max(1));
    }
    Ok((options, SioOptions { eio, auth }, path, query))
}

/// The Engine.IO endpoint of `uri` (`ws`, `wss`, `http` or `https`): the URI's path is
/// the namespace, `path` the Engine.IO path, the URI's query and `query` go to the server.
fn endpoint(uri: &str, path: &str, query: &str, eio: Eio) -> Result<Endpoint> {
    let trimmed = uri.trim();
    let lower = trimmed.to_ascii_lowercase();
    let ws = if lower.starts_with("http://") {
        format!("ws://{}", &trimmed[7..])
    } else if lower.starts_with("https://") {
        format!("wss://{}", &trimmed[8..])
    } else {
        trimmed.to_owned()
    };
    // Checked first: its errors name the part of the address that is wrong.
    Target::parse(&ws)?;
    // Parsed by `Target::parse` just now, so this cannot fail; if it did, it says so.
    let mut u = url::Url::parse(&ws).map_err(|_| {
        Error::Address(crate::error::AddressError::NotUrl {
            url: uri.to_owned(),
        })
    })?;
    let nsp = match u.path().trim_end_matches('/') {
        "" => "/".to_owned(),
        p => p.to_owned(),
    };
    let mut q: Vec<&str> = Vec::new();
    let mut full = format!("EIO={}&transport=websocket", eio.query());
    for part in [u.query().unwrap_or(""), query] {
        if !part.is_empty() {
            full.push('&');
            full.push_str(part);
            q.push(part);
        }
    }
    let user_query = q.join("&");
    u.set_path(path);
    u.set_query(Some(&full));
    let mut target = Target::parse(u.as_str())?;
    target.url = uri.to_owned();
    Ok(Endpoint {
        target,
        nsp,
        query: user_query,
    })
}

/// One argument from a 1C value: a string (or JSON text with `ЭтоJSON`), a number, a
/// Boolean, binary data (an attachment); `Неопределено`: none.
fn arg_of(v: &Value, as_json: bool) -> Result<Option<Arg>> {
    Ok(Some(match v {
        Value::Empty => return Ok(None),
        Value::Null => Arg::Json(Json::Null),
        Value::Str(s) if as_json => Arg::Json(serde_json::from_str(s).map_err(|_| {
            Error::SocketIo(SioError::NotJson {
                text: s.chars().take(80).collect(),
            })
        })?),
        Value::Str(s) => Arg::Json(Json::String(s.clone())),
        Value::Bool(b) => Arg::Json(Json::Bool(*b)),
        Value::Int(i) => Arg::Json(Json::from(*i)),
        Value::Double(d) => {
            Arg::Json(serde_json::Number::from_f64(*d).map_or(Json::Null, Json::Number))
        }
        Value::Date(d) => Arg::Json(Json::String(d.to_string())),
        Value::Binary(b) => Arg::Binary(b.clone()),
        Value::Unsupported(_) => return Ok(None),
    }))
}

impl SocketIo {
    /// An object that is not connected, subscribed to nothing.
    pub fn new() -> SocketIo {
        SocketIo {
            conn: None,
            subs: Arc::default(),
            timeout_s: DEFAULT_TIMEOUT_S,
            url: String::new(),
            next_ack: 0,
            last_attachments: Vec::new(),
        }
    }

    fn status(&self) -> i32 {
        self.conn
            .as_ref()
            .map_or(STATUS_IDLE, |c| c.shared.status.load(Ordering::SeqCst))
    }

    /// `Подключиться(URI, Параметры)`: waits until the namespace is joined or the connect
    /// failed (within `Таймаут`), returns which; the Open or Fail event follows either way,
    /// as ROM-SocketIO raises it. Only a wrong address or option raises.
    ///
    /// With `wait` false (`НачатьПодключение`) it returns at once; the event says how it went.
    fn connect(
        &mut self,
        core: &mut ObjectCore,
        uri: &str,
        options: &str,
        wait: bool,
    ) -> Result<Value> {
        crate::net::client::refuse_second_connect(self.status())?;
        let (options, so, path, query) = split_options(options, self.timeout_s)?;
        let ep = endpoint(uri, &path, &query, so.eio)?;
        if let Some(c) = self.conn.take() {
            c.token.cancel();
        }
        let (hub, lang) = (core.hub().clone(), core.lang());
        let engine = core.engine()?;
        let shared = SioState::new();
        let (tx, rx) = send_queue(&options.limits);
        let (ready_tx, ready) = sync_channel(1);
        let ready_tx = wait.then_some(ready_tx);
        let token = engine.token.child_token();
        hub.connection_started();
        let eio = so.eio;
        let task = SioTask {
            target: ep.target,
            nsp: ep.nsp.clone(),
            query: ep.query,
            options: options.clone(),
            sio: so,
            hub,
            shared: shared.clone(),
            subs: self.subs.clone(),
            commands: rx,
            budget: tx.budget(),
            ready: ready_tx,
            lang,
            token: token.clone(),
            drain: engine.drain.clone(),
        };
        engine.spawn(sio_client::sio_task(task));
        let bound = options.timeout + Duration::from_secs(2);
        self.conn = Some(Link {
            shared,
            commands: tx,
            token,
            options,
            nsp: ep.nsp,
            eio,
        });
        self.url = uri.to_owned();
        if !wait {
            return Ok(Value::Empty);
        }
        Ok(Value::Bool(ready.recv_timeout(bound).unwrap_or(false)))
    }

    /// `Отключиться()`: leaves the namespace and closes, waiting at most `close_timeout_ms`;
    /// the Close event follows.
    fn disconnect(&mut self, core: &ObjectCore) {
        let Some(c) = &self.conn else { return };
        c.shared.stopping.store(true, Ordering::SeqCst);
        let limit = c.options.limits.close_timeout;
        let open = c.shared.status.load(Ordering::SeqCst) == STATUS_OPEN;
        if open && !c.shared.is_finished() {
            let sent = core.started_engine().is_some_and(|e| {
                c.commands
                    .queue(e, Command::Close(1000, String::new()), limit)
                    == Queued::Yes
            });
            if sent && c.shared.wait_finished(limit + Duration::from_secs(1)) {
                return;
            }
        }
        c.token.cancel();
        c.shared.wait_finished(Duration::from_secs(1));
        let _ = c.shared.status.compare_exchange(
            STATUS_CONNECTING,
            STATUS_IDLE,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }

    /// The open link, or why there is none.
    fn open_link(&self) -> Result<&Link> {
        let c = self.conn.as_ref().filter(|c| {
            c.shared.status.load(Ordering::SeqCst) == STATUS_OPEN
                && !c.shared.stopping.load(Ordering::SeqCst)
        });
        c.ok_or_else(|| match self.status() {
            STATUS_RECONNECTING => Error::Client(ClientError::Reconnecting),
            STATUS_CONNECTING => Error::Client(ClientError::Connecting),
            _ => Error::not_connected(),
        })
    }

    /// Queues an event (`name`) or an ack reply (`name` = `None`) with its attachments.
    fn emit(
        &self,
        core: &ObjectCore,
        name: Option<&str>,
        id: Option<u64>,
        message: &Value,
        as_json: bool,
    ) -> Result<()> {
        if name == Some("") {
            return Err(Error::SocketIo(SioError::EmptyName));
        }
        let c = self.open_link()?;
        let args: Vec<Arg> = arg_of(message, as_json)?.into_iter().collect();
        let (text, bins) = sio::encode_event(&c.nsp, id, name, args);
        let engine = core.started_engine().ok_or_else(Error::not_connected)?;
        let wait = c.options.limits.send_timeout;
        let frames = std::iter::once(Message::text(text))
            .chain(bins.into_iter().map(|b| sio_client::binary_frame(c.eio, b)));
        for m in frames {
            match c.commands.queue(engine, Command::Send(m), wait) {
                Queued::Yes => {}
                Queued::Closed => return Err(Error::not_connected()),
                Queued::Full => {
                    return Err(Error::Client(ClientError::QueueFull {
                        waited_ms: wait.as_millis(),
                    }));
                }
            }
        }
        Ok(())
    }

    fn ack_id(&mut self) -> u64 {
        let id = self.next_ack;
        self.next_ack += 1;
        id
    }

    /// `ОтправитьИЖдать`: the server's acknowledgement arguments as a JSON array.
    fn send_and_wait(&mut self, core: &ObjectCore, args: &Args) -> Result<Value> {
        let ms = args.get(2).whole(TIMEOUT, 1, u32::MAX.into())?;
        self.open_link()?;
        let id = self.ack_id();
        let c = self.open_link()?;
        let (tx, rx) = sync_channel(1);
        let shared = c.shared.clone();
        shared
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        let sent = self.emit(
            core,
            Some(args.str(0)),
            Some(id),
            args.get(1),
            bool_arg(args, 3),
        );
        let forget = || {
            shared
                .waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        };
        if let Err(e) = sent {
            forget();
            return Err(e);
        }
        match rx.recv_timeout(Duration::from_millis(ms)) {
            Ok((data, bins)) => {
                self.last_attachments = bins;
                Ok(Value::Str(data))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                forget();
                Err(Error::SocketIo(SioError::AckTimeout { ms }))
            }
            Err(_) => Err(Error::SocketIo(SioError::AckLost)),
        }
    }

    /// `ПолучитьСобытие(Таймаут, Событие, Данные)`, keeping the event's attachments for
    /// `ПолучитьВложение`.
    fn receive_event(&mut self, core: &ObjectCore, args: &mut Args) -> Result<Value> {
        let (found, header, data, bins) = match core.next_event(args)? {
            // The payload is moved out, not copied.
            Some(ev) => match ev.kind {
                crate::event::EventKind::SocketIo(e) => {
                    let e = *e;
                    (true, e.header.to_string(), e.data, e.attachments)
                }
                _ => (true, ev.header(), ev.data(), Vec::new()),
            },
            None => (false, String::new(), String::new(), Vec::new()),
        };
        self.last_attachments = bins;
        args.set_out(1, Value::Str(header));
        args.set_out(2, Value::Str(data));
        Ok(Value::Bool(found))
    }

    fn attachment(&self, index: f64) -> Result<Value> {
        let g = &self.last_attachments;
        let i = index as i64;
        match usize::try_from(i).ok().and_then(|i| g.get(i)) {
            Some(b) if index.fract() == 0.0 => Ok(Value::Binary(b.clone())),
            _ => Err(Error::SocketIo(SioError::NoAttachment {
                index: i,
                count: g.len(),
            })),
        }
    }
}

fn bool_arg(args: &Args, k: usize) -> bool {
    matches!(args.get(k), Value::Bool(true))
}

impl Object for SocketIo {
    fn members(&self) -> &'static Members {
        &SOCKETIO
    }

    fn get(&mut self, _core: &ObjectCore, prop: &PropDef) -> Result<Value> {
        let shared = self.conn.as_ref().map(|c| &c.shared);
        let text = |f: fn(&SioState) -> &Mutex<String>| {
            Value::Str(shared.map(|s| SioState::get(f(s))).unwrap_or_default())
        };
        Ok(match prop.id {
            PropId::SessionId => match self.status() {
                STATUS_OPEN => text(|s| &s.sid),
                _ => Value::Str(String::new()),
            },
            PropId::Connected => Value::Bool(self.status() == STATUS_OPEN),
            PropId::ConnectTimeout => Value::Int(self.timeout_s as i64),
            PropId::Status => Value::Int(i64::from(self.status())),
            PropId::Server => Value::Str(self.url.clone()),
            PropId::LastError => text(|s| &s.last_error),
            PropId::DisconnectReason => text(|s| &s.reason),
            _ => return Err(Error::NotImplemented { member: prop.names }),
        })
    }

    fn set(&mut self, _core: &mut ObjectCore, prop: &PropDef, v: Value) -> Result<()> {
        match prop.id {
            PropId::ConnectTimeout => {
                // ROM-SocketIO documents a string: "5" and 5 are both taken.
                let n = match &v {
                    Value::Str(s) => s.trim().parse::<f64>().map(Value::Double).unwrap_or(v),
                    _ => v,
                };
                self.timeout_s = n.whole(prop.names, 1, 3600)?;
                Ok(())
            }
            _ => Err(Error::ReadOnly { prop: prop.names }),
        }
    }

    fn call(&mut self, core: &mut ObjectCore, m: &MethodDef, args: &mut Args) -> Result<Value> {
        match m.id {
            MethodId::Connect | MethodId::BeginConnect => {
                let (uri, options) = (args.str(0).to_owned(), args.str(1).to_owned());
                self.connect(core, &uri, &options, m.id == MethodId::Connect)
            }
            MethodId::Disconnect => {
                self.disconnect(core);
                Ok(Value::Empty)
            }
            MethodId::Send => self
                .emit(
                    core,
                    Some(args.str(0)),
                    None,
                    args.get(1),
                    bool_arg(args, 2),
                )
                .map(|()| Value::Empty),
            MethodId::SendWithAck => {
                self.open_link()?;
                let id = self.ack_id();
                self.emit(
                    core,
                    Some(args.str(0)),
                    Some(id),
                    args.get(1),
                    bool_arg(args, 2),
                )?;
                Ok(Value::from_count(id))
            }
            MethodId::SendAndWait => self.send_and_wait(core, args),
            MethodId::AckReply => {
                let id = args
                    .get(0)
                    .whole(m.params[0].names, 0, u64::from(u32::MAX) * 1024)?;
                self.emit(core, None, Some(id), args.get(1), bool_arg(args, 2))
                    .map(|()| Value::Empty)
            }
            MethodId::On => {
                if args.str(0).is_empty() {
                    return Err(Error::SocketIo(SioError::EmptyName));
                }
                self.subs.on(args.str(0));
                Ok(Value::Empty)
            }
            MethodId::Off => {
                self.subs.off(args.str(0));
                Ok(Value::Empty)
            }
            MethodId::OffAll => {
                self.subs.clear();
                Ok(Value::Empty)
            }
            MethodId::SioReceiveEvent => self.receive_event(core, args),
            MethodId::Attachment => self.attachment(args.number(0)),
            _ => Err(Error::NotImplemented { member: m.names }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::Lang;

    #[test]
    fn the_uri_path_is_the_namespace() {
        let e = endpoint("ws://127.0.0.1:3000/admin?x=1", "/socket.io/", "", Eio::V4).unwrap();
        assert_eq!(e.nsp, "/admin");
        assert_eq!(e.query, "x=1");
        assert_eq!(e.target.path, "/socket.io/?EIO=4&transport=websocket&x=1");
        assert_eq!(e.target.url, "ws://127.0.0.1:3000/admin?x=1");
        let e = endpoint("HTTPS://h", "/rt/", "a=b", Eio::V3).unwrap();
        assert!(e.target.tls);
        assert_eq!(e.nsp, "/");
        assert_eq!(e.target.path, "/rt/?EIO=3&transport=websocket&a=b");
        assert!(endpoint("ftp://h", "/socket.io/", "", Eio::V4).is_err());
    }

    #[test]
    fn own_options_are_taken_out_and_the_rest_checked() {
        let (o, s, path, q) = split_options(
            r#"{"path": "/x/", "query": {"token": "a b"}, "auth": {"k": 1}, "eio": 3, "headers": {"X-A": "1"}}"#,
            5,
        )
        .unwrap();
        assert_eq!((path.as_str(), q.as_str()), ("/x/", "token=a+b"));
        assert_eq!(s.eio, Eio::V3);
        assert_eq!(s.auth, Some(serde_json::json!({"k": 1})));
        assert_eq!(o.headers, vec![("X-A".to_owned(), "1".to_owned())]);
        assert_eq!(o.timeout, Duration::from_secs(5));
        let (o, ..) = split_options(r#"{"timeout_ms": 700}"#, 5).unwrap();
        assert_eq!(o.timeout, Duration::from_millis(700));
        let e = split_options(r#"{"eio": 2}"#, 5).unwrap_err();
        assert!(e.text(Lang::Ru).contains("eio"), "{}", e.text(Lang::Ru));
        assert!(split_options(r#"{"nonsense": 1}"#, 5).is_err());
        assert!(split_options("[1]", 5).is_err());
    }

    #[test]
    fn arguments_from_values() {
        assert_eq!(arg_of(&Value::Empty, false).unwrap(), None);
        assert_eq!(
            arg_of(&Value::Str("{\"a\":1}".into()), false).unwrap(),
            Some(Arg::Json(Json::String("{\"a\":1}".into())))
        );
        assert_eq!(
            arg_of(&Value::Str("{\"a\":1}".into()), true).unwrap(),
            Some(Arg::Json(serde_json::json!({"a": 1})))
        );
        assert!(arg_of(&Value::Str("{".into()), true).is_err());
        assert_eq!(
            arg_of(&Value::Binary(vec![1]), false).unwrap(),
            Some(Arg::Binary(vec![1]))
        );
    }
}
