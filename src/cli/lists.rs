//! `motcua-sms block` and `motcua-sms allow`: the block and allow lists in
//! the journal's database, which a running gateway reads on every message.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::abuse::AbuseGuard;
use crate::config::Config;
use crate::db::GatewayDb;
use crate::domain::Msisdn;

// (No doc comment: clap would show it in --help.)
#[derive(Subcommand)]
pub enum ListCommand {
    /// Add a phone number.
    Add {
        /// The number, in any usual form (0912345678, +84 912 345 678).
        number: String,
        /// Block for this many hours only (block list; default: until removed).
        #[arg(long)]
        hours: Option<i64>,
        /// Why (shown to admins).
        #[arg(long, default_value = "added by an administrator")]
        reason: String,
    },
    /// Remove a phone number.
    Remove {
        /// The number.
        number: String,
    },
    /// List current blocks (block list only).
    List,
}

/// Edits the block list (`block = true`) or the allow list in the journal
/// database; a running gateway reads them on every message.
pub async fn edit_list(
    config: &Config,
    block: bool,
    command: ListCommand,
) -> anyhow::Result<ExitCode> {
    let db = GatewayDb::open(&config.journal.url, config.journal.synchronous).await?;
    let guard =
        AbuseGuard::open(config.rate_limit.clone(), db.pool().legacy_sqlite().clone()).await?;
    let parse = |number: &str| {
        Msisdn::parse(number).with_context(|| format!("{number:?} is not a phone number"))
    };
    match command {
        ListCommand::Add {
            number,
            hours,
            reason,
        } => {
            let number = parse(&number)?;
            if block {
                let until = hours.map(|h| chrono::Utc::now() + chrono::Duration::hours(h));
                guard.block(&number, until, &reason).await?;
                println!(
                    "blocked {}{}",
                    number.national(),
                    until.map(|u| format!(" until {u}")).unwrap_or_default()
                );
            } else {
                guard.allow(&number).await?;
                println!("allowed {}", number.national());
            }
        }
        ListCommand::Remove { number } => {
            let number = parse(&number)?;
            if block {
                guard.unblock(&number).await?;
                println!("unblocked {}", number.national());
            } else {
                guard.disallow(&number).await?;
                println!("removed {} from the allow list", number.national());
            }
        }
        ListCommand::List => {
            for b in guard.blocks().await? {
                let until = b.until.map_or("permanent".to_owned(), |u| u.to_string());
                println!("{}\t{}\t{}", b.sender.national(), until, b.reason);
            }
        }
    }
    db.close().await;
    Ok(ExitCode::SUCCESS)
}
