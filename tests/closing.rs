//! Closing connections as 1C code meets it: an id `Отключить` accepted is gone at once,
//! messages `Отправить` accepted but never sent are counted in the `Close` / `Fail` event
//! (`"Unsent"`), and destroying an object with a peer that stopped reading returns within
//! `ТаймаутЗавершения` and logs what could not be sent.

mod common;

use std::time::{Duration, Instant};

use common::{
    FloodPeer, WsServer, create_with, finish, job, job_server, next_event_json, read_log, s,
    serial, wait_until,
};
use ws1c_host::{Obj, Var};

/// A message big enough that a few dozen fill the loopback socket buffers of a peer that
/// does not read (50 of them stay within the 16 MiB send queue).
fn big(i: usize) -> String {
    format!("{i}:{}", "x".repeat(256 * 1024))
}

/// A raw WebSocket client of the add-in's server, in its own thread: connects, waits
/// `quiet` without reading, then either reads to the end (answering the close) or, with
/// `vanish`, drops the socket unread. Returns the texts it read.
fn peer(port: u16, quiet: Duration, vanish: bool) -> std::thread::JoinHandle<Vec<String>> {
    common::in_own_runtime(async move {
        use futures_util::StreamExt;
        let mut ws = common::raw_client(port).await;
        tokio::time::sleep(quiet).await;
        if vanish {
            return Vec::new();
        }
        let mut got = Vec::new();
        while let Some(Ok(m)) = ws.next().await {
            if let Ok(t) = m.to_text()
                && m.is_text()
            {
                got.push(t.to_owned());
            }
        }
        got
    })
}

/// The next event of `obj` whose `State` is `state` (others skipped), within 10 s.
fn next_state(obj: &Obj, state: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some((h, _)) = next_event_json(obj, 500)
            && h["State"] == state
        {
            return h;
        }
    }
    panic!("no {state} event within 10 s");
}

/// Issue 14 §3: from the moment `Отключить` accepts, the id is gone for 1C code, while the
/// close handshake completes in the background and its `Close` event still arrives.
#[test]
fn a_connection_being_closed_is_gone_for_1c_code() {
    let _g = serial();
    let (server, port) = job_server("{}");
    // The peer reads nothing for 1 s: the close handshake cannot end before then.
    let reader = peer(port, Duration::from_secs(1), false);
    let id = next_state(&server, "Open")["Connection"].as_i64().unwrap();
    server
        .call("Отправить", &mut [Var::I4(id as i32), s("до")])
        .unwrap();
    let started = Instant::now();
    let r = server.call(
        "Отключить",
        &mut [Var::I4(id as i32), Var::I4(1000), s("пока")],
    );
    assert_eq!(r.unwrap(), Var::Bool(true));
    let r = server.call("Отключить", &mut [Var::I4(id as i32), Var::I4(1000), s("")]);
    assert_eq!(r.unwrap(), Var::Bool(false), "a second Отключить");
    let r = server.call("Отправить", &mut [Var::I4(id as i32), s("после")]);
    assert_eq!(
        r.unwrap().as_i64(),
        Some(0),
        "Отправить to a closing connection"
    );
    assert_eq!(server.get("Соединения").unwrap(), s(""));
    assert_eq!(
        server.get("КоличествоСоединений").unwrap().as_i64(),
        Some(0)
    );
    let err = server
        .call("ИнформацияОСоединении", &mut [Var::I4(id as i32)])
        .unwrap_err();
    assert!(err.text.contains(&id.to_string()), "{}", err.text);
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "checked while the close was still in progress"
    );
    let close = next_state(&server, "Close");
    assert_eq!(close["Connection"], id);
    assert_eq!(close["Code"], 1000);
    assert!(
        close.get("Unsent").is_none(),
        "nothing left unsent: {close}"
    );
    assert_eq!(
        reader.join().unwrap(),
        ["до"],
        "what was sent before Отключить arrives"
    );
    finish(server);
}

/// Issue 14 §4, server: a peer that vanishes with messages still queued for it gets a
/// `Close`/`Fail` event counting them.
#[test]
fn a_server_connection_that_ends_with_queued_messages_counts_them() {
    let _g = serial();
    let (server, port) = job_server("{}");
    let vanished = peer(port, Duration::from_millis(1500), true);
    let id = next_state(&server, "Open")["Connection"].as_i64().unwrap();
    const SENT: usize = 50;
    for i in 0..SENT {
        let r = server.call("Отправить", &mut [Var::I4(id as i32), s(&big(i))]);
        assert_eq!(r.unwrap().as_i64(), Some(1));
    }
    vanished.join().unwrap();
    let end = loop {
        let (h, _) = next_event_json(&server, 10_000).expect("the end of the connection");
        if h["State"] == "Close" || h["State"] == "Fail" {
            break h;
        }
    };
    let unsent = end["Unsent"].as_u64().unwrap_or(0);
    assert!(
        unsent > 0 && unsent <= SENT as u64,
        "Unsent of {SENT} sent to a peer that read nothing: {end}"
    );
    finish(server);
}

/// Issue 14 §4, client: the same for the client object; `Данные` carries the count too.
#[test]
fn a_client_connection_that_ends_with_queued_messages_counts_them() {
    let _g = serial();
    let server = WsServer::start(|ws| async move {
        // Read nothing, then vanish with the client's data unread.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        drop(ws);
    });
    let c = create_with("Client", job());
    c.call("Подключиться", &mut [s(&server.url())]).unwrap();
    assert_eq!(next_state(&c, "Open")["State"], "Open");
    const SENT: usize = 50;
    for i in 0..SENT {
        c.call("Отправить", &mut [s(&big(i))]).unwrap();
    }
    let (h, data) = loop {
        let (h, d) = next_event_json(&c, 10_000).expect("the end of the connection");
        if h["State"] == "Close" || h["State"] == "Fail" {
            break (h, d);
        }
    };
    let unsent = h["Unsent"].as_u64().unwrap_or(0);
    assert!(unsent > 0 && unsent <= SENT as u64, "{h}");
    let data: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!(data["Unsent"], unsent, "{data}");
    finish(c);
}

/// Issue 14 §4a, the bound: destroying a client whose peer stopped reading returns within
/// `ТаймаутЗавершения` (not the close or send timeouts), and its log says how many
/// messages could not be sent.
#[test]
fn destroying_a_client_whose_peer_stopped_reading_is_bounded_and_logged() {
    let _g = serial();
    let log = std::env::temp_dir().join(format!("ws1c-closing-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let server = FloodPeer::silent();
    let c = create_with("Client", job());
    c.set("ТаймаутЗавершения", Var::I4(1000)).unwrap();
    let options = serde_json::json!({ "log_file": log.to_str().unwrap() }).to_string();
    c.call("Подключиться", &mut [s(&server.url()), s(&options)])
        .unwrap();
    for i in 0..50 {
        c.call("Отправить", &mut [s(&big(i))]).unwrap();
    }
    // Let the writer fill the socket buffers and block.
    wait_until(Duration::from_secs(5), "the writer blocked", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("open"))
    });
    let started = Instant::now();
    finish(c);
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1600), "Done() took {took:?}");
    let text = read_log(&log, "were not sent");
    assert!(
        text.contains("messages accepted by Send were not sent"),
        "log: {text}"
    );
    let _ = std::fs::remove_file(&log);
}
