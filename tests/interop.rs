//! Interoperability with real peers, through the C ABI: the add-in's Server with Python
//! `websockets`, Node `ws` and headless Chromium clients, and its Client with Python
//! `websockets` and Node `ws` servers, each over ws and wss.
//!
//! Every scenario exchanges a Cyrillic text, a 100 KB text and binary bytes (echoed back
//! unchanged, text as text and binary as binary), a ping and its pong, and a close with a code
//! and a reason, once started by the client and once by the server; both sides report what
//! they saw. The peers are in `tests/peers/` (interop.py, node/interop-*.js).

mod common;

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{
    TestPki, client_receive, create_with, finish, next_event_json, python, run_peer, s, serial,
    spki_hash,
};
use serde_json::Value as Json;
use ws1c_host::{HostOptions, Obj, Var};

const TEXT: &str = "Привет, сервер! Ёё";
/// 100,000 bytes of UTF-8.
fn big_text() -> String {
    "Ж".repeat(50_000)
}
const BINARY: [u8; 7] = [0, 1, 2, 127, 128, 254, 255];
/// The text that asks the server side to close.
const CLOSE_ME: &str = "закрой меня";
/// Who closes, and the code and reason they close with (the peers use the same).
const BY_CLIENT: (&str, u16, &str) = ("client", 4000, "клиент: готово");
const BY_SERVER: (&str, u16, &str) = ("server", 4001, "сервер: пока");

fn peers() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

// ----- the add-in's Server ------------------------------------------------------------------

/// One step of the server's event loop: echoes messages to their sender (binary as binary),
/// answers `CLOSE_ME` with `Отключить(id, 4001, "сервер: пока")`, records every event.
fn serve(server: &Obj, seen: &mut Vec<(Json, String)>) {
    let Some((h, data)) = next_event_json(server, 50) else {
        return;
    };
    if h["Event"] == "Message" {
        let id = Var::I4(h["Connection"].as_i64().unwrap() as i32);
        let (method, arg) = match h["Type"].as_str() {
            Some("Binary") => (
                "ОтправитьДвоичныеДанные",
                Var::Blob(
                    base64::engine::general_purpose::STANDARD
                        .decode(&data)
                        .unwrap(),
                ),
            ),
            _ if data == CLOSE_ME => ("", Var::Empty),
            _ => ("Отправить", s(&data)),
        };
        if method.is_empty() {
            let (_, code, reason) = BY_SERVER;
            let mut args = [id, Var::I4(code.into()), s(reason)];
            assert_eq!(
                server.call("Отключить", &mut args).unwrap(),
                Var::Bool(true)
            );
        } else {
            assert_eq!(
                server.call(method, &mut [id, arg]).unwrap(),
                Var::I4(1),
                "echo queued"
            );
        }
    }
    seen.push((h, data));
}

/// What the server must have seen, in order, all on connection 1: open, the three
/// messages, at least one pong (its own keep-alive pings), and the close with the code and
/// reason of the closing side (echoed by the peer when the server closed).
fn check_server_saw(what: &str, seen: &[(Json, String)], close: (&str, u16, &str)) {
    let headers: Vec<String> = seen.iter().map(|(h, _)| h.to_string()).collect();
    assert!(
        seen.iter().all(|(h, _)| h["Connection"] == 1),
        "{what}: {headers:?}"
    );
    assert_eq!(seen[0].0["State"], "Open", "{what}: {headers:?}");
    let messages: Vec<(String, String)> = seen
        .iter()
        .filter(|(h, _)| h["Event"] == "Message")
        .map(|(h, d)| (h["Type"].as_str().unwrap().to_owned(), d.clone()))
        .collect();
    let mut want = vec![
        ("Text".to_owned(), TEXT.to_owned()),
        ("Text".to_owned(), big_text()),
        ("Binary".to_owned(), b64(&BINARY)),
    ];
    if close.0 == "server" {
        want.push(("Text".to_owned(), CLOSE_ME.to_owned()));
    }
    assert!(messages == want, "{what}: messages {headers:?}");
    assert!(
        seen.iter().any(|(h, _)| h["Event"] == "Pong"),
        "{what}: no pong for the server's pings: {headers:?}"
    );
    let (h, data) = seen.last().unwrap();
    assert_eq!(
        (&h["State"], &h["Code"], &h["Reason"]),
        (
            &Json::from("Close"),
            &Json::from(close.1),
            &Json::from(close.2)
        ),
        "{what}: {headers:?}"
    );
    let data: Json = serde_json::from_str(data).unwrap();
    assert_eq!(data["Code"], close.1, "{what}");
}

