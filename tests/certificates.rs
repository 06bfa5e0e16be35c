//! Certificates and keys as 1C developers have them: OpenSSL's legacy encrypted PEM keys
//! (`BEGIN RSA PRIVATE KEY` / `EC PRIVATE KEY` with `Proc-Type` and `DEK-Info`) in every form
//! `Запустить` and the client's `tls.*` options take, malformed files named by file and
//! section, and paths that are no regular files (devices, FIFOs). Fixtures are made by the
//! `openssl` command line; every successful load is followed by a real TLS handshake with a
//! Python `websockets` peer.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{PyPeer, create_with, finish, py_client, serial, server_echo_once};
use ws1c_host::{HostOptions, Var};

const PASS: &str = "Пароль-1C";
const CIPHERS: [(&str, &str); 4] = [
    ("-aes128", "AES-128-CBC"),
    ("-aes192", "AES-192-CBC"),
    ("-aes256", "AES-256-CBC"),
    ("-des3", "DES-EDE3-CBC"),
];

fn str(v: &str) -> Var {
    Var::Str(v.to_owned())
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and two leaves for `localhost` / 127.0.0.1 signed by it, one RSA and one EC, each
/// key in every legacy encryption and plain, all made by the openssl command line.
struct Fixtures {
    dir: PathBuf,
}

impl Fixtures {
    fn new() -> Fixtures {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("ws1c-certs-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let pass = format!("pass:{PASS}");
        let d = dir.as_path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=ws1c test CA",
                "-days",
                "2",
            ],
        );
        std::fs::write(
            dir.join("leaf.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        // RSA: generated encrypted as the documented component's users do, then re-encrypted
        // with every other cipher and written plain.
        openssl(
            d,
            &[
                "genrsa",
                "-traditional",
                "-aes256",
                "-passout",
                &pass,
                "-out",
                "rsa-aes256.pem",
                "2048",
            ],
        );
        for (flag, _) in CIPHERS.iter().filter(|(f, _)| *f != "-aes256") {
            let out = format!("rsa{flag}.pem");
            openssl(
                d,
                &[
                    "rsa",
                    "-in",
                    "rsa-aes256.pem",
                    "-passin",
                    &pass,
                    "-traditional",
                    flag,
                    "-passout",
                    &pass,
                    "-out",
                    &out,
                ],
            );
        }
        openssl(
            d,
            &[
                "rsa",
                "-in",
                "rsa-aes256.pem",
                "-passin",
                &pass,
                "-traditional",
                "-out",
                "rsa-plain.pem",
            ],
        );
        // EC: SEC1, plain and with every cipher.
        openssl(
            d,
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                "ec-plain.pem",
            ],
        );
        for (flag, _) in CIPHERS {
            let out = format!("ec{flag}.pem");
            openssl(
                d,
                &[
                    "ec",
                    "-in",
                    "ec-plain.pem",
                    flag,
                    "-passout",
                    &pass,
                    "-out",
                    &out,
                ],
            );
        }
        for alg in ["rsa", "ec"] {
            let key = format!("{alg}-plain.pem");
            let csr = format!("{alg}.csr");
            let crt = format!("{alg}.crt");
            openssl(
                d,
                &[
                    "req",
                    "-new",
                    "-key",
                    &key,
                    "-subj",
                    "/CN=localhost",
                    "-out",
                    &csr,
                ],
            );
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "2",
                    "-extfile",
                    "leaf.ext",
                    "-out",
                    &crt,
                ],
            );
        }
        let f = Fixtures { dir };
        // The fixtures are what the tests claim they are.
        for alg in ["rsa", "ec"] {
            let label = if alg == "rsa" {
                "RSA PRIVATE KEY"
            } else {
                "EC PRIVATE KEY"
            };
            let plain = f.read(&format!("{alg}-plain.pem"));
            assert!(plain.contains(&format!("BEGIN {label}")), "{plain}");
            for (flag, name) in CIPHERS {
                let pem = f.read(&format!("{alg}{flag}.pem"));
                assert!(pem.contains(&format!("BEGIN {label}")), "{pem}");
                assert!(pem.contains("Proc-Type: 4,ENCRYPTED"), "{pem}");
                assert!(pem.contains(&format!("DEK-Info: {name},")), "{pem}");
            }
        }
        f
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_owned()
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap()
    }

    /// Writes `parts` (file names) one after the other into `name`.
    fn combine(&self, name: &str, parts: &[&str]) -> String {
        let text: String = parts.iter().map(|p| self.read(p)).collect();
        std::fs::write(self.dir.join(name), text).unwrap();
        self.path(name)
    }

    fn write(&self, name: &str, content: &[u8]) -> String {
        std::fs::write(self.dir.join(name), content).unwrap();
        self.path(name)
    }
}

