//! Delivery in the context it really runs in: the default mode on thin and thick clients
//! (pull-style code written for the documented component next to push-only forms), a
//! platform whose `ExternalEvent` is slow or silently discards, and the push path's
//! independence from the 1C thread and from other objects.

mod common;

use std::time::{Duration, Instant};

use common::{
    FloodPeer, client_receive, create_with, drain_numbered, echo_server, finish, greeting_server,
    s, serial, server_receive, wait_until,
};
use ws1c_host::ffi::app_type;
use ws1c_host::{HostOptions, Obj, Var};

fn app(code: i32) -> HostOptions {
    HostOptions {
        app_type: code,
        ..HostOptions::default()
    }
}

/// Pull-style code of the documented component, default mode, on thin and thick clients:
/// the greeting a server sends right after the handshake is received by the first
/// `Принять(2000)`, whether it comes at once, 50 ms or 3 s after `Подключиться`.
#[test]
fn pull_style_code_gets_the_greeting_whenever_it_first_pulls() {
    let _g = serial();
    let server = greeting_server();
    for code in [app_type::THIN_CLIENT, app_type::THICK_CLIENT] {
        for delay in [0, 50, 3000] {
            let c = create_with("Client", app(code));
            c.call("Подключиться", &mut [s(&server.url())]).unwrap();
            // Why a sleep: this is the 1C code doing something else before its first pull;
            // the greeting arrives (and is pushed) meanwhile.
            std::thread::sleep(Duration::from_millis(delay));
            assert_eq!(
                client_receive(&c, 2000),
                Some(s("hello")),
                "app type {code}, first Принять {delay} ms after Подключиться"
            );
            // The object now pulls: the echo comes back by pull, and nothing more is pushed.
            c.call("Отправить", &mut [s("эхо")]).unwrap();
            assert_eq!(client_receive(&c, 5000), Some(s("эхо")));
            let pushed = c.conn().take_events();
            assert!(
                pushed.iter().all(|e| e.data != "эхо"),
                "pushed after the commit to pull: {pushed:?}"
            );
            c.call("Отключиться", &mut []).unwrap();
            finish(c);
        }
    }
}

/// `Принять(0, …)` (wait while connected) gets the greeting at once instead of hanging.
#[test]
fn receive_with_timeout_0_gets_what_arrived_before_it() {
    let _g = serial();
    let server = greeting_server();
    let c = create_with("Client", app(app_type::THIN_CLIENT));
    c.call("Подключиться", &mut [s(&server.url())]).unwrap();
    std::thread::sleep(Duration::from_millis(200)); // the greeting arrives and is pushed
    let t = Instant::now();
    assert_eq!(client_receive(&c, 0), Some(s("hello")));
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    c.call("Отключиться", &mut []).unwrap();
    finish(c);
}

/// A form that only handles `ВнешнееСобытие` (never pulls), default mode: 1,000,000
/// messages arrive once each, in order, and the replay window is given up on the way
/// (nothing stays queued for a pull that never comes).
#[test]
fn a_push_only_form_gets_a_million_messages_in_the_default_mode() {
    let _g = serial();
    const MILLION: u64 = 1_000_000;
    let peer = FloodPeer::start(Some(MILLION));
    let c = create_with("Client", app(app_type::THIN_CLIENT));
    assert_eq!(c.get("РежимДоставки").unwrap(), s("Авто"));
    c.call("Подключиться", &mut [s(&peer.url())]).unwrap();
    let conn = c.conn();
    let mut next = 0;
    let deadline = Instant::now() + Duration::from_secs(180);
    while next < MILLION && Instant::now() < deadline {
        conn.wait_events(1, Duration::from_millis(50));
        drain_numbered(&conn, &mut next);
    }
    assert_eq!(next, MILLION);
    assert_eq!(c.get("ВОчереди").unwrap(), Var::I4(0));
    assert_eq!(c.get("НеДоставлено").unwrap(), Var::I4(0));
    c.call("Отключиться", &mut []).unwrap();
    drain_numbered(&conn, &mut next);
    assert_eq!(next, MILLION, "no duplicate after the last one");
    finish(c);
}

