//! The versioned on-disk format of a snapshot: one format byte, then the bincode
//! encoding of [`Challenge`]. A reader refuses a version it does not know instead of
//! guessing; a new version adds a decoder here and keeps the old one.

use crate::model::Challenge;

use super::StoreError;

pub const FORMAT_VERSION: u8 = 1;

pub fn encode(challenge: &Challenge) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.push(FORMAT_VERSION);
    bincode::serialize_into(&mut out, challenge).expect("a challenge always encodes");
    out
}

pub fn decode(bytes: &[u8]) -> Result<Challenge, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_VERSION, rest)) => {
            bincode::deserialize(rest).map_err(|e| StoreError::Format(e.to_string()))
        }
        Some((version, _)) => Err(StoreError::Format(format!(
            "unknown snapshot version {version}"
        ))),
        None => Err(StoreError::Format("empty snapshot".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    fn sample() -> Challenge {
        Challenge {
            id: ChallengeId::random(),
            tenant: TenantId::parse("acme").unwrap(),
            kind: ChallengeType::Token,
            user_id: "u-1".into(),
            actors: vec![ActorRecord {
                id: ActorId::random(),
                user_id: "u-1".into(),
                token_hash: TokenHash([7; 32]),
            }],
            created_at: 1,
            life: Lifecycle::issued(1, 2, 5),
            retention_ms: 3,
            extras: Some(Box::new(Extras {
                details: Some(r#"{"message":"hi"}"#.into()),
                idempotency: Some(Idempotency {
                    key: "k".into(),
                    request_hash: [1; 32],
                }),
                ..Extras::default()
            })),
        }
    }

    #[test]
    fn a_snapshot_round_trips() {
        let c = sample();
        let bytes = encode(&c);
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(decode(&bytes).unwrap(), c);
    }

    #[test]
    fn an_unknown_version_is_refused() {
        let mut bytes = encode(&sample());
        bytes[0] = 99;
        assert!(matches!(decode(&bytes), Err(StoreError::Format(_))));
        assert!(decode(&[]).is_err());
    }
}
