//! `AddIn.WebSocket.SocketIO` through the C ABI against a real npm `socket.io` 4 server
//! (tests/peers/node/sio-server.js, pinned in its package.json): ROM-SocketIO's exact event
//! strings, session id, events both ways, subscriptions, namespaces, connect errors, acks,
//! binary attachments, server disconnect and death, reconnection, heartbeat, Engine.IO v3,
//! wss, pull mode on the 1C server.

mod common;

use std::time::{Duration, Instant};

use common::sio::SioPeer;
use common::{TestPki, create, create_with, finish, s, wait_until};
use serde_json::{Value as Json, json};
use ws1c_host::{HostOptions, Obj, Var};

const OPEN: (&str, &str) = (
    r#"{"Event": "Connection","State": "Open"}"#,
    r#"{"Connection": "Open"}"#,
);
const CLOSE: (&str, &str) = (
    r#"{"Event": "Connection","State": "Close","Reason": "Normal"}"#,
    r#"{"Connection": "Close"}"#,
);
const FAIL: (&str, &str) = (
    r#"{"Event": "Connection","State": "Fail"}"#,
    r#"{"Connection": "Fail"}"#,
);

fn call(o: &Obj, m: &str, args: &[Var]) -> Var {
    let mut a = args.to_vec();
    o.call(m, &mut a)
        .unwrap_or_else(|e| panic!("{m}: {}", e.text))
}

fn connect(o: &Obj, url: &str, options: &str) -> bool {
    call(o, "Подключиться", &[s(url), s(options)]) == Var::Bool(true)
}

