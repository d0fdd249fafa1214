//! `utf8mb4_general_ci`, the CN's default collation, where the CN itself
//! compares, groups, sorts or routes strings.
//!
//! MariaDB's `utf8mb4_general_ci` (strings/ctype-utf8.c, `my_unicase_default`)
//! gives every character one 16-bit weight and compares weight sequences:
//! - a BMP character weighs what [`general_ci_table::RUNS`] says, else its
//!   own code point: case folds to upper case and accents drop (`à`, `Á`
//!   weigh `A`), `ß` weighs `S`, `µ` weighs `Μ`;
//! - every supplementary character (emoji, U+10000 and up) weighs U+FFFD,
//!   so all of them are equal to each other;
//! - PAD SPACE: the shorter string compares as if padded with spaces, so
//!   trailing spaces never matter (`'a ' = 'a'`) and `'a' > 'a\t'` (the pad
//!   space outweighs a tab).
//!
//! The table was read from a live MariaDB 10.11 with `WEIGHT_STRING` for
//! every BMP code point; `cn/tests/cluster.rs` compares [`weight`] with the
//! server's again, so a table that drifted from MariaDB fails a test.
//!
//! Two keys carry the collation into DataFusion, which compares bytes:
//! - [`fold`]: the weights as characters, trailing spaces cut. Two strings
//!   are equal under the collation iff their folds are equal, so grouping,
//!   DISTINCT, equi-joins, `=`, `IN` and partition routing use it.
//! - [`sort_key`]: bytes whose order is the collation's order, PAD SPACE
//!   included; sorts, `<`, `BETWEEN`, MIN and MAX use it.

pub mod functions;
mod general_ci_table;

use std::sync::OnceLock;

/// The weight of U+0020, which PAD SPACE pads with.
const SPACE: u16 = 0x20;

/// What every supplementary character weighs.
const SUPPLEMENTARY: u16 = 0xFFFD;

fn bmp_weights() -> &'static [u16] {
    static TABLE: OnceLock<Vec<u16>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t: Vec<u16> = (0..=u16::MAX).collect();
        for &(first, last, weight, step) in general_ci_table::RUNS {
            for cp in first..=last {
                t[cp as usize] = weight + step * (cp - first);
            }
        }
        t
    })
}

/// The `utf8mb4_general_ci` weight of one character (see the module
/// documentation).
pub fn weight(c: char) -> u16 {
    match u16::try_from(c as u32) {
        Ok(cp) => bmp_weights()[cp as usize],
        Err(_) => SUPPLEMENTARY,
    }
}

/// The character a weight stands for in a fold (weights are BMP code
/// points outside the surrogates).
fn weight_char(w: u16) -> char {
    char::from_u32(w as u32).unwrap_or('\u{FFFD}')
}

/// Every character replaced by its weight, trailing spaces kept: LIKE,
/// which does not pad, matches folded strings as `utf8mb4_general_ci`
/// matches the originals.
pub fn fold_chars(s: &str) -> String {
    if s.is_ascii() {
        // ASCII weighs itself except a-z, which weigh A-Z.
        return s.to_ascii_uppercase();
    }
    s.chars().map(|c| weight_char(weight(c))).collect()
}

/// The equality key: [`fold_chars`] without trailing spaces. `a = b` under
/// `utf8mb4_general_ci` iff `fold(a) == fold(b)`.
pub fn fold(s: &str) -> String {
    let mut f = fold_chars(s);
    f.truncate(f.trim_end_matches(' ').len());
    f
}

/// Appends the order key of `s` to `out`: byte-wise comparison of two keys
/// is `utf8mb4_general_ci` comparison of the strings, PAD SPACE included.
///
/// Encoding: the weights, trailing spaces cut, are split into tokens "k
/// spaces, then the non-space weight x", each written as a 4-byte class
/// word and x in 2 bytes (big-endian), and the end as one class word. The
/// padded end compares like more spaces, so a token whose x sorts below a
/// space (control characters) must sort above the end, and above a token
/// with more spaces; one whose x sorts above a space, below both:
/// - x < space: word `k` (more spaces: larger);
/// - end: word `0x8000_0000`;
/// - x > space: word `0xFFFF_FFFF - k` (more spaces: smaller).
///
/// Equal prefixes of tokens are equal prefixes of the strings, and at the
/// first token that differs these words order the strings as MariaDB's
/// padded comparison does.
pub fn sort_key(s: &str, out: &mut Vec<u8>) {
    for t in order_tokens(s) {
        out.extend_from_slice(&((t >> 16) as u32).to_be_bytes());
        if t != END_TOKEN {
            out.extend_from_slice(&(t as u16).to_be_bytes());
        }
    }
}

