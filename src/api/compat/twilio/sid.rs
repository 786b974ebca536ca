//! Twilio SIDs: a two-letter type prefix and 32 lower-case hex digits, mapped one-to-one
//! onto the engine's 16-byte ids (`YF` ↔ `FactorId`, `YC` ↔ `ChallengeId`) and onto the
//! random 16 bytes a face record is named by (`VA` service, `YE` entity, `YW` webhook).
//! Parsing is strict (lower-case only), so every id has exactly one SID and back.

use crate::model::{ChallengeId, FactorId};

pub const SERVICE: &str = "VA";
pub const ENTITY: &str = "YE";
pub const FACTOR: &str = "YF";
pub const CHALLENGE: &str = "YC";
pub const WEBHOOK: &str = "YW";
pub const NOTIFICATION: &str = "NT";

/// `prefix` and the hex of `bytes`.
pub fn encode(prefix: &str, bytes: &[u8; 16]) -> String {
    let mut out = String::with_capacity(34);
    out.push_str(prefix);
    out.push_str(&hex::encode(bytes));
    out
}

/// The 16 bytes of a SID of type `prefix`; `None` for anything else (another type,
/// another length, upper-case hex).
pub fn decode(prefix: &str, sid: &str) -> Option<[u8; 16]> {
    let body = sid.strip_prefix(prefix)?;
    if body.len() != 32 || !body.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 16];
    hex::decode_to_slice(body, &mut out).ok()?;
    Some(out)
}

/// A fresh random SID of type `prefix` (services, entities, webhooks).
pub fn random(prefix: &str) -> String {
    encode(prefix, ChallengeId::random().as_bytes())
}

/// A SID of type `prefix`, as given, if it is one.
pub fn checked(prefix: &str, sid: &str) -> Option<String> {
    decode(prefix, sid).map(|_| sid.to_string())
}

pub fn factor(id: &FactorId) -> String {
    encode(FACTOR, id.as_bytes())
}

pub fn factor_id(sid: &str) -> Option<FactorId> {
    decode(FACTOR, sid).map(FactorId::from_bytes)
}

pub fn challenge(id: &ChallengeId) -> String {
    encode(CHALLENGE, id.as_bytes())
}

pub fn challenge_id(sid: &str) -> Option<ChallengeId> {
    decode(CHALLENGE, sid).map(ChallengeId::from_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_ids_map_one_to_one_onto_sids() {
        let id = ChallengeId::random();
        let sid = challenge(&id);
        assert_eq!(sid.len(), 34);
        assert!(sid.starts_with("YC"));
        assert_eq!(challenge_id(&sid), Some(id));
        let f = FactorId::random();
        assert_eq!(factor_id(&factor(&f)), Some(f));
        // The same bytes under another prefix are not this type's SID.
        assert_eq!(factor_id(&sid), None);
    }

    #[test]
    fn only_the_canonical_spelling_parses() {
        let sid = encode(SERVICE, &[0xab; 16]);
        assert_eq!(sid, format!("VA{}", "ab".repeat(16)));
        assert_eq!(decode(SERVICE, &sid), Some([0xab; 16]));
        for bad in [
            format!("VA{}", "AB".repeat(16)),
            format!("va{}", "ab".repeat(16)),
            format!("VA{}", "ab".repeat(15)),
            format!("VA{}0", "ab".repeat(16)),
            format!("VA{}g", "ab".repeat(15) + "a"),
            String::new(),
        ] {
            assert_eq!(decode(SERVICE, &bad), None, "{bad}");
        }
    }
}
