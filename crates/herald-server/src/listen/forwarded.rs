//! Which address a request really comes from: the TCP peer, or, when the peer is a trusted
//! reverse proxy, the client named in `X-Forwarded-For`.
//!
//! The header is a list every proxy appends to, so only its right end can be believed: walk
//! from the right, skipping addresses that are themselves trusted proxies, and take the first
//! one that is not. A client that sends its own `X-Forwarded-For` only adds entries on the left,
//! which are never reached while an untrusted hop stands to their right.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use hyper::HeaderMap;

/// The client address of a request, after `X-Forwarded-For` from trusted proxies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClientAddr(pub(crate) IpAddr);

/// An IP network: an address and a prefix length (`10.0.0.0/8`, `::1/128`, or a bare address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` is inside the network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = canonical(addr.trim().parse::<IpAddr>().map_err(|_| ())?);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| ()).and_then(|p| if p <= max { Ok(p) } else { Err(()) })?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`, what a dual-stack socket reports) as plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client address of a request from `peer`.
pub(crate) fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    client_addr_of(peer, headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()), trusted)
}

/// The client address of a request from `peer` whose `X-Forwarded-For` lines are `lines`
/// (a request head read without hyper: the Oro upgrade).
pub(crate) fn client_addr_of<'h>(peer: IpAddr, lines: impl Iterator<Item = &'h str>, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    // Several header lines are one list, in order.
    let hops = lines.flat_map(|v| v.split(',')).collect::<Vec<_>>();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            // Garbage in the chain: stop at the last address we could vouch for.
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, maybe with a port or brackets (`[::1]:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sa) = hop.parse::<std::net::SocketAddr>() {
        return Some(canonical(sa.ip()));
    }
    hop.strip_prefix('[').and_then(|h| h.strip_suffix(']')).and_then(|h| h.parse().ok()).map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        h
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_claims() {
        let ip = client_addr("198.51.100.9".parse().unwrap(), &xff("203.0.113.7"), &nets(&["127.0.0.1"]));
        assert_eq!(ip, "198.51.100.9".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn trusted_peer_yields_the_rightmost_untrusted_hop() {
        let trusted = nets(&["127.0.0.1", "10.0.0.0/8"]);
        let h = xff("1.1.1.1, 203.0.113.7, 10.1.2.3");
        assert_eq!(client_addr("127.0.0.1".parse().unwrap(), &h, &trusted), "203.0.113.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn spoofed_left_entries_are_not_reached() {
        // The client claims 9.9.9.9; nginx appends the real peer 203.0.113.7.
        let h = xff("9.9.9.9, 203.0.113.7");
        let ip = client_addr("127.0.0.1".parse().unwrap(), &h, &nets(&["127.0.0.1/32"]));
        assert_eq!(ip, "203.0.113.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn mapped_ipv6_and_ports_are_understood() {
        let trusted = nets(&["::1", "127.0.0.0/8"]);
        let h = xff("[2001:db8::1]:443");
        assert_eq!(
            client_addr("::ffff:127.0.0.1".parse().unwrap(), &h, &trusted),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("10.0.0.0/8".parse::<IpNet>().unwrap().contains("10.200.1.1".parse().unwrap()));
    }

    #[test]
    fn no_header_means_the_peer() {
        let ip = client_addr("127.0.0.1".parse().unwrap(), &HeaderMap::new(), &nets(&["127.0.0.1"]));
        assert_eq!(ip, "127.0.0.1".parse::<IpAddr>().unwrap());
    }
}
