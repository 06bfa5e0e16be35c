//! A fault-injecting TCP proxy for the tests: it sits between a peer and the add-in (either
//! way round) on 127.0.0.1:0 and, per connection and switchable while bytes flow, delays,
//! throttles, resets, stalls, half-closes or truncates.
//!
//! Every accepted connection gets its own upstream connection and two pipes (one per
//! direction). A pipe reads a chunk, looks at the connection's current [`Fault`] and
//! forwards the chunk accordingly. Byte counts of `Reset` and `Truncate` start when that
//! fault is set on the connection, so setting one while the connection is quiet and then
//! sending a frame cuts that frame after exactly `after` bytes.
//!
//! Why each pipe owns one half of *each* socket (the read half of one, the write half of
//! the other): the pipe that decides a reset can set `SO_LINGER 0` on both sockets by
//! itself, and the other pipe only has to let go of its halves without sending a FIN
//! (`OwnedWriteHalf::forget`), so the kernel answers with RST when the last half goes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Background, in_own_runtime, serve_loopback};

/// A direction through the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Toward {
    /// To the side that connected to the proxy.
    Client,
    /// To the side the proxy connects to (the upstream).
    Server,
}

/// What the proxy does to one connection's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything at once.
    Pass,
    /// Hold every chunk for this long after it was read (both directions; one chunk at a
    /// time, so what arrives meanwhile goes out together with the next one).
    Delay(Duration),
    /// Forward at most this many bytes per second (each direction).
    Throttle(u32),
    /// Forward `after` more bytes toward one side, then close both sockets with RST
    /// (`SO_LINGER 0`). `after: 0` cuts at once.
    Reset { toward: Toward, after: usize },
    /// Stop forwarding (and reading) both ways; keep both sockets open.
    Stall,
    /// Shut down the way toward one side (FIN); the other way keeps flowing.
    HalfClose(Toward),
    /// Forward `after` more bytes toward one side, then close both sockets (FIN).
    Truncate { toward: Toward, after: usize },
}

/// How a connection is ended by a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kill {
    Reset,
    Close,
}

struct Shared {
    /// The fault of connections accepted from now on.
    default: Mutex<Fault>,
    /// Each accepted connection's fault, in order of acceptance.
    conns: Mutex<Vec<watch::Sender<Fault>>>,
}

/// The proxy: listens on 127.0.0.1, forwards to `127.0.0.1:upstream`. Stops when dropped
/// (every connection through it ends then).
pub struct FaultProxy {
    /// The port it listens on.
    pub port: u16,
    shared: Arc<Shared>,
    _thread: Background,
}

impl FaultProxy {
    /// Starts it in its own thread and waits for its port.
    pub fn start(upstream: u16) -> FaultProxy {
        let shared = Arc::new(Shared {
            default: Mutex::new(Fault::Pass),
            conns: Mutex::new(Vec::new()),
        });
        let sh = shared.clone();
        let (port, thread) = serve_loopback(move |client| {
            // Registered here, in order of acceptance (the tests address connections by it).
            let fault = *sh.default.lock().unwrap_or_else(|e| e.into_inner());
            let (fault_tx, fault_rx) = watch::channel(fault);
            sh.conns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(fault_tx);
            async move {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    // Nobody upstream: the client sees its connection closed.
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (kill_tx, kill_rx) = watch::channel(None);
                let kill_tx = Arc::new(kill_tx);
                let (client_r, client_w) = client.into_split();
                let (server_r, server_w) = server.into_split();
                let up = Pipe {
                    dir: Toward::Server,
                    fault: fault_rx.clone(),
                    kill: kill_rx.clone(),
                    kill_tx: kill_tx.clone(),
                };
                let down = Pipe {
                    dir: Toward::Client,
                    fault: fault_rx,
                    kill: kill_rx,
                    kill_tx,
                };
                tokio::spawn(up.run(client_r, server_w));
                down.run(server_r, client_w).await;
            }
        });
        FaultProxy {
            port,
            shared,
            _thread: thread,
        }
    }

    /// `ws://127.0.0.1:port/`.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.port)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Sets the fault of connection `n` (0 = the first accepted), effective for the next
    /// chunk each way.
    pub fn set(&self, n: usize, fault: Fault) {
        let conns = self.shared.conns.lock().unwrap_or_else(|e| e.into_inner());
        let Some(c) = conns.get(n) else {
            panic!("no connection {n} through the proxy (only {})", conns.len())
        };
        c.send_replace(fault);
    }

    /// Sets the fault of the connections accepted from now on.
    pub fn set_default(&self, fault: Fault) {
        *self
            .shared
            .default
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = fault;
    }
}

/// One direction of one connection.
struct Pipe {
    dir: Toward,
    fault: watch::Receiver<Fault>,
    kill: watch::Receiver<Option<Kill>>,
    kill_tx: Arc<watch::Sender<Option<Kill>>>,
}

