//! The dispatch hub: one per object (or per persistent server). Connection tasks publish
//! events into it; the 1C thread pulls from it (`Получить`, `Принять`, `ПолучитьСобытие`);
//! the object's pusher thread ([`pusher`]) raises `ExternalEvent` from it. The hub queues and
//! routes; its settings and their parsing live in [`settings`].
//!
//! Overflow policy: the queue is bounded by `РазмерОчереди` (`capacity`). A connection that
//! publishes a message into a full queue *waits*, and so stops reading its socket: TCP
//! back-pressure on the peer; nothing is ever dropped. Connection events (open, close, fail,
//! pong) never wait, so a closing connection cannot deadlock against a full queue; there are
//! at most a few of them per connection, so they exceed the bound only by that much.
//!
//! Delivery ([`Delivery`]) has one owner, this hub, and changes only through the explicit
//! transitions below, under the hub's lock.

mod pull;
mod pusher;
mod settings;

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::event::{Event, EventKind};
use crate::platform::{AppType, EventSink};
use pull::PullQueue;

pub use pusher::Pusher;
pub use settings::{
    DEFAULT_EVENT_SOURCE, DEFAULT_QUEUE_CAPACITY, DEFAULT_SHUTDOWN_TIMEOUT, DeliveryMode,
    HubSettings, MAX_QUEUE_CAPACITY,
};

/// How long a receive yields its thread, re-checking the queue, before it blocks.
const RECEIVE_SPIN: Duration = Duration::from_micros(200);
/// How long the auto mode keeps events for a first pull call (see [`Phase::Undecided`]).
pub const REPLAY_WINDOW: Duration = Duration::from_secs(60);
/// The most message bytes the auto mode keeps for a first pull call.
pub const REPLAY_WINDOW_BYTES: usize = 64 << 20;

/// What the hub does with each event now: the mode 1C code chose, resolved for where the
/// add-in runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Everything waits for `Получить` / `ПолучитьСобытие`.
    Pull,
    /// Everything goes through `ExternalEvent`; what the platform refuses waits for pull.
    Push,
    /// A short `ExternalEvent` per event; the event waits for pull.
    Notify,
    /// `РежимДоставки = Авто`, in one of its phases.
    Auto(Phase),
}

/// The phases of the auto mode.
///
/// On the 1C server and in an external connection the platform delivers no external events:
/// there auto starts (and stays) [`Phase::Pulling`]. On clients it starts
/// [`Phase::Undecided`], because two kinds of code use the default mode there and the add-in
/// cannot tell them apart until they call it: a form that only handles `ВнешнееСобытие`, and
/// code written for the documented component that only pulls, whose first `Принять` may come
/// seconds after `Подключиться`. While undecided, every event is pushed **and** kept in a
/// replay window; the first pull call commits to pulling and takes the window over (it gets
/// everything that arrived, in order), while the window closing commits to pushing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Pushing and keeping. The window closes when it has held events for
    /// [`REPLAY_WINDOW`], or holds `РазмерОчереди` events or [`REPLAY_WINDOW_BYTES`] of
    /// messages; then the kept copies are dropped (they were pushed) and the phase becomes
    /// [`Phase::Pushing`]. It never makes a connection wait.
    Undecided {
        /// When the first event was kept (`None`: nothing kept yet).
        opened: Option<Instant>,
        /// Message bytes kept.
        bytes: usize,
    },
    /// A pull call came: everything waits for pull from now on.
    Pulling,
    /// The window closed without a pull call: everything is pushed. A later pull call still
    /// switches to pulling (for the events that arrive after it).
    Pushing,
}

impl Delivery {
    /// The delivery `mode` gives where the add-in runs (`app`), given the current one: an
    /// auto object keeps its phase unless the platform never delivers events.
    pub fn resolve(mode: DeliveryMode, app: AppType, current: Delivery) -> Delivery {
        match mode {
            DeliveryMode::Pull => Delivery::Pull,
            DeliveryMode::Push => Delivery::Push,
            DeliveryMode::Notify => Delivery::Notify,
            DeliveryMode::Auto if !app.delivers_events() => Delivery::Auto(Phase::Pulling),
            DeliveryMode::Auto => match current {
                Delivery::Auto(phase) => Delivery::Auto(phase),
                _ => Delivery::Auto(Phase::Undecided {
                    opened: None,
                    bytes: 0,
                }),
            },
        }
    }

