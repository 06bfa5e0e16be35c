//! `soak`: the add-in kept busy for a long time, watched for growth and for broken ordering.
//!
//! Three processes, loopback only:
//!
//! * **driver** (this process, `soak --secs N`): `libwebsocket1c.so` loaded by the emulated
//!   platform (`ws1c-host`); one `Server` object and ten `Client` objects with `reconnect`,
//!   all in pull mode, driven from this thread as 1C code would drive them. It samples its own
//!   RSS, threads and open fds and the objects' queue depths, checks every sequence and
//!   decides the verdict;
//! * **load** (`soak load URL N PERIOD_MS CHURN_MS`): N tokio-tungstenite clients of the
//!   server object on one thread; every churn tick a fiftieth of them leave (alternately with a
//!   close handshake and by dropping the socket) and come back;
//! * **peer** (`soak peer PORT GEN`): the tokio-tungstenite server the client objects talk to;
//!   the driver kills it (SIGKILL) and starts it again on the same port every restart period.
//!
//! Traffic and what is checked (a violation fails the run):
//!
//! * load → server: each connection sends `L <seq>`, seq 0, 1, 2 … on that connection; the
//!   driver requires, per `ClientId`, exactly 0, 1, 2 … (a prefix: a connection the load drops
//!   may lose its tail, never a message in the middle), no message after the close event;
//! * server → load: the driver sends `S <seq>` to every connection in turn; the load client
//!   requires exactly 0, 1, 2 … on its connection, and counts a close it did not ask for;
//! * client object → peer: client k sends `C<k> <seq>`, seq counted over the object's whole
//!   life (across reconnects, advanced only when `Отправить` accepted the message); the peer
//!   reports each message and the driver requires, per client, seq strictly increasing across
//!   all connections and peer restarts (no duplicate, no reordering) and contiguous within one
//!   connection; a jump from one connection to the next is allowed (messages in flight when
//!   the peer died, counted as "lost in flight") only if the object gave a Close/Fail event
//!   for the old connection and only over messages `Отправить` accepted before that event was
//!   taken; every Open after the first needs a Close/Fail before it, and at the end each
//!   client has one Close/Fail per peer restart at least and one Open more than Close/Fail;
//! * peer → client object: each peer connection sends `P <gen> <conn> <seq>`, seq from 0; the
//!   client object must receive, per connection, exactly 0, 1, 2 … (a prefix), and connections
//!   in the order they were made (nothing from an older connection after a newer one).
//!
//! stdin of the load and the peer is a pipe from the driver: when the driver ends, however
//! it ends, they see end-of-file and exit, so no process is left behind.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("load") => load::main(&args[1..]),
        Some("peer") => peer::main(&args[1..]),
        _ => std::process::exit(driver::main(&args)),
    }
}

/// Writes one line to stdout and flushes it (the driver reads these lines).
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Ends this process when stdin reaches end-of-file (the driver is gone).
fn exit_with_parent() {
    std::thread::spawn(|| {
        let mut sink = String::new();
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        while let Ok(n) = lock.read_line(&mut sink) {
            if n == 0 {
                break;
            }
            sink.clear();
        }
        std::process::exit(0);
    });
}

fn arg<T: std::str::FromStr>(args: &[String], k: usize, default: T) -> T {
    args.get(k).and_then(|a| a.parse().ok()).unwrap_or(default)
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("soak: no runtime: {e}");
            std::process::exit(2);
        }
    }
}

/// The load process: clients of the server object.
mod load {
    use super::*;

    #[derive(Default)]
    struct Stats {
        recv: AtomicU64,
        sent: AtomicU64,
        opened: AtomicU64,
        churned: AtomicU64,
        lost: AtomicU64,
        connect_failed: AtomicU64,
        bad: AtomicU64,
    }

    /// Connections that leave on each churn tick: one in `CHURN_MOD`.
    const CHURN_MOD: u64 = 50;