/// The documented self-test, both steps, as written (no delivery mode set), on a thin
/// client: step 1 against a local echo server, step 2 with the add-in's own server.
#[test]
fn the_documented_self_test_runs_verbatim_on_a_thin_client() {
    let _g = serial();
    let thin = || app(app_type::THIN_CLIENT);
    // ШАГ 1 (the seed uses a public echo service; a local one answers the same).
    let echo = echo_server();
    let client = create_with("Client", thin());
    client.call("Подключиться", &mut [s(&echo.url())]).unwrap();
    client
        .call("Подключиться", &mut [s(&echo.url())])
        .unwrap_err();
    let err = client.call("ОписаниеОшибки", &mut []).unwrap();
    assert!(err.as_str().unwrap().contains("Подключение уже выполнено"));
    client.call("Отправить", &mut [s("ase1ЦУ")]).unwrap();
    assert_eq!(client_receive(&client, 0), Some(s("ase1ЦУ")));
    assert_eq!(client_receive(&client, 3000), None);
    client.call("Отключиться", &mut []).unwrap();
    client.call("Отключиться", &mut []).unwrap();
    finish(client);

    // ШАГ 2.
    let server = create_with("Server", thin());
    server
        .call("Запустить", &mut [s("127.0.0.1"), Var::I4(0)])
        .unwrap();
    let port = server.get("Порт").unwrap().as_i64().unwrap();
    let base = format!("ws://127.0.0.1:{port}");
    let c1 = create_with("Client", thin());
    let c2 = create_with("Client", thin());
    c1.call("Подключиться", &mut [s(&format!("{base}/first"))])
        .unwrap();
    c2.call("Подключиться", &mut [s(&format!("{base}/testadr"))])
        .unwrap();
    c1.call("Отправить", &mut [s("ase1ЙЦУ")]).unwrap();
    let (id, data) = server_receive(&server, 0).expect("Сервер.Принять(0, …)");
    assert_eq!((id, data), (1, s("ase1ЙЦУ")));
    assert_eq!(
        server.call("Отключить", &mut [Var::I4(id as i32)]).unwrap(),
        Var::Bool(true)
    );
    finish(c1);
    finish(c2);
    finish(server);
}

/// While the platform takes 2 s in `ExternalEvent` for several objects (more than the
/// runtime has workers), `AddError` on the 1C thread returns at once, another object's
/// socket keeps flowing, and `Done()` still returns within its bound with no platform call
/// after it.
#[test]
fn a_slow_external_event_holds_up_neither_add_error_nor_other_sockets() {
    let _g = serial();
    let slow = HostOptions {
        event_delay: Some(Duration::from_secs(2)),
        ..app(app_type::THIN_CLIENT)
    };
    let greeter = greeting_server();
    let blocked: Vec<_> = (0..4)
        .map(|_| {
            let c = create_with("Client", slow.clone());
            c.set("РежимДоставки", s("События")).unwrap();
            c.call("Подключиться", &mut [s(&greeter.url())]).unwrap();
            c
        })
        .collect();
    for c in &blocked {
        let conn = c.conn();
        wait_until(
            Duration::from_secs(5),
            "a push inside ExternalEvent",
            || conn.events_in_flight() > 0,
        );
    }
    // AddError on the 1C thread: a wrong argument type raises through the platform.
    let t = Instant::now();
    blocked[0]
        .call("Получить", &mut [s("не число"), Var::Empty])
        .unwrap_err();
    assert!(
        t.elapsed() < Duration::from_millis(300),
        "AddError waited for ExternalEvent: {:?}",
        t.elapsed()
    );
    assert!(
        blocked[0].conn().events_in_flight() > 0,
        "still in the platform"
    );
    // Another object's socket: 100 round trips meanwhile.
    let other = create_with("Client", HostOptions::server());
    other
        .call("Подключиться", &mut [s(&greeter.url())])
        .unwrap();
    assert_eq!(client_receive(&other, 2000), Some(s("hello")));
    let t = Instant::now();
    for i in 0..100 {
        other.call("Отправить", &mut [s(&i.to_string())]).unwrap();
        assert_eq!(client_receive(&other, 2000), Some(s(&i.to_string())));
    }
    assert!(
        blocked.iter().any(|c| c.conn().events_in_flight() > 0),
        "the round trips ran while pushes were blocked ({:?})",
        t.elapsed()
    );
    finish(other);
    // Done() while a push is in flight: waits for it (≤ 2 s), then returns within the bound.
    for mut c in blocked {
        let took = c.done();
        assert!(took < Duration::from_secs(5), "Done took {took:?}");
        finish(c);
    }
}

