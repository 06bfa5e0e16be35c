//! Shared helpers of the host tests: one loaded library per test process, objects created
//! the way the platform creates them, and the end-of-life checks every test repeats.

#![allow(dead_code)]

pub mod fault;
pub mod sio;

use std::sync::{Mutex, MutexGuard, OnceLock};

use ws1c_host::{Host, HostOptions, Obj};

/// The add-in, loaded once per test binary (as the platform loads it once per process).
pub fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        let host = Host::load_default();
        assert_eq!(host.set_platform_capabilities(3), 3);
        // A library built without the test-only members fails here, once, with the command
        // to run, instead of deep inside the first test that calls one of them.
        let probe = host
            .create("Client", HostOptions::default())
            .unwrap_or_else(|e| panic!("create Client: {e:?}"));
        assert!(
            probe.find_method("TestEcho") >= 0,
            "{} was built without the test-only members: run `cargo build --release -p \
             ws1c-abi --features test-hooks` (or scripts/test.sh)",
            host.path().display()
        );
        probe.destroy();
        host
    })
}

/// A new object of `class` with the default (Russian, thin client) options.
pub fn create(class: &str) -> Obj {
    create_with(class, HostOptions::default())
}

/// A new object of `class` with `opts`.
pub fn create_with(class: &str, opts: HostOptions) -> Obj {
    host()
        .create(class, opts)
        .unwrap_or_else(|e| panic!("create {class}: {e:?}"))
}

/// Destroys `obj` as the platform does and checks what the platform would suffer from: a
/// call into it after `Done()`, or a protocol violation seen by the host.
pub fn finish(obj: Obj) {
    let conn = obj.conn();
    obj.destroy();
    assert_eq!(
        conn.calls_after_done(),
        0,
        "calls into the platform after Done()"
    );
    assert!(
        conn.violations().is_empty(),
        "protocol violations: {:?}",
        conn.violations()
    );
}

/// Serialises the tests of one binary: the platform's memory manager is process-wide, so
/// "nothing outstanding" can only be asserted while no other test is mid-call.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Host-wide memory checks: every buffer the add-in handed out was freed, and the add-in
/// freed nothing it did not own. Call with [`serial`] held, after destroying the objects.
pub fn assert_memory_clean() {
    let m = host().mem();
    assert_eq!(m.outstanding, 0, "platform allocations not freed: {m:?}");
    assert_eq!(
        m.unknown_frees, 0,
        "frees of pointers the platform never gave: {m:?}"
    );
}

/// A Python `websockets` peer process (tests/peers/ws_peer.py), killed on drop.
pub struct PyPeer {
    child: std::process::Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
}

/// The Python with `websockets`: `WS1C_PYTHON`, else the project's `.venv`, else `python3`.
pub fn python() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("WS1C_PYTHON") {
        return p.into();
    }
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

impl PyPeer {
    /// Starts `ws_peer.py` with `args` and waits for its port.
    pub fn start(args: &[&str]) -> PyPeer {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/ws_peer.py");
        let mut child = Command::new(python())
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the Python peer (scripts/test.sh installs websockets into .venv)");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("peer output");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok());
        let Some(port) = port else {
            let _ = child.kill();
            panic!("the Python peer did not start: {line:?}");
        };
        PyPeer { child, port }
    }

