//! The one place every HTTP port is served: the operations port (and the
//! push webhook on it), the public page, the admin console, the USSD
//! callback, and the feed of `relay` and `core-sim`. Each port gets the same
//! defences against slow and greedy clients, sized by its [`HttpLimits`]
//! (`[<port>.limits]` in config.toml):
//!
//! - **connections**: at most `max_connections` open on the port, and at
//!   most `max_connections_per_ip` from one client address (an IPv6 client
//!   counts with its /64, see [`crate::client_addr::limit_key`]). One past
//!   either cap is answered `503` and closed at once, logged at WARN (at
//!   most once every 10 s per port, with how many were refused meanwhile);
//! - **headers**: a request's headers must arrive whole within
//!   `header_read_timeout_secs` of the connection (or of the previous
//!   response on a kept-alive connection) being ready for them, or the
//!   connection is closed (hyper's `header_read_timeout`, so a client that
//!   trickles its headers, or holds a connection without a request, cannot
//!   keep a slot);
//! - **requests**: a request, its body read included, is answered within
//!   `request_timeout_secs` or gets `408` (tower-http's `TimeoutLayer`);
//! - **bodies**: a body over `max_body_bytes` gets `413` (tower-http's
//!   `RequestBodyLimitLayer`, in place of axum's fixed 2 MB default).
//!
//! Handlers read the peer's socket address as
//! `ConnectInfo<SocketAddr>`, as with axum's own server. On `shutdown` the
//! port stops accepting, connections finish the request in progress (up to
//! `request_timeout_secs`) and close.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, DefaultBodyLimit};
use axum::http::StatusCode;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower_http::add_extension::AddExtension;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::client_addr::limit_key;

/// How much of a port one client, and all clients together, may hold
/// (`[http.limits]`, `[public.limits]`, `[admin.limits]`,
/// `[ussd.http.limits]`; flags of `relay` and `core-sim`, whose defaults,
/// [`HttpLimits::feed`], the feed defines beside the long-poll they allow for).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpLimits {
    /// Connections open on the port at once, from everyone.
    pub max_connections: usize,
    /// Connections open at once from one client address (an IPv6 /64).
    pub max_connections_per_ip: usize,
    /// Seconds a request's headers may take to arrive whole.
    pub header_read_timeout_secs: u64,
    /// Seconds a request may take to be answered, its body read included.
    pub request_timeout_secs: u64,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 256,
            max_connections_per_ip: 32,
            header_read_timeout_secs: 10,
            request_timeout_secs: 30,
            max_body_bytes: 2 * 1024 * 1024,
        }
    }
}

impl HttpLimits {
    /// The first key (under the port's `limits`) whose value cannot be used,
    /// and why.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let at_least_one = [
            ("max_connections", self.max_connections as u64),
            ("max_connections_per_ip", self.max_connections_per_ip as u64),
            ("header_read_timeout_secs", self.header_read_timeout_secs),
            ("request_timeout_secs", self.request_timeout_secs),
            ("max_body_bytes", self.max_body_bytes as u64),
        ];
        if let Some((key, _)) = at_least_one.iter().find(|(_, value)| *value == 0) {
            return Some((key, "must be at least 1".to_owned()));
        }
        if self.max_connections_per_ip > self.max_connections {
            return Some((
                "max_connections_per_ip",
                format!(
                    "{} is above max_connections ({})",
                    self.max_connections_per_ip, self.max_connections
                ),
            ));
        }
        None
    }

    fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs.max(1))
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs.max(1))
    }
}

/// What a client past a cap reads before the connection closes.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\
retry-after: 5\r\ncontent-length: 0\r\n\r\n";

/// At most one WARN line about refused connections per port this often.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` within `limits` until `shutdown`, then
/// lets the connections finish their request in progress (at most
/// `request_timeout_secs`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &HttpLimits,
    shutdown: CancellationToken,
) {
    let port = listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    let app = router
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes.max(1)))
        .layer(DefaultBodyLimit::disable())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout(),
        ));
    let caps = Arc::new(Caps::new(limits));
    let graceful = GracefulShutdown::new();
    let mut refusals = RefusalLog::default();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before
                    // it was taken: wait a moment rather than spin.
                    tracing::warn!(%port, %error, "HTTP port cannot accept a connection now");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let slot = match caps.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(cap) => {
                refuse(stream);
                refusals.note(&port, peer, cap, limits);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(AddExtension::new(app.clone(), ConnectInfo(peer)));
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout())
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "HTTP connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.request_timeout(), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(%port, "HTTP connections still open after the drain; closed");
    }
}

