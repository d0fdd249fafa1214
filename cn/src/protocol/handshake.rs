//! Connection phase: Handshake v10 out, HandshakeResponse41 in,
//! `mysql_native_password` and `caching_sha2_password` verification (with
//! an AuthSwitchRequest when the client starts with another plugin).

use super::codec::Reader;
use super::constants::{cap, charset, status};
use crate::error::{code, CnError, Result};
use sha1::{Digest, Sha1};

/// Capabilities the CN offers.
pub const SERVER_CAPABILITIES: u32 = cap::LONG_PASSWORD
    | cap::FOUND_ROWS
    | cap::LONG_FLAG
    | cap::CONNECT_WITH_DB
    | cap::NO_SCHEMA
    | cap::LOCAL_FILES
    | cap::IGNORE_SPACE
    | cap::PROTOCOL_41
    | cap::INTERACTIVE
    | cap::TRANSACTIONS
    | cap::SECURE_CONNECTION
    | cap::MULTI_STATEMENTS
    | cap::MULTI_RESULTS
    | cap::PS_MULTI_RESULTS
    | cap::PLUGIN_AUTH
    | cap::CONNECT_ATTRS
    | cap::PLUGIN_AUTH_LENENC_CLIENT_DATA
    | cap::DEPRECATE_EOF;

pub const NATIVE_PASSWORD: &str = "mysql_native_password";
/// MySQL 8's default authentication plugin (the only one of MySQL 9's
/// clients besides TLS-only ones).
pub const CACHING_SHA2_PASSWORD: &str = "caching_sha2_password";

/// The `caching_sha2_password` AuthMoreData packet saying the scramble
/// matched ("fast auth success", MySQL internals: caching_sha2_password).
pub const FAST_AUTH_SUCCESS: [u8; 2] = [0x01, 0x03];

/// Builds the Handshake v10 payload. `scramble` is 20 random bytes (no NUL);
/// `plugin` is the authentication plugin the server proposes.
pub fn initial_handshake(server_version: &str, conn_id: u32, scramble: &[u8; 20], plugin: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(128);
    p.push(10);
    p.extend_from_slice(server_version.as_bytes());
    p.push(0);
    p.extend_from_slice(&conn_id.to_le_bytes());
    p.extend_from_slice(&scramble[..8]);
    p.push(0);
    p.extend_from_slice(&(SERVER_CAPABILITIES as u16).to_le_bytes());
    p.push(charset::UTF8MB4_GENERAL_CI as u8);
    p.extend_from_slice(&status::AUTOCOMMIT.to_le_bytes());
    p.extend_from_slice(&((SERVER_CAPABILITIES >> 16) as u16).to_le_bytes());
    p.push(21);
    p.extend_from_slice(&[0u8; 10]);
    p.extend_from_slice(&scramble[8..]);
    p.push(0);
    p.extend_from_slice(plugin.as_bytes());
    p.push(0);
    p
}

/// What the client said in its HandshakeResponse41.
#[derive(Debug, Default, Clone)]
pub struct HandshakeResponse {
    pub capabilities: u32,
    pub max_packet: u32,
    pub charset: u8,
    pub user: String,
    pub auth_response: Vec<u8>,
    pub database: Option<String>,
    pub auth_plugin: Option<String>,
}

/// Parses HandshakeResponse41. A pre-4.1 client or an SSL request is refused.
pub fn parse_handshake_response(payload: &[u8]) -> Result<HandshakeResponse> {
    let mut r = Reader::new(payload);
    let caps = r.u32()?;
    if caps & cap::PROTOCOL_41 == 0 {
        return Err(CnError::mysql(code::ER_UNKNOWN_ERROR, "clients older than MySQL 4.1 are not supported"));
    }
    let max_packet = r.u32()?;
    let cs = r.u8()?;
    r.take(23)?;
    if r.is_empty() {
        return Err(CnError::mysql(code::ER_UNKNOWN_ERROR, "TLS (SSL) connections are not supported by this CN"));
    }
    let user = String::from_utf8_lossy(r.null_str()?).into_owned();
    let auth_response = if caps & cap::PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
        r.lenenc_str()?.to_vec()
    } else if caps & cap::SECURE_CONNECTION != 0 {
        let n = r.u8()? as usize;
        r.take(n)?.to_vec()
    } else {
        r.null_str()?.to_vec()
    };
    let mut database = None;
    if caps & cap::CONNECT_WITH_DB != 0 && !r.is_empty() {
        let db = String::from_utf8_lossy(r.null_str()?).into_owned();
        if !db.is_empty() {
            database = Some(db);
        }
    }
    let mut auth_plugin = None;
    if caps & cap::PLUGIN_AUTH != 0 && !r.is_empty() {
        auth_plugin = Some(String::from_utf8_lossy(r.null_str()?).into_owned());
    }
    // Connection attributes (CLIENT_CONNECT_ATTRS) are accepted and ignored.
    Ok(HandshakeResponse { capabilities: caps, max_packet, charset: cs, user, auth_response, database, auth_plugin })
}

