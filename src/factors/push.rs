//! Push factors: a device's P-256 public key (ES256 only) and how it hears of new
//! challenges. Everything here is a pure function of the key, the signed text and the
//! time, on the RustCrypto `p256` crate: reading an enrolled key (SPKI DER), checking a
//! DER ECDSA-P256-SHA256 signature, and checking the device's own JWT (ES256, `sub` =
//! the factor id, `exp` at most [`MAX_TOKEN_LIFETIME_SECONDS`] ahead).
//!
//! The public key is not secret; it is kept as given (its SPKI DER) and shown only as a
//! fingerprint.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::FactorId;

/// A device JWT may be valid for this long at most, from now.
pub const MAX_TOKEN_LIFETIME_SECONDS: i64 = 300;

/// How the device hears of a new challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// The server POSTs each new challenge to `[push] gateway_url`.
    Webhook,
    /// The device polls `GET /api/v1/devices/challenges`.
    None,
}

impl Platform {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "webhook" => Some(Platform::Webhook),
            "none" => Some(Platform::None),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Webhook => "webhook",
            Platform::None => "none",
        }
    }
}

/// A push factor's data: the device key (SPKI DER of a P-256 key) and its platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushFactor {
    pub public_key: Vec<u8>,
    pub platform: Platform,
}

impl PushFactor {
    /// `SHA256:` and the unpadded base64 of the SHA-256 of the SPKI DER (as OpenSSH
    /// prints key fingerprints).
    pub fn fingerprint(&self) -> String {
        format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD
                .encode(Sha256::digest(&self.public_key))
        )
    }
}

/// Reads `public_key` (base64 of SPKI DER; padding optional): the DER, if it is a P-256
/// key. Another curve, RSA, Ed25519 or anything unreadable is refused.
pub fn parse_public_key(base64: &str) -> Option<Vec<u8>> {
    let der = STANDARD
        .decode(base64.trim())
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(base64.trim()))
        .ok()?;
    VerifyingKey::from_public_key_der(&der).ok()?;
    Some(der)
}

/// True when `signature` (base64url, unpadded or padded, of a DER ECDSA signature) is
/// the key's ECDSA-P256-SHA256 signature of `message`.
pub fn verify_der(public_key: &[u8], message: &[u8], signature: &str) -> bool {
    match URL_SAFE_NO_PAD.decode(signature.trim().trim_end_matches('=')) {
        Ok(der) => verify_der_bytes(public_key, message, &der),
        Err(_) => false,
    }
}

/// True when `der` (a DER ECDSA signature) is the key's (SPKI DER) ECDSA-P256-SHA256
/// signature of `message`.
pub fn verify_der_bytes(public_key: &[u8], message: &[u8], der: &[u8]) -> bool {
    let Ok(key) = VerifyingKey::from_public_key_der(public_key) else {
        return false;
    };
    let Ok(signature) = Signature::from_der(der) else {
        return false;
    };
    key.verify(message, &signature).is_ok()
}

/// What enrollment's proof of possession signs: `verify.` and the factor id.
pub fn enrollment_message(id: &FactorId) -> String {
    format!("verify.{id}")
}

/// Why a device token was refused; each has its stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    /// Not a JWT, not ES256, no `sub`/`exp`, an unknown factor, or a bad signature.
    Invalid,
    /// `exp` has passed.
    Expired,
    /// `exp` is more than [`MAX_TOKEN_LIFETIME_SECONDS`] ahead.
    TooLong,
}