/// Answers 503 without waiting (the socket's buffer takes it or it is
/// skipped) and closes.
fn refuse(stream: TcpStream) {
    let _ = stream.try_write(REFUSAL);
}

/// Which cap a connection met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cap {
    Port,
    Address,
}

/// Open connections, in all and per client address.
struct Caps {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// A connection's place under the caps, given back when dropped.
struct Slot {
    caps: Arc<Caps>,
    key: IpAddr,
}

impl Caps {
    fn new(limits: &HttpLimits) -> Self {
        Caps {
            max_total: limits.max_connections.max(1),
            max_per_ip: limits.max_connections_per_ip.max(1),
            open: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Cap> {
        let key = limit_key(ip);
        let mut open = self.lock();
        if open.total >= self.max_total {
            return Err(Cap::Port);
        }
        let from_ip = open.by_ip.entry(key).or_insert(0);
        if *from_ip >= self.max_per_ip {
            return Err(Cap::Address);
        }
        *from_ip += 1;
        open.total += 1;
        Ok(Slot {
            caps: self.clone(),
            key,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.caps.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.by_ip.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.by_ip.remove(&self.key);
            }
        }
    }
}

/// Refused connections, logged at most once per [`REFUSAL_LOG_EVERY`].
#[derive(Default)]
struct RefusalLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl RefusalLog {
    fn note(&mut self, port: &str, peer: SocketAddr, cap: Cap, limits: &HttpLimits) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < REFUSAL_LOG_EVERY)
        {
            self.suppressed += 1;
            tracing::debug!(%port, %peer, ?cap, "HTTP connection refused");
            return;
        }
        let client = limit_key(peer.ip());
        match cap {
            Cap::Port => tracing::warn!(
                %port, %client, max_connections = limits.max_connections,
                suppressed = self.suppressed,
                "HTTP connection refused: the port has max_connections open"
            ),
            Cap::Address => tracing::warn!(
                %port, %client, max_connections_per_ip = limits.max_connections_per_ip,
                suppressed = self.suppressed,
                "HTTP connection refused: this address has max_connections_per_ip open"
            ),
        }
        self.last = Some(now);
        self.suppressed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caps_count_per_address_and_per_port_and_free_on_drop() {
        let caps = Arc::new(Caps::new(&HttpLimits {
            max_connections: 3,
            max_connections_per_ip: 2,
            ..HttpLimits::default()
        }));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let b_neighbour: IpAddr = "2001:db8::ffff".parse().unwrap();
        let first = caps.admit(a).unwrap();
        let _second = caps.admit(a).unwrap();
        assert_eq!(caps.admit(a).err(), Some(Cap::Address));
        let _third = caps.admit(b).unwrap();
        assert_eq!(caps.admit(b_neighbour).err(), Some(Cap::Port));
        drop(first);
        // The freed slot is taken again, by the same /64 as `b`.
        let _fourth = caps.admit(b_neighbour).unwrap();
        assert_eq!(caps.admit(b_neighbour).err(), Some(Cap::Port));
        assert_eq!(caps.lock().total, 3);
        assert_eq!(caps.lock().by_ip.len(), 2);
    }

    #[test]
    fn limits_of_zero_or_a_per_address_cap_above_the_port_cap_are_refused() {
        assert_eq!(HttpLimits::default().problem(), None);
        let zero = HttpLimits {
            header_read_timeout_secs: 0,
            ..HttpLimits::default()
        };
        assert_eq!(zero.problem().unwrap().0, "header_read_timeout_secs");
        let above = HttpLimits {
            max_connections: 10,
            max_connections_per_ip: 11,
            ..HttpLimits::default()
        };
        assert_eq!(above.problem().unwrap().0, "max_connections_per_ip");
    }
}
