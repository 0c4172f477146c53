//! The message log and the traffic statistics over HTTP
//! ([`crate::admin::traffic`] does the work); viewers get numbers masked and
//! applicants' names as initials ([`crate::privacy`]).

use std::collections::{HashMap, HashSet};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Caller;
use super::error::{ApiError, ApiQuery, ErrorBody};
use super::AdminState;
use crate::admin::traffic::{
    Bucket, MessagePage, MessageQuery, Stats, StatsQuery, TrafficError, DEFAULT_LIMIT,
};
use crate::domain::DossierCode;
use crate::store::{DossierLookup, ReadModel};

impl From<TrafficError> for ApiError {
    fn from(error: TrafficError) -> Self {
        match error {
            TrafficError::InvalidQuery(message) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", message)
            }
            other => ApiError::internal(&other),
        }
    }
}

/// Filters of the message log.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogFilter {
    /// A dossier code in any spelling, or part of one.
    pub code: Option<String>,
    /// The sender's number, any usual spelling (operators and administrators).
    pub sender: Option<String>,
    /// A channel (`smsc:viettel`), or a prefix ending in `:` (`smsc:`).
    pub channel: Option<String>,
    /// `found`, `not_found`, `help`, `invalid_date`, `rate_limited`, `silenced`, …
    pub outcome: Option<String>,
    /// From (Unix ms).
    pub since: Option<i64>,
    /// Until (Unix ms).
    pub until: Option<i64>,
    /// Messages older than this id (the previous page's `next_before`).
    pub before: Option<i64>,
    /// Messages per page, 1–500 (default 50).
    pub limit: Option<u32>,
}

/// The statistics' window.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatsWindow {
    /// From (Unix ms); default 24 hours (hour buckets) or 30 days (day buckets) before `until`.
    pub since: Option<i64>,
    /// Until (Unix ms); default now.
    pub until: Option<i64>,
    /// `hour` (default) or `day`, in Vietnam time.
    pub bucket: Option<Bucket>,
}

/// The message log, newest first.
#[utoipa::path(get, path = "/api/v1/messages", tag = "traffic",
    security(("cookie" = []), ("bearer" = [])),
    params(LogFilter),
    responses((status = 200, body = MessagePage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn messages(
    State(state): State<AdminState>,
    caller: Caller,
    ApiQuery(filter): ApiQuery<LogFilter>,
) -> Result<Json<MessagePage>, ApiError> {
    let sees_numbers = caller.role().sees_numbers();
    if filter.sender.is_some() && !sees_numbers {
        return Err(ApiError::forbidden("search by phone number"));
    }
    let query = MessageQuery {
        code: filter.code,
        sender: filter.sender,
        channel: filter.channel,
        outcome: filter.outcome,
        since_ms: filter.since,
        until_ms: filter.until,
        before_id: filter.before,
        limit: filter.limit.unwrap_or(DEFAULT_LIMIT),
    };
    let mut page = state.traffic().search(&query).await?;
    if !sees_numbers {
        let owners = owner_names(state.store(), &page).await?;
        page.messages = page
            .messages
            .into_iter()
            .map(|message| {
                let owner = message
                    .code
                    .as_ref()
                    .and_then(|code| owners.get(code))
                    .map(String::as_str);
                message.masked(owner)
            })
            .collect();
    }
    Ok(Json(page))
}

/// The applicants' names of the dossiers the page's messages looked up, by
/// code, from the read model (for a viewer's masking).
async fn owner_names(
    store: &ReadModel,
    page: &MessagePage,
) -> Result<HashMap<String, String>, ApiError> {
    let mut owners = HashMap::new();
    let mut looked_up = HashSet::new();
    for code in page.messages.iter().filter_map(|m| m.code.as_ref()) {
        if !looked_up.insert(code) {
            continue;
        }
        let Ok(parsed) = DossierCode::parse(code) else {
            continue;
        };
        let dossier = store
            .find(&parsed)
            .await
            .map_err(|error| ApiError::internal(&error))?;
        if let Some(name) = dossier.and_then(|d| d.owner_name) {
            owners.insert(code.clone(), name);
        }
    }
    Ok(owners)
}

/// Messages per hour or day, channel and outcome; found ratio; reply
/// latency; top agencies and procedures.
#[utoipa::path(get, path = "/api/v1/stats", tag = "traffic",
    security(("cookie" = []), ("bearer" = [])),
    params(StatsWindow),
    responses((status = 200, body = Stats), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn stats(
    State(state): State<AdminState>,
    _caller: Caller,
    ApiQuery(window): ApiQuery<StatsWindow>,
) -> Result<Json<Stats>, ApiError> {
    Ok(Json(state.traffic().stats(&window.query()).await?))
}

/// The statistics' series as CSV for a spreadsheet, one row per bucket,
/// channel and outcome: `bucket_start` (Vietnam time, ISO 8601),
/// `channel`, `outcome`, `messages`.
#[utoipa::path(get, path = "/api/v1/stats.csv", tag = "traffic",
    security(("cookie" = []), ("bearer" = [])),
    params(StatsWindow),
    responses((status = 200, body = String, content_type = "text/csv",
            description = "bucket_start,channel,outcome,messages; sent as an attachment"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn stats_csv(
    State(state): State<AdminState>,
    _caller: Caller,
    ApiQuery(window): ApiQuery<StatsWindow>,
) -> Result<Response, ApiError> {
    let stats = state.traffic().stats(&window.query()).await?;
    let bucket = match stats.bucket {
        Bucket::Hour => "hour",
        Bucket::Day => "day",
    };
    let file = format!(
        "attachment; filename=\"motcua-stats-{bucket}-{}-{}.csv\"",
        stats.since, stats.until
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, file),
        ],
        stats.series_csv(),
    )
        .into_response())
}

impl StatsWindow {
    fn query(&self) -> StatsQuery {
        StatsQuery {
            since_ms: self.since,
            until_ms: self.until,
            bucket: self.bucket.unwrap_or_default(),
        }
    }
}
