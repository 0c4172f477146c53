//! The push webhook (`POST /v1/push`), for cores that cannot be polled:
//! the core POSTs change batches, signed with a shared HMAC key; the gateway
//! applies them with the version guard, so a batch sent twice (a retry after
//! a timeout) changes nothing the second time.
//!
//! Request (docs/core-feed.md, "Push"):
//! - `X-Motcua-Timestamp`: Unix seconds when the core signed;
//! - `X-Motcua-Signature`: `sha256=` + lowercase hex HMAC-SHA256 over
//!   `timestamp + "." + body` with `sync.push.secret`;
//! - body `{"batch_id": "…", "epoch": "…", "records": [feed records]}`.
//!
//! Answers: `200` with the batch's outcome (including records refused by
//! validation, with the reason); `400` malformed; `401` bad signature or a
//! timestamp outside `max_skew_secs`; `413` over 1000 records; `503` when
//! the read model cannot take it (the core retries).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{changes_of, report_left_out, report_rejected, SyncMetrics, Validated};
use crate::clock::now_ms;
use crate::feed::FeedRecord;
use crate::store::{ApplyMode, DossierWriter, Freshness, SyncCheckpoint, SyncStage};

/// The sync source's name in the store.
pub const SOURCE: &str = "push";
/// The timestamp header.
pub const TIMESTAMP_HEADER: &str = "x-motcua-timestamp";
/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-motcua-signature";
/// Most records in one pushed batch.
pub const MAX_RECORDS: usize = 1000;
/// Default accepted clock difference.
pub const DEFAULT_MAX_SKEW_SECS: u64 = 300;

/// A pushed batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushBatch {
    /// The core's id for this batch (at most 128 characters), echoed back.
    pub batch_id: String,
    /// The core's epoch.
    pub epoch: String,
    /// Full-state records and tombstones, in commit order.
    pub records: Vec<FeedRecord>,
}

/// A record refused by validation, or one of its fields left out: its
/// `MaHoSo` and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    /// `MaHoSo` as sent.
    #[serde(rename = "MaHoSo")]
    pub code: String,
    /// Why.
    pub reason: String,
}

/// The answer to a pushed batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushOutcome {
    /// The batch's id.
    pub batch_id: String,
    /// Dossiers written.
    pub written: u64,
    /// Dossiers deleted.
    pub deleted: u64,
    /// Records the version guard refused (already applied, or older).
    pub unchanged: u64,
    /// Records refused by validation.
    pub rejected: Vec<Refused>,
    /// Optional fields the applied dossiers were kept without (a
    /// `SoDienThoai` that is not a number, a date that does not parse, …),
    /// one entry per field; absent when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<Refused>,
}

/// An error answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushError {
    /// Machine-readable kind.
    pub error: String,
    /// For people.
    pub message: String,
}

struct Rejection(StatusCode, &'static str, String);

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(PushError {
                error: self.1.to_owned(),
                message: self.2,
            }),
        )
            .into_response()
    }
}

/// What the webhook needs.
pub struct PushEndpoint<S> {
    store: S,
    secret: Vec<u8>,
    max_skew_secs: u64,
    freshness: Arc<Freshness>,
    metrics: SyncMetrics,
}

impl<S: DossierWriter + Clone> PushEndpoint<S> {
    /// The webhook writing into `store`, checking signatures with `secret`.
    pub fn new(
        store: S,
        settings: &super::PushSettings,
        freshness: Arc<Freshness>,
        metrics: SyncMetrics,
    ) -> Self {
        PushEndpoint {
            store,
            secret: settings.secret.as_bytes().to_vec(),
            max_skew_secs: if settings.max_skew_secs == 0 {
                DEFAULT_MAX_SKEW_SECS
            } else {
                settings.max_skew_secs
            },
            freshness,
            metrics,
        }
    }

    /// `POST /v1/push`.
    pub fn router(self) -> Router {
        Router::new()
            .route("/v1/push", post(receive::<S>))
            .with_state(Arc::new(self))
    }
}

