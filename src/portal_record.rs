//! The national public service portal's dossier record shape (`MaHoSo`,
//! `TrangThaiHoSo`, `NgayHenTra`, …) as JSON, and its validated conversion
//! into a [`Dossier`]. Used by `motcua-sms import` and by the core feed.
//!
//! Fields the gateway does not use (`MaTTHC`, `TaiLieuNop`, …) are accepted
//! and ignored, so a core can send its full record.

use chrono::NaiveDateTime;
use serde::Deserialize;
use serde_json::Value;

use crate::domain::{Dossier, DossierCode, DossierStatus, Msisdn, MsisdnError};
use crate::privacy::mask_numbers_in;

/// Format of the portal's timestamps (`yyyyMMddHHmmss`, Asia/Ho_Chi_Minh).
const PORTAL_TIME_FORMAT: &str = "%Y%m%d%H%M%S";

/// Most characters of an unusable value quoted in a warning.
const QUOTED_CHARS: usize = 40;

/// Most pieces a `SoDienThoai` value is cut into when looking for the
/// numbers it holds (beyond that it is not read as numbers).
const MAX_PHONE_PIECES: usize = 16;

/// A record as the portal writes it; every field is checked by [`PortalRecord::into_checked`].
///
/// `MaHoSo` and `TrangThaiHoSo` are required: a record without a usable one
/// is refused. The other fields are optional and read leniently (any JSON
/// type is accepted here and judged in [`PortalRecord::into_checked`]), so
/// that one unusable field does not hide the whole dossier.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortalRecord {
    ma_ho_so: Option<String>,
    #[serde(rename = "TenTTHC")]
    ten_tthc: Option<Value>,
    don_vi_xu_ly: Option<Value>,
    trang_thai_ho_so: Option<NumberOrText>,
    ngay_tiep_nhan: Option<Value>,
    ngay_hen_tra: Option<Value>,
    ngay_ket_thuc_xu_ly: Option<Value>,
    ngay_tra: Option<Value>,
    so_dien_thoai: Option<Value>,
    chu_ho_so: Option<Value>,
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

/// Why a record cannot become a dossier: a required field is missing or
/// unusable. Each names the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Not JSON, or a required field of the wrong JSON type. serde quotes
    /// the value it could not take, so numbers in it are masked when shown.
    #[error("not a valid JSON record: {}", mask_numbers_in(&.0.to_string()))]
    Json(#[from] serde_json::Error),
    /// `MaHoSo` absent or empty.
    #[error("MaHoSo is missing")]
    MissingCode,
    /// `MaHoSo` is not a dossier code.
    #[error("MaHoSo {value:?}: {source}")]
    BadCode {
        /// The value found, phone numbers in it masked (it is logged).
        value: String,
        /// What is wrong with it.
        source: crate::domain::DossierCodeError,
    },
    /// `TrangThaiHoSo` absent.
    #[error("TrangThaiHoSo is missing")]
    MissingStatus,
    /// `TrangThaiHoSo` not 1–10 (the value found, numbers in it masked).
    #[error("TrangThaiHoSo {0:?} is not a status code from 1 to 10")]
    BadStatus(String),
    /// `version` below 1.
    #[error("version must be a positive integer, got {0}")]
    BadVersion(i64),
}