    /// `ws://127.0.0.1:port/path`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for PyPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test CA and a `localhost` / 127.0.0.1 leaf signed by it, as PEM files in a fresh
/// temporary folder.
pub struct TestPki {
    /// The folder.
    pub dir: std::path::PathBuf,
    /// CA certificate.
    pub ca: std::path::PathBuf,
    /// Leaf certificate.
    pub cert: std::path::PathBuf,
    /// Leaf key (PKCS#8, plain).
    pub key: std::path::PathBuf,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestPki {
    /// Makes the files.
    pub fn new() -> TestPki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("ws1c-pki-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let ca_key = KeyPair::generate().expect("key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ws1c test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA");
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().expect("key");
        let leaf_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("params");
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).expect("leaf");
        let pki = TestPki {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            dir,
            issuer,
        };
        std::fs::write(&pki.ca, ca_cert.pem()).expect("write");
        std::fs::write(&pki.cert, leaf.pem()).expect("write");
        std::fs::write(&pki.key, leaf_key.serialize_pem()).expect("write");
        pki
    }
}

impl TestPki {
    /// Another leaf signed by the CA, for `names`, as `<stem>.pem` and `<stem>.key`.
    pub fn leaf(&self, stem: &str, names: &[&str]) -> (std::path::PathBuf, std::path::PathBuf) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, stem);
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        let (c, k) = (
            self.dir.join(format!("{stem}.pem")),
            self.dir.join(format!("{stem}.key")),
        );
        std::fs::write(&c, cert.pem()).expect("write");
        std::fs::write(&k, key.serialize_pem()).expect("write");
        (c, k)
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A tokio-tungstenite server on 127.0.0.1:0 in its own thread (a current-thread runtime):
/// every accepted WebSocket runs `handler` as a task. Stops when dropped.
pub struct WsServer {
    /// The port.
    pub port: u16,
    _thread: Background,
}

/// A helper thread told to stop, and joined, on drop.
pub struct Background {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    /// A thread that stops when `stop` fires.
    pub fn new(
        stop: tokio::sync::oneshot::Sender<()>,
        thread: std::thread::JoinHandle<()>,
    ) -> Self {
        Background {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A server-side WebSocket of [`WsServer`].
pub type ServerWs = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Runs `fut` to completion on a current-thread runtime in a new thread.
pub fn in_own_runtime<F>(fut: F) -> std::thread::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt")
            .block_on(fut)
    })
}

/// Listens on 127.0.0.1:0 in a thread of its own (a current-thread runtime): `accept` is
/// called for each connection in order of arrival, and the future it returns runs as a
/// task. Returns the port and the thread, stopped on drop.
pub fn serve_loopback<A, F>(mut accept: A) -> (u16, Background)
where
    A: FnMut(tokio::net::TcpStream) -> F + Send + 'static,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = in_own_runtime(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        port_tx
            .send(listener.local_addr().expect("addr").port())
            .expect("port");
        loop {
            let accepted = tokio::select! {
                _ = &mut stop_rx => return,
                a = listener.accept() => a,
            };
            if let Ok((tcp, _)) = accepted {
                tokio::spawn(accept(tcp));
            }
        }
    });
    let port = port_rx.recv().expect("listening port");
    (port, Background::new(stop_tx, thread))
}

/// A WebSocket server on a fixed port that can be killed (every connection dropped, as when
/// a server process dies) and started again on the same port.
pub struct RestartablePeer {
    /// The port.
    pub port: u16,
    handler: std::sync::Arc<dyn Fn(ServerWs) -> PeerTask + Send + Sync>,
    run: Option<Background>,
}

type PeerTask = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

impl RestartablePeer {
    /// Starts it on a free port.
    pub fn start<H, F>(handler: H) -> RestartablePeer
    where
        H: Fn(ServerWs) -> F + Send + Sync + 'static,
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut p = RestartablePeer {
            port: free_port(),
            handler: std::sync::Arc::new(move |ws| Box::pin(handler(ws)) as PeerTask),
            run: None,
        };
        p.up();
        p
    }

    /// Listens again (retrying the bind while the old socket lingers).
    pub fn up(&mut self) {
        let (port, handler) = (self.port, self.handler.clone());
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = in_own_runtime(async move {
            let listener = loop {
                match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                    Ok(l) => break l,
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                }
            };
            ready_tx.send(()).expect("ready");
            // Dropped with the runtime when stopped: every connection dies at once.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    _ = &mut stop_rx => return,
                    a = listener.accept() => if let Ok((tcp, _)) = a {
                        let handler = handler.clone();
                        conns.spawn(async move {
                            if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                                handler(ws).await;
                            }
                        });
                    },
                }
            }
        });
        ready_rx.recv().expect("listening");
        self.run = Some(Background::new(stop_tx, thread));
    }

    /// Kills it: the listener and every connection go.
    pub fn down(&mut self) {
        self.run = None;
    }

    /// `ws://127.0.0.1:port/`.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.port)
    }
}

impl WsServer {
    /// Starts it and waits for its port.
    pub fn start<H, F>(handler: H) -> WsServer
    where
        H: Fn(ServerWs) -> F + Send + Sync + 'static,
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let handler = std::sync::Arc::new(handler);
        // The handshake in the task too: a slow client never holds up the others.
        let (port, thread) = serve_loopback(move |tcp| {
            let handler = handler.clone();
            async move {
                if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                    handler(ws).await;
                }
            }
        });
        WsServer {
            port,
            _thread: thread,
        }
    }

    /// `ws://127.0.0.1:port/`.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.port)
    }
}

/// A [`WsServer`] that floods every client with numbered texts "0", "1", … (`count` of
/// them, or until the client goes away if `None`), then waits for the client to close.
pub struct FloodPeer;

