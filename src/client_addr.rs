//! Who an HTTP client is, for per-client limits: the socket's peer or,
//! behind a trusted reverse proxy, the last `X-Forwarded-For` entry
//! ([`client_ip`]); the key limits count it under, an IPv4 address or an
//! IPv6 address's whole /64, what one host or customer usually gets
//! ([`limit_key`]); and a keyed rate limiter on those keys whose table is
//! pruned as it is used ([`ClientLimiter`]); allow lists of addresses and
//! CIDR networks ([`AllowedNet`], [`allows`]). Shared by the public page, the
//! admin console's logins, the HTTP connection caps, the trusted callers and
//! the SMPP listener's guard.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Deserializer};

/// An address (`10.1.2.3`, a single host) or a CIDR network (`10.1.2.0/24`,
/// `2001:db8::/32`) in an allow list. Host bits after the prefix are
/// ignored (`10.1.2.3/24` is `10.1.2.0/24`); an IPv4-mapped IPv6 address or
/// network (`::ffff:10.1.2.3`) is the IPv4 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AllowedNet(IpNet);

/// An allow-list entry that is neither an address nor a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP address or a CIDR network (write e.g. \"10.1.2.3\", \"10.1.2.0/24\" or \"2001:db8::/32\")")]
pub struct InvalidNet(String);

impl AllowedNet {
    /// The network (a host is a /32 or /128).
    pub fn net(&self) -> IpNet {
        self.0
    }

    /// True when `ip` (IPv4-mapped IPv6 read as IPv4) is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

impl From<IpNet> for AllowedNet {
    fn from(net: IpNet) -> Self {
        let net = net.trunc();
        if let IpNet::V6(v6) = net {
            if let (Some(v4), true) = (v6.addr().to_ipv4_mapped(), v6.prefix_len() >= 96) {
                if let Ok(v4net) = Ipv4Net::new(v4, v6.prefix_len() - 96) {
                    return AllowedNet(IpNet::V4(v4net));
                }
            }
        }
        AllowedNet(net)
    }
}

impl From<IpAddr> for AllowedNet {
    fn from(ip: IpAddr) -> Self {
        AllowedNet::from(IpNet::from(ip))
    }
}

impl FromStr for AllowedNet {
    type Err = InvalidNet;

    fn from_str(text: &str) -> Result<Self, InvalidNet> {
        let trimmed = text.trim();
        if let Ok(net) = trimmed.parse::<IpNet>() {
            return Ok(net.into());
        }
        if let Ok(ip) = trimmed.parse::<IpAddr>() {
            return Ok(ip.into());
        }
        Err(InvalidNet(text.to_owned()))
    }
}

impl fmt::Display for AllowedNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for AllowedNet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// True when the list is empty (no restriction) or one entry contains `ip`.
pub fn allows(list: &[AllowedNet], ip: IpAddr) -> bool {
    list.is_empty() || list.iter().any(|net| net.contains(ip))
}

/// The client's address: the peer, or the last `X-Forwarded-For` entry when
/// `trust_forwarded_for` (the port sits behind the agency's reverse proxy,
/// which appends the address it saw; anyone can write the header, so it is
/// trusted only then). A header without a readable address is ignored.
pub fn client_ip(trust_forwarded_for: bool, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    if trust_forwarded_for {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|v| v.trim().parse::<IpAddr>().ok())
            .next_back();
        if let Some(ip) = forwarded {
            return ip;
        }
    }
    peer.ip()
}

/// The address limits count `ip` under: an IPv4 address (also one written
/// as `::ffff:a.b.c.d`) as it is, an IPv6 address as its /64, so that
/// hopping addresses inside one's own network does not escape a limit.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

/// Checks between two prunings of a [`ClientLimiter`]'s table.
pub const PRUNE_EVERY: u64 = 1024;

