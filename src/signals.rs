//! The process's signals: SIGTERM or Ctrl-C starts a drain (a
//! cancellation token), SIGHUP puts a re-read `config.toml` in force through
//! the gateway's [`Reloader`]. `run` uses both; the feed commands the first.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use crate::app::{ReloadError, Reloader};
use crate::config::Config;

/// On every SIGHUP (`systemctl reload motcua-sms`) reads `config.toml` again
/// and puts its `[reply]`, `[rate_limit]` and `[log]` in force with the
/// templates reloaded; a file or template that fails its checks is refused
/// and what is in use stays.
pub async fn reload_on_hangup(mut reloader: Reloader, config_path: Option<PathBuf>) {
    #[cfg(unix)]
    {
        let mut hangups = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::hangup(),
        ) {
            Ok(hangups) => hangups,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP; templates reload only on restart");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            let config = match Config::load(config_path.as_deref()) {
                Ok(config) => config,
                Err(error) => {
                    tracing::error!(%error, "configuration not reloaded; the one in use stays");
                    continue;
                }
            };
            match reloader.apply_config(&config) {
                Ok(()) => {}
                Err(error @ ReloadError::Templates(_)) => {
                    tracing::error!(%error, "templates not reloaded; the ones in use stay")
                }
                Err(error) => {
                    tracing::error!(%error, "configuration not reloaded; the one in use stays")
                }
            }
        }
    }
    #[cfg(not(unix))]
    drop((reloader, config_path));
}

/// Cancels `shutdown` on SIGTERM or Ctrl-C.
pub async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutdown requested; draining");
    shutdown.cancel();
}
