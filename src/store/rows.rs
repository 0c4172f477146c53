//! What the read model's dialects share: a dossier's columns as
//! stored (times as `YYYY-MM-DD HH:MM:SS` text on the wire both ways), a
//! sync source's row, the columns a checkpoint is stored in, and the version
//! decision of a batch. The decision is made here, in Rust, after one read
//! of the versions held for the batch's dossiers, so that a batch may hold
//! several changes of one dossier and both dialects decide alike.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;

use super::{
    ApplyMode, ApplyReport, Change, StoreError, SyncCheckpoint, SyncStage, SyncStatus,
    UpsertOutcome,
};
use crate::domain::{Dossier, DossierCode, DossierStatus, Msisdn};

/// How local times travel to and from the database.
pub(super) const DB_TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// A local time as the database receives it (whole seconds).
pub(super) fn db_time(t: Option<NaiveDateTime>) -> Option<String> {
    t.map(|t| t.format(DB_TIME_FORMAT).to_string())
}

/// A dossier's columns as stored.
#[derive(sqlx::FromRow)]
pub(super) struct DossierRow {
    pub(super) code: String,
    pub(super) procedure_name: Option<String>,
    pub(super) agency_name: Option<String>,
    pub(super) status: i64,
    pub(super) received_at: Option<String>,
    pub(super) appointment_at: Option<String>,
    pub(super) finished_at: Option<String>,
    pub(super) returned_at: Option<String>,
    pub(super) owner_phone: Option<String>,
    pub(super) owner_name: Option<String>,
    pub(super) version: i64,
}

impl DossierRow {
    /// The dossier, or [`StoreError::Corrupt`] when the row breaks a domain rule.
    pub(super) fn into_dossier(self) -> Result<Dossier, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            code: self.code.clone(),
            reason,
        };
        let time =
            |column: &str, value: &Option<String>| -> Result<Option<NaiveDateTime>, StoreError> {
                value
                    .as_deref()
                    .map(|v| {
                        NaiveDateTime::parse_from_str(v, DB_TIME_FORMAT)
                            .map_err(|e| corrupt(format!("{column} {v:?}: {e}")))
                    })
                    .transpose()
            };
        Ok(Dossier {
            code: DossierCode::parse(&self.code).map_err(|e| corrupt(e.to_string()))?,
            status: DossierStatus::from_code(self.status).map_err(|e| corrupt(e.to_string()))?,
            received_at: time("received_at", &self.received_at)?,
            appointment_at: time("appointment_at", &self.appointment_at)?,
            finished_at: time("finished_at", &self.finished_at)?,
            returned_at: time("returned_at", &self.returned_at)?,
            // Stored in international form without `+`: read back as
            // international, or a foreign number would be taken for a
            // malformed Vietnamese one.
            owner_phone: self
                .owner_phone
                .as_deref()
                .map(|p| Msisdn::parse(&format!("+{p}")).map_err(|e| corrupt(e.to_string())))
                .transpose()?,
            procedure_name: self.procedure_name,
            agency_name: self.agency_name,
            owner_name: self.owner_name,
            version: self.version,
        })
    }
}

/// A `sync_state` row.
#[derive(sqlx::FromRow)]
pub(super) struct SyncRow {
    source: String,
    epoch: String,
    stage: String,
    cursor: Option<String>,
    page_token: Option<String>,
    authoritative: bool,
    generation: i64,
    pending: Option<i64>,
    last_ok_at: Option<i64>,
    last_applied_at: Option<i64>,
    applied_total: i64,
    last_error: Option<String>,
}

