//! The user data header (TS 23.040 §9.2.3.24): a length octet, then
//! information elements (identifier, length, data). Concatenation with an
//! 8-bit (IEI 0x00) or 16-bit (IEI 0x08) reference is interpreted, every
//! other element kept as it came.

use super::{InformationElement, PduError, UserDataHeader};

/// Reads the elements of a header (the octets after its length octet).
pub(crate) fn decode(octets: &[u8]) -> Result<UserDataHeader, PduError> {
    let mut elements = Vec::new();
    let mut rest = octets;
    while !rest.is_empty() {
        let [id, length, tail @ ..] = rest else {
            return Err(PduError::BadHeader("element cut after its identifier"));
        };
        let length = usize::from(*length);
        if tail.len() < length {
            return Err(PduError::BadHeader("element longer than the header"));
        }
        let (data, after) = tail.split_at(length);
        elements.push(match (*id, data) {
            (0x00, &[reference, total, sequence]) => InformationElement::Concat8 {
                reference,
                total,
                sequence,
            },
            (0x08, &[high, low, total, sequence]) => InformationElement::Concat16 {
                reference: u16::from_be_bytes([high, low]),
                total,
                sequence,
            },
            (id, data) => InformationElement::Other {
                id,
                data: data.to_vec(),
            },
        });
        rest = after;
    }
    Ok(UserDataHeader { elements })
}

/// Writes a header, its length octet first.
pub(crate) fn encode(header: &UserDataHeader) -> Result<Vec<u8>, PduError> {
    let mut out = vec![0];
    for element in &header.elements {
        match element {
            InformationElement::Concat8 {
                reference,
                total,
                sequence,
            } => out.extend_from_slice(&[0x00, 3, *reference, *total, *sequence]),
            InformationElement::Concat16 {
                reference,
                total,
                sequence,
            } => {
                let [high, low] = reference.to_be_bytes();
                out.extend_from_slice(&[0x08, 4, high, low, *total, *sequence]);
            }
            InformationElement::Other { id, data } => {
                if (*id == 0x00 && data.len() == 3) || (*id == 0x08 && data.len() == 4) {
                    return Err(PduError::Unencodable(format!(
                        "element {id:#04x} of {} octets would read back as a concatenation",
                        data.len()
                    )));
                }
                let length = u8::try_from(data.len()).map_err(|_| {
                    PduError::Unencodable(format!("header element of {} octets", data.len()))
                })?;
                out.push(*id);
                out.push(length);
                out.extend_from_slice(data);
            }
        }
    }
    out[0] = u8::try_from(out.len() - 1)
        .map_err(|_| PduError::Unencodable(format!("header of {} octets", out.len() - 1)))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concatenation_elements_and_others() {
        let octets = [
            0x00, 0x03, 0x2A, 0x03, 0x01, 0x08, 0x04, 0x12, 0x34, 0x02, 0x02, 0x05, 0x04, 0x0B,
            0x84, 0x23, 0xF0,
        ];
        let header = decode(&octets).unwrap();
        assert_eq!(
            header.elements,
            vec![
                InformationElement::Concat8 {
                    reference: 0x2A,
                    total: 3,
                    sequence: 1
                },
                InformationElement::Concat16 {
                    reference: 0x1234,
                    total: 2,
                    sequence: 2
                },
                InformationElement::Other {
                    id: 0x05,
                    data: vec![0x0B, 0x84, 0x23, 0xF0]
                },
            ]
        );
        let written = encode(&header).unwrap();
        assert_eq!(written[0] as usize, octets.len());
        assert_eq!(&written[1..], &octets);
    }

    #[test]
    fn a_concatenation_of_the_wrong_length_is_kept_as_other() {
        let header = decode(&[0x00, 0x02, 0x01, 0x02]).unwrap();
        assert_eq!(
            header.elements,
            vec![InformationElement::Other {
                id: 0,
                data: vec![1, 2]
            }]
        );
    }

    #[test]
    fn malformed_headers_are_errors() {
        assert!(decode(&[0x00]).is_err());
        assert!(decode(&[0x00, 0x03, 0x01]).is_err());
        let sneaky = UserDataHeader {
            elements: vec![InformationElement::Other {
                id: 0,
                data: vec![1, 2, 3],
            }],
        };
        assert!(encode(&sneaky).is_err());
    }
}
