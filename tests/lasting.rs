//! Issue 16 §1 and §2, through the C ABI: a persistent named client that outlives the
//! objects of scheduled jobs, and a connect that never blocks the form.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use ws1c_host::{HostOptions, Obj, Var};

/// A small xorshift generator: random moments without a dependency, reproducible by seed.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        eprintln!("rng seed {seed}");
        Rng(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A peer that sends "0", "1", … to every connection, a few every millisecond, without end;
/// one sequence across its connections. Returns the server and the next number it would send.
fn numbered_peer() -> (WsServer, Arc<AtomicU64>) {
    let next = Arc::new(AtomicU64::new(0));
    let n = next.clone();
    let server = WsServer::start(move |ws| {
        let n = n.clone();
        async move {
            let (mut tx, mut rx) = ws.split();
            // Reads (and so answers closes) beside the sending.
            let reading = tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });
            loop {
                let i = n.load(Ordering::SeqCst);
                if tx.send(Message::text(i.to_string())).await.is_err() {
                    break;
                }
                // Counted once sent: a number lost with a dying socket is sent again.
                n.store(i + 1, Ordering::SeqCst);
                if i.is_multiple_of(4) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                if reading.is_finished() {
                    break;
                }
            }
        }
    });
    (server, next)
}

fn connect(c: &Obj, url: &str, options: &str) -> Result<Var, ws1c_host::CallError> {
    c.call("Подключиться", &mut [s(url), s(options)])
}

fn status(c: &Obj) -> i64 {
    c.get("Статус").unwrap().as_i64().unwrap()
}

/// Every message `c` holds now (pull), as numbers.
fn take_numbers(c: &Obj, wait_ms: i32, into: &mut Vec<u64>) {
    while let Some(t) = receive_text(c, wait_ms) {
        into.push(t.parse().unwrap_or_else(|_| panic!("not a number: {t}")));
    }
}

/// Issue 16 §1: 20 scheduled-job objects attach, read for a random while and die, while the
/// peer never stops sending; what they received together is every number from 0 on, once
/// each, in order.
#[test]
fn a_persistent_client_outlives_twenty_job_objects_and_loses_nothing() {
    let _g = serial();
    let (peer, _next) = numbered_peer();
    let url = peer.url();
    let opts = r#"{"persistent": {"name": "телефония"}}"#;
    let mut rng = Rng::seeded();
    let mut got = Vec::new();
    for cycle in 0..20 {
        let job = create_with("Client", job());
        let r = connect(&job, &url, opts).unwrap_or_else(|e| panic!("cycle {cycle}: {}", e.text));
        assert_eq!(r, Var::Bool(true), "cycle {cycle}: open");
        assert_eq!(status(&job), 1, "cycle {cycle}");
        let until = Instant::now() + Duration::from_millis(rng.below(40));
        while Instant::now() < until {
            if let Some(t) = receive_text(&job, 5) {
                got.push(t.parse::<u64>().unwrap());
            }
        }
        // The job can also send at once after attaching.
        job.call("Отправить", &mut [s(&format!("цикл {cycle}"))])
            .unwrap();
        finish(job);
        // Nobody attached: what arrives now waits for the next object.
        std::thread::sleep(Duration::from_millis(rng.below(30)));
    }
    let last = create_with("Client", job());
    assert_eq!(connect(&last, &url, opts).unwrap(), Var::Bool(true));
    let until = Instant::now() + Duration::from_millis(100);
    while Instant::now() < until {
        if let Some(t) = receive_text(&last, 5) {
            got.push(t.parse::<u64>().unwrap());
        }
    }
    last.call("Отключиться", &mut []).unwrap();
    take_numbers(&last, 50, &mut got);
    assert_eq!(status(&last), 0);
    finish(last);
    assert!(got.len() > 100, "only {} messages", got.len());
    let expected: Vec<u64> = (0..got.len() as u64).collect();
    if got != expected {
        let first_bad = got.iter().zip(&expected).position(|(a, b)| a != b);
        panic!(
            "the union is not 0..{} in order: first difference at {first_bad:?}",
            got.len()
        );
    }
    // Disconnect ended it for good: the next object dials a new connection (a new
    // sequence position, not the old queue).
    let fresh = create_with("Client", job());
    assert_eq!(connect(&fresh, &url, opts).unwrap(), Var::Bool(true));
    let first = receive_text(&fresh, 5000).expect("a message on the new connection");
    assert!(first.parse::<u64>().unwrap() >= got.len() as u64);
    fresh.call("Отключиться", &mut []).unwrap();
    finish(fresh);
    assert_memory_clean();
}

