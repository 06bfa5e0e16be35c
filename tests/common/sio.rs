//! Socket.IO servers for the host tests: npm `socket.io` 4 (tests/peers/node/sio-server.js)
//! and python-socketio (tests/peers/sio_server.py). Each prints `{"port": N}` first, then one
//! JSON line per thing a test checks.

use std::io::BufRead;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

/// The socket.io server process; killed on drop.
pub struct SioPeer {
    /// The process.
    pub child: std::process::Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    lines: Receiver<Json>,
}

impl SioPeer {
    /// The npm socket.io server with `env` (PORT, TLS_CERT/TLS_KEY, PING_INTERVAL/PING_TIMEOUT).
    pub fn start(env: &[(&str, &str)]) -> SioPeer {
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/node/sio-server.js");
        let mut cmd = std::process::Command::new("node");
        cmd.arg(script).envs(env.iter().copied());
        SioPeer::spawn(
            cmd,
            "node (scripts/test.sh installs socket.io into tests/peers/node)",
        )
    }

    /// The python-socketio server (tests/peers/sio_server.py).
    pub fn python() -> SioPeer {
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/sio_server.py");
        let mut cmd = std::process::Command::new(super::python());
        cmd.arg(script);
        SioPeer::spawn(
            cmd,
            "python-socketio (scripts/test.sh installs it into .venv)",
        )
    }

    fn spawn(mut cmd: std::process::Command, what: &str) -> SioPeer {
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect(what);
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Json>(&line)
                    && tx.send(v).is_err()
                {
                    break;
                }
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("the socket.io server did not start");
        let port = first["port"].as_u64().expect("port line") as u16;
        SioPeer { child, port, lines }
    }

    /// `ws://127.0.0.1:port{nsp}`.
    pub fn url(&self, nsp: &str) -> String {
        format!("ws://127.0.0.1:{}{nsp}", self.port)
    }

    /// The next line the server printed that `pred` accepts (others are skipped).
    pub fn expect(&self, what: &str, pred: impl Fn(&Json) -> bool) -> Json {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) if pred(&v) => return v,
                Ok(_) => {}
                Err(_) => panic!("the server never printed {what}"),
            }
        }
    }

    /// The next connection line of namespace `nsp`.
    pub fn connected(&self, nsp: &str) -> Json {
        self.expect("a connection", |v| {
            v["connected"].is_string() && v["nsp"] == nsp
        })
    }

    /// The next line of an event called `event` that the server received.
    pub fn received(&self, event: &str) -> Json {
        self.expect(event, |v| v["event"] == event)
    }
}

impl Drop for SioPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
