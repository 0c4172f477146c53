//! Who is calling: the `motcua_admin` cookie (with the CSRF header on every
//! change, and no foreign `Origin`) or an `Authorization: Bearer` token;
//! and the session endpoints that make and end them. An account that must
//! change its password gets nothing else until it has.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::Json;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use super::error::{ApiError, ApiJson, ErrorBody};
use super::AdminState;
use crate::admin::accounts::{AccountError, Role};
use crate::admin::sessions::{ActiveSession, SessionKind};
use crate::client_addr::client_ip;
use crate::clock::now_ms;

/// The session cookie's name.
pub const COOKIE: &str = "motcua_admin";
/// The header a cookie session's changes carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A logged-in caller whose password needs no change.
#[derive(Debug, Clone)]
pub struct Caller(pub ActiveSession);

/// A logged-in caller, even one that must change its password first.
#[derive(Debug, Clone)]
pub struct AnyCaller(pub ActiveSession);

impl Caller {
    /// The account's name.
    pub fn name(&self) -> &str {
        &self.0.username
    }

    /// The account's role.
    pub fn role(&self) -> Role {
        self.0.role
    }

    /// Refused unless the role may change templates, lists and simulate.
    pub fn must_edit(&self, what: &str) -> Result<(), ApiError> {
        if self.0.role.can_edit() {
            Ok(())
        } else {
            Err(ApiError::forbidden(what))
        }
    }

    /// Refused unless the role manages accounts.
    pub fn must_administer(&self, what: &str) -> Result<(), ApiError> {
        if self.0.role.can_manage_accounts() {
            Ok(())
        } else {
            Err(ApiError::forbidden(what))
        }
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// True when the request's `Origin` names another site than its `Host`.
fn foreign_origin(parts: &Parts) -> bool {
    let Some(origin) = parts.headers.get(header::ORIGIN) else {
        return false;
    };
    let origin = origin.to_str().unwrap_or("");
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
    host.is_empty() || origin_host != host
}

async fn authenticate(parts: &Parts, state: &AdminState) -> Result<ActiveSession, ApiError> {
    let now = now_ms();
    if let Some(token) = bearer(parts) {
        return match state.sessions().resolve(token, now).await? {
            Some(session) if session.kind == SessionKind::Bearer => Ok(session),
            _ => Err(ApiError::not_logged_in()),
        };
    }
    let jar = CookieJar::from_headers(&parts.headers);
    let Some(cookie) = jar.get(COOKIE) else {
        return Err(ApiError::not_logged_in());
    };
    let session = match state.sessions().resolve(cookie.value(), now).await? {
        Some(session) if session.kind == SessionKind::Cookie => session,
        _ => return Err(ApiError::not_logged_in()),
    };
    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        let sent = parts
            .headers
            .get(CSRF_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or(b"");
        let matches: bool = sent.ct_eq(session.csrf_token.as_bytes()).into();
        if !matches || foreign_origin(parts) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "this change lacks the X-CSRF-Token of the session (reload the console)",
            ));
        }
    }
    Ok(session)
}

impl FromRequestParts<AdminState> for AnyCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        authenticate(parts, state).await.map(AnyCaller)
    }
}

impl FromRequestParts<AdminState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        let session = authenticate(parts, state).await?;
        if session.must_change_password {
            return Err(password_change_required());
        }
        Ok(Caller(session))
    }
}

fn password_change_required() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "password_change_required",
        "change your password first (POST /api/v1/session/password)",
    )
}

/// A login.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The account.
    pub username: String,
    /// Its password.
    pub password: String,
}

/// A token request for a script.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The account.
    pub username: String,
    /// Its password.
    pub password: String,
    /// What the token is for (shown in the audit log).
    #[serde(default)]
    pub label: String,
}

/// A password change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The password now.
    pub current: String,
    /// The new one (12 characters or more, not containing the username).
    pub new: String,
}

/// The caller's session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// The account.
    pub username: String,
    /// Its role.
    pub role: Role,
    /// It must change its password before anything else.
    pub must_change_password: bool,
    /// Send as `X-CSRF-Token` with every change (cookie sessions; empty for tokens).
    pub csrf_token: String,
    /// When the session ends at the latest (Unix ms).
    pub expires_at: i64,
}

impl From<&ActiveSession> for SessionView {
    fn from(session: &ActiveSession) -> Self {
        SessionView {
            username: session.username.clone(),
            role: session.role,
            must_change_password: session.must_change_password,
            csrf_token: session.csrf_token.clone(),
            expires_at: session.expires_at,
        }
    }
}

/// A bearer token, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// The account.
    pub username: String,
    /// Its role.
    pub role: Role,
    /// What it is for.
    pub label: String,
    /// When it stops working (Unix ms).
    pub expires_at: i64,
}