/// The peer of the reconnect test: greets, then echoes texts.
fn greeting_restartable() -> RestartablePeer {
    RestartablePeer::start(|mut ws| async move {
        let _ = ws.send(Message::text("привет")).await;
        while let Some(Ok(m)) = ws.next().await {
            if m.is_text() && ws.send(m).await.is_err() {
                return;
            }
        }
    })
}

/// Issue 16 §1: the server dies while no job is attached; the listener reconnects on its
/// own, and the next job sees Close, Reconnecting and Open, then talks at once.
#[test]
fn a_persistent_listener_reconnects_while_no_job_is_attached() {
    let _g = serial();
    let mut peer = greeting_restartable();
    let opts = r#"{"persistent": {"name": "обмен"}, "reconnect": {"enabled": true, "min_delay_ms": 50, "max_delay_ms": 200}}"#;
    let first = create_with("Client", job());
    assert_eq!(connect(&first, &peer.url(), opts).unwrap(), Var::Bool(true));
    assert_eq!(receive_text(&first, 5000).as_deref(), Some("привет"));
    finish(first);
    peer.down();
    std::thread::sleep(Duration::from_millis(300));
    peer.up();
    std::thread::sleep(Duration::from_millis(600));
    let second = create_with("Client", job());
    let r = connect(&second, &peer.url(), opts).unwrap();
    assert_eq!(r, Var::Bool(true), "reconnected while nobody was attached");
    let mut states = Vec::new();
    while let Some((h, data)) = next_event_json(&second, 500) {
        match h["Event"].as_str() {
            Some("Connection") => states.push(h["State"].as_str().unwrap().to_owned()),
            Some("Message") => states.push(format!("message {data}")),
            other => panic!("{other:?}"),
        }
    }
    let close = states
        .iter()
        .position(|s| s == "Close" || s == "Fail")
        .expect("the drop is reported");
    let reconnecting = states
        .iter()
        .position(|s| s == "Reconnecting")
        .expect("Reconnecting");
    let open = states.iter().rposition(|s| s == "Open").expect("Open");
    assert!(close < reconnecting && reconnecting < open, "{states:?}");
    assert_eq!(states.last().map(String::as_str), Some("message привет"));
    second.call("Отправить", &mut [s("эхо")]).unwrap();
    assert_eq!(receive_text(&second, 5000).as_deref(), Some("эхо"));
    second.call("Отключиться", &mut []).unwrap();
    finish(second);
}

/// Issue 16 §1: one object at a time (the same rule as persistent servers), another address
/// under the same name is refused, and no refused object reports a state of the other's.
#[test]
fn a_persistent_client_is_held_by_one_object_for_one_address() {
    let _g = serial();
    let peer = echo_server();
    let other = echo_server();
    let opts = r#"{"persistent": {"name": "один"}}"#;
    let first = create_with("Client", job());
    assert_eq!(connect(&first, &peer.url(), opts).unwrap(), Var::Bool(true));
    let second = create_with("Client", job());
    let e = connect(&second, &peer.url(), opts).unwrap_err();
    assert!(
        e.text.contains("уже используется другим объектом"),
        "{}",
        e.text
    );
    assert_eq!(status(&second), 0);
    let e = second
        .call("Отправить", &mut [s("x")])
        .expect_err("not attached");
    assert!(e.text.contains("Нет подключения"), "{}", e.text);
    let e = connect(&second, &other.url(), opts).unwrap_err();
    assert!(e.text.contains("с другим адресом"), "{}", e.text);
    finish(first);
    let e = connect(&second, &other.url(), opts).unwrap_err();
    assert!(e.text.contains("с другим адресом"), "{}", e.text);
    assert_eq!(
        connect(&second, &peer.url(), opts).unwrap(),
        Var::Bool(true)
    );
    second.call("Отправить", &mut [s("эхо")]).unwrap();
    assert_eq!(receive_text(&second, 5000).as_deref(), Some("эхо"));
    second.call("Отключиться", &mut []).unwrap();
    finish(second);
}

