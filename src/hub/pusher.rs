//! The pusher: the one thread of a hub that raises `ExternalEvent`.
//!
//! Why a dedicated thread and not a runtime task: `ExternalEvent` is a call into the 1C
//! platform, which may take its time (a busy UI queue, its own locks). On a runtime worker
//! (one of at most four) that call would stop every socket the worker serves, of every
//! object in the process. On its own thread it delays only this hub's pushes; sockets keep
//! flowing, and the hub's bounded queue turns a slow platform into TCP back-pressure.
//!
//! Order: one thread per hub takes events in arrival order and raises them one at a time,
//! so 1C sees them in order. No lock is held during the platform call: the batch is taken
//! under the hub's lock, raised outside it, and settled under it again.
//!
//! Lifetime: the thread holds only an `Arc<Hub>`. It ends when the hub closes (`Done()`,
//! or a persistent server's shutdown); [`Pusher::stop`] waits for that with a bound. A
//! thread still inside a platform call when the bound expires is left to finish: the sink
//! it holds is disarmed, so it makes no further platform call, and the library image is
//! pinned, so it never runs unmapped code.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Hub, Push};
use crate::error::{Error, Result};
use crate::platform::Emit;

/// Events taken from the queue per lock.
const BATCH: usize = 64;

/// How long an idle pusher looks for new events before it sleeps.
const PUSH_SPIN: Duration = Duration::from_micros(50);

/// The running pusher thread of one hub.
pub struct Pusher {
    hub: Arc<Hub>,
    /// Set (and signalled) when the thread leaves its loop, also by unwinding: a bound
    /// that `JoinHandle::join` lacks.
    exited: Arc<Exit>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Exit {
    done: Mutex<bool>,
    cv: Condvar,
}

/// Marks the thread's exit when dropped.
struct ExitGuard(Arc<Exit>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        *self.0.done.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.0.cv.notify_all();
    }
}

impl Pusher {
    /// Starts the pusher of `hub`.
    pub fn start(hub: &Arc<Hub>) -> Result<Pusher> {
        let exited = Arc::new(Exit::default());
        let (h, guard) = (hub.clone(), ExitGuard(exited.clone()));
        let thread = std::thread::Builder::new()
            .name("ws1c-push".into())
            .spawn(move || {
                let _exit = guard;
                push_loop(&h);
            })
            .map_err(|e| Error::Runtime(e.to_string()))?;
        Ok(Pusher {
            hub: hub.clone(),
            exited,
            thread: Some(thread),
        })
    }

    /// Closes the hub and waits, at most `wait`, for the thread to end. True if it did.
    pub fn stop(&mut self, wait: Duration) -> bool {
        self.hub.close();
        let Some(thread) = self.thread.take() else {
            return true;
        };
        let g = self.exited.done.lock().unwrap_or_else(|e| e.into_inner());
        let (g, _) = self
            .exited
            .cv
            .wait_timeout_while(g, wait, |done| !*done)
            .unwrap_or_else(|e| e.into_inner());
        if *g {
            drop(g);
            let _ = thread.join();
            true
        } else {
            // Left to finish on its own (see the module docs).
            false
        }
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(1));
    }
}

/// The thread's loop.
fn push_loop(hub: &Hub) {
    let mut batch: Vec<Push> = Vec::with_capacity(BATCH);
    // Headers are written here, one event at a time, instead of allocated per event.
    let mut head = String::new();
    // (item, outcome) in order, settled under the lock; then the delivered items, freed
    // after the lock is released so that the producers never wait for a deallocation.
    let mut outcomes: Vec<(Push, Emit)> = Vec::with_capacity(BATCH);
    let mut spent: Vec<Push> = Vec::with_capacity(BATCH);
    loop {
        let mut spin_end = None;
        let (sink, source) = {
            let mut g = hub.lock();
            loop {
                if g.closed {
                    return;
                }
                let now = Instant::now();
                hub.expire_window(&mut g, now);
                if let Some(sink) = g.sink.clone()
                    && !g.push.is_empty()
                {
                    let n = g.push.len().min(BATCH);
                    batch.extend(g.push.drain(..n));
                    break (sink, g.source.clone());
                }
                // Why spin first: under a steady stream the next event is microseconds away,
                // and sleeping on the condvar costs a futex wake-up (a system call on the
                // producer's side too) per batch. Yielding lets a producer sharing this core
                // run meanwhile; after `PUSH_SPIN` of nothing the thread sleeps.
                if g.sink.is_some() && now < *spin_end.get_or_insert(now + PUSH_SPIN) {
                    drop(g);
                    std::thread::yield_now();
                    g = hub.lock();
                    continue;
                }
                g.pusher_idle = true;
                g = match Hub::window_deadline(&g) {
                    Some(d) => {
                        hub.pushable
                            .wait_timeout(g, d.saturating_duration_since(now))
                            .unwrap_or_else(|e| e.into_inner())
                            .0
                    }
                    None => hub.pushable.wait(g).unwrap_or_else(|e| e.into_inner()),
                };
                g.pusher_idle = false;
            }
        };
        outcomes.extend(batch.drain(..).map(|item| {
            let emitted = match &item {
                Push::Event(q) => sink.emit(&source, q.ev.header_in(&mut head), &q.ev.payload()),
                Push::Copy(ev) => sink.emit(&source, ev.header_in(&mut head), &ev.payload()),
                Push::Note(note) => sink.emit(&source, note, ""),
            };
            (item, emitted)
        }));
        settle(hub, &mut outcomes, &mut spent);
        spent.clear();
    }
}

/// Books the outcome of a batch: delivered events leave the queue; refused ones are counted
/// and wait for pull, in arrival order among the events already there.
/// Delivered items move to `spent`, for the caller to free outside the lock.
fn settle(hub: &Hub, outcomes: &mut Vec<(Push, Emit)>, spent: &mut Vec<Push>) {
    let mut g = hub.lock();
    let (mut wake_producers, mut back) = (false, false);
    for (item, emitted) in outcomes.drain(..) {
        if emitted == Emit::Refused && !matches!(item, Push::Note(_)) {
            g.undelivered += 1;
        }
        match item {
            Push::Event(q) if emitted != Emit::Delivered => {
                g.pull.insert(q);
                back = true;
            }
            done => {
                if matches!(done, Push::Event(_)) {
                    let before = g.queued;
                    g.queued -= 1;
                    wake_producers |= Hub::should_wake_producers(before, g.capacity);
                }
                spent.push(done);
            }
        }
    }
    if back && g.readers > 0 {
        hub.readable.notify_all();
    }
    drop(g);
    if wake_producers {
        hub.space.notify_waiters();
    }
}
