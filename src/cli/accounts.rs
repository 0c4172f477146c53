//! `motcua-sms account`: the admin console's accounts (create, list, roles,
//! passwords, lockouts, disable) and the audit log, every change audited
//! as made by `cli`. Passwords come from standard input, never arguments.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::config::Config;
use crate::db::GatewayDb;

// (No doc comment: clap would show it in --help.)
#[derive(Subcommand)]
pub enum AccountCommand {
    /// Create an account; its first password (from stdin) must be changed at the first login.
    Add {
        /// The username (3–32 of a-z 0-9 . _ -).
        username: String,
        /// administrator, operator or viewer.
        #[arg(long)]
        role: String,
    },
    /// List the accounts.
    List,
    /// Set an account's role.
    Role {
        /// The username.
        username: String,
        /// administrator, operator or viewer.
        role: String,
    },
    /// Set a new password (from stdin), to be changed at the next login; lifts a lockout.
    ResetPassword {
        /// The username.
        username: String,
    },
    /// Lift a lockout after repeated wrong passwords.
    Unlock {
        /// The username.
        username: String,
    },
    /// Refuse every login of the account.
    Disable {
        /// The username.
        username: String,
    },
    /// Allow the account to log in again.
    Enable {
        /// The username.
        username: String,
    },
    /// The latest entries of the audit log.
    Audit {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

/// One line from standard input: the password (never an argument, which
/// other users could read in the process list).
fn password_from_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(
        !password.is_empty(),
        "no password on standard input: pipe it in, e.g. `read -rs P && echo \"$P\" | motcua-sms account add ...`"
    );
    Ok(password)
}

/// Runs an `account` subcommand against the journal's database.
pub async fn account(config: &Config, command: AccountCommand) -> anyhow::Result<ExitCode> {
    use crate::admin::accounts::{
        AccountChange, Accounts, LockoutPolicy, NewPassword, Role, Username,
    };
    let db = GatewayDb::open(&config.journal.url, config.journal.synchronous).await?;
    let accounts = Accounts::new(db.pool().clone(), LockoutPolicy::default());
    let now = crate::clock::now_ms();
    let change = |username: &str, change: AccountChange| {
        let accounts = accounts.clone();
        let username = username.to_owned();
        async move {
            let user = Username::parse(&username)?;
            accounts.update("cli", &user, change, now).await?;
            anyhow::Ok(user)
        }
    };
    match command {
        AccountCommand::Add { username, role } => {
            let user = Username::parse(&username)?;
            let role = Role::parse(&role)?;
            let password = NewPassword::parse(&password_from_stdin()?, &user)?;
            accounts.create("cli", &user, role, password, now).await?;
            println!("created {user} ({role}); the password must be changed at the first login");
        }
        AccountCommand::List => {
            for a in accounts.list(now).await? {
                let mut flags = Vec::new();
                if a.must_change_password {
                    flags.push("must change password".to_owned());
                }
                if let Some(until) = a.locked_until {
                    flags.push(format!(
                        "locked until {}",
                        chrono::DateTime::from_timestamp_millis(until)
                            .map_or(until.to_string(), |t| t.to_rfc3339())
                    ));
                }
                if a.disabled {
                    flags.push("disabled".to_owned());
                }
                println!("{}\t{}\t{}", a.username, a.role, flags.join(", "));
            }
        }
        AccountCommand::Role { username, role } => {
            let role = Role::parse(&role)?;
            let user = change(&username, AccountChange::Role(role)).await?;
            println!("{user} is now {role}");
        }
        AccountCommand::ResetPassword { username } => {
            let user = Username::parse(&username)?;
            let password = NewPassword::parse(&password_from_stdin()?, &user)?;
            change(&username, AccountChange::ResetPassword(password)).await?;
            println!("{user}: new password set; it must be changed at the next login");
        }
        AccountCommand::Unlock { username } => {
            let user = change(&username, AccountChange::Unlock).await?;
            println!("{user} unlocked");
        }
        AccountCommand::Disable { username } => {
            let user = change(&username, AccountChange::Disabled(true)).await?;
            println!("{user} disabled");
        }
        AccountCommand::Enable { username } => {
            let user = change(&username, AccountChange::Disabled(false)).await?;
            println!("{user} enabled");
        }
        AccountCommand::Audit { limit } => {
            for (at, actor, action, target, detail) in accounts.audit_log(limit).await? {
                let at = chrono::DateTime::from_timestamp_millis(at)
                    .map_or(at.to_string(), |t| t.to_rfc3339());
                println!("{at}\t{actor}\t{action}\t{target}\t{detail}");
            }
        }
    }
    db.close().await;
    Ok(ExitCode::SUCCESS)
}
