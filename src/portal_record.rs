//! The national public service portal's dossier record shape (`MaHoSo`,
//! `TrangThaiHoSo`, `NgayHenTra`, …) as JSON, and its validated conversion
//! into a [`Dossier`]. Used by `motcua-sms import` and by the core feed.
//!
//! Fields the gateway does not use (`MaTTHC`, `TaiLieuNop`, …) are accepted
//! and ignored, so a core can send its full record.

use chrono::NaiveDateTime;
use serde::Deserialize;

use crate::domain::{Dossier, DossierCode, DossierStatus, Msisdn};

/// Format of the portal's timestamps (`yyyyMMddHHmmss`, Asia/Ho_Chi_Minh).
const PORTAL_TIME_FORMAT: &str = "%Y%m%d%H%M%S";

/// A record as the portal writes it; every field is checked by [`PortalRecord::into_dossier`].
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortalRecord {
    ma_ho_so: Option<String>,
    #[serde(rename = "TenTTHC")]
    ten_tthc: Option<String>,
    don_vi_xu_ly: Option<String>,
    trang_thai_ho_so: Option<NumberOrText>,
    ngay_tiep_nhan: Option<String>,
    ngay_hen_tra: Option<String>,
    ngay_ket_thuc_xu_ly: Option<String>,
    ngay_tra: Option<String>,
    so_dien_thoai: Option<String>,
    chu_ho_so: Option<String>,
    #[serde(rename = "version")]
    version: Option<i64>,
}

/// Cores write numbers either as JSON numbers or as strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(i64),
    Text(String),
}

