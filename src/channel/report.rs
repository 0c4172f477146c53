//! Delivery reports, whatever channel brought them (an SMSC's receipt, a
//! modem's status report): where a reply's message stands
//! ([`ReceiptState`]), what the report says ([`DeliveryReport`]), and the
//! spellings under which a carrier may quote a message id it gave us
//! ([`id_spellings`]).

/// Where a message stands, as a receipt reports it (SMPP `message_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptState {
    /// On its way (not final).
    Enroute,
    /// Delivered to the handset.
    Delivered,
    /// Its validity period ran out.
    Expired,
    /// Deleted at the SMSC.
    Deleted,
    /// Could not be delivered.
    Undeliverable,
    /// Accepted on the subscriber's behalf (read by customer service).
    Accepted,
    /// In no known state.
    Unknown,
    /// Refused by the SMSC or the network.
    Rejected,
    /// Accepted but not transmitted (SMPP 5.0).
    Skipped,
}

impl ReceiptState {
    /// True for every state but [`ReceiptState::Enroute`]: no later receipt will follow.
    pub fn is_final(self) -> bool {
        !matches!(self, ReceiptState::Enroute)
    }

    /// True only for [`ReceiptState::Delivered`]. `ACCEPTD` is final but
    /// does not say the citizen's handset got the message.
    pub fn is_success(self) -> bool {
        matches!(self, ReceiptState::Delivered)
    }

    /// The Appendix B `stat:` spelling (`DELIVRD`, `UNDELIV`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptState::Enroute => "ENROUTE",
            ReceiptState::Delivered => "DELIVRD",
            ReceiptState::Expired => "EXPIRED",
            ReceiptState::Deleted => "DELETED",
            ReceiptState::Undeliverable => "UNDELIV",
            ReceiptState::Accepted => "ACCEPTD",
            ReceiptState::Unknown => "UNKNOWN",
            ReceiptState::Rejected => "REJECTD",
            ReceiptState::Skipped => "SKIPPED",
        }
    }

    /// The state of a `message_state` TLV value: 1 enroute … 9 skipped, and
    /// 0 (SMPP 5.0 `SCHEDULED`, not yet sent) as enroute.
    pub fn from_message_state(value: u8) -> Option<Self> {
        Some(match value {
            0 | 1 => ReceiptState::Enroute,
            2 => ReceiptState::Delivered,
            3 => ReceiptState::Expired,
            4 => ReceiptState::Deleted,
            5 => ReceiptState::Undeliverable,
            6 => ReceiptState::Accepted,
            7 => ReceiptState::Unknown,
            8 => ReceiptState::Rejected,
            9 => ReceiptState::Skipped,
            _ => return None,
        })
    }

    /// The state of a `stat:` value, in any case: the Appendix B
    /// abbreviations, the words they abbreviate, and the `message_state` digit.
    pub fn from_stat(stat: &str) -> Option<Self> {
        let stat = stat.trim().to_ascii_uppercase();
        Some(match stat.as_str() {
            "ENROUTE" | "SCHEDULED" => ReceiptState::Enroute,
            "DELIVRD" | "DELIVERED" => ReceiptState::Delivered,
            "EXPIRED" => ReceiptState::Expired,
            "DELETED" => ReceiptState::Deleted,
            "UNDELIV" | "UNDELIVERABLE" => ReceiptState::Undeliverable,
            "ACCEPTD" | "ACCEPTED" => ReceiptState::Accepted,
            "UNKNOWN" => ReceiptState::Unknown,
            "REJECTD" | "REJECTED" => ReceiptState::Rejected,
            "SKIPPED" => ReceiptState::Skipped,
            digit if digit.len() == 1 => Self::from_message_state(digit.parse().ok()?)?,
            _ => return None,
        })
    }
}

/// What a delivery receipt says about one submitted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    /// The id the SMSC gave the message, as the receipt quotes it (trimmed);
    /// match it with [`id_spellings`].
    pub message_id: String,
    /// Where the message stands.
    pub state: ReceiptState,
    /// The `err:` field (network or SMSC specific), if any.
    pub error: Option<String>,
    /// The `sub:` field: parts submitted.
    pub submitted: Option<u32>,
    /// The `dlvrd:` field: parts delivered.
    pub delivered: Option<u32>,
    /// The `submit date:` field, YYMMDDhhmm[ss] as sent.
    pub submit_date: Option<String>,
    /// The `done date:` field, YYMMDDhhmm[ss] as sent.
    pub done_date: Option<String>,
    /// The `network_error_code` TLV as `<network type>:<code>` (e.g. `gsm:34`).
    pub network_error: Option<String>,
}

/// Every spelling under which the SMSC may quote a message id it gave us:
/// as given (ASCII-lowercased, trimmed, leading zeros — and any spaces
/// among them — stripped), its hex value in
/// decimal, and its decimal value in hex. Receipts quote ids in hex or
/// decimal regardless of how submit_sm_resp gave them. The first spelling is
/// the id's canonical form: a receipt matches a submitted message when
/// `id_spellings(&report.message_id)[0]` is among the submitted id's
/// spellings. An empty id has none.
pub fn id_spellings(id: &str) -> Vec<String> {
    let given = id.trim().to_ascii_lowercase();
    if given.is_empty() {
        return Vec::new();
    }
    let stripped = given.trim_start_matches(|c: char| c == '0' || c.is_whitespace());
    let canonical = if stripped.is_empty() { "0" } else { stripped };
    let mut spellings = vec![canonical.to_owned()];
    if canonical.bytes().all(|b| b.is_ascii_hexdigit()) {
        if let Ok(value) = u128::from_str_radix(canonical, 16) {
            spellings.push(value.to_string());
        }
    }
    if canonical.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(value) = canonical.parse::<u128>() {
            spellings.push(format!("{value:x}"));
        }
    }
    let mut unique = Vec::with_capacity(spellings.len());
    for spelling in spellings {
        if !unique.contains(&spelling) {
            unique.push(spelling);
        }
    }
    unique
}
#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_match_across_hex_and_decimal() {
        assert_eq!(id_spellings("  00FF "), vec!["ff", "255"]);
        assert_eq!(id_spellings("255"), vec!["255", "597", "ff"]);
        assert_eq!(id_spellings("0000"), vec!["0"]);
        assert_eq!(id_spellings(""), Vec::<String>::new());
        assert_eq!(id_spellings("6f1c-22ab"), vec!["6f1c-22ab".to_owned()]);
        // submit_sm_resp said hex, the receipt quotes decimal with leading zeros.
        let submitted = id_spellings("1A2B3C4D");
        let quoted = &id_spellings("0439041101")[0];
        assert!(submitted.contains(quoted));
        // And the other way round.
        let submitted = id_spellings("439041101");
        assert!(submitted.contains(&id_spellings("1a2b3c4d")[0]));
        // Too long for a number: only as given.
        let long = "9".repeat(60);
        assert_eq!(id_spellings(&long), vec![long.clone()]);
    }

    proptest! {
        #[test]
        fn every_spelling_is_canonical(id in "[0-9a-fA-F \\-xé]{0,40}") {
            for spelling in id_spellings(&id) {
                prop_assert_eq!(&id_spellings(&spelling)[0], &spelling);
            }
        }

        #[test]
        fn numeric_ids_match_in_either_base(value in any::<u64>()) {
            let hex = format!("{value:X}");
            let decimal = value.to_string();
            prop_assert!(id_spellings(&hex).contains(&id_spellings(&decimal)[0]));
            prop_assert!(id_spellings(&decimal).contains(&id_spellings(&hex)[0]));
        }
    }
}