/// An optional field the dossier was kept without (or, for several phone
/// numbers, with only one of them). Its `Display` names the field and
/// never shows a phone number or a name in full: it is logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldWarning {
    /// A date not in `yyyyMMddHHmmss`: left out.
    #[error("{field} {value:?} is not a date in yyyyMMddHHmmss form; left out")]
    BadDate {
        /// The field's portal name.
        field: &'static str,
        /// The value found (at most 40 characters), runs of nine digits or
        /// more masked: a phone number typed in the wrong column stays out
        /// of the log.
        value: String,
    },
    /// `SoDienThoai` holds no usable phone number: left out, so nobody gets
    /// the applicant's name.
    #[error("SoDienThoai left out: {0}")]
    BadPhone(#[source] MsisdnError),
    /// `SoDienThoai` holds several numbers: the first mobile one is kept.
    #[error("SoDienThoai holds {found} numbers; the first mobile one ({kept}) is kept, the others are left out")]
    SeveralPhones {
        /// How many numbers it holds.
        found: usize,
        /// The one kept (`Display` is redacted).
        kept: Msisdn,
    },
    /// A field of the wrong JSON type (a number where text belongs, an
    /// object, a list, true/false): left out.
    #[error("{field} is {found}, not text; left out")]
    WrongType {
        /// The field's portal name.
        field: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
}

impl FieldWarning {
    /// The portal name of the field concerned (a metric label).
    pub fn field(&self) -> &'static str {
        match self {
            FieldWarning::BadDate { field, .. } | FieldWarning::WrongType { field, .. } => field,
            FieldWarning::BadPhone(_) | FieldWarning::SeveralPhones { .. } => "SoDienThoai",
        }
    }
}

/// A record made into a dossier, with the optional fields it was kept
/// without.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The dossier.
    pub dossier: Dossier,
    /// The optional fields left out (or partly used), in field order.
    pub warnings: Vec<FieldWarning>,
}

impl PortalRecord {
    /// Parses one JSON object.
    pub fn from_json(text: &str) -> Result<Self, RecordError> {
        Ok(serde_json::from_str(text)?)
    }

