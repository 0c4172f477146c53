//! A cursor over the octets of a PDU whose every read is bounds-checked
//! and names the field it was reading, so truncated input is an error.

use super::PduError;

/// Octets being read front to back.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    /// One octet.
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, PduError> {
        Ok(self.take(1, field)?[0])
    }

    /// The next `len` octets.
    pub(crate) fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], PduError> {
        let rest = &self.bytes[self.pos..];
        if rest.len() < len {
            return Err(PduError::Truncated { field });
        }
        self.pos += len;
        Ok(&rest[..len])
    }

    /// The next `N` octets as an array.
    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], PduError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    /// How many octets have been read.
    #[cfg(test)]
    pub(crate) fn position(&self) -> usize {
        self.pos
    }
}