/// The tokens of [`sort_key`] as numbers, `class << 16 | x`, ending in
/// [`END_TOKEN`] (the end's class word; no token has that class, so
/// numbers compare as the keys' bytes do).
fn order_tokens(s: &str) -> impl Iterator<Item = u64> + '_ {
    let mut chars = s.chars();
    let mut ended = false;
    std::iter::from_fn(move || {
        if ended {
            return None;
        }
        let mut spaces: u32 = 0;
        for c in chars.by_ref() {
            let w = weight(c);
            if w == SPACE {
                spaces = spaces.saturating_add(1);
                continue;
            }
            let class = if w < SPACE { spaces.min(0x7FFF_FFFF) } else { u32::MAX - spaces.min(0x7FFF_FFFE) };
            return Some(u64::from(class) << 16 | u64::from(w));
        }
        ended = true;
        Some(END_TOKEN)
    })
}

/// The end of an order key as an [`order_tokens`] number.
const END_TOKEN: u64 = 0x8000_0000 << 16;

/// `a` against `b` under `utf8mb4_general_ci` (PAD SPACE): the order of
/// their [`sort_key`]s, found without building them, and mostly within
/// their first characters (a MIN or MAX compares each row with the best
/// so far).
pub fn compare(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut x, mut y) = (order_tokens(a), order_tokens(b));
    loop {
        match (x.next(), y.next()) {
            (Some(p), Some(q)) if p == q && p != END_TOKEN => continue,
            (Some(p), Some(q)) => return p.cmp(&q),
            // Unreachable: both end together or differ before.
            (p, q) => return p.cmp(&q),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    /// `a` against `b` by their order keys.
    fn key_cmp(a: &str, b: &str) -> Ordering {
        let (mut ka, mut kb) = (Vec::new(), Vec::new());
        sort_key(a, &mut ka);
        sort_key(b, &mut kb);
        ka.cmp(&kb)
    }

    /// MariaDB's order of two strings, padded with spaces, from weights.
    fn padded_cmp(a: &str, b: &str) -> Ordering {
        let wa: Vec<u16> = a.chars().map(weight).collect();
        let wb: Vec<u16> = b.chars().map(weight).collect();
        let n = wa.len().max(wb.len());
        let pad = |w: &[u16], i: usize| w.get(i).copied().unwrap_or(SPACE);
        (0..n).map(|i| pad(&wa, i).cmp(&pad(&wb, i))).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
    }

    #[test]
    fn weights_fold_case_and_accents() {
        assert_eq!(fold("àBc  "), "ABC");
        assert_eq!(fold("Straße"), "STRASE");
        assert_eq!(fold("µ"), "\u{39C}");
        assert_eq!(fold("😀"), fold("🙂"));
        assert_eq!(fold_chars("a "), "A ");
        assert_ne!(fold("a\t"), fold("a"));
    }

    #[test]
    fn sort_key_orders_as_padded_weights() {
        let words = [
            "", " ", "a", "A ", "a\t", "a\tb", "a b", "a  b", "a !", "a \t", "ab", "àb", "b", "\t", "\u{1}", "z", "😀",
        ];
        for a in words {
            for b in words {
                assert_eq!(key_cmp(a, b), padded_cmp(a, b), "{a:?} vs {b:?}");
                assert_eq!(key_cmp(a, b).is_eq(), fold(a) == fold(b), "{a:?} vs {b:?}");
                assert_eq!(compare(a, b), key_cmp(a, b), "compare: {a:?} vs {b:?}");
            }
        }
    }
}
