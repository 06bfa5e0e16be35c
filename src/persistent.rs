//! Persistent servers and clients: a listener or a connection that outlives the object that
//! started it.
//!
//! A scheduled job runs in a new session every time and its objects die with it. A server
//! or a client configured with `persistent` keeps its listener or connection, its
//! reconnection policy and its queued events in the process after the object is destroyed;
//! the next object that starts the same named server (or connects the same named client to
//! the same address) attaches to it and receives what arrived in between, in order.
//!
//! Lifetime: a registry owns each persistent entry (its own runtime lease, tokens, tracker,
//! hub and pusher). Tasks never own an entry: the idle-expiry task only ends the entry's
//! tasks and marks its [`Attachment`] expired, and the entry (and with it the lease) is
//! dropped later on a platform thread by the registry's sweep, because dropping the last
//! lease inside the runtime would shut the runtime down from within itself. Limits: one
//! process only (a 1C server cluster with several worker processes has one registry per
//! process), and nothing survives a process restart. Servers and clients have separate
//! registries: a server and a client may share a name.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::hub::{Hub, Pusher};
use crate::net::client::Link;
use crate::net::server::ServerRun;
use crate::runtime::Engine;

/// Who holds a persistent entry: one object at a time, or nobody since some moment, or
/// nobody ever again (expired).
pub struct Attachment(Mutex<Holder>);

#[derive(Clone, Copy)]
enum Holder {
    Attached,
    Alone(Instant),
    Expired,
}

/// The answer to [`Attachment::claim`].
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// The caller holds it now.
    Taken,
    /// Another object holds it.
    InUse,
    /// It expired: treat it as gone.
    Expired,
}

impl Attachment {
    /// Held by the object that creates the entry.
    pub fn held() -> Arc<Attachment> {
        Arc::new(Attachment(Mutex::new(Holder::Attached)))
    }

    fn lock(&self) -> MutexGuard<'_, Holder> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the entry for one object. Checked and set under one lock, so that two objects
    /// never both attach and an expiry never ends an entry just attached to.
    pub fn claim(&self) -> Claim {
        let mut h = self.lock();
        match *h {
            Holder::Attached => Claim::InUse,
            Holder::Expired => Claim::Expired,
            Holder::Alone(_) => {
                *h = Holder::Attached;
                Claim::Taken
            }
        }
    }

    /// The object lets go: alone from now on.
    pub fn release(&self) {
        let mut h = self.lock();
        if !matches!(*h, Holder::Expired) {
            *h = Holder::Alone(Instant::now());
        }
    }

    /// Whether the idle expiry ended it.
    pub fn expired(&self) -> bool {
        matches!(*self.lock(), Holder::Expired)
    }

    /// Marks it expired if it has been alone for `expiry`; otherwise how long to look
    /// again after.
    fn expire_if_idle(&self, expiry: Duration) -> Option<Duration> {
        let mut h = self.lock();
        match *h {
            Holder::Alone(t) if t.elapsed() >= expiry => {
                *h = Holder::Expired;
                None
            }
            Holder::Alone(t) => Some(expiry - t.elapsed()),
            Holder::Attached => Some(expiry),
            Holder::Expired => None,
        }
    }
}

/// What a registry keeps.
pub trait Lasting: Send + Sync + 'static {
    /// The registry key.
    fn name(&self) -> &str;
    /// Who holds it.
    fn attachment(&self) -> &Attachment;
    /// Ends everything it runs, on a platform thread, within `wait`.
    fn shut(&self, wait: Duration);
}

/// The live persistent entries of one kind, by name.
pub struct Registry<T>(Mutex<BTreeMap<String, Arc<T>>>);

impl<T: Lasting> Registry<T> {
    const fn new() -> Registry<T> {
        Registry(Mutex::new(BTreeMap::new()))
    }

    fn map(&self) -> MutexGuard<'_, BTreeMap<String, Arc<T>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live entry called `name` (expired ones are swept first).
    pub fn find(&self, name: &str) -> Option<Arc<T>> {
        self.sweep();
        self.map().get(name).cloned()
    }

    /// Whether `entry` is still registered (not removed, not replaced).
    pub fn holds(&self, entry: &Arc<T>) -> bool {
        self.map()
            .get(entry.name())
            .is_some_and(|e| Arc::ptr_eq(e, entry))
    }

    /// Registers a new entry; one it replaces (expired, not yet swept) is shut.
    pub fn insert(&self, entry: Arc<T>) {
        let old = self.map().insert(entry.name().to_owned(), entry);
        if let Some(old) = old {
            old.shut(Duration::from_secs(5));
        }
    }

