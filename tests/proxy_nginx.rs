//! The server behind a real nginx (Debian package `nginx`, installed by scripts/test.sh):
//! wss terminated by nginx with a test certificate, proxied to the add-in's ws server.
//! nginx runs unprivileged-style from a temporary folder with its own configuration, on a
//! free port of 127.0.0.1, and connects to the add-in from 127.0.0.2 (`proxy_bind`), so the
//! proxy's address differs from every client's (Python clients bind 127.0.0.3; Chromium comes
//! from 127.0.0.1). Without nginx on the machine each test prints "SKIPPED: nginx not
//! installed" and passes.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestPki, finish, free_port, job_server, next_event_json, s, serial};
use serde_json::Value as Json;
use ws1c_host::{Obj, Var};

/// Where nginx is, if it is installed.
fn nginx_binary() -> Option<PathBuf> {
    let candidates = [
        PathBuf::from("/usr/sbin/nginx"),
        PathBuf::from("/usr/bin/nginx"),
    ];
    if let Some(p) = candidates.into_iter().find(|p| p.exists()) {
        return Some(p);
    }
    let out = Command::new("sh")
        .args(["-c", "command -v nginx"])
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (!path.is_empty()).then(|| PathBuf::from(path))
}

/// An nginx terminating wss on 127.0.0.1:`port` and proxying to the add-in on
/// 127.0.0.1:`upstream`; stopped and its folder removed on drop.
struct Nginx {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Nginx {
    /// Starts it with `proxy_read_timeout` of `read_timeout_s` seconds; `None` (after printing
    /// the SKIPPED line) when nginx is not installed.
    fn start(upstream: u16, pki: &TestPki, read_timeout_s: u32) -> Option<Nginx> {
        let Some(bin) = nginx_binary() else {
            println!("SKIPPED: nginx not installed (scripts/test.sh installs it)");
            return None;
        };
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("ws1c-nginx-{}-{n}", std::process::id()));
        std::fs::create_dir_all(dir.join("logs")).expect("nginx folder");
        let port = free_port();
        let d = dir.display();
        let conf = format!(
            r#"worker_processes 1;
events {{ worker_connections 64; }}
http {{
    access_log {d}/logs/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_bind 127.0.0.2;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_read_timeout {read_timeout_s}s;
        }}
    }}
}}
"#,
            cert = pki.cert.display(),
            key = pki.key.display(),
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("nginx.conf");
        let globals = format!("daemon off; pid {d}/nginx.pid; error_log {d}/logs/error.log;");
        let child = Command::new(&bin)
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("logs/startup.log"))
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-g")
            .arg(globals)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut nginx = Nginx { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                panic!("nginx exited ({status}): {}", nginx.logs());
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen: {}",
                nginx.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(nginx)
    }

    fn url(&self, path: &str) -> String {
        format!("wss://localhost:{}{path}", self.port)
    }

    /// Its error logs, for a failure message.
    fn logs(&self) -> String {
        ["logs/startup.log", "logs/error.log"]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its worker and exits (a SIGKILL would leave the worker
        // running, orphaned). SIGKILL only if it does not within the bound.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the server saw while a peer ran.
#[derive(Default)]
struct Seen {
    /// Open event headers.
    opens: Vec<Json>,
    /// `ИнформацияОСоединении` at each open.
    infos: Vec<Json>,
    /// `СписокСоединений` at each open.
    lists: Vec<Json>,
    /// `Соединения` at each open.
    connections: Vec<String>,
    /// Close and fail event headers.
    ends: Vec<Json>,
}

/// One step of the server side: takes an event; at an open records what the server reports
/// about the connection, echoes messages back.
fn serve(server: &Obj, seen: &mut Seen) {
    let Some((header, data)) = next_event_json(server, 50) else {
        return;
    };
    let id = header["Connection"].as_i64().unwrap_or_default() as i32;
    match (header["Event"].as_str(), header["State"].as_str()) {
        (Some("Connection"), Some("Open")) => {
            let info = server
                .call("ИнформацияОСоединении", &mut [Var::I4(id)])
                .unwrap();
            seen.infos
                .push(serde_json::from_str(info.as_str().unwrap()).unwrap());
            let list = server.call("СписокСоединений", &mut []).unwrap();
            seen.lists
                .push(serde_json::from_str(list.as_str().unwrap()).unwrap());
            let conns = server.get("Соединения").unwrap();
            seen.connections.push(conns.as_str().unwrap().to_owned());
            seen.opens.push(header);
        }
        (Some("Message"), _) => {
            server
                .call("Отправить", &mut [Var::I4(id), s(&data)])
                .unwrap();
        }
        (Some("Connection"), Some("Close" | "Fail")) => seen.ends.push(header),
        _ => {}
    }
}

fn peers() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

/// Runs `proxy_client.py URL ARGS…` while the server serves; its output and what was seen.
fn py_through(server: &Obj, url: &str, args: &[&str], ca: &Path) -> (String, Seen) {
    let mut cmd = Command::new(common::python());
    cmd.arg(peers().join("proxy_client.py"))
        .arg(url)
        .arg("--ca")
        .arg(ca)
        .args(args);
    let mut seen = Seen::default();
    let out = common::run_peer(cmd, || serve(server, &mut seen));
    // The close reaches the server a moment after the peer exits.
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.ends.len() < seen.opens.len() && Instant::now() < deadline {
        serve(server, &mut seen);
    }
    (out, seen)
}

fn address(v: &Json) -> &str {
    v["Address"].as_str().unwrap_or_default()
}

#[test]
fn trusted_proxy_reports_the_client_address() {
    let _g = serial();
    let pki = TestPki::new();
    let (server, port) = job_server(r#"{"trusted_proxies": ["127.0.0.2", "::1"]}"#);
    let Some(nginx) = Nginx::start(port, &pki, 30) else {
        finish(server);
        return;
    };
    // The client forges X-Forwarded-For; nginx appends what it saw, the right-most counts.
    let (out, seen) = py_through(
        &server,
        &nginx.url("/py"),
        &[
            "--local",
            "127.0.0.3",
            "--header",
            "X-Forwarded-For",
            "6.6.6.6",
        ],
        &pki.ca,
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["OPEN", "ECHO hello", "OK"],
        "{out}"
    );
    assert_eq!(seen.opens.len(), 1, "{:?}", seen.opens);
    let open = &seen.opens[0];
    assert_eq!(address(open), "127.0.0.3", "{open}");
    let proxy = open["ProxyAddress"].as_str().unwrap_or_default();
    assert!(proxy.starts_with("127.0.0.2:"), "{open}");
    assert_eq!(open["Path"], "/py");
    let info = &seen.infos[0];
    assert_eq!(address(info), "127.0.0.3", "{info}");
    assert_eq!(info["ProxyAddress"], proxy, "{info}");
    assert_eq!(
        info["Headers"]["x-forwarded-for"], "6.6.6.6, 127.0.0.3",
        "{info}"
    );
    let list = seen.lists[0].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (address(&list[0]), list[0]["ProxyAddress"].as_str()),
        ("127.0.0.3", Some(proxy))
    );
    assert_eq!(seen.connections[0], "1: 127.0.0.3");

    // Chromium (from 127.0.0.1) through the same nginx, wss trusted by the test CA's leaf.
    let spki = common::spki_hash(&pki.cert);
    let url = nginx.url("/portal");
    let mut seen = Seen::default();
    let out = common::node_peer("browser.js", &[&url, &spki], || serve(&server, &mut seen));
    assert!(
        out.contains("RESPONSE: WebSocket rocks") && out.lines().last() == Some("OK"),
        "{out}"
    );
    assert_eq!(seen.opens.len(), 1, "{:?}", seen.opens);
    assert_eq!(address(&seen.opens[0]), "127.0.0.1", "{}", seen.opens[0]);
    assert!(
        seen.opens[0]["ProxyAddress"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.2:")),
        "{}",
        seen.opens[0]
    );
    drop(nginx);
    finish(server);
}

#[test]
fn forwarding_headers_are_ignored_unless_the_peer_is_trusted() {
    let _g = serial();
    let pki = TestPki::new();
    // No trusted_proxies: the proxy's own address, no ProxyAddress.
    let (server, port) = job_server("{}");
    let Some(nginx) = Nginx::start(port, &pki, 30) else {
        finish(server);
        return;
    };
    let (out, seen) = py_through(&server, &nginx.url("/"), &["--local", "127.0.0.3"], &pki.ca);
    assert!(out.ends_with("OK\n"), "{out}");
    let open = &seen.opens[0];
    assert!(address(open).starts_with("127.0.0.2:"), "{open}");
    assert!(open.get("ProxyAddress").is_none(), "{open}");
    assert!(seen.infos[0].get("ProxyAddress").is_none());
    assert!(
        seen.connections[0].starts_with("1: 127.0.0.2:"),
        "{:?}",
        seen.connections
    );
    drop(nginx);
    finish(server);

    // Trusting nginx does not trust a client that connects directly with forged headers.
    let (server, port) = job_server(r#"{"trusted_proxies": ["127.0.0.2"]}"#);
    let mut cmd = Command::new(common::python());
    cmd.arg(peers().join("proxy_client.py"))
        .arg(format!("ws://127.0.0.1:{port}/"))
        .args([
            "--local",
            "127.0.0.3",
            "--header",
            "X-Forwarded-For",
            "6.6.6.6",
        ])
        .args([
            "--header",
            "X-Real-IP",
            "6.6.6.6",
            "--header",
            "Forwarded",
            "for=6.6.6.6",
        ]);
    let mut seen = Seen::default();
    let out = common::run_peer(cmd, || serve(&server, &mut seen));
    assert!(out.ends_with("OK\n"), "{out}");
    let open = &seen.opens[0];
    assert!(address(open).starts_with("127.0.0.3:"), "{open}");
    assert!(open.get("ProxyAddress").is_none(), "{open}");
    finish(server);
}

#[test]
fn allowed_origins_and_auth_work_through_nginx() {
    let _g = serial();
    let pki = TestPki::new();
    let (server, port) = job_server(
        r#"{"trusted_proxies": ["127.0.0.2"], "allowed_origins": ["https://portal.example"],
            "auth": {"bearer": "s3cret"}}"#,
    );
    let Some(nginx) = Nginx::start(port, &pki, 30) else {
        finish(server);
        return;
    };
    let url = nginx.url("/");
    let good = [
        "--origin",
        "https://portal.example",
        "--header",
        "Authorization",
        "Bearer s3cret",
    ];
    let (out, seen) = py_through(&server, &url, &good, &pki.ca);
    assert_eq!(out.lines().last(), Some("OK"), "{out}");
    assert_eq!(seen.opens.len(), 1);
    let wrong_origin = [
        "--origin",
        "https://evil.example",
        "--header",
        "Authorization",
        "Bearer s3cret",
    ];
    let (out, seen) = py_through(&server, &url, &wrong_origin, &pki.ca);
    assert_eq!(out.trim(), "REFUSED 403", "{out}");
    assert!(seen.opens.is_empty());
    let no_auth = ["--origin", "https://portal.example"];
    let (out, _) = py_through(&server, &url, &no_auth, &pki.ca);
    assert_eq!(out.trim(), "REFUSED 401", "{out}");
    drop(nginx);
    finish(server);
}

#[test]
fn server_pings_outlast_nginx_read_timeout() {
    let _g = serial();
    let pki = TestPki::new();
    // nginx closes a connection on which the upstream said nothing for 2 s.
    for (options, survives) in [(r#"{"ping_interval_ms": 500}"#, true), ("{}", false)] {
        let (server, port) = job_server(options);
        let Some(nginx) = Nginx::start(port, &pki, 2) else {
            finish(server);
            return;
        };
        let t = Instant::now();
        let (out, seen) = py_through(&server, &nginx.url("/"), &["--idle", "3.5"], &pki.ca);
        let lines: Vec<&str> = out.lines().collect();
        if survives {
            assert_eq!(
                lines,
                ["OPEN", "ECHO hello", "ECHO after", "OK"],
                "{options}: {out}"
            );
            assert!(t.elapsed() >= Duration::from_millis(3500));
        } else {
            assert_eq!(lines[..2], ["OPEN", "ECHO hello"], "{options}: {out}");
            assert!(lines[2].starts_with("CLOSED"), "{options}: {out}");
            // The server saw nginx end the upstream connection.
            assert_eq!(seen.ends.len(), 1, "{options}: {:?}", seen.ends);
        }
        drop(nginx);
        finish(server);
    }
}
