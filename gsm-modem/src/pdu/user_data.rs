//! TP-UDL and TP-UD: the user data of a TPDU read and written, a header
//! first when TP-UDHI says so, the body in GSM-7 (septets after the
//! header's fill bits), 8-bit data or UCS-2, with the 140-octet /
//! 160-septet limits.

use super::reader::Reader;
use super::{bad_length, gsm7, udh, Alphabet, Body, DataCoding, PduError, UserData};

/// Most user data a TPDU carries: 140 octets, 160 septets.
pub(super) const MAX_OCTETS: usize = 140;
pub(super) const MAX_SEPTETS: usize = 160;

/// How many septets a header of `octets` octets (its length octet
/// included) takes in GSM-7 user data, fill bits included.
pub(super) fn header_septets(octets: usize) -> usize {
    (octets * 8).div_ceil(7)
}

/// Reads TP-UDL and TP-UD.
pub(super) fn decode_user_data(
    reader: &mut Reader<'_>,
    udhi: bool,
    coding: DataCoding,
) -> Result<UserData, PduError> {
    const FIELD: &str = "user data";
    let udl = usize::from(reader.u8("user data length")?);
    let alphabet = coding.alphabet();
    let octets = if alphabet == Alphabet::Gsm7 {
        if udl > MAX_SEPTETS {
            return Err(bad_length(FIELD, udl, "more than 160 septets"));
        }
        (udl * 7).div_ceil(8)
    } else {
        if udl > MAX_OCTETS {
            return Err(bad_length(FIELD, udl, "more than 140 octets"));
        }
        udl
    };
    let data = reader.take(octets, FIELD)?;
    let (header, header_octets) = if udhi {
        let Some(&udhl) = data.first() else {
            return Err(bad_length(
                FIELD,
                udl,
                "no room for the header the UDHI announces",
            ));
        };
        let header_octets = usize::from(udhl) + 1;
        if header_octets > octets {
            return Err(bad_length(
                "user data header",
                usize::from(udhl),
                "longer than the user data",
            ));
        }
        if alphabet == Alphabet::Gsm7 && header_septets(header_octets) > udl {
            return Err(bad_length(
                "user data header",
                usize::from(udhl),
                "longer than the user data",
            ));
        }
        (Some(udh::decode(&data[1..header_octets])?), header_octets)
    } else {
        (None, 0)
    };
    let body = match alphabet {
        Alphabet::Gsm7 => {
            let septets = gsm7::unpack(data, udl);
            let skip = if header.is_some() {
                header_septets(header_octets)
            } else {
                0
            };
            Body::Text(gsm7::decode_septets(&septets[skip..]))
        }
        Alphabet::EightBit => Body::Binary(data[header_octets..].to_vec()),
        Alphabet::Ucs2 => Body::Text(decode_ucs2(&data[header_octets..])),
    };
    Ok(UserData { header, body })
}

/// UTF-16BE, unpaired surrogates and a dangling odd octet as U+FFFD.
fn decode_ucs2(octets: &[u8]) -> String {
    let units = octets
        .chunks_exact(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
    let mut text: String = char::decode_utf16(units)
        .map(|unit| unit.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    if !octets.len().is_multiple_of(2) {
        text.push(char::REPLACEMENT_CHARACTER);
    }
    text
}

/// Writes TP-UDL and TP-UD; says whether TP-UDHI must be set.
pub(super) fn encode_user_data(
    user_data: &UserData,
    coding: DataCoding,
    out: &mut Vec<u8>,
) -> Result<bool, PduError> {
    let header = match &user_data.header {
        Some(header) => udh::encode(header)?,
        None => Vec::new(),
    };
    let alphabet = coding.alphabet();
    let (udl, octets) = match (alphabet, &user_data.body) {
        (Alphabet::Gsm7, Body::Text(text)) => {
            let septets = gsm7::encode_text(text)
                .ok_or_else(|| PduError::Unencodable(format!("text {text:?} is not all GSM-7")))?;
            let skip = if user_data.header.is_some() {
                header_septets(header.len())
            } else {
                0
            };
            let udl = skip + septets.len();
            if udl > MAX_SEPTETS {
                return Err(PduError::Unencodable(format!(
                    "{udl} septets of user data (at most 160)"
                )));
            }
            let mut octets = vec![0; (udl * 7).div_ceil(8)];
            octets[..header.len()].copy_from_slice(&header);
            gsm7::pack(&septets, skip, &mut octets);
            (udl, octets)
        }
        (Alphabet::EightBit, Body::Binary(data)) => {
            let mut octets = header;
            octets.extend_from_slice(data);
            (octets.len(), octets)
        }
        (Alphabet::Ucs2, Body::Text(text)) => {
            let mut octets = header;
            octets.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
            (octets.len(), octets)
        }
        (alphabet, _) => {
            return Err(PduError::Unencodable(format!(
                "the body does not fit the data coding {:#04x} ({alphabet:?})",
                coding.0
            )))
        }
    };
    if octets.len() > MAX_OCTETS {
        return Err(PduError::Unencodable(format!(
            "{} octets of user data (at most 140)",
            octets.len()
        )));
    }
    out.push(udl as u8);
    out.extend_from_slice(&octets);
    Ok(user_data.header.is_some())
}