    /// Unregisters `entry` (if it is still the registered one); the caller shuts it.
    pub fn remove(&self, entry: &Arc<T>) -> bool {
        let mut map = self.map();
        if map.get(entry.name()).is_some_and(|e| Arc::ptr_eq(e, entry)) {
            map.remove(entry.name());
            return true;
        }
        false
    }

    /// Drops the entries whose idle expiry fired, shutting them on this thread.
    pub fn sweep(&self) {
        let expired: Vec<Arc<T>> = {
            let mut map = self.map();
            let names: Vec<String> = map
                .iter()
                .filter(|(_, e)| e.attachment().expired())
                .map(|(n, _)| n.clone())
                .collect();
            names.iter().filter_map(|n| map.remove(n)).collect()
        };
        for e in expired {
            e.shut(Duration::from_secs(5));
        }
    }
}

/// The persistent servers.
pub static SERVERS: Registry<Persistent> = Registry::new();
/// The persistent clients.
pub static CLIENTS: Registry<PersistentClient> = Registry::new();

/// A persistent server or client kept in its registry: what both share (name, runtime side, hub and
/// pusher, who holds it), plus `kind`, what is their own (read through `Deref`).
pub struct Kept<K> {
    /// Its name (`persistent.name`).
    pub name: String,
    /// Its runtime side (its own lease, tokens and tracker).
    pub engine: Engine,
    /// Its hub: events wait here while no object is attached.
    pub hub: Arc<Hub>,
    /// The pusher of `hub` (stopped when the entry is dropped; `shut` closes the hub).
    pub pusher: Pusher,
    /// Which object holds it.
    pub attachment: Arc<Attachment>,
    /// The server's or the client's part.
    pub kind: K,
}

impl<K> std::ops::Deref for Kept<K> {
    type Target = K;
    fn deref(&self) -> &K {
        &self.kind
    }
}

impl<K: Send + Sync + 'static> Lasting for Kept<K> {
    fn name(&self) -> &str {
        &self.name
    }
    fn attachment(&self) -> &Attachment {
        &self.attachment
    }
    fn shut(&self, wait: Duration) {
        self.hub.close();
        self.engine.shutdown(wait);
    }
}

/// A persistent server's own part.
pub struct ServerPart {
    /// The interface it listens on.
    pub interface: String,
    /// The port it listens on.
    pub port: u16,
    /// The accept loop's context.
    pub ctx: Arc<ServerRun>,
}

/// One persistent server.
pub type Persistent = Kept<ServerPart>;

/// A persistent client's own part: the connection task (with its reconnection policy and
/// its send queue) runs on the entry's engine and publishes to the entry's hub, so neither
/// ends with the object. A connection that has ended (closed by the server without
/// `reconnect`, or reconnection gave up) is dialled again, into the same hub, by the next
/// `Подключиться`.
pub struct ClientPart {
    /// The address as 1C code passed it: the next object must pass the same.
    pub url: String,
    /// The connection task's tracker (the expiry task is not in it).
    pub tracker: TaskTracker,
    /// The current connection (`None` only before the first dial).
    pub link: Mutex<Option<Link>>,
}

impl ClientPart {
    /// The current connection.
    pub fn link(&self) -> Option<Link> {
        self.link.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One persistent client.
pub type PersistentClient = Kept<ClientPart>;

/// How an expiry ends an entry's tasks: drain (queued messages go out, connections close
/// with 1001), then cancel what is left after `bound`.
pub struct Ending {
    /// The drain token.
    pub drain: CancellationToken,
    /// The hard-cancel token.
    pub token: CancellationToken,
    /// The tasks to wait for.
    pub tracker: TaskTracker,
    /// The bound on the drain.
    pub bound: Duration,
    /// The entry's hub, closed at the end: its pusher thread ends then, not at the sweep.
    pub hub: Arc<Hub>,
}

/// The idle-expiry task: ends the entry once no object has been attached for `expiry`. The
/// registry entry goes at the next sweep.
pub async fn expire_when_idle(attachment: Arc<Attachment>, expiry: Duration, end: Ending) {
    loop {
        let Some(wait) = attachment.expire_if_idle(expiry) else {
            end.drain.cancel();
            end.tracker.close();
            tokio::select! {
                _ = tokio::time::sleep(end.bound) => {}
                _ = end.tracker.wait() => {}
            }
            end.token.cancel();
            end.hub.close();
            return;
        };
        tokio::select! {
            _ = tokio::time::sleep(wait.max(Duration::from_millis(10))) => {}
            _ = end.token.cancelled() => return,
        }
    }
}
