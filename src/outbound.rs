//! Which URLs given in requests the service may call (action `uri`s, webhook
//! `callback_url`s): one policy, `[actions]` in the config. Checked twice — on the URL
//! text at create, and on every address a host name resolves to when a request is made
//! (a resolver that drops forbidden addresses), so DNS cannot smuggle a request to
//! loopback, a private network, a link-local address, a cloud metadata endpoint or any
//! other special-purpose range. The clients that call such URLs are built without proxy
//! support (`no_proxy`): through an `HTTP(S)_PROXY` the proxy would resolve the host,
//! and the resolver here would never see it.
//! Transports the operator configures (SMTP relay, SMS gateway) are trusted and do not
//! pass through here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why a URL may not be called.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("not an http or https URL with a host")]
    Malformed,
    #[error("host {0} is not in actions.allow_hosts")]
    NotAllowed(String),
    #[error("host {0} is a loopback, private, link-local, metadata or special-purpose address")]
    Private(String),
}

#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    /// Exact hosts, or suffixes written `.example.com`. Empty: any public host.
    pub allow_hosts: Vec<String>,
    /// Loopback and private ranges allowed (link-local, metadata and the other
    /// special-purpose ranges never, unless a host is listed exactly).
    pub allow_private: bool,
}

impl OutboundPolicy {
    fn listed_exactly(&self, host: &str) -> bool {
        self.allow_hosts
            .iter()
            .any(|h| !h.starts_with('.') && h.eq_ignore_ascii_case(host))
    }

    fn listed(&self, host: &str) -> bool {
        self.allow_hosts.is_empty()
            || self.allow_hosts.iter().any(|h| {
                if let Some(suffix) = h.strip_prefix('.') {
                    let host = host.to_ascii_lowercase();
                    host.ends_with(&format!(".{}", suffix.to_ascii_lowercase()))
                } else {
                    h.eq_ignore_ascii_case(host)
                }
            })
    }

    /// Whether a connection to `ip` is allowed when it was reached through `host`.
    pub fn address_allowed(&self, host: &str, ip: IpAddr) -> bool {
        if self.listed_exactly(host) {
            return true;
        }
        match classify(ip) {
            Class::Public => true,
            Class::Private => self.allow_private,
            Class::Special => false,
        }
    }

    /// Checks a URL's text: scheme, host, allow-list, and literal addresses.
    pub fn check_url(&self, url: &str) -> Result<reqwest::Url, Refused> {
        let parsed = reqwest::Url::parse(url).map_err(|_| Refused::Malformed)?;
        if !matches!(parsed.scheme(), "http" | "https")
            || !parsed.username().is_empty()
            || parsed.password().is_some()
        {
            return Err(Refused::Malformed);
        }
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) => d.trim_end_matches('.').to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(Refused::Malformed),
        };
        if !self.listed(&host) {
            return Err(Refused::NotAllowed(host));
        }
        let literal = host.parse::<IpAddr>().ok().or_else(|| {
            let lower = host.to_ascii_lowercase();
            (lower == "localhost" || lower.ends_with(".localhost"))
                .then_some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        });
        if host.eq_ignore_ascii_case("metadata.google.internal") && !self.listed_exactly(&host) {
            return Err(Refused::Private(host));
        }
        if let Some(ip) = literal {
            if !self.address_allowed(&host, ip) {
                return Err(Refused::Private(host));
            }
        }
        Ok(parsed)
    }
}

/// What an address is, for the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Public,
    /// Loopback and private networks: allowed with `allow_private`.
    Private,
    /// Link-local, cloud metadata, and the other special-purpose ranges of the IANA
    /// IPv4 and IPv6 Special-Purpose Address Registries (documentation, benchmarking,
    /// translation and tunnelling prefixes that embed or reach other addresses,
    /// reserved and multicast): allowed only to a host listed exactly.
    Special,
}

/// Cloud metadata and platform endpoints outside link-local: Azure's WireServer, Alibaba
/// Cloud's metadata service (inside 100.64.0.0/10), Oracle Cloud's (inside 192.0.0.0/24).
const METADATA_V4: [Ipv4Addr; 3] = [
    Ipv4Addr::new(168, 63, 129, 16),
    Ipv4Addr::new(100, 100, 100, 200),
    Ipv4Addr::new(192, 0, 0, 192),
];

/// AWS's IPv6 metadata endpoint.
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