/// A `Done()` that hits `ТаймаутЗавершения` (here: the platform holds a push for 2 s, the
/// bound is 200 ms) returns on time and is counted where 1C can read it:
/// `ЗавершенийПоТаймауту` of any object, also one created later.
#[test]
fn a_shutdown_that_hits_its_bound_is_counted_for_1c() {
    let _g = serial();
    let counted = |o: &Obj| match o.get("ЗавершенийПоТаймауту").unwrap() {
        Var::I4(n) => n,
        other => panic!("ЗавершенийПоТаймауту = {other:?}"),
    };
    let greeter = greeting_server();
    let mut slow = create_with(
        "Client",
        HostOptions {
            event_delay: Some(Duration::from_secs(2)),
            ..app(app_type::THIN_CLIENT)
        },
    );
    let before = counted(&slow);
    slow.set("ТаймаутЗавершения", Var::I4(200)).unwrap();
    slow.set("РежимДоставки", s("События")).unwrap();
    slow.call("Подключиться", &mut [s(&greeter.url())]).unwrap();
    let conn = slow.conn();
    wait_until(
        Duration::from_secs(5),
        "a push inside ExternalEvent",
        || conn.events_in_flight() > 0,
    );
    let took = slow.done();
    assert!(took < Duration::from_millis(1000), "Done took {took:?}");
    finish(slow);
    let later = create_with("Server", HostOptions::server());
    assert!(
        counted(&later) > before,
        "the overrun was not counted: {} -> {}",
        before,
        counted(&later)
    );
    finish(later);
}

/// The platform's event buffer follows `РазмерОчереди`; a platform that silently discards
/// events beyond it (answering true) loses nothing in the notify mode: 50,000 messages,
/// none of them taken by a form, all come by pull in order.
#[test]
fn notify_mode_loses_nothing_when_the_platform_discards_silently() {
    let _g = serial();
    const N: u64 = 50_000;
    let peer = FloodPeer::start(Some(N));
    let opts = HostOptions {
        discard_beyond_depth: true,
        ..app(app_type::THIN_CLIENT)
    };
    let c = create_with("Client", opts);
    assert_eq!(c.conn().buffer_depth(), 10_000, "depth = РазмерОчереди");
    c.set("РазмерОчереди", Var::I4(2000)).unwrap();
    assert_eq!(c.conn().buffer_depth(), 2000, "depth follows РазмерОчереди");
    c.set("РежимДоставки", s("Уведомления")).unwrap();
    c.call("Подключиться", &mut [s(&peer.url())]).unwrap();
    for i in 0..N {
        assert_eq!(
            client_receive(&c, 5000),
            Some(s(&i.to_string())),
            "message {i}"
        );
    }
    let conn = c.conn();
    assert!(conn.discarded() > 0, "the platform did discard notices");
    c.call("Отключиться", &mut []).unwrap();
    finish(c);
}

