//! `AddIn.WebSocket.Server` through the C ABI: add-in and Python clients on loopback.

mod common;

use std::time::{Duration, Instant};

use common::{TestPki, create_with, encrypt_key, finish, py_client, serial};
use ws1c_host::{HostOptions, Obj, Var};

fn s(v: &str) -> Var {
    Var::Str(v.to_owned())
}

fn job() -> HostOptions {
    HostOptions::server()
}

fn run(server: &Obj, args: &[Var]) -> u16 {
    let mut args = args.to_vec();
    assert_eq!(
        server.call("Запустить", &mut args).unwrap(),
        Var::Bool(true)
    );
    server.get("Порт").unwrap().as_f64().unwrap() as u16
}

/// `Принять(timeout, ИДКлиента, Данные)`.
fn receive(server: &Obj, timeout_ms: i32) -> Option<(u64, Var)> {
    let mut args = [Var::I4(timeout_ms), Var::Empty, Var::Empty];
    match server.call("Принять", &mut args).unwrap() {
        Var::Bool(true) => Some((args[1].as_f64().unwrap() as u64, args[2].clone())),
        _ => None,
    }
}

/// One step of a pull echo loop: text back as text, binary back as binary.
fn echo_once(server: &Obj) {
    if let Some((id, data)) = receive(server, 50) {
        let method = if matches!(data, Var::Blob(_)) {
            "ОтправитьДвоичныеДанные"
        } else {
            "Отправить"
        };
        assert_eq!(
            server
                .call(method, &mut [Var::I4(id as i32), data])
                .unwrap(),
            Var::I4(1)
        );
    }
}

