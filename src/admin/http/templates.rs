//! Reply templates over HTTP: list, read with versions, preview, save a
//! version, activate, roll back ([`crate::admin::templates`] does the work).
//! Everyone logged in may read and preview; operators and administrators
//! change.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use super::AdminState;
use crate::admin::templates::{
    Preview, TemplateAdminError, TemplateDetail, TemplateSummary, VersionInfo,
};

/// The longest template text accepted (characters).
pub const MAX_SOURCE_CHARS: usize = 4_000;

impl From<TemplateAdminError> for ApiError {
    fn from(error: TemplateAdminError) -> Self {
        let status = match error.code() {
            "not_found" => StatusCode::NOT_FOUND,
            "invalid_template" | "over_budget" => StatusCode::BAD_REQUEST,
            "conflict" => StatusCode::CONFLICT,
            "busy" => StatusCode::SERVICE_UNAVAILABLE,
            _ => return ApiError::internal(&error),
        };
        let line = match &error {
            TemplateAdminError::Invalid { line, .. } => *line,
            _ => None,
        };
        ApiError::new(status, error.code(), error.to_string()).with_line(line)
    }
}

/// The templates.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateList {
    /// One per reply kind.
    pub templates: Vec<TemplateSummary>,
}

/// A candidate text.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Candidate {
    /// The template text (minijinja).
    pub source: String,
}

/// A version to save.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVersion {
    /// The template text (minijinja).
    pub source: String,
    /// What changed, for the other admins.
    #[serde(default)]
    pub note: String,
}

/// What a template uses after a rollback.
#[derive(Debug, Serialize, ToSchema)]
pub struct RolledBack {
    /// The template.
    pub name: String,
    /// The version in use now; absent: the file or built-in text.
    pub active_version: Option<i64>,
}

fn checked_source(source: &str) -> Result<(), ApiError> {
    if source.chars().count() > MAX_SOURCE_CHARS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_template",
            format!("a template is at most {MAX_SOURCE_CHARS} characters"),
        ));
    }
    Ok(())
}

/// The reply templates and where the text in use comes from.
#[utoipa::path(get, path = "/api/v1/templates", tag = "templates",
    security(("cookie" = []), ("bearer" = [])),
    responses((status = 200, body = TemplateList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AdminState>,
    _caller: Caller,
) -> Result<Json<TemplateList>, ApiError> {
    Ok(Json(TemplateList {
        templates: state.templates().list().await?,
    }))
}

/// One template: the text in use, its variables and its versions.
#[utoipa::path(get, path = "/api/v1/templates/{name}", tag = "templates",
    security(("cookie" = []), ("bearer" = [])),
    params(("name" = String, Path, description = "found, not_found, help, invalid_date, unavailable, rate_limited")),
    responses((status = 200, body = TemplateDetail), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn detail(
    State(state): State<AdminState>,
    _caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<TemplateDetail>, ApiError> {
    Ok(Json(state.templates().get(&name).await?))
}

/// Render a candidate text against the sample dossiers: encoding, segments, budget.
#[utoipa::path(post, path = "/api/v1/templates/{name}/preview", tag = "templates",
    security(("cookie" = []), ("bearer" = [])),
    params(("name" = String, Path, description = "The template")),
    request_body = Candidate,
    responses((status = 200, body = Preview), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn preview(
    State(state): State<AdminState>,
    _caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<Candidate>,
) -> Result<Json<Preview>, ApiError> {
    checked_source(&body.source)?;
    Ok(Json(state.templates().preview(&name, &body.source).await?))
}

/// Save a version (checked; not yet in use).
#[utoipa::path(post, path = "/api/v1/templates/{name}/versions", tag = "templates",
    security(("cookie" = []), ("bearer" = [])),
    params(("name" = String, Path, description = "The template")),
    request_body = NewVersion,
    responses((status = 201, body = VersionInfo), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn save(
    State(state): State<AdminState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<NewVersion>,
) -> Result<(StatusCode, Json<VersionInfo>), ApiError> {
    caller.must_edit("change templates")?;
    checked_source(&body.source)?;
    let note: String = body.note.chars().take(200).collect();
    let version = state
        .templates()
        .save(&name, &body.source, caller.name(), &note)
        .await?;
    Ok((StatusCode::CREATED, Json(version)))
}

/// Put a version in use (checked again; the next reply uses it).
#[utoipa::path(post, path = "/api/v1/templates/{name}/versions/{id}/activate", tag = "templates",
    security(("cookie" = []), ("bearer" = [])),
    params(("name" = String, Path, description = "The template"),
        ("id" = i64, Path, description = "The version")),
    responses((status = 200, body = VersionInfo), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn activate(
    State(state): State<AdminState>,
    caller: Caller,
    ApiPath((name, id)): ApiPath<(String, i64)>,
) -> Result<Json<VersionInfo>, ApiError> {
    caller.must_edit("change templates")?;
    Ok(Json(
        state.templates().activate(&name, id, caller.name()).await?,
    ))
}

/// Put back the text in use before the current one.
#[utoipa::path(post, path = "/api/v1/templates/{name}/rollback", tag = "templates",
    security(("cookie" = []), ("bearer" = [])),
    params(("name" = String, Path, description = "The template")),
    responses((status = 200, body = RolledBack), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn rollback(
    State(state): State<AdminState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<RolledBack>, ApiError> {
    caller.must_edit("change templates")?;
    let active_version = state.templates().rollback(&name, caller.name()).await?;
    Ok(Json(RolledBack {
        name,
        active_version,
    }))
}