/// A rate limiter per client ([`limit_key`]) whose table forgets, every
/// [`PRUNE_EVERY`] checks, the clients whose limit has refilled, so that
/// many addresses passing by do not grow it without bound.
pub struct ClientLimiter<C: Clock = DefaultClock> {
    limiter: RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, C, NoOpMiddleware<C::Instant>>,
    clock: C,
    checks: AtomicU64,
}

impl ClientLimiter {
    /// A limiter allowing each client `quota`.
    pub fn new(quota: Quota) -> Self {
        ClientLimiter::with_clock(quota, DefaultClock::default())
    }
}

impl<C: Clock + Clone> ClientLimiter<C> {
    /// As [`ClientLimiter::new`], on `clock` (tests use a fake one).
    pub fn with_clock(quota: Quota, clock: C) -> Self {
        ClientLimiter {
            limiter: RateLimiter::new(quota, DefaultKeyedStateStore::default(), clock.clone()),
            clock,
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one cell for `ip`'s key; `Err` with how long until one is free
    /// when it has none.
    pub fn check(&self, ip: IpAddr) -> Result<(), std::time::Duration> {
        let seen = self.checks.fetch_add(1, Ordering::Relaxed) + 1;
        if seen.is_multiple_of(PRUNE_EVERY) {
            self.prune();
        }
        self.limiter
            .check_key(&limit_key(ip))
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets the clients whose limit has refilled.
    pub fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Clients remembered now.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    /// True when no client is remembered.
    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }
}

/// `n` as a non-zero count (at least 1), for quotas read from settings.
pub fn at_least_one(n: u32) -> std::num::NonZeroU32 {
    std::num::NonZeroU32::new(n.max(1)).expect("at least 1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use governor::clock::FakeRelativeClock;
    use std::time::Duration;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_ipv6_client_counts_with_its_64_and_an_ipv4_one_as_itself() {
        assert_eq!(limit_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            limit_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            ip("2001:db8:1:2::")
        );
        assert_ne!(limit_key(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
        assert_eq!(limit_key(ip("10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(limit_key(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
    }

    #[test]
    fn the_forwarded_address_is_read_only_when_trusted_and_the_last_entry_wins() {
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.append(
            "x-forwarded-for",
            HeaderValue::from_static("198.51.100.1, 203.0.113.9"),
        );
        assert_eq!(client_ip(false, peer, &headers), ip("127.0.0.1"));
        assert_eq!(client_ip(true, peer, &headers), ip("203.0.113.9"));
        headers.append("x-forwarded-for", HeaderValue::from_static("2001:db8::7"));
        assert_eq!(client_ip(true, peer, &headers), ip("2001:db8::7"));
        let garbage: HeaderMap = [(
            axum::http::header::HeaderName::from_static("x-forwarded-for"),
            HeaderValue::from_static("unknown"),
        )]
        .into_iter()
        .collect();
        assert_eq!(client_ip(true, peer, &garbage), ip("127.0.0.1"));
    }

    #[test]
    fn a_64_shares_one_limit() {
        let limiter = ClientLimiter::new(Quota::per_minute(at_least_one(2)));
        assert!(limiter.check(ip("2001:db8::1")).is_ok());
        assert!(limiter.check(ip("2001:db8::2")).is_ok());
        assert!(limiter.check(ip("2001:db8::3")).is_err());
        assert!(limiter.check(ip("2001:db8:0:1::1")).is_ok());
    }

    #[test]
    fn clients_whose_limit_refilled_are_forgotten_as_the_limiter_is_used() {
        let clock = FakeRelativeClock::default();
        let limiter = ClientLimiter::with_clock(Quota::per_minute(at_least_one(20)), clock.clone());
        for n in 0..2000u32 {
            let _ = limiter.check(IpAddr::from(n.to_be_bytes()));
        }
        assert!(limiter.len() > 1000, "{}", limiter.len());
        clock.advance(Duration::from_secs(120));
        for _ in 0..PRUNE_EVERY {
            let _ = limiter.check(ip("192.0.2.1"));
        }
        assert!(
            limiter.len() <= 1,
            "{} clients still remembered",
            limiter.len()
        );
    }
}