impl TokenRefusal {
    pub fn code(self) -> &'static str {
        match self {
            TokenRefusal::Invalid => "invalid_device_token",
            TokenRefusal::Expired => "device_token_expired",
            TokenRefusal::TooLong => "device_token_lifetime_too_long",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            TokenRefusal::Invalid => {
                "the device token is not an ES256 JWT signed by an enrolled push factor"
            }
            TokenRefusal::Expired => "the device token has expired",
            TokenRefusal::TooLong => "the device token's exp is more than 300 seconds ahead",
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

/// The factor a device token claims to be from (its `sub`), unverified: which key to
/// check it with.
pub fn token_subject(token: &str) -> Option<FactorId> {
    let payload = token.split('.').nth(1)?;
    let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    FactorId::parse(&claims.sub)
}

/// Checks a device token against the factor's key at `now` (unix seconds): header
/// `alg` ES256, a JWS signature (r ‖ s) of `header.payload` by the key, `sub` the factor,
/// `exp` in the future and at most [`MAX_TOKEN_LIFETIME_SECONDS`] ahead.
pub fn check_token(
    public_key: &[u8],
    factor: &FactorId,
    token: &str,
    now: i64,
) -> Result<(), TokenRefusal> {
    let claims = check_jws(public_key, token, now)?;
    let sub = claims["sub"].as_str().and_then(FactorId::parse);
    if sub.as_ref() != Some(factor) {
        return Err(TokenRefusal::Invalid);
    }
    Ok(())
}

/// Checks a JWT a device signed with its key, for a face whose device tokens carry
/// their own claims: header `alg` ES256, a JWS signature (r ‖ s) of `header.payload` by
/// the key, a numeric `exp` in the future and at most [`MAX_TOKEN_LIFETIME_SECONDS`]
/// ahead of `now` (unix seconds). The claims, for the face to read.
pub fn check_jws(
    public_key: &[u8],
    token: &str,
    now: i64,
) -> Result<serde_json::Value, TokenRefusal> {
    let invalid = TokenRefusal::Invalid;
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid);
    };
    let header: Header = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or(invalid)?;
    if header.alg != "ES256" {
        return Err(invalid);
    }
    let key = VerifyingKey::from_public_key_der(public_key).map_err(|_| invalid)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .ok()
        .and_then(|s| Signature::from_slice(&s).ok())
        .ok_or(invalid)?;
    let signed_len = token.len() - token.rsplit('.').next().map_or(0, str::len) - 1;
    key.verify(&token.as_bytes()[..signed_len], &signature)
        .map_err(|_| invalid)?;
    let claims: serde_json::Value = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|c| serde_json::from_slice(&c).ok())
        .ok_or(invalid)?;
    let exp = claims["exp"].as_i64().ok_or(invalid)?;
    if exp <= now {
        return Err(TokenRefusal::Expired);
    }
    if exp > now + MAX_TOKEN_LIFETIME_SECONDS {
        return Err(TokenRefusal::TooLong);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::SigningKey;
    use p256::pkcs8::EncodePublicKey;

    fn device() -> (SigningKey, Vec<u8>) {
        let key = SigningKey::random(&mut rand::rngs::OsRng);
        let der = key
            .verifying_key()
            .to_public_key_der()
            .unwrap()
            .as_bytes()
            .to_vec();
        (key, der)
    }

    fn token(key: &SigningKey, sub: &str, exp: i64, alg: &str) -> String {
        let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
        let claims = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"{sub}","exp":{exp}}}"#));
        let signed = format!("{header}.{claims}");
        let signature: Signature = key.sign(signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }

    #[test]
    fn a_der_signature_verifies_under_its_key_only() {
        let (key, der) = device();
        let (_, other) = device();
        let signature: Signature = key.sign(b"verify.x");
        let encoded = URL_SAFE_NO_PAD.encode(signature.to_der().as_bytes());
        assert!(verify_der(&der, b"verify.x", &encoded));
        assert!(!verify_der(&der, b"verify.y", &encoded));
        assert!(!verify_der(&other, b"verify.x", &encoded));
        assert!(!verify_der(&der, b"verify.x", "not base64!"));
    }

    #[test]
    fn a_face_token_is_checked_for_key_alg_and_lifetime_and_yields_its_claims() {
        let (key, der) = device();
        let (stranger, _) = device();
        let now = 1_700_000_000;
        let claims = check_jws(&der, &token(&key, "VA1", now + 60, "ES256"), now).unwrap();
        assert_eq!(claims["sub"], "VA1");
        assert_eq!(
            check_jws(&der, &token(&stranger, "VA1", now + 60, "ES256"), now),
            Err(TokenRefusal::Invalid)
        );
        assert_eq!(
            check_jws(&der, &token(&key, "VA1", now, "ES256"), now),
            Err(TokenRefusal::Expired)
        );
        assert_eq!(
            check_jws(&der, &token(&key, "VA1", now + 301, "ES256"), now),
            Err(TokenRefusal::TooLong)
        );
        assert_eq!(
            check_jws(&der, &token(&key, "VA1", now + 60, "HS256"), now),
            Err(TokenRefusal::Invalid)
        );
    }

    #[test]
    fn only_p256_spki_is_a_public_key() {
        let (_, der) = device();
        assert_eq!(parse_public_key(&STANDARD.encode(&der)), Some(der));
        assert_eq!(parse_public_key("AAAA"), None);
        assert_eq!(parse_public_key("not base64"), None);
    }

    #[test]
    fn a_device_token_is_checked_for_key_alg_sub_and_lifetime() {
        let (key, der) = device();
        let (stranger, _) = device();
        let id = FactorId::random();
        let now = 1_700_000_000;
        let sub = id.to_string();
        assert_eq!(
            token_subject(&token(&key, &sub, now + 60, "ES256")),
            Some(id)
        );
        let check = |t: String| check_token(&der, &id, &t, now);
        assert_eq!(check(token(&key, &sub, now + 60, "ES256")), Ok(()));
        assert_eq!(
            check(token(&key, &sub, now + 301, "ES256")),
            Err(TokenRefusal::TooLong)
        );
        assert_eq!(
            check(token(&key, &sub, now, "ES256")),
            Err(TokenRefusal::Expired)
        );
        assert_eq!(
            check(token(&stranger, &sub, now + 60, "ES256")),
            Err(TokenRefusal::Invalid)
        );
        assert_eq!(
            check(token(&key, &sub, now + 60, "HS256")),
            Err(TokenRefusal::Invalid)
        );
        let other = FactorId::random().to_string();
        assert_eq!(
            check(token(&key, &other, now + 60, "ES256")),
            Err(TokenRefusal::Invalid)
        );
    }
}
