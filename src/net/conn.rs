//! What every open WebSocket connection runs, client or server side: a reader that
//! publishes to the hub and a writer that drains the connection's command queue.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
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
use crate::net::{Command, close_frame};

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

/// One open connection's tasks and what they share.
pub struct Pump {
    /// Server connection id (`None` on the client).
    pub conn: Option<u64>,
    /// Where events go.
    pub hub: Arc<Hub>,
    /// Commands from the object, in order.
    pub commands: mpsc::Receiver<Command>,
    /// This connection: cancelled to end it.
    pub token: CancellationToken,
    /// Cancelled when the object (or the server) goes away: the writer then says 1001.
    pub going_away: CancellationToken,
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

impl Pump {
    /// Runs the reader here and the writer as a tracked task until the connection ends;
    /// gives back the command queue (with whatever is still in it) once the writer is gone.
    pub async fn run<S>(self, ws: WebSocketStream<S>) -> (End, Option<mpsc::Receiver<Command>>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Pump {
            conn,
            hub,
            commands,
            token,
            going_away,
            tracker,
            stats,
            ping_interval,
            idle_timeout,
            pong_timeout,
            log,
        } = self;
        let (sink, stream) = ws.split();
        let failure = Arc::new(Mutex::new(None));
        let farewell = Arc::new(Mutex::new(None));
        let w = Writer {
            token: token.clone(),
            going_away,
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
        (end, commands)
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
        _ => None,
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

async fn reader<S>(
    mut stream: SplitStream<WebSocketStream<S>>,
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
    // Far enough never to fire when there is no such timeout.
    let never = Duration::from_secs(100 * 365 * 86_400);
    let idle = silence.idle.unwrap_or(never);
    let unanswered = silence.unanswered.unwrap_or(never);
    // Silence is counted from the last frame read, or from the end of the last wait for
    // room in the hub: while the hub applies back-pressure nothing is read, and a pong that
    // sits unread in the socket must not count as missing.
    let mut last = Instant::now();
    loop {
        let msg = tokio::select! {
            biased;
            _ = token.cancelled() => return (End::Cancelled, None),
            m = stream.next() => m,
            _ = tokio::time::sleep_until(last + idle) => {
                let ms = idle.as_millis();
                let reason = format!("idle timeout: nothing received for {ms} ms");
                return (End::Closed(1001, reason.clone()), Some((1001, reason)));
            }
            _ = tokio::time::sleep_until(last + unanswered) => {
                let ms = unanswered.as_millis();
                let error = format!(
                    "no answer to ping: nothing received from the peer for {ms} ms (ping_interval_ms + pong_timeout_ms)"
                );
                return (End::Failed(error), None);
            }
        };
        last = Instant::now();
        let kind = match msg {
            Some(Ok(Message::Text(t))) => {
                count(&stats.messages_in, &stats.bytes_in, t.len());
                EventKind::Text(t.as_str().to_owned())
            }
            Some(Ok(Message::Binary(b))) => {
                count(&stats.messages_in, &stats.bytes_in, b.len());
                EventKind::Binary(b.to_vec())
            }
            Some(Ok(Message::Pong(p))) => EventKind::Pong(p.to_vec()),
            Some(Ok(Message::Ping(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Close(f))) => {
                close = Some(f.map_or((1005, String::new()), |f| {
                    (u16::from(f.code), f.reason.as_str().to_owned())
                }));
                continue;
            }
            None | Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {
                let (code, reason) = close.unwrap_or((1006, String::new()));
                return (End::Closed(code, reason), None);
            }
            // A TLS peer that vanished (no close_notify) is the same as a plain one: 1006.
            Some(Err(WsError::Io(e))) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                let (code, reason) = close.unwrap_or((1006, String::new()));
                return (End::Closed(code, reason), None);
            }
            Some(Err(WsError::Capacity(e))) => {
                let error =
                    format!("incoming message too large: {e} (max_message_size / max_frame_size)");
                return (
                    End::Failed(error),
                    Some((1009, format!("message too big: {e}"))),
                );
            }
            Some(Err(e)) => return (End::Failed(e.to_string()), farewell(&e)),
        };
        if log.enabled(Level::Debug) {
            log.write(Level::Debug, || describe("in", conn, &kind, log.bodies));
        }
        hub.publish(Event { conn, kind }, token).await;
        last = Instant::now();
    }
}

/// The writer task's settings.
struct Writer {
    token: CancellationToken,
    going_away: CancellationToken,
    failure: Arc<Mutex<Option<String>>>,
    /// Set by the reader when it ended the connection: the close frame to send.
    farewell: Arc<Mutex<Option<(u16, String)>>>,
    stats: Arc<Stats>,
    ping_interval: Option<Duration>,
}

impl Writer {
    async fn run<S>(
        self,
        mut sink: SplitSink<WebSocketStream<S>, Message>,
        mut commands: mpsc::Receiver<Command>,
    ) -> mpsc::Receiver<Command>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let Writer {
            token,
            going_away,
            failure,
            farewell,
            stats,
            ping_interval,
        } = self;
        let period = ping_interval.unwrap_or(Duration::from_secs(100 * 365 * 86_400));
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            let first = tokio::select! {
                _ = token.cancelled() => break,
                _ = ticks.tick() => Some(Command::Send(Message::Ping(Vec::new().into()))),
                c = commands.recv() => c,
            };
            let Some(mut cmd) = first else { break };
            // Feed everything already queued, then flush once. A peer that stops reading
            // blocks these writes for good: the token cuts them short.
            let batch = async {
                loop {
                    let r = match cmd {
                        Command::Send(m) => {
                            if !m.is_ping() {
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
                    match commands.try_recv() {
                        Ok(next) => cmd = next,
                        Err(_) => break sink.flush().await,
                    }
                }
            };
            let result = tokio::select! {
                _ = token.cancelled() => break,
                r = batch => r,
            };
            if let Err(e) = result {
                if !matches!(e, WsError::ConnectionClosed | WsError::AlreadyClosed) {
                    *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                }
                token.cancel();
                return commands;
            }
        }
        // Done() or Stop(): tell the peer we are going away; a failed read: tell it why. Either
        // way without holding anyone up long.
        let bye = farewell.lock().unwrap_or_else(|e| e.into_inner()).take();
        let bye = bye.or_else(|| going_away.is_cancelled().then(|| (1001, String::new())));
        if let Some((code, reason)) = bye {
            let bye = Message::Close(Some(close_frame(code, &reason)));
            let _ = tokio::time::timeout(Duration::from_millis(250), sink.send(bye)).await;
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