/// AuthSwitchRequest asking the client to answer with `plugin`.
pub fn auth_switch_request(scramble: &[u8; 20], plugin: &str) -> Vec<u8> {
    let mut p = vec![0xfe];
    p.extend_from_slice(plugin.as_bytes());
    p.push(0);
    p.extend_from_slice(scramble);
    p.push(0);
    p
}

/// SHA1(SHA1(password)): what the server stores for `mysql_native_password`.
pub fn native_password_hash(password: &str) -> [u8; 20] {
    let h1 = Sha1::digest(password.as_bytes());
    Sha1::digest(h1).into()
}

/// Checks a `mysql_native_password` response: the client sends
/// `SHA1(pw) XOR SHA1(scramble ++ SHA1(SHA1(pw)))`; an empty password sends
/// nothing. `stored` is `None` for an account without password.
pub fn verify_native_password(stored: Option<&[u8; 20]>, scramble: &[u8; 20], response: &[u8]) -> bool {
    match stored {
        None => response.is_empty(),
        Some(h2) => {
            if response.len() != 20 {
                return false;
            }
            let mut hasher = Sha1::new();
            hasher.update(scramble);
            hasher.update(h2);
            let mask = hasher.finalize();
            let h1: Vec<u8> = response.iter().zip(mask.iter()).map(|(a, b)| a ^ b).collect();
            let check: [u8; 20] = Sha1::digest(&h1).into();
            &check == h2
        }
    }
}

/// Checks a `caching_sha2_password` response against the account's
/// `password`: the client sends `SHA256(pw) XOR SHA256(SHA256(SHA256(pw))
/// ++ scramble)` (MySQL internals, "caching_sha2_password"); an empty
/// password sends nothing or one NUL. The CN keeps passwords in its config,
/// so it can always check the scramble ("fast authentication") and never
/// needs the full authentication over TLS or RSA.
pub fn verify_caching_sha2_password(password: &str, scramble: &[u8; 20], response: &[u8]) -> bool {
    use sha2::Sha256;
    if password.is_empty() {
        return response.is_empty() || response == [0];
    }
    if response.len() != 32 {
        return false;
    }
    let stage1 = Sha256::digest(password.as_bytes());
    let stage2 = Sha256::digest(stage1);
    let mut h = Sha256::new();
    h.update(stage2);
    h.update(scramble);
    let stage3 = h.finalize();
    // Compared without an early exit.
    stage1.iter().zip(stage3.iter()).zip(response).fold(0u8, |acc, ((a, b), r)| acc | (a ^ b ^ r)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_scramble(password: &str, scramble: &[u8; 20]) -> Vec<u8> {
        let h1 = Sha1::digest(password.as_bytes());
        let h2 = Sha1::digest(h1);
        let mut h = Sha1::new();
        h.update(scramble);
        h.update(h2);
        let m = h.finalize();
        h1.iter().zip(m.iter()).map(|(a, b)| a ^ b).collect()
    }

    #[test]
    fn native_password_accepts_right_and_rejects_wrong() {
        let s = [7u8; 20];
        let stored = native_password_hash("secret");
        assert!(verify_native_password(Some(&stored), &s, &client_scramble("secret", &s)));
        assert!(!verify_native_password(Some(&stored), &s, &client_scramble("Secret", &s)));
        assert!(!verify_native_password(Some(&stored), &s, b""));
        assert!(verify_native_password(None, &s, b""));
        assert!(!verify_native_password(None, &s, &client_scramble("x", &s)));
    }

    #[test]
    fn caching_sha2_password_accepts_right_and_rejects_wrong() {
        use sha2::Sha256;
        let s = [9u8; 20];
        let client = |pw: &str| -> Vec<u8> {
            let s1 = Sha256::digest(pw.as_bytes());
            let s3 = Sha256::digest([Sha256::digest(s1).as_slice(), &s].concat());
            s1.iter().zip(s3.iter()).map(|(a, b)| a ^ b).collect()
        };
        assert!(verify_caching_sha2_password("secret", &s, &client("secret")));
        assert!(!verify_caching_sha2_password("secret", &s, &client("Secret")));
        assert!(!verify_caching_sha2_password("secret", &s, &client("secret")[..31]));
        assert!(!verify_caching_sha2_password("secret", &s, b""));
        assert!(verify_caching_sha2_password("", &s, b""));
        assert!(verify_caching_sha2_password("", &s, &[0]));
        assert!(!verify_caching_sha2_password("", &s, &client("x")));
    }

    #[test]
    fn truncated_handshake_response_is_malformed() {
        assert!(parse_handshake_response(&[0, 2, 0, 0]).is_err());
        let mut p = (SERVER_CAPABILITIES).to_le_bytes().to_vec();
        p.extend_from_slice(&[0, 0, 0, 1, 45]);
        p.extend_from_slice(&[0; 23]);
        p.extend_from_slice(b"root"); // no NUL
        assert!(parse_handshake_response(&p).is_err());
    }
}
