//! What every open WebSocket connection runs, client or server side: a reader that
//! publishes to the hub and a writer that drains the connection's command queue.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::event::{Event, EventKind};
use crate::hub::Hub;
use crate::log::{Level, Log};
use crate::net::{ByteBudget, Command, close_frame};

/// Traffic counters of one connection.
#[derive(Default, Debug)]
pub struct Stats {
    /// Messages received.
    pub messages_in: AtomicU64,
    /// Payload bytes received.
    pub bytes_in: AtomicU64,
    /// Messages sent.
    pub messages_out: AtomicU64,
    /// Payload bytes sent.
    pub bytes_out: AtomicU64,
}

fn count(messages: &AtomicU64, bytes: &AtomicU64, n: usize) {
    messages.fetch_add(1, Ordering::Relaxed);
    bytes.fetch_add(n as u64, Ordering::Relaxed);
}

/// How a connection ended.
#[derive(Debug)]
pub enum End {
    /// Close handshake or end of stream, with the peer's code and reason.
    Closed(u16, String),
    /// A protocol or I/O error (reader or writer).
    Failed(String),
    /// Its token was cancelled.
    Cancelled,
}

/// How long a draining connection waits for the peer to answer its 1001 close.
const CLOSE_REPLY_WAIT: Duration = Duration::from_secs(1);

/// What a finished connection leaves behind.
pub struct Ended {
    /// How it ended.
    pub end: End,
    /// The command queue with whatever is still in it (`None` if the writer was lost).
    pub commands: Option<mpsc::Receiver<Command>>,
    /// Messages the writer had taken from the queue but could not get to the socket.
    pub lost: u64,
    /// The send queue held megabytes at some point: its freed memory goes back to the system
    /// once the queue is emptied.
    heavy: bool,
}

impl Ended {
    /// Every message `Отправить` accepted that did not reach the socket: the writer's lost
    /// batch and what is still queued. Closes the queue, so a later `Отправить` fails
    /// instead of queueing into nowhere.
    pub fn unsent(&mut self) -> u64 {
        let n = self.lost + self.commands.as_mut().map_or(0, close_queue);
        if self.heavy {
            crate::runtime::trim_memory();
        }
        n
    }
}

/// Logs `n` messages of connection `conn` (the server's id; `None` on the client) that
/// `Отправить` accepted and that will never be sent; nothing when `n` is 0.
pub fn log_unsent(log: &Log, conn: Option<u64>, n: u64) {
    if n > 0 {
        let id = conn.map_or(String::new(), |c| format!("{c}: "));
        log.write(Level::Error, || {
            format!("{id}{n} messages accepted by Send were not sent")
        });
    }
}

/// Closes a command queue and counts the messages left in it.
pub fn close_queue(rx: &mut mpsc::Receiver<Command>) -> u64 {
    rx.close();
    std::iter::from_fn(|| rx.try_recv().ok())
        .filter(Command::is_message)
        .count() as u64
}

/// One open connection's tasks and what they share.
pub struct ConnectionTasks {
    /// Server connection id (`None` on the client).
    pub conn: Option<u64>,
    /// Where events go.
    pub hub: Arc<Hub>,
    /// Commands from the object, in order.
    pub commands: mpsc::Receiver<Command>,
    /// The byte bound of the object's send queue: given back as messages are written.
    pub budget: ByteBudget,
    /// This connection: cancelled to end it.
    pub token: CancellationToken,
    /// Cancelled when the object (or the server) goes away: the writer then says 1001.
    pub going_away: CancellationToken,
    /// Cancelled first when the object (or the server) goes away: the writer sends what is
    /// queued, says 1001 and waits briefly for the peer's answer; `token` still cuts it
    /// short at the bound.
    pub drain: CancellationToken,
    /// The object's tracker, for the writer task.
    pub tracker: TaskTracker,
    /// Traffic counters.
    pub stats: Arc<Stats>,
    /// Send a ping this often (`None`: never).
    pub ping_interval: Option<Duration>,
    /// End the connection when nothing (message, ping or pong) arrived for this long.
    pub idle_timeout: Option<Duration>,
    /// With `ping_interval`: fail the connection when nothing (a pong included) arrived for
    /// `ping_interval + pong_timeout`, i.e. the peer let a ping go unanswered this long.
    pub pong_timeout: Option<Duration>,
    /// The diagnostic log (messages at debug level).
    pub log: Arc<Log>,
}

