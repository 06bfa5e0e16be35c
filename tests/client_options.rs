//! Client connection options (`Параметры` of `Подключиться`): TLS roots and client
//! certificates, proxies, headers and subprotocols, keep-alive, reconnection and the
//! diagnostic log. Through the C ABI, against Python `websockets` servers and `pproxy`.

mod common;

use std::time::{Duration, Instant};

use common::{
    Pproxy, PyPeer, TestPki, create_with, encrypt_key, finish, free_port, job, make_pfx,
    next_event, receive_text, s, serial,
};
use ws1c_host::{HostOptions, Obj, Var};

fn connect(c: &Obj, url: &str, options: &str) -> Result<(), String> {
    c.call("Подключиться", &mut [s(url), s(options)])
        .map(|v| assert_eq!(v, Var::Bool(true)))
        .map_err(|e| e.text)
}

fn status(c: &Obj) -> Var {
    c.get("Статус").unwrap()
}

/// Sends a text and expects it back from an echo peer.
fn echo(c: &Obj, text: &str) {
    c.call("Отправить", &mut [s(text)]).unwrap();
    assert_eq!(receive_text(c, 5000).as_deref(), Some(text));
}

/// A Python echo server over TLS with `cert` and `key`, and `extra` arguments.
fn tls_echo(cert: &std::path::Path, key: &std::path::Path, extra: &[&str]) -> PyPeer {
    let mut args = vec![
        "echo",
        "--tls",
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    PyPeer::start(&args)
}

fn json(v: &str) -> String {
    // Paths into JSON strings.
    v.replace('\\', "\\\\").replace('"', "\\\"")
}

#[test]
fn tls_roots_ca_file_insecure_and_host_names() {
    let _g = serial();
    let pki = TestPki::new();
    let ca = json(pki.ca.to_str().unwrap());
    let peer = tls_echo(&pki.cert, &pki.key, &[]);
    let url = format!("wss://localhost:{}/", peer.port);
    let c = create_with("Client", job());

    // The platform's roots do not know the test CA, nor do the compiled-in ones.
    for opts in [String::new(), r#"{"tls": {"roots": "system"}}"#.to_owned()] {
        let e = connect(&c, &url, &opts).unwrap_err();
        assert!(e.contains("сертификат сервера не доверен"), "{e}");
        assert_eq!(status(&c), Var::I4(-1));
    }
    let e = connect(&c, &url, r#"{"tls": {"roots": "webpki"}}"#).unwrap_err();
    assert!(e.contains("не доверен"), "{e}");

    // The test CA added to the roots, or as the only root.
    for opts in [
        format!(r#"{{"tls": {{"ca_file": "{ca}"}}}}"#),
        format!(r#"{{"tls": {{"roots": "webpki", "ca_file": "{ca}"}}}}"#),
        format!(r#"{{"tls": {{"roots": "{ca}"}}}}"#),
        r#"{"tls": {"insecure": true}}"#.to_owned(),
    ] {
        connect(&c, &url, &opts).unwrap_or_else(|e| panic!("{opts}: {e}"));
        echo(&c, "защищено");
        c.call("Отключиться", &mut []).unwrap();
    }

    // A certificate for another name: refused even with the right CA; insecure accepts it.
    let (other_cert, other_key) = pki.leaf("other", &["other.example"]);
    let other = tls_echo(&other_cert, &other_key, &[]);
    let other_url = format!("wss://localhost:{}/", other.port);
    let e = connect(
        &c,
        &other_url,
        &format!(r#"{{"tls": {{"ca_file": "{ca}"}}}}"#),
    )
    .unwrap_err();
    assert!(e.contains("выдан не для «localhost»"), "{e}");
    connect(&c, &other_url, r#"{"tls": {"insecure": true}}"#).unwrap();
    echo(&c, "без проверки");
    c.call("Отключиться", &mut []).unwrap();

    // insecure is loud: a later failure says verification was off.
    drop(other);
    let e = connect(&c, &other_url, r#"{"tls": {"insecure": true}}"#).unwrap_err();
    assert!(e.contains("tls.insecure"), "{e}");

    // Bad files are clear errors.
    let e = connect(&c, &url, r#"{"tls": {"ca_file": "/нет/такого.pem"}}"#).unwrap_err();
    assert!(e.contains("Не удалось прочитать файл сертификатов"), "{e}");
    finish(c);
}

#[test]
fn client_certificates_pem_encrypted_key_and_pfx() {
    let _g = serial();
    let pki = TestPki::new();
    let ca = json(pki.ca.to_str().unwrap());
    let peer = tls_echo(
        &pki.cert,
        &pki.key,
        &["--client-ca", pki.ca.to_str().unwrap()],
    );
    let url = format!("wss://127.0.0.1:{}/", peer.port);
    let (ccert, ckey) = pki.leaf("client", &["client.example"]);
    let enc = pki.dir.join("client-enc.key");
    encrypt_key(&ckey, &enc, "s3cret");
    let pfx = pki.dir.join("client.pfx");
    make_pfx(&ccert, &ckey, &pfx, "pfx-pass");
    let (ccert, ckey, enc, pfx) = (
        json(ccert.to_str().unwrap()),
        json(ckey.to_str().unwrap()),
        json(enc.to_str().unwrap()),
        json(pfx.to_str().unwrap()),
    );
    let c = create_with("Client", job());

    // Without a client certificate the server refuses.
    let e = connect(&c, &url, &format!(r#"{{"tls": {{"ca_file": "{ca}"}}}}"#)).unwrap_err();
    assert!(e.contains("клиентский сертификат"), "{e}");

    for opts in [
        format!(
            r#"{{"tls": {{"ca_file": "{ca}", "cert_file": "{ccert}", "key_file": "{ckey}"}}}}"#
        ),
        format!(
            r#"{{"tls": {{"ca_file": "{ca}", "cert_file": "{ccert}", "key_file": "{enc}", "password": "s3cret"}}}}"#
        ),
        format!(r#"{{"tls": {{"ca_file": "{ca}", "pfx_file": "{pfx}", "password": "pfx-pass"}}}}"#),
    ] {
        connect(&c, &url, &opts).unwrap_or_else(|e| panic!("{opts}: {e}"));
        echo(&c, "с сертификатом");
        c.call("Отключиться", &mut []).unwrap();
    }

    // Wrong passwords are named as such.
    let e = connect(
        &c,
        &url,
        &format!(r#"{{"tls": {{"ca_file": "{ca}", "cert_file": "{ccert}", "key_file": "{enc}", "password": "wrong"}}}}"#),
    )
    .unwrap_err();
    assert!(e.contains("неверный пароль"), "{e}");
    let e = connect(
        &c,
        &url,
        &format!(r#"{{"tls": {{"ca_file": "{ca}", "pfx_file": "{pfx}", "password": "wrong"}}}}"#),
    )
    .unwrap_err();
    assert!(e.contains("неверный пароль"), "{e}");
    let e = connect(
        &c,
        &url,
        &format!(
            r#"{{"tls": {{"ca_file": "{ca}", "cert_file": "{ccert}", "key_file": "{enc}"}}}}"#
        ),
    )
    .unwrap_err();
    assert!(e.contains("укажите пароль"), "{e}");
    finish(c);
}

#[test]
fn proxies_http_socks5_socks4_with_and_without_credentials() {
    let _g = serial();
    let pki = TestPki::new();
    let ca = json(pki.ca.to_str().unwrap());
    let plain = PyPeer::start(&["echo"]);
    let secure = tls_echo(&pki.cert, &pki.key, &[]);
    let px = Pproxy::start();
    let c = create_with("Client", job());
    let proxies = [
        (format!("http://127.0.0.1:{}", px.http), px.http),
        (format!("socks5://127.0.0.1:{}", px.socks5), px.socks5),
        (format!("socks4://127.0.0.1:{}", px.socks4), px.socks4),
        (
            format!("http://user:pa55@127.0.0.1:{}", px.http_auth),
            px.http_auth,
        ),
        (
            format!("socks5://user:pa55@127.0.0.1:{}", px.socks5_auth),
            px.socks5_auth,
        ),
    ];
    for (proxy, port) in &proxies {
        for (url, tls) in [
            (format!("ws://localhost:{}/p", plain.port), String::new()),
            (
                format!("wss://localhost:{}/p", secure.port),
                format!(r#", "tls": {{"ca_file": "{ca}"}}"#),
            ),
        ] {
            let opts = format!(r#"{{"proxy": "{proxy}"{tls}}}"#);
            connect(&c, &url, &opts).unwrap_or_else(|e| panic!("{opts}: {e}"));
            // The connection's peer is the proxy: the traffic really went through it.
            let (h, _) = next_event(&c, 1000).expect("open event");
            assert!(
                h.contains(&format!(r#""Address":"127.0.0.1:{port}""#)),
                "{proxy}: {h}"
            );
            echo(&c, "через прокси");
            c.call("Отключиться", &mut []).unwrap();
            while next_event(&c, 50).is_some() {}
        }
    }
    // Wrong or missing credentials are clear errors.
    for proxy in [
        format!("http://user:wrong@127.0.0.1:{}", px.http_auth),
        format!("socks5://user:wrong@127.0.0.1:{}", px.socks5_auth),
    ] {
        let e = connect(
            &c,
            &format!("ws://localhost:{}/", plain.port),
            &format!(r#"{{"proxy": "{proxy}"}}"#),
        )
        .unwrap_err();
        assert!(
            e.contains("неверный логин или пароль прокси"),
            "{proxy}: {e}"
        );
        assert!(!e.contains("wrong"), "the password stays secret: {e}");
    }
    let e = connect(
        &c,
        &format!("ws://localhost:{}/", plain.port),
        &format!(r#"{{"proxy": "http://127.0.0.1:{}"}}"#, px.http_auth),
    )
    .unwrap_err();
    assert!(e.contains("требует авторизацию"), "{e}");
    // A proxy that is not there.
    let e = connect(
        &c,
        &format!("ws://localhost:{}/", plain.port),
        &format!(r#"{{"proxy": "socks5://127.0.0.1:{}"}}"#, free_port()),
    )
    .unwrap_err();
    assert!(e.contains("не удалось подключиться к прокси"), "{e}");
    finish(c);
}

#[test]
fn headers_subprotocols_and_pongs() {
    let _g = serial();
    let peer = PyPeer::start(&["headers", "--subprotocols", "v2,v1"]);
    let c = create_with("Client", job());
    let opts = r#"{"headers": {"X-Token": "abc"}, "subprotocols": ["v1", "v2"]}"#;
    connect(&c, &peer.url("/"), opts).unwrap();
    // Получить skips the connection events before a message: read the Open first.
    let (open, _) = next_event(&c, 1000).expect("open");
    assert!(open.contains(r#""State":"Open""#), "{open}");
    let seen = receive_text(&c, 5000).expect("what the server saw");
    assert!(seen.contains(r#""x-token": "abc""#), "{seen}");
    assert!(
        seen.contains(r#""sec-websocket-protocol": "v1, v2""#),
        "{seen}"
    );
    let chosen = c.get("Подпротокол").unwrap();
    assert!(chosen == s("v1") || chosen == s("v2"), "{chosen:?}");
    assert!(
        seen.contains(&format!(
            r#""_subprotocol": "{}""#,
            chosen.as_str().unwrap()
        )),
        "{seen}"
    );
    assert_eq!(c.get("Subprotocol").unwrap(), chosen);
    // Pongs are events, not messages.
    c.call("ОтправитьПинг", &mut [s("п1")]).unwrap();
    let (h, d) = next_event(&c, 3000).expect("pong");
    assert_eq!(h, r#"{"Event":"Pong"}"#);
    assert_eq!(d, "п1");
    assert_eq!(receive_text(&c, 200), None, "a pong is not a message");
    // A server that accepts none of ours: refused, as RFC 6455 lets a client do.
    c.call("Отключиться", &mut []).unwrap();
    let plain = PyPeer::start(&["echo"]);
    let e = connect(&c, &plain.url("/"), r#"{"subprotocols": ["v9"]}"#).unwrap_err();
    assert!(
        e.contains("не выбрал ни один из предложенных подпротоколов"),
        "{e}"
    );
    finish(c);
}

#[test]
fn a_frozen_peer_is_detected_by_ping_and_pong_timeout() {
    let _g = serial();
    let peer = PyPeer::start(&["freeze"]);
    let c = create_with("Client", job());
    let (interval, timeout) = (500u64, 1000u64);
    let opts = format!(r#"{{"ping_interval_ms": {interval}, "pong_timeout_ms": {timeout}}}"#);
    connect(&c, &peer.url("/"), &opts).unwrap();
    assert_eq!(receive_text(&c, 5000).as_deref(), Some("frozen"));
    let frozen_at = Instant::now();
    let fail = loop {
        let (h, d) = next_event(&c, 10_000).expect("a Fail event within the bound");
        if h.contains(r#""State":"Fail""#) {
            break (h, d);
        }
    };
    let took = frozen_at.elapsed();
    assert!(
        took <= Duration::from_millis(interval + timeout + 1000),
        "detected after {took:?}"
    );
    assert!(
        took >= Duration::from_millis(interval + timeout - 100),
        "{took:?}"
    );
    assert!(fail.0.contains("no answer to ping"), "{fail:?}");
    assert_eq!(status(&c), Var::I4(-1));
    let e = c.call("Отправить", &mut [s("x")]).unwrap_err();
    assert!(e.text.contains("Нет подключения"), "{}", e.text);
    finish(c);
}

#[test]
fn incoming_pings_are_answered_while_1c_does_nothing() {
    let _g = serial();
    // The peer pings every 200 ms and drops us if a pong is 500 ms late.
    let peer = PyPeer::start(&["echo", "--keepalive"]);
    let c = create_with("Client", job());
    connect(
        &c,
        &peer.url("/"),
        r#"{"ping_interval_ms": 300, "pong_timeout_ms": 500}"#,
    )
    .unwrap();
    // Why a sleep: pings every 300 ms must keep a quiet but live peer connected for several
    // pong timeouts (500 ms); a false "dead peer" shows as status -1 and a Fail event below.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(status(&c), Var::I4(1));
    let (h, _) = next_event(&c, 50).expect("open");
    assert!(h.contains("Open"), "{h}");
    while let Some((h, _)) = next_event(&c, 50) {
        assert!(
            h.contains("Pong"),
            "only our pings' pongs, no close or fail: {h}"
        );
    }
    echo(&c, "жив");
    finish(c);
}

fn kind(h: &str) -> &'static str {
    for (k, v) in [
        (r#""State":"Open""#, "Open"),
        (r#""State":"Close""#, "Close"),
        (r#""State":"Fail""#, "Fail"),
        (r#""State":"Reconnecting""#, "Reconnecting"),
        (r#""Event":"Message""#, "Message"),
    ] {
        if h.contains(k) {
            return v;
        }
    }
    panic!("unexpected event {h}")
}

#[test]
fn reconnects_after_the_server_is_killed_five_times() {
    let _g = serial();
    let mut peer = PyPeer::start(&["flood", "3", "--tag", "g0"]);
    let port = peer.port.to_string();
    let url = peer.url("/r");
    let c = create_with("Client", job());
    let opts = r#"{"reconnect": {"enabled": true, "min_delay_ms": 100, "max_delay_ms": 400}}"#;
    connect(&c, &url, opts).unwrap();
    let mut log: Vec<(String, String)> = Vec::new();
    let collect_until = |c: &Obj, last: &str, log: &mut Vec<(String, String)>| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            assert!(Instant::now() < deadline, "no {last}: {log:?}");
            if let Some(e) = next_event(c, 1000) {
                let done = e.1 == last;
                log.push(e);
                if done {
                    return;
                }
            }
        }
    };
    collect_until(&c, "g0:2", &mut log);
    for g in 1..=5 {
        drop(peer);
        // The loss is seen at once; while the server is down the client reconnects.
        let t = Instant::now();
        while status(&c) != Var::I4(2) {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "status {:?}",
                status(&c)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let e = c.call("Отправить", &mut [s("в пустоту")]).unwrap_err();
        assert!(e.text.contains("переподключение"), "{}", e.text);
        std::thread::sleep(Duration::from_millis(300));
        let tag = format!("g{g}");
        peer = PyPeer::start(&["flood", "3", "--tag", &tag, "--port", &port]);
        collect_until(&c, &format!("{tag}:2"), &mut log);
        assert_eq!(status(&c), Var::I4(1));
    }
    // The order: Open, 3 messages, then per restart Close, Reconnecting 1..n, Open, 3 messages.
    let kinds: Vec<&str> = log.iter().map(|(h, _)| kind(h)).collect();
    let mut i = 0;
    for g in 0..=5 {
        if g > 0 {
            assert!(matches!(kinds[i], "Close" | "Fail"), "{g}: {:?}", &log[i..]);
            i += 1;
            let mut attempt = 0;
            while kinds[i] == "Reconnecting" {
                attempt += 1;
                assert!(
                    log[i].0.contains(&format!(r#""Attempt":{attempt},"#)),
                    "{:?}",
                    log[i]
                );
                assert_eq!(log[i].1, "{}");
                i += 1;
            }
            assert!(
                attempt >= 1,
                "a Reconnecting event before Open: {:?}",
                &log[..i]
            );
        }
        assert_eq!(kinds[i], "Open", "{g}: {:?}", &log[i..]);
        i += 1;
        for n in 0..3 {
            assert_eq!(log[i].1, format!("g{g}:{n}"), "{:?}", &log[i..]);
            i += 1;
        }
    }
    assert_eq!(i, log.len());
    // Disconnect ends it: no more reconnecting.
    c.call("Отключиться", &mut []).unwrap();
    assert_eq!(status(&c), Var::I4(0));
    drop(peer);
    // Why a sleep: a reconnect attempt would come within the back-off (at most 400 ms); none
    // may.
    std::thread::sleep(Duration::from_millis(600));
    while let Some((h, _)) = next_event(&c, 50) {
        assert!(!h.contains("Reconnecting"), "{h}");
    }
    finish(c);
}

#[test]
fn reconnect_gives_up_after_max_attempts_and_stops_on_disconnect() {
    let _g = serial();
    let peer = PyPeer::start(&["echo"]);
    let c = create_with("Client", job());
    let opts = r#"{"reconnect": {"enabled": true, "min_delay_ms": 50, "max_delay_ms": 100, "max_attempts": 2}}"#;
    connect(&c, &peer.url("/"), opts).unwrap();
    drop(peer);
    let mut kinds = Vec::new();
    let fail = loop {
        let (h, d) = next_event(&c, 5000).expect("events until the last Fail");
        kinds.push(kind(&h));
        if kinds.len() > 2 && kind(&h) == "Fail" {
            break d;
        }
    };
    assert_eq!(kinds[0], "Open");
    assert!(matches!(kinds[1], "Close" | "Fail"), "{kinds:?}");
    assert_eq!(&kinds[2..], ["Reconnecting", "Reconnecting", "Fail"]);
    assert!(fail.contains("reconnect failed after 2 attempts"), "{fail}");
    assert!(fail.contains("refused"), "{fail}");
    assert_eq!(status(&c), Var::I4(-1));

    // Disconnect during a long back-off: status 0 at once, nothing more arrives.
    let peer = PyPeer::start(&["echo"]);
    let opts = r#"{"reconnect": {"enabled": true, "min_delay_ms": 60000, "max_delay_ms": 60000}}"#;
    connect(&c, &peer.url("/"), opts).unwrap();
    drop(peer);
    let t = Instant::now();
    while status(&c) != Var::I4(2) {
        assert!(t.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(10));
    }
    let t = Instant::now();
    c.call("Отключиться", &mut []).unwrap();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(status(&c), Var::I4(0));
    finish(c);

    // Destroyed in the middle of a back-off, in push mode: Done is quick and nothing is
    // raised after it.
    let c = create_with("Client", HostOptions::default());
    let peer = PyPeer::start(&["echo"]);
    let opts = r#"{"reconnect": {"enabled": true, "min_delay_ms": 50, "max_delay_ms": 50}}"#;
    connect(&c, &peer.url("/"), opts).unwrap();
    drop(peer);
    let conn = c.conn();
    let t = Instant::now();
    while !conn
        .events_snapshot()
        .iter()
        .any(|e| e.message.contains(r#""Attempt":3"#))
    {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{:?}",
            conn.events_snapshot()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let t = Instant::now();
    finish(c);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "Done took {:?}",
        t.elapsed()
    );
}

#[test]
fn the_log_tells_what_happened_without_bodies_and_never_breaks_the_connection() {
    let _g = serial();
    let pki = TestPki::new();
    let ca = json(pki.ca.to_str().unwrap());
    let peer = tls_echo(&pki.cert, &pki.key, &[]);
    let path = pki.dir.join("client.log");
    let c = create_with("Client", job());
    let opts = format!(
        r#"{{"tls": {{"ca_file": "{ca}"}}, "log_file": "{}", "log_level": "debug", "reconnect": {{"enabled": true, "min_delay_ms": 50, "max_attempts": 1}}}}"#,
        json(path.to_str().unwrap())
    );
    connect(&c, &format!("wss://localhost:{}/", peer.port), &opts).unwrap();
    echo(&c, "секретное-тело");
    drop(peer);
    let t = Instant::now();
    while status(&c) != Var::I4(-1) {
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", status(&c));
        std::thread::sleep(Duration::from_millis(20));
    }
    finish(c);
    let log = common::read_log(&path, "gave up after");
    for needle in [
        "connect wss://localhost",
        "resolved localhost to",
        "tcp connected to 127.0.0.1:",
        "server certificate subject",
        ": verified",
        "handshake: HTTP 101",
        &format!("message in: text {} bytes", "секретное-тело".len()),
        "closed: 1006",
        "reconnect attempt 1 in 50 ms",
        "reconnect attempt 1 failed",
        "gave up after 1 attempts",
    ] {
        assert!(log.contains(needle), "no {needle:?} in:\n{log}");
    }
    assert!(!log.contains("секретное"), "a body in the log:\n{log}");

    // A log that cannot be written is no log, not a broken connection.
    let peer = PyPeer::start(&["echo"]);
    let c = create_with("Client", job());
    connect(
        &c,
        &peer.url("/"),
        r#"{"log_file": "/нет/такой/папки/ws.log", "log_level": "debug"}"#,
    )
    .unwrap();
    echo(&c, "без журнала");
    finish(c);
}

#[test]
fn option_mistakes_are_clear_errors() {
    let _g = serial();
    let c = create_with("Client", job());
    for (opts, needle) in [
        (
            r#"{"proxy": "127.0.0.1:3128"}"#,
            "ключ proxy: неверный адрес прокси «127.0.0.1:3128»; ожидается http://",
        ),
        (
            r#"{"reconnect": {"enabled": "да"}}"#,
            "ключ reconnect.enabled: ожидается Булево (true или false), получено \"да\"",
        ),
        (
            r#"{"tls": {"roots": 5}}"#,
            "Параметры подключения: ключ tls.roots: ожидается строка, получено 5",
        ),
        (
            r#"{"ping_interval_ms": -1}"#,
            "ключ ping_interval_ms: ожидается целое неотрицательное число, получено -1",
        ),
        (
            r#"{"subprotocols": ["a,b"]}"#,
            "ключ subprotocols[0]: ожидается имя подпротокола",
        ),
        (
            r#"{"tls": {"verify": false}}"#,
            "неизвестный параметр «tls.verify»; допустимы: roots, ca_file, insecure,",
        ),
    ] {
        let e = connect(&c, "ws://127.0.0.1:1/", opts).unwrap_err();
        assert!(e.contains(needle), "{opts}: {e}");
        // The same text for ОписаниеОшибки.
        assert_eq!(c.call("ОписаниеОшибки", &mut []).unwrap(), s(&e));
    }
    finish(c);
}

/// A few representative mistakes through the ABI in both interface languages: a wrong type
/// two levels deep, an unknown key, a bad proxy address (issue 15 #6: a port out of range,
/// negative or of 20 digits, an unclosed `[`), nothing Russian in the English texts.
#[test]
fn option_errors_name_the_key_in_the_language_of_the_interface() {
    let _g = serial();
    let english = HostOptions {
        locale: "en_US".into(),
        ui_lang: Some("en".into()),
        ..job()
    };
    let ru = create_with("Client", job());
    let en = create_with("Client", english);
    let cases = [
        (
            r#"{"reconnect": {"max_attempts": "3"}}"#,
            "Параметры подключения: ключ reconnect.max_attempts: ожидается целое неотрицательное число, получено \"3\"",
            "Connection options: key reconnect.max_attempts: expected a whole number, got \"3\"",
        ),
        (
            r#"{"tls": {"ca_file": ["a.pem"]}}"#,
            "Параметры подключения: ключ tls.ca_file: ожидается строка, получено […]",
            "Connection options: key tls.ca_file: expected a string, got […]",
        ),
        (
            r#"{"timeout": 5}"#,
            "Параметры подключения: неизвестный параметр «timeout»; допустимы: timeout_ms, headers,",
            "Connection options: unknown key \"timeout\"; accepted: timeout_ms, headers,",
        ),
        (
            r#"[1]"#,
            "Параметры подключения: ожидается объект JSON, получено […]",
            "Connection options: expected a JSON object, got […]",
        ),
        (
            r#"{"proxy": "http://127.0.0.1:65536"}"#,
            "ключ proxy: неверный адрес прокси «http://127.0.0.1:65536»: нужен порт от 1 до 65535",
            "key proxy: invalid proxy address \"http://127.0.0.1:65536\": a port from 1 to 65535 is required",
        ),
        (
            r#"{"proxy": "socks5://127.0.0.1:-1"}"#,
            "неверный адрес прокси «socks5://127.0.0.1:-1»: нужен порт",
            "invalid proxy address \"socks5://127.0.0.1:-1\": a port",
        ),
        (
            r#"{"proxy": "http://h:12345678901234567890"}"#,
            "неверный адрес прокси «http://h:12345678901234567890»: нужен порт",
            "invalid proxy address \"http://h:12345678901234567890\": a port",
        ),
        (
            r#"{"proxy": "HTTP://user:secret@[::1:3128"}"#,
            "неверный адрес прокси «HTTP://***@[::1:3128»: неверное имя или адрес узла",
            "invalid proxy address \"HTTP://***@[::1:3128\": invalid host name or address",
        ),
    ];
    for (opts, in_ru, in_en) in cases {
        let e = connect(&ru, "ws://127.0.0.1:1/", opts).unwrap_err();
        assert!(e.contains(in_ru), "{opts}: {e}");
        let e = connect(&en, "ws://127.0.0.1:1/", opts).unwrap_err();
        assert!(e.contains(in_en), "{opts}: {e}");
        assert!(
            !e.chars().any(|c| ('\u{400}'..='\u{4ff}').contains(&c)),
            "Russian in an English text: {e}"
        );
        assert!(!e.contains("secret"), "{e}");
    }
    // The scheme in any letter case: the address is taken, the proxy (not there) refuses.
    let e = connect(
        &en,
        "ws://127.0.0.1:1/",
        &format!(
            r#"{{"proxy": "SOCKS5://127.0.0.1:{}", "timeout_ms": 2000}}"#,
            free_port()
        ),
    )
    .unwrap_err();
    assert!(!e.contains("invalid proxy address"), "{e}");
    finish(ru);
    finish(en);
}

#[test]
fn an_oversized_message_fails_the_connection_with_a_clear_reason() {
    let _g = serial();
    let peer = PyPeer::start(&["echo"]);
    let c = create_with("Client", job());
    let opts = r#"{"max_message_size": 1024, "read_buffer_size": 256, "write_buffer_size": 1024}"#;
    connect(&c, &peer.url("/"), opts).unwrap();
    echo(&c, &"a".repeat(1024));
    // Sending is not limited by max_message_size (it bounds what arrives).
    c.call("Отправить", &mut [s(&"b".repeat(4000))]).unwrap();
    let fail = loop {
        let (h, d) = next_event(&c, 5000).expect("a Fail event");
        if h.contains(r#""State":"Fail""#) {
            break d;
        }
    };
    assert!(fail.contains("incoming message too large"), "{fail}");
    assert!(fail.contains("max_message_size"), "{fail}");
    assert_eq!(status(&c), Var::I4(-1));
    finish(c);
}
