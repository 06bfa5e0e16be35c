//! What a hostile peer can try against the add-in's server, through the C ABI: a flood of
//! sockets that never finish their handshake, malformed handshakes.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{
    create_with, finish, job, job_server, next_event_json, raw_client, s, serial, server_receive,
};
use ws1c_host::Var;

/// Issue 15 #5: 2,000 sockets that connect and say nothing (more than `max_connections`)
/// neither lock legitimate clients out nor disturb an established one. Before the pending
/// handshakes had their own bound, every new client got HTTP 503 until the handshake
/// timeout.
#[test]
fn a_flood_of_silent_sockets_locks_nobody_out() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let _g = serial();
    let (server, port) = job_server("{}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut established = rt.block_on(raw_client(port));
    assert_eq!(next_event_json(&server, 5000).unwrap().0["State"], "Open");
    const SILENT: usize = 2000;
    let started = Instant::now();
    let silent: Vec<std::net::TcpStream> = (0..SILENT)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let opened = started.elapsed();
    // A legitimate client while the flood is open: served, not answered 503.
    let started = Instant::now();
    let mut fresh = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(5), raw_client(port)).await })
        .expect("a legitimate handshake completes during the flood");
    let handshake = started.elapsed();
    eprintln!(
        "{SILENT} silent sockets opened in {opened:?}; a legitimate handshake took {handshake:?}"
    );
    // Both connections carry messages both ways.
    rt.block_on(established.send(Message::text("старый")))
        .unwrap();
    rt.block_on(fresh.send(Message::text("новый"))).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < 2 && Instant::now() < deadline {
        if let Some((_, data)) = server_receive(&server, 500) {
            got.push(data.as_str().unwrap().to_owned());
        }
    }
    got.sort();
    assert_eq!(got, ["новый", "старый"]);
    let n = server
        .call("ОтправитьВсем", &mut [s("всем")])
        .unwrap()
        .as_i64()
        .unwrap();
    assert_eq!(n, 2, "the two established connections, no silent socket");
    for ws in [&mut established, &mut fresh] {
        let m = rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(5), ws.next()).await })
            .expect("the broadcast arrives")
            .unwrap()
            .unwrap();
        assert_eq!(m, Message::text("всем"));
    }
    drop(silent);
    finish(server);
}

/// Issue 15 #5: `max_pending_handshakes` is an option with a checked range.
#[test]
fn max_pending_handshakes_is_checked() {
    let _g = serial();
    let server = create_with("Server", job());
    let err = server
        .call("Настроить", &mut [s(r#"{"max_pending_handshakes": 0}"#)])
        .unwrap_err();
    assert!(err.text.contains("max_pending_handshakes"), "{}", err.text);
    server
        .call("Настроить", &mut [s(r#"{"max_pending_handshakes": 4}"#)])
        .unwrap();
    finish(server);
}

/// Sends `request` as the raw bytes of an HTTP request and returns the status line and
/// headers of the answer.
fn raw_request(port: u16, request: &str) -> String {
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = tcp.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// Issue 15 #14: malformed handshakes get the status RFC 6455 §4.2 asks for: 400 for a bad
/// request (no key, two keys), 426 with `Sec-WebSocket-Version: 13` for another version.
#[test]
fn malformed_handshakes_get_the_status_rfc_6455_asks_for() {
    let _g = serial();
    let (server, port) = job_server("{}");
    let base = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let other_key = "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n";
    let v13 = "Sec-WebSocket-Version: 13\r\n";
    let good = raw_request(port, &format!("{base}{key}{v13}\r\n"));
    assert!(good.starts_with("HTTP/1.1 101"), "{good}");
    let no_key = raw_request(port, &format!("{base}{v13}\r\n"));
    assert!(no_key.starts_with("HTTP/1.1 400"), "{no_key}");
    let two_keys = raw_request(port, &format!("{base}{key}{other_key}{v13}\r\n"));
    assert!(two_keys.starts_with("HTTP/1.1 400"), "{two_keys}");
    let v8 = raw_request(
        port,
        &format!("{base}{key}Sec-WebSocket-Version: 8\r\n\r\n"),
    );
    assert!(v8.starts_with("HTTP/1.1 426"), "{v8}");
    assert!(
        v8.to_ascii_lowercase()
            .contains("sec-websocket-version: 13"),
        "{v8}"
    );
    let no_upgrade = raw_request(
        port,
        &format!("GET / HTTP/1.1\r\nHost: x\r\n{key}{v13}\r\n"),
    );
    assert!(no_upgrade.starts_with("HTTP/1.1 426"), "{no_upgrade}");
    finish(server);
}

/// Issue 15 #12: a client of the server that never reads holds at most `send_queue_bytes`
/// (16 MiB by default) of queued messages, not `send_queue` messages of any size: with
/// 1 MiB messages `Отправить` raises "queue full" after about 16 of them plus what the
/// socket buffers took, and the process does not grow by the 1 GiB it did before.
#[test]
fn a_peer_that_never_reads_holds_at_most_the_byte_bound() {
    let _g = serial();
    let (server, port) = job_server(r#"{"send_timeout_ms": 300}"#);
    let before = common::rss_kib();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stuck = rt.block_on(raw_client(port));
    let id = next_event_json(&server, 5000).unwrap().0["Connection"]
        .as_i64()
        .unwrap() as i32;
    let mib = "я".repeat(512 * 1024);
    let mut accepted = 0;
    let err = loop {
        match server.call("Отправить", &mut [Var::I4(id), s(&mib)]) {
            Ok(_) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted < 1024, "never refused");
    };
    let peak = common::rss_kib();
    assert!(
        err.text.contains("очередь отправки переполнена"),
        "{}",
        err.text
    );
    assert!(
        (16..=64).contains(&accepted),
        "1 MiB messages accepted before the byte bound: {accepted}"
    );
    drop(stuck);
    let end = loop {
        let (h, _) = next_event_json(&server, 10_000).expect("the end of the connection");
        if h["State"] == "Close" || h["State"] == "Fail" {
            break h;
        }
    };
    assert!(end["Unsent"].as_u64().unwrap_or(0) > 0, "{end}");
    let after = common::rss_kib();
    eprintln!(
        "RSS: {before} KiB before, {peak} KiB with {accepted} MiB accepted, {after} KiB after the connection ended"
    );
    assert!(
        peak.saturating_sub(before) < 200 * 1024,
        "the process grew by {} KiB",
        peak - before
    );
    // The queue's memory goes back to the system when the connection ends (glibc keeps
    // freed large buffers otherwise: the process stayed at its peak).
    assert!(
        after + 8 * 1024 < peak,
        "RSS {after} KiB after the connection ended, {peak} KiB at the peak"
    );
    finish(server);
}
