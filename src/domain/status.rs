//! Dossier processing status as the national public service portal codes it
//! (`TrangThaiHoSo` 1–10), its Vietnamese labels, and whether a dossier is on
//! time or late against its appointment date.

use chrono::NaiveDateTime;

/// The national portal's processing status of a dossier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DossierStatus {
    /// 1 — Mới đăng ký: registered online, not yet received.
    Registered,
    /// 2 — Được tiếp nhận: received by the one-stop desk.
    Received,
    /// 3 — Không được tiếp nhận: refused at reception.
    NotAccepted,
    /// 4 — Đang xử lý: being processed.
    InProgress,
    /// 5 — Yêu cầu bổ sung giấy tờ: the applicant must supply more papers.
    SupplementRequested,
    /// 6 — Yêu cầu thực hiện nghĩa vụ tài chính: fees or taxes are due.
    FinancialObligation,
    /// 7 — Công dân yêu cầu rút hồ sơ: withdrawn at the applicant's request.
    Withdrawn,
    /// 8 — Dừng xử lý: processing stopped.
    Stopped,
    /// 9 — Đã xử lý xong: processed, result ready to be returned.
    Processed,
    /// 10 — Đã trả kết quả: result returned to the applicant.
    Returned,
}

/// A status code outside 1–10.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TrangThaiHoSo must be a status code from 1 to 10, got {0}")]
pub struct UnknownStatus(pub i64);

impl DossierStatus {
    /// Every status, in code order.
    pub const ALL: [DossierStatus; 10] = [
        DossierStatus::Registered,
        DossierStatus::Received,
        DossierStatus::NotAccepted,
        DossierStatus::InProgress,
        DossierStatus::SupplementRequested,
        DossierStatus::FinancialObligation,
        DossierStatus::Withdrawn,
        DossierStatus::Stopped,
        DossierStatus::Processed,
        DossierStatus::Returned,
    ];

    /// The status for a portal code.
    pub fn from_code(code: i64) -> Result<Self, UnknownStatus> {
        usize::try_from(code)
            .ok()
            .and_then(|c| c.checked_sub(1))
            .and_then(|i| Self::ALL.get(i).copied())
            .ok_or(UnknownStatus(code))
    }

    /// The portal code, 1–10.
    pub fn code(self) -> u8 {
        Self::ALL
            .iter()
            .position(|s| *s == self)
            .map_or(0, |i| i as u8 + 1)
    }

    /// The portal's Vietnamese label.
    pub fn label(self) -> &'static str {
        match self {
            DossierStatus::Registered => "Mới đăng ký",
            DossierStatus::Received => "Được tiếp nhận",
            DossierStatus::NotAccepted => "Không được tiếp nhận",
            DossierStatus::InProgress => "Đang xử lý",
            DossierStatus::SupplementRequested => "Yêu cầu bổ sung giấy tờ",
            DossierStatus::FinancialObligation => "Yêu cầu thực hiện nghĩa vụ tài chính",
            DossierStatus::Withdrawn => "Công dân yêu cầu rút hồ sơ",
            DossierStatus::Stopped => "Dừng xử lý",
            DossierStatus::Processed => "Đã xử lý xong",
            DossierStatus::Returned => "Đã trả kết quả",
        }
    }

    /// Processing finished with a result (9 or 10).
    pub fn is_finished(self) -> bool {
        matches!(self, DossierStatus::Processed | DossierStatus::Returned)
    }

    /// The dossier will not be processed (refused, withdrawn or stopped):
    /// on-time or late has no meaning for it.
    pub fn is_abandoned(self) -> bool {
        matches!(
            self,
            DossierStatus::NotAccepted | DossierStatus::Withdrawn | DossierStatus::Stopped
        )
    }

    /// On time or late, per the portal's rule: a finished dossier is on time
    /// when it finished no later than its appointment; an open dossier is late
    /// once `now` is past its appointment. `finished_at` falls back to
    /// `returned_at` for a returned dossier without a finish date.
    pub fn timeliness(
        self,
        appointment_at: Option<NaiveDateTime>,
        finished_at: Option<NaiveDateTime>,
        returned_at: Option<NaiveDateTime>,
        now: NaiveDateTime,
    ) -> Timeliness {
        if self.is_abandoned() {
            return Timeliness::NotApplicable;
        }
        let Some(appointment) = appointment_at else {
            return Timeliness::NotApplicable;
        };
        if self.is_finished() {
            return match finished_at.or(returned_at) {
                Some(done) if done <= appointment => Timeliness::OnTime,
                Some(_) => Timeliness::Late,
                None => Timeliness::NotApplicable,
            };
        }
        if now > appointment {
            Timeliness::Late
        } else {
            Timeliness::WithinDeadline
        }
    }
}