/// One rule for integer arguments: a fraction is refused, never rounded (0.4 rounded to 0
/// meant "wait without a bound").
#[test]
fn fractional_timeouts_are_refused_not_rounded_to_forever() {
    let _g = serial();
    let c = create_with("Client", HostOptions::server());
    for bad in [0.4, 1e-9, 2.5] {
        let t = Instant::now();
        let e = c
            .call("Получить", &mut [Var::R8(bad), Var::Empty])
            .unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(1));
        let text = c.conn().last_error().unwrap_or_default();
        assert!(text.contains("целое число"), "{e:?}: {text}");
    }
    let srv = create_with("Server", HostOptions::server());
    srv.call("Принять", &mut [Var::R8(0.4), Var::I4(0), s("")])
        .unwrap_err();
    assert!(srv.conn().last_error().unwrap().contains("Таймаут"));
    finish(c);
    finish(srv);
}

/// A ping payload over 125 bytes (a control frame's limit) raises instead of sending an
/// invalid frame; 125 bytes still go.
#[test]
fn a_ping_over_125_bytes_is_refused() {
    let _g = serial();
    let peer = greeting_server();
    let c = create_with("Client", HostOptions::server());
    c.call("Подключиться", &mut [s(&peer.url())]).unwrap();
    c.call("ОтправитьПинг", &mut [s(&"ж".repeat(63))])
        .unwrap_err();
    assert!(c.conn().last_error().unwrap().contains("125"));
    c.call("ОтправитьПинг", &mut [s(&"x".repeat(125))]).unwrap();
    let mut ev = [Var::I4(5000), s(""), s("")];
    let mut got_pong = false;
    while c.call("ПолучитьСобытие", &mut ev).unwrap() == Var::Bool(true) {
        if ev[1].as_str().unwrap().contains("Pong") {
            got_pong = true;
            break;
        }
    }
    assert!(got_pong, "the 125-byte ping was answered");
    assert_eq!(c.get("Статус").unwrap(), Var::I4(1));
    c.call("Отключиться", &mut []).unwrap();
    finish(c);
}

/// What a [`recording_server`] saw: per connection, its messages and its close code.
#[derive(Default)]
struct Recorded {
    /// (connection number, messages in arrival order, close code if a close frame came).
    conns: Vec<(usize, Vec<String>, Option<u16>)>,
}

/// A [`WsServer`] that records every text message per connection and the close code.
fn recording_server() -> (common::WsServer, std::sync::Arc<std::sync::Mutex<Recorded>>) {
    use futures_util::StreamExt;
    use std::sync::{Arc, Mutex};
    use tokio_tungstenite::tungstenite::Message;
    let rec = Arc::new(Mutex::new(Recorded::default()));
    let r = rec.clone();
    let server = common::WsServer::start(move |mut ws| {
        let r = r.clone();
        async move {
            let idx = {
                let mut g = r.lock().unwrap();
                let idx = g.conns.len();
                g.conns.push((idx, Vec::new(), None));
                idx
            };
            while let Some(Ok(m)) = ws.next().await {
                match m {
                    Message::Text(t) => r.lock().unwrap().conns[idx].1.push(t.to_string()),
                    Message::Close(f) => {
                        r.lock().unwrap().conns[idx].2 = Some(f.map_or(1005, |f| f.code.into()));
                    }
                    _ => {}
                }
            }
        }
    });
    (server, rec)
}