/// Why a record cannot become a dossier. Each names the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Not JSON, or a field of the wrong JSON type.
    #[error("not a valid JSON record: {0}")]
    Json(#[from] serde_json::Error),
    /// `MaHoSo` absent or empty.
    #[error("MaHoSo is missing")]
    MissingCode,
    /// `MaHoSo` is not a dossier code.
    #[error("MaHoSo {value:?}: {source}")]
    BadCode {
        /// The value found.
        value: String,
        /// What is wrong with it.
        source: crate::domain::DossierCodeError,
    },
    /// `TrangThaiHoSo` absent.
    #[error("TrangThaiHoSo is missing")]
    MissingStatus,
    /// `TrangThaiHoSo` not 1–10.
    #[error("TrangThaiHoSo {0:?} is not a status code from 1 to 10")]
    BadStatus(String),
    /// A date not in `yyyyMMddHHmmss`.
    #[error("{field} {value:?} is not a date in yyyyMMddHHmmss form")]
    BadDate {
        /// The field's portal name.
        field: &'static str,
        /// The value found.
        value: String,
    },
    /// `SoDienThoai` is not a phone number.
    #[error("SoDienThoai: {0}")]
    BadPhone(#[from] crate::domain::MsisdnError),
    /// `version` below 1.
    #[error("version must be a positive integer, got {0}")]
    BadVersion(i64),
}

impl PortalRecord {
    /// Parses one JSON object.
    pub fn from_json(text: &str) -> Result<Self, RecordError> {
        Ok(serde_json::from_str(text)?)
    }

    /// Validates every field and builds the dossier (`version` defaults to 1).
    pub fn into_dossier(self) -> Result<Dossier, RecordError> {
        let raw_code = non_empty(self.ma_ho_so).ok_or(RecordError::MissingCode)?;
        let code = DossierCode::parse(&raw_code).map_err(|source| RecordError::BadCode {
            value: raw_code.clone(),
            source,
        })?;
        let status = match self.trang_thai_ho_so {
            None => return Err(RecordError::MissingStatus),
            Some(NumberOrText::Number(n)) => {
                DossierStatus::from_code(n).map_err(|_| RecordError::BadStatus(n.to_string()))?
            }
            Some(NumberOrText::Text(t)) => t
                .trim()
                .parse::<i64>()
                .ok()
                .and_then(|n| DossierStatus::from_code(n).ok())
                .ok_or(RecordError::BadStatus(t))?,
        };
        let version = self.version.unwrap_or(1);
        if version < 1 {
            return Err(RecordError::BadVersion(version));
        }
        Ok(Dossier {
            code,
            procedure_name: non_empty(self.ten_tthc),
            agency_name: non_empty(self.don_vi_xu_ly),
            status,
            received_at: portal_time("NgayTiepNhan", self.ngay_tiep_nhan)?,
            appointment_at: portal_time("NgayHenTra", self.ngay_hen_tra)?,
            finished_at: portal_time("NgayKetThucXuLy", self.ngay_ket_thuc_xu_ly)?,
            returned_at: portal_time("NgayTra", self.ngay_tra)?,
            owner_phone: non_empty(self.so_dien_thoai)
                .map(|p| Msisdn::parse(&p))
                .transpose()?,
            owner_name: non_empty(self.chu_ho_so),
            version,
        })
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Parses a portal timestamp; an empty value means "not set".
fn portal_time(
    field: &'static str,
    value: Option<String>,
) -> Result<Option<NaiveDateTime>, RecordError> {
    let Some(value) = non_empty(value) else {
        return Ok(None);
    };
    NaiveDateTime::parse_from_str(&value, PORTAL_TIME_FORMAT)
        .map(Some)
        .map_err(|_| RecordError::BadDate { field, value })
}

/// Formats a local time the way the portal writes it.
pub fn format_portal_time(t: NaiveDateTime) -> String {
    t.format(PORTAL_TIME_FORMAT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Dossier, RecordError> {
        PortalRecord::from_json(json)?.into_dossier()
    }

    #[test]
    fn full_record_converts() {
        let d = parse(
            r#"{"MaHoSo":"000.00.12.h58-240315-0007","TenTTHC":"Cấp giấy phép xây dựng",
                "DonViXuLy":"UBND huyện Cái Bè","TrangThaiHoSo":"4",
                "NgayTiepNhan":"20240315081500","NgayHenTra":"20240329170000",
                "NgayKetThucXuLy":"","SoDienThoai":"0912345678","ChuHoSo":"Nguyễn Văn An",
                "MaTTHC":"1.000001","version":3}"#,
        )
        .unwrap();
        assert_eq!(d.code.as_str(), "000.00.12.H58-240315-0007");
        assert_eq!(d.status, DossierStatus::InProgress);
        assert_eq!(d.version, 3);
        assert_eq!(d.finished_at, None);
        assert_eq!(
            format_portal_time(d.appointment_at.unwrap()),
            "20240329170000"
        );
        assert_eq!(d.owner_phone.unwrap().national(), "0912345678");
    }

    #[test]
    fn bad_fields_are_named() {
        let e = parse(r#"{"TrangThaiHoSo":4}"#).unwrap_err();
        assert_eq!(e.to_string(), "MaHoSo is missing");
        let e = parse(r#"{"MaHoSo":"000.00.12.H58-240315-0007","TrangThaiHoSo":11}"#).unwrap_err();
        assert!(e.to_string().contains("TrangThaiHoSo"), "{e}");
        let e = parse(
            r#"{"MaHoSo":"000.00.12.H58-240315-0007","TrangThaiHoSo":4,"NgayHenTra":"29/03/2024"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("NgayHenTra"), "{e}");
        let e = parse(
            r#"{"MaHoSo":"000.00.12.H58-240315-0007","TrangThaiHoSo":4,"SoDienThoai":"abc"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("SoDienThoai"), "{e}");
        let e = parse(r#"{"MaHoSo":"000.00.12.H58-240315-0007","TrangThaiHoSo":4,"version":0}"#)
            .unwrap_err();
        assert!(e.to_string().contains("version"), "{e}");
        assert!(parse("not json").is_err());
    }
}