    /// What happens to a published event.
    fn route(self) -> Route {
        match self {
            Delivery::Pull | Delivery::Auto(Phase::Pulling) => Route::Pull,
            Delivery::Push | Delivery::Auto(Phase::Pushing) => Route::Push,
            Delivery::Notify => Route::Notify,
            Delivery::Auto(Phase::Undecided { .. }) => Route::Both,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Pull,
    Push,
    Notify,
    Both,
}

/// An event with its arrival number: the pull queue is kept in arrival order even when
/// events the platform refused come back to it out of turn.
#[derive(Debug)]
struct Queued {
    seq: u64,
    ev: Event,
}

/// What waits for the pusher.
enum Push {
    /// A whole event, counted in `queued` (push).
    Event(Queued),
    /// A copy of an event kept in the replay window, not counted (auto, undecided).
    Copy(Event),
    /// A notification; its event waits in the pull queue (notify).
    Note(String),
}

/// The hub's state, under one lock.
struct Inner {
    /// Events for `Получить` / `ПолучитьСобытие` / `ПринятьОт`, in arrival order.
    pull: PullQueue,
    /// Events and notifications for the pusher, oldest first.
    push: VecDeque<Push>,
    /// Events in `pull` plus `Push::Event`s in `push`.
    queued: usize,
    /// Bound on `queued` for messages (connection events never wait, see the module docs).
    capacity: usize,
    /// The delivery in effect.
    delivery: Delivery,
    /// Arrival number of the next event.
    next_seq: u64,
    /// `Источник` of external events.
    source: String,
    /// Where pushed events go; `None` until `Init`, while a persistent server has no object
    /// attached, and after `Done()`. The pusher waits while it is `None`.
    sink: Option<Arc<dyn EventSink>>,
    /// Events the platform refused.
    undelivered: u64,
    /// Live connections: `Receive(0)` waits only while one may still deliver something.
    active: usize,
    /// `Done()` ran: producers stop waiting, readers and the pusher return at once.
    closed: bool,
    /// 1C threads blocked in a receive.
    readers: usize,
    /// The pusher waits on `pushable`: only then does a producer notify it (a condvar
    /// notify is a `futex` system call even with nobody waiting, and a busy pusher takes
    /// what arrived in its next batch anyway).
    pusher_idle: bool,
}

/// One object's dispatch point (see the module docs).
pub struct Hub {
    inner: Mutex<Inner>,
    /// Wakes 1C threads blocked in a receive.
    readable: Condvar,
    /// Wakes the pusher thread.
    pushable: Condvar,
    /// Wakes producers waiting for room.
    space: Notify,
}

fn message_bytes(ev: &Event) -> usize {
    match &ev.kind {
        EventKind::Text(t) => t.len(),
        EventKind::Binary(b) => b.len(),
        EventKind::SocketIo(e) if e.message => e.data.len(),
        _ => 0,
    }
}

impl Hub {
    /// An empty hub delivering as `settings` say for an application of kind `app`.
    pub fn new(settings: &HubSettings, app: AppType) -> Arc<Hub> {
        let undecided = Delivery::Auto(Phase::Undecided {
            opened: None,
            bytes: 0,
        });
        Arc::new(Hub {
            inner: Mutex::new(Inner {
                pull: PullQueue::default(),
                push: VecDeque::new(),
                queued: 0,
                capacity: settings.capacity,
                delivery: Delivery::resolve(settings.mode, app, undecided),
                next_seq: 0,
                source: settings.source.clone(),
                sink: None,
                undelivered: 0,
                active: 0,
                closed: false,
                readers: 0,
                pusher_idle: false,
            }),
            readable: Condvar::new(),
            pushable: Condvar::new(),
            space: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies the settings 1C code changed, for an application of kind `app`.
    pub fn configure(&self, settings: &HubSettings, app: AppType) {
        let mut g = self.lock();
        let grew = settings.capacity > g.capacity;
        g.capacity = settings.capacity;
        g.source = settings.source.clone();
        let to = Delivery::resolve(settings.mode, app, g.delivery);
        self.transition(&mut g, to);
        drop(g);
        if grew {
            self.space.notify_waiters();
        }
    }

    /// The one place delivery changes. Leaving the undecided phase settles the replay
    /// window: towards pulling, the copies not yet pushed are dropped (their events wait in
    /// the pull queue); towards pushing, the kept events are dropped and the copies still to
    /// push become counted events.
    fn transition(&self, g: &mut Inner, to: Delivery) {
        let from = g.delivery;
        g.delivery = to;
        if !matches!(from, Delivery::Auto(Phase::Undecided { .. })) || from.route() == to.route() {
            return;
        }
        match to.route() {
            Route::Pull | Route::Notify => g.push.retain(|p| !matches!(p, Push::Copy(_))),
            Route::Push => {
                let kept = g.pull.clear();
                let mut pending = 0;
                for p in g.push.iter_mut() {
                    if let Push::Copy(ev) = p {
                        let ev = std::mem::replace(
                            ev,
                            Event {
                                conn: None,
                                kind: EventKind::Text(String::new()),
                            },
                        );
                        let seq = g.next_seq;
                        g.next_seq += 1;
                        *p = Push::Event(Queued { seq, ev });
                        pending += 1;
                    }
                }
                g.queued = g.queued - kept + pending;
                self.space.notify_waiters();
            }
            Route::Both => {}
        }
        self.pushable.notify_one();
    }

    /// Closes the replay window if it is due; true if it did.
    fn expire_window(&self, g: &mut Inner, now: Instant) -> bool {
        let due = match g.delivery {
            Delivery::Auto(Phase::Undecided {
                opened: Some(t),
                bytes,
            }) => now >= t + REPLAY_WINDOW || bytes >= REPLAY_WINDOW_BYTES,
            _ => false,
        };
        if due {
            self.transition(g, Delivery::Auto(Phase::Pushing));
        }
        due
    }

    /// When the replay window closes by time, if it is open.
    fn window_deadline(g: &Inner) -> Option<Instant> {
        match g.delivery {
            Delivery::Auto(Phase::Undecided {
                opened: Some(t), ..
            }) => Some(t + REPLAY_WINDOW),
            _ => None,
        }
    }

    /// Sets or clears the platform sink (at `Init`, on attaching to a persistent server, at
    /// `Done()`).
    pub fn set_sink(&self, sink: Option<Arc<dyn EventSink>>) {
        self.lock().sink = sink;
        self.pushable.notify_one();
    }

    /// A connection started delivering (before its Open event).
    pub fn connection_started(&self) {
        self.lock().active += 1;
    }

    /// A connection ended (after its last event).
    pub fn connection_ended(&self) {
        let mut g = self.lock();
        g.active = g.active.saturating_sub(1);
        if g.readers > 0 {
            self.readable.notify_all();
        }
    }

    /// `Done()`: readers return, producers stop waiting, the pusher stops.
    pub fn close(&self) {
        let mut g = self.lock();
        g.closed = true;
        g.sink = None;
        drop(g);
        self.readable.notify_all();
        self.pushable.notify_all();
        self.space.notify_waiters();
    }

    /// Events waiting for pull.
    pub fn pending(&self) -> usize {
        self.lock().pull.len()
    }

    /// Events the platform refused.
    pub fn undelivered(&self) -> u64 {
        self.lock().undelivered
    }

    /// The delivery in effect now.
    pub fn delivery(&self) -> Delivery {
        self.lock().delivery
    }

    /// Publishes `ev`, waiting for room if it is a message and the queue is full, until
    /// `cancel` fires or the hub closes (then the event is dropped: nobody is left to see it).
    pub async fn publish(&self, ev: Event, cancel: &CancellationToken) {
        let mut one = VecDeque::from([ev]);
        self.publish_all(&mut one, cancel).await;
    }

    /// Publishes `evs` in order, as [`Hub::publish`] each, but under one lock and with one
    /// wake-up of the reader (or the pusher) for the whole batch while there is room: a
    /// connection reads every frame already buffered and hands them over together. Leaves
    /// `evs` empty.
    pub async fn publish_all(&self, evs: &mut VecDeque<Event>, cancel: &CancellationToken) {
        // Fast path: no waiter registration when there is room (the usual case).
        if self.try_publish(evs) {
            return;
        }
        loop {
            // Registered before the re-check, so a wake-up between the check and the await
            // is kept.
            let room = self.space.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.try_publish(evs) {
                return;
            }
            tokio::select! {
                _ = &mut room => {}
                _ = cancel.cancelled() => return evs.clear(),
            }
        }
    }

    /// Enqueues from the front of `evs` while there is room (connection events always
    /// fit); true when nothing is left to wait for (all queued, or the hub is closed).
    fn try_publish(&self, evs: &mut VecDeque<Event>) -> bool {
        let mut g = self.lock();
        if g.closed {
            evs.clear();
            return true;
        }
        let (mut pulled, mut pushed) = (0, 0);
        while let Some(ev) = evs.front() {
            if ev.is_message() && g.queued >= g.capacity {
                // A full replay window never holds a connection back: it closes instead.
                if !matches!(g.delivery, Delivery::Auto(Phase::Undecided { .. })) {
                    break;
                }
                self.transition(&mut g, Delivery::Auto(Phase::Pushing));
                if g.queued >= g.capacity {
                    break;
                }
            }
            let Some(ev) = evs.pop_front() else { break };
            let (to_pull, to_push) = self.enqueue(&mut g, ev);
            pulled += usize::from(to_pull);
            pushed += usize::from(to_push);
        }
        if pushed > 0 && g.pusher_idle {
            self.pushable.notify_one();
        }
        if pulled > 0 && g.readers > 0 {
            // Several readers may wait for different things (`ПринятьОт` of different
            // connections): then all of them look.
            if g.readers > 1 {
                self.readable.notify_all();
            } else {
                self.readable.notify_one();
            }
        }
        evs.is_empty()
    }

    /// Queues `ev` by the delivery in effect; says whether the pull queue and the push
    /// queue received something (the caller wakes their consumers once per batch: a condvar
    /// notify is a system call even with nobody waiting).
    fn enqueue(&self, g: &mut Inner, ev: Event) -> (bool, bool) {
        let seq = g.next_seq;
        g.next_seq += 1;
        match g.delivery.route() {
            Route::Pull => {
                g.queued += 1;
                g.pull.push_back(Queued { seq, ev });
                (true, false)
            }
            Route::Push => {
                g.queued += 1;
                g.push.push_back(Push::Event(Queued { seq, ev }));
                (false, true)
            }
            Route::Notify => {
                g.queued += 1;
                // Notices are bounded too: past `capacity` of them unsent, the platform is
                // not keeping up anyway, and every payload still waits in the pull queue.
                if g.push.len() < g.capacity {
                    g.push.push_back(Push::Note(ev.notification()));
                }
                g.pull.push_back(Queued { seq, ev });
                (true, true)
            }
            Route::Both => {
                let now = Instant::now();
                if self.expire_window(g, now) {
                    // The window closed just now: this event is pushed only.
                    g.queued += 1;
                    g.push.push_back(Push::Event(Queued { seq, ev }));
                    return (false, true);
                }
                if let Delivery::Auto(Phase::Undecided { opened, bytes }) = &mut g.delivery {
                    opened.get_or_insert(now);
                    *bytes += message_bytes(&ev);
                }
                g.queued += 1;
                g.push.push_back(Push::Copy(ev.clone()));
                g.pull.push_back(Queued { seq, ev });
                (true, true)
            }
        }
    }

    /// Whether taking one event from a queue of `before` (of `capacity`) should wake waiting
    /// producers. Not at every take from a full queue: that would wake a connection for
    /// each message, only for it to fill the one free slot and sleep again. Producers are
    /// woken when the queue has drained to three quarters, and then refill it in batches.
    fn should_wake_producers(before: usize, capacity: usize) -> bool {
        let resume = capacity - (capacity / 4).max(1).min(capacity);
        before > resume && before - 1 <= resume
    }

    /// Takes the next event from the pull queue, blocking the calling (1C) thread: `None`
    /// waits while a connection is live, `Some(d)` waits at most `d`. With `messages_only`,
    /// connection events ahead of the next message are passed over (they are reflected in
    /// `Статус`; `ПолучитьСобытие` sees them). Returns `None` on timeout, or at once when no
    /// connection is live and nothing is queued.
    ///
    /// A pull call on an auto object commits it to pulling (see [`Phase`]).
    pub fn receive(&self, wait: Option<Duration>, messages_only: bool) -> Option<Event> {
        self.wait_for(wait, |hub, g| {
            while let Some(q) = g.pull.pop_front() {
                hub.took_one(g);
                if !messages_only || q.ev.is_message() {
                    return Take::Got(q.ev);
                }
            }
            if g.active == 0 {
                Take::Never
            } else {
                Take::NotYet
            }
        })
    }

    /// `ПринятьОт`: takes the oldest message of connection `conn`, leaving every other event
    /// where it is (so `Принять` still sees them in arrival order), blocking as
    /// [`Hub::receive`] does. `live()` says whether `conn` may still deliver; it is asked
    /// under the hub's lock whenever nothing of `conn` is queued, and a connection ending
    /// wakes the waiting reader. Returns `None` on timeout, or at once when nothing of `conn`
    /// is queued and `live()` is false. No scan of the queue: see [`pull`].
    pub fn receive_from(
        &self,
        conn: u64,
        wait: Option<Duration>,
        live: impl Fn() -> bool,
    ) -> Option<Event> {
        self.wait_for(wait, |hub, g| match g.pull.take_from(conn) {
            Some(q) => {
                hub.took_one(g);
                Take::Got(q.ev)
            }
            None if live() => Take::NotYet,
            None => Take::Never,
        })
    }

    /// Books one event taken from the pull queue: the count, and the producers held back by
    /// a full queue.
    fn took_one(&self, g: &mut Inner) {
        let before = g.queued;
        g.queued -= 1;
        if Self::should_wake_producers(before, g.capacity) {
            self.space.notify_waiters();
        }
    }

    /// The wait of every pull call: `take` is tried under the lock until it takes something
    /// or says nothing will come, the hub closes, or `wait` (`None`: no bound) runs out.
    fn wait_for(
        &self,
        wait: Option<Duration>,
        mut take: impl FnMut(&Hub, &mut Inner) -> Take,
    ) -> Option<Event> {
        let mut deadline: Option<Instant> = None;
        let mut spin_end: Option<Instant> = None;
        let mut g = self.lock();
        if let Delivery::Auto(phase) = g.delivery
            && phase != Phase::Pulling
        {
            self.transition(&mut g, Delivery::Auto(Phase::Pulling));
        }
        loop {
            match take(self, &mut g) {
                Take::Got(ev) => return Some(ev),
                Take::Never => return None,
                Take::NotYet if g.closed => return None,
                Take::NotYet => {}
            }
            // The clock is read only when there is nothing to take.
            let until = wait.map(|w| *deadline.get_or_insert_with(|| Instant::now() + w));
            let spin_until = *spin_end.get_or_insert_with(|| Instant::now() + RECEIVE_SPIN);
            if wait.is_none_or(|w| w > RECEIVE_SPIN) && Instant::now() < spin_until {
                // Why spin first: an answer is often microseconds away (a round trip on
                // loopback), while a blocked thread costs a futex wake-up and a reschedule
                // to resume. Yielding (not busy-waiting) lets a connection task sharing
                // this core run meanwhile; where nothing else wants the core the spin
                // costs at most `RECEIVE_SPIN` of CPU, and then the thread blocks.
                drop(g);
                std::thread::yield_now();
                g = self.lock();
                continue;
            }
            g.readers += 1;
            g = match until {
                None => self.readable.wait(g).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        g.readers -= 1;
                        return None;
                    }
                    self.readable
                        .wait_timeout(g, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
            g.readers -= 1;
        }
    }
}

/// What one try of a pull call found.
enum Take {
    /// This event.
    Got(Event),
    /// Nothing yet; something may come.
    NotYet,
    /// Nothing, and nothing can come any more.
    Never,
}

#[cfg(test)]
mod tests;
