//! Length-encoded integers and strings, and a cursor to read packet payloads.
//! Format: MySQL protocol "Basic Data Types" (int<lenenc>, string<lenenc>).

use crate::error::{code, CnError, Result};

/// Appends a length-encoded integer.
pub fn put_lenenc_int(buf: &mut Vec<u8>, v: u64) {
    if v < 251 {
        buf.push(v as u8);
    } else if v < 1 << 16 {
        buf.push(0xfc);
        buf.extend_from_slice(&(v as u16).to_le_bytes());
    } else if v < 1 << 24 {
        buf.push(0xfd);
        buf.extend_from_slice(&(v as u32).to_le_bytes()[..3]);
    } else {
        buf.push(0xfe);
        buf.extend_from_slice(&v.to_le_bytes());
    }
}

/// Appends a length-encoded string.
pub fn put_lenenc_str(buf: &mut Vec<u8>, s: &[u8]) {
    put_lenenc_int(buf, s.len() as u64);
    buf.extend_from_slice(s);
}

fn malformed() -> CnError {
    CnError::mysql(code::ER_MALFORMED_PACKET, "Malformed communication packet.")
}

/// A read cursor over a packet payload; every read checks bounds and fails
/// with ERR 1835 (malformed packet) instead of panicking.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(malformed());
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap_or_default()))
    }
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap_or_default()))
    }
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap_or_default()))
    }
    pub fn lenenc_int(&mut self) -> Result<u64> {
        match self.u8()? {
            0xfc => Ok(self.u16()? as u64),
            0xfd => {
                let b = self.take(3)?;
                Ok(b[0] as u64 | (b[1] as u64) << 8 | (b[2] as u64) << 16)
            }
            0xfe => self.u64(),
            0xfb | 0xff => Err(malformed()),
            v => Ok(v as u64),
        }
    }
    pub fn lenenc_str(&mut self) -> Result<&'a [u8]> {
        let n = self.lenenc_int()?;
        let n = usize::try_from(n).map_err(|_| malformed())?;
        self.take(n)
    }
    /// A NUL-terminated string (the NUL is consumed, not returned).
    pub fn null_str(&mut self) -> Result<&'a [u8]> {
        let rest = &self.buf[self.pos..];
        let end = rest.iter().position(|&b| b == 0).ok_or_else(malformed)?;
        self.pos += end + 1;
        Ok(&rest[..end])
    }
    /// The rest of the payload.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenenc_roundtrip() {
        for v in [0u64, 250, 251, 65535, 65536, (1 << 24) - 1, 1 << 24, u64::MAX] {
            let mut b = Vec::new();
            put_lenenc_int(&mut b, v);
            assert_eq!(Reader::new(&b).lenenc_int().unwrap(), v);
        }
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        assert!(Reader::new(&[0xfc, 1]).lenenc_int().is_err());
        assert!(Reader::new(&[5, b'a']).lenenc_str().is_err());
        assert!(Reader::new(b"abc").null_str().is_err());
    }
}