impl SyncRow {
    /// The state, or [`StoreError::CorruptSyncState`] when it cannot be read back.
    pub(super) fn into_status(self) -> Result<SyncStatus, StoreError> {
        let corrupt = |reason: &str| StoreError::CorruptSyncState {
            source_name: self.source.clone(),
            reason: reason.to_owned(),
        };
        let cursor = self.cursor.clone().ok_or_else(|| corrupt("no cursor"))?;
        let stage = match self.stage.as_str() {
            "snapshot" => SyncStage::Snapshot {
                head_cursor: cursor,
                page_token: self.page_token,
                authoritative: self.authoritative,
            },
            "streaming" => SyncStage::Streaming { cursor },
            _ => return Err(corrupt("unknown stage")),
        };
        Ok(SyncStatus {
            checkpoint: SyncCheckpoint {
                source: self.source,
                epoch: self.epoch,
                stage,
                generation: self.generation,
                pending: self.pending.map(|p| p.max(0) as u64),
            },
            last_ok_at_ms: self.last_ok_at,
            last_applied_at_ms: self.last_applied_at,
            applied_total: self.applied_total.max(0) as u64,
            last_error: self.last_error,
        })
    }
}

/// A count as stored (`INTEGER`, `bigint`), saturating.
pub(super) fn db_count(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

/// The `sync_state` columns a checkpoint sets.
pub(super) struct CheckpointColumns<'a> {
    /// `snapshot` or `streaming`.
    pub(super) stage: &'static str,
    /// Streaming: the next `after`; snapshot: the head noted.
    pub(super) cursor: &'a str,
    /// Snapshot: the next page.
    pub(super) page_token: Option<&'a str>,
    /// Snapshot: the core's records win whatever their versions.
    pub(super) authoritative: bool,
    /// Changes the core still had.
    pub(super) pending: Option<i64>,
}

impl<'a> CheckpointColumns<'a> {
    pub(super) fn of(checkpoint: &'a SyncCheckpoint) -> Self {
        let (stage, cursor, page_token, authoritative) = match &checkpoint.stage {
            SyncStage::Snapshot {
                head_cursor,
                page_token,
                authoritative,
            } => (
                "snapshot",
                head_cursor.as_str(),
                page_token.as_deref(),
                *authoritative,
            ),
            SyncStage::Streaming { cursor } => ("streaming", cursor.as_str(), None, false),
        };
        CheckpointColumns {
            stage,
            cursor,
            page_token,
            authoritative,
            pending: checkpoint.pending.map(db_count),
        }
    }
}

/// A version held for a dossier: live, or kept by its tombstone.
#[derive(Clone, Copy)]
struct Held {
    version: i64,
    live: bool,
}

/// The dossiers of a batch, before the versions held are read.
pub(super) struct Batch<'c> {
    changes: &'c [Change],
    /// Every code the batch names, sorted, once each.
    pub(super) codes: Vec<&'c str>,
}

/// What a batch writes, decided.
pub(super) struct Plan<'c> {
    /// The counts, `written` and `deleted` as the writes below make them.
    pub(super) report: ApplyReport,
    /// One outcome per change, in input order.
    pub(super) outcomes: Vec<UpsertOutcome>,
    /// The dossiers to store (the last accepted change of each), by code.
    pub(super) upserts: Vec<&'c Dossier>,
    /// The dossiers to delete and their tombstones' versions, by code.
    pub(super) deletes: Vec<(&'c str, i64)>,
    /// The codes of `upserts` that had a tombstone when the batch began:
    /// the only tombstones storing them must clear.
    pub(super) revived: Vec<&'c str>,
}