/// The add-in's threads named `prefix…` (`ws1c-push`: pushers, one per hub that has one).
fn addin_threads(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|t| t.ok())
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.starts_with(prefix))
                })
                .count()
        })
        .unwrap_or(0)
}

/// Issue 16 §1: `idle_expiry_ms` ends a persistent client nobody attached to: its socket
/// closes (with 1001) and its threads are gone.
#[test]
fn an_idle_persistent_client_expires_and_frees_its_socket_and_threads() {
    let _g = serial();
    // The close codes the peer received, one per connection, in order.
    let closes = Arc::new(std::sync::Mutex::new(Vec::<Option<u16>>::new()));
    let c = closes.clone();
    let peer = WsServer::start(move |mut ws| {
        let c = c.clone();
        async move {
            let mut code = None;
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Close(f) = m {
                    code = f.map(|f| u16::from(f.code));
                }
            }
            c.lock().unwrap().push(code);
        }
    });
    // Keeps the runtime up, so that the count compares like with like.
    let keeper = create_with("Client", job());
    assert_eq!(
        connect(&keeper, &echo_server_url(), "").unwrap(),
        Var::Bool(true)
    );
    // Runtime workers are shared by every object (and its blocking pool lingers for
    // seconds after a name lookup), so what a persistent client adds is its pusher.
    // A new thread takes its name from inside itself, a moment after it exists.
    std::thread::sleep(Duration::from_millis(200));
    let baseline = addin_threads("ws1c-push");
    let opts = r#"{"persistent": {"name": "ненадолго", "idle_expiry_ms": 300}}"#;
    let job1 = create_with("Client", job());
    assert_eq!(connect(&job1, &peer.url(), opts).unwrap(), Var::Bool(true));
    // The object's own pusher and the persistent client's.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(addin_threads("ws1c-push"), baseline + 2);
    finish(job1);
    wait_until(Duration::from_secs(5), "the peer to see the close", || {
        !closes.lock().unwrap().is_empty()
    });
    assert_eq!(closes.lock().unwrap()[0], Some(1001), "going away");
    let t0 = Instant::now();
    wait_until(Duration::from_secs(15), "threads back to baseline", || {
        addin_threads("ws1c-push") == baseline
    });
    eprintln!("pusher gone after {:?}", t0.elapsed());
    // The name is free again: a new object dials anew.
    let job2 = create_with("Client", job());
    assert_eq!(connect(&job2, &peer.url(), opts).unwrap(), Var::Bool(true));
    job2.call("Отключиться", &mut []).unwrap();
    finish(job2);
    keeper.call("Отключиться", &mut []).unwrap();
    finish(keeper);
}

fn echo_server_url() -> String {
    static ECHO: std::sync::OnceLock<WsServer> = std::sync::OnceLock::new();
    ECHO.get_or_init(echo_server).url()
}

