//! Result packets: OK, ERR, EOF, column definitions and rows in the text and
//! binary encodings.
//!
//! Rows travel through the CN in the text encoding (`Option<bytes>` per
//! column, as MariaDB sends them to the CN); [`binary_row`] converts a text
//! row for a prepared statement's binary result set using the column's type.

use super::codec::{put_lenenc_int, put_lenenc_str};
use super::constants::{charset, flag, ty};
use crate::error::MysqlError;

/// A column of a result set (Protocol::ColumnDefinition41).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDef {
    pub schema: String,
    pub table: String,
    pub org_table: String,
    pub name: String,
    pub org_name: String,
    /// Collation id (45 = utf8mb4_general_ci, 63 = binary).
    pub charset: u16,
    /// Maximum display length in bytes.
    pub length: u32,
    /// `enum_field_types` value, see [`ty`].
    pub column_type: u8,
    /// Column flags, see [`flag`].
    pub flags: u16,
    pub decimals: u8,
}

impl ColumnDef {
    /// A column of type `column_type` with no table, suitable for computed
    /// values; numbers and temporals get the binary charset.
    pub fn new(name: impl Into<String>, column_type: u8) -> Self {
        let name = name.into();
        let (cs, length, flags) = match column_type {
            ty::TINY | ty::SHORT | ty::LONG | ty::LONGLONG | ty::INT24 | ty::YEAR => {
                (charset::BINARY, 21, flag::NUM | flag::BINARY)
            }
            ty::FLOAT | ty::DOUBLE => (charset::BINARY, 22, flag::NUM | flag::BINARY),
            ty::NEWDECIMAL => (charset::BINARY, 66, flag::NUM | flag::BINARY),
            ty::DATE | ty::DATETIME | ty::TIMESTAMP | ty::TIME => (charset::BINARY, 26, flag::BINARY),
            _ => (charset::UTF8MB4_GENERAL_CI, 1024, 0),
        };
        ColumnDef {
            schema: String::new(),
            table: String::new(),
            org_table: String::new(),
            org_name: name.clone(),
            name,
            charset: cs,
            length,
            column_type,
            flags,
            decimals: if matches!(column_type, ty::FLOAT | ty::DOUBLE) { 31 } else { 0 },
        }
    }

    /// A text column (VAR_STRING, utf8mb4).
    pub fn text(name: impl Into<String>) -> Self {
        Self::new(name, ty::VAR_STRING)
    }

    /// Encodes the definition; `field_list` adds the COM_FIELD_LIST default.
    pub fn encode(&self, field_list: bool) -> Vec<u8> {
        let mut p = Vec::with_capacity(64);
        put_lenenc_str(&mut p, b"def");
        put_lenenc_str(&mut p, self.schema.as_bytes());
        put_lenenc_str(&mut p, self.table.as_bytes());
        put_lenenc_str(&mut p, self.org_table.as_bytes());
        put_lenenc_str(&mut p, self.name.as_bytes());
        put_lenenc_str(&mut p, self.org_name.as_bytes());
        p.push(0x0c);
        p.extend_from_slice(&self.charset.to_le_bytes());
        p.extend_from_slice(&self.length.to_le_bytes());
        p.push(self.column_type);
        p.extend_from_slice(&self.flags.to_le_bytes());
        p.push(self.decimals);
        p.extend_from_slice(&[0, 0]);
        if field_list {
            put_lenenc_int(&mut p, 0xfb);
        }
        p
    }
}

/// OK_Packet; `eof_marker` gives the 0xFE header that ends a result set
/// under CLIENT_DEPRECATE_EOF. `info` (e.g. LOAD DATA's `Records: …`) is
/// sent as a length-encoded string, as MySQL's and MariaDB's `net_send_ok`
/// do (the protocol manual's `string<EOF>` is not what servers send, and
/// libmariadb reads a length).
pub fn ok_packet(
    affected: u64,
    last_insert_id: u64,
    status: u16,
    warnings: u16,
    info: &str,
    eof_marker: bool,
) -> Vec<u8> {
    let mut p = vec![if eof_marker { 0xfe } else { 0x00 }];
    put_lenenc_int(&mut p, affected);
    put_lenenc_int(&mut p, last_insert_id);
    p.extend_from_slice(&status.to_le_bytes());
    p.extend_from_slice(&warnings.to_le_bytes());
    if !info.is_empty() {
        put_lenenc_str(&mut p, info.as_bytes());
    }
    p
}

/// EOF_Packet (only for clients without CLIENT_DEPRECATE_EOF).
pub fn eof_packet(status: u16, warnings: u16) -> Vec<u8> {
    let mut p = vec![0xfe];
    p.extend_from_slice(&warnings.to_le_bytes());
    p.extend_from_slice(&status.to_le_bytes());
    p
}

/// ERR_Packet with SQLSTATE marker.
pub fn err_packet(e: &MysqlError) -> Vec<u8> {
    let mut p = vec![0xff];
    p.extend_from_slice(&e.code.to_le_bytes());
    p.push(b'#');
    let mut state = e.sqlstate.as_bytes().to_vec();
    state.resize(5, b'0');
    p.extend_from_slice(&state);
    p.extend_from_slice(e.message.as_bytes());
    p
}

/// A row in the text encoding: one `Option<bytes>` per column (`None` = NULL).
pub type TextRow = Vec<Option<Vec<u8>>>;

