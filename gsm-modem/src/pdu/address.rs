//! Addresses (TS 23.040 §9.1.2.5): the TP addresses (length in
//! semi-octets; swapped BCD with an F filler, or GSM-7 packed text when
//! the type of number is alphanumeric) and the service centre address of
//! TS 24.011 §8.2.5.1 that modems put in front (length in octets,
//! type-of-address included; always BCD).

use super::gsm7;
use super::reader::Reader;
use super::{PduAddress, PduError};

/// The semi-octet values 0xA–0xF and the characters they stand for (0xF
/// is the filler; met inside a number it is kept as `f` so nothing is lost).
const SPECIAL_DIGITS: [(u8, char); 6] = [
    (0xA, '*'),
    (0xB, '#'),
    (0xC, 'a'),
    (0xD, 'b'),
    (0xE, 'c'),
    (0xF, 'f'),
];

fn digit_char(nibble: u8) -> char {
    match nibble {
        0..=9 => char::from(b'0' + nibble),
        _ => SPECIAL_DIGITS
            .iter()
            .find(|&&(n, _)| n == nibble)
            .map_or('f', |&(_, c)| c),
    }
}

fn char_digit(c: char) -> Result<u8, PduError> {
    match c {
        '0'..='9' => Ok(c as u8 - b'0'),
        _ => SPECIAL_DIGITS
            .iter()
            .find(|&&(_, d)| d == c)
            .map(|&(n, _)| n)
            .ok_or_else(|| {
                PduError::Unencodable(format!("{c:?} is not a semi-octet digit (0-9 * # a b c)"))
            }),
    }
}

/// The first `count` semi-octets of `octets`, low nibble first.
fn bcd_digits(octets: &[u8], count: usize) -> String {
    (0..count)
        .map(|i| {
            let octet = octets[i / 2];
            digit_char(if i % 2 == 0 { octet & 0x0F } else { octet >> 4 })
        })
        .collect()
}

/// The semi-octets of `number`, swapped and padded with an F filler.
fn bcd_octets(number: &str) -> Result<Vec<u8>, PduError> {
    let nibbles = number
        .chars()
        .map(char_digit)
        .collect::<Result<Vec<u8>, _>>()?;
    Ok(nibbles
        .chunks(2)
        .map(|pair| pair[0] | (pair.get(1).copied().unwrap_or(0xF) << 4))
        .collect())
}

/// Reads a TP address (TP-OA, TP-DA, TP-RA).
pub(crate) fn decode(reader: &mut Reader<'_>, field: &'static str) -> Result<PduAddress, PduError> {
    let semi_octets = usize::from(reader.u8(field)?);
    let type_of_address = reader.u8(field)?;
    let octets = reader.take(semi_octets.div_ceil(2), field)?;
    let number = if type_of_address & 0x70 == 0x50 {
        gsm7::decode_septets(&gsm7::unpack(octets, semi_octets * 4 / 7))
    } else {
        bcd_digits(octets, semi_octets)
    };
    Ok(PduAddress {
        number,
        type_of_address,
    })
}

/// Writes a TP address.
pub(crate) fn encode(address: &PduAddress, out: &mut Vec<u8>) -> Result<(), PduError> {
    let (semi_octets, octets) = if address.is_alphanumeric() {
        let septets = gsm7::encode_text(&address.number).ok_or_else(|| {
            PduError::Unencodable(format!(
                "alphanumeric address {:?} is not GSM-7",
                address.number
            ))
        })?;
        ((septets.len() * 7).div_ceil(4), gsm7::pack_all(&septets))
    } else {
        (address.number.chars().count(), bcd_octets(&address.number)?)
    };
    let length = u8::try_from(semi_octets)
        .map_err(|_| PduError::Unencodable(format!("address {:?} is too long", address.number)))?;
    out.push(length);
    out.push(address.type_of_address);
    out.extend_from_slice(&octets);
    Ok(())
}

/// Reads the service centre address: `None` when its length octet is 0.
/// A trailing F filler is dropped; the type of number does not matter.
pub(crate) fn decode_smsc(reader: &mut Reader<'_>) -> Result<Option<PduAddress>, PduError> {
    const FIELD: &str = "service centre address";
    let length = usize::from(reader.u8(FIELD)?);
    if length == 0 {
        return Ok(None);
    }
    let type_of_address = reader.u8(FIELD)?;
    let octets = reader.take(length - 1, FIELD)?;
    let mut count = octets.len() * 2;
    if octets.last().is_some_and(|&last| last >> 4 == 0xF) {
        count -= 1;
    }
    Ok(Some(PduAddress {
        number: bcd_digits(octets, count),
        type_of_address,
    }))
}