/// Runs the add-in's Server (ws, or wss with the test PKI), lets `client` (a command line
/// built from the URL and who closes) play its part, and checks both sides.
fn server_scenario(
    what: &str,
    pki: &TestPki,
    client: impl Fn(&str, &str, bool) -> Command,
    pong_line: bool,
) {
    for tls in [false, true] {
        for close in [BY_CLIENT, BY_SERVER] {
            let what = format!(
                "{what} {} close by {}",
                ["ws", "wss"][tls as usize],
                close.0
            );
            let server = create_with("Server", HostOptions::server());
            server
                .call("Настроить", &mut [s(r#"{"ping_interval_ms": 100}"#)])
                .unwrap();
            let mut args = vec![s("127.0.0.1"), Var::I4(0)];
            if tls {
                args.extend([s(pki.cert.to_str().unwrap()), s(pki.key.to_str().unwrap())]);
            }
            assert_eq!(
                server.call("Запустить", &mut args).unwrap(),
                Var::Bool(true)
            );
            let port = server.get("Порт").unwrap().as_f64().unwrap() as u16;
            let url = if tls {
                format!("wss://localhost:{port}/interop")
            } else {
                format!("ws://127.0.0.1:{port}/interop")
            };
            let mut seen = Vec::new();
            let out = run_peer(client(&url, close.0, tls), || serve(&server, &mut seen));
            // Let the close event arrive.
            let t = Instant::now();
            while !seen.iter().any(|(h, _)| h["State"] == "Close")
                && t.elapsed() < Duration::from_secs(5)
            {
                serve(&server, &mut seen);
            }
            assert_eq!(out.lines().last(), Some("OK"), "{what}: {out}");
            // The peer saw the close frame of the closing side (its own, echoed, or ours).
            let closed = format!("CLOSED {} {}", close.1, close.2);
            assert!(out.lines().any(|l| l.starts_with(&closed)), "{what}: {out}");
            if pong_line {
                assert!(out.contains("PONG true"), "{what}: {out}");
            }
            check_server_saw(&what, &seen, close);
            finish(server);
        }
    }
}

#[test]
fn server_with_python_websockets_clients_over_ws_and_wss() {
    let _g = serial();
    let pki = TestPki::new();
    let ca = pki.ca.clone();
    server_scenario(
        "python",
        &pki,
        |url, close_by, tls| {
            let mut cmd = Command::new(python());
            cmd.arg(peers().join("interop.py"))
                .args(["client", url, close_by]);
            if tls {
                cmd.arg("--ca").arg(&ca);
            }
            cmd
        },
        true,
    );
}

#[test]
fn server_with_node_ws_clients_over_ws_and_wss() {
    let _g = serial();
    let pki = TestPki::new();
    let ca = pki.ca.clone();
    server_scenario(
        "node",
        &pki,
        |url, close_by, tls| {
            let mut cmd = Command::new("node");
            cmd.arg(peers().join("node/interop-client.js"))
                .args([url, close_by]);
            if tls {
                cmd.arg(&ca);
            }
            cmd
        },
        true,
    );
}

#[test]
fn server_with_headless_chromium_over_ws_and_wss() {
    let _g = serial();
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Chromium is missing: scripts/test.sh installs the Debian package"
    );
    let pki = TestPki::new();
    let spki = spki_hash(&pki.cert);
    server_scenario(
        "chromium",
        &pki,
        |url, close_by, tls| {
            let mut cmd = Command::new("node");
            cmd.arg(peers().join("node/interop-browser.js"))
                .args([url, close_by]);
            if tls {
                cmd.arg(&spki);
            }
            cmd
        },
        false,
    );
}

// ----- the add-in's Client ------------------------------------------------------------------

/// A peer server process (tests/peers), its stdout lines collected; killed on drop.
struct PeerServer {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    port: u16,
}

impl PeerServer {
    fn start(mut cmd: Command) -> PeerServer {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the peer server");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                sink.lock().unwrap().push(line);
            }
        });
        let mut peer = PeerServer {
            child,
            lines,
            port: 0,
        };
        let line = peer.wait_line("PORT ").expect("the peer server's port");
        peer.port = line[5..].trim().parse().expect("port");
        peer
    }

    /// The first line starting with `prefix`, waiting up to 10 s for it.
    fn wait_line(&self, prefix: &str) -> Option<String> {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Some(l) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.starts_with(prefix))
            {
                return Some(l.clone());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The add-in's Client against a peer server started by `server(tls)`, over ws and wss,
/// closed by either side.
fn client_scenario(what: &str, pki: &TestPki, server: impl Fn(bool) -> Command, sees_pings: bool) {
    client_scenario_via(what, pki, server, sees_pings, None);
}

/// The same, through `proxy` (`(url, port)`) when given: the Open event's address is then
/// the proxy's, proof that the traffic went through it.
fn client_scenario_via(
    what: &str,
    pki: &TestPki,
    server: impl Fn(bool) -> Command,
    sees_pings: bool,
    proxy: Option<(&str, u16)>,
) {
    for tls in [false, true] {
        let peer = PeerServer::start(server(tls));
        for close in [BY_CLIENT, BY_SERVER] {
            let what = format!(
                "{what} {} close by {}",
                ["ws", "wss"][tls as usize],
                close.0
            );
            let c = create_with("Client", HostOptions::server());
            let mut keys = Vec::new();
            let url = if tls {
                keys.push(format!(r#""tls": {{"ca_file": "{}"}}"#, pki.ca.display()));
                format!("wss://localhost:{}/interop", peer.port)
            } else {
                format!("ws://127.0.0.1:{}/interop", peer.port)
            };
            if let Some((proxy, _)) = proxy {
                keys.push(format!(r#""proxy": "{proxy}""#));
            }
            let opts = format!("{{{}}}", keys.join(", "));
            assert_eq!(
                c.call("Подключиться", &mut [s(&url), s(&opts)]).unwrap(),
                Var::Bool(true),
                "{what}"
            );
            if let Some((_, port)) = proxy {
                let (h, _) = next_event_json(&c, 5000).expect("the open event");
                assert_eq!(h["State"], "Open", "{what}");
                assert_eq!(h["Address"], format!("127.0.0.1:{port}"), "{what}: {h}");
            }
            for text in [TEXT.to_owned(), big_text()] {
                c.call("Отправить", &mut [s(&text)]).unwrap();
                assert_eq!(client_receive(&c, 5000), Some(Var::Str(text)), "{what}");
            }
            c.call("ОтправитьДвоичныеДанные", &mut [Var::Blob(BINARY.to_vec())])
                .unwrap();
            assert_eq!(
                client_receive(&c, 5000),
                Some(Var::Blob(BINARY.to_vec())),
                "{what}"
            );
            c.call("ОтправитьПинг", &mut [s("пинг")]).unwrap();
            let pong = std::iter::from_fn(|| next_event_json(&c, 5000))
                .find(|(h, _)| h["Event"] == "Pong")
                .expect("a pong");
            assert_eq!(pong.0.to_string(), r#"{"Event":"Pong"}"#, "{what}");
            assert_eq!(pong.1, "пинг", "{what}");
            let (_, code, reason) = close;
            if close.0 == "client" {
                c.call("Отключиться", &mut [Var::I4(code.into()), s(reason)])
                    .unwrap();
            } else {
                c.call("Отправить", &mut [s(CLOSE_ME)]).unwrap();
            }
            let (h, _) = std::iter::from_fn(|| next_event_json(&c, 5000))
                .find(|(h, _)| h["Event"] == "Connection")
                .expect("the close event");
            assert_eq!(
                h.to_string(),
                format!(
                    r#"{{"Event":"Connection","State":"Close","Code":{code},"Reason":"{reason}"}}"#
                ),
                "{what}"
            );
            assert_eq!(c.get("Статус").unwrap(), Var::I4(0), "{what}");
            // The peer saw the same close: its own echoed, or ours.
            let closed = format!("CLOSED {code} {reason}");
            let t = Instant::now();
            while !peer.output().lines().any(|l| l == closed)
                && t.elapsed() < Duration::from_secs(5)
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            assert!(
                peer.output().lines().any(|l| l == closed),
                "{what}: {}",
                peer.output()
            );
            finish(c);
            peer.lines
                .lock()
                .unwrap()
                .retain(|l| !l.starts_with("CLOSED"));
        }
        if sees_pings {
            assert!(
                peer.wait_line("PING пинг").is_some(),
                "{what}: {}",
                peer.output()
            );
        }
    }
}

#[test]
fn client_with_python_websockets_server_over_ws_and_wss() {
    let _g = serial();
    let pki = TestPki::new();
    let (cert, key) = (pki.cert.clone(), pki.key.clone());
    client_scenario(
        "python",
        &pki,
        |tls| {
            let mut cmd = Command::new(python());
            cmd.arg(peers().join("interop.py")).arg("server");
            if tls {
                cmd.arg("--tls").arg(&cert).arg(&key);
            }
            cmd
        },
        false,
    );
}

#[test]
fn client_through_pproxy_http_and_socks5_with_and_without_credentials() {
    let _g = serial();
    let pki = TestPki::new();
    let (cert, key) = (pki.cert.clone(), pki.key.clone());
    let px = common::Pproxy::start();
    for (proxy, port) in [
        (format!("http://127.0.0.1:{}", px.http), px.http),
        (format!("socks5://127.0.0.1:{}", px.socks5), px.socks5),
        (
            format!("http://user:pa55@127.0.0.1:{}", px.http_auth),
            px.http_auth,
        ),
        (
            format!("socks5://user:pa55@127.0.0.1:{}", px.socks5_auth),
            px.socks5_auth,
        ),
    ] {
        client_scenario_via(
            &format!("python via {proxy}"),
            &pki,
            |tls| {
                let mut cmd = Command::new(python());
                cmd.arg(peers().join("interop.py")).arg("server");
                if tls {
                    cmd.arg("--tls").arg(&cert).arg(&key);
                }
                cmd
            },
            false,
            Some((&proxy, port)),
        );
    }
}

#[test]
fn client_with_node_ws_server_over_ws_and_wss() {
    let _g = serial();
    let pki = TestPki::new();
    let (cert, key) = (pki.cert.clone(), pki.key.clone());
    client_scenario(
        "node",
        &pki,
        |tls| {
            let mut cmd = Command::new("node");
            cmd.arg(peers().join("node/interop-server.js"));
            if tls {
                cmd.arg(&cert).arg(&key);
            }
            cmd
        },
        true,
    );
}

// ----- peers that break the protocol ----------------------------------------------------------

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// A text frame whose payload is sent as is, valid UTF-8 or not.
fn raw_text(payload: &[u8], rsv1: bool) -> Message {
    let mut f = Frame::message(payload.to_vec(), OpCode::Data(Data::Text), true);
    f.header_mut().rsv1 = rsv1;
    Message::Frame(f)
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Reads until the close frame, at most 5 s: its code (`None`: the stream just ended).
async fn close_code<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Option<u16>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let read = async {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Close(f) = m {
                return f.map(|f| u16::from(f.code));
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .ok()
        .flatten()
}

#[test]
fn bad_frames_and_limits_fail_the_connection_with_the_rfc_close_code() {
    let _g = serial();
    // The Server: a message over its limit, invalid UTF-8, a reserved bit.
    let cases = [
        (Message::text("x".repeat(2000)), 1009),
        (raw_text(&[b'o', b'k', 0xff, 0xfe], false), 1007),
        (raw_text(b"rsv", true), 1002),
    ];
    for (bad, code) in cases {
        let server = create_with("Server", HostOptions::server());
        server
            .call("Настроить", &mut [s(r#"{"max_message_size": 1024}"#)])
            .unwrap();
        let mut args = [s("127.0.0.1"), Var::I4(0)];
        server.call("Запустить", &mut args).unwrap();
        let port = server.get("Порт").unwrap().as_f64().unwrap() as u16;
        let got = current_thread().block_on(async move {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let url = format!("ws://127.0.0.1:{port}/");
            let (mut ws, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
            ws.send(bad).await.unwrap();
            close_code(&mut ws).await
        });
        assert_eq!(got, Some(code), "the peer learns why");
        let (open, _) = next_event_json(&server, 5000).expect("open");
        assert_eq!(open["State"], "Open");
        let (fail, _) = next_event_json(&server, 5000).expect("fail");
        assert_eq!(fail["State"], "Fail", "{fail}");
        finish(server);
    }

    // The Client: a server that sends invalid UTF-8.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = std::thread::spawn(move || {
        current_thread().block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let (tcp, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
                .await
                .expect("the client connects")
                .unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            ws.send(raw_text(&[0xc3, 0x28], false)).await.unwrap();
            close_code(&mut ws).await
        })
    });
    let c = create_with("Client", HostOptions::server());
    c.call("Подключиться", &mut [s(&format!("ws://127.0.0.1:{port}/"))])
        .unwrap();
    assert_eq!(peer.join().unwrap(), Some(1007), "the server learns why");
    let fail = std::iter::from_fn(|| next_event_json(&c, 5000))
        .find(|(h, _)| h["Event"] == "Connection" && h["State"] != "Open")
        .expect("a fail event");
    assert_eq!(fail.0["State"], "Fail", "{}", fail.0);
    finish(c);
}
