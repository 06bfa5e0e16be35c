//! `ws1c-bench`: the add-in measured where 1C touches it (through the C ABI, from a tight
//! loop in the emulated host) side by side with raw tokio-tungstenite, in the same run.
//!
//! Three implementations of each scenario run in the same process (pinned to core 0 by
//! `benches/run.sh`), against the same load generator (this binary's `load` mode, a separate
//! process pinned to core 1):
//!
//! * **add-in** — `libwebsocket1c.so` loaded by `ws1c-host`, driven by `Принять`,
//!   `Получить`, `Отправить`, `ОтправитьВсем`, or receiving `ExternalEvent`;
//! * **raw** — a tokio-tungstenite program doing the same socket work: the reading task counts
//!   messages, the writing task produces them;
//! * **raw + hop** — the same, but every received message crosses a bounded channel to a plain
//!   OS thread that takes it, and every sent message comes from one through a channel (what
//!   any add-in must do at least once, since 1C calls it from its own thread).
//!
//! Usage: `ws1c-bench [--quick | --smoke] [--runs N] [--only a,b] [--pin] [--out FILE]`;
//! `ws1c-bench load MODE ARGS…` is the load generator; `ws1c-bench idle IMPL N` one idle-memory
//! measurement in a fresh process. For a profiler: `WS1C_BENCH_ADDIN_ONLY=1` skips the
//! baselines, `WS1C_BENCH_EGRESS=1|100|all` keeps one egress case and
//! `WS1C_BENCH_PUSH=1|100|client` one push case, e.g.
//! `WS1C_BENCH_ADDIN_ONLY=1 WS1C_BENCH_EGRESS=1 perf record -g --sample-cpu taskset -c 0
//! target/release/ws1c-bench --pin --quick --only egress`.

mod addin;
mod load;
mod raw;
mod report;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use report::Results;

/// The message of every scenario: 64 bytes of text.
pub const PAYLOAD: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Run-wide settings.
#[derive(Clone, Debug)]
pub struct Cfg {
    /// Pin the load generator to core 1 (`taskset -c 1`).
    pub pin: bool,
    /// Warm-up before a throughput window.
    pub warmup: Duration,
    /// Throughput window.
    pub window: Duration,
    /// Idle connections for the memory scenario.
    pub idle: usize,
    /// Connections to try for the "most connections" scenario (0: skip).
    pub max_conns: usize,
    /// Messages waiting for the one-call scenario.
    pub calls: usize,
    /// Folder with the wss certificate, key and CA.
    pub pki: std::path::PathBuf,
}

/// A running load generator.
pub struct Gen {
    child: Child,
    io: Mutex<(ChildStdin, BufReader<ChildStdout>)>,
    /// What it printed first: the port (server modes) or how many connected (client modes).
    pub first: u64,
}

impl Gen {
    /// Starts `load MODE ARGS…` and waits for its first line.
    pub fn start(cfg: &Cfg, mode: &str, args: &[String]) -> Gen {
        let exe = std::env::current_exe().expect("own path");
        let mut cmd = if cfg.pin {
            let mut c = Command::new("taskset");
            c.arg("-c").arg("1").arg(exe);
            c
        } else {
            Command::new(exe)
        };
        let mut child = cmd
            .arg("gen")
            .arg(mode)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the load generator");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        let first = line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("load generator {mode}: unexpected {line:?}"));
        Gen {
            child,
            io: Mutex::new((stdin, stdout)),
            first,
        }
    }