impl FloodPeer {
    /// Starts the server.
    pub fn start(count: Option<u64>) -> WsServer {
        FloodPeer::spawn(count, false)
    }

    /// A server that completes the handshake and then never reads nor writes.
    pub fn silent() -> WsServer {
        FloodPeer::spawn(Some(0), true)
    }

    fn spawn(count: Option<u64>, silent: bool) -> WsServer {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        WsServer::start(move |mut ws| async move {
            if silent {
                tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            }
            let mut i: u64 = 0;
            while count.is_none_or(|c| i < c) {
                if ws.feed(Message::text(i.to_string())).await.is_err() {
                    return;
                }
                i += 1;
                if i.is_multiple_of(256) && ws.flush().await.is_err() {
                    return;
                }
            }
            let _ = ws.flush().await;
            while let Some(Ok(_)) = ws.next().await {}
        })
    }
}

/// Resident memory of this process, in KiB (Linux).
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The add-in's runtime threads alive in this process (Linux; they are named
/// `ws1c-worker`). Counting only those keeps the figure independent of the test harness's
/// own threads.
pub fn thread_count() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.filter_map(|t| t.ok())
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.starts_with("ws1c-worker"))
        })
        .count()
}

/// Runs `tests/peers/ws_client.py` against `url` with `args` while `serve` echoes on the
/// test thread; returns the client's output (its last line is "OK" on success).
pub fn py_client(url: &str, args: &[&str], serve: impl FnMut()) -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/ws_client.py");
    let mut cmd = std::process::Command::new(python());
    cmd.arg(script).arg(url).args(args);
    run_peer(cmd, serve)
}

/// Runs a Node script of `tests/peers/node/` with `args` while `serve` runs on the test
/// thread; returns its output.
pub fn node_peer(script: &str, args: &[&str], serve: impl FnMut()) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/node");
    let mut cmd = std::process::Command::new("node");
    cmd.arg(dir.join(script)).args(args);
    run_peer(cmd, serve)
}

