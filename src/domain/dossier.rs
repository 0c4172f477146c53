//! The dossier as the read model keeps it: the fields a reply may use, the
//! applicant's contact for the privacy rule, and the version that orders
//! updates from the one-stop core.

use chrono::NaiveDateTime;

use super::{DossierCode, DossierStatus, Msisdn, Timeliness};

/// One administrative dossier in the gateway's read model. Times are local
/// Vietnamese time (Asia/Ho_Chi_Minh), as the portal records them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dossier {
    /// `MaHoSo`, canonical.
    pub code: DossierCode,
    /// `TenTTHC`: the administrative procedure's name.
    pub procedure_name: Option<String>,
    /// `DonViXuLy`: the agency processing it.
    pub agency_name: Option<String>,
    /// `TrangThaiHoSo`.
    pub status: DossierStatus,
    /// `NgayTiepNhan`.
    pub received_at: Option<NaiveDateTime>,
    /// `NgayHenTra`: the appointment date for the result.
    pub appointment_at: Option<NaiveDateTime>,
    /// `NgayKetThucXuLy`: when processing finished.
    pub finished_at: Option<NaiveDateTime>,
    /// `NgayTra`: when the result was handed back.
    pub returned_at: Option<NaiveDateTime>,
    /// `SoDienThoai`: the applicant's registered phone number.
    pub owner_phone: Option<Msisdn>,
    /// `ChuHoSo`: the applicant's name; only ever shown to `owner_phone`.
    pub owner_name: Option<String>,
    /// Monotonic version from the core; an update with a version not above
    /// the stored one is ignored.
    pub version: i64,
}

impl Dossier {
    /// On time or late at `now` (local time).
    pub fn timeliness(&self, now: NaiveDateTime) -> Timeliness {
        self.status
            .timeliness(self.appointment_at, self.finished_at, self.returned_at, now)
    }

    /// True when `sender` is the phone number registered on the dossier: the
    /// only case in which personal data may appear in a reply.
    pub fn is_owned_by(&self, sender: &Msisdn) -> bool {
        self.owner_phone.as_ref() == Some(sender)
    }
}