impl Drop for Fixtures {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts a server with `Запустить("127.0.0.1", 0, tls...)`, runs the Python client over
/// wss against it (trusting `ca`) and expects its echo round to succeed.
fn serve_wss(tls: &[&str], ca: &str) {
    let server = create_with("Server", HostOptions::server());
    let mut args = vec![str("127.0.0.1"), Var::I4(0)];
    args.extend(tls.iter().map(|a| str(a)));
    let started = server.call("Запустить", &mut args);
    assert_eq!(started.map_err(|e| e.text), Ok(Var::Bool(true)), "{tls:?}");
    let port = server.get("Порт").unwrap().as_f64().unwrap() as u16;
    let out = py_client(
        &format!("wss://localhost:{port}/tls"),
        &["--ca", ca],
        || server_echo_once(&server),
    );
    assert_eq!(out.lines().last(), Some("OK"), "{tls:?}: {out}");
    finish(server);
}

/// The text of the exception `Запустить(…)` raises with `tls` (a server in `opts`).
fn start_error(opts: HostOptions, tls: &[&str]) -> String {
    let server = create_with("Server", opts);
    let mut args = vec![str("127.0.0.1"), Var::I4(0)];
    args.extend(tls.iter().map(|a| str(a)));
    let e = server
        .call("Запустить", &mut args)
        .map(|v| panic!("{tls:?} started: {v:?}"))
        .unwrap_err()
        .text;
    assert_eq!(server.get("Статус").unwrap(), Var::I4(-1), "{tls:?}");
    finish(server);
    e
}

/// Internal decoder or type names that must never reach 1C code.
fn assert_no_internals(e: &str) {
    for bad in [
        "InvalidCharacter",
        "Error(",
        "Other(",
        "base64 decode",
        "{",
        "::",
    ] {
        assert!(!e.contains(bad), "internal detail {bad:?} in: {e}");
    }
}

#[test]
fn legacy_keys_load_in_every_form_of_run_and_serve_wss() {
    let _g = serial();
    let f = Fixtures::new();
    let ca = f.path("ca.pem");
    for alg in ["rsa", "ec"] {
        let crt = format!("{alg}.crt");
        let cert = f.path(&crt);
        let mut keys = vec![(format!("{alg}-plain.pem"), "")];
        keys.extend(
            CIPHERS
                .iter()
                .map(|(flag, _)| (format!("{alg}{flag}.pem"), PASS)),
        );
        for (key, pass) in &keys {
            // Separate files: certificate, key, password.
            serve_wss(&[&cert, &f.path(key), pass], &ca);
            // One combined PEM, in both orders, with the password as the second argument.
            let key_first = f.combine(&format!("kc-{key}"), &[key, &crt]);
            let cert_first = f.combine(&format!("ck-{key}"), &[&crt, key]);
            serve_wss(&[&key_first, pass], &ca);
            serve_wss(&[&cert_first, pass], &ca);
        }
    }
    common::assert_memory_clean();
}

#[test]
fn malformed_pem_names_the_file_and_the_section() {
    let _g = serial();
    let f = Fixtures::new();
    let cert = f.path("rsa.crt");
    let key = f.path("rsa-aes256.pem");
    let ru = HostOptions::server;

    // Wrong password, as a separate key and inside a combined file (section 2).
    let e = start_error(ru(), &[&cert, &key, "не тот"]);
    assert!(
        e.contains(&format!("Раздел 1 (RSA PRIVATE KEY) файла «{key}»"))
            && e.contains("неверный пароль"),
        "{e}"
    );
    let combined = f.combine("combined.pem", &["rsa.crt", "rsa-aes256.pem"]);
    let e = start_error(ru(), &[&combined, "не тот"]);
    assert!(
        e.contains(&format!("Раздел 2 (RSA PRIVATE KEY) файла «{combined}»"))
            && e.contains("неверный пароль"),
        "{e}"
    );
    let en = start_error(HostOptions::english(), &[&combined, "wrong"]);
    assert!(
        en.contains(&format!(
            "Section 2 (RSA PRIVATE KEY) of \"{combined}\": wrong password or damaged key"
        )),
        "{en}"
    );
    // Every cipher refuses a wrong password the same way (EC too).
    for (flag, _) in CIPHERS {
        let k = f.path(&format!("ec{flag}.pem"));
        let e = start_error(ru(), &[&f.path("ec.crt"), &k, "не тот"]);
        assert!(
            e.contains("Раздел 1 (EC PRIVATE KEY)") && e.contains("неверный пароль"),
            "{e}"
        );
    }
    // No password for an encrypted key.
    let e = start_error(ru(), &[&combined]);
    assert!(
        e.contains("Раздел 2 (RSA PRIVATE KEY)") && e.contains("укажите пароль"),
        "{e}"
    );

    // A truncated file: the key section has no END line.
    let text = f.read("combined.pem");
    let cut = f.write("cut.pem", &text.as_bytes()[..text.len() - 200]);
    let e = start_error(ru(), &[&cut, PASS]);
    assert!(
        e.contains(&format!("Раздел 2 (RSA PRIVATE KEY) файла «{cut}»"))
            && e.contains("нет строки END"),
        "{e}"
    );
    // Damaged base64 (the character a decoder reports as InvalidCharacter(45)).
    let damaged = f.write("damaged.pem", text.replacen("MII", "M-I", 1).as_bytes());
    let e = start_error(ru(), &[&damaged, PASS]);
    assert!(
        e.contains("Раздел 1 (CERTIFICATE)") && e.contains("base64"),
        "{e}"
    );
    assert_no_internals(&e);
    let en = start_error(HostOptions::english(), &[&damaged, PASS]);
    assert!(
        en.contains("Section 1 (CERTIFICATE) of") && en.contains("not valid base64"),
        "{en}"
    );
    assert_no_internals(&en);

    // A key that is not the certificate's.
    let e = start_error(ru(), &[&cert, &f.path("ec-plain.pem")]);
    assert!(e.contains("не подходят друг другу"), "{e}");
    let other = f.combine("other.pem", &["ec.crt", "rsa-plain.pem"]);
    let e = start_error(HostOptions::english(), &[&other]);
    assert!(e.contains("do not match"), "{e}");

    for e in [&e, &en] {
        assert_no_internals(e);
    }
}

#[test]
fn client_certificate_with_a_legacy_key() {
    let _g = serial();
    let f = Fixtures::new();
    // The Python server requires a client certificate issued by the test CA.
    let peer = PyPeer::start(&[
        "echo",
        "--tls",
        &f.path("rsa.crt"),
        &f.path("rsa-plain.pem"),
        "--client-ca",
        &f.path("ca.pem"),
    ]);
    let url = format!("wss://localhost:{}/", peer.port);
    let json = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
    let c = create_with("Client", HostOptions::server());
    for (cert, key) in [("ec.crt", "ec-aes256.pem"), ("rsa.crt", "rsa-des3.pem")] {
        let opts = format!(
            r#"{{"tls": {{"ca_file": "{}", "cert_file": "{}", "key_file": "{}", "password": "{PASS}"}}}}"#,
            json(&f.path("ca.pem")),
            json(&f.path(cert)),
            json(&f.path(key)),
        );
        let r = c.call("Подключиться", &mut [str(&url), str(&opts)]);
        assert_eq!(r.map_err(|e| e.text), Ok(Var::Bool(true)), "{key}");
        c.call("Отправить", &mut [str("подписано")]).unwrap();
        let mut args = [Var::I4(5000), Var::Empty];
        assert_eq!(
            c.call("Получить", &mut args).unwrap(),
            Var::Bool(true),
            "{key}"
        );
        assert_eq!(args[1], str("подписано"));
        c.call("Отключиться", &mut []).unwrap();
    }
    // The same key with a wrong password names the key file and its section.
    let opts = format!(
        r#"{{"tls": {{"ca_file": "{}", "cert_file": "{}", "key_file": "{}", "password": "нет"}}}}"#,
        json(&f.path("ca.pem")),
        json(&f.path("ec.crt")),
        json(&f.path("ec-aes128.pem")),
    );
    let e = c
        .call("Подключиться", &mut [str(&url), str(&opts)])
        .unwrap_err()
        .text;
    assert!(
        e.contains(&format!(
            "Раздел 1 (EC PRIVATE KEY) файла «{}»",
            f.path("ec-aes128.pem")
        )) && e.contains("неверный пароль"),
        "{e}"
    );
    finish(c);
}

/// Runs `call` on its own thread and returns its result and duration; if it has not
/// returned after 10 s (the defect: a FIFO open that blocks), `unblock` is run so that the
/// thread can end, and the test fails.
fn bounded_call<T: Send + 'static>(
    call: impl FnOnce() -> T + Send + 'static,
    unblock: impl FnOnce(),
) -> (T, Duration) {
    let t = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let _ = tx.send(call());
    });
    let r = rx.recv_timeout(Duration::from_secs(10));
    if r.is_err() {
        unblock();
        let _ = thread.join();
        panic!("the call did not return within 10 s");
    }
    let _ = thread.join();
    (r.unwrap(), t.elapsed())
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(status.success());
}

