//! The add-in side: `libwebsocket1c.so` loaded by the emulated platform (`ws1c-host`) and
//! driven through the C ABI from a tight loop on this thread, as 1C code would drive it.
//!
//! Hot loops call by member index (`raw_call_with`), as the platform does once it has
//! resolved a name; every call still converts its arguments to `tVariant`s, reads the
//! by-reference results back and frees them through the host's counting memory manager.

use std::time::{Duration, Instant};

use ws1c_host::{Host, HostOptions, Obj, Prepared, Var};

use crate::{Cfg, Gen, Meter, PAYLOAD, percentile, rss_kib, sample_in_background};

/// Loads the add-in (`$WS1C_ADDIN` or `target/release/libwebsocket1c.so`).
pub fn load() -> Host {
    let host = Host::load_default();
    host.set_platform_capabilities(3);
    host
}

/// A method resolved once: its index and whether it is called as a function.
#[derive(Clone, Copy)]
struct Method {
    idx: i64,
    func: bool,
}

fn method(obj: &Obj, name: &str) -> Method {
    let idx = obj.find_method(name);
    assert!(idx >= 0, "no method {name}");
    Method {
        idx,
        func: obj.has_ret_val(idx),
    }
}

fn invoke(obj: &Obj, m: Method, args: &mut [Var]) -> Var {
    let n = args.len() as i64;
    obj.raw_call_with(m.idx, args, n, m.func)
        .unwrap_or(Var::Bool(false))
}

/// A call with arguments prepared once ([`Prepared`]): what is timed is the add-in, not the
/// emulator re-encoding the same string on every call (as a 1C loop passes the same value).
fn call(p: &mut Prepared<'_>, m: Method) -> Var {
    p.call(m.idx, m.func).unwrap_or(Var::Bool(false))
}

fn s(v: &str) -> Var {
    Var::Str(v.to_owned())
}

fn push_options() -> HostOptions {
    // A thin client (events delivered); the loop drains them as fast as they come, so the
    // emulated event buffer never hoards.
    HostOptions::default()
}

/// A server object listening on 127.0.0.1 (wss with `tls`): (object, port).
fn server(cfg: &Cfg, host: &Host, push: bool, options: &str, tls: bool) -> (Obj, u16) {
    let opts = if push {
        push_options()
    } else {
        HostOptions::server()
    };
    let obj = host.create("Server", opts).expect("create Server");
    if push {
        obj.set("РежимДоставки", s("События")).expect("mode");
    }
    obj.call("Настроить", &mut [s(options)]).expect("Настроить");
    let mut args = vec![s("127.0.0.1"), Var::I4(0)];
    if tls {
        args.push(s(&cfg.pki.join("cert.pem").to_string_lossy()));
        args.push(s(&cfg.pki.join("key.pem").to_string_lossy()));
    }
    assert_eq!(
        obj.call("Запустить", &mut args).expect("Запустить"),
        Var::Bool(true)
    );
    let port = obj.get("Порт").ok().and_then(|p| p.as_f64()).unwrap_or(0.0) as u16;
    (obj, port)
}

fn client(host: &Host, push: bool, url: &str, options: &str) -> Obj {
    let opts = if push {
        push_options()
    } else {
        HostOptions::server()
    };
    let obj = host.create("Client", opts).expect("create Client");
    if push {
        obj.set("РежимДоставки", s("События")).expect("mode");
    }
    obj.call("Подключиться", &mut [s(url), s(options)])
        .expect("Подключиться");
    obj
}

