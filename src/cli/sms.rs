//! `motcua-sms sms send`: binds to the running listener as a carrier would,
//! sends one citizen's message and prints the reply.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;

use crate::config::Config;
use crate::smpp::client::send_and_receive;
use crate::sms_text;

// (No doc comment: clap would show it in --help.)
#[derive(Subcommand)]
pub enum SmsCommand {
    /// Bind to the running listener, send TEXT, print the reply.
    Send {
        /// The citizen's phone number.
        #[arg(long)]
        from: String,
        /// The number texted (default: service.number from the configuration).
        #[arg(long)]
        to: Option<String>,
        /// Listener address (default: smpp.listener.bind).
        #[arg(long)]
        addr: Option<std::net::SocketAddr>,
        /// Account to bind with (default: the first listener account).
        #[arg(long)]
        system_id: Option<String>,
        /// Its password (default: the first listener account's).
        #[arg(long)]
        password: Option<String>,
        /// Seconds to wait for the reply.
        #[arg(long, default_value_t = 10)]
        wait: u64,
        /// The message text.
        text: String,
    },
}

/// Runs an `sms` subcommand: the reply's text on standard output, its
/// parts, encoding and segments on standard error.
pub async fn sms(config: &Config, command: SmsCommand) -> anyhow::Result<ExitCode> {
    let SmsCommand::Send {
        from,
        to,
        addr,
        system_id,
        password,
        wait,
        text,
    } = command;
    let account = config.smpp.listener.accounts.first();
    let system_id = system_id
        .or_else(|| account.map(|a| a.system_id.clone()))
        .context("no --system-id given and no [[smpp.listener.accounts]] configured")?;
    let password = password
        .or_else(|| account.map(|a| a.password.clone()))
        .unwrap_or_default();
    let reply = send_and_receive(
        addr.unwrap_or(config.smpp.listener.bind),
        &system_id,
        &password,
        &from,
        to.as_deref().unwrap_or(&config.service.number),
        &text,
        Duration::from_secs(wait),
    )
    .await?;
    let info = sms_text::segment_info(&reply.text);
    println!("{}", reply.text);
    eprintln!(
        "({} parts received, {}, {} segment(s))",
        reply.parts.len(),
        info.encoding.name(),
        info.segments
    );
    Ok(ExitCode::SUCCESS)
}
