//! Who an anonymous request comes from, and how many such requests an address may make
//! per minute.
//!
//! Behind a reverse proxy every request arrives from the proxy's address, so the
//! per-address limit would count all users as one. The addresses listed in
//! `[server] trusted_proxies` are believed about whom they forward for: the `Forwarded`
//! header's `for=` (RFC 7239), else `X-Forwarded-For`, read from the nearest hop outwards,
//! skipping trusted proxies; the first address that is not one is the client. Headers from
//! any other peer are ignored, so a client cannot choose its own address.
//!
//! IPv6 addresses are counted per /64 (one subscriber's usual allocation), IPv4 ones per
//! address. The limiter holds one minute's counts in a map that is replaced, not
//! scanned, when the minute turns, and tracks at most [`MAX_TRACKED`] addresses a minute;
//! beyond that, new addresses share one allowance.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::RwLock;

use actix_web::http::header::HeaderMap;
use actix_web::HttpRequest;
use dashmap::DashMap;
use ipnet::IpNet;

/// Addresses whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses CIDRs (`10.0.0.0/8`, `fd00::/8`) or bare addresses; `Err` names the entry.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|entry| {
                let entry = entry.trim();
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{entry:?} is not an address or a CIDR"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&canonical(ip)))
    }

    /// The client's address: the peer's, or, when the peer is a trusted proxy, the one
    /// it forwarded for.
    pub fn client(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr()?.ip();
        Some(self.client_of(peer, req.headers()))
    }

    fn client_of(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops = forwarded_for(headers);
        let mut nearest = peer;
        for hop in hops.iter().rev() {
            match hop {
                Some(ip) if self.trusts(*ip) => nearest = *ip,
                Some(ip) => return canonical(*ip),
                // An obfuscated or unknown hop: the proxy that reported it is the last
                // address known.
                None => return nearest,
            }
        }
        nearest
    }
}

/// The `for=` hops of `Forwarded`, or else those of `X-Forwarded-For`, farthest first;
/// `None` for a hop that is not an address.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<Option<IpAddr>> = headers
        .get_all("forwarded")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                key.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| parse_node(value.trim().trim_matches('"')))
            })
        })
        .collect();
    if !forwarded.is_empty() {
        return forwarded;
    }
    headers
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|hop| parse_node(hop.trim()))
        .collect()
}

/// `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]:4711`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// What the limit counts an address under: IPv4 as is, IPv6 by its /64.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// Addresses counted one by one in a minute; beyond, new ones share one allowance.
pub const MAX_TRACKED: usize = 100_000;

/// Caps anonymous requests per client address per minute (fixed windows).
pub struct AnonymousLimiter {
    per_minute: u32,
    max_tracked: usize,
    /// This minute and its counts; the map is replaced when the minute turns.
    window: RwLock<(u64, DashMap<IpAddr, u32>)>,
    /// Requests this minute from addresses beyond the tracked ones.
    overflow: AtomicU32,
}

