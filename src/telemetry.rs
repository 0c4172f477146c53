//! Logging through tracing: structured fields first, text or JSON lines on
//! stderr, filtered by `RUST_LOG` or `[log] level`. Phone numbers reach the
//! logs only through `Msisdn`'s redacted `Display`. The level can be changed
//! while running ([`set_level`], on SIGHUP) unless `RUST_LOG` sets it.

use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

type LevelSetter = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;

/// Replaces the filter of the installed subscriber, when `[log] level` rules it.
static LEVEL: OnceLock<LevelSetter> = OnceLock::new();

/// Installs the global subscriber (once; later calls are ignored).
pub fn init(config: &LogConfig) {
    let from_env = EnvFilter::try_from_default_env().ok();
    let by_config = from_env.is_none();
    let filter = from_env
        .or_else(|| EnvFilter::try_new(&config.level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let setter: Option<LevelSetter> = match config.format {
        LogFormat::Text => {
            let builder = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(ansi)
                .with_filter_reloading();
            let handle = builder.reload_handle();
            builder
                .try_init()
                .ok()
                .map(|()| Box::new(move |f| handle.reload(f).map_err(|e| e.to_string())) as _)
        }
        LogFormat::Json => {
            let builder = tracing_subscriber::fmt()
                .json()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(ansi)
                .with_filter_reloading();
            let handle = builder.reload_handle();
            builder
                .try_init()
                .ok()
                .map(|()| Box::new(move |f| handle.reload(f).map_err(|e| e.to_string())) as _)
        }
    };
    if let (true, Some(setter)) = (by_config, setter) {
        let _ = LEVEL.set(setter);
    }
}

/// Puts `[log] level` = `level` in force. `Ok(false)` when nothing changed
/// because `RUST_LOG` rules the level (or no subscriber was installed here).
///
/// # Errors
///
/// The level is not a valid filter.
pub fn set_level(level: &str) -> Result<bool, String> {
    let filter = EnvFilter::try_new(level).map_err(|e| format!("[log] level {level:?}: {e}"))?;
    match LEVEL.get() {
        Some(set) => set(filter).map(|()| true),
        None => Ok(false),
    }
}
