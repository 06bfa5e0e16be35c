//! The one process-wide tokio runtime, reference-counted by the objects that use it.
//!
//! Lifetime rules (the add-in lives inside a 1C process that never unloads it and may create
//! and destroy thousands of objects over days):
//!
//! 1. **Only the registry owns the `Runtime`.** Objects hold a [`RuntimeLease`]; tasks hold
//!    nothing but their channel ends, an `Arc<Hub>` and a cancellation token. Dropping a
//!    tokio runtime from inside one of its own tasks panics, so teardown happens only when the
//!    last lease is dropped, and leases are dropped on the platform's thread (`DestroyObject`).
//! 2. **The last lease shuts the runtime down with a bound** (`shutdown_timeout`), which also
//!    joins its worker threads. Leases are held by live objects *and* by persistent servers
//!    (`crate::persistent`'s registry owns theirs until they are stopped or expire), so the
//!    worker threads remain while either exists; after the last object is destroyed and the
//!    last persistent server has stopped, no worker thread of ours is left. A pusher thread
//!    (`crate::hub::Pusher`) stuck in a platform call past its bound, and a runtime thread
//!    stuck past `SHUTDOWN_BOUND`, are left to finish on their own; both are counted in
//!    [`shutdown_timeouts`].
//! 3. **Every task is spawned into its object's `TaskTracker`**, so `Done()` can cancel the
//!    object's token and wait for exactly those tasks, within a bound, on the 1C thread.
//! 4. **Receive blocks only the calling 1C thread** (the hub's condvar), never a worker.
//!
//! The library image itself is pinned by `abi/` when the first object is created, so a worker
//! thread that outlives a bound never executes unmapped code.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::runtime::{Builder, Handle, Runtime};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::{Error, Result};

/// How long the last lease waits for stragglers when it shuts the runtime down.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(5);

/// Shutdowns (of an object's tasks, or of the runtime) that hit their bound.
static SHUTDOWN_TIMEOUTS: AtomicU64 = AtomicU64::new(0);

/// How many shutdowns hit their bound since the library was loaded: tasks (or a pusher)
/// that had not finished when `Done()` returned. Non-zero means a peer or the platform held
/// something up; nothing of the object is touched by the stragglers.
pub fn shutdown_timeouts() -> u64 {
    SHUTDOWN_TIMEOUTS.load(Ordering::Relaxed)
}

/// Returns freed heap memory to the system (installed by `abi/`, which holds the unsafe
/// call; none in unit tests).
static MEMORY_TRIM: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Installs the memory trim (once; later calls are ignored).
pub fn set_memory_trim(trim: fn()) {
    let _ = MEMORY_TRIM.set(trim);
}

/// Returns freed heap memory to the system, if a trim is installed. For the end of a
/// connection that queued megabytes, not for every message: it walks the allocator's arenas.
pub fn trim_memory() {
    if let Some(trim) = MEMORY_TRIM.get() {
        trim();
    }
}

/// Counts one shutdown that hit its bound.
pub fn count_shutdown_timeout() {
    SHUTDOWN_TIMEOUTS.fetch_add(1, Ordering::Relaxed);
}

struct Registry {
    runtime: Option<Runtime>,
    leases: usize,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    runtime: None,
    leases: 0,
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// A counted reference to the process runtime. Dropping the last one shuts it down.
pub struct RuntimeLease {
    handle: Handle,
}

impl RuntimeLease {
    /// Takes a lease, building the runtime if no object holds one.
    pub fn acquire() -> Result<RuntimeLease> {
        let mut reg = registry();
        if reg.runtime.is_none() {
            let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4));
            let rt = Builder::new_multi_thread()
                .worker_threads(workers)
                .max_blocking_threads(4)
                .thread_name("ws1c-worker")
                .enable_all()
                .build()
                .map_err(|e| Error::Runtime(e.to_string()))?;
            reg.runtime = Some(rt);
        }
        reg.leases += 1;
        let handle = reg
            .runtime
            .as_ref()
            .map(|r| r.handle().clone())
            .ok_or_else(|| Error::Runtime("runtime missing".into()))?;
        Ok(RuntimeLease { handle })
    }

    /// The runtime's handle, for spawning into a tracker and for `block_on` on the 1C thread.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// How many leases are live (for tests).
    pub fn live() -> usize {
        registry().leases
    }
}