/// Writes the service centre address (`None`: the length octet 0).
pub(crate) fn encode_smsc(address: Option<&PduAddress>, out: &mut Vec<u8>) -> Result<(), PduError> {
    let Some(address) = address else {
        out.push(0);
        return Ok(());
    };
    let digits = address.number.chars().count();
    if digits % 2 == 0 && address.number.ends_with('f') {
        // The final F would be read back as the filler.
        return Err(PduError::Unencodable(format!(
            "service centre number {:?} ends with an F in an even position",
            address.number
        )));
    }
    let octets = bcd_octets(&address.number)?;
    let length = u8::try_from(octets.len() + 1).map_err(|_| {
        PduError::Unencodable(format!(
            "service centre number {:?} is too long",
            address.number
        ))
    })?;
    out.push(length);
    out.push(address.type_of_address);
    out.extend_from_slice(&octets);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> PduAddress {
        let mut reader = Reader::new(bytes);
        let address = decode(&mut reader, "address").unwrap();
        assert_eq!(reader.position(), bytes.len());
        address
    }

    fn write(address: &PduAddress) -> Vec<u8> {
        let mut out = Vec::new();
        encode(address, &mut out).unwrap();
        out
    }

    #[test]
    fn international_number_with_filler() {
        let bytes = [0x0B, 0x91, 0x48, 0x19, 0x32, 0x54, 0x76, 0xF8];
        let address = read(&bytes);
        assert_eq!(address, PduAddress::international("+84912345678"));
        assert_eq!(write(&address), bytes);
    }

    #[test]
    fn star_hash_and_abc_digits() {
        let bytes = [0x05, 0x81, 0xA1, 0xCB, 0xFD];
        let address = read(&bytes);
        assert_eq!(address.number, "1*#ab");
        assert_eq!(write(&address), bytes);
    }

    #[test]
    fn alphanumeric_sender_from_semi_octets() {
        // "MMoney": 6 septets = 42 bits = 11 semi-octets.
        let bytes = [0x0B, 0xD0, 0xCD, 0xE6, 0xDB, 0x5D, 0xCE, 0x03];
        let address = read(&bytes);
        assert!(address.is_alphanumeric());
        assert_eq!(address.number, "MMoney");
        assert_eq!(write(&address), bytes);
    }

    #[test]
    fn seven_character_alphanumeric_has_no_trailing_at() {
        // 7 septets = 49 bits = 13 semi-octets in 7 octets: the 7 spare
        // bits of the last octet are not an eighth character.
        let address = PduAddress {
            number: "Viettel".into(),
            type_of_address: 0xD0,
        };
        let bytes = write(&address);
        assert_eq!(bytes[0], 13);
        assert_eq!(bytes.len(), 2 + 7);
        assert_eq!(read(&bytes), address);
    }

    #[test]
    fn odd_type_of_address_is_kept() {
        let bytes = [0x04, 0x85, 0x01, 0x90];
        let address = read(&bytes);
        assert_eq!(address.number, "1009");
        assert_eq!(address.type_of_address, 0x85);
        assert!(!address.is_international());
        assert_eq!(write(&address), bytes);
    }

    #[test]
    fn service_centre_address() {
        let bytes = [0x07, 0x91, 0x48, 0x09, 0x40, 0x00, 0x00, 0xF0];
        let mut reader = Reader::new(&bytes);
        let smsc = decode_smsc(&mut reader).unwrap().unwrap();
        assert_eq!(smsc, PduAddress::international("84900400000"));
        let mut out = Vec::new();
        encode_smsc(Some(&smsc), &mut out).unwrap();
        assert_eq!(out, bytes);
        assert_eq!(decode_smsc(&mut Reader::new(&[0])).unwrap(), None);
    }

    #[test]
    fn truncated_addresses_are_errors() {
        for bytes in [&[][..], &[0x0B], &[0x0B, 0x91, 0x48], &[0x07, 0x91]] {
            assert!(decode(&mut Reader::new(bytes), "address").is_err());
        }
        assert!(decode_smsc(&mut Reader::new(&[0x07, 0x91, 0x48])).is_err());
    }

    #[test]
    fn unwritable_numbers_are_refused() {
        assert!(encode(&PduAddress::unknown("+84"), &mut Vec::new()).is_err());
        assert!(encode_smsc(Some(&PduAddress::unknown("12f")), &mut Vec::new()).is_ok());
        assert!(encode_smsc(Some(&PduAddress::unknown("1f")), &mut Vec::new()).is_err());
    }
}