/// ProtocolText::ResultsetRow.
pub fn text_row(row: &[Option<Vec<u8>>], out: &mut Vec<u8>) {
    for v in row {
        match v {
            None => out.push(0xfb),
            Some(b) => put_lenenc_str(out, b),
        }
    }
}

/// ProtocolBinary::ResultsetRow from a text row, converting each value by
/// its column's type. Values that do not parse as their type are sent as
/// zero (MariaDB sends only well-formed values, so this does not arise).
pub fn binary_row(cols: &[ColumnDef], row: &[Option<Vec<u8>>], out: &mut Vec<u8>) {
    out.push(0x00);
    let bitmap_len = (cols.len() + 7 + 2) / 8;
    let bitmap_at = out.len();
    out.resize(bitmap_at + bitmap_len, 0);
    for (i, (c, v)) in cols.iter().zip(row).enumerate() {
        let Some(v) = v else {
            let bit = i + 2;
            out[bitmap_at + bit / 8] |= 1 << (bit % 8);
            continue;
        };
        let s = std::str::from_utf8(v).unwrap_or("");
        let unsigned = c.flags & flag::UNSIGNED != 0;
        let int = || -> i64 {
            if unsigned {
                s.trim().parse::<u64>().map(|u| u as i64).unwrap_or(0)
            } else {
                s.trim().parse::<i64>().unwrap_or(0)
            }
        };
        match c.column_type {
            ty::TINY => out.push(int() as u8),
            ty::SHORT | ty::YEAR => out.extend_from_slice(&(int() as u16).to_le_bytes()),
            ty::LONG | ty::INT24 => out.extend_from_slice(&(int() as u32).to_le_bytes()),
            ty::LONGLONG => out.extend_from_slice(&int().to_le_bytes()),
            ty::FLOAT => out.extend_from_slice(&s.trim().parse::<f32>().unwrap_or(0.0).to_le_bytes()),
            ty::DOUBLE => out.extend_from_slice(&s.trim().parse::<f64>().unwrap_or(0.0).to_le_bytes()),
            ty::DATE | ty::DATETIME | ty::TIMESTAMP => encode_binary_datetime(s, out),
            ty::TIME => encode_binary_time(s, out),
            _ => put_lenenc_str(out, v),
        }
    }
}

fn parse_fields(s: &str) -> Vec<u32> {
    s.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty()).map(|p| p.parse().unwrap_or(0)).collect()
}

/// `YYYY-MM-DD[ HH:MM:SS[.ffffff]]` → binary DATE/DATETIME.
fn encode_binary_datetime(s: &str, out: &mut Vec<u8>) {
    let (date, frac) = match s.split_once('.') {
        Some((d, f)) => (d, format!("{f:0<6}")[..6].parse::<u32>().unwrap_or(0)),
        None => (s, 0),
    };
    let f = parse_fields(date);
    let g = |i: usize| f.get(i).copied().unwrap_or(0);
    let (year, month, day, h, m, sec) = (g(0), g(1), g(2), g(3), g(4), g(5));
    let len = if frac != 0 {
        11
    } else if h != 0 || m != 0 || sec != 0 {
        7
    } else if year != 0 || month != 0 || day != 0 {
        4
    } else {
        0
    };
    out.push(len);
    if len >= 4 {
        out.extend_from_slice(&(year as u16).to_le_bytes());
        out.push(month as u8);
        out.push(day as u8);
    }
    if len >= 7 {
        out.extend_from_slice(&[h as u8, m as u8, sec as u8]);
    }
    if len == 11 {
        out.extend_from_slice(&frac.to_le_bytes());
    }
}

/// `[-]HHH:MM:SS[.ffffff]` → binary TIME.
fn encode_binary_time(s: &str, out: &mut Vec<u8>) {
    let neg = s.starts_with('-');
    let body = s.trim_start_matches('-');
    let (hms, frac) = match body.split_once('.') {
        Some((d, f)) => (d, format!("{f:0<6}")[..6].parse::<u32>().unwrap_or(0)),
        None => (body, 0),
    };
    let f = parse_fields(hms);
    let g = |i: usize| f.get(i).copied().unwrap_or(0);
    let (hours, m, sec) = (g(0), g(1), g(2));
    let (days, h) = (hours / 24, hours % 24);
    if hours == 0 && m == 0 && sec == 0 && frac == 0 {
        out.push(0);
        return;
    }
    out.push(if frac != 0 { 12 } else { 8 });
    out.push(neg as u8);
    out.extend_from_slice(&days.to_le_bytes());
    out.extend_from_slice(&[h as u8, m as u8, sec as u8]);
    if frac != 0 {
        out.extend_from_slice(&frac.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_row_null_bitmap_and_values() {
        let cols = vec![
            ColumnDef::new("a", ty::LONGLONG),
            ColumnDef::new("b", ty::VAR_STRING),
            ColumnDef::new("c", ty::DATETIME),
        ];
        let row = vec![Some(b"-5".to_vec()), None, Some(b"2024-02-03 04:05:06".to_vec())];
        let mut out = Vec::new();
        binary_row(&cols, &row, &mut out);
        assert_eq!(out[0], 0);
        assert_eq!(out[1], 0b0000_1000); // column 1 (+2 offset) is NULL
        assert_eq!(&out[2..10], &(-5i64).to_le_bytes());
        assert_eq!(&out[10..], &[7, 0xe8, 0x07, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn err_packet_layout() {
        let p = err_packet(&MysqlError { code: 1064, sqlstate: "42000".into(), message: "bad".into() });
        assert_eq!(p, b"\xff\x28\x04#42000bad");
    }
}
