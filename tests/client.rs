//! `AddIn.WebSocket.Client` end to end, through the C ABI, against real peers on loopback.

mod common;

use std::time::{Duration, Instant};

use common::{
    FloodPeer, PyPeer, TestPki, client_receive, create_with, finish, job, rss_kib, s, serial,
    thread_count,
};
use ws1c_host::{HostOptions, Obj, Var};

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
    assert_eq!(client_receive(&c, 0), Some(s("ase1ЦУ")));
    let t = Instant::now();
    assert_eq!(client_receive(&c, 3000), None);
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
        err.text.contains("ожидается ws:// или wss://"),
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
    assert_eq!(client_receive(&c, 5000), Some(Var::Blob(small)));
    let big: Vec<u8> = (0..10u32 << 20).map(|i| (i % 251) as u8).collect();
    c.call("ОтправитьДвоичныеДанные", &mut [Var::Blob(big.clone())])
        .unwrap();
    assert_eq!(
        client_receive(&c, 20_000),
        Some(Var::Blob(big)),
        "10 MiB binary"
    );
    let text = "Ж".repeat(5 << 20);
    c.call("Отправить", &mut [s(&text)]).unwrap();
    assert_eq!(
        client_receive(&c, 20_000),
        Some(Var::Str(text)),
        "10 MiB text"
    );
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
    assert_eq!(client_receive(&c, 5000), Some(s("0")));
    let before = rss_kib();
    // Why a sleep: the flood goes on for a fixed window while 1C pulls nothing; the queue
    // and RSS bounds below are what must hold at its end.
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
            client_receive(&c, 5000),
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
        assert_eq!(client_receive(&c, 5000), Some(s(&format!("m{i}"))));
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
    assert_eq!(client_receive(&c, 1000), Some(s("чек")));
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
        let Some(Var::Str(n)) = client_receive(&c, 5000) else {
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
    while client_receive(&c, 0).is_some() {
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
    let got = client_receive(&c, 5000).expect("headers echoed");
    let text = got.as_str().unwrap().to_owned();
    // HTTP header names are case-insensitive; they travel lower-cased.
    assert!(text.contains(r#""authorization": "Bearer abc""#), "{text}");
    assert!(text.contains(r#""x-till": "1""#), "{text}");
    c.call("Отключиться", &mut []).unwrap();
    finish(c);
}

/// `s` with every byte outside unreserved ASCII and `/?=&` percent-encoded (upper-case hex),
/// as the add-in must send a path and query.
fn percent_encoded(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"/?=&-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The JSON the `headers` peer sends on open: request headers, `_path`, `_subprotocol`.
fn seen_request(c: &Obj) -> serde_json::Value {
    let got = client_receive(c, 5000).expect("the peer reports the request");
    serde_json::from_str(got.as_str().expect("text")).expect("JSON")
}

#[test]
fn addresses_a_1c_developer_writes_reach_the_server_encoded() {
    let _g = serial();
    let peer = PyPeer::start(&["headers"]);
    let c = create_with("Client", job());
    // Cyrillic and spaces in path and query, an upper-case scheme, a name for the host.
    let path = "/чат/с пробелом?имя=Иван&x=a b";
    let url = format!("WS://localhost:{}{path}", peer.port);
    c.call("Подключиться", &mut [s(&url)]).unwrap();
    assert_eq!(
        c.get("Сервер").unwrap(),
        s(&url),
        "Сервер keeps what was passed"
    );
    let seen = seen_request(&c);
    assert_eq!(seen["_path"], percent_encoded(path), "{seen}");
    assert_eq!(seen["host"], format!("localhost:{}", peer.port), "{seen}");
    assert!(seen.get("authorization").is_none(), "{seen}");
    c.call("Отключиться", &mut []).unwrap();

    // user:password@ arrives as HTTP Basic, percent-decoded, never in the request line.
    let url = format!("ws://иван:p%40ss%20w@127.0.0.1:{}/auth", peer.port);
    c.call("Подключиться", &mut [s(&url)]).unwrap();
    let seen = seen_request(&c);
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode("иван:p@ss w");
    assert_eq!(seen["authorization"], format!("Basic {token}"), "{seen}");
    assert_eq!(seen["_path"], "/auth", "{seen}");
    assert_eq!(seen["host"], format!("127.0.0.1:{}", peer.port), "{seen}");
    c.call("Отключиться", &mut []).unwrap();

    // The headers option's own Authorization wins over the address's.
    let opts = r#"{"headers": {"Authorization": "Bearer abc"}}"#;
    c.call("Подключиться", &mut [s(&url), s(opts)]).unwrap();
    assert_eq!(seen_request(&c)["authorization"], "Bearer abc");
    c.call("Отключиться", &mut []).unwrap();
    finish(c);
}

/// Whether this machine can listen on ::1 (some containers have no IPv6 loopback).
fn has_ipv6_loopback() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

#[test]
fn ipv6_literal_addresses_connect() {
    let _g = serial();
    if !has_ipv6_loopback() {
        println!("skipped: this machine cannot listen on ::1");
        return;
    }
    let peer = PyPeer::start(&["echo", "--host", "::1"]);
    let c = create_with("Client", job());
    let url = format!("ws://[::1]:{}/v6", peer.port);
    c.call("Подключиться", &mut [s(&url)]).unwrap();
    let mut ev = [Var::I4(1000), Var::Empty, Var::Empty];
    assert_eq!(c.call("ПолучитьСобытие", &mut ev).unwrap(), Var::Bool(true));
    let data = ev[2].as_str().unwrap().to_owned();
    assert!(data.contains(r#""Address":"[::1]:"#), "{data}");
    c.call("Отправить", &mut [s("через IPv6")]).unwrap();
    assert_eq!(client_receive(&c, 5000), Some(s("через IPv6")));
    c.call("Отключиться", &mut []).unwrap();
    finish(c);
}

#[test]
fn bad_addresses_raise_naming_the_wrong_part() {
    let _g = serial();
    let c = create_with("Client", job());
    let cases = [
        ("ws://127.0.0.1:65536/", "недопустимый порт"),
        ("ws://127.0.0.1:-1/", "недопустимый порт"),
        ("ws://127.0.0.1:12345678901234567890/", "недопустимый порт"),
        ("ws://127.0.0.1:0/", "недопустимый порт"),
        ("http://127.0.0.1/", "схема «http» не поддерживается"),
        ("localhost:8080", "схема «localhost» не поддерживается"),
        ("127.0.0.1:8080", "это не адрес"),
        ("ws://", "не указано имя узла"),
        ("ws://[::1/", "недопустимое имя узла"),
        ("ws://a<b/", "недопустимое имя узла"),
        ("ws://h/#x", "фрагмента"),
        ("адрес", "это не адрес"),
    ];
    for (url, part) in cases {
        let err = c.call("Подключиться", &mut [s(url)]).unwrap_err();
        assert!(err.text.contains(part), "{url}: {}", err.text);
        assert!(
            err.text.contains("Неверный адрес сервера"),
            "{url}: {}",
            err.text
        );
        assert_eq!(
            c.get("Статус").unwrap(),
            Var::I4(0),
            "{url}: nothing was started"
        );
    }
    // A 50 MB address: the text quotes a few hundred characters of it, not 50 MB.
    let huge = format!("ws://127.0.0.1:65536/{}", "x".repeat(50 << 20));
    let err = c.call("Подключиться", &mut [s(&huge)]).unwrap_err();
    assert!(err.text.chars().count() < 1000, "{} chars", err.text.len());
    assert!(
        err.text.contains("недопустимый порт"),
        "{}",
        &err.text[..200]
    );
    let described = c.call("ОписаниеОшибки", &mut []).unwrap();
    assert_eq!(described, Var::Str(err.text.clone()));
    drop(huge);
    finish(c);
}

#[test]
fn an_international_host_name_is_resolved_in_punycode() {
    let _g = serial();
    let c = create_with("Client", job());
    // .invalid never resolves (RFC 6761), so the error must name what was looked up.
    let err = c
        .call(
            "Подключиться",
            &mut [s("wss://сервер-которого-нет.invalid/чат")],
        )
        .unwrap_err();
    // Python: "сервер-которого-нет.invalid".encode("idna")
    assert!(
        err.text.contains("«xn-----dlcfhbd1b3ahaabtceh0ai.invalid»"),
        "{}",
        err.text
    );
    assert!(err.text.contains("DNS"), "{}", err.text);
    assert_eq!(c.get("Статус").unwrap(), Var::I4(-1));
    finish(c);
}

#[test]
fn the_open_event_carries_the_response_headers_in_pull_and_push() {
    let _g = serial();
    let peer = PyPeer::start(&[
        "echo",
        "--response-header",
        "X-Custom:alpha",
        "--response-header",
        "X-Custom:beta",
        "--response-header",
        "X-Session:42",
    ]);
    let check = |data: &str| {
        let v: serde_json::Value = serde_json::from_str(data).expect("JSON");
        let h = &v["Headers"];
        assert_eq!(h["x-custom"], "alpha, beta", "{data}");
        assert_eq!(h["x-session"], "42", "{data}");
        assert_eq!(h["upgrade"], "websocket", "{data}");
        assert!(h["sec-websocket-accept"].is_string(), "{data}");
    };
    // Pull: ПолучитьСобытие.
    let c = create_with("Client", job());
    c.call("Подключиться", &mut [s(&peer.url("/pull"))])
        .unwrap();
    let mut ev = [Var::I4(2000), Var::Empty, Var::Empty];
    assert_eq!(c.call("ПолучитьСобытие", &mut ev).unwrap(), Var::Bool(true));
    assert!(
        ev[1].as_str().unwrap().contains(r#""State":"Open""#),
        "{:?}",
        ev[1]
    );
    check(ev[2].as_str().unwrap());
    c.call("Отключиться", &mut []).unwrap();
    finish(c);
    // Push: ВнешнееСобытие.
    let c = create_with("Client", HostOptions::default());
    c.set("РежимДоставки", s("События")).unwrap();
    c.call("Подключиться", &mut [s(&peer.url("/push"))])
        .unwrap();
    let conn = c.conn();
    assert!(conn.wait_events(1, Duration::from_secs(5)));
    let evs = conn.take_events();
    assert!(evs[0].message.contains(r#""State":"Open""#), "{:?}", evs[0]);
    check(&evs[0].data);
    c.call("Отключиться", &mut []).unwrap();
    finish(c);
}

/// Names that resolve to ::1 on this machine, from the usual spellings.
fn ipv6_loopback_name() -> Option<&'static str> {
    use std::net::ToSocketAddrs;
    ["localhost", "localhost6", "ip6-localhost"]
        .into_iter()
        .find(|n| {
            (*n, 1)
                .to_socket_addrs()
                .is_ok_and(|mut a| a.any(|a| a.ip() == std::net::Ipv6Addr::LOCALHOST))
        })
}

#[test]
fn every_address_of_a_host_is_tried_and_named() {
    let _g = serial();
    use std::net::ToSocketAddrs;
    let c = create_with("Client", job());
    // Refused everywhere: the error lists each address of the name.
    let free = common::free_port();
    let err = c
        .call("Подключиться", &mut [s(&format!("ws://localhost:{free}/"))])
        .unwrap_err();
    let addrs: Vec<_> = ("localhost", free).to_socket_addrs().unwrap().collect();
    assert!(!addrs.is_empty());
    for a in &addrs {
        assert!(
            err.text.contains(&a.to_string()),
            "{a} not in: {}",
            err.text
        );
    }
    assert!(err.text.contains("отклонил подключение"), "{}", err.text);
    // The same for a proxy's host name.
    let proxy = common::free_port();
    let opts = format!(r#"{{"proxy": "socks5://localhost:{proxy}"}}"#);
    let err = c
        .call("Подключиться", &mut [s("ws://example.org/"), s(&opts)])
        .unwrap_err();
    assert!(
        err.text.contains("не удалось подключиться к прокси"),
        "{}",
        err.text
    );
    for a in ("localhost", proxy).to_socket_addrs().unwrap() {
        assert!(
            err.text.contains(&a.to_string()),
            "{a} not in: {}",
            err.text
        );
    }
    // A server on ::1 alone, reached by a name that also resolves elsewhere.
    match ipv6_loopback_name() {
        Some(name) if has_ipv6_loopback() => {
            let peer = PyPeer::start(&["echo", "--host", "::1"]);
            let url = format!("ws://{name}:{}/", peer.port);
            c.call("Подключиться", &mut [s(&url)]).unwrap();
            c.call("Отправить", &mut [s("v6")]).unwrap();
            assert_eq!(client_receive(&c, 5000), Some(s("v6")));
            c.call("Отключиться", &mut []).unwrap();
        }
        _ => println!(
            "skipped the ::1-only server: no host name resolves to ::1 here (or no ::1); \
             connect_any's unit test covers trying each address"
        ),
    }
    finish(c);
}

/// A raw TCP server that answers one WebSocket handshake correctly but for `extra` header
/// lines, then keeps the socket open until the client goes.
fn raw_handshake_server(extra: &'static str) -> (u16, std::thread::JoinHandle<()>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        let (sock, _) = l.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut r = BufReader::new(sock.try_clone().unwrap());
        let mut key = String::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("sec-websocket-key")
            {
                key = v.trim().to_owned();
            }
        }
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let mut w = sock;
        let _ = w.write_all(
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {accept}\r\n{extra}\r\n"
            )
            .as_bytes(),
        );
        // Until the client hangs up (bounded by the read timeout).
        let _ = r.read(&mut [0u8; 64]);
    });
    (port, t)
}

#[test]
fn an_extension_the_client_did_not_offer_fails_the_connection() {
    let _g = serial();
    let c = create_with("Client", job());
    let (port, server) = raw_handshake_server("Sec-WebSocket-Extensions: permessage-deflate\r\n");
    let err = c
        .call("Подключиться", &mut [s(&format!("ws://127.0.0.1:{port}/"))])
        .unwrap_err();
    assert!(
        err.text.contains("расширение «permessage-deflate»"),
        "{}",
        err.text
    );
    assert_eq!(c.get("Статус").unwrap(), Var::I4(-1));
    server.join().unwrap();
    // The same server without the extension is accepted: the test checks the extension.
    let (port, server) = raw_handshake_server("");
    c.call("Подключиться", &mut [s(&format!("ws://127.0.0.1:{port}/"))])
        .unwrap();
    assert_eq!(c.get("Статус").unwrap(), Var::I4(1));
    drop(c.call("Отключиться", &mut []));
    server.join().unwrap();
    finish(c);
}
