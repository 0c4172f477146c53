//! The `motcua-sms` binary: parses the command line, loads the
//! configuration and dispatches to the subcommand's room in
//! [`motcua_sms::cli`]. No logic lives here.

use std::process::ExitCode;

use clap::Parser;

use motcua_sms::cli::{self, Cli, Command, EX_CONFIG, SUBCOMMAND_ENV};
use motcua_sms::config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    for name in SUBCOMMAND_ENV {
        // Still one thread: nothing reads the environment concurrently.
        std::env::remove_var(name);
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("motcua-sms: configuration error: {error}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    motcua_sms::telemetry::init(&config.log);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("motcua-sms: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Run { import: None }) {
            Command::Run { import } => cli::run::run(&config, cli.config, import.as_deref()).await,
            Command::Import { file } => cli::read_model::import(&config, &file).await,
            Command::Status => cli::read_model::status(&config).await,
            Command::Sms { command } => cli::sms::sms(&config, command).await,
            Command::Block { command } => cli::lists::edit_list(&config, true, command).await,
            Command::Allow { command } => cli::lists::edit_list(&config, false, command).await,
            Command::Account { command } => cli::accounts::account(&config, command).await,
            Command::State { command } => cli::state::state(&config, command).await,
            Command::Loadgen(args) => cli::loadgen::loadgen(args).await,
            Command::CoreSim(args) => cli::feed::core_sim(args).await,
            Command::Relay(args) => cli::feed::relay(args).await,
            Command::Fanout(args) => cli::feed::fanout(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("motcua-sms: {error:#}");
            ExitCode::FAILURE
        }
    }
}