/// `addr` lies in `net`/`len`.
fn in_v4(addr: Ipv4Addr, net: [u8; 4], len: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    u32::from(addr) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn in_v6(addr: Ipv6Addr, net: Ipv6Addr, len: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
    u128::from(addr) & mask == u128::from(net) & mask
}

fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// The IPv4 Special-Purpose Address Registry (RFC 6890 and its updates), multicast and
/// the metadata endpoints.
fn classify_v4(v4: Ipv4Addr) -> Class {
    if METADATA_V4.contains(&v4) {
        return Class::Special;
    }
    const PRIVATE: [([u8; 4], u32); 6] = [
        ([0, 0, 0, 0], 8),      // "this network" (0.0.0.0 reaches the local host)
        ([10, 0, 0, 0], 8),     // private
        ([100, 64, 0, 0], 10),  // shared address space (carrier-grade NAT)
        ([127, 0, 0, 0], 8),    // loopback
        ([172, 16, 0, 0], 12),  // private
        ([192, 168, 0, 0], 16), // private
    ];
    const SPECIAL: [([u8; 4], u32); 13] = [
        ([169, 254, 0, 0], 16), // link-local, with the metadata address 169.254.169.254
        ([192, 0, 0, 0], 24),   // IETF protocol assignments (DS-Lite, NAT64 discovery, ...)
        ([192, 0, 2, 0], 24),   // documentation (TEST-NET-1)
        ([192, 31, 196, 0], 24), // AS112-v4
        ([192, 52, 193, 0], 24), // AMT
        ([192, 88, 99, 0], 24), // deprecated 6to4 relay anycast
        ([192, 175, 48, 0], 24), // direct delegation AS112
        ([198, 18, 0, 0], 15),  // benchmarking
        ([198, 51, 100, 0], 24), // documentation (TEST-NET-2)
        ([203, 0, 113, 0], 24), // documentation (TEST-NET-3)
        ([224, 0, 0, 0], 4),    // multicast
        ([240, 0, 0, 0], 4),    // reserved, and the limited broadcast address
        ([255, 255, 255, 255], 32),
    ];
    if PRIVATE.iter().any(|&(net, len)| in_v4(v4, net, len)) {
        Class::Private
    } else if SPECIAL.iter().any(|&(net, len)| in_v4(v4, net, len)) {
        Class::Special
    } else {
        Class::Public
    }
}

/// The IPv6 Special-Purpose Address Registry (RFC 6890 and its updates), the deprecated
/// site-local prefix, multicast and the metadata endpoint. An IPv4 address written in
/// IPv6 — mapped (`::ffff:a.b.c.d`), compatible (`::a.b.c.d`) or behind a translation or
/// tunnelling prefix (NAT64, 6to4, Teredo) — is refused outright: which host it reaches
/// depends on the network, not on the address.
fn classify_v6(v6: Ipv6Addr) -> Class {
    if v6.is_loopback() || v6.is_unspecified() {
        return Class::Private;
    }
    if v6 == METADATA_V6 {
        return Class::Special;
    }
    let net = |text: &str| text.parse::<Ipv6Addr>().expect("a valid prefix");
    let private = [(net("fc00::"), 7), (net("fec0::"), 10)];
    let special = [
        (net("::"), 96),             // IPv4-compatible (deprecated)
        (net("::ffff:0:0"), 96),     // IPv4-mapped
        (net("64:ff9b::"), 96),      // NAT64 well-known prefix
        (net("64:ff9b:1::"), 48),    // NAT64 local-use prefix
        (net("100::"), 64),          // discard-only
        (net("100:0:0:1::"), 64),    // dummy prefix
        (net("2001::"), 23),         // IETF protocol assignments (Teredo, ORCHID, ...)
        (net("2001:db8::"), 32),     // documentation
        (net("2002::"), 16),         // 6to4
        (net("2620:4f:8000::"), 48), // direct delegation AS112
        (net("3fff::"), 20),         // documentation
        (net("5f00::"), 16),         // segment routing (SRv6) SIDs
        (net("fe80::"), 10),         // link-local
        (net("ff00::"), 8),          // multicast
    ];
    if private.iter().any(|&(n, len)| in_v6(v6, n, len)) {
        Class::Private
    } else if special.iter().any(|&(n, len)| in_v6(v6, n, len)) {
        Class::Special
    } else {
        Class::Public
    }
}

/// A DNS resolver for outbound clients that drops addresses the policy forbids.
pub struct GuardedResolver {
    policy: OutboundPolicy,
}

impl GuardedResolver {
    pub fn new(policy: OutboundPolicy) -> Arc<Self> {
        Arc::new(GuardedResolver { policy })
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| policy.address_allowed(&host, a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(
                    Box::new(Refused::Private(host)) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(hosts: &[&str], private: bool) -> OutboundPolicy {
        OutboundPolicy {
            allow_hosts: hosts.iter().map(|h| h.to_string()).collect(),
            allow_private: private,
        }
    }

    #[test]
    fn public_hosts_pass_an_empty_allow_list() {
        assert!(policy(&[], false)
            .check_url("https://api.example.com/x")
            .is_ok());
        assert!(policy(&[], false)
            .check_url("http://93.184.216.34/")
            .is_ok());
    }

    #[test]
    fn loopback_private_link_local_and_metadata_are_refused_by_default() {
        let p = policy(&[], false);
        for url in [
            "http://127.0.0.1/",
            "http://localhost:8080/",
            "http://10.1.2.3/",
            "http://192.168.0.1/",
            "http://[::1]/",
            "http://[fc00::1]/",
            "http://169.254.169.254/latest/meta-data",
            "http://[fe80::1]/",
            "http://metadata.google.internal/",
            "http://0.0.0.0/",
            "http://[::ffff:127.0.0.1]/",
        ] {
            assert!(
                matches!(p.check_url(url), Err(Refused::Private(_))),
                "{url}"
            );
        }
    }

    #[test]
    fn special_purpose_ranges_are_refused_even_with_allow_private() {
        let p = policy(&[], true);
        for url in [
            "http://168.63.129.16/",
            "http://100.100.100.200/latest/meta-data",
            "http://192.0.0.192/",
            "http://192.0.0.170/",
            "http://192.0.2.10/",
            "http://198.18.0.1/",
            "http://198.51.100.7/",
            "http://203.0.113.9/",
            "http://192.88.99.1/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
            "http://240.1.2.3/",
            "http://[::7f00:1]/",
            "http://[::a9fe:a9fe]/",
            "http://[::ffff:8.8.8.8]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[64:ff9b:1::1]/",
            "http://[2002:a9fe:a9fe::1]/",
            "http://[2001::1]/",
            "http://[2001:db8::1]/",
            "http://[3fff::1]/",
            "http://[100::1]/",
            "http://[5f00::1]/",
            "http://[fd00:ec2::254]/",
            "http://[ff02::1]/",
        ] {
            assert!(
                matches!(p.check_url(url), Err(Refused::Private(_))),
                "{url}"
            );
        }
        // Listed exactly, the operator has decided.
        assert!(policy(&["168.63.129.16"], false)
            .check_url("http://168.63.129.16/")
            .is_ok());
    }

    #[test]
    fn private_and_site_local_ranges_open_with_allow_private_only() {
        for url in [
            "http://100.64.0.1/",
            "http://172.16.0.1/",
            "http://[fec0::1]/",
            "http://[fd12::1]/",
        ] {
            assert!(policy(&[], false).check_url(url).is_err(), "{url}");
            assert!(policy(&[], true).check_url(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn public_addresses_next_to_special_ranges_pass() {
        let p = policy(&[], false);
        for url in [
            "http://8.8.8.8/",
            "http://192.0.1.1/",
            "http://198.20.0.1/",
            "http://168.63.129.17/",
            "http://[2001:4860:4860::8888]/",
            "http://[2a00:1450::1]/",
        ] {
            assert!(p.check_url(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn allow_private_opens_private_ranges_but_never_metadata() {
        let p = policy(&[], true);
        assert!(p.check_url("http://127.0.0.1:9/").is_ok());
        assert!(p.check_url("http://10.0.0.1/").is_ok());
        assert!(p.check_url("http://169.254.169.254/").is_err());
    }

    #[test]
    fn an_exact_entry_allows_that_host_and_a_list_excludes_others() {
        let p = policy(&["127.0.0.1", ".example.com"], false);
        assert!(p.check_url("http://127.0.0.1:9/").is_ok());
        assert!(p.check_url("https://api.example.com/").is_ok());
        assert!(p.check_url("https://example.com.evil.net/").is_err());
        assert!(matches!(
            p.check_url("https://other.org/"),
            Err(Refused::NotAllowed(_))
        ));
        assert!(matches!(
            p.check_url("http://localhost/"),
            Err(Refused::NotAllowed(_))
        ));
    }

    #[test]
    fn malformed_urls_are_refused() {
        let p = policy(&[], true);
        for url in [
            "ftp://x/",
            "not a url",
            "http://user:pw@example.com/",
            "file:///etc/passwd",
        ] {
            assert_eq!(p.check_url(url), Err(Refused::Malformed), "{url}");
        }
    }
}
