//! Personal accounts for the admin console: a username, a role set by an
//! administrator, an Argon2id password hash. A first password (or one an
//! administrator reset) must be changed at the next login; repeated wrong
//! passwords lock the account for a while; every change is written to the
//! audit log with who made it. Stored in the gateway's state database
//! (`db::StatePool`: the SQLite file or the PostgreSQL database) beside the
//! lists the console edits; each query is written once for both engines.

use std::fmt;

use crate::db::StatePool;
use crate::on_state_pool;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// What an account may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including accounts.
    Administrator,
    /// Templates, lists, channels; not accounts.
    Operator,
    /// Reads; phone numbers masked.
    Viewer,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Administrator => "administrator",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    /// Reads a stored or typed name.
    ///
    /// # Errors
    ///
    /// [`AccountError::UnknownRole`].
    pub fn parse(text: &str) -> Result<Self, AccountError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "administrator" | "admin" => Ok(Role::Administrator),
            "operator" => Ok(Role::Operator),
            "viewer" => Ok(Role::Viewer),
            other => Err(AccountError::UnknownRole(other.to_owned())),
        }
    }

    /// May edit and activate templates, lists and channels.
    pub fn can_edit(self) -> bool {
        matches!(self, Role::Administrator | Role::Operator)
    }

    /// May create accounts, set roles, reset passwords.
    pub fn can_manage_accounts(self) -> bool {
        self == Role::Administrator
    }

    /// Sees citizens' numbers unmasked in the message log.
    pub fn sees_numbers(self) -> bool {
        self.can_edit()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A valid username: 3–32 of `a-z 0-9 . _ -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// Reads a username (lower-cased).
    ///
    /// # Errors
    ///
    /// [`AccountError::BadUsername`] saying what is allowed.
    pub fn parse(text: &str) -> Result<Self, AccountError> {
        let name = text.trim().to_ascii_lowercase();
        let valid = (3..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if valid {
            Ok(Username(name))
        } else {
            Err(AccountError::BadUsername(text.to_owned()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// A password that meets the policy (never logged, never displayed).
pub struct NewPassword(String);

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(***)")
    }
}

impl NewPassword {
    /// Checks the policy for `user`'s new password.
    ///
    /// # Errors
    ///
    /// [`AccountError::WeakPassword`] with the reason.
    pub fn parse(password: &str, user: &Username) -> Result<Self, AccountError> {
        let chars = password.chars().count();
        let weak = |why: &str| Err(AccountError::WeakPassword(why.to_owned()));
        if chars < MIN_PASSWORD_CHARS {
            return weak(&format!("at least {MIN_PASSWORD_CHARS} characters"));
        }
        if chars > 256 {
            return weak("at most 256 characters");
        }
        if password.to_ascii_lowercase().contains(user.as_str()) {
            return weak("must not contain the username");
        }
        let mut distinct: Vec<char> = password.chars().collect();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() < 5 {
            return weak("too few different characters");
        }
        Ok(NewPassword(password.to_owned()))
    }
}

/// Account failures, each saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Not a valid username.
    #[error("username {0:?} is not valid: 3 to 32 characters among a-z, 0-9, '.', '_' and '-'")]
    BadUsername(String),
    /// Not a role.
    #[error("role {0:?} is not one of administrator, operator, viewer")]
    UnknownRole(String),
    /// The password does not meet the policy.
    #[error("password refused: {0}")]
    WeakPassword(String),
    /// The username is taken.
    #[error("account {0} already exists")]
    Exists(String),
    /// No such account.
    #[error("no account {0}")]
    NoSuchAccount(String),
    /// Wrong username or password (the same answer for both).
    #[error("wrong username or password")]
    WrongCredentials,
    /// Locked after repeated failures.
    #[error("account locked after repeated wrong passwords; try again in {minutes} min or ask an administrator")]
    Locked {
        /// Minutes left.
        minutes: i64,
    },
    /// Disabled by an administrator.
    #[error("account disabled; ask an administrator")]
    Disabled,
    /// The last administrator cannot lose the role or be disabled.
    #[error("{0} is the last administrator; make another one first")]
    LastAdministrator(String),
    /// Hashing failed (should not happen).
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The database.
    #[error("accounts database: {0}")]
    Database(#[from] sqlx::Error),
}

/// How repeated failures lock an account.
#[derive(Debug, Clone, Copy)]
pub struct LockoutPolicy {
    /// Consecutive wrong passwords that lock the account.
    pub after_failures: u32,
    /// For how long, in milliseconds.
    pub lock_ms: i64,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            after_failures: 5,
            lock_ms: 15 * 60 * 1000,
        }
    }
}

/// A successful login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// Who.
    pub username: Username,
    /// With what rights.
    pub role: Role,
    /// The password must be changed before anything else.
    pub must_change_password: bool,
}

/// An account as listed (no hash).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct AccountInfo {
    /// The username.
    pub username: String,
    /// The role.
    pub role: Role,
    /// Must change the password at the next login.
    pub must_change_password: bool,
    /// Locked until (Unix ms), if locked now.
    pub locked_until: Option<i64>,
    /// Disabled by an administrator.
    pub disabled: bool,
}

/// An account's row, as `login` reads it.
#[derive(sqlx::FromRow)]
struct StoredAccount {
    username: String,
    role: String,
    password_hash: String,
    must_change: i64,
    locked_until: Option<i64>,
    disabled: i64,
}

/// The accounts and the audit log.
#[derive(Clone)]
pub struct Accounts {
    pool: StatePool,
    lockout: LockoutPolicy,
}

fn hash(password: &str) -> Result<String, AccountError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

fn verifies(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// The statement that appends `(at, actor, action, target, detail)` to the
/// audit log, for either engine: run it on the pool, or on a transaction so
/// that the entry is written with the change it records
/// (`audit_entry(…).execute(&mut *tx)` inside [`on_state_pool!`]).
pub(crate) fn audit_entry<'q, DB: sqlx::Database>(
    at: i64,
    actor: &'q str,
    action: &'q str,
    target: &'q str,
    detail: &'q str,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(at)
    .bind(actor)
    .bind(action)
    .bind(target)
    .bind(detail)
}

/// Hashing is slow on purpose: off the async threads.
async fn blocking<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(job)
        .await
        .expect("password hashing does not panic")
}

impl Accounts {
    /// Accounts in the gateway database (`db::GatewayDb`, which migrated it).
    pub fn new(pool: StatePool, lockout: LockoutPolicy) -> Self {
        Accounts { pool, lockout }
    }

    /// Appends to the audit log.
    ///
    /// # Errors
    ///
    /// [`AccountError::Database`].
    pub async fn audit(
        &self,
        at: i64,
        actor: &str,
        action: &str,
        target: &str,
        detail: &str,
    ) -> Result<(), AccountError> {
        on_state_pool!(&self.pool, p => audit_entry(at, actor, action, target, detail).execute(p).await.map(|_| ()))?;
        Ok(())
    }

    /// The audit log, newest first: (at, actor, action, target, detail).
    ///
    /// # Errors
    ///
    /// [`AccountError::Database`].
    pub async fn audit_log(
        &self,
        limit: u32,
    ) -> Result<Vec<(i64, String, String, String, String)>, AccountError> {
        Ok(on_state_pool!(&self.pool, p => sqlx::query_as(
            "SELECT at, actor, action, target, detail FROM audit_log ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(p)
        .await)?)
    }

    /// Creates an account whose first password must be changed at the first login.
    ///
    /// # Errors
    ///
    /// [`AccountError::Exists`], [`AccountError::WeakPassword`], database.
    pub async fn create(
        &self,
        actor: &str,
        username: &Username,
        role: Role,
        password: NewPassword,
        now: i64,
    ) -> Result<(), AccountError> {
        let hashed = blocking(move || hash(&password.0)).await?;
        let inserted = on_state_pool!(&self.pool, p => sqlx::query(
            "INSERT INTO accounts (username, role, password_hash, must_change, created_at, updated_at) \
             VALUES ($1, $2, $3, 1, $4, $5) ON CONFLICT (username) DO NOTHING",
        )
        .bind(username.as_str())
        .bind(role.as_str())
        .bind(&hashed)
        .bind(now)
        .bind(now)
        .execute(p)
        .await
        .map(|done| done.rows_affected()))?;
        if inserted == 0 {
            return Err(AccountError::Exists(username.to_string()));
        }
        self.audit(
            now,
            actor,
            "account.create",
            username.as_str(),
            role.as_str(),
        )
        .await
    }

    /// Checks a login. A wrong password counts toward the lockout (and is
    /// audited when it locks); a right one resets the count.
    ///
    /// # Errors
    ///
    /// [`AccountError::WrongCredentials`] (unknown user or wrong password,
    /// indistinguishable), [`AccountError::Locked`], [`AccountError::Disabled`].
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        now: i64,
    ) -> Result<Login, AccountError> {
        let row: Option<StoredAccount> = match Username::parse(username) {
            Ok(name) => on_state_pool!(&self.pool, p => sqlx::query_as(
                "SELECT username, role, password_hash, must_change, locked_until, disabled \
                 FROM accounts WHERE username = $1",
            )
            .bind(name.as_str())
            .fetch_optional(p)
            .await)?,
            Err(_) => None,
        };
        let password = password.to_owned();
        let Some(StoredAccount {
            username: name,
            role,
            password_hash: stored,
            must_change,
            locked_until,
            disabled,
        }) = row
        else {
            // The same work as for a real account, so timing tells nothing.
            let _ = blocking(move || hash(&password)).await;
            return Err(AccountError::WrongCredentials);
        };
        if disabled == 1 {
            return Err(AccountError::Disabled);
        }
        if let Some(until) = locked_until.filter(|&until| until > now) {
            return Err(AccountError::Locked {
                minutes: minutes_left(until, now),
            });
        }
        let right = blocking(move || verifies(&password, &stored)).await;
        if !right {
            return self.count_failure(&name, now).await;
        }
        // Not if wrong guesses made meanwhile locked the account: the lock stands.
        let reset = on_state_pool!(&self.pool, p => sqlx::query(
            "UPDATE accounts SET failed_logins = 0, locked_until = NULL \
             WHERE username = $1 AND (locked_until IS NULL OR locked_until <= $2)",
        )
        .bind(&name)
        .bind(now)
        .execute(p)
        .await
        .map(|done| done.rows_affected()))?;
        if reset == 0 {
            return Err(self.locked_meanwhile(&name, now).await?);
        }
        Ok(Login {
            username: Username(name),
            role: Role::parse(&role)?,
            must_change_password: must_change == 1,
        })
    }

    /// Counts a wrong password for `name`. Counted and locked in one
    /// statement, not from what was read before the (slow) hash: wrong
    /// guesses made at once each count, on PostgreSQL as on SQLite (the
    /// row's lock orders them, and each sees the one before). The failure
    /// that reaches the limit locks the account and resets the count; one
    /// made meanwhile finds the account locked and counts nothing, as it
    /// would have been refused had it come a moment later.
    async fn count_failure(&self, name: &str, now: i64) -> Result<Login, AccountError> {
        let limit = i64::from(self.lockout.after_failures);
        let counted: Option<(i64, Option<i64>)> = on_state_pool!(&self.pool, p => sqlx::query_as(
            "UPDATE accounts SET \
               failed_logins = CASE WHEN failed_logins + 1 >= $1 THEN 0 ELSE failed_logins + 1 END, \
               locked_until = CASE WHEN failed_logins + 1 >= $1 THEN $2 ELSE locked_until END, \
               updated_at = $3 \
             WHERE username = $4 AND (locked_until IS NULL OR locked_until <= $3) \
             RETURNING failed_logins, locked_until",
        )
        .bind(limit)
        .bind(now + self.lockout.lock_ms)
        .bind(now)
        .bind(name)
        .fetch_optional(p)
        .await)?;
        // Only the failure that locks leaves the count at zero.
        if let Some((0, Some(_))) = counted {
            tracing::warn!(account = %name, failures = limit, "admin account locked after repeated wrong passwords");
            self.audit(
                now,
                "system",
                "account.lockout",
                name,
                &format!("{limit} wrong passwords"),
            )
            .await?;
        }
        Err(AccountError::WrongCredentials)
    }

    /// The refusal for a right password given while wrong ones made at the
    /// same time locked the account.
    async fn locked_meanwhile(&self, name: &str, now: i64) -> Result<AccountError, AccountError> {
        let until: Option<Option<i64>> = on_state_pool!(&self.pool, p => sqlx::query_scalar(
            "SELECT locked_until FROM accounts WHERE username = $1",
        )
        .bind(name)
        .fetch_optional(p)
        .await)?;
        Ok(match until.flatten() {
            Some(until) if until > now => AccountError::Locked {
                minutes: minutes_left(until, now),
            },
            _ => AccountError::WrongCredentials,
        })
    }

    /// The account changes its own password (the current one checked).
    ///
    /// # Errors
    ///
    /// As [`Accounts::login`] for the current password; the policy's for the new one.
    pub async fn change_password(
        &self,
        username: &str,
        current: &str,
        new: &str,
        now: i64,
    ) -> Result<(), AccountError> {
        let login = self.login(username, current, now).await?;
        let new = NewPassword::parse(new, &login.username)?;
        if new.0 == current {
            return Err(AccountError::WeakPassword(
                "must differ from the current one".into(),
            ));
        }
        let hashed = blocking(move || hash(&new.0)).await?;
        let name = login.username.as_str();
        on_state_pool!(&self.pool, p => {
            let mut tx = p.begin().await?;
            sqlx::query(
                "UPDATE accounts SET password_hash = $1, must_change = 0, updated_at = $2 \
                 WHERE username = $3",
            )
            .bind(&hashed)
            .bind(now)
            .bind(name)
            .execute(&mut *tx)
            .await?;
            audit_entry(now, name, "account.password", name, "")
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        })?;
        Ok(())
    }

    /// An administrator sets a role, resets a password (to be changed at the
    /// next login), disables or enables an account, or unlocks it. The
    /// change and its audit entry are written together; a change that would
    /// leave no enabled administrator is refused, also when two are made at
    /// once (on PostgreSQL the administrators' rows are locked while it is
    /// checked; on SQLite the second write fails rather than act on what it
    /// read before the first).
    ///
    /// # Errors
    ///
    /// [`AccountError::NoSuchAccount`], [`AccountError::LastAdministrator`], database.
    pub async fn update(
        &self,
        actor: &str,
        username: &Username,
        change: AccountChange,
        now: i64,
    ) -> Result<(), AccountError> {
        let current: Option<String> = on_state_pool!(&self.pool, p => sqlx::query_scalar(
            "SELECT role FROM accounts WHERE username = $1",
        )
        .bind(username.as_str())
        .fetch_optional(p)
        .await)?;
        let Some(role) = current else {
            return Err(AccountError::NoSuchAccount(username.to_string()));
        };
        let demotes_admin = role == Role::Administrator.as_str()
            && matches!(
                change,
                AccountChange::Role(Role::Operator | Role::Viewer) | AccountChange::Disabled(true)
            );
        let admins_sql = match &self.pool {
            StatePool::Sqlite(_) => {
                "SELECT username FROM accounts WHERE role = 'administrator' AND disabled = 0"
            }
            // In one order, so that two checks at once never deadlock.
            StatePool::Postgres(_) => {
                "SELECT username FROM accounts WHERE role = 'administrator' AND disabled = 0 \
                 ORDER BY username FOR UPDATE"
            }
        };
        let (action, detail) = match &change {
            AccountChange::Role(role) => ("account.role", role.as_str().to_owned()),
            AccountChange::ResetPassword(_) => ("account.reset_password", String::new()),
            AccountChange::Disabled(true) => ("account.disable", String::new()),
            AccountChange::Disabled(false) => ("account.enable", String::new()),
            AccountChange::Unlock => ("account.unlock", String::new()),
        };
        // The slow hash before the transaction, which holds locks.
        let write = match change {
            AccountChange::Role(role) => Write::Role(role.as_str()),
            AccountChange::ResetPassword(password) => {
                Write::Password(blocking(move || hash(&password.0)).await?)
            }
            AccountChange::Disabled(disabled) => Write::Disabled(i64::from(disabled)),
            AccountChange::Unlock => Write::Unlock,
        };
        let name = username.as_str();
        on_state_pool!(&self.pool, p => {
            let mut tx = p.begin().await?;
            if demotes_admin {
                let admins: Vec<String> =
                    sqlx::query_scalar(admins_sql).fetch_all(&mut *tx).await?;
                if admins.len() <= 1 {
                    return Err(AccountError::LastAdministrator(username.to_string()));
                }
            }
            // Each statement ends with `updated_at` and the username.
            let write = match &write {
                Write::Role(role) => sqlx::query(
                    "UPDATE accounts SET role = $1, updated_at = $2 WHERE username = $3",
                )
                .bind(*role),
                Write::Password(hashed) => sqlx::query(
                    "UPDATE accounts SET password_hash = $1, must_change = 1, failed_logins = 0, \
                     locked_until = NULL, updated_at = $2 WHERE username = $3",
                )
                .bind(hashed.as_str()),
                Write::Disabled(disabled) => sqlx::query(
                    "UPDATE accounts SET disabled = $1, updated_at = $2 WHERE username = $3",
                )
                .bind(*disabled),
                Write::Unlock => sqlx::query(
                    "UPDATE accounts SET failed_logins = 0, locked_until = NULL, \
                     updated_at = $1 WHERE username = $2",
                ),
            };
            write.bind(now).bind(name).execute(&mut *tx).await?;
            audit_entry(now, actor, action, name, &detail)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Every account, by name.
    ///
    /// # Errors
    ///
    /// Database.
    pub async fn list(&self, now: i64) -> Result<Vec<AccountInfo>, AccountError> {
        let rows: Vec<(String, String, i64, Option<i64>, i64)> = on_state_pool!(&self.pool, p => sqlx::query_as(
            "SELECT username, role, must_change, locked_until, disabled FROM accounts ORDER BY username",
        )
        .fetch_all(p)
        .await)?;
        rows.into_iter()
            .map(|(username, role, must_change, locked_until, disabled)| {
                Ok(AccountInfo {
                    username,
                    role: Role::parse(&role)?,
                    must_change_password: must_change == 1,
                    locked_until: locked_until.filter(|&until| until > now),
                    disabled: disabled == 1,
                })
            })
            .collect()
    }
}

/// Whole minutes, rounded up, from `now` until `until` (Unix ms).
fn minutes_left(until: i64, now: i64) -> i64 {
    (until - now + 59_999) / 60_000
}

/// What [`Accounts::update`] writes for an [`AccountChange`].
enum Write {
    /// The role's stored name.
    Role(&'static str),
    /// The new password's hash.
    Password(String),
    /// 1 to disable, 0 to enable.
    Disabled(i64),
    /// Lift the lockout.
    Unlock,
}

/// What an administrator changes on an account.
#[derive(Debug)]
pub enum AccountChange {
    /// A new role.
    Role(Role),
    /// A new password, to be changed at the next login.
    ResetPassword(NewPassword),
    /// Disable (true) or enable (false).
    Disabled(bool),
    /// Lift a lockout.
    Unlock,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::GatewayDb;

    fn accounts(db: &GatewayDb) -> Accounts {
        Accounts::new(
            db.pool().clone(),
            LockoutPolicy {
                after_failures: 3,
                lock_ms: 60_000,
            },
        )
    }

    fn user(name: &str) -> Username {
        Username::parse(name).unwrap()
    }

    const FIRST: &str = "first-Password-42";

    #[test]
    fn roles_grant_what_their_names_say() {
        assert!(Role::Administrator.can_manage_accounts());
        assert!(!Role::Operator.can_manage_accounts() && Role::Operator.can_edit());
        assert!(!Role::Viewer.can_edit() && !Role::Viewer.sees_numbers());
        assert_eq!(Role::parse("Admin").unwrap(), Role::Administrator);
        assert!(Role::parse("root").is_err());
    }

    #[test]
    fn usernames_and_passwords_follow_the_policy() {
        assert!(Username::parse("an.nguyen").is_ok());
        assert!(Username::parse("an nguyen").is_err());
        assert!(Username::parse("ab").is_err());
        let an = user("an.nguyen");
        assert!(NewPassword::parse("short", &an).is_err());
        assert!(
            NewPassword::parse("an.nguyen-2026-xyz", &an).is_err(),
            "contains the name"
        );
        assert!(
            NewPassword::parse("aaaaaaaaaaaaaaaa", &an).is_err(),
            "too uniform"
        );
        assert!(NewPassword::parse("Mot-cua-2026!", &an).is_ok());
        assert_eq!(
            format!("{:?}", NewPassword::parse("Mot-cua-2026!", &an).unwrap()),
            "NewPassword(***)"
        );
    }

    async fn a_first_password_must_be_changed_and_the_change_is_audited(db: GatewayDb) {
        let accounts = accounts(&db);
        let an = user("an.nguyen");
        let first = NewPassword::parse(FIRST, &an).unwrap();
        accounts
            .create("cli", &an, Role::Operator, first, 1_000)
            .await
            .unwrap();
        let again = NewPassword::parse(FIRST, &an).unwrap();
        assert!(matches!(
            accounts
                .create("cli", &an, Role::Viewer, again, 1_000)
                .await,
            Err(AccountError::Exists(_))
        ));
        let login = accounts.login("An.Nguyen", FIRST, 2_000).await.unwrap();
        assert_eq!(
            (login.role, login.must_change_password),
            (Role::Operator, true)
        );
        assert!(matches!(
            accounts
                .change_password("an.nguyen", FIRST, FIRST, 3_000)
                .await,
            Err(AccountError::WeakPassword(_))
        ));
        accounts
            .change_password("an.nguyen", FIRST, "Second-Password-43", 3_000)
            .await
            .unwrap();
        let login = accounts
            .login("an.nguyen", "Second-Password-43", 4_000)
            .await
            .unwrap();
        assert!(!login.must_change_password);
        assert!(matches!(
            accounts.login("an.nguyen", FIRST, 5_000).await,
            Err(AccountError::WrongCredentials)
        ));
        let log = accounts.audit_log(10).await.unwrap();
        let actions: Vec<&str> = log.iter().map(|e| e.2.as_str()).collect();
        assert_eq!(actions, ["account.password", "account.create"]);
        // The stored hash is Argon2id, never the password.
        let stored: String = on_state_pool!(db.pool(), p => {
            sqlx::query_scalar("SELECT password_hash FROM accounts")
                .fetch_one(p)
                .await
        })
        .unwrap();
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(!stored.contains("Second"));
    }

    async fn repeated_wrong_passwords_lock_the_account_for_a_while(db: GatewayDb) {
        let accounts = accounts(&db);
        let an = user("an.nguyen");
        accounts
            .create(
                "cli",
                &an,
                Role::Viewer,
                NewPassword::parse(FIRST, &an).unwrap(),
                0,
            )
            .await
            .unwrap();
        for _ in 0..3 {
            assert!(matches!(
                accounts.login("an.nguyen", "wrong-password-1", 1_000).await,
                Err(AccountError::WrongCredentials)
            ));
        }
        // Locked: even the right password is refused until the lock ends.
        assert!(matches!(
            accounts.login("an.nguyen", FIRST, 2_000).await,
            Err(AccountError::Locked { minutes: 1 })
        ));
        assert_eq!(
            accounts.list(2_000).await.unwrap()[0].locked_until,
            Some(61_000)
        );
        assert!(accounts.login("an.nguyen", FIRST, 61_001).await.is_ok());
        // An unknown user gets the same answer as a wrong password.
        assert!(matches!(
            accounts.login("nobody", FIRST, 62_000).await,
            Err(AccountError::WrongCredentials)
        ));
        let log = accounts.audit_log(10).await.unwrap();
        assert_eq!(log[0].2, "account.lockout");
    }

    async fn administrators_change_roles_but_never_remove_the_last_one(db: GatewayDb) {
        let accounts = accounts(&db);
        let boss = user("boss");
        let an = user("an.nguyen");
        accounts
            .create(
                "cli",
                &boss,
                Role::Administrator,
                NewPassword::parse(FIRST, &boss).unwrap(),
                0,
            )
            .await
            .unwrap();
        accounts
            .create(
                "boss",
                &an,
                Role::Viewer,
                NewPassword::parse(FIRST, &an).unwrap(),
                0,
            )
            .await
            .unwrap();
        assert!(matches!(
            accounts
                .update("boss", &boss, AccountChange::Role(Role::Viewer), 1)
                .await,
            Err(AccountError::LastAdministrator(_))
        ));
        assert!(matches!(
            accounts
                .update("boss", &boss, AccountChange::Disabled(true), 1)
                .await,
            Err(AccountError::LastAdministrator(_))
        ));
        accounts
            .update("boss", &an, AccountChange::Role(Role::Operator), 2)
            .await
            .unwrap();
        accounts
            .update("boss", &an, AccountChange::Disabled(true), 3)
            .await
            .unwrap();
        assert!(matches!(
            accounts.login("an.nguyen", FIRST, 4).await,
            Err(AccountError::Disabled)
        ));
        accounts
            .update("boss", &an, AccountChange::Disabled(false), 5)
            .await
            .unwrap();
        let reset = NewPassword::parse("Reset-Password-77", &an).unwrap();
        accounts
            .update("boss", &an, AccountChange::ResetPassword(reset), 6)
            .await
            .unwrap();
        let login = accounts
            .login("an.nguyen", "Reset-Password-77", 7)
            .await
            .unwrap();
        assert_eq!(
            (login.role, login.must_change_password),
            (Role::Operator, true)
        );
        assert!(matches!(
            accounts
                .update("boss", &user("ghost"), AccountChange::Unlock, 8)
                .await,
            Err(AccountError::NoSuchAccount(_))
        ));
        let actions: Vec<String> = accounts
            .audit_log(20)
            .await
            .unwrap()
            .into_iter()
            .map(|e| format!("{} {} {}", e.1, e.2, e.3))
            .collect();
        assert_eq!(
            actions,
            [
                "boss account.reset_password an.nguyen",
                "boss account.enable an.nguyen",
                "boss account.disable an.nguyen",
                "boss account.role an.nguyen",
                "boss account.create an.nguyen",
                "cli account.create boss",
            ]
        );
    }

    /// The account's failure count and lock, as stored.
    async fn stored_lockout(db: &GatewayDb, name: &str) -> (i64, Option<i64>) {
        on_state_pool!(db.pool(), p => {
            sqlx::query_as("SELECT failed_logins, locked_until FROM accounts WHERE username = $1")
                .bind(name)
                .fetch_one(p)
                .await
        })
        .unwrap()
    }

    /// Twenty logins with a wrong password for `name`, all at once (each on
    /// a task of its own; on PostgreSQL on several connections in parallel).
    async fn wrong_at_once(accounts: &Accounts, name: &'static str) -> Vec<AccountError> {
        let mut tries = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let accounts = accounts.clone();
            tries.spawn(async move { accounts.login(name, "wrong-password-1", 1_000).await });
        }
        let mut refusals = Vec::new();
        while let Some(tried) = tries.join_next().await {
            refusals.push(tried.unwrap().unwrap_err());
        }
        refusals
    }

    async fn wrong_passwords_given_at_once_count_and_lock_exactly(db: GatewayDb) {
        let an = user("an.nguyen");
        let binh = user("binh.tran");
        let patient = Accounts::new(
            db.pool().clone(),
            LockoutPolicy {
                after_failures: 25,
                lock_ms: 60_000,
            },
        );
        for name in [&an, &binh] {
            patient
                .create(
                    "cli",
                    name,
                    Role::Viewer,
                    NewPassword::parse(FIRST, name).unwrap(),
                    0,
                )
                .await
                .unwrap();
        }
        // Under the limit: every one of the twenty counts, none is lost.
        let refusals = wrong_at_once(&patient, "an.nguyen").await;
        assert!(
            refusals
                .iter()
                .all(|e| matches!(e, AccountError::WrongCredentials)),
            "{refusals:?}"
        );
        assert_eq!(stored_lockout(&db, "an.nguyen").await, (20, None));

        // Over it (3): the account is locked once, for the policy's time,
        // its count reset; the failures after the third count nothing more.
        let strict = accounts(&db);
        let refusals = wrong_at_once(&strict, "binh.tran").await;
        assert!(
            refusals.iter().all(|e| matches!(
                e,
                AccountError::WrongCredentials | AccountError::Locked { minutes: 1 }
            )),
            "{refusals:?}"
        );
        assert_eq!(stored_lockout(&db, "binh.tran").await, (0, Some(61_000)));
        let lockouts: Vec<String> = strict
            .audit_log(100)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.2 == "account.lockout")
            .map(|e| format!("{} {} {} {}", e.0, e.1, e.3, e.4))
            .collect();
        assert_eq!(lockouts, ["1000 system binh.tran 3 wrong passwords"]);
        assert!(matches!(
            strict.login("binh.tran", FIRST, 2_000).await,
            Err(AccountError::Locked { minutes: 1 })
        ));
        assert_eq!(
            stored_lockout(&db, "an.nguyen").await,
            (20, None),
            "another account's failures are its own"
        );
    }

    async fn two_administrators_demoting_each_other_at_once_leave_one(db: GatewayDb) {
        let accounts = accounts(&db);
        for name in ["boss", "chief"] {
            let admin = user(name);
            accounts
                .create(
                    "cli",
                    &admin,
                    Role::Administrator,
                    NewPassword::parse(FIRST, &admin).unwrap(),
                    0,
                )
                .await
                .unwrap();
        }
        let mut demotions = tokio::task::JoinSet::new();
        for (actor, target) in [("boss", "chief"), ("chief", "boss")] {
            let accounts = accounts.clone();
            demotions.spawn(async move {
                accounts
                    .update(actor, &user(target), AccountChange::Role(Role::Viewer), 1)
                    .await
            });
        }
        let mut done = 0;
        while let Some(demoted) = demotions.join_next().await {
            match demoted.unwrap() {
                Ok(()) => done += 1,
                // The one that lost: refused, or (SQLite) its write failed.
                Err(AccountError::LastAdministrator(_) | AccountError::Database(_)) => {}
                Err(other) => panic!("{other:?}"),
            }
        }
        assert_eq!(done, 1, "exactly one demotion goes through");
        let admins: Vec<String> = accounts
            .list(2)
            .await
            .unwrap()
            .into_iter()
            .filter(|a| a.role == Role::Administrator && !a.disabled)
            .map(|a| a.username)
            .collect();
        assert_eq!(admins.len(), 1, "{admins:?}");
        let role_changes = accounts
            .audit_log(10)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.2 == "account.role")
            .count();
        assert_eq!(role_changes, 1, "only the change made is audited");
    }

    crate::on_both_engines!(
        a_first_password_must_be_changed_and_the_change_is_audited,
        repeated_wrong_passwords_lock_the_account_for_a_while,
        administrators_change_roles_but_never_remove_the_last_one,
        wrong_passwords_given_at_once_count_and_lock_exactly,
        two_administrators_demoting_each_other_at_once_leave_one,
    );
}
