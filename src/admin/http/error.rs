//! The console API's errors: one JSON shape (`{"error", "message"}`, with
//! the template line when there is one) and one status per kind, and the
//! extractors that turn malformed bodies, queries and paths into those
//! errors instead of axum's plain-text rejections.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::abuse::AbuseError;
use crate::admin::accounts::AccountError;

/// An error as the API writes it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable code: `bad_request`, `not_logged_in`, `forbidden`, `csrf`,
    /// `password_change_required`, `not_found`, `conflict`, `locked`,
    /// `invalid_template`, `over_budget`, `invalid_number`, … (docs/admin-api.md).
    pub error: String,
    /// What happened and what to do, for people.
    pub message: String,
    /// The template line at fault, for template errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

/// A refused or failed request.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body.
    pub body: ErrorBody,
}

impl ApiError {
    /// An error with a status, a code and a message.
    pub fn new(status: StatusCode, error: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error: error.to_owned(),
                message: message.into(),
                line: None,
            },
        }
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401 `not_logged_in`.
    pub fn not_logged_in() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "not_logged_in",
            "log in first (the session may have ended)",
        )
    }

    /// 403 `forbidden`: the role does not allow it.
    pub fn forbidden(what: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("your role may not {what}"),
        )
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500 `internal`: logged with its cause, told without it.
    pub fn internal(error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "admin API request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the gateway could not do this; the log has the cause",
        )
    }

    /// The same error with the template line at fault.
    pub fn with_line(mut self, line: Option<usize>) -> Self {
        self.body.line = line;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> Self {
        let message = error.to_string();
        let (status, code) = match &error {
            AccountError::BadUsername(_) => (StatusCode::BAD_REQUEST, "invalid_username"),
            AccountError::UnknownRole(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            AccountError::WeakPassword(_) => (StatusCode::BAD_REQUEST, "weak_password"),
            AccountError::Exists(_) => (StatusCode::CONFLICT, "conflict"),
            AccountError::NoSuchAccount(_) => (StatusCode::NOT_FOUND, "not_found"),
            AccountError::WrongCredentials => (StatusCode::UNAUTHORIZED, "wrong_credentials"),
            AccountError::Locked { .. } => (StatusCode::LOCKED, "locked"),
            AccountError::Disabled => (StatusCode::FORBIDDEN, "disabled"),
            AccountError::LastAdministrator(_) => (StatusCode::CONFLICT, "conflict"),
            AccountError::Hash(_) | AccountError::Database(_) => return Self::internal(&error),
        };
        Self::new(status, code, message)
    }
}

impl From<AbuseError> for ApiError {
    fn from(error: AbuseError) -> Self {
        Self::internal(&error)
    }
}

/// A JSON body; a malformed one is a 400 with what is wrong.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(value)| ApiJson(value))
            .map_err(|rejection: JsonRejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// Query parameters; malformed ones are a 400 `invalid_query`.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| ApiQuery(value))
            .map_err(|rejection: QueryRejection| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_query",
                    rejection.body_text(),
                )
            })
    }
}

/// Path parameters; malformed ones are a 400.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| ApiPath(value))
            .map_err(|rejection: PathRejection| ApiError::bad_request(rejection.body_text()))
    }
}
