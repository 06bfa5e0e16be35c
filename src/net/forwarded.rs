//! Behind a reverse proxy (`trusted_proxies`): the client's address from the headers a
//! trusted proxy adds.
//!
//! Trust is by the peer's address only: headers from any other peer are ignored, since
//! anyone can write them. From a trusted proxy the headers are read in this order, the first
//! that names a client wins:
//!
//! 1. `X-Forwarded-For` (every such header, as one list): walking from the right, the first
//!    address that is not itself a trusted proxy. nginx (`$proxy_add_x_forwarded_for`) and
//!    IIS ARR append the address they saw, so whatever a client wrote itself stays to the
//!    left of it and is never taken;
//! 2. `Forwarded` (RFC 7239), its `for=` elements, by the same rule;
//! 3. `X-Real-IP`, which a proxy sets (replaces) rather than appends.
//!
//! An element that is not an address (`unknown`, an obfuscated `_name`) where the client
//! should be makes that header name nobody. When every element is a trusted proxy, the
//! left-most is the client.

use std::net::{IpAddr, SocketAddr};

/// An address block of `trusted_proxies`: `10.0.0.0/8`, `fd00::/8`, or one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d`, `a.b.c.d/n` (n ≤ 32), an IPv6 address (brackets allowed) or
    /// `ipv6/n` (n ≤ 128). Host bits below the prefix are ignored (`10.1.2.3/8` is `10/8`).
    pub fn parse(text: &str) -> Option<Cidr> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                (a, Some(p.parse::<u8>().ok()?))
            }
            Some(_) => return None,
            None => (text, None),
        };
        let addr = addr
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(addr);
        let ip = canonical(addr.parse::<IpAddr>().ok()?);
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return None;
        }
        Some(Cidr {
            net: mask(ip, prefix),
            prefix,
        })
    }

    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.net.is_ipv4() && mask(ip, self.prefix) == self.net
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d`: a dual-stack listener sees IPv4 peers that way.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v) => {
            let bits = u32::from(v);
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v) => {
            let bits = u128::from(v);
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & m).into())
        }
    }
}

fn trusted(list: &[Cidr], ip: IpAddr) -> bool {
    list.iter().any(|c| c.contains(ip))
}

/// One element of a forwarding header: an address with or without a port (`1.2.3.4`,
/// `1.2.3.4:5678`, `[2001:db8::1]:4711`, `2001:db8::1`), quotes allowed. As 1C code sees it:
/// `ip:port` when the port is known, else the address alone.
fn element(text: &str) -> Option<(IpAddr, String)> {
    let t = text.trim().trim_matches('"').trim();
    if let Ok(sa) = t.parse::<SocketAddr>() {
        let ip = canonical(sa.ip());
        return Some((ip, SocketAddr::new(ip, sa.port()).to_string()));
    }
    let bare = t
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(t);
    let ip = canonical(bare.parse::<IpAddr>().ok()?);
    Some((ip, ip.to_string()))
}

/// The right-most element that is not a trusted proxy (see the module docs).
fn right_most_untrusted<'a>(
    elements: impl DoubleEndedIterator<Item = &'a str>,
    list: &[Cidr],
) -> Option<String> {
    let mut left_most = None;
    for e in elements.rev() {
        let (ip, shown) = element(e)?;
        if !trusted(list, ip) {
            return Some(shown);
        }
        left_most = Some(shown);
    }
    left_most
}

/// The `for=` values of `Forwarded` header values, in order.
fn forwarded_for(values: &[&str]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| v.trim().to_owned())
            })
        })
        .collect()
}

/// The client's address for a connection from `peer` with request `headers` (name, value;
/// names in any case): `None` when `peer` is not a trusted proxy or no header names a client.
pub fn client_address(peer: IpAddr, headers: &[(String, String)], list: &[Cidr]) -> Option<String> {
    if !trusted(list, peer) {
        return None;
    }
    let values = |name: &str| -> Vec<&str> {
        headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let xff = values("x-forwarded-for");
    if !xff.is_empty() {
        let all: Vec<&str> = xff.iter().flat_map(|v| v.split(',')).collect();
        if let Some(a) = right_most_untrusted(all.into_iter(), list) {
            return Some(a);
        }
    }
    let fwd = forwarded_for(&values("forwarded"));
    if let Some(a) = right_most_untrusted(fwd.iter().map(String::as_str), list) {
        return Some(a);
    }
    values("x-real-ip")
        .last()
        .and_then(|v| element(v))
        .map(|(_, shown)| shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<Cidr> {
        items.iter().map(|i| Cidr::parse(i).unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parses_addresses_and_blocks() {
        assert_eq!(
            Cidr::parse("10.1.2.3/8"),
            Some(Cidr {
                net: ip("10.0.0.0"),
                prefix: 8
            })
        );
        assert_eq!(
            Cidr::parse(" 127.0.0.1 "),
            Some(Cidr {
                net: ip("127.0.0.1"),
                prefix: 32
            })
        );
        assert_eq!(Cidr::parse("[::1]").map(|c| c.prefix), Some(128));
        assert_eq!(Cidr::parse("fd00::/8").map(|c| c.net), Some(ip("fd00::")));
        assert_eq!(Cidr::parse("0.0.0.0/0").map(|c| c.prefix), Some(0));
        assert_eq!(
            Cidr::parse("::ffff:10.0.0.1").map(|c| c.net),
            Some(ip("10.0.0.1"))
        );
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "10.0.0.0/8/8",
            "nginx",
            "localhost",
            "1.2.3.4:80",
            "10.0.0.0/ 8",
            "10.0.0.0/x",
        ] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn matches_blocks_in_both_families() {
        let l = list(&["10.0.0.0/8", "192.168.1.7", "fd00::/8", "2001:db8::1"]);
        for yes in [
            "10.0.0.1",
            "10.255.255.255",
            "192.168.1.7",
            "fd12::5",
            "2001:db8::1",
            "::ffff:10.9.9.9",
        ] {
            assert!(trusted(&l, ip(yes)), "{yes}");
        }
        for no in [
            "11.0.0.1",
            "192.168.1.8",
            "fe00::1",
            "2001:db8::2",
            "::1",
            "127.0.0.1",
        ] {
            assert!(!trusted(&l, ip(no)), "{no}");
        }
        // /0 trusts everything of its family only.
        let all4 = list(&["0.0.0.0/0"]);
        assert!(trusted(&all4, ip("8.8.8.8")) && !trusted(&all4, ip("::2")));
        let all6 = list(&["::/0"]);
        assert!(trusted(&all6, ip("2001::1")) && !trusted(&all6, ip("8.8.8.8")));
    }

    #[test]
    fn x_forwarded_for_takes_the_right_most_untrusted() {
        let l = list(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.2");
        let got = |pairs: &[(&str, &str)]| client_address(peer, &h(pairs), &l);
        // A client that wrote its own X-Forwarded-For: nginx appended the real address.
        assert_eq!(
            got(&[("X-Forwarded-For", "6.6.6.6, 203.0.113.7")]).as_deref(),
            Some("203.0.113.7")
        );
        // Two proxies of ours in the chain.
        assert_eq!(
            got(&[("x-forwarded-for", "198.51.100.1, 203.0.113.7, 10.0.0.5")]).as_deref(),
            Some("203.0.113.7")
        );
        // Several headers are one list, in order.
        assert_eq!(
            got(&[
                ("X-Forwarded-For", "1.1.1.1"),
                ("X-Forwarded-For", "2.2.2.2, 10.1.1.1")
            ])
            .as_deref(),
            Some("2.2.2.2")
        );
        // IIS ARR adds the port; IPv6 with and without it.
        assert_eq!(
            got(&[("X-Forwarded-For", "203.0.113.7:51234")]).as_deref(),
            Some("203.0.113.7:51234")
        );
        assert_eq!(
            got(&[("X-Forwarded-For", "[2001:db8::7]:443")]).as_deref(),
            Some("[2001:db8::7]:443")
        );
        assert_eq!(
            got(&[("X-Forwarded-For", "2001:db8::7")]).as_deref(),
            Some("2001:db8::7")
        );
        // Only proxies: the left-most.
        assert_eq!(
            got(&[("X-Forwarded-For", "10.0.0.9, 10.0.0.8")]).as_deref(),
            Some("10.0.0.9")
        );
        // Garbage where the client should be: this header names nobody, the next is asked.
        assert_eq!(
            got(&[
                ("X-Forwarded-For", "1.1.1.1, unknown"),
                ("X-Real-IP", "5.5.5.5")
            ])
            .as_deref(),
            Some("5.5.5.5")
        );
        assert_eq!(got(&[("X-Forwarded-For", "unknown")]), None);
        assert_eq!(got(&[]), None);
    }

    #[test]
    fn forwarded_and_x_real_ip() {
        let l = list(&["127.0.0.2"]);
        let peer = ip("127.0.0.2");
        let got = |pairs: &[(&str, &str)]| client_address(peer, &h(pairs), &l);
        assert_eq!(
            got(&[("Forwarded", r#"for=192.0.2.60;proto=https;by=203.0.113.43"#)]).as_deref(),
            Some("192.0.2.60")
        );
        assert_eq!(
            got(&[(
                "Forwarded",
                r#"for=6.6.6.6, For="[2001:db8:cafe::17]:4711""#
            )])
            .as_deref(),
            Some("[2001:db8:cafe::17]:4711")
        );
        assert_eq!(got(&[("Forwarded", "for=_hidden")]), None);
        assert_eq!(
            got(&[("X-Real-IP", " 192.0.2.9 ")]).as_deref(),
            Some("192.0.2.9")
        );
        // X-Forwarded-For comes first.
        assert_eq!(
            got(&[
                ("X-Real-IP", "192.0.2.9"),
                ("X-Forwarded-For", "192.0.2.10")
            ])
            .as_deref(),
            Some("192.0.2.10")
        );
    }

    #[test]
    fn an_untrusted_peer_cannot_spoof() {
        let l = list(&["10.0.0.0/8"]);
        let spoof = h(&[
            ("X-Forwarded-For", "1.2.3.4"),
            ("X-Real-IP", "1.2.3.4"),
            ("Forwarded", "for=1.2.3.4"),
        ]);
        assert_eq!(client_address(ip("203.0.113.7"), &spoof, &l), None);
        assert_eq!(client_address(ip("10.0.0.1"), &spoof, &[]), None);
        assert_eq!(
            client_address(ip("::ffff:10.0.0.1"), &spoof, &l).as_deref(),
            Some("1.2.3.4")
        );
    }
}