impl ConnectionTasks {
    /// Runs the reader here and the writer as a tracked task until the connection ends;
    /// gives back the command queue (with whatever is still in it) once the writer is gone.
    ///
    /// The stream comes boxed, and stays so inside the split halves. Why: a future keeps a
    /// slot for every argument it was given, even once moved on, so a stream passed by value
    /// through the accept task, `connection` and this function was held three times over
    /// for the connection's whole life (measured: 1 KiB of each idle server connection's
    /// 14.3). Boxed, each layer holds a pointer.
    pub async fn run<S>(self, ws: Box<WebSocketStream<S>>) -> Ended
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let ConnectionTasks {
            conn,
            hub,
            commands,
            budget,
            token,
            going_away,
            drain,
            tracker,
            stats,
            ping_interval,
            idle_timeout,
            pong_timeout,
            log,
        } = self;
        let budget_of_end = budget.clone();
        let (sink, stream) = ws.split();
        let failure = Arc::new(Mutex::new(None));
        let farewell = Arc::new(Mutex::new(None));
        let lost = Arc::new(AtomicU64::new(0));
        let w = Writer {
            token: token.clone(),
            going_away,
            drain,
            budget: budget.clone(),
            lost: lost.clone(),
            failure: failure.clone(),
            farewell: farewell.clone(),
            stats: stats.clone(),
            ping_interval,
        };
        let writer = tracker.spawn(w.run(sink, commands));
        let silence = Silence {
            idle: idle_timeout,
            unanswered: ping_interval.zip(pong_timeout).map(|(i, t)| i + t),
        };
        let (end, bye) = reader(stream, &hub, conn, &token, &stats, silence, &log).await;
        // The reader ended the connection itself (a bad frame, a limit, the idle timeout):
        // the writer says why in a close frame before the socket goes (RFC 6455 §7.1.7).
        *farewell.lock().unwrap_or_else(|e| e.into_inner()) = bye;
        token.cancel();
        // The writer leaves at once on cancellation (its writes race the token).
        let commands = writer.await.ok();
        let end = match end {
            End::Cancelled => match failure.lock().unwrap_or_else(|e| e.into_inner()).take() {
                Some(error) => End::Failed(error),
                None => End::Cancelled,
            },
            other => other,
        };
        Ended {
            end,
            commands,
            lost: lost.load(Ordering::Relaxed),
            heavy: budget_of_end.was_heavy(),
        }
    }
}

/// The close code and reason that tell the peer why a read error failed its connection
/// (RFC 6455 §7.4.1), if there is a peer left to tell.
fn farewell(e: &WsError) -> Option<(u16, String)> {
    match e {
        WsError::Utf8(_) => Some((1007, "invalid UTF-8 in a text message".into())),
        // The peer dropped the connection: nobody to tell.
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        WsError::Protocol(_) => Some((1002, e.to_string())),
        WsError::Capacity(c) => Some((1009, format!("message too big: {c}"))),
        _ => None,
    }
}

/// Whether a read error just means the peer is gone: end of stream, or a TLS peer that
/// vanished without close_notify (the same thing as a plain one: 1006, not a failure).
fn vanished(e: &WsError) -> bool {
    match e {
        // End of stream without a close frame (a FIN): tungstenite calls it a reset.
        WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => true,
        WsError::Io(io) => io.kind() == std::io::ErrorKind::UnexpectedEof,
        _ => false,
    }
}

