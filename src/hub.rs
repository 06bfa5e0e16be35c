//! The dispatch hub's settings, shared by both objects: delivery mode, event source name,
//! pull-queue capacity and the bound on `Done()`.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Names, Result};
use crate::event::Event;
use crate::lang::Lang;
use crate::platform::{AppType, Emit, EventSink};
use crate::registry::PropId;
use crate::value::Value;

/// How events reach 1C code (property `РежимДоставки` / `DeliveryMode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeliveryMode {
    /// Push where the platform delivers events, pull elsewhere.
    #[default]
    Auto,
    /// Queued for `Получить` / `ПолучитьСобытие`.
    Pull,
    /// Sent through `ExternalEvent` with the payload.
    Push,
    /// A short `ExternalEvent`; the payload waits in the pull queue.
    Notify,
}

const MODES: [(DeliveryMode, &str, &str); 4] = [
    (DeliveryMode::Auto, "Авто", "auto"),
    (DeliveryMode::Pull, "Опрос", "pull"),
    (DeliveryMode::Push, "События", "push"),
    (DeliveryMode::Notify, "Уведомления", "notify"),
];

impl DeliveryMode {
    /// Parses the Russian or English name, in any case.
    pub fn parse(s: &str) -> Option<DeliveryMode> {
        let folded = s.trim().to_lowercase();
        MODES
            .iter()
            .find(|(_, ru, en)| ru.to_lowercase() == folded || *en == folded)
            .map(|(m, _, _)| *m)
    }

    /// The name in `lang`.
    pub fn name(self, lang: Lang) -> &'static str {
        let (_, ru, en) = MODES
            .iter()
            .find(|(m, _, _)| *m == self)
            .copied()
            .unwrap_or(MODES[0]);
        lang.pick(ru, en)
    }

    /// The mode in effect: `Auto` resolves by where the add-in runs.
    pub fn effective(self, app: AppType) -> DeliveryMode {
        match self {
            DeliveryMode::Auto if app.delivers_events() => DeliveryMode::Push,
            DeliveryMode::Auto => DeliveryMode::Pull,
            other => other,
        }
    }
}

/// Default `Источник` of external events.
pub const DEFAULT_EVENT_SOURCE: &str = "WebSocket";
/// Default pull-queue capacity, in events.
pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;
/// Largest pull-queue capacity 1C code may set.
pub const MAX_QUEUE_CAPACITY: usize = 10_000_000;
/// Default bound on how long `Done()` waits for the object's tasks.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a receive yields its thread, re-checking the queue, before it blocks.
const RECEIVE_SPIN: Duration = Duration::from_micros(200);
/// Depth of the platform's event buffer requested at `Init`. Events the platform refuses
/// beyond it stay in the pull queue and are counted, so nothing is lost either way.
pub const EVENT_BUFFER_DEPTH: i64 = 1000;

/// The hub settings 1C code reads and writes through properties.
#[derive(Clone, Debug)]
pub struct HubSettings {
    /// Delivery mode as set (may be `Auto`).
    pub mode: DeliveryMode,
    /// `Источник` of external events.
    pub source: String,
    /// Pull-queue capacity, in events.
    pub capacity: usize,
    /// Bound on `Done()`.
    pub shutdown_timeout: Duration,
}

impl Default for HubSettings {
    fn default() -> Self {
        HubSettings {
            mode: DeliveryMode::Auto,
            source: DEFAULT_EVENT_SOURCE.to_owned(),
            capacity: DEFAULT_QUEUE_CAPACITY,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }
}

fn invalid(what: Names, ru: String, en: String) -> Error {
    Error::InvalidValue { what, ru, en }
}

/// A non-negative whole number from a `Число`, or an error naming `what`.
pub fn whole_number(v: &Value, what: Names, min: u64, max: u64) -> Result<u64> {
    let f = v.as_f64().unwrap_or(f64::NAN);
    if !f.is_finite() || f.fract() != 0.0 || f < min as f64 || f > max as f64 {
        return Err(invalid(
            what,
            format!("ожидается целое число от {min} до {max}"),
            format!("expected a whole number from {min} to {max}"),
        ));
    }
    Ok(f as u64)
}

impl HubSettings {
    /// Reads a hub property (`None` if `prop` is not one of them).
    pub fn get(&self, prop: PropId, lang: Lang) -> Option<Value> {
        Some(match prop {
            PropId::DeliveryMode => Value::Str(self.mode.name(lang).to_owned()),
            PropId::EventSource => Value::Str(self.source.clone()),
            PropId::QueueCapacity => Value::from_count(self.capacity as u64),
            PropId::ShutdownTimeout => Value::from_count(
                u64::try_from(self.shutdown_timeout.as_millis()).unwrap_or(u64::MAX),
            ),
            _ => return None,
        })
    }