/// A TCP listener that accepts and then never says a word: a handshake that never ends.
fn silent_tcp() -> (u16, std::thread::JoinHandle<()>, Arc<AtomicBool>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    l.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let t = std::thread::spawn(move || {
        let mut held = Vec::new();
        while !st.load(Ordering::SeqCst) {
            match l.accept() {
                Ok((s, _)) => held.push(s),
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    });
    (port, t, stop)
}

/// Issue 16 §2: `НачатьПодключение` returns at once, `Статус` is 3 while connecting,
/// `Отправить` raises a clear text, and the outcome arrives as a Fail event (pushed to the
/// form's handler on a thin client in the default mode) with the very text the blocking
/// call raises.
#[test]
fn begin_connect_returns_at_once_and_reports_the_outcome_as_an_event() {
    let _g = serial();
    let (port, thread, stop) = silent_tcp();
    let url = format!("ws://127.0.0.1:{port}/");
    let opts = r#"{"timeout_ms": 400}"#;

    let blocking = create_with("Client", job());
    let raised = connect(&blocking, &url, opts).unwrap_err().text;
    finish(blocking);

    let form = create("Client");
    let conn = form.conn();
    let t = Instant::now();
    form.call_proc("НачатьПодключение", &mut [s(&url), s(opts)])
        .unwrap();
    let took = t.elapsed();
    assert!(took < Duration::from_millis(5), "took {took:?}");
    assert_eq!(status(&form), 3);
    let e = form.call("Отправить", &mut [s("рано")]).unwrap_err();
    assert!(e.text.contains("Подключение ещё выполняется"), "{}", e.text);
    let e = connect(&form, &url, opts).unwrap_err();
    assert!(e.text.contains("Подключение ещё выполняется"), "{}", e.text);
    assert!(conn.wait_events(1, Duration::from_secs(5)), "a Fail event");
    let ev = conn.take_events().remove(0);
    let h: serde_json::Value = serde_json::from_str(&ev.message).unwrap();
    assert_eq!(h["State"], "Fail", "{}", ev.message);
    assert_eq!(h["Error"].as_str(), Some(raised.as_str()));
    assert_eq!(status(&form), -1);

    // Success: 3 → Open event → 1, and then it talks.
    form.call_proc("НачатьПодключение", &mut [s(&echo_server_url()), s("")])
        .unwrap();
    assert!(conn.wait_events(1, Duration::from_secs(5)), "an Open event");
    let ev = conn.take_events().remove(0);
    assert!(ev.message.contains(r#""State":"Open""#), "{}", ev.message);
    assert_eq!(status(&form), 1);
    form.call("Отправить", &mut [s("эхо")]).unwrap();
    assert!(conn.wait_events(1, Duration::from_secs(5)));
    assert_eq!(conn.take_events().remove(0).data, "эхо");
    // `Отключиться(, , Ложь)` returns at once too; the Close event follows.
    let t = Instant::now();
    form.call_proc("Отключиться", &mut [Var::I4(1000), s(""), Var::Bool(false)])
        .unwrap();
    assert!(t.elapsed() < Duration::from_millis(5), "{:?}", t.elapsed());
    let e = form.call("Отправить", &mut [s("поздно")]).unwrap_err();
    assert!(e.text.contains("Нет подключения"), "{}", e.text);
    assert!(conn.wait_events(1, Duration::from_secs(5)), "a Close event");
    let ev = conn.take_events().remove(0);
    assert!(ev.message.contains(r#""State":"Close""#), "{}", ev.message);
    assert_eq!(status(&form), 0);
    finish(form);

    // Pull: a scheduled job reads the same outcome with ПолучитьСобытие.
    let job = create_with("Client", job());
    job.call_proc("НачатьПодключение", &mut [s(&url), s(opts)])
        .unwrap();
    let (h, _) = next_event_json(&job, 5000).expect("Fail");
    assert_eq!(h["State"], "Fail");
    assert_eq!(h["Error"].as_str(), Some(raised.as_str()));
    finish(job);
    stop.store(true, Ordering::SeqCst);
    thread.join().unwrap();
}

/// Issue 16 §2: begin-connect, then the object dies at a random moment (before, during and
/// after the handshake; against a silent server and a live one): no call into the
/// platform after `Done()`, ever.
#[test]
fn begin_connect_then_destroy_at_random_moments() {
    let _g = serial();
    let (port, thread, stop) = silent_tcp();
    let silent = format!("ws://127.0.0.1:{port}/");
    let live = greeting_server();
    let mut rng = Rng::seeded();
    for i in 0..50 {
        let opts = if i % 3 == 0 {
            HostOptions::server()
        } else {
            HostOptions::default()
        };
        let c = create_with("Client", opts);
        let url = if i % 2 == 0 {
            silent.clone()
        } else {
            live.url()
        };
        c.call_proc(
            "НачатьПодключение",
            &mut [s(&url), s(r#"{"timeout_ms": 50}"#)],
        )
        .unwrap();
        std::thread::sleep(Duration::from_micros(rng.below(60_000)));
        if rng.below(4) == 0 {
            c.call_proc("Отключиться", &mut [Var::I4(1000), s(""), Var::Bool(false)])
                .unwrap();
        }
        let conn = c.conn();
        let t = Instant::now();
        finish(c);
        assert!(
            t.elapsed() < Duration::from_secs(6),
            "Done took {:?}",
            t.elapsed()
        );
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(conn.calls_after_done(), 0, "iteration {i}");
    }
    assert_eq!(host().calls_after_done(), 0);
    stop.store(true, Ordering::SeqCst);
    thread.join().unwrap();
}
