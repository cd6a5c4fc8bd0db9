//! A throwaway JWT issuer for tests and demos of Istio's `RequestAuthentication`: an ES256
//! (ECDSA P-256) key made fresh with rcgen, its public half as an inline JWKS (what
//! `jwtRules[].jwks` holds), and tokens signed with the `jsonwebtoken` crate.

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// The key id (`kid`) every token and the JWKS carry.
pub const KEY_ID: &str = "weft-test-1";

/// Why a test issuer could not be made or could not sign.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// rcgen could not generate the P-256 key.
    #[error("generating the test issuer's ES256 key: {0}")]
    Key(#[from] rcgen::Error),
    /// jsonwebtoken refused the key or the claims.
    #[error("signing a test JWT (ES256): {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
    /// The JWKS could not be serialised.
    #[error("writing the test issuer's JWKS: {0}")]
    Jwks(#[from] serde_json::Error),
}

/// An issuer (`iss`) with its signing key.
pub struct TestIssuer {
    issuer: String,
    key: EncodingKey,
    jwks: String,
}

impl std::fmt::Debug for TestIssuer {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestIssuer")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl TestIssuer {
    /// A new issuer named `issuer` (the `iss` claim, e.g. `https://issuer.example.com`) with a
    /// fresh ES256 key. Errors: [`JwtError::Key`], [`JwtError::Sign`] when the key cannot be
    /// loaded for signing, [`JwtError::Jwks`].
    pub fn new(issuer: &str) -> Result<Self, JwtError> {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let key = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes())?;
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256)?;
        jwk.common.key_id = Some(KEY_ID.to_string());
        let jwks = serde_json::to_string(&JwkSet { keys: vec![jwk] })?;
        Ok(Self {
            issuer: issuer.to_string(),
            key,
            jwks,
        })
    }

    /// The issuer (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The public key as a JSON Web Key Set (JSON text), for `jwtRules[].jwks`.
    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    /// A token for `subject` that expires at `expires_at` (seconds since the Unix epoch), with
    /// `iss` this issuer and `iat` 60 s before now. Errors: [`JwtError::Sign`].
    pub fn token(&self, subject: &str, expires_at: u64) -> Result<String, JwtError> {
        self.sign(&json!({
            "iss": self.issuer,
            "sub": subject,
            "iat": now().saturating_sub(60),
            "exp": expires_at,
        }))
    }

    /// A token carrying exactly `claims` (any `iss`), signed with this issuer's key. Errors:
    /// [`JwtError::Sign`].
    pub fn sign(&self, claims: &Value) -> Result<String, JwtError> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(KEY_ID.to_string());
        Ok(jsonwebtoken::encode(&header, claims, &self.key)?)
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation};

    use super::*;

    #[test]
    fn tokens_verify_with_the_published_jwks_and_carry_the_claims() {
        let issuer = TestIssuer::new("https://issuer.test").unwrap();
        let token = issuer.token("alice", now() + 600).unwrap();
        let set: JwkSet = serde_json::from_str(issuer.jwks()).unwrap();
        let jwk = set.find(KEY_ID).unwrap();
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&["https://issuer.test"]);
        let data = jsonwebtoken::decode::<Value>(
            &token,
            &DecodingKey::from_jwk(jwk).unwrap(),
            &validation,
        )
        .unwrap();
        assert_eq!(data.claims["sub"], "alice");
        assert_eq!(data.header.kid.as_deref(), Some(KEY_ID));
    }

    #[test]
    fn another_issuers_key_does_not_verify() {
        let signer = TestIssuer::new("https://a.test").unwrap();
        let other = TestIssuer::new("https://a.test").unwrap();
        let token = signer.token("bob", now() + 600).unwrap();
        let set: JwkSet = serde_json::from_str(other.jwks()).unwrap();
        let key = DecodingKey::from_jwk(set.find(KEY_ID).unwrap()).unwrap();
        let result =
            jsonwebtoken::decode::<Value>(&token, &key, &Validation::new(Algorithm::ES256));
        assert!(result.is_err());
    }
}