/// How a dossier stands against its appointment date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeliness {
    /// Finished no later than the appointment.
    OnTime,
    /// Still open and the appointment has not passed.
    WithinDeadline,
    /// Finished after the appointment, or still open past it.
    Late,
    /// No appointment, or the dossier was refused, withdrawn or stopped.
    NotApplicable,
}

impl Timeliness {
    /// Vietnamese label for replies ("" when not applicable).
    pub fn label(self) -> &'static str {
        match self {
            Timeliness::OnTime => "đúng hạn",
            Timeliness::WithinDeadline => "còn hạn",
            Timeliness::Late => "trễ hạn",
            Timeliness::NotApplicable => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(d: u32, h: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2024, 3, d)
            .unwrap()
            .and_hms_opt(h, 0, 0)
            .unwrap()
    }

    #[test]
    fn codes_round_trip_and_labels_match_the_portal() {
        for code in 1..=10 {
            let status = DossierStatus::from_code(code).unwrap();
            assert_eq!(i64::from(status.code()), code);
        }
        assert_eq!(DossierStatus::from_code(4).unwrap().label(), "Đang xử lý");
        assert_eq!(
            DossierStatus::from_code(10).unwrap().label(),
            "Đã trả kết quả"
        );
        assert_eq!(DossierStatus::from_code(0), Err(UnknownStatus(0)));
        assert_eq!(DossierStatus::from_code(11), Err(UnknownStatus(11)));
        assert_eq!(DossierStatus::from_code(-3), Err(UnknownStatus(-3)));
    }

    #[test]
    fn finished_on_or_before_the_appointment_is_on_time() {
        let s = DossierStatus::Returned;
        assert_eq!(
            s.timeliness(Some(at(20, 17)), Some(at(20, 17)), None, at(25, 8)),
            Timeliness::OnTime
        );
        assert_eq!(
            s.timeliness(Some(at(20, 17)), Some(at(21, 8)), None, at(25, 8)),
            Timeliness::Late
        );
        assert_eq!(
            s.timeliness(Some(at(20, 17)), None, Some(at(19, 8)), at(25, 8)),
            Timeliness::OnTime
        );
    }

    #[test]
    fn open_dossier_is_late_only_after_the_appointment() {
        let s = DossierStatus::InProgress;
        assert_eq!(
            s.timeliness(Some(at(20, 17)), None, None, at(20, 16)),
            Timeliness::WithinDeadline
        );
        assert_eq!(
            s.timeliness(Some(at(20, 17)), None, None, at(20, 18)),
            Timeliness::Late
        );
    }

    #[test]
    fn abandoned_or_undated_dossiers_have_no_timeliness() {
        assert_eq!(
            DossierStatus::Withdrawn.timeliness(Some(at(1, 1)), None, None, at(20, 1)),
            Timeliness::NotApplicable
        );
        assert_eq!(
            DossierStatus::InProgress.timeliness(None, None, None, at(20, 1)),
            Timeliness::NotApplicable
        );
    }
}
