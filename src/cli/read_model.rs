//! `motcua-sms import FILE` and `motcua-sms status`: the read model loaded
//! from the portal's JSON Lines, and its sync state for monitoring scripts.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::config::Config;
use crate::import::{import_json_lines, ImportReport};
use crate::store::{DossierWriter, ReadModel};

/// Exit code when an import had bad lines (sysexits EX_DATAERR).
pub const EX_DATAERR: u8 = 65;

/// Exit code of `status` when the read model is stale.
pub const EXIT_STALE: u8 = 3;

/// Loads `file` into the read model; every bad line and every field left
/// out is named on standard error, then the counts. Exits
/// [`EX_DATAERR`] when a line was bad.
pub async fn import(config: &Config, file: &Path) -> anyhow::Result<ExitCode> {
    let store = ReadModel::open(&config.database.url).await?;
    let reader =
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let report: ImportReport = import_json_lines(&store, std::io::BufReader::new(reader)).await?;
    for bad in &report.bad {
        eprintln!("{}:{}: {}", file.display(), bad.line, bad.reason);
    }
    for kept in &report.left_out {
        eprintln!(
            "{}:{}: {} kept: {}",
            file.display(),
            kept.line,
            kept.code,
            kept.warning
        );
    }
    eprintln!(
        "{}: {} inserted, {} updated, {} unchanged, {} bad line(s), {} field(s) left out",
        file.display(),
        report.inserted,
        report.updated,
        report.unchanged,
        report.bad.len(),
        report.left_out.len()
    );
    store.close().await;
    Ok(if report.bad.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EX_DATAERR)
    })
}

/// Prints the read model's size and sync state; exits [`EXIT_STALE`] when
/// the data is stale.
pub async fn status(config: &Config) -> anyhow::Result<ExitCode> {
    let store = ReadModel::open(&config.database.url).await?;
    let dossiers = store.count().await?;
    let sources = store.all_sync_status().await?;
    store.close().await;
    let report = crate::sync::StatusReport::new(
        dossiers,
        sources,
        config.sync.stale_after(),
        crate::clock::now_ms(),
    );
    print!("{report}");
    Ok(if report.is_stale() {
        ExitCode::from(EXIT_STALE)
    } else {
        ExitCode::SUCCESS
    })
}
