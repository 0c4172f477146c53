//! Accounts and the audit log, for administrators.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use super::AdminState;
use crate::admin::accounts::{AccountChange, AccountInfo, NewPassword, Role, Username};
use crate::clock::now_ms;

/// The accounts.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountList {
    /// Every account, by name.
    pub accounts: Vec<AccountInfo>,
}

/// A new account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    /// 3–32 characters among a-z, 0-9, `.`, `_`, `-`.
    pub username: String,
    /// `administrator`, `operator` or `viewer`.
    pub role: String,
    /// A first password, to be changed at the first login.
    pub password: String,
}

/// One change to an account: exactly one field.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    /// A new role.
    pub role: Option<String>,
    /// Disable (`true`) or enable (`false`).
    pub disabled: Option<bool>,
    /// `true`: lift a lockout.
    pub unlock: Option<bool>,
    /// A new password, to be changed at the next login (a reset).
    pub password: Option<String>,
}

/// How much of the audit log.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries, newest first (1–1000, default 100).
    pub limit: Option<u32>,
}

/// One entry of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    /// When (Unix ms).
    pub at: i64,
    /// Who (an account, or `cli`).
    pub actor: String,
    /// What: `account.create`, `template.activate`, `list.block`, `session.login`, …
    pub action: String,
    /// On what.
    pub target: String,
    /// Details.
    pub detail: String,
}

/// The audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditLog {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
}

/// List the accounts.
#[utoipa::path(get, path = "/api/v1/accounts", tag = "accounts",
    security(("cookie" = []), ("bearer" = [])),
    responses((status = 200, body = AccountList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn list(
    State(state): State<AdminState>,
    caller: Caller,
) -> Result<Json<AccountList>, ApiError> {
    caller.must_administer("manage accounts")?;
    Ok(Json(AccountList {
        accounts: state.accounts().list(now_ms()).await?,
    }))
}

/// Create an account.
#[utoipa::path(post, path = "/api/v1/accounts", tag = "accounts",
    security(("cookie" = []), ("bearer" = [])),
    request_body = NewAccount,
    responses((status = 201, body = AccountInfo), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn create(
    State(state): State<AdminState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewAccount>,
) -> Result<(StatusCode, Json<AccountInfo>), ApiError> {
    caller.must_administer("manage accounts")?;
    let username = Username::parse(&body.username)?;
    let role = Role::parse(&body.role)?;
    let password = NewPassword::parse(&body.password, &username)?;
    let now = now_ms();
    state
        .accounts()
        .create(caller.name(), &username, role, password, now)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(account(&state, &username, now).await?),
    ))
}

async fn account(
    state: &AdminState,
    username: &Username,
    now: i64,
) -> Result<AccountInfo, ApiError> {
    state
        .accounts()
        .list(now)
        .await?
        .into_iter()
        .find(|a| a.username == username.as_str())
        .ok_or_else(|| ApiError::not_found(format!("no account {username}")))
}

/// Change an account: role, disabled, unlock, or a password reset.
#[utoipa::path(patch, path = "/api/v1/accounts/{username}", tag = "accounts",
    security(("cookie" = []), ("bearer" = [])),
    params(("username" = String, Path, description = "The account")),
    request_body = AccountPatch,
    responses((status = 200, body = AccountInfo), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update(
    State(state): State<AdminState>,
    caller: Caller,
    ApiPath(username): ApiPath<String>,
    ApiJson(body): ApiJson<AccountPatch>,
) -> Result<Json<AccountInfo>, ApiError> {
    caller.must_administer("manage accounts")?;
    let username = Username::parse(&username)?;
    let mut changes = Vec::new();
    if let Some(role) = &body.role {
        changes.push(AccountChange::Role(Role::parse(role)?));
    }
    if let Some(disabled) = body.disabled {
        changes.push(AccountChange::Disabled(disabled));
    }
    if body.unlock == Some(true) {
        changes.push(AccountChange::Unlock);
    }
    if let Some(password) = &body.password {
        changes.push(AccountChange::ResetPassword(NewPassword::parse(
            password, &username,
        )?));
    }
    if changes.len() != 1 {
        return Err(ApiError::bad_request(
            "give exactly one of role, disabled, unlock: true, password",
        ));
    }
    let change = changes.pop().expect("one change");
    let ends_sessions = matches!(
        change,
        AccountChange::ResetPassword(_) | AccountChange::Disabled(true)
    );
    let now = now_ms();
    state
        .accounts()
        .update(caller.name(), &username, change, now)
        .await?;
    if ends_sessions {
        state.sessions().end_others(username.as_str(), None).await?;
    }
    Ok(Json(account(&state, &username, now).await?))
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "accounts",
    security(("cookie" = []), ("bearer" = [])),
    params(AuditQuery),
    responses((status = 200, body = AuditLog), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn audit(
    State(state): State<AdminState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditLog>, ApiError> {
    caller.must_administer("read the audit log")?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let entries = state
        .accounts()
        .audit_log(limit)
        .await?
        .into_iter()
        .map(|(at, actor, action, target, detail)| AuditEntry {
            at,
            actor,
            action,
            target,
            detail,
        })
        .collect();
    Ok(Json(AuditLog { entries }))
}