    /// Validates every field and builds the dossier (`version` defaults to
    /// 1). An unusable optional field is left out and noted in
    /// [`Checked::warnings`]; only `MaHoSo`, `TrangThaiHoSo` and `version`
    /// refuse the record.
    pub fn into_checked(self) -> Result<Checked, RecordError> {
        let raw_code = non_empty(self.ma_ho_so).ok_or(RecordError::MissingCode)?;
        let code = DossierCode::parse(&raw_code).map_err(|source| RecordError::BadCode {
            value: mask_numbers_in(&raw_code),
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
                .ok_or_else(|| RecordError::BadStatus(mask_numbers_in(&t)))?,
        };
        let version = self.version.unwrap_or(1);
        if version < 1 {
            return Err(RecordError::BadVersion(version));
        }
        let mut warnings = Vec::new();
        let procedure_name = kept(&mut warnings, text_field("TenTTHC", self.ten_tthc));
        let agency_name = kept(&mut warnings, text_field("DonViXuLy", self.don_vi_xu_ly));
        let received_at = kept(
            &mut warnings,
            portal_time("NgayTiepNhan", self.ngay_tiep_nhan),
        );
        let appointment_at = kept(&mut warnings, portal_time("NgayHenTra", self.ngay_hen_tra));
        let finished_at = kept(
            &mut warnings,
            portal_time("NgayKetThucXuLy", self.ngay_ket_thuc_xu_ly),
        );
        let returned_at = kept(&mut warnings, portal_time("NgayTra", self.ngay_tra));
        let owner_phone =
            kept(&mut warnings, owner_phone(self.so_dien_thoai)).map(|(phone, note)| {
                warnings.extend(note);
                phone
            });
        let owner_name = kept(&mut warnings, text_field("ChuHoSo", self.chu_ho_so));
        Ok(Checked {
            dossier: Dossier {
                code,
                procedure_name,
                agency_name,
                status,
                received_at,
                appointment_at,
                finished_at,
                returned_at,
                owner_phone,
                owner_name,
                version,
            },
            warnings,
        })
    }

    /// [`PortalRecord::into_checked`] without the warnings (samples and
    /// tests; the paths that load a core's records report them).
    pub fn into_dossier(self) -> Result<Dossier, RecordError> {
        self.into_checked().map(|checked| checked.dossier)
    }
}

/// An optional field's value, or `None` with its warning noted.
fn kept<T>(warnings: &mut Vec<FieldWarning>, field: Result<Option<T>, FieldWarning>) -> Option<T> {
    field.unwrap_or_else(|warning| {
        warnings.push(warning);
        None
    })
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// The JSON type of `value`, as a warning names it.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "true/false",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A text field; `null` and blank text mean "not set".
fn text_field(field: &'static str, value: Option<Value>) -> Result<Option<String>, FieldWarning> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(non_empty(Some(text))),
        Some(other) => Err(FieldWarning::WrongType {
            field,
            found: json_type(&other),
        }),
    }
}

/// A field that may be text or a JSON number (dates and phone numbers
/// written as numbers), as text.
fn text_or_number(
    field: &'static str,
    value: Option<Value>,
) -> Result<Option<String>, FieldWarning> {
    match value {
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        other => text_field(field, other),
    }
}

/// Parses a portal timestamp; an empty value means "not set".
fn portal_time(
    field: &'static str,
    value: Option<Value>,
) -> Result<Option<NaiveDateTime>, FieldWarning> {
    let Some(value) = text_or_number(field, value)? else {
        return Ok(None);
    };
    NaiveDateTime::parse_from_str(&value, PORTAL_TIME_FORMAT)
        .map(Some)
        .map_err(|_| FieldWarning::BadDate {
            field,
            value: mask_numbers_in(&value.chars().take(QUOTED_CHARS).collect::<String>()),
        })
}

/// `SoDienThoai`: the applicant's number, with a note when the field held
/// several (the first mobile number is kept; with only landlines, the
/// first). A value that is not one number as written is read as pieces:
/// cut at anything that cannot be part of a number (`,` `;` `/` letters …),
/// and each piece's digit groups (split at spaces, dots, dashes,
/// parentheses) joined into as few numbers as make every group part of one.
fn owner_phone(
    value: Option<Value>,
) -> Result<Option<(Msisdn, Option<FieldWarning>)>, FieldWarning> {
    let Some(text) = text_or_number("SoDienThoai", value)? else {
        return Ok(None);
    };
    let whole = match Msisdn::parse(&text) {
        Ok(number) => return Ok(Some((number, None))),
        Err(error) => error,
    };
    let numbers = numbers_in(&text).ok_or(FieldWarning::BadPhone(whole))?;
    let found = numbers.len();
    let kept = numbers
        .iter()
        .find(|n| !n.is_vietnamese_landline())
        .unwrap_or(&numbers[0])
        .clone();
    let note = (found > 1).then(|| FieldWarning::SeveralPhones {
        found,
        kept: kept.clone(),
    });
    Ok(Some((kept, note)))
}

/// The phone numbers in `text` (see [`owner_phone`]), in order; `None`
/// when a piece holding digits is not made of numbers, or there are none.
fn numbers_in(text: &str) -> Option<Vec<Msisdn>> {
    let mut numbers = Vec::new();
    let pieces = text.split(|c: char| {
        !(c.is_ascii_digit() || c.is_whitespace() || matches!(c, '+' | '.' | '-' | '(' | ')'))
    });
    for piece in pieces {
        let groups: Vec<&str> = piece
            .split(|c: char| c.is_whitespace() || matches!(c, '.' | '-' | '(' | ')'))
            .filter(|g| !g.is_empty() && *g != "+")
            .collect();
        if groups.is_empty() {
            continue;
        }
        numbers.extend(join_groups(&groups)?);
    }
    (!numbers.is_empty()).then_some(numbers)
}

/// Joins consecutive digit `groups` into the fewest phone numbers that use
/// every group; `None` when no such reading exists.
fn join_groups(groups: &[&str]) -> Option<Vec<Msisdn>> {
    if groups.len() > MAX_PHONE_PIECES {
        return None;
    }
    // best[i]: the fewest numbers covering groups[..i], with the last one's start.
    let mut best: Vec<Option<(usize, usize)>> = vec![None; groups.len() + 1];
    best[0] = Some((0, 0));
    for end in 1..=groups.len() {
        for start in 0..end {
            let Some((count, _)) = best[start] else {
                continue;
            };
            if Msisdn::parse(&groups[start..end].concat()).is_ok()
                && best[end].is_none_or(|(known, _)| count + 1 < known)
            {
                best[end] = Some((count + 1, start));
            }
        }
    }
    let mut numbers = Vec::new();
    let mut end = groups.len();
    while end > 0 {
        let (_, start) = best[end]?;
        numbers.push(Msisdn::parse(&groups[start..end].concat()).ok()?);
        end = start;
    }
    numbers.reverse();
    Some(numbers)
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

    fn checked(json: &str) -> Checked {
        PortalRecord::from_json(json)
            .and_then(PortalRecord::into_checked)
            .unwrap_or_else(|e| panic!("{json}: refused: {e}"))
    }

    fn owner_phone_of(c: &Checked) -> Option<String> {
        c.dossier.owner_phone.as_ref().map(Msisdn::national)
    }

    fn with_phone(phone: &str) -> String {
        serde_json::json!({
            "MaHoSo": "000.00.12.H58-240315-0007",
            "TrangThaiHoSo": 4,
            "SoDienThoai": phone,
            "ChuHoSo": "Nguyễn Văn An",
        })
        .to_string()
    }

    #[test]
    fn missing_or_bad_required_fields_refuse_the_record() {
        let e = parse(r#"{"TrangThaiHoSo":4}"#).unwrap_err();
        assert_eq!(e.to_string(), "MaHoSo is missing");
        let e = parse(r#"{"MaHoSo":"000.00.12.H58-240315-0007","TrangThaiHoSo":11}"#).unwrap_err();
        assert!(e.to_string().contains("TrangThaiHoSo"), "{e}");
        let e = parse(r#"{"MaHoSo":"000.00.12.H58-240315-0007"}"#).unwrap_err();
        assert!(e.to_string().contains("TrangThaiHoSo"), "{e}");
        let e = parse(r#"{"MaHoSo":"000.00.12.H58-2403-0007","TrangThaiHoSo":4}"#).unwrap_err();
        assert!(e.to_string().starts_with("MaHoSo"), "{e}");
        let e = parse(r#"{"MaHoSo":"000.00.12.H58-240315-0007","TrangThaiHoSo":4,"version":0}"#)
            .unwrap_err();
        assert!(e.to_string().contains("version"), "{e}");
        assert!(parse("not json").is_err());
    }

    #[test]
    fn an_unusable_phone_number_leaves_the_dossier_without_an_owner_phone() {
        for phone in [
            "0273 123 45",    // a landline with a digit missing
            "091.234.567",    // a mobile with a digit missing
            "0912345678901",  // too long
            "không có",       // no number at all
            "0912 345 678 9", // a stray digit after a number
        ] {
            let c = checked(&with_phone(phone));
            assert_eq!(c.dossier.code.as_str(), "000.00.12.H58-240315-0007");
            assert_eq!(c.dossier.owner_phone, None, "{phone:?}");
            assert_eq!(c.warnings.len(), 1, "{phone:?}: {:?}", c.warnings);
            assert!(
                matches!(c.warnings[0], FieldWarning::BadPhone(_)),
                "{phone:?}"
            );
            assert_eq!(c.warnings[0].field(), "SoDienThoai");
            let shown = c.warnings[0].to_string();
            assert!(shown.starts_with("SoDienThoai left out: "), "{shown}");
            let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
            assert!(
                digits.len() < 6 || !shown.contains(&digits[..6]),
                "{phone:?} shown as {shown:?}"
            );
        }
    }

    #[test]
    fn a_number_written_with_dots_spaces_or_a_label_is_read() {
        for phone in [
            "0912.345.678",
            "0912 345 678",
            "(091) 234-5678",
            "+84 912 345 678",
            "DĐ: 0912 345 678",
            "0912345678.",
        ] {
            let c = checked(&with_phone(phone));
            assert_eq!(
                owner_phone_of(&c).as_deref(),
                Some("0912345678"),
                "{phone:?}"
            );
            assert!(c.warnings.is_empty(), "{phone:?}: {:?}", c.warnings);
        }
        // A JSON number loses the trunk zero; the number is still read.
        let c = checked(
            r#"{"MaHoSo":"000.00.12.H58-240315-0007","TrangThaiHoSo":4,"SoDienThoai":912345678}"#,
        );
        assert_eq!(c.dossier.owner_phone.unwrap().national(), "0912345678");
    }

    #[test]
    fn of_several_numbers_the_first_mobile_one_is_kept() {
        for (phone, kept) in [
            ("0912345678 - 0987654321", "0912345678"),
            ("0912345678, 0987654321", "0912345678"),
            ("0912 345 678 0987 654 321", "0912345678"),
            ("0912345678 hoặc 0987654321", "0912345678"),
            ("02438251234; 0987654321", "0987654321"),
            ("024 3825 1234 / 024 3825 9999", "02438251234"),
        ] {
            let c = checked(&with_phone(phone));
            assert_eq!(owner_phone_of(&c).as_deref(), Some(kept), "{phone:?}");
            assert_eq!(c.warnings.len(), 1, "{phone:?}: {:?}", c.warnings);
            let shown = c.warnings[0].to_string();
            assert!(shown.starts_with("SoDienThoai holds 2 numbers"), "{shown}");
            assert!(!shown.contains(kept), "{shown}");
        }
    }

    #[test]
    fn unusable_optional_fields_are_left_out_and_noted() {
        let c = checked(
            r#"{"MaHoSo":"000.00.12.H58-240315-0007","TrangThaiHoSo":4,
                "NgayHenTra":"29/03/2024","NgayTiepNhan":20240315081500,
                "TenTTHC":{"ten":"x"},"DonViXuLy":"UBND","ChuHoSo":42,
                "SoDienThoai":"0912345678","NgayTra":null}"#,
        );
        assert_eq!(c.dossier.appointment_at, None);
        assert_eq!(
            c.dossier.received_at.map(format_portal_time).as_deref(),
            Some("20240315081500")
        );
        assert_eq!(c.dossier.procedure_name, None);
        assert_eq!(c.dossier.agency_name.as_deref(), Some("UBND"));
        assert_eq!(c.dossier.owner_name, None);
        assert_eq!(c.dossier.owner_phone.unwrap().national(), "0912345678");
        let fields: Vec<&str> = c.warnings.iter().map(FieldWarning::field).collect();
        assert_eq!(fields, ["TenTTHC", "NgayHenTra", "ChuHoSo"]);
        assert_eq!(
            c.warnings[1].to_string(),
            "NgayHenTra \"29/03/2024\" is not a date in yyyyMMddHHmmss form; left out"
        );
        assert_eq!(
            c.warnings[2].to_string(),
            "ChuHoSo is a number, not text; left out"
        );
    }

    #[test]
    fn a_phone_number_in_a_date_or_the_code_is_not_shown() {
        let c = checked(
            r#"{"MaHoSo":"000.00.12.H58-240315-0007","TrangThaiHoSo":4,"NgayHenTra":"0912345678"}"#,
        );
        let shown = c.warnings[0].to_string();
        assert!(!shown.contains("0912345678"), "{shown}");
        assert!(shown.contains("091****678"), "{shown}");
        let e = parse(r#"{"MaHoSo":"0912345678","TrangThaiHoSo":4}"#).unwrap_err();
        assert!(!e.to_string().contains("0912345678"), "{e}");
        assert!(e.to_string().starts_with("MaHoSo \"091****678\""), "{e}");
        for wrong_column in [
            r#"{"MaHoSo":"000.00.12.H58-240315-0007","TrangThaiHoSo":"0912345678"}"#,
            r#"{"MaHoSo":"000.00.12.H58-240315-0007","TrangThaiHoSo":4,"version":"0912345678"}"#,
        ] {
            let e = parse(wrong_column).unwrap_err();
            assert!(!e.to_string().contains("0912345678"), "{e}");
        }
    }
}
