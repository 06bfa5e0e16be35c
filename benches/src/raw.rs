//! The baselines: raw tokio-tungstenite doing the same socket work as the add-in, without
//! it (`hop = false`), and with the one thread hop every add-in needs (`hop = true`): each
//! received message crosses a bounded channel to a plain OS thread (this one) that takes it,
//! each sent message comes from it through a bounded channel.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::load::BURST;
use crate::{Cfg, Gen, Meter, PAYLOAD, percentile, rss_kib, sample_in_background};

/// Capacity of the receive hop (the add-in's default pull queue).
const RECV_HOP: usize = 10_000;
/// Capacity of a send hop (the add-in's default send queue).
const SEND_HOP: usize = 1024;

/// A runtime shaped like the add-in's: multi-threaded, one worker per available core (so one
/// under `taskset -c 0`).
pub fn runtime() -> Runtime {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("raw-worker")
        .enable_all()
        .build()
        .expect("runtime")
}

fn listen(rt: &Runtime) -> (TcpListener, u16) {
    let l = rt.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind");
    let port = l.local_addr().expect("addr").port();
    (l, port)
}

fn is_data(m: &Message) -> bool {
    m.is_text() || m.is_binary()
}

fn finish(rt: Runtime, load: Gen) {
    drop(load);
    rt.shutdown_timeout(Duration::from_secs(1));
}

/// Scenario 1: `n` clients pipeline 64-byte texts into a raw server.
pub fn server_ingest(cfg: &Cfg, n: usize, hop: bool) -> f64 {
    if crate::addin_only() {
        return f64::NAN;
    }
    let rt = runtime();
    let meter = Meter::new();
    let (listener, port) = listen(&rt);
    let (tx, mut rx) = mpsc::channel::<Message>(RECV_HOP);
    let m = meter.clone();
    rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let (m, tx) = (m.clone(), tx.clone());
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let (_sink, mut stream) = ws.split();
                while let Some(Ok(msg)) = stream.next().await {
                    if !is_data(&msg) {
                        continue;
                    }
                    if hop {
                        if tx.send(msg).await.is_err() {
                            return;
                        }
                    } else {
                        m.add(1);
                    }
                }
            });
        }
    });
    let load = Gen::start(
        cfg,
        "flood-clients",
        &[format!("ws://127.0.0.1:{port}/"), n.to_string()],
    );
    let mm = meter.clone();
    let sampler = sample_in_background(cfg, meter.clone(), move || mm.n.load(Ordering::Relaxed));
    if hop {
        while !meter.stopped() {
            match rx.blocking_recv() {
                Some(msg) => {
                    meter.add(1);
                    drop(msg);
                }
                None => break,
            }
        }
    }
    let rate = sampler.join().unwrap_or(f64::NAN);
    drop(rx);
    finish(rt, load);
    rate
}