impl AnonymousLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self::with_capacity(per_minute, MAX_TRACKED)
    }

    fn with_capacity(per_minute: u32, max_tracked: usize) -> Self {
        AnonymousLimiter {
            per_minute,
            max_tracked,
            window: RwLock::new((0, DashMap::new())),
            overflow: AtomicU32::new(0),
        }
    }

    /// Counts one request from `ip`; false when it is over the limit.
    pub fn allow(&self, ip: Option<IpAddr>, now_ms: i64) -> bool {
        let (Some(ip), true) = (ip, self.per_minute > 0) else {
            return true;
        };
        let minute = (now_ms / 60_000) as u64;
        let key = limit_key(ip);
        loop {
            {
                let window = self.window.read().expect("limiter lock");
                if window.0 == minute {
                    return self.count(&window.1, key) <= self.per_minute;
                }
            }
            // The minute turned: start a new map, dropping the last one.
            let mut window = self.window.write().expect("limiter lock");
            if window.0 != minute {
                *window = (minute, DashMap::new());
                self.overflow.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Counts one request under `key` in this minute's `counts`, or in the shared
    /// allowance once the map tracks as many addresses as it may.
    fn count(&self, counts: &DashMap<IpAddr, u32>, key: IpAddr) -> u32 {
        if let Some(mut n) = counts.get_mut(&key) {
            *n += 1;
            return *n;
        }
        if counts.len() >= self.max_tracked {
            return self.overflow.fetch_add(1, Ordering::Relaxed) + 1;
        }
        let mut n = counts.entry(key).or_insert(0);
        *n += 1;
        *n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_a_trusted_peer_is_believed_and_trusted_hops_are_skipped() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8".into(), "::1".into()]).unwrap();
        let xff = headers(&[("x-forwarded-for", "203.0.113.9, 10.1.2.3")]);
        assert_eq!(trusted.client_of(ip("10.0.0.1"), &xff), ip("203.0.113.9"));
        assert_eq!(
            trusted.client_of(ip("198.51.100.1"), &xff),
            ip("198.51.100.1")
        );
        // The client cannot put itself past the trusted hops.
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9")]);
        assert_eq!(
            trusted.client_of(ip("10.0.0.1"), &spoofed),
            ip("203.0.113.9")
        );
        let all_trusted = headers(&[("x-forwarded-for", "10.9.9.9")]);
        assert_eq!(trusted.client_of(ip("::1"), &all_trusted), ip("10.9.9.9"));
        assert_eq!(
            trusted.client_of(ip("::ffff:10.0.0.1"), &xff),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn forwarded_wins_over_x_forwarded_for_and_takes_ports_and_brackets() {
        let trusted = TrustedProxies::parse(&["127.0.0.1".into()]).unwrap();
        let both = headers(&[
            (
                "forwarded",
                "for=192.0.2.60;proto=http, For=\"[2001:db8::17]:4711\"",
            ),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        assert_eq!(
            trusted.client_of(ip("127.0.0.1"), &both),
            ip("2001:db8::17")
        );
        let with_port = headers(&[("forwarded", "for=\"192.0.2.43:47011\"")]);
        assert_eq!(
            trusted.client_of(ip("127.0.0.1"), &with_port),
            ip("192.0.2.43")
        );
        let hidden = headers(&[("forwarded", "for=_hidden")]);
        assert_eq!(trusted.client_of(ip("127.0.0.1"), &hidden), ip("127.0.0.1"));
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
    }

    #[test]
    fn ipv6_is_counted_per_64_and_a_new_minute_starts_afresh() {
        let limiter = AnonymousLimiter::new(2);
        assert!(limiter.allow(Some(ip("2001:db8::1")), 0));
        assert!(limiter.allow(Some(ip("2001:db8::2")), 0));
        assert!(
            !limiter.allow(Some(ip("2001:db8::ffff")), 0),
            "the same /64"
        );
        assert!(limiter.allow(Some(ip("2001:db8:0:1::1")), 0), "another /64");
        assert!(limiter.allow(Some(ip("192.0.2.1")), 0));
        assert!(
            limiter.allow(Some(ip("2001:db8::1")), 60_000),
            "a new minute"
        );
    }

    #[test]
    fn addresses_beyond_the_tracked_ones_share_one_allowance() {
        let limiter = AnonymousLimiter::with_capacity(2, 1);
        assert!(limiter.allow(Some(ip("192.0.2.1")), 0));
        assert!(limiter.allow(Some(ip("192.0.2.2")), 0));
        assert!(limiter.allow(Some(ip("192.0.2.3")), 0));
        assert!(
            !limiter.allow(Some(ip("192.0.2.4")), 0),
            "the shared allowance"
        );
        assert!(limiter.allow(Some(ip("192.0.2.1")), 0), "tracked: its own");
        assert!(limiter.allow(Some(ip("192.0.2.4")), 60_000));
    }
}
