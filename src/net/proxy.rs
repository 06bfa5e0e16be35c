//! Tunnels through a proxy: HTTP CONNECT (with Basic auth), SOCKS5 (host name resolved by
//! the proxy, user/password auth) and SOCKS4 (IPv4 resolved here). The result is a plain TCP
//! stream to the target on which TLS and the WebSocket handshake run as usual.

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_socks::tcp::{Socks4Stream, Socks5Stream};

use crate::error::{Error, Result};
use crate::net::options::{Proxy, ProxyKind};

/// Longest CONNECT response head we read.
const MAX_HEAD: usize = 16 << 10;

fn proxy_error(p: &Proxy, ru: impl std::fmt::Display, en: impl std::fmt::Display) -> Error {
    let at = p.display();
    Error::net(
        format!("Прокси-сервер {at}: {ru}"),
        format!("Proxy {at}: {en}"),
    )
}

fn bad_credentials(p: &Proxy) -> Error {
    let given = p.auth.is_some();
    proxy_error(
        p,
        if given {
            "неверный логин или пароль прокси"
        } else {
            "прокси требует авторизацию: укажите логин и пароль в адресе (http://логин:пароль@узел:порт)"
        },
        if given {
            "wrong proxy user name or password"
        } else {
            "the proxy requires authentication: give user and password in its URL (http://user:pass@host:port)"
        },
    )
}

/// A TCP stream to `host:port` through `p`.
pub async fn connect(p: &Proxy, host: &str, port: u16) -> Result<TcpStream> {
    let tcp = TcpStream::connect((p.host.as_str(), p.port))
        .await
        .map_err(|e| {
            proxy_error(
                p,
                format_args!("не удалось подключиться к прокси: {e}"),
                format_args!("cannot connect to the proxy: {e}"),
            )
        })?;
    let _ = tcp.set_nodelay(true);
    match p.kind {
        ProxyKind::Http => http_connect(p, tcp, host, port).await,
        ProxyKind::Socks5 => {
            let target = (host, port);
            let r = match &p.auth {
                Some((u, pw)) => {
                    Socks5Stream::connect_with_password_and_socket(tcp, target, u, pw).await
                }
                None => Socks5Stream::connect_with_socket(tcp, target).await,
            };
            r.map(Socks5Stream::into_inner)
                .map_err(|e| socks_error(p, host, port, e))
        }
        ProxyKind::Socks4 => {
            let addr = tokio::net::lookup_host((host, port))
                .await
                .ok()
                .and_then(|mut a| a.find(std::net::SocketAddr::is_ipv4))
                .ok_or_else(|| {
                    proxy_error(
                        p,
                        format_args!("SOCKS4 требует IPv4-адрес, а узел «{host}» его не имеет"),
                        format_args!("SOCKS4 needs an IPv4 address and \"{host}\" has none"),
                    )
                })?;
            Socks4Stream::connect_with_socket(tcp, addr)
                .await
                .map(Socks4Stream::into_inner)
                .map_err(|e| socks_error(p, host, port, e))
        }
    }
}

fn socks_error(p: &Proxy, host: &str, port: u16, e: tokio_socks::Error) -> Error {
    use tokio_socks::Error as E;
    match e {
        E::PasswordAuthFailure(_) | E::AuthorizationRequired | E::NoAcceptableAuthMethods => {
            bad_credentials(p)
        }
        // Some proxies (pproxy among them) hang up on a wrong password without a reply.
        E::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof && p.auth.is_some() => {
            proxy_error(
                p,
                "прокси закрыл соединение при проверке логина: вероятно, неверный логин или пароль прокси",
                "the proxy hung up while checking the login: probably a wrong proxy user name or password",
            )
        }
        E::ConnectionRefused
        | E::HostUnreachable
        | E::NetworkUnreachable
        | E::GeneralSocksServerFailure
        | E::ConnectionNotAllowedByRuleset
        | E::TtlExpired => proxy_error(
            p,
            format_args!("не удалось подключиться к {host}:{port}: {e}"),
            format_args!("cannot reach {host}:{port}: {e}"),
        ),
        other => proxy_error(
            p,
            format_args!("ошибка SOCKS: {other}"),
            format_args!("SOCKS error: {other}"),
        ),
    }
}

async fn http_connect(p: &Proxy, mut tcp: TcpStream, host: &str, port: u16) -> Result<TcpStream> {
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some((user, pass)) = &p.auth {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        req.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
    }
    req.push_str("\r\n");
    let io = |e: std::io::Error| {
        proxy_error(
            p,
            format_args!("обрыв связи при установке туннеля: {e}"),
            format_args!("connection lost while opening the tunnel: {e}"),
        )
    };
    tcp.write_all(req.as_bytes()).await.map_err(io)?;
    // Byte by byte up to the blank line: nothing of the tunnel may be read ahead.
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD {
            return Err(proxy_error(
                p,
                "слишком длинный ответ на CONNECT",
                "the answer to CONNECT is too long",
            ));
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
            format_args!("это не HTTP-прокси (ответ «{status_line}»)"),
            format_args!("not an HTTP proxy (answer \"{status_line}\")"),
        ));
    }
    match code {
        200..=299 => Ok(tcp),
        407 => Err(bad_credentials(p)),
        _ => Err(proxy_error(
            p,
            format_args!("отказ в туннеле к {authority}: {status_line}"),
            format_args!("refused the tunnel to {authority}: {status_line}"),
        )),
    }
}