    /// Writes a hub property (`Ok(false)` if `prop` is not one of them). The value's type
    /// was checked against the table already.
    pub fn set(&mut self, prop: PropId, names: Names, v: &Value) -> Result<bool> {
        match prop {
            PropId::DeliveryMode => {
                let s = v.as_str().unwrap_or_default();
                self.mode = DeliveryMode::parse(s).ok_or_else(|| {
                    invalid(
                        names,
                        format!("«{s}»; допустимы Авто, Опрос, События, Уведомления"),
                        format!("\"{s}\"; expected auto, pull, push or notify"),
                    )
                })?;
            }
            PropId::EventSource => self.source = v.as_str().unwrap_or_default().to_owned(),
            PropId::QueueCapacity => {
                self.capacity = whole_number(v, names, 1, MAX_QUEUE_CAPACITY as u64)? as usize
            }
            PropId::ShutdownTimeout => {
                self.shutdown_timeout = Duration::from_millis(whole_number(v, names, 0, 600_000)?);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

// ---- the dispatch hub ------------------------------------------------------------------

/// What waits for the pusher: a whole event (push) or a notification (notify, whose event
/// already waits in the pull queue).
enum Push {
    Event(Event),
    Note(String),
}

/// The hub's state, under one lock.
struct Inner {
    /// Events for `Получить` / `ПолучитьСобытие`, oldest first.
    pull: VecDeque<Event>,
    /// Events and notifications for the pusher, oldest first.
    push: VecDeque<Push>,
    /// Events in `pull` plus whole events in `push`.
    queued: usize,
    /// Bound on `queued` for messages (connection events never wait, see `publish`).
    capacity: usize,
    /// The effective mode (never `Auto`).
    mode: DeliveryMode,
    /// The mode was set to `Auto`: the first pull call switches it to pull for good.
    auto: bool,
    /// How many times an auto object switched to pull (the pusher orders around it).
    switched: u64,
    /// `Источник` of external events.
    source: String,
    /// Where pushed events go; `None` until `Init`, and after `Done()`.
    sink: Option<Arc<dyn EventSink>>,
    /// Events the platform refused, kept for pull instead.
    undelivered: u64,
    /// Live connections: `Receive(0)` waits only while one may still deliver something.
    active: usize,
    /// `Done()` ran: producers stop waiting, readers return at once.
    closed: bool,
    /// 1C threads blocked in a receive.
    readers: usize,
}

/// One object's dispatch point: connection tasks publish into it, the 1C thread pulls from
/// it, and the pusher task raises `ExternalEvent` from it.
///
/// Overflow policy: the pull queue is bounded by `РазмерОчереди`. A connection publishing a
/// message into a full queue *waits* (and so stops reading its socket: TCP back-pressure on
/// the peer); nothing is ever dropped. Connection events (open, close, fail, pong) never
/// wait, so a closing connection cannot deadlock against a full queue; there are at most a
/// few of them per connection, so they exceed the bound only by that much.
pub struct Hub {
    inner: Mutex<Inner>,
    /// Wakes 1C threads blocked in a receive.
    readable: Condvar,
    /// Wakes producers waiting for room.
    space: Notify,
    /// Wakes the pusher.
    push_ready: Notify,
}

impl Hub {
    /// An empty hub in `mode` (already resolved from `Auto`).
    pub fn new(settings: &HubSettings, mode: DeliveryMode) -> Arc<Hub> {
        Arc::new(Hub {
            inner: Mutex::new(Inner {
                pull: VecDeque::new(),
                push: VecDeque::new(),
                queued: 0,
                capacity: settings.capacity,
                mode,
                auto: settings.mode == DeliveryMode::Auto,
                switched: 0,
                source: settings.source.clone(),
                sink: None,
                undelivered: 0,
                active: 0,
                closed: false,
                readers: 0,
            }),
            readable: Condvar::new(),
            space: Notify::new(),
            push_ready: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies the settings 1C code changed (mode already resolved).
    pub fn configure(&self, settings: &HubSettings, mode: DeliveryMode) {
        let mut g = self.lock();
        let grew = settings.capacity > g.capacity;
        g.capacity = settings.capacity;
        g.mode = mode;
        g.auto = settings.mode == DeliveryMode::Auto;
        g.source = settings.source.clone();
        drop(g);
        if grew {
            self.space.notify_waiters();
        }
    }

    /// Sets the platform sink (at `Init`).
    pub fn set_sink(&self, sink: Option<Arc<dyn EventSink>>) {
        self.lock().sink = sink;
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
        self.space.notify_waiters();
        self.push_ready.notify_one();
    }

    /// Events waiting for pull.
    pub fn pending(&self) -> usize {
        self.lock().pull.len()
    }

    /// Events the platform refused (kept for pull).
    pub fn undelivered(&self) -> u64 {
        self.lock().undelivered
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
        let mut added = 0;
        while let Some(ev) = evs.front() {
            if ev.is_message() && g.queued >= g.capacity {
                break;
            }
            if let Some(ev) = evs.pop_front() {
                self.enqueue(&mut g, ev);
                added += 1;
            }
        }
        if added > 0 {
            self.wake_consumers(&g, added);
        }
        evs.is_empty()
    }

    /// After `added` events were queued: wakes the 1C threads blocked in a receive, or the
    /// pusher. Once per batch: a condvar notify is a system call even with nobody waiting,
    /// hence the `readers` check.
    fn wake_consumers(&self, g: &Inner, added: usize) {
        match g.mode {
            DeliveryMode::Pull => {}
            _ => self.push_ready.notify_one(),
        }
        if g.mode != DeliveryMode::Push && g.mode != DeliveryMode::Auto && g.readers > 0 {
            if added > 1 && g.readers > 1 {
                self.readable.notify_all();
            } else {
                self.readable.notify_one();
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

    /// Queues `ev` by the mode; the caller wakes the consumers ([`Hub::wake_consumers`]).
    fn enqueue(&self, g: &mut Inner, ev: Event) {
        g.queued += 1;
        match g.mode {
            DeliveryMode::Push | DeliveryMode::Auto => g.push.push_back(Push::Event(ev)),
            DeliveryMode::Notify => {
                // Notices are bounded too: past `capacity` of them unsent, the platform is
                // not keeping up anyway, and every payload still waits in the pull queue.
                if g.push.len() < g.capacity {
                    g.push.push_back(Push::Note(ev.notification()));
                }
                g.pull.push_back(ev);
            }
            DeliveryMode::Pull => g.pull.push_back(ev),
        }
    }

    fn put_pull(&self, g: &mut Inner, ev: Event) {
        g.queued += 1;
        g.pull.push_back(ev);
        if g.readers > 0 {
            self.readable.notify_one();
        }
    }

    /// The mode in effect now.
    pub fn mode(&self) -> DeliveryMode {
        self.lock().mode
    }

    /// Takes the next event from the pull queue, blocking the calling (1C) thread: `None`
    /// waits while a connection is live, `Some(d)` waits at most `d`. With `messages_only`,
    /// connection events ahead of the next message are passed over (they are reflected in
    /// `Статус`; `ПолучитьСобытие` sees them). Returns `None` on timeout, or at once when no
    /// connection is live and nothing is queued.
    pub fn receive(&self, wait: Option<Duration>, messages_only: bool) -> Option<Event> {
        let mut deadline: Option<Instant> = None;
        let mut spin_end: Option<Instant> = None;
        let mut g = self.lock();
        if g.auto && g.mode != DeliveryMode::Pull {
            // Auto pushes where the platform delivers events, but code written for the
            // documented component pulls: from its first pull call on, this object pulls.
            // Events not yet pushed join the pull queue, in order.
            g.mode = DeliveryMode::Pull;
            g.switched += 1;
            while let Some(p) = g.push.pop_front() {
                if let Push::Event(ev) = p {
                    g.pull.push_back(ev);
                }
            }
        }
        loop {
            while let Some(ev) = g.pull.pop_front() {
                let before = g.queued;
                g.queued -= 1;
                if Self::should_wake_producers(before, g.capacity) {
                    self.space.notify_waiters();
                }
                if !messages_only || ev.is_message() {
                    return Some(ev);
                }
            }
            if g.closed || g.active == 0 {
                return None;
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

    /// The pusher: raises `ExternalEvent` for pushed events, one at a time and in order.
    /// An event the platform refuses goes to the pull queue and is counted, so nothing is
    /// lost; a notification the platform refuses costs nothing (its event waits in pull).
    pub async fn run_pusher(self: Arc<Self>, cancel: CancellationToken) {
        // Taken under one lock and raised one by one outside it (ExternalEvent may block).
        const BATCH: usize = 64;
        let mut batch: Vec<Push> = Vec::with_capacity(BATCH);
        loop {
            let (sink, source, pull_before) = {
                let mut g = self.lock();
                if g.closed {
                    return;
                }
                let n = g.push.len().min(BATCH);
                batch.extend(g.push.drain(..n));
                (g.sink.clone(), g.source.clone(), g.switched)
            };
            if batch.is_empty() {
                tokio::select! {
                    _ = self.push_ready.notified() => continue,
                    _ = cancel.cancelled() => return,
                }
            }
            // (event, delivered) for the bookkeeping below, in order.
            let mut outcomes: Vec<(Event, bool)> = Vec::new();
            for item in batch.drain(..) {
                let emitted = match (&item, &sink) {
                    (Push::Event(ev), Some(s)) => s.emit(&source, &ev.header(), &ev.payload()),
                    (Push::Note(note), Some(s)) => s.emit(&source, note, ""),
                    (_, None) => Emit::Closed,
                };
                if let Push::Event(ev) = item {
                    outcomes.push((ev, emitted == Emit::Delivered));
                }
            }
            if outcomes.is_empty() {
                continue;
            }
            let mut g = self.lock();
            // An auto object that switched to pull meanwhile moved the events queued after
            // this batch to the pull queue: refused events of the batch go before them.
            let switched = g.switched != pull_before;
            let mut refused = Vec::new();
            let mut wake = false;
            for (ev, delivered) in outcomes {
                let before = g.queued;
                g.queued -= 1;
                if !delivered {
                    g.undelivered += 1;
                    refused.push(ev);
                } else if Self::should_wake_producers(before, g.capacity) {
                    wake = true;
                }
            }
            if switched {
                for ev in refused.into_iter().rev() {
                    g.queued += 1;
                    g.pull.push_front(ev);
                }
                if g.readers > 0 {
                    self.readable.notify_all();
                }
            } else {
                for ev in refused {
                    self.put_pull(&mut g, ev);
                }
            }
            drop(g);
            if wake {
                self.space.notify_waiters();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODE: Names = Names {
        ru: "РежимДоставки",
        en: "DeliveryMode",
    };
    const CAP: Names = Names {
        ru: "РазмерОчереди",
        en: "QueueCapacity",
    };

    #[test]
    fn modes_parse_in_both_languages() {
        assert_eq!(DeliveryMode::parse("ОПРОС"), Some(DeliveryMode::Pull));
        assert_eq!(DeliveryMode::parse("Push"), Some(DeliveryMode::Push));
        assert_eq!(
            DeliveryMode::parse("уведомления"),
            Some(DeliveryMode::Notify)
        );
        assert_eq!(DeliveryMode::parse("сразу"), None);
        assert_eq!(DeliveryMode::Notify.name(Lang::Ru), "Уведомления");
    }

    #[test]
    fn auto_pulls_on_the_server() {
        assert_eq!(
            DeliveryMode::Auto.effective(AppType::Server),
            DeliveryMode::Pull
        );
        assert_eq!(
            DeliveryMode::Auto.effective(AppType::ExternalConnection),
            DeliveryMode::Pull
        );
        assert_eq!(
            DeliveryMode::Auto.effective(AppType::ThinClient),
            DeliveryMode::Push
        );
        assert_eq!(
            DeliveryMode::Notify.effective(AppType::Server),
            DeliveryMode::Notify
        );
    }

    #[test]
    fn settings_validate() {
        let mut s = HubSettings::default();
        assert!(s.set(PropId::DeliveryMode, MODE, &"Опрос".into()).unwrap());
        assert_eq!(s.get(PropId::DeliveryMode, Lang::En), Some("pull".into()));
        let e = s.set(PropId::DeliveryMode, MODE, &"x".into()).unwrap_err();
        assert!(
            e.text(Lang::Ru).contains("Авто, Опрос"),
            "{}",
            e.text(Lang::Ru)
        );
        assert!(
            s.set(PropId::QueueCapacity, CAP, &Value::Double(1.5))
                .is_err()
        );
        assert!(s.set(PropId::QueueCapacity, CAP, &Value::Int(0)).is_err());
        assert!(
            s.set(PropId::QueueCapacity, CAP, &Value::Double(50.0))
                .unwrap()
        );
        assert_eq!(s.capacity, 50);
        assert!(!s.set(PropId::Status, CAP, &Value::Int(1)).unwrap());
    }

    use crate::event::EventKind;

    fn text(i: u32) -> Event {
        Event {
            conn: None,
            kind: EventKind::Text(i.to_string()),
        }
    }

    fn settings(capacity: usize) -> HubSettings {
        HubSettings {
            capacity,
            ..HubSettings::default()
        }
    }

    #[tokio::test]
    async fn a_full_queue_makes_producers_wait_and_loses_nothing() {
        let hub = Hub::new(&settings(2), DeliveryMode::Pull);
        hub.connection_started();
        let token = CancellationToken::new();
        let producer = {
            let (hub, token) = (hub.clone(), token.clone());
            tokio::spawn(async move {
                for i in 0..5 {
                    hub.publish(text(i), &token).await;
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(hub.pending(), 2, "the producer waits at capacity");
        let reader = {
            let hub = hub.clone();
            tokio::task::spawn_blocking(move || {
                (0..5)
                    .map(|_| hub.receive(Some(Duration::from_secs(5)), true))
                    .collect::<Vec<_>>()
            })
        };
        let got = reader.await.unwrap();
        assert_eq!(got, (0..5).map(|i| Some(text(i))).collect::<Vec<_>>());
        producer.await.unwrap();
        // Connection events never wait, even when the queue is full.
        for i in 0..2 {
            hub.publish(text(i), &token).await;
        }
        hub.publish(
            Event {
                conn: None,
                kind: EventKind::Close {
                    code: 1000,
                    reason: String::new(),
                },
            },
            &token,
        )
        .await;
        assert_eq!(hub.pending(), 3);
    }

    #[test]
    fn receive_returns_at_once_without_a_live_connection() {
        let hub = Hub::new(&settings(10), DeliveryMode::Pull);
        let t = Instant::now();
        assert_eq!(hub.receive(None, true), None);
        assert_eq!(hub.receive(Some(Duration::from_secs(5)), false), None);
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    struct Refuser(std::sync::atomic::AtomicUsize);

    impl EventSink for Refuser {
        fn emit(&self, _: &str, _: &str, _: &str) -> Emit {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Emit::Refused
        }
    }

    #[tokio::test]
    async fn refused_pushes_wait_for_pull_in_order_and_are_counted() {
        let explicit = HubSettings {
            mode: DeliveryMode::Push,
            ..settings(100)
        };
        let hub = Hub::new(&explicit, DeliveryMode::Push);
        let sink = Arc::new(Refuser(Default::default()));
        hub.set_sink(Some(sink.clone()));
        hub.connection_started();
        let token = CancellationToken::new();
        let pusher = tokio::spawn(hub.clone().run_pusher(token.clone()));
        for i in 0..10 {
            hub.publish(text(i), &token).await;
        }
        while sink.0.load(std::sync::atomic::Ordering::SeqCst) < 10 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(hub.undelivered(), 10);
        let hub2 = hub.clone();
        let got = tokio::task::spawn_blocking(move || {
            (0..10)
                .map(|_| hub2.receive(Some(Duration::from_secs(5)), true))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        assert_eq!(got, (0..10).map(|i| Some(text(i))).collect::<Vec<_>>());
        token.cancel();
        pusher.await.unwrap();
    }
}
