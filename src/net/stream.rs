//! A TCP stream, plain or under TLS, as one type for tungstenite; and how a client opens
//! one to a host that may have several addresses.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::error::{Attempt, SocketFailure};

/// Plain TCP or TLS over TCP, on the client or the server side.
#[non_exhaustive]
pub enum MaybeTls {
    /// ws://
    Plain(TcpStream),
    /// wss:// (client)
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// wss:// (server)
    ServerTls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// A stream whose first bytes were already read (the handshake request the server checked
/// itself): they are read again first, then the stream goes on as it is.
pub struct Replayed<S> {
    head: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Replayed<S> {
    /// `inner`, with `head` to be read before it.
    pub fn new(head: Vec<u8>, inner: S) -> Self {
        Replayed { head, at: 0, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Replayed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.head.len() {
            let n = (this.head.len() - this.at).min(buf.remaining());
            buf.put_slice(&this.head[this.at..this.at + n]);
            this.at += n;
            if this.at == this.head.len() {
                this.head = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replayed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl AsyncRead for MaybeTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            MaybeTls::ServerTls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            MaybeTls::ServerTls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            MaybeTls::ServerTls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            MaybeTls::ServerTls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Delay before the next address is tried while earlier attempts are still pending
/// (RFC 8305 §5 recommends 250 ms).
const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// The addresses of `host:port` in the resolver's order (an IP literal is its own address).
pub async fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    Ok(tokio::net::lookup_host((host, port)).await?.collect())
}

/// A TCP connection to the first of `addrs` that accepts one, before `deadline`.
///
/// Attempts start in the given order (the resolver's, which already sorts by RFC 6724), the
/// next one [`ATTEMPT_DELAY`] after the previous started or at once when it failed, and
/// run concurrently: an address that swallows SYNs (an unreachable IPv6 route) delays the
/// others by 250 ms, not by the whole timeout. This is the connection part of Happy
/// Eyeballs (RFC 8305) without the address-family interleaving. The first connection wins;
/// the other pending attempts are dropped (and their sockets closed) on return.
///
/// On failure, every address attempted, in order, with how it failed; those still pending
/// when `deadline` passed are `TimedOut`, those never started are not listed.
pub async fn connect_any(
    addrs: &[SocketAddr],
    deadline: tokio::time::Instant,
) -> Result<(TcpStream, SocketAddr), Vec<Attempt>> {
    use futures_util::StreamExt;
    use futures_util::stream::FuturesUnordered;
    let mut pending = FuturesUnordered::new();
    // One slot per started attempt, in start order; `None` while it is pending.
    let mut outcomes: Vec<(SocketAddr, Option<SocketFailure>)> = Vec::new();
    let mut next = 0;
    // When the next address may start although earlier ones are still pending.
    let mut next_at = tokio::time::Instant::now();
    let expired = tokio::time::sleep_until(deadline);
    tokio::pin!(expired);
    loop {
        let now = tokio::time::Instant::now();
        if next < addrs.len() && (pending.is_empty() || now >= next_at) {
            let (i, addr) = (outcomes.len(), addrs[next]);
            outcomes.push((addr, None));
            pending.push(async move { (i, TcpStream::connect(addr).await) });
            next += 1;
            next_at = now + ATTEMPT_DELAY;
        }
        if pending.is_empty() {
            break;
        }
        let more = next < addrs.len();
        tokio::select! {
            Some((i, r)) = pending.next() => match r {
                Ok(s) => return Ok((s, outcomes[i].0)),
                Err(e) => {
                    outcomes[i].1 = Some(SocketFailure::of(&e));
                    // Failed: the next address starts now rather than after the delay.
                    next_at = tokio::time::Instant::now();
                }
            },
            _ = tokio::time::sleep_until(next_at), if more => {}
            _ = &mut expired => break,
        }
    }
    Err(outcomes
        .into_iter()
        .map(|(addr, f)| Attempt {
            addr,
            failure: f.unwrap_or(SocketFailure::TimedOut),
        })
        .collect())
}
