//! Splits a COM_QUERY text into statements at top-level semicolons, keeping
//! quotes, backticks and comments intact (for multi-statements).

/// The offset of the quote that closes the quoted string, identifier or
/// backquoted name opening at `b[i]` (`'`, `"` or `` ` ``; backslash escapes
/// inside the first two), or `b.len()` when it is not closed.
pub fn skip_quoted(b: &[u8], mut i: usize) -> usize {
    let q = b[i];
    i += 1;
    while i < b.len() && b[i] != q {
        if b[i] == b'\\' && q != b'`' {
            i += 1;
        }
        i += 1;
    }
    i.min(b.len())
}

/// The parts of `s` between commas outside quotes and parentheses, trimmed
/// (`SET a = 1, b = f(2, 3)`: two parts).
pub fn split_top_level_commas(s: &str) -> Vec<&str> {
    let b = s.as_bytes();
    let (mut out, mut depth, mut start, mut i) = (Vec::new(), 0i32, 0, 0);
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' | b'`' => i = skip_quoted(b, i),
            b'(' => depth += 1,
            b')' => depth -= 1,
            b',' if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(s[start..].trim());
    out
}

/// Statement texts, trimmed, empty ones dropped.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut start) = (0, 0);
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' | b'`' => i = skip_quoted(b, i),
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b';' => {
                out.push(&sql[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < sql.len() {
        out.push(&sql[start..]);
    }
    out.into_iter().map(str::trim).filter(|s| !s.is_empty()).collect()
}

/// The server version executable comments are compared with: the MySQL
/// version the CN reports (`8.0.35`), as MySQL writes it in `/*!80035 …*/`.
pub const COMMENT_VERSION: u32 = 80035;

/// `sql` with MySQL's executable comments opened: `/*! body */` and
/// `/*!NNNNN body */` become ` body ` when the version `NNNNN` (MySQL's
/// five digits `Mmmrr`; MariaDB's six, `100616` = 10.6.16, are above any
/// MySQL 8) is at most [`COMMENT_VERSION`], and are dropped otherwise;
/// MariaDB's own `/*M!…*/`
/// comments are dropped, as MySQL ignores them (MySQL manual, "Comments").
/// A dump made by `mysqldump` or `mariadb-dump` wraps its session settings
/// (`/*!40101 SET NAMES utf8mb4 */`, `/*!40000 ALTER TABLE t DISABLE KEYS
/// */`) so. Quotes and other comments are kept as they are; `None` when
/// the text has no executable comment.
pub fn open_executable_comments(sql: &str) -> Option<String> {
    if !sql.contains("/*!") && !sql.contains("/*M!") {
        return None;
    }
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let (mut i, mut copied) = (0, 0);
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' | b'`' => i = skip_quoted(b, i),
            b'#' => i = sql[i..].find('\n').map_or(b.len(), |n| i + n),
            b'-' if b.get(i + 1) == Some(&b'-') => i = sql[i..].find('\n').map_or(b.len(), |n| i + n),
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mariadb = b.get(i + 2) == Some(&b'M') && b.get(i + 3) == Some(&b'!');
                let executable = b.get(i + 2) == Some(&b'!');
                let Some(end) = sql[i + 2..].find("*/").map(|e| i + 2 + e) else { break };
                if mariadb || executable {
                    out.push_str(&sql[copied..i]);
                    let body = &sql[i + if mariadb { 4 } else { 3 }..end];
                    let digits = body.bytes().take_while(u8::is_ascii_digit).count();
                    let version: Option<u32> = body[..digits].parse().ok();
                    if executable && version.is_none_or(|v| digits == 5 && v <= COMMENT_VERSION) {
                        out.push(' ');
                        out.push_str(&body[digits..]);
                    }
                    out.push(' ');
                    copied = end + 2;
                }
                i = end + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&sql[copied.min(sql.len())..]);
    Some(out)
}

/// The hexadecimal digits of `bytes`, two per byte, upper-case (`00FF`).
pub fn hex_digits(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for c in bytes {
        let _ = write!(s, "{c:02X}");
    }
    s
}

/// MySQL's hex literal of `bytes`: `X'00FF'`.
pub fn hex_literal(bytes: &[u8]) -> String {
    format!("X'{}'", hex_digits(bytes))
}

/// The text of a query whose bytes are not all UTF-8 (`mariadb-dump`
/// without `--hex-blob` writes a BLOB's bytes as they are, inside a quoted
/// literal): each quoted literal that is not UTF-8 becomes the hex literal
/// of its bytes (`'\0\xFF'` → `X'00FF'`, MySQL's escapes and doubled
/// quotes undone first), which MySQL reads as the same bytes. Errors
/// (MySQL's 1300, "Invalid utf8mb4 character string") where bytes that are
/// not UTF-8 stand outside a quoted literal: nothing is replaced by
/// U+FFFD, which would store other bytes than the client sent.
pub fn binary_literals_as_hex(b: &[u8]) -> Result<String, String> {
    let text = |part: &[u8]| {
        std::str::from_utf8(part).map(str::to_string).map_err(|e| {
            let at = &part[e.valid_up_to()..];
            let shown: String = at.iter().take(8).map(|c| format!("{c:02X}")).collect();
            format!("Invalid utf8mb4 character string: '{shown}'")
        })
    };
    let mut out = String::with_capacity(b.len() * 2);
    let (mut i, mut copied) = (0, 0);
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                // The literal's bytes, escapes undone, to its closing quote.
                let mut bytes = Vec::new();
                let mut j = i + 1;
                while j < b.len() {
                    match b[j] {
                        b'\\' if j + 1 < b.len() => {
                            j += 1;
                            match b[j] {
                                b'0' => bytes.push(0),
                                b'b' => bytes.push(8),
                                b'n' => bytes.push(b'\n'),
                                b'r' => bytes.push(b'\r'),
                                b't' => bytes.push(b'\t'),
                                b'Z' => bytes.push(26),
                                c @ (b'%' | b'_') => bytes.extend([b'\\', c]),
                                c => bytes.push(c),
                            }
                        }
                        c if c == q && b.get(j + 1) == Some(&q) => {
                            bytes.push(q);
                            j += 1;
                        }
                        c if c == q => break,
                        c => bytes.push(c),
                    }
                    j += 1;
                }
                let end = j.min(b.len() - 1);
                if std::str::from_utf8(&b[i..=end]).is_err() {
                    out.push_str(&text(&b[copied..i])?);
                    out.push_str(&hex_literal(&bytes));
                    copied = end + 1;
                }
                i = end;
            }
            b'`' => i = skip_quoted(b, i),
            _ => {}
        }
        i += 1;
    }
    out.push_str(&text(&b[copied.min(b.len())..])?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_that_are_not_utf8_become_hex() {
        let sql = b"INSERT INTO o VALUES (1, '\\0\xff', 'it''s', 'caf\xc3\xa9', '\\'\xfe''')";
        assert_eq!(
            binary_literals_as_hex(sql).unwrap(),
            "INSERT INTO o VALUES (1, X'00FF', 'it''s', 'caf\u{e9}', X'27FE27')"
        );
        assert_eq!(binary_literals_as_hex(b"SELECT 1 AS \xff").unwrap_err(), "Invalid utf8mb4 character string: 'FF'");
    }

    #[test]
    fn opens_executable_comments_of_our_version() {
        let open = |s: &str| open_executable_comments(s).map(|o| o.split_whitespace().collect::<Vec<_>>().join(" "));
        assert_eq!(open("/*!40101 SET NAMES utf8mb4 */").as_deref(), Some("SET NAMES utf8mb4"));
        assert_eq!(open("SELECT /*! STRAIGHT_JOIN */ 1").as_deref(), Some("SELECT STRAIGHT_JOIN 1"));
        // Newer than us, MariaDB's six digits, MariaDB's own: dropped.
        assert_eq!(open("/*!90000 SET x = 1 */ SELECT 1").as_deref(), Some("SELECT 1"));
        assert_eq!(open("/*!100616 SET x = 1 */").as_deref(), Some(""));
        assert_eq!(open("/*M!100616 SET @a = @@b, b = 0 */").as_deref(), Some(""));
        assert_eq!(open("/*M!999999\\- enable the sandbox mode */").as_deref(), Some(""));
        // Inside quotes, or in a plain comment, nothing is opened.
        assert_eq!(
            open("SELECT '/*!40101 x */', 2 /* /*!1 */").as_deref(),
            Some("SELECT '/*!40101 x */', 2 /* /*!1 */")
        );
        assert_eq!(open("SELECT 1 -- /*!40101 x */\n").as_deref(), Some("SELECT 1 -- /*!40101 x */"));
        assert_eq!(open("SELECT 1"), None);
    }

    #[test]
    fn splits_outside_quotes_and_comments() {
        let v = split_statements("select 'a;b'; select `x;`; -- c;\nselect 1 /* ; */; ;");
        assert_eq!(v, vec!["select 'a;b'", "select `x;`", "-- c;\nselect 1 /* ; */"]);
        assert_eq!(split_statements("select \"it\\\";s\""), vec!["select \"it\\\";s\""]);
    }
}