    pub fn main(args: &[String]) -> ! {
        let url: String = arg(args, 0, String::new());
        let n: u64 = arg(args, 1, 1000);
        let period = Duration::from_millis(arg(args, 2, 10_000));
        let churn = Duration::from_millis(arg(args, 3, 60_000));
        let _ = ws1c_host::raise_fd_limit();
        exit_with_parent();
        let stats = Arc::new(Stats::default());
        let st = stats.clone();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(1));
                let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
                say(&format!(
                    "STAT {} {} {} {} {} {} {}",
                    g(&st.recv),
                    g(&st.sent),
                    g(&st.opened),
                    g(&st.churned),
                    g(&st.lost),
                    g(&st.connect_failed),
                    g(&st.bad)
                ));
            }
        });
        let rt = runtime();
        rt.block_on(async move {
            let (tick_tx, tick_rx) = tokio::sync::watch::channel(0u64);
            tokio::spawn(async move {
                let mut k = 0u64;
                loop {
                    tokio::time::sleep(churn).await;
                    k += 1;
                    if tick_tx.send(k).is_err() {
                        return;
                    }
                }
            });
            for i in 0..n {
                let (url, stats, ticks) = (url.clone(), stats.clone(), tick_rx.clone());
                tokio::spawn(async move { conn_loop(i, url, n, period, stats, ticks).await });
                // Handshakes spread over a few seconds, not a burst.
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            std::future::pending::<()>().await;
        });
        std::process::exit(0);
    }

    type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

    async fn connect(url: &str) -> Option<Ws> {
        let addr = url.trim_start_matches("ws://").split('/').next()?;
        let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
        let _ = tcp.set_nodelay(true);
        let (ws, _) = tokio_tungstenite::client_async(url, tcp).await.ok()?;
        Some(ws)
    }

    async fn conn_loop(
        i: u64,
        url: String,
        n: u64,
        period: Duration,
        stats: Arc<Stats>,
        mut ticks: tokio::sync::watch::Receiver<u64>,
    ) {
        loop {
            let ws = match connect(&url).await {
                Some(ws) => ws,
                None => {
                    stats.connect_failed.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            stats.opened.fetch_add(1, Ordering::Relaxed);
            let (mut tx, mut rx) = ws.split();
            // Each connection's sends are spread over the period by its index.
            let phase = period.mul_f64((i % n) as f64 / n as f64);
            let mut next_send = tokio::time::Instant::now() + phase;
            let (mut seq_out, mut seq_in) = (0u64, 0u64);
            let leave = loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(next_send) => {
                        next_send += period;
                        if tx.send(Message::text(format!("L {seq_out}"))).await.is_err() {
                            break None;
                        }
                        seq_out += 1;
                        stats.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    m = rx.next() => match m {
                        Some(Ok(Message::Text(t))) => {
                            let got = t.strip_prefix("S ").and_then(|s| s.parse::<u64>().ok());
                            if got != Some(seq_in) {
                                if stats.bad.fetch_add(1, Ordering::Relaxed) < 20 {
                                    say(&format!("BAD load conn {i}: expected S {seq_in}, got {t:?}"));
                                }
                                seq_in = got.map_or(seq_in, |g| g + 1);
                            } else {
                                seq_in += 1;
                            }
                            stats.recv.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => break None,
                    },
                    r = ticks.changed() => {
                        if r.is_err() {
                            break None;
                        }
                        let k = *ticks.borrow_and_update();
                        if (i + k).is_multiple_of(CHURN_MOD) {
                            break Some(k);
                        }
                    }
                }
            };
            match leave {
                Some(k) => {
                    stats.churned.fetch_add(1, Ordering::Relaxed);
                    if k.is_multiple_of(2) {
                        // Polite: a close handshake, then wait (bounded) for the server's close.
                        let _ = tx.send(Message::Close(None)).await;
                        let _ = tokio::time::timeout(Duration::from_secs(5), async {
                            while let Some(Ok(_)) = rx.next().await {}
                        })
                        .await;
                    }
                    // Otherwise the socket is just dropped (FIN without a close frame).
                }
                None => {
                    stats.lost.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// The peer server of the client objects.
mod peer {
    use super::*;

    pub fn main(args: &[String]) -> ! {
        let port: u16 = arg(args, 0, 0);
        let generation: u64 = arg(args, 1, 0);
        let period = Duration::from_millis(arg(args, 2, 100));
        exit_with_parent();
        let rt = runtime();
        rt.block_on(async move {
            let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                Ok(l) => l,
                Err(e) => {
                    say(&format!("NOPORT {e}"));
                    std::process::exit(3);
                }
            };
            say(&format!("PORT {port}"));
            // Lines go out through one channel so each stays whole; the driver reads them.
            let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
            std::thread::spawn(move || {
                let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                while let Some(line) = out_rx.blocking_recv() {
                    let _ = writeln!(out, "{line}");
                    if out_rx.is_empty() {
                        let _ = out.flush();
                    }
                }
            });
            let mut conn = 0u64;
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                conn += 1;
                let (id, out) = (conn, out_tx.clone());
                tokio::spawn(async move {
                    let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                        return;
                    };
                    let (mut tx, mut rx) = ws.split();
                    let sender = tokio::spawn(async move {
                        let mut seq = 0u64;
                        let mut every = tokio::time::interval(period);
                        loop {
                            every.tick().await;
                            let m = Message::text(format!("P {generation} {id} {seq}"));
                            if tx.send(m).await.is_err() {
                                return;
                            }
                            seq += 1;
                        }
                    });
                    while let Some(Ok(m)) = rx.next().await {
                        if let Message::Text(t) = m {
                            let _ = out.send(format!("R {generation} {id} {t}"));
                        }
                    }
                    sender.abort();
                });
            }
        });
        std::process::exit(0);
    }
}

/// The driver: the add-in, the checks, the figures.
mod driver {
    use super::*;
    use ws1c_host::{Host, HostOptions, Obj, Var};

    /// Clients with `reconnect`.
    const CLIENTS: usize = 10;
    /// Connections of the load process.
    const LOAD_CONNS: u64 = 1000;
    /// Each load connection sends once per this period, and receives once per this period.
    const LOAD_PERIOD_MS: u64 = 10_000;
    /// Each client object sends this many messages per second; the peer sends as many back.
    const CLIENT_RATE: f64 = 10.0;

    /// Growth bounds after warm-up (also in README):
    /// RSS at the end at most the warm-up RSS plus this share of it…
    const RSS_GROWTH_SHARE: f64 = 0.25;
    /// …or plus this many MiB, whichever is larger;
    const RSS_GROWTH_MIN_MIB: f64 = 16.0;
    /// threads at any sample after warm-up at most the warm-up count plus this;
    const THREAD_GROWTH: i64 = 8;
    /// open fds at the end at most the warm-up count plus this (connections being churned or
    /// reconnecting at that moment).
    const FD_GROWTH: i64 = 64;

    struct Profile {
        total: Duration,
        sample: Duration,
        warmup: Duration,
        restart: Duration,
        churn: Duration,
    }

    impl Profile {
        fn new(secs: u64) -> Profile {
            let total = Duration::from_secs(secs.max(30));
            if secs <= 600 {
                Profile {
                    total,
                    sample: Duration::from_secs(10),
                    warmup: Duration::from_secs(30),
                    restart: Duration::from_secs(30),
                    churn: Duration::from_secs(10),
                }
            } else {
                Profile {
                    total,
                    sample: Duration::from_secs(60),
                    warmup: Duration::from_secs(300),
                    restart: Duration::from_secs(180),
                    churn: Duration::from_secs(60),
                }
            }
        }
    }

    enum Line {
        Load(String),
        Peer(String),
    }

    /// A child process whose stdout lines go to the driver's channel.
    struct Proc {
        child: Child,
        stdin: Option<ChildStdin>,
        reader: Option<std::thread::JoinHandle<()>>,
    }

    impl Proc {
        fn start(args: &[String], tx: mpsc::Sender<Line>, peer: bool) -> Result<Proc, String> {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let mut child = Command::new(exe)
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", args[0]))?;
            let stdin = child.stdin.take();
            let stdout = child.stdout.take().ok_or("no stdout")?;
            let reader = std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let l = if peer {
                        Line::Peer(line)
                    } else {
                        Line::Load(line)
                    };
                    if tx.send(l).is_err() {
                        break;
                    }
                }
            });
            Ok(Proc {
                child,
                stdin,
                reader: Some(reader),
            })
        }

        /// SIGKILL, reap, and wait until every line it printed is in the channel.
        fn kill(&mut self) {
            drop(self.stdin.take());
            let _ = self.child.kill();
            let _ = self.child.wait();
            if let Some(r) = self.reader.take() {
                let _ = r.join();
            }
        }
    }

    impl Drop for Proc {
        fn drop(&mut self) {
            self.kill();
        }
    }

    fn status_field(key: &str) -> i64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(-1)
    }

    #[derive(Clone, Copy, Default)]
    struct Sample {
        rss_kib: i64,
        threads: i64,
        fds: i64,
    }

    fn sample() -> Sample {
        Sample {
            rss_kib: status_field("VmRSS:"),
            threads: status_field("Threads:"),
            fds: std::fs::read_dir("/proc/self/fd").map_or(-1, |d| d.count() as i64),
        }
    }

    fn mib(kib: i64) -> f64 {
        kib as f64 / 1024.0
    }

    fn s(v: &str) -> Var {
        Var::Str(v.to_owned())
    }

    fn num(obj: &Obj, prop: &str) -> i64 {
        obj.get(prop).ok().and_then(|v| v.as_f64()).unwrap_or(-1.0) as i64
    }

    /// `ПолучитьСобытие(1, Событие, Данные)`: the header parsed, and the data.
    fn next_event(obj: &Obj) -> Option<(serde_json::Value, String)> {
        let mut args = [Var::I4(1), Var::Empty, Var::Empty];
        match obj.call("ПолучитьСобытие", &mut args) {
            Ok(Var::Bool(true)) => {}
            _ => return None,
        }
        let header = args[1].as_str().unwrap_or_default();
        let head = serde_json::from_str(header).unwrap_or(serde_json::Value::Null);
        Some((head, args[2].as_str().unwrap_or_default().to_owned()))
    }

    /// Paces sends at `per_sec`, with at most one second of catch-up.
    struct Pace {
        per_sec: f64,
        credit: f64,
        last: Instant,
    }

    impl Pace {
        fn new(per_sec: f64) -> Pace {
            Pace {
                per_sec,
                credit: 0.0,
                last: Instant::now(),
            }
        }

        fn take(&mut self) -> usize {
            let now = Instant::now();
            self.credit = (self.credit + (now - self.last).as_secs_f64() * self.per_sec)
                .min(self.per_sec.max(1.0));
            self.last = now;
            let n = self.credit.floor();
            self.credit -= n;
            n as usize
        }
    }

    /// The verdict so far.
    #[derive(Default)]
    struct Tally {
        violations: u64,
        shown: Vec<String>,
        server_in: u64,
        server_out: u64,
        server_opens: u64,
        server_closes: u64,
        client_in: u64,
        client_out: u64,
        client_refused: u64,
        client_opens: u64,
        client_reconnecting: u64,
        peer_in: u64,
        lost_in_flight: u64,
        unsent: u64,
        peer_restarts: u64,
        /// Last `STAT` of the load: recv sent opened churned lost connect_failed bad.
        load: [u64; 7],
    }

    impl Tally {
        fn violation(&mut self, what: String) {
            self.violations += 1;
            if self.shown.len() < 30 {
                eprintln!("VIOLATION: {what}");
                self.shown.push(what);
            }
        }
    }

    /// Per client object: what the peer saw from it and what it received from the peer.
    #[derive(Default)]
    struct ClientState {
        next_out: u64,
        /// Last seq the peer reported from this client (any connection), and on which
        /// connection `(gen, conn)`.
        peer_last: Option<(u64, (u64, u64))>,
        /// The peer connection this client receives from now, and the next seq expected.
        rx_conn: Option<(u64, u64)>,
        rx_next: u64,
        opens: u64,
        drops: u64,
        /// A Close/Fail event came since the last Open.
        broken: bool,
        /// `next_out` when the last Close/Fail event was taken: only seqs below it may be lost.
        cut: u64,
        /// `drops` when the peer first saw the current connection.
        drops_at_switch: u64,
    }

    /// Per server connection.
    #[derive(Default)]
    struct ServerConn {
        rx_next: u64,
        tx_next: u64,
    }

    pub fn main(args: &[String]) -> i32 {
        let secs = args
            .iter()
            .position(|a| a == "--secs")
            .and_then(|k| args.get(k + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(3600u64);
        match run(Profile::new(secs)) {
            Ok(true) => 0,
            Ok(false) => 1,
            Err(e) => {
                eprintln!("soak: {e}");
                2
            }
        }
    }

    fn free_port() -> Result<u16, String> {
        let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        Ok(l.local_addr().map_err(|e| e.to_string())?.port())
    }

    fn start_peer(port: u16, generation: u64, tx: &mpsc::Sender<Line>) -> Result<Proc, String> {
        let period = (1000.0 / CLIENT_RATE) as u64;
        Proc::start(
            &[
                "peer".into(),
                port.to_string(),
                generation.to_string(),
                period.to_string(),
            ],
            tx.clone(),
            true,
        )
    }

    fn run(p: Profile) -> Result<bool, String> {
        let _ = ws1c_host::raise_fd_limit();
        let host = Host::load_default();
        host.set_platform_capabilities(3);
        let (tx, rx) = mpsc::channel::<Line>();
        let mut t = Tally::default();

        // The server object and its load.
        let server = host
            .create("Server", HostOptions::server())
            .map_err(|e| format!("create Server: {e:?}"))?;
        server
            .set("РежимДоставки", s("Опрос"))
            .map_err(|e| format!("{e:?}"))?;
        server
            .call("Настроить", &mut [s(r#"{"max_connections": 1200}"#)])
            .map_err(|e| format!("Настроить: {e:?}"))?;
        server
            .call("Запустить", &mut [s("127.0.0.1"), Var::I4(0)])
            .map_err(|e| format!("Запустить: {e:?}"))?;
        let port = num(&server, "Порт");
        let mut load = Proc::start(
            &[
                "load".into(),
                format!("ws://127.0.0.1:{port}/soak"),
                LOAD_CONNS.to_string(),
                LOAD_PERIOD_MS.to_string(),
                p.churn.as_millis().to_string(),
            ],
            tx.clone(),
            false,
        )?;

        // The peer and the client objects.
        let peer_port = free_port()?;
        let mut generation = 1u64;
        let mut peer = Some(start_peer(peer_port, generation, &tx)?);
        wait_peer_ready(&rx, &mut t)?;
        let options =
            r#"{"reconnect": {"enabled": true, "min_delay_ms": 200, "max_delay_ms": 2000}}"#;
        let mut clients = Vec::new();
        for k in 0..CLIENTS {
            let c = host
                .create("Client", HostOptions::server())
                .map_err(|e| format!("create Client: {e:?}"))?;
            c.set("РежимДоставки", s("Опрос"))
                .map_err(|e| format!("{e:?}"))?;
            c.call(
                "Подключиться",
                &mut [s(&format!("ws://127.0.0.1:{peer_port}/c{k}")), s(options)],
            )
            .map_err(|e| format!("Подключиться {k}: {e:?}"))?;
            clients.push(c);
        }
        let mut cs: Vec<ClientState> = (0..CLIENTS).map(|_| ClientState::default()).collect();
        let mut conns: HashMap<i64, ServerConn> = HashMap::new();
        let mut ring: VecDeque<i64> = VecDeque::new();
        let mut server_pace = Pace::new(LOAD_CONNS as f64 * 1000.0 / LOAD_PERIOD_MS as f64);
        let mut client_pace: Vec<Pace> = (0..CLIENTS).map(|_| Pace::new(CLIENT_RATE)).collect();

        let t0 = Instant::now();
        let mut next_sample = t0;
        let mut next_restart = t0 + p.restart;
        let mut warm: Option<Sample> = None;
        let mut first: Option<Sample> = None;
        let (mut max_threads, mut max_fds, mut worst_threads) = (0i64, 0i64, 0i64);
        let mut last_moved = 0u64;
        let mut stalls = 0u32;
        println!(
            "soak: {} s, sample every {} s, warm-up {} s, peer restart every {} s, churn every {} s ({} of {} connections)",
            p.total.as_secs(),
            p.sample.as_secs(),
            p.warmup.as_secs(),
            p.restart.as_secs(),
            p.churn.as_secs(),
            LOAD_CONNS / 50,
            LOAD_CONNS
        );
        println!(
            "soak: bounds after warm-up: RSS at the end <= warm + max({:.0} %, {RSS_GROWTH_MIN_MIB} MiB), threads <= warm + {THREAD_GROWTH}, fds at the end <= warm + {FD_GROWTH}; no sequence gap, duplicate or reordering outside a reported break",
            RSS_GROWTH_SHARE * 100.0
        );
        let mut last = sample();
        while t0.elapsed() < p.total {
            // Server: events in, then sends out.
            for _ in 0..2000 {
                let Some((head, data)) = next_event(&server) else {
                    break;
                };
                server_event(&head, &data, &mut conns, &mut ring, &mut t);
            }
            for _ in 0..server_pace.take() {
                let Some(id) = ring.pop_front() else { break };
                let Some(c) = conns.get_mut(&id) else {
                    continue; // closed meanwhile
                };
                ring.push_back(id);
                let mut a = [Var::I4(id as i32), s(&format!("S {}", c.tx_next))];
                match server.call("Отправить", &mut a) {
                    Ok(v) if v.as_f64() == Some(1.0) => {
                        c.tx_next += 1;
                        t.server_out += 1;
                    }
                    Ok(_) => {}
                    Err(e) => t.violation(format!("server Отправить({id}) raised: {e:?}")),
                }
            }
            // Clients: events in, then sends out.
            for (k, c) in clients.iter().enumerate() {
                for _ in 0..500 {
                    let Some((head, data)) = next_event(c) else {
                        break;
                    };
                    client_event(k, &head, &data, &mut cs[k], &mut t);
                }
                for _ in 0..client_pace[k].take() {
                    let text = format!("C{k} {}", cs[k].next_out);
                    match c.call("Отправить", &mut [s(&text)]) {
                        Ok(_) => {
                            cs[k].next_out += 1;
                            t.client_out += 1;
                        }
                        // "Not connected" while reconnecting: expected, not a message.
                        Err(_) => t.client_refused += 1,
                    }
                }
            }
            // Lines from the load and the peer.
            while let Ok(line) = rx.try_recv() {
                on_line(line, &mut cs, &mut t);
            }
            // Peer restarts.
            if Instant::now() >= next_restart && t0.elapsed() + p.restart / 2 < p.total {
                next_restart += p.restart;
                if let Some(mut old) = peer.take() {
                    old.kill();
                }
                while let Ok(line) = rx.try_recv() {
                    on_line(line, &mut cs, &mut t);
                }
                // Long enough for the clients to see refused connects and back off.
                std::thread::sleep(Duration::from_secs(1));
                generation += 1;
                t.peer_restarts += 1;
                peer = Some(start_peer(peer_port, generation, &tx)?);
                wait_peer_ready(&rx, &mut t)?;
            }
            // Figures.
            if Instant::now() >= next_sample {
                next_sample += p.sample;
                last = sample();
                let since = t0.elapsed();
                first.get_or_insert(last);
                if since >= p.warmup {
                    if warm.is_none() {
                        warm = Some(last);
                    }
                    max_threads = max_threads.max(last.threads);
                    max_fds = max_fds.max(last.fds);
                    worst_threads = worst_threads.max(last.threads);
                }
                let pend: Vec<String> = clients
                    .iter()
                    .map(|c| num(c, "ВОчереди").to_string())
                    .collect();
                let status: String = clients
                    .iter()
                    .map(|c| num(c, "Статус").to_string())
                    .collect::<Vec<_>>()
                    .join("");
                if let Some(k) = status.find(|ch: char| ch != '1' && ch != '2') {
                    t.violation(format!("client {k} gave up: Статус {status}"));
                }
                let moved = t.server_in + t.server_out + t.client_in + t.peer_in;
                println!(
                    "[{:>5}s] rss {:.1} MiB, threads {}, fds {} | server: conns {}, ВОчереди {}, НеДоставлено {}, in {}, out {} | clients: Статус {}, ВОчереди [{}], in {}, out {}, refused {}, reconnects {} | load: recv {}, sent {}, opened {}, churned {}, lost {} | peer: gen {}, in {}, lost in flight {} | violations {}",
                    since.as_secs(),
                    mib(last.rss_kib),
                    last.threads,
                    last.fds,
                    num(&server, "КоличествоСоединений"),
                    num(&server, "ВОчереди"),
                    num(&server, "НеДоставлено"),
                    t.server_in,
                    t.server_out,
                    status,
                    pend.join(","),
                    t.client_in,
                    t.client_out,
                    t.client_refused,
                    t.client_opens.saturating_sub(CLIENTS as u64),
                    t.load[0],
                    t.load[1],
                    t.load[2],
                    t.load[3],
                    t.load[4],
                    generation,
                    t.peer_in,
                    t.lost_in_flight,
                    t.violations
                );
                if since > Duration::from_secs(5) && moved == last_moved {
                    stalls += 1;
                    t.violation(format!("nothing moved for {} s", p.sample.as_secs()));
                }
                last_moved = moved;
            }
            std::thread::sleep(Duration::from_millis(20));
        }

        // Drain what is left, then stop everything.
        while let Ok(line) = rx.try_recv() {
            on_line(line, &mut cs, &mut t);
        }
        let end = sample();
        load.kill();
        if let Some(mut old) = peer.take() {
            old.kill();
        }
        let mut took = Vec::new();
        for mut c in clients {
            took.push(c.done());
            c.destroy();
        }
        let mut server = server;
        took.push(server.done());
        server.destroy();
        let slowest = took.iter().max().copied().unwrap_or_default();
        if slowest > Duration::from_secs(6) {
            t.violation(format!("Done() took {slowest:?} (bound 5 s + 1 s)"));
        }
        for (k, c) in cs.iter().enumerate() {
            if c.drops < t.peer_restarts || c.opens != c.drops + 1 {
                t.violation(format!(
                    "client {k}: {} peer restarts, {} Close/Fail events, {} Open events",
                    t.peer_restarts, c.drops, c.opens
                ));
            }
        }
        for v in host.violations() {
            t.violation(format!("host: {v}"));
        }
        if host.calls_after_done() > 0 {
            t.violation(format!("{} calls after Done()", host.calls_after_done()));
        }
        if t.load[4] > 0 {
            t.violation(format!(
                "{} load connections closed by the server unasked",
                t.load[4]
            ));
        }
        if t.load[6] > 0 {
            t.violation(format!(
                "{} sequence errors seen by the load clients",
                t.load[6]
            ));
        }
        let _ = stalls;

        // Growth bounds.
        let first = first.unwrap_or(end);
        let warm = warm.unwrap_or(last);
        let rss_bound = warm.rss_kib
            + ((warm.rss_kib as f64 * RSS_GROWTH_SHARE).max(RSS_GROWTH_MIN_MIB * 1024.0) as i64);
        let mut ok = t.violations == 0;
        let mut verdicts = Vec::new();
        if end.rss_kib > rss_bound {
            ok = false;
            verdicts.push(format!(
                "RSS grew: {:.1} MiB at the end > bound {:.1} MiB",
                mib(end.rss_kib),
                mib(rss_bound)
            ));
        }
        if worst_threads > warm.threads + THREAD_GROWTH {
            ok = false;
            verdicts.push(format!(
                "threads grew: {worst_threads} > {} + {THREAD_GROWTH}",
                warm.threads
            ));
        }
        if end.fds > warm.fds + FD_GROWTH {
            ok = false;
            verdicts.push(format!(
                "fds grew: {} at the end > {} + {FD_GROWTH}",
                end.fds, warm.fds
            ));
        }
        let moved = t.server_in + t.server_out + t.client_in + t.peer_in + t.load[0] + t.load[1];
        println!("\nsoak summary ({} s)", t0.elapsed().as_secs());
        println!(
            "  RSS: first sample {:.1} MiB, after warm-up {:.1} MiB, end {:.1} MiB (bound {:.1} MiB)",
            mib(first.rss_kib),
            mib(warm.rss_kib),
            mib(end.rss_kib),
            mib(rss_bound)
        );
        println!(
            "  threads: after warm-up {}, max {max_threads} (bound {}), end {}",
            warm.threads,
            warm.threads + THREAD_GROWTH,
            end.threads
        );
        println!(
            "  fds: after warm-up {}, max {max_fds}, end {} (bound {})",
            warm.fds,
            end.fds,
            warm.fds + FD_GROWTH
        );
        println!(
            "  messages: server in {} / out {}, clients in {} / out {} (refused while reconnecting {}), peer in {}; load sent {} / received {}; {moved} in all",
            t.server_in,
            t.server_out,
            t.client_in,
            t.client_out,
            t.client_refused,
            t.peer_in,
            t.load[1],
            t.load[0]
        );
        println!(
            "  server connections: {} opened, {} closed; load churned {}, reopened {}",
            t.server_opens, t.server_closes, t.load[3], t.load[2]
        );
        println!(
            "  peer restarts {}, client reconnects {} (Reconnecting events {}), lost in flight {} (Unsent in events {})",
            t.peer_restarts,
            t.client_opens.saturating_sub(CLIENTS as u64),
            t.client_reconnecting,
            t.lost_in_flight,
            t.unsent
        );
        println!("  slowest Done(): {slowest:?}");
        println!(
            "  sequence gaps, duplicates and other violations: {}",
            t.violations
        );
        for v in &verdicts {
            println!("  FAIL: {v}");
        }
        for v in &t.shown {
            println!("  FAIL: {v}");
        }
        println!("soak: {}", if ok { "PASS" } else { "FAIL" });
        Ok(ok)
    }

    fn wait_peer_ready(rx: &mpsc::Receiver<Line>, t: &mut Tally) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Line::Peer(l)) if l.starts_with("PORT ") => return Ok(()),
                Ok(Line::Peer(l)) if l.starts_with("NOPORT") => {
                    return Err(format!("the peer could not listen: {l}"));
                }
                Ok(Line::Load(l)) => {
                    let mut none = Vec::new();
                    on_line(Line::Load(l), &mut none, t);
                }
                _ => {}
            }
        }
        Err("the peer did not start within 10 s".into())
    }

    fn on_line(line: Line, cs: &mut [ClientState], t: &mut Tally) {
        match line {
            Line::Load(l) => {
                if let Some(rest) = l.strip_prefix("STAT ") {
                    for (k, v) in rest.split_whitespace().enumerate().take(7) {
                        t.load[k] = v.parse().unwrap_or(t.load[k]);
                    }
                } else if l.starts_with("BAD") {
                    eprintln!("{l}");
                }
            }
            Line::Peer(l) => {
                // R gen conn C<k> seq
                let f: Vec<&str> = l.split_whitespace().collect();
                if f.len() != 5 || f[0] != "R" {
                    return;
                }
                let (Ok(generation), Ok(conn), Some(Ok(k)), Ok(seq)) = (
                    f[1].parse::<u64>(),
                    f[2].parse::<u64>(),
                    f[3].strip_prefix('C').map(str::parse::<usize>),
                    f[4].parse::<u64>(),
                ) else {
                    t.violation(format!("peer received something odd: {l:?}"));
                    return;
                };
                let Some(c) = cs.get_mut(k) else { return };
                t.peer_in += 1;
                let here = (generation, conn);
                match c.peer_last {
                    Some((last, on)) if seq <= last => t.violation(format!(
                        "client {k} → peer: seq {seq} after {last} (duplicate or reordered; connection {on:?} then {here:?})"
                    )),
                    Some((last, on)) if on == here && seq != last + 1 => t.violation(format!(
                        "client {k} → peer: gap {last} → {seq} within one connection {here:?}"
                    )),
                    Some((_, on)) if on == here => {}
                    // A new connection: loss allowed only after a break event was taken and
                    // only of messages accepted before it.
                    prev => {
                        let first_lost = prev.map_or(0, |(last, _)| last + 1);
                        if seq > first_lost {
                            if c.drops == c.drops_at_switch {
                                t.violation(format!(
                                    "client {k} → peer: {first_lost}..{seq} lost with no Close/Fail event"
                                ));
                            } else if seq > c.cut {
                                t.violation(format!(
                                    "client {k} → peer: {first_lost}..{seq} lost, but {} and later were accepted after the break event",
                                    c.cut
                                ));
                            }
                            t.lost_in_flight += seq - first_lost;
                        }
                        c.drops_at_switch = c.drops;
                    }
                }
                c.peer_last = Some((seq, here));
            }
        }
    }

    fn event_kind(head: &serde_json::Value) -> (&str, &str) {
        (
            head["Event"].as_str().unwrap_or(""),
            head["State"].as_str().unwrap_or(""),
        )
    }

    fn server_event(
        head: &serde_json::Value,
        data: &str,
        conns: &mut HashMap<i64, ServerConn>,
        ring: &mut VecDeque<i64>,
        t: &mut Tally,
    ) {
        let id = head["Connection"].as_i64().unwrap_or(-1);
        match event_kind(head) {
            ("Connection", "Open") => {
                t.server_opens += 1;
                if conns.insert(id, ServerConn::default()).is_some() {
                    t.violation(format!("server: ClientId {id} opened twice"));
                }
                ring.push_back(id);
            }
            ("Connection", "Close" | "Fail") => {
                t.server_closes += 1;
                if conns.remove(&id).is_none() {
                    t.violation(format!("server: close of unknown ClientId {id}"));
                }
            }
            ("Message", _) => {
                t.server_in += 1;
                let Some(c) = conns.get_mut(&id) else {
                    t.violation(format!("server: message from ClientId {id} not open"));
                    return;
                };
                let got = data.strip_prefix("L ").and_then(|s| s.parse::<u64>().ok());
                if got != Some(c.rx_next) {
                    t.violation(format!(
                        "load → server: ClientId {id} expected L {}, got {data:?}",
                        c.rx_next
                    ));
                }
                c.rx_next = got.map_or(c.rx_next, |g| g + 1);
            }
            other => t.violation(format!("server: unexpected event {other:?}")),
        }
    }

    fn client_event(
        k: usize,
        head: &serde_json::Value,
        data: &str,
        c: &mut ClientState,
        t: &mut Tally,
    ) {
        match event_kind(head) {
            ("Connection", "Open") => {
                t.client_opens += 1;
                if c.opens > 0 && !c.broken {
                    t.violation(format!("client {k}: Open again without a Close/Fail event"));
                }
                c.opens += 1;
                c.broken = false;
            }
            ("Connection", "Reconnecting") => t.client_reconnecting += 1,
            // The peer was killed: a fail (or close) event, then reconnection. Giving up is
            // caught through `Статус` at every sample.
            ("Connection", "Close" | "Fail") => {
                c.drops += 1;
                c.broken = true;
                c.cut = c.next_out;
                t.unsent += head["Unsent"].as_u64().unwrap_or(0);
            }
            ("Message", _) => {
                t.client_in += 1;
                let f: Vec<u64> = data
                    .strip_prefix("P ")
                    .map(|r| r.split(' ').filter_map(|x| x.parse().ok()).collect())
                    .unwrap_or_default();
                let [generation, conn, seq] = f[..] else {
                    t.violation(format!("client {k}: odd message {data:?}"));
                    return;
                };
                let here = (generation, conn);
                match c.rx_conn {
                    Some(now) if here < now => t.violation(format!(
                        "peer → client {k}: message of connection {here:?} after {now:?}"
                    )),
                    Some(now) if here == now => {
                        if seq != c.rx_next {
                            t.violation(format!(
                                "peer → client {k}: connection {here:?} expected {}, got {seq}",
                                c.rx_next
                            ));
                        }
                        c.rx_next = seq + 1;
                    }
                    _ => {
                        if seq != 0 {
                            t.violation(format!(
                                "peer → client {k}: new connection {here:?} starts at {seq}, not 0"
                            ));
                        }
                        c.rx_conn = Some(here);
                        c.rx_next = seq + 1;
                    }
                }
            }
            ("Pong", _) => {}
            other => t.violation(format!("client {k}: unexpected event {other:?}")),
        }
    }
}