impl Drop for RuntimeLease {
    fn drop(&mut self) {
        let rt = {
            let mut reg = registry();
            reg.leases = reg.leases.saturating_sub(1);
            if reg.leases == 0 {
                reg.runtime.take()
            } else {
                None
            }
        };
        // Outside the registry lock: a new object may build a fresh runtime meanwhile.
        if let Some(rt) = rt {
            // `shutdown_timeout` says nothing about stragglers; time it to count them.
            let started = Instant::now();
            rt.shutdown_timeout(SHUTDOWN_BOUND);
            if started.elapsed() >= SHUTDOWN_BOUND {
                count_shutdown_timeout();
            }
        }
    }
}

/// The runtime side of one object: its lease, its cancellation token and its task tracker.
/// Created at the object's first network operation, so an idle object costs no thread.
pub struct Engine {
    /// The runtime lease (dropped with the object).
    pub lease: RuntimeLease,
    /// Cancelled by `Done()` at its bound; every task of the object selects on it or a
    /// child of it and ends at once.
    pub token: CancellationToken,
    /// Cancelled first by `Done()`: connections send what `Отправить` accepted, close with
    /// 1001 and end; the accept loop stops accepting. `token` still ends everything at the
    /// bound.
    pub drain: CancellationToken,
    /// Every task of the object.
    pub tracker: TaskTracker,
}

impl Engine {
    /// Leases the runtime.
    pub fn start() -> Result<Engine> {
        Ok(Engine {
            lease: RuntimeLease::acquire()?,
            token: CancellationToken::new(),
            drain: CancellationToken::new(),
            tracker: TaskTracker::new(),
        })
    }

    /// Spawns `task` into the object's tracker.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn_on(task, self.lease.handle())
    }

    /// Runs `fut` to completion on this (1C) thread, giving up after `wait`; `None` on
    /// timeout. Never called from a runtime worker.
    pub fn block_on_timeout<F: std::future::Future>(
        &self,
        wait: Duration,
        fut: F,
    ) -> Option<F::Output> {
        // The timer must be created inside the runtime, hence the async block.
        self.lease
            .handle()
            .block_on(async move { tokio::time::timeout(wait, fut).await.ok() })
    }

    /// `Done()`: let the tasks finish their work (drain), then cancel what is left, all
    /// within `wait`. Returns false, and counts it, if tasks remained at the bound.
    ///
    /// Why two stages: 1C code often ends a fire-and-forget notification by letting the
    /// object go out of scope right after `Отправить`; cancelling at once would drop what
    /// the send queue still held. Draining gets it out (then a 1001 close). Most of the
    /// bound goes to the drain; the last fifth (at most 500 ms) is kept for the hard cancel,
    /// so that `Done()` still returns within `wait` when a peer stops reading.
    pub fn shutdown(&self, wait: Duration) -> bool {
        self.end_tasks(&self.drain, &self.token, &self.tracker, wait)
    }

    /// Ends the tasks of `tracker` in the two stages of [`Engine::shutdown`]: `drain`, then
    /// `token` for what is left, all within `wait`, on this (1C) thread. Used for the whole
    /// object and for one server run (`Остановить`).
    pub fn end_tasks(
        &self,
        drain: &CancellationToken,
        token: &CancellationToken,
        tracker: &TaskTracker,
        wait: Duration,
    ) -> bool {
        let deadline = Instant::now() + wait;
        let reserve = (wait / 5).min(Duration::from_millis(500));
        drain.cancel();
        tracker.close();
        let t = tracker.clone();
        let drained = self
            .block_on_timeout(wait - reserve, async move { t.wait().await })
            .is_some();
        token.cancel();
        if drained {
            return true;
        }
        let t = tracker.clone();
        let left = deadline.saturating_duration_since(Instant::now());
        let ended = self
            .block_on_timeout(left, async move { t.wait().await })
            .is_some();
        if !ended {
            count_shutdown_timeout();
        }
        ended
    }
}
