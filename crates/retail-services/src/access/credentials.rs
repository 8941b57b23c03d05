//! Hashes and tokens: argon2id password hashes, SHA-256 of tokens and keys, HS256 access
//! tokens.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand_core::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// The claims of an access token.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Claims {
    pub(super) sub: String,
    pub(super) role: String,
    pub(super) iat: i64,
    pub(super) exp: i64,
    pub(super) jti: String,
    pub(super) typ: String,
}

impl Claims {
    /// Signs the claims (HS256).
    pub(super) fn sign(&self, key: &EncodingKey) -> Result<String> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), self, key)
            .map_err(|error| Error::invalid(format!("cannot sign a token: {error}")))
    }

    /// The claims of a valid access token: signed with `key`, HS256, not expired.
    pub(super) fn verify(token: &str, key: &DecodingKey) -> Result<Self> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<Self>(token, key, &validation).map_err(|error| {
            Error::unauthenticated(match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => "access token expired",
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    "access token signature is not valid"
                }
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => {
                    "access token is not signed with HS256"
                }
                _ => "access token is malformed",
            })
        })?;
        if data.claims.typ != "access" {
            return Err(Error::unauthenticated("not an access token"));
        }
        Ok(data.claims)
    }
}

/// The lowercase hex SHA-256 of a text.
pub(super) fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// `bytes` random bytes from the OS, as hex.
pub(super) fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0_u8; bytes];
    rand_core::OsRng.fill_bytes(&mut buffer);
    hex::encode(buffer)
}

/// Hashes a password with argon2id (a fresh salt each time). Slow by design: call it from the
/// blocking pool.
pub(super) fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| Error::invalid(format!("cannot hash the password: {error}")))
}

/// Whether `password` matches an argon2 hash. Slow by design: call it from the blocking pool.
pub(super) fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}
