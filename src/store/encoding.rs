//! The versioned on-disk format of a snapshot: one format byte, then the bincode
//! encoding of [`Challenge`]. A reader refuses a version it does not know instead of
//! guessing; a new version adds a decoder here and keeps the old one.
//!
//! - 1: the first format.
//! - 2: the optional parts move into one boxed `extras` (details, hidden details,
//!   callback URL, idempotency key, and the new action plan, delivery plan and policy).

use crate::model::Challenge;

use super::StoreError;

pub const FORMAT_VERSION: u8 = 2;

/// The oldest format this build still reads.
pub const OLDEST_READABLE: u8 = 1;

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
        Some((&1, rest)) => bincode::deserialize::<v1::Challenge>(rest)
            .map(Challenge::from)
            .map_err(|e| StoreError::Format(e.to_string())),
        Some((version, _)) => Err(StoreError::Format(format!(
            "unknown snapshot version {version}"
        ))),
        None => Err(StoreError::Format("empty snapshot".into())),
    }
}

/// Format 1: a challenge from before policies.
mod v1 {
    use serde::{Deserialize, Serialize};

    use crate::clock::Millis;
    use crate::model::{ActorRecord, ChallengeId, ChallengeType, Idempotency, Lifecycle, TenantId};

    #[derive(Serialize, Deserialize)]
    pub struct Challenge {
        pub id: ChallengeId,
        pub tenant: TenantId,
        pub kind: ChallengeType,
        pub user_id: Box<str>,
        pub actors: Vec<ActorRecord>,
        pub created_at: Millis,
        pub life: Lifecycle,
        pub retention_ms: i64,
        pub details: Option<Box<str>>,
        pub hidden_details: Option<Box<str>>,
        pub callback_url: Option<Box<str>>,
        pub idempotency: Option<Idempotency>,
    }

    impl From<Challenge> for crate::model::Challenge {
        fn from(c: Challenge) -> Self {
            crate::model::Challenge {
                id: c.id,
                tenant: c.tenant,
                kind: c.kind,
                user_id: c.user_id,
                actors: c.actors,
                created_at: c.created_at,
                life: c.life,
                retention_ms: c.retention_ms,
                extras: crate::model::Extras {
                    details: c.details,
                    hidden_details: c.hidden_details,
                    callback_url: c.callback_url,
                    idempotency: c.idempotency,
                    ..Default::default()
                }
                .boxed(),
            }
        }
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
                policy: Some(PolicyRef {
                    alias: PolicyAlias::parse("login").unwrap(),
                    version: 3,
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
    fn a_format_1_snapshot_reads_into_the_current_record() {
        let c = sample();
        let old = v1::Challenge {
            id: c.id,
            tenant: c.tenant.clone(),
            kind: c.kind,
            user_id: c.user_id.clone(),
            actors: c.actors.clone(),
            created_at: c.created_at,
            life: c.life,
            retention_ms: c.retention_ms,
            details: c.details().map(Into::into),
            hidden_details: c.hidden_details().map(Into::into),
            callback_url: c.callback_url().map(Into::into),
            idempotency: c.idempotency().cloned(),
        };
        let mut bytes = vec![1];
        bincode::serialize_into(&mut bytes, &old).unwrap();
        let mut expected = c;
        expected.extras.as_mut().unwrap().policy = None;
        assert_eq!(decode(&bytes).unwrap(), expected);
    }

    #[test]
    fn an_unknown_version_is_refused() {
        let mut bytes = encode(&sample());
        bytes[0] = 99;
        assert!(matches!(decode(&bytes), Err(StoreError::Format(_))));
        assert!(decode(&[]).is_err());
    }
}
