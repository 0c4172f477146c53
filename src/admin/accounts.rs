//! Personal accounts for the admin console: a username, a role set by an
//! administrator, an Argon2id password hash. A first password (or one an
//! administrator reset) must be changed at the next login; repeated wrong
//! passwords lock the account for a while; every change is written to the
//! audit log with who made it. Stored in the journal's SQLite file beside
//! the lists the console edits.

use std::fmt;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sqlx::SqlitePool;

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
    pool: SqlitePool,
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

/// Appends to the audit log through `db` (the pool, or a transaction so
/// that the entry is written with the change it records).
pub(crate) async fn append_audit<'e>(
    db: impl sqlx::SqliteExecutor<'e>,
    at: i64,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)")
        .bind(at)
        .bind(actor)
        .bind(action)
        .bind(target)
        .bind(detail)
        .execute(db)
        .await?;
    Ok(())
}

/// Hashing is slow on purpose: off the async threads.
async fn blocking<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(job)
        .await
        .expect("password hashing does not panic")
}

impl Accounts {
    /// Accounts in the gateway database (`db::GatewayDb`, which migrated it).
    pub fn new(pool: SqlitePool, lockout: LockoutPolicy) -> Self {
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
        Ok(append_audit(&self.pool, at, actor, action, target, detail).await?)
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
        Ok(sqlx::query_as(
            "SELECT at, actor, action, target, detail FROM audit_log ORDER BY id DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
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
        let inserted = sqlx::query(
            "INSERT INTO accounts (username, role, password_hash, must_change, created_at, updated_at) \
             VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (username) DO NOTHING",
        )
        .bind(username.as_str())
        .bind(role.as_str())
        .bind(hashed)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 0 {
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
        let row: Option<StoredAccount> =
            match Username::parse(username) {
                Ok(name) => sqlx::query_as(
                    "SELECT username, role, password_hash, must_change, locked_until, disabled \
                 FROM accounts WHERE username = ?",
                )
                .bind(name.as_str())
                .fetch_optional(&self.pool)
                .await?,
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
                minutes: (until - now + 59_999) / 60_000,
            });
        }
        let right = blocking(move || verifies(&password, &stored)).await;
        if !right {
            // Counted in the database, not from what was read before the
            // (slow) hash: wrong guesses made at once each count.
            let failed: i64 = sqlx::query_scalar(
                "UPDATE accounts SET failed_logins = failed_logins + 1, updated_at = ? \
                 WHERE username = ? RETURNING failed_logins",
            )
            .bind(now)
            .bind(&name)
            .fetch_one(&self.pool)
            .await?;
            let limit = i64::from(self.lockout.after_failures);
            // The failure that reaches the limit first locks and resets the
            // count; one made meanwhile finds it reset and locks nothing again.
            let locked = failed >= limit
                && sqlx::query(
                    "UPDATE accounts SET failed_logins = 0, locked_until = ?, updated_at = ? \
                     WHERE username = ? AND failed_logins >= ?",
                )
                .bind(now + self.lockout.lock_ms)
                .bind(now)
                .bind(&name)
                .bind(limit)
                .execute(&self.pool)
                .await?
                .rows_affected()
                    == 1;
            if locked {
                tracing::warn!(account = %name, failures = failed, "admin account locked after repeated wrong passwords");
                self.audit(
                    now,
                    "system",
                    "account.lockout",
                    &name,
                    &format!("{failed} wrong passwords"),
                )
                .await?;
            }
            return Err(AccountError::WrongCredentials);
        }
        sqlx::query(
            "UPDATE accounts SET failed_logins = 0, locked_until = NULL WHERE username = ?",
        )
        .bind(&name)
        .execute(&self.pool)
        .await?;
        Ok(Login {
            username: Username(name),
            role: Role::parse(&role)?,
            must_change_password: must_change == 1,
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
        sqlx::query("UPDATE accounts SET password_hash = ?, must_change = 0, updated_at = ? WHERE username = ?")
            .bind(hashed)
            .bind(now)
            .bind(login.username.as_str())
            .execute(&self.pool)
            .await?;
        self.audit(
            now,
            login.username.as_str(),
            "account.password",
            login.username.as_str(),
            "",
        )
        .await
    }

    /// An administrator sets a role, resets a password (to be changed at the
    /// next login), disables or enables an account, or unlocks it.
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
        let current: Option<(String, i64)> =
            sqlx::query_as("SELECT role, disabled FROM accounts WHERE username = ?")
                .bind(username.as_str())
                .fetch_optional(&self.pool)
                .await?;
        let Some((role, _disabled)) = current else {
            return Err(AccountError::NoSuchAccount(username.to_string()));
        };
        let demotes_admin = role == Role::Administrator.as_str()
            && matches!(
                change,
                AccountChange::Role(Role::Operator | Role::Viewer) | AccountChange::Disabled(true)
            );
        if demotes_admin {
            let admins: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM accounts WHERE role = 'administrator' AND disabled = 0",
            )
            .fetch_one(&self.pool)
            .await?;
            if admins <= 1 {
                return Err(AccountError::LastAdministrator(username.to_string()));
            }
        }
        let (action, detail) = match change {
            AccountChange::Role(role) => {
                sqlx::query("UPDATE accounts SET role = ?, updated_at = ? WHERE username = ?")
                    .bind(role.as_str())
                    .bind(now)
                    .bind(username.as_str())
                    .execute(&self.pool)
                    .await?;
                ("account.role", role.as_str().to_owned())
            }
            AccountChange::ResetPassword(password) => {
                let hashed = blocking(move || hash(&password.0)).await?;
                sqlx::query(
                    "UPDATE accounts SET password_hash = ?, must_change = 1, failed_logins = 0, \
                     locked_until = NULL, updated_at = ? WHERE username = ?",
                )
                .bind(hashed)
                .bind(now)
                .bind(username.as_str())
                .execute(&self.pool)
                .await?;
                ("account.reset_password", String::new())
            }
            AccountChange::Disabled(disabled) => {
                sqlx::query("UPDATE accounts SET disabled = ?, updated_at = ? WHERE username = ?")
                    .bind(i64::from(disabled))
                    .bind(now)
                    .bind(username.as_str())
                    .execute(&self.pool)
                    .await?;
                (
                    if disabled {
                        "account.disable"
                    } else {
                        "account.enable"
                    },
                    String::new(),
                )
            }
            AccountChange::Unlock => {
                sqlx::query(
                    "UPDATE accounts SET failed_logins = 0, locked_until = NULL, updated_at = ? WHERE username = ?",
                )
                .bind(now)
                .bind(username.as_str())
                .execute(&self.pool)
                .await?;
                ("account.unlock", String::new())
            }
        };
        self.audit(now, actor, action, username.as_str(), &detail)
            .await
    }

    /// Every account, by name.
    ///
    /// # Errors
    ///
    /// Database.
    pub async fn list(&self, now: i64) -> Result<Vec<AccountInfo>, AccountError> {
        let rows: Vec<(String, String, i64, Option<i64>, i64)> = sqlx::query_as(
            "SELECT username, role, must_change, locked_until, disabled FROM accounts ORDER BY username",
        )
        .fetch_all(&self.pool)
        .await?;
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
    use crate::db::{Durability, GatewayDb};

    async fn accounts(dir: &tempfile::TempDir) -> (Accounts, GatewayDb) {
        let db = GatewayDb::open(
            &format!("sqlite://{}/journal.db", dir.path().display()),
            Durability::Full,
        )
        .await
        .unwrap();
        (
            Accounts::new(
                db.pool().legacy_sqlite().clone(),
                LockoutPolicy {
                    after_failures: 3,
                    lock_ms: 60_000,
                },
            ),
            db,
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

    #[tokio::test]
    async fn a_first_password_must_be_changed_and_the_change_is_audited() {
        let dir = tempfile::tempdir().unwrap();
        let (accounts, _db) = accounts(&dir).await;
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
        let stored: String = sqlx::query_scalar("SELECT password_hash FROM accounts")
            .fetch_one(&accounts.pool)
            .await
            .unwrap();
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(!stored.contains("Second"));
    }

    #[tokio::test]
    async fn repeated_wrong_passwords_lock_the_account_for_a_while() {
        let dir = tempfile::tempdir().unwrap();
        let (accounts, _db) = accounts(&dir).await;
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

    #[tokio::test]
    async fn administrators_change_roles_but_never_remove_the_last_one() {
        let dir = tempfile::tempdir().unwrap();
        let (accounts, _db) = accounts(&dir).await;
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
}
