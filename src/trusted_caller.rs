//! A trusted HTTP callback caller: the one check made by every HTTP port
//! whose caller names the citizen (the aggregators' USSD callback,
//! `[ussd.http]`; Kannel's get-url drop-in, `[kannel]`). Such a caller
//! chooses the phone number the answer is for, and the answer may carry the
//! applicant's name, so only the aggregator or the smsbox may call:
//!
//! - the socket's peer address must be in the port's `allow` list
//!   (addresses or CIDR networks; loopback by default);
//! - when the port has a `secret`, every request must carry it, in the
//!   [`SECRET_HEADER`] header or, for callers that can only be given a URL
//!   (Kannel's `get-url`, most aggregators' consoles), as the
//!   [`SECRET_PARAM`] query parameter. Both sides are hashed (SHA-256) and
//!   the digests compared in constant time, so neither the secret's content
//!   nor its length shows in the timing.
//!
//! An address not allowed gets 403 naming the key; a missing or wrong secret
//! gets 401, the same answer for both. Each refusal is logged at WARN with
//! the caller's address.
//!
//! [`problems`] is the start-up check of a port's settings: an empty allow
//! list, a short secret, or a port bound beyond loopback without a secret
//! stop the gateway with the key to fix.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::client_addr::AllowedNet;

/// The header a caller sends the shared secret in.
pub const SECRET_HEADER: &str = "x-motcua-secret";
/// The query parameter a caller that can only be given a URL sends it in.
pub const SECRET_PARAM: &str = "secret";
/// Shortest secret accepted at start.
pub const MIN_SECRET_LEN: usize = 16;

/// The default allow list: this host only.
pub fn loopback() -> Vec<AllowedNet> {
    vec![
        AllowedNet::from(IpAddr::from([127, 0, 0, 1])),
        AllowedNet::from(IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1])),
    ]
}

/// Why a caller was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallerRefusal {
    /// The peer address is not in the allow list.
    #[error("{address} is not in {section}.allow")]
    Address {
        /// The peer's address.
        address: IpAddr,
        /// The config section (`ussd.http`, `kannel`).
        section: &'static str,
    },
    /// The secret is missing or wrong (one answer for both).
    #[error(
        "the shared secret is missing or wrong: send {section}.secret in the X-Motcua-Secret \
         header or as the secret query parameter"
    )]
    Secret {
        /// The config section.
        section: &'static str,
    },
}

impl CallerRefusal {
    fn status(&self) -> StatusCode {
        match self {
            CallerRefusal::Address { .. } => StatusCode::FORBIDDEN,
            CallerRefusal::Secret { .. } => StatusCode::UNAUTHORIZED,
        }
    }
}

/// Who may call one port: its allow list and, when set, its secret.
#[derive(Clone)]
pub struct TrustedCaller {
    section: &'static str,
    allow: Arc<[AllowedNet]>,
    secret: Option<[u8; 32]>,
}

impl std::fmt::Debug for TrustedCaller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedCaller")
            .field("section", &self.section)
            .field("allow", &self.allow)
            .field("secret", &self.secret.map(|_| ".."))
            .finish()
    }
}

fn digest(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

impl TrustedCaller {
    /// The rule of config section `section`: `allow`, and `secret` unless empty.
    pub fn new(section: &'static str, allow: &[AllowedNet], secret: &str) -> Self {
        TrustedCaller {
            section,
            allow: allow.into(),
            secret: (!secret.is_empty()).then(|| digest(secret.as_bytes())),
        }
    }

    /// Checks one request from `peer` with `headers` and the URL's `query`.
    ///
    /// # Errors
    ///
    /// [`CallerRefusal`] saying which rule refused it.
    pub fn check(
        &self,
        peer: IpAddr,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<(), CallerRefusal> {
        if !self.allow.iter().any(|net| net.contains(peer)) {
            return Err(CallerRefusal::Address {
                address: peer.to_canonical(),
                section: self.section,
            });
        }
        let Some(expected) = &self.secret else {
            return Ok(());
        };
        let sent = headers
            .get(SECRET_HEADER)
            .map(|value| value.as_bytes().to_vec())
            .or_else(|| query_secret(query?));
        let matches = sent.is_some_and(|sent| bool::from(digest(&sent).ct_eq(expected)));
        if matches {
            Ok(())
        } else {
            Err(CallerRefusal::Secret {
                section: self.section,
            })
        }
    }

    /// `router` with every request checked first (it must be served with
    /// `into_make_service_with_connect_info::<SocketAddr>`).
    pub fn guard(self, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(
            Arc::new(self),
            admit_caller,
        ))
    }
}

/// The secret query parameter's value, decoded.
fn query_secret(query: &str) -> Option<Vec<u8>> {
    #[derive(serde::Deserialize)]
    struct Params {
        secret: Option<String>,
    }
    let uri: axum::http::Uri = format!("/?{query}").parse().ok()?;
    let axum::extract::Query(params) = axum::extract::Query::<Params>::try_from_uri(&uri).ok()?;
    params.secret.map(String::into_bytes)
}

async fn admit_caller(
    State(caller): State<Arc<TrustedCaller>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    match caller.check(peer.ip(), request.headers(), request.uri().query()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            tracing::warn!(client = %peer.ip(), section = caller.section, %refusal, "HTTP callback refused");
            plain(refusal.status(), refusal.to_string())
        }
    }
}