/// The signature header's value for `body` signed at `timestamp` with `secret`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(71);
    hex.push_str("sha256=");
    for b in bytes {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

fn verify(
    secret: &[u8],
    max_skew_secs: u64,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Rejection> {
    let unauthorized =
        |message: &str| Rejection(StatusCode::UNAUTHORIZED, "unauthorized", message.to_owned());
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let timestamp: i64 = header(TIMESTAMP_HEADER)
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| unauthorized("missing or malformed X-Motcua-Timestamp (Unix seconds)"))?;
    let skew = (now_ms() / 1000).abs_diff(timestamp);
    if skew > max_skew_secs {
        return Err(unauthorized(&format!(
            "X-Motcua-Timestamp is {skew} s away from our clock (at most {max_skew_secs} s)"
        )));
    }
    let signature = header(SIGNATURE_HEADER)
        .and_then(|s| s.trim().strip_prefix("sha256="))
        .and_then(decode_hex)
        .ok_or_else(|| unauthorized("missing or malformed X-Motcua-Signature (sha256=<hex>)"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&signature)
        .map_err(|_| unauthorized("signature does not match the body (check sync.push.secret)"))
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

async fn receive<S: DossierWriter + Clone>(
    State(endpoint): State<Arc<PushEndpoint<S>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<PushOutcome>, Rejection> {
    verify(&endpoint.secret, endpoint.max_skew_secs, &headers, &body)?;
    let batch: PushBatch = serde_json::from_slice(&body).map_err(|e| {
        Rejection(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("body is not a push batch: {e}"),
        )
    })?;
    if batch.batch_id.is_empty() || batch.batch_id.chars().count() > 128 {
        return Err(Rejection(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "batch_id must be 1 to 128 characters".to_owned(),
        ));
    }
    if batch.records.len() > MAX_RECORDS {
        return Err(Rejection(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "{} records in one batch; at most {MAX_RECORDS}",
                batch.records.len()
            ),
        ));
    }
    let Validated {
        changes,
        rejected,
        left_out,
    } = changes_of(&batch.records);
    report_rejected(SOURCE, &rejected, &endpoint.metrics);
    report_left_out(SOURCE, &left_out, &endpoint.metrics);
    let checkpoint = SyncCheckpoint {
        source: SOURCE.to_owned(),
        epoch: batch.epoch.clone(),
        stage: SyncStage::Streaming {
            cursor: batch.batch_id.clone(),
        },
        generation: 0,
        pending: None,
    };
    let report = endpoint
        .store
        .apply(&changes, ApplyMode::Guarded, Some(&checkpoint))
        .await
        .map_err(|error| {
            tracing::error!(%error, batch_id = %batch.batch_id, "pushed batch not applied; the core will retry");
            Rejection(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the read model cannot take changes now; retry".to_owned(),
            )
        })?;
    endpoint.metrics.count(&report);
    endpoint.freshness.mark_ok(now_ms());
    tracing::debug!(
        batch_id = %batch.batch_id,
        written = report.written,
        deleted = report.deleted,
        unchanged = report.unchanged,
        "pushed batch applied"
    );
    Ok(Json(PushOutcome {
        batch_id: batch.batch_id,
        written: report.written,
        deleted: report.deleted,
        unchanged: report.unchanged,
        rejected: rejected
            .into_iter()
            .map(|r| Refused {
                code: r.code,
                reason: r.reason,
            })
            .collect(),
        left_out: left_out
            .into_iter()
            .map(|field| Refused {
                code: field.code,
                reason: field.warning.to_string(),
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(timestamp: i64, signature: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            TIMESTAMP_HEADER,
            HeaderValue::from_str(&timestamp.to_string()).unwrap(),
        );
        h.insert(SIGNATURE_HEADER, HeaderValue::from_str(signature).unwrap());
        h
    }

    #[test]
    fn a_signature_over_timestamp_and_body_verifies_and_nothing_else_does() {
        let secret = b"0123456789abcdef";
        let now = now_ms() / 1000;
        let body = br#"{"batch_id":"1"}"#;
        let good = sign(secret, now, body);
        assert!(good.starts_with("sha256=") && good.len() == 71);
        assert!(verify(secret, 300, &headers(now, &good), body).is_ok());
        // Another body, another key, an old timestamp, a missing header.
        assert!(verify(secret, 300, &headers(now, &good), b"{}").is_err());
        assert!(verify(b"another-secret-key", 300, &headers(now, &good), body).is_err());
        let old = now - 3600;
        assert!(verify(secret, 300, &headers(old, &sign(secret, old, body)), body).is_err());
        assert!(verify(secret, 300, &HeaderMap::new(), body).is_err());
        assert!(verify(secret, 300, &headers(now, "sha256=zz"), body).is_err());
    }

    #[test]
    fn hex_decoding_refuses_odd_and_non_hex_input() {
        assert_eq!(decode_hex("00ff"), Some(vec![0, 255]));
        assert_eq!(decode_hex("0"), None);
        assert_eq!(decode_hex("zz"), None);
    }
}