#[test]
fn documented_self_test_step_2() {
    let _g = serial();
    let server = create_with("Server", job());
    let port = run(&server, &[s("127.0.0.1"), Var::I4(0)]);
    assert!(port > 0);
    assert_eq!(server.get("Сервер").unwrap(), s("127.0.0.1"));
    assert_eq!(server.get("Статус").unwrap(), Var::I4(1));
    let c1 = create_with("Client", job());
    let c2 = create_with("Client", job());
    c1.call(
        "Подключиться",
        &mut [s(&format!("ws://127.0.0.1:{port}/first"))],
    )
    .unwrap();
    c2.call(
        "Подключиться",
        &mut [s(&format!("ws://127.0.0.1:{port}/testadr"))],
    )
    .unwrap();
    c1.call("Отправить", &mut [s("ase1ЙЦУ")]).unwrap();
    let (id, data) = receive(&server, 0).expect("a message");
    assert_eq!((id, data), (1, s("ase1ЙЦУ")));
    let list = server
        .get("Соединения")
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        list.starts_with("1: 127.0.0.1:") && list.contains(" | 2: 127.0.0.1:"),
        "{list}"
    );
    assert_eq!(server.get("КоличествоСоединений").unwrap(), Var::I4(2));
    let info = server
        .call("ИнформацияОСоединении", &mut [Var::I4(2)])
        .unwrap();
    let info = info.as_str().unwrap().to_owned();
    assert!(
        info.contains(r#""Connection":2"#) && info.contains(r#""Path":"/testadr""#),
        "{info}"
    );
    assert!(info.contains(r#""MessagesIn":0"#), "{info}");
    let info1 = server
        .call("ИнформацияОСоединении", &mut [Var::I4(1)])
        .unwrap();
    assert!(
        info1
            .as_str()
            .unwrap()
            .contains(r#""MessagesIn":1,"BytesIn":10"#),
        "{info1:?}"
    );
    assert_eq!(
        server.call("Отключить", &mut [Var::I4(1)]).unwrap(),
        Var::Bool(true)
    );
    assert_eq!(
        server.call("Отключить", &mut [Var::I4(99)]).unwrap(),
        Var::Bool(false)
    );
    assert_eq!(
        server
            .call("Отправить", &mut [Var::I4(99), s("никому")])
            .unwrap(),
        Var::I4(0)
    );
    // The disconnected client sees the close; the server sees it as an event.
    let mut args = [Var::I4(5000), Var::Empty];
    assert_eq!(c1.call("Получить", &mut args).unwrap(), Var::Bool(false));
    assert_eq!(c1.get("Статус").unwrap(), Var::I4(0));
    let err = server
        .call("ИнформацияОСоединении", &mut [Var::I4(1)])
        .unwrap_err();
    assert!(err.text.contains("Нет соединения"), "{}", err.text);
    finish(c1);
    finish(c2);
    finish(server);
    common::assert_memory_clean();
}

#[test]
fn python_clients_exchange_text_and_binary_over_ws_and_wss() {
    let _g = serial();
    let server = create_with("Server", job());
    let port = run(&server, &[s("127.0.0.1"), Var::I4(0)]);
    let out = py_client(&format!("ws://127.0.0.1:{port}/py"), &[], || {
        echo_once(&server)
    });
    assert_eq!(out.lines().last(), Some("OK"), "{out}");
    // Its close is seen: the connection is gone.
    let t = Instant::now();
    while server.get("КоличествоСоединений").unwrap() != Var::I4(0)
        && t.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(server.get("КоличествоСоединений").unwrap(), Var::I4(0));
    server.call("Остановить", &mut []).unwrap();
    finish(server);

    let pki = TestPki::new();
    let (cert, key, ca) = (
        pki.cert.to_str().unwrap(),
        pki.key.to_str().unwrap(),
        pki.ca.to_str().unwrap(),
    );
    let encrypted = pki.dir.join("enc.pem");
    encrypt_key(&pki.key, &encrypted, "1234");
    let combined = pki.dir.join("combined.pem");
    let pem =
        std::fs::read_to_string(&pki.cert).unwrap() + &std::fs::read_to_string(&encrypted).unwrap();
    std::fs::write(&combined, pem).unwrap();
    let pfx = pki.dir.join("cert.pfx");
    common::make_pfx(&pki.cert, &pki.key, &pfx, "1234");
    let forms: [Vec<Var>; 5] = [
        vec![s(cert), s(key)],
        vec![s(cert), s(encrypted.to_str().unwrap()), s("1234")],
        vec![s(combined.to_str().unwrap()), s("1234")],
        vec![s(pfx.to_str().unwrap()), s("1234")],
        vec![s(pfx.to_str().unwrap()), s(""), s("1234")],
    ];
    for form in forms {
        let server = create_with("Server", job());
        let mut args = vec![s("127.0.0.1"), Var::I4(0)];
        args.extend(form.iter().cloned());
        let port = run(&server, &args);
        let out = py_client(
            &format!("wss://localhost:{port}/tls"),
            &["--ca", ca],
            || echo_once(&server),
        );
        assert_eq!(out.lines().last(), Some("OK"), "{form:?}: {out}");
        finish(server);
    }
    // Wrong password, missing password, unreadable file.
    let server = create_with("Server", job());
    let bad = |args: &mut [Var]| server.call("Запустить", args).unwrap_err().text;
    let e = bad(&mut [
        s("127.0.0.1"),
        Var::I4(0),
        s(cert),
        s(encrypted.to_str().unwrap()),
        s("0000"),
    ]);
    assert!(e.contains("неверный пароль"), "{e}");
    let e = bad(&mut [
        s("127.0.0.1"),
        Var::I4(0),
        s(pfx.to_str().unwrap()),
        s("4321"),
    ]);
    assert!(e.contains("неверный пароль"), "{e}");
    let e = bad(&mut [s("127.0.0.1"), Var::I4(0), s(combined.to_str().unwrap())]);
    assert!(e.contains("укажите пароль"), "{e}");
    let e = bad(&mut [
        s("127.0.0.1"),
        Var::I4(0),
        s("/нет/такого/cert.pem"),
        s(key),
    ]);
    assert!(e.contains("Не удалось прочитать"), "{e}");
    assert_eq!(server.get("Статус").unwrap(), Var::I4(-1));
    assert_eq!(server.call("ОписаниеОшибки", &mut []).unwrap(), s(&e));
    finish(server);
}

#[test]
fn ports_in_use_and_stop_frees_the_port() {
    let _g = serial();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().port();
    let server = create_with("Server", job());
    let err = server
        .call("Запустить", &mut [s("127.0.0.1"), Var::I4(i32::from(busy))])
        .unwrap_err();
    assert!(err.text.contains("уже занят"), "{}", err.text);
    let err = server
        .call("Запустить", &mut [s("10.255.255.254"), Var::I4(0)])
        .unwrap_err();
    assert!(err.text.contains("интерфейс"), "{}", err.text);
    drop(taken);
    let port = run(&server, &[s("127.0.0.1"), Var::I4(0)]);
    let err = server
        .call("Запустить", &mut [s("127.0.0.1"), Var::I4(0)])
        .unwrap_err();
    assert!(err.text.contains("уже запущен"), "{}", err.text);
    let c = create_with("Client", job());
    c.call("Подключиться", &mut [s(&format!("ws://127.0.0.1:{port}/"))])
        .unwrap();
    server.call("Остановить", &mut []).unwrap();
    server.call("Остановить", &mut []).unwrap();
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "port free after Stop"
    );
    assert_eq!(server.get("Статус").unwrap(), Var::I4(0));
    assert_eq!(server.get("Порт").unwrap(), Var::I4(0));
    // The client was told the server is going away (1001).
    let mut ev = [Var::I4(5000), Var::Empty, Var::Empty];
    let mut close = String::new();
    while c.call("ПолучитьСобытие", &mut ev).unwrap() == Var::Bool(true) {
        close = ev[1].as_str().unwrap().to_owned();
    }
    assert!(close.contains(r#""Code":1001"#), "{close}");
    finish(c);
    finish(server);
}

#[test]
fn the_connection_limit_answers_503_and_keeps_the_others() {
    let _g = serial();
    let server = create_with("Server", job());
    server
        .call("Настроить", &mut [s(r#"{"max_connections": 3}"#)])
        .unwrap();
    let port = run(&server, &[s("127.0.0.1"), Var::I4(0)]);
    let url = format!("ws://127.0.0.1:{port}/");
    let clients: Vec<Obj> = (0..3)
        .map(|_| {
            let c = create_with("Client", job());
            c.call("Подключиться", &mut [s(&url)]).unwrap();
            c
        })
        .collect();
    let extra = create_with("Client", job());
    let err = extra.call("Подключиться", &mut [s(&url)]).unwrap_err();
    assert!(err.text.contains("HTTP 503"), "{}", err.text);
    assert_eq!(server.get("КоличествоСоединений").unwrap(), Var::I4(3));
    for c in &clients {
        assert_eq!(c.get("Статус").unwrap(), Var::I4(1));
    }
    let err = server.call("Настроить", &mut [s("{}")]).unwrap_err();
    assert!(err.text.contains("до Запустить"), "{}", err.text);
    for c in clients {
        finish(c);
    }
    finish(extra);
    finish(server);
}

#[test]
fn access_checks_refuse_the_handshake() {
    let _g = serial();
    let server = create_with("Server", job());
    let opts = r#"{"allowed_paths": ["/ok"], "auth": {"bearer": "секрет-в-ascii-нельзя"}}"#;
    server.call("Настроить", &mut [s(opts)]).unwrap();
    server
        .call("Настроить", &mut [s(r#"{"allowed_paths": ["/ok"], "auth": {"bearer": "s3cret"}, "subprotocols": ["v2", "v1"]}"#)])
        .unwrap();
    let port = run(&server, &[s("127.0.0.1"), Var::I4(0)]);
    let c = create_with("Client", job());
    let e = c
        .call(
            "Подключиться",
            &mut [s(&format!("ws://127.0.0.1:{port}/no"))],
        )
        .unwrap_err();
    assert!(e.text.contains("HTTP 404"), "{}", e.text);
    let e = c
        .call(
            "Подключиться",
            &mut [s(&format!("ws://127.0.0.1:{port}/ok"))],
        )
        .unwrap_err();
    assert!(e.text.contains("HTTP 401"), "{}", e.text);
    let good =
        r#"{"headers": {"Authorization": "Bearer s3cret", "Sec-WebSocket-Protocol": "v1, v2"}}"#;
    c.call(
        "Подключиться",
        &mut [s(&format!("ws://127.0.0.1:{port}/ok?x=1")), s(good)],
    )
    .unwrap();
    assert_eq!(c.get("Подпротокол").unwrap(), s("v2"));
    let info = server
        .call("ИнформацияОСоединении", &mut [Var::I4(1)])
        .unwrap();
    let info = info.as_str().unwrap().to_owned();
    assert!(
        info.contains(r#""Query":"x=1""#) && info.contains(r#""Subprotocol":"v2""#),
        "{info}"
    );
    finish(c);
    finish(server);
}

#[test]
fn push_mode_events_carry_the_connection_id_and_broadcast_counts() {
    let _g = serial();
    let server = create_with("Server", HostOptions::default());
    server.set("РежимДоставки", s("События")).unwrap();
    let port = run(&server, &[s("127.0.0.1"), Var::I4(0)]);
    let url = format!("ws://127.0.0.1:{port}/chat");
    let a = create_with("Client", job());
    let b = create_with("Client", job());
    a.call("Подключиться", &mut [s(&url)]).unwrap();
    b.call("Подключиться", &mut [s(&url)]).unwrap();
    b.call("ОтправитьДвоичныеДанные", &mut [Var::Blob(vec![1, 2, 3])])
        .unwrap();
    let conn = server.conn();
    assert!(conn.wait_events(3, Duration::from_secs(5)));
    let evs = conn.take_events();
    assert!(evs[0].message.starts_with(
        r#"{"Event":"Connection","State":"Open","Connection":1,"Address":"127.0.0.1:"#
    ));
    assert!(
        evs[0].message.ends_with(r#","Path":"/chat"}"#),
        "{}",
        evs[0].message
    );
    assert_eq!(
        evs[2].message,
        r#"{"Event":"Message","Type":"Binary","Connection":2,"Encoding":"base64"}"#
    );
    assert_eq!(evs[2].data, "AQID");
    assert_eq!(
        server.call("ОтправитьВсем", &mut [s("всем")]).unwrap(),
        Var::I4(2)
    );
    assert_eq!(
        server
            .call("ОтправитьВсемДвоичныеДанные", &mut [Var::Blob(vec![9])])
            .unwrap(),
        Var::I4(2)
    );
    for c in [&a, &b] {
        let mut args = [Var::I4(5000), Var::Empty];
        assert_eq!(c.call("Получить", &mut args).unwrap(), Var::Bool(true));
        assert_eq!(args[1], s("всем"));
        assert_eq!(c.call("Получить", &mut args).unwrap(), Var::Bool(true));
        assert_eq!(args[1], Var::Blob(vec![9]));
    }
    finish(a);
    finish(b);
    finish(server);
}

#[test]
fn destroying_a_running_server_with_flooding_clients_leaves_the_port_free() {
    let _g = serial();
    for round in 0..100 {
        // Push rounds keep the platform's event buffer bounded, as 1C does; without it the
        // emulated platform would hoard every flooded event.
        let push = HostOptions {
            honour_buffer_depth: true,
            ..HostOptions::default()
        };
        let server = create_with("Server", if round % 2 == 0 { job() } else { push });
        let port = run(&server, &[s("127.0.0.1"), Var::I4(0)]);
        let url = format!("ws://127.0.0.1:{port}/");
        let flood = common::FloodClients::start(&url, 100);
        let t = Instant::now();
        while server.get("КоличествоСоединений").unwrap() != Var::I4(100)
            && t.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            server.get("КоличествоСоединений").unwrap(),
            Var::I4(100),
            "round {round}: not every client got in within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
        let conn = server.conn();
        let mut server = server;
        let took = server.done();
        assert!(took < Duration::from_secs(5), "Done took {took:?}");
        server.destroy();
        assert_eq!(conn.calls_after_done(), 0, "round {round}");
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port free, round {round}"
        );
        drop(flood);
    }
}

/// Checks per-connection order of numbered texts; returns how many arrived.
fn check_order(last: &mut std::collections::HashMap<u64, u64>, id: u64, text: &str) {
    let n: u64 = text.parse().expect("a numbered text");
    let expected = last.get(&id).map_or(0, |l| l + 1);
    assert_eq!(
        n,
        expected,
        "connection {id}: got {n} after {:?}",
        last.get(&id)
    );
    last.insert(id, n);
}

const CLIENTS: usize = 1000;
const EACH: u64 = 1000;

#[test]
fn a_thousand_clients_a_thousand_messages_each_by_pull_then_503() {
    let _g = serial();
    let server = create_with("Server", job());
    let port = run(&server, &[s("127.0.0.1"), Var::I4(0)]);
    let url = format!("ws://127.0.0.1:{port}/");
    let flood = common::FloodClients::sending(&url, CLIENTS, Some(EACH));
    let receive_m = server.find_method("Принять");
    let mut args = [Var::I4(20_000), Var::Empty, Var::Empty];
    let mut last = std::collections::HashMap::new();
    for k in 0..(CLIENTS as u64 * EACH) {
        let got = server.raw_call_with(receive_m, &mut args, 3, true).unwrap();
        assert_eq!(got, Var::Bool(true), "message {k} did not arrive");
        check_order(
            &mut last,
            args[1].as_f64().unwrap() as u64,
            args[2].as_str().unwrap(),
        );
    }
    assert_eq!(last.len(), CLIENTS);
    assert!(last.values().all(|&l| l == EACH - 1));
    assert_eq!(
        server.get("КоличествоСоединений").unwrap(),
        Var::I4(CLIENTS as i32)
    );
    let extra = create_with("Client", job());
    let err = extra.call("Подключиться", &mut [s(&url)]).unwrap_err();
    assert!(err.text.contains("HTTP 503"), "{}", err.text);
    assert_eq!(
        server.get("КоличествоСоединений").unwrap(),
        Var::I4(CLIENTS as i32)
    );
    finish(extra);
    finish(server);
    drop(flood);
}

#[test]
fn a_thousand_clients_a_thousand_messages_each_by_push() {
    let _g = serial();
    let server = create_with("Server", HostOptions::default());
    server.set("РежимДоставки", s("push")).unwrap();
    let port = run(&server, &[s("127.0.0.1"), Var::I4(0)]);
    let flood =
        common::FloodClients::sending(&format!("ws://127.0.0.1:{port}/"), CLIENTS, Some(EACH));
    let conn = server.conn();
    let mut last = std::collections::HashMap::new();
    let mut total = 0;
    let deadline = Instant::now() + Duration::from_secs(180);
    while total < CLIENTS as u64 * EACH && Instant::now() < deadline {
        conn.wait_events(1, Duration::from_millis(50));
        for ev in conn.take_events() {
            if let Some(rest) = ev
                .message
                .strip_prefix(r#"{"Event":"Message","Type":"Text","Connection":"#)
            {
                let id: u64 = rest.trim_end_matches('}').parse().unwrap();
                check_order(&mut last, id, &ev.data);
                total += 1;
            }
        }
    }
    assert_eq!(total, CLIENTS as u64 * EACH);
    assert_eq!(server.get("НеДоставлено").unwrap(), Var::I4(0));
    finish(server);
    drop(flood);
}

#[test]
fn a_client_that_stops_reading_cannot_grow_the_server_without_bound() {
    let _g = serial();
    let server = create_with("Server", job());
    server
        .call(
            "Настроить",
            &mut [s(r#"{"send_queue": 16, "send_timeout_ms": 200}"#)],
        )
        .unwrap();
    let port = run(&server, &[s("127.0.0.1"), Var::I4(0)]);
    // A raw TCP client that completes the handshake and then never reads.
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::{Read, Write};
    sock.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut buf = [0u8; 1024];
    let n = sock.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 101"));
    let before = common::rss_kib();
    let chunk = Var::Blob(vec![5u8; 1 << 20]);
    let mut queued = 0u64;
    let err = loop {
        match server.call("ОтправитьДвоичныеДанные", &mut [Var::I4(1), chunk.clone()])
        {
            Ok(_) => queued += 1,
            Err(e) => break e,
        }
        assert!(
            queued < 1000,
            "the server kept accepting data for a reader that reads nothing"
        );
    };
    let after = common::rss_kib();
    eprintln!(
        "slow reader: {queued} MiB accepted before Send failed; server RSS {before} -> {after} KiB"
    );
    assert!(err.text.contains("не принимает данные"), "{}", err.text);
    assert!(
        after < before + 200 * 1024,
        "RSS grew by {} KiB",
        after - before
    );
    finish(server);
}

#[test]
fn node_ws_clients_exchange_text_and_binary_over_ws_and_wss() {
    let _g = serial();
    let server = create_with("Server", job());
    let port = run(&server, &[s("127.0.0.1"), Var::I4(0)]);
    let out = common::node_peer(
        "client.js",
        &[&format!("ws://127.0.0.1:{port}/node")],
        || echo_once(&server),
    );
    assert_eq!(out.lines().last(), Some("OK"), "{out}");
    finish(server);
    let pki = TestPki::new();
    let server = create_with("Server", job());
    let port = run(
        &server,
        &[
            s("127.0.0.1"),
            Var::I4(0),
            s(pki.cert.to_str().unwrap()),
            s(pki.key.to_str().unwrap()),
        ],
    );
    let url = format!("wss://localhost:{port}/node");
    let out = common::node_peer("client.js", &[&url, pki.ca.to_str().unwrap()], || {
        echo_once(&server)
    });
    assert_eq!(out.lines().last(), Some("OK"), "{out}");
    finish(server);
}

/// An echo loop on events: records every event header and echoes texts to their sender.
fn echo_events(server: &Obj, headers: &mut Vec<String>) {
    let mut ev = [Var::I4(50), Var::Empty, Var::Empty];
    if server.call("ПолучитьСобытие", &mut ev).unwrap() != Var::Bool(true) {
        return;
    }
    let header = ev[1].as_str().unwrap().to_owned();
    if let Some(rest) = header.strip_prefix(r#"{"Event":"Message","Type":"Text","Connection":"#) {
        let id: i32 = rest.trim_end_matches('}').parse().unwrap();
        server
            .call("Отправить", &mut [Var::I4(id), ev[2].clone()])
            .unwrap();
    }
    headers.push(header);
}

#[test]
fn headless_chromium_runs_the_documented_page_over_ws_and_wss() {
    let _g = serial();
    if std::process::Command::new("/usr/bin/chromium")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("Chromium is missing: scripts/test.sh installs the Debian package");
    }
    let pki = TestPki::new();
    let spki = common::spki_hash(&pki.cert);
    for tls in [false, true] {
        let server = create_with("Server", job());
        let mut args = vec![s("127.0.0.1"), Var::I4(0)];
        if tls {
            args.extend([s(pki.cert.to_str().unwrap()), s(pki.key.to_str().unwrap())]);
        }
        let port = run(&server, &args);
        let url = format!(
            "{}://localhost:{port}/portal",
            if tls { "wss" } else { "ws" }
        );
        let mut headers = Vec::new();
        let out = common::node_peer("browser.js", &[&url, &spki], || {
            echo_events(&server, &mut headers)
        });
        assert!(
            out.contains("RESPONSE: WebSocket rocks") && out.lines().last() == Some("OK"),
            "{out}"
        );
        // Let the close arrive, then check what the server saw, all on connection 1.
        let t = Instant::now();
        while !headers.iter().any(|h| h.contains(r#""State":"Close""#))
            && t.elapsed() < Duration::from_secs(5)
        {
            echo_events(&server, &mut headers);
        }
        assert!(
            headers[0].starts_with(r#"{"Event":"Connection","State":"Open","Connection":1,"#),
            "{headers:?}"
        );
        assert!(headers[0].ends_with(r#""Path":"/portal"}"#), "{headers:?}");
        assert_eq!(
            headers[1],
            r#"{"Event":"Message","Type":"Text","Connection":1}"#
        );
        assert!(
            headers[2].starts_with(r#"{"Event":"Connection","State":"Close","Connection":1,"#),
            "{headers:?}"
        );
        finish(server);
    }
}

#[test]
fn a_persistent_server_outlives_its_object_and_keeps_what_arrived() {
    let _g = serial();
    let opts = s(r#"{"persistent": {"name": "регламентное-задание"}}"#);
    let first = create_with("Server", job());
    first.call("Настроить", &mut [opts.clone()]).unwrap();
    let port = run(&first, &[s("127.0.0.1"), Var::I4(0)]);
    let sender = create_with("Client", job());
    sender
        .call(
            "Подключиться",
            &mut [s(&format!("ws://127.0.0.1:{port}/agent"))],
        )
        .unwrap();
    sender.call("Отправить", &mut [s("до")]).unwrap();
    assert_eq!(receive(&first, 5000), Some((1, s("до"))));
    finish(first);
    // Nobody is attached: the client keeps sending, the server keeps listening.
    for i in 0..100 {
        sender
            .call("Отправить", &mut [s(&format!("между {i}"))])
            .unwrap();
    }
    let late = create_with("Client", job());
    late.call(
        "Подключиться",
        &mut [s(&format!("ws://127.0.0.1:{port}/late"))],
    )
    .unwrap();
    late.call("Отправить", &mut [s("поздний")]).unwrap();

    let second = create_with("Server", job());
    second.call("Настроить", &mut [opts.clone()]).unwrap();
    let err = second
        .call(
            "Запустить",
            &mut [s("127.0.0.1"), Var::I4(i32::from(port) + 1)],
        )
        .unwrap_err();
    assert!(err.text.contains("уже запущен"), "{}", err.text);
    assert_eq!(
        run(&second, &[s("127.0.0.1"), Var::I4(i32::from(port))]),
        port
    );
    let mut from_sender = Vec::new();
    let mut from_late = Vec::new();
    while let Some((id, data)) = receive(&second, 2000) {
        match id {
            1 => from_sender.push(data),
            2 => from_late.push(data),
            other => panic!("unexpected connection {other}"),
        }
    }
    let expected: Vec<Var> = (0..100).map(|i| s(&format!("между {i}"))).collect();
    assert_eq!(
        from_sender, expected,
        "everything sent in between, in order"
    );
    assert_eq!(from_late, vec![s("поздний")]);
    assert_eq!(second.get("КоличествоСоединений").unwrap(), Var::I4(2));
    second.call("Остановить", &mut []).unwrap();
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "Stop frees the port"
    );
    finish(second);
    finish(sender);
    finish(late);
}

/// Issue 15 #10: one object attached to a persistent server at a time; the second's
/// `Запустить` raises and leaves it not running (no stale `Статус` or `Порт`), and it
/// attaches once the first is gone.
#[test]
fn a_persistent_server_is_attached_to_one_object_at_a_time() {
    let _g = serial();
    let opts = s(r#"{"persistent": {"name": "один-за-раз"}}"#);
    let first = create_with("Server", job());
    first.call("Настроить", &mut [opts.clone()]).unwrap();
    let port = run(&first, &[s("127.0.0.1"), Var::I4(0)]);
    let second = create_with("Server", job());
    second.call("Настроить", &mut [opts.clone()]).unwrap();
    let err = second
        .call("Запустить", &mut [s("127.0.0.1"), Var::I4(i32::from(port))])
        .unwrap_err();
    assert!(
        err.text.contains("уже используется другим объектом"),
        "{}",
        err.text
    );
    assert_eq!(second.get("Статус").unwrap().as_i64(), Some(-1));
    assert_eq!(second.get("Порт").unwrap().as_i64(), Some(0));
    assert_eq!(first.get("Статус").unwrap().as_i64(), Some(1));
    finish(first);
    assert_eq!(
        run(&second, &[s("127.0.0.1"), Var::I4(i32::from(port))]),
        port
    );
    second.call("Остановить", &mut []).unwrap();
    assert_eq!(second.get("Статус").unwrap().as_i64(), Some(0));
    finish(second);
}

#[test]
fn an_idle_persistent_server_expires() {
    let _g = serial();
    let opts = s(r#"{"persistent": {"name": "ненадолго", "idle_expiry_ms": 300}}"#);
    let first = create_with("Server", job());
    first.call("Настроить", &mut [opts.clone()]).unwrap();
    let port = run(&first, &[s("127.0.0.1"), Var::I4(0)]);
    finish(first);
    let t = Instant::now();
    while std::net::TcpListener::bind(("127.0.0.1", port)).is_err()
        && t.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "port freed after expiry"
    );
    // The name is free again: a new object starts a new server under it.
    let second = create_with("Server", job());
    second.call("Настроить", &mut [opts]).unwrap();
    assert!(run(&second, &[s("127.0.0.1"), Var::I4(0)]) > 0);
    second.call("Остановить", &mut []).unwrap();
    finish(second);
}

#[test]
fn pings_keep_live_clients_and_the_idle_timeout_drops_silent_ones() {
    let _g = serial();
    let server = create_with("Server", job());
    server
        .call(
            "Настроить",
            &mut [s(r#"{"ping_interval_ms": 100, "idle_timeout_ms": 400}"#)],
        )
        .unwrap();
    let port = run(&server, &[s("127.0.0.1"), Var::I4(0)]);
    // A live add-in client answers the pings by itself, so it stays.
    let live = create_with("Client", job());
    live.call(
        "Подключиться",
        &mut [s(&format!("ws://127.0.0.1:{port}/live"))],
    )
    .unwrap();
    // A raw client completes the handshake and then answers nothing.
    let mut silent = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::{Read, Write};
    silent
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 256];
    assert!(silent.read(&mut buf).unwrap() > 0);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        server.get("КоличествоСоединений").unwrap(),
        Var::I4(1),
        "only the live client is left"
    );
    assert_eq!(live.get("Статус").unwrap(), Var::I4(1));
    let mut pongs = 0;
    let mut idle_close = String::new();
    let mut ev = [Var::I4(100), Var::Empty, Var::Empty];
    while server.call("ПолучитьСобытие", &mut ev).unwrap() == Var::Bool(true) {
        let h = ev[1].as_str().unwrap().to_owned();
        if h == r#"{"Event":"Pong","Connection":1}"# {
            pongs += 1;
        }
        if h.contains(r#""State":"Close","Connection":2"#) {
            idle_close = h;
        }
    }
    assert!(pongs >= 5, "pongs from the live client: {pongs}");
    assert!(
        idle_close.contains(r#""Code":1001,"Reason":"idle timeout"#),
        "{idle_close}"
    );
    finish(live);
    finish(server);
}

#[test]
fn the_log_tells_what_happened_without_message_bodies() {
    let _g = serial();
    let pki = TestPki::new();
    let path = pki.dir.join("server.log");
    let server = create_with("Server", job());
    let opts = format!(
        r#"{{"log_file": "{}", "log_level": "debug", "allowed_paths": ["/ok"]}}"#,
        path.display()
    );
    server.call("Настроить", &mut [s(&opts)]).unwrap();
    let port = run(&server, &[s("127.0.0.1"), Var::I4(0)]);
    let c = create_with("Client", job());
    let refused = c.call(
        "Подключиться",
        &mut [s(&format!("ws://127.0.0.1:{port}/no"))],
    );
    assert!(refused.is_err());
    c.call(
        "Подключиться",
        &mut [s(&format!("ws://127.0.0.1:{port}/ok"))],
    )
    .unwrap();
    c.call("Отправить", &mut [s("секрет")]).unwrap();
    assert_eq!(receive(&server, 5000).map(|r| r.1), Some(s("секрет")));
    c.call("Отключиться", &mut []).unwrap();
    let t = Instant::now();
    while server.get("КоличествоСоединений").unwrap() != Var::I4(0)
        && t.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    server.call("Остановить", &mut []).unwrap();
    let log = common::read_log(&path, "stopping 127.0.0.1:");
    for needle in [
        "listening on 127.0.0.1:",
        "refused 127.0.0.1:",
        "HTTP 404",
        "accepted 1 from 127.0.0.1:",
        "path /ok",
        "message in 1: text 12 bytes",
        "closed 1: 1000",
        "stopping 127.0.0.1:",
    ] {
        assert!(log.contains(needle), "no \"{needle}\" in the log:\n{log}");
    }
    assert!(!log.contains("секрет"), "a message body in the log:\n{log}");
    finish(c);
    finish(server);

    let server = create_with("Server", job());
    let err = server
        .call("Настроить", &mut [s(r#"{"log_level": "всё"}"#)])
        .unwrap_err();
    assert!(err.text.contains("error, info или debug"), "{}", err.text);
    server
        .call(
            "Настроить",
            &mut [s(r#"{"log_file": "/нет/такой/папки/ws.log"}"#)],
        )
        .unwrap();
    let err = server
        .call("Запустить", &mut [s("127.0.0.1"), Var::I4(0)])
        .unwrap_err();
    assert!(err.text.contains("файл журнала"), "{}", err.text);
    finish(server);
}

/// `ПринятьОт(ИДКлиента, Таймаут, Данные)`: (found, data), checking the documented
/// `Данные = ""` on `Ложь`.
fn receive_from(server: &Obj, id: i32, timeout_ms: i32) -> Option<Var> {
    let mut args = [Var::I4(id), Var::I4(timeout_ms), Var::Empty];
    match server.call("ПринятьОт", &mut args).unwrap() {
        Var::Bool(true) => Some(args[2].clone()),
        Var::Bool(false) => {
            assert_eq!(args[2], s(""), "Данные is an empty string on Ложь");
            None
        }
        other => panic!("ПринятьОт returned {other:?}"),
    }
}

fn pending(obj: &Obj) -> i64 {
    obj.get("ВОчереди").unwrap().as_i64().unwrap()
}

#[test]
fn receive_from_takes_one_connection_and_leaves_the_others_in_order() {
    let _g = serial();
    let (server, port) = common::job_server("{}");
    let c1 = create_with("Client", job());
    let c2 = create_with("Client", job());
    let url = format!("ws://127.0.0.1:{port}/");
    c1.call("Подключиться", &mut [s(&url)]).unwrap();
    common::wait_until(Duration::from_secs(5), "connection 1", || {
        server.get("КоличествоСоединений").unwrap() == Var::I4(1)
    });
    c2.call("Подключиться", &mut [s(&url)]).unwrap();
    for m in ["a1", "a2"] {
        c1.call("Отправить", &mut [s(m)]).unwrap();
    }
    for m in ["b1", "b2"] {
        c2.call("Отправить", &mut [s(m)]).unwrap();
    }
    c1.call("ОтправитьДвоичныеДанные", &mut [Var::Blob(vec![0, 1, 255])])
        .unwrap();
    // Two open events and five messages.
    common::wait_until(Duration::from_secs(5), "7 events queued", || {
        pending(&server) == 7
    });
    assert_eq!(receive_from(&server, 2, 1000), Some(s("b1")));
    assert_eq!(receive_from(&server, 2, 0), Some(s("b2")));
    assert_eq!(pending(&server), 5, "ВОчереди counts what ПринятьОт took");
    // Nothing more of connection 2, which is open: the timeout.
    let t = Instant::now();
    assert_eq!(receive_from(&server, 2, 150), None);
    assert!(
        t.elapsed() >= Duration::from_millis(150),
        "{:?}",
        t.elapsed()
    );
    // An id that never connected: Ложь at once, even with a long timeout.
    let t = Instant::now();
    assert_eq!(receive_from(&server, 99, 5000), None);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    // The rest reaches Принять in arrival order, without what ПринятьОт took.
    assert_eq!(receive(&server, 1000), Some((1, s("a1"))));
    assert_eq!(receive_from(&server, 1, 1000), Some(s("a2")));
    assert_eq!(
        receive(&server, 1000),
        Some((1, Var::Blob(vec![0, 1, 255])))
    );
    assert_eq!(receive(&server, 100), None);
    assert_eq!(pending(&server), 0);
    // A connection's message sent before it ended is still taken; then Ложь, without
    // waiting for the timeout.
    c2.call("Отправить", &mut [s("b3")]).unwrap();
    c2.call("Отключиться", &mut []).unwrap();
    assert_eq!(receive_from(&server, 2, 5000), Some(s("b3")));
    let t = Instant::now();
    assert_eq!(receive_from(&server, 2, 10_000), None);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // Its close event is left for ПолучитьСобытие.
    let (close, _) = common::next_event_json(&server, 1000).expect("the close event");
    assert_eq!(
        (close["State"].as_str(), close["Connection"].as_i64()),
        (Some("Close"), Some(2))
    );
    // Argument checks as elsewhere: a negative id is refused in both languages' style.
    let err = server
        .call("ПринятьОт", &mut [Var::I4(-1), Var::I4(0), Var::Empty])
        .unwrap_err();
    assert!(err.text.contains("ИДКлиента"), "{}", err.text);
    finish(c1);
    finish(c2);
    finish(server);
    common::assert_memory_clean();
}

#[test]
fn connection_list_describes_the_open_connections() {
    let _g = serial();
    let idle = create_with("Server", job());
    assert_eq!(
        idle.call("СписокСоединений", &mut []).unwrap(),
        s("[]"),
        "not running"
    );
    finish(idle);
    let (server, port) = common::job_server(r#"{"subprotocols": ["v1"]}"#);
    let c1 = create_with("Client", job());
    let c2 = create_with("Client", job());
    c1.call(
        "Подключиться",
        &mut [
            s(&format!("ws://127.0.0.1:{port}/a?x=1")),
            s(r#"{"subprotocols": ["v1"]}"#),
        ],
    )
    .unwrap();
    common::wait_until(Duration::from_secs(5), "connection 1", || {
        server.get("КоличествоСоединений").unwrap() == Var::I4(1)
    });
    c2.call(
        "Подключиться",
        &mut [s(&format!("ws://127.0.0.1:{port}/b"))],
    )
    .unwrap();
    c1.call("Отправить", &mut [s("hello")]).unwrap();
    assert_eq!(receive(&server, 5000), Some((1, s("hello"))));
    assert_eq!(
        server
            .call("Отправить", &mut [Var::I4(1), s("ok")])
            .unwrap(),
        Var::I4(1)
    );
    assert_eq!(receive_text_of(&c1), "ok");
    let list = || -> Vec<serde_json::Value> {
        let text = server.call("СписокСоединений", &mut []).unwrap();
        serde_json::from_str(text.as_str().unwrap()).unwrap()
    };
    common::wait_until(Duration::from_secs(5), "two connections listed", || {
        list().len() == 2
    });
    let all = list();
    let first = all[0].as_object().unwrap();
    let keys: Vec<&str> = first.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "Connection",
            "Address",
            "Path",
            "Subprotocol",
            "ConnectedAt",
            "MessagesIn",
            "BytesIn",
            "MessagesOut",
            "BytesOut"
        ]
    );
    assert_eq!(first["Connection"], 1);
    assert!(
        first["Address"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{first:?}"
    );
    assert_eq!(
        (first["Path"].as_str(), first["Subprotocol"].as_str()),
        (Some("/a"), Some("v1"))
    );
    assert_eq!(
        (first["MessagesIn"].as_u64(), first["BytesIn"].as_u64()),
        (Some(1), Some(5))
    );
    assert_eq!(
        (first["MessagesOut"].as_u64(), first["BytesOut"].as_u64()),
        (Some(1), Some(2))
    );
    let at = first["ConnectedAt"].as_str().unwrap();
    assert!(
        at.len() == 20 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
        "ISO 8601 UTC: {at}"
    );
    assert_eq!(
        (all[1]["Connection"].as_u64(), all[1]["Path"].as_str()),
        (Some(2), Some("/b"))
    );
    assert_eq!(all[1]["Subprotocol"], "");
    // The same instant as ИнформацияОСоединении's Unix time.
    let info: serde_json::Value = serde_json::from_str(
        server
            .call("ИнформацияОСоединении", &mut [Var::I4(1)])
            .unwrap()
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(info["ConnectedAt"], at);
    let secs = info["ConnectedSince"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now - secs < 60, "{secs} vs {now}");
    // A connection claimed by Отключить is left out at once.
    assert_eq!(
        server.call("Отключить", &mut [Var::I4(1)]).unwrap(),
        Var::Bool(true)
    );
    let after = list();
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["Connection"], 2);
    finish(c1);
    finish(c2);
    finish(server);
    common::assert_memory_clean();
}

fn receive_text_of(c: &Obj) -> String {
    common::receive_text(c, 5000).expect("a message")
}

#[test]
fn trusted_proxies_option_errors() {
    let _g = serial();
    let server = create_with("Server", job());
    let err = server
        .call(
            "Настроить",
            &mut [s(r#"{"trusted_proxies": ["10.0.0.0/8", "10.0.0.0/33"]}"#)],
        )
        .unwrap_err();
    assert!(
        err.text.starts_with(
            "Параметры сервера: ключ trusted_proxies[1]: ожидается IP-адрес или блок адресов"
        ),
        "{}",
        err.text
    );
    assert!(
        err.text.ends_with("получено \"10.0.0.0/33\""),
        "{}",
        err.text
    );
    server
        .call(
            "Настроить",
            &mut [s(
                r#"{"trusted_proxies": ["127.0.0.1", "::1", "fd00::/8"]}"#,
            )],
        )
        .unwrap();
    finish(server);
}