/// Scenario 2: a raw server writes 64-byte texts to `n` reading clients (round robin from the
/// OS thread with `hop`; to every one with `all`, skipping full queues as `ОтправитьВсем` does).
pub fn server_egress(cfg: &Cfg, n: usize, all: bool, hop: bool) -> f64 {
    if crate::addin_only() {
        return f64::NAN;
    }
    let rt = runtime();
    let (listener, port) = listen(&rt);
    let senders: Arc<Mutex<Vec<mpsc::Sender<Message>>>> = Arc::default();
    let s = senders.clone();
    rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let s = s.clone();
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let (mut sink, mut stream) = ws.split();
                tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
                if !hop {
                    let msg = Message::text(PAYLOAD);
                    loop {
                        for _ in 0..BURST {
                            if sink.feed(msg.clone()).await.is_err() {
                                return;
                            }
                        }
                        if sink.flush().await.is_err() {
                            return;
                        }
                    }
                }
                let (tx, mut rx) = mpsc::channel::<Message>(SEND_HOP);
                s.lock().unwrap_or_else(|e| e.into_inner()).push(tx);
                // The add-in's writer shape: feed what is queued, flush once.
                while let Some(mut msg) = rx.recv().await {
                    loop {
                        if sink.feed(msg).await.is_err() {
                            return;
                        }
                        match rx.try_recv() {
                            Ok(next) => msg = next,
                            Err(_) => break,
                        }
                    }
                    if sink.flush().await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let load = Gen::start(
        cfg,
        "sink-clients",
        &[format!("ws://127.0.0.1:{port}/"), n.to_string()],
    );
    let load = Arc::new(load);
    let meter = Meter::new();
    if hop {
        let t = Instant::now();
        while senders.lock().unwrap_or_else(|e| e.into_inner()).len() < n
            && t.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let g = load.clone();
    let sampler = sample_in_background(cfg, meter.clone(), move || g.count());
    if hop {
        let senders = senders.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut i = 0usize;
        while !meter.stopped() {
            if all {
                // A fresh string per call, as from 1C; shared by every connection.
                let msg = Message::text(PAYLOAD.to_owned());
                for tx in &senders {
                    let _ = tx.try_send(msg.clone());
                }
            } else {
                let msg = Message::text(PAYLOAD.to_owned());
                if senders[i % senders.len()].blocking_send(msg).is_err() {
                    break;
                }
                i += 1;
            }
        }
    }
    let rate = sampler.join().unwrap_or(f64::NAN);
    drop(senders);
    let load = Arc::try_unwrap(load).ok().expect("generator");
    finish(rt, load);
    rate
}

/// Scenario 3: a raw client reads a flooding server.
pub fn client_ingest(cfg: &Cfg, hop: bool) -> f64 {
    if crate::addin_only() {
        return f64::NAN;
    }
    let rt = runtime();
    let load = Gen::start(cfg, "flood-server", &[]);
    let url = format!("ws://127.0.0.1:{}/", load.first);
    let meter = Meter::new();
    let (tx, mut rx) = mpsc::channel::<Message>(RECV_HOP);
    let m = meter.clone();
    rt.spawn(async move {
        let addr = url
            .trim_start_matches("ws://")
            .trim_end_matches('/')
            .to_owned();
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let _ = tcp.set_nodelay(true);
        let (ws, _) = tokio_tungstenite::client_async(url.as_str(), tcp)
            .await
            .expect("handshake");
        let (_sink, mut stream) = ws.split();
        while let Some(Ok(msg)) = stream.next().await {
            if !is_data(&msg) {
                continue;
            }
            if hop {
                if tx.send(msg).await.is_err() {
                    return;
                }
            } else {
                m.add(1);
            }
        }
    });
    let mm = meter.clone();
    let sampler = sample_in_background(cfg, meter.clone(), move || mm.n.load(Ordering::Relaxed));
    if hop {
        while !meter.stopped() {
            match rx.blocking_recv() {
                Some(msg) => {
                    meter.add(1);
                    drop(msg);
                }
                None => break,
            }
        }
    }
    let rate = sampler.join().unwrap_or(f64::NAN);
    drop(rx);
    finish(rt, load);
    rate
}

/// Scenario 5: send one text to an echo server, wait for it back; p50 and p99 in µs.
pub fn round_trip(cfg: &Cfg, hop: bool) -> [f64; 2] {
    if crate::addin_only() {
        return [f64::NAN; 2];
    }
    let rt = runtime();
    let load = Gen::start(cfg, "echo-server", &[]);
    let url = format!("ws://127.0.0.1:{}/", load.first);
    let (warmup, window) = (cfg.warmup, cfg.window);
    let ws = rt.block_on(async {
        let addr = url
            .trim_start_matches("ws://")
            .trim_end_matches('/')
            .to_owned();
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let _ = tcp.set_nodelay(true);
        tokio_tungstenite::client_async(url.as_str(), tcp)
            .await
            .expect("handshake")
            .0
    });
    let mut lat: Vec<f64> = if !hop {
        rt.block_on(async move {
            let mut ws = ws;
            let msg = Message::text(PAYLOAD);
            let start = Instant::now();
            let mut lat = Vec::new();
            while start.elapsed() < warmup + window {
                let t = Instant::now();
                if ws.send(msg.clone()).await.is_err() {
                    break;
                }
                loop {
                    match ws.next().await {
                        Some(Ok(m)) if is_data(&m) => break,
                        Some(Ok(_)) => continue,
                        _ => return lat,
                    }
                }
                if start.elapsed() > warmup {
                    lat.push(t.elapsed().as_secs_f64() * 1e6);
                }
            }
            lat
        })
    } else {
        let (out_tx, mut out_rx) = mpsc::channel::<Message>(SEND_HOP);
        let (in_tx, mut in_rx) = mpsc::channel::<Message>(RECV_HOP);
        let (mut sink, mut stream) = ws.split();
        rt.spawn(async move {
            while let Some(m) = out_rx.recv().await {
                if sink.send(m).await.is_err() {
                    return;
                }
            }
        });
        rt.spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                if is_data(&m) && in_tx.send(m).await.is_err() {
                    return;
                }
            }
        });
        let start = Instant::now();
        let mut lat = Vec::new();
        while start.elapsed() < warmup + window {
            let t = Instant::now();
            if out_tx
                .blocking_send(Message::text(PAYLOAD.to_owned()))
                .is_err()
                || in_rx.blocking_recv().is_none()
            {
                break;
            }
            if start.elapsed() > warmup {
                lat.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        lat
    };
    lat.sort_by(f64::total_cmp);
    finish(rt, load);
    [percentile(&lat, 50.0), percentile(&lat, 99.0)]
}

fn tls_acceptor(cfg: &Cfg) -> tokio_rustls::TlsAcceptor {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(cfg.pki.join("cert.pem"))
            .expect("cert")
            .map(|c| c.expect("cert"))
            .collect();
    let key = PrivateKeyDer::from_pem_file(cfg.pki.join("key.pem")).expect("key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

async fn serve_handshake<S>(
    stream: S,
    addr: std::net::SocketAddr,
    hop: bool,
    tx: mpsc::Sender<String>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    if hop && tx.send(addr.to_string()).await.is_err() {
        return;
    }
    let (_sink, mut stream) = ws.split();
    while let Some(Ok(_)) = stream.next().await {}
}

/// Scenario 8: handshakes per second (the generator counts them), ws or wss.
pub fn handshakes(cfg: &Cfg, tls: bool, hop: bool) -> f64 {
    if crate::addin_only() {
        return f64::NAN;
    }
    let rt = runtime();
    let (listener, port) = listen(&rt);
    let acceptor = tls.then(|| tls_acceptor(cfg));
    let (tx, mut rx) = mpsc::channel::<String>(RECV_HOP);
    rt.spawn(async move {
        while let Ok((tcp, addr)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let (tx, acceptor) = (tx.clone(), acceptor.clone());
            tokio::spawn(async move {
                match acceptor {
                    Some(a) => {
                        if let Ok(s) = a.accept(tcp).await {
                            serve_handshake(s, addr, hop, tx).await;
                        }
                    }
                    None => serve_handshake(tcp, addr, hop, tx).await,
                }
            });
        }
    });
    let scheme = if tls { "wss" } else { "ws" };
    let mut args = vec![format!("{scheme}://127.0.0.1:{port}/"), "16".to_owned()];
    if tls {
        args.push(cfg.pki.join("ca.pem").to_string_lossy().into_owned());
    }
    let load = Arc::new(Gen::start(cfg, "handshakes", &args));
    let meter = Meter::new();
    let g = load.clone();
    let sampler = sample_in_background(cfg, meter.clone(), move || g.count());
    if hop {
        while !meter.stopped() {
            if rx.blocking_recv().is_none() {
                break;
            }
        }
    }
    let rate = sampler.join().unwrap_or(f64::NAN);
    drop(rx);
    let load = Arc::try_unwrap(load).ok().expect("generator");
    finish(rt, load);
    rate
}

/// Scenario 7, in the parent: runs `idle IMPL N` in a fresh process (memory of earlier
/// scenarios must not count) and returns (connections held, KiB per connection).
pub fn idle_parent(cfg: &Cfg, imp: &str, n: usize) -> (f64, f64) {
    use std::io::BufRead;
    let exe = std::env::current_exe().expect("own path");
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("idle").arg(imp).arg(n.to_string());
    if cfg.pin {
        cmd.arg("--pin");
    }
    let out = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("idle child");
    let mut child = out;
    let stdout = child.stdout.take().expect("stdout");
    let mut result = (f64::NAN, f64::NAN);
    for line in std::io::BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if let Some(r) = line.strip_prefix("RESULT ") {
            let v: Vec<f64> = r
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if v.len() == 2 {
                result = (v[0], v[1]);
            }
        }
    }
    let _ = child.wait();
    result
}

/// Scenario 7, in the child: holds `n` idle connections to `imp` (`addin`, `raw` with the
/// add-in's 4 KiB read buffer, `raw-default` with tungstenite's defaults) and prints
/// `RESULT held kib_per_connection`.
pub fn idle_child(imp: &str, n: usize, pin: bool) {
    let _ = ws1c_host::raise_fd_limit();
    let cfg = Cfg {
        pin,
        warmup: Duration::ZERO,
        window: Duration::ZERO,
        idle: n,
        max_conns: 0,
        calls: 0,
        pki: std::env::temp_dir(),
    };
    let (held, kib) = if imp == "addin" {
        crate::addin::idle(&cfg, n)
    } else {
        let rt = runtime();
        let (listener, port) = listen(&rt);
        let count = Arc::new(AtomicU64::new(0));
        let c = count.clone();
        let config = (imp == "raw").then(|| WebSocketConfig::default().read_buffer_size(4096));
        rt.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let c = c.clone();
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(tcp, config).await
                    else {
                        return;
                    };
                    c.fetch_add(1, Ordering::Relaxed);
                    while let Some(Ok(_)) = ws.next().await {}
                    c.fetch_sub(1, Ordering::Relaxed);
                });
            }
        });
        std::thread::sleep(Duration::from_millis(200));
        let before = rss_kib();
        let load = Gen::start(
            &cfg,
            "idle-clients",
            &[format!("ws://127.0.0.1:{port}/"), n.to_string()],
        );
        let t = Instant::now();
        while count.load(Ordering::Relaxed) < load.first && t.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        let held = count.load(Ordering::Relaxed) as f64;
        let after = rss_kib();
        drop(load);
        (held, after.saturating_sub(before) as f64 / held.max(1.0))
    };
    println!("RESULT {held} {kib}");
}