/// A plain-text answer, as the callers (aggregators, Kannel) read them.
pub fn plain(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// What is wrong with a port's caller settings, as (key, problem): checked
/// at start for an enabled port of config section `section` bound to `bind`.
pub fn problems(
    section: &str,
    bind: SocketAddr,
    allow: &[AllowedNet],
    secret: &str,
) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    if allow.is_empty() {
        problems.push((
            format!("{section}.allow"),
            "is empty, so nobody could call: list the caller's addresses or networks \
             (\"0.0.0.0/0\" and \"::/0\" for any, with a secret)"
                .to_owned(),
        ));
    }
    if !secret.is_empty() && secret.chars().count() < MIN_SECRET_LEN {
        problems.push((
            format!("{section}.secret"),
            format!("is shorter than {MIN_SECRET_LEN} characters; use a long random value (e.g. `openssl rand -hex 24`)"),
        ));
    }
    if secret.is_empty() && !bind.ip().is_loopback() {
        problems.push((
            format!("{section}.secret"),
            format!(
                "is empty while {section}.bind ({bind}) is reachable beyond this host: set a shared \
                 secret of at least {MIN_SECRET_LEN} characters that the caller sends, or bind to 127.0.0.1"
            ),
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const SECRET: &str = "a-long-shared-secret-42";

    fn caller(secret: &str) -> TrustedCaller {
        TrustedCaller::new("kannel", &loopback(), secret)
    }

    #[test]
    fn the_allow_list_is_checked_first_and_names_its_key() {
        let outsider: IpAddr = "203.0.113.9".parse().unwrap();
        let refusal = caller("").check(outsider, &HeaderMap::new(), None);
        assert_eq!(
            refusal,
            Err(CallerRefusal::Address {
                address: outsider,
                section: "kannel"
            })
        );
        assert!(refusal.unwrap_err().to_string().contains("kannel.allow"));
        // An IPv4-mapped loopback is loopback.
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(caller("").check(mapped, &HeaderMap::new(), None), Ok(()));
    }

    #[test]
    fn the_secret_is_taken_from_the_header_or_the_query() {
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let caller = caller(SECRET);
        let refused = Err(CallerRefusal::Secret { section: "kannel" });
        assert_eq!(caller.check(local, &HeaderMap::new(), None), refused);
        let mut headers = HeaderMap::new();
        headers.insert(SECRET_HEADER, HeaderValue::from_static(SECRET));
        assert_eq!(caller.check(local, &headers, None), Ok(()));
        let query = format!("from=%2B84987000111&secret={SECRET}&text=TC");
        assert_eq!(caller.check(local, &HeaderMap::new(), Some(&query)), Ok(()));
        // Wrong, a prefix, longer, empty: all refused alike.
        for wrong in [
            "a-long-shared-secret-43",
            "a-long",
            "a-long-shared-secret-42x",
            "",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(SECRET_HEADER, HeaderValue::from_str(wrong).unwrap());
            assert_eq!(caller.check(local, &headers, None), refused, "{wrong}");
            let query = format!("secret={wrong}");
            assert_eq!(
                caller.check(local, &HeaderMap::new(), Some(&query)),
                refused,
                "{wrong}"
            );
        }
    }

    #[test]
    fn start_checks_name_the_key_to_fix() {
        let local: SocketAddr = "127.0.0.1:8087".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8087".parse().unwrap();
        assert!(problems("kannel", local, &loopback(), "").is_empty());
        assert!(problems("kannel", any, &loopback(), SECRET).is_empty());
        let keys = |p: Vec<(String, String)>| p.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(
            keys(problems("kannel", any, &loopback(), "")),
            ["kannel.secret"]
        );
        assert_eq!(
            keys(problems("ussd.http", local, &loopback(), "short")),
            ["ussd.http.secret"]
        );
        assert_eq!(
            keys(problems("ussd.http", local, &[], "")),
            ["ussd.http.allow"]
        );
    }
}