/// How long the reader tolerates silence.
#[derive(Clone, Copy)]
struct Silence {
    /// Close (1001) after this long.
    idle: Option<Duration>,
    /// Fail after this long: a ping went unanswered.
    unanswered: Option<Duration>,
}

/// Frames handed to the hub together at most (see `reader`).
const READ_BATCH: usize = 64;

/// What one read from the stream means.
enum ReadOutcome {
    /// A message or a pong for the hub.
    Event(EventKind),
    /// Nothing for the hub (ping, raw frame, the peer's close frame).
    Skip,
    /// The connection ended; the close frame that tells the peer why, if it should get one.
    End(End, Option<(u16, String)>),
}

fn read_outcome(
    msg: Option<Result<Message, WsError>>,
    close: &mut Option<(u16, String)>,
    stats: &Stats,
) -> ReadOutcome {
    let msg = match msg {
        Some(Err(e)) if vanished(&e) => None,
        m => m,
    };
    match msg {
        Some(Ok(Message::Text(t))) => {
            count(&stats.messages_in, &stats.bytes_in, t.len());
            ReadOutcome::Event(EventKind::Text(t.as_str().to_owned()))
        }
        Some(Ok(Message::Binary(b))) => {
            count(&stats.messages_in, &stats.bytes_in, b.len());
            ReadOutcome::Event(EventKind::Binary(b.to_vec()))
        }
        Some(Ok(Message::Pong(p))) => ReadOutcome::Event(EventKind::Pong(p.to_vec())),
        Some(Ok(Message::Ping(_) | Message::Frame(_))) => ReadOutcome::Skip,
        Some(Ok(Message::Close(f))) => {
            *close = Some(f.map_or((1005, String::new()), |f| {
                (u16::from(f.code), f.reason.as_str().to_owned())
            }));
            ReadOutcome::Skip
        }
        None => {
            let (code, reason) = close.take().unwrap_or((1006, String::new()));
            ReadOutcome::End(End::Closed(code, reason), None)
        }
        Some(Err(e)) => {
            let text = match &e {
                WsError::Capacity(c) => {
                    format!("incoming message too large: {c} (max_message_size / max_frame_size)")
                }
                other => other.to_string(),
            };
            ReadOutcome::End(End::Failed(text), farewell(&e))
        }
    }
}

/// Sleeps until `at`, or forever without it (no timer is registered then).
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn reader<S>(
    mut stream: SplitStream<Box<WebSocketStream<S>>>,
    hub: &Hub,
    conn: Option<u64>,
    token: &CancellationToken,
    stats: &Stats,
    silence: Silence,
    log: &Log,
) -> (End, Option<(u16, String)>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut close: Option<(u16, String)> = None;
    let timed = silence.idle.is_some() || silence.unanswered.is_some();
    // Silence is counted from the last frame read, or from the end of the last wait for
    // room in the hub: while the hub applies back-pressure nothing is read, and a pong that
    // sits unread in the socket must not count as missing.
    let mut last = Instant::now();
    // One waiter registration for the connection's life, not one per message.
    let cancelled = token.cancelled();
    tokio::pin!(cancelled);
    let mut batch = VecDeque::new();
    loop {
        let msg = tokio::select! {
            biased;
            _ = &mut cancelled => return (End::Cancelled, None),
            m = stream.next() => m,
            _ = sleep_until(silence.idle.map(|d| last + d)) => {
                let ms = silence.idle.unwrap_or_default().as_millis();
                let reason = format!("idle timeout: nothing received for {ms} ms");
                return (End::Closed(1001, reason.clone()), Some((1001, reason)));
            }
            _ = sleep_until(silence.unanswered.map(|d| last + d)) => {
                let ms = silence.unanswered.unwrap_or_default().as_millis();
                let error = format!(
                    "no answer to ping: nothing received from the peer for {ms} ms (ping_interval_ms + pong_timeout_ms)"
                );
                return (End::Failed(error), None);
            }
        };
        let mut end = None;
        let mut next = Some(msg);
        // Frames already buffered (or readable right now) join this one: the hub is locked
        // and the 1C thread woken once per batch instead of once per message. Polling with
        // a no-op waker is fine: the `select!` above polls again with the real one before
        // this task sleeps.
        while let Some(msg) = next.take() {
            match read_outcome(msg, &mut close, stats) {
                ReadOutcome::Event(kind) => batch.push_back(Event { conn, kind }),
                ReadOutcome::Skip => {}
                ReadOutcome::End(e, bye) => {
                    end = Some((e, bye));
                    break;
                }
            }
            if batch.len() < READ_BATCH {
                next = stream.next().now_or_never();
            }
        }
        if timed {
            last = Instant::now();
        }
        if !batch.is_empty() {
            if log.enabled(Level::Debug) {
                for ev in &batch {
                    log.write(Level::Debug, || describe("in", conn, &ev.kind, log.bodies));
                }
            }
            hub.publish_all(&mut batch, token).await;
            if timed {
                last = Instant::now();
            }
        }
        if let Some(end) = end {
            return end;
        }
    }
}

