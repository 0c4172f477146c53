//! Small text helpers shared by the AT modules: splitting a response's
//! value into comma-separated fields (commas inside quotes do not split),
//! removing quotes, reading numbers and hex.

/// Splits `value` at the commas outside double quotes; each field trimmed,
/// quotes kept (see [`unquote`]). An empty value gives one empty field.
pub(crate) fn split_fields(value: &str) -> Vec<&str> {
    let mut fields = Vec::new();
    let mut in_quotes = false;
    let mut start = 0;
    for (i, c) in value.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => {
                fields.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    fields.push(value[start..].trim());
    fields
}

/// True when the field is written in double quotes.
pub(crate) fn is_quoted(field: &str) -> bool {
    field.len() >= 2 && field.starts_with('"') && field.ends_with('"')
}

/// The field without its surrounding quotes (if any), trimmed.
pub(crate) fn unquote(field: &str) -> &str {
    let field = field.trim();
    if is_quoted(field) {
        field[1..field.len() - 1].trim()
    } else {
        field
    }
}

/// A decimal number, quotes and spaces allowed around it.
pub(crate) fn dec<T: std::str::FromStr>(field: &str) -> Option<T> {
    let field = unquote(field);
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    field.parse().ok()
}

/// A hexadecimal number (LAC, cell id), quotes allowed; `Ok(None)` for an
/// empty field, `Err(())` for anything that is not hex.
pub(crate) fn hex_u32(field: &str) -> Result<Option<u32>, ()> {
    let field = unquote(field);
    if field.is_empty() {
        return Ok(None);
    }
    if field.len() > 8 || !field.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(());
    }
    u32::from_str_radix(field, 16).map(Some).map_err(|_| ())
}

/// The octets of a hex string (either case, even length, at least one
/// octet); `None` for anything else.
pub(crate) fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim().as_bytes();
    if text.is_empty() || !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks_exact(2)
        .map(|pair| Some((nibble(pair[0])? << 4) | nibble(pair[1])?))
        .collect()
}

fn nibble(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Upper-case hex of `bytes`.
pub(crate) fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Splits `+NAME: value` into (`+NAME`, `value`), both trimmed; a line with
/// no colon is all name.
pub(crate) fn name_value(line: &str) -> (&str, &str) {
    match line.split_once(':') {
        Some((name, value)) => (name.trim(), value.trim()),
        None => (line.trim(), ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_respect_quotes() {
        assert_eq!(
            split_fields(r#"12,"24/03/15,10:00:00+28""#),
            vec!["12", r#""24/03/15,10:00:00+28""#]
        );
        assert_eq!(split_fields("1, 0,,23"), vec!["1", "0", "", "23"]);
        assert_eq!(split_fields(""), vec![""]);
    }

    #[test]
    fn hex_round_trip_and_rejects() {
        assert_eq!(decode_hex("00aB"), Some(vec![0x00, 0xab]));
        assert_eq!(encode_hex(&[0x00, 0xab]), "00AB");
        assert_eq!(decode_hex("ABC"), None);
        assert_eq!(decode_hex(""), None);
        assert_eq!(decode_hex("0G"), None);
        assert_eq!(hex_u32(r#""4CA""#), Ok(Some(0x4ca)));
        assert_eq!(hex_u32(""), Ok(None));
        assert_eq!(hex_u32("81DE445"), Ok(Some(0x081d_e445)));
        assert_eq!(hex_u32("XYZ"), Err(()));
        assert_eq!(hex_u32("123456789"), Err(()));
        assert_eq!(dec::<u8>(" 7 "), Some(7));
        assert_eq!(dec::<u8>("+7"), None);
    }
}
