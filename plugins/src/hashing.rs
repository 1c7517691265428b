//! The password forms sent to targets instead of the password, so the plaintext never reaches
//! their statement logs: PostgreSQL's SCRAM-SHA-256 verifier (RFC 5802 / RFC 7677, the format
//! `pg_authid` stores) and MariaDB's `mysql_native_password` hash.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngExt;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// PostgreSQL's default `scram_iterations`, and the count RFC 7677 asks for at least.
pub const SCRAM_ITERATIONS: u32 = 4096;
/// The most iterations a backend may ask for: PostgreSQL repeats them when it checks a new
/// verifier against the empty password, so each `CREATE ROLE` costs the target as much again.
pub const MAX_SCRAM_ITERATIONS: u32 = 1_000_000;
const SALT_LEN: usize = 16;

type HmacSha256 = Hmac<Sha256>;

/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` for `password` with a fresh salt.
///
/// PostgreSQL recognises this form in `PASSWORD '…'` and stores it as is, after checking that it
/// is not the verifier of the empty password, which costs it `iterations` rounds of its own.
/// Generated passwords are ASCII, for which SASLprep is the identity.
pub fn scram_sha256_verifier(password: &str, iterations: u32) -> String {
    let mut salt = [0u8; SALT_LEN];
    rand::rng().fill(&mut salt);
    scram_sha256_verifier_with(password, &salt, iterations.max(1))
}

fn scram_sha256_verifier_with(password: &str, salt: &[u8], iterations: u32) -> String {
    let salted = pbkdf2_sha256(password.as_bytes(), salt, iterations);
    let client_key = hmac_sha256(salted.as_slice(), b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac_sha256(salted.as_slice(), b"Server Key");
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key),
        STANDARD.encode(server_key)
    )
}

/// `*` followed by the upper-case hex of SHA1(SHA1(password)): what
/// `IDENTIFIED BY PASSWORD '…'` expects.
pub fn mysql_native_hash(password: &str) -> String {
    let inner: Zeroizing<[u8; 20]> = Zeroizing::new(Sha1::digest(password.as_bytes()).into());
    format!("*{}", hex::encode_upper(Sha1::digest(inner.as_slice())))
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable_key_length());
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// PBKDF2-HMAC-SHA256 with one 32-byte output block (RFC 8018 §5.2), which is SCRAM's `Hi()`.
fn pbkdf2_sha256(password: &[u8], salt: &[u8], iterations: u32) -> Zeroizing<[u8; 32]> {
    let keyed = HmacSha256::new_from_slice(password).unwrap_or_else(|_| unreachable_key_length());
    let mut mac = keyed.clone();
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let mut u: [u8; 32] = mac.finalize().into_bytes().into();
    let mut result = Zeroizing::new(u);
    for _ in 1..iterations {
        let mut mac = keyed.clone();
        mac.update(&u);
        u = mac.finalize().into_bytes().into();
        for (r, x) in result.iter_mut().zip(u) {
            *r ^= x;
        }
    }
    result
}

/// HMAC accepts keys of any length; this cannot happen.
fn unreachable_key_length() -> HmacSha256 {
    panic!("HMAC-SHA256 rejected a key length, which it never does")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scram_verifier_matches_rfc_7677() {
        // RFC 7677 §3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, i=4096.
        let salt = STANDARD
            .decode("W22ZaJ0SNY7soEsUEjb6gQ==")
            .expect("valid base64");
        let verifier = scram_sha256_verifier_with("pencil", &salt, 4096);
        // Expected keys computed independently with Python's hashlib.pbkdf2_hmac and hmac; the
        // conformance suite proves PostgreSQL accepts the verifiers at login.
        assert_eq!(
            verifier,
            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
        );
    }

    #[test]
    fn scram_verifier_carries_its_iteration_count() {
        let salt = STANDARD
            .decode("W22ZaJ0SNY7soEsUEjb6gQ==")
            .expect("valid base64");
        // Computed independently: hashlib.pbkdf2_hmac("sha256", b"pencil", salt, 16), then the
        // RFC 5802 keys with hmac and hashlib.sha256.
        assert_eq!(
            scram_sha256_verifier_with("pencil", &salt, 16),
            "SCRAM-SHA-256$16:W22ZaJ0SNY7soEsUEjb6gQ==$E31herPhjIOTVCX7LjVuiaoFyFvb0RROPq3YM3VVrD8=:vtOdW3IRp9Qxq7MV3joF+UQqwGm6/yuYYDB6xnA/BZE="
        );
        assert!(scram_sha256_verifier("pencil", 16).starts_with("SCRAM-SHA-256$16:"));
        assert!(scram_sha256_verifier("pencil", 0).starts_with("SCRAM-SHA-256$1:"));
    }

    #[test]
    fn mysql_native_hash_matches_the_server() {
        // SELECT PASSWORD('secret') on MariaDB.
        assert_eq!(
            mysql_native_hash("secret"),
            "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7"
        );
    }
}
