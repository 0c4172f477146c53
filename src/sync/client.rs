//! The HTTP client side of the core feed protocol (docs/core-feed.md): one
//! method per endpoint, answers decoded into the wire types of
//! [`crate::feed`], every failure sorted into a [`FeedClientError`] that
//! says whether it is the core's doing, the network's, or a protocol
//! violation, and what the worker should do about it.

use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::feed::{ChangesPage, Digest, DigestBucket, ErrorKind, FeedError, SnapshotPage};

/// Why a feed request failed.
#[derive(Debug, thiserror::Error)]
pub enum FeedClientError {
    /// The configured base URL cannot be used.
    #[error("the core feed URL {url:?} is not a valid http(s) URL: {reason}")]
    BadUrl {
        /// The URL as configured.
        url: String,
        /// Why.
        reason: String,
    },
    /// The core could not be reached or the exchange broke (connection
    /// refused, reset, timed out).
    #[error("the core feed at {url} is unreachable: {source}")]
    Unreachable {
        /// The request's URL, without credentials.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// 410: the cursor is older than the core's log, or the cursor or page
    /// token belongs to another epoch. The worker re-snapshots.
    #[error("the core refused our position ({}): {}", if *epoch_changed { "epoch changed" } else { "cursor expired" }, body.message)]
    Gone {
        /// True for `epoch_changed`, false for `cursor_expired`.
        epoch_changed: bool,
        /// The core's explanation.
        body: FeedError,
    },
    /// 401: the bearer token is missing or wrong (`sync.feed.token`).
    #[error("the core refused our token (401): {0}; check sync.feed.token")]
    Unauthorized(String),
    /// Any other error answer.
    #[error("the core answered {status}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The error body's message, or the start of the body.
        message: String,
    },
    /// A 200 answer that is not what the protocol says.
    #[error("the core's answer to {url} breaks the feed protocol: {reason}")]
    Protocol {
        /// The request's URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
}

impl FeedClientError {
    /// True when the same request may succeed later without any change on
    /// our side (network trouble, 5xx, 429).
    pub fn is_transient(&self) -> bool {
        match self {
            FeedClientError::Unreachable { .. } => true,
            FeedClientError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// A client of one core's feed.
#[derive(Clone)]
pub struct FeedClient {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl FeedClient {
    /// A client of the feed at `base` (e.g. `https://core.example/` — the
    /// `/v1/...` paths are appended), sending `token` as a bearer token.
    /// `timeout` bounds a request beyond any long-poll wait it asks for.
    pub fn new(
        base: &str,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<Self, FeedClientError> {
        let bad = |reason: String| FeedClientError::BadUrl {
            url: base.to_owned(),
            reason,
        };
        let mut base_url = Url::parse(base).map_err(|e| bad(e.to_string()))?;
        if !matches!(base_url.scheme(), "http" | "https") {
            return Err(bad(format!(
                "scheme {:?} (http or https)",
                base_url.scheme()
            )));
        }
        if !base_url.path().ends_with('/') {
            let path = format!("{}/", base_url.path());
            base_url.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("motcua-sms/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(FeedClient {
            http,
            base: base_url,
            token: token.filter(|t| !t.is_empty()),
        })
    }

    /// The feed's base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `GET /v1/changes?after=&limit=&wait=`.
    pub async fn changes(
        &self,
        after: &str,
        limit: usize,
        wait: Duration,
    ) -> Result<ChangesPage, FeedClientError> {
        let query = [
            ("after", after.to_owned()),
            ("limit", limit.to_string()),
            ("wait", wait.as_secs().to_string()),
        ];
        self.get("v1/changes", &query, wait).await
    }

    /// `GET /v1/snapshot?page_token=&limit=`; the first page without a token.
    pub async fn snapshot(
        &self,
        page_token: Option<&str>,
        limit: usize,
    ) -> Result<SnapshotPage, FeedClientError> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(token) = page_token {
            query.push(("page_token", token.to_owned()));
        }
        let page: SnapshotPage = self.get("v1/snapshot", &query, Duration::ZERO).await?;
        Ok(page)
    }

    /// `GET /v1/digest?buckets=`.
    pub async fn digest(&self, buckets: u32) -> Result<Digest, FeedClientError> {
        let digest: Digest = self
            .get(
                "v1/digest",
                &[("buckets", buckets.to_string())],
                Duration::ZERO,
            )
            .await?;
        if digest.digests.len() != buckets as usize {
            return Err(FeedClientError::Protocol {
                url: self
                    .base
                    .join("v1/digest")
                    .map(|u| u.to_string())
                    .unwrap_or_default(),
                reason: format!("{} digests for {buckets} buckets", digest.digests.len()),
            });
        }
        Ok(digest)
    }

    /// `GET /v1/digest/{bucket}?buckets=`.
    pub async fn digest_bucket(
        &self,
        bucket: u32,
        buckets: u32,
    ) -> Result<DigestBucket, FeedClientError> {
        self.get(
            &format!("v1/digest/{bucket}"),
            &[("buckets", buckets.to_string())],
            Duration::ZERO,
        )
        .await
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        wait: Duration,
    ) -> Result<T, FeedClientError> {
        let mut url = self.base.join(path).map_err(|e| FeedClientError::BadUrl {
            url: self.base.to_string(),
            reason: e.to_string(),
        })?;
        url.query_pairs_mut()
            .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        let shown = without_credentials(&url);
        let mut request = self.http.get(url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if !wait.is_zero() {
            // The client timeout bounds the exchange; a long-poll may take
            // its whole wait before the first byte.
            request = request.timeout(wait + Duration::from_secs(15));
        }
        let unreachable = |source| FeedClientError::Unreachable {
            url: shown.clone(),
            source,
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unreachable)?;
        if status == StatusCode::OK {
            return serde_json::from_slice(&body).map_err(|e| FeedClientError::Protocol {
                url: shown.clone(),
                // serde quotes the value it could not take: mask numbers in it.
                reason: format!(
                    "body is not the expected JSON: {}",
                    crate::privacy::mask_numbers_in(&e.to_string())
                ),
            });
        }
        let error: Option<FeedError> = serde_json::from_slice(&body).ok();
        let message = error
            .as_ref()
            .map(|e| e.message.clone())
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
        Err(match (status, error) {
            (StatusCode::GONE, Some(body)) => FeedClientError::Gone {
                epoch_changed: body.error == ErrorKind::EpochChanged,
                body,
            },
            (StatusCode::GONE, None) => FeedClientError::Gone {
                epoch_changed: false,
                body: FeedError::new(ErrorKind::CursorExpired, message),
            },
            (StatusCode::UNAUTHORIZED, _) => FeedClientError::Unauthorized(message),
            (status, _) => FeedClientError::Status {
                status: status.as_u16(),
                message,
            },
        })
    }
}

/// `url` as shown in logs: no user or password.
fn without_credentials(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked_and_get_a_trailing_slash() {
        let client =
            FeedClient::new("http://core.local/feed", None, Duration::from_secs(5)).unwrap();
        assert_eq!(client.base().as_str(), "http://core.local/feed/");
        assert_eq!(
            client.base().join("v1/changes").unwrap().as_str(),
            "http://core.local/feed/v1/changes"
        );
        let error = FeedClient::new("ftp://core.local", None, Duration::from_secs(5))
            .err()
            .unwrap();
        assert!(error.to_string().contains("ftp"), "{error}");
        assert!(FeedClient::new("not a url", None, Duration::from_secs(5)).is_err());
    }

    #[test]
    fn logged_urls_carry_no_credentials() {
        let url = Url::parse("https://relay:s3cret@core.local/v1/changes?after=1").unwrap();
        let shown = without_credentials(&url);
        assert!(
            !shown.contains("s3cret") && !shown.contains("relay@"),
            "{shown}"
        );
    }

    #[test]
    fn transient_errors_are_network_and_server_trouble_only() {
        let status = |status| FeedClientError::Status {
            status,
            message: String::new(),
        };
        assert!(status(503).is_transient());
        assert!(status(429).is_transient());
        assert!(!status(400).is_transient());
        assert!(!FeedClientError::Unauthorized(String::new()).is_transient());
    }
}
