//! Tunnels through a proxy: HTTP CONNECT (with Basic auth), SOCKS5 (host name resolved by
//! the proxy, user/password auth) and SOCKS4 (IPv4 resolved here). The result is a plain TCP
//! stream to the target on which TLS and the WebSocket handshake run as usual.

use std::net::SocketAddr;

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_socks::tcp::{Socks4Stream, Socks5Stream};

use crate::error::{
    ConnectError, Error, ProxyError, ProxyFault, Result, SocketFailure, SocksReply,
};
use crate::net::options::{Proxy, ProxyKind};
use crate::net::stream;

/// Longest CONNECT response head we read.
const MAX_HEAD: usize = 16 << 10;

fn proxy_error(p: &Proxy, fault: ProxyFault) -> Error {
    Error::Proxy(ProxyError {
        proxy: p.display(),
        fault,
    })
}

fn bad_credentials(p: &Proxy) -> Error {
    proxy_error(
        p,
        if p.auth.is_some() {
            ProxyFault::WrongCredentials
        } else {
            ProxyFault::CredentialsRequired
        },
    )
}

/// A TCP stream to `host:port` through `p`, and the proxy's address. Every address of the
/// proxy's host is tried (as for a direct connect) until `deadline`.
pub async fn connect(
    p: &Proxy,
    host: &str,
    port: u16,
    deadline: Instant,
) -> Result<(TcpStream, SocketAddr)> {
    let addrs = stream::resolve(&p.host, p.port)
        .await
        .ok()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| proxy_error(p, ProxyFault::Resolve))?;
    let (tcp, peer) = stream::connect_any(&addrs, deadline)
        .await
        .map_err(|tried| proxy_error(p, ProxyFault::Tcp { tried }))?;
    let _ = tcp.set_nodelay(true);
    let tcp = match p.kind {
        ProxyKind::Http => http_connect(p, tcp, host, port).await?,
        ProxyKind::Socks5 => {
            let target = (host, port);
            let r = match &p.auth {
                Some((u, pw)) => {
                    Socks5Stream::connect_with_password_and_socket(tcp, target, u, pw).await
                }
                None => Socks5Stream::connect_with_socket(tcp, target).await,
            };
            r.map(Socks5Stream::into_inner)
                .map_err(|e| socks_error(p, host, port, e))?
        }
        ProxyKind::Socks4 => {
            // SOCKS4 carries an IPv4 address only: the name is resolved here.
            let addr = stream::resolve(host, port)
                .await
                .map_err(|_| {
                    Error::Connect(ConnectError::Resolve {
                        host: host.to_owned(),
                    })
                })?
                .into_iter()
                .find(SocketAddr::is_ipv4)
                .ok_or_else(|| {
                    proxy_error(
                        p,
                        ProxyFault::NoIpv4 {
                            host: host.to_owned(),
                        },
                    )
                })?;
            Socks4Stream::connect_with_socket(tcp, addr)
                .await
                .map(Socks4Stream::into_inner)
                .map_err(|e| socks_error(p, host, port, e))?
        }
    };
    Ok((tcp, peer))
}

fn socks_error(p: &Proxy, host: &str, port: u16, e: tokio_socks::Error) -> Error {
    use tokio_socks::Error as E;
    let unreachable = |why| ProxyFault::TargetUnreachable {
        target: authority(host, port),
        why,
    };
    let fault = match e {
        E::PasswordAuthFailure(_) | E::AuthorizationRequired | E::NoAcceptableAuthMethods => {
            return bad_credentials(p);
        }
        // Some proxies (pproxy among them) hang up on a wrong password without a reply.
        E::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof && p.auth.is_some() => {
            ProxyFault::HungUpOnLogin
        }
        E::Io(io) => ProxyFault::Lost {
            failure: SocketFailure::of(&io),
        },
        E::ConnectionRefused => unreachable(SocksReply::Refused),
        E::HostUnreachable => unreachable(SocksReply::HostUnreachable),
        E::NetworkUnreachable => unreachable(SocksReply::NetworkUnreachable),
        E::GeneralSocksServerFailure | E::ProxyServerUnreachable => {
            unreachable(SocksReply::ServerFailure)
        }
        E::ConnectionNotAllowedByRuleset | E::IdentdAuthFailure | E::InvalidUserIdAuthFailure => {
            unreachable(SocksReply::NotAllowed)
        }
        E::TtlExpired => unreachable(SocksReply::TtlExpired),
        E::CommandNotSupported | E::AddressTypeNotSupported => ProxyFault::Socks {
            why: SocksReply::NotSupported,
        },
        E::InvalidResponseVersion
        | E::UnknownAuthMethod
        | E::InvalidReservedByte
        | E::UnknownAddressType => ProxyFault::Socks {
            why: SocksReply::NotSocks,
        },
        E::InvalidTargetAddress(_) | E::InvalidAuthValues(_) => ProxyFault::Socks {
            why: SocksReply::BadTarget,
        },
        _ => ProxyFault::Socks {
            why: SocksReply::Other,
        },
    };
    proxy_error(p, fault)
}

/// `host:port`, IPv6 in brackets.
fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

async fn http_connect(p: &Proxy, mut tcp: TcpStream, host: &str, port: u16) -> Result<TcpStream> {
    let authority = authority(host, port);
    let mut req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some((user, pass)) = &p.auth {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        req.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    req.push_str("\r\n");
    let io = |e: std::io::Error| {
        proxy_error(
            p,
            ProxyFault::Lost {
                failure: SocketFailure::of(&e),
            },
        )
    };
    tcp.write_all(req.as_bytes()).await.map_err(io)?;
    // Byte by byte up to the blank line: nothing of the tunnel may be read ahead.
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD {
            return Err(proxy_error(p, ProxyFault::HeadTooLong));
        }
        let b = tcp.read_u8().await.map_err(io)?;
        head.push(b);
    }
    let text = String::from_utf8_lossy(&head);
    let status_line = text.lines().next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    let code: u16 = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
    if !version.starts_with("HTTP/") || code == 0 {
        return Err(proxy_error(
            p,
            ProxyFault::NotHttp {
                status_line: status_line.to_owned(),
            },
        ));
    }
    match code {
        200..=299 => Ok(tcp),
        407 => Err(bad_credentials(p)),
        _ => Err(proxy_error(
            p,
            ProxyFault::Refused {
                target: authority,
                status_line: status_line.to_owned(),
            },
        )),
    }
}