/// The next pushed event (`Событие`, `Данные`) within 10 s.
fn pushed(o: &Obj) -> (String, String) {
    let conn = o.conn();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(e) = PENDING.with(|p| p.borrow_mut().pop_front()) {
            return e;
        }
        for e in conn.take_events() {
            PENDING.with(|p| p.borrow_mut().push_back((e.message, e.data)));
        }
        if PENDING.with(|p| p.borrow().is_empty()) {
            assert!(Instant::now() < deadline, "no event pushed within 10 s");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

thread_local! {
    static PENDING: std::cell::RefCell<std::collections::VecDeque<(String, String)>> =
        Default::default();
}

/// The next event by `ПолучитьСобытие` within 10 s.
fn pulled(o: &Obj) -> (String, String) {
    common::next_event(o, 10_000).expect("an event within 10 s")
}

fn pull_mode(o: &Obj) {
    o.set("РежимДоставки", s("Опрос")).expect("РежимДоставки");
}

#[test]
fn rom_strings_session_id_and_events_both_ways() {
    let peer = SioPeer::start(&[]);
    let o = create("SocketIO");
    assert_eq!(o.extension_name(), "SocketIO");
    assert_eq!(o.get("Подключено").unwrap(), Var::Bool(false));
    assert_eq!(o.get("Таймаут").unwrap().as_i64(), Some(5));
    assert!(
        o.get("Версия")
            .unwrap()
            .as_str()
            .is_some_and(|v| !v.is_empty())
    );
    for name in ["echo", "big", "nested"] {
        call(&o, "Подписаться", &[s(name)]);
    }
    assert!(connect(&o, &peer.url(""), ""));
    let server_id = peer.connected("/")["connected"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(o.get("ИДСессии").unwrap(), s(&server_id));
    assert_eq!(o.get("Connected").unwrap(), Var::Bool(true));
    assert_eq!(pushed(&o), (OPEN.0.into(), OPEN.1.into()));

    call(&o, "Отправить", &[s("echo"), s("Привет мир!")]);
    assert_eq!(peer.received("echo")["args"], json!(["Привет мир!"]));
    assert_eq!(
        pushed(&o),
        (
            r#"{"Event": "Message","Namespace": "/","Name": "echo","Type": "String"}"#.into(),
            r#"["echo","Привет мир!"]"#.into()
        )
    );
    // A JSON argument arrives as the object, a plain string stays a string.
    call(
        &o,
        "Send",
        &[s("echo"), s(r#"{"a": [1, {"б": null}]}"#), Var::Bool(true)],
    );
    assert_eq!(
        peer.received("echo")["args"],
        json!([{"a": [1, {"б": null}]}])
    );
    let (_, data) = pushed(&o);
    assert_eq!(
        serde_json::from_str::<Json>(&data).unwrap(),
        json!(["echo", {"a": [1, {"б": null}]}])
    );
    call(&o, "Send", &[s("echo"), s(r#"{"a":1}"#)]);
    assert_eq!(peer.received("echo")["args"], json!([r#"{"a":1}"#]));
    assert_eq!(pushed(&o).1, r#"["echo","{\"a\":1}"]"#);

    call(&o, "Отправить", &[s("big"), Var::I4(100_000)]);
    let (h, data) = pushed(&o);
    assert!(h.contains(r#""Name": "big""#), "{h}");
    let v: Json = serde_json::from_str(&data).unwrap();
    assert_eq!(v[1].as_str().unwrap().chars().count(), 100_000);
    assert!(v[1].as_str().unwrap().chars().all(|c| c == 'я'));
    // 100 KB the other way.
    let big = "ж".repeat(100_000);
    call(&o, "Отправить", &[s("echo"), s(&big)]);
    assert_eq!(peer.received("echo")["args"][0].as_str().unwrap(), big);
    assert_eq!(pushed(&o).1, format!(r#"["echo","{big}"]"#));

    call(&o, "Отправить", &[s("nested")]);
    let (_, data) = pushed(&o);
    assert_eq!(
        serde_json::from_str::<Json>(&data).unwrap(),
        json!(["nested", {"a": [1, {"b": "в"}], "c": null, "d": "кавычки \"x\""}])
    );

    call(&o, "Отключиться", &[]);
    assert_eq!(pushed(&o), (CLOSE.0.into(), CLOSE.1.into()));
    assert_eq!(o.get("Подключено").unwrap(), Var::Bool(false));
    assert_eq!(o.get("ИДСессии").unwrap(), s(""));
    assert_eq!(
        o.get("ПричинаОтключения").unwrap(),
        s("io client disconnect")
    );
    let gone = peer.expect("a disconnect", |v| v["disconnected"] == server_id.as_str());
    assert_eq!(gone["reason"], "client namespace disconnect");
    finish(o);
}

/// ROM-SocketIO's documented handler, `Если Данные="{""Connection"": ""Close""}"`, and its
/// Fail twin, compared as the 1C code compares them: whole strings.
#[test]
fn rom_handler_examples_compare_exact_strings() {
    let peer = SioPeer::start(&[]);
    let o = create("SocketIO");
    let handler = |data: &str| -> Option<&'static str> {
        if data == "{\"Connection\": \"Close\"}" {
            Some("Соединение разорвано")
        } else if data == "{\"Connection\": \"Fail\"}" {
            Some("Ошибка установки соединения")
        } else {
            None
        }
    };
    assert!(connect(&o, &peer.url(""), ""));
    let (_, data) = pushed(&o);
    assert_eq!(handler(&data), None);
    call(&o, "Отключиться", &[]);
    let (_, data) = pushed(&o);
    assert_eq!(handler(&data), Some("Соединение разорвано"));
    // Nobody listens on this port any more: Fail.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    assert!(!connect(&o, &format!("ws://127.0.0.1:{dead}"), ""));
    let (h, data) = pushed(&o);
    assert_eq!(h, FAIL.0);
    assert_eq!(handler(&data), Some("Ошибка установки соединения"));
    assert!(
        !o.get("ПоследняяОшибка")
            .unwrap()
            .as_str()
            .unwrap()
            .is_empty()
    );
    finish(o);
}

#[test]
fn only_subscribed_events_are_delivered_and_subscriptions_change_live() {
    let peer = SioPeer::start(&[]);
    let o = create("SocketIO");
    pull_mode(&o);
    call(&o, "Подписаться", &[s("done")]);
    assert!(connect(&o, &peer.url(""), ""));
    assert_eq!(pulled(&o).0, OPEN.0);
    call(&o, "Отправить", &[s("burst"), Var::I4(3)]);
    // The three ticks are not subscribed: "done" is next.
    assert!(pulled(&o).0.contains(r#""Name": "done""#));
    call(&o, "Подписаться", &[s("tick")]);
    call(&o, "Отправить", &[s("burst"), Var::I4(2)]);
    assert_eq!(pulled(&o).1, r#"["tick",0]"#);
    assert_eq!(pulled(&o).1, r#"["tick",1]"#);
    assert_eq!(pulled(&o).1, r#"["done"]"#);
    call(&o, "Отписаться", &[s("tick")]);
    call(&o, "Отправить", &[s("burst"), Var::I4(2)]);
    assert_eq!(pulled(&o).1, r#"["done"]"#);
    call(&o, "ОтписатьсяВсе", &[]);
    call(&o, "Подписаться", &[s("*")]);
    call(&o, "Отправить", &[s("burst"), Var::I4(1)]);
    assert_eq!(pulled(&o).1, r#"["tick",0]"#);
    assert_eq!(pulled(&o).1, r#"["done"]"#);
    call(&o, "ОтписатьсяВсе", &[]);
    call(&o, "Отправить", &[s("burst"), Var::I4(1)]);
    call(&o, "Отключиться", &[]);
    // Nothing subscribed: the next event is the Close.
    assert_eq!(pulled(&o).0, CLOSE.0);
    finish(o);
}

#[test]
fn namespaces_and_connect_errors() {
    let peer = SioPeer::start(&[]);
    let o = create("SocketIO");
    pull_mode(&o);
    call(&o, "Подписаться", &[s("echo")]);
    assert!(connect(&o, &peer.url("/admin"), ""));
    let id = peer.connected("/admin")["connected"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(o.get("ИДСессии").unwrap(), s(&id));
    assert_eq!(pulled(&o).0, OPEN.0);
    call(&o, "Отправить", &[s("echo"), s("админ")]);
    assert_eq!(peer.received("echo")["nsp"], "/admin");
    assert_eq!(
        pulled(&o),
        (
            r#"{"Event": "Message","Namespace": "/admin","Name": "echo","Type": "String"}"#.into(),
            r#"["echo","админ"]"#.into()
        )
    );
    call(&o, "Отключиться", &[]);
    assert_eq!(pulled(&o).0, CLOSE.0);

    // A namespace that refuses: Fail with the server's message.
    assert!(!connect(&o, &peer.url("/private"), ""));
    assert_eq!(pulled(&o), (FAIL.0.into(), FAIL.1.into()));
    let err = o.get("ПоследняяОшибка").unwrap();
    assert!(err.as_str().unwrap().contains("Not authorized"), "{err:?}");
    assert!(err.as_str().unwrap().contains("/private"), "{err:?}");
    // The v5 auth payload from the options.
    assert!(connect(
        &o,
        &peer.url("/private"),
        r#"{"auth": {"token": "s3cret"}}"#
    ));
    assert_eq!(
        peer.connected("/private")["auth"],
        json!({"token": "s3cret"})
    );
    assert_eq!(pulled(&o).0, OPEN.0);
    call(&o, "Отключиться", &[]);
    // Query parameters, from the URI and from the options.
    assert!(connect(&o, &peer.url("/private?token=s3cret"), ""));
    assert_eq!(peer.connected("/private")["query"], "s3cret");
    call(&o, "Отключиться", &[]);
    assert!(connect(
        &o,
        &peer.url("/private"),
        r#"{"query": {"token": "s3cret"}}"#
    ));
    assert_eq!(peer.connected("/private")["query"], "s3cret");
    call(&o, "Отключиться", &[]);
    // A custom Engine.IO path that the server does not serve: Fail, not an exception.
    assert!(!connect(&o, &peer.url(""), r#"{"path": "/other/"}"#));
    // Wrong options raise, in the object's language.
    let e = o
        .call("Подключиться", &mut [s(&peer.url("")), s(r#"{"eio": 5}"#)])
        .unwrap_err();
    assert!(e.text.contains("eio"), "{}", e.text);
    finish(o);
}

#[test]
fn acknowledgements_both_ways() {
    let peer = SioPeer::start(&[]);
    let o = create("SocketIO");
    pull_mode(&o);
    call(&o, "Подписаться", &[s("question")]);
    assert!(connect(&o, &peer.url(""), ""));
    assert_eq!(pulled(&o).0, OPEN.0);
    // Blocking.
    let r = call(&o, "ОтправитьИЖдать", &[s("ack"), s("вопрос")]);
    assert_eq!(r, s(r#"[{"got":["вопрос"]}]"#));
    assert_eq!(peer.received("ack")["ack"], true);
    // As an event.
    let id = call(&o, "ОтправитьСПодтверждением", &[s("ack"), Var::I4(7)])
        .as_i64()
        .unwrap();
    assert_eq!(
        pulled(&o),
        (
            format!(r#"{{"Event": "Ack","Namespace": "/","Id": {id},"Type": "String"}}"#),
            r#"[{"got":[7]}]"#.into()
        )
    );
    // A server event that asks for an ack, answered from 1C.
    call(&o, "Отправить", &[s("ask")]);
    let (h, data) = pulled(&o);
    let hv: Json = serde_json::from_str(&h).unwrap();
    assert_eq!(hv["Name"], "question");
    assert_eq!(data, r#"["question","ответ?"]"#);
    let ack = hv["Ack"].as_i64().expect("Ack id in the header");
    assert!(h.starts_with(
        r#"{"Event": "Message","Namespace": "/","Name": "question","Type": "String","Ack": "#
    ));
    call(&o, "Подтвердить", &[Var::I8(ack), s("да")]);
    assert_eq!(
        peer.expect("the answer", |v| v["answer"].is_array())["answer"],
        json!(["да"])
    );
    // No answer in time: an exception that says so.
    let e = o
        .call("ОтправитьИЖдать", &mut [s("echo"), s("x"), Var::I4(300)])
        .unwrap_err();
    assert!(e.text.contains("300"), "{}", e.text);
    finish(o);
}

#[test]
fn binary_attachments_both_ways() {
    let peer = SioPeer::start(&[]);
    let o = create("SocketIO");
    pull_mode(&o);
    call(&o, "Подписаться", &[s("echo")]);
    call(&o, "Подписаться", &[s("file")]);
    assert!(connect(&o, &peer.url(""), ""));
    assert_eq!(pulled(&o).0, OPEN.0);
    let bytes = vec![0u8, 1, 2, 200, 255];
    call(&o, "Отправить", &[s("echo"), Var::Blob(bytes.clone())]);
    assert_eq!(peer.received("echo")["args"], json!([{"bin": "AAECyP8="}]));
    let (h, data) = pulled(&o);
    assert_eq!(
        h,
        r#"{"Event": "Message","Namespace": "/","Name": "echo","Type": "Binary"}"#
    );
    assert_eq!(
        data,
        r#"["echo",{"_placeholder":true,"num":0,"base64":"AAECyP8="}]"#
    );
    assert_eq!(
        call(&o, "ПолучитьВложение", &[Var::I4(0)]),
        Var::Blob(bytes)
    );
    call(&o, "Отправить", &[s("file")]);
    let (h, data) = pulled(&o);
    assert!(h.contains(r#""Type": "Binary""#));
    assert_eq!(
        data,
        r#"["file",{"_placeholder":true,"num":0,"base64":"AAEC/w=="},{"name":"x.bin"}]"#
    );
    assert_eq!(
        call(&o, "ПолучитьВложение", &[]),
        Var::Blob(vec![0, 1, 2, 255])
    );
    let e = o.call("ПолучитьВложение", &mut [Var::I4(1)]).unwrap_err();
    assert!(e.text.contains('1'), "{}", e.text);
    // A binary ack.
    let r = call(&o, "ОтправитьИЖдать", &[s("ack"), Var::Blob(vec![9, 8])]);
    assert_eq!(r, s(r#"[{"_placeholder":true,"num":0,"base64":"CQg="}]"#));
    assert_eq!(
        call(&o, "ПолучитьВложение", &[Var::I4(0)]),
        Var::Blob(vec![9, 8])
    );
    finish(o);
}

#[test]
fn server_disconnect_is_close_and_server_death_is_fail_then_reconnect() {
    let mut peer = SioPeer::start(&[]);
    let o = create("SocketIO");
    pull_mode(&o);
    call(&o, "Подписаться", &[s("echo")]);
    assert!(connect(&o, &peer.url(""), ""));
    assert_eq!(pulled(&o).0, OPEN.0);
    call(&o, "Отправить", &[s("kick")]);
    assert_eq!(pulled(&o), (CLOSE.0.into(), CLOSE.1.into()));
    assert_eq!(
        o.get("ПричинаОтключения").unwrap(),
        s("io server disconnect")
    );
    assert_eq!(o.get("Подключено").unwrap(), Var::Bool(false));

    let options = r#"{"reconnect": {"enabled": true, "min_delay_ms": 100, "max_delay_ms": 300}}"#;
    assert!(connect(&o, &peer.url("/admin"), options));
    let first = peer.connected("/admin")["connected"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(pulled(&o).0, OPEN.0);
    let port = peer.port.to_string();
    call(&o, "Отправить", &[s("die")]);
    assert_eq!(pulled(&o), (FAIL.0.into(), FAIL.1.into()));
    assert_eq!(o.get("ПричинаОтключения").unwrap(), s("transport close"));
    let (h, _) = pulled(&o);
    assert!(
        h.starts_with(r#"{"Event": "Connection","State": "Reconnecting","Attempt": 1"#),
        "{h}"
    );
    let _ = peer.child.wait();
    peer = SioPeer::start(&[("PORT", &port)]);
    // Rejoined /admin, subscriptions kept.
    let second = peer.connected("/admin")["connected"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(first, second);
    loop {
        let (h, _) = pulled(&o);
        if h == OPEN.0 {
            break;
        }
        assert!(h.contains("Reconnecting") || h == FAIL.0, "{h}");
    }
    assert_eq!(o.get("ИДСессии").unwrap(), s(&second));
    call(&o, "Отправить", &[s("echo"), s("снова")]);
    assert_eq!(
        pulled(&o),
        (
            r#"{"Event": "Message","Namespace": "/admin","Name": "echo","Type": "String"}"#.into(),
            r#"["echo","снова"]"#.into()
        )
    );
    finish(o);
}

/// Server pings every 200 ms: the client answers (the server would drop it otherwise), and
/// a server that stops (SIGSTOP) is declared dead after pingInterval + pingTimeout.
#[test]
fn heartbeat_answers_pings_and_notices_silence() {
    let peer = SioPeer::start(&[("PING_INTERVAL", "200"), ("PING_TIMEOUT", "300")]);
    let o = create("SocketIO");
    pull_mode(&o);
    call(&o, "Подписаться", &[s("echo")]);
    assert!(connect(&o, &peer.url(""), ""));
    assert_eq!(pulled(&o).0, OPEN.0);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(o.get("Подключено").unwrap(), Var::Bool(true));
    call(&o, "Отправить", &[s("echo"), s("жив")]);
    assert_eq!(pulled(&o).1, r#"["echo","жив"]"#);
    let pid = peer.child.id().to_string();
    let stop = std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap();
    assert!(stop.success());
    let t = Instant::now();
    assert_eq!(pulled(&o).0, FAIL.0);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(o.get("ПричинаОтключения").unwrap(), s("ping timeout"));
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status();
    finish(o);
}

/// `"eio": 3`: Engine.IO v3 / Socket.IO v4, against the same server with `allowEIO3`.
#[test]
fn engine_io_v3_against_allow_eio3() {
    let peer = SioPeer::start(&[("PING_INTERVAL", "300"), ("PING_TIMEOUT", "300")]);
    for nsp in ["/", "/admin"] {
        let o = create("SocketIO");
        pull_mode(&o);
        call(&o, "Подписаться", &[s("echo")]);
        let url = peer.url(if nsp == "/" { "" } else { nsp });
        assert!(connect(&o, &url, r#"{"eio": 3}"#));
        let c = peer.connected(nsp);
        assert_eq!(c["eio"], 3);
        assert_eq!(
            o.get("ИДСессии").unwrap(),
            s(c["connected"].as_str().unwrap())
        );
        assert_eq!(pulled(&o).0, OPEN.0);
        // The client pings in v3: still alive after several intervals.
        std::thread::sleep(Duration::from_millis(1200));
        call(&o, "Отправить", &[s("echo"), s("три")]);
        assert_eq!(peer.received("echo")["nsp"], nsp);
        assert_eq!(
            pulled(&o),
            (
                format!(
                    r#"{{"Event": "Message","Namespace": "{nsp}","Name": "echo","Type": "String"}}"#
                ),
                r#"["echo","три"]"#.into()
            )
        );
        call(&o, "Отправить", &[s("echo"), Var::Blob(vec![7, 0, 7])]);
        assert_eq!(peer.received("echo")["args"], json!([{"bin": "BwAH"}]));
        let (_, data) = pulled(&o);
        assert_eq!(
            data,
            r#"["echo",{"_placeholder":true,"num":0,"base64":"BwAH"}]"#
        );
        assert_eq!(call(&o, "ПолучитьВложение", &[]), Var::Blob(vec![7, 0, 7]));
        let r = call(&o, "ОтправитьИЖдать", &[s("ack"), s("v3")]);
        assert_eq!(r, s(r#"[{"got":["v3"]}]"#));
        call(&o, "Отключиться", &[]);
        assert_eq!(pulled(&o).0, CLOSE.0);
        finish(o);
    }
}

#[test]
fn wss_with_a_test_ca() {
    let pki = TestPki::new();
    let peer = SioPeer::start(&[
        ("TLS_CERT", pki.cert.to_str().unwrap()),
        ("TLS_KEY", pki.key.to_str().unwrap()),
    ]);
    let o = create("SocketIO");
    pull_mode(&o);
    call(&o, "Подписаться", &[s("echo")]);
    let url = format!("wss://localhost:{}/admin", peer.port);
    // Without the CA the certificate is not trusted: Fail.
    assert!(!connect(&o, &url, ""));
    assert_eq!(pulled(&o).0, FAIL.0);
    let options = json!({"tls": {"ca_file": pki.ca}}).to_string();
    assert!(connect(&o, &url, &options));
    assert_eq!(pulled(&o).0, OPEN.0);
    call(&o, "Отправить", &[s("echo"), s("tls")]);
    assert_eq!(pulled(&o).1, r#"["echo","tls"]"#);
    // https:// is taken as wss:// (as Socket.IO clients take it).
    call(&o, "Отключиться", &[]);
    assert_eq!(pulled(&o).0, CLOSE.0);
    assert!(connect(
        &o,
        &format!("https://localhost:{}/", peer.port),
        &options
    ));
    finish(o);
}

/// The 1C server (a scheduled job): no external events, everything through
/// `ПолучитьСобытие` in the same strings.
#[test]
fn pull_mode_on_the_1c_server() {
    let peer = SioPeer::start(&[]);
    let o = create_with("SocketIO", HostOptions::server());
    call(&o, "Подписаться", &[s("echo")]);
    assert!(connect(&o, &peer.url(""), ""));
    call(&o, "Отправить", &[s("echo"), s("Привет мир!")]);
    assert_eq!(pulled(&o), (OPEN.0.into(), OPEN.1.into()));
    assert_eq!(
        pulled(&o),
        (
            r#"{"Event": "Message","Namespace": "/","Name": "echo","Type": "String"}"#.into(),
            r#"["echo","Привет мир!"]"#.into()
        )
    );
    call(&o, "Отключиться", &[]);
    assert_eq!(pulled(&o), (CLOSE.0.into(), CLOSE.1.into()));
    assert_eq!(common::next_event(&o, 100), None);
    assert_eq!(o.conn().external_event_calls(), 0);
    wait_until(Duration::from_secs(1), "nothing pushed", || {
        o.conn().take_events().is_empty()
    });
    finish(o);
}

/// python-socketio (aiohttp), a second independent server: session id, events, acks and
/// binary both ways, heartbeat (it pings every second), server disconnect.
#[test]
fn python_socketio_server() {
    let peer = SioPeer::python();
    let o = create("SocketIO");
    pull_mode(&o);
    call(&o, "Подписаться", &[s("echo")]);
    call(&o, "Подписаться", &[s("question")]);
    assert!(connect(&o, &peer.url(""), r#"{"auth": {"user": "1С"}}"#));
    let c = peer.connected("/");
    assert_eq!(c["auth"], json!({"user": "1С"}));
    assert_eq!(
        o.get("ИДСессии").unwrap(),
        s(c["connected"].as_str().unwrap())
    );
    assert_eq!(pulled(&o), (OPEN.0.into(), OPEN.1.into()));
    // Two heartbeats of the server's pass: we answered them.
    std::thread::sleep(Duration::from_millis(2500));
    call(&o, "Отправить", &[s("echo"), s("Привет мир!")]);
    assert_eq!(peer.received("echo")["args"], json!(["Привет мир!"]));
    assert_eq!(
        pulled(&o),
        (
            r#"{"Event": "Message","Namespace": "/","Name": "echo","Type": "String"}"#.into(),
            r#"["echo","Привет мир!"]"#.into()
        )
    );
    call(&o, "Отправить", &[s("echo"), Var::Blob(vec![1, 2, 3])]);
    assert_eq!(peer.received("echo")["args"], json!([{"bin": "AQID"}]));
    assert_eq!(
        pulled(&o).1,
        r#"["echo",{"_placeholder":true,"num":0,"base64":"AQID"}]"#
    );
    assert_eq!(call(&o, "ПолучитьВложение", &[]), Var::Blob(vec![1, 2, 3]));
    let r = call(&o, "ОтправитьИЖдать", &[s("ack"), s("py")]);
    assert_eq!(r, s(r#"[{"got":["py"]}]"#));
    call(&o, "Отправить", &[s("ask")]);
    let (h, data) = pulled(&o);
    assert_eq!(data, r#"["question","ответ?"]"#);
    let hv: Json = serde_json::from_str(&h).unwrap();
    call(
        &o,
        "Подтвердить",
        &[Var::I8(hv["Ack"].as_i64().unwrap()), s("да")],
    );
    assert_eq!(
        peer.expect("the answer", |v| v["answer"].is_array())["answer"],
        json!(["да"])
    );
    call(&o, "Отправить", &[s("kick")]);
    assert_eq!(pulled(&o), (CLOSE.0.into(), CLOSE.1.into()));
    assert_eq!(
        o.get("ПричинаОтключения").unwrap(),
        s("io server disconnect")
    );
    finish(o);
}

/// `Отключиться` while the link is down and reconnecting: a Close, as for an open link, and
/// no more attempts.
#[test]
fn disconnect_during_reconnection_is_a_close() {
    let peer = SioPeer::start(&[]);
    let o = create("SocketIO");
    pull_mode(&o);
    let options = r#"{"reconnect": {"enabled": true, "min_delay_ms": 200, "max_delay_ms": 400}}"#;
    assert!(connect(&o, &peer.url(""), options));
    assert_eq!(pulled(&o).0, OPEN.0);
    call(&o, "Отправить", &[s("die")]);
    assert_eq!(pulled(&o).0, FAIL.0);
    assert!(pulled(&o).0.contains("Reconnecting"));
    assert_eq!(o.get("Статус").unwrap().as_i64(), Some(2));
    call(&o, "Отключиться", &[]);
    loop {
        let (h, d) = pulled(&o);
        if h.contains("Reconnecting") {
            continue;
        }
        assert_eq!((h.as_str(), d.as_str()), CLOSE);
        break;
    }
    assert_eq!(
        o.get("ПричинаОтключения").unwrap(),
        s("io client disconnect")
    );
    assert_eq!(o.get("Статус").unwrap().as_i64(), Some(0));
    assert_eq!(
        common::next_event(&o, 600),
        None,
        "no attempt after Отключиться"
    );
    finish(o);
}