/// Opens the FIFO at `path` in the mode that releases an open blocked on the other end.
fn release_fifo(path: &Path, for_reading: bool) {
    let p = path.to_owned();
    std::thread::spawn(move || {
        let _f = if for_reading {
            std::fs::File::open(&p)
        } else {
            std::fs::OpenOptions::new().write(true).open(&p)
        };
        std::thread::sleep(Duration::from_millis(200));
    });
}

/// A listener that never answers, and a `wss://` URL to it: the client reads its TLS files
/// once the TCP connection is up.
fn silent_wss() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("wss://127.0.0.1:{}/", listener.local_addr().unwrap().port());
    (listener, url)
}

/// Issue 15 #1: devices and oversized files are refused before anything is read.
#[test]
fn dev_zero_and_oversized_files_are_refused_at_once() {
    let _g = serial();
    let f = Fixtures::new();
    let key = f.path("rsa-plain.pem");

    let rss = common::rss_kib();
    let k = key.clone();
    let (e, took) = bounded_call(
        move || start_error(HostOptions::server(), &["/dev/zero", &k]),
        || {},
    );
    assert!(
        e.contains("«/dev/zero»") && e.contains("не обычный файл"),
        "{e}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    // A regular file above the cap.
    let big = f.write("big.pem", &vec![b'A'; (1 << 20) + 1]);
    let e = start_error(HostOptions::server(), &[&big, &key]);
    assert!(e.contains("больше допустимых 1 МиБ"), "{e}");
    let e = start_error(HostOptions::english(), &[&big, &key]);
    assert!(e.contains("larger than the allowed 1 MiB"), "{e}");

    // The client's CA bundle and PFX.
    let (_listener, url) = silent_wss();
    let c = create_with("Client", HostOptions::server());
    for opts in [
        r#"{"tls": {"ca_file": "/dev/zero"}}"#,
        r#"{"tls": {"pfx_file": "/dev/zero"}}"#,
        r#"{"tls": {"roots": "/dev/zero"}}"#,
    ] {
        let t = Instant::now();
        let e = c
            .call("Подключиться", &mut [str(&url), str(opts)])
            .unwrap_err()
            .text;
        assert!(e.contains("не обычный файл"), "{opts}: {e}");
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "{opts}: {:?}",
            t.elapsed()
        );
    }
    finish(c);
    assert!(common::rss_kib() < rss + 64 * 1024, "memory grew");
}

