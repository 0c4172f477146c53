//! Splitting a text into the parts of a (concatenated) message: GSM-7 or
//! UCS-2, 153 septets / 67 units a part under a concatenation header,
//! never an escape pair or a surrogate pair cut; the SMS-SUBMITs and
//! SMS-DELIVERs carrying them.

use super::user_data::{header_septets, MAX_OCTETS, MAX_SEPTETS};
use super::*;

/// Most parts a concatenated message can number.
const MAX_PARTS: usize = 255;

/// How `text` is split: its coding and the texts of its parts (one part
/// without a header when it fits).
fn split(text: &str, force_ucs2: bool, wide_reference: bool) -> (DataCoding, Vec<String>) {
    let gsm = !force_ucs2 && text.chars().all(|c| gsm7::char_septets(c).is_some());
    // The concatenation header with its length octet.
    let header_octets = if wide_reference { 7 } else { 6 };
    let (coding, single, per_part): (DataCoding, usize, usize) = if gsm {
        (
            DataCoding::GSM7,
            MAX_SEPTETS,
            MAX_SEPTETS - header_septets(header_octets),
        )
    } else {
        (
            DataCoding::UCS2,
            MAX_OCTETS / 2,
            (MAX_OCTETS - header_octets) / 2,
        )
    };
    let cost = |c: char| {
        if gsm {
            gsm7::char_septets(c).unwrap_or(2)
        } else {
            c.len_utf16()
        }
    };
    if text.chars().map(cost).sum::<usize>() <= single {
        return (coding, vec![text.to_owned()]);
    }
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut used = 0;
    for c in text.chars() {
        let c_cost = cost(c);
        if used + c_cost > per_part {
            parts.push(std::mem::take(&mut current));
            used = 0;
        }
        current.push(c);
        used += c_cost;
    }
    parts.push(current);
    parts.truncate(MAX_PARTS);
    (coding, parts)
}

/// The user data of each part of `text`.
fn parts_user_data(
    text: &str,
    reference: u16,
    force_ucs2: bool,
    wide_reference: bool,
) -> (DataCoding, Vec<UserData>) {
    let (coding, parts) = split(text, force_ucs2, wide_reference);
    let total = parts.len() as u8;
    let user_data = parts
        .into_iter()
        .enumerate()
        .map(|(index, part)| {
            let sequence = index as u8 + 1;
            let header = (total > 1).then(|| UserDataHeader {
                elements: vec![if wide_reference {
                    InformationElement::Concat16 {
                        reference,
                        total,
                        sequence,
                    }
                } else {
                    InformationElement::Concat8 {
                        reference: reference as u8,
                        total,
                        sequence,
                    }
                }],
            });
            UserData {
                header,
                body: Body::Text(part),
            }
        })
        .collect();
    (coding, user_data)
}

/// The SMS-SUBMITs carrying `text` to `destination`: GSM-7 when every
/// character is in the default alphabet or its extension table, else UCS-2;
/// one part when it fits (160 septets / 140 octets), else parts of 153
/// septets / 67 UTF-16 units with a concatenation header using `reference`
/// (its low 8 bits unless `wide_reference`), never splitting an escape pair
/// or a surrogate pair.
///
/// With a 16-bit reference the header is one octet longer: parts of 152
/// septets / 66 units. A text that would need more than 255 parts (over
/// 38 000 characters) cannot be numbered and is cut after the 255th.
/// The TP-MR is 0 (modems put their own), TP-PID 0.
pub fn submit_parts(
    destination: &PduAddress,
    text: &str,
    reference: u16,
    options: SubmitOptions,
) -> Vec<Submit> {
    let (data_coding, parts) =
        parts_user_data(text, reference, options.force_ucs2, options.wide_reference);
    parts
        .into_iter()
        .map(|user_data| Submit {
            reject_duplicates: false,
            status_report_request: options.status_report,
            reply_path: false,
            message_reference: 0,
            destination: destination.clone(),
            protocol_id: 0,
            data_coding,
            validity: options.validity.map_or(Validity::None, Validity::Relative),
            user_data,
        })
        .collect()
}

/// The SMS-DELIVERs carrying `text` from `originator`, split as
/// [`submit_parts`] does (`force_ucs2` and `wide_reference` as there).
///
/// Each part says no more messages are waiting, asks for no status
/// report and has no reply path; TP-PID is 0.
pub fn deliver_parts(
    originator: &PduAddress,
    text: &str,
    reference: u16,
    time: Timestamp,
    options: SubmitOptions,
) -> Vec<Deliver> {
    let (data_coding, parts) =
        parts_user_data(text, reference, options.force_ucs2, options.wide_reference);
    parts
        .into_iter()
        .map(|user_data| Deliver {
            more_messages_to_send: false,
            reply_path: false,
            status_report_indication: false,
            originator: originator.clone(),
            protocol_id: 0,
            data_coding,
            service_centre_time: time,
            user_data,
        })
        .collect()
}