/// What a pipe does next.
enum Next {
    Go,
    Stop(Option<Kill>),
}

impl Pipe {
    /// Resolves when the connection is ended by a fault (or the proxy goes).
    async fn killed(kill: &mut watch::Receiver<Option<Kill>>) -> Option<Kill> {
        match kill.wait_for(|k| k.is_some()).await {
            Ok(k) => *k,
            Err(_) => Some(Kill::Close),
        }
    }

    /// Ends the connection for both pipes.
    fn end(&self, how: Kill, from: &OwnedReadHalf, to: &OwnedWriteHalf) {
        if how == Kill::Reset {
            // `from` and `to` are halves of the two different sockets: this sets both.
            let _ = from.as_ref().set_zero_linger();
            let _ = to.as_ref().set_zero_linger();
        }
        self.kill_tx.send_replace(Some(how));
    }

    async fn run(mut self, mut from: OwnedReadHalf, mut to: OwnedWriteHalf) {
        let how = self.forward(&mut from, &mut to).await;
        match how {
            // No FIN before the RST: the socket closes (with RST, linger 0) when the last
            // half is dropped.
            Some(Kill::Reset) => to.forget(),
            // Dropping the write half sends the FIN.
            Some(Kill::Close) | None => drop(to),
        }
        drop(from);
    }

    /// Forwards until the connection ends; returns how it was ended, if by a fault.
    async fn forward(&mut self, from: &mut OwnedReadHalf, to: &mut OwnedWriteHalf) -> Option<Kill> {
        let mut buf = vec![0u8; 16 * 1024];
        let mut fault = *self.fault.borrow_and_update();
        // Bytes forwarded this way since `fault` was set.
        let mut count = 0usize;
        let mut changed = false;
        loop {
            // A new fault: counts start again. (`changed()` below marks the value seen, so
            // those arms set `changed` themselves.)
            if changed || self.fault.has_changed().unwrap_or(false) {
                fault = *self.fault.borrow_and_update();
                count = 0;
                changed = false;
            }
            match fault {
                Fault::Stall => {
                    tokio::select! {
                        k = Self::killed(&mut self.kill) => return k,
                        r = self.fault.changed() => {
                            if r.is_err() { return Some(Kill::Close) }
                            changed = true;
                        }
                    }
                    continue;
                }
                Fault::HalfClose(t) if t == self.dir => {
                    let _ = to.shutdown().await;
                    // The other way keeps going. What still arrives for this way is read and
                    // dropped, so that the source's own close ends this pipe.
                    loop {
                        tokio::select! {
                            k = Self::killed(&mut self.kill) => return k,
                            r = from.read(&mut buf) => match r {
                                Ok(0) | Err(_) => return None,
                                Ok(_) => {}
                            },
                        }
                    }
                }
                Fault::Reset { toward, after } if toward == self.dir && count >= after => {
                    self.end(Kill::Reset, from, to);
                    return Some(Kill::Reset);
                }
                Fault::Truncate { toward, after } if toward == self.dir && count >= after => {
                    self.end(Kill::Close, from, to);
                    return Some(Kill::Close);
                }
                _ => {}
            }
            let read = tokio::select! {
                k = Self::killed(&mut self.kill) => return k,
                r = self.fault.changed() => {
                    if r.is_err() { return Some(Kill::Close) }
                    changed = true;
                    continue;
                }
                r = from.read(&mut buf) => r,
            };
            let n = match read {
                Ok(0) => {
                    // The source finished: pass its FIN on; the other way goes on (each
                    // socket closes once both pipes let go of their halves).
                    let _ = to.shutdown().await;
                    return None;
                }
                Ok(n) => n,
                Err(_) => {
                    // The source reset: reset the other side too.
                    self.end(Kill::Reset, from, to);
                    return Some(Kill::Reset);
                }
            };
            let at = Instant::now();
            let mut chunk = &buf[..n];
            if let Fault::Reset { toward, after } | Fault::Truncate { toward, after } = fault
                && toward == self.dir
            {
                chunk = &chunk[..chunk.len().min(after - count)];
            }
            let sent = chunk.len();
            let wrote = tokio::select! {
                k = Self::killed(&mut self.kill) => return k,
                r = write(to, chunk, fault, at) => r,
            };
            if wrote.is_err() {
                self.end(Kill::Reset, from, to);
                return Some(Kill::Reset);
            }
            count += sent;
        }
    }
}

/// Writes `chunk` as `fault` says (delay or byte rate).
async fn write(
    to: &mut OwnedWriteHalf,
    chunk: &[u8],
    fault: Fault,
    read_at: Instant,
) -> std::io::Result<()> {
    match fault {
        Fault::Delay(d) => {
            tokio::time::sleep_until(read_at + d).await;
            to.write_all(chunk).await
        }
        Fault::Throttle(rate) => {
            let rate = rate.max(1) as usize;
            // Slices of about 20 ms worth of bytes, each followed by its share of time.
            let slice = (rate / 50).max(1);
            for piece in chunk.chunks(slice) {
                to.write_all(piece).await?;
                let secs = piece.len() as f64 / rate as f64;
                tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            }
            Ok(())
        }
        _ => to.write_all(chunk).await,
    }
}

