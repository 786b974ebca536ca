//! Which URLs given in requests the service may call (action `uri`s, webhook
//! `callback_url`s): one policy, `[actions]` in the config. Checked twice — on the URL
//! text at create, and on every address a host name resolves to when a request is made
//! (a resolver that drops forbidden addresses), so DNS cannot smuggle a request to
//! loopback, a private network, a link-local address or a cloud metadata endpoint.
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
    #[error("host {0} is a loopback, private, link-local or metadata address")]
    Private(String),
}

#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    /// Exact hosts, or suffixes written `.example.com`. Empty: any public host.
    pub allow_hosts: Vec<String>,
    /// Loopback and private ranges allowed (link-local and metadata never, unless a host
    /// is listed exactly).
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
            Class::LinkLocalOrMetadata => false,
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

enum Class {
    Public,
    Private,
    LinkLocalOrMetadata,
}

fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return classify_v4(v4);
            }
            let seg0 = v6.segments()[0];
            if (seg0 & 0xffc0) == 0xfe80 || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
            {
                Class::LinkLocalOrMetadata
            } else if v6.is_loopback()
                || v6.is_unspecified()
                || (seg0 & 0xfe00) == 0xfc00
                || v6.is_multicast()
            {
                Class::Private
            } else {
                Class::Public
            }
        }
    }
}

fn classify_v4(v4: Ipv4Addr) -> Class {
    let o = v4.octets();
    if v4.is_link_local() {
        // 169.254.0.0/16, which holds the cloud metadata address 169.254.169.254.
        Class::LinkLocalOrMetadata
    } else if v4.is_loopback()
        || v4.is_private()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10, carrier-grade NAT
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15, benchmarking
        || o[0] >= 240
    {
        Class::Private
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