/// Runs a peer process, calling `serve` until it exits (30 s at most); returns its stdout.
pub fn run_peer(mut cmd: std::process::Command, mut serve: impl FnMut()) -> String {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the peer");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
        serve();
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("peer output");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Base64 of the SHA-256 of `cert`'s public key, for Chromium's
/// `--ignore-certificate-errors-spki-list` (openssl).
pub fn spki_hash(cert: &std::path::Path) -> String {
    let script = format!(
        "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | openssl base64 -A",
        cert.display()
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .expect("openssl");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// An encrypted PKCS#8 copy of `key` (openssl), with `password`.
pub fn encrypt_key(key: &std::path::Path, out: &std::path::Path, password: &str) {
    let status = std::process::Command::new("openssl")
        .args(["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in"])
        .arg(key)
        .arg("-out")
        .arg(out)
        .arg("-passout")
        .arg(format!("pass:{password}"))
        .status()
        .expect("openssl (scripts/test.sh installs it)");
    assert!(status.success());
}

/// `n` tokio-tungstenite clients in their own thread, each sending numbered texts as fast
/// as the server takes them until it closes; stops when dropped.
pub struct FloodClients {
    _thread: Background,
}

impl FloodClients {
    /// Connects them; each sends until the server closes.
    pub fn start(url: &str, n: usize) -> FloodClients {
        FloodClients::sending(url, n, None)
    }

    /// Connects them; each sends `count` numbered texts (or without end), then stays open.
    pub fn sending(url: &str, n: usize, count: Option<u64>) -> FloodClients {
        use futures_util::SinkExt;
        use tokio_tungstenite::tungstenite::Message;
        let url = url.to_owned();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("rt");
            rt.block_on(async move {
                // Every client completes its handshake before any floods: on one thread, an
                // early flooder would otherwise starve the later handshakes.
                let mut clients = Vec::with_capacity(n);
                for _ in 0..n {
                    let addr = url
                        .trim_start_matches("ws://")
                        .trim_end_matches('/')
                        .to_owned();
                    let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else {
                        continue;
                    };
                    if let Ok((ws, _)) = tokio_tungstenite::client_async(url.as_str(), tcp).await {
                        clients.push(ws);
                    }
                }
                for mut ws in clients {
                    tokio::spawn(async move {
                        let mut i: u64 = 0;
                        while count.is_none_or(|c| i < c) {
                            if ws.feed(Message::text(i.to_string())).await.is_err() {
                                return;
                            }
                            i += 1;
                            if i.is_multiple_of(64) && ws.flush().await.is_err() {
                                return;
                            }
                        }
                        let _ = ws.flush().await;
                        // Stay open (answering pings and closes) until the server ends it.
                        use futures_util::StreamExt;
                        while let Some(Ok(_)) = ws.next().await {}
                    });
                }
                let _ = stop_rx.await;
            });
        });
        FloodClients {
            _thread: Background::new(stop_tx, thread),
        }
    }
}

/// A PKCS#12 (`.pfx`) bundle of `cert` and `key` (openssl), with `password`.
pub fn make_pfx(
    cert: &std::path::Path,
    key: &std::path::Path,
    out: &std::path::Path,
    password: &str,
) {
    let status = std::process::Command::new("openssl")
        .args(["pkcs12", "-export", "-in"])
        .arg(cert)
        .arg("-inkey")
        .arg(key)
        .arg("-out")
        .arg(out)
        .arg("-passout")
        .arg(format!("pass:{password}"))
        .status()
        .expect("openssl (scripts/test.sh installs it)");
    assert!(status.success());
}

/// A `pproxy` process (PyPI, in the venv) with HTTP, SOCKS5 and SOCKS4 listeners, and HTTP and
/// SOCKS5 with a password; killed on drop.
pub struct Pproxy {
    child: std::process::Child,
    /// Port of the `http` listener.
    pub http: u16,
    /// Port of the `socks5` listener.
    pub socks5: u16,
    /// Port of the `socks4` listener.
    pub socks4: u16,
    /// Port of the `http_auth` listener.
    pub http_auth: u16,
    /// Port of the `socks5_auth` listener.
    pub socks5_auth: u16,
}

/// A port that was free a moment ago (for programs that cannot listen on port 0).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Pproxy {
    /// Starts it (user `user`, password `pa55` on the `_auth` listeners) and waits for every port.
    pub fn start() -> Pproxy {
        let ports: Vec<u16> = (0..5).map(|_| free_port()).collect();
        let mut cmd = std::process::Command::new(python());
        cmd.args(["-m", "pproxy", "--auth", "0"])
            .arg("-l")
            .arg(format!("http://127.0.0.1:{}", ports[0]))
            .arg("-l")
            .arg(format!("socks5://127.0.0.1:{}", ports[1]))
            .arg("-l")
            .arg(format!("socks4://127.0.0.1:{}", ports[2]))
            .arg("-l")
            .arg(format!("http://127.0.0.1:{}#user:pa55", ports[3]))
            .arg("-l")
            .arg(format!("socks5://127.0.0.1:{}#user:pa55", ports[4]))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let child = cmd
            .spawn()
            .expect("pproxy (scripts/test.sh installs it into .venv)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        for p in &ports {
            while std::net::TcpStream::connect(("127.0.0.1", *p)).is_err() {
                assert!(std::time::Instant::now() < deadline, "pproxy did not start");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        Pproxy {
            child,
            http: ports[0],
            socks5: ports[1],
            socks4: ports[2],
            http_auth: ports[3],
            socks5_auth: ports[4],
        }
    }
}

impl Drop for Pproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A 1C `Строка`.
pub fn s(v: &str) -> ws1c_host::Var {
    ws1c_host::Var::Str(v.to_owned())
}

/// `Клиент.Принять(Таймаут, Данные)`: the message, or `None` after the timeout (then
/// `Данные` must be an empty string).
pub fn client_receive(c: &Obj, timeout_ms: i32) -> Option<ws1c_host::Var> {
    use ws1c_host::Var;
    let mut args = [Var::I4(timeout_ms), Var::Empty];
    match c.call("Принять", &mut args).expect("Принять") {
        Var::Bool(true) => Some(args[1].clone()),
        Var::Bool(false) => {
            assert_eq!(args[1], s(""), "Данные is an empty string after a timeout");
            None
        }
        other => panic!("Принять returned {other:?}"),
    }
}

/// `Клиент.Получить(Таймаут, Данные)` for text: the message as a Rust string.
pub fn receive_text(c: &Obj, timeout_ms: i32) -> Option<String> {
    client_receive(c, timeout_ms).map(|v| v.as_str().expect("a text message").to_owned())
}

/// `ПолучитьСобытие(Таймаут, Событие, Данные)`: (`Событие`, `Данные`), or `None` after the
/// timeout.
pub fn next_event(obj: &Obj, timeout_ms: i32) -> Option<(String, String)> {
    use ws1c_host::Var;
    let mut args = [Var::I4(timeout_ms), Var::Empty, Var::Empty];
    match obj
        .call("ПолучитьСобытие", &mut args)
        .expect("ПолучитьСобытие")
    {
        Var::Bool(true) => Some((
            args[1].as_str().expect("Событие").to_owned(),
            args[2].as_str().expect("Данные").to_owned(),
        )),
        _ => None,
    }
}

/// [`next_event`] with the header parsed.
pub fn next_event_json(obj: &Obj, timeout_ms: i32) -> Option<(serde_json::Value, String)> {
    next_event(obj, timeout_ms)
        .map(|(h, d)| (serde_json::from_str(&h).expect("event header JSON"), d))
}

/// The 1C server (a scheduled job): auto delivery = pull, no events.
pub fn job() -> HostOptions {
    HostOptions::server()
}

/// `Сервер.Принять(Таймаут, ИДКлиента, Данные)`: (id, message), or `None` after the timeout.
pub fn server_receive(srv: &Obj, timeout_ms: i32) -> Option<(i64, ws1c_host::Var)> {
    use ws1c_host::Var;
    let mut args = [Var::I4(timeout_ms), Var::I4(0), s("")];
    match srv.call("Принять", &mut args).expect("Принять") {
        Var::Bool(true) => Some((args[1].as_i64().expect("ИДКлиента"), args[2].clone())),
        Var::Bool(false) => None,
        other => panic!("Принять returned {other:?}"),
    }
}

/// Takes the pushed events of `conn`, checking that messages are the numbers `next`,
/// `next + 1`, … in order (each once); advances `next`.
pub fn drain_numbered(conn: &ws1c_host::Conn, next: &mut u64) {
    for ev in conn.take_events() {
        if ev.message.starts_with(r#"{"Event":"Message""#) {
            assert_eq!(ev.data, next.to_string(), "pushed message out of order");
            *next += 1;
        }
    }
}

/// Waits until `ready()` holds, polling every few ms; panics with `what` after `within`.
pub fn wait_until(within: std::time::Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// A [`WsServer`] that greets every client with "hello" as soon as the handshake completes
/// (as Slack's RTM, telephony and exchange feeds do), then echoes what it receives.
pub fn greeting_server() -> WsServer {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    WsServer::start(|mut ws| async move {
        if ws.send(Message::text("hello")).await.is_err() {
            return;
        }
        while let Some(Ok(m)) = ws.next().await {
            if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                return;
            }
        }
    })
}

/// A [`WsServer`] that echoes every text and binary message.
pub fn echo_server() -> WsServer {
    use futures_util::{SinkExt, StreamExt};
    WsServer::start(|mut ws| async move {
        while let Some(Ok(m)) = ws.next().await {
            if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                return;
            }
        }
    })
}
/// One step of a server's pull echo loop (`Принять` for 50 ms, then the same data back as
/// text or binary); for driving a server while a peer process runs.
pub fn server_echo_once(server: &Obj) {
    let mut args = [
        ws1c_host::Var::I4(50),
        ws1c_host::Var::Empty,
        ws1c_host::Var::Empty,
    ];
    if server.call("Принять", &mut args).ok() != Some(ws1c_host::Var::Bool(true)) {
        return;
    }
    let id = args[1].as_f64().unwrap_or_default() as i32;
    let data = args[2].clone();
    let method = if matches!(data, ws1c_host::Var::Blob(_)) {
        "ОтправитьДвоичныеДанные"
    } else {
        "Отправить"
    };
    let _ = server.call(method, &mut [ws1c_host::Var::I4(id), data]);
}

/// The text of the log file at `path` once it contains `last` (or after 5 s, whatever it
/// holds then): the log is written by its own thread, so its last lines may land a moment
/// after the call that logged them returned.
pub fn read_log(path: &std::path::Path, last: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(last) || std::time::Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A plain tokio-tungstenite client of `ws://127.0.0.1:port/` (for a peer of the add-in's
/// server that the test drives frame by frame).
pub async fn raw_client(port: u16) -> ServerWs {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let url = format!("ws://127.0.0.1:{port}/");
    tokio_tungstenite::client_async(url, tcp)
        .await
        .expect("handshake")
        .0
}

/// A server object in a scheduled job's context (pull), configured with `options` and running
/// on a free port of 127.0.0.1; with its port.
pub fn job_server(options: &str) -> (Obj, u16) {
    let server = create_with("Server", job());
    server.call("Настроить", &mut [s(options)]).unwrap();
    server
        .call("Запустить", &mut [s("127.0.0.1"), ws1c_host::Var::I4(0)])
        .unwrap();
    let port = server.get("Порт").unwrap().as_i64().unwrap() as u16;
    (server, port)
}