/// Padding of every numbered message: frames of well over 100 bytes, so that a cut after
/// an odd number of bytes always falls inside a frame (pings and pongs are even-sized).
const PAD: &str = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqr";

/// The numbered message `n`: "n " and the padding.
pub fn seq_text(n: u64) -> String {
    format!("{n} {PAD}")
}

/// The number of a [`seq_text`] message.
pub fn seq_of(text: &str) -> Option<u64> {
    let (n, pad) = text.split_once(' ')?;
    (pad == PAD).then_some(())?;
    n.parse().ok()
}

/// What a sequence peer received: one list of numbers per connection, in order of
/// handshake.
pub type SeqLog = Arc<Mutex<Vec<Vec<u64>>>>;

/// A tokio-tungstenite server that records the number of every [`seq_text`] it receives
/// (per connection) and echoes every text back.
pub fn seq_peer() -> (super::WsServer, SeqLog) {
    use futures_util::{SinkExt, StreamExt};
    let log = SeqLog::default();
    let l = log.clone();
    let server = super::WsServer::start(move |mut ws| {
        let l = l.clone();
        async move {
            let k = {
                let mut g = l.lock().unwrap_or_else(|e| e.into_inner());
                g.push(Vec::new());
                g.len() - 1
            };
            while let Some(Ok(m)) = ws.next().await {
                let Some(t) = m.to_text().ok().filter(|_| m.is_text()) else {
                    continue;
                };
                if let Some(n) = seq_of(t) {
                    l.lock().unwrap_or_else(|e| e.into_inner())[k].push(n);
                }
                if ws.send(m).await.is_err() {
                    return;
                }
            }
        }
    });
    (server, log)
}

/// What one [`SeqClients`] client saw.
#[derive(Default, Debug)]
pub struct SeqClientLog {
    /// Numbers of the echoes received, in order.
    pub echoes: Vec<u64>,
    /// Messages sent.
    pub sent: u64,
    /// The connection ended.
    pub ended: bool,
}

/// tokio-tungstenite clients in their own thread, each sending [`seq_text`] 0, 1, 2 … every
/// 10 ms and recording the echoes; stop when dropped.
pub struct SeqClients {
    /// One log per client, in order of connection.
    pub logs: Vec<Arc<Mutex<SeqClientLog>>>,
    _thread: Background,
}

impl SeqClients {
    /// Connects `n` clients to `url` one after the other (each handshake completes before
    /// the next client connects, so they arrive in this order everywhere) and returns once
    /// all are connected.
    pub fn start(url: &str, n: usize) -> SeqClients {
        let logs: Vec<Arc<Mutex<SeqClientLog>>> = (0..n).map(|_| Arc::default()).collect();
        let url = url.to_owned();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (up_tx, up_rx) = std::sync::mpsc::channel();
        let l = logs.clone();
        let thread = in_own_runtime(async move {
            for log in l {
                let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
                tokio::spawn(seq_client(url.clone(), log, ready_tx));
                let _ = ready_rx.await;
            }
            let _ = up_tx.send(());
            let _ = stop_rx.await;
        });
        up_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the sequence clients connect");
        SeqClients {
            logs,
            _thread: Background::new(stop_tx, thread),
        }
    }

    /// Echoes received so far by client `i`.
    pub fn echoes(&self, i: usize) -> usize {
        self.logs[i]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .echoes
            .len()
    }
}

async fn seq_client(
    url: String,
    log: Arc<Mutex<SeqClientLog>>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let addr = url
        .trim_start_matches("ws://")
        .trim_end_matches('/')
        .to_owned();
    let ws = match TcpStream::connect(addr).await {
        Ok(tcp) => tokio_tungstenite::client_async(url.as_str(), tcp)
            .await
            .ok(),
        Err(_) => None,
    };
    let _ = ready.send(());
    let Some((mut ws, _)) = ws else {
        log.lock().unwrap_or_else(|e| e.into_inner()).ended = true;
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if ws.send(Message::text(seq_text(n))).await.is_err() {
                    break;
                }
                n += 1;
                log.lock().unwrap_or_else(|e| e.into_inner()).sent = n;
            }
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    if let Some(k) = seq_of(t.as_str()) {
                        log.lock().unwrap_or_else(|e| e.into_inner()).echoes.push(k);
                    }
                }
                Some(Ok(_)) => {}
                _ => break,
            },
        }
    }
    log.lock().unwrap_or_else(|e| e.into_inner()).ended = true;
}
