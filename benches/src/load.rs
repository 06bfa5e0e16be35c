//! The load generator: a separate process (pinned to the other core) running plain
//! tokio-tungstenite peers on one thread. It talks to the driver through its standard
//! streams: it prints `PORT p` (server modes) or `READY n` (client modes) once, answers each
//! `COUNT` line on stdin with `COUNT n` (messages it received, or handshakes it completed),
//! and exits when stdin closes.

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::{PAYLOAD, tls_connector};

/// Messages fed between two flushes by a flooding peer ("flush per burst").
pub const BURST: u64 = 64;

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Answers `COUNT` from `counter` until stdin closes, then ends the process.
fn serve_stdin(counter: Arc<AtomicU64>) {
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            if line.trim() == "COUNT" {
                say(&format!("COUNT {}", counter.load(Ordering::Relaxed)));
            }
        }
        std::process::exit(0);
    });
}

fn arg<T: std::str::FromStr>(args: &[String], k: usize, default: T) -> T {
    args.get(k).and_then(|a| a.parse().ok()).unwrap_or(default)
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn connect(url: &str) -> Option<Ws> {
    connect_with(url, None).await
}

/// Connects; `rcvbuf` shrinks the socket's receive buffer (a silent peer then stops the
/// sender after a few KiB instead of megabytes).
async fn connect_with(url: &str, rcvbuf: Option<u32>) -> Option<Ws> {
    let addr: std::net::SocketAddr = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap_or_default()
        .parse()
        .ok()?;
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    if let Some(size) = rcvbuf {
        let _ = socket.set_recv_buffer_size(size);
    }
    let tcp = socket.connect(addr).await.ok()?;
    let _ = tcp.set_nodelay(true);
    let (ws, _) = tokio_tungstenite::client_async(url, tcp).await.ok()?;
    Some(ws)
}

/// Connects `n` clients one after another (so no early flooder starves later handshakes).
async fn connect_all(url: &str, n: usize) -> Vec<Ws> {
    let mut all = Vec::with_capacity(n);
    for _ in 0..n {
        if let Some(ws) = connect(url).await {
            all.push(ws);
        }
    }
    all
}

async fn flood<S>(ws: &mut S, count: Option<u64>)
where
    S: futures_util::Sink<Message> + Unpin,
{
    flood_with(ws, Message::text(PAYLOAD), count).await;
}

async fn flood_with<S>(ws: &mut S, msg: Message, count: Option<u64>)
where
    S: futures_util::Sink<Message> + Unpin,
{
    let mut i = 0u64;
    while count.is_none_or(|c| i < c) {
        if ws.feed(msg.clone()).await.is_err() {
            return;
        }
        i += 1;
        if i.is_multiple_of(BURST) && ws.flush().await.is_err() {
            return;
        }
    }
    let _ = ws.flush().await;
}

/// Runs generator `mode` with `args` (see `main.rs` for the list); never returns.
pub fn main(mode: &str, args: &[String]) -> ! {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let counter = Arc::new(AtomicU64::new(0));
    serve_stdin(counter.clone());
    let c = counter.clone();
    rt.block_on(async move {
        match mode {
            "flood-clients" => {
                let (url, n) = (args[0].clone(), arg(args, 1, 1usize));
                let count: u64 = arg(args, 2, 0);
                let all = connect_all(&url, n).await;
                say(&format!("READY {}", all.len()));
                for ws in all {
                    tokio::spawn(async move {
                        let (mut tx, mut rx) = ws.split();
                        flood(&mut tx, (count > 0).then_some(count)).await;
                        while let Some(Ok(_)) = rx.next().await {}
                    });
                }
            }
            "sink-clients" | "silent-clients" => {
                let (url, n) = (args[0].clone(), arg(args, 1, 1usize));
                let silent = mode == "silent-clients";
                let mut all = Vec::with_capacity(n);
                for _ in 0..n {
                    let rcvbuf = silent.then_some(4096);
                    if let Some(ws) = connect_with(&url, rcvbuf).await {
                        all.push(ws);
                    }
                }
                say(&format!("READY {}", all.len()));
                for mut ws in all {
                    let c = c.clone();
                    tokio::spawn(async move {
                        if silent {
                            tokio::time::sleep(Duration::from_secs(86_400)).await;
                        }
                        while let Some(Ok(m)) = ws.next().await {
                            if m.is_text() || m.is_binary() {
                                c.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    });
                }
            }
            "idle-clients" => {
                let (url, n) = (args[0].clone(), arg(args, 1, 1usize));
                // A few handshakes in flight at a time: fast, without a SYN storm.
                let mut held = 0usize;
                let mut pending = futures_util::stream::FuturesUnordered::new();
                let mut started = 0usize;
                let mut conns = Vec::with_capacity(n);
                while started < n || !pending.is_empty() {
                    while started < n && pending.len() < 32 {
                        let u = url.clone();
                        pending.push(async move { connect(&u).await });
                        started += 1;
                    }
                    if let Some(Some(ws)) = pending.next().await {
                        held += 1;
                        conns.push(ws);
                    }
                }
                c.store(held as u64, Ordering::Relaxed);
                say(&format!("READY {held}"));
                for mut ws in conns {
                    tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} });
                }
            }
            "handshakes" => {
                // Connect, handshake, drop (reset: no TIME_WAIT piles up), again, from
                // `concurrency` tasks.
                let (url, conc) = (args[0].clone(), arg(args, 1, 16usize));
                let ca = args.get(2).cloned().unwrap_or_default();
                let connector = (!ca.is_empty()).then(|| tls_connector(&ca));
                say("READY 0");
                for _ in 0..conc {
                    let (url, c, connector) = (url.clone(), c.clone(), connector.clone());
                    tokio::spawn(async move {
                        let hostport = url
                            .trim_start_matches("ws://")
                            .trim_start_matches("wss://")
                            .split('/')
                            .next()
                            .unwrap_or_default()
                            .to_owned();
                        loop {
                            let Ok(tcp) = TcpStream::connect(hostport.as_str()).await else {
                                tokio::time::sleep(Duration::from_millis(1)).await;
                                continue;
                            };
                            let _ = tcp.set_nodelay(true);
                            let _ = tcp.set_zero_linger();
                            let ok = match &connector {
                                None => tokio_tungstenite::client_async(url.as_str(), tcp)
                                    .await
                                    .is_ok(),
                                Some(conn) => {
                                    let name = rustls_pki_types::ServerName::try_from("localhost")
                                        .expect("name");
                                    match conn.connect(name, tcp).await {
                                        Ok(tls) => {
                                            tokio_tungstenite::client_async(url.as_str(), tls)
                                                .await
                                                .is_ok()
                                        }
                                        Err(_) => false,
                                    }
                                }
                            };
                            if ok {
                                c.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    });
                }
            }
            "flood-server" | "echo-server" | "silent-server" => {
                let count: u64 = arg(args, 0, 0);
                let socket = tokio::net::TcpSocket::new_v4().expect("socket");
                if mode == "silent-server" {
                    // Accepted sockets inherit it: the sender stops after a few KiB.
                    let _ = socket.set_recv_buffer_size(4096);
                }
                socket
                    .bind("127.0.0.1:0".parse().expect("address"))
                    .expect("bind");
                let listener = socket.listen(1024).expect("listen");
                say(&format!(
                    "PORT {}",
                    listener.local_addr().expect("addr").port()
                ));
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = tcp.set_nodelay(true);
                    let mode = mode.to_owned();
                    let c = c.clone();
                    tokio::spawn(async move {
                        let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                            return;
                        };
                        let (mut tx, mut rx) = ws.split();
                        match mode.as_str() {
                            "flood-server" => {
                                flood(&mut tx, (count > 0).then_some(count)).await;
                                while let Some(Ok(_)) = rx.next().await {}
                            }
                            "echo-server" => {
                                while let Some(Ok(m)) = rx.next().await {
                                    if m.is_text() || m.is_binary() {
                                        c.fetch_add(1, Ordering::Relaxed);
                                        if tx.send(m).await.is_err() {
                                            return;
                                        }
                                    }
                                }
                            }
                            _ => tokio::time::sleep(Duration::from_secs(86_400)).await,
                        }
                    });
                }
            }
            "sio-flood-server" => {
                // A Socket.IO (Engine.IO v4) server reduced to what the benchmark needs: the
                // open packet, the namespace join, then `42["tick","<64 bytes>"]` flat out.
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                say(&format!(
                    "PORT {}",
                    listener.local_addr().expect("addr").port()
                ));
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = tcp.set_nodelay(true);
                    tokio::spawn(async move {
                        let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                            return;
                        };
                        let (mut tx, mut rx) = ws.split();
                        let open = r#"0{"sid":"bench","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
                        if tx.send(Message::text(open)).await.is_err() {
                            return;
                        }
                        while let Some(Ok(m)) = rx.next().await {
                            if m.to_text().is_ok_and(|t| t.starts_with("40")) {
                                break;
                            }
                        }
                        if tx.send(Message::text(r#"40{"sid":"s1"}"#)).await.is_err() {
                            return;
                        }
                        let tick = Message::text(format!(r#"42["tick","{PAYLOAD}"]"#));
                        flood_with(&mut tx, tick, None).await;
                        while let Some(Ok(_)) = rx.next().await {}
                    });
                }
            }
            other => {
                say(&format!("ERROR unknown mode {other}"));
                std::process::exit(2);
            }
        }
        std::future::pending::<()>().await;
    });
    std::process::exit(0)
}
