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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_outside_quotes_and_comments() {
        let v = split_statements("select 'a;b'; select `x;`; -- c;\nselect 1 /* ; */; ;");
        assert_eq!(v, vec!["select 'a;b'", "select `x;`", "-- c;\nselect 1 /* ; */"]);
        assert_eq!(split_statements("select \"it\\\";s\""), vec!["select \"it\\\";s\""]);
    }
}