fn wait_for(what: impl Fn() -> bool, limit: Duration) {
    let t = Instant::now();
    while !what() && t.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn count_prop(obj: &Obj, prop: &str) -> u64 {
    obj.get(prop).ok().and_then(|v| v.as_f64()).unwrap_or(0.0) as u64
}

/// Takes pushed events until the meter stops; counts the messages. Like the platform's
/// idle loop, it takes whatever the event buffer holds, then comes back a millisecond
/// later rather than being woken for every event.
fn drain_pushed(obj: &Obj, meter: &Meter) {
    let conn = obj.conn();
    while !meter.stopped() {
        let evs = conn.take_events();
        if evs.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let n = evs
            .iter()
            .filter(|e| {
                // The Socket.IO object's headers have ROM-SocketIO's spacing.
                e.message.starts_with("{\"Event\":\"Message\"")
                    || e.message.starts_with("{\"Event\": \"Message\"")
            })
            .count();
        meter.add(n as u64);
    }
}

const SERVER_OPTIONS: &str = r#"{"max_connections": 100000}"#;

/// Scenario 1 (pull: `Принять` in a loop) and 4 (push: `ExternalEvent`).
pub fn server_ingest(cfg: &Cfg, host: &Host, n: usize, push: bool) -> f64 {
    let (obj, port) = server(cfg, host, push, SERVER_OPTIONS, false);
    let load = Gen::start(
        cfg,
        "flood-clients",
        &[format!("ws://127.0.0.1:{port}/"), n.to_string()],
    );
    let meter = Meter::new();
    let m = meter.clone();
    let sampler = sample_in_background(cfg, meter.clone(), move || {
        m.n.load(std::sync::atomic::Ordering::Relaxed)
    });
    if push {
        drain_pushed(&obj, &meter);
    } else {
        let receive = method(&obj, "Принять");
        let mut args = obj.prepare(&[Var::I4(1000), Var::Empty, Var::Empty]);
        while !meter.stopped() {
            if call(&mut args, receive) == Var::Bool(true) {
                meter.add(1);
            }
        }
    }
    let rate = sampler.join().unwrap_or(f64::NAN);
    drop(load);
    drop(obj);
    rate
}

/// Scenario 2: `Отправить` round robin to `n` reading clients, or `ОтправитьВсем`.
pub fn server_egress(cfg: &Cfg, host: &Host, n: usize, all: bool) -> f64 {
    let (obj, port) = server(cfg, host, false, SERVER_OPTIONS, false);
    let load = std::sync::Arc::new(Gen::start(
        cfg,
        "sink-clients",
        &[format!("ws://127.0.0.1:{port}/"), n.to_string()],
    ));
    wait_for(
        || count_prop(&obj, "КоличествоСоединений") >= n as u64,
        Duration::from_secs(10),
    );
    let meter = Meter::new();
    let g = load.clone();
    let sampler = sample_in_background(cfg, meter.clone(), move || g.count());
    if all {
        let broadcast = method(&obj, "ОтправитьВсем");
        let mut args = obj.prepare(&[s(PAYLOAD)]);
        while !meter.stopped() {
            call(&mut args, broadcast);
        }
    } else {
        let send = method(&obj, "Отправить");
        let mut args = obj.prepare(&[Var::I4(1), s(PAYLOAD)]);
        let mut id = 0;
        while !meter.stopped() {
            args.set(0, Var::I4(id % n as i32 + 1));
            id += 1;
            call(&mut args, send);
        }
    }
    let rate = sampler.join().unwrap_or(f64::NAN);
    drop(obj);
    drop(load);
    rate
}

/// Scenario 3 (pull: `Получить` in a loop) and 4 (push).
pub fn client_ingest(cfg: &Cfg, host: &Host, push: bool) -> f64 {
    let load = Gen::start(cfg, "flood-server", &[]);
    let obj = client(host, push, &format!("ws://127.0.0.1:{}/", load.first), "");
    let meter = Meter::new();
    let m = meter.clone();
    let sampler = sample_in_background(cfg, meter.clone(), move || {
        m.n.load(std::sync::atomic::Ordering::Relaxed)
    });
    if push {
        drain_pushed(&obj, &meter);
    } else {
        let receive = method(&obj, "Получить");
        let mut args = obj.prepare(&[Var::I4(1000), Var::Empty]);
        while !meter.stopped() {
            if call(&mut args, receive) == Var::Bool(true) {
                meter.add(1);
            }
        }
    }
    let rate = sampler.join().unwrap_or(f64::NAN);
    drop(obj);
    drop(load);
    rate
}

/// Scenario 9: event ingest of `class` (`SocketIO` against a Socket.IO flood server,
/// subscribed to its event; `Client` against the plain flood server), by `ПолучитьСобытие`
/// in a loop (pull) or `ExternalEvent` (push).
pub fn event_ingest(cfg: &Cfg, host: &Host, class: &str, push: bool) -> f64 {
    let sio = class == "SocketIO";
    let load = Gen::start(
        cfg,
        if sio {
            "sio-flood-server"
        } else {
            "flood-server"
        },
        &[],
    );
    let opts = if push {
        push_options()
    } else {
        HostOptions::server()
    };
    let obj = host.create(class, opts).expect("create");
    if push {
        obj.set("РежимДоставки", s("События")).expect("mode");
    }
    if sio {
        obj.call("Подписаться", &mut [s("tick")])
            .expect("Подписаться");
    }
    let url = format!("ws://127.0.0.1:{}/", load.first);
    obj.call("Подключиться", &mut [s(&url), s("")])
        .expect("Подключиться");
    let meter = Meter::new();
    let m = meter.clone();
    let sampler = sample_in_background(cfg, meter.clone(), move || {
        m.n.load(std::sync::atomic::Ordering::Relaxed)
    });
    if push {
        drain_pushed(&obj, &meter);
    } else {
        let receive = method(&obj, "ПолучитьСобытие");
        let mut args = obj.prepare(&[Var::I4(1000), Var::Empty, Var::Empty]);
        while !meter.stopped() {
            if call(&mut args, receive) == Var::Bool(true) {
                meter.add(1);
            }
        }
    }
    let rate = sampler.join().unwrap_or(f64::NAN);
    drop(obj);
    drop(load);
    rate
}

/// Scenario 5: `Отправить` then `Получить(0)` against an echo server; p50 and p99 in µs.
pub fn round_trip(cfg: &Cfg, host: &Host) -> [f64; 2] {
    let load = Gen::start(cfg, "echo-server", &[]);
    let obj = client(host, false, &format!("ws://127.0.0.1:{}/", load.first), "");
    let (send, receive) = (method(&obj, "Отправить"), method(&obj, "Получить"));
    let mut args = obj.prepare(&[Var::I4(0), Var::Empty]);
    let mut text = obj.prepare(&[s(PAYLOAD)]);
    let start = Instant::now();
    let mut lat = Vec::new();
    while start.elapsed() < cfg.warmup + cfg.window {
        let t = Instant::now();
        call(&mut text, send);
        if call(&mut args, receive) != Var::Bool(true) {
            break;
        }
        if start.elapsed() > cfg.warmup {
            lat.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    lat.sort_by(f64::total_cmp);
    drop((args, text));
    drop(obj);
    drop(load);
    [percentile(&lat, 50.0), percentile(&lat, 99.0)]
}

fn per_call(calls: usize, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..calls {
        f();
    }
    t.elapsed().as_nanos() as f64 / calls as f64
}

/// Scenario 6: ns per call on the 1C thread, with the data already waiting (receives) or
/// the queue roomy (sends).
pub fn call_costs(cfg: &Cfg, host: &Host) -> Vec<(String, f64)> {
    let calls = cfg.calls;
    let mut out = Vec::new();
    // Room for the warm-up and the measured calls: `Отправить` never waits for the writer.
    let warm = calls / 4;
    let roomy = format!(
        r#"{{"max_connections": 100000, "send_queue": {}}}"#,
        calls + warm + 16
    );
    // Принять: `calls` messages wait in the pull queue.
    {
        let (obj, port) = server(cfg, host, false, &roomy, false);
        obj.set("РазмерОчереди", Var::I4(calls as i32 + 16))
            .expect("capacity");
        let load = Gen::start(
            cfg,
            "flood-clients",
            &[
                format!("ws://127.0.0.1:{port}/"),
                "1".into(),
                calls.to_string(),
            ],
        );
        wait_for(
            || count_prop(&obj, "ВОчереди") > calls as u64,
            Duration::from_secs(60),
        );
        let empty = method(&obj, "ОписаниеОшибки");
        let mut none = obj.prepare(&[]);
        out.push((
            "6. empty call (ОписаниеОшибки), ns".to_owned(),
            per_call(calls, || {
                call(&mut none, empty);
            }),
        ));
        let receive = method(&obj, "Принять");
        let mut args = obj.prepare(&[Var::I4(1000), Var::Empty, Var::Empty]);
        out.push((
            "6. Принять, 64-byte message waiting, ns".to_owned(),
            per_call(calls, || {
                call(&mut args, receive);
            }),
        ));
        drop(args);
        drop(none);
        drop(load);
        // Отправить to a client that reads nothing: the queue has room for every call.
        let load = Gen::start(
            cfg,
            "silent-clients",
            &[format!("ws://127.0.0.1:{port}/"), "1".into()],
        );
        wait_for(
            || count_prop(&obj, "КоличествоСоединений") >= 1,
            Duration::from_secs(10),
        );
        let id = 2;
        let send = method(&obj, "Отправить");
        // The peer reads nothing and its buffer is tiny: once the writer has filled the
        // socket it sleeps, and what is timed is the call alone.
        let mut args = obj.prepare(&[Var::I4(id), s(PAYLOAD)]);
        for _ in 0..warm {
            call(&mut args, send);
        }
        std::thread::sleep(Duration::from_millis(200));
        out.push((
            "6. Отправить (server), ns".to_owned(),
            per_call(calls, || {
                call(&mut args, send);
            }),
        ));
        drop(args);
        drop(obj);
        drop(load);
    }
    // ПринятьОт: 10,000 messages of connection 1 wait ahead of and among connection 2's;
    // each measured call takes one of connection 2's (the first call, which builds the
    // per-connection index, is left out).
    {
        let others = 10_000usize;
        let mine = calls.min(others);
        let (obj, port) = server(cfg, host, false, SERVER_OPTIONS, false);
        obj.set("РазмерОчереди", Var::I4(2 * others as i32 + 16))
            .expect("capacity");
        let load = Gen::start(
            cfg,
            "flood-clients",
            &[
                format!("ws://127.0.0.1:{port}/"),
                "2".into(),
                others.to_string(),
            ],
        );
        // Both connections' messages and their two open events.
        wait_for(
            || count_prop(&obj, "ВОчереди") >= (2 * others + 2) as u64,
            Duration::from_secs(60),
        );
        let receive_from = method(&obj, "ПринятьОт");
        let mut args = obj.prepare(&[Var::I4(2), Var::I4(1000), Var::Empty]);
        call(&mut args, receive_from);
        out.push((
            format!("6. ПринятьОт, {others} messages of another connection waiting, ns"),
            per_call(mine - 1, || {
                call(&mut args, receive_from);
            }),
        ));
        drop(args);
        drop(obj);
        drop(load);
    }
    // Получить: `calls` messages wait in the client's pull queue.
    {
        let load = Gen::start(cfg, "flood-server", &[calls.to_string()]);
        let obj = host
            .create("Client", HostOptions::server())
            .expect("create Client");
        obj.set("РазмерОчереди", Var::I4(calls as i32 + 16))
            .expect("capacity");
        obj.call(
            "Подключиться",
            &mut [s(&format!("ws://127.0.0.1:{}/", load.first)), s("")],
        )
        .expect("Подключиться");
        wait_for(
            || count_prop(&obj, "ВОчереди") > calls as u64,
            Duration::from_secs(60),
        );
        let receive = method(&obj, "Получить");
        let mut args = obj.prepare(&[Var::I4(1000), Var::Empty]);
        out.push((
            "6. Получить, 64-byte message waiting, ns".to_owned(),
            per_call(calls, || {
                call(&mut args, receive);
            }),
        ));
        drop(args);
        drop(obj);
        drop(load);
    }
    // Отправить from a client to a server that reads nothing.
    {
        let load = Gen::start(cfg, "silent-server", &[]);
        let opts = format!(r#"{{"send_queue": {}}}"#, calls + warm + 16);
        let obj = client(
            host,
            false,
            &format!("ws://127.0.0.1:{}/", load.first),
            &opts,
        );
        let send = method(&obj, "Отправить");
        let mut args = obj.prepare(&[s(PAYLOAD)]);
        for _ in 0..warm {
            call(&mut args, send);
        }
        std::thread::sleep(Duration::from_millis(200));
        out.push((
            "6. Отправить (client), ns".to_owned(),
            per_call(calls, || {
                call(&mut args, send);
            }),
        ));
        drop(args);
        drop(obj);
        drop(load);
    }
    out
}

/// Scenario 7 in a fresh process: `n` idle connections to a pull server; (held, KiB each).
pub fn idle(cfg: &Cfg, n: usize) -> (f64, f64) {
    let host = load();
    let (obj, port) = server(cfg, &host, false, SERVER_OPTIONS, false);
    let event = method(&obj, "ПолучитьСобытие");
    let drain = || {
        let mut args = [Var::I4(1), Var::Empty, Var::Empty];
        while invoke(&obj, event, &mut args) == Var::Bool(true) {}
    };
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_kib();
    let load = Gen::start(
        cfg,
        "idle-clients",
        &[format!("ws://127.0.0.1:{port}/"), n.to_string()],
    );
    wait_for(
        || count_prop(&obj, "КоличествоСоединений") >= load.first,
        Duration::from_secs(20),
    );
    // 1C code takes the Open events; what stays is the connections themselves.
    drain();
    std::thread::sleep(Duration::from_millis(300));
    drain();
    let held = count_prop(&obj, "КоличествоСоединений") as f64;
    let after = rss_kib();
    drop(load);
    std::mem::forget(obj);
    (held, after.saturating_sub(before) as f64 / held.max(1.0))
}

/// Scenario 8: handshakes per second against the add-in's server, ws or wss; the host
/// takes the open/close events as they come.
pub fn handshakes(cfg: &Cfg, host: &Host, tls: bool) -> f64 {
    let (obj, port) = server(cfg, host, false, SERVER_OPTIONS, tls);
    let scheme = if tls { "wss" } else { "ws" };
    let mut args = vec![format!("{scheme}://127.0.0.1:{port}/"), "16".to_owned()];
    if tls {
        args.push(cfg.pki.join("ca.pem").to_string_lossy().into_owned());
    }
    let load = std::sync::Arc::new(Gen::start(cfg, "handshakes", &args));
    let meter = Meter::new();
    let g = load.clone();
    let sampler = sample_in_background(cfg, meter.clone(), move || g.count());
    let event = method(&obj, "ПолучитьСобытие");
    let mut ev = [Var::I4(50), Var::Empty, Var::Empty];
    while !meter.stopped() {
        invoke(&obj, event, &mut ev);
    }
    let rate = sampler.join().unwrap_or(f64::NAN);
    drop(load);
    drop(obj);
    rate
}
