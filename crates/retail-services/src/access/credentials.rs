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
    pub(super) iss: String,
    pub(super) aud: String,
    pub(super) sub: String,
    pub(super) role: String,
    pub(super) iat: i64,
    pub(super) exp: i64,
    pub(super) jti: String,
    pub(super) typ: String,
}

/// What signs and checks access tokens: the HS256 secret, the issuer and the audience.
pub(super) struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub(super) issuer: String,
    pub(super) audience: String,
}

impl TokenKeys {
    pub(super) fn new(secret: &[u8], issuer: &str, audience: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        }
    }

    /// Signs `claims` (HS256).
    pub(super) fn sign(&self, claims: &Claims) -> Result<String> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|error| Error::invalid(format!("cannot sign a token: {error}")))
    }

    /// The claims of a valid access token: HS256 with this secret, this issuer and audience,
    /// not expired.
    pub(super) fn verify(&self, token: &str) -> Result<Claims> {
        use jsonwebtoken::errors::ErrorKind as Jwt;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|error| {
                Error::unauthenticated(match error.kind() {
                    Jwt::ExpiredSignature => "access token expired",
                    Jwt::InvalidSignature => "access token signature is not valid",
                    Jwt::InvalidAlgorithm => "access token is not signed with HS256",
                    Jwt::InvalidIssuer => "access token is from another issuer (api.token_issuer)",
                    Jwt::InvalidAudience => {
                        "access token is for another audience (api.token_audience)"
                    }
                    Jwt::MissingRequiredClaim(_) => {
                        "access token lacks a required claim (exp, sub, iss, aud)"
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