    /// What it counted so far (messages received or handshakes completed).
    pub fn count(&self) -> u64 {
        let mut io = self.io.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(io.0, "COUNT");
        let _ = io.0.flush();
        let mut line = String::new();
        let _ = io.1.read_line(&mut line);
        line.split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Gen {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Counts what a taker took, and tells it when to stop.
#[derive(Default)]
pub struct Meter {
    /// Messages (or calls) so far.
    pub n: AtomicU64,
    /// Set when the window is over.
    pub stop: AtomicBool,
}

impl Meter {
    /// A fresh meter.
    pub fn new() -> Arc<Meter> {
        Arc::new(Meter::default())
    }

    /// One more.
    #[inline]
    pub fn add(&self, k: u64) {
        self.n.fetch_add(k, Ordering::Relaxed);
    }

    /// Whether the taker should stop.
    #[inline]
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Samples `read` after the warm-up and after the window on a helper thread, then stops the
/// meter: the rate per second over the window.
pub fn sample_in_background(
    cfg: &Cfg,
    meter: Arc<Meter>,
    read: impl Fn() -> u64 + Send + 'static,
) -> std::thread::JoinHandle<f64> {
    let (warmup, window) = (cfg.warmup, cfg.window);
    std::thread::spawn(move || {
        std::thread::sleep(warmup);
        let (t0, c0) = (Instant::now(), read());
        std::thread::sleep(window);
        let (t1, c1) = (Instant::now(), read());
        meter.stop.store(true, Ordering::Relaxed);
        c1.saturating_sub(c0) as f64 / (t1 - t0).as_secs_f64()
    })
}

/// The `p`-th percentile (0..=100) of sorted samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let k = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[k.min(sorted.len() - 1)]
}

/// Resident memory of this process, in KiB.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A rustls client trusting `ca` (PEM path).
pub fn tls_connector(ca: &str) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("CA file") {
        roots.add(c.expect("CA")).expect("CA cert");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Writes a test CA and a `localhost` leaf (PEM) into `dir`.
fn make_pki(dir: &std::path::Path) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    std::fs::create_dir_all(dir).expect("pki dir");
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("leaf");
    std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write");
    std::fs::write(dir.join("cert.pem"), leaf.pem()).expect("write");
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).expect("write");
}

fn target_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join("target")
        .join("bench")
}

/// `WS1C_BENCH_ADDIN_ONLY=1`: skip the baselines (for profiling the add-in alone).
pub fn addin_only() -> bool {
    std::env::var_os("WS1C_BENCH_ADDIN_ONLY").is_some_and(|v| v == "1")
}

/// The scenarios, in the order they run.
const SCENARIOS: [&str; 9] = [
    "ingest",
    "egress",
    "client",
    "push",
    "rtt",
    "call",
    "idle",
    "handshake",
    "socketio",
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let limit = ws1c_host::raise_fd_limit().unwrap_or(1024);
    match args.first().map(String::as_str) {
        Some("gen") => load::main(&args[1], &args[2..]),
        Some("idle") => {
            let n = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1000);
            let pin = args.iter().any(|a| a == "--pin");
            raw::idle_child(&args[1], n, pin);
            return;
        }
        _ => {}
    }
    // --smoke: every scenario for a moment (CI checks that it runs, not how fast).
    let smoke = args.iter().any(|a| a == "--smoke");
    let quick = smoke || args.iter().any(|a| a == "--quick");
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let runs: usize = value("--runs")
        .and_then(|r| r.parse().ok())
        .unwrap_or(if quick { 1 } else { 3 });
    let only: Vec<String> = value("--only")
        .map(|o| o.split(',').map(str::to_owned).collect())
        .unwrap_or_else(|| SCENARIOS.iter().map(|s| (*s).to_owned()).collect());
    let out = value("--out").map_or_else(|| target_dir().join("latest.json"), Into::into);
    let pki = std::env::temp_dir().join(format!("ws1c-bench-pki-{}", std::process::id()));
    make_pki(&pki);
    let cfg = Cfg {
        pin: args.iter().any(|a| a == "--pin"),
        warmup: Duration::from_millis(if smoke {
            30
        } else if quick {
            100
        } else {
            400
        }),
        window: Duration::from_millis(if smoke {
            80
        } else if quick {
            250
        } else {
            1500
        }),
        idle: if smoke {
            100
        } else if quick {
            500
        } else {
            10_000
        },
        max_conns: if quick {
            0
        } else {
            (limit as usize).saturating_sub(100).min(19_900)
        },
        calls: if smoke {
            2_000
        } else if quick {
            20_000
        } else {
            200_000
        },
        pki: pki.clone(),
    };
    let host = addin::load();
    let mut results = Results::new();
    for run in 0..runs {
        eprintln!("== run {} of {runs}", run + 1);
        for s in SCENARIOS.iter().filter(|s| only.iter().any(|o| o == *s)) {
            eprintln!("-- {s}");
            let t = Instant::now();
            match *s {
                "ingest" => {
                    for n in [1, 100] {
                        let name = format!("1. server ingest, {n} client(s), msg/s");
                        results.add(&name, "addin", addin::server_ingest(&cfg, &host, n, false));
                        results.add(&name, "raw", raw::server_ingest(&cfg, n, false));
                        results.add(&name, "hop", raw::server_ingest(&cfg, n, true));
                    }
                }
                "egress" => {
                    // `WS1C_BENCH_EGRESS=1` (or 100, all) narrows the scenario for a profiler.
                    let narrow = std::env::var("WS1C_BENCH_EGRESS").unwrap_or_default();
                    for (n, all) in [(1, false), (100, false), (100, true)] {
                        let tag = if all { "all".to_owned() } else { n.to_string() };
                        if !narrow.is_empty() && narrow != tag {
                            continue;
                        }
                        let what = if all {
                            "ОтправитьВсем"
                        } else {
                            "Отправить"
                        };
                        let name = format!("2. server egress, {what}, {n} client(s), msg/s");
                        results.add(&name, "addin", addin::server_egress(&cfg, &host, n, all));
                        results.add(&name, "raw", raw::server_egress(&cfg, n, all, false));
                        results.add(&name, "hop", raw::server_egress(&cfg, n, all, true));
                    }
                }
                "client" => {
                    let name = "3. client ingest, msg/s";
                    results.add(name, "addin", addin::client_ingest(&cfg, &host, false));
                    results.add(name, "raw", raw::client_ingest(&cfg, false));
                    results.add(name, "hop", raw::client_ingest(&cfg, true));
                }
                "push" => {
                    // `WS1C_BENCH_PUSH=1` (or 100, client) narrows the scenario for a profiler.
                    let narrow = std::env::var("WS1C_BENCH_PUSH").unwrap_or_default();
                    for n in [1, 100] {
                        if !narrow.is_empty() && narrow != n.to_string() {
                            continue;
                        }
                        let name = format!("4. push: server ingest, {n} client(s), msg/s");
                        results.add(&name, "addin", addin::server_ingest(&cfg, &host, n, true));
                        results.add(&name, "raw", raw::server_ingest(&cfg, n, false));
                        results.add(&name, "hop", raw::server_ingest(&cfg, n, true));
                    }
                    if narrow.is_empty() || narrow == "client" {
                        let name = "4. push: client ingest, msg/s";
                        results.add(name, "addin", addin::client_ingest(&cfg, &host, true));
                        results.add(name, "raw", raw::client_ingest(&cfg, false));
                        results.add(name, "hop", raw::client_ingest(&cfg, true));
                    }
                }
                "rtt" => {
                    let (a, r, h) = (
                        addin::round_trip(&cfg, &host),
                        raw::round_trip(&cfg, false),
                        raw::round_trip(&cfg, true),
                    );
                    for (k, label) in [(0, "p50"), (1, "p99")] {
                        let name = format!("5. round trip {label}, µs");
                        results.add(&name, "addin", a[k]);
                        results.add(&name, "raw", r[k]);
                        results.add(&name, "hop", h[k]);
                    }
                }
                "call" => {
                    for (name, v) in addin::call_costs(&cfg, &host) {
                        results.add(&name, "addin", v);
                    }
                }
                "idle" => {
                    let (addin, raw4, rawdef) = (
                        raw::idle_parent(&cfg, "addin", cfg.idle),
                        raw::idle_parent(&cfg, "raw", cfg.idle),
                        raw::idle_parent(&cfg, "raw-default", cfg.idle),
                    );
                    let name = format!("7. {} idle server connections, KiB each", cfg.idle);
                    results.add(&name, "addin", addin.1);
                    results.add(&name, "raw", raw4.1);
                    results.add(&name, "raw-default", rawdef.1);
                    if cfg.max_conns > 0 {
                        let (held, _) = raw::idle_parent(&cfg, "addin", cfg.max_conns);
                        let (raw_held, _) = raw::idle_parent(&cfg, "raw", cfg.max_conns);
                        let name = format!(
                            "7. connections held by one process (of {} tried)",
                            cfg.max_conns
                        );
                        results.add(&name, "addin", held);
                        results.add(&name, "raw", raw_held);
                    }
                }
                "handshake" => {
                    for tls in [false, true] {
                        let scheme = if tls { "wss" } else { "ws" };
                        let name = format!("8. handshakes/s, {scheme}");
                        results.add(&name, "addin", addin::handshakes(&cfg, &host, tls));
                        results.add(&name, "raw", raw::handshakes(&cfg, tls, false));
                        results.add(&name, "hop", raw::handshakes(&cfg, tls, true));
                    }
                }
                "socketio" => {
                    // The Socket.IO layer against the plain Client object, same run, same
                    // loop: the "raw" column here is the Client object, not tokio-tungstenite.
                    for push in [false, true] {
                        let how = if push {
                            "push"
                        } else {
                            "pull, ПолучитьСобытие"
                        };
                        let name = format!(
                            "9. SocketIO event ingest ({how}) vs Client object (raw column), msg/s"
                        );
                        results.add(
                            &name,
                            "addin",
                            addin::event_ingest(&cfg, &host, "SocketIO", push),
                        );
                        results.add(
                            &name,
                            "raw",
                            addin::event_ingest(&cfg, &host, "Client", push),
                        );
                    }
                }
                _ => {}
            }
            eprintln!("   {:.1} s", t.elapsed().as_secs_f64());
        }
    }
    let _ = std::fs::remove_dir_all(&pki);
    let table = results.table();
    println!("{table}");
    let machine = report::machine();
    println!("{machine}");
    if let Some(dir) = out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let json = results.json(&machine, runs, quick);
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&json).unwrap_or_default(),
    )
    .expect("write results");
    let _ = std::fs::write(out.with_extension("md"), format!("{table}\n{machine}\n"));
    eprintln!("written {}", out.display());
}
