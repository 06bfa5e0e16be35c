use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::platform::Emit;

fn text(i: u32) -> Event {
    Event {
        conn: None,
        kind: EventKind::Text(i.to_string()),
    }
}

fn settings(mode: DeliveryMode, capacity: usize) -> HubSettings {
    HubSettings {
        mode,
        capacity,
        ..HubSettings::default()
    }
}

/// A sink that counts and answers `answer`.
struct Counting {
    calls: AtomicUsize,
    answer: Emit,
    seen: Mutex<Vec<String>>,
}

impl Counting {
    fn new(answer: Emit) -> Arc<Counting> {
        Arc::new(Counting {
            calls: AtomicUsize::new(0),
            answer,
            seen: Mutex::new(Vec::new()),
        })
    }

    fn wait_calls(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.calls.load(Ordering::SeqCst) < n {
            assert!(Instant::now() < deadline, "only {:?} calls", self.calls);
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl EventSink for Counting {
    fn emit(&self, _: &str, _: &str, data: &str) -> Emit {
        self.seen.lock().unwrap().push(data.to_owned());
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.answer
    }
}

fn receive_n(hub: &Arc<Hub>, n: u32) -> Vec<Option<Event>> {
    (0..n)
        .map(|_| hub.receive(Some(Duration::from_secs(5)), true))
        .collect()
}

#[test]
fn auto_resolves_by_platform() {
    let undecided = Delivery::Auto(Phase::Undecided {
        opened: None,
        bytes: 0,
    });
    let auto = DeliveryMode::Auto;
    assert_eq!(
        Delivery::resolve(auto, AppType::Server, undecided),
        Delivery::Auto(Phase::Pulling)
    );
    assert_eq!(
        Delivery::resolve(auto, AppType::ExternalConnection, Delivery::Pull),
        Delivery::Auto(Phase::Pulling)
    );
    assert_eq!(
        Delivery::resolve(auto, AppType::ThinClient, Delivery::Push),
        undecided
    );
    // A committed auto object stays committed when 1C code sets Auto again.
    assert_eq!(
        Delivery::resolve(auto, AppType::ThinClient, Delivery::Auto(Phase::Pulling)),
        Delivery::Auto(Phase::Pulling)
    );
    assert_eq!(
        Delivery::resolve(DeliveryMode::Notify, AppType::Server, undecided),
        Delivery::Notify
    );
}

#[tokio::test]
async fn a_full_queue_makes_producers_wait_and_loses_nothing() {
    let hub = Hub::new(&settings(DeliveryMode::Pull, 2), AppType::ThinClient);
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
    // Why a sleep: the producer must have had time to hit the bound; the assertion that
    // follows fails if it did not wait there.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(hub.pending(), 2, "the producer waits at capacity");
    let reader = {
        let hub = hub.clone();
        tokio::task::spawn_blocking(move || receive_n(&hub, 5))
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
                unsent: 0,
            },
        },
        &token,
    )
    .await;
    assert_eq!(hub.pending(), 3);
}

#[test]
fn receive_returns_at_once_without_a_live_connection() {
    let hub = Hub::new(&settings(DeliveryMode::Pull, 10), AppType::ThinClient);
    let t = Instant::now();
    assert_eq!(hub.receive(None, true), None);
    assert_eq!(hub.receive(Some(Duration::from_secs(5)), false), None);
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn refused_pushes_wait_for_pull_in_order_and_are_counted() {
    let hub = Hub::new(&settings(DeliveryMode::Push, 100), AppType::ThinClient);
    let sink = Counting::new(Emit::Refused);
    hub.set_sink(Some(sink.clone()));
    hub.connection_started();
    let mut pusher = Pusher::start(&hub).unwrap();
    let token = CancellationToken::new();
    for i in 0..10 {
        hub.publish(text(i), &token).await;
    }
    sink.wait_calls(10);
    assert_eq!(hub.undelivered(), 10);
    let hub2 = hub.clone();
    let got = tokio::task::spawn_blocking(move || receive_n(&hub2, 10))
        .await
        .unwrap();
    assert_eq!(got, (0..10).map(|i| Some(text(i))).collect::<Vec<_>>());
    assert!(pusher.stop(Duration::from_secs(5)));
}

#[tokio::test]
async fn undecided_pushes_and_keeps_for_the_first_pull() {
    let hub = Hub::new(&settings(DeliveryMode::Auto, 100), AppType::ThinClient);
    let sink = Counting::new(Emit::Delivered);
    hub.set_sink(Some(sink.clone()));
    hub.connection_started();
    let mut pusher = Pusher::start(&hub).unwrap();
    let token = CancellationToken::new();
    for i in 0..5 {
        hub.publish(text(i), &token).await;
    }
    sink.wait_calls(5);
    assert_eq!(hub.pending(), 5, "kept for a first pull call");
    // The first pull commits to pulling and gets everything, pushed or not.
    let hub2 = hub.clone();
    let got = tokio::task::spawn_blocking(move || receive_n(&hub2, 5))
        .await
        .unwrap();
    assert_eq!(got, (0..5).map(|i| Some(text(i))).collect::<Vec<_>>());
    assert_eq!(hub.delivery(), Delivery::Auto(Phase::Pulling));
    hub.publish(text(5), &token).await;
    assert_eq!(hub.pending(), 1);
    assert!(pusher.stop(Duration::from_secs(5)));
    assert_eq!(
        sink.calls.load(Ordering::SeqCst),
        5,
        "no push after the commit"
    );
}

#[tokio::test]
async fn a_full_window_closes_and_never_stalls_a_push_only_reader() {
    let hub = Hub::new(&settings(DeliveryMode::Auto, 50), AppType::ThinClient);
    let sink = Counting::new(Emit::Delivered);
    hub.set_sink(Some(sink.clone()));
    hub.connection_started();
    let mut pusher = Pusher::start(&hub).unwrap();
    let token = CancellationToken::new();
    let n = 5_000;
    for i in 0..n {
        hub.publish(text(i), &token).await;
    }
    sink.wait_calls(n as usize);
    assert_eq!(hub.delivery(), Delivery::Auto(Phase::Pushing));
    assert_eq!(hub.pending(), 0, "the window's copies were dropped");
    let seen = sink.seen.lock().unwrap().clone();
    let expected: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    assert_eq!(seen, expected, "every event once, in order");
    assert!(pusher.stop(Duration::from_secs(5)));
}

#[tokio::test(start_paused = true)]
async fn the_window_expires_by_time() {
    // Paused time does not drive the pusher's condvar: the window is checked at the next
    // publish, which is what this test exercises (the pusher's timed wait covers idleness).
    let hub = Hub::new(&settings(DeliveryMode::Auto, 100), AppType::ThinClient);
    hub.connection_started();
    let token = CancellationToken::new();
    hub.publish(text(0), &token).await;
    assert_eq!(hub.pending(), 1);
    let mut g = hub.lock();
    assert!(!hub.expire_window(&mut g, Instant::now()));
    assert!(hub.expire_window(&mut g, Instant::now() + REPLAY_WINDOW));
    drop(g);
    assert_eq!(hub.pending(), 0);
    assert_eq!(hub.delivery(), Delivery::Auto(Phase::Pushing));
    // The copy not yet pushed (no sink) became a counted push event.
    assert_eq!(hub.lock().queued, 1);
}

#[tokio::test]
async fn events_wait_for_a_sink_instead_of_being_refused() {
    let hub = Hub::new(&settings(DeliveryMode::Push, 10), AppType::ThinClient);
    hub.connection_started();
    let mut pusher = Pusher::start(&hub).unwrap();
    let token = CancellationToken::new();
    hub.publish(text(1), &token).await;
    assert_eq!(hub.undelivered(), 0);
    let sink = Counting::new(Emit::Delivered);
    hub.set_sink(Some(sink.clone()));
    sink.wait_calls(1);
    assert_eq!(hub.undelivered(), 0);
    assert!(pusher.stop(Duration::from_secs(5)));
}

fn from(conn: u64, i: u32) -> Event {
    Event {
        conn: Some(conn),
        kind: EventKind::Text(format!("{conn}:{i}")),
    }
}

#[tokio::test]
async fn receive_from_frees_room_and_wakes_a_held_back_producer() {
    // Connection 1 fills the queue; connection 2's message waits behind it (its producer
    // is held back). Taking connection 1's messages with `ПринятьОт` frees the room.
    let hub = Hub::new(&settings(DeliveryMode::Pull, 4), AppType::Server);
    hub.connection_started();
    let token = CancellationToken::new();
    for i in 0..4 {
        hub.publish(from(1, i), &token).await;
    }
    let held = {
        let (hub, token) = (hub.clone(), token.clone());
        tokio::spawn(async move { hub.publish(from(2, 0), &token).await })
    };
    // Why a sleep: the producer must have reached the bound; `pending` below fails if not.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(hub.pending(), 4);
    let hub2 = hub.clone();
    let got = tokio::task::spawn_blocking(move || {
        let one = |c| hub2.receive_from(c, Some(Duration::from_secs(5)), || true);
        let firsts = (one(1), one(1));
        // Connection 2's message got in once there was room.
        (firsts, one(2), hub2.pending())
    })
    .await
    .unwrap();
    assert_eq!(got.0, (Some(from(1, 0)), Some(from(1, 1))));
    assert_eq!(got.1, Some(from(2, 0)));
    assert_eq!(got.2, 2);
    held.await.unwrap();
    assert_eq!(hub.lock().queued, 2, "the count follows the takes");
    // What is left comes to `Принять` in order, and nothing twice.
    assert_eq!(receive_n(&hub, 2), vec![Some(from(1, 2)), Some(from(1, 3))]);
    assert_eq!(hub.pending(), 0);
}

#[test]
fn receive_from_returns_at_once_for_a_connection_that_cannot_deliver() {
    let hub = Hub::new(&settings(DeliveryMode::Pull, 10), AppType::Server);
    hub.connection_started();
    let t = Instant::now();
    assert_eq!(hub.receive_from(5, None, || false), None);
    assert!(t.elapsed() < Duration::from_secs(1));
    // A live one is waited for, up to the timeout.
    let t = Instant::now();
    assert_eq!(
        hub.receive_from(5, Some(Duration::from_millis(100)), || true),
        None
    );
    assert!(t.elapsed() >= Duration::from_millis(100));
}

#[test]
fn receive_from_wakes_when_its_connection_ends() {
    let hub = Hub::new(&settings(DeliveryMode::Pull, 10), AppType::Server);
    hub.connection_started();
    let live = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let ender = {
        let (hub, live) = (hub.clone(), live.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            live.store(false, Ordering::SeqCst);
            hub.connection_ended();
        })
    };
    let t = Instant::now();
    let got = hub.receive_from(1, Some(Duration::from_secs(10)), || {
        live.load(Ordering::SeqCst)
    });
    assert_eq!(got, None);
    assert!(t.elapsed() < Duration::from_secs(5), "woken by the end");
    ender.join().unwrap();
}
