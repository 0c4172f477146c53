//! `motcua-sms run` (the default command): optionally imports a file, then
//! runs the gateway until SIGTERM or Ctrl-C, reloading on SIGHUP
//! ([`crate::signals`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::app::Gateway;
use crate::config::Config;
use crate::signals::{cancel_on_signal, reload_on_hangup};

/// Imports `import_first` when given (bad lines are logged, not fatal),
/// builds the gateway from `config` and runs it until a signal asks it to
/// stop; `config_path` is read again on every SIGHUP.
pub async fn run(
    config: &Config,
    config_path: Option<PathBuf>,
    import_first: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    if let Some(file) = import_first {
        let code = super::read_model::import(config, file).await?;
        if code != ExitCode::SUCCESS {
            tracing::warn!(file = %file.display(), "some lines were not imported; serving anyway");
        }
    }
    let gateway = Gateway::build(config).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    tokio::spawn(reload_on_hangup(gateway.reloader(), config_path));
    gateway.run(shutdown).await;
    Ok(ExitCode::SUCCESS)
}
