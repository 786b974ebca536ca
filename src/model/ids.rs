//! Identifier and secret newtypes. Ids carry 128 bits from the OS CSPRNG and print as
//! URL-safe base64 behind a type prefix (`ch_…`, `act_…`, `fac_…`); answer tokens carry 256 bits.
//! Secrets have no `Debug`/`Display` that prints them.

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// From the thread-local CSPRNG (ChaCha, seeded and periodically reseeded from the OS):
/// as unpredictable as the OS source, without a system call per id.
fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes
}

fn parse_prefixed<const N: usize>(s: &str, prefix: &str) -> Option<[u8; N]> {
    let body = s.strip_prefix(prefix)?;
    // base64 of N bytes without padding is ceil(4N/3) characters.
    if body.len() != (4 * N).div_ceil(3) {
        return None;
    }
    let mut out = [0u8; N];
    let decoded = URL_SAFE_NO_PAD.decode(body).ok()?;
    if decoded.len() != N {
        return None;
    }
    out.copy_from_slice(&decoded);
    Some(out)
}

macro_rules! prefixed_id {
    ($name:ident, $prefix:literal) => {
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name([u8; 16]);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn random() -> Self {
                $name(random())
            }
            pub fn parse(s: &str) -> Option<Self> {
                parse_prefixed(s, $prefix).map($name)
            }
            pub fn from_bytes(bytes: [u8; 16]) -> Self {
                $name(bytes)
            }
            pub fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($prefix)?;
                f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
    };
}

prefixed_id!(ChallengeId, "ch_");
prefixed_id!(ActorId, "act_");
prefixed_id!(EventId, "evt_");
prefixed_id!(FactorId, "fac_");
prefixed_id!(MethodId, "mth_");

/// A tenant name from the bearer token: 1–64 of `[A-Za-z0-9._-]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

impl TenantId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Option<Self> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        ok.then(|| TenantId(Arc::from(s)))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", &self.0)
    }
}

impl Serialize for TenantId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TenantId::parse(&s).ok_or_else(|| serde::de::Error::custom("invalid tenant id"))
    }
}

/// A per-actor answer capability: 256 random bits, shown once in the create response.
#[derive(Clone)]
pub struct AnswerToken(String);

impl AnswerToken {
    /// Base64 (URL-safe, unpadded) of 32 bytes.
    pub const LEN: usize = 43;

    pub fn random() -> Self {
        AnswerToken(URL_SAFE_NO_PAD.encode(random::<32>()))
    }
    /// Accepts any presented string of plausible shape; whether it is right is decided by
    /// comparing keyed hashes.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == Self::LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .then(|| AnswerToken(s.to_string()))
    }

    /// Letters and digits only: for a face whose vendor fixes the token's alphabet and
    /// length (Agilicus' `status.code`, at most 40 of `[0-9a-zA-Z]`).
    pub const ALPHANUMERIC_LEN: usize = 40;

    /// [`AnswerToken::ALPHANUMERIC_LEN`] letters and digits drawn uniformly (≈238 bits).
    pub fn random_alphanumeric() -> Self {
        use rand::distributions::{Alphanumeric, DistString};
        AnswerToken(Alphanumeric.sample_string(&mut rand::thread_rng(), Self::ALPHANUMERIC_LEN))
    }

    /// A presented token of the alphanumeric form's shape.
    pub fn parse_alphanumeric(s: &str) -> Option<Self> {
        (s.len() == Self::ALPHANUMERIC_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| AnswerToken(s.to_string()))
    }
    /// The plain value, for the one response that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AnswerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AnswerToken(***)")
    }
}

/// HMAC-SHA256 of a secret under the server key; what is stored instead of the secret.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenHash(pub [u8; 32]);

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_their_text_form() {
        let id = ChallengeId::random();
        let text = id.to_string();
        assert!(text.starts_with("ch_"));
        assert_eq!(text.len(), 3 + 22);
        assert_eq!(ChallengeId::parse(&text), Some(id));
        assert_eq!(ActorId::parse(&text), None);
        assert_eq!(ChallengeId::parse("ch_short"), None);
        assert_eq!(ChallengeId::parse(&format!("{text}x")), None);
    }

    #[test]
    fn tenant_ids_are_restricted() {
        assert!(TenantId::parse("acme-1.prod_x").is_some());
        assert!(TenantId::parse("").is_none());
        assert!(TenantId::parse("a/b").is_none());
        assert!(TenantId::parse(&"a".repeat(65)).is_none());
    }

    #[test]
    fn answer_tokens_never_print() {
        let t = AnswerToken::random();
        assert_eq!(t.expose().len(), AnswerToken::LEN);
        assert!(!format!("{t:?}").contains(t.expose()));
        assert!(AnswerToken::parse(t.expose()).is_some());
        assert!(AnswerToken::parse("abc").is_none());
        let a = AnswerToken::random_alphanumeric();
        assert_eq!(a.expose().len(), AnswerToken::ALPHANUMERIC_LEN);
        assert!(a.expose().bytes().all(|b| b.is_ascii_alphanumeric()));
        assert!(AnswerToken::parse_alphanumeric(a.expose()).is_some());
        assert!(AnswerToken::parse_alphanumeric(&"a-".repeat(20)).is_none());
        assert_ne!(a.expose(), AnswerToken::random_alphanumeric().expose());
    }
}
