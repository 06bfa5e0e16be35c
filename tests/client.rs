//! `AddIn.WebSocket.Client` end to end, through the C ABI, against real peers on loopback.

mod common;

use std::time::{Duration, Instant};

use common::{FloodPeer, PyPeer, TestPki, create_with, finish, rss_kib, serial, thread_count};
use ws1c_host::{HostOptions, Obj, Var};

fn s(v: &str) -> Var {
    Var::Str(v.to_owned())
}

/// The 1C server (a scheduled job): auto delivery = pull, no events.
fn job() -> HostOptions {
    HostOptions::server()
}

fn receive(c: &Obj, timeout_ms: i32) -> Option<Var> {
    let mut args = [Var::I4(timeout_ms), Var::Empty];
    match c.call("Принять", &mut args).expect("Принять") {
        Var::Bool(true) => Some(args[1].clone()),
        Var::Bool(false) => {
            assert_eq!(args[1], s(""), "Данные is an empty string after a timeout");
            None
        }
        other => panic!("Принять returned {other:?}"),
    }
}

/// Step 1 of the documented self-test, against a Python `websockets` echo server.
fn self_test_step1(url: &str, options: &str) {
    let c = create_with("Client", job());
    assert_eq!(
        c.call("Подключиться", &mut [s(url), s(options)]).unwrap(),
        Var::Bool(true)
    );
    assert_eq!(c.get("Статус").unwrap(), Var::I4(1));
    assert_eq!(c.get("Сервер").unwrap(), s(url));
    let err = c
        .call("Подключиться", &mut [s(url), s(options)])
        .unwrap_err();
    assert!(
        err.text.contains("Подключение уже выполнено"),
        "{}",
        err.text
    );
    assert_eq!(
        c.call("ОписаниеОшибки", &mut []).unwrap(),
        Var::Str(err.text.clone())
    );
    c.call("Отправить", &mut [s("ase1ЦУ")]).unwrap();
    assert_eq!(receive(&c, 0), Some(s("ase1ЦУ")));
    let t = Instant::now();
    assert_eq!(receive(&c, 3000), None);
    assert!(
        t.elapsed() >= Duration::from_millis(2900),
        "waited {:?}",
        t.elapsed()
    );
    c.call("Отключиться", &mut []).unwrap();
    c.call("Отключиться", &mut []).unwrap();
    assert_eq!(c.get("Статус").unwrap(), Var::I4(0));
    let err = c
        .call("Отправить", &mut [s("после отключения")])
        .unwrap_err();
    assert!(err.text.contains("Нет подключения"), "{}", err.text);
    // The close is an event too.
    let mut ev = [Var::I4(100), Var::Empty, Var::Empty];
    assert_eq!(c.call("ПолучитьСобытие", &mut ev).unwrap(), Var::Bool(true));
    assert!(
        ev[1].as_str().unwrap().contains(r#""State":"Close""#),
        "{:?}",
        ev[1]
    );
    finish(c);
}

#[test]
fn documented_self_test_step_1_over_ws_and_wss() {
    let _g = serial();
    let peer = PyPeer::start(&["echo"]);
    self_test_step1(&peer.url("/"), "");
    let pki = TestPki::new();
    let tls = PyPeer::start(&[
        "echo",
        "--tls",
        pki.cert.to_str().unwrap(),
        pki.key.to_str().unwrap(),
    ]);
    let url = format!("wss://localhost:{}/secure", tls.port);
    let opts = format!(r#"{{"tls": {{"ca_file": "{}"}}}}"#, pki.ca.display());
    self_test_step1(&url, &opts);
}

#[test]
fn connection_failures_raise_clear_errors() {
    let _g = serial();
    let c = create_with("Client", job());
    let err = c
        .call("Подключиться", &mut [s("http://127.0.0.1/")])
        .unwrap_err();
    assert!(
        err.text.contains("ожидается схема ws:// или wss://"),
        "{}",
        err.text
    );
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = c
        .call("Подключиться", &mut [s(&format!("ws://127.0.0.1:{free}/"))])
        .unwrap_err();
    assert!(err.text.contains("отклонил подключение"), "{}", err.text);
    assert_eq!(c.get("Статус").unwrap(), Var::I4(-1));
    let err = c
        .call("Подключиться", &mut [s("ws://no-such-host.invalid/")])
        .unwrap_err();
    assert!(err.text.contains("DNS"), "{}", err.text);
    let err = c
        .call("Подключиться", &mut [s("ws://сервер.рф/")])
        .unwrap_err();
    assert!(err.text.contains("punycode"), "{}", err.text);
    let err = c
        .call(
            "Подключиться",
            &mut [s("ws://127.0.0.1:1/"), s(r#"{"timeout": 1}"#)],
        )
        .unwrap_err();
    assert!(
        err.text.contains("неизвестный параметр «timeout»"),
        "{}",
        err.text
    );

    // An HTTP server that refuses the upgrade.
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = http.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut sock, _) = http.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = sock.read(&mut buf);
        let _ = sock.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
    });
    let err = c
        .call("Подключиться", &mut [s(&format!("ws://127.0.0.1:{port}/"))])
        .unwrap_err();
    assert!(err.text.contains("HTTP 403"), "{}", err.text);
    server.join().unwrap();

    // wss to a server whose CA we were not given: not trusted.
    let pki = TestPki::new();
    let tls = PyPeer::start(&[
        "echo",
        "--tls",
        pki.cert.to_str().unwrap(),
        pki.key.to_str().unwrap(),
    ]);
    let err = c
        .call(
            "Подключиться",
            &mut [s(&format!("wss://localhost:{}/", tls.port))],
        )
        .unwrap_err();
    assert!(err.text.contains("не доверен"), "{}", err.text);
    // ...and a certificate for another name.
    let opts = format!(r#"{{"tls": {{"ca_file": "{}"}}}}"#, pki.ca.display());
    let err = c
        .call(
            "Подключиться",
            &mut [s(&format!("wss://127.0.0.2:{}/", tls.port)), s(&opts)],
        )
        .unwrap_err();
    assert!(
        err.text.contains("TLS") || err.text.contains("подключ"),
        "{}",
        err.text
    );
    finish(c);
}

#[test]
fn binary_round_trips_as_binary_data_in_pull_and_base64_in_push() {
    let _g = serial();
    let peer = PyPeer::start(&["echo"]);
    let c = create_with("Client", job());
    c.call("Подключиться", &mut [s(&peer.url("/"))]).unwrap();
    let small: Vec<u8> = vec![0, 1, 2, 254, 255];
    c.call("ОтправитьДвоичныеДанные", &mut [Var::Blob(small.clone())])
        .unwrap();
    assert_eq!(receive(&c, 5000), Some(Var::Blob(small)));
    let big: Vec<u8> = (0..10u32 << 20).map(|i| (i % 251) as u8).collect();
    c.call("ОтправитьДвоичныеДанные", &mut [Var::Blob(big.clone())])
        .unwrap();
    assert_eq!(receive(&c, 20_000), Some(Var::Blob(big)), "10 MiB binary");
    let text = "Ж".repeat(5 << 20);
    c.call("Отправить", &mut [s(&text)]).unwrap();
    assert_eq!(receive(&c, 20_000), Some(Var::Str(text)), "10 MiB text");
    c.call("Отключиться", &mut []).unwrap();
    finish(c);

    let c = create_with("Client", HostOptions::default());
    c.set("РежимДоставки", s("События")).unwrap();
    c.call("Подключиться", &mut [s(&peer.url("/push"))])
        .unwrap();
    c.call("ОтправитьДвоичныеДанные", &mut [Var::Blob(vec![1, 2, 3])])
        .unwrap();
    let conn = c.conn();
    assert!(
        conn.wait_events(2, Duration::from_secs(5)),
        "open + message pushed"
    );
    let evs = conn.take_events();
    assert!(evs[0].message.contains(r#""State":"Open""#), "{:?}", evs[0]);
    assert_eq!(evs[0].source, "WebSocket");
    assert_eq!(
        evs[1].message,
        r#"{"Event":"Message","Type":"Binary","Encoding":"base64"}"#
    );
    assert_eq!(evs[1].data, "AQID");
    c.call("Отключиться", &mut [Var::I4(4000), s("пока")])
        .unwrap();
    assert!(conn.wait_events(1, Duration::from_secs(5)));
    let close = conn.take_events().remove(0);
    assert_eq!(
        close.message,
        r#"{"Event":"Connection","State":"Close","Code":4000,"Reason":"пока"}"#
    );
    finish(c);
}

const MILLION: u64 = 1_000_000;

#[test]
fn a_million_messages_by_pull_complete_and_in_order() {
    let _g = serial();
    let peer = FloodPeer::start(Some(MILLION));
    let c = create_with("Client", job());
    c.call("Подключиться", &mut [s(&peer.url())]).unwrap();
    let receive = c.find_method("Receive");
    let mut args = [Var::I4(10_000), Var::Empty];
    for i in 0..MILLION {
        let got = c.raw_call_with(receive, &mut args, 2, true).unwrap();
        assert_eq!(got, Var::Bool(true), "message {i} did not arrive");
        assert_eq!(args[1], Var::Str(i.to_string()), "message {i} out of order");
    }
    assert_eq!(c.get("ВОчереди").unwrap(), Var::I4(0));
    c.call("Отключиться", &mut []).unwrap();
    finish(c);
}

/// Drains pushed events, checking numbered messages; returns how many messages arrived.
fn drain_numbered(conn: &ws1c_host::Conn, next: &mut u64) {
    for ev in conn.take_events() {
        if ev.message.starts_with(r#"{"Event":"Message""#) {
            assert_eq!(ev.data, next.to_string(), "pushed message out of order");
            *next += 1;
        }
    }
}

#[test]
fn a_million_messages_by_push_complete_and_in_order() {
    let _g = serial();
    let peer = FloodPeer::start(Some(MILLION));
    let c = create_with("Client", HostOptions::default());
    c.set("РежимДоставки", s("push")).unwrap();
    c.call("Подключиться", &mut [s(&peer.url())]).unwrap();
    let conn = c.conn();
    let mut next = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while next < MILLION && Instant::now() < deadline {
        conn.wait_events(1, Duration::from_millis(50));
        drain_numbered(&conn, &mut next);
    }
    assert_eq!(next, MILLION);
    assert_eq!(c.get("НеДоставлено").unwrap(), Var::I4(0));
    c.call("Отключиться", &mut []).unwrap();
    finish(c);
}

#[test]
fn refused_push_events_are_kept_for_pull_and_counted() {
    let _g = serial();
    const N: u64 = 100_000;
    let peer = FloodPeer::start(Some(N));
    let opts = HostOptions {
        refuse_events: true,
        honour_buffer_depth: true,
        ..HostOptions::default()
    };
    let c = create_with("Client", opts);
    c.set("РежимДоставки", s("События")).unwrap();
    c.call("Подключиться", &mut [s(&peer.url())]).unwrap();
    // Everything the platform refuses waits for pull: open, then N messages in order.
    let conn = c.conn();
    let receive_event = c.find_method("ReceiveEvent");
    let mut args = [Var::I4(10_000), Var::Empty, Var::Empty];
    assert_eq!(
        c.raw_call_with(receive_event, &mut args, 3, true).unwrap(),
        Var::Bool(true)
    );
    assert!(args[1].as_str().unwrap().contains(r#""State":"Open""#));
    for i in 0..N {
        assert_eq!(
            c.raw_call_with(receive_event, &mut args, 3, true).unwrap(),
            Var::Bool(true),
            "{i}"
        );
        assert_eq!(args[2], Var::Str(i.to_string()));
    }
    let refused = conn.refused();
    assert_eq!(refused, N + 1);
    assert_eq!(
        c.get("НеДоставлено").unwrap().as_f64(),
        Some((N + 1) as f64)
    );
    assert_eq!(conn.external_event_calls(), refused);
    c.call("Отключиться", &mut []).unwrap();
    finish(c);
}

#[test]
fn a_paused_reader_keeps_memory_bounded_and_loses_nothing() {
    let _g = serial();
    let peer = FloodPeer::start(None);
    let c = create_with("Client", job());
    c.set("РазмерОчереди", Var::I4(1000)).unwrap();
    c.call("Подключиться", &mut [s(&peer.url())]).unwrap();
    assert_eq!(receive(&c, 5000), Some(s("0")));
    let before = rss_kib();
    std::thread::sleep(Duration::from_secs(10));
    let after = rss_kib();
    let pending = c.get("ВОчереди").unwrap().as_f64().unwrap() as u64;
    eprintln!("paused 10 s under flood: RSS {before} KiB -> {after} KiB, queue {pending}");
    assert!(pending <= 1000, "queue beyond its capacity: {pending}");
    assert!(
        after < before + 32 * 1024,
        "memory grew by {} KiB",
        after.saturating_sub(before)
    );
    for i in 1..50_000u64 {
        assert_eq!(
            receive(&c, 5000),
            Some(Var::Str(i.to_string())),
            "message {i}"
        );
    }
    c.call("Отключиться", &mut []).unwrap();
    finish(c);
}

#[test]
fn on_the_1c_server_auto_pulls_and_raises_no_event() {
    let _g = serial();
    let peer = PyPeer::start(&["echo"]);
    let c = create_with("Client", job());
    c.call("Подключиться", &mut [s(&peer.url("/"))]).unwrap();
    for i in 0..100 {
        c.call("Отправить", &mut [s(&format!("m{i}"))]).unwrap();
    }
    for i in 0..100 {
        assert_eq!(receive(&c, 5000), Some(s(&format!("m{i}"))));
    }
    c.call("Отключиться", &mut []).unwrap();
    assert_eq!(c.conn().external_event_calls(), 0);
    finish(c);
}

#[test]
fn destroying_a_flooded_client_200_times_leaves_nothing_running() {
    let _g = serial();
    let peer = FloodPeer::start(None);
    // Objects of earlier tests are destroyed; their runtime threads may still be exiting.
    let settle = Instant::now() + Duration::from_secs(10);
    while thread_count() > 0 && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(50));
    }
    let baseline = thread_count();
    let mut peak = 0;
    for i in 0..200 {
        let push = i % 2 == 0;
        let mut c = create_with("Client", if push { HostOptions::default() } else { job() });
        c.call("Подключиться", &mut [s(&peer.url())]).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let conn = c.conn();
        peak = peak.max(thread_count());
        let took = c.done();
        assert!(took < Duration::from_secs(5), "Done took {took:?}");
        c.destroy();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(conn.calls_after_done(), 0, "iteration {i}");
    }
    assert!(peak > 0, "the runtime threads were seen while connected");
    let deadline = Instant::now() + Duration::from_secs(10);
    while thread_count() > baseline && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(baseline, 0, "no runtime thread before the first object");
    assert_eq!(
        thread_count(),
        0,
        "no runtime thread once every object is destroyed"
    );
}

#[test]
fn notify_mode_pushes_a_notice_and_keeps_the_payload_for_pull() {
    let _g = serial();
    let peer = PyPeer::start(&["echo"]);
    let c = create_with("Client", HostOptions::default());
    c.set("РежимДоставки", s("Уведомления")).unwrap();
    c.set("ИсточникСобытий", s("Касса1")).unwrap();
    c.call("Подключиться", &mut [s(&peer.url("/"))]).unwrap();
    c.call("Отправить", &mut [s("чек")]).unwrap();
    let conn = c.conn();
    assert!(conn.wait_events(2, Duration::from_secs(5)));
    let evs = conn.take_events();
    assert_eq!(evs[0].source, "Касса1");
    assert_eq!(evs[0].message, r#"{"Event":"Notify","Kind":"Connection"}"#);
    assert_eq!(evs[1].message, r#"{"Event":"Notify","Kind":"Message"}"#);
    assert_eq!(evs[1].data, "");
    let mut ev = [Var::I4(1000), Var::Empty, Var::Empty];
    assert_eq!(c.call("ПолучитьСобытие", &mut ev).unwrap(), Var::Bool(true));
    assert!(ev[1].as_str().unwrap().contains(r#""State":"Open""#));
    assert_eq!(receive(&c, 1000), Some(s("чек")));
    c.call("Отключиться", &mut []).unwrap();
    finish(c);
}

#[test]
fn a_peer_that_stops_reading_makes_send_fail_after_its_bound() {
    let _g = serial();
    let peer = FloodPeer::silent();
    let c = create_with("Client", job());
    let opts = r#"{"send_queue": 4, "send_timeout_ms": 300, "write_buffer_size": 0}"#;
    c.call("Подключиться", &mut [s(&peer.url()), s(opts)])
        .unwrap();
    let chunk = Var::Blob(vec![7u8; 1 << 20]);
    let t = Instant::now();
    let mut sent = 0;
    let err = loop {
        match c.call("ОтправитьДвоичныеДанные", &mut [chunk.clone()]) {
            Ok(_) => sent += 1,
            Err(e) => break e,
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "Send never refused ({sent} MiB queued)"
        );
    };
    assert!(
        err.text.contains("Очередь отправки переполнена"),
        "{}",
        err.text
    );
    assert!(
        sent < 200,
        "{sent} MiB accepted by a peer that reads nothing"
    );
    let t = Instant::now();
    c.call("Отключиться", &mut []).unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "Disconnect is bounded: {:?}",
        t.elapsed()
    );
    finish(c);
}

/// A full queue waits for half of it to leave, but a reader that takes data slowly and
/// steadily is never called stuck: one free slot at the deadline is enough, and nothing is lost.
#[test]
fn a_slow_but_steady_reader_never_makes_send_fail() {
    let _g = serial();
    let peer = PyPeer::start(&["slow", "8"]);
    let c = create_with("Client", job());
    // Half the queue (16) takes the reader ~130 ms, more than the 80 ms bound.
    let opts = r#"{"send_queue": 32, "send_timeout_ms": 80, "write_buffer_size": 0}"#;
    c.call("Подключиться", &mut [s(&peer.url("/")), s(opts)])
        .unwrap();
    let mut ev = [Var::I4(5000), Var::Empty, Var::Empty];
    assert_eq!(c.call("ПолучитьСобытие", &mut ev).unwrap(), Var::Bool(true));
    const N: usize = 200;
    let chunk = Var::Blob(vec![3u8; 256 << 10]);
    let t = Instant::now();
    for i in 0..N {
        if let Err(e) = c.call("ОтправитьДвоичныеДанные", &mut [chunk.clone()])
        {
            panic!("message {i} refused after {:?}: {}", t.elapsed(), e.text);
        }
    }
    let sending = t.elapsed();
    // The reader's pace (8 ms a message) shows the queue was full most of the time.
    assert!(
        sending > Duration::from_millis(600),
        "{N} sends took only {sending:?}: the reader never held them back"
    );
    let mut last = 0;
    while last < N {
        let Some(Var::Str(n)) = receive(&c, 5000) else {
            panic!("the reader's count stopped at {last}")
        };
        let n: usize = n.parse().unwrap();
        assert_eq!(n, last + 1, "counts arrive in order");
        last = n;
    }
    c.call("Отключиться", &mut []).unwrap();
    finish(c);
}

#[test]
fn a_receive_loop_with_timeout_0_ends_when_the_server_hangs_up() {
    let _g = serial();
    let peer = PyPeer::start(&["close", "4001"]);
    let c = create_with("Client", job());
    c.call("Подключиться", &mut [s(&peer.url("/"))]).unwrap();
    c.call("Отправить", &mut [s("последнее")]).unwrap();
    // Пока Клиент.Принять(0, Данные) Цикл ... КонецЦикла;
    let t = Instant::now();
    let mut n = 0;
    while receive(&c, 0).is_some() {
        n += 1;
    }
    assert_eq!(n, 0);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_eq!(c.get("Статус").unwrap(), Var::I4(0));
    // Принять passed over the open and close events on its way.
    let mut ev = [Var::I4(0), Var::Empty, Var::Empty];
    assert_eq!(
        c.call("ПолучитьСобытие", &mut ev).unwrap(),
        Var::Bool(false)
    );
    finish(c);
}

#[test]
fn custom_headers_reach_the_server() {
    let _g = serial();
    let peer = PyPeer::start(&["headers"]);
    let c = create_with("Client", job());
    let opts = r#"{"headers": {"Authorization": "Bearer токен-не-ascii-нельзя", "X-Касса": "1"}}"#;
    let err = c
        .call("Подключиться", &mut [s(&peer.url("/")), s(opts)])
        .unwrap_err();
    assert!(err.text.contains("Недопустимый заголовок"), "{}", err.text);
    let opts = r#"{"headers": {"Authorization": "Bearer abc", "X-Till": "1"}, "timeout_ms": 3000}"#;
    c.call("Подключиться", &mut [s(&peer.url("/h")), s(opts)])
        .unwrap();
    let got = receive(&c, 5000).expect("headers echoed");
    let text = got.as_str().unwrap().to_owned();
    // HTTP header names are case-insensitive; they travel lower-cased.
    assert!(text.contains(r#""authorization": "Bearer abc""#), "{text}");
    assert!(text.contains(r#""x-till": "1""#), "{text}");
    c.call("Отключиться", &mut []).unwrap();
    finish(c);
}
