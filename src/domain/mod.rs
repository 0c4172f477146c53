//! The domain: dossier codes, phone numbers, statuses and the dossier record
//! the gateway answers from. Pure types with validating constructors; no I/O.

pub mod dossier;
pub mod dossier_code;
pub mod msisdn;
pub mod status;
pub mod vietnamese;

pub use dossier::Dossier;
pub use dossier_code::{DossierCode, DossierCodeError, ExtractError};
pub use msisdn::{Msisdn, MsisdnError};
pub use status::{DossierStatus, Timeliness, UnknownStatus};
