//! `motcua-sms import FILE`: loads JSON Lines of portal records into the read
//! model. Good lines are stored (version-guarded, so a second run changes
//! nothing); bad lines are reported with their line number and reason. A
//! line whose optional field cannot be used (a `SoDienThoai` that is not a
//! number, a date that does not parse) is stored without that field, and
//! the field is reported and logged.

use std::io::BufRead;

use crate::portal_record::{Checked, FieldWarning, PortalRecord, RecordError};
use crate::store::{DossierWriter, StoreError, UpsertOutcome};

/// Lines written to the store per transaction.
const BATCH_SIZE: usize = 500;

/// A line that could not be imported.
#[derive(Debug)]
pub struct BadLine {
    /// 1-based line number in the file.
    pub line: usize,
    /// Why it was rejected.
    pub reason: String,
}

/// An optional field a stored line was kept without.
#[derive(Debug)]
pub struct LeftOutLine {
    /// 1-based line number in the file.
    pub line: usize,
    /// The dossier's canonical code.
    pub code: String,
    /// What was left out and why (never shows a number in full).
    pub warning: FieldWarning,
}

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// Dossiers that were new.
    pub inserted: usize,
    /// Dossiers replaced by a newer version.
    pub updated: usize,
    /// Records whose version was not above the stored one.
    pub unchanged: usize,
    /// Lines rejected, in file order.
    pub bad: Vec<BadLine>,
    /// Optional fields left out of stored lines, in file order.
    pub left_out: Vec<LeftOutLine>,
}

impl ImportReport {
    fn count(&mut self, outcome: UpsertOutcome) {
        match outcome {
            UpsertOutcome::Inserted => self.inserted += 1,
            UpsertOutcome::Updated => self.updated += 1,
            UpsertOutcome::Unchanged => self.unchanged += 1,
        }
    }
}

/// Import failures that stop the whole run (bad lines do not).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The input could not be read.
    #[error("cannot read line {line}: {source}")]
    Read {
        /// Line being read.
        line: usize,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The store refused a batch.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Parses one line: `Ok(None)` for a blank line.
fn parse_line(text: &str) -> Result<Option<Checked>, RecordError> {
    let text = text.trim_start_matches('\u{feff}').trim();
    if text.is_empty() {
        return Ok(None);
    }
    PortalRecord::from_json(text)?.into_checked().map(Some)
}

/// Reads JSON Lines from `input` and writes every valid record to `store`.
pub async fn import_json_lines<S: DossierWriter>(
    store: &S,
    input: impl BufRead,
) -> Result<ImportReport, ImportError> {
    let mut report = ImportReport::default();
    let mut batch = Vec::with_capacity(BATCH_SIZE);
    for (index, line) in input.lines().enumerate() {
        let number = index + 1;
        let text = line.map_err(|source| ImportError::Read {
            line: number,
            source,
        })?;
        match parse_line(&text) {
            Ok(Some(checked)) => {
                let code = checked.dossier.code.to_string();
                for warning in checked.warnings {
                    crate::sync::log_left_out("import", &code, &warning);
                    report.left_out.push(LeftOutLine {
                        line: number,
                        code: code.clone(),
                        warning,
                    });
                }
                batch.push(checked.dossier);
            }
            Ok(None) => {}
            Err(e) => report.bad.push(BadLine {
                line: number,
                reason: e.to_string(),
            }),
        }
        if batch.len() >= BATCH_SIZE {
            for outcome in store.upsert_batch(&batch).await? {
                report.count(outcome);
            }
            batch.clear();
        }
    }
    if !batch.is_empty() {
        for outcome in store.upsert_batch(&batch).await? {
            report.count(outcome);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DossierLookup, SqliteStore};

    const INPUT: &str = concat!(
        r#"{"MaHoSo":"000.00.12.H58-240315-0007","TrangThaiHoSo":4}"#,
        "\n\n",
        r#"{"MaHoSo":"000.00.12.H58-240315-0008","TrangThaiHoSo":12}"#,
        "\n",
        "{broken\n",
        r#"{"MaHoSo":"000.00.12.H58-240315-0009","TrangThaiHoSo":"10","version":2}"#,
        "\n",
    );

    #[tokio::test]
    async fn good_lines_land_bad_lines_are_reported_and_a_rerun_changes_nothing() {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        let report = import_json_lines(&store, INPUT.as_bytes()).await.unwrap();
        assert_eq!(report.inserted, 2);
        assert_eq!(
            report.bad.iter().map(|b| b.line).collect::<Vec<_>>(),
            vec![3, 4]
        );
        assert!(report.bad[0].reason.contains("TrangThaiHoSo"));
        let again = import_json_lines(&store, INPUT.as_bytes()).await.unwrap();
        assert_eq!((again.inserted, again.updated, again.unchanged), (0, 0, 2));
        assert_eq!(store.count().await.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_record_with_an_unusable_phone_or_date_is_stored_without_it() {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        let input = concat!(
            r#"{"MaHoSo":"000.00.12.H58-240315-0011","TrangThaiHoSo":4,"SoDienThoai":"0273 123 45","ChuHoSo":"Trần Thị Bình"}"#,
            "\n",
            r#"{"MaHoSo":"000.00.12.H58-240315-0012","TrangThaiHoSo":4,"SoDienThoai":"0912345678 - 0987654321"}"#,
            "\n",
            r#"{"MaHoSo":"000.00.12.H58-240315-0013","TrangThaiHoSo":4,"NgayHenTra":"29/03/2024"}"#,
            "\n",
        );
        let report = import_json_lines(&store, input.as_bytes()).await.unwrap();
        assert!(report.bad.is_empty(), "{:?}", report.bad);
        assert_eq!(report.inserted, 3);
        for (code, phone) in [
            ("000.00.12.H58-240315-0011", None),
            ("000.00.12.H58-240315-0012", Some("0912345678")),
            ("000.00.12.H58-240315-0013", None),
        ] {
            let code = crate::domain::DossierCode::parse(code).unwrap();
            let dossier = store
                .find(&code)
                .await
                .unwrap()
                .expect("the dossier is kept");
            assert_eq!(
                dossier
                    .owner_phone
                    .as_ref()
                    .map(|p| p.national())
                    .as_deref(),
                phone
            );
        }
        let noted: Vec<(usize, &str)> = report
            .left_out
            .iter()
            .map(|l| (l.line, l.warning.field()))
            .collect();
        assert_eq!(
            noted,
            [(1, "SoDienThoai"), (2, "SoDienThoai"), (3, "NgayHenTra")]
        );
    }
}
