//! The block and allow lists and the senders silenced now for a rate
//! limit. Viewers see numbers masked; operators and administrators change
//! the lists, each change audited.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use super::AdminState;
use crate::clock::now_ms;
use crate::domain::Msisdn;

/// A blocked sender.
#[derive(Debug, Serialize, ToSchema)]
pub struct BlockedNumber {
    /// International digits (`84912345678`), masked for viewers.
    pub number: String,
    /// Why (an admin's words, or the scanner rule that tripped).
    pub reason: String,
    /// The block's end (Unix ms); absent: permanent.
    pub until: Option<i64>,
    /// When it was made (Unix ms).
    pub created_at: i64,
}

/// A sender on the allow list.
#[derive(Debug, Serialize, ToSchema)]
pub struct AllowedNumber {
    /// International digits, masked for viewers.
    pub number: String,
    /// When it was added (Unix ms).
    pub created_at: i64,
}

/// A sender silenced now for going over a rate limit.
#[derive(Debug, Serialize, ToSchema)]
pub struct SilencedNumber {
    /// International digits, masked for viewers.
    pub number: String,
    /// When the silence ends (Unix ms).
    pub until: i64,
}

/// The lists.
#[derive(Debug, Serialize, ToSchema)]
pub struct Lists {
    /// Never answered (until the block ends).
    pub blocked: Vec<BlockedNumber>,
    /// Always answered.
    pub allowed: Vec<AllowedNumber>,
    /// Over a rate limit now.
    pub rate_limited: Vec<SilencedNumber>,
}

/// A block to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBlock {
    /// The number in any usual spelling (`0912345678`, `+84912345678`).
    pub number: String,
    /// Why, for the other admins.
    pub reason: String,
    /// For how long; absent: permanent.
    #[schema(minimum = 1, maximum = 5256000)]
    pub minutes: Option<u32>,
}

/// A number to allow.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAllowed {
    /// The number in any usual spelling.
    pub number: String,
}

/// A phone number from the request, or 400 `invalid_number`.
pub(super) fn number(text: &str) -> Result<Msisdn, ApiError> {
    Msisdn::parse(text).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_number",
            format!("{text:?} is not a phone number: {error}"),
        )
    })
}

/// Writes a list change to the audit log (the number redacted).
async fn audit(
    state: &AdminState,
    caller: &Caller,
    action: &str,
    sender: &Msisdn,
    detail: &str,
) -> Result<(), ApiError> {
    state
        .accounts()
        .audit(now_ms(), caller.name(), action, &sender.redacted(), detail)
        .await?;
    Ok(())
}

/// Shown in full, or masked for a viewer.
fn shown(caller: &Caller, number: &Msisdn) -> String {
    if caller.role().sees_numbers() {
        number.as_international().to_owned()
    } else {
        number.redacted()
    }
}

/// The block and allow lists, and who is rate limited now.
#[utoipa::path(get, path = "/api/v1/lists", tag = "abuse",
    security(("cookie" = []), ("bearer" = [])),
    responses((status = 200, body = Lists), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn lists(
    State(state): State<AdminState>,
    caller: Caller,
) -> Result<Json<Lists>, ApiError> {
    let guard = state.guard();
    let blocked = guard
        .blocks()
        .await?
        .into_iter()
        .map(|block| BlockedNumber {
            number: shown(&caller, &block.sender),
            reason: block.reason,
            until: block.until.map(|t| t.timestamp_millis()),
            created_at: block.created_at.timestamp_millis(),
        })
        .collect();
    let allowed = guard
        .allowed()
        .await?
        .into_iter()
        .map(|(sender, at)| AllowedNumber {
            number: shown(&caller, &sender),
            created_at: at.timestamp_millis(),
        })
        .collect();
    let rate_limited = guard
        .silenced()
        .await?
        .into_iter()
        .map(|(sender, until)| SilencedNumber {
            number: shown(&caller, &sender),
            until: until.timestamp_millis(),
        })
        .collect();
    Ok(Json(Lists {
        blocked,
        allowed,
        rate_limited,
    }))
}

/// Block a number (no answer until the block ends).
#[utoipa::path(post, path = "/api/v1/lists/blocked", tag = "abuse",
    security(("cookie" = []), ("bearer" = [])),
    request_body = NewBlock,
    responses((status = 201, body = BlockedNumber), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn block(
    State(state): State<AdminState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewBlock>,
) -> Result<(StatusCode, Json<BlockedNumber>), ApiError> {
    caller.must_edit("change the lists")?;
    let sender = number(&body.number)?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > 200 {
        return Err(ApiError::bad_request(
            "give a reason of 1 to 200 characters",
        ));
    }
    let minutes = match body.minutes {
        Some(0) => return Err(ApiError::bad_request("minutes must be at least 1")),
        Some(m) if m > 5_256_000 => {
            return Err(ApiError::bad_request("minutes must be at most ten years"))
        }
        other => other,
    };
    let until = minutes.map(|m| Utc::now() + Duration::minutes(i64::from(m)));
    state.guard().block(&sender, until, reason).await?;
    let detail = match minutes {
        Some(m) => format!("{m} min: {reason}"),
        None => format!("permanent: {reason}"),
    };
    audit(&state, &caller, "list.block", &sender, &detail).await?;
    Ok((
        StatusCode::CREATED,
        Json(BlockedNumber {
            number: sender.as_international().to_owned(),
            reason: reason.to_owned(),
            until: until.map(|t| t.timestamp_millis()),
            created_at: now_ms(),
        }),
    ))
}

/// Lift a block (and any rate-limit silence) on a number.
#[utoipa::path(delete, path = "/api/v1/lists/blocked/{number}", tag = "abuse",
    security(("cookie" = []), ("bearer" = [])),
    params(("number" = String, Path, description = "The number, any usual spelling")),
    responses((status = 204, description = "Unblocked"), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn unblock(
    State(state): State<AdminState>,
    caller: Caller,
    ApiPath(text): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.must_edit("change the lists")?;
    let sender = number(&text)?;
    state.guard().unblock(&sender).await?;
    audit(&state, &caller, "list.unblock", &sender, "").await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Put a number on the allow list (always answered).
#[utoipa::path(post, path = "/api/v1/lists/allowed", tag = "abuse",
    security(("cookie" = []), ("bearer" = [])),
    request_body = NewAllowed,
    responses((status = 201, body = AllowedNumber), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn allow(
    State(state): State<AdminState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewAllowed>,
) -> Result<(StatusCode, Json<AllowedNumber>), ApiError> {
    caller.must_edit("change the lists")?;
    let sender = number(&body.number)?;
    state.guard().allow(&sender).await?;
    audit(&state, &caller, "list.allow", &sender, "").await?;
    Ok((
        StatusCode::CREATED,
        Json(AllowedNumber {
            number: sender.as_international().to_owned(),
            created_at: now_ms(),
        }),
    ))
}

/// Take a number off the allow list.
#[utoipa::path(delete, path = "/api/v1/lists/allowed/{number}", tag = "abuse",
    security(("cookie" = []), ("bearer" = [])),
    params(("number" = String, Path, description = "The number, any usual spelling")),
    responses((status = 204, description = "Removed"), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn disallow(
    State(state): State<AdminState>,
    caller: Caller,
    ApiPath(text): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.must_edit("change the lists")?;
    let sender = number(&text)?;
    state.guard().disallow(&sender).await?;
    audit(&state, &caller, "list.disallow", &sender, "").await?;
    Ok(StatusCode::NO_CONTENT)
}