impl<'c> Batch<'c> {
    pub(super) fn new(changes: &'c [Change]) -> Self {
        let mut codes: Vec<&str> = changes.iter().map(|c| c.code().as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        Batch { changes, codes }
    }

    /// Decides each change, in order, against `held`: rows of `(code, live
    /// version, tombstone version)` for the batch's codes (codes with
    /// neither may be left out).
    pub(super) fn decide(
        &self,
        mode: ApplyMode,
        held: impl IntoIterator<Item = (String, Option<i64>, Option<i64>)>,
    ) -> Plan<'c> {
        let mut versions: HashMap<String, Held> = HashMap::with_capacity(self.codes.len());
        let mut buried: HashSet<String> = HashSet::new();
        for (code, live, dead) in held {
            if dead.is_some() {
                buried.insert(code.clone());
            }
            let entry = match (live, dead) {
                (Some(v), _) => Held {
                    version: v,
                    live: true,
                },
                (None, Some(v)) => Held {
                    version: v,
                    live: false,
                },
                (None, None) => continue,
            };
            versions.insert(code, entry);
        }
        let mut report = ApplyReport::default();
        let mut outcomes = Vec::with_capacity(self.changes.len());
        // The last accepted change of each dossier is the one written.
        let mut winners: HashMap<&str, &'c Change> = HashMap::with_capacity(self.codes.len());
        for change in self.changes {
            let code = change.code().as_str();
            let before = versions.get(code).copied();
            let accepted = match mode {
                ApplyMode::Authoritative { .. } => true,
                ApplyMode::Guarded | ApplyMode::Snapshot { .. } => {
                    before.is_none_or(|h| change.version() > h.version)
                }
            };
            if !accepted {
                report.unchanged += 1;
                outcomes.push(UpsertOutcome::Unchanged);
                continue;
            }
            outcomes.push(match before {
                Some(h) if h.live => UpsertOutcome::Updated,
                _ => UpsertOutcome::Inserted,
            });
            versions.insert(
                code.to_owned(),
                Held {
                    version: change.version(),
                    live: matches!(change, Change::Upsert(_)),
                },
            );
            winners.insert(code, change);
        }
        let mut winners: Vec<(&str, &'c Change)> = winners.into_iter().collect();
        winners.sort_unstable_by_key(|(code, _)| *code);
        let mut upserts = Vec::new();
        let mut deletes = Vec::new();
        let mut revived = Vec::new();
        for (_, change) in winners {
            match change {
                Change::Upsert(d) => {
                    if buried.contains(d.code.as_str()) {
                        revived.push(d.code.as_str());
                    }
                    upserts.push(d);
                }
                Change::Delete { code, version } => deletes.push((code.as_str(), *version)),
            }
        }
        report.written = upserts.len() as u64;
        report.deleted = deletes.len() as u64;
        Plan {
            report,
            outcomes,
            upserts,
            deletes,
            revived,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(owner_phone: &str) -> DossierRow {
        DossierRow {
            code: "000.00.12.H58-240315-0007".into(),
            procedure_name: None,
            agency_name: None,
            status: 4,
            received_at: None,
            appointment_at: Some("2024-03-29 17:00:00".into()),
            finished_at: None,
            returned_at: None,
            owner_phone: Some(owner_phone.into()),
            owner_name: None,
            version: 1,
        }
    }

    #[test]
    fn only_dossiers_written_over_a_tombstone_are_revived() {
        let dossier = |n: u32, version: i64| {
            let mut d = row("0912345678").into_dossier().unwrap();
            d.code = DossierCode::parse(&format!("000.00.12.H58-240315-{n:04}")).unwrap();
            d.version = version;
            Change::Upsert(d)
        };
        let changes = [dossier(1, 5), dossier(2, 5), dossier(3, 2), dossier(4, 1)];
        let batch = Batch::new(&changes);
        let code = |n: u32| format!("000.00.12.H58-240315-{n:04}");
        // 1: buried at 4; 2: live at 3; 3: buried at 7 (stays buried); 4: new.
        let plan = batch.decide(
            ApplyMode::Guarded,
            [
                (code(1), None, Some(4)),
                (code(2), Some(3), None),
                (code(3), None, Some(7)),
            ],
        );
        assert_eq!(plan.revived, [code(1).as_str()]);
        assert_eq!(plan.upserts.len(), 3);
        assert_eq!(
            plan.outcomes,
            [
                UpsertOutcome::Inserted,
                UpsertOutcome::Updated,
                UpsertOutcome::Unchanged,
                UpsertOutcome::Inserted
            ]
        );
    }

    #[test]
    fn stored_phones_read_back_as_written() {
        for written in [
            "0912345678",
            "024 3825 3536",
            "+44 20 7183 8750",
            "+1 202 555 0143",
        ] {
            let phone = Msisdn::parse(written).unwrap();
            let dossier = row(phone.as_international()).into_dossier().unwrap();
            assert_eq!(dossier.owner_phone, Some(phone), "{written}");
        }
    }
}
