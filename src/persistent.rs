//! Persistent servers: a listener that outlives the object that started it.
//!
//! A scheduled job runs in a new session every time and its objects die with it. A server
//! configured with `persistent` keeps its listener, its connections and their queued events
//! in the process after the object is destroyed; the next object that runs the same named
//! server attaches to it and receives what arrived in between, in order.
//!
//! Lifetime: the registry owns each persistent server (its own runtime lease, token, tracker
//! and hub). Tasks never own it: the idle-expiry task only cancels the server's token and
//! marks it expired, and the registry entry (and with it the lease) is dropped later on a
//! platform thread by [`sweep`], because dropping the last lease inside the runtime would
//! shut the runtime down from within itself. Limits: one process only (a 1C server cluster
//! with several worker processes has one registry per process), and nothing survives a
//! process restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::hub::{Hub, Pusher};
use crate::net::server::ServerRun;
use crate::runtime::Engine;

/// One persistent server.
pub struct Persistent {
    /// Its name (`persistent.name`).
    pub name: String,
    /// The interface it listens on.
    pub interface: String,
    /// The port it listens on.
    pub port: u16,
    /// Its runtime side (its own lease, token and tracker).
    pub engine: Engine,
    /// Its hub: events wait here while no object is attached.
    pub hub: Arc<Hub>,
    /// The pusher of `hub` (stopped when the server is dropped; `shut` closes the hub).
    pub pusher: Pusher,
    /// The accept loop's context.
    pub ctx: Arc<ServerRun>,
    /// `None` while an object is attached; since when it has been alone otherwise.
    pub alone_since: Arc<Mutex<Option<Instant>>>,
}

fn registry() -> MutexGuard<'static, HashMap<String, Arc<Persistent>>> {
    static REGISTRY: std::sync::LazyLock<Mutex<HashMap<String, Arc<Persistent>>>> =
        std::sync::LazyLock::new(|| Mutex::new(HashMap::new()));
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// The live persistent server called `name`.
pub fn find(name: &str) -> Option<Arc<Persistent>> {
    sweep();
    registry().get(name).cloned()
}

/// Registers a new persistent server.
pub fn insert(p: Arc<Persistent>) {
    registry().insert(p.name.clone(), p);
}

/// Removes `name` and shuts it down on this (platform) thread, within `wait`.
pub fn remove(name: &str, wait: Duration) {
    let p = registry().remove(name);
    if let Some(p) = p {
        shut(&p, wait);
    }
}

fn shut(p: &Persistent, wait: Duration) {
    p.hub.close();
    p.engine.shutdown(wait);
}

/// Drops persistent servers whose idle expiry fired (their drain token is cancelled).
pub fn sweep() {
    let expired: Vec<Arc<Persistent>> = {
        let mut reg = registry();
        let names: Vec<String> = reg
            .iter()
            .filter(|(_, p)| p.ctx.drain.is_cancelled())
            .map(|(n, _)| n.clone())
            .collect();
        names.iter().filter_map(|n| reg.remove(n)).collect()
    };
    for p in expired {
        shut(&p, Duration::from_secs(5));
    }
}

/// The idle-expiry task: stops the server (connections close, the port is freed) once no
/// object has been attached for `expiry`. The registry entry goes at the next [`sweep`].
pub async fn expire_when_idle(
    ctx: Arc<ServerRun>,
    alone_since: Arc<Mutex<Option<Instant>>>,
    expiry: Duration,
) {
    loop {
        let wait = {
            let since = *alone_since.lock().unwrap_or_else(|e| e.into_inner());
            match since {
                Some(t) if t.elapsed() >= expiry => {
                    // Queued messages go out and connections close with 1001 (drain); the
                    // token, which `sweep` looks at, ends what is left after the bound.
                    ctx.drain.cancel();
                    ctx.run_tracker.close();
                    let bound = ctx.options.limits.close_timeout;
                    tokio::select! {
                        _ = tokio::time::sleep(bound) => {}
                        _ = ctx.run_tracker.wait() => {}
                    }
                    ctx.token.cancel();
                    return;
                }
                Some(t) => expiry - t.elapsed(),
                None => expiry,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait.max(Duration::from_millis(10))) => {}
            _ = ctx.token.cancelled() => return,
        }
    }
}