/// Issue 15 #2: a FIFO nobody writes, as the server's certificate or the client's roots,
/// is refused without being opened.
#[test]
fn a_fifo_certificate_never_holds_up_the_caller() {
    let _g = serial();
    let f = Fixtures::new();
    let key = f.path("rsa-plain.pem");
    let fifo = f.dir.join("never.pem");
    mkfifo(&fifo);
    let fifo_s = fifo.to_str().unwrap().to_owned();

    let (k, p) = (key.clone(), fifo_s.clone());
    let release = fifo.clone();
    let (e, took) = bounded_call(
        move || start_error(HostOptions::server(), &[&p, &k]),
        || release_fifo(&release, false),
    );
    assert!(e.contains(&fifo_s) && e.contains("не обычный файл"), "{e}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    // The second argument as a FIFO beside a certificate without a key.
    let (c, p) = (f.path("rsa.crt"), fifo_s.clone());
    let release = fifo.clone();
    let (e, took) = bounded_call(
        move || start_error(HostOptions::server(), &[&c, &p]),
        || release_fifo(&release, false),
    );
    assert!(e.contains(&fifo_s) && e.contains("не обычный файл"), "{e}");
    assert!(took < Duration::from_secs(3), "{took:?}");

    let (_listener, url) = silent_wss();
    let opts = format!(r#"{{"timeout_ms": 2000, "tls": {{"roots": "{fifo_s}"}}}}"#);
    let release = fifo.clone();
    let (e, took) = bounded_call(
        move || {
            let c = create_with("Client", HostOptions::server());
            let e = c.call("Подключиться", &mut [str(&url), str(&opts)]);
            finish(c);
            e.map_err(|e| e.text)
        },
        || release_fifo(&release, false),
    );
    let e = e.unwrap_err();
    assert!(e.contains("не обычный файл"), "{e}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn a_fifo_log_file_never_holds_up_the_caller() {
    let _g = serial();
    let f = Fixtures::new();
    let fifo = f.dir.join("log.fifo");
    mkfifo(&fifo);
    let opts = format!(
        r#"{{"log_file": "{}", "log_level": "debug"}}"#,
        fifo.display()
    );

    // The server reports the log it cannot open, at once.
    let o = opts.clone();
    let fifo2 = fifo.clone();
    let (e, took) = bounded_call(
        move || {
            let server = create_with("Server", HostOptions::server());
            server.call("Настроить", &mut [str(&o)]).unwrap();
            let e = server.call("Запустить", &mut [str("127.0.0.1"), Var::I4(0)]);
            finish(server);
            e.map_err(|e| e.text)
        },
        || release_fifo(&fifo2, true),
    );
    let e = e.unwrap_err();
    assert!(
        e.contains("файл журнала") && e.contains("не обычный файл"),
        "{e}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");

    // The client ignores a log it cannot open, and neither the connect nor other
    // connections wait for it.
    let peer = PyPeer::start(&["echo"]);
    let url = peer.url("/");
    let fifo2 = fifo.clone();
    let (echoed, took) = bounded_call(
        move || {
            let c = create_with("Client", HostOptions::server());
            for _ in 0..2 {
                let r = c.call("Подключиться", &mut [str(&url), str(&opts)]);
                assert_eq!(r.map_err(|e| e.text), Ok(Var::Bool(true)));
                c.call("Отправить", &mut [str("журнал")]).unwrap();
                let mut args = [Var::I4(5000), Var::Empty];
                assert_eq!(c.call("Получить", &mut args).unwrap(), Var::Bool(true));
                c.call("Отключиться", &mut []).unwrap();
            }
            finish(c);
            true
        },
        || release_fifo(&fifo2, true),
    );
    assert!(echoed);
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn certificate_arguments_that_cannot_be_used_raise() {
    let _g = serial();
    let f = Fixtures::new();
    let cert = f.path("rsa.crt");
    let key = f.path("rsa-plain.pem");
    let ru = HostOptions::server;

    // A key without a certificate never starts a plain ws:// server.
    let e = start_error(ru(), &["", &key]);
    assert!(
        e.contains("без TLS") && e.contains(&format!("КлючИлиПароль «{key}»: файл ключа")),
        "{e}"
    );
    let e = start_error(ru(), &["", "", "пароль"]);
    assert!(e.contains("без TLS") && e.contains("Пароль: пароль"), "{e}");
    assert!(!e.contains("«пароль»"), "a password is never shown: {e}");
    let e = start_error(HostOptions::english(), &["", &key]);
    assert!(
        e.contains("without TLS") && e.contains(&format!("KeyOrPassword \"{key}\": the key file")),
        "{e}"
    );

    // A mistyped key path beside a certificate without a key: "no such key file", not
    // "wrong password".
    let typo = f.path("rsa-plian.pem");
    let e = start_error(ru(), &[&cert, &typo]);
    assert!(
        e.contains("файл ключа не найден") && e.contains(&format!("Сертификат «{cert}»")),
        "{e}"
    );
    // ... and beside a combined file with a plain key: not silently ignored as a password.
    let combined = f.combine("combined.pem", &["rsa.crt", "rsa-plain.pem"]);
    let e = start_error(ru(), &[&combined, &typo]);
    assert!(
        e.contains("ключ не зашифрован") && e.contains("КлючИлиПароль: пароль"),
        "{e}"
    );
    // A certificate without a key and no key file.
    let e = start_error(ru(), &[&cert]);
    assert!(e.contains("нет закрытого ключа"), "{e}");
    // A combined file and a key file as well.
    let e = start_error(ru(), &[&combined, &key]);
    assert!(e.contains("ключ уже есть"), "{e}");
    // A password for a key that is not encrypted.
    let e = start_error(ru(), &[&cert, &key, "лишний"]);
    assert!(e.contains("ключ не зашифрован"), "{e}");
    // The right forms still start, also a combined file named again as its own key file.
    serve_wss(&[&cert, &key], &f.path("ca.pem"));
    serve_wss(&[&combined], &f.path("ca.pem"));
    serve_wss(&[&combined, &combined], &f.path("ca.pem"));
    let encrypted = f.combine("enc-combined.pem", &["rsa-des3.pem", "rsa.crt"]);
    serve_wss(&[&encrypted, &encrypted, PASS], &f.path("ca.pem"));
}

#[test]
fn server_certificate_refusals_are_sentences_without_internal_names() {
    let _g = serial();
    let f = Fixtures::new();
    let ca = f.path("ca.pem");
    let json = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
    let with_ca = format!(r#"{{"tls": {{"ca_file": "{}"}}}}"#, json(&ca));
    // (server certificate and key, client options, Russian and English sentence)
    let cases = [
        // The CA's own certificate as the server's (webpki: CaUsedAsEndEntity).
        (
            ("ca.pem", "ca.key"),
            with_ca.clone(),
            "предъявил сертификат центра сертификации",
            "presented a CA certificate instead of its own",
        ),
        // Issued by a CA the client does not trust.
        (
            ("rsa.crt", "rsa-plain.pem"),
            r#"{"tls": {"roots": "webpki"}}"#.to_owned(),
            "не доверен: его издатель неизвестен",
            "not trusted: its issuer is unknown",
        ),
    ];
    for ((cert, key), opts, ru, en) in cases {
        let server = create_with("Server", HostOptions::server());
        let mut args = [
            str("127.0.0.1"),
            Var::I4(0),
            str(&f.path(cert)),
            str(&f.path(key)),
        ];
        server.call("Запустить", &mut args).unwrap();
        let port = server.get("Порт").unwrap().as_f64().unwrap() as u16;
        let url = format!("wss://localhost:{port}/");
        for (lang, needle) in [(HostOptions::server(), ru), (HostOptions::english(), en)] {
            let c = create_with("Client", lang);
            let e = c
                .call("Подключиться", &mut [str(&url), str(&opts)])
                .unwrap_err()
                .text;
            assert!(e.contains(needle), "{cert}: {e}");
            assert_no_internals(&e);
            finish(c);
        }
        finish(server);
    }
}