/// Below this many messages in a batch the writer yields its thread once before flushing
/// (see `Writer::run`).
const SMALL_BATCH: usize = 16;

/// The writer task's settings.
struct Writer {
    token: CancellationToken,
    going_away: CancellationToken,
    drain: CancellationToken,
    budget: ByteBudget,
    /// Messages taken from the queue whose batch failed or was cut short.
    lost: Arc<AtomicU64>,
    failure: Arc<Mutex<Option<String>>>,
    /// Set by the reader when it ended the connection: the close frame to send.
    farewell: Arc<Mutex<Option<(u16, String)>>>,
    stats: Arc<Stats>,
    ping_interval: Option<Duration>,
}

impl Writer {
    async fn run<S>(
        self,
        mut sink: SplitSink<Box<WebSocketStream<S>>, Message>,
        mut commands: mpsc::Receiver<Command>,
    ) -> mpsc::Receiver<Command>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let Writer {
            token,
            going_away,
            drain,
            budget,
            lost,
            failure,
            farewell,
            stats,
            ping_interval,
        } = self;
        let period = ping_interval.unwrap_or(Duration::from_secs(100 * 365 * 86_400));
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        // A busy writer does not look at the ticker; ticks missed meanwhile give one ping, not
        // a burst.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // One waiter registration for the connection's life, not one per batch.
        let cancelled = token.cancelled();
        tokio::pin!(cancelled);
        let drained = drain.cancelled();
        tokio::pin!(drained);
        let mut draining = false;
        loop {
            // A command already queued goes first, without polling the tokens and the
            // ticker: polling a waiting `cancelled()` future takes its notifier's lock, and a
            // busy writer would pay that per batch. Idle, it waits on all of them. (A hard
            // cancel still cuts a batch short below; a drain is seen once the queue is
            // empty, which it soon is: nothing new is queued during `Done()`.)
            let queued = if draining {
                None
            } else {
                commands.try_recv().ok()
            };
            let first = if let Some(cmd) = queued {
                Some(cmd)
            } else {
                tokio::select! {
                    biased;
                    _ = &mut cancelled => break,
                    // Done() or Stop(): nothing new can be queued; what is queued goes out (the
                    // loop goes on until the queue is empty), then the 1001 below.
                    _ = &mut drained, if !draining => {
                        draining = true;
                        commands.close();
                        continue;
                    }
                    _ = ticks.tick(), if !draining => {
                        Some(Command::Send(Message::Ping(Vec::new().into())))
                    }
                    c = commands.recv() => c,
                }
            };
            let Some(mut cmd) = first else { break };
            // Messages of this batch not yet known to be written: if the batch fails or is
            // cut short, they count as unsent.
            let mut in_batch = 0u64;
            // Feed everything already queued, then flush once. A peer that stops reading
            // blocks these writes for good: the token cuts them short.
            let batch = async {
                let mut fed = 0usize;
                let mut yielded = false;
                loop {
                    // Given back as each message is taken, not at the end of the batch: a
                    // batch to a slow reader lasts as long as it reads, and bytes held that
                    // long would make the bound bite before the message count does.
                    budget.give(budget.charge(&cmd));
                    let r = match cmd {
                        Command::Send(m) => {
                            if !m.is_ping() {
                                in_batch += 1;
                                count(&stats.messages_out, &stats.bytes_out, m.len());
                            }
                            sink.feed(m).await
                        }
                        Command::Close(code, reason) => {
                            sink.feed(Message::Close(Some(close_frame(code, &reason))))
                                .await
                        }
                    };
                    if r.is_err() {
                        break r;
                    }
                    fed += 1;
                    let next = match commands.try_recv() {
                        Ok(next) => Some(next),
                        // Why yield: 1C sends from its own thread, one call at a time. When
                        // that thread shares a core with this one, each `Отправить` wakes
                        // the writer, which would flush that one message (a system call
                        // that also runs the peer's receive path on loopback) and sleep
                        // again. Giving the core back once lets 1C queue what it is about
                        // to send, so a burst leaves in one write. Where 1C is not
                        // runnable (it waits for an answer) or has its own core, the yield
                        // returns at once.
                        Err(_) if fed < SMALL_BATCH && !yielded => {
                            yielded = true;
                            std::thread::yield_now();
                            commands.try_recv().ok()
                        }
                        Err(_) => None,
                    };
                    match next {
                        Some(next) => cmd = next,
                        None => break sink.flush().await,
                    }
                }
            };
            let result = tokio::select! {
                _ = &mut cancelled => None,
                r = batch => Some(r),
            };
            match result {
                Some(Ok(())) => {}
                None => {
                    lost.fetch_add(in_batch, Ordering::Relaxed);
                    break;
                }
                Some(Err(e)) => {
                    lost.fetch_add(in_batch, Ordering::Relaxed);
                    if !matches!(e, WsError::ConnectionClosed | WsError::AlreadyClosed) {
                        *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                    }
                    token.cancel();
                    return commands;
                }
            }
        }
        // Done() or Stop(): tell the peer we are going away; a failed read: tell it why. Either
        // way without holding anyone up long.
        let bye = farewell.lock().unwrap_or_else(|e| e.into_inner()).take();
        let bye =
            bye.or_else(|| (draining || going_away.is_cancelled()).then(|| (1001, String::new())));
        if let Some((code, reason)) = bye {
            // Past the object's bound (`going_away`) only a close that fits at once goes:
            // what is left of `Done()` belongs to the tasks' own ending (counting, logging).
            let wait = if going_away.is_cancelled() {
                Duration::from_millis(20)
            } else {
                Duration::from_millis(250)
            };
            let bye = Message::Close(Some(close_frame(code, &reason)));
            let _ = tokio::time::timeout(wait, sink.send(bye)).await;
        }
        if draining {
            // The reader ends when the peer answers the close; one that does not is cut
            // off here rather than at the object's bound.
            tokio::select! {
                _ = &mut cancelled => {}
                _ = tokio::time::sleep(CLOSE_REPLY_WAIT) => token.cancel(),
            }
        }
        commands
    }
}

/// A debug-log line for a message: its size, and its body only if asked for.
fn describe(dir: &str, conn: Option<u64>, kind: &EventKind, bodies: bool) -> String {
    let id = conn.map_or(String::new(), |c| format!(" {c}"));
    match kind {
        EventKind::Text(t) if bodies => format!("message {dir}{id}: text {} bytes: {t}", t.len()),
        EventKind::Text(t) => format!("message {dir}{id}: text {} bytes", t.len()),
        EventKind::Binary(b) => format!("message {dir}{id}: binary {} bytes", b.len()),
        other => format!("{dir}{id}: {other:?}"),
    }
}