/// Fire and forget, the most common ending of 1C code: `Подключиться`, `Отправить`, and the
/// object goes out of scope. 1,000 such objects: every message arrives, in order per
/// connection, and each connection is closed with 1001 (going away) by `Done()`.
#[test]
fn messages_sent_just_before_the_object_dies_are_delivered() {
    let _g = serial();
    let (server, rec) = recording_server();
    const CYCLES: usize = 1000;
    for i in 0..CYCLES {
        let c = create_with("Client", HostOptions::server());
        c.call("Подключиться", &mut [s(&server.url())]).unwrap();
        for k in 0..3 {
            c.call("Отправить", &mut [s(&format!("{i}.{k}"))]).unwrap();
        }
        finish(c); // Done() + DestroyObject, no Отключиться
    }
    wait_until(Duration::from_secs(30), "every connection closed", || {
        let g = rec.lock().unwrap();
        g.conns.len() == CYCLES && g.conns.iter().all(|c| c.2.is_some())
    });
    let g = rec.lock().unwrap();
    let mut all: Vec<&Vec<String>> = g.conns.iter().map(|c| &c.1).collect();
    all.sort_by_key(|m| m.first().cloned());
    for (idx, _, code) in &g.conns {
        assert_eq!(*code, Some(1001), "connection {idx} closed with {code:?}");
    }
    let mut seen = std::collections::HashSet::new();
    for msgs in all {
        assert_eq!(msgs.len(), 3, "three messages per connection: {msgs:?}");
        let i = msgs[0].split('.').next().unwrap().to_owned();
        assert_eq!(
            *msgs,
            (0..3).map(|k| format!("{i}.{k}")).collect::<Vec<_>>(),
            "in order"
        );
        assert!(seen.insert(i), "each object once");
    }
    assert_eq!(seen.len(), CYCLES);
}

/// The server object too: what `Отправить` accepted reaches its clients before the 1001
/// close, when the object is destroyed and when `Остановить` is called.
#[test]
fn a_server_destroyed_or_stopped_right_after_sending_delivers_first() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let _g = serial();
    for stop in [false, true] {
        let server = create_with("Server", HostOptions::server());
        server
            .call("Запустить", &mut [s("127.0.0.1"), Var::I4(0)])
            .unwrap();
        let port = server.get("Порт").unwrap().as_i64().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = common::in_own_runtime(async move {
            let mut ws = common::raw_client(port as u16).await;
            tx.send(()).unwrap();
            let mut got = Vec::new();
            let mut code = None;
            let read = async {
                while let Some(Ok(m)) = ws.next().await {
                    match m {
                        Message::Text(t) => got.push(t.to_string()),
                        Message::Close(f) => code = f.map(|f| u16::from(f.code)),
                        _ => {}
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(20), read).await;
            (got, code)
        });
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        wait_until(Duration::from_secs(5), "the connection is listed", || {
            server.get("КоличествоСоединений").unwrap() == Var::I4(1)
        });
        for i in 0..500 {
            assert_eq!(
                server
                    .call("Отправить", &mut [Var::I4(1), s(&i.to_string())])
                    .unwrap(),
                Var::I4(1)
            );
        }
        if stop {
            server.call_proc("Остановить", &mut []).unwrap();
        }
        finish(server);
        let (got, code) = reader.join().unwrap();
        assert_eq!(got, (0..500).map(|i| i.to_string()).collect::<Vec<_>>());
        assert_eq!(code, Some(1001), "stop = {stop}");
    }
}

/// A blank interface never means "every interface" silently: it raises; `*` and `0.0.0.0`
/// ask for every interface explicitly.
#[test]
fn a_blank_interface_is_refused_and_every_interface_must_be_asked_for() {
    let _g = serial();
    let srv = create_with("Server", HostOptions::server());
    for blank in ["", " ", "\t"] {
        srv.call("Запустить", &mut [s(blank), Var::I4(0)])
            .unwrap_err();
        assert!(
            srv.conn()
                .last_error()
                .unwrap()
                .contains("0.0.0.0, :: или *"),
            "{:?}",
            srv.conn().last_error()
        );
        assert_eq!(srv.get("Статус").unwrap(), Var::I4(-1));
        assert_eq!(srv.get("Порт").unwrap(), Var::I4(0));
    }
    for every in ["*", "0.0.0.0"] {
        srv.call("Запустить", &mut [s(every), Var::I4(0)]).unwrap();
        assert_eq!(srv.get("Сервер").unwrap(), s(every));
        assert_eq!(srv.get("Статус").unwrap(), Var::I4(1));
        srv.call_proc("Остановить", &mut []).unwrap();
    }
    finish(srv);
}