/// Checks a password, counting logins per client address first (the
/// visitor's, behind a trusted proxy; see [`crate::client_addr`]).
async fn check_login(
    state: &AdminState,
    peer: SocketAddr,
    headers: &HeaderMap,
    username: &str,
    password: &str,
) -> Result<crate::admin::accounts::Login, ApiError> {
    let client = client_ip(state.settings().trust_forwarded_for, peer, headers);
    if state.login_limited(client) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many logins from this address; wait a minute",
        ));
    }
    let now = now_ms();
    let target: String = username.chars().take(64).collect();
    match state.accounts().login(username, password, now).await {
        Ok(login) => {
            state.metrics().login("ok");
            Ok(login)
        }
        Err(error) => {
            let result = match &error {
                AccountError::Locked { .. } => "locked",
                AccountError::Disabled => "disabled",
                _ => "refused",
            };
            state.metrics().login(result);
            state
                .accounts()
                .audit(now, &target, "session.login_failed", &target, result)
                .await?;
            Err(error.into())
        }
    }
}

/// Log in: sets the session cookie.
#[utoipa::path(post, path = "/api/v1/session", tag = "session",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in; the cookie is set", body = SessionView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 423, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn login(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<(CookieJar, Json<SessionView>), ApiError> {
    let login = check_login(&state, peer, &headers, &body.username, &body.password).await?;
    let now = now_ms();
    let made = state
        .sessions()
        .start(
            login.username.as_str(),
            login.role,
            login.must_change_password,
            SessionKind::Cookie,
            "",
            now,
        )
        .await?;
    state
        .accounts()
        .audit(
            now,
            login.username.as_str(),
            "session.login",
            login.username.as_str(),
            "",
        )
        .await?;
    let cookie = Cookie::build((COOKIE, made.secret))
        .http_only(true)
        .secure(state.settings().cookie_secure)
        .same_site(SameSite::Strict)
        .path("/")
        .build();
    Ok((jar.add(cookie), Json(SessionView::from(&made.session))))
}

/// Who is logged in.
#[utoipa::path(get, path = "/api/v1/session", tag = "session",
    security(("cookie" = []), ("bearer" = [])),
    responses((status = 200, body = SessionView), (status = 401, body = ErrorBody)))]
pub async fn current(caller: AnyCaller) -> Json<SessionView> {
    Json(SessionView::from(&caller.0))
}

/// Log out: ends this session or token.
#[utoipa::path(delete, path = "/api/v1/session", tag = "session",
    security(("cookie" = []), ("bearer" = [])),
    responses((status = 204, description = "Logged out"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn logout(
    State(state): State<AdminState>,
    caller: AnyCaller,
    jar: CookieJar,
) -> Result<(CookieJar, StatusCode), ApiError> {
    state.sessions().end(&caller.0).await?;
    state
        .accounts()
        .audit(
            now_ms(),
            &caller.0.username,
            "session.logout",
            &caller.0.username,
            "",
        )
        .await?;
    Ok((
        jar.remove(Cookie::build(COOKIE).path("/")),
        StatusCode::NO_CONTENT,
    ))
}

/// Change one's own password (also when the change is required).
#[utoipa::path(post, path = "/api/v1/session/password", tag = "session",
    security(("cookie" = []), ("bearer" = [])),
    request_body = PasswordChange,
    responses((status = 200, body = SessionView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 423, body = ErrorBody)))]
pub async fn change_password(
    State(state): State<AdminState>,
    caller: AnyCaller,
    ApiJson(body): ApiJson<PasswordChange>,
) -> Result<Json<SessionView>, ApiError> {
    let now = now_ms();
    state
        .accounts()
        .change_password(&caller.0.username, &body.current, &body.new, now)
        .await
        .map_err(|error| match error {
            // The session is real: a wrong current password is a bad request,
            // not a logout.
            AccountError::WrongCredentials => ApiError::new(
                StatusCode::BAD_REQUEST,
                "wrong_password",
                "the current password is wrong",
            ),
            other => other.into(),
        })?;
    state
        .sessions()
        .end_others(&caller.0.username, Some(&caller.0))
        .await?;
    let mut session = caller.0;
    session.must_change_password = false;
    Ok(Json(SessionView::from(&session)))
}

/// A bearer token for scripts.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "session",
    request_body = TokenRequest,
    responses((status = 201, body = TokenView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 423, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn token(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<TokenRequest>,
) -> Result<(StatusCode, Json<TokenView>), ApiError> {
    let login = check_login(&state, peer, &headers, &body.username, &body.password).await?;
    if login.must_change_password {
        return Err(password_change_required());
    }
    let label: String = body.label.chars().take(100).collect();
    let now = now_ms();
    let made = state
        .sessions()
        .start(
            login.username.as_str(),
            login.role,
            false,
            SessionKind::Bearer,
            &label,
            now,
        )
        .await?;
    state
        .accounts()
        .audit(
            now,
            login.username.as_str(),
            "session.token",
            login.username.as_str(),
            &label,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenView {
            token: made.secret,
            username: made.session.username,
            role: made.session.role,
            label,
            expires_at: made.session.expires_at,
        }),
    ))
}
